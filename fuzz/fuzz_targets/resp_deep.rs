//! The Redis link on replies nested far deeper than libFuzzer's inputs could spell out: the harness builds
//! the nesting (up to 65 535 levels, each array of one to four elements) from a few input bytes, then
//! feeds it in reads of the size the input says, with the input's tail as more server bytes.
//!
//! Input layout: bytes 0-1 the depth (big-endian), byte 2 the read size (0: one read), byte 3 picks small
//! limits; the rest shapes the levels' element counts and follows the reply. Checked: no panic, no stack
//! overflow; a reply deeper than the limit fails the link as garbage before any event; one within it is
//! delivered with exactly its depth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::cluster::link::{Event, Limits, Link, RedisUrl, State, Value, MAX_DEPTH};

/// The array headers of one to four elements.
const HEADERS: [&[u8]; 4] = [b"*1\r\n", b"*2\r\n", b"*3\r\n", b"*4\r\n"];

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let levels = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let read = usize::from(data[2]) * 64;
    let small = data[3] & 1 != 0;
    let shape = &data[4..];
    let limits = if small { Limits { max_depth: 2, ..Limits::default() } } else { Limits::default() };
    let mut reply = Vec::with_capacity(levels * 16 + shape.len() + 4);
    let mut counts = Vec::with_capacity(levels);
    for i in 0..levels {
        let k = 1 + usize::from(shape.get(i % shape.len().max(1)).copied().unwrap_or(0) & 3);
        reply.extend_from_slice(HEADERS[k - 1]);
        counts.push(k);
    }
    reply.extend_from_slice(b":1\r\n");
    for k in counts.iter().rev() {
        for _ in 1..*k {
            reply.extend_from_slice(b"+x\r\n");
        }
    }
    reply.extend_from_slice(shape);

    let url = RedisUrl::parse("redis://h").expect("a valid URL");
    let mut link = Link::with_limits(&url, limits);
    link.command(1, &[b"X"]);
    if read == 0 {
        link.feed(&reply);
    } else {
        for chunk in reply.chunks(read) {
            link.feed(chunk);
        }
    }
    let first = link.next_event();
    let max = if small { 2 } else { MAX_DEPTH };
    if levels > max {
        assert_eq!(first, None);
        assert!(matches!(link.state(), State::Failed(r) if r.contains("nested deeper")), "{:?}", link.state());
        assert!(link.sent_garbage());
    } else {
        let Some(Event::Reply { tag: 1, value }) = first else { panic!("no reply: {:?}", link.state()) };
        assert_eq!(depth(&value), levels);
    }
});
