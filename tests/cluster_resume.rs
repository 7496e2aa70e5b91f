//! Resume on a cluster (a real redis-server per test, persistence off, stopped by its PID): a session
//! resumed on the node that holds it is invisible to the other nodes — its user stays in their lists, says
//! from other nodes reach it on resume — and a session whose grace ran out is one logout on every node. A
//! session resumes on another node too (the seat moves, the old connection gets 4001, nobody sees a logout
//! or a login, and the says the client missed come from the new node's own log, exactly), also after its
//! node was killed.

mod common;

use std::time::Duration;

use common::cluster::{node, redis, send};
use common::probe::messages_within;
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
    let seen = messages_within(&mut far, Duration::from_millis(700));
    assert!(seen.iter().all(|v| v["type"] == "say"), "no logout on the other node: {seen:?}");
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
    let seen = messages_within(&mut far, Duration::from_secs(4));
    let logouts: Vec<&Value> = seen.iter().filter(|v| v["type"] == "logout").collect();
    assert_eq!(logouts.len(), 1, "{seen:?}");
    assert_eq!(logouts[0]["uid"], uid);
}

/// Resumes `session` on `ws` as a client that received no say.
fn resume(ws: std::net::SocketAddr, session: &str) -> (Raw, Vec<Value>, Value) {
    resume_after(ws, session, None)
}

/// Logs in on `ws` in room "r"; returns the connection, its uid, and its session when `resume`.
fn login(ws: std::net::SocketAddr, name: &str, resume: bool) -> (Raw, u64, Option<String>) {
    let mut raw = Raw::open(ws);
    send(&mut raw, json!({"type":"login","name":name,"room_id":"r","resume":resume}));
    let (list, _) = until(&mut raw, "user_list");
    let session = list["session"].as_str().map(str::to_string);
    loop {
        let v = raw.read_json();
        if v["type"] == "login" && v["name"] == name {
            return (raw, v["uid"].as_u64().expect("uid"), session);
        }
    }
}

/// Resumes `session` on `ws` after `last_mid`: the connection, what came before `resumed`, and it.
fn resume_after(ws: std::net::SocketAddr, session: &str, last_mid: Option<&str>) -> (Raw, Vec<Value>, Value) {
    let mut raw = Raw::open(ws);
    send(&mut raw, json!({"type":"resume","session":session,"last_mid":last_mid}));
    let (resumed, before) = until(&mut raw, "resumed");
    (raw, before, resumed)
}

#[test]
fn a_session_resumes_on_another_node_and_nobody_sees_it_move() {
    let Some(redis) = redis("a_session_resumes_on_another_node_and_nobody_sees_it_move") else { return };
    let (a, b, c) = (node(&redis, &[]), node(&redis, &[]), node(&redis, &[]));
    let (mut watch, _, _) = login(c.ws, "watch", false);
    let (mut old, uid, session) = login(a.ws, "mover", true);
    let session = session.expect("session");
    until(&mut watch, "login");
    std::thread::sleep(Duration::from_millis(300));
    // Says from c reach the user on a; the network loses the last two.
    send(&mut watch, json!({"type":"say","to_uid":"all","content":"x1"}));
    send(&mut watch, json!({"type":"say","to_uid":uid,"content":"x2"}));
    send(&mut watch, json!({"type":"say","to_uid":"all","content":"x3"}));
    let (x1, _) = until(&mut old, "say");
    let last_mid = x1["mid"].as_str().expect("mid").to_string();
    until(&mut old, "say");
    until(&mut old, "say");
    // Resumed on b while the connection on a is still open: a closes it with 4001, b replays what the
    // client lost, exactly.
    let (mut moved, before, resumed) = resume_after(b.ws, &session, Some(&last_mid));
    assert_eq!(before[0]["type"], "user_list");
    assert_eq!(before[0]["session"], session.as_str());
    let replayed: Vec<&str> = before[1..].iter().filter_map(|v| v["content"].as_str()).collect();
    assert_eq!(replayed, ["x2", "x3"]);
    assert_eq!(resumed, json!({"type":"resumed","uid":uid,"recovered":true,"missed":2}));
    assert_eq!(old.expect_close(), 4001);
    // The user is on b now: the room's says and a private say from c reach it there.
    send(&mut watch, json!({"type":"say","to_uid":"all","content":"to all"}));
    send(&mut watch, json!({"type":"say","to_uid":uid,"content":"to you"}));
    let (first, _) = until(&mut moved, "say");
    let (second, _) = until(&mut moved, "say");
    assert_eq!((first["content"].as_str(), second["content"].as_str()), (Some("to all"), Some("to you")));
    assert!(second["mid"].is_string());
    send(&mut moved, json!({"type":"say","to_uid":"all","content":"from b"}));
    let seen = messages_within(&mut watch, Duration::from_millis(800));
    assert!(seen.iter().any(|v| v["content"] == "from b" && v["from_uid"] == uid), "{seen:?}");
    assert!(seen.iter().all(|v| v["type"] == "say"), "no logout or login anywhere: {seen:?}");
    // And back to a: the seat moves again.
    let (_back, _, resumed) = resume(a.ws, &session);
    assert_eq!(resumed["uid"], uid);
    assert_eq!(moved.expect_close(), 4001);
}

