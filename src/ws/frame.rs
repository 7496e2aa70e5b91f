//! The WebSocket frame header (RFC 6455 section 5.2): decoding without consuming when incomplete, encoding
//! into a caller's buffer, opcodes and close codes. No protocol policy lives here; `ws::message` decides
//! which headers are acceptable.

use std::fmt;

/// Longest possible frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes defined by RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// Continuation of a fragmented message.
    Continuation,
    /// UTF-8 text data.
    Text,
    /// Binary data.
    Binary,
    /// Close control frame.
    Close,
    /// Ping control frame.
    Ping,
    /// Pong control frame.
    Pong,
}

impl OpCode {
    /// The opcode for a raw 4-bit value, or `None` for reserved values.
    pub fn from_u8(raw: u8) -> Option<OpCode> {
        match raw {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The raw 4-bit value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// True for close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OpCode::Continuation => "cont",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
        };
        f.write_str(name)
    }
}

/// Close status codes used by this crate (RFC 6455 section 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Endpoint going away (server shutdown, idle timeout).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Data type that the endpoint cannot accept (binary in chat mode).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation (slow consumer).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// Message too big.
    pub const MESSAGE_TOO_BIG: u16 = 1009;

    /// Whether a peer may send `code` in a close frame: the registered codes that are not reserved for
    /// local use, and the 3000–4999 range for libraries and applications.
    pub fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// A decoded frame header, raw: reserved bits and unknown opcodes are reported, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit: last frame of a message.
    pub fin: bool,
    /// The three RSV bits, in the low bits (RSV1 = 4, RSV2 = 2, RSV3 = 1).
    pub rsv: u8,
    /// The raw 4-bit opcode.
    pub opcode: u8,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Bytes taken by the header itself.
    pub header_len: usize,
}

/// A header that cannot be decoded at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// A 64-bit length with its most significant bit set (RFC 6455 section 5.2).
    LengthOverflow,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::LengthOverflow => f.write_str("64-bit payload length has its top bit set"),
        }
    }
}

impl std::error::Error for HeaderError {}

impl FrameHeader {
    /// Decodes the header at the start of `buf`; `Ok(None)` when `buf` does not yet hold all of it.
    pub fn decode(buf: &[u8]) -> Result<Option<FrameHeader>, HeaderError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        let (payload_len, mut pos) = match len7 {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut len = [0u8; 8];
                len.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(len);
                if len >> 63 != 0 {
                    return Err(HeaderError::LengthOverflow);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            pos += 4;
            Some(key)
        } else {
            None
        };
        Ok(Some(FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0f,
            mask,
            payload_len,
            header_len: pos,
        }))
    }

    /// The opcode, or `None` when it is reserved.
    pub fn op(&self) -> Option<OpCode> {
        OpCode::from_u8(self.opcode)
    }

    /// Header plus payload length, saturating on absurd lengths.
    pub fn frame_len(&self) -> u64 {
        self.payload_len.saturating_add(self.header_len as u64)
    }
}

/// Writes a frame header into `out` and returns how many bytes it used (2 to 14).
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: usize,
) -> usize {
    out[0] = (if fin { 0x80 } else { 0 }) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = if payload_len < 126 {
        out[1] = mask_bit | payload_len as u8;
        2
    } else if payload_len <= usize::from(u16::MAX) {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    if let Some(key) = mask {
        out[pos..pos + 4].copy_from_slice(&key);
        pos += 4;
    }
    pos
}

/// Appends a whole unmasked frame (server to client) to `out`.
pub fn write_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, opcode, None, payload.len());
    out.reserve(n + payload.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}

/// Appends a whole masked frame (client to server) to `out`, masking the copy of `payload`.
pub fn write_masked_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], key: [u8; 4]) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, opcode, Some(key), payload.len());
    out.reserve(n + payload.len());
    out.extend_from_slice(&head[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    super::mask::apply_mask(&mut out[start..], key, 0);
}

/// A whole unmasked frame as a new vector.
pub fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + MAX_HEADER_LEN);
    write_frame(&mut out, opcode, payload);
    out
}

