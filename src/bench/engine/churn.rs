//! Cutting and resuming (chat, churn): a client's connection cut without a close frame — a reset or a FIN —
//! and a new one for the same client, to the next target, that resumes its session after the last say it
//! received. The client keeps its index, so the audit follows it across its connections. A connection the
//! server ends — its node killed or shut down, a reset, a refused reconnect — is treated the same way: the
//! client goes away and resumes at the next target. A sender dropped so has no way to know which of its last
//! says the server took before it went; its resume tells it (the says to the room it sent come back to it),
//! and it numbers its next say after the last one that came back.

use std::io::{self, Read};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;

use super::conn::Conn;
use super::types::{ConnFailure, Phase};
use super::{Engine, EngineError, ResumeCounters};
use crate::bench::resume::Cut;

/// How long a connection cut with a FIN is read for at most before it is dropped all the same.
const ZOMBIE_TIME: Duration = Duration::from_secs(5);

/// Most connections cut with a FIN kept at once; past it the oldest is dropped (a reset then).
const MAX_ZOMBIES: usize = 4096;

/// Reconnects in a row that may fail before a client the server dropped is given up (closed).
const MAX_RETRIES: u32 = 40;

/// A connection cut with a FIN: what the server still sends is read and dropped until it closes, so that
/// closing it does not turn the FIN into a reset (closing a socket with unread data sends one).
#[derive(Debug)]
pub(super) struct Zombie {
    stream: TcpStream,
    until: Instant,
}

impl Engine {
    /// Cuts client `idx`'s connection without a close frame, as `how` says. False (nothing done) unless it
    /// is ready and has a session to resume.
    pub fn cut(&mut self, idx: usize, how: Cut) -> bool {
        let now = self.now_nanos();
        let Some(sessions) = self.sink.sessions.as_mut() else { return false };
        let Some(conn) = self.conns.get_mut(idx) else { return false };
        if conn.phase != Phase::Ready || !sessions.has_session(idx) {
            return false;
        }
        let Some(mut stream) = conn.stream.take() else { return false };
        let _ = self.poll.registry().deregister(&mut stream);
        match how {
            Cut::Reset => {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                drop(stream);
                sessions.counters.cuts_reset += 1;
            }
            Cut::Fin => {
                let _ = stream.shutdown(Shutdown::Write);
                if self.zombies.len() >= MAX_ZOMBIES {
                    self.zombies.remove(0);
                }
                self.zombies.push(Zombie { stream, until: Instant::now() + ZOMBIE_TIME });
                sessions.counters.cuts_fin += 1;
            }
        }
        sessions.away(idx, now);
        park(conn);
        self.sink.ready -= 1;
        true
    }

    /// A connection the server ended (`why`) whose client has a session goes away as if cut, to be brought
    /// back by [`Engine::take_dropped`]'s caller. False (nothing done) for any other connection or end, or
    /// when the client's reconnects kept failing: then it is closed as usual.
    pub(super) fn drop_to_resume(&mut self, idx: usize, why: &ConnFailure) -> bool {
        let ended_by_server = matches!(
            why,
            ConnFailure::Eof
                | ConnFailure::Io(_)
                | ConnFailure::Connect(_)
                | ConnFailure::ClosedByServer(None | Some(1001 | 1006 | 1011 | 1012))
        );
        let now = self.now_nanos();
        let Some(sessions) = self.sink.sessions.as_mut() else { return false };
        let Some(conn) = self.conns.get_mut(idx) else { return false };
        let phase = conn.phase;
        let live = matches!(phase, Phase::Ready | Phase::Resuming | Phase::Away)
            || (conn.resuming && matches!(phase, Phase::Connecting | Phase::Handshaking));
        if !ended_by_server || !live || !sessions.has_session(idx) || !sessions.retry(idx, MAX_RETRIES) {
            return false;
        }
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        if phase == Phase::Ready {
            sessions.away(idx, now);
            sessions.counters.dropped += 1;
            self.sink.ready -= 1;
        } else {
            sessions.counters.retried += 1;
        }
        park(conn);
        if !self.dropped.contains(&idx) {
            self.dropped.push(idx);
        }
        if !self.rewinds.contains(&idx) {
            self.rewinds.push(idx);
        }
        true
    }

