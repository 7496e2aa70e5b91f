//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1 and 2) that a TCP proxy sends before
//! the connection's own bytes: a sans-IO decoder over the bytes received so far.
//!
//! [`parse`] answers `Ok(None)` while the header may still be completing and an error as soon as the bytes
//! cannot become one: the first byte already tells a PROXY header (`P` or `\r`) from anything else, and every
//! further byte of the signatures, the v1 protocol word, the v2 version, command, family and length is checked
//! as it arrives. Decisions:
//!
//! - v1 is strict as the spec says: `PROXY`, single spaces, `TCP4`/`TCP6` with addresses of that family
//!   (IPv4 dotted quads without leading zeros), decimal ports 0..=65535 without leading zeros, CRLF within
//!   107 bytes; printable US-ASCII only, a lone CR or LF is an error. `UNKNOWN` ignores the rest of its line.
//! - v2 accepts only version 2 and the commands LOCAL and PROXY, and rejects unassigned family or transport
//!   nibbles. Only TCP over IPv4 (`0x11`) and IPv6 (`0x21`) yield addresses; the other valid combinations
//!   (UNSPEC, UDP, UNIX) fall back to "no address" as the spec allows, and LOCAL ignores the family. A length
//!   too short for the family's addresses is an error; one over [`V2_MAX_LEN`] is refused before waiting for
//!   it. TLVs are skipped unread (the CRC32c TLV is not checked).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses and ports).
pub const V1_MAX_LEN: usize = 107;

/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The largest v2 length field accepted (addresses and TLVs after the 16-byte header).
pub const V2_MAX_LEN: usize = 1024;

const V1_PREFIX: &[u8] = b"PROXY ";
const V1_PROTOCOLS: [&[u8]; 3] = [b"TCP4", b"TCP6", b"UNKNOWN"];

/// Which version of the protocol a header was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The text line (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header.
    V2,
}

/// The original connection's endpoints as the proxy reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The client's address and port.
    pub source: SocketAddr,
    /// The address and port the client connected to (the proxy's listener).
    pub destination: SocketAddr,
}

/// A decoded PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The version it was sent in.
    pub version: Version,
    /// The proxied connection's endpoints; None for v1 `UNKNOWN`, v2 `LOCAL` or a family without IP addresses,
    /// meaning the peer itself is the client.
    pub endpoints: Option<Endpoints>,
}

impl ProxyHeader {
    /// The client's address: the source endpoint or else `peer`, canonical (IPv4-mapped IPv6 given as IPv4).
    pub fn client_ip(&self, peer: IpAddr) -> IpAddr {
        self.endpoints.map_or(peer, |e| e.source.ip()).to_canonical()
    }

