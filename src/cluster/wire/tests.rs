//! Tests of the cluster's wire layer: keys, the message format, recovery.

use super::batch::{TAG_LOGIN, TAG_SAY};
use super::*;

const T1: &str = "2026-11-25 12:00:00";
const T2: &str = "2026-11-25 12:00:01";

fn sample() -> Vec<WireEvent<'static>> {
    vec![
        WireEvent::Login { uid: 1, name: "猪猪", time: T1 },
        WireEvent::Say { from_uid: 1, to_uid: None, content: "hi,  all !", time: T1 },
        WireEvent::Say { from_uid: 1, to_uid: Some(300), content: "", time: T2 },
        WireEvent::Logout { uid: u64::MAX, name: "mynick", time: T2 },
    ]
}

#[test]
fn keys_under_the_prefix() {
    let k = Keys::default();
    assert_eq!(k.prefix(), "wschat");
    assert_eq!(k.uid(), "wschat:uid");
    assert_eq!(k.nodes(), "wschat:nodes");
    assert_eq!(k.node(0xab), "wschat:node:00000000000000ab");
    assert_eq!(k.node_users(1), "wschat:node:0000000000000001:users");
    assert_eq!(k.node_stream(u64::MAX), "wschat:node:ffffffffffffffff:stream");
    assert_eq!(k.room_members("room1"), "wschat:room:5:room1:members");
    assert_eq!(k.room_names("猪"), "wschat:room:3:猪:names");
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
    assert_ne!(k.room_members("a:members"), k.room_names("a:members:names"));
    assert_ne!(k.room_members("a"), k.room_members("a:members:room:1:a"));
    assert_ne!(k.history("1:a"), k.history("a"));
    let rooms = ["", "a", "a:members", "1:a", "5:room1:members", ":", "{x}", "room:1:a", "猪猪", "a\u{0}b"];
    let mut all = std::collections::HashSet::new();
    for room in rooms {
        for (key, kind, suffix) in [
            (k.room_members(room), "room", ":members"),
            (k.room_names(room), "room", ":names"),
            (k.history(room), "history", ""),
        ] {
            assert_eq!(k.split_room_key(&key), Some((kind, room, suffix)), "{key:?}");
            assert!(all.insert(key.clone()), "two rooms share {key:?}");
            assert_ne!(key, k.uid());
            assert_ne!(key, k.bus());
        }
    }
    assert_eq!(k.split_room_key("other:room:1:a:members"), None);
    assert_eq!(k.split_room_key("wschat:room:9:a"), None);
    assert_eq!(k.split_room_key("wschat:room:01:a"), None);
    assert_eq!(k.split_room_key("wschat:room:2:猪"), None, "a length inside a character");
    assert_eq!(k.split_room_key("wschat:node:1"), None);
}

#[test]
fn round_trip_and_compact_times() {
    let mut buf = vec![0xee]; // appends after what is there
    let len = encode(&mut buf, 0x0123_4567_89ab_cdef, 42, "room1", &sample());
    assert_eq!(len, buf.len() - 1);
    let b = Batch::decode(&buf[1..]).unwrap();
    assert_eq!((b.origin, b.seq, b.room, b.count), (0x0123_4567_89ab_cdef, 42, "room1", 4));
    assert_eq!(b.events().collect::<Vec<_>>(), sample());
    assert_eq!(b.events().len(), 4);
    // Two distinct time stamps over four events: each written once.
    assert_eq!(buf.windows(T1.len()).filter(|w| *w == T1.as_bytes()).count(), 1);
    assert_eq!(buf.windows(T2.len()).filter(|w| *w == T2.as_bytes()).count(), 1);
}

#[test]
fn batches_are_self_delimiting() {
    let mut buf = Vec::new();
    let a = encode(&mut buf, 1, 1, "a", &sample());
    encode(&mut buf, 1, 2, "b", &[]);
    let (first, used) = Batch::decode_prefix(&buf).unwrap();
    assert_eq!((used, first.room, first.seq), (a, "a", 1));
    let second = Batch::decode(&buf[used..]).unwrap();
    assert_eq!((second.room, second.seq, second.events().count()), ("b", 2, 0));
    assert_eq!(Batch::decode(&buf), Err(WireError::Trailing { extra: buf.len() - a }));
}

