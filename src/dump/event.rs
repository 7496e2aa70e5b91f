//! The analyzer's output: one [`Event`] per thing worth showing (TCP handshake and teardown, the HTTP upgrade,
//! every WebSocket frame, notes about the capture), with the decoded view of frame payloads that every renderer
//! shares.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::ws::frame::OpCode;
use crate::ws::handshake::HandshakeError;
use crate::ws::message::{parse_close_payload, WsError};

use super::segment::SegmentError;

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// From the client (the side not on a watched port) to the server.
    ClientToServer,
    /// From the server to the client.
    ServerToClient,
}

impl Direction {
    /// The short name used in JSON: `c2s` or `s2c`.
    pub fn code(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }

    /// `client` or `server`: the sender.
    pub fn sender(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client",
            Direction::ServerToClient => "server",
        }
    }
}

/// The connection an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    /// Number of the connection in order of appearance, from 1.
    pub id: u32,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The server's address and port.
    pub server: SocketAddr,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Number of the packet that completed the event.
    pub packet: u64,
    /// Capture time of that packet, since the Unix epoch.
    pub ts: Duration,
    /// The connection, for all but packet-level events.
    pub conn: Option<ConnRef>,
    /// Direction, for events carried by one side's bytes.
    pub dir: Option<Direction>,
    /// What happened.
    pub kind: EventKind,
}

/// What an event reports.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The three-way handshake completed.
    TcpHandshake {
        /// SYN to SYN-ACK, when both were captured.
        syn_to_synack: Option<Duration>,
        /// SYN-ACK to the client's ACK.
        synack_to_ack: Option<Duration>,
    },
    /// The connection ended (or the capture did).
    TcpClose(CloseHow),
    /// The capture starts in the middle of this connection.
    MidStream,
    /// The client's HTTP request head.
    HttpRequest {
        /// The head.
        head: HttpHead,
        /// Whether it is a valid WebSocket upgrade request, and if not why.
        upgrade: Result<(), HandshakeError>,
    },
    /// The server's HTTP response head.
    HttpResponse {
        /// The head.
        head: HttpHead,
        /// The status code.
        status: u16,
        /// The `Sec-WebSocket-Accept` check against the request's key.
        accept: AcceptCheck,
        /// Time since the request.
        after_request: Option<Duration>,
    },
    /// One WebSocket frame.
    Frame(Frame),
    /// A message reassembled from several frames.
    Message(Message),
    /// Something about the capture or the stream.
    Note(Note),
    /// A packet that could not be decoded down to TCP.
    PacketSkipped(SegmentError),
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseHow {
    /// Both sides sent FIN; `first` sent it first.
    Fin {
        /// The side that closed first.
        first: Direction,
    },
    /// A side reset the connection.
    Reset {
        /// The side that sent RST.
        by: Direction,
    },
    /// The server answered the SYN with RST.
    Refused,
    /// A SYN without an answer in the capture.
    NoAnswer,
    /// Still open when the capture ended.
    OpenAtEnd {
        /// The side that had sent FIN, if one had.
        half_closed_by: Option<Direction>,
    },
    /// A new connection with the same addresses and ports replaced it.
    Replaced,
}

impl fmt::Display for CloseHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseHow::Fin { first } => {
                let other = match first {
                    Direction::ClientToServer => "server",
                    Direction::ServerToClient => "client",
                };
                write!(f, "FIN from {}, then FIN from {other}", first.sender())
            }
            CloseHow::Reset { by } => write!(f, "reset (RST) by the {}", by.sender()),
            CloseHow::Refused => f.write_str("connection refused (RST in answer to SYN)"),
            CloseHow::NoAnswer => f.write_str("SYN without answer"),
            CloseHow::OpenAtEnd { half_closed_by: None } => f.write_str("still open at the end of the capture"),
            CloseHow::OpenAtEnd { half_closed_by: Some(d) } => {
                write!(f, "half-closed (FIN from the {}) at the end of the capture", d.sender())
            }
            CloseHow::Replaced => f.write_str("replaced by a new connection on the same ports"),
        }
    }
}

impl CloseHow {
    /// The short name used in JSON.
    pub fn code(&self) -> &'static str {
        match self {
            CloseHow::Fin { .. } => "fin",
            CloseHow::Reset { .. } => "reset",
            CloseHow::Refused => "refused",
            CloseHow::NoAnswer => "no_answer",
            CloseHow::OpenAtEnd { .. } => "open_at_end",
            CloseHow::Replaced => "replaced",
        }
    }
}

