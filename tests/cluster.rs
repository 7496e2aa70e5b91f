//! Several wschat nodes act as one chat through a real redis-server (started by each test on a free
//! loopback port, persistence off, stopped by its PID): the seed across two nodes, private messages both
//! ways, rooms kept apart, history across nodes and across a restart of every node, unique uids under
//! simultaneous logins on three nodes.

mod common;

use std::collections::HashSet;

use common::cluster::{node, redis, send, settle};
use common::probe::metric;
use common::{Daemon, Raw};
use serde_json::{json, Value};

/// Logs in as `name` in `room`; returns the connection, its uid and the user list it got (uid, name).
fn login(ws: std::net::SocketAddr, name: &str, room: &str) -> (Raw, u64, Vec<(u64, String)>) {
    let mut raw = Raw::open(ws);
    send(&mut raw, json!({"type":"login","name":name,"room_id":room}));
    let list = raw.read_json();
    assert_eq!(list["type"], "user_list", "{list}");
    let users: Vec<(u64, String)> = list["user_list"]
        .as_array()
        .expect("user_list")
        .iter()
        .map(|u| (u["uid"].as_u64().expect("uid"), u["name"].as_str().expect("name").to_string()))
        .collect();
    loop {
        let v = raw.read_json();
        if v["type"] == "login" && v["name"] == name {
            return (raw, v["uid"].as_u64().expect("uid"), users);
        }
    }
}

fn assert_time(v: &Value) {
    let t = v["time"].as_str().unwrap_or_default();
    assert_eq!(t.len(), 19, "time {t:?} in {v}");
}

#[test]
fn the_seed_across_two_nodes() {
    let Some(redis) = redis("the_seed_across_two_nodes") else { return };
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let (mut pig, pig_uid, list) = login(a.ws, "猪猪", "1");
    assert_eq!(list, [(pig_uid, "猪猪".to_string())]);
    settle(&[&a, &b]);
    let (mut nick, nick_uid, list) = login(b.ws, "mynick", "1");
    assert_ne!(pig_uid, nick_uid);
    assert_eq!(list, [(pig_uid, "猪猪".to_string()), (nick_uid, "mynick".to_string())], "the room across both nodes");
    let seen = pig.read_json();
    assert_time(&seen);
    assert_eq!(seen, json!({"type":"login","uid":nick_uid,"name":"mynick","time":seen["time"]}));

    send(&mut nick, json!({"type":"say","to_uid":"all","content":"hi,  all !"}));
    for ws in [&mut nick, &mut pig] {
        let say = ws.read_json();
        assert_time(&say);
        assert_eq!(
            say,
            json!({"type":"say","from_uid":nick_uid,"to_uid":"all","content":"hi,  all !","time":say["time"]})
        );
    }
    // And back the other way.
    send(&mut pig, json!({"type":"say","to_uid":"all","content":"你好"}));
    for ws in [&mut pig, &mut nick] {
        assert_eq!(ws.read_json()["content"], "你好");
    }
    // A logout on one node reaches the other, and the user list follows.
    send(&mut pig, json!({"type":"logout"}));
    let out = nick.read_json();
    assert_eq!(
        (out["type"].as_str(), out["uid"].as_u64(), out["name"].as_str()),
        (Some("logout"), Some(pig_uid), Some("猪猪"))
    );
    settle(&[&a, &b]);
    let (_late, late_uid, list) = login(a.ws, "late", "1");
    assert_eq!(list, [(nick_uid, "mynick".to_string()), (late_uid, "late".to_string())]);
    assert!(metric(a.http, "wschat_cluster_published_total") > 0);
    assert_eq!(metric(b.http, "wschat_cluster_nodes"), 2);
    assert_eq!(metric(a.http, "wschat_cluster_up"), 1);
}

#[test]
fn private_messages_both_ways_and_rooms_apart() {
    let Some(redis) = redis("private_messages_both_ways_and_rooms_apart") else { return };
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let (mut x, ux, _) = login(a.ws, "x", "r1");
    let (mut other, _, _) = login(a.ws, "other", "r2");
    settle(&[&a, &b]);
    let (mut y, uy, list) = login(b.ws, "y", "r1");
    assert_eq!(list.len(), 2, "r2's user is not in r1: {list:?}");
    assert_eq!(x.read_json()["uid"], uy);

    send(&mut x, json!({"type":"say","to_uid":uy,"content":"psst"}));
    for ws in [&mut y, &mut x] {
        let v = ws.read_json();
        assert_eq!(
            (v["from_uid"].as_u64(), v["to_uid"].as_u64(), v["content"].as_str()),
            (Some(ux), Some(uy), Some("psst"))
        );
    }
    send(&mut y, json!({"type":"say","to_uid":ux,"content":"back"}));
    for ws in [&mut x, &mut y] {
        let v = ws.read_json();
        assert_eq!(
            (v["from_uid"].as_u64(), v["to_uid"].as_u64(), v["content"].as_str()),
            (Some(uy), Some(ux), Some("back"))
        );
    }
    // A uid in another room, on any node, is no_such_user; the other room hears nothing of r1.
    let (mut z, uz, _) = login(b.ws, "z", "r2");
    settle(&[&a, &b]);
    send(&mut x, json!({"type":"say","to_uid":uz,"content":"nope"}));
    let e = x.read_json();
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("no_such_user")));
    send(&mut x, json!({"type":"say","to_uid":"all","content":"only r1"}));
    assert_eq!(x.read_json()["content"], "only r1");
    assert_eq!(y.read_json()["content"], "only r1");
    send(&mut z, json!({"type":"say","to_uid":"all","content":"r2 here"}));
    let first = other.read_json();
    assert_eq!(
        (first["type"].as_str(), first["uid"].as_u64()),
        (Some("login"), Some(uz)),
        "r2 sees z join, nothing of r1"
    );
    assert_eq!(other.read_json()["content"], "r2 here");
    assert_eq!(z.read_json()["content"], "r2 here");
}

