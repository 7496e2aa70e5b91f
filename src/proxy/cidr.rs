//! Address blocks (`10.0.0.0/8`, `fd00::/8`, a single address) and the set of trusted proxies made of them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A block of IPv4 or IPv6 addresses: a network address and a prefix length (`10.0.0.0/8`, `::1/128`).
///
/// Parsed strictly: the network address may not have bits set past the prefix (`10.0.0.1/8` is refused, a
/// typo in an allow-list should not widen it silently), the prefix is plain decimal without a sign or
/// leading zeros, and an address without a prefix is a single address (`/32` or `/128`). An IPv4 block also
/// holds the IPv4-mapped IPv6 forms of its addresses (`::ffff:10.1.2.3` is in `10.0.0.0/8`), and an IPv6
/// block under `::ffff:0:0/96` holds the plain IPv4 addresses it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

/// Why a CIDR block did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The text was empty.
    Empty,
    /// The part before `/` is no IPv4 or IPv6 address.
    BadAddress(String),
    /// The part after `/` is no plain decimal number (empty, a sign, a leading zero, not a digit).
    BadPrefix(String),
    /// The prefix is longer than the address (over 32 for IPv4, over 128 for IPv6).
    PrefixTooLong {
        /// The prefix given.
        prefix: u32,
        /// The longest prefix of the address family.
        max: u8,
    },
    /// The address has bits set past the prefix; the block's network address is given.
    HostBitsSet {
        /// The address as written.
        addr: IpAddr,
        /// The prefix as written.
        prefix: u8,
        /// What the block probably meant: the address with its host bits cleared.
        network: IpAddr,
    },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Empty => write!(f, "empty CIDR block"),
            CidrError::BadAddress(s) => write!(f, "{s:?} is not an IPv4 or IPv6 address"),
            CidrError::BadPrefix(s) => write!(f, "prefix {s:?} is not a decimal number without leading zeros"),
            CidrError::PrefixTooLong { prefix, max } => write!(f, "prefix /{prefix} is longer than /{max}"),
            CidrError::HostBitsSet { addr, prefix, network } => {
                write!(f, "{addr}/{prefix} has host bits set (did you mean {network}/{prefix}?)")
            }
        }
    }
}

impl std::error::Error for CidrError {}

/// The `bits` high bits set in a 32-bit mask.
fn mask32(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    }
}

/// The `bits` high bits set in a 128-bit mask.
fn mask128(bits: u8) -> u128 {
    if bits == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(bits))
    }
}

impl Cidr {
    /// The block of `net` with `prefix` bits, checked like [`FromStr`] does.
    pub fn new(net: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let max = if net.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::PrefixTooLong { prefix: u32::from(prefix), max });
        }
        let network = match net {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        if network != net {
            return Err(CidrError::HostBitsSet { addr: net, prefix, network });
        }
        Ok(Cidr { net, prefix })
    }

    /// The network address.
    #[cfg(test)]
    pub fn network(&self) -> IpAddr {
        self.net
    }

    /// The prefix length in bits.
    #[cfg(test)]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` is in the block; IPv4 and its IPv4-mapped IPv6 form count as the same address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.net, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => v4_in(net, self.prefix, a),
            (IpAddr::V4(net), IpAddr::V6(a)) => a.to_ipv4_mapped().is_some_and(|a| v4_in(net, self.prefix, a)),
            (IpAddr::V6(net), IpAddr::V6(a)) => v6_in(net, self.prefix, a),
            (IpAddr::V6(net), IpAddr::V4(a)) => v6_in(net, self.prefix, a.to_ipv6_mapped()),
        }
    }
}

fn v4_in(net: Ipv4Addr, prefix: u8, a: Ipv4Addr) -> bool {
    u32::from(a) & mask32(prefix) == u32::from(net)
}