    /// The header's bytes in its version (a mixed-family pair of endpoints is sent as IPv6, IPv4 mapped).
    pub fn encode(&self) -> Vec<u8> {
        let e = self.endpoints.map(|e| {
            let v4 = match (e.source.ip(), e.destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => Some((s, d)),
                _ => None,
            };
            (e, v4)
        });
        let v6 = |a: IpAddr| match a {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        match (self.version, e) {
            (Version::V1, None) => b"PROXY UNKNOWN\r\n".to_vec(),
            (Version::V1, Some((e, v4))) => {
                let (s, d) = (e.source, e.destination);
                let line = match v4 {
                    Some((si, di)) => format!("PROXY TCP4 {si} {di} {} {}\r\n", s.port(), d.port()),
                    None => format!("PROXY TCP6 {} {} {} {}\r\n", v6(s.ip()), v6(d.ip()), s.port(), d.port()),
                };
                line.into_bytes()
            }
            (Version::V2, None) => {
                let mut out = V2_SIGNATURE.to_vec();
                out.extend_from_slice(&[0x20, 0x00, 0, 0]);
                out
            }
            (Version::V2, Some((e, v4))) => {
                let mut out = V2_SIGNATURE.to_vec();
                match v4 {
                    Some((s, d)) => {
                        out.extend_from_slice(&[0x21, 0x11, 0, 12]);
                        out.extend_from_slice(&s.octets());
                        out.extend_from_slice(&d.octets());
                    }
                    None => {
                        out.extend_from_slice(&[0x21, 0x21, 0, 36]);
                        out.extend_from_slice(&v6(e.source.ip()).octets());
                        out.extend_from_slice(&v6(e.destination.ip()).octets());
                    }
                }
                out.extend_from_slice(&e.source.port().to_be_bytes());
                out.extend_from_slice(&e.destination.port().to_be_bytes());
                out
            }
        }
    }
}

/// Why bytes are not a valid PROXY header; the connection is to be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// The bytes start like neither signature (`PROXY` nor the v2 signature).
    NotProxy,
    /// A v1 line breaking the syntax; the text says where.
    V1Syntax(&'static str),
    /// No CRLF within the first [`V1_MAX_LEN`] bytes.
    V1TooLong,
    /// A v1 address that does not parse in the announced family; the text says which.
    V1Address(&'static str),
    /// A v2 version nibble other than 2.
    V2Version(u8),
    /// A v2 command other than LOCAL (0) or PROXY (1).
    V2Command(u8),
    /// A v2 family/transport byte with an unassigned nibble.
    V2Family(u8),
    /// A v2 length over [`V2_MAX_LEN`].
    V2TooLong(u16),
    /// A v2 length too short for the addresses of its family.
    V2ShortAddress {
        /// The family/transport byte.
        family: u8,
        /// The length field.
        len: u16,
    },
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NotProxy => write!(f, "not a PROXY protocol header"),
            ProxyError::V1Syntax(what) => write!(f, "bad PROXY v1 line: {what}"),
            ProxyError::V1TooLong => write!(f, "PROXY v1 line without CRLF in its first {V1_MAX_LEN} bytes"),
            ProxyError::V1Address(what) => write!(f, "bad PROXY v1 {what} address"),
            ProxyError::V2Version(v) => write!(f, "PROXY v2 header of version {v}"),
            ProxyError::V2Command(c) => write!(f, "PROXY v2 header with unassigned command {c:#x}"),
            ProxyError::V2Family(b) => write!(f, "PROXY v2 header with unassigned family/transport {b:#04x}"),
            ProxyError::V2TooLong(n) => write!(f, "PROXY v2 header of {n} bytes, over {V2_MAX_LEN}"),
            ProxyError::V2ShortAddress { family, len } => {
                write!(f, "PROXY v2 length {len} too short for family/transport {family:#04x}")
            }
        }
    }
}

impl std::error::Error for ProxyError {}

