//! A cluster through its failures, each with an audited load (`wschat-bench fanout` spread over the
//! surviving nodes) running through it: a node killed with SIGKILL or stopped with SIGTERM (its users'
//! logouts, once per user in the whole cluster), the subscription link cut, redis-server killed and
//! restarted empty, frozen with SIGSTOP for 3 s — nothing lost, duplicated or reordered — the buffer for
//! Redis running full (`cluster_unavailable`), and garbage in the channel and keys.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{health, node, redis, send};
use common::probe::{eventually, metric};
use common::{Daemon, Raw};
use serde_json::{json, Value};

fn login(ws: std::net::SocketAddr, name: &str, room: &str) -> (Raw, u64) {
    common::probe::login(ws, name, room)
}

/// An audited fanout over `nodes`, running `secs` seconds in the background.
fn start_load(nodes: &[&Daemon], secs: f64) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat-bench"));
    cmd.arg("fanout");
    for d in nodes {
        cmd.args(["--url", &d.ws_url()]);
    }
    cmd.args(["-c", "20", "-r", "2000", "-d", &secs.to_string(), "-w", "0.5"])
        .args(["--setup-timeout", "15", "--drain-timeout", "20", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn().expect("run wschat-bench")
}

/// Waits for the load and checks its audit: every message reached every receiver once, in order.
fn audit(load: Child) -> Value {
    let out = load.wait_with_output().expect("wschat-bench");
    assert!(out.status.success(), "wschat-bench failed: {}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let sent = v["sent"].as_u64().unwrap_or(0);
    assert!(sent > 1000, "the load ran: {v}");
    assert_eq!(v["connected"], 20, "{v}");
    assert_eq!(v["delivered"], v["expected"], "nothing lost: {v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    v
}

/// Reads frames for `quiet` after the last one; returns them all.
fn drain(raw: &mut Raw, first_within: Duration, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let _ = raw_set_timeout(raw, first_within);
    while let Some(f) = raw.try_read_frame() {
        got.push(serde_json::from_slice(&f.payload).expect("JSON"));
        let _ = raw_set_timeout(raw, quiet);
    }
    got
}

fn raw_set_timeout(raw: &mut Raw, t: Duration) -> std::io::Result<()> {
    raw.set_read_timeout(t)
}

fn sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Three nodes; the third holds two users of room "k" and dies by `signal`. The users on the two others
/// see exactly one logout per user of the dead node — `within` after the signal — while the audited load on
/// the two survivors loses nothing.
fn a_node_dies(test: &str, signal: i32, within: Duration) {
    let Some(redis) = redis(test) else { return };
    let (a, b, mut c) = (node(&redis, &[]), node(&redis, &[]), node(&redis, &[]));
    let (mut wa, _) = login(a.ws, "watcher-a", "k");
    let (mut wb, _) = login(b.ws, "watcher-b", "k");
    let (_c1, u1) = login(c.ws, "c1", "k");
    let (_c2, u2) = login(c.ws, "c2", "k");
    for w in [&mut wa, &mut wb] {
        let joined = drain(w, Duration::from_secs(5), Duration::from_millis(300));
        let uids: Vec<u64> = joined.iter().filter(|v| v["type"] == "login").filter_map(|v| v["uid"].as_u64()).collect();
        assert!(uids.contains(&u1) && uids.contains(&u2), "both of c's users seen: {joined:?}");
    }
    let load = start_load(&[&a, &b], 4.0);
    sleep(1500);
    let t0 = Instant::now();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(c.child.id() as i32, signal);
    }
    for (name, w) in [("a", &mut wa), ("b", &mut wb)] {
        let got = drain(w, within, Duration::from_millis(1500));
        let logouts: Vec<u64> =
            got.iter().filter(|v| v["type"] == "logout").filter_map(|v| v["uid"].as_u64()).collect();
        let mut sorted = logouts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [u1, u2], "watcher on {name}: one logout per user of the dead node: {got:?}");
        assert!(t0.elapsed() < within + Duration::from_secs(3), "logouts took {:?}", t0.elapsed());
    }
    let status = c.child.wait().expect("wait");
    if signal == libc::SIGTERM {
        assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    }
    audit(load);
    // The survivors agree that room k holds the two watchers only.
    let (_probe, _) = login(a.ws, "probe", "k");
    let names = |w: &mut Raw| drain(w, Duration::from_secs(2), Duration::from_millis(200));
    assert!(names(&mut wb).iter().any(|v| v["type"] == "login" && v["name"] == "probe"));
    assert_eq!(metric(a.http, "wschat_cluster_nodes"), 2);
}

#[test]
fn sigkill_of_a_node_logs_its_users_out_once() {
    // Heartbeat 200 ms: a lease of 800 ms, reaped at the next heartbeat after it ran out.
    a_node_dies("sigkill_of_a_node_logs_its_users_out_once", libc::SIGKILL, Duration::from_secs(5));
}

#[test]
fn sigterm_of_a_node_logs_its_users_out_before_it_exits() {
    a_node_dies("sigterm_of_a_node_logs_its_users_out_before_it_exits", libc::SIGTERM, Duration::from_millis(700));
}

#[test]
fn a_cut_subscription_loses_nothing() {
    let Some(redis) = redis("a_cut_subscription_loses_nothing") else { return };
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let load = start_load(&[&a, &b], 4.0);
    sleep(1500);
    for _ in 0..3 {
        let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert_eq!(killed.trim(), "2", "both nodes' subscriptions cut: {killed:?}");
        sleep(500);
    }
    audit(load);
    assert!(metric(a.http, "wschat_cluster_reconnects_total") >= 3);
    assert_eq!(metric(a.http, "wschat_cluster_up"), 1);
}

#[test]
fn redis_restarted_empty_loses_nothing_and_presence_comes_back() {
    let Some(mut redis) = redis("redis_restarted_empty_loses_nothing_and_presence_comes_back") else { return };
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let (_x, ux) = login(a.ws, "x", "p");
    let load = start_load(&[&a, &b], 5.0);
    sleep(1500);
    redis.kill();
    assert!(eventually(Duration::from_secs(3), || health(a.http).0 == 503), "healthz drains the node");
    let (_, reason) = health(a.http);
    assert!(reason.contains("link to Redis is down"), "{reason:?}");
    sleep(700);
    redis.restart();
    audit(load);
    assert!(eventually(Duration::from_secs(10), || health(a.http).0 == 200 && health(b.http).0 == 200));
    // Presence was registered again in the empty Redis: a newcomer on b sees x.
    let mut y = Raw::open(b.ws);
    send(&mut y, json!({"type":"login","name":"y","room_id":"p"}));
    let list = y.read_json();
    let uids: Vec<u64> = list["user_list"].as_array().unwrap().iter().filter_map(|u| u["uid"].as_u64()).collect();
    assert!(uids.contains(&ux), "x is still in the room after the restart: {list}");
    let uy = uids.last().copied().unwrap_or(0);
    assert!(uy > ux, "uids never come back after the counter was lost: {uy} after {ux}");
}

#[test]
fn redis_frozen_for_3_s_loses_nothing() {
    let Some(redis) = redis("redis_frozen_for_3_s_loses_nothing") else { return };
    // The default heartbeat: a lease of 4 s outlives the freeze.
    let (a, b) = (node(&redis, &["--cluster-heartbeat-ms", "1000"]), node(&redis, &["--cluster-heartbeat-ms", "1000"]));
    let load = start_load(&[&a, &b], 6.0);
    sleep(1500);
    redis.signal(libc::SIGSTOP);
    sleep(2600);
    let (status, reason) = health(a.http);
    redis.signal(libc::SIGCONT);
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("has not answered"), "{reason:?}");
    audit(load);
    assert_eq!(metric(a.http, "wschat_cluster_nodes"), 2, "nobody was taken for dead");
}

