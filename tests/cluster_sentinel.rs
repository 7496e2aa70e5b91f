//! A cluster whose Redis master Sentinel watches (`--cluster redis+sentinel://…`), each test with its own
//! master, replica and three sentinels on free loopback ports (persistence off, `down-after-milliseconds`
//! 1000), stopped by their PIDs: an audited fanout across two nodes through a planned failover and through
//! SIGKILL of the master — nothing lost, duplicated or reordered, `/healthz` 503 then 200, the time from the
//! master's death to the first cross-node delivery bounded; a sentinel killed (the next is used); every
//! sentinel killed with the master up (the node keeps working, says so); a master no sentinel knows (an
//! error at start).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{health, node_at, send};
use common::probe::{eventually, metric};
use common::sentinel::SentinelSet;
use common::{skip_or_fail, Daemon, Raw};
use serde_json::{json, Value};

fn sentinels(test: &str) -> Option<SentinelSet> {
    let set = SentinelSet::start(test);
    if set.is_none() {
        skip_or_fail(test, "redis-server (Debian package redis-server)");
    }
    set
}

/// A node of the cluster the sentinels watch, at the default heartbeat.
fn node(set: &SentinelSet) -> Daemon {
    node_at(&set.url(), &["--cluster-heartbeat-ms", "1000"])
}

/// An audited fanout over `nodes`, running `secs` seconds in the background.
fn start_load(nodes: &[&Daemon], secs: f64) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat-bench"));
    cmd.arg("fanout");
    for d in nodes {
        cmd.args(["--url", &d.ws_url()]);
    }
    cmd.args(["-c", "20", "-r", "1000", "-d", &secs.to_string(), "-w", "0.5"])
        .args(["--setup-timeout", "15", "--drain-timeout", "30", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn().expect("run wschat-bench")
}

/// Waits for the load and checks its audit: every message reached every receiver once, in order.
fn audit(load: Child) -> Value {
    let out = load.wait_with_output().expect("wschat-bench");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(out.status.success(), "wschat-bench failed: {v}");
    assert!(v["sent"].as_u64().unwrap_or(0) > 1000, "the load ran: {v}");
    assert_eq!(v["delivered"], v["expected"], "nothing lost: {v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    v
}

fn sleep(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Two nodes under an audited load; `fail` makes the master go away; the nodes follow the sentinels to the
/// other server, lose nothing, and (when `drained`) report 503 on the way: a planned failover is a switch of
/// a few milliseconds that a poll of /healthz cannot be expected to see.
fn through_a_failover(test: &str, drained: bool, fail: impl FnOnce(&mut SentinelSet)) {
    let Some(mut set) = sentinels(test) else { return };
    let before = set.master_index();
    let (a, b) = (node(&set), node(&set));
    let load = start_load(&[&a, &b], 8.0);
    sleep(1500);
    fail(&mut set);
    let saw_503 = eventually(Duration::from_secs(10), || health(a.http).0 == 503 || health(b.http).0 == 503);
    audit(load);
    assert!(saw_503 || !drained, "healthz said the nodes were not whole during the failover");
    assert!(eventually(Duration::from_secs(15), || health(a.http).0 == 200 && health(b.http).0 == 200));
    assert_ne!(set.master_index(), before, "the master moved");
    for d in [&a, &b] {
        assert_eq!(metric(d.http, "wschat_cluster_master_changes_total"), 1, "each node followed the move once");
        assert_eq!(metric(d.http, "wschat_cluster_nodes"), 2, "nobody was taken for dead");
    }
}

#[test]
fn a_planned_failover_loses_nothing() {
    through_a_failover("a_planned_failover_loses_nothing", false, |set| set.failover());
}

#[test]
fn the_master_killed_loses_nothing() {
    through_a_failover("the_master_killed_loses_nothing", true, |set| {
        let m = set.master_index();
        set.servers[m].kill();
    });
}

/// Logs in as `name` in room "f" and returns the connection once its own login came back.
fn login(ws: std::net::SocketAddr, name: &str) -> Raw {
    common::probe::login(ws, name, "f").0
}

#[test]
fn the_first_cross_node_delivery_after_the_masters_death_comes_within_5_s() {
    let Some(mut set) = sentinels("the_first_cross_node_delivery_after_the_masters_death") else { return };
    let (a, b) = (node(&set), node(&set));
    let mut speaker = login(a.ws, "speaker");
    let mut listener = login(b.ws, "listener");
    speaker.read_json(); // the listener's login
    let m = set.master_index();
    let died = Instant::now();
    set.servers[m].kill();
    // The speaker says something every 50 ms until the listener on the other node hears one.
    let mut said = 0;
    listener.set_read_timeout(Duration::from_millis(50)).expect("timeout");
    let heard = loop {
        said += 1;
        send(&mut speaker, json!({"type":"say","to_uid":"all","content":format!("m{said}")}));
        if let Some(f) = listener.try_read_frame() {
            let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
            if v["type"] == "say" {
                break died.elapsed();
            }
        }
        assert!(died.elapsed() < Duration::from_secs(15), "no cross-node delivery 15 s after the master died");
    };
    eprintln!("first cross-node delivery {:.2} s after the master's death", heard.as_secs_f64());
    assert!(heard <= Duration::from_secs(5), "{heard:?}");
}

#[test]
fn a_sentinel_killed_the_node_uses_the_next() {
    let Some(mut set) = sentinels("a_sentinel_killed_the_node_uses_the_next") else { return };
    set.sentinels[0].kill();
    let a = node(&set);
    assert!(eventually(Duration::from_secs(10), || metric(a.http, "wschat_cluster_sentinel_up") == 1));
    let b = node(&set);
    set.failover();
    assert!(eventually(Duration::from_secs(15), || metric(a.http, "wschat_cluster_master_changes_total") == 1));
    assert!(eventually(Duration::from_secs(15), || health(a.http).0 == 200 && health(b.http).0 == 200));
}

#[test]
fn every_sentinel_down_the_node_keeps_its_master_and_says_so() {
    let Some(mut set) = sentinels("every_sentinel_down_the_node_keeps_its_master") else { return };
    let (a, b) = (node(&set), node(&set));
    for s in &mut set.sentinels {
        s.kill();
    }
    assert!(eventually(Duration::from_secs(10), || metric(a.http, "wschat_cluster_sentinel_up") == 0));
    assert!(eventually(Duration::from_secs(10), || metric(a.http, "wschat_cluster_sentinel_failures_total") > 0));
    assert_eq!(health(a.http).0, 200, "still whole: {:?}", health(a.http));
    let mut x = login(a.ws, "x");
    let mut y = login(b.ws, "y");
    send(&mut x, json!({"type":"say","to_uid":"all","content":"still here"}));
    // x's login may reach node b after y's: what comes before the say is logins.
    let said = loop {
        let v = y.read_json();
        if v["type"] != "login" {
            break v;
        }
    };
    assert_eq!(said["content"], "still here", "{said}");
}

#[test]
fn a_master_no_sentinel_knows_is_an_error_at_start() {
    let Some(set) = sentinels("a_master_no_sentinel_knows_is_an_error_at_start") else { return };
    let url = set.url().replace("/mymaster", "/nosuchmaster");
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0", "--cluster", &url])
        .output()
        .expect("run wschat");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("knows no master named \"nosuchmaster\""), "{err}");
}
