//! The read path: `process` turns the bytes of one read into the handshake, frames and deliveries, and the
//! `Sink` classifies, audits and times every delivery without allocating.

use hdrhistogram::Histogram;

use super::conn::{write_now, Conn, Rng};
use super::members::Members;
use super::sessions::Sessions;
use super::types::{ConnFailure, Counters, Phase, Proto};
use crate::bench::audit::{Audit, Verdict};
use crate::bench::content::{self, ChatKind, NameScan, Stamp};
use crate::bench::resume;
use crate::ws::frame::{write_masked_frame, FrameHeader, OpCode};
use crate::ws::handshake::{parse_response, ClientHandshakeError, MAX_HEAD_BYTES};
use crate::ws::message::Message;

/// Everything the read path updates, apart from the connections and the read buffer.
#[derive(Debug)]
pub(super) struct Sink {
    pub(super) proto: Proto,
    pub(super) counters: Counters,
    pub(super) hist: Histogram<u64>,
    pub(super) audit: Audit,
    pub(super) measuring: bool,
    /// Latency is recorded for messages sent at or after this time (nanoseconds since the clock base).
    pub(super) record_from: u64,
    pub(super) ready: usize,
    /// While clients log in (chat): who has seen whom.
    pub(super) members: Option<Members>,
    /// Chat with resume: every client's session.
    pub(super) sessions: Option<Sessions>,
}

/// Longest latency the histogram holds, in nanoseconds (longer ones are clamped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Handles the bytes of one read for connection `idx`: the handshake response, then every whole frame; keeps
/// what is left over in `conn.pending`.
pub(super) fn process(
    idx: usize,
    conn: &mut Conn,
    buf: &mut [u8],
    sink: &mut Sink,
    now: u64,
    rng: &mut Rng,
) -> Result<(), ConnFailure> {
    let mut pos = 0;
    if conn.phase == Phase::Handshaking {
        let key = conn.key.as_deref().unwrap_or("");
        match parse_response(buf, key) {
            Ok(None) => {
                if buf.len() > MAX_HEAD_BYTES {
                    return Err(ConnFailure::Handshake(ClientHandshakeError::Malformed));
                }
                conn.pending.extend_from_slice(buf);
                return Ok(());
            }
            Ok(Some(head)) => {
                pos = head;
                conn.key = None;
                match conn.login.take() {
                    Some(login) => {
                        let key = rng.next_u64() as u32;
                        write_masked_frame(&mut conn.out, OpCode::Text, &login, key.to_le_bytes());
                        conn.phase = if conn.resuming { Phase::Resuming } else { Phase::LoggingIn };
                    }
                    None => {
                        conn.phase = Phase::Ready;
                        sink.ready += 1;
                    }
                }
            }
            Err(e) => return Err(ConnFailure::Handshake(e)),
        }
    }
    loop {
        if conn.skip > 0 {
            let n = conn.skip.min((buf.len() - pos) as u64);
            if let Some(members) = sink.members.as_mut() {
                conn.scan.feed(&buf[pos..pos + n as usize], |member| members.saw(idx, member));
            }
            if let Some(sessions) = sink.sessions.as_mut() {
                sessions.list_piece(idx, &buf[pos..pos + n as usize]);
            }
            conn.skip -= n;
            pos += n as usize;
            if conn.skip > 0 {
                break;
            }
        }
        // Fast path for what nearly every read holds: whole, final, unmasked, unextended text frames between
        // messages. The bench trusts the server's UTF-8 here (the conformance tests check the daemon's) and
        // reads the stamp from the bytes; everything else goes through the full message decoder.
        if !conn.decoder.is_mid_message() {
            if let Ok(Some(h)) = FrameHeader::decode(&buf[pos..]) {
                let end = h.header_len as u64 + h.payload_len;
                let plain_text = h.fin && h.rsv == 0 && h.mask.is_none() && h.op() == Some(OpCode::Text);
                if plain_text && end <= (buf.len() - pos) as u64 {
                    let end = pos + end as usize;
                    sink.on_text(idx, &mut conn.phase, &mut conn.scan, &buf[pos + h.header_len..end], now);
                    pos = end;
                    continue;
                }
                // A user list cut by the read: its start says what it is; the rest is passed over as it comes
                // instead of being assembled (and validated) only to be dropped.
                let start = &buf[pos + h.header_len..];
                if plain_text && sink.proto == Proto::Chat && start.starts_with(content::USER_LIST_PREFIX) {
                    sink.on_text(idx, &mut conn.phase, &mut conn.scan, start, now);
                    conn.skip = h.payload_len - start.len() as u64;
                    pos = buf.len();
                    continue;
                }
            }
        }
        let decoded = conn.decoder.decode(&mut buf[pos..]).map_err(ConnFailure::Protocol)?;
        if decoded.consumed == 0 && decoded.message.is_none() {
            break;
        }
        pos += decoded.consumed;
        match decoded.message {
            None => {}
            Some(Message::Text(text)) => {
                let text = text.as_bytes();
                sink.on_text(idx, &mut conn.phase, &mut conn.scan, text, now)
            }
            Some(Message::Binary(_)) | Some(Message::Pong(_)) => sink.counters.other_messages += 1,
            Some(Message::Ping(payload)) => {
                write_masked_frame(&mut conn.out, OpCode::Pong, payload, (now as u32).to_le_bytes());
            }
            Some(Message::Close(code)) => {
                let code = code.map(|(c, _)| c);
                write_masked_frame(&mut conn.out, OpCode::Close, &code.unwrap_or(1000).to_be_bytes(), [1, 2, 3, 4]);
                write_now(conn);
                return Err(ConnFailure::ClosedByServer(code));
            }
        }
    }
    conn.pending.extend_from_slice(&buf[pos..]);
    Ok(())
}

