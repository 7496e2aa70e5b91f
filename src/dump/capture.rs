//! Capture-file reading: pcap and pcapng as written by `tcpdump -w`, parsed with the pcap-file crate from any
//! `Read` (a file, or a pipe fed live by `tcpdump -U -w -`). The reader keeps its own buffer, so it never
//! blocks while a whole packet is already buffered, and it tells a truncated file from a corrupt one.

use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, PcapError, TsResolution};

/// Most unparsed bytes buffered while waiting for one record to complete; beyond it the length is corrupt.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Bytes asked of the source per read.
const READ_CHUNK: usize = 64 * 1024;

/// The link layers the analyzer understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II (`-i eth0`, and `-i lo` on Linux).
    Ethernet,
    /// Linux cooked capture v1 (`-i any` with older libpcap).
    LinuxSll,
    /// Linux cooked capture v2 (`-i any` with libpcap 1.10 and later).
    LinuxSll2,
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    Null,
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    Loop,
    /// Raw IP, version taken from the packet.
    Raw,
}

impl LinkType {
    /// The link type for a pcap/pcapng data link value, or the raw number when it is not supported.
    pub fn from_datalink(link: DataLink) -> Result<LinkType, u32> {
        match link {
            DataLink::ETHERNET => Ok(LinkType::Ethernet),
            DataLink::LINUX_SLL => Ok(LinkType::LinuxSll),
            DataLink::LINUX_SLL2 => Ok(LinkType::LinuxSll2),
            DataLink::NULL => Ok(LinkType::Null),
            DataLink::LOOP => Ok(LinkType::Loop),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Ok(LinkType::Raw),
            other => match u32::from(other) {
                // DLT_RAW is 12 or 14 on some BSDs, written as such by their tcpdump.
                12 | 14 => Ok(LinkType::Raw),
                n => Err(n),
            },
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkType::Ethernet => "Ethernet",
            LinkType::LinuxSll => "Linux cooked (SLL)",
            LinkType::LinuxSll2 => "Linux cooked v2 (SLL2)",
            LinkType::Null => "BSD loopback (NULL)",
            LinkType::Loop => "OpenBSD loopback (LOOP)",
            LinkType::Raw => "raw IP",
        })
    }
}

/// The container format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap format.
    Pcap,
    /// pcapng (`tcpdump --pcapng`, Wireshark's default).
    PcapNg,
}

/// One captured packet, borrowed from the reader until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// 1-based number of the packet in the capture, as Wireshark counts.
    pub number: u64,
    /// Capture time since the Unix epoch.
    pub ts: Duration,
    /// The link layer of `data`.
    pub link: LinkType,
    /// The captured bytes (possibly fewer than were on the wire, see `orig_len`).
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
}

