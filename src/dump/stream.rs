//! WebSocket decoding of one direction's reassembled byte stream: the HTTP upgrade head, then frames, each
//! reported raw (FIN, RSV, opcode, mask, length) with its payload unmasked by `ws::mask`. Headers are decoded
//! by `ws::frame`. Bytes arrive in any split; payloads are kept up to a limit so memory stays bounded. After a
//! gap or a mid-connection start the decoder looks for a plausible frame header at the next segment start.

use crate::ws::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::ws::handshake::{parse_request, HandshakeError, UpgradeRequest};
use crate::ws::mask::apply_mask;

use super::event::{Direction, Frame, FrameIssue, HttpHead, Message, Note, SyncLoss};

/// Largest HTTP head decoded.
pub const MAX_HTTP_HEAD: usize = 64 * 1024;

/// Largest payload length believed while looking for a frame boundary.
const MAX_PLAUSIBLE_PAYLOAD: u64 = 1 << 24;

/// Header lines parsed per head.
const MAX_HEADERS: usize = 128;

/// What the decoder found.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The client's request head, with the upgrade validation of `ws::handshake`.
    Request(HttpHead, Result<UpgradeRequest, HandshakeError>),
    /// The server's response head and status.
    Response(HttpHead, u16),
    /// A frame.
    Frame(Frame),
    /// A fragmented message completed.
    Message(Message),
    /// A remark.
    Note(Note),
}

/// How a stream's bytes begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the connection's first byte: an HTTP head.
    Handshake,
    /// Somewhere inside the connection: sniff for a head or a frame.
    MidStream,
}

/// Decoder state.
#[derive(Debug, Clone)]
enum State {
    /// Collecting an HTTP head.
    Http(Vec<u8>),
    /// Mid-connection, before the first bytes.
    Sniff,
    /// In sync with frame boundaries.
    Frames {
        /// Header bytes of an incomplete header.
        hdr: Vec<u8>,
        /// The frame whose payload is arriving.
        cur: Option<InFrame>,
    },
    /// Out of sync: waiting for a segment that starts with a plausible frame.
    Lost,
    /// Not WebSocket: bytes are counted, not decoded.
    Opaque,
}

/// A frame whose payload is arriving.
#[derive(Debug, Clone)]
struct InFrame {
    /// Its header.
    header: FrameHeader,
    /// Payload bytes seen (or skipped as missing).
    got: u64,
    /// Kept payload, unmasked.
    kept: Vec<u8>,
    /// Payload bytes missing from the capture.
    missing: u64,
}

/// A fragmented message being reassembled.
#[derive(Debug, Clone)]
struct Assembly {
    /// Text or binary.
    opcode: OpCode,
    /// Frames so far.
    frames: u32,
    /// Payload bytes so far.
    len: u64,
    /// Kept payload.
    kept: Vec<u8>,
    /// Missing payload bytes.
    missing: u64,
    /// permessage-deflate.
    compressed: bool,
}

/// The decoder for one direction.
#[derive(Debug, Clone)]
pub struct WsStream {
    /// Whose bytes these are.
    dir: Direction,
    /// Where the decoder is.
    state: State,
    /// Payload bytes kept per frame and message.
    keep: usize,
    /// permessage-deflate was negotiated.
    deflate: bool,
    /// The fragmented message in progress.
    msg: Option<Assembly>,
    /// Bytes skipped while lost or opaque, not yet reported.
    skipped: u64,
}

impl WsStream {
    /// A decoder for `dir`'s bytes that keeps up to `keep` payload bytes per frame.
    pub fn new(dir: Direction, start: Start, keep: usize) -> WsStream {
        let state = match start {
            Start::Handshake => State::Http(Vec::new()),
            Start::MidStream => State::Sniff,
        };
        WsStream { dir, state, keep, deflate: false, msg: None, skipped: 0 }
    }

    /// permessage-deflate was negotiated: RSV1 marks compressed messages.
    pub fn set_deflate(&mut self, on: bool) {
        self.deflate = on;
    }

    /// Whether the decoder is in sync with frame boundaries.
    #[cfg(test)]
    pub fn in_sync(&self) -> bool {
        matches!(self.state, State::Frames { .. })
    }

