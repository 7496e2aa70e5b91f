//! wschat-dump on hand-built captures of the hard cases: reordered, retransmitted and split segments, many
//! frames in one segment, a capture that starts mid-connection, IPv6, snapshot-length cuts, other link types,
//! and bad input (truncated, corrupt, unknown link type, not a capture), through the library and the binary.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use serde_json::Value;
use wschat::dump::capture::CaptureError;
use wschat::dump::{run, Options, Outcome, Output};
use wschat::ws::frame::{close_payload, frame, write_masked_frame, OpCode};
use wschat::ws::handshake::{client_request, switching_protocols};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// One TCP connection on the wire, raw IP packets, sequence numbers tracked.
struct Session {
    v6: bool,
    cport: u16,
    cseq: u32,
    sseq: u32,
}

impl Session {
    fn new(v6: bool) -> Session {
        Session { v6, cport: 50123, cseq: 4_294_967_000, sseq: 77_000 }
    }

    /// A raw IP packet; flags among S (SYN), F (FIN), R (RST), A (ACK with `ack`).
    fn packet(&self, from_client: bool, seq: u32, ack: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
        let (sp, dp) = if from_client { (self.cport, 7272) } else { (7272, self.cport) };
        let builder = if self.v6 {
            let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
            a[15] = 1;
            b[15] = 1;
            b[0] = 0xfd;
            let (src, dst) = if from_client { (b, a) } else { (a, b) };
            PacketBuilder::ipv6(src, dst, 64)
        } else {
            let (src, dst) =
                if from_client { ([127, 0, 0, 2], [127, 0, 0, 1]) } else { ([127, 0, 0, 1], [127, 0, 0, 2]) };
            PacketBuilder::ipv4(src, dst, 64)
        };
        let mut tcp = builder.tcp(sp, dp, seq, 512);
        if flags.contains('S') {
            tcp = tcp.syn();
        }
        if flags.contains('F') {
            tcp = tcp.fin();
        }
        if flags.contains('R') {
            tcp = tcp.rst();
        }
        if flags.contains('A') {
            tcp = tcp.ack(ack);
        }
        let mut out = Vec::new();
        tcp.write(&mut out, payload).unwrap();
        out
    }

    fn handshake(&mut self) -> Vec<Vec<u8>> {
        let syn = self.packet(true, self.cseq, 0, "S", b"");
        let synack = self.packet(false, self.sseq, self.cseq.wrapping_add(1), "SA", b"");
        self.cseq = self.cseq.wrapping_add(1);
        self.sseq = self.sseq.wrapping_add(1);
        let ack = self.packet(true, self.cseq, self.sseq, "A", b"");
        vec![syn, synack, ack]
    }

    fn client(&mut self, payload: &[u8]) -> Vec<u8> {
        let p = self.packet(true, self.cseq, self.sseq, "A", payload);
        self.cseq = self.cseq.wrapping_add(payload.len() as u32);
        p
    }

    fn server(&mut self, payload: &[u8]) -> Vec<u8> {
        let p = self.packet(false, self.sseq, self.cseq, "A", payload);
        self.sseq = self.sseq.wrapping_add(payload.len() as u32);
        p
    }

    fn upgrade(&mut self) -> Vec<Vec<u8>> {
        let mut v = self.handshake();
        v.push(self.client(&client_request("[::1]:7272", "/", KEY)));
        v.push(self.server(&switching_protocols(KEY)));
        v
    }

    fn teardown(&mut self) -> Vec<Vec<u8>> {
        let a = self.packet(true, self.cseq, self.sseq, "FA", b"");
        self.cseq = self.cseq.wrapping_add(1);
        let b = self.packet(false, self.sseq, self.cseq, "FA", b"");
        self.sseq = self.sseq.wrapping_add(1);
        let c = self.packet(true, self.cseq, self.sseq, "A", b"");
        vec![a, b, c]
    }
}

fn masked(op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_masked_frame(&mut out, op, payload, [0xa1, 0xb2, 0xc3, 0xd4]);
    out
}

