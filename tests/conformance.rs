//! RFC 6455 conformance of `wschat --echo`, organised like the Autobahn test suite's categories 1 to 10:
//! framing (1), pings and pongs (2), reserved bits (3), opcodes (4), fragmentation (5), UTF-8 handling (6),
//! the closing handshake (7), limits and performance (9) and auto-fragmented messages (10). Autobahn has no
//! category 8. Each case is one test named after its Autobahn number and sends what that case sends, with
//! raw sockets, expecting the strict outcome: an echo exactly as sent, or the connection failed with the
//! exact close code before anything else is answered, followed by the server closing TCP.
//!
//! Beyond the Autobahn cases: every invalid UTF-8 vector of category 6 is also sent one byte per fragment
//! and one byte per read inside a single frame, stopping at the byte that makes the text invalid, so the
//! close must come as soon as that byte arrives (fail fast); and messages exactly at the size limit go
//! through in fragments of 1, 64 and 65535 bytes while one byte more is refused with 1009.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{client_frame, Daemon, Raw, RawFrame, BINARY, CLOSE, CONT, PING, PONG, TEXT};

/// Limits large enough for category 9 (messages up to 16 MiB, echoed in one frame).
const BIG_LIMITS: [&str; 5] = ["--echo", "--max-message-bytes", "16777216", "--send-buffer-limit", "67108864"];

/// The chat mode's default message limit (64 KiB), set explicitly: `--echo` alone raises it to 16 MiB.
const CHAT_LIMIT: [&str; 3] = ["--echo", "--max-message-bytes", "65536"];

/// A raw client connected to its own echo daemon (dropped after the client).
struct Client {
    raw: Raw,
    _daemon: Option<Daemon>,
}

impl Client {
    /// A client of a fresh `wschat --echo` with the default limits.
    fn new() -> Client {
        Client::with_args(&["--echo"])
    }

    fn with_args(args: &[&str]) -> Client {
        let d = Daemon::start(args);
        Client { raw: Raw::open(d.ws), _daemon: Some(d) }
    }

    /// Another client of the same daemon.
    fn another(&self) -> Client {
        let addr = self._daemon.as_ref().expect("owner").ws;
        Client { raw: Raw::open(addr), _daemon: None }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.raw.send(bytes);
    }

    /// Writes `bytes` in pieces of `chop` bytes, one write each (TCP_NODELAY is set).
    fn send_chopped(&mut self, bytes: &[u8], chop: usize) {
        for piece in bytes.chunks(chop) {
            self.raw.send(piece);
        }
    }

    fn frame(&mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) {
        self.raw.send(&client_frame(fin, rsv, opcode, payload));
    }

    fn next(&mut self) -> RawFrame {
        self.raw.read_frame().expect("a frame, not the end of the connection")
    }

    /// The next frame is a final frame with this opcode and payload.
    fn expect(&mut self, opcode: u8, payload: &[u8]) {
        let f = self.next();
        assert!(f.fin, "the server sends unfragmented messages");
        assert_eq!(f.opcode, opcode, "unexpected frame {:?}", short(&f));
        assert!(f.payload == payload, "payload differs: {} bytes, expected {}", f.payload.len(), payload.len());
    }

    /// The next frame closes with `code` (nothing is answered before it); after the client's close reply the
    /// server ends the TCP connection without sending anything more.
    fn expect_fail(&mut self, code: u16) {
        let f = self.next();
        assert_eq!((f.opcode, f.close_code()), (CLOSE, Some(code)), "expected close {code}, got {:?}", short(&f));
        assert!(f.payload.len() <= 125);
        assert!(std::str::from_utf8(&f.payload[2..]).is_ok(), "close reason must be UTF-8");
        self.frame(true, 0, CLOSE, &code.to_be_bytes());
        self.expect_eof();
    }

    /// After the closing handshake the server closes TCP: no frame, just EOF.
    fn expect_eof(&mut self) {
        if let Some(f) = self.raw.read_frame() {
            panic!("frame after the close: {:?}", short(&f));
        }
    }

    /// A clean close started by the client: the server echoes `code` and then closes TCP.
    fn close_with(&mut self, payload: &[u8], echoed: u16) {
        self.frame(true, 0, CLOSE, payload);
        let f = self.next();
        assert_eq!((f.opcode, f.close_code()), (CLOSE, Some(echoed)), "{:?}", short(&f));
        self.expect_eof();
    }

    fn close_normally(&mut self) {
        self.close_with(&1000u16.to_be_bytes(), 1000);
    }
}

/// A frame for assertion messages, without megabytes of payload.
fn short(f: &RawFrame) -> String {
    format!(
        "fin={} opcode={} len={} payload={:?}",
        f.fin,
        f.opcode,
        f.payload.len(),
        &f.payload[..f.payload.len().min(40)]
    )
}

/// Lets the previous write reach the server in its own read (pacing only; nothing asserts on time).
fn pause() {
    sleep(Duration::from_millis(20));
}

/// ASCII text of `len` bytes.
fn text_of(len: usize) -> Vec<u8> {
    b"BAsd7&jh23".iter().copied().cycle().take(len).collect()
}

/// Binary data of `len` bytes, not UTF-8.
fn binary_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 0xfe) as u8).collect()
}

/// A message as frames of at most `size` payload bytes: the first with `opcode`, the rest continuations.
fn fragments(opcode: u8, payload: &[u8], size: usize) -> Vec<u8> {
    if payload.is_empty() {
        return client_frame(true, 0, opcode, b"");
    }
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let mut out = Vec::with_capacity(payload.len() + chunks.len() * 8);
    for (i, c) in chunks.iter().enumerate() {
        out.extend(client_frame(i + 1 == chunks.len(), 0, if i == 0 { opcode } else { CONT }, c));
    }
    out
}

/// Category 1: framing of text and binary messages of every length form, echoed unchanged.
mod case_1_framing {
    use super::*;

    fn echo(opcode: u8, len: usize, chop: Option<usize>) {
        let payload = if opcode == TEXT { text_of(len) } else { binary_of(len) };
        let mut c = Client::new();
        let bytes = client_frame(true, 0, opcode, &payload);
        match chop {
            Some(n) => c.send_chopped(&bytes, n),
            None => c.send(&bytes),
        }
        c.expect(opcode, &payload);
        c.close_normally();
    }

    #[test]
    fn case_1_1_1_text_0_bytes() {
        echo(TEXT, 0, None);
    }
    #[test]
    fn case_1_1_2_text_125_bytes() {
        echo(TEXT, 125, None);
    }
    #[test]
    fn case_1_1_3_text_126_bytes() {
        echo(TEXT, 126, None);
    }
    #[test]
    fn case_1_1_4_text_127_bytes() {
        echo(TEXT, 127, None);
    }
    #[test]
    fn case_1_1_5_text_128_bytes() {
        echo(TEXT, 128, None);
    }
    #[test]
    fn case_1_1_6_text_65535_bytes() {
        echo(TEXT, 65535, None);
    }
    #[test]
    fn case_1_1_7_text_65536_bytes() {
        echo(TEXT, 65536, None);
    }
    #[test]
    fn case_1_1_8_text_65536_bytes_in_chops_of_997() {
        echo(TEXT, 65536, Some(997));
    }
    #[test]
    fn case_1_2_1_binary_0_bytes() {
        echo(BINARY, 0, None);
    }
    #[test]
    fn case_1_2_2_binary_125_bytes() {
        echo(BINARY, 125, None);
    }
    #[test]
    fn case_1_2_3_binary_126_bytes() {
        echo(BINARY, 126, None);
    }
    #[test]
    fn case_1_2_4_binary_127_bytes() {
        echo(BINARY, 127, None);
    }
    #[test]
    fn case_1_2_5_binary_128_bytes() {
        echo(BINARY, 128, None);
    }
    #[test]
    fn case_1_2_6_binary_65535_bytes() {
        echo(BINARY, 65535, None);
    }
    #[test]
    fn case_1_2_7_binary_65536_bytes() {
        echo(BINARY, 65536, None);
    }
    #[test]
    fn case_1_2_8_binary_65536_bytes_in_chops_of_997() {
        echo(BINARY, 65536, Some(997));
    }
}