    /// Decodes the next bytes of the stream. `segment_start`: they start where a TCP segment started.
    pub fn feed(&mut self, mut data: &[u8], segment_start: bool, out: &mut Vec<StreamEvent>) {
        let mut at_segment_start = segment_start;
        while !data.is_empty() {
            match &mut self.state {
                State::Sniff => {
                    self.state = if data.starts_with(b"GET ") || data.starts_with(b"HTTP/") {
                        State::Http(Vec::new())
                    } else if at_segment_start && self.plausible(data) {
                        State::Frames { hdr: Vec::new(), cur: None }
                    } else {
                        out.push(StreamEvent::Note(Note::LostSync(SyncLoss::MidStream)));
                        State::Lost
                    };
                }
                State::Http(buf) => {
                    let before = buf.len();
                    let take = data.len().min(MAX_HTTP_HEAD + 1 - before.min(MAX_HTTP_HEAD));
                    buf.extend_from_slice(&data[..take]);
                    match parse_head(self.dir, buf) {
                        Ok(Some((head, status, upgrade))) => {
                            let used = head.len - before;
                            data = &data[used..];
                            at_segment_start = false;
                            self.state = self.after_head(status, upgrade.is_ok(), out);
                            out.push(match self.dir {
                                Direction::ClientToServer => StreamEvent::Request(head, upgrade),
                                Direction::ServerToClient => StreamEvent::Response(head, status),
                            });
                            // Notes about the state change read better after the head itself.
                            let last = out.len() - 1;
                            if last > 0 && matches!(out[last - 1], StreamEvent::Note(_)) {
                                out.swap(last - 1, last);
                            }
                        }
                        Ok(None) if buf.len() <= MAX_HTTP_HEAD => return,
                        Ok(None) => {
                            self.skipped += buf.len() as u64;
                            data = &data[take..];
                            self.lose(SyncLoss::HeadTooLong, out);
                        }
                        Err(_) => {
                            self.skipped += buf.len() as u64;
                            data = &data[take..];
                            self.lose(SyncLoss::BadHttp, out);
                        }
                    }
                }
                State::Frames { .. } => {
                    data = self.frames(data, out);
                    at_segment_start = false;
                }
                State::Lost => {
                    if at_segment_start && self.plausible(data) {
                        if self.skipped > 0 {
                            out.push(StreamEvent::Note(Note::Resynced { skipped: self.skipped }));
                        }
                        self.skipped = 0;
                        self.msg = None;
                        self.state = State::Frames { hdr: Vec::new(), cur: None };
                    } else {
                        self.skipped += data.len() as u64;
                        return;
                    }
                }
                State::Opaque => {
                    self.skipped += data.len() as u64;
                    return;
                }
            }
        }
    }

    /// Bytes of the stream are missing from the capture.
    pub fn gap(&mut self, bytes: u64, out: &mut Vec<StreamEvent>) {
        match &mut self.state {
            State::Frames { hdr, cur: Some(f) } if hdr.is_empty() && f.header.payload_len - f.got >= bytes => {
                // Inside one payload: the frame boundaries are still known.
                f.got += bytes;
                f.missing += bytes;
                if f.got == f.header.payload_len {
                    let f = f.clone();
                    self.state = State::Frames { hdr: Vec::new(), cur: None };
                    self.complete(f, out);
                }
            }
            State::Opaque | State::Lost => self.skipped += bytes,
            State::Sniff => {
                self.skipped += bytes;
                self.state = State::Lost;
            }
            _ => {
                self.skipped += bytes;
                self.lose(SyncLoss::Gap, out);
            }
        }
    }

