//! From a captured packet to a TCP segment: the link layer (Ethernet, Linux cooked SLL/SLL2, loopback, raw IP),
//! then IPv4/IPv6 and TCP with etherparse's lax slicer, so packets cut short by the snapshot length still yield
//! their headers and the captured part of the payload.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use etherparse::err::ip::LaxHeaderSliceError;
use etherparse::err::packet::SliceError;
use etherparse::err::LenError;
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use super::capture::LinkType;

/// The TCP part of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sender address and port.
    pub src: SocketAddr,
    /// Receiver address and port.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number, when the ACK flag is set.
    pub ack: Option<u32>,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The captured payload.
    pub payload: &'a [u8],
    /// Payload bytes that were on the wire but not captured (snapshot length).
    pub missing: u32,
}

/// Why a packet could not be decoded down to TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentError {
    /// The link-layer header is cut short.
    ShortLinkHeader {
        /// The link type.
        link: LinkType,
        /// Bytes present.
        have: usize,
    },
    /// The Ethernet header is invalid.
    Ethernet(LenError),
    /// The IP header (raw IP links) is invalid.
    Ip(LaxHeaderSliceError),
    /// A header below the link layer is invalid.
    Slice(SliceError),
    /// An IP fragment: fragments are not reassembled.
    Fragmented,
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentError::ShortLinkHeader { link, have } => {
                write!(f, "{link} header cut short ({have} bytes)")
            }
            SegmentError::Ethernet(e) => write!(f, "Ethernet header: {e}"),
            SegmentError::Ip(e) => write!(f, "IP header: {e}"),
            SegmentError::Slice(e) => write!(f, "{e}"),
            SegmentError::Fragmented => f.write_str("fragmented IP packet (fragments are not reassembled)"),
        }
    }
}

impl std::error::Error for SegmentError {}

/// Decodes `data` (captured with link type `link`, `orig_len` bytes on the wire) down to TCP. `Ok(None)`: not a
/// TCP packet (ARP, UDP, another protocol), which the analyzer ignores.
pub fn decode(link: LinkType, data: &[u8], orig_len: u32) -> Result<Option<Segment<'_>>, SegmentError> {
    let sliced = match link {
        LinkType::Ethernet => LaxSlicedPacket::from_ethernet(data).map_err(SegmentError::Ethernet)?,
        LinkType::Raw => LaxSlicedPacket::from_ip(data).map_err(SegmentError::Ip)?,
        LinkType::LinuxSll | LinkType::LinuxSll2 | LinkType::Null | LinkType::Loop => {
            let (ether_type, header_len) = match cooked_header(link, data) {
                Some(found) => found,
                None => return Err(SegmentError::ShortLinkHeader { link, have: data.len() }),
            };
            match ether_type {
                Some(et) => LaxSlicedPacket::from_ether_type(et, &data[header_len..]),
                None => return Ok(None),
            }
        }
    };
    segment_of(&sliced, data.len(), orig_len)
}