/// Category 2: pings are answered with pongs carrying the same payload; pongs are never answered; a
/// control frame over 125 bytes fails the connection (RFC 6455 5.5, 5.5.2, 5.5.3).
mod case_2_ping_pong {
    use super::*;

    fn ping_pong(payload: &[u8], chop: Option<usize>) {
        let mut c = Client::new();
        let bytes = client_frame(true, 0, PING, payload);
        match chop {
            Some(n) => c.send_chopped(&bytes, n),
            None => c.send(&bytes),
        }
        c.expect(PONG, payload);
        c.close_normally();
    }

    #[test]
    fn case_2_1_ping_without_payload() {
        ping_pong(b"", None);
    }
    #[test]
    fn case_2_2_ping_with_text_payload() {
        ping_pong(b"Hello, world!", None);
    }
    #[test]
    fn case_2_3_ping_with_binary_payload() {
        ping_pong(&[0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff], None);
    }
    #[test]
    fn case_2_4_ping_with_125_byte_payload() {
        ping_pong(&[0xfe; 125], None);
    }
    #[test]
    fn case_2_5_ping_with_126_byte_payload_fails() {
        let mut c = Client::new();
        c.frame(true, 0, PING, &[0xfe; 126]);
        c.expect_fail(1002);
    }
    #[test]
    fn case_2_6_ping_with_125_byte_payload_in_1_byte_chops() {
        ping_pong(&[0xfe; 125], Some(1));
    }
    #[test]
    fn case_2_7_unsolicited_pong_without_payload_is_ignored() {
        let mut c = Client::new();
        c.frame(true, 0, PONG, b"");
        // The first thing back is the answer to our close: nothing answered the pong.
        c.close_normally();
    }
    #[test]
    fn case_2_8_unsolicited_pong_with_payload_is_ignored() {
        let mut c = Client::new();
        c.frame(true, 0, PONG, b"unsolicited pong payload");
        c.close_normally();
    }
    #[test]
    fn case_2_9_unsolicited_pong_then_ping() {
        let mut c = Client::new();
        c.frame(true, 0, PONG, b"unsolicited pong payload");
        c.frame(true, 0, PING, b"ping payload");
        c.expect(PONG, b"ping payload");
        c.close_normally();
    }
    #[test]
    fn case_2_10_ten_pings_get_ten_pongs_in_order() {
        let mut c = Client::new();
        for i in 0..10 {
            c.frame(true, 0, PING, format!("payload-{i}").as_bytes());
        }
        for i in 0..10 {
            c.expect(PONG, format!("payload-{i}").as_bytes());
        }
        c.close_normally();
    }
    #[test]
    fn case_2_11_ten_pings_in_1_byte_chops() {
        let mut c = Client::new();
        let mut bytes = Vec::new();
        for i in 0..10 {
            bytes.extend(client_frame(true, 0, PING, format!("payload-{i}").as_bytes()));
        }
        c.send_chopped(&bytes, 1);
        for i in 0..10 {
            c.expect(PONG, format!("payload-{i}").as_bytes());
        }
        c.close_normally();
    }
}

/// Category 3: with no extension negotiated, any reserved bit fails the connection with 1002 (RFC 6455
/// 5.2), after the messages before it were answered and before anything after it is.
mod case_3_reserved_bits {
    use super::*;

    #[test]
    fn case_3_1_text_with_rsv_1() {
        let mut c = Client::new();
        c.frame(true, 1, TEXT, b"Hello, world!");
        c.expect_fail(1002);
    }

    /// Text, then text with `rsv`, then a ping: the first is echoed, the ping is never answered.
    fn text_then_reserved_then_ping(rsv: u8, how: &str) {
        let mut c = Client::new();
        let first = client_frame(true, 0, TEXT, b"Hello, world!");
        let bad = client_frame(true, rsv, TEXT, b"Hello, world!");
        let ping = client_frame(true, 0, PING, b"");
        match how {
            "one write" => c.send(&[first, bad, ping].concat()),
            "frame by frame" => {
                c.send(&first);
                c.expect(TEXT, b"Hello, world!");
                c.send(&bad);
                c.send(&ping);
                return c.expect_fail(1002);
            }
            _ => c.send_chopped(&[first, bad, ping].concat(), 1),
        }
        c.expect(TEXT, b"Hello, world!");
        c.expect_fail(1002);
    }

    #[test]
    fn case_3_2_text_then_rsv_2_then_ping() {
        text_then_reserved_then_ping(2, "one write");
    }
    #[test]
    fn case_3_3_text_then_rsv_3_then_ping_frame_by_frame() {
        text_then_reserved_then_ping(3, "frame by frame");
    }
    #[test]
    fn case_3_4_text_then_rsv_4_then_ping_octet_wise() {
        text_then_reserved_then_ping(4, "octet-wise");
    }
    #[test]
    fn case_3_5_binary_with_rsv_5() {
        let mut c = Client::new();
        c.frame(true, 5, BINARY, &[0xff; 8]);
        c.expect_fail(1002);
    }
    #[test]
    fn case_3_6_ping_with_rsv_6() {
        let mut c = Client::new();
        c.frame(true, 6, PING, b"Hello, world!");
        c.expect_fail(1002);
    }
    #[test]
    fn case_3_7_close_with_rsv_7() {
        let mut c = Client::new();
        c.frame(true, 7, CLOSE, &1000u16.to_be_bytes());
        c.expect_fail(1002);
    }
}

/// Category 4: reserved opcodes 3-7 (data) and 11-15 (control) fail the connection with 1002 (RFC 6455
/// 5.2), after what came before was answered.
mod case_4_opcodes {
    use super::*;

    fn reserved_alone(opcode: u8, payload: &[u8]) {
        let mut c = Client::new();
        c.frame(true, 0, opcode, payload);
        c.expect_fail(1002);
    }

    fn text_then_reserved_then_ping(opcode: u8, payload: &[u8]) {
        let mut c = Client::new();
        let mut bytes = client_frame(true, 0, TEXT, b"Hello, world!");
        bytes.extend(client_frame(true, 0, opcode, payload));
        bytes.extend(client_frame(true, 0, PING, b""));
        c.send(&bytes);
        c.expect(TEXT, b"Hello, world!");
        c.expect_fail(1002);
    }

    #[test]
    fn case_4_1_1_opcode_3() {
        reserved_alone(3, b"");
    }
    #[test]
    fn case_4_1_2_opcode_4_with_payload() {
        reserved_alone(4, b"reserved opcode payload");
    }
    #[test]
    fn case_4_1_3_text_then_opcode_5_then_ping() {
        text_then_reserved_then_ping(5, b"");
    }
    #[test]
    fn case_4_1_4_text_then_opcode_6_with_payload_then_ping() {
        text_then_reserved_then_ping(6, b"reserved opcode payload");
    }
    #[test]
    fn case_4_1_5_text_then_opcode_7_with_payload_then_ping() {
        text_then_reserved_then_ping(7, b"reserved opcode payload");
    }
    #[test]
    fn case_4_2_1_opcode_11() {
        reserved_alone(11, b"");
    }
    #[test]
    fn case_4_2_2_opcode_12_with_payload() {
        reserved_alone(12, b"reserved opcode payload");
    }
    #[test]
    fn case_4_2_3_text_then_opcode_13_then_ping() {
        text_then_reserved_then_ping(13, b"");
    }
    #[test]
    fn case_4_2_4_text_then_opcode_14_with_payload_then_ping() {
        text_then_reserved_then_ping(14, b"reserved opcode payload");
    }
    #[test]
    fn case_4_2_5_text_then_opcode_15_with_payload_then_ping() {
        text_then_reserved_then_ping(15, b"reserved opcode payload");
    }
}

