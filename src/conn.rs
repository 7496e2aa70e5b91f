//! One client connection as the reactor keeps it: its socket, what it speaks, its phase, unparsed input,
//! the message decoder, queued output and its current deadline.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use crate::outbox::Outbox;
use crate::ws::message::{MessageDecoder, Role};

/// Which listener the connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The WebSocket port.
    WebSocket,
    /// The web port (page, health, metrics).
    Http,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a complete request head.
    Handshake,
    /// WebSocket open: frames flow.
    Open,
    /// A last answer (close frame or HTTP response) is queued; after it is written the write side is shut
    /// and the connection lingers until the peer closes or the linger deadline passes.
    Closing,
}

/// A connection in the reactor's slab.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// The peer's address, for logs.
    pub peer: SocketAddr,
    /// WebSocket or HTTP.
    pub kind: Kind,
    /// Life-cycle phase.
    pub phase: Phase,
    /// Unique over the process, so timers of a reused slab key are recognised as stale.
    pub serial: u64,
    /// Bytes received but not yet used: a partial request head, or the tail of a partial frame.
    pub inbuf: Vec<u8>,
    /// Frame and message state.
    pub decoder: MessageDecoder,
    /// Queued output.
    pub outbox: Outbox,
    /// When the peer last sent anything.
    pub last_rx: Instant,
    /// The tick of the deadline that is current; wheel entries with another tick are stale.
    pub timer_tick: u64,
    /// Already in the reactor's list of connections to flush this turn.
    pub dirty: bool,
    /// The write side has been shut down (FIN sent).
    pub write_shut: bool,
    /// Counted in the open-connections gauge.
    pub counted_open: bool,
    /// The peer's FIN has been read: once the queued output is written, the connection is dropped.
    pub peer_eof: bool,
    /// A web request still unanswered, counted in its address's share of unfinished requests.
    pub web_pending: bool,
    /// Message rate allowance (token bucket), used when a rate limit is set.
    pub rate: RateBucket,
}

/// A token bucket: `per_sec` tokens a second, holding at most one second's worth.
#[derive(Debug, Clone, Copy)]
pub struct RateBucket {
    tokens: f32,
    stamp: Instant,
}

impl RateBucket {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> RateBucket {
        RateBucket { tokens: f32::MAX, stamp: now }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, per_sec: u32, now: Instant) -> bool {
        let cap = per_sec.max(1) as f32;
        let elapsed = now.saturating_duration_since(self.stamp).as_secs_f32();
        self.stamp = now;
        self.tokens = (self.tokens.min(cap) + elapsed * per_sec as f32).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Conn {
    /// A freshly accepted connection.
    pub fn new(stream: TcpStream, peer: SocketAddr, kind: Kind, serial: u64, now: Instant, max_message: usize) -> Conn {
        Conn {
            stream,
            peer,
            kind,
            phase: Phase::Handshake,
            serial,
            inbuf: Vec::new(),
            decoder: MessageDecoder::new(Role::Server, max_message),
            outbox: Outbox::default(),
            last_rx: now,
            timer_tick: 0,
            dirty: false,
            write_shut: false,
            counted_open: false,
            peer_eof: false,
            web_pending: false,
            rate: RateBucket::new(now),
        }
    }

    /// Gives back buffers an idle connection does not need.
    pub fn release_idle_buffers(&mut self) {
        if self.inbuf.is_empty() {
            self.inbuf = Vec::new();
        }
        self.outbox.release_if_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_a_second_worth_then_refills() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(t0);
        assert_eq!((0..15).filter(|_| b.try_take(10, t0)).count(), 10);
        assert!(!b.try_take(10, t0 + Duration::from_millis(50)));
        assert!(b.try_take(10, t0 + Duration::from_millis(200)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| b.try_take(10, later)).count(), 10);
    }
}

#[cfg(test)]
mod size {
    #[test]
    fn connection_state_stays_small() {
        // Idle connections must stay well under 1 KiB of process memory, slab slot included.
        let size = std::mem::size_of::<super::Conn>();
        println!("Conn is {size} bytes");
        assert!(size <= 320, "Conn grew to {size} bytes");
    }
}
