//! The fanout's tests: batching per room and turn, shares of the open batch, the encoded user lists. Run
//! through the hub in the seed dialect.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::json;

use super::{Room, UserList, MAX_BATCH_BYTES};
use crate::app::{ConnId, Effects};
use crate::chat::dialect::seed::parse_client_message;
use crate::chat::dialect::Dialect;
use crate::chat::event::ClientMessage;
use crate::chat::testing::{frames, fresh_user_list, hub_with_members, send, streams, Chat, T};

/// A room's encoded user list in the seed dialect.
fn seed_list(room: &Room) -> &UserList {
    room.lists[Dialect::Seed.index()].as_ref().expect("the room's seed user list")
}

/// The user-list frame `room` would give a newcomer now (without the newcomer): its encoded list, extended
/// with the users added at the end since, or made afresh when the room changed otherwise.
fn list_of(hub: &Chat, room: &str) -> Vec<u8> {
    let members = hub.hub.roster().room(room).expect("a room with users");
    let mut list = seed_list(&hub.fanout.rooms[room]).clone();
    if list.version != members.version() {
        list = UserList { version: members.version(), ..UserList::default() };
    }
    members
        .each_from(list.end, |uid, name, user_id| Dialect::Seed.write_list_entry(uid, name, user_id, &mut list.bytes));
    let nobody = crate::chat::event::Newcomer { uid: 0, name: "", time: "", session: None };
    Dialect::Seed.user_list_frame(&list.bytes, &nobody).to_vec()
}

/// The fanout's rooms and shares agree with the roster: a room for each roster room with members here, as
/// many speakers as members, every member's share in its room.
fn assert_in_step(hub: &Chat) {
    let roster = hub.hub.roster();
    for (key, room) in &hub.fanout.rooms {
        let members = roster.room(key).expect("a fanout room has users").locals();
        assert_eq!(room.speakers.iter().sum::<usize>(), members.len(), "{key}");
        for &conn in members {
            assert_eq!(hub.fanout.shares[conn].room.as_deref(), Some(&**key));
        }
    }
    let here = (0..hub.fanout.shares.len()).filter(|&c| roster.uid_of(c).is_some()).count();
    assert_eq!(here, hub.fanout.shares.iter().filter(|s| s.room.is_some()).count());
}

