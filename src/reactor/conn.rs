//! One client connection as the reactor keeps it in its slab: the transport, the peer, which port it came
//! from, the timer and flush bookkeeping, and its protocol [`Session`].

use std::net::{IpAddr, SocketAddr};

use super::admission::Ticket;
use crate::session::Session;
use crate::transport::Transport;

/// Which listener the connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The WebSocket port.
    WebSocket,
    /// The web port (page, health, metrics).
    Http,
    /// The server API's port (`--api`).
    Api,
}

/// A connection in the reactor's slab.
#[derive(Debug)]
pub struct Conn {
    /// The byte stream.
    pub transport: Transport,
    /// The peer's address, for logs and per-address limits.
    pub peer: SocketAddr,
    /// WebSocket or web port.
    pub kind: Kind,
    /// Unique over the process, so timers of a reused slab key are recognised as stale.
    pub serial: u64,
    /// The tick of the deadline that is current; wheel entries with another tick are stale.
    pub timer_tick: u64,
    /// Already in the reactor's list of connections to flush this turn.
    pub dirty: bool,
    /// What it has queued must not wait for the coalescing window (a control frame, a close, an answer).
    pub urgent: bool,
    /// Its output pace under `--coalesce-us`: last write, stream rate, whether it is held.
    pub pace: super::coalesce::Pace,
    /// Protocol state: phase, input, decoder, output.
    pub session: Session,
    /// Bytes the peer had taken at the last linger deadline of a last answer still being written.
    pub linger_taken: u64,
    /// The address the TCP connection came from (a proxy's, when one is in front); `peer` becomes the
    /// client's once a PROXY header or a trusted proxy's forwarding header says who it is.
    pub socket_ip: IpAddr,
    /// The PROXY header was read (with `--proxy-protocol`).
    pub proxied: bool,
    /// What the connection counts against: its port's budget, its client's address, the open gauge.
    pub ticket: Ticket,
    /// An API connection's requests as they come in (`None` on the other ports).
    pub api: Option<Box<crate::api::request::RequestReader>>,
}

impl Conn {
    /// A freshly accepted connection.
    pub fn new(transport: Transport, peer: SocketAddr, ticket: Ticket, serial: u64, session: Session) -> Conn {
        Conn {
            transport,
            peer,
            kind: ticket.port(),
            serial,
            timer_tick: 0,
            dirty: false,
            urgent: false,
            pace: super::coalesce::Pace::default(),
            session,
            linger_taken: 0,
            socket_ip: peer.ip(),
            proxied: false,
            ticket,
            api: None,
        }
    }
}

#[cfg(test)]
mod size {
    #[test]
    fn connection_state_stays_small() {
        // Idle connections must stay well under 1 KiB of process memory, slab slot included.
        let size = std::mem::size_of::<super::Conn>();
        println!("Conn is {size} bytes");
        // The bound is what the fields need: growing it is a decision taken here, not a side effect.
        // 368 → 376: an API connection's request reader, one pointer (`None` on the chat's ports).
        // 376 → 384: its pace under `--coalesce-us` (8 bytes).
        assert!(size <= 384, "Conn grew to {size} bytes");
    }
}
