//! Hardening of the chat's own state against the real binary: history held within a global budget (oldest
//! first), a cap on a room's users, and logins per connection rate-limited so a joiner cycling login and
//! logout in a big room cannot make the daemon re-send its user list without bound.

mod common;

use std::time::Duration;

use common::probe::{cpu_time, login, metric, rss_kib};
use common::{text_frame, Daemon, Raw};
use serde_json::{json, Value};

fn send(raw: &mut Raw, v: Value) {
    raw.send(&text_frame(&v.to_string()));
}

/// Logs in on an open connection and returns the types of the frames up to its own login.
fn join(raw: &mut Raw, name: &str, room: &str) -> Vec<String> {
    send(raw, json!({"type":"login","name":name,"room_id":room}));
    let mut kinds = Vec::new();
    loop {
        let v = raw.read_json();
        let kind = v["type"].as_str().unwrap_or_default().to_string();
        let done = (kind == "login" && v["name"] == name) || kind == "error";
        kinds.push(if kind == "error" { format!("error:{}", v["code"].as_str().unwrap_or_default()) } else { kind });
        if done {
            return kinds;
        }
    }
}

#[test]
fn history_stays_within_its_global_budget_oldest_first() {
    let budget = 8 << 20;
    // The welcome's own bound raised past a room's 6 MB: what is tested is the budget over all rooms.
    let welcome = "--history-welcome-bytes";
    let d = Daemon::start(&["--history", "100", "--history-budget", &budget.to_string(), welcome, "8388608"]);
    let pid = d.child.id();
    let rss_before = rss_kib(pid);
    let content = "h".repeat(60_000);
    // Ten clients, each alone in its room, fill their rooms' history one room after the other: 60 MB in all.
    let mut talkers: Vec<Raw> = (0..10).map(|i| login(d.ws, &format!("t{i}"), &format!("room{i}")).0).collect();
    for raw in talkers.iter_mut() {
        for _ in 0..100 {
            send(raw, json!({"type":"say","to_uid":"all","content":content}));
            assert_eq!(raw.read_json()["type"], "say");
        }
    }
    let held = metric(d.http, "wschat_history_bytes");
    let evicted = metric(d.http, "wschat_history_evicted_total");
    let rss_after = rss_kib(pid);
    eprintln!("history: {held} bytes held, {evicted} evicted, RSS {rss_before} -> {rss_after} KiB");
    assert!(held <= budget, "{held} bytes of history over the budget {budget}");
    assert!(evicted >= 800, "only {evicted} evicted");
    assert!(rss_after < rss_before + 40 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");
    // The oldest went first: the first room kept nothing, the last room everything.
    let mut first = Raw::open(d.ws);
    assert_eq!(join(&mut first, "late0", "room0"), ["user_list", "login"]);
    let mut last = Raw::open(d.ws);
    let kinds = join(&mut last, "late9", "room9");
    assert_eq!(kinds.len(), 102, "user list, 100 history messages, login: {kinds:?}");
}

#[test]
fn a_full_room_refuses_further_logins() {
    let d = Daemon::start(&["--max-room-users", "3"]);
    let _members: Vec<_> = (0..3).map(|i| login(d.ws, &format!("m{i}"), "small")).collect();
    let mut late = Raw::open(d.ws);
    assert_eq!(join(&mut late, "late", "small"), ["error:room_full"]);
    assert_eq!(join(&mut late, "late", "other"), ["user_list", "login"], "another room has space");
    assert_eq!(metric(d.http, "wschat_room_full_total"), 1);
}

#[test]
fn a_joiner_cycling_login_and_logout_is_held_to_its_burst() {
    let d = Daemon::start(&[]);
    let pid = d.child.id();
    // A room of 200 users with long names: each user list is about 25 KB.
    let name = "n".repeat(32);
    let _members: Vec<_> = (0..200).map(|_| login(d.ws, &name, "big")).collect();
    let mut joiner = Raw::open(d.ws);
    let cpu_before = cpu_time(pid);
    let mut lists = 0;
    let mut refused = 0;
    for _ in 0..200 {
        let kinds = join(&mut joiner, "joiner", "big");
        if kinds[0] == "user_list" {
            lists += 1;
            send(&mut joiner, json!({"type":"logout"}));
        } else {
            assert_eq!(kinds, ["error:rate_limited"]);
            refused += 1;
        }
    }
    let cpu = cpu_time(pid) - cpu_before;
    eprintln!("joiner: {lists} user lists, {refused} logins refused, daemon CPU {cpu:?}");
    assert!(lists <= 7, "the burst of 5 (and a refill or two) bounds the user lists: {lists}");
    assert_eq!(lists + refused, 200);
    assert!(metric(d.http, "wschat_rate_limited_total") >= 190);
    // A refill: after a second the joiner may log in again.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(join(&mut joiner, "joiner", "big")[0], "user_list");
}