/// A pcap file of `packets` (raw IP, or wrapped for `link`), 1 ms apart.
fn pcap(link: DataLink, packets: &[Vec<u8>]) -> Vec<u8> {
    let header = PcapHeader { datalink: link, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (i, p) in packets.iter().enumerate() {
        let v6 = p[0] >> 4 == 6;
        let mut data = match link {
            DataLink::ETHERNET => {
                let mut d = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2];
                d.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
                d
            }
            DataLink::LINUX_SLL => {
                let mut d = vec![0, 0, 3, 4, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
                d.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
                d
            }
            DataLink::NULL => vec![if v6 { 10 } else { 2 }, 0, 0, 0],
            _ => Vec::new(),
        };
        data.extend_from_slice(p);
        let ts = Duration::from_millis(1_700_000_000_000 + i as u64);
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data)).unwrap();
    }
    w.into_writer()
}

/// Runs the analyzer and returns the events as JSON objects and the outcome.
fn dump(bytes: &[u8]) -> (Vec<Value>, Outcome) {
    let mut out = Vec::new();
    let outcome = run(bytes, &mut out, &Options { output: Output::Json, ..Options::default() }).unwrap();
    let evs = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (evs, outcome)
}

fn texts(evs: &[Value], dir: &str) -> Vec<String> {
    evs.iter()
        .filter(|e| e["event"] == "frame" && e["dir"] == dir)
        .map(|e| e["text"].as_str().unwrap_or("").to_string())
        .collect()
}

fn notes(evs: &[Value]) -> Vec<String> {
    evs.iter().filter(|e| e["event"] == "note").map(|e| e["note"].as_str().unwrap().to_string()).collect()
}

#[test]
fn out_of_order_segments_are_put_back_in_order() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    let a = s.client(&masked(OpCode::Text, b"first"));
    let b = s.client(&masked(OpCode::Text, b"second"));
    let c = s.client(&masked(OpCode::Text, b"third"));
    pkts.extend([c, b, a]);
    pkts.extend(s.teardown());
    let (evs, outcome) = dump(&pcap(DataLink::RAW, &pkts));
    assert!(outcome.error.is_none());
    assert_eq!(texts(&evs, "c2s"), ["first", "second", "third"]);
    assert_eq!(notes(&evs), ["out_of_order", "out_of_order"]);
    assert_eq!(evs.last().unwrap()["how"], "fin");
}

#[test]
fn retransmissions_are_reported_once_and_not_decoded_twice() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    let before = s.cseq;
    let a = s.client(&masked(OpCode::Text, b"hello"));
    let b_bytes = masked(OpCode::Text, b"world");
    let b = s.client(&b_bytes);
    // The retransmission of `a` and `b` together in one bigger segment (overlap), then `b` alone again.
    let mut ab = masked(OpCode::Text, b"hello");
    ab.extend_from_slice(&b_bytes);
    let both = s.packet(true, before, s.sseq, "A", &ab);
    pkts.extend([a.clone(), a, b.clone(), both, b]);
    let (evs, _) = dump(&pcap(DataLink::RAW, &pkts));
    assert_eq!(texts(&evs, "c2s"), ["hello", "world"]);
    assert_eq!(notes(&evs), ["retransmission", "retransmission", "retransmission"]);
}

#[test]
fn a_frame_split_in_three_segments_is_one_frame() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    let text = "猪".repeat(100); // 300 bytes: a 16-bit extended length
    let f = masked(OpCode::Text, text.as_bytes());
    pkts.push(s.client(&f[..1])); // inside the header
    pkts.push(s.client(&f[1..150])); // header rest and half the payload
    pkts.push(s.client(&f[150..]));
    let (evs, _) = dump(&pcap(DataLink::ETHERNET, &pkts));
    let frames: Vec<&Value> = evs.iter().filter(|e| e["event"] == "frame").collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["len"], 300);
    assert_eq!(frames[0]["text"], text);
    assert_eq!(frames[0]["masked"], true);
}

#[test]
fn twenty_frames_in_one_segment() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    let mut burst = Vec::new();
    for i in 0..20 {
        burst.extend(frame(OpCode::Text, format!("{{\"n\":{i}}}").as_bytes()));
    }
    pkts.push(s.server(&burst));
    let (evs, _) = dump(&pcap(DataLink::LINUX_SLL, &pkts));
    let got = texts(&evs, "s2c");
    assert_eq!(got.len(), 20);
    assert_eq!(got[19], "{\"n\":19}");
    assert!(evs.iter().filter(|e| e["event"] == "frame").all(|e| e["packet"] == 6));
}

