//! Message assembly over the frame codec: validates each header against RFC 6455 (masking, reserved bits,
//! opcodes, control-frame rules, fragmentation order, size limit), unmasks in place, validates text as it
//! arrives, and yields whole messages and control frames. Pure: bytes in, events out, no I/O.

use std::fmt;

use super::frame::{close_code, FrameHeader, HeaderError, OpCode, MAX_CONTROL_PAYLOAD};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Checks that a whole text message is UTF-8. Chat traffic is mostly short ASCII, where a plain ASCII scan
/// beats a SIMD validator's set-up; anything else goes to simdutf8.
#[inline]
fn validate_text(bytes: &[u8]) -> Result<&str, WsError> {
    // An OR over every byte, without early exit, so the compiler vectorises it.
    if bytes.iter().fold(0u8, |acc, &b| acc | b) < 0x80 {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    simdutf8::basic::from_utf8(bytes).map_err(|_| WsError::InvalidUtf8)
}

/// Which side of the connection the decoder sits on; it decides whether incoming frames must be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decodes frames from a client: they must be masked.
    Server,
    /// Decodes frames from a server: they must not be masked.
    Client,
}

/// A complete message or control frame, borrowed from the input or from the decoder's assembly buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, validated UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping with its payload.
    Ping(&'a [u8]),
    /// A pong with its payload.
    Pong(&'a [u8]),
    /// A close frame: code and reason, or `None` for an empty close payload.
    Close(Option<(u16, &'a str)>),
}

/// Why the peer's byte stream violates the protocol; each maps to the close code to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// A reserved bit is set and no extension was negotiated.
    ReservedBits,
    /// An opcode reserved by RFC 6455.
    UnknownOpcode(u8),
    /// A client frame without a mask.
    UnmaskedFrame,
    /// A server frame with a mask.
    MaskedFrame,
    /// A control frame without FIN.
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong,
    /// A continuation frame with no message in progress.
    ContinuationWithoutStart,
    /// A text or binary frame while a fragmented message is in progress.
    DataInsideFragmentedMessage,
    /// A close frame with a one-byte payload.
    CloseOneByte,
    /// A close code that may not be sent on the wire.
    InvalidCloseCode(u16),
    /// Text (or a close reason) that is not valid UTF-8.
    InvalidUtf8,
    /// A frame or message larger than the configured limit.
    MessageTooBig,
    /// A 64-bit length with its top bit set.
    LengthOverflow,
}

impl WsError {
    /// The close code to send for this error.
    pub fn close_code(self) -> u16 {
        match self {
            WsError::InvalidUtf8 => close_code::INVALID_PAYLOAD,
            WsError::MessageTooBig => close_code::MESSAGE_TOO_BIG,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::ReservedBits => f.write_str("reserved bits set"),
            WsError::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            WsError::UnmaskedFrame => f.write_str("client frame not masked"),
            WsError::MaskedFrame => f.write_str("server frame masked"),
            WsError::FragmentedControl => f.write_str("fragmented control frame"),
            WsError::ControlTooLong => f.write_str("control frame payload over 125 bytes"),
            WsError::ContinuationWithoutStart => f.write_str("continuation frame without a message"),
            WsError::DataInsideFragmentedMessage => f.write_str("new data frame inside a fragmented message"),
            WsError::CloseOneByte => f.write_str("close payload of one byte"),
            WsError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            WsError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            WsError::MessageTooBig => f.write_str("message too big"),
            WsError::LengthOverflow => f.write_str("payload length overflow"),
        }
    }
}

impl std::error::Error for WsError {}

impl From<HeaderError> for WsError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::LengthOverflow => WsError::LengthOverflow,
        }
    }
}

/// The result of one decoding step: bytes of the input used, and the event they completed, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// How many bytes from the start of the input were used; the caller drops them before the next call.
    pub consumed: usize,
    /// A finished message or control frame.
    pub message: Option<Message<'a>>,
}

/// A data frame whose payload is arriving over several reads.
#[derive(Debug, Clone, Copy)]
struct StreamingFrame {
    fin: bool,
    mask: Option<[u8; 4]>,
    len: u64,
    received: u64,
}

