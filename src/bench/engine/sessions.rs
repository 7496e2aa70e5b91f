//! Each client's resume session as the bench follows it (chat protocol, churn): the session id its login
//! got, the mid of the last say it received, when it went away, and what its resumes came to. A client's
//! state outlives its connections: it is the client, not the connection, that resumes.

use hdrhistogram::Histogram;

use crate::bench::resume::{self, Resumed, LIST_TAIL_BYTES};

/// Longest resume the histogram holds, in nanoseconds (longer ones are clamped).
const MAX_RESUME_NS: u64 = 600_000_000_000;

/// What the resumes of a run came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumeCounters {
    /// Logins whose user list granted a session.
    pub sessions: u64,
    /// Connections cut with a reset.
    pub cuts_reset: u64,
    /// Connections cut with a FIN.
    pub cuts_fin: u64,
    /// Resumes completed (`resumed` received).
    pub resumes: u64,
    /// Resumes that said `recovered: false`.
    pub not_recovered: u64,
    /// Says the resumes said they replayed (`missed`, summed).
    pub missed: u64,
    /// Bench messages received between a resume request and its `resumed`.
    pub replayed: u64,
    /// Of those, messages the client had received before (the same say twice).
    pub replay_duplicates: u64,
    /// Resumes refused by the server (an error, `session_expired` or other, instead of `resumed`).
    pub refused: u64,
    /// Ready connections the server ended (a node killed or shut down, a reset): resumed like cuts.
    pub dropped: u64,
    /// Reconnects that failed (refused, reset) and were tried again at the next target.
    pub retried: u64,
}

/// One client.
#[derive(Debug, Clone, Default)]
struct Client {
    session: Vec<u8>,
    last_mid: Vec<u8>,
    /// The end of a user list read so far, while it comes in pieces.
    tail: Vec<u8>,
    /// When it went away (nanoseconds of the engine's clock).
    away_since: u64,
    /// Connections in a row the server ended before this client resumed.
    retries: u32,
}

/// The sessions of every client of an engine.
#[derive(Debug)]
pub(super) struct Sessions {
    clients: Vec<Client>,
    /// Resume latencies, from going away to `resumed`, in nanoseconds.
    pub(super) hist: Histogram<u64>,
    pub(super) counters: ResumeCounters,
}

impl Sessions {
    pub(super) fn new() -> Sessions {
        Sessions {
            clients: Vec::new(),
            hist: Histogram::new_with_bounds(1, MAX_RESUME_NS, 3).expect("static histogram bounds are valid"),
            counters: ResumeCounters::default(),
        }
    }

    fn client(&mut self, idx: usize) -> &mut Client {
        if idx >= self.clients.len() {
            self.clients.resize_with(idx + 1, Client::default);
        }
        &mut self.clients[idx]
    }

    /// Client `idx` reads a user list (all of it, or its start when a read cut it).
    pub(super) fn list_start(&mut self, idx: usize, text: &[u8]) {
        self.client(idx).tail.clear();
        self.list_piece(idx, text);
    }

    /// The next piece of client `idx`'s user list: its session id is at the very end.
    pub(super) fn list_piece(&mut self, idx: usize, piece: &[u8]) {
        let c = self.client(idx);
        let piece = &piece[piece.len().saturating_sub(LIST_TAIL_BYTES)..];
        c.tail.extend_from_slice(piece);
        if c.tail.len() > LIST_TAIL_BYTES {
            c.tail.drain(..c.tail.len() - LIST_TAIL_BYTES);
        }
        if let Some(session) = resume::list_session(&c.tail) {
            let first = c.session.is_empty();
            c.session.clear();
            c.session.extend_from_slice(session);
            c.tail = Vec::new();
            if first {
                self.counters.sessions += 1;
            }
        }
    }

    /// Client `idx` received a say: its mid, if any, is now the last one.
    #[inline]
    pub(super) fn said(&mut self, idx: usize, json: &[u8]) {
        if let Some(mid) = resume::say_mid(json) {
            let c = self.client(idx);
            c.last_mid.clear();
            c.last_mid.extend_from_slice(mid);
        }
    }

    /// Whether client `idx` has a session to resume.
    pub(super) fn has_session(&self, idx: usize) -> bool {
        self.clients.get(idx).is_some_and(|c| !c.session.is_empty())
    }

    /// Client `idx` went away at `now`.
    pub(super) fn away(&mut self, idx: usize, now: u64) {
        self.client(idx).away_since = now;
    }

    /// The request that resumes client `idx`'s session after the last say it received.
    pub(super) fn request(&self, idx: usize) -> Option<Vec<u8>> {
        let c = self.clients.get(idx).filter(|c| !c.session.is_empty())?;
        let mut out = Vec::with_capacity(64 + c.session.len() + c.last_mid.len());
        let last = (!c.last_mid.is_empty()).then_some(&c.last_mid[..]);
        resume::resume_request(&mut out, &c.session, last);
        Some(out)
    }