/// An HTTP request or response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHead {
    /// The request line or status line.
    pub first_line: String,
    /// Header names and values in order.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, blank line included.
    pub len: usize,
}

impl HttpHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The headers that matter to a WebSocket upgrade, in order.
    pub fn websocket_headers(&self) -> impl Iterator<Item = &(String, String)> {
        self.headers.iter().filter(|(n, _)| {
            let n = n.to_ascii_lowercase();
            n == "host" || n == "upgrade" || n == "connection" || n == "origin" || n.starts_with("sec-websocket-")
        })
    }
}

/// The server's `Sec-WebSocket-Accept` compared with the value the request's key calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptCheck {
    /// It matches.
    Valid,
    /// It does not match.
    Invalid {
        /// The value the key calls for.
        expected: String,
    },
    /// The response has none.
    Missing,
    /// The request's key is unknown (not captured or invalid).
    Unknown,
}

/// A protocol rule a frame breaks (RFC 6455 section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameIssue {
    /// A client frame without a mask.
    UnmaskedClientFrame,
    /// A server frame with a mask.
    MaskedServerFrame,
    /// RSV bits set without a negotiated extension.
    ReservedBits,
    /// A reserved opcode.
    ReservedOpcode,
    /// A control frame without FIN.
    FragmentedControl,
    /// A control frame over 125 bytes.
    ControlTooLong,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new data frame while a fragmented message is unfinished.
    UnfinishedMessage,
}

impl fmt::Display for FrameIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameIssue::UnmaskedClientFrame => "client frame not masked",
            FrameIssue::MaskedServerFrame => "server frame masked",
            FrameIssue::ReservedBits => "RSV bits set without an extension",
            FrameIssue::ReservedOpcode => "reserved opcode",
            FrameIssue::FragmentedControl => "fragmented control frame",
            FrameIssue::ControlTooLong => "control frame over 125 bytes",
            FrameIssue::UnexpectedContinuation => "continuation without a message to continue",
            FrameIssue::UnfinishedMessage => "new message while a fragmented one is unfinished",
        })
    }
}

impl FrameIssue {
    /// The short name used in JSON.
    pub fn code(self) -> &'static str {
        match self {
            FrameIssue::UnmaskedClientFrame => "unmasked_client_frame",
            FrameIssue::MaskedServerFrame => "masked_server_frame",
            FrameIssue::ReservedBits => "reserved_bits",
            FrameIssue::ReservedOpcode => "reserved_opcode",
            FrameIssue::FragmentedControl => "fragmented_control",
            FrameIssue::ControlTooLong => "control_too_long",
            FrameIssue::UnexpectedContinuation => "unexpected_continuation",
            FrameIssue::UnfinishedMessage => "unfinished_message",
        }
    }
}

/// One WebSocket frame as it was on the wire, its payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1..3 as the low three bits.
    pub rsv: u8,
    /// The raw opcode.
    pub opcode: u8,
    /// The masking key, if masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length from the header.
    pub len: u64,
    /// The first bytes of the payload, unmasked (at most the analyzer's keep limit).
    pub payload: Vec<u8>,
    /// Payload bytes that were not in the capture.
    pub missing: u64,
    /// For a continuation frame: the opcode of the message it continues.
    pub message_opcode: Option<OpCode>,
    /// The payload is compressed (permessage-deflate, RSV1 on the message's first frame).
    pub compressed: bool,
    /// Rules the frame breaks.
    pub issues: Vec<FrameIssue>,
}

impl Frame {
    /// The opcode, or `None` when reserved.
    pub fn op(&self) -> Option<OpCode> {
        OpCode::from_u8(self.opcode)
    }

    /// The opcode's name, `0x3` style for reserved ones.
    pub fn op_name(&self) -> String {
        match self.op() {
            Some(op) => op.to_string(),
            None => format!("opcode 0x{:x}", self.opcode),
        }
    }

    /// The payload decoded for display.
    pub fn content(&self) -> Content<'_> {
        let whole = self.payload.len() as u64 == self.len && self.missing == 0;
        let kind = match self.op() {
            Some(OpCode::Continuation) => self.message_opcode.unwrap_or(OpCode::Binary),
            Some(op) => op,
            None => OpCode::Binary,
        };
        let continues = self.op() == Some(OpCode::Continuation) || !self.fin;
        decode_content(kind, &self.payload, whole, continues, self.compressed)
    }
}