/// Category 5: fragmentation (RFC 6455 5.4): control frames may come between fragments but are never
/// fragmented; a continuation needs a message to continue; a new data frame may not start inside one.
mod case_5_fragmentation {
    use super::*;

    #[derive(Clone, Copy)]
    enum How {
        OneWrite,
        OctetWise,
        FrameByFrame,
    }

    fn send_frames(c: &mut Client, frames: &[Vec<u8>], how: How) {
        match how {
            How::OneWrite => c.send(&frames.concat()),
            How::OctetWise => c.send_chopped(&frames.concat(), 1),
            How::FrameByFrame => {
                for f in frames {
                    c.send(f);
                    pause();
                }
            }
        }
    }

    fn fragmented_control(opcode: u8) {
        let mut c = Client::new();
        c.frame(false, 0, opcode, b"fragment1");
        c.frame(true, 0, CONT, b"fragment2");
        c.expect_fail(1002);
    }

    #[test]
    fn case_5_1_ping_in_2_fragments() {
        fragmented_control(PING);
    }
    #[test]
    fn case_5_2_pong_in_2_fragments() {
        fragmented_control(PONG);
    }

    fn text_in_2_fragments(how: How) {
        let mut c = Client::new();
        let frames = [client_frame(false, 0, TEXT, b"fragment1"), client_frame(true, 0, CONT, b"fragment2")];
        send_frames(&mut c, &frames, how);
        c.expect(TEXT, b"fragment1fragment2");
        c.close_normally();
    }

    #[test]
    fn case_5_3_text_in_2_fragments() {
        text_in_2_fragments(How::OneWrite);
    }
    #[test]
    fn case_5_4_text_in_2_fragments_octet_wise() {
        text_in_2_fragments(How::OctetWise);
    }
    #[test]
    fn case_5_5_text_in_2_fragments_frame_by_frame() {
        text_in_2_fragments(How::FrameByFrame);
    }

    fn text_in_2_fragments_with_ping_between(how: How) {
        let mut c = Client::new();
        let frames = [
            client_frame(false, 0, TEXT, b"fragment1"),
            client_frame(true, 0, PING, b"ping payload"),
            client_frame(true, 0, CONT, b"fragment2"),
        ];
        send_frames(&mut c, &frames, how);
        c.expect(PONG, b"ping payload");
        c.expect(TEXT, b"fragment1fragment2");
        c.close_normally();
    }

    #[test]
    fn case_5_6_text_in_2_fragments_with_ping_between() {
        text_in_2_fragments_with_ping_between(How::OneWrite);
    }
    #[test]
    fn case_5_7_text_in_2_fragments_with_ping_between_octet_wise() {
        text_in_2_fragments_with_ping_between(How::OctetWise);
    }
    #[test]
    fn case_5_8_text_in_2_fragments_with_ping_between_frame_by_frame() {
        text_in_2_fragments_with_ping_between(How::FrameByFrame);
    }

    /// A continuation with nothing to continue, then a whole text message: failed before any echo.
    fn continuation_first(fin: bool, how: How) {
        let mut c = Client::new();
        let frames =
            [client_frame(fin, 0, CONT, b"non-continuation payload"), client_frame(true, 0, TEXT, b"Hello, world!")];
        send_frames(&mut c, &frames, how);
        c.expect_fail(1002);
    }

    #[test]
    fn case_5_9_final_continuation_without_start() {
        continuation_first(true, How::OneWrite);
    }
    #[test]
    fn case_5_10_final_continuation_without_start_octet_wise() {
        continuation_first(true, How::OctetWise);
    }
    #[test]
    fn case_5_11_final_continuation_without_start_frame_by_frame() {
        continuation_first(true, How::FrameByFrame);
    }
    #[test]
    fn case_5_12_non_final_continuation_without_start() {
        continuation_first(false, How::OneWrite);
    }
    #[test]
    fn case_5_13_non_final_continuation_without_start_octet_wise() {
        continuation_first(false, How::OctetWise);
    }
    #[test]
    fn case_5_14_non_final_continuation_without_start_frame_by_frame() {
        continuation_first(false, How::FrameByFrame);
    }

    #[test]
    fn case_5_15_message_then_stray_continuation_then_text() {
        let mut c = Client::new();
        let frames = [
            client_frame(false, 0, TEXT, b"fragment1"),
            client_frame(true, 0, CONT, b"fragment2"),
            client_frame(false, 0, CONT, b"fragment3"),
            client_frame(true, 0, TEXT, b"fragment4"),
        ];
        c.send(&frames.concat());
        c.expect(TEXT, b"fragment1fragment2");
        c.expect_fail(1002);
    }

    /// Twice: a stray continuation, then a message in two fragments. The first frame already fails.
    fn stray_continuation_then_message_twice(first_fin: bool) {
        let mut c = Client::new();
        let mut bytes = Vec::new();
        for _ in 0..2 {
            bytes.extend(client_frame(first_fin, 0, CONT, b"fragment1"));
            bytes.extend(client_frame(false, 0, TEXT, b"fragment2"));
            bytes.extend(client_frame(true, 0, CONT, b"fragment3"));
        }
        c.send(&bytes);
        c.expect_fail(1002);
    }

    #[test]
    fn case_5_16_non_final_stray_continuation_twice() {
        stray_continuation_then_message_twice(false);
    }
    #[test]
    fn case_5_17_final_stray_continuation_twice() {
        stray_continuation_then_message_twice(true);
    }
    #[test]
    fn case_5_18_text_inside_a_fragmented_text() {
        let mut c = Client::new();
        let frames = [client_frame(false, 0, TEXT, b"fragment1"), client_frame(true, 0, TEXT, b"fragment2")];
        c.send(&frames.concat());
        c.expect_fail(1002);
    }

    /// Five fragments with two pings between them, sent in two bursts: the pongs come as the pings
    /// arrive, the message once its last fragment does.
    fn five_fragments_two_pings(octet_wise: bool) {
        let mut c = Client::new();
        let burst1 = [
            client_frame(false, 0, TEXT, b"fragment1"),
            client_frame(false, 0, CONT, b"fragment2"),
            client_frame(true, 0, PING, b"pongme 1!"),
        ]
        .concat();
        let burst2 = [
            client_frame(false, 0, CONT, b"fragment3"),
            client_frame(false, 0, CONT, b"fragment4"),
            client_frame(true, 0, PING, b"pongme 2!"),
            client_frame(true, 0, CONT, b"fragment5"),
        ]
        .concat();
        let chop = if octet_wise { 1 } else { usize::MAX };
        c.send_chopped(&burst1, chop);
        // The first pong proves the server holds the unfinished message across reads.
        c.expect(PONG, b"pongme 1!");
        c.send_chopped(&burst2, chop);
        c.expect(PONG, b"pongme 2!");
        c.expect(TEXT, b"fragment1fragment2fragment3fragment4fragment5");
        c.close_normally();
    }

    #[test]
    fn case_5_19_five_fragments_two_pings_across_reads() {
        five_fragments_two_pings(false);
    }
    #[test]
    fn case_5_20_five_fragments_two_pings_across_reads_octet_wise() {
        five_fragments_two_pings(true);
    }
}

/// Category 6: text must be valid UTF-8 (RFC 6455 5.6, 8.1; RFC 3629), also when split across fragments
/// and reads; invalid text fails the connection with 1007 as soon as the invalid byte arrives.
mod case_6_utf8 {
    use super::*;

    const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    const HELLO_UTF8: &str = "Hello-\u{b5}@\u{df}\u{f6}\u{e4}\u{fc}\u{e0}\u{e1}-UTF-8!!";

