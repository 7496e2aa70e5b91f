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
//!
//! One file per category; the raw client and the payload helpers they share are here.

mod case_10_misc;
mod case_1_framing;
mod case_2_ping_pong;
mod case_3_reserved_bits;
mod case_4_opcodes;
mod case_5_fragmentation;
mod case_6_utf8;
mod case_7_close;
mod case_9_limits;
#[path = "../common/mod.rs"]
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
