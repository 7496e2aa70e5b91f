//! The chat core's tests, run through the fanout in the seed dialect: what each connection receives.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::HubLimits;
use crate::app::{ConnId, Effects};
use crate::chat::event::{ErrorCode, Said};
use crate::chat::testing::{error_code, frames, send, Chat, T};

#[test]
fn seed_scenario() {
    let mut hub = Chat::new(0);
    let first = send(&mut hub, 10, r#"{"type":"login","name":"猪猪"}"#);
    assert_eq!(
        first,
        vec![
            (10, json!({"type":"user_list","user_list":[{"uid":1,"name":"猪猪"}]})),
            (10, json!({"type":"login","uid":1,"name":"猪猪","time":T})),
        ]
    );
    let second = send(&mut hub, 11, r#"{"type":"login","name":"mynick"}"#);
    assert_eq!(
        second,
        vec![
            (11, json!({"type":"user_list","user_list":[{"uid":1,"name":"猪猪"},{"uid":2,"name":"mynick"}]})),
            (10, json!({"type":"login","uid":2,"name":"mynick","time":T})),
            (11, json!({"type":"login","uid":2,"name":"mynick","time":T})),
        ]
    );
    let say = send(&mut hub, 11, r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#);
    let expected = json!({"type":"say","from_uid":2,"to_uid":"all","content":"hi,  all !","time":T});
    assert_eq!(say, vec![(10, expected.clone()), (11, expected)]);
}

#[test]
fn private_message_goes_to_target_and_sender_only() {
    let mut hub = Chat::new(0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
    send(&mut hub, 3, r#"{"type":"login","name":"c"}"#);
    let got = send(&mut hub, 1, r#"{"type":"say","to_uid":"2","content":"psst"}"#);
    let expected = json!({"type":"say","from_uid":1,"to_uid":2,"content":"psst","time":T});
    assert_eq!(got, vec![(2, expected.clone()), (1, expected)]);
    let to_self = send(&mut hub, 1, r#"{"type":"say","to_uid":1,"content":"me"}"#);
    assert_eq!(to_self.len(), 1);
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":99,"content":"x"}"#)), "no_such_user");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":"bob","content":"x"}"#)), "no_such_user");
}

#[test]
fn every_error_code() {
    let mut hub = Chat::new(0);
    assert_eq!(error_code(&send(&mut hub, 1, "[1]")), "bad_json");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"fly"}"#)), "unknown_type");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","content":"x"}"#)), "not_logged_in");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"logout"}"#)), "not_logged_in");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"   "}"#)), "bad_name");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login"}"#)), "bad_name");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"a\u0007b"}"#)), "bad_name");
    let long = "x".repeat(33);
    assert_eq!(error_code(&send(&mut hub, 1, &format!(r#"{{"type":"login","name":"{long}"}}"#))), "bad_name");
    assert_eq!(send(&mut hub, 1, &format!(r#"{{"type":"login","name":"{}"}}"#, "猪".repeat(32))).len(), 2);
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"again"}"#)), "already_logged_in");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":"all","content":""}"#)), "empty_content");
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":"all"}"#)), "empty_content");
}

#[test]
fn names_are_trimmed_and_content_is_unchanged() {
    let mut hub = Chat::new(0);
    let got = send(&mut hub, 1, r#"{"type":"login","name":"  mynick \t"}"#);
    assert_eq!(got[1].1["name"], "mynick");
    let html = "<img src=x onerror=alert(1)>  ";
    let got = send(&mut hub, 1, &serde_json::to_string(&json!({"type":"say","content":html})).unwrap());
    assert_eq!(got[0].1["content"], html);
}

#[test]
fn logout_on_leave_and_uids_never_reused() {
    let mut hub = Chat::new(0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
    let mut out = Effects::default();
    hub.leave(1, T, &mut out);
    hub.seal(&mut out);
    let got = frames(&out);
    assert_eq!(got, vec![(2, json!({"type":"logout","uid":1,"name":"a","time":T}))]);
    assert_eq!(hub.user_count(), 1);
    // Slab keys are reused by the reactor; uids are not.
    let again = send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    assert_eq!(again[0].1["user_list"], json!([{"uid":2,"name":"b"},{"uid":3,"name":"a"}]));
    // Leaving twice, or without login, is harmless.
    let mut out = Effects::default();
    hub.leave(9, T, &mut out);
    assert!(out.sends.is_empty());
}

#[test]
fn client_logout_keeps_the_connection_usable() {
    let mut hub = Chat::new(0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
    let got = send(&mut hub, 1, r#"{"type":"logout"}"#);
    assert_eq!(got, vec![(2, json!({"type":"logout","uid":1,"name":"a","time":T}))]);
    assert_eq!(send(&mut hub, 1, r#"{"type":"login","name":"a2"}"#).len(), 3);
}

#[test]
fn rooms_are_separate() {
    let mut hub = Chat::new(0);
    send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"red"}"#);
    send(&mut hub, 2, r#"{"type":"login","name":"b","room_id":"blue"}"#);
    let got = send(&mut hub, 2, r#"{"type":"login","name":"c"}"#);
    assert_eq!(error_code(&got), "already_logged_in");
    let said = send(&mut hub, 1, r#"{"type":"say","to_uid":"all","content":"x"}"#);
    assert_eq!(said.len(), 1);
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":2,"content":"x"}"#)), "no_such_user");
}

#[test]
fn history_goes_to_newcomers_after_the_user_list() {
    let mut hub = Chat::new(2);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    for i in 0..3 {
        send(&mut hub, 1, &format!(r#"{{"type":"say","to_uid":"all","content":"m{i}"}}"#));
    }
    send(&mut hub, 1, r#"{"type":"say","to_uid":1,"content":"private"}"#);
    let got = send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
    let kinds: Vec<_> = got.iter().filter(|(c, _)| *c == 2).map(|(_, v)| v["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user_list", "say", "say", "login"]);
    let contents: Vec<_> = got.iter().filter_map(|(_, v)| v["content"].as_str()).collect();
    assert_eq!(contents, ["m1", "m2"]);
}

/// A hub with the given limits; the clock starts at `base`.
fn limited(history: usize, history_budget: usize, max_room_users: usize, join_burst: u32) -> (Chat, Instant) {
    let mut hub =
        Chat::with_limits(HubLimits { history, history_budget, max_room_users, join_burst, ..HubLimits::unlimited(0) });
    let base = Instant::now();
    hub.set_now(base);
    (hub, base)
}

fn say_all(hub: &mut Chat, conn: ConnId, content: &str) {
    send(hub, conn, &serde_json::to_string(&json!({"type":"say","content":content})).unwrap());
}

/// The contents of the history a newcomer to `room` gets.
fn history_of(hub: &mut Chat, conn: ConnId, room: &str) -> Vec<String> {
    let got = send(hub, conn, &format!(r#"{{"type":"login","name":"peek","room_id":"{room}"}}"#));
    let mut out = Effects::default();
    hub.leave(conn, T, &mut out);
    hub.seal(&mut out);
    got.iter().filter(|(c, v)| *c == conn && v["type"] == "say").map(|(_, v)| v["content"].to_string()).collect()
}

/// The bytes a say-to-all from `uid` (named "a" in these tests) holds in history.
fn kept_len(uid: u64, content: &str) -> usize {
    Said::new(uid, "a", T, content).cost()
}

#[test]
fn the_history_budget_drops_the_globally_oldest_first() {
    let one = kept_len(1, "a0");
    // Room of 10 per room, but the whole daemon keeps only 5 messages' worth.
    let (mut hub, _) = limited(10, 5 * one, usize::MAX, 0);
    send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"A"}"#);
    send(&mut hub, 2, r#"{"type":"login","name":"b","room_id":"B"}"#);
    for i in 0..3 {
        say_all(&mut hub, 1, &format!("a{i}"));
        say_all(&mut hub, 2, &format!("b{i}"));
    }
    // a0 b0 a1 b1 a2 b2: six kept, one over the budget, so a0 (the oldest of all) went.
    assert_eq!(hub.stats().history_evicted_total, 1);
    assert_eq!(hub.stats().history_bytes, 5 * one as u64);
    say_all(&mut hub, 2, "b3");
    say_all(&mut hub, 2, "b4");
    // Then b0, then a1: oldest first, whatever the room.
    assert_eq!(hub.stats().history_evicted_total, 3);
    assert_eq!(history_of(&mut hub, 9, "A"), [r#""a2""#]);
    assert_eq!(history_of(&mut hub, 9, "B"), [r#""b1""#, r#""b2""#, r#""b3""#, r#""b4""#]);
    assert_eq!(hub.stats().history_bytes, 5 * one as u64);
}

#[test]
fn history_of_dropped_rooms_is_released_and_skipped() {
    let one = kept_len(1, "x0");
    let (mut hub, _) = limited(3, 4 * one, usize::MAX, 0);
    send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"A"}"#);
    for i in 0..3 {
        say_all(&mut hub, 1, &format!("x{i}"));
    }
    let mut out = Effects::default();
    hub.leave(1, T, &mut out);
    assert_eq!(hub.stats().history_bytes, 0);
    // A new room under the same name starts empty; the old entries in the queue are not its messages.
    send(&mut hub, 2, r#"{"type":"login","name":"b","room_id":"A"}"#);
    for i in 0..4 {
        say_all(&mut hub, 2, &format!("y{i}"));
    }
    assert_eq!(hub.stats().history_evicted_total, 0, "only the per-room count dropped y0");
    assert_eq!(history_of(&mut hub, 9, "A"), [r#""y1""#, r#""y2""#, r#""y3""#]);
    say_all(&mut hub, 2, "y4");
    assert_eq!(hub.stats().history_bytes, 3 * one as u64);
    assert_eq!(hub.stats().history_evicted_total, 0);
}

#[test]
fn per_room_history_count_still_applies_and_the_queue_stays_bounded() {
    let (mut hub, _) = limited(2, usize::MAX, usize::MAX, 0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    for i in 0..10_000 {
        say_all(&mut hub, 1, &format!("m{i}"));
    }
    assert_eq!(history_of(&mut hub, 9, "1"), [r#""m9998""#, r#""m9999""#]);
    assert!(hub.hub.history.queue.len() <= 2 * hub.hub.history.messages + 1025, "{}", hub.hub.history.queue.len());
    assert_eq!(hub.stats().history_bytes, 2 * kept_len(1, "m9999") as u64);
    assert_eq!(hub.stats().history_evicted_total, 0);
}

#[test]
fn a_message_bigger_than_the_budget_is_not_kept() {
    let (mut hub, _) = limited(5, 10, usize::MAX, 0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    say_all(&mut hub, 1, "far more than ten bytes once framed");
    assert_eq!(hub.stats().history_bytes, 0);
    assert_eq!(hub.stats().history_evicted_total, 1);
    assert!(history_of(&mut hub, 9, "1").is_empty());
}

#[test]
fn join_burst_then_one_login_a_second() {
    let (mut hub, base) = limited(0, usize::MAX, usize::MAX, 3);
    send(&mut hub, 2, r#"{"type":"login","name":"watcher"}"#);
    let cycle = |hub: &mut Chat| -> Vec<(ConnId, Value)> {
        let got = send(hub, 1, r#"{"type":"login","name":"a"}"#);
        if hub.uid_of(1).is_some() {
            send(hub, 1, r#"{"type":"logout"}"#);
        }
        got
    };
    // The burst survives logouts: it is the connection's, not the session's.
    for _ in 0..3 {
        assert_eq!(cycle(&mut hub).len(), 3, "user list + login to both");
    }
    let refused = cycle(&mut hub);
    assert_eq!(
        refused,
        vec![(1, json!({"type":"error","code":"rate_limited","message":ErrorCode::RateLimited.message()}))]
    );
    assert_eq!(hub.uid_of(1), None, "nothing else happened");
    assert_eq!(hub.stats().rate_limited_total, 1);
    hub.set_now(base + Duration::from_millis(999));
    assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
    hub.set_now(base + Duration::from_millis(1000));
    assert_eq!(cycle(&mut hub).len(), 3);
    assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
    // Two seconds earn two logins; never more than the burst.
    hub.set_now(base + Duration::from_millis(3000));
    assert_eq!(cycle(&mut hub).len(), 3);
    assert_eq!(cycle(&mut hub).len(), 3);
    assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
    hub.set_now(base + Duration::from_secs(100));
    for _ in 0..3 {
        assert_eq!(cycle(&mut hub).len(), 3);
    }
    assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
    assert_eq!(hub.stats().rate_limited_total, 5);
    // Refused logins, bad names and a second login do not spend the allowance.
    assert_eq!(error_code(&send(&mut hub, 2, r#"{"type":"login","name":"again"}"#)), "already_logged_in");
    // Another connection has its own allowance; an ended connection's is forgotten, so a new connection
    // given the same id starts with a full burst.
    hub.disconnect(1);
    for _ in 0..3 {
        assert_eq!(cycle(&mut hub).len(), 3);
    }
    assert_eq!(send(&mut hub, 3, r#"{"type":"login","name":"c"}"#).len(), 3);
}

#[test]
fn full_join_allowances_are_swept_out() {
    let (mut hub, base) = limited(0, usize::MAX, usize::MAX, 2);
    for c in 0..100 {
        send(&mut hub, c, &format!(r#"{{"type":"login","name":"u{c}"}}"#));
    }
    assert_eq!(hub.hub.joins.len(), 100);
    hub.set_now(base + Duration::from_millis(500));
    assert_eq!(hub.hub.joins.len(), 100, "not yet refilled");
    hub.set_now(base + Duration::from_millis(1500));
    assert!(hub.hub.joins.is_empty());
    // A swept connection starts again with a full burst, which is what it had earned.
    send(&mut hub, 0, r#"{"type":"logout"}"#);
    assert_eq!(send(&mut hub, 0, r#"{"type":"login","name":"x"}"#)[0].1["type"], "user_list");
    send(&mut hub, 0, r#"{"type":"logout"}"#);
    assert_eq!(send(&mut hub, 0, r#"{"type":"login","name":"x"}"#)[0].1["type"], "user_list");
    send(&mut hub, 0, r#"{"type":"logout"}"#);
    assert_eq!(error_code(&send(&mut hub, 0, r#"{"type":"login","name":"x"}"#)), "rate_limited");
}

#[test]
fn a_full_room_refuses_logins() {
    let (mut hub, _) = limited(0, usize::MAX, 2, 0);
    send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
    send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
    let refused = send(&mut hub, 3, r#"{"type":"login","name":"c"}"#);
    assert_eq!(refused, vec![(3, json!({"type":"error","code":"room_full","message":"this room is full"}))]);
    assert_eq!((hub.uid_of(3), hub.user_count(), hub.stats().room_full_total), (None, 2, 1));
    // Other rooms are not affected; a place that comes free can be taken.
    assert_eq!(send(&mut hub, 3, r#"{"type":"login","name":"c","room_id":"other"}"#).len(), 2);
    send(&mut hub, 1, r#"{"type":"logout"}"#);
    assert_eq!(send(&mut hub, 4, r#"{"type":"login","name":"d"}"#).len(), 3);
    assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"a"}"#)), "room_full");
    assert_eq!(hub.stats().room_full_total, 2);
}

#[test]
fn empty_rooms_are_dropped() {
    let mut hub = Chat::new(5);
    send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"tmp"}"#);
    let mut out = Effects::default();
    hub.leave(1, T, &mut out);
    let rooms = (hub.hub.roster().room_count(), hub.hub.history.room_count(), hub.fanout.room_count());
    assert_eq!(rooms, (0, 0, 0), "roster, history and fanout");
}
