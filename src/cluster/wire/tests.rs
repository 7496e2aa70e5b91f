//! Tests of the cluster's wire layer: keys, the message format, recovery.

use super::*;
use crate::chat::event::RoomEvent;

/// A login for [`Section::event`] (whose room the section already has).
fn login<'a>(uid: u64, name: &'a str, order: u64, time: &'a str) -> RoomEvent<'a> {
    RoomEvent::Login { room: "", uid, name, order, user_id: None, time }
}

/// A say for [`Section::event`].
fn say<'a>(from_uid: u64, from_name: &'a str, to_uid: Option<u64>, content: &'a str, time: &'a str) -> RoomEvent<'a> {
    RoomEvent::Say { room: "", from_uid, from_name, to_uid, content, time }
}

/// A logout for [`Section::event`].
fn logout<'a>(uid: u64, name: &'a str, time: &'a str) -> RoomEvent<'a> {
    RoomEvent::Logout { room: "", uid, name, time }
}

const T1: &str = "2026-11-25 12:00:00";
const T2: &str = "2026-11-25 12:00:01";

/// A message of `origin`'s number `seq` with the node-level section `head` and the room sections.
fn message(origin: u64, seq: u64, head: &Section, rooms: &[(&str, &Section)]) -> Vec<u8> {
    let mut buf = Vec::new();
    write_header(&mut buf, origin, seq);
    buf.extend_from_slice(&head.bytes);
    for (room, s) in rooms {
        let mut r = Section::new();
        r.room(room);
        buf.extend_from_slice(&r.bytes);
        buf.extend_from_slice(&s.bytes);
    }
    buf
}

fn sample_room() -> Section {
    let mut s = Section::new();
    s.event(&login(1, "猪猪", 1_700_000_000_000, T1));
    s.event(&say(1, "猪猪", None, "hi,  all !", T1));
    s.event(&say(1, "猪猪", Some(300), "", T2));
    s.event(&logout(u64::MAX, "mynick", T2));
    s
}

#[test]
fn keys_under_the_prefix() {
    let k = Keys::default();
    assert_eq!(k.prefix(), "wschat");
    assert_eq!(k.uid(), "wschat:uid");
    assert_eq!(k.nodes(), "wschat:nodes");
    assert_eq!(k.node_stream(u64::MAX), "wschat:node:ffffffffffffffff:stream");
    assert_eq!(k.history("猪"), "wschat:history:3:猪");
    assert_eq!((k.history_rooms(), k.history_sizes()), ("wschat:history-rooms".into(), "wschat:history-sizes".into()));
    assert_eq!(k.history("room1"), "wschat:history:5:room1");
    assert_eq!(k.bus(), "wschat:bus");
    assert_eq!(Keys::new("chat-2.eu_west").unwrap().bus(), "chat-2.eu_west:bus");
}

#[test]
fn prefixes_that_could_reach_other_keys_are_refused() {
    assert_eq!(Keys::new(""), Err(PrefixError::Length));
    assert_eq!(Keys::new(&"a".repeat(65)), Err(PrefixError::Length));
    assert!(Keys::new(&"a".repeat(64)).is_ok());
    for bad in ["a:b", "a{b}", "a b", "猪", "a\n"] {
        assert_eq!(Keys::new(bad), Err(PrefixError::Character), "{bad:?}");
    }
    assert!(!PrefixError::Character.to_string().is_empty());
}