    #[test]
    fn case_6_1_1_empty_text() {
        let mut c = Client::new();
        c.frame(true, 0, TEXT, b"");
        c.expect(TEXT, b"");
        c.close_normally();
    }
    #[test]
    fn case_6_1_2_empty_text_in_3_empty_fragments() {
        let mut c = Client::new();
        c.frame(false, 0, TEXT, b"");
        c.frame(false, 0, CONT, b"");
        c.frame(true, 0, CONT, b"");
        c.expect(TEXT, b"");
        c.close_normally();
    }
    #[test]
    fn case_6_1_3_text_in_3_fragments_first_and_last_empty() {
        let mut c = Client::new();
        c.frame(false, 0, TEXT, b"");
        c.frame(false, 0, CONT, b"middle frame payload");
        c.frame(true, 0, CONT, b"");
        c.expect(TEXT, b"middle frame payload");
        c.close_normally();
    }
    #[test]
    fn case_6_2_1_valid_utf8_in_one_fragment() {
        let mut c = Client::new();
        c.frame(true, 0, TEXT, HELLO_UTF8.as_bytes());
        c.expect(TEXT, HELLO_UTF8.as_bytes());
        c.close_normally();
    }
    #[test]
    fn case_6_2_2_valid_utf8_in_2_fragments_at_a_code_point_boundary() {
        let mut c = Client::new();
        let text = HELLO_UTF8.as_bytes();
        let cut = HELLO_UTF8.find('\u{fc}').expect("split point");
        c.frame(false, 0, TEXT, &text[..cut]);
        c.frame(true, 0, CONT, &text[cut..]);
        c.expect(TEXT, text);
        c.close_normally();
    }
    #[test]
    fn case_6_2_3_valid_utf8_one_byte_per_fragment() {
        let mut c = Client::new();
        c.send(&fragments(TEXT, HELLO_UTF8.as_bytes(), 1));
        c.expect(TEXT, HELLO_UTF8.as_bytes());
        c.close_normally();
    }
    #[test]
    fn case_6_2_4_kosme_one_byte_per_fragment() {
        let mut c = Client::new();
        c.send(&fragments(TEXT, KOSME, 1));
        c.expect(TEXT, KOSME);
        c.close_normally();
    }

    const KOSME_EDITED: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited";

    #[test]
    fn case_6_3_1_invalid_utf8_in_one_fragment() {
        let mut c = Client::new();
        c.frame(true, 0, TEXT, KOSME_EDITED);
        c.expect_fail(1007);
    }
    #[test]
    fn case_6_3_2_invalid_utf8_one_byte_per_fragment() {
        let mut c = Client::new();
        // Fail fast: only the fragments up to the byte that makes the text invalid (0xa0 after 0xed).
        let upto = KOSME.len() + 2;
        let bytes = fragments(TEXT, KOSME_EDITED, 1);
        let per_fragment = bytes.len() / KOSME_EDITED.len();
        c.send(&bytes[..upto * per_fragment]);
        c.expect_fail(1007);
    }

    /// Part 1 valid, part 2 makes it invalid, part 3 is never sent: the close must not wait for it.
    fn fail_fast(part1: &[u8], part2: &[u8], part3: &[u8], in_frames: bool) {
        let mut c = Client::new();
        if in_frames {
            c.frame(false, 0, TEXT, part1);
            pause();
            c.frame(false, 0, CONT, part2);
        } else {
            let whole = [part1, part2, part3].concat();
            let frame = client_frame(true, 0, TEXT, &whole);
            let head = frame.len() - whole.len();
            c.send(&frame[..head + part1.len()]);
            pause();
            c.send(&frame[head + part1.len()..head + part1.len() + part2.len()]);
        }
        c.expect_fail(1007);
    }

