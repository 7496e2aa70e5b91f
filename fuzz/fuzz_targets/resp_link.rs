//! The Redis link on arbitrary server bytes, in arbitrary reads.
//!
//! Input layout: byte 0 picks the link's limits (the defaults, or small ones so that every bound is in
//! reach), the commands queued (how many, and whether a SUBSCRIBE makes pushes possible) and whether the
//! URL logs in; byte 1 seeds the read sizes; the rest is what the server sends. Checked: no panic; the
//! stream in one read and in many reads yields the same events and the same end state; every reply stays
//! within the limits (nesting, elements); a link that failed on the server's bytes says so; every reply,
//! encoded again, decodes to itself on a fresh link.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::cluster::link::{Event, Limits, Link, RedisUrl, State, Value};

fn link(pick: u8) -> Link {
    let url = if pick & 0x40 != 0 { "redis://u:pw@h/3" } else { "redis://h" };
    let url = RedisUrl::parse(url).expect("a valid URL");
    let limits = if pick & 0x80 != 0 {
        Limits { max_depth: 3, max_elements: 16, max_reply_bytes: 256 }
    } else {
        Limits::default()
    };
    let mut link = Link::with_limits(&url, limits);
    if pick & 0x20 != 0 {
        link.subscribe(100, &[b"bus", b"other"]);
    }
    for tag in 0..u64::from(pick & 0x1f) {
        link.command(tag, &[b"PING"]);
    }
    link
}

/// Events and end state of the link fed `reads`.
fn run(pick: u8, reads: &[&[u8]]) -> (Vec<Event>, State, bool, usize) {
    let mut l = link(pick);
    let mut events = Vec::new();
    for read in reads {
        l.feed(read);
        while let Some(e) = l.next_event() {
            events.push(e);
        }
    }
    (events, l.state().clone(), l.sent_garbage(), l.awaiting())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn elements(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.len() + items.iter().map(elements).sum::<usize>(),
        _ => 0,
    }
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Value::Error(e) => out.extend_from_slice(format!("-{e}\r\n").as_bytes()),
        Value::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Value::Nil => out.extend_from_slice(b"$-1\r\n"),
        Value::Bulk(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for i in items {
                encode(i, out);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (pick, mut seed) = (data[0], u32::from(data[1]) | 1);
    let stream = &data[2..];
    let whole = run(pick, &[stream]);
    let mut reads = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let step = if data[1] == 0 { 1 } else { 1 + (seed >> 16) as usize % 64 };
        let end = (pos + step).min(stream.len());
        reads.push(&stream[pos..end]);
        pos = end;
    }
    let split = run(pick, &reads);
    assert_eq!(whole, split, "one read and many reads disagree");

    let (events, state, garbage, _) = whole;
    assert!(!garbage || matches!(state, State::Failed(_)), "garbage without failing");
    let limits = if pick & 0x80 != 0 {
        (3, 16)
    } else {
        (wschat::cluster::link::MAX_DEPTH, wschat::cluster::link::MAX_ELEMENTS)
    };
    for e in &events {
        let Event::Reply { value, .. } = e else { continue };
        assert!(depth(value) <= limits.0, "nested deeper than the limit: {value:?}");
        assert!(elements(value) <= limits.1, "more elements than the limit");
        // Re-encoded, the reply decodes to itself (a simple string made of the lossy text is that text).
        let mut bytes = Vec::new();
        encode(value, &mut bytes);
        let mut again = link(0);
        again.command(1, &[b"X"]);
        again.feed(&bytes);
        assert_eq!(again.next_event(), Some(Event::Reply { tag: 1, value: value.clone() }), "{bytes:?}");
    }
});