#[test]
fn no_room_name_forges_another_key() {
    let k = Keys::default();
    // Names that would collide under naive concatenation.
    assert_ne!(k.history("1:a"), k.history("a"));
    let rooms = ["", "a", "a:members", "1:a", "5:room1:members", ":", "{x}", "room:1:a", "猪猪", "a\u{0}b"];
    let mut all = std::collections::HashSet::new();
    for room in rooms {
        let key = k.history(room);
        assert_eq!(k.split_room_key(&key), Some(("history", room, "")), "{key:?}");
        assert!(all.insert(key.clone()), "two rooms share {key:?}");
        assert_ne!(key, k.uid());
        assert_ne!(key, k.bus());
        assert_ne!(key, k.nodes());
    }
    assert_eq!(k.split_room_key("other:history:1:a"), None);
    assert_eq!(k.split_room_key("wschat:history:9:a"), None);
    assert_eq!(k.split_room_key("wschat:history:01:a"), None);
    assert_eq!(k.split_room_key("wschat:history:2:猪"), None, "a length inside a character");
    assert_eq!(k.split_room_key("wschat:room:1:a"), None);
    assert_eq!(k.split_room_key("wschat:node:1"), None);
}

#[test]
fn round_trip_and_compact_times() {
    let mut head = Section::new();
    head.hello();
    head.gone(0xfeed);
    let room = sample_room();
    let bytes = message(7, 42, &head, &[("room1", &room), ("", &room)]);
    assert_eq!(Message::peek(&bytes), Ok((7, 42)));
    let m = Message::decode(&bytes).unwrap();
    assert_eq!((m.origin, m.seq, m.count), (7, 42, 10));
    let got: Vec<Record<'_>> = m.records().collect();
    assert_eq!(got[0], Record::Hello);
    assert_eq!(got[1], Record::Gone { node: 0xfeed });
    assert_eq!(
        got[2],
        Record::Room(RoomEvent::Login {
            room: "room1",
            uid: 1,
            name: "猪猪",
            order: 1_700_000_000_000,
            user_id: None,
            time: T1
        })
    );
    let say = |to_uid, content, time| {
        Record::Room(RoomEvent::Say { room: "room1", from_uid: 1, from_name: "猪猪", to_uid, content, time })
    };
    assert_eq!(got[3], say(None, "hi,  all !", T1));
    assert_eq!(got[4], say(Some(300), "", T2));
    assert_eq!(got[5], Record::Room(RoomEvent::Logout { room: "room1", uid: u64::MAX, name: "mynick", time: T2 }));
    assert_eq!(
        got[6],
        Record::Room(RoomEvent::Login {
            room: "",
            uid: 1,
            name: "猪猪",
            order: 1_700_000_000_000,
            user_id: None,
            time: T1
        })
    );
    // The repeated time stamp costs one byte: the say after the login carries none of its own.
    let once = room.bytes.windows(T1.len()).filter(|w| *w == T1.as_bytes()).count();
    assert_eq!(once, 1);
}

#[test]
fn account_ids_ride_with_their_login_or_present_record_and_nowhere_else() {
    let mut r = Section::new();
    r.event(&RoomEvent::Login { room: "", uid: 5, name: "a", order: 10, user_id: Some("acct-5"), time: T1 });
    r.present(6, "b", Some("acct-6"), 11);
    r.event(&RoomEvent::Session { room: "", uid: 6, session: "00ff" });
    r.present(7, "c", None, 12);
    let bytes = message(1, 1, &Section::new(), &[("r", &r)]);
    let got: Vec<Record<'_>> = Message::decode(&bytes).unwrap().records().collect();
    assert_eq!(
        got,
        [
            Record::Room(RoomEvent::Login {
                room: "r",
                uid: 5,
                name: "a",
                order: 10,
                user_id: Some("acct-5"),
                time: T1
            }),
            Record::Present { room: "r", uid: 6, name: "b", order: 11, user_id: Some("acct-6") },
            Record::Room(RoomEvent::Session { room: "r", uid: 6, session: "00ff" }),
            Record::Present { room: "r", uid: 7, name: "c", order: 12, user_id: None },
        ]
    );
    // Without an account id a login is the bytes it always was.
    let (mut with, mut without) = (Section::new(), Section::new());
    with.event(&RoomEvent::Login { room: "", uid: 5, name: "a", order: 10, user_id: Some("x"), time: T1 });
    without.event(&RoomEvent::Login { room: "", uid: 5, name: "a", order: 10, user_id: None, time: T1 });
    assert!(with.bytes.starts_with(&without.bytes) && with.bytes.len() > without.bytes.len());
    // An account id of another uid, or of nobody, is refused.
    let mut stray = Section::new();
    stray.present(6, "b", None, 11);
    let mut wrong = stray.clone();
    wrong.bytes.extend_from_slice(&with.bytes[without.bytes.len()..]);
    let bytes = message(1, 1, &Section::new(), &[("r", &wrong)]);
    assert!(matches!(Message::decode(&bytes), Err(WireError::StrayIdentity { .. })));
    let mut alone = Section::new();
    alone.bytes.extend_from_slice(&with.bytes[without.bytes.len()..]);
    let bytes = message(1, 1, &Section::new(), &[("r", &alone)]);
    assert!(matches!(Message::decode(&bytes), Err(WireError::StrayIdentity { .. })));
}

