//! A room's history entry as read back from Redis (`LRANGE`), on arbitrary bytes.
//!
//! Input layout: byte 0 is the room name's length; then the room name (lossy UTF-8), then the entry.
//! Checked: no panic; an entry is read only as one say to all of the room asked for, starting with a say
//! record and taking every byte; written again by the encoder, it reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::chat::event::RoomEvent;
use wschat::cluster::wire::{history_entry, read_history_entry};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n).min(rest.len());
    let room = String::from_utf8_lossy(&rest[..n]);
    let entry = &rest[n..];
    let Ok(rec) = read_history_entry(entry, &room) else { return };
    let RoomEvent::Say { room: r, from_uid, from_name, to_uid, content, time } = rec else { panic!("not a say: {rec:?}") };
    assert_eq!(r, &*room, "the say of another room");
    assert_eq!(to_uid, None, "a private say in history");
    assert!(from_uid > 0);
    assert_eq!(entry.first(), Some(&3), "an entry starts with its say");
    let again = history_entry(from_uid, from_name, content, time);
    assert_eq!(read_history_entry(&again, &room), Ok(rec));
    assert!(again.len() <= entry.len(), "the encoder writes the shortest form");
});