    /// Counts one more end of client `idx`'s connection by the server; false past `max` in a row.
    pub(super) fn retry(&mut self, idx: usize, max: u32) -> bool {
        let c = self.client(idx);
        c.retries += 1;
        c.retries <= max
    }

    /// Client `idx` read its `resumed` at `now`.
    pub(super) fn resumed(&mut self, idx: usize, now: u64, r: Resumed) {
        self.client(idx).retries = 0;
        let since = self.client(idx).away_since;
        self.hist.saturating_record(now.saturating_sub(since).max(1));
        self.counters.resumes += 1;
        self.counters.missed += r.missed;
        if !r.recovered {
            self.counters.not_recovered += 1;
        }
    }

    /// The mid of the last say client `idx` received.
    #[cfg(test)]
    pub(super) fn last_mid(&self, idx: usize) -> &[u8] {
        self.clients.get(idx).map_or(&[][..], |c| &c.last_mid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_read_from_a_list_in_any_pieces() {
        let mut list = br#"{"type":"user_list","user_list":["#.to_vec();
        for uid in 1..=500 {
            list.extend_from_slice(format!(r#"{{"uid":{uid},"name":"b{uid}"}},"#).as_bytes());
        }
        list.pop();
        list.extend_from_slice(br#"],"session":"00112233445566778899aabbccddeeff"}"#);
        for piece in [1, 7, 100, 4096, list.len()] {
            let mut s = Sessions::new();
            let mut chunks = list.chunks(piece);
            s.list_start(3, chunks.next().unwrap());
            for chunk in chunks {
                s.list_piece(3, chunk);
            }
            assert!(s.has_session(3) && !s.has_session(2) && !s.has_session(9), "{piece}");
            assert_eq!(s.clients[3].session, b"00112233445566778899aabbccddeeff", "{piece}");
            assert_eq!(s.counters.sessions, 1);
            assert!(s.clients[3].tail.capacity() == 0, "the tail is let go once read");
        }
        // A list without a session grants none, and the tail stays bounded.
        let mut s = Sessions::new();
        s.list_start(0, &list[..list.len() - 50]);
        s.list_piece(0, b"]}");
        assert!(!s.has_session(0));
        assert!(s.clients[0].tail.len() <= LIST_TAIL_BYTES);
        assert_eq!(s.request(0), None);
    }

    #[test]
    fn the_resume_names_the_last_mid_received() {
        let mut s = Sessions::new();
        s.list_start(0, br#"{"type":"user_list","user_list":[],"session":"ab12"}"#);
        assert_eq!(s.request(0).unwrap(), br#"{"type":"resume","session":"ab12","last_mid":null}"#);
        s.said(0, br#"{"type":"say","content":"x","time":"t","mid":"41"}"#);
        s.said(0, br#"{"type":"say","content":"x","time":"t","mid":"42"}"#);
        s.said(0, br#"{"type":"say","content":"x","time":"t"}"#);
        assert_eq!(s.last_mid(0), b"42");
        assert_eq!(s.request(0).unwrap(), br#"{"type":"resume","session":"ab12","last_mid":"42"}"#);
        // A resume's user list names the same session again: not a second grant.
        s.list_start(0, br#"{"type":"user_list","user_list":[],"session":"ab12"}"#);
        assert_eq!(s.counters.sessions, 1);
    }

    #[test]
    fn a_client_the_server_keeps_dropping_is_given_up_until_it_resumes() {
        let mut s = Sessions::new();
        assert!((0..3).all(|_| s.retry(4, 3)), "three ends in a row are tried again");
        assert!(!s.retry(4, 3), "the fourth is one too many");
        assert!(s.retry(5, 3), "counted per client");
        s.resumed(4, 10, Resumed { recovered: true, missed: 0 });
        assert!(s.retry(4, 3), "a resume starts the count again");
    }

    #[test]
    fn a_resume_is_timed_from_going_away() {
        let mut s = Sessions::new();
        s.away(1, 1_000);
        s.resumed(1, 501_000, Resumed { recovered: true, missed: 3 });
        s.away(1, 2_000_000);
        s.resumed(1, 3_000_000, Resumed { recovered: false, missed: 0 });
        let c = s.counters;
        assert_eq!((c.resumes, c.missed, c.not_recovered), (2, 3, 1));
        assert_eq!(s.hist.len(), 2);
        assert!(s.hist.equivalent(s.hist.min(), 500_000) && s.hist.equivalent(s.hist.max(), 1_000_000));
    }
}