    #[test]
    fn case_6_4_1_fail_fast_across_frames_code_point_above_u10ffff() {
        fail_fast(KOSME, b"\xf4\x90\x80\x80", b"edited", true);
    }
    #[test]
    fn case_6_4_2_fail_fast_across_frames_at_the_invalid_octet() {
        fail_fast(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4", b"\x90", b"\x80\x80edited", true);
    }
    #[test]
    fn case_6_4_3_fail_fast_across_reads_of_one_frame() {
        fail_fast(KOSME, b"\xf4\x90\x80\x80", b"edited", false);
    }
    #[test]
    fn case_6_4_4_fail_fast_across_reads_of_one_frame_at_the_invalid_octet() {
        fail_fast(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4", b"\x90", b"\x80\x80edited", false);
    }

    /// How many leading bytes of `text` prove it invalid whatever follows; `None` when only its end does.
    fn invalid_after(text: &[u8]) -> Option<usize> {
        (1..=text.len()).find(|&n| matches!(std::str::from_utf8(&text[..n]), Err(e) if e.error_len().is_some()))
    }

    /// One vector of the UTF-8 decoder test (section numbers as in Autobahn's 6.5-6.23).
    fn vector(valid: bool, text: &[u8]) {
        assert_eq!(std::str::from_utf8(text).is_ok(), valid, "the vector's own validity");
        // Whole, in one frame.
        let mut whole = Client::new();
        whole.frame(true, 0, TEXT, text);
        if valid {
            whole.expect(TEXT, text);
            whole.close_normally();
        } else {
            whole.expect_fail(1007);
        }
        let stop = invalid_after(text);
        // One byte per fragment; an invalid text only up to the byte that proves it (no FIN then).
        let mut split = whole.another();
        let frames = fragments(TEXT, text, 1);
        match stop {
            Some(n) => {
                let per_fragment = frames.len() / text.len();
                split.send(&frames[..n * per_fragment]);
            }
            None => split.send(&frames),
        }
        if valid {
            split.expect(TEXT, text);
            split.close_normally();
        } else {
            split.expect_fail(1007);
        }
        // One frame arriving one byte per read; an invalid text again stops at the proving byte.
        let mut chopped = whole.another();
        let frame = client_frame(true, 0, TEXT, text);
        let head = frame.len() - text.len();
        let end = stop.map_or(frame.len(), |n| head + n);
        chopped.send(&frame[..head]);
        for b in &frame[head..end] {
            chopped.send(&[*b]);
        }
        if valid {
            chopped.expect(TEXT, text);
            chopped.close_normally();
        } else {
            chopped.expect_fail(1007);
        }
    }

    macro_rules! vectors {
        ($($name:ident: $valid:expr, $text:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    vector($valid, $text);
                }
            )*
        };
    }

    // 6.5: some valid UTF-8.
    vectors! {
        case_6_5_1_dollar: true, b"hello\x24world";
        case_6_5_2_cent: true, b"hello\xc2\xa2world";
        case_6_5_3_euro: true, b"hello\xe2\x82\xacworld";
        case_6_5_4_u24b62: true, b"hello\xf0\xa4\xad\xa2world";
        case_6_5_5_kosme: true, KOSME;
    }

    // 6.6: every prefix of a valid text with multi-byte code points; those ending inside one are invalid.
    vectors! {
        case_6_6_1_prefix_1: false, &KOSME[..1];
        case_6_6_2_prefix_2: true, &KOSME[..2];
        case_6_6_3_prefix_3: false, &KOSME[..3];
        case_6_6_4_prefix_4: false, &KOSME[..4];
        case_6_6_5_prefix_5: true, &KOSME[..5];
        case_6_6_6_prefix_6: false, &KOSME[..6];
        case_6_6_7_prefix_7: true, &KOSME[..7];
        case_6_6_8_prefix_8: false, &KOSME[..8];
        case_6_6_9_prefix_9: true, &KOSME[..9];
        case_6_6_10_prefix_10: false, &KOSME[..10];
        case_6_6_11_prefix_11: true, &KOSME[..11];
    }

    // 6.7-6.10: first and last possible sequences of each length; 5 and 6 byte forms and code points
    // above U+10FFFF are invalid.
    vectors! {
        case_6_7_1_first_1_byte: true, b"\x00";
        case_6_7_2_first_2_bytes: true, b"\xc2\x80";
        case_6_7_3_first_3_bytes: true, b"\xe0\xa0\x80";
        case_6_7_4_first_4_bytes: true, b"\xf0\x90\x80\x80";
        case_6_8_1_first_5_bytes: false, b"\xf8\x88\x80\x80\x80";
        case_6_8_2_first_6_bytes: false, b"\xfc\x84\x80\x80\x80\x80";
        case_6_9_1_last_1_byte: true, b"\x7f";
        case_6_9_2_last_2_bytes: true, b"\xdf\xbf";
        case_6_9_3_last_3_bytes: true, b"\xef\xbf\xbf";
        case_6_9_4_last_4_bytes: true, b"\xf4\x8f\xbf\xbf";
        case_6_10_1_last_4_byte_form: false, b"\xf7\xbf\xbf\xbf";
        case_6_10_2_last_5_byte_form: false, b"\xfb\xbf\xbf\xbf\xbf";
        case_6_10_3_last_6_byte_form: false, b"\xfd\xbf\xbf\xbf\xbf\xbf";
    }

    // 6.11: other boundary conditions.
    vectors! {
        case_6_11_1_ud7ff: true, b"\xed\x9f\xbf";
        case_6_11_2_ue000: true, b"\xee\x80\x80";
        case_6_11_3_ufffd: true, b"\xef\xbf\xbd";
        case_6_11_4_u10ffff: true, b"\xf4\x8f\xbf\xbf";
        case_6_11_5_u110000: false, b"\xf4\x90\x80\x80";
    }

    // 6.12: unexpected continuation bytes.
    vectors! {
        case_6_12_1_first_continuation: false, b"\x80";
        case_6_12_2_last_continuation: false, b"\xbf";
        case_6_12_3_two: false, b"\x80\xbf";
        case_6_12_4_three: false, b"\x80\xbf\x80";
        case_6_12_5_four: false, b"\x80\xbf\x80\xbf";
        case_6_12_6_five: false, b"\x80\xbf\x80\xbf\x80";
        case_6_12_7_six: false, b"\x80\xbf\x80\xbf\x80\xbf";
        case_6_12_8_all_but_the_last: false, &(0x80u8..0xbf).collect::<Vec<u8>>();
    }

    /// Every start byte in `from..to`, each followed by a space.
    fn lonely(from: u8, to: u8) -> Vec<u8> {
        (from..to).flat_map(|b| [b, b' ']).collect()
    }

    // 6.13: lonely start bytes.
    vectors! {
        case_6_13_1_two_byte_starts: false, &lonely(0xc0, 0xdf);
        case_6_13_2_three_byte_starts: false, &lonely(0xe0, 0xef);
        case_6_13_3_four_byte_starts: false, &lonely(0xf0, 0xf7);
        case_6_13_4_five_byte_starts: false, &lonely(0xf8, 0xfb);
        case_6_13_5_six_byte_starts: false, &lonely(0xfc, 0xfd);
    }

    const MISSING_LAST: [&[u8]; 10] = [
        b"\xc0",
        b"\xe0\x80",
        b"\xf0\x80\x80",
        b"\xf8\x80\x80\x80",
        b"\xfc\x80\x80\x80\x80",
        b"\xdf",
        b"\xef\xbf",
        b"\xf7\xbf\xbf",
        b"\xfb\xbf\xbf\xbf",
        b"\xfd\xbf\xbf\xbf\xbf",
    ];

    // 6.14-6.16: sequences missing their last byte, their concatenation, impossible bytes.
    vectors! {
        case_6_14_1_c0: false, MISSING_LAST[0];
        case_6_14_2_e0_80: false, MISSING_LAST[1];
        case_6_14_3_f0_80_80: false, MISSING_LAST[2];
        case_6_14_4_f8_80_80_80: false, MISSING_LAST[3];
        case_6_14_5_fc_80_80_80_80: false, MISSING_LAST[4];
        case_6_14_6_df: false, MISSING_LAST[5];
        case_6_14_7_ef_bf: false, MISSING_LAST[6];
        case_6_14_8_f7_bf_bf: false, MISSING_LAST[7];
        case_6_14_9_fb_bf_bf_bf: false, MISSING_LAST[8];
        case_6_14_10_fd_bf_bf_bf_bf: false, MISSING_LAST[9];
        case_6_15_1_all_of_them_concatenated: false, &MISSING_LAST.concat();
        case_6_16_1_fe: false, b"\xfe";
        case_6_16_2_ff: false, b"\xff";
        case_6_16_3_fe_fe_ff_ff: false, b"\xfe\xfe\xff\xff";
    }

    // 6.17-6.19: overlong forms.
    vectors! {
        case_6_17_1_overlong_slash_2: false, b"\xc0\xaf";
        case_6_17_2_overlong_slash_3: false, b"\xe0\x80\xaf";
        case_6_17_3_overlong_slash_4: false, b"\xf0\x80\x80\xaf";
        case_6_17_4_overlong_slash_5: false, b"\xf8\x80\x80\x80\xaf";
        case_6_17_5_overlong_slash_6: false, b"\xfc\x80\x80\x80\x80\xaf";
        case_6_18_1_maximum_overlong_2: false, b"\xc1\xbf";
        case_6_18_2_maximum_overlong_3: false, b"\xe0\x9f\xbf";
        case_6_18_3_maximum_overlong_4: false, b"\xf0\x8f\xbf\xbf";
        case_6_18_4_maximum_overlong_5: false, b"\xf8\x87\xbf\xbf\xbf";
        case_6_18_5_maximum_overlong_6: false, b"\xfc\x83\xbf\xbf\xbf\xbf";
        case_6_19_1_overlong_nul_2: false, b"\xc0\x80";
        case_6_19_2_overlong_nul_3: false, b"\xe0\x80\x80";
        case_6_19_3_overlong_nul_4: false, b"\xf0\x80\x80\x80";
        case_6_19_4_overlong_nul_5: false, b"\xf8\x80\x80\x80\x80";
        case_6_19_5_overlong_nul_6: false, b"\xfc\x80\x80\x80\x80\x80";
    }

    // 6.20-6.21: UTF-16 surrogates, single and paired, are not valid UTF-8.
    vectors! {
        case_6_20_1_ud800: false, b"\xed\xa0\x80";
        case_6_20_2_udb7f: false, b"\xed\xad\xbf";
        case_6_20_3_udb80: false, b"\xed\xae\x80";
        case_6_20_4_udbff: false, b"\xed\xaf\xbf";
        case_6_20_5_udc00: false, b"\xed\xb0\x80";
        case_6_20_6_udf80: false, b"\xed\xbe\x80";
        case_6_20_7_udfff: false, b"\xed\xbf\xbf";
        case_6_21_1_ud800_udc00: false, b"\xed\xa0\x80\xed\xb0\x80";
        case_6_21_2_ud800_udfff: false, b"\xed\xa0\x80\xed\xbf\xbf";
        case_6_21_3_udb7f_udc00: false, b"\xed\xad\xbf\xed\xb0\x80";
        case_6_21_4_udb7f_udfff: false, b"\xed\xad\xbf\xed\xbf\xbf";
        case_6_21_5_udb80_udc00: false, b"\xed\xae\x80\xed\xb0\x80";
        case_6_21_6_udb80_udfff: false, b"\xed\xae\x80\xed\xbf\xbf";
        case_6_21_7_udbff_udc00: false, b"\xed\xaf\xbf\xed\xb0\x80";
        case_6_21_8_udbff_udfff: false, b"\xed\xaf\xbf\xed\xbf\xbf";
    }

    // 6.22: non-characters are valid UTF-8.
    vectors! {
        case_6_22_1_ufffe: true, b"\xef\xbf\xbe";
        case_6_22_2_uffff: true, b"\xef\xbf\xbf";
        case_6_22_3_u1fffe: true, b"\xf0\x9f\xbf\xbe";
        case_6_22_4_u1ffff: true, b"\xf0\x9f\xbf\xbf";
        case_6_22_5_u2fffe: true, b"\xf0\xaf\xbf\xbe";
        case_6_22_6_u2ffff: true, b"\xf0\xaf\xbf\xbf";
        case_6_22_7_u3fffe: true, b"\xf0\xbf\xbf\xbe";
        case_6_22_8_u3ffff: true, b"\xf0\xbf\xbf\xbf";
        case_6_22_9_u4fffe: true, b"\xf1\x8f\xbf\xbe";
        case_6_22_10_u4ffff: true, b"\xf1\x8f\xbf\xbf";
        case_6_22_11_u5fffe: true, b"\xf1\x9f\xbf\xbe";
        case_6_22_12_u5ffff: true, b"\xf1\x9f\xbf\xbf";
        case_6_22_13_u6fffe: true, b"\xf1\xaf\xbf\xbe";
        case_6_22_14_u6ffff: true, b"\xf1\xaf\xbf\xbf";
        case_6_22_15_u7fffe: true, b"\xf1\xbf\xbf\xbe";
        case_6_22_16_u7ffff: true, b"\xf1\xbf\xbf\xbf";
        case_6_22_17_u8fffe: true, b"\xf2\x8f\xbf\xbe";
        case_6_22_18_u8ffff: true, b"\xf2\x8f\xbf\xbf";
        case_6_22_19_u9fffe: true, b"\xf2\x9f\xbf\xbe";
        case_6_22_20_u9ffff: true, b"\xf2\x9f\xbf\xbf";
        case_6_22_21_uafffe: true, b"\xf2\xaf\xbf\xbe";
        case_6_22_22_uaffff: true, b"\xf2\xaf\xbf\xbf";
        case_6_22_23_ubfffe: true, b"\xf2\xbf\xbf\xbe";
        case_6_22_24_ubffff: true, b"\xf2\xbf\xbf\xbf";
        case_6_22_25_ucfffe: true, b"\xf3\x8f\xbf\xbe";
        case_6_22_26_ucffff: true, b"\xf3\x8f\xbf\xbf";
        case_6_22_27_udfffe: true, b"\xf3\x9f\xbf\xbe";
        case_6_22_28_udffff: true, b"\xf3\x9f\xbf\xbf";
        case_6_22_29_uefffe: true, b"\xf3\xaf\xbf\xbe";
        case_6_22_30_ueffff: true, b"\xf3\xaf\xbf\xbf";
        case_6_22_31_ufffffe: true, b"\xf3\xbf\xbf\xbe";
        case_6_22_32_uffffff: true, b"\xf3\xbf\xbf\xbf";
        case_6_22_33_u10fffe: true, b"\xf4\x8f\xbf\xbe";
        case_6_22_34_u10ffff: true, b"\xf4\x8f\xbf\xbf";
    }

    // 6.23: the Specials block, the replacement character included, is valid.
    vectors! {
        case_6_23_1_ufff9: true, b"\xef\xbf\xb9";
        case_6_23_2_ufffa: true, b"\xef\xbf\xba";
        case_6_23_3_ufffb: true, b"\xef\xbf\xbb";
        case_6_23_4_ufffc: true, b"\xef\xbf\xbc";
        case_6_23_5_ufffd: true, b"\xef\xbf\xbd";
        case_6_23_6_ufffe: true, b"\xef\xbf\xbe";
        case_6_23_7_uffff: true, b"\xef\xbf\xbf";
    }
}

/// Category 7: the closing handshake (RFC 6455 5.5.1, 7.1-7.4): the server echoes a valid close, answers
/// nothing after it, fails invalid close frames, and closes TCP first.
mod case_7_close {
    use super::*;