fn v6_in(net: Ipv6Addr, prefix: u8, a: Ipv6Addr) -> bool {
    u128::from(a) & mask128(prefix) == u128::from(net)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        if s.is_empty() {
            return Err(CidrError::Empty);
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        let max: u8 = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let plain = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
                if !plain || p.len() > 3 {
                    // Four digits or more can only be too long; report them as such when they are digits.
                    if plain {
                        return Err(CidrError::PrefixTooLong { prefix: p.parse().unwrap_or(u32::MAX), max });
                    }
                    return Err(CidrError::BadPrefix(p.to_string()));
                }
                let n: u32 = p.parse().map_err(|_| CidrError::BadPrefix(p.to_string()))?;
                if n > u32::from(max) {
                    return Err(CidrError::PrefixTooLong { prefix: n, max });
                }
                n as u8
            }
        };
        Cidr::new(net, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The proxies whose word on a client's address is taken (`--trust-proxy CIDR`, repeatable); empty trusts none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

impl TrustedProxies {
    /// A set of the given blocks.
    pub fn new(blocks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies { blocks }
    }

    /// Parses each text as a [`Cidr`]; the first that fails is the error.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<TrustedProxies, CidrError> {
        texts.into_iter().map(str::parse).collect::<Result<Vec<_>, _>>().map(TrustedProxies::new)
    }

    /// Adds a block.
    #[cfg(test)]
    pub fn push(&mut self, block: Cidr) {
        self.blocks.push(block);
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The blocks, in the order given.
    #[cfg(test)]
    pub fn blocks(&self) -> &[Cidr] {
        &self.blocks
    }

    /// Whether `addr` is in one of the blocks (IPv4-mapped IPv6 addresses match IPv4 blocks).
    pub fn is_trusted(&self, addr: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(addr))
    }
}