/// Decodes a PROXY header (v1 or v2) at the start of `buf`: `Ok(None)` while more bytes are needed, else the
/// bytes it took (the connection's own bytes follow) and the header.
pub fn parse(buf: &[u8]) -> Result<Option<(usize, ProxyHeader)>, ProxyError> {
    match buf.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

fn parse_v1(buf: &[u8]) -> Result<Option<(usize, ProxyHeader)>, ProxyError> {
    let n = buf.len().min(5);
    if buf[..n] != V1_PREFIX[..n] {
        return Err(ProxyError::NotProxy);
    }
    if buf.len() > 5 && buf[5] != b' ' {
        return Err(ProxyError::V1Syntax("no single space after PROXY"));
    }
    // The CR may be at index V1_MAX_LEN - 2 at most.
    for (i, &b) in buf.iter().enumerate().take(V1_MAX_LEN - 1).skip(V1_PREFIX.len()) {
        match b {
            b'\r' => match buf.get(i + 1) {
                Some(b'\n') => {
                    let header = v1_line(&buf[V1_PREFIX.len()..i])?;
                    return Ok(Some((i + 2, header)));
                }
                Some(_) => return Err(ProxyError::V1Syntax("CR without LF")),
                None => break,
            },
            b'\n' => return Err(ProxyError::V1Syntax("LF without CR")),
            0x20..=0x7e => {}
            _ => return Err(ProxyError::V1Syntax("byte outside printable US-ASCII")),
        }
    }
    if buf.len() >= V1_MAX_LEN {
        return Err(ProxyError::V1TooLong);
    }
    // Incomplete: the protocol word can already be wrong.
    let cr_pending = buf.last() == Some(&b'\r');
    if buf.len() > V1_PREFIX.len() {
        let rest = &buf[V1_PREFIX.len()..buf.len() - usize::from(cr_pending)];
        let ok = match rest.iter().position(|&b| b == b' ') {
            Some(p) => V1_PROTOCOLS.contains(&&rest[..p]),
            None => V1_PROTOCOLS.iter().any(|p| p.starts_with(rest)),
        };
        if !ok {
            return Err(ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN"));
        }
    }
    Ok(None)
}

/// The v1 line after `PROXY ` and before CRLF, all printable US-ASCII.
fn v1_line(rest: &[u8]) -> Result<ProxyHeader, ProxyError> {
    let rest = std::str::from_utf8(rest).map_err(|_| ProxyError::V1Syntax("byte outside printable US-ASCII"))?;
    if rest == "UNKNOWN" || rest.starts_with("UNKNOWN ") {
        return Ok(ProxyHeader { version: Version::V1, endpoints: None });
    }
    let mut words = rest.split(' ');
    let proto = words.next().unwrap_or("");
    if proto != "TCP4" && proto != "TCP6" {
        return Err(ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN"));
    }
    let (Some(src), Some(dst), Some(sport), Some(dport), None) =
        (words.next(), words.next(), words.next(), words.next(), words.next())
    else {
        return Err(ProxyError::V1Syntax("not four fields separated by single spaces"));
    };
    let ip = |s: &str, what| -> Result<IpAddr, ProxyError> {
        let a =
            if proto == "TCP4" { s.parse::<Ipv4Addr>().map(IpAddr::V4) } else { s.parse::<Ipv6Addr>().map(IpAddr::V6) };
        a.map_err(|_| ProxyError::V1Address(what))
    };
    let (src, dst) = (ip(src, "source")?, ip(dst, "destination")?);
    let (sport, dport) = (v1_port(sport)?, v1_port(dport)?);
    let endpoints = Endpoints { source: SocketAddr::new(src, sport), destination: SocketAddr::new(dst, dport) };
    Ok(ProxyHeader { version: Version::V1, endpoints: Some(endpoints) })
}

/// A v1 port: decimal 0..=65535 without leading zeros.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let plain =
        (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    let port = if plain { s.parse::<u16>().ok() } else { None };
    port.ok_or(ProxyError::V1Syntax("port is not decimal 0..65535 without leading zeros"))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(usize, ProxyHeader)>, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::NotProxy);
    }
    let Some(&ver_cmd) = buf.get(12) else { return Ok(None) };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Version(ver_cmd >> 4));
    }
    let proxy = match ver_cmd & 0x0f {
        0 => false,
        1 => true,
        c => return Err(ProxyError::V2Command(c)),
    };
    let Some(&family) = buf.get(13) else { return Ok(None) };
    // LOCAL ignores the family entirely.
    if proxy && (family >> 4 > 3 || family & 0x0f > 2) {
        return Err(ProxyError::V2Family(family));
    }
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else { return Ok(None) };
    let len = u16::from_be_bytes([hi, lo]);
    if usize::from(len) > V2_MAX_LEN {
        return Err(ProxyError::V2TooLong(len));
    }
    let need = match (proxy, family) {
        (true, 0x11) => 12,
        (true, 0x21) => 36,
        _ => 0,
    };
    if len < need {
        return Err(ProxyError::V2ShortAddress { family, len });
    }
    let total = 16 + usize::from(len);
    let Some(body) = buf.get(16..total) else { return Ok(None) };
    let port = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
    let endpoints = match need {
        12 => {
            let (s, d) = (<[u8; 4]>::try_from(&body[0..4]), <[u8; 4]>::try_from(&body[4..8]));
            let (s, d) = (Ipv4Addr::from(s.unwrap_or_default()), Ipv4Addr::from(d.unwrap_or_default()));
            Some(Endpoints {
                source: SocketAddr::new(IpAddr::V4(s), port(8)),
                destination: SocketAddr::new(IpAddr::V4(d), port(10)),
            })
        }
        36 => {
            let (s, d) = (<[u8; 16]>::try_from(&body[0..16]), <[u8; 16]>::try_from(&body[16..32]));
            let (s, d) = (Ipv6Addr::from(s.unwrap_or_default()), Ipv6Addr::from(d.unwrap_or_default()));
            Some(Endpoints {
                source: SocketAddr::new(IpAddr::V6(s), port(32)),
                destination: SocketAddr::new(IpAddr::V6(d), port(34)),
            })
        }
        _ => None,
    };
    Ok(Some((total, ProxyHeader { version: Version::V2, endpoints })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn proxied(version: Version, src: &str, dst: &str) -> ProxyHeader {
        ProxyHeader { version, endpoints: Some(Endpoints { source: sa(src), destination: sa(dst) }) }
    }

    const V1_LOCAL: ProxyHeader = ProxyHeader { version: Version::V1, endpoints: None };
    const V2_LOCAL: ProxyHeader = ProxyHeader { version: Version::V2, endpoints: None };

    /// Parses `buf` whole, and checks that every shorter prefix needs more bytes.
    fn parse_split(buf: &[u8]) -> Result<Option<(usize, ProxyHeader)>, ProxyError> {
        let whole = parse(buf);
        if let Ok(Some((n, _))) = whole {
            for k in 0..n {
                assert_eq!(parse(&buf[..k]), Ok(None), "prefix of {k} bytes of {buf:?}");
            }
        }
        whole
    }

    fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn spec_v1_example_before_an_http_request() {
        let buf = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
        let want = proxied(Version::V1, "192.168.0.1:56324", "192.168.0.11:443");
        assert_eq!(parse_split(buf), Ok(Some((47, want))));
        assert_eq!(&buf[47..50], b"GET");
        assert_eq!(want.client_ip("10.0.0.1".parse().unwrap()), "192.168.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn spec_v1_longest_lines() {
        let tcp4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(tcp4.len(), 56);
        let want = proxied(Version::V1, "255.255.255.255:65535", "255.255.255.255:65535");
        assert_eq!(parse_split(tcp4), Ok(Some((56, want))));
        let f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let tcp6 = format!("PROXY TCP6 {f} {f} 65535 65535\r\n");
        assert_eq!(tcp6.len(), 104);
        let want = proxied(Version::V1, &format!("[{f}]:65535"), &format!("[{f}]:65535"));
        assert_eq!(parse_split(tcp6.as_bytes()), Ok(Some((104, want))));
        assert_eq!(parse_split(b"PROXY UNKNOWN\r\n"), Ok(Some((15, V1_LOCAL))));
        let worst = format!("PROXY UNKNOWN {f} {f} 65535 65535\r\n");
        assert_eq!(worst.len(), V1_MAX_LEN);
        assert_eq!(parse_split(worst.as_bytes()), Ok(Some((V1_MAX_LEN, V1_LOCAL))));
        // One byte more and it is too long, whether the CR is there already or not.
        let over = format!("PROXY UNKNOWN {f} {f} 65535 655350\r\n");
        assert_eq!(parse(over.as_bytes()), Err(ProxyError::V1TooLong));
        assert_eq!(parse(&over.as_bytes()[..V1_MAX_LEN]), Err(ProxyError::V1TooLong));
        assert_eq!(parse(&over.as_bytes()[..V1_MAX_LEN - 1]), Ok(None));
        let cr_late = &over.as_bytes()[..V1_MAX_LEN - 1];
        let mut cr_late = cr_late.to_vec();
        cr_late.push(b'\r');
        assert_eq!(parse(&cr_late), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn v1_forms() {
        let want = proxied(Version::V1, "[2001:db8::1]:4711", "[2001:db8::2]:443");
        assert_eq!(parse_split(b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n"), Ok(Some((45, want))));
        let mapped = parse(b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n").unwrap().unwrap().1;
        assert_eq!(mapped.client_ip("::9".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            parse_split(b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"),
            Ok(Some((32, proxied(Version::V1, "0.0.0.0:0", "0.0.0.0:0"))))
        );
        // UNKNOWN ignores the rest of its line, whatever it holds.
        assert_eq!(parse(b"PROXY UNKNOWN whatever  it is\r\n"), Ok(Some((31, V1_LOCAL))));
        assert_eq!(V1_LOCAL.client_ip("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn v1_strict_syntax() {
        let bad: &[(&[u8], ProxyError)] = &[
            (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN")),
            (b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyError::V1Syntax("no single space after PROXY")),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                ProxyError::V1Syntax("not four fields separated by single spaces"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                ProxyError::V1Syntax("not four fields separated by single spaces"),
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", ProxyError::V1Syntax("not four fields separated by single spaces")),
            (b"PROXY TCP4\r\n", ProxyError::V1Syntax("not four fields separated by single spaces")),
            (b"PROXY \r\n", ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN")),
            (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN")),
            (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN")),
            (b"PROXY UNKNOWNX\r\n", ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", ProxyError::V1Syntax("LF without CR")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", ProxyError::V1Syntax("CR without LF")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", ProxyError::V1Syntax("CR without LF")),
            (b"PROXY UNKNOWN \x00\r\n", ProxyError::V1Syntax("byte outside printable US-ASCII")),
            (b"PROXY UNKNOWN \xc3\xa9\r\n", ProxyError::V1Syntax("byte outside printable US-ASCII")),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
                ProxyError::V1Syntax("port is not decimal 0..65535 without leading zeros"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                ProxyError::V1Syntax("port is not decimal 0..65535 without leading zeros"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",
                ProxyError::V1Syntax("port is not decimal 0..65535 without leading zeros"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
                ProxyError::V1Syntax("port is not decimal 0..65535 without leading zeros"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n",
                ProxyError::V1Syntax("port is not decimal 0..65535 without leading zeros"),
            ),
            (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", ProxyError::V1Address("source")),
            (b"PROXY TCP4 1.2.3.4 256.6.7.8 1 2\r\n", ProxyError::V1Address("destination")),
            (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", ProxyError::V1Address("source")),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", ProxyError::V1Address("source")),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", ProxyError::V1Address("source")),
            (b"PROXY TCP6 ::1 ::1:: 1 2\r\n", ProxyError::V1Address("destination")),
            (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", ProxyError::V1Address("source")),
            (b"PROXY TCP6 [::1] ::1 1 2\r\n", ProxyError::V1Address("source")),
            (b"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", ProxyError::V1Address("source")),
        ];
        for (buf, want) in bad {
            assert_eq!(parse(buf), Err(*want), "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn v1_errors_as_early_as_possible() {
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"P"), Ok(None));
        assert_eq!(parse(b"PROX"), Ok(None));
        assert_eq!(parse(b"PROXY "), Ok(None));
        assert_eq!(parse(b"PROXY TC"), Ok(None));
        assert_eq!(parse(b"PROXY UNKNOWN"), Ok(None));
        assert_eq!(parse(b"PROXY UNKNOWN\r"), Ok(None));
        assert_eq!(parse(b"PROXY TCP4 1.2."), Ok(None));
        assert_eq!(parse(b"G"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"POST / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PO"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PUT"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"PROXYZ"), Err(ProxyError::V1Syntax("no single space after PROXY")));
        assert_eq!(parse(b"PROXY X"), Err(ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN")));
        assert_eq!(parse(b"PROXY TCP5"), Err(ProxyError::V1Syntax("protocol is not TCP4, TCP6 or UNKNOWN")));
        assert_eq!(parse(b"PROXY TCP4\n"), Err(ProxyError::V1Syntax("LF without CR")));
        assert_eq!(parse(b"PROXY TCP4 \x01"), Err(ProxyError::V1Syntax("byte outside printable US-ASCII")));
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 200]].concat();
        assert_eq!(parse(&long[..V1_MAX_LEN - 1]), Ok(None));
        assert_eq!(parse(&long[..V1_MAX_LEN]), Err(ProxyError::V1TooLong));
        assert_eq!(parse(&long), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn v2_tcp4_and_tcp6() {
        let body4 = [192, 0, 2, 1, 198, 51, 100, 2, 0x12, 0x67, 0x01, 0xbb];
        let buf = v2(0x21, 0x11, &body4);
        let want = proxied(Version::V2, "192.0.2.1:4711", "198.51.100.2:443");
        assert_eq!(parse_split(&buf), Ok(Some((28, want))));
        let mut body6 = Vec::new();
        body6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&[0x12, 0x67, 0x01, 0xbb]);
        let want6 = proxied(Version::V2, "[2001:db8::1]:4711", "[2001:db8::2]:443");
        assert_eq!(parse_split(&v2(0x21, 0x21, &body6)), Ok(Some((52, want6))));
        // An IPv4-mapped source is the IPv4 client.
        let mut mapped = body6.clone();
        mapped[..16].copy_from_slice(&"::ffff:192.0.2.1".parse::<Ipv6Addr>().unwrap().octets());
        let h = parse(&v2(0x21, 0x21, &mapped)).unwrap().unwrap().1;
        assert_eq!(h.client_ip("::1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
        // TLVs after the addresses are skipped; the connection's bytes follow the header.
        let mut with_tlv = body4.to_vec();
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0, 0x05, 0x00, 0x01, 0xaa]);
        let mut buf = v2(0x21, 0x11, &with_tlv);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(parse_split(&buf), Ok(Some((38, want))));
        // Trailing bytes that do not form TLVs are skipped unread too.
        assert_eq!(parse(&v2(0x21, 0x11, &[&body4[..], &[0xff]].concat())), Ok(Some((29, want))));
    }

    #[test]
    fn v2_local_and_address_less_families() {
        // LOCAL: no address, whatever the family and length say.
        assert_eq!(parse_split(&v2(0x20, 0x00, &[])), Ok(Some((16, V2_LOCAL))));
        assert_eq!(parse_split(&v2(0x20, 0x11, &[1; 12])), Ok(Some((28, V2_LOCAL))));
        assert_eq!(parse_split(&v2(0x20, 0xff, &[1; 3])), Ok(Some((19, V2_LOCAL))));
        assert_eq!(parse_split(&v2(0x20, 0x11, &[])), Ok(Some((16, V2_LOCAL))));
        // PROXY over UNSPEC, UDP or UNIX: no IP endpoints to use, fall back to the peer.
        for (fam, len) in
            [(0x00, 0), (0x00, 5), (0x01, 0), (0x10, 0), (0x20, 4), (0x12, 12), (0x22, 36), (0x31, 216), (0x32, 216)]
        {
            let body = vec![7; len];
            assert_eq!(parse_split(&v2(0x21, fam, &body)), Ok(Some((16 + len, V2_LOCAL))), "{fam:#x}");
        }
    }

    #[test]
    fn v2_errors() {
        let mut buf = v2(0x21, 0x11, &[0; 12]);
        assert_eq!(parse(&buf[..1]), Ok(None));
        assert_eq!(parse(&buf[..12]), Ok(None));
        buf[4] = 1;
        assert_eq!(parse(&buf[..4]), Ok(None));
        assert_eq!(parse(&buf[..5]), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"\r\nGET"), Err(ProxyError::NotProxy));
        // Version, command, family as soon as their byte arrives.
        assert_eq!(parse(&v2(0x11, 0x11, &[0; 12])[..13]), Err(ProxyError::V2Version(1)));
        assert_eq!(parse(&v2(0x31, 0x11, &[0; 12])), Err(ProxyError::V2Version(3)));
        assert_eq!(parse(&v2(0x01, 0x11, &[0; 12])), Err(ProxyError::V2Version(0)));
        assert_eq!(parse(&v2(0x22, 0x11, &[0; 12])[..13]), Err(ProxyError::V2Command(2)));
        assert_eq!(parse(&v2(0x2f, 0x11, &[0; 12])), Err(ProxyError::V2Command(0xf)));
        assert_eq!(parse(&v2(0x21, 0x41, &[0; 12])[..14]), Err(ProxyError::V2Family(0x41)));
        assert_eq!(parse(&v2(0x21, 0x13, &[0; 12])), Err(ProxyError::V2Family(0x13)));
        assert_eq!(parse(&v2(0x21, 0xff, &[0; 12])), Err(ProxyError::V2Family(0xff)));
        // Lengths: too short for the family, over the cap, checked before the body arrives.
        assert_eq!(parse(&v2(0x21, 0x11, &[0; 11])[..16]), Err(ProxyError::V2ShortAddress { family: 0x11, len: 11 }));
        assert_eq!(parse(&v2(0x21, 0x21, &[0; 35])), Err(ProxyError::V2ShortAddress { family: 0x21, len: 35 }));
        assert_eq!(parse(&v2(0x21, 0x21, &[0; 12])), Err(ProxyError::V2ShortAddress { family: 0x21, len: 12 }));
        let big = v2(0x21, 0x11, &[0; V2_MAX_LEN + 1]);
        assert_eq!(parse(&big[..16]), Err(ProxyError::V2TooLong(V2_MAX_LEN as u16 + 1)));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x20, 0x00, 0xff, 0xff]);
        assert_eq!(parse(&huge), Err(ProxyError::V2TooLong(0xffff)));
        // The cap itself is fine, and waited for.
        let max = v2(0x21, 0x11, &[1; V2_MAX_LEN]);
        assert_eq!(parse(&max[..16 + V2_MAX_LEN - 1]), Ok(None));
        assert_eq!(parse(&max).unwrap().unwrap().0, 16 + V2_MAX_LEN);
    }

    #[test]
    fn garbage_is_not_proxy() {
        for buf in
            [&b"GET / HTTP/1.1\r\n"[..], b"\x16\x03\x01\x02\x00", b"\0", b" PROXY TCP4", b"\n", b"proxy tcp4", b"\xff"]
        {
            assert_eq!(parse(buf), Err(ProxyError::NotProxy), "{buf:?}");
        }
    }

    #[test]
    fn errors_display() {
        let all = [
            ProxyError::NotProxy,
            ProxyError::V1Syntax("x"),
            ProxyError::V1TooLong,
            ProxyError::V1Address("source"),
            ProxyError::V2Version(3),
            ProxyError::V2Command(2),
            ProxyError::V2Family(0x41),
            ProxyError::V2TooLong(2000),
            ProxyError::V2ShortAddress { family: 0x11, len: 3 },
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(ProxyError::V2Family(0x41).to_string(), "PROXY v2 header with unassigned family/transport 0x41");
    }

    #[test]
    fn encode_round_trips() {
        for h in [
            proxied(Version::V1, "192.0.2.1:1", "192.0.2.2:65535"),
            proxied(Version::V1, "[2001:db8::1]:0", "[::1]:80"),
            proxied(Version::V2, "192.0.2.1:1", "192.0.2.2:65535"),
            proxied(Version::V2, "[2001:db8::1]:0", "[::1]:80"),
            V1_LOCAL,
            V2_LOCAL,
        ] {
            let bytes = h.encode();
            assert_eq!(parse_split(&bytes), Ok(Some((bytes.len(), h))));
        }
        // Mixed families go as IPv6 with the IPv4 side mapped.
        let mixed = proxied(Version::V1, "192.0.2.1:1", "[::1]:2");
        assert_eq!(mixed.encode(), b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n");
        let back = parse(&proxied(Version::V2, "192.0.2.1:1", "[::1]:2").encode()).unwrap().unwrap().1;
        assert_eq!(back, proxied(Version::V2, "[::ffff:192.0.2.1]:1", "[::1]:2"));
    }

    fn endpoints() -> impl Strategy<Value = Endpoints> {
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        ];
        (ip, any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(s, sp, dp, same)| {
            let d = if same { s } else { IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)) };
            let d = match (s, d) {
                (IpAddr::V6(_), IpAddr::V4(d)) => IpAddr::V6(d.to_ipv6_mapped()),
                _ => d,
            };
            Endpoints { source: SocketAddr::new(s, sp), destination: SocketAddr::new(d, dp) }
        })
    }

    /// Bytes that start like a PROXY header, to get past the first checks.
    fn headerish() -> impl Strategy<Value = Vec<u8>> {
        let tail = proptest::collection::vec(any::<u8>(), 0..160);
        let start = prop_oneof![
            Just(b"PROXY ".to_vec()),
            Just(b"PROXY TCP4 ".to_vec()),
            Just(b"PROXY TCP6 ".to_vec()),
            Just(b"PROXY UNKNOWN".to_vec()),
            Just(V2_SIGNATURE.to_vec()),
            Just([&V2_SIGNATURE[..], &[0x21, 0x11]].concat()),
            Just([&V2_SIGNATURE[..], &[0x21, 0x21, 0x00]].concat()),
            Just(Vec::new()),
        ];
        (start, tail).prop_map(|(s, t)| [s, t].concat())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(Some((n, _))) = parse(&buf) {
                prop_assert!(n <= buf.len());
            }
        }

        #[test]
        fn more_bytes_never_change_a_verdict(buf in headerish(), cut in any::<proptest::sample::Index>()) {
            // An error or a header on a prefix stays the same with more bytes; a header on the whole is
            // `Ok(None)` on every prefix shorter than it.
            let k = cut.index(buf.len() + 1);
            let (short, whole) = (parse(&buf[..k]), parse(&buf));
            match short {
                Ok(None) => {
                    if let Ok(Some((n, _))) = whole {
                        prop_assert!(n > k);
                    }
                }
                Ok(Some(_)) => prop_assert_eq!(short, whole),
                Err(_) => prop_assert!(whole.is_err()),
            }
        }

        #[test]
        fn encoded_headers_parse_back(e in endpoints(), v1 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let h = ProxyHeader { version: if v1 { Version::V1 } else { Version::V2 }, endpoints: Some(e) };
            let bytes = h.encode();
            let n = bytes.len();
            let max = if v1 { V1_MAX_LEN } else { 16 + 36 };
            prop_assert!(n <= max);
            for k in 0..n {
                prop_assert_eq!(parse(&bytes[..k]), Ok(None));
            }
            let with_tail = [bytes, tail].concat();
            prop_assert_eq!(parse(&with_tail), Ok(Some((n, h))));
        }
    }
}
