//! The server API on a cluster of three nodes sharing a real redis-server (started by the test on a free
//! loopback port, persistence off, stopped by its PID): every verb called on one node acts on the whole
//! cluster — a send to an account or a uid reaches only the node that holds it (the other nodes' counters
//! prove they received none of its bytes), a send to a room reaches every node with members of it, a say
//! from the server crosses the bus like a user's, who is online is answered from any node, and a close
//! removes a user held by another node.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::api::{key_file, request, Client};
use common::cluster::{node, redis, send, settle};
use common::probe::{eventually, metric};
use common::{Daemon, Raw};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &[u8] = b"the backend's secret for the cluster";

fn token(sub: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 600;
    let claims = json!({"sub": sub, "exp": exp});
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).expect("sign")
}

/// Logs in to room "r" as account `sub`; the connection and its uid, once its own login came back.
fn login(ws: SocketAddr, sub: &str) -> (Raw, u64) {
    let mut raw = Raw::open(ws);
    send(&mut raw, json!({"type":"login","name":sub,"room_id":"r","token":token(sub)}));
    assert_eq!(raw.read_json()["type"], "user_list");
    loop {
        let v = raw.read_json();
        if v["type"] == "login" && v["user_id"] == sub {
            return (raw, v["uid"].as_u64().expect("uid"));
        }
    }
}

/// The API's answer to `method path body` on `api`.
fn call(api: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut c = Client::open(api);
    c.send(&request(method, path, body.as_ref(), true));
    let (status, _, body) = c.response();
    (status, body)
}

fn direct_received(d: &Daemon) -> u64 {
    metric(d.http, "wschat_cluster_direct_received_total")
}

fn bus_received(d: &Daemon) -> u64 {
    metric(d.http, "wschat_cluster_received_total")
}

/// The next frame's text, if one comes within a short while.
fn quiet(raw: &mut Raw) -> Option<String> {
    raw.set_read_timeout(Duration::from_millis(300)).expect("timeout");
    let got = raw.try_read_frame().map(|f| f.text());
    raw.set_read_timeout(Duration::from_secs(5)).expect("timeout");
    got
}