/// Why a capture cannot be read (further). `packet` is the number of the record that could not be read.
#[derive(Debug)]
pub enum CaptureError {
    /// Reading the source failed.
    Io {
        /// The packet being read.
        packet: u64,
        /// The operating system's error.
        source: io::Error,
    },
    /// The input is empty.
    Empty,
    /// The input starts with neither the pcap nor the pcapng magic number.
    NotACapture {
        /// The first bytes of the input.
        start: Vec<u8>,
    },
    /// The input ends inside the file header.
    TruncatedHeader {
        /// Bytes present.
        have: usize,
    },
    /// The file header is invalid.
    BadHeader(PcapError),
    /// A link type this tool cannot decode.
    UnsupportedLinkType {
        /// The packet that uses it, when the link type is per interface (pcapng).
        packet: Option<u64>,
        /// The LINKTYPE_ number.
        link: u32,
    },
    /// The input ends inside a packet record (a capture cut short).
    Truncated {
        /// The packet whose record is incomplete.
        packet: u64,
        /// Bytes of the record present.
        have: usize,
    },
    /// A record or block is invalid.
    Corrupt {
        /// The packet at (or just after) the bad record.
        packet: u64,
        /// What the parser found wrong.
        source: PcapError,
    },
    /// No record completes within [`MAX_RECORD_BYTES`]: its length field is corrupt.
    OversizedRecord {
        /// The packet whose record is too long.
        packet: u64,
    },
    /// A pcapng packet names an interface that no Interface Description Block declared.
    UnknownInterface {
        /// The packet.
        packet: u64,
        /// The interface id it names.
        interface: u32,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io { packet, source } => write!(f, "packet {packet}: read error: {source}"),
            CaptureError::Empty => f.write_str("empty input: not a pcap or pcapng capture"),
            CaptureError::NotACapture { start } => {
                write!(f, "not a pcap or pcapng capture (starts with")?;
                for b in start {
                    write!(f, " {b:02x}")?;
                }
                f.write_str("); write one with `tcpdump -w FILE`")
            }
            CaptureError::TruncatedHeader { have } => {
                write!(f, "truncated capture: the file header is incomplete ({have} bytes)")
            }
            CaptureError::BadHeader(e) => write!(f, "invalid capture file header: {e}"),
            CaptureError::UnsupportedLinkType { packet, link } => {
                if let Some(p) = packet {
                    write!(f, "packet {p}: ")?;
                }
                write!(f, "unsupported link type {link} (supported: Ethernet, Linux cooked SLL/SLL2, loopback, raw IP)")
            }
            CaptureError::Truncated { packet, have } => write!(
                f,
                "packet {packet}: truncated capture: the input ends inside this packet's record ({have} bytes of it; \
                 or its length field is corrupt)"
            ),
            CaptureError::Corrupt { packet, source } => write!(f, "packet {packet}: corrupt record: {source}"),
            CaptureError::OversizedRecord { packet } => {
                write!(f, "packet {packet}: corrupt record: its length exceeds {MAX_RECORD_BYTES} bytes")
            }
            CaptureError::UnknownInterface { packet, interface } => {
                write!(f, "packet {packet}: corrupt record: names undeclared interface {interface}")
            }
        }
    }
}

impl std::error::Error for CaptureError {}

/// A pcapng interface: its link layer and timestamp unit.
#[derive(Debug, Clone, Copy)]
struct Interface {
    /// The link type, or the unsupported raw number.
    link: Result<LinkType, u32>,
    /// `if_tsresol`: the timestamp unit (default 6, microseconds).
    tsresol: u8,
    /// `if_tsoffset`: seconds to add to every timestamp.
    tsoffset: u64,
}

/// A parsed file header.
enum Opened {
    /// pcap: the parser, its link type, whether timestamps are in nanoseconds.
    Pcap(PcapParser, DataLink, bool),
    /// pcapng: the parser, past the Section Header Block.
    PcapNg(PcapNgParser),
}

/// The parser state for one container format.
enum Kind {
    /// pcap: one link type for the whole file.
    Pcap { parser: PcapParser, link: LinkType, nanos: bool },
    /// pcapng: interfaces declared as the file goes.
    PcapNg { parser: PcapNgParser, interfaces: Vec<Interface> },
}

