//! Sockets per client address, one tally per port: unfinished ones (a handshake or a web request not yet
//! answered, or an answer still being written) and open WebSockets. What one connection counts as is
//! recorded in its [`Ticket`](super::admission::Ticket).
//!
//! An address is counted by its [`address_key`]: an IPv4 address alone, an IPv6 address by its /64 (one
//! host's interface in practice: a host picks any address of its /64 at will).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// How an address is counted: an IPv6 address by its /64, an IPv4-mapped IPv6 address as the IPv4 one.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What a connection counts as against its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// A handshake or web request not finished, or a web answer still being written.
    Pending,
    /// An open WebSocket.
    Open,
}

/// One address's sockets on a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Unfinished handshakes or requests (and web answers being written).
    pub pending: u32,
    /// Open WebSockets.
    pub open: u32,
}

impl Tally {
    /// Everything the address holds.
    pub fn total(&self) -> u32 {
        self.pending + self.open
    }
}

/// The tallies of every address with a socket on one port.
#[derive(Debug, Default)]
pub struct AddressCounts {
    by_key: HashMap<IpAddr, Tally>,
}

impl AddressCounts {
    /// What `key` holds now.
    pub fn tally(&self, key: IpAddr) -> Tally {
        self.by_key.get(&key).copied().unwrap_or_default()
    }

    /// Counts one more socket.
    pub fn add(&mut self, key: IpAddr, share: Share) {
        let t = self.by_key.entry(key).or_default();
        match share {
            Share::Pending => t.pending += 1,
            Share::Open => t.open += 1,
        }
    }

    /// Gives back one socket counted as `share`.
    pub fn remove(&mut self, key: IpAddr, share: Share) {
        let Some(t) = self.by_key.get_mut(&key) else { return };
        match share {
            Share::Pending => t.pending = t.pending.saturating_sub(1),
            Share::Open => t.open = t.open.saturating_sub(1),
        }
        if t.total() == 0 {
            self.by_key.remove(&key);
        }
    }

    /// Addresses with a socket counted.
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address() {
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), address_key(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(address_key(ip("2001:db8:1:2::1")), address_key(ip("2001:db8:1:3::1")));
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(address_key(ip("192.0.2.7")), address_key(ip("192.0.2.8")));
    }

    #[test]
    fn counts_come_and_go_and_empty_addresses_are_forgotten() {
        let mut c = AddressCounts::default();
        let a = ip("192.0.2.1");
        c.add(a, Share::Pending);
        c.add(a, Share::Pending);
        c.add(a, Share::Open);
        assert_eq!(c.tally(a), Tally { pending: 2, open: 1 });
        assert_eq!(c.tally(a).total(), 3);
        c.remove(a, Share::Pending);
        c.remove(a, Share::Open);
        assert_eq!(c.tally(a), Tally { pending: 1, open: 0 });
        c.remove(a, Share::Open); // nothing open to give back: the pending one stays
        assert_eq!(c.tally(a), Tally { pending: 1, open: 0 });
        c.remove(a, Share::Pending);
        assert_eq!(c.addresses(), 0);
        c.remove(a, Share::Pending);
        assert_eq!(c.tally(a), Tally::default());
    }
}
