//! Resume on a cluster node (a real redis-server per test, persistence off, stopped by its PID): a session
//! resumed on the node that holds it is invisible to the other nodes — its user stays in their lists, says
//! from other nodes reach it on resume — and a session whose grace ran out is one logout on every node. A
//! resume on another node does not find the session (`session_expired`): sessions live on their node.

mod common;

use std::time::Duration;

use common::cluster::{node, redis, send};
use common::Raw;
use serde_json::{json, Value};

/// Reads until a message of `kind`, returning it and what came before.
fn until(raw: &mut Raw, kind: &str) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    loop {
        let v = raw.read_json();
        if v["type"] == kind {
            return (v, seen);
        }
        seen.push(v);
    }
}

/// Messages arriving on `raw` within `wait`.
fn within(raw: &mut Raw, wait: Duration) -> Vec<Value> {
    raw.set_read_timeout(wait).expect("timeout");
    let mut got = Vec::new();
    while let Some(f) = raw.try_read_frame() {
        if f.opcode == 1 {
            got.push(serde_json::from_slice(&f.payload).expect("JSON"));
        }
    }
    raw.set_read_timeout(Duration::from_secs(5)).expect("timeout");
    got
}

#[test]
fn a_session_resumes_on_its_node_and_the_other_nodes_see_nothing() {
    let Some(redis) = redis("a_session_resumes_on_its_node_and_the_other_nodes_see_nothing") else { return };
    let (a, b) = (node(&redis, &["--resume-grace-secs", "2"]), node(&redis, &[]));
    let mut far = Raw::open(b.ws);
    send(&mut far, json!({"type":"login","name":"far","room_id":"r"}));
    until(&mut far, "login");
    let mut near = Raw::open(a.ws);
    send(&mut near, json!({"type":"login","name":"near","room_id":"r","resume":true}));
    let (list, _) = until(&mut near, "user_list");
    let session = list["session"].as_str().expect("session").to_string();
    let (login, _) = until(&mut far, "login");
    let uid = login["uid"].as_u64().expect("uid");
    // near drops; far keeps talking from the other node, publicly and privately.
    drop(near);
    send(&mut far, json!({"type":"say","to_uid":"all","content":"one"}));
    send(&mut far, json!({"type":"say","to_uid":uid,"content":"two"}));
    let seen = within(&mut far, Duration::from_millis(700));
    assert!(seen.iter().all(|v| v["type"] == "say"), "no logout on the other node: {seen:?}");
    // Another node does not hold the session.
    let mut wrong = Raw::open(b.ws);
    send(&mut wrong, json!({"type":"resume","session":session,"last_mid":null}));
    assert_eq!(wrong.read_json()["code"], "session_expired");
    // Its own node does: both says, in order, then resumed.
    let mut back = Raw::open(a.ws);
    send(&mut back, json!({"type":"resume","session":session,"last_mid":null}));
    let (resumed, before) = until(&mut back, "resumed");
    let contents: Vec<&str> = before[1..].iter().filter_map(|v| v["content"].as_str()).collect();
    assert_eq!(contents, ["one", "two"]);
    assert_eq!((resumed["recovered"].as_bool(), resumed["missed"].as_u64()), (Some(true), Some(2)));
    // A newcomer on the other node lists the user all along.
    let mut late = Raw::open(b.ws);
    send(&mut late, json!({"type":"login","name":"late","room_id":"r"}));
    let (list, _) = until(&mut late, "user_list");
    assert!(list["user_list"].as_array().expect("list").iter().any(|u| u["uid"] == uid), "{list}");
    // Dropped again, past the grace: exactly one logout on the other node.
    drop(back);
    let seen = within(&mut far, Duration::from_secs(4));
    let logouts: Vec<&Value> = seen.iter().filter(|v| v["type"] == "logout").collect();
    assert_eq!(logouts.len(), 1, "{seen:?}");
    assert_eq!(logouts[0]["uid"], uid);
}
