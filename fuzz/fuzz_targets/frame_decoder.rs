//! The frame decoder plus message assembler on arbitrary bytes, split into arbitrary reads.
//!
//! Input layout: byte 0 picks the role and the size limit, byte 1 seeds the read splits, the rest is the
//! byte stream. Checked: no panic; every step consumes within its input and makes progress or asks for
//! more; decoding the stream in one read and in many reads yields the same events and the same error;
//! every event satisfies the protocol's invariants (control payloads within 125 bytes, messages within the
//! limit, text valid UTF-8 by construction, close codes valid on the wire); and every event, encoded again
//! by the crate's encoder, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::frame::{close_code, close_payload, write_frame, write_masked_frame, OpCode};
use wschat::ws::message::{Message, MessageDecoder, Role, WsError};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

fn own(m: Message<'_>, limit: usize) -> Ev {
    match m {
        Message::Text(t) => {
            assert!(t.len() <= limit, "text over the limit");
            Ev::Text(t.to_string())
        }
        Message::Binary(b) => {
            assert!(b.len() <= limit, "binary over the limit");
            Ev::Binary(b.to_vec())
        }
        Message::Ping(p) => {
            assert!(p.len() <= 125);
            Ev::Ping(p.to_vec())
        }
        Message::Pong(p) => {
            assert!(p.len() <= 125);
            Ev::Pong(p.to_vec())
        }
        Message::Close(c) => {
            if let Some((code, reason)) = c {
                assert!(close_code::is_valid_on_wire(code));
                assert!(reason.len() <= 123);
            }
            Ev::Close(c.map(|(code, r)| (code, r.to_string())))
        }
    }
}

/// Feeds `reads` the way the reactor does, keeping unconsumed bytes; stops at the first error.
fn run(role: Role, limit: usize, reads: &[&[u8]]) -> (Vec<Ev>, Option<WsError>) {
    let mut dec = MessageDecoder::new(role, limit);
    let mut pending: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    for read in reads {
        pending.extend_from_slice(read);
        // Every step but the last consumes at least one byte or yields an event that used at least one.
        let max_steps = pending.len() + 2;
        let mut steps = 0usize;
        loop {
            steps += 1;
            assert!(steps <= max_steps, "decoder loops without progress");
            let len = pending.len();
            match dec.decode(&mut pending) {
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
                    return (events, Some(e));
                }
                Ok(d) => {
                    assert!(d.consumed <= len, "consumed more than given");
                    let consumed = d.consumed;
                    let progressed = consumed > 0 || d.message.is_some();
                    if let Some(m) = d.message {
                        events.push(own(m, limit));
                    }
                    pending.drain(..consumed);
                    if !progressed {
                        break;
                    }
                }
            }
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let role = if data[0] & 0x80 == 0 { Role::Server } else { Role::Client };
    let limit = 1usize << (data[0] & 0x0f).min(17);
    let mut seed = u32::from(data[1]) | 1;
    let stream = &data[2..];

    let whole = run(role, limit, &[stream]);

    // Split into reads of pseudo-random sizes (1 to 16 bytes, or a byte at a time when seed says so).
    let mut reads = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let step = if data[1] == 0 { 1 } else { 1 + (seed >> 16) as usize % 16 };
        let end = (pos + step).min(stream.len());
        reads.push(&stream[pos..end]);
        pos = end;
    }
    let split = run(role, limit, &reads);
    assert_eq!(whole, split, "one read and many reads disagree");

    // Every event re-encoded by the crate's own encoder decodes to itself.
    for ev in &whole.0 {
        let (op, payload): (OpCode, Vec<u8>) = match ev {
            Ev::Text(t) => (OpCode::Text, t.as_bytes().to_vec()),
            Ev::Binary(b) => (OpCode::Binary, b.clone()),
            Ev::Ping(p) => (OpCode::Ping, p.clone()),
            Ev::Pong(p) => (OpCode::Pong, p.clone()),
            Ev::Close(None) => (OpCode::Close, Vec::new()),
            Ev::Close(Some((code, reason))) => (OpCode::Close, close_payload(*code, reason)),
        };
        let mut bytes = Vec::new();
        match role {
            Role::Server => write_masked_frame(&mut bytes, op, &payload, [data[1], 0x5a, data[0], 0xa5]),
            Role::Client => write_frame(&mut bytes, op, &payload),
        }
        let again = run(role, limit, &[&bytes]);
        assert_eq!(again, (vec![ev.clone()], None), "re-encoded event differs");
    }
});