/// The incremental message decoder for one connection.
#[derive(Debug)]
pub struct MessageDecoder {
    role: Role,
    max_message_bytes: usize,
    frame: Option<StreamingFrame>,
    /// The data opcode (text or binary) of the fragmented message in progress.
    assembling: Option<OpCode>,
    assembled: Vec<u8>,
    utf8: Utf8Validator,
    /// Set when the last call returned a message out of `assembled`; cleared lazily on the next call.
    release_assembled: bool,
}

/// Assembled messages larger than this give their buffer back once delivered, so idle connections stay small.
const KEEP_ASSEMBLY_CAPACITY: usize = 4096;

impl MessageDecoder {
    /// A decoder for `role` that refuses frames and messages over `max_message_bytes`.
    pub fn new(role: Role, max_message_bytes: usize) -> MessageDecoder {
        MessageDecoder {
            role,
            max_message_bytes,
            frame: None,
            assembling: None,
            assembled: Vec::new(),
            utf8: Utf8Validator::default(),
            release_assembled: false,
        }
    }

    /// True while a message is partly received (between frames of a fragmented message, or inside a frame).
    pub fn is_mid_message(&self) -> bool {
        self.frame.is_some() || self.assembling.is_some()
    }

    /// Decodes from the start of `buf`, unmasking it in place. `consumed == 0` with no message means more
    /// bytes are needed. Call again with the unconsumed rest until it reports that.
    pub fn decode<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Decoded<'a>, WsError> {
        if self.release_assembled {
            self.release_assembled = false;
            if self.assembled.capacity() > KEEP_ASSEMBLY_CAPACITY {
                self.assembled = Vec::new();
            } else {
                self.assembled.clear();
            }
        }
        if let Some(frame) = self.frame {
            return self.stream_payload(frame, buf);
        }
        let header = match FrameHeader::decode(buf)? {
            Some(h) => h,
            None => return Ok(Decoded { consumed: 0, message: None }),
        };
        let op = self.validate(&header)?;
        if op.is_control() {
            return control_frame(op, &header, buf);
        }
        let len = header.payload_len;
        let already = self.assembled.len() as u64;
        if len.saturating_add(already) > self.max_message_bytes as u64 {
            return Err(WsError::MessageTooBig);
        }
        let total = header.header_len + len as usize;
        if op != OpCode::Continuation && header.fin && buf.len() >= total {
            // Fast path: a whole unfragmented message in the input; deliver it in place without copying.
            let payload = &mut buf[header.header_len..total];
            if let Some(key) = header.mask {
                apply_mask(payload, key, 0);
            }
            let message =
                if op == OpCode::Text { Message::Text(validate_text(payload)?) } else { Message::Binary(payload) };
            return Ok(Decoded { consumed: total, message: Some(message) });
        }
        if op != OpCode::Continuation {
            self.assembling = Some(op);
        }
        self.frame = Some(StreamingFrame { fin: header.fin, mask: header.mask, len, received: 0 });
        if len == 0 {
            // Nothing to stream: finish the frame now.
            let frame = self.frame.take().map(|f| f.fin).unwrap_or(false);
            if frame {
                let message = self.finish_message()?;
                return Ok(Decoded { consumed: header.header_len, message: Some(message) });
            }
        }
        Ok(Decoded { consumed: header.header_len, message: None })
    }

    /// Checks a header against the protocol rules and the fragmentation state; returns its opcode.
    fn validate(&self, header: &FrameHeader) -> Result<OpCode, WsError> {
        if header.rsv != 0 {
            return Err(WsError::ReservedBits);
        }
        let op = header.op().ok_or(WsError::UnknownOpcode(header.opcode))?;
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(WsError::UnmaskedFrame),
            (Role::Client, true) => return Err(WsError::MaskedFrame),
            _ => {}
        }
        if op.is_control() {
            if !header.fin {
                return Err(WsError::FragmentedControl);
            }
            if header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(WsError::ControlTooLong);
            }
        } else if op == OpCode::Continuation {
            if self.assembling.is_none() {
                return Err(WsError::ContinuationWithoutStart);
            }
        } else if self.assembling.is_some() {
            return Err(WsError::DataInsideFragmentedMessage);
        }
        Ok(op)
    }

    /// Takes in as much of a streaming frame's payload as `buf` holds.
    fn stream_payload<'a>(&'a mut self, mut frame: StreamingFrame, buf: &'a mut [u8]) -> Result<Decoded<'a>, WsError> {
        let remaining = frame.len - frame.received;
        let take = remaining.min(buf.len() as u64) as usize;
        if take == 0 {
            return Ok(Decoded { consumed: 0, message: None });
        }
        let chunk = &mut buf[..take];
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, (frame.received & 3) as usize);
        }
        if self.assembling == Some(OpCode::Text) {
            self.utf8.feed(chunk).map_err(|_| WsError::InvalidUtf8)?;
        }
        self.assembled.extend_from_slice(chunk);
        frame.received += take as u64;
        if frame.received < frame.len {
            self.frame = Some(frame);
            return Ok(Decoded { consumed: take, message: None });
        }
        self.frame = None;
        if !frame.fin {
            return Ok(Decoded { consumed: take, message: None });
        }
        let message = self.finish_message()?;
        Ok(Decoded { consumed: take, message: Some(message) })
    }

    /// Ends the fragmented message in progress and lends it out of the assembly buffer.
    fn finish_message(&mut self) -> Result<Message<'_>, WsError> {
        let op = self.assembling.take();
        self.release_assembled = true;
        if op == Some(OpCode::Text) {
            self.utf8.finish().map_err(|_| WsError::InvalidUtf8)?;
            let text = validate_text(&self.assembled)?;
            Ok(Message::Text(text))
        } else {
            Ok(Message::Binary(&self.assembled))
        }
    }
}