#[test]
fn history_across_nodes_and_a_restart_of_every_node() {
    let Some(redis) = redis("history_across_nodes_and_a_restart_of_every_node") else { return };
    let (a, b) = (node(&redis, &["--history", "3"]), node(&redis, &["--history", "3"]));
    let (mut x, ux, _) = login(a.ws, "x", "h");
    for i in 1..=4 {
        send(&mut x, json!({"type":"say","to_uid":"all","content":format!("m{i}")}));
        assert_eq!(x.read_json()["content"], format!("m{i}"));
    }
    settle(&[&a, &b]);
    let history = |ws| {
        let mut raw = Raw::open(ws);
        send(&mut raw, json!({"type":"login","name":"reader","room_id":"h"}));
        assert_eq!(raw.read_json()["type"], "user_list");
        let mut said = Vec::new();
        loop {
            let v = raw.read_json();
            if v["type"] == "login" {
                return said;
            }
            assert_eq!(v["from_uid"].as_u64(), Some(ux), "{v}");
            said.push(v["content"].as_str().unwrap_or_default().to_string());
        }
    };
    assert_eq!(history(b.ws), ["m2", "m3", "m4"], "a newcomer on the other node gets the room's last 3");
    drop(x);
    drop((a, b));
    // Every node restarts: the history lives in Redis.
    let c = node(&redis, &["--history", "3"]);
    assert_eq!(history(c.ws), ["m2", "m3", "m4"]);
    let llen = redis.cli(&["LLEN", "wschat:history:1:h"]);
    assert!(llen.trim().parse::<u64>().unwrap_or(0) >= 3, "LLEN {llen:?}");
}

#[test]
fn uids_are_unique_under_simultaneous_logins_on_three_nodes() {
    let Some(redis) = redis("uids_are_unique_under_simultaneous_logins_on_three_nodes") else { return };
    let nodes = [node(&redis, &[]), node(&redis, &[]), node(&redis, &[])];
    let addrs: Vec<_> = nodes.iter().map(|d| d.ws).collect();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let ws = addrs[i % 3];
            std::thread::spawn(move || {
                let mut raw = Raw::open(ws);
                send(&mut raw, json!({"type":"login","name":format!("u{i}"),"room_id":format!("room{}", i % 7)}));
                loop {
                    let v = raw.read_json();
                    if v["type"] == "login" && v["name"] == format!("u{i}") {
                        return (v["uid"].as_u64().expect("uid"), raw);
                    }
                }
            })
        })
        .collect();
    let got: Vec<(u64, Raw)> = threads.into_iter().map(|t| t.join().expect("login")).collect();
    let uids: HashSet<u64> = got.iter().map(|(u, _)| *u).collect();
    assert_eq!(uids.len(), 200, "every uid once");
    assert!(uids.iter().all(|&u| u > 0));
    // Once the logins settled, every node answers the same user list for a room.
    let refs: Vec<&Daemon> = nodes.iter().collect();
    settle(&refs);
    let lists: Vec<Vec<(u64, String)>> = nodes
        .iter()
        .map(|d| {
            let (_, uid, list) = login(d.ws, &format!("probe{}", d.ws.port()), "room3");
            list.into_iter().filter(|(u, _)| *u != uid).collect()
        })
        .collect();
    assert!(lists[0].len() >= 28, "room3 holds its 28 or 29 users: {}", lists[0].len());
    let first: Vec<u64> = lists[0].iter().map(|(u, _)| *u).take(28).collect();
    for l in &lists[1..] {
        let uids: Vec<u64> = l.iter().map(|(u, _)| *u).take(28).collect();
        assert_eq!(uids, first, "the same users in the same order on every node");
    }
}

#[test]
fn both_dialects_across_nodes() {
    let Some(redis) = redis("both_dialects_across_nodes") else { return };
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let (mut seed, us, _) = login(a.ws, "猪猪", "1");
    settle(&[&a, &b]);
    let mut wm = Raw::open(b.ws);
    send(&mut wm, json!({"type":"login","client_name":"mynick","room_id":1}));
    let welcome = wm.read_json();
    let uw: u64 = welcome["client_id"].as_str().and_then(|s| s.parse().ok()).expect("client_id");
    assert_eq!(welcome["client_list"], json!({us.to_string(): "猪猪", uw.to_string(): "mynick"}), "{welcome}");
    let seen = seed.read_json();
    assert_eq!(
        (seen["type"].as_str(), seen["uid"].as_u64(), seen["name"].as_str()),
        (Some("login"), Some(uw), Some("mynick"))
    );
    send(&mut wm, json!({"type":"say","to_client_id":"all","content":"<hi>"}));
    assert_eq!(wm.read_json()["content"], "&lt;hi&gt;");
    assert_eq!(seed.read_json()["content"], "<hi>", "each reader gets its own dialect's bytes");
    send(&mut seed, json!({"type":"say","to_uid":uw,"content":"psst"}));
    let got = wm.read_json();
    assert_eq!(
        (got["from_client_name"].as_str(), got["content"].as_str()),
        (Some("猪猪"), Some("<b>对你说: </b>psst"))
    );
    assert_eq!(seed.read_json()["to_uid"], uw);
    drop(seed);
    let out = wm.read_json();
    assert_eq!((out["type"].as_str(), out["from_client_id"].as_str()), (Some("logout"), Some(us.to_string().as_str())));
}