impl Sink {
    pub(super) fn new(proto: Proto) -> Sink {
        Sink {
            proto,
            counters: Counters::default(),
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid"),
            audit: Audit::new(0, 0),
            measuring: false,
            record_from: u64::MAX,
            ready: 0,
            members: None,
            sessions: None,
        }
    }

    #[inline]
    fn on_text(&mut self, receiver: usize, phase: &mut Phase, scan: &mut NameScan, text: &[u8], now: u64) {
        match self.proto {
            Proto::Raw => self.on_content(receiver, text, now),
            Proto::Chat => match content::chat_kind(text) {
                ChatKind::Say => {
                    match content::say_stamp(text) {
                        Some(stamp) => self.on_stamp(receiver, stamp, now, *phase == Phase::Resuming),
                        None => self.counters.other_messages += 1,
                    }
                    if let Some(sessions) = self.sessions.as_mut() {
                        sessions.said(receiver, text);
                    }
                }
                ChatKind::UserList => {
                    if *phase == Phase::LoggingIn {
                        *phase = Phase::Ready;
                        self.ready += 1;
                    }
                    if let Some(sessions) = self.sessions.as_mut() {
                        sessions.list_start(receiver, text);
                    }
                    // All of a list or its start (the rest then comes through the skip, same scan).
                    if let Some(members) = self.members.as_mut() {
                        scan.reset();
                        scan.feed(text, |member| members.saw(receiver, member));
                    }
                }
                ChatKind::Login => {
                    self.counters.logins_seen += 1;
                    if let Some(members) = self.members.as_mut() {
                        if let Some(member) = content::login_client(text) {
                            members.saw(receiver, member);
                        }
                    }
                }
                ChatKind::Logout => self.counters.logouts_seen += 1,
                ChatKind::Resumed => match (self.sessions.as_mut(), resume::resumed(text)) {
                    (Some(sessions), Some(r)) if *phase == Phase::Resuming => {
                        sessions.resumed(receiver, now, r);
                        *phase = Phase::Ready;
                        self.ready += 1;
                    }
                    _ => self.counters.other_messages += 1,
                },
                ChatKind::Error => {
                    if let Some(sessions) = self.sessions.as_mut().filter(|_| *phase == Phase::Resuming) {
                        sessions.counters.refused += 1;
                    }
                    self.counters.server_errors += 1;
                    if self.counters.first_server_error.is_none() {
                        self.counters.first_server_error = Some(String::from_utf8_lossy(text).into_owned());
                    }
                }
                ChatKind::Bench => match content::bench_stamp(text) {
                    Some(stamp) => self.on_stamp(receiver, stamp, now, false),
                    None => self.counters.other_messages += 1,
                },
                ChatKind::Other => self.counters.other_messages += 1,
            },
        }
    }

    #[inline]
    fn on_content(&mut self, receiver: usize, content: &[u8], now: u64) {
        match content::parse(content) {
            Some(stamp) => self.on_stamp(receiver, stamp, now, false),
            None => self.counters.other_messages += 1,
        }
    }