    const HELLO: &[u8] = b"Hello World!";

    fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
        [&code.to_be_bytes()[..], reason].concat()
    }

    #[test]
    fn case_7_1_1_echo_then_close() {
        let mut c = Client::new();
        c.frame(true, 0, TEXT, HELLO);
        c.expect(TEXT, HELLO);
        c.close_normally();
    }
    #[test]
    fn case_7_1_2_two_closes() {
        let mut c = Client::new();
        let close = client_frame(true, 0, CLOSE, &1000u16.to_be_bytes());
        c.send(&[close.clone(), close].concat());
        assert_eq!(c.next().close_code(), Some(1000));
        c.expect_eof();
    }

    /// A close followed by `after` in the same write: only the close is answered.
    fn close_then(after: Vec<u8>) {
        let mut c = Client::new();
        c.send(&[client_frame(true, 0, CLOSE, &1000u16.to_be_bytes()), after].concat());
        assert_eq!(c.next().close_code(), Some(1000));
        c.expect_eof();
    }

    #[test]
    fn case_7_1_3_ping_after_close_is_not_answered() {
        close_then(client_frame(true, 0, PING, b""));
    }
    #[test]
    fn case_7_1_4_text_after_close_is_not_echoed() {
        close_then(client_frame(true, 0, TEXT, HELLO));
    }
    #[test]
    fn case_7_1_5_close_between_fragments() {
        let mut c = Client::new();
        c.frame(false, 0, TEXT, b"fragment1");
        c.frame(true, 0, CLOSE, &1000u16.to_be_bytes());
        c.frame(true, 0, CONT, b"fragment2");
        assert_eq!(c.next().close_code(), Some(1000));
        c.expect_eof();
    }
    #[test]
    fn case_7_1_6_large_message_then_close_then_ping() {
        // Autobahn marks this informational; with room for 256 KiB everything before the close is echoed.
        let mut c = Client::with_args(&BIG_LIMITS);
        let big = text_of(256 * 1024);
        let mut bytes = client_frame(true, 0, TEXT, &big);
        bytes.extend(client_frame(true, 0, TEXT, HELLO));
        bytes.extend(client_frame(true, 0, CLOSE, &1000u16.to_be_bytes()));
        bytes.extend(client_frame(true, 0, PING, b""));
        c.send(&bytes);
        c.expect(TEXT, &big);
        c.expect(TEXT, HELLO);
        assert_eq!(c.next().close_code(), Some(1000));
        c.expect_eof();
    }
    #[test]
    fn case_7_1_6_at_the_chat_limit_the_large_message_is_refused() {
        let mut c = Client::with_args(&CHAT_LIMIT);
        let mut bytes = client_frame(true, 0, TEXT, &text_of(256 * 1024));
        bytes.extend(client_frame(true, 0, CLOSE, &1000u16.to_be_bytes()));
        c.send(&bytes);
        c.expect_fail(1009);
    }
    #[test]
    fn case_7_3_1_empty_close() {
        let mut c = Client::new();
        c.close_with(b"", 1000);
    }
    #[test]
    fn case_7_3_2_close_with_one_byte() {
        let mut c = Client::new();
        c.frame(true, 0, CLOSE, b"\x03");
        c.expect_fail(1002);
    }
    #[test]
    fn case_7_3_3_close_with_code_only() {
        let mut c = Client::new();
        c.close_with(&1000u16.to_be_bytes(), 1000);
    }
    #[test]
    fn case_7_3_4_close_with_code_and_reason() {
        let mut c = Client::new();
        c.close_with(&close_payload(1000, HELLO), 1000);
    }
    #[test]
    fn case_7_3_5_close_with_123_byte_reason() {
        let mut c = Client::new();
        c.close_with(&close_payload(1000, &[b'*'; 123]), 1000);
    }
    #[test]
    fn case_7_3_6_close_with_124_byte_reason_is_too_long() {
        let mut c = Client::new();
        c.frame(true, 0, CLOSE, &close_payload(1000, &[b'*'; 124]));
        c.expect_fail(1002);
    }
    #[test]
    fn case_7_5_1_close_reason_not_utf8() {
        let mut c = Client::new();
        c.frame(
            true,
            0,
            CLOSE,
            &close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
        );
        c.expect_fail(1007);
    }