#[test]
fn the_header_layout() {
    let mut buf = Vec::new();
    encode(&mut buf, 2, 300, "r", &[WireEvent::Say { from_uid: 5, to_uid: None, content: "x", time: "t" }]);
    let header = [b'w', b'c', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0xac, 0x02, 1, b'r', 1, 0, 0, 0];
    assert_eq!(buf[..header.len()], header);
    assert_eq!(buf[header.len()..], [TAG_SAY, 5, 0, 1, b'x', 2, b't']);
}

#[test]
fn garbage_is_an_error() {
    let mut good = Vec::new();
    encode(&mut good, 7, 1, "room", &sample());
    for cut in 0..good.len() {
        assert!(matches!(Batch::decode(&good[..cut]), Err(WireError::Truncated { .. })), "cut at {cut}");
    }
    assert_eq!(Batch::decode(b"{\"type\":\"say\"}"), Err(WireError::Foreign));
    assert_eq!(Batch::decode(b"wc\x02rest"), Err(WireError::Version(2)));
    let mut zero_seq = good.clone();
    zero_seq[11] = 0;
    assert_eq!(Batch::decode(&zero_seq), Err(WireError::Zero { at: 11 }));
    let body = 11 + 1 + 1 + 4 + 4; // seq, room length, room, count
    let mut tag = good.clone();
    tag[body] = 9;
    assert_eq!(Batch::decode(&tag), Err(WireError::UnknownEvent { tag: 9, at: body }));
    let mut utf8 = good.clone();
    utf8[13] = 0xff;
    assert_eq!(Batch::decode(&utf8), Err(WireError::Utf8 { at: 13 }));
    let mut overlong = b"wc\x01\0\0\0\0\0\0\0\0".to_vec();
    overlong.extend_from_slice(&[0xff; 11]);
    assert_eq!(Batch::decode(&overlong), Err(WireError::Overlong { at: 11 }));
    let mut huge = b"wc\x01\0\0\0\0\0\0\0\0\x01".to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(Batch::decode(&huge), Err(WireError::Truncated { at: 22 }), "a length past the end");
    let mut repeat_first = b"wc\x01\0\0\0\0\0\0\0\0\x01\x01r\x01\0\0\0".to_vec();
    repeat_first.extend_from_slice(&[TAG_LOGIN, 1, 1, b'n', 0]);
    assert_eq!(Batch::decode(&repeat_first), Err(WireError::NoPreviousTime { at: 22 }));
    for e in [WireError::Foreign, WireError::Trailing { extra: 1 }, WireError::Truncated { at: 3 }] {
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

fn event() -> impl proptest::strategy::Strategy<Value = (u8, u64, u64, String, String)> {
    (0u8..3, 1u64.., proptest::prelude::any::<u64>(), ".{0,12}", "[0-9: -]{0,3}")
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        if let Ok(b) = Batch::decode(&bytes) {
            proptest::prop_assert_eq!(b.events().count(), b.count as usize);
        }
        let mut prefixed = b"wc\x01".to_vec();
        prefixed.extend_from_slice(&bytes);
        if let Ok((b, used)) = Batch::decode_prefix(&prefixed) {
            proptest::prop_assert!(used <= prefixed.len());
            proptest::prop_assert_eq!(b.events().count(), b.count as usize);
        }
    }

    #[test]
    fn encode_then_decode_round_trips(
        origin in proptest::prelude::any::<u64>(),
        seq in 1u64..,
        room in ".{0,16}",
        raw in proptest::collection::vec(event(), 0..20),
    ) {
        let events: Vec<WireEvent<'_>> = raw
            .iter()
            .map(|(kind, a, b, text, time)| match kind {
                0 => WireEvent::Login { uid: *a, name: text, time },
                1 => WireEvent::Say { from_uid: *a, to_uid: Some(*b).filter(|&u| u != 0), content: text, time },
                _ => WireEvent::Logout { uid: *a, name: text, time },
            })
            .collect();
        let mut buf = Vec::new();
        let len = encode(&mut buf, origin, seq, &room, &events);
        proptest::prop_assert_eq!(len, buf.len());
        let b = Batch::decode(&buf).unwrap();
        proptest::prop_assert_eq!((b.origin, b.seq, b.room), (origin, seq, room.as_str()));
        proptest::prop_assert_eq!(b.events().collect::<Vec<_>>(), events);
        for cut in 0..buf.len() {
            proptest::prop_assert!(Batch::decode(&buf[..cut]).is_err());
        }
    }
}