#[test]
fn broadcast_frame_is_shared_not_copied() {
    let mut hub = Chat::new(0);
    for c in 0..5 {
        send(&mut hub, c, &format!(r#"{{"type":"login","name":"u{c}"}}"#));
    }
    let mut out = Effects::default();
    let msg = parse_client_message(r#"{"type":"say","to_uid":"all","content":"x"}"#).unwrap();
    hub.handle(0, msg, T, &mut out);
    assert!(out.sends.is_empty(), "broadcasts wait in the batch until the turn is sealed");
    hub.seal(&mut out);
    assert_eq!(out.sends.len(), 5);
    assert!(out.sends.windows(2).all(|w| Rc::ptr_eq(&w[0].bytes, &w[1].bytes)));
}

#[test]
fn a_turn_of_broadcasts_is_one_shared_delivery_per_member() {
    let mut hub = Chat::new(0);
    for c in 0..3 {
        send(&mut hub, c, &format!(r#"{{"type":"login","name":"u{c}"}}"#));
    }
    let mut out = Effects::default();
    for i in 0..4 {
        let text = format!(r#"{{"type":"say","to_uid":"all","content":"m{i}"}}"#);
        hub.handle(i % 3, parse_client_message(&text).unwrap(), T, &mut out);
    }
    hub.seal(&mut out);
    assert_eq!(out.sends.len(), 3);
    assert!(out.sends.iter().all(|d| d.messages == 4 && Rc::ptr_eq(&d.bytes, &out.sends[0].bytes)));
    let got = frames(&out);
    let for_1: Vec<_> = got.iter().filter(|(c, _)| *c == 1).map(|(_, v)| v["content"].clone()).collect();
    assert_eq!(for_1, ["m0", "m1", "m2", "m3"]);
    // Sealing again finds nothing open.
    let mut again = Effects::default();
    hub.seal(&mut again);
    assert!(again.sends.is_empty());
}

#[test]
fn anything_for_one_connection_keeps_its_place_after_the_batch() {
    let mut hub = Chat::new(0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
    let mut out = Effects::default();
    let turn = [
        r#"{"type":"say","to_uid":"all","content":"one"}"#,
        r#"{"type":"say","to_uid":2,"content":"private"}"#,
        r#"{"type":"say","to_uid":"all","content":"two"}"#,
        r#"{"type":"fly"}"#,
        r#"{"type":"say","to_uid":"all","content":"three"}"#,
    ];
    for text in turn {
        match parse_client_message(text) {
            Ok(m) => hub.handle(1, m, T, &mut out),
            Err(code) => hub.error(1, code, &mut out),
        }
    }
    // A newcomer joins in the same turn: it gets none of the earlier batch, then the rest.
    hub.handle(3, parse_client_message(r#"{"type":"login","name":"c"}"#).unwrap(), T, &mut out);
    hub.handle(2, parse_client_message(r#"{"type":"say","to_uid":"all","content":"four"}"#).unwrap(), T, &mut out);
    hub.leave(2, T, &mut out);
    hub.handle(1, parse_client_message(r#"{"type":"say","to_uid":"all","content":"five"}"#).unwrap(), T, &mut out);
    hub.seal(&mut out);
    let got = frames(&out);
    let seen = |conn: ConnId| -> Vec<String> {
        got.iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, v)| {
                v["content"].as_str().or(v["code"].as_str()).unwrap_or(v["type"].as_str().unwrap()).to_string()
            })
            .collect()
    };
    assert_eq!(seen(1), ["one", "private", "two", "unknown_type", "three", "login", "four", "logout", "five"]);
    assert_eq!(seen(2), ["one", "private", "two", "three", "login", "four"]);
    assert_eq!(seen(3), ["user_list", "login", "four", "logout", "five"]);
}

#[test]
fn a_large_turn_is_cut_into_bounded_batches() {
    let mut hub = Chat::new(0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    let content = "y".repeat(1000);
    let text = format!(r#"{{"type":"say","to_uid":"all","content":"{content}"}}"#);
    let mut out = Effects::default();
    for _ in 0..200 {
        hub.handle(1, parse_client_message(&text).unwrap(), T, &mut out);
    }
    hub.seal(&mut out);
    assert!(out.sends.len() >= 3);
    assert!(out.sends.iter().all(|d| d.bytes.len() <= MAX_BATCH_BYTES));
    assert_eq!(out.sends.iter().map(|d| d.messages).sum::<u32>(), 200);
    assert_eq!(hub.fanout.batched_rooms.len(), 0);
}

#[test]
fn user_list_bytes_match_a_fresh_encode() {
    let mut hub = Chat::new(0);
    let names = ["猪猪", "quote\"d", "back\\slash", "plain", "<b>&amp;", "\u{e9}t\u{e9}", "\u{2028}/"];
    for (c, name) in names.iter().enumerate() {
        let got = send(&mut hub, c, &json!({"type":"login","name":name}).to_string());
        assert_eq!(got[0].1["type"], "user_list");
        // What the newcomer got is byte for byte what a full encode of the room makes.
        let mut out = Effects::default();
        hub.seal(&mut out);
        let frame = list_of(&hub, "1");
        assert_eq!(frame, fresh_user_list(&hub, "1"));
    }
    let mut out = Effects::default();
    hub.leave(0, T, &mut out);
    hub.leave(3, T, &mut out);
    assert_eq!(list_of(&hub, "1"), fresh_user_list(&hub, "1"));
    hub.seal(&mut out);
    let got = send(&mut hub, 10, r#"{"type":"login","name":"late"}"#);
    let uids: Vec<_> = got[0].1["user_list"].as_array().unwrap().iter().map(|e| e["uid"].as_u64().unwrap()).collect();
    assert_eq!(uids, [2, 3, 5, 6, 7, 8]);
}

#[test]
fn many_departures_then_a_newcomer_gets_the_list_of_those_who_stay() {
    let mut hub = hub_with_members(1000);
    let mut out = Effects::default();
    for c in (0..1000).step_by(3) {
        hub.leave(c, T, &mut out);
    }
    assert_in_step(&hub);
    let got = send(&mut hub, 5000, r#"{"type":"login","name":"late"}"#);
    let list = got[0].1["user_list"].as_array().map_or(0, Vec::len);
    assert_eq!((list, hub.fanout.rooms["1"].speakers.iter().sum::<usize>()), (667, 667));
    assert_eq!(list_of(&hub, "1"), fresh_user_list(&hub, "1"));
    let encoded = seed_list(&hub.fanout.rooms["1"]);
    assert_eq!(
        (encoded.end, encoded.version),
        (hub.hub.roster().room("1").map_or(0, |r| r.end()), hub.hub.roster().room("1").map_or(0, |r| r.version()))
    );
}

proptest::proptest! {
    /// Any order of logins, logouts, client logouts and rooms: the user list a newcomer gets is the
    /// bytes of a fresh encode of the room's members in login order, and a broadcast reaches exactly
    /// the members.
    #[test]
    fn user_lists_stay_identical_to_a_fresh_encode(
        ops in proptest::collection::vec((0usize..12, 0u8..4, 0u8..3, "[a-z猪\"\\\\ ]{1,6}"), 1..120)
    ) {
        let mut hub = Chat::new(0);
        for (conn, action, room, name) in ops {
            let mut out = Effects::default();
            match action {
                0 | 1 => {
                    let login = json!({"type":"login","name":name,"room_id":format!("r{room}")}).to_string();
                    hub.handle(conn, parse_client_message(&login).unwrap(), T, &mut out);
                    hub.seal(&mut out);
                    if let Some(first) = out.sends.iter().find(|d| d.conn == conn && d.welcome) {
                        let key = format!("r{room}");
                        proptest::prop_assert_eq!(&first.bytes[..], &fresh_user_list(&hub, &key)[..]);
                    }
                }
                2 => hub.leave(conn, T, &mut out),
                _ => hub.handle(conn, ClientMessage::Logout, T, &mut out),
            }
            assert_in_step(&hub);
            for key in hub.fanout.rooms.keys() {
                proptest::prop_assert_eq!(list_of(&hub, key), fresh_user_list(&hub, key));
            }
            proptest::prop_assert_eq!(hub.fanout.rooms.len(), hub.hub.roster().room_count());
        }
    }
}

proptest::proptest! {
    /// Batching is invisible: whatever is sealed when, every connection receives the same bytes in the
    /// same order as from a hub that seals after every message (where nothing is batched). Covers
    /// newcomers and leavers in the middle of a batch, private messages and errors to members whose
    /// share of the batch is open, and logouts followed by a login in the same turn.
    #[test]
    fn batching_never_changes_what_a_connection_receives(
        ops in proptest::collection::vec((0usize..6, 0u8..8, 0u8..3, 0u64..12, proptest::bool::ANY), 1..150)
    ) {
        let mut batched = Chat::new(1);
        let mut reference = Chat::new(1);
        let (mut got, mut want) = (HashMap::new(), HashMap::new());
        let mut out = Effects::default();
        for (i, (conn, action, room, uid, seal)) in ops.into_iter().enumerate() {
            let text = match action {
                0 | 1 => json!({"type":"login","name":format!("n{i}"),"room_id":format!("r{room}")}).to_string(),
                2 => json!({"type":"say","content":format!("all{i}")}).to_string(),
                3 => json!({"type":"say","to_uid":uid,"content":format!("p{i}")}).to_string(),
                4 => r#"{"type":"logout"}"#.to_string(),
                5 => r#"{"type":"fly"}"#.to_string(),
                _ => String::new(),
            };
            for (hub, sink, seal) in [(&mut batched, &mut got, seal), (&mut reference, &mut want, true)] {
                if action >= 6 {
                    hub.leave(conn, T, &mut out);
                } else {
                    match parse_client_message(&text) {
                        Ok(m) => hub.handle(conn, m, T, &mut out),
                        Err(code) => hub.error(conn, code, &mut out),
                    }
                }
                if seal {
                    hub.seal(&mut out);
                }
                streams(&out, sink);
                out.clear();
            }
        }
        batched.seal(&mut out);
        streams(&out, &mut got);
        proptest::prop_assert_eq!(got, want);
        assert_in_step(&batched);
    }
}

#[test]
fn a_newcomer_does_not_cost_the_room_a_delivery() {
    let mut hub = hub_with_members(100);
    let mut out = Effects::default();
    hub.seal(&mut out);
    out.clear();
    for c in 100..150 {
        let login = format!(r#"{{"type":"login","name":"u{c}"}}"#);
        hub.handle(c, parse_client_message(&login).unwrap(), T, &mut out);
    }
    hub.seal(&mut out);
    // 50 welcomes, then one delivery per member: the old ones share the batch, each newcomer gets the
    // part from its own login on.
    assert_eq!(out.sends.len(), 50 + 150);
    let shared = &out.sends[50].bytes;
    assert_eq!(out.sends[50..150].iter().filter(|d| Rc::ptr_eq(&d.bytes, shared)).count(), 100);
    assert_eq!(out.sends[150..].iter().map(|d| d.messages).collect::<Vec<_>>(), (1..=50).rev().collect::<Vec<_>>());
}

/// The welcome's history deliveries in `out` (the welcome deliveries whose first frame is a say), in order.
fn welcome_histories(out: &Effects) -> Vec<&crate::app::Delivery> {
    out.sends
        .iter()
        .filter(|d| d.welcome && crate::chat::testing::payload(first_frame(&d.bytes))["type"] == "say")
        .collect()
}

/// The first of the whole frames in `bytes`.
fn first_frame(bytes: &[u8]) -> &[u8] {
    let h = crate::ws::frame::FrameHeader::decode(bytes).unwrap().unwrap();
    &bytes[..h.header_len + h.payload_len as usize]
}

/// Logs in `conn` (speaking `dialect`) to room "1" and returns what the turn delivered.
fn newcomer(hub: &mut Chat, conn: ConnId, dialect: Dialect) -> Effects {
    hub.fanout.set_dialect(conn, dialect);
    let mut out = Effects::default();
    let login = format!(r#"{{"type":"login","name":"n{conn}"}}"#);
    hub.handle(conn, parse_client_message(&login).unwrap(), T, &mut out);
    hub.seal(&mut out);
    out
}

#[test]
fn history_is_encoded_once_per_room_and_dialect_and_shared_by_newcomers() {
    let mut hub = Chat::new(100);
    send(&mut hub, 0, r#"{"type":"login","name":"talker"}"#);
    for i in 0..3 {
        send(&mut hub, 0, &format!(r#"{{"type":"say","to_uid":"all","content":"'{i}'"}}"#));
    }
    let encodes = hub.fanout.history_encodes();
    let mut seen: Vec<(Dialect, crate::shared_bytes::SharedBytes)> = Vec::new();
    for conn in 1..=20 {
        let d = [Dialect::Seed, Dialect::Workerman][conn % 2];
        let out = newcomer(&mut hub, conn, d);
        let past = welcome_histories(&out);
        assert_eq!(past.len(), 1, "one history delivery per welcome");
        assert_eq!(past[0].messages, 3);
        match seen.iter().find(|(sd, _)| *sd == d) {
            Some((_, first)) => assert!(Rc::ptr_eq(first, &past[0].bytes), "newcomer {conn} got a fresh encode"),
            None => seen.push((d, past[0].bytes.clone())),
        }
    }
    assert_eq!(hub.fanout.history_encodes() - encodes, 2, "20 newcomers, 2 dialects: 2 encodes");
    assert!(!Rc::ptr_eq(&seen[0].1, &seen[1].1));
    // The history changes: the next newcomer of each dialect gets it encoded anew, then shared again.
    send(&mut hub, 0, r#"{"type":"say","to_uid":"all","content":"new"}"#);
    let a = newcomer(&mut hub, 30, Dialect::Workerman);
    let b = newcomer(&mut hub, 31, Dialect::Workerman);
    let (a, b) = (welcome_histories(&a), welcome_histories(&b));
    assert_eq!((a[0].messages, b[0].messages), (4, 4));
    assert!(Rc::ptr_eq(&a[0].bytes, &b[0].bytes));
    assert!(!Rc::ptr_eq(&a[0].bytes, &seen[1].1));
    assert_eq!(hub.fanout.history_encodes() - encodes, 3);
    let got = frames(&Effects { sends: vec![a[0].clone()], closes: Vec::new() });
    assert_eq!(got[3].1["content"], "new");
    assert_eq!(got[0].1["content"], "&#039;0&#039;", "the workerman dialect's history is escaped");
}

#[test]
fn a_welcome_holds_the_newest_history_that_fits_its_bound() {
    let mut hub = Chat::new(100);
    send(&mut hub, 0, r#"{"type":"login","name":"talker"}"#);
    let apostrophes = "'".repeat(65_000);
    for i in 0..100 {
        send(&mut hub, 0, &format!(r#"{{"type":"say","to_uid":"all","content":"{apostrophes}#{i:03}"}}"#));
    }
    let limit = crate::config::DEFAULT_HISTORY_WELCOME_BYTES;
    for (conn, d, fit) in [(1, Dialect::Workerman, 2), (2, Dialect::SeedHtml, 2), (3, Dialect::Seed, 16)] {
        let out = newcomer(&mut hub, conn, d);
        let past = welcome_histories(&out);
        assert!(past[0].bytes.len() <= limit, "{d:?}: {} bytes", past[0].bytes.len());
        assert_eq!(past[0].messages, fit, "{d:?}");
        let got = frames(&Effects { sends: vec![past[0].clone()], closes: Vec::new() });
        let tags: Vec<String> =
            got.iter().map(|(_, v)| v["content"].as_str().unwrap().rsplit('#').next().unwrap().to_string()).collect();
        let want: Vec<String> = (100 - fit as usize..100).map(|i| format!("{i:03}")).collect();
        assert_eq!(tags, want, "{d:?}: the newest, oldest first");
    }
    // Every welcome queued at most the bound in history, however many came.
    let total: usize =
        (10..50).map(|c| welcome_histories(&newcomer(&mut hub, c, Dialect::Workerman))[0].bytes.len()).sum();
    assert!(total <= 40 * limit);
    assert_eq!(
        hub.fanout.history_kept_bytes(),
        hub.fanout.rooms["1"].histories.iter().flatten().map(|h| h.frame.len()).sum::<usize>()
    );
}

#[test]
fn kept_histories_stay_within_their_cap_and_go_with_their_room() {
    let mut hub = Chat::new(10);
    hub.fanout = std::mem::take(&mut hub.fanout).with_welcome_history(4096, 10_000);
    let content = "x".repeat(1000);
    for r in 0..20 {
        let talker = 1000 + r;
        send(&mut hub, talker, &format!(r#"{{"type":"login","name":"t","room_id":"r{r}"}}"#));
        for _ in 0..3 {
            send(&mut hub, talker, &format!(r#"{{"type":"say","to_uid":"all","content":"{content}"}}"#));
        }
        let mut out = Effects::default();
        let login = format!(r#"{{"type":"login","name":"n","room_id":"r{r}"}}"#);
        hub.handle(r, parse_client_message(&login).unwrap(), T, &mut out);
        assert_eq!(welcome_histories(&out)[0].messages, 3);
        assert!(hub.fanout.history_kept_bytes() <= 10_000, "{}", hub.fanout.history_kept_bytes());
    }
    assert!(hub.fanout.history_kept_bytes() > 0);
    // Rooms emptied: what they kept is freed.
    for r in 0..20 {
        for conn in [r, 1000 + r] {
            hub.leave(conn, T, &mut Effects::default());
        }
    }
    assert_eq!((hub.fanout.room_count(), hub.fanout.history_kept_bytes()), (0, 0));
}