/// A streaming pcap/pcapng reader.
pub struct CaptureReader<R> {
    /// The source.
    src: R,
    /// Bytes read and not yet consumed start at `pos`.
    buf: Vec<u8>,
    /// Start of the unconsumed bytes.
    pos: usize,
    /// The source has reported end of file.
    eof: bool,
    /// Format and parser.
    kind: Kind,
    /// Packets returned so far.
    count: u64,
    /// The current packet's bytes.
    packet: Vec<u8>,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header: detects pcap or pcapng and checks the link type (pcap).
    pub fn new(src: R) -> Result<CaptureReader<R>, CaptureError> {
        let mut buf = Vec::new();
        let mut eof = false;
        let mut src = src;
        while buf.len() < 4 && !eof {
            eof = fill(&mut src, &mut buf, 0)?;
        }
        if buf.is_empty() {
            return Err(CaptureError::Empty);
        }
        let format = match buf.get(..4) {
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => Format::PcapNg,
            Some(
                [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d],
            ) => Format::Pcap,
            Some(_) => return Err(CaptureError::NotACapture { start: buf[..buf.len().min(8)].to_vec() }),
            None => return Err(CaptureError::TruncatedHeader { have: buf.len() }),
        };
        loop {
            let parsed = match format {
                Format::Pcap => PcapParser::new(&buf).map(|(rem, parser)| {
                    let header = parser.header();
                    let nanos = header.ts_resolution == TsResolution::NanoSecond;
                    (rem.len(), Opened::Pcap(parser, header.datalink, nanos))
                }),
                Format::PcapNg => PcapNgParser::new(&buf).map(|(rem, parser)| (rem.len(), Opened::PcapNg(parser))),
            };
            match parsed {
                Ok((rest, opened)) => {
                    let pos = buf.len() - rest;
                    let kind = match opened {
                        Opened::PcapNg(parser) => Kind::PcapNg { parser, interfaces: Vec::new() },
                        Opened::Pcap(parser, datalink, nanos) => {
                            let link = LinkType::from_datalink(datalink)
                                .map_err(|link| CaptureError::UnsupportedLinkType { packet: None, link })?;
                            Kind::Pcap { parser, link, nanos }
                        }
                    };
                    return Ok(CaptureReader { src, buf, pos, eof, kind, count: 0, packet: Vec::new() });
                }
                Err(PcapError::IncompleteBuffer) if !eof => eof = fill(&mut src, &mut buf, 0)?,
                Err(PcapError::IncompleteBuffer) => return Err(CaptureError::TruncatedHeader { have: buf.len() }),
                Err(e) => return Err(CaptureError::BadHeader(e)),
            }
        }
    }

    /// The container format.
    #[cfg(test)]
    pub fn format(&self) -> Format {
        match self.kind {
            Kind::Pcap { .. } => Format::Pcap,
            Kind::PcapNg { .. } => Format::PcapNg,
        }
    }

    /// Packets returned so far.
    pub fn packets_read(&self) -> u64 {
        self.count
    }