    /// One bench message; `replayed` when it comes in the answer to a resume: audited, not timed (it waited
    /// for its receiver to come back).
    #[inline]
    fn on_stamp(&mut self, receiver: usize, stamp: Stamp, now: u64, replayed: bool) {
        self.counters.deliveries += 1;
        if self.measuring {
            self.counters.window_deliveries += 1;
        }
        let verdict = self.audit.record(receiver, stamp.sender as usize, stamp.seq);
        if replayed {
            if let Some(sessions) = self.sessions.as_mut() {
                sessions.counters.replayed += 1;
                if verdict == Verdict::Duplicate {
                    sessions.counters.replay_duplicates += 1;
                }
            }
        } else if stamp.nanos >= self.record_from {
            self.hist.saturating_record(now.saturating_sub(stamp.nanos).max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::write_frame;
    use crate::ws::handshake::switching_protocols;
    use crate::ws::message::{MessageDecoder, Role, WsError};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A connection in the handshaking phase, without a socket: `process` is driven with byte slices.
    fn conn(proto: Proto) -> Conn {
        Conn {
            stream: None,
            phase: Phase::Handshaking,
            key: Some(KEY.into()),
            login: (proto == Proto::Chat).then(|| content::login_request("b0", None, false, None).into_boxed_slice()),
            resuming: false,
            held: false,
            target: 0,
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            dirty: false,
            decoder: MessageDecoder::new(Role::Client, 1 << 16),
            skip: 0,
            scan: NameScan::default(),
            tls: None,
        }
    }

    fn sink(proto: Proto, senders: usize) -> Sink {
        let mut sink = Sink::new(proto);
        sink.audit = Audit::new(1, senders);
        sink.record_from = 0;
        sink
    }

    fn stamped(sender: u32, seq: u32, nanos: u64) -> Vec<u8> {
        let mut c = Vec::new();
        content::encode(&mut c, Stamp { sender, seq, nanos }, 64);
        c
    }

    fn relay(content: &[u8]) -> Vec<u8> {
        let mut json = br#"{"type":"say","from_uid":1,"to_uid":"all","content":""#.to_vec();
        json.extend_from_slice(content);
        json.extend_from_slice(br#"","time":"2024-01-01 00:00:00"}"#);
        json
    }

    fn feed(c: &mut Conn, s: &mut Sink, bytes: &[u8], now: u64) -> Result<(), ConnFailure> {
        let mut rng = Rng::new(7);
        let mut buf = std::mem::take(&mut c.pending);
        buf.extend_from_slice(bytes);
        process(0, c, &mut buf, s, now, &mut rng)
    }

    /// Unmasks the client frames in `out` and returns their opcodes and payloads.
    fn sent_frames(out: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        let mut dec = MessageDecoder::new(Role::Server, 1 << 16);
        let mut buf = out.to_vec();
        let mut pos = 0;
        let mut frames = Vec::new();
        loop {
            let d = dec.decode(&mut buf[pos..]).unwrap();
            if d.consumed == 0 && d.message.is_none() {
                return frames;
            }
            pos += d.consumed;
            match d.message {
                Some(Message::Text(t)) => frames.push((OpCode::Text, t.as_bytes().to_vec())),
                Some(Message::Pong(p)) => frames.push((OpCode::Pong, p.to_vec())),
                Some(Message::Close(c)) => {
                    frames.push((OpCode::Close, c.map(|(code, _)| code.to_be_bytes().to_vec()).unwrap_or_default()))
                }
                _ => {}
            }
        }
    }

    #[test]
    fn raw_handshake_and_frames_in_one_read() {
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 2));
        let mut bytes = switching_protocols(KEY);
        write_frame(&mut bytes, OpCode::Text, &stamped(0, 0, 100));
        write_frame(&mut bytes, OpCode::Text, &stamped(1, 0, 100));
        write_frame(&mut bytes, OpCode::Text, b"not a bench message");
        feed(&mut c, &mut s, &bytes, 1100).unwrap();
        assert_eq!((c.phase, s.ready), (Phase::Ready, 1));
        assert_eq!(s.counters.deliveries, 2);
        assert_eq!(s.counters.other_messages, 1);
        assert_eq!(s.audit.totals().unique, 2);
        assert_eq!(s.hist.len(), 2);
        assert!(s.hist.equivalent(s.hist.max(), 1000), "latency 1100 - 100 ns");
        assert!(c.pending.is_empty() && c.key.is_none());
    }

    #[test]
    fn handshake_head_and_frames_cut_anywhere() {
        let mut bytes = switching_protocols(KEY);
        for seq in 0..5 {
            write_frame(&mut bytes, OpCode::Text, &stamped(0, seq, 1));
        }
        for cut in 1..bytes.len() {
            let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
            feed(&mut c, &mut s, &bytes[..cut], 5).unwrap();
            feed(&mut c, &mut s, &bytes[cut..], 5).unwrap();
            assert_eq!((c.phase, s.counters.deliveries, s.audit.totals().unique), (Phase::Ready, 5, 5), "cut {cut}");
            assert!(c.pending.is_empty(), "cut {cut}");
        }
    }

    #[test]
    fn chat_login_then_user_list_then_relays() {
        let (mut c, mut s) = (conn(Proto::Chat), sink(Proto::Chat, 1));
        feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
        assert_eq!(c.phase, Phase::LoggingIn);
        assert_eq!(sent_frames(&c.out), vec![(OpCode::Text, br#"{"type":"login","name":"b0"}"#.to_vec())]);
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"user_list","user_list":[{"uid":1,"name":"b0"}]}"#);
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"login","uid":1,"name":"b0","time":"t"}"#);
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 0, 10)));
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 1, 10)));
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 1, 10)));
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"error","code":"bad_json","message":"m"}"#);
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"logout","uid":2,"name":"x","time":"t"}"#);
        feed(&mut c, &mut s, &bytes, 20).unwrap();
        assert_eq!((c.phase, s.ready), (Phase::Ready, 1));
        assert_eq!(s.counters.logins_seen, 1);
        assert_eq!(s.counters.logouts_seen, 1);
        assert_eq!(s.counters.deliveries, 3);
        assert_eq!(s.audit.totals().duplicated, 1);
        assert_eq!(s.counters.server_errors, 1);
        assert!(s.counters.first_server_error.as_deref().unwrap().contains("bad_json"));
    }

    /// `relay` with a mid last, as a session's connection gets it.
    fn relay_mid(content: &[u8], mid: u64) -> Vec<u8> {
        let mut json = relay(content);
        json.pop();
        json.extend_from_slice(format!(r#","mid":"{mid}"}}"#).as_bytes());
        json
    }

    #[test]
    fn a_resume_replays_then_says_resumed() {
        let (mut c, mut s) = (conn(Proto::Chat), sink(Proto::Chat, 1));
        s.sessions = Some(Sessions::new());
        c.login = Some(br#"{"type":"resume","session":"ab","last_mid":"7"}"#.to_vec().into_boxed_slice());
        c.resuming = true;
        feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
        assert_eq!(c.phase, Phase::Resuming);
        assert_eq!(
            sent_frames(&c.out),
            vec![(OpCode::Text, br#"{"type":"resume","session":"ab","last_mid":"7"}"#.to_vec())]
        );
        // Says 0 and 1 came before the cut; the replay has 1 again (a duplicate) and 2.
        s.audit.record(0, 0, 0);
        s.audit.record(0, 0, 1);
        s.sessions.as_mut().unwrap().away(0, 100);
        let mut bytes = Vec::new();
        write_frame(
            &mut bytes,
            OpCode::Text,
            br#"{"type":"user_list","user_list":[{"uid":1,"name":"b0"}],"session":"ab"}"#,
        );
        write_frame(&mut bytes, OpCode::Text, &relay_mid(&stamped(0, 1, 10), 8));
        write_frame(&mut bytes, OpCode::Text, &relay_mid(&stamped(0, 2, 10), 9));
        feed(&mut c, &mut s, &bytes, 1_000).unwrap();
        assert_eq!((c.phase, s.ready), (Phase::Resuming, 0), "the list is not the end of a resume");
        assert_eq!(s.hist.len(), 0, "replayed says are not timed");
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"resumed","uid":1,"recovered":true,"missed":2}"#);
        write_frame(&mut bytes, OpCode::Text, &relay_mid(&stamped(0, 3, 1_500), 10));
        feed(&mut c, &mut s, &bytes, 2_000).unwrap();
        assert_eq!((c.phase, s.ready), (Phase::Ready, 1));
        assert_eq!(s.hist.len(), 1, "live says are");
        let sessions = s.sessions.as_ref().unwrap();
        let r = sessions.counters;
        assert_eq!((r.resumes, r.missed, r.replayed, r.replay_duplicates, r.not_recovered), (1, 2, 2, 1, 0));
        assert_eq!(sessions.last_mid(0), b"10");
        assert!(sessions.has_session(0));
        assert_eq!(sessions.hist.len(), 1);
        assert_eq!(s.audit.totals().duplicated, 1);
    }

    #[test]
    fn texts_pushed_through_the_api_are_deliveries() {
        let (mut c, mut s) = (conn(Proto::Chat), sink(Proto::Chat, 2));
        feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"user_list","user_list":[]}"#);
        for seq in 0..3 {
            let mut data = Vec::new();
            content::bench_data(&mut data, &stamped(1, seq, 10));
            write_frame(&mut bytes, OpCode::Text, &data);
        }
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"bench","content":"not stamped"}"#);
        feed(&mut c, &mut s, &bytes, 510).unwrap();
        assert_eq!((s.counters.deliveries, s.counters.other_messages), (3, 1));
        assert_eq!((s.audit.totals().unique, s.audit.next(0, 1)), (3, 3));
        assert!(s.hist.equivalent(s.hist.max(), 500));
    }

    #[test]
    fn a_refused_resume_is_counted_and_the_connection_never_gets_ready() {
        let (mut c, mut s) = (conn(Proto::Chat), sink(Proto::Chat, 1));
        s.sessions = Some(Sessions::new());
        c.resuming = true;
        feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"error","code":"session_expired","message":"m"}"#);
        feed(&mut c, &mut s, &bytes, 0).unwrap();
        assert_eq!(c.phase, Phase::Resuming);
        let r = s.sessions.as_ref().unwrap().counters;
        assert_eq!((r.refused, r.resumes, s.counters.server_errors, s.ready), (1, 0, 1, 0));
    }

    #[test]
    fn a_big_user_list_is_passed_over_wherever_reads_cut_it() {
        let mut list = br#"{"type":"user_list","user_list":["#.to_vec();
        for uid in 1..=8000 {
            list.extend_from_slice(format!(r#"{{"uid":{uid},"name":"b{uid}"}},"#).as_bytes());
        }
        list.pop();
        list.extend_from_slice(b"]}");
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Text, &list);
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"login","uid":8000,"name":"b0","time":"t"}"#);
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 0, 10)));
        for cut in [1, 2, 5, 20, 40, 1000, 65536, bytes.len() - 100, bytes.len() - 1] {
            let (mut c, mut s) = (conn(Proto::Chat), sink(Proto::Chat, 1));
            // As the engine has it: a cut before the list's first bytes leaves it to the decoder.
            c.decoder = MessageDecoder::new(Role::Client, 1 << 20);
            feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
            for piece in [&bytes[..cut], &bytes[cut..]] {
                for chunk in piece.chunks(64 * 1024) {
                    feed(&mut c, &mut s, chunk, 20).unwrap();
                }
            }
            assert_eq!(
                (c.phase, s.ready, s.counters.logins_seen, s.counters.deliveries),
                (Phase::Ready, 1, 1, 1),
                "{cut}"
            );
            assert!(c.pending.is_empty() && c.skip == 0 && !c.decoder.is_mid_message(), "{cut}");
        }
    }

    #[test]
    fn ping_is_answered_and_close_ends_the_connection() {
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Ping, b"hb");
        feed(&mut c, &mut s, &bytes, 0).unwrap();
        assert_eq!(sent_frames(&c.out), vec![(OpCode::Pong, b"hb".to_vec())]);
        c.out.clear();
        let close = crate::ws::frame::frame(OpCode::Close, &crate::ws::frame::close_payload(1001, "bye"));
        assert_eq!(feed(&mut c, &mut s, &close, 0), Err(ConnFailure::ClosedByServer(Some(1001))));
        assert_eq!(sent_frames(&c.out), vec![(OpCode::Close, 1001u16.to_be_bytes().to_vec())]);
    }

    #[test]
    fn bad_servers_are_connection_failures() {
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let wrong = switching_protocols("AAAAAAAAAAAAAAAAAAAAAA==");
        assert_eq!(feed(&mut c, &mut s, &wrong, 0), Err(ConnFailure::Handshake(ClientHandshakeError::BadAccept)));
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let mut bytes = switching_protocols(KEY);
        write_masked_frame(&mut bytes, OpCode::Text, b"hi", [1, 2, 3, 4]);
        assert_eq!(feed(&mut c, &mut s, &bytes, 0), Err(ConnFailure::Protocol(WsError::MaskedFrame)));
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let endless = vec![b'x'; MAX_HEAD_BYTES + 1];
        assert!(matches!(feed(&mut c, &mut s, &endless, 0), Err(ConnFailure::Handshake(_))));
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let mut bytes = switching_protocols(KEY);
        bytes.extend_from_slice(&[0x81, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(feed(&mut c, &mut s, &bytes, 0), Err(ConnFailure::Protocol(WsError::LengthOverflow)));
    }
}