#[test]
fn capture_starting_mid_connection_says_so_and_resynchronises() {
    let mut s = Session::new(false);
    let _ = s.upgrade();
    let big = masked(OpCode::Binary, &[7u8; 400]);
    let mut pkts = Vec::new();
    let _ = s.client(&big[..200]);
    pkts.push(s.client(&big[200..])); // the tail of a frame whose start was not captured
    pkts.push(s.client(&masked(OpCode::Text, br#"{"type":"say","to_uid":"all","content":"x"}"#)));
    pkts.push(s.server(&frame(OpCode::Text, b"{\"type\":\"say\"}")));
    let (evs, _) = dump(&pcap(DataLink::RAW, &pkts));
    assert_eq!(evs[0]["event"], "mid_stream");
    assert_eq!(notes(&evs), ["lost_sync", "resynced"]);
    assert_eq!(texts(&evs, "c2s"), [r#"{"type":"say","to_uid":"all","content":"x"}"#]);
    assert_eq!(texts(&evs, "s2c"), ["{\"type\":\"say\"}"]);
    assert_eq!(evs.last().unwrap()["how"], "open_at_end");
}

#[test]
fn ipv6_connection_is_followed() {
    let mut s = Session::new(true);
    let mut pkts = s.upgrade();
    pkts.push(s.client(&masked(OpCode::Text, br#"{"type":"login","name":"mynick"}"#)));
    pkts.push(s.server(&frame(OpCode::Ping, b"are you there")));
    pkts.push(s.client(&masked(OpCode::Pong, b"are you there")));
    pkts.push(s.client(&masked(OpCode::Close, &close_payload(1001, "going"))));
    pkts.push(s.server(&frame(OpCode::Close, &close_payload(1001, ""))));
    pkts.extend(s.teardown());
    let (evs, _) = dump(&pcap(DataLink::NULL, &pkts));
    assert_eq!(evs[0]["event"], "tcp_handshake");
    assert_eq!(evs[0]["client"], "[fd00::1]:50123");
    assert_eq!(evs[0]["server"], "[::1]:7272");
    assert_eq!(evs[2]["accept"], "valid");
    assert_eq!(texts(&evs, "c2s")[0], r#"{"type":"login","name":"mynick"}"#);
    let ping = evs.iter().find(|e| e["opcode"] == "ping").unwrap();
    assert_eq!(ping["text"], "are you there");
    let close = evs.iter().find(|e| e["opcode"] == "close").unwrap();
    assert_eq!((close["close_code"].as_u64(), close["close_reason"].as_str()), (Some(1001), Some("going")));
}

#[test]
fn fragmented_message_is_reassembled() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    let mut bytes = vec![0x01, 0x03];
    bytes.extend_from_slice(b"abc");
    bytes.extend([0x00, 0x02, b'd', b'e', 0x80, 0x01, b'f']);
    pkts.push(s.server(&bytes));
    let (evs, _) = dump(&pcap(DataLink::RAW, &pkts));
    let msg = evs.iter().find(|e| e["event"] == "message").unwrap();
    assert_eq!((msg["frames"].as_u64(), msg["text"].as_str()), (Some(3), Some("abcdef")));
    let fins: Vec<bool> = evs.iter().filter(|e| e["event"] == "frame").map(|e| e["fin"].as_bool().unwrap()).collect();
    assert_eq!(fins, [false, false, true]);
}

#[test]
fn snaplen_cut_packets_keep_frame_boundaries() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    pkts.push(s.server(&frame(OpCode::Binary, &[9u8; 1000])));
    pkts.push(s.server(&frame(OpCode::Text, b"after the cut")));
    let bytes = pcap(DataLink::RAW, &pkts);
    // Rewrite the big packet as if captured with a 200-byte snapshot length.
    let mut w =
        PcapWriter::with_header(Vec::new(), PcapHeader { datalink: DataLink::RAW, ..PcapHeader::default() }).unwrap();
    for (i, p) in pkts.iter().enumerate() {
        let data = if p.len() > 500 { &p[..200] } else { &p[..] };
        w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64), p.len() as u32, data)).unwrap();
    }
    let cut = w.into_writer();
    assert!(cut.len() < bytes.len());
    let (evs, _) = dump(&cut);
    let big = evs.iter().find(|e| e["opcode"] == "binary").unwrap();
    assert_eq!(big["len"], 1000);
    assert!(big["missing"].as_u64().unwrap() > 800);
    assert_eq!(notes(&evs), ["gap"]);
    assert_eq!(texts(&evs, "s2c"), ["", "after the cut"]);
}

#[test]
fn truncated_last_packet_keeps_what_came_before() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    pkts.push(s.client(&masked(OpCode::Text, b"kept")));
    pkts.push(s.client(&masked(OpCode::Text, b"lost in the cut")));
    let mut bytes = pcap(DataLink::RAW, &pkts);
    bytes.truncate(bytes.len() - 10);
    let (evs, outcome) = dump(&bytes);
    assert_eq!(texts(&evs, "c2s"), ["kept"]);
    assert!(matches!(outcome.error, Some(CaptureError::Truncated { packet: 7, .. })), "{:?}", outcome.error);
    assert_eq!(outcome.packets, 6);
}

/// Runs the binary on `bytes` written to a temporary file.
fn run_binary(name: &str, bytes: &[u8], args: &[&str]) -> (i32, String, String) {
    let path: PathBuf = std::env::temp_dir().join(format!("wschat-dump-test-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wschat-dump")).arg(&path).args(args).output().unwrap();
    let _ = std::fs::remove_file(&path);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_inputs_get_clear_errors_and_a_nonzero_exit() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    pkts.push(s.client(&masked(OpCode::Text, b"before the fault")));
    let good = pcap(DataLink::RAW, &pkts);

    let mut cut = good.clone();
    cut.truncate(cut.len() - 3);
    let (code, out, err) = run_binary("truncated.pcap", &cut, &["--utc"]);
    assert_eq!(code, 1);
    assert!(err.contains("truncated.pcap: packet 6: truncated capture"), "{err}");
    assert!(out.contains("HTTP response: HTTP/1.1 101 Switching Protocols"), "decoded part still printed: {out}");
    assert!(!err.contains("panicked"));

    let (code, out, err) = run_binary("notes.txt", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("notes.txt: not a pcap or pcapng capture (starts with 47 45 54 20"), "{err}");

    let (code, _, err) = run_binary("empty.pcap", b"", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("empty.pcap: empty input"), "{err}");

    let (code, _, err) = run_binary("user0.pcap", &pcap(DataLink::USER0, &pkts), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("user0.pcap: unsupported link type 147"), "{err}");

    let (code, _, err) = run_binary("header.pcap", &good[..20], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("header.pcap: truncated capture: the file header is incomplete (20 bytes)"), "{err}");

    // A record whose IP header is garbage: reported with its number, the rest decoded, exit 1.
    let mut garbage = pkts.clone();
    garbage.insert(3, vec![0x45, 0, 0, 3]);
    let (code, out, err) = run_binary("garbage.pcap", &pcap(DataLink::RAW, &garbage), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("garbage.pcap: 1 packet(s) could not be decoded (first: packet 4: IP header"), "{err}");
    assert!(out.contains("packet 4  skipped: IP header"), "{out}");
    assert!(out.contains("before the fault"));

    // pcapng with a corrupt block (trailer length differs from the header's).
    let ng = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed-lo.pcapng")).unwrap();
    let mut bad = ng.clone();
    let n = bad.len();
    bad[n - 4] ^= 0x40;
    let (code, out, err) = run_binary("corrupt.pcapng", &bad, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("corrupt.pcapng: packet 41: corrupt record: "), "{err}");
    assert!(out.contains("hi,  all !"), "what came before is printed");

    let missing = Command::new(env!("CARGO_BIN_EXE_wschat-dump")).arg("/nonexistent/x.pcap").output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.pcap: No such file"));

    let (code, _, _) = run_binary("good.pcap", &good, &[]);
    assert_eq!(code, 0);
}

#[test]
fn stdin_input_works() {
    let mut s = Session::new(false);
    let mut pkts = s.upgrade();
    pkts.push(s.client(&masked(OpCode::Text, b"via stdin")));
    let bytes = pcap(DataLink::RAW, &pkts);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat-dump"))
        .args(["-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains(r#""text":"via stdin""#));
}