#[test]
fn every_verb_acts_on_the_whole_cluster_and_a_send_reaches_only_the_nodes_holding_its_target() {
    let Some(redis) = redis("every_verb_acts_on_the_whole_cluster") else { return };
    let secret = std::env::temp_dir().join(format!("wschat-test-api-cluster-{}.secret", std::process::id()));
    std::fs::write(&secret, SECRET).expect("write the secret");
    let key = key_file("cluster");
    let args = [
        "--auth-key",
        secret.to_str().expect("path"),
        "--api",
        "127.0.0.1:0",
        "--api-key-file",
        key.to_str().expect("path"),
        "--history",
        "5",
    ];
    let (a, b, c) = (node(&redis, &args), node(&redis, &args), node(&redis, &args));
    let api = |d: &Daemon| d.api.expect("the API's address");
    let (mut carol, carol_uid) = login(a.ws, "carol");
    let (mut alice, alice_uid) = login(b.ws, "alice");
    let (mut bob, bob_uid) = login(c.ws, "bob");
    settle(&[&a, &b, &c]);
    for raw in [&mut carol, &mut alice, &mut bob] {
        while quiet(raw).is_some() {} // the others' logins
    }

    // Who is where, asked of any node.
    let (_, rooms) = call(api(&c), "GET", "/api/rooms", None);
    assert_eq!(rooms, json!({"ok":true,"rooms":[{"room":"r","users":3}]}));
    let (_, user) = call(api(&a), "GET", "/api/users/alice", None);
    assert_eq!(user, json!({"ok":true,"user_id":"alice","online":true,"sessions":[{"uid":alice_uid,"room":"r"}]}));

    // A send to an account held by node b, called on node a: b alone receives it.
    let before = [direct_received(&a), direct_received(&b), direct_received(&c)];
    let bus_before = [bus_received(&a), bus_received(&b), bus_received(&c)];
    let (status, answer) =
        call(api(&a), "POST", "/api/send", Some(json!({"to":{"user_id":"alice"},"data":"for alice"})));
    assert_eq!((status, answer), (200, json!({"ok":true,"queued":0,"nodes":1})));
    assert_eq!(alice.read_text(), "for alice");
    // To a uid held by node c.
    let (_, answer) = call(api(&a), "POST", "/api/send", Some(json!({"to":{"uid":bob_uid},"data":"for bob"})));
    assert_eq!(answer, json!({"ok":true,"queued":0,"nodes":1}));
    assert_eq!(bob.read_text(), "for bob");
    assert!(eventually(Duration::from_secs(5), || direct_received(&c) == before[2] + 1));
    assert_eq!(direct_received(&b), before[1] + 1, "b received the send to alice, and nothing else");
    assert_eq!(direct_received(&a), before[0], "the node called holds neither");
    assert_eq!([bus_received(&a), bus_received(&b), bus_received(&c)], bus_before, "nothing went over the bus");
    assert_eq!(quiet(&mut carol), None);
    assert_eq!(quiet(&mut bob), None, "bob got nothing of alice's");

    // A send to the room: here at once, and once to each other node with members of it.
    let (_, answer) =
        call(api(&a), "POST", "/api/send", Some(json!({"to":{"room":"r"},"data":"to r","exclude_uids":[bob_uid]})));
    assert_eq!(answer, json!({"ok":true,"queued":1,"nodes":1}), "bob excluded: node c is not asked");
    assert_eq!(carol.read_text(), "to r");
    assert_eq!(alice.read_text(), "to r");
    assert_eq!(quiet(&mut bob), None);

    // A say from the server, called on node c, reaches the room on every node from uid 0.
    let (_, answer) = call(api(&c), "POST", "/api/say", Some(json!({"room":"r","content":"from the server"})));
    assert_eq!(answer, json!({"ok":true,"room":"r","users":3}));
    for raw in [&mut carol, &mut alice, &mut bob] {
        let say = raw.read_json();
        assert_eq!((say["from_uid"].as_u64(), say["content"].as_str()), (Some(0), Some("from the server")), "{say}");
    }
    settle(&[&a, &b, &c]);
    let (_, history) = call(api(&b), "GET", "/api/rooms/r/history", None);
    assert_eq!(history["history"][0]["content"], "from the server", "{history}");

    // A close called on node c removes alice from node b: closed with 4000, a logout everywhere.
    let (_, answer) = call(api(&c), "POST", "/api/close", Some(json!({"user_id":"alice","reason":"suspended"})));
    assert_eq!(answer, json!({"ok":true,"closed":1,"nodes":1}));
    let close = alice.read_frame().expect("a close frame");
    assert_eq!(close.close_code(), Some(4000));
    assert!(close.text().ends_with("suspended"), "{close:?}");
    for raw in [&mut carol, &mut bob] {
        let logout = raw.read_json();
        assert_eq!((logout["type"].as_str(), logout["uid"].as_u64()), (Some("logout"), Some(alice_uid)));
    }
    assert!(eventually(Duration::from_secs(5), || {
        call(api(&a), "GET", "/api/users/alice", None).1["online"] == false
    }));
    let (_, rooms) = call(api(&b), "GET", "/api/rooms", None);
    assert_eq!(rooms["rooms"][0]["users"], 2);
    let (_, users) = call(api(&b), "GET", "/api/rooms/r/users", None);
    let uids: Vec<u64> = users["users"].as_array().expect("users").iter().filter_map(|u| u["uid"].as_u64()).collect();
    assert_eq!(uids.len(), 2);
    assert!(uids.contains(&carol_uid) && uids.contains(&bob_uid), "{users}");
}