/// The ether type and header length of the link layers etherparse does not slice itself: the Linux cooked
/// headers (etherparse refuses SLL from loopback devices and has no SLL2) and the BSD loopback headers.
/// `None`: the header is cut short; `Some((None, _))`: not IPv4 or IPv6.
fn cooked_header(link: LinkType, data: &[u8]) -> Option<(Option<EtherType>, usize)> {
    let be16 = |at: usize| data.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ip_only = |et: u16| match EtherType(et) {
        EtherType::IPV4 | EtherType::IPV6 => Some(EtherType(et)),
        _ => None,
    };
    match link {
        // SLL: packet type, ARPHRD, address length, 8 address bytes, then the protocol at 14.
        LinkType::LinuxSll if data.len() >= 16 => Some((be16(14).and_then(ip_only), 16)),
        // SLL2: the protocol first, then reserved, interface, ARPHRD, packet type, address: 20 bytes.
        LinkType::LinuxSll2 if data.len() >= 20 => Some((be16(0).and_then(ip_only), 20)),
        LinkType::Null | LinkType::Loop if data.len() >= 4 => {
            let raw = [data[0], data[1], data[2], data[3]];
            // NULL is in the capturing host's order: accept either, as tcpdump does.
            let family = if link == LinkType::Loop || u32::from_le_bytes(raw) > 0xffff {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            let et = match family {
                2 => Some(EtherType::IPV4),
                // AF_INET6 differs by OS: BSDs 24, FreeBSD 28, macOS 30, Linux 10.
                10 | 24 | 28 | 30 => Some(EtherType::IPV6),
                _ => None,
            };
            Some((et, 4))
        }
        _ => None,
    }
}

/// The TCP segment of a sliced packet, or why there is none.
fn segment_of<'a>(
    sliced: &LaxSlicedPacket<'a>,
    captured: usize,
    orig_len: u32,
) -> Result<Option<Segment<'a>>, SegmentError> {
    let (src_ip, dst_ip, payload) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()), v4.payload())
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (IpAddr::V6(h.source_addr()), IpAddr::V6(h.destination_addr()), v6.payload())
        }
        Some(LaxNetSlice::Arp(_)) => return Ok(None),
        None => {
            return match &sliced.stop_err {
                Some((e, _)) => Err(SegmentError::Slice(e.clone())),
                None => Ok(None),
            };
        }
    };
    if payload.ip_number != etherparse::IpNumber::TCP {
        return Ok(None);
    }
    if payload.fragmented {
        return Err(SegmentError::Fragmented);
    }
    let tcp = match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp,
        _ => {
            return match &sliced.stop_err {
                Some((e, _)) => Err(SegmentError::Slice(e.clone())),
                None => Ok(None),
            };
        }
    };
    let missing =
        if payload.incomplete { u32::try_from(captured).map_or(0, |c| orig_len.saturating_sub(c)) } else { 0 };
    Ok(Some(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        missing,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_v4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64).tcp(40000, 7272, 1000, 512).ack(77).psh();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn raw_ipv4_tcp() {
        let pkt = tcp_v4(b"hello");
        let s = decode(LinkType::Raw, &pkt, pkt.len() as u32).unwrap().unwrap();
        assert_eq!(s.src, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "127.0.0.2:7272".parse().unwrap());
        assert_eq!((s.seq, s.ack, s.syn, s.fin, s.rst), (1000, Some(77), false, false, false));
        assert_eq!(s.payload, b"hello");
        assert_eq!(s.missing, 0);
    }

    #[test]
    fn ipv6_over_ethernet() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6(
                [0; 16],
                {
                    let mut a = [0; 16];
                    a[15] = 1;
                    a
                },
                64,
            )
            .tcp(7272, 50000, 5, 512)
            .syn();
        let mut pkt = Vec::new();
        b.write(&mut pkt, &[]).unwrap();
        let s = decode(LinkType::Ethernet, &pkt, pkt.len() as u32).unwrap().unwrap();
        assert_eq!(s.dst, "[::1]:50000".parse().unwrap());
        assert!(s.syn);
        assert_eq!(s.ack, None);
    }

    #[test]
    fn cooked_and_loopback_headers() {
        let ip = tcp_v4(b"x");
        let mut sll = vec![0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll, &sll, sll.len() as u32).unwrap().unwrap().payload, b"x");
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        sll2.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::LinuxSll2, &sll2, sll2.len() as u32).unwrap().unwrap().payload, b"x");
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::Null, &null, null.len() as u32).unwrap().unwrap().payload, b"x");
        let mut lo = vec![0, 0, 0, 2];
        lo.extend_from_slice(&ip);
        assert_eq!(decode(LinkType::Loop, &lo, lo.len() as u32).unwrap().unwrap().payload, b"x");
        // ARP in SLL2: not TCP, ignored.
        let arp = [0x08, 0x06, 0, 0, 0, 0, 0, 1, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(LinkType::LinuxSll2, &arp, 20), Ok(None));
        assert!(matches!(
            decode(LinkType::LinuxSll2, &sll2[..7], 7),
            Err(SegmentError::ShortLinkHeader { have: 7, .. })
        ));
    }

    #[test]
    fn snaplen_cut_reports_missing_payload() {
        let pkt = tcp_v4(b"0123456789");
        let cut = &pkt[..pkt.len() - 4];
        let s = decode(LinkType::Raw, cut, pkt.len() as u32).unwrap().unwrap();
        assert_eq!(s.payload, b"012345");
        assert_eq!(s.missing, 4);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(LinkType::Raw, &[0x45, 0, 0], 3).is_err());
        assert!(decode(LinkType::Raw, &[], 0).is_err());
        assert!(decode(LinkType::Ethernet, &[1, 2, 3], 3).is_err());
        let mut pkt = tcp_v4(b"");
        pkt.truncate(30); // IPv4 header, half a TCP header
        let e = decode(LinkType::Raw, &pkt, 40).unwrap_err();
        assert!(e.to_string().contains("TCP") || !e.to_string().is_empty());
    }
}