    macro_rules! valid_codes {
        ($($name:ident: $code:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    let mut c = Client::new();
                    c.close_with(&$code.to_be_bytes(), $code);
                }
            )*
        };
    }

    // 7.7: valid close codes are echoed.
    valid_codes! {
        case_7_7_1_code_1000: 1000u16;
        case_7_7_2_code_1001: 1001u16;
        case_7_7_3_code_1002: 1002u16;
        case_7_7_4_code_1003: 1003u16;
        case_7_7_5_code_1007: 1007u16;
        case_7_7_6_code_1008: 1008u16;
        case_7_7_7_code_1009: 1009u16;
        case_7_7_8_code_1010: 1010u16;
        case_7_7_9_code_1011: 1011u16;
        case_7_7_10_code_3000: 3000u16;
        case_7_7_11_code_3999: 3999u16;
        case_7_7_12_code_4000: 4000u16;
        case_7_7_13_code_4999: 4999u16;
    }

    macro_rules! invalid_codes {
        ($($name:ident: $code:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    let mut c = Client::new();
                    c.frame(true, 0, CLOSE, &$code.to_be_bytes());
                    c.expect_fail(1002);
                }
            )*
        };
    }

    // 7.9 and 7.13: codes that may not appear on the wire fail the connection.
    invalid_codes! {
        case_7_9_1_code_0: 0u16;
        case_7_9_2_code_999: 999u16;
        case_7_9_3_code_1004: 1004u16;
        case_7_9_4_code_1005: 1005u16;
        case_7_9_5_code_1006: 1006u16;
        case_7_9_6_code_1016: 1016u16;
        case_7_9_7_code_1100: 1100u16;
        case_7_9_8_code_2000: 2000u16;
        case_7_9_9_code_2999: 2999u16;
        case_7_13_1_code_5000: 5000u16;
        case_7_13_2_code_65535: 65535u16;
    }
}

/// Category 9: large messages and many messages, with limits raised to 16 MiB (Autobahn's largest case);
/// plus the size limit itself: messages of exactly the limit in fragments of 1, 64 and 65535 bytes, and
/// one byte more refused with 1009 as soon as the frame that crosses the limit announces itself.
mod case_9_limits {
    use super::*;

    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;

    fn payload(opcode: u8, len: usize) -> Vec<u8> {
        if opcode == TEXT {
            text_of(len)
        } else {
            binary_of(len)
        }
    }

    fn one_message(opcode: u8, len: usize) {
        let mut c = Client::with_args(&BIG_LIMITS);
        let data = payload(opcode, len);
        c.frame(true, 0, opcode, &data);
        c.expect(opcode, &data);
        c.close_normally();
    }

    fn in_fragments(opcode: u8, len: usize, size: usize) {
        let mut c = Client::with_args(&BIG_LIMITS);
        let data = payload(opcode, len);
        c.send(&fragments(opcode, &data, size));
        c.expect(opcode, &data);
        c.close_normally();
    }

    fn in_chops(opcode: u8, len: usize, chop: usize) {
        let mut c = Client::with_args(&BIG_LIMITS);
        let data = payload(opcode, len);
        c.send_chopped(&client_frame(true, 0, opcode, &data), chop);
        c.expect(opcode, &data);
        c.close_normally();
    }

    fn round_trips(opcode: u8, len: usize) {
        let mut c = Client::with_args(&BIG_LIMITS);
        let data = payload(opcode, len);
        let frame = client_frame(true, 0, opcode, &data);
        for _ in 0..1000 {
            c.send(&frame);
            c.expect(opcode, &data);
        }
        c.close_normally();
    }

    #[test]
    fn case_9_1_1_text_64_kib() {
        one_message(TEXT, 64 * KIB);
    }
    #[test]
    fn case_9_1_2_text_256_kib() {
        one_message(TEXT, 256 * KIB);
    }
    #[test]
    fn case_9_1_3_text_1_mib() {
        one_message(TEXT, MIB);
    }
    #[test]
    fn case_9_1_4_text_4_mib() {
        one_message(TEXT, 4 * MIB);
    }
    #[test]
    fn case_9_1_5_text_8_mib() {
        one_message(TEXT, 8 * MIB);
    }
    #[test]
    fn case_9_1_6_text_16_mib() {
        one_message(TEXT, 16 * MIB);
    }
    #[test]
    fn case_9_2_1_binary_64_kib() {
        one_message(BINARY, 64 * KIB);
    }
    #[test]
    fn case_9_2_2_binary_256_kib() {
        one_message(BINARY, 256 * KIB);
    }
    #[test]
    fn case_9_2_3_binary_1_mib() {
        one_message(BINARY, MIB);
    }
    #[test]
    fn case_9_2_4_binary_4_mib() {
        one_message(BINARY, 4 * MIB);
    }
    #[test]
    fn case_9_2_5_binary_8_mib() {
        one_message(BINARY, 8 * MIB);
    }
    #[test]
    fn case_9_2_6_binary_16_mib() {
        one_message(BINARY, 16 * MIB);
    }
    #[test]
    fn case_9_3_1_text_4_mib_in_64_byte_fragments() {
        in_fragments(TEXT, 4 * MIB, 64);
    }
    #[test]
    fn case_9_3_2_text_4_mib_in_256_byte_fragments() {
        in_fragments(TEXT, 4 * MIB, 256);
    }
    #[test]
    fn case_9_3_3_text_4_mib_in_1_kib_fragments() {
        in_fragments(TEXT, 4 * MIB, KIB);
    }
    #[test]
    fn case_9_3_4_text_4_mib_in_4_kib_fragments() {
        in_fragments(TEXT, 4 * MIB, 4 * KIB);
    }
    #[test]
    fn case_9_3_5_text_4_mib_in_16_kib_fragments() {
        in_fragments(TEXT, 4 * MIB, 16 * KIB);
    }
    #[test]
    fn case_9_3_6_text_4_mib_in_64_kib_fragments() {
        in_fragments(TEXT, 4 * MIB, 64 * KIB);
    }
    #[test]
    fn case_9_3_7_text_4_mib_in_256_kib_fragments() {
        in_fragments(TEXT, 4 * MIB, 256 * KIB);
    }
    #[test]
    fn case_9_3_8_text_4_mib_in_1_mib_fragments() {
        in_fragments(TEXT, 4 * MIB, MIB);
    }
    #[test]
    fn case_9_3_9_text_4_mib_in_4_mib_fragments() {
        in_fragments(TEXT, 4 * MIB, 4 * MIB);
    }
    #[test]
    fn case_9_4_1_binary_4_mib_in_64_byte_fragments() {
        in_fragments(BINARY, 4 * MIB, 64);
    }
    #[test]
    fn case_9_4_2_binary_4_mib_in_256_byte_fragments() {
        in_fragments(BINARY, 4 * MIB, 256);
    }
    #[test]
    fn case_9_4_3_binary_4_mib_in_1_kib_fragments() {
        in_fragments(BINARY, 4 * MIB, KIB);
    }
    #[test]
    fn case_9_4_4_binary_4_mib_in_4_kib_fragments() {
        in_fragments(BINARY, 4 * MIB, 4 * KIB);
    }
    #[test]
    fn case_9_4_5_binary_4_mib_in_16_kib_fragments() {
        in_fragments(BINARY, 4 * MIB, 16 * KIB);
    }
    #[test]
    fn case_9_4_6_binary_4_mib_in_64_kib_fragments() {
        in_fragments(BINARY, 4 * MIB, 64 * KIB);
    }
    #[test]
    fn case_9_4_7_binary_4_mib_in_256_kib_fragments() {
        in_fragments(BINARY, 4 * MIB, 256 * KIB);
    }
    #[test]
    fn case_9_4_8_binary_4_mib_in_1_mib_fragments() {
        in_fragments(BINARY, 4 * MIB, MIB);
    }
    #[test]
    fn case_9_4_9_binary_4_mib_in_4_mib_fragments() {
        in_fragments(BINARY, 4 * MIB, 4 * MIB);
    }
    #[test]
    fn case_9_5_1_text_1_mib_in_64_byte_chops() {
        in_chops(TEXT, MIB, 64);
    }
    #[test]
    fn case_9_5_2_text_1_mib_in_128_byte_chops() {
        in_chops(TEXT, MIB, 128);
    }
    #[test]
    fn case_9_5_3_text_1_mib_in_256_byte_chops() {
        in_chops(TEXT, MIB, 256);
    }
    #[test]
    fn case_9_5_4_text_1_mib_in_512_byte_chops() {
        in_chops(TEXT, MIB, 512);
    }
    #[test]
    fn case_9_5_5_text_1_mib_in_1024_byte_chops() {
        in_chops(TEXT, MIB, 1024);
    }
    #[test]
    fn case_9_5_6_text_1_mib_in_2048_byte_chops() {
        in_chops(TEXT, MIB, 2048);
    }
    #[test]
    fn case_9_6_1_binary_1_mib_in_64_byte_chops() {
        in_chops(BINARY, MIB, 64);
    }
    #[test]
    fn case_9_6_2_binary_1_mib_in_128_byte_chops() {
        in_chops(BINARY, MIB, 128);
    }
    #[test]
    fn case_9_6_3_binary_1_mib_in_256_byte_chops() {
        in_chops(BINARY, MIB, 256);
    }
    #[test]
    fn case_9_6_4_binary_1_mib_in_512_byte_chops() {
        in_chops(BINARY, MIB, 512);
    }
    #[test]
    fn case_9_6_5_binary_1_mib_in_1024_byte_chops() {
        in_chops(BINARY, MIB, 1024);
    }
    #[test]
    fn case_9_6_6_binary_1_mib_in_2048_byte_chops() {
        in_chops(BINARY, MIB, 2048);
    }
    #[test]
    fn case_9_7_1_1000_text_round_trips_of_0_bytes() {
        round_trips(TEXT, 0);
    }
    #[test]
    fn case_9_7_2_1000_text_round_trips_of_16_bytes() {
        round_trips(TEXT, 16);
    }
    #[test]
    fn case_9_7_3_1000_text_round_trips_of_64_bytes() {
        round_trips(TEXT, 64);
    }
    #[test]
    fn case_9_7_4_1000_text_round_trips_of_256_bytes() {
        round_trips(TEXT, 256);
    }
    #[test]
    fn case_9_7_5_1000_text_round_trips_of_1_kib() {
        round_trips(TEXT, KIB);
    }
    #[test]
    fn case_9_7_6_1000_text_round_trips_of_4_kib() {
        round_trips(TEXT, 4 * KIB);
    }
    #[test]
    fn case_9_8_1_1000_binary_round_trips_of_0_bytes() {
        round_trips(BINARY, 0);
    }
    #[test]
    fn case_9_8_2_1000_binary_round_trips_of_16_bytes() {
        round_trips(BINARY, 16);
    }
    #[test]
    fn case_9_8_3_1000_binary_round_trips_of_64_bytes() {
        round_trips(BINARY, 64);
    }
    #[test]
    fn case_9_8_4_1000_binary_round_trips_of_256_bytes() {
        round_trips(BINARY, 256);
    }
    #[test]
    fn case_9_8_5_1000_binary_round_trips_of_1_kib() {
        round_trips(BINARY, KIB);
    }
    #[test]
    fn case_9_8_6_1000_binary_round_trips_of_4_kib() {
        round_trips(BINARY, 4 * KIB);
    }