#[test]
fn snapshots_and_history_entries() {
    let mut head = Section::new();
    head.snapshot();
    let mut r = Section::new();
    r.present(5, "a", None, 10);
    r.event(&RoomEvent::Session { room: "", uid: 5, session: "0123abcd" });
    r.present(6, "b", None, 11);
    r.event(&RoomEvent::Handover { room: "", uid: 6 });
    let bytes = message(1, 1, &head, &[("r", &r)]);
    let got: Vec<Record<'_>> = Message::decode(&bytes).unwrap().records().collect();
    assert_eq!(
        got,
        [
            Record::Snapshot,
            Record::Present { room: "r", uid: 5, name: "a", order: 10, user_id: None },
            Record::Room(RoomEvent::Session { room: "r", uid: 5, session: "0123abcd" }),
            Record::Present { room: "r", uid: 6, name: "b", order: 11, user_id: None },
            Record::Room(RoomEvent::Handover { room: "r", uid: 6 }),
        ]
    );
    let entry = history_entry(9, "x", "hi", T1);
    assert_eq!(
        read_history_entry(&entry, "room1"),
        Ok(RoomEvent::Say { room: "room1", from_uid: 9, from_name: "x", to_uid: None, content: "hi", time: T1 })
    );
    assert!(read_history_entry(&entry[..entry.len() - 1], "r").is_err());
    assert!(read_history_entry(b"garbage", "r").is_err());
    let mut private = Section::new();
    private.event(&say(1, "a", Some(2), "x", T1));
    assert_eq!(read_history_entry(&private.bytes, "r"), Err(WireError::Foreign), "only says to all");
}

#[test]
fn a_history_entry_is_exactly_one_say_of_the_room_asked_for() {
    // A room record "" first, then a say of uid 0x7a: the say would be room ""'s, not r's.
    let other_room = [0x01, 0x00, 0x03, 0x7a, 0x00, 0x00, 0x00, 0x01];
    assert_eq!(read_history_entry(&other_room, "r"), Err(WireError::Foreign));
    let mut named = Section::new();
    named.room("r");
    named.event(&say(1, "a", None, "x", T1));
    assert_eq!(read_history_entry(&named.bytes, "r"), Err(WireError::Foreign), "even when it names the room");
    let one = history_entry(1, "a", "x", T1);
    let mut two = one.clone();
    two.extend_from_slice(&history_entry(2, "b", "y", T1));
    assert_eq!(read_history_entry(&two, "r"), Err(WireError::Foreign), "two says");
    let mut trailing = one.clone();
    trailing.push(0);
    assert_eq!(read_history_entry(&trailing, "r"), Err(WireError::Foreign));
    assert_eq!(read_history_entry(b"", "r"), Err(WireError::Truncated { at: 0 }));
    let mut a_login = Section::new();
    a_login.event(&login(1, "a", 1, T1));
    assert_eq!(read_history_entry(&a_login.bytes, "r"), Err(WireError::Foreign));
    assert!(matches!(read_history_entry(&one, "r"), Ok(RoomEvent::Say { room: "r", from_uid: 1, .. })));
}