    /// The clients the server dropped since the last call, away now.
    pub fn take_dropped(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.dropped)
    }

    /// Senders dropped by the server and resumed since: each numbers its next say after the last of its own
    /// that came back to it (the others never reached the server, or went with its node).
    pub(super) fn settle_rewinds(&mut self) {
        let mut i = 0;
        while i < self.rewinds.len() {
            let idx = self.rewinds[i];
            if self.conns.get(idx).is_some_and(|c| c.phase == Phase::Ready) {
                let back = self.sink.audit.next(idx, idx);
                if let Some(seq) = self.seq.get_mut(idx) {
                    *seq = (*seq).min(back);
                }
                self.rewinds.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Opens a new connection for client `idx`, away, to the target after its last one; it resumes the
    /// client's session after the last say received. False when it could not start (counted as a failure).
    pub fn reconnect(&mut self, idx: usize) -> bool {
        let now = self.now_nanos();
        let Some(conn) = self.conns.get_mut(idx).filter(|c| c.phase == Phase::Away) else { return false };
        let target = (conn.target + 1) % self.config.targets.len().max(1);
        // A connect that fails at once is retried at the target after this one.
        conn.target = target;
        let Some(sessions) = self.sink.sessions.as_mut() else { return false };
        let Some(request) = sessions.request(idx) else { return false };
        // Timed from here: after a pause away, the pause is not the resume's.
        sessions.away(idx, now);
        match self.connect(idx, target, Some(request.into_boxed_slice()), true) {
            Ok(conn) => {
                self.conns[idx] = conn;
                self.try_request(idx);
                true
            }
            Err(e) => {
                let why = match e {
                    EngineError::Connect(e) => ConnFailure::Connect(e.to_string()),
                    other => ConnFailure::Io(other.to_string()),
                };
                self.close(idx, Some(why));
                false
            }
        }
    }

    /// Client `idx` sends nothing more until [`Engine::release`] or its cut.
    pub fn hold(&mut self, idx: usize) {
        if let Some(conn) = self.conns.get_mut(idx) {
            conn.held = true;
        }
    }

    /// Client `idx` may send again.
    pub fn release(&mut self, idx: usize) {
        if let Some(conn) = self.conns.get_mut(idx) {
            conn.held = false;
        }
    }

    /// Says sender `idx` sent that have not come back to it yet (a say to the room comes back to its sender
    /// too: then the server has it). Zero for a client that is no sender.
    pub fn in_flight(&self, idx: usize) -> u32 {
        let sent = self.seq.get(idx).copied().unwrap_or(0);
        sent.saturating_sub(self.sink.audit.next(idx, idx))
    }

    /// Where client `idx` is in its life.
    pub fn phase(&self, idx: usize) -> Option<Phase> {
        self.conns.get(idx).map(|c| c.phase)
    }

    /// What the resumes came to so far.
    pub fn resume_counters(&self) -> ResumeCounters {
        self.sink.sessions.as_ref().map(|s| s.counters).unwrap_or_default()
    }

    /// Resume latencies (nanoseconds, from going away to `resumed`), when the engine follows sessions.
    pub fn resume_histogram(&self) -> Option<&Histogram<u64>> {
        self.sink.sessions.as_ref().map(|s| &s.hist)
    }

    /// A random number from the engine's generator.
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Reads and drops what the connections cut with a FIN received; drops those the server closed or whose
    /// time is up.
    pub(super) fn drain_zombies(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.zombies.len() {
            let z = &mut self.zombies[i];
            let done = now >= z.until
                || loop {
                    match z.stream.read(&mut self.scratch) {
                        Ok(0) => break true,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break true,
                    }
                };
            if done {
                self.zombies.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Drops every connection cut with a FIN.
    pub(super) fn drop_zombies(&mut self) {
        self.zombies.clear();
    }
}

/// A connection whose client went away: no socket, nothing queued, nothing held.
fn park(conn: &mut Conn) {
    conn.phase = Phase::Away;
    conn.held = false;
    conn.out = Vec::new();
    conn.out_pos = 0;
    conn.pending = Vec::new();
    conn.tls = None;
}