#[test]
fn the_users_of_a_killed_node_resume_elsewhere_and_only_the_others_log_out() {
    let Some(redis) = redis("the_users_of_a_killed_node_resume_elsewhere_and_only_the_others_log_out") else { return };
    let mut a = node(&redis, &["--resume-grace-secs", "6"]);
    let b = node(&redis, &["--resume-grace-secs", "6"]);
    let (mut watch, _, _) = login(b.ws, "watch", false);
    let (_plain, plain_uid, _) = login(a.ws, "plain", false);
    let (mut comes_back, back_uid, back_session) = login(a.ws, "back", true);
    let (_stays_away, away_uid, _) = login(a.ws, "away", true);
    for _ in 0..3 {
        until(&mut watch, "login");
    }
    std::thread::sleep(Duration::from_millis(300));
    send(&mut watch, json!({"type":"say","to_uid":"all","content":"k1"}));
    let (k1, _) = until(&mut comes_back, "say");
    let last_mid = k1["mid"].as_str().expect("mid").to_string();
    let _ = a.child.kill();
    let _ = a.child.wait();
    // Said while the node is dead, before and after it is reaped.
    send(&mut watch, json!({"type":"say","to_uid":back_uid,"content":"k2"}));
    // The node is reaped within about a second (heartbeat 200 ms): the user without a session logs out.
    let seen = messages_within(&mut watch, Duration::from_secs(3));
    let logouts: Vec<u64> = seen.iter().filter(|v| v["type"] == "logout").filter_map(|v| v["uid"].as_u64()).collect();
    assert_eq!(logouts, [plain_uid], "{seen:?}");
    send(&mut watch, json!({"type":"say","to_uid":"all","content":"k3"}));
    // One of the others resumes on b: nobody sees it come back, and it gets what it missed.
    let (mut back, before, resumed) = resume_after(b.ws, &back_session.expect("session"), Some(&last_mid));
    assert_eq!((resumed["uid"].as_u64(), resumed["recovered"].as_bool()), (Some(back_uid), Some(true)));
    let replayed: Vec<&str> = before[1..].iter().filter_map(|v| v["content"].as_str()).collect();
    assert_eq!(replayed, ["k2", "k3"]);
    let listed: Vec<u64> =
        before[0]["user_list"].as_array().expect("list").iter().filter_map(|u| u["uid"].as_u64()).collect();
    assert!(listed.contains(&away_uid) && listed.contains(&back_uid) && !listed.contains(&plain_uid), "{listed:?}");
    // The one that stays away is logged out once, at the end of its grace.
    let seen = messages_within(&mut watch, Duration::from_secs(6));
    let logouts: Vec<u64> = seen.iter().filter(|v| v["type"] == "logout").filter_map(|v| v["uid"].as_u64()).collect();
    assert_eq!(logouts, [away_uid], "{seen:?}");
    assert!(seen.iter().all(|v| v["type"] != "login"), "{seen:?}");
    send(&mut back, json!({"type":"say","content":"still here"}));
    let (said, _) = until(&mut watch, "say");
    assert_eq!(said["from_uid"], back_uid);
}

#[test]
fn redis_restarted_empty_while_a_session_is_detached() {
    let Some(mut redis) = redis("redis_restarted_empty_while_a_session_is_detached") else { return };
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let (mut watch, _, _) = login(b.ws, "watch", false);
    let (gone, uid, session) = login(a.ws, "gone", true);
    let session = session.expect("session");
    until(&mut watch, "login");
    drop(gone);
    send(&mut watch, json!({"type":"say","to_uid":"all","content":"before the restart"}));
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    // Both nodes come back (healthz 200) with their memory: the session, the seat and what it missed.
    for d in [&a, &b] {
        let joined = common::probe::eventually(Duration::from_secs(15), || common::cluster::health(d.http).0 == 200);
        assert!(joined, "node did not rejoin");
    }
    send(&mut watch, json!({"type":"say","to_uid":"all","content":"after the restart"}));
    std::thread::sleep(Duration::from_millis(500));
    let (_back, before, resumed) = resume(a.ws, &session);
    let contents: Vec<&str> = before[1..].iter().filter_map(|v| v["content"].as_str()).collect();
    assert_eq!(contents, ["before the restart", "after the restart"]);
    assert_eq!((resumed["uid"].as_u64(), resumed["recovered"].as_bool()), (Some(uid), Some(true)));
    let seen = messages_within(&mut watch, Duration::from_millis(500));
    assert!(seen.iter().all(|v| v["type"] != "logout" && v["type"] != "login"), "{seen:?}");
}