/// The payload of a close frame: the code in network order, then the reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_single_frame_unmasked_hello() {
        let buf = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let h = FrameHeader::decode(&buf).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.op(), Some(OpCode::Text));
        assert_eq!(h.mask, None);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.header_len, 2);
    }

    #[test]
    fn rfc_single_frame_masked_hello() {
        let buf = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let h = FrameHeader::decode(&buf).unwrap().unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.header_len, 6);
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn rfc_fragmented_first_frame_has_no_fin() {
        let buf = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let h = FrameHeader::decode(&buf).unwrap().unwrap();
        assert!(!h.fin);
        assert_eq!(h.op(), Some(OpCode::Text));
        let buf = [0x80, 0x02, 0x6c, 0x6f];
        let h = FrameHeader::decode(&buf).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.op(), Some(OpCode::Continuation));
    }

    #[test]
    fn rfc_256_and_64k_lengths() {
        let buf = [0x82, 0x7E, 0x01, 0x00];
        let h = FrameHeader::decode(&buf).unwrap().unwrap();
        assert_eq!(h.payload_len, 256);
        assert_eq!(h.header_len, 4);
        let buf = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let h = FrameHeader::decode(&buf).unwrap().unwrap();
        assert_eq!(h.payload_len, 65536);
        assert_eq!(h.header_len, 10);
    }

    #[test]
    fn incomplete_headers_need_more() {
        assert_eq!(FrameHeader::decode(&[]), Ok(None));
        assert_eq!(FrameHeader::decode(&[0x81]), Ok(None));
        assert_eq!(FrameHeader::decode(&[0x81, 0xFE, 0x01]), Ok(None));
        assert_eq!(FrameHeader::decode(&[0x81, 0xFF, 0, 0, 0, 0, 0, 0, 1]), Ok(None));
        assert_eq!(FrameHeader::decode(&[0x81, 0x85, 1, 2, 3]), Ok(None));
    }

    #[test]
    fn reserved_bits_and_opcodes_are_reported() {
        let h = FrameHeader::decode(&[0xF3, 0x00]).unwrap().unwrap();
        assert_eq!(h.rsv, 0x7);
        assert_eq!(h.opcode, 3);
        assert_eq!(h.op(), None);
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::decode(&buf), Err(HeaderError::LengthOverflow));
    }

    #[test]
    fn length_forms_pick_the_shortest_encoding() {
        let mut out = [0u8; MAX_HEADER_LEN];
        assert_eq!(encode_header(&mut out, true, OpCode::Text, None, 125), 2);
        assert_eq!(encode_header(&mut out, true, OpCode::Text, None, 126), 4);
        assert_eq!(encode_header(&mut out, true, OpCode::Text, None, 65535), 4);
        assert_eq!(encode_header(&mut out, true, OpCode::Text, None, 65536), 10);
        assert_eq!(encode_header(&mut out, true, OpCode::Text, Some([1, 2, 3, 4]), 65536), 14);
    }

    #[test]
    fn masked_frame_round_trips() {
        let mut out = Vec::new();
        write_masked_frame(&mut out, OpCode::Text, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn close_codes_on_the_wire() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] {
            assert!(close_code::is_valid_on_wire(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!close_code::is_valid_on_wire(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn header_round_trip(fin in any::<bool>(), op in prop::sample::select(vec![
                OpCode::Continuation, OpCode::Text, OpCode::Binary, OpCode::Close, OpCode::Ping, OpCode::Pong]),
                mask in any::<Option<[u8; 4]>>(), len in prop_oneof![0usize..200, 60000usize..70000, any::<u32>().prop_map(|v| v as usize)]) {
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = encode_header(&mut out, fin, op, mask, len);
            let h = FrameHeader::decode(&out[..n]).unwrap().unwrap();
            prop_assert_eq!(h.fin, fin);
            prop_assert_eq!(h.op(), Some(op));
            prop_assert_eq!(h.mask, mask);
            prop_assert_eq!(h.payload_len, len as u64);
            prop_assert_eq!(h.header_len, n);
            prop_assert_eq!(h.rsv, 0);
            // Any proper prefix is "need more".
            for cut in 0..n {
                prop_assert_eq!(FrameHeader::decode(&out[..cut]), Ok(None));
            }
        }
    }
}