impl FromIterator<Cidr> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = Cidr>>(iter: I) -> TrustedProxies {
        TrustedProxies::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_blocks_and_single_addresses() {
        assert_eq!(cidr("10.0.0.0/8"), Cidr { net: ip("10.0.0.0"), prefix: 8 });
        assert_eq!(cidr("192.168.1.5"), Cidr { net: ip("192.168.1.5"), prefix: 32 });
        assert_eq!(cidr("::1"), Cidr { net: ip("::1"), prefix: 128 });
        assert_eq!(cidr("fd00::/8"), Cidr { net: ip("fd00::"), prefix: 8 });
        assert_eq!(cidr("0.0.0.0/0"), Cidr { net: ip("0.0.0.0"), prefix: 0 });
        assert_eq!(cidr("::/0"), Cidr { net: ip("::"), prefix: 0 });
        assert_eq!(cidr("192.168.1.5/32").prefix(), 32);
        assert_eq!(cidr("2001:db8::/128").network(), ip("2001:db8::"));
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("fd00::/8").to_string(), "fd00::/8");
    }

    #[test]
    fn rejects_bad_blocks_with_typed_errors() {
        let err = |s: &str| s.parse::<Cidr>().unwrap_err();
        assert_eq!(err(""), CidrError::Empty);
        assert_eq!(err("10.0.0/8"), CidrError::BadAddress("10.0.0".into()));
        assert_eq!(err("/8"), CidrError::BadAddress("".into()));
        assert_eq!(err("010.0.0.0/8"), CidrError::BadAddress("010.0.0.0".into()));
        assert_eq!(err("fe80::1%eth0"), CidrError::BadAddress("fe80::1%eth0".into()));
        assert_eq!(err("host.example/8"), CidrError::BadAddress("host.example".into()));
        assert_eq!(err("10.0.0.0/"), CidrError::BadPrefix("".into()));
        assert_eq!(err("10.0.0.0/+8"), CidrError::BadPrefix("+8".into()));
        assert_eq!(err("10.0.0.0/-1"), CidrError::BadPrefix("-1".into()));
        assert_eq!(err("10.0.0.0/08"), CidrError::BadPrefix("08".into()));
        assert_eq!(err("10.0.0.0/ 8"), CidrError::BadPrefix(" 8".into()));
        assert_eq!(err("10.0.0.0/8/8"), CidrError::BadPrefix("8/8".into()));
        assert_eq!(err("10.0.0.0/x"), CidrError::BadPrefix("x".into()));
        assert_eq!(err("10.0.0.0/33"), CidrError::PrefixTooLong { prefix: 33, max: 32 });
        assert_eq!(err("::/129"), CidrError::PrefixTooLong { prefix: 129, max: 128 });
        assert_eq!(err("::/99999999999"), CidrError::PrefixTooLong { prefix: u32::MAX, max: 128 });
        assert_eq!(
            err("10.0.0.1/8"),
            CidrError::HostBitsSet { addr: ip("10.0.0.1"), prefix: 8, network: ip("10.0.0.0") }
        );
        assert_eq!(err("fd00::1/8").to_string(), "fd00::1/8 has host bits set (did you mean fd00::/8?)");
        assert_eq!(Cidr::new(ip("1.2.3.4"), 33), Err(CidrError::PrefixTooLong { prefix: 33, max: 32 }));
        for e in [err(""), err("x"), err("1.0.0.0/y"), err("1.0.0.0/40"), err("1.0.0.1/8")] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn contains_by_prefix() {
        let b = cidr("10.0.0.0/8");
        assert!(b.contains(ip("10.0.0.0")));
        assert!(b.contains(ip("10.255.255.255")));
        assert!(!b.contains(ip("11.0.0.0")));
        assert!(!b.contains(ip("9.255.255.255")));
        let one = cidr("192.168.1.5");
        assert!(one.contains(ip("192.168.1.5")));
        assert!(!one.contains(ip("192.168.1.4")));
        assert!(cidr("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        let v6 = cidr("fd00::/8");
        assert!(v6.contains(ip("fd12:3456::1")));
        assert!(!v6.contains(ip("fe00::1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(!cidr("::1").contains(ip("::2")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("2001:db8::/33").contains(ip("2001:db8:7fff::1")));
        assert!(!cidr("2001:db8::/33").contains(ip("2001:db8:8000::1")));
    }

    #[test]
    fn mapped_addresses_match_ipv4_blocks() {
        let b = cidr("10.0.0.0/8");
        assert!(b.contains(ip("::ffff:10.1.2.3")));
        assert!(!b.contains(ip("::ffff:11.1.2.3")));
        // The deprecated IPv4-compatible form is no IPv4 address, nor is ::1 the address 0.0.0.1.
        assert!(!b.contains(ip("::10.1.2.3")));
        assert!(!cidr("0.0.0.0/8").contains(ip("::1")));
        // An IPv6 block over the mapped range holds the plain IPv4 addresses it maps.
        assert!(cidr("::ffff:0:0/96").contains(ip("1.2.3.4")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
        assert!(!cidr("::ffff:10.0.0.0/104").contains(ip("11.9.9.9")));
        assert!(!cidr("fd00::/8").contains(ip("10.0.0.1")));
    }

    #[test]
    fn trusted_proxies() {
        let t = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.5", "::1", "fd00::/8"]).unwrap();
        assert_eq!(t.blocks().len(), 4);
        for a in ["10.2.3.4", "192.168.1.5", "::1", "fd00::5", "::ffff:10.0.0.1", "::ffff:192.168.1.5"] {
            assert!(t.is_trusted(ip(a)), "{a}");
        }
        for a in ["11.0.0.1", "192.168.1.6", "::2", "fe80::1", "127.0.0.1", "::ffff:192.168.1.6"] {
            assert!(!t.is_trusted(ip(a)), "{a}");
        }
        assert!(TrustedProxies::default().is_empty());
        assert!(!TrustedProxies::default().is_trusted(ip("127.0.0.1")));
        assert_eq!(TrustedProxies::parse(["10.0.0.0/8", "nope"]), Err(CidrError::BadAddress("nope".into())));
        let mut u: TrustedProxies = [cidr("127.0.0.1")].into_iter().collect();
        assert!(!u.is_trusted(ip("::1")));
        u.push(cidr("::1"));
        assert!(u.is_trusted(ip("::1")) && u.is_trusted(ip("127.0.0.1")) && !u.is_empty());
    }
}