/// An audited fanout through the death of a node: `wschat-bench churn` runs across two nodes (resume at its
/// defaults), cutting clients at random, and one node is killed with SIGKILL in the middle of it. Its clients
/// find their connections gone, resume on the other node, and the audit over every (receiver, sender) pair
/// and every client's connections is clean: nothing lost, duplicated or reordered, nobody seen leaving.
#[cfg(feature = "bench")]
#[test]
fn an_audited_fanout_goes_through_a_killed_node() {
    audited_fanout_through_a_killed_node("an_audited_fanout_goes_through_a_killed_node", &[]);
}

/// The same with `--coalesce-us 10000`: the clients (400 frames/s each) stream, so their output and the
/// nodes' messages to Redis wait for 10 ms windows, several turns' says making one cluster message — and a
/// say a member read was still on its way to Redis first.
#[cfg(feature = "bench")]
#[test]
fn an_audited_fanout_goes_through_a_killed_node_with_a_coalescing_window() {
    let b = audited_fanout_through_a_killed_node(
        "an_audited_fanout_goes_through_a_killed_node_with_a_coalescing_window",
        &["--coalesce-us", "10000"],
    );
    if let Some(b) = b {
        assert!(common::probe::metric(b.http, "wschat_coalesce_held_total") > 100);
    }
}

/// The same with peer links (`--cluster-peer`): the nodes' messages go straight to each other, their stream
/// entries to Redis up to 10 ms later — and a say a member read was on its way to the other node first, so
/// every dropped client resumes on the survivor with all it missed.
#[cfg(feature = "bench")]
#[test]
fn an_audited_fanout_goes_through_a_killed_node_with_peer_links() {
    let addr = |_| std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.to_string());
    let (Ok(pa), Ok(pb)) = (addr(0), addr(1)) else { panic!("no free port") };
    let name = "an_audited_fanout_goes_through_a_killed_node_with_peer_links";
    let Some(redis) = redis(name) else { return };
    let (a, b) = (node(&redis, &["--cluster-peer", &pa]), node(&redis, &["--cluster-peer", &pb]));
    let up = |d: &common::Daemon| common::probe::metric(d.http, "wschat_cluster_peer_links") == 1;
    assert!(common::probe::eventually(Duration::from_secs(10), || up(&a) && up(&b)), "peer links up");
    if let Some(b) = churn_through_kill(a, b) {
        assert!(common::probe::metric(b.http, "wschat_cluster_peer_sent_total") > 100);
    }
}

/// Runs the churn through a SIGKILL of one of two nodes started with `args`; the surviving node.
#[cfg(feature = "bench")]
fn audited_fanout_through_a_killed_node(name: &str, args: &[&str]) -> Option<common::Daemon> {
    let redis = redis(name)?;
    let (a, b) = (node(&redis, args), node(&redis, args));
    churn_through_kill(a, b)
}

/// The churn over nodes `a` and `b`, `a` killed with SIGKILL in the middle; the audit clean; `b`.
#[cfg(feature = "bench")]
fn churn_through_kill(mut a: common::Daemon, b: common::Daemon) -> Option<common::Daemon> {
    use std::process::{Command, Stdio};
    let (url_a, url_b) = (format!("ws://{}/", a.ws), format!("ws://{}/", b.ws));
    let bench = Command::new(env!("CARGO_BIN_EXE_wschat-bench"))
        .args(["churn", "--url", &url_a, "--url", &url_b, "-c", "40", "-s", "8", "-r", "400", "-d", "4"])
        .args(["-w", "0.5", "--cuts-per-sec", "5", "--away-ms", "50", "--drain-timeout", "10", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wschat-bench");
    // Set up and warmed up within a second and a half; the window runs until about 4.5 s.
    std::thread::sleep(Duration::from_millis(2500));
    let _ = a.child.kill();
    let _ = a.child.wait();
    let out = bench.wait_with_output().expect("wschat-bench");
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let c = &v["churn"];
    assert!(out.status.success(), "{v}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c["clean"], true, "{v}");
    // About half of the 40 clients were on the killed node.
    assert!(c["dropped"].as_u64().expect("dropped") >= 10, "{v}");
    for key in ["not_recovered", "refused", "unresumed", "logouts_seen", "logins_seen", "replay_duplicates"] {
        assert_eq!(c[key], 0, "{key}: {v}");
    }
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    assert_eq!(v["delivered"], v["expected"], "{v}");
    // The node that is left resumed at least every client the killed one had, each with all it missed.
    let m = common::probe::metrics(b.http);
    let recovered = m.lines().find_map(|l| l.strip_prefix("wschat_resumes_total{recovered=\"true\"} "));
    let recovered: u64 = recovered.and_then(|n| n.trim().parse().ok()).expect("wschat_resumes_total");
    assert!(recovered >= c["dropped"].as_u64().unwrap_or(u64::MAX), "{recovered} {v}");
    assert!(m.contains("wschat_resumes_total{recovered=\"false\"} 0"), "{m}");
    Some(b)
}