    /// The stream has ended: reports a cut frame or head and undecoded bytes.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match std::mem::replace(&mut self.state, State::Opaque) {
            State::Http(buf) if !buf.is_empty() => {
                out.push(StreamEvent::Note(Note::Incomplete { what: "an HTTP head", have: buf.len() as u64 }));
            }
            State::Frames { hdr, cur } => {
                if let Some(f) = cur {
                    let have = f.header.header_len as u64 + f.got;
                    out.push(StreamEvent::Note(Note::Incomplete { what: "a frame", have }));
                } else if !hdr.is_empty() {
                    out.push(StreamEvent::Note(Note::Incomplete { what: "a frame header", have: hdr.len() as u64 }));
                }
            }
            _ => {}
        }
        if self.skipped > 0 {
            out.push(StreamEvent::Note(Note::Undecoded { bytes: self.skipped }));
            self.skipped = 0;
        }
    }

    /// The state after a complete HTTP head.
    fn after_head(&mut self, status: u16, valid_upgrade: bool, out: &mut Vec<StreamEvent>) -> State {
        let frames = State::Frames { hdr: Vec::new(), cur: None };
        match self.dir {
            Direction::ClientToServer if valid_upgrade => frames,
            Direction::ServerToClient if status == 101 => frames,
            Direction::ServerToClient => {
                out.push(StreamEvent::Note(Note::NotWebSocket { status }));
                State::Opaque
            }
            Direction::ClientToServer => State::Opaque,
        }
    }

    /// Leaves sync for `why`.
    fn lose(&mut self, why: SyncLoss, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Note(Note::LostSync(why)));
        self.msg = None;
        self.state = State::Lost;
    }

    /// Whether `data` starts with a frame header this direction would plausibly send.
    fn plausible(&self, data: &[u8]) -> bool {
        let h = match FrameHeader::decode(data) {
            Ok(Some(h)) => h,
            _ => return false,
        };
        let op = match h.op() {
            Some(op) if op != OpCode::Continuation => op,
            _ => return false,
        };
        let rsv_ok = h.rsv == 0 || (h.rsv == 4 && !op.is_control());
        let mask_ok = h.mask.is_some() == (self.dir == Direction::ClientToServer);
        let control_ok = !op.is_control() || (h.fin && h.payload_len <= MAX_CONTROL_PAYLOAD as u64);
        rsv_ok && mask_ok && control_ok && h.payload_len <= MAX_PLAUSIBLE_PAYLOAD
    }

    /// Decodes frames from `data` while in sync; returns what is left (nothing, or bytes after losing sync).
    fn frames<'a>(&mut self, mut data: &'a [u8], out: &mut Vec<StreamEvent>) -> &'a [u8] {
        while !data.is_empty() {
            let State::Frames { hdr, cur } = &mut self.state else {
                return data;
            };
            match cur {
                None => {
                    let before = hdr.len();
                    let take = data.len().min(MAX_HEADER_LEN - before);
                    hdr.extend_from_slice(&data[..take]);
                    match FrameHeader::decode(hdr) {
                        Ok(Some(header)) => {
                            data = &data[header.header_len - before..];
                            hdr.clear();
                            *cur = Some(InFrame { header, got: 0, kept: Vec::new(), missing: 0 });
                        }
                        Ok(None) => data = &data[take..],
                        Err(_) => {
                            self.skipped += (hdr.len() + data.len() - take) as u64;
                            self.lose(SyncLoss::BadHeader, out);
                            return &[];
                        }
                    }
                }
                Some(f) => {
                    let want = f.header.payload_len - f.got;
                    let take = data.len().min(usize::try_from(want).unwrap_or(usize::MAX));
                    let room = self.keep.saturating_sub(f.kept.len());
                    if room > 0 && f.missing == 0 {
                        let k = take.min(room);
                        let start = f.kept.len();
                        f.kept.extend_from_slice(&data[..k]);
                        if let Some(key) = f.header.mask {
                            apply_mask(&mut f.kept[start..], key, (f.got % 4) as usize);
                        }
                    }
                    f.got += take as u64;
                    data = &data[take..];
                }
            }
            if let State::Frames { cur: cur @ Some(_), .. } = &mut self.state {
                if cur.as_ref().is_some_and(|f| f.got == f.header.payload_len) {
                    if let Some(f) = cur.take() {
                        self.complete(f, out);
                    }
                }
            }
        }
        data
    }

    /// Reports a complete frame, and the message it completes.
    fn complete(&mut self, f: InFrame, out: &mut Vec<StreamEvent>) {
        let h = f.header;
        let op = h.op();
        let mut issues = Vec::new();
        match (self.dir, h.mask.is_some()) {
            (Direction::ClientToServer, false) => issues.push(FrameIssue::UnmaskedClientFrame),
            (Direction::ServerToClient, true) => issues.push(FrameIssue::MaskedServerFrame),
            _ => {}
        }
        let starts_message = matches!(op, Some(OpCode::Text | OpCode::Binary));
        let compressed = if starts_message {
            self.deflate && h.rsv & 4 != 0
        } else {
            op == Some(OpCode::Continuation) && self.msg.as_ref().is_some_and(|m| m.compressed)
        };
        let allowed_rsv = if self.deflate && starts_message { 4 } else { 0 };
        if h.rsv & !allowed_rsv != 0 {
            issues.push(FrameIssue::ReservedBits);
        }
        match op {
            None => issues.push(FrameIssue::ReservedOpcode),
            Some(o) if o.is_control() => {
                if !h.fin {
                    issues.push(FrameIssue::FragmentedControl);
                }
                if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                    issues.push(FrameIssue::ControlTooLong);
                }
            }
            Some(OpCode::Continuation) if self.msg.is_none() => issues.push(FrameIssue::UnexpectedContinuation),
            Some(OpCode::Text | OpCode::Binary) if self.msg.is_some() => {
                issues.push(FrameIssue::UnfinishedMessage);
                self.msg = None;
            }
            _ => {}
        }
        let frame = Frame {
            fin: h.fin,
            rsv: h.rsv,
            opcode: h.opcode,
            mask: h.mask,
            len: h.payload_len,
            payload: f.kept,
            missing: f.missing,
            message_opcode: if op == Some(OpCode::Continuation) { self.msg.as_ref().map(|m| m.opcode) } else { None },
            compressed,
            issues,
        };
        let mut message = None;
        match op {
            Some(o @ (OpCode::Text | OpCode::Binary)) if !h.fin => {
                self.msg = Some(Assembly {
                    opcode: o,
                    frames: 1,
                    len: frame.len,
                    kept: frame.payload.clone(),
                    missing: frame.missing,
                    compressed,
                });
            }
            Some(OpCode::Continuation) => {
                if let Some(m) = self.msg.as_mut() {
                    m.frames += 1;
                    m.len += frame.len;
                    m.missing += frame.missing;
                    let room = self.keep.saturating_sub(m.kept.len());
                    m.kept.extend_from_slice(&frame.payload[..room.min(frame.payload.len())]);
                    if h.fin {
                        message = self.msg.take();
                    }
                }
            }
            _ => {}
        }
        out.push(StreamEvent::Frame(frame));
        if let Some(m) = message {
            out.push(StreamEvent::Message(Message {
                opcode: m.opcode,
                frames: m.frames,
                len: m.len,
                payload: m.kept,
                missing: m.missing,
                compressed: m.compressed,
            }));
        }
    }
}