/// Decodes a whole control frame, or asks for more bytes; control frames are never streamed.
fn control_frame<'a>(op: OpCode, header: &FrameHeader, buf: &'a mut [u8]) -> Result<Decoded<'a>, WsError> {
    let total = header.header_len + header.payload_len as usize;
    if buf.len() < total {
        return Ok(Decoded { consumed: 0, message: None });
    }
    let payload = &mut buf[header.header_len..total];
    if let Some(key) = header.mask {
        apply_mask(payload, key, 0);
    }
    let message = match op {
        OpCode::Ping => Message::Ping(payload),
        OpCode::Pong => Message::Pong(payload),
        _ => Message::Close(parse_close_payload(payload)?),
    };
    Ok(Decoded { consumed: total, message: Some(message) })
}

/// Splits and validates a close payload: empty, or a valid code followed by a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, WsError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(WsError::CloseOneByte),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !close_code::is_valid_on_wire(code) {
                return Err(WsError::InvalidCloseCode(code));
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{encode_header, MAX_HEADER_LEN};
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame with explicit FIN, RSV and raw opcode.
    fn raw_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        keyed_frame(fin, rsv, opcode, payload, KEY)
    }

    fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        raw_frame(fin, 0, op.as_u8(), payload)
    }

    /// An owned copy of an event, for comparing across calls.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Ev {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    fn own(m: Message<'_>) -> Ev {
        match m {
            Message::Text(t) => Ev::Text(t.to_string()),
            Message::Binary(b) => Ev::Binary(b.to_vec()),
            Message::Ping(b) => Ev::Ping(b.to_vec()),
            Message::Pong(b) => Ev::Pong(b.to_vec()),
            Message::Close(c) => Ev::Close(c.map(|(code, r)| (code, r.to_string()))),
        }
    }

    /// Feeds `reads` one after another the way the reactor does (keeping unconsumed bytes), collecting events.
    fn run(dec: &mut MessageDecoder, reads: &[&[u8]]) -> Result<Vec<Ev>, WsError> {
        match run_to_error(dec, reads) {
            (events, None) => Ok(events),
            (_, Some(e)) => Err(e),
        }
    }

    fn server() -> MessageDecoder {
        MessageDecoder::new(Role::Server, 65536)
    }

    #[test]
    fn whole_text_frame() {
        let f = frame(true, OpCode::Text, b"{\"type\":\"login\",\"name\":\"mynick\"}");
        assert_eq!(run(&mut server(), &[&f]), Ok(vec![Ev::Text("{\"type\":\"login\",\"name\":\"mynick\"}".into())]));
    }

    #[test]
    fn frame_straddling_reads_byte_by_byte() {
        let f = frame(true, OpCode::Text, "hi,  all ! 猪猪".as_bytes());
        let pieces: Vec<&[u8]> = f.chunks(1).collect();
        assert_eq!(run(&mut server(), &pieces), Ok(vec![Ev::Text("hi,  all ! 猪猪".into())]));
    }

    #[test]
    fn fragments_with_interleaved_ping() {
        let mut bytes = frame(false, OpCode::Text, b"Hel");
        bytes.extend(frame(true, OpCode::Ping, b"p"));
        bytes.extend(frame(false, OpCode::Continuation, b""));
        bytes.extend(frame(true, OpCode::Continuation, b"lo"));
        let events = run(&mut server(), &[&bytes]).unwrap();
        assert_eq!(events, vec![Ev::Ping(b"p".to_vec()), Ev::Text("Hello".into())]);
    }

    #[test]
    fn utf8_split_across_fragments_is_fine() {
        let euro = "€".as_bytes();
        let mut bytes = frame(false, OpCode::Text, &euro[..1]);
        bytes.extend(frame(true, OpCode::Continuation, &euro[1..]));
        assert_eq!(run(&mut server(), &[&bytes]), Ok(vec![Ev::Text("€".into())]));
    }

    #[test]
    fn invalid_utf8_fails_fast_in_first_fragment() {
        let mut dec = server();
        let bytes = frame(false, OpCode::Text, &[b'a', 0xf4, 0x90]);
        assert_eq!(run(&mut dec, &[&bytes]), Err(WsError::InvalidUtf8));
    }

    #[test]
    fn invalid_utf8_fails_fast_within_a_partial_frame() {
        // A frame announcing 100 bytes whose first few are already invalid: no need to wait for the rest.
        let f = frame(true, OpCode::Text, &[0xce, 0xba, 0xf4, 0x90, 0x80, 0x80, b'a', b'b', b'c', b'd']);
        let mut dec = server();
        assert_eq!(run(&mut dec, &[&f[..6 + 2]]), Ok(vec![]));
        assert_eq!(run(&mut dec, &[&f[8..10]]), Err(WsError::InvalidUtf8));
    }

    #[test]
    fn incomplete_utf8_at_message_end() {
        let mut bytes = frame(false, OpCode::Text, b"ok");
        bytes.extend(frame(true, OpCode::Continuation, &[0xe2, 0x82]));
        assert_eq!(run(&mut server(), &[&bytes]), Err(WsError::InvalidUtf8));
        let whole = frame(true, OpCode::Text, &[0xe2, 0x82]);
        assert_eq!(run(&mut server(), &[&whole]), Err(WsError::InvalidUtf8));
    }

    #[test]
    fn binary_message_fragments() {
        let mut bytes = frame(false, OpCode::Binary, &[0, 1]);
        bytes.extend(frame(true, OpCode::Continuation, &[0xff]));
        assert_eq!(run(&mut server(), &[&bytes]), Ok(vec![Ev::Binary(vec![0, 1, 0xff])]));
    }

    #[test]
    fn control_frames() {
        let mut bytes = frame(true, OpCode::Ping, b"abc");
        bytes.extend(frame(true, OpCode::Pong, b""));
        bytes.extend(frame(true, OpCode::Close, &[0x03, 0xe8, b'b', b'y', b'e']));
        assert_eq!(
            run(&mut server(), &[&bytes]),
            Ok(vec![Ev::Ping(b"abc".to_vec()), Ev::Pong(vec![]), Ev::Close(Some((1000, "bye".into())))])
        );
        assert_eq!(run(&mut server(), &[&frame(true, OpCode::Close, b"")]), Ok(vec![Ev::Close(None)]));
    }

    #[test]
    fn every_protocol_error() {
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (raw_frame(true, 4, 1, b"x"), WsError::ReservedBits),
            (raw_frame(true, 1, 1, b"x"), WsError::ReservedBits),
            (raw_frame(true, 0, 3, b"x"), WsError::UnknownOpcode(3)),
            (raw_frame(true, 0, 0xB, b""), WsError::UnknownOpcode(0xB)),
            (frame(false, OpCode::Ping, b""), WsError::FragmentedControl),
            (frame(true, OpCode::Ping, &[0u8; 126]), WsError::ControlTooLong),
            (frame(true, OpCode::Continuation, b"x"), WsError::ContinuationWithoutStart),
            (frame(true, OpCode::Close, &[3]), WsError::CloseOneByte),
            (frame(true, OpCode::Close, &[0x03, 0xed]), WsError::InvalidCloseCode(1005)),
            (frame(true, OpCode::Close, &[0x03, 0xe8, 0xff]), WsError::InvalidUtf8),
            (frame(true, OpCode::Text, &[0xff]), WsError::InvalidUtf8),
            (vec![0x81, 0x01, b'x'], WsError::UnmaskedFrame),
            (vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], WsError::LengthOverflow),
        ];
        for (bytes, want) in cases {
            assert_eq!(run(&mut server(), &[&bytes]), Err(want), "{bytes:?}");
            assert!(want.close_code() >= 1002);
        }
        let mut nested = frame(false, OpCode::Text, b"a");
        nested.extend(frame(true, OpCode::Text, b"b"));
        assert_eq!(run(&mut server(), &[&nested]), Err(WsError::DataInsideFragmentedMessage));
    }

    #[test]
    fn close_codes_map() {
        assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
        assert_eq!(WsError::MessageTooBig.close_code(), 1009);
        assert_eq!(WsError::ReservedBits.close_code(), 1002);
    }

    #[test]
    fn client_role_rejects_masked_frames() {
        let mut dec = MessageDecoder::new(Role::Client, 1024);
        assert_eq!(run(&mut dec, &[&frame(true, OpCode::Text, b"x")]), Err(WsError::MaskedFrame));
        let mut dec = MessageDecoder::new(Role::Client, 1024);
        assert_eq!(run(&mut dec, &[&[0x81, 0x02, b'o', b'k']]), Ok(vec![Ev::Text("ok".into())]));
    }

    #[test]
    fn size_limit_for_frames_and_assembled_messages() {
        let mut dec = MessageDecoder::new(Role::Server, 10);
        assert_eq!(run(&mut dec, &[&frame(true, OpCode::Text, &[b'a'; 10])]), Ok(vec![Ev::Text("a".repeat(10))]));
        assert_eq!(run(&mut dec, &[&frame(true, OpCode::Text, &[b'a'; 11])]), Err(WsError::MessageTooBig));
        let mut dec = MessageDecoder::new(Role::Server, 10);
        let mut bytes = frame(false, OpCode::Text, &[b'a'; 6]);
        bytes.extend(frame(true, OpCode::Continuation, &[b'a'; 6]));
        assert_eq!(run(&mut dec, &[&bytes]), Err(WsError::MessageTooBig));
        // The limit is checked from the header alone: a huge announced length fails before any payload.
        let mut dec = MessageDecoder::new(Role::Server, 10);
        let head = [0x81u8, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(run(&mut dec, &[&head]), Err(WsError::MessageTooBig));
    }

    #[test]
    fn assembly_buffer_is_released_after_a_large_message() {
        let mut dec = server();
        let mut bytes = frame(false, OpCode::Binary, &[7u8; 9000]);
        bytes.extend(frame(true, OpCode::Continuation, &[7u8; 9000]));
        assert_eq!(run(&mut dec, &[&bytes]).unwrap().len(), 1);
        assert_eq!(run(&mut dec, &[&frame(true, OpCode::Text, b"x")]).unwrap().len(), 1);
        assert_eq!(dec.assembled.capacity(), 0);
        assert!(!dec.is_mid_message());
    }

    proptest! {
        #[test]
        fn any_split_of_the_stream_yields_the_same_events(
            msgs in proptest::collection::vec(("\\PC{0,30}", any::<bool>(), 1usize..4), 1..6),
            cuts in proptest::collection::vec(0usize..400, 0..8)) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (text, binary, pieces) in &msgs {
                let bytes = text.as_bytes();
                let op = if *binary { OpCode::Binary } else { OpCode::Text };
                let step = bytes.len().div_ceil(*pieces).max(1);
                let chunks: Vec<&[u8]> = if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(step).collect() };
                for (i, c) in chunks.iter().enumerate() {
                    let first = i == 0;
                    let last = i + 1 == chunks.len();
                    stream.extend(frame(last, if first { op } else { OpCode::Continuation }, c));
                }
                stream.extend(frame(true, OpCode::Ping, b"k"));
                expected.push(if *binary { Ev::Binary(bytes.to_vec()) } else { Ev::Text(text.clone()) });
                expected.push(Ev::Ping(b"k".to_vec()));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut reads = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain(std::iter::once(stream.len())) {
                reads.push(&stream[prev..c]);
                prev = c;
            }
            prop_assert_eq!(run(&mut server(), &reads), Ok(expected));
        }

        /// Any stream of messages (text with code points cut by fragment boundaries, binary), with pings and
        /// pongs between fragments, every frame under its own mask key, ending in a close, a protocol
        /// violation at a message boundary or a violation in the middle of a fragmented message: for any
        /// split into reads, the decoder yields exactly the expected events and then the expected error.
        #[test]
        fn any_split_yields_the_same_events_controls_and_errors(
            msgs in proptest::collection::vec(message_strategy(), 0..5),
            end in 0usize..(2 * VIOLATIONS + 2),
            close_code in prop::sample::select(vec![1000u16, 1001, 3000, 4999]),
            end_key in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(0usize..2000, 0..12)) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (data, binary, pieces, control, keys) in &msgs {
                let op = if *binary { OpCode::Binary } else { OpCode::Text };
                let step = data.len().div_ceil(*pieces).max(1);
                let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(step).collect() };
                let (is_ping, payload) = control;
                let control_event = if *is_ping { Ev::Ping(payload.clone()) } else { Ev::Pong(payload.clone()) };
                let message_event = if *binary {
                    Ev::Binary(data.clone())
                } else {
                    Ev::Text(String::from_utf8(data.clone()).expect("generated text"))
                };
                for (i, c) in chunks.iter().enumerate() {
                    let raw_op = if i == 0 { op.as_u8() } else { 0 };
                    stream.extend(keyed_frame(i + 1 == chunks.len(), 0, raw_op, c, keys[i % keys.len()]));
                    if i == 0 {
                        // A control frame after the first fragment: inside the message when it has more.
                        stream.extend(keyed_frame(true, 0, if *is_ping { 0x9 } else { 0xA }, payload, keys[0]));
                    }
                }
                if chunks.len() > 1 {
                    expected.extend([control_event, message_event]);
                } else {
                    expected.extend([message_event, control_event]);
                }
            }
            let error = if end == 2 * VIOLATIONS {
                stream.extend(keyed_frame(true, 0, 0x8, &close_code.to_be_bytes(), end_key));
                expected.push(Ev::Close(Some((close_code, String::new()))));
                None
            } else if end == 2 * VIOLATIONS + 1 {
                None // The stream just ends; a trailing partial frame would be "need more".
            } else {
                let mid = end >= VIOLATIONS;
                if mid {
                    // A fragmented message is in progress when the violation arrives.
                    stream.extend(keyed_frame(false, 0, 0x1, "猪".as_bytes(), end_key));
                }
                let (bytes, err) = violation(end % VIOLATIONS, mid, end_key);
                stream.extend(bytes);
                Some(err)
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut reads = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain(std::iter::once(stream.len())) {
                reads.push(&stream[prev..c]);
                prev = c;
            }
            let mut dec = MessageDecoder::new(Role::Server, LIMIT);
            prop_assert_eq!(run_to_error(&mut dec, &reads), (expected.clone(), error));
            // The same stream in one read agrees.
            let mut dec = MessageDecoder::new(Role::Server, LIMIT);
            prop_assert_eq!(run_to_error(&mut dec, &[&stream]), (expected, error));
        }
    }

    /// The size limit of the split property's decoder.
    const LIMIT: usize = 1000;

    /// How many kinds of violation [`violation`] builds.
    const VIOLATIONS: usize = 9;

    /// A message for the split property: payload, binary?, fragment count, the control frame after its
    /// first fragment (ping?, payload), mask keys for its frames.
    type GenMessage = (Vec<u8>, bool, usize, (bool, Vec<u8>), Vec<[u8; 4]>);

    fn message_strategy() -> impl Strategy<Value = GenMessage> {
        (
            prop_oneof![
                "\\PC{0,40}".prop_map(|s: String| (s.into_bytes(), false)),
                proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| (b, true))
            ],
            1usize..6,
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..=125)),
            proptest::collection::vec(any::<[u8; 4]>(), 1..4),
        )
            .prop_map(|((data, binary), pieces, control, keys)| (data, binary, pieces, control, keys))
    }

    /// The `kind`th protocol violation as bytes and the error it must produce; `mid` says a fragmented text
    /// message is in progress.
    fn violation(kind: usize, mid: bool, key: [u8; 4]) -> (Vec<u8>, WsError) {
        let data_op = if mid { 0x0 } else { 0x2 };
        match kind {
            0 => (keyed_frame(true, 4, data_op, b"x", key), WsError::ReservedBits),
            1 => (keyed_frame(true, 0, 0xB, b"", key), WsError::UnknownOpcode(0xB)),
            2 => (vec![0x80 | data_op, 0x01, b'x'], WsError::UnmaskedFrame),
            3 => (keyed_frame(false, 0, 0x9, b"p", key), WsError::FragmentedControl),
            4 => (keyed_frame(true, 0, 0xA, &[0; 126], key), WsError::ControlTooLong),
            5 => (keyed_frame(true, 0, 0x8, &[0x03], key), WsError::CloseOneByte),
            6 => (keyed_frame(true, 0, 0x8, &1006u16.to_be_bytes(), key), WsError::InvalidCloseCode(1006)),
            7 => {
                // Text that turns invalid: a surrogate, in a new message or continuing the one in progress.
                let op = if mid { 0x0 } else { 0x1 };
                (keyed_frame(false, 0, op, b"ok\xed\xa0\x80", key), WsError::InvalidUtf8)
            }
            _ => {
                // A frame announcing more than the limit: refused from its header alone.
                let mut head = vec![data_op, 0xFE];
                head.extend_from_slice(&((LIMIT + 1) as u16).to_be_bytes());
                head.extend_from_slice(&key);
                (head, WsError::MessageTooBig)
            }
        }
    }

    /// A frame with explicit FIN, RSV bits, raw opcode and mask key.
    fn keyed_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut head, fin, OpCode::Text, Some(key), payload.len());
        head[0] = (head[0] & 0x80) | (rsv << 4) | opcode;
        let mut out = head[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], key, 0);
        out
    }

    /// Like [`run`], but keeps the events decoded before an error.
    fn run_to_error(dec: &mut MessageDecoder, reads: &[&[u8]]) -> (Vec<Ev>, Option<WsError>) {
        let mut pending: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for read in reads {
            pending.extend_from_slice(read);
            loop {
                let d = match dec.decode(&mut pending) {
                    Ok(d) => d,
                    Err(e) => return (out, Some(e)),
                };
                let consumed = d.consumed;
                let got = d.message.map(own);
                let progressed = consumed > 0 || got.is_some();
                if let Some(ev) = got {
                    out.push(ev);
                }
                pending.drain(..consumed);
                if !progressed {
                    break;
                }
            }
        }
        (out, None)
    }
}
