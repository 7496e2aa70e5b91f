//! What a connection counts against, held as one [`Ticket`] from accept until the connection is dropped: a
//! socket of its port's budget, its client address's share (pending, then open, once the client is known)
//! and, while it is an open WebSocket, the open-connections gauge. [`Admission`] keeps the counts; a
//! ticket stops counting in one place ([`Admission::release`]), at the moment its port says.

use std::net::IpAddr;

use super::addresses::{AddressCounts, Share, Tally};
use super::Kind;

/// A moment in a connection's life that may end what it counts against its address and the gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The session began closing (its last answer queued, or the peer's end read): a WebSocket stops
    /// counting, its share of the address goes to newcomers while it lingers.
    Closing,
    /// The last answer is written and the write side shut: a web answer stops counting.
    Written,
}

/// What one connection holds: taken at accept, given back when the connection is dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    port: Kind,
    /// The client address's key, once known (a trusted proxy's connection counts when it names the client).
    key: Option<IpAddr>,
    /// Counted as pending or open; none once it stopped counting (its socket is still held).
    share: Option<Share>,
}

impl Ticket {
    /// The port the connection came in on.
    pub fn port(&self) -> Kind {
        self.port
    }

    /// Pending without a client address yet: a trusted proxy's connection that has not named its client.
    pub fn awaits_client(&self) -> bool {
        self.key.is_none() && self.share == Some(Share::Pending)
    }
}

/// One port's sockets and its addresses' shares.
#[derive(Debug, Default)]
struct Port {
    sockets: usize,
    addresses: AddressCounts,
}

/// The counts every ticket is held against.
#[derive(Debug, Default)]
pub struct Admission {
    ws: Port,
    web: Port,
    api: Port,
    /// Open WebSockets.
    open: u64,
}

impl Admission {
    fn port(&self, port: Kind) -> &Port {
        match port {
            Kind::WebSocket => &self.ws,
            Kind::Http => &self.web,
            Kind::Api => &self.api,
        }
    }

    fn port_mut(&mut self, port: Kind) -> &mut Port {
        match port {
            Kind::WebSocket => &mut self.ws,
            Kind::Http => &mut self.web,
            Kind::Api => &mut self.api,
        }
    }

    /// Sockets held on `port`.
    pub fn sockets(&self, port: Kind) -> usize {
        self.port(port).sockets
    }

    /// What the address `key` holds on `port`.
    pub fn tally(&self, port: Kind, key: IpAddr) -> Tally {
        self.port(port).addresses.tally(key)
    }

    /// Open WebSockets.
    pub fn open(&self) -> u64 {
        self.open
    }

    /// A socket accepted on `port`, pending against the client address `key` when it is known.
    pub fn admit(&mut self, port: Kind, key: Option<IpAddr>) -> Ticket {
        let p = self.port_mut(port);
        p.sockets += 1;
        if let Some(key) = key {
            p.addresses.add(key, Share::Pending);
        }
        Ticket { port, key, share: Some(Share::Pending) }
    }

    /// The client of a ticket that [awaits](Ticket::awaits_client) one is known: it counts as pending
    /// against `key`. Any other ticket is left as it is.
    pub fn count_client(&mut self, ticket: &mut Ticket, key: IpAddr) {
        if ticket.awaits_client() {
            self.port_mut(ticket.port).addresses.add(key, Share::Pending);
            ticket.key = Some(key);
        }
    }

    /// The handshake succeeded: a pending ticket becomes an open WebSocket.
    pub fn open_ticket(&mut self, ticket: &mut Ticket) {
        if ticket.share != Some(Share::Pending) {
            return;
        }
        if let Some(key) = ticket.key {
            let addresses = &mut self.port_mut(ticket.port).addresses;
            addresses.remove(key, Share::Pending);
            addresses.add(key, Share::Open);
        }
        ticket.share = Some(Share::Open);
        self.open += 1;
    }

    /// The connection passed `moment`: a WebSocket stops counting when it begins closing, a web answer
    /// when it is written.
    pub fn passed(&mut self, ticket: &mut Ticket, moment: Moment) {
        if matches!((ticket.port, moment), (Kind::WebSocket, Moment::Closing) | (Kind::Http, Moment::Written)) {
            self.release(ticket);
        }
    }

    /// The connection is dropped: what it still counts, and its socket, are given back.
    pub fn close(&mut self, mut ticket: Ticket) {
        self.release(&mut ticket);
        let p = self.port_mut(ticket.port);
        p.sockets = p.sockets.saturating_sub(1);
    }

    /// The ticket stops counting against its address and the gauge; a second call changes nothing.
    fn release(&mut self, ticket: &mut Ticket) {
        let Some(share) = ticket.share.take() else { return };
        if share == Share::Open {
            self.open -= 1;
        }
        if let Some(key) = ticket.key {
            self.port_mut(ticket.port).addresses.remove(key, share);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn tally(pending: u32, open: u32) -> Tally {
        Tally { pending, open }
    }

    #[test]
    fn a_websocket_counts_pending_then_open_until_it_begins_closing() {
        let mut a = Admission::default();
        let mut t = a.admit(Kind::WebSocket, Some(A));
        assert_eq!((a.sockets(Kind::WebSocket), a.tally(Kind::WebSocket, A)), (1, tally(1, 0)));
        a.open_ticket(&mut t);
        a.open_ticket(&mut t);
        assert_eq!((a.tally(Kind::WebSocket, A), a.open()), (tally(0, 1), 1));
        a.passed(&mut t, Moment::Written);
        assert_eq!(a.open(), 1, "only a web answer ends when written");
        a.passed(&mut t, Moment::Closing);
        a.passed(&mut t, Moment::Closing);
        assert_eq!((a.tally(Kind::WebSocket, A), a.open()), (tally(0, 0), 0));
        assert_eq!(a.sockets(Kind::WebSocket), 1, "a lingering socket still holds its place");
        a.close(t);
        assert_eq!(a.sockets(Kind::WebSocket), 0);
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn a_web_answer_counts_until_written_and_a_drop_gives_back_everything() {
        let mut a = Admission::default();
        let mut t = a.admit(Kind::Http, Some(A));
        let u = a.admit(Kind::Http, Some(A));
        a.passed(&mut t, Moment::Closing);
        assert_eq!(a.tally(Kind::Http, A), tally(2, 0), "a web answer counts while it is written");
        a.passed(&mut t, Moment::Written);
        assert_eq!((a.tally(Kind::Http, A), a.sockets(Kind::Http)), (tally(1, 0), 2));
        a.close(t);
        a.close(u);
        assert_eq!((a.tally(Kind::Http, A), a.sockets(Kind::Http)), (tally(0, 0), 0));
        assert_eq!(a.tally(Kind::WebSocket, A), tally(0, 0), "each port keeps its own counts");
    }

    #[test]
    fn a_trusted_proxys_connection_counts_once_it_names_its_client() {
        let mut a = Admission::default();
        let mut t = a.admit(Kind::WebSocket, None);
        assert!(t.awaits_client());
        a.count_client(&mut t, A);
        a.count_client(&mut t, A);
        assert!(!t.awaits_client());
        assert_eq!(a.tally(Kind::WebSocket, A), tally(1, 0));
        let mut silent = a.admit(Kind::WebSocket, None);
        a.open_ticket(&mut silent);
        assert_eq!((a.open(), silent.port()), (1, Kind::WebSocket), "open without an address");
        a.close(silent);
        a.close(t);
        assert_eq!((a.tally(Kind::WebSocket, A), a.open(), a.sockets(Kind::WebSocket)), (tally(0, 0), 0, 0));
    }
}