/// A request head's upgrade validation by `ws::handshake` (`Err(Malformed)` for a response head).
type Upgrade = Result<UpgradeRequest, HandshakeError>;

/// Parses a complete head from `buf`: `Ok(None)` while incomplete, `Err` when it is not HTTP.
fn parse_head(dir: Direction, buf: &[u8]) -> Result<Option<(HttpHead, u16, Upgrade)>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (first_line, len, status, hdrs) = match dir {
        Direction::ClientToServer => {
            let mut req = httparse::Request::new(&mut headers);
            let len = match req.parse(buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(e),
            };
            let line = format!(
                "{} {} HTTP/1.{}",
                req.method.unwrap_or("?"),
                req.path.unwrap_or("?"),
                req.version.unwrap_or(1)
            );
            (line, len, 0, collect_headers(req.headers))
        }
        Direction::ServerToClient => {
            let mut resp = httparse::Response::new(&mut headers);
            let len = match resp.parse(buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(e),
            };
            let code = resp.code.unwrap_or(0);
            let line = format!("HTTP/1.{} {} {}", resp.version.unwrap_or(1), code, resp.reason.unwrap_or(""));
            (line, len, code, collect_headers(resp.headers))
        }
    };
    let upgrade = match dir {
        Direction::ClientToServer => match parse_request(&buf[..len]) {
            Ok(Some((req, _))) => Ok(req),
            Ok(None) => Err(HandshakeError::Malformed),
            Err(e) => Err(e),
        },
        Direction::ServerToClient => Err(HandshakeError::Malformed),
    };
    Ok(Some((HttpHead { first_line: first_line.trim_end().to_string(), headers: hdrs, len }, status, upgrade)))
}