    /// The next packet; `Ok(None)` at a clean end of input. Blocks on the source only when no whole packet is
    /// buffered.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        let number = self.count + 1;
        loop {
            let avail = &self.buf[self.pos..];
            let step = match &mut self.kind {
                Kind::Pcap { parser, link, nanos } => match parser.next_raw_packet(avail) {
                    Ok((rem, raw)) => {
                        let frac = u64::from(raw.ts_frac);
                        let frac = if *nanos { frac } else { frac.saturating_mul(1000) };
                        let ts = Duration::from_secs(u64::from(raw.ts_sec)).saturating_add(Duration::from_nanos(frac));
                        self.packet.clear();
                        self.packet.extend_from_slice(&raw.data);
                        let orig_len = raw.orig_len.max(raw.incl_len);
                        Ok(Step::Packet { rest: rem.len(), ts, link: *link, orig_len })
                    }
                    Err(e) => Err(e),
                },
                Kind::PcapNg { parser, interfaces } => match parser.next_block(avail) {
                    Ok((rem, block)) => {
                        let rest = rem.len();
                        match pcapng_step(block, interfaces, &mut self.packet, number) {
                            Ok(Some((ts, link, orig_len))) => Ok(Step::Packet { rest, ts, link, orig_len }),
                            Ok(None) => Ok(Step::Skip { rest }),
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            match step {
                Ok(Step::Skip { rest }) => self.pos = self.buf.len() - rest,
                Ok(Step::Packet { rest, ts, link, orig_len }) => {
                    self.pos = self.buf.len() - rest;
                    self.count = number;
                    return Ok(Some(Packet { number, ts, link, data: &self.packet, orig_len }));
                }
                Err(PcapError::IncompleteBuffer) => {
                    let have = self.buf.len() - self.pos;
                    if self.eof {
                        return if have == 0 {
                            Ok(None)
                        } else {
                            Err(CaptureError::Truncated { packet: number, have })
                        };
                    }
                    if have > MAX_RECORD_BYTES {
                        return Err(CaptureError::OversizedRecord { packet: number });
                    }
                    if self.pos > 0 && self.pos >= self.buf.len() / 2 {
                        self.buf.drain(..self.pos);
                        self.pos = 0;
                    }
                    self.eof = fill(&mut self.src, &mut self.buf, number)?;
                }
                Err(source) => return Err(CaptureError::Corrupt { packet: number, source }),
            }
        }
    }
}

/// What one parse step produced.
enum Step {
    /// A packet, with the bytes left after it.
    Packet { rest: usize, ts: Duration, link: LinkType, orig_len: u32 },
    /// A block that is not a packet.
    Skip { rest: usize },
}

/// Handles one pcapng block: records interfaces, copies a packet's bytes into `packet`.
fn pcapng_step(
    block: Block<'_>,
    interfaces: &mut Vec<Interface>,
    packet: &mut Vec<u8>,
    number: u64,
) -> Result<Option<(Duration, LinkType, u32)>, CaptureError> {
    let (interface, raw_ts, orig_len, data) = match block {
        Block::SectionHeader(_) => {
            interfaces.clear();
            return Ok(None);
        }
        Block::InterfaceDescription(idb) => {
            let mut iface = Interface { link: LinkType::from_datalink(idb.linktype), tsresol: 6, tsoffset: 0 };
            for opt in &idb.options {
                match opt {
                    InterfaceDescriptionOption::IfTsResol(r) => iface.tsresol = *r,
                    InterfaceDescriptionOption::IfTsOffset(o) => iface.tsoffset = *o,
                    _ => {}
                }
            }
            interfaces.push(iface);
            return Ok(None);
        }
        Block::EnhancedPacket(epb) => {
            // pcap-file returns the raw 64-bit timestamp as nanoseconds; its unit is really if_tsresol.
            let raw = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
            (epb.interface_id, Some(raw), epb.original_len, epb.data)
        }
        Block::Packet(pb) => (u32::from(pb.interface_id), Some(pb.timestamp), pb.original_len, pb.data),
        Block::SimplePacket(spb) => (0, None, spb.original_len, spb.data),
        _ => return Ok(None),
    };
    let iface =
        interfaces.get(interface as usize).ok_or(CaptureError::UnknownInterface { packet: number, interface })?;
    let link = iface.link.map_err(|link| CaptureError::UnsupportedLinkType { packet: Some(number), link })?;
    let ts = raw_ts.map_or(Duration::ZERO, |raw| {
        scale_timestamp(raw, iface.tsresol).saturating_add(Duration::from_secs(iface.tsoffset))
    });
    packet.clear();
    packet.extend_from_slice(&data);
    let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
    Ok(Some((ts, link, orig_len)))
}

/// A pcapng timestamp in units of `tsresol` (10^-n seconds, or 2^-n when the top bit is set) as a duration.
pub fn scale_timestamp(raw: u64, tsresol: u8) -> Duration {
    let exp = u32::from(tsresol & 0x7f);
    let (per_sec, overflow) = if tsresol & 0x80 == 0 {
        10u128.overflowing_pow(exp)
    } else {
        (1u128.checked_shl(exp).unwrap_or(0), exp >= 128)
    };
    if overflow || per_sec == 0 {
        return Duration::ZERO;
    }
    let raw = u128::from(raw);
    let secs = u64::try_from(raw / per_sec).unwrap_or(u64::MAX);
    let nanos = (raw % per_sec) * 1_000_000_000 / per_sec;
    Duration::new(secs, u32::try_from(nanos).unwrap_or(0))
}

/// Reads one chunk from `src` onto the end of `buf`; returns whether the source is at end of file.
fn fill<R: Read>(src: &mut R, buf: &mut Vec<u8>, packet: u64) -> Result<bool, CaptureError> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    loop {
        match src.read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                return Ok(n == 0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                buf.truncate(start);
                return Err(CaptureError::Io { packet, source });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use std::borrow::Cow;

    fn pcap_with(link: DataLink, packets: &[&[u8]]) -> Vec<u8> {
        let header = PcapHeader { datalink: link, ..PcapHeader::default() };
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        for (i, p) in packets.iter().enumerate() {
            w.write_packet(&PcapPacket::new(Duration::new(1000 + i as u64, 5000), p.len() as u32, p)).unwrap();
        }
        w.into_writer()
    }

    /// A reader that hands out one byte per read, like a slow pipe.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    #[test]
    fn reads_pcap_packets_in_order() {
        let bytes = pcap_with(DataLink::ETHERNET, &[b"abc", b"defg"]);
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        assert_eq!(r.format(), Format::Pcap);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.number, p.data, p.link), (1, &b"abc"[..], LinkType::Ethernet));
        assert_eq!(p.ts, Duration::new(1000, 5_000));
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.number, p.data), (2, &b"defg"[..]));
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn reads_from_a_trickling_pipe() {
        let bytes = pcap_with(DataLink::LINUX_SLL2, &[b"abc", b"defg"]);
        let mut r = CaptureReader::new(Trickle(bytes, 0)).unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().data, b"abc");
        assert_eq!(r.next_packet().unwrap().unwrap().link, LinkType::LinuxSll2);
        assert!(r.next_packet().unwrap().is_none());
        assert_eq!(r.packets_read(), 2);
    }