/// A message reassembled from a first frame and its continuations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Text or binary.
    pub opcode: OpCode,
    /// Frames it took.
    pub frames: u32,
    /// Total payload length.
    pub len: u64,
    /// The first bytes of the payload (at most the keep limit).
    pub payload: Vec<u8>,
    /// Payload bytes that were not in the capture.
    pub missing: u64,
    /// Compressed with permessage-deflate.
    pub compressed: bool,
}

impl Message {
    /// The payload decoded for display.
    pub fn content(&self) -> Content<'_> {
        let whole = self.payload.len() as u64 == self.len && self.missing == 0;
        decode_content(self.opcode, &self.payload, whole, false, self.compressed)
    }
}

/// A payload as it will be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content<'a> {
    /// No payload.
    Empty,
    /// UTF-8 text (for a partial payload, its longest valid prefix).
    Text(Cow<'a, str>),
    /// A text payload that is not UTF-8.
    InvalidUtf8(&'a [u8]),
    /// Bytes shown as a hex dump.
    Binary(&'a [u8]),
    /// A close frame's status code and reason.
    Close {
        /// Status code.
        code: u16,
        /// Reason text.
        reason: &'a str,
    },
    /// A close payload that breaks RFC 6455 section 5.5.1.
    BadClose {
        /// What is wrong.
        error: WsError,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Compressed bytes (permessage-deflate), not inflated.
    Compressed(&'a [u8]),
}

/// Decodes a payload of a message of type `kind`. `whole`: the full payload is present; `continues`: the bytes
/// are a fragment, so a UTF-8 sequence may be cut at either end.
fn decode_content(kind: OpCode, payload: &[u8], whole: bool, continues: bool, compressed: bool) -> Content<'_> {
    if payload.is_empty() {
        return Content::Empty;
    }
    if compressed {
        return Content::Compressed(payload);
    }
    match kind {
        OpCode::Close if whole => match parse_close_payload(payload) {
            Ok(Some((code, reason))) => Content::Close { code, reason },
            Ok(None) => Content::Empty,
            Err(error) => Content::BadClose { error, bytes: payload },
        },
        OpCode::Text => match std::str::from_utf8(payload) {
            Ok(s) => Content::Text(Cow::Borrowed(s)),
            Err(_) if continues => Content::Text(String::from_utf8_lossy(payload)),
            Err(e) if !whole && e.error_len().is_none() => {
                Content::Text(Cow::Borrowed(std::str::from_utf8(&payload[..e.valid_up_to()]).unwrap_or("")))
            }
            Err(_) => Content::InvalidUtf8(payload),
        },
        OpCode::Ping | OpCode::Pong => match std::str::from_utf8(payload) {
            Ok(s) if !s.chars().any(char::is_control) => Content::Text(Cow::Borrowed(s)),
            _ => Content::Binary(payload),
        },
        _ => Content::Binary(payload),
    }
}

/// A remark about the capture or a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A segment repeated bytes already seen.
    Retransmission {
        /// Bytes repeated.
        bytes: u64,
    },
    /// A segment arrived ahead of a hole.
    OutOfOrder {
        /// Bytes held.
        bytes: u64,
    },
    /// Bytes of the stream are not in the capture.
    Gap {
        /// How many.
        bytes: u64,
    },
    /// The SYN was sent again.
    SynRetransmitted,
    /// The frame boundaries are unknown from here: bytes are skipped until a frame start is found.
    LostSync(SyncLoss),
    /// A frame boundary was found again.
    Resynced {
        /// Bytes skipped to find it.
        skipped: u64,
    },
    /// The server did not switch protocols: the rest of the connection is not WebSocket.
    NotWebSocket {
        /// The response status.
        status: u16,
    },
    /// Bytes that were not decoded (not WebSocket, or while out of sync).
    Undecoded {
        /// How many.
        bytes: u64,
    },
    /// The stream ended inside a frame or an HTTP head.
    Incomplete {
        /// What was cut.
        what: &'static str,
        /// Bytes of it present.
        have: u64,
    },
}

/// Why a stream lost its frame boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncLoss {
    /// The capture starts inside the connection.
    MidStream,
    /// Bytes were missing from the capture outside a frame's payload.
    Gap,
    /// A header that cannot be a frame header.
    BadHeader,
    /// An HTTP head that cannot be parsed.
    BadHttp,
    /// An HTTP head over the size limit.
    HeadTooLong,
}

impl fmt::Display for SyncLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncLoss::MidStream => "the capture starts inside the connection",
            SyncLoss::Gap => "bytes missing from the capture",
            SyncLoss::BadHeader => "an invalid frame header",
            SyncLoss::BadHttp => "an unparsable HTTP head",
            SyncLoss::HeadTooLong => "an HTTP head over 64 KiB",
        })
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Retransmission { bytes } => write!(f, "retransmission of {bytes} bytes"),
            Note::OutOfOrder { bytes } => write!(f, "out-of-order segment of {bytes} bytes held back"),
            Note::Gap { bytes } => write!(f, "{bytes} bytes missing from the capture"),
            Note::SynRetransmitted => f.write_str("SYN retransmitted"),
            Note::LostSync(why) => write!(f, "frame boundaries lost ({why}); skipping to the next frame start"),
            Note::Resynced { skipped } => write!(f, "frame boundary found again after {skipped} skipped bytes"),
            Note::NotWebSocket { status } => {
                write!(f, "server answered {status}, not 101: the rest is not decoded as WebSocket")
            }
            Note::Undecoded { bytes } => write!(f, "{bytes} bytes not decoded"),
            Note::Incomplete { what, have } => write!(f, "stream ends inside {what} ({have} bytes of it)"),
        }
    }
}

