//! Criterion micro-benchmarks of the hot paths: frame header decode and encode, unmasking (against the plain
//! byte loop and against memcpy of the same size), the handshake, the bench client's per-delivery work, one
//! `say` turned into its broadcast frame, and the hub fanning one message out to 1000 members.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
mod support;

use support::{hub_with, TIME};
use wschat::app::Effects;
use wschat::bench::audit::Audit;
use wschat::bench::content::{self, Stamp};
use wschat::chat::dialect::seed::parse_client_message;
use wschat::ws::frame::{encode_header, write_frame, FrameHeader, OpCode, MAX_HEADER_LEN};
use wschat::ws::handshake::{client_key, client_request, parse_request, parse_response, switching_protocols};
use wschat::ws::mask::{apply_mask, apply_mask_bytewise};
use wschat::ws::message::{Message, MessageDecoder, Role};

fn frame_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header");
    let cases: [(&str, usize, Option<[u8; 4]>); 3] =
        [("7bit_masked", 80, Some([1, 2, 3, 4])), ("16bit", 1500, None), ("64bit_masked", 70_000, Some([9, 8, 7, 6]))];
    for (name, len, mask) in cases {
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut head, true, OpCode::Text, mask, len);
        g.bench_function(BenchmarkId::new("decode", name), |b| b.iter(|| FrameHeader::decode(black_box(&head[..n]))));
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = [0u8; MAX_HEADER_LEN];
            b.iter(|| encode_header(&mut out, true, OpCode::Text, black_box(mask), black_box(len)))
        });
    }
    g.finish();
}

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for size in [64usize, 1500, 65536] {
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let src = buf.clone();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("apply_mask", size), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), [0x37, 0xfa, 0x21, 0x3d], 1))
        });
        g.bench_function(BenchmarkId::new("byte_loop", size), |b| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), [0x37, 0xfa, 0x21, 0x3d], 1))
        });
        g.bench_function(BenchmarkId::new("memcpy", size), |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    let browser = "GET / HTTP/1.1\r\nHost: 127.0.0.1:7272\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) \
        Gecko/20100101 Firefox/120.0\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, \
        deflate\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:55151\r\nSec-WebSocket-Key: \
        zPDr6m4czzUdOFnsxIUEAw==\r\nConnection: keep-alive, Upgrade\r\nPragma: no-cache\r\nCache-Control: \
        no-cache\r\nUpgrade: websocket\r\n\r\n";
    g.bench_function("server_parse_and_101", |b| {
        b.iter(|| {
            let (req, _) = parse_request(black_box(browser.as_bytes())).unwrap().unwrap();
            switching_protocols(&req.key)
        })
    });
    let key = client_key([7; 16]);
    let response = switching_protocols(&key);
    g.bench_function("client_request_and_parse_101", |b| {
        b.iter(|| {
            let req = client_request(black_box("127.0.0.1:7272"), "/", &key);
            (req.len(), parse_response(black_box(&response), &key).unwrap())
        })
    });
    g.finish();
}

/// What the bench client does per delivery: decode the frame, find the content, parse the stamp, audit.
fn client_delivery(c: &mut Criterion) {
    let mut g = c.benchmark_group("bench_client");
    const FRAMES: usize = 1000;
    for proto in ["raw", "chat"] {
        let mut stream = Vec::new();
        let mut text = Vec::new();
        let mut body = Vec::new();
        for i in 0..FRAMES {
            text.clear();
            content::encode(&mut text, Stamp { sender: (i % 100) as u32, seq: (i / 100) as u32, nanos: 1 }, 64);
            body.clear();
            if proto == "chat" {
                body.extend_from_slice(br#"{"type":"say","from_uid":17,"to_uid":"all","content":""#);
                body.extend_from_slice(&text);
                body.extend_from_slice(br#"","time":"2024-01-01 12:00:00"}"#);
            } else {
                body.extend_from_slice(&text);
            }
            write_frame(&mut stream, OpCode::Text, &body);
        }
        g.throughput(Throughput::Elements(FRAMES as u64));
        g.bench_function(BenchmarkId::new("decode_audit", proto), |b| {
            let mut buf = stream.clone();
            b.iter(|| {
                let mut audit = Audit::new(1, 100);
                let mut dec = MessageDecoder::new(Role::Client, 1 << 20);
                let mut pos = 0;
                let mut n = 0u64;
                loop {
                    let d = dec.decode(&mut buf[pos..]).unwrap();
                    if d.consumed == 0 && d.message.is_none() {
                        break;
                    }
                    pos += d.consumed;
                    if let Some(Message::Text(t)) = d.message {
                        let t = t.as_bytes();
                        let s = if proto == "chat" { content::say_stamp(t) } else { content::parse(t) }.unwrap();
                        audit.record(0, s.sender as usize, s.seq);
                        n += s.nanos;
                    }
                }
                n
            })
        });
    }
    g.finish();
}

fn chat(c: &mut Criterion) {
    let mut g = c.benchmark_group("chat");
    let say =
        r#"{"type":"say","to_uid":"all","content":"b1:2:3:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let mut fx = Effects::default();
    // One member: the cost of turning a say into its frame; 1000: the fan-out, per delivery.
    for (members, name) in [(1, "say_to_broadcast_frame"), (1000, "hub_fanout_1000_members")] {
        let mut hub = hub_with(members);
        if members > 1 {
            g.throughput(Throughput::Elements(members as u64));
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                fx.clear();
                hub.handle(0, parse_client_message(black_box(say)).unwrap(), TIME, &mut fx);
                hub.seal(&mut fx);
                fx.sends.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, frame_header, unmask, handshake, client_delivery, chat);
criterion_main!(benches);
