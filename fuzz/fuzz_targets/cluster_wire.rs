//! What nodes read from each other through Redis: a published message on arbitrary bytes, room keys read
//! back from `SCAN`, and the recovery bookkeeping fed arbitrary sequence numbers.
//!
//! Input layout: byte 0 picks what the rest is — a message (as it is, or behind a valid header), or text
//! for the key layout and the tracker. Checked: no panic; a decoded message's records are as many as it
//! counted and, written again by the encoder, decode to the same header and records; a room key read back
//! names the key it was read from; the tracker delivers each origin's numbers once, in order.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use wschat::cluster::wire::{write_header, Keys, Message, Record, Section, Tracker, Verdict};

/// Starts the records of `r` unless they are the current room's.
fn enter<'a>(s: &mut Section, room: &mut Option<&'a str>, r: &'a str) {
    if *room != Some(r) {
        s.room(r);
        *room = Some(r);
    }
}

fn message(bytes: &[u8]) {
    let peeked = Message::peek(bytes);
    let Ok(m) = Message::decode(bytes) else { return };
    assert_eq!(peeked, Ok((m.origin, m.seq)));
    let records: Vec<Record<'_>> = m.records().collect();
    assert_eq!(records.len(), m.count);
    // Written again: one section, a room record wherever the room changes.
    let mut s = Section::new();
    let mut room: Option<&str> = None;
    for r in &records {
        match *r {
            Record::Room(event) => {
                enter(&mut s, &mut room, event.room());
                s.event(&event)
            }
            Record::Present { room: r, uid, name, order } => {
                enter(&mut s, &mut room, r);
                s.present(uid, name, order)
            }
            Record::Hello => s.hello(),
            Record::Snapshot => s.snapshot(),
            Record::Gone { node } => s.gone(node),
        }
    }
    let mut again = Vec::new();
    write_header(&mut again, m.origin, m.seq);
    again.extend_from_slice(&s.bytes);
    let m2 = Message::decode(&again).expect("a re-encoded message decodes");
    assert_eq!((m2.origin, m2.seq, m2.count), (m.origin, m.seq, m.count));
    assert_eq!(m2.records().collect::<Vec<_>>(), records);
}

fn keys(text: &str) {
    let (prefix, rest) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(keys) = Keys::new(prefix) else { return };
    let (room, key) = rest.split_once('\n').unwrap_or((rest, rest));
    let written = keys.history(room);
    assert_eq!(keys.split_room_key(&written), Some(("history", room, "")), "{written:?}");
    if let Some((kind, room, suffix)) = keys.split_room_key(key) {
        assert_eq!(kind, "history");
        assert_eq!(format!("{}{suffix}", keys.history(room)), key);
    }
}

fn tracker(bytes: &[u8]) {
    let mut t = Tracker::new();
    let mut delivered: HashMap<u64, u64> = HashMap::new();
    for op in bytes.chunks(3) {
        let origin = u64::from(op[0] & 3);
        let seq = op.get(1..).map_or(0, |b| b.iter().fold(0u64, |n, &b| n << 8 | u64::from(b)));
        match op[0] >> 6 {
            0 => t.expect(origin),
            1 => t.accept_loss(origin, seq),
            2 => t.forget(origin),
            _ => match t.observe(origin, seq) {
                Verdict::Deliver => {
                    if let Some(last) = delivered.insert(origin, seq) {
                        assert!(seq > last, "delivered {seq} after {last}");
                    }
                    assert_eq!(t.last(origin), Some(seq));
                }
                Verdict::Duplicate => assert!(t.last(origin).is_some_and(|l| seq <= l)),
                Verdict::Gap { from, to } => {
                    assert!(from <= to && to + 1 == seq, "gap {from}..={to} before {seq}");
                    assert_eq!(t.last(origin), Some(from - 1));
                }
            },
        }
        if op[0] >> 6 == 2 {
            delivered.remove(&origin);
        }
        if op[0] >> 6 == 1 {
            delivered.remove(&origin);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 4 {
        0 => message(rest),
        1 => {
            let mut prefixed = Vec::with_capacity(rest.len() + 12);
            write_header(&mut prefixed, 0x0102_0304_0506_0708, 1);
            prefixed.extend_from_slice(rest);
            message(&prefixed);
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                keys(text);
            }
        }
        _ => tracker(rest),
    }
});