    #[test]
    fn truncated_last_packet_is_reported_with_its_number() {
        let mut bytes = pcap_with(DataLink::ETHERNET, &[b"abc", b"defghij"]);
        bytes.truncate(bytes.len() - 3);
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        assert!(r.next_packet().unwrap().is_some());
        let err = r.next_packet().unwrap_err();
        assert!(matches!(err, CaptureError::Truncated { packet: 2, have: 20 }), "{err:?}");
        assert!(err.to_string().contains("packet 2"));
    }

    #[test]
    fn non_captures_and_bad_headers() {
        assert!(matches!(CaptureReader::new(&b""[..]), Err(CaptureError::Empty)));
        let e = CaptureReader::new(&b"GET / HTTP/1.1\r\n"[..]).err().unwrap();
        assert!(matches!(e, CaptureError::NotACapture { .. }));
        assert!(e.to_string().contains("47 45 54"), "{e}");
        let bytes = pcap_with(DataLink::ETHERNET, &[]);
        assert!(matches!(CaptureReader::new(&bytes[..10]), Err(CaptureError::TruncatedHeader { have: 10 })));
        let bytes = pcap_with(DataLink::USER0, &[b"x"]);
        let e = CaptureReader::new(&bytes[..]).err().unwrap();
        assert!(matches!(e, CaptureError::UnsupportedLinkType { packet: None, link: 147 }), "{e:?}");
    }

    #[test]
    fn pcapng_uses_the_interface_timestamp_resolution() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        let mut idb = InterfaceDescriptionBlock::new(DataLink::LINUX_SLL2, 262144);
        idb.options.push(InterfaceDescriptionOption::IfTsResol(6));
        w.write_pcapng_block(idb).unwrap();
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            // pcap-file treats this field as nanoseconds; the file says microseconds.
            timestamp: Duration::from_nanos(1_500_000),
            original_len: 3,
            data: Cow::Borrowed(b"xyz"),
            options: vec![],
        };
        w.write_pcapng_block(epb.clone()).unwrap();
        let second = w.get_ref().len();
        w.write_pcapng_block(epb).unwrap();
        let mut bytes = w.into_inner();
        // The writer refuses undeclared interfaces: patch the second packet's interface id (native order) to 7.
        bytes[second + 8..second + 12].copy_from_slice(&7u32.to_ne_bytes());
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        assert_eq!(r.format(), Format::PcapNg);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.ts, Duration::from_millis(1500));
        assert_eq!(p.data, b"xyz");
        let e = r.next_packet().unwrap_err();
        assert!(matches!(e, CaptureError::UnknownInterface { packet: 2, interface: 7 }), "{e:?}");
    }

    #[test]
    fn timestamp_units() {
        assert_eq!(scale_timestamp(1_000_001, 6), Duration::new(1, 1000));
        assert_eq!(scale_timestamp(1_000_000_001, 9), Duration::new(1, 1));
        assert_eq!(scale_timestamp(3, 0x81), Duration::from_millis(1500));
        assert_eq!(scale_timestamp(u64::MAX, 0xff), Duration::ZERO);
        assert_eq!(scale_timestamp(5, 200), Duration::ZERO);
    }
}