#[test]
fn the_header_layout() {
    let mut buf = Vec::new();
    write_header(&mut buf, 0x0102030405060708, 300);
    assert_eq!(&buf[..3], b"wc\x01");
    assert_eq!(&buf[3..11], &0x0102030405060708u64.to_le_bytes());
    assert_eq!(&buf[11..], &[0xac, 0x02], "the sequence as a LEB128 varint");
}

#[test]
fn garbage_is_an_error() {
    assert_eq!(Message::decode(b""), Err(WireError::Truncated { at: 0 }));
    assert_eq!(Message::decode(b"w"), Err(WireError::Truncated { at: 1 }));
    assert_eq!(Message::decode(b"{\"type\":\"say\"}"), Err(WireError::Foreign));
    assert_eq!(Message::decode(b"wc\x02"), Err(WireError::Version(2)));
    let mut buf = Vec::new();
    write_header(&mut buf, 1, 1);
    let header = buf.len();
    assert!(Message::decode(&buf).is_ok(), "an empty message is a message");
    let mut zero = buf[..header - 1].to_vec();
    zero.push(0);
    assert!(matches!(Message::decode(&zero), Err(WireError::Zero { .. })));
    let mut no_room = buf.clone();
    let mut s = Section::new();
    s.event(&logout(1, "a", T1));
    no_room.extend_from_slice(&s.bytes);
    assert_eq!(Message::decode(&no_room), Err(WireError::NoRoom { at: header }));
    let mut unknown = buf.clone();
    unknown.push(99);
    assert_eq!(Message::decode(&unknown), Err(WireError::UnknownRecord { tag: 99, at: header }));
    let mut repeat = buf.clone();
    repeat.extend_from_slice(&[1, 1, b'r', 4, 1, 1, b'a', 0]);
    assert!(matches!(Message::decode(&repeat), Err(WireError::NoPreviousTime { .. })));
    let mut overlong = buf.clone();
    overlong.extend_from_slice(&[8, 1, 2]);
    assert!(matches!(Message::decode(&overlong), Err(WireError::Truncated { .. })));
    let mut bad_utf8 = buf.clone();
    bad_utf8.extend_from_slice(&[1, 1, 0xff]);
    assert!(matches!(Message::decode(&bad_utf8), Err(WireError::Utf8 { .. })));
    let mut huge = buf;
    huge.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(matches!(Message::decode(&huge), Err(WireError::Overlong { .. })));
    for e in [WireError::Foreign, WireError::NoRoom { at: 1 }, WireError::Truncated { at: 3 }] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn in_order_duplicates_and_gaps() {
    let mut t = Tracker::new();
    assert_eq!(t.observe(9, 5), Verdict::Deliver, "first seen mid-sequence: taken as it is");
    assert_eq!(t.observe(9, 6), Verdict::Deliver);
    assert_eq!(t.observe(9, 6), Verdict::Duplicate);
    assert_eq!(t.observe(9, 2), Verdict::Duplicate);
    assert_eq!(t.observe(9, 10), Verdict::Gap { from: 7, to: 9 });
    assert_eq!(t.last(9), Some(6), "a gap records nothing");
    for seq in 7..=9 {
        assert_eq!(t.observe(9, seq), Verdict::Deliver, "the fetched range");
    }
    assert_eq!(t.observe(9, 10), Verdict::Deliver, "then the message that showed the gap");
    assert_eq!(t.observe(9, 13), Verdict::Gap { from: 11, to: 12 });
    t.accept_loss(9, 12);
    assert_eq!(t.observe(9, 13), Verdict::Deliver, "after a loss that cannot be filled");
    assert_eq!(t.observe(9, 11), Verdict::Duplicate);
    t.accept_loss(9, 3);
    assert_eq!(t.last(9), Some(13), "accepting an old loss does not go back");
}

#[test]
fn node_restart_is_a_new_origin() {
    let mut t = Tracker::new();
    for seq in 1..=3 {
        assert_eq!(t.observe(1, seq), Verdict::Deliver);
    }
    // Node 1 restarts as node 2 (a fresh random id), which registered after this node subscribed.
    t.expect(2);
    assert_eq!(t.last(2), Some(0));
    assert_eq!(t.observe(2, 3), Verdict::Gap { from: 1, to: 2 }, "an expected origin is due from 1");
    assert_eq!(t.observe(2, 1), Verdict::Deliver);
    assert_eq!(t.observe(1, 4), Verdict::Deliver, "the old life's late message is still its own sequence");
    t.forget(1);
    assert_eq!(t.last(1), None);
    let mut origins: Vec<_> = t.origins().collect();
    origins.sort();
    assert_eq!(origins, [(2, 1)]);
    t.expect(2);
    assert_eq!(t.last(2), Some(1), "expecting a known origin changes nothing");
}

fn record() -> impl proptest::strategy::Strategy<Value = (u8, u64, u64, String, String)> {
    (0u8..8, 1u64.., proptest::prelude::any::<u64>(), ".{0,12}", "[0-9: -]{0,3}")
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = Message::peek(&bytes);
        if let Ok(m) = Message::decode(&bytes) {
            proptest::prop_assert_eq!(m.records().count(), m.count);
        }
        let mut prefixed = b"wc\x01\x01\0\0\0\0\0\0\0\x01".to_vec();
        prefixed.extend_from_slice(&bytes);
        if let Ok(m) = Message::decode(&prefixed) {
            proptest::prop_assert_eq!(m.records().count(), m.count);
        }
        let _ = read_history_entry(&bytes, "r");
    }

    #[test]
    fn encode_then_decode_round_trips(
        origin in proptest::prelude::any::<u64>(),
        seq in 1u64..,
        room in ".{0,16}",
        raw in proptest::collection::vec(record(), 0..20),
    ) {
        let mut s = Section::new();
        s.room(&room);
        let mut want = Vec::new();
        for (kind, a, b, text, time) in &raw {
            let rec = match kind {
                0 => { s.event(&login(*a, text, *b, time)); Record::Room(RoomEvent::Login { room: &room, uid: *a, name: text, order: *b, user_id: None, time }) }
                1 => {
                    let to_uid = Some(*b).filter(|&u| u != 0);
                    s.event(&say(*a, time, to_uid, text, time));
                    Record::Room(RoomEvent::Say { room: &room, from_uid: *a, from_name: time, to_uid, content: text, time })
                }
                2 => { s.event(&logout(*a, text, time)); Record::Room(RoomEvent::Logout { room: &room, uid: *a, name: text, time }) }
                3 => { s.hello(); Record::Hello }
                4 => { s.snapshot(); Record::Snapshot }
                5 => { s.present(*a, text, None, *b); Record::Present { room: &room, uid: *a, name: text, order: *b, user_id: None } }
                _ => { s.gone(*b); Record::Gone { node: *b } }
            };
            want.push(rec);
        }
        let mut buf = Vec::new();
        write_header(&mut buf, origin, seq);
        buf.extend_from_slice(&s.bytes);
        let m = Message::decode(&buf).unwrap();
        proptest::prop_assert_eq!((m.origin, m.seq), (origin, seq));
        proptest::prop_assert_eq!(m.records().collect::<Vec<_>>(), want);
        let header = { let mut h = Vec::new(); write_header(&mut h, origin, seq); h.len() };
        for cut in 0..header {
            proptest::prop_assert!(Message::decode(&buf[..cut]).is_err());
        }
    }
}
