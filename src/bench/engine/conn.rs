//! One client connection's state, the engine's random generator and closing a connection.

use std::io::Write;

use mio::net::TcpStream;
use mio::Poll;

use super::read::Sink;
use super::tls::TlsLayer;
use super::types::{ConnFailure, Phase};
use crate::bench::content::NameScan;
use crate::ws::message::MessageDecoder;

/// One client connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: Option<TcpStream>,
    pub(super) phase: Phase,
    /// The handshake key, while handshaking.
    pub(super) key: Option<Box<str>>,
    /// The request to send after the handshake (chat protocol): a login, or a resume when `resuming`.
    pub(super) login: Option<Box<[u8]>>,
    /// The request after the handshake resumes a session: the answer ends with `resumed`, not the user list.
    pub(super) resuming: bool,
    /// Sends nothing more (a sender waiting for its says to come back before it is cut).
    pub(super) held: bool,
    /// Which target it connects to.
    pub(super) target: usize,
    /// Unconsumed input: a handshake head or a frame header cut by a read boundary.
    pub(super) pending: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) dirty: bool,
    pub(super) decoder: MessageDecoder,
    /// Payload bytes of a user list still to come, passed over unread: the bench needs only its start, and
    /// filling a big room sends every newcomer a list of everyone (10 000 users: 300 KB).
    pub(super) skip: u64,
    /// Where the scan for bench clients named in a user list passed over in pieces stands.
    pub(super) scan: NameScan,
    /// wss://: the TLS layer between the socket and `out` / the read path (boxed: a ws:// connection pays
    /// one pointer for it).
    pub(super) tls: Option<Box<TlsLayer>>,
}

impl Conn {
    /// After a flush: forgets the output written, all of it or (when much was written) its written part.
    #[inline]
    pub(super) fn settle_out(&mut self) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > (1 << 16) && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }
}

/// Best effort, right before closing: writes what is queued now (a close frame), through TLS when there is any.
pub(super) fn write_now(conn: &mut Conn) {
    let Some(stream) = conn.stream.as_mut() else { return };
    match conn.tls.as_mut() {
        None => {
            let _ = stream.write(&conn.out[conn.out_pos..]);
        }
        Some(tls) => {
            let _ = tls.flush(stream, &conn.out, &mut conn.out_pos);
        }
    }
}

/// xorshift64*: the one generator of the engine, for masking keys and handshake nonces, which need variety,
/// not secrecy.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Closes connection `conn` (once): deregisters and drops its socket, counts it, and keeps `why` when it is the
/// first failure.
pub(super) fn close_conn(poll: &Poll, conn: &mut Conn, sink: &mut Sink, why: Option<ConnFailure>) {
    if conn.phase == Phase::Closed {
        return;
    }
    if conn.phase == Phase::Ready {
        sink.ready -= 1;
    }
    conn.phase = Phase::Closed;
    if let Some(mut stream) = conn.stream.take() {
        let _ = poll.registry().deregister(&mut stream);
    }
    conn.out = Vec::new();
    conn.pending = Vec::new();
    conn.tls = None;
    sink.counters.closed += 1;
    if sink.counters.first_failure.is_none() {
        sink.counters.first_failure = why;
    }
}