    /// 65536 bytes of text (the chat mode's default limit) whose 3-byte code points straddle every fragment size used.
    fn text_at_limit() -> Vec<u8> {
        let mut t = "\u{732a}".repeat(21845).into_bytes(); // 65535 bytes of 猪
        t.push(b'!');
        assert_eq!(t.len(), 65536);
        t
    }

    fn at_default_limit(opcode: u8, size: usize) {
        let mut c = Client::with_args(&CHAT_LIMIT);
        let data = if opcode == TEXT { text_at_limit() } else { binary_of(65536) };
        c.send(&fragments(opcode, &data, size));
        c.expect(opcode, &data);
        c.close_normally();
    }

    /// The limit's worth of non-final fragments, then a final fragment of one byte: refused with 1009
    /// before any echo.
    fn one_byte_over_default_limit(opcode: u8, size: usize) {
        let mut c = Client::with_args(&CHAT_LIMIT);
        let data = if opcode == TEXT { text_at_limit() } else { binary_of(65536) };
        let mut bytes = Vec::new();
        for (i, chunk) in data.chunks(size).enumerate() {
            bytes.extend(client_frame(false, 0, if i == 0 { opcode } else { CONT }, chunk));
        }
        bytes.extend(client_frame(true, 0, CONT, b"!"));
        c.send(&bytes);
        c.expect_fail(1009);
    }

    #[test]
    fn limit_text_of_65536_bytes_in_1_byte_fragments() {
        at_default_limit(TEXT, 1);
    }
    #[test]
    fn limit_text_of_65536_bytes_in_64_byte_fragments() {
        at_default_limit(TEXT, 64);
    }
    #[test]
    fn limit_text_of_65536_bytes_in_65535_byte_fragments() {
        at_default_limit(TEXT, 65535);
    }
    #[test]
    fn limit_binary_of_65536_bytes_in_1_byte_fragments() {
        at_default_limit(BINARY, 1);
    }
    #[test]
    fn limit_binary_of_65536_bytes_in_64_byte_fragments() {
        at_default_limit(BINARY, 64);
    }
    #[test]
    fn limit_binary_of_65536_bytes_in_65535_byte_fragments() {
        at_default_limit(BINARY, 65535);
    }
    #[test]
    fn limit_text_one_byte_over_in_1_byte_fragments() {
        one_byte_over_default_limit(TEXT, 1);
    }
    #[test]
    fn limit_text_one_byte_over_in_64_byte_fragments() {
        one_byte_over_default_limit(TEXT, 64);
    }
    #[test]
    fn limit_binary_one_byte_over_in_65535_byte_fragments() {
        one_byte_over_default_limit(BINARY, 65535);
    }
    #[test]
    fn limit_one_frame_over_is_refused_from_its_header() {
        // Only the header of a 65537-byte frame: the server must not wait for the payload.
        let mut c = Client::with_args(&CHAT_LIMIT);
        let frame = client_frame(true, 0, BINARY, &binary_of(65537));
        c.send(&frame[..14]);
        c.expect_fail(1009);
    }
    #[test]
    fn limit_raised_to_16_mib_refuses_one_byte_more() {
        let mut c = Client::with_args(&BIG_LIMITS);
        let mut head = vec![0x82u8, 0xff];
        head.extend_from_slice(&(16 * MIB as u64 + 1).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        c.send(&head);
        c.expect_fail(1009);
    }
}

/// Category 10: a message auto-fragmented by the client is echoed whole.
mod case_10_misc {
    use super::*;

    #[test]
    fn case_10_1_1_text_65536_bytes_in_1300_byte_fragments() {
        let mut c = Client::new();
        let data = text_of(65536);
        c.send(&fragments(TEXT, &data, 1300));
        c.expect(TEXT, &data);
        c.close_normally();
    }
}

/// `--echo` alone raises the limits so that an external suite's category 9 passes without extra flags.
#[test]
fn echo_defaults_take_category_9_sizes() {
    let mut c = Client::new();
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    c.send(&client_frame(true, 0, TEXT, &data));
    let f = c.raw.read_frame().expect("echo");
    assert_eq!((f.opcode, f.payload.len()), (TEXT, data.len()));
    assert!(f.payload == data);
}