impl Note {
    /// The short name used in JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Note::Retransmission { .. } => "retransmission",
            Note::OutOfOrder { .. } => "out_of_order",
            Note::Gap { .. } => "gap",
            Note::SynRetransmitted => "syn_retransmitted",
            Note::LostSync(_) => "lost_sync",
            Note::Resynced { .. } => "resynced",
            Note::NotWebSocket { .. } => "not_websocket",
            Note::Undecoded { .. } => "undecoded",
            Note::Incomplete { .. } => "incomplete",
        }
    }
}

#[cfg(test)]
impl Frame {
    /// For tests here and in the renderers: a final, unmasked frame whose whole payload was captured.
    pub(crate) fn whole(opcode: u8, payload: &[u8]) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            len: payload.len() as u64,
            payload: payload.to_vec(),
            missing: 0,
            message_opcode: None,
            compressed: false,
            issues: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame announcing `len` payload bytes of which `payload` was kept.
    fn frame(opcode: u8, payload: &[u8], len: u64) -> Frame {
        Frame { len, ..Frame::whole(opcode, payload) }
    }

    #[test]
    fn text_binary_close_and_ping_contents() {
        let f = frame(1, b"{\"a\":1}", 7);
        assert_eq!(f.content(), Content::Text(Cow::Borrowed("{\"a\":1}")));
        assert_eq!(frame(2, &[0, 1], 2).content(), Content::Binary(&[0, 1]));
        assert_eq!(frame(8, &[3, 0xe8, b'o', b'k'], 4).content(), Content::Close { code: 1000, reason: "ok" });
        assert!(matches!(frame(8, &[3], 1).content(), Content::BadClose { error: WsError::CloseOneByte, .. }));
        assert_eq!(frame(8, &[], 0).content(), Content::Empty);
        assert_eq!(frame(9, b"hi", 2).content(), Content::Text(Cow::Borrowed("hi")));
        assert_eq!(frame(10, &[0, 7], 2).content(), Content::Binary(&[0, 7]));
        assert_eq!(frame(1, &[0xff], 1).content(), Content::InvalidUtf8(&[0xff]));
        assert_eq!(frame(3, &[5], 1).op_name(), "opcode 0x3");
    }

    #[test]
    fn text_cut_inside_a_character_shows_the_valid_prefix() {
        let s = "猪猪".as_bytes();
        let f = frame(1, &s[..4], 6);
        assert_eq!(f.content(), Content::Text(Cow::Borrowed("猪")));
        let mut cont = frame(0, &s[1..], 5);
        cont.message_opcode = Some(OpCode::Text);
        assert!(matches!(cont.content(), Content::Text(t) if t.ends_with('猪')));
    }

    #[test]
    fn websocket_headers_are_picked_case_insensitively() {
        let head = HttpHead {
            first_line: "GET / HTTP/1.1".into(),
            headers: vec![
                ("Host".into(), "x".into()),
                ("Cookie".into(), "c".into()),
                ("sec-websocket-key".into(), "k".into()),
            ],
            len: 10,
        };
        let names: Vec<&str> = head.websocket_headers().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Host", "sec-websocket-key"]);
        assert_eq!(head.header("SEC-WEBSOCKET-KEY"), Some("k"));
    }
}