/// Header names and values as strings.
fn collect_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{close_payload, frame as server_frame, write_masked_frame};
    use crate::ws::handshake::{client_request, switching_protocols};

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn masked(op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_masked_frame(&mut out, op, payload, KEY);
        out
    }

    fn frames_of(events: &[StreamEvent]) -> Vec<&Frame> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn client_bytes() -> Vec<u8> {
        let mut bytes = client_request("127.0.0.1:7272", "/", "dGhlIHNhbXBsZSBub25jZQ==");
        bytes.extend(masked(OpCode::Text, br#"{"type":"login","name":"mynick"}"#));
        bytes.extend(masked(OpCode::Close, &close_payload(1000, "bye")));
        bytes
    }

    #[test]
    fn client_stream_in_every_split_gives_the_same_events() {
        let bytes = client_bytes();
        let mut whole = WsStream::new(Direction::ClientToServer, Start::Handshake, 4096);
        let mut expected = Vec::new();
        whole.feed(&bytes, true, &mut expected);
        assert!(matches!(&expected[0], StreamEvent::Request(h, Ok(_)) if h.first_line == "GET / HTTP/1.1"));
        let frames = frames_of(&expected);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].payload, br#"{"type":"login","name":"mynick"}"#);
        assert_eq!(frames[0].mask, Some(KEY));
        assert!(frames[0].issues.is_empty());
        assert_eq!(frames[1].payload, close_payload(1000, "bye"));
        for cut in 1..bytes.len() {
            let mut s = WsStream::new(Direction::ClientToServer, Start::Handshake, 4096);
            let mut got = Vec::new();
            s.feed(&bytes[..cut], true, &mut got);
            s.feed(&bytes[cut..], true, &mut got);
            assert_eq!(got, expected, "cut at {cut}");
        }
        let mut s = WsStream::new(Direction::ClientToServer, Start::Handshake, 4096);
        let mut got = Vec::new();
        for b in &bytes {
            s.feed(std::slice::from_ref(b), false, &mut got);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn server_stream_after_101_and_refusal() {
        let mut bytes = switching_protocols("dGhlIHNhbXBsZSBub25jZQ==");
        bytes.extend(server_frame(OpCode::Text, b"hello"));
        bytes.extend(server_frame(OpCode::Ping, b""));
        let mut s = WsStream::new(Direction::ServerToClient, Start::Handshake, 4096);
        let mut out = Vec::new();
        s.feed(&bytes, true, &mut out);
        assert!(matches!(&out[0], StreamEvent::Response(_, 101)));
        assert_eq!(frames_of(&out).len(), 2);

        let mut s = WsStream::new(Direction::ServerToClient, Start::Handshake, 4096);
        let mut out = Vec::new();
        s.feed(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 3\r\n\r\nabc", true, &mut out);
        s.finish(&mut out);
        assert!(matches!(&out[0], StreamEvent::Response(_, 426)));
        assert_eq!(out[1], StreamEvent::Note(Note::NotWebSocket { status: 426 }));
        assert_eq!(out[2], StreamEvent::Note(Note::Undecoded { bytes: 3 }));
    }

    #[test]
    fn payload_beyond_the_keep_limit_is_counted_not_kept() {
        let payload = vec![b'x'; 1000];
        let mut s = WsStream::new(Direction::ClientToServer, Start::MidStream, 10);
        let mut out = Vec::new();
        s.feed(&masked(OpCode::Binary, &payload), true, &mut out);
        let f = frames_of(&out)[0];
        assert_eq!((f.len, f.payload.len()), (1000, 10));
        assert_eq!(f.payload, b"xxxxxxxxxx");
    }

    #[test]
    fn fragments_are_reported_and_reassembled() {
        let mut bytes = Vec::new();
        bytes.extend([0x01, 0x03, b'a', b'b', b'c']);
        bytes.extend(server_frame(OpCode::Ping, b"p"));
        bytes.extend([0x80, 0x02, b'd', b'e']);
        let mut s = WsStream::new(Direction::ServerToClient, Start::MidStream, 4096);
        let mut out = Vec::new();
        s.feed(&bytes, true, &mut out);
        let frames = frames_of(&out);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[2].message_opcode, Some(OpCode::Text));
        let msg = out.iter().find_map(|e| match e {
            StreamEvent::Message(m) => Some(m),
            _ => None,
        });
        let msg = msg.unwrap();
        assert_eq!((msg.frames, msg.len, msg.payload.as_slice()), (2, 5, &b"abcde"[..]));
    }

    #[test]
    fn protocol_issues_are_flagged() {
        let mut s = WsStream::new(Direction::ClientToServer, Start::Handshake, 4096);
        let mut out = Vec::new();
        s.state = State::Frames { hdr: Vec::new(), cur: None };
        s.feed(&[0xB3, 0x00], true, &mut out); // RSV2 and RSV3 set, reserved opcode 3, unmasked
        s.feed(&[0x09, 0x80, 1, 2, 3, 4], true, &mut out); // ping without FIN
        s.feed(&[0x80, 0x80, 1, 2, 3, 4], true, &mut out); // stray continuation
        let f = frames_of(&out);
        assert_eq!(
            f[0].issues,
            [FrameIssue::UnmaskedClientFrame, FrameIssue::ReservedBits, FrameIssue::ReservedOpcode]
        );
        assert_eq!(f[1].issues, [FrameIssue::FragmentedControl]);
        assert_eq!(f[2].issues, [FrameIssue::UnexpectedContinuation]);
    }

    #[test]
    fn mid_stream_resyncs_on_a_plausible_segment_start() {
        let mut s = WsStream::new(Direction::ClientToServer, Start::MidStream, 4096);
        let mut out = Vec::new();
        // The tail of some frame: not a plausible client frame start.
        s.feed(b"tail of a frame", true, &mut out);
        assert!(!s.in_sync());
        let frame = masked(OpCode::Text, b"hi");
        s.feed(&frame[..3], false, &mut out); // not at a segment start: ignored
        s.feed(&frame, true, &mut out);
        assert!(s.in_sync());
        assert_eq!(out[0], StreamEvent::Note(Note::LostSync(SyncLoss::MidStream)));
        assert_eq!(out[1], StreamEvent::Note(Note::Resynced { skipped: 18 }));
        assert_eq!(frames_of(&out)[0].payload, b"hi");
    }

    #[test]
    fn mid_stream_starting_with_a_request_decodes_it() {
        let mut s = WsStream::new(Direction::ClientToServer, Start::MidStream, 4096);
        let mut out = Vec::new();
        s.feed(&client_bytes(), true, &mut out);
        assert!(matches!(out[0], StreamEvent::Request(..)));
        assert_eq!(frames_of(&out).len(), 2);
    }

    #[test]
    fn gap_inside_a_payload_keeps_sync_and_elsewhere_loses_it() {
        let frame = server_frame(OpCode::Binary, &[1, 2, 3, 4, 5, 6]);
        let mut s = WsStream::new(Direction::ServerToClient, Start::MidStream, 4096);
        let mut out = Vec::new();
        s.feed(&frame[..4], true, &mut out);
        s.gap(3, &mut out);
        s.feed(&frame[7..], true, &mut out);
        let f = frames_of(&out)[0];
        assert_eq!((f.payload.as_slice(), f.missing), (&[1u8, 2][..], 3));
        assert!(s.in_sync());
        s.gap(5, &mut out);
        assert!(!s.in_sync());
        assert_eq!(out.last(), Some(&StreamEvent::Note(Note::LostSync(SyncLoss::Gap))));
    }

    #[test]
    fn bad_http_and_cut_streams_are_noted() {
        let mut s = WsStream::new(Direction::ServerToClient, Start::Handshake, 4096);
        let mut out = Vec::new();
        s.feed(b"\x00\x01 not http\r\n\r\n", true, &mut out);
        assert_eq!(out[0], StreamEvent::Note(Note::LostSync(SyncLoss::BadHttp)));
        let mut s = WsStream::new(Direction::ServerToClient, Start::MidStream, 4096);
        let mut out = Vec::new();
        s.feed(&[0x81, 0x05, b'a'], true, &mut out);
        s.finish(&mut out);
        assert!(matches!(out.last(), Some(StreamEvent::Note(Note::Incomplete { what: "a frame", have: 3 }))));
    }
}