#[test]
fn past_the_buffer_says_are_refused_and_nothing_is_half_delivered() {
    let Some(mut redis) = redis("past_the_buffer_says_are_refused_and_nothing_is_half_delivered") else { return };
    let a = node(&redis, &["--cluster-buffer", "65536"]);
    let (mut x, _) = login(a.ws, "x", "buf");
    let (mut y, _) = login(a.ws, "y", "buf");
    assert_eq!(x.read_json()["name"], "y");
    redis.kill();
    assert!(eventually(Duration::from_secs(3), || health(a.http).0 == 503));
    let content = "z".repeat(1000);
    for i in 0..100 {
        send(&mut x, json!({"type":"say","to_uid":"all","content":format!("{i}:{content}")}));
    }
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for _ in 0..100 {
        let v = x.read_json();
        match v["type"].as_str() {
            Some("say") => accepted.push(v["content"].as_str().unwrap_or_default().to_string()),
            Some("error") => {
                assert_eq!(v["code"], "cluster_unavailable", "{v}");
                refused += 1;
            }
            _ => panic!("{v}"),
        }
    }
    assert!(refused > 0 && accepted.len() >= 50, "{} accepted, {refused} refused", accepted.len());
    // Whoever else is here got exactly the accepted ones: a refused say reached nobody.
    for want in &accepted {
        assert_eq!(y.read_json()["content"].as_str(), Some(want.as_str()));
    }
    assert_eq!(metric(a.http, "wschat_cluster_refused_total"), refused);
    assert!(metric(a.http, "wschat_cluster_buffered_bytes") >= 50_000);
    redis.restart();
    assert!(eventually(Duration::from_secs(10), || metric(a.http, "wschat_cluster_buffered_bytes") == 0));
    send(&mut x, json!({"type":"say","to_uid":"all","content":"back"}));
    assert_eq!(x.read_json()["content"], "back");
}

#[test]
fn garbage_in_the_channel_and_keys_is_skipped() {
    let Some(redis) = redis("garbage_in_the_channel_and_keys_is_skipped") else { return };
    let (a, b) = (node(&redis, &["--history", "5"]), node(&redis, &["--history", "5"]));
    let (mut x, _) = login(a.ws, "x", "g");
    let (mut y, _) = login(b.ws, "y", "g");
    let _ = drain(&mut x, Duration::from_secs(2), Duration::from_millis(200));
    for junk in ["garbage", "wc", "wc\u{1}xxxxxxxx", "{\"type\":\"say\"}"] {
        redis.cli(&["PUBLISH", "wschat:bus", junk]);
    }
    redis.cli(&["RPUSH", "wschat:history:1:g", "not a say"]);
    redis.cli(&["SET", "wschat:uid", "not a number"]);
    send(&mut y, json!({"type":"say","to_uid":"all","content":"still here"}));
    assert_eq!(x.read_json()["content"], "still here");
    assert!(eventually(Duration::from_secs(3), || metric(a.http, "wschat_cluster_garbage_total") >= 4));
    // A node that joins now loads the history around the foreign entry.
    let c = node(&redis, &["--history", "5"]);
    let (_z, _) = login(c.ws, "z", "g");
    assert_eq!(health(a.http).0, 200);
    assert!(metric(c.http, "wschat_cluster_garbage_total") >= 1);
}
