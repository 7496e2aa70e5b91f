//! `--cluster-peer`: nodes send their messages straight to each other over peer links, Redis keeping the
//! leases, streams and history — tried against a real redis-server and the real binary: everything arrives
//! (audited), the bus carries almost nothing, a node without the flag still gets everything over the bus,
//! messages keep flowing while Redis is down, and the peer port refuses whoever lacks the token.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::cluster::{node, redis, send, settle};
use common::probe::{eventually, metric};
use common::{Daemon, Raw};
use serde_json::json;

/// A free loopback address for a node's peer links.
fn peer_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// A node taking peer links on a free port; the node and that address.
fn peered(redis: &common::redis::RedisServer, extra: &[&str]) -> (Daemon, String) {
    let addr = peer_addr();
    let mut args = vec!["--cluster-peer", addr.as_str()];
    args.extend_from_slice(extra);
    (node(redis, &args), addr)
}

fn links_up(nodes: &[&Daemon], n: u64) {
    for d in nodes {
        let ok = eventually(Duration::from_secs(10), || metric(d.http, "wschat_cluster_peer_links") == n);
        assert!(ok, "peer links: {}", metric(d.http, "wschat_cluster_peer_links"));
    }
}

/// Redis's count of PUBLISH calls so far.
fn publishes(redis: &common::redis::RedisServer) -> u64 {
    let info = redis.cli(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn login(ws: SocketAddr, name: &str) -> Raw {
    let mut raw = Raw::open(ws);
    send(&mut raw, json!({"type":"login","name":name,"room_id":"1"}));
    loop {
        let v = raw.read_json();
        if v["type"] == "login" && v["name"] == name {
            return raw;
        }
    }
}

/// User "one" logged in on `a`, then "two" on `b`, each login known to both nodes.
fn one_on_each(a: &Daemon, b: &Daemon) -> (Raw, Raw) {
    let one = login(a.ws, "one");
    settle(&[a, b]);
    let two = login(b.ws, "two");
    settle(&[a, b]);
    (one, two)
}

/// Reads until a say with `content` comes (logins of others may come first).
fn says(raw: &mut Raw, content: &str) {
    loop {
        let v = raw.read_json();
        if v["type"] == "say" {
            assert_eq!(v["content"], content, "{v}");
            return;
        }
    }
}

#[cfg(feature = "bench")]
#[test]
fn an_audited_fanout_over_peer_links_loses_nothing_and_leaves_the_bus_quiet() {
    use std::process::Command;
    let Some(redis) = redis("an_audited_fanout_over_peer_links_loses_nothing_and_leaves_the_bus_quiet") else {
        return;
    };
    let ((a, _), (b, _)) = (peered(&redis, &[]), peered(&redis, &[]));
    links_up(&[&a, &b], 1);
    settle(&[&a, &b]);
    let before = publishes(&redis);
    let out = Command::new(env!("CARGO_BIN_EXE_wschat-bench"))
        .args(["fanout", "--url", &a.ws_url(), "--url", &b.ws_url(), "-c", "40", "-r", "2000", "-d", "2", "-w", "0.5"])
        .arg("--json")
        .output()
        .expect("run wschat-bench");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(out.status.success(), "{v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    assert_eq!(v["delivered"], v["expected"], "{v}");
    // Every node's messages went over its peer link: thousands of them, and (next to) nothing published.
    for d in [&a, &b] {
        let sent = metric(d.http, "wschat_cluster_peer_sent_total");
        assert!(sent > 500, "peer_sent {sent}");
        assert!(metric(d.http, "wschat_cluster_peer_received_total") > 500);
        assert_eq!(metric(d.http, "wschat_cluster_lost_total"), 0);
    }
    let published = publishes(&redis) - before;
    assert!(published < 20, "{published} publishes on the bus during the run");
    // Redis still has every message in the streams (written a little later, together).
    settle(&[&a, &b]);
    assert_eq!(metric(a.http, "wschat_cluster_buffered_bytes"), 0);
}

/// At the default heartbeat (1 s, the lease 4 s) the links come up within the first beats and carry a say.
#[test]
fn links_come_up_at_the_default_heartbeat() {
    let Some(redis) = redis("links_come_up_at_the_default_heartbeat") else { return };
    let default = ["--cluster-heartbeat-ms", "1000"];
    let ((a, _), (b, _)) = (peered(&redis, &default), peered(&redis, &default));
    links_up(&[&a, &b], 1);
    let (mut one, mut two) = one_on_each(&a, &b);
    let sent = metric(b.http, "wschat_cluster_peer_sent_total");
    send(&mut two, json!({"type":"say","to_uid":"all","content":"over the link"}));
    says(&mut one, "over the link");
    assert!(metric(b.http, "wschat_cluster_peer_sent_total") > sent);
}

#[test]
fn a_node_without_peer_links_gets_everything_over_the_bus() {
    let Some(redis) = redis("a_node_without_peer_links_gets_everything_over_the_bus") else { return };
    let ((a, _), b) = (peered(&redis, &[]), node(&redis, &[]));
    settle(&[&a, &b]);
    let (mut one, mut two) = one_on_each(&a, &b);
    send(&mut one, json!({"type":"say","to_uid":"all","content":"from a"}));
    says(&mut two, "from a");
    says(&mut one, "from a");
    send(&mut two, json!({"type":"say","to_uid":"all","content":"from b"}));
    says(&mut one, "from b");
    assert_eq!(metric(a.http, "wschat_cluster_peer_links"), 0, "b takes no peer links");
    assert_eq!(metric(a.http, "wschat_cluster_peer_sent_total"), 0);
    assert!(!common::probe::metrics(b.http).contains("wschat_cluster_peer_"), "b has no peer series");
}

#[test]
fn messages_keep_flowing_over_peer_links_while_redis_is_down() {
    let Some(mut redis) = redis("messages_keep_flowing_over_peer_links_while_redis_is_down") else { return };
    let ((a, _), (b, _)) = (peered(&redis, &[]), peered(&redis, &[]));
    links_up(&[&a, &b], 1);
    let (mut one, mut two) = one_on_each(&a, &b);
    redis.kill();
    send(&mut one, json!({"type":"say","to_uid":"all","content":"Redis is gone"}));
    says(&mut two, "Redis is gone");
    send(&mut two, json!({"type":"say","to_uid":"all","content":"and we still talk"}));
    says(&mut one, "Redis is gone");
    says(&mut one, "and we still talk");
    // Once Redis is back, what waited is written and the cluster is whole again.
    redis.restart();
    assert!(eventually(Duration::from_secs(15), || common::cluster::health(a.http).0 == 200));
    assert!(eventually(Duration::from_secs(15), || metric(a.http, "wschat_cluster_buffered_bytes") == 0));
}

#[test]
fn the_peer_port_refuses_whoever_lacks_the_token() {
    let Some(redis) = redis("the_peer_port_refuses_whoever_lacks_the_token") else { return };
    let ((a, addr), (b, _)) = (peered(&redis, &[]), peered(&redis, &[]));
    links_up(&[&a, &b], 1);
    let closed = |hello: &[u8]| {
        let mut s = TcpStream::connect(&addr).expect("connect to the peer port");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let _ = s.write_all(hello);
        let mut buf = [0u8; 16];
        // Refused: the connection closes without an OK.
        matches!(s.read(&mut buf), Ok(0) | Err(_))
    };
    assert!(closed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(closed(b"WSCHAT-PEER/1 wschat 0000000000000001 0000000000000002 guess\n"));
    assert!(closed(&[b'x'; 300]), "an opening line that never ends");
    // More connections than links: the extra ones are closed, the node carries on.
    let held: Vec<TcpStream> = (0..40).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    assert!(metric(a.http, "wschat_cluster_peer_failures_total") >= 3);
    // The real link is untouched: a say still goes over it.
    let (mut one, mut two) = one_on_each(&a, &b);
    let sent = metric(b.http, "wschat_cluster_peer_sent_total");
    send(&mut two, json!({"type":"say","to_uid":"all","content":"still here"}));
    says(&mut one, "still here");
    assert!(metric(b.http, "wschat_cluster_peer_sent_total") > sent);
    assert_eq!(common::cluster::health(a.http).0, 200);
}

#[test]
fn a_bad_peer_address_is_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["--cluster", "redis://127.0.0.1:1", "--cluster-peer", "0.0.0.0:7300"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cluster-peer") && err.contains("name this machine's IP"), "{err}");
}

/// Runs an audited fanout over `urls` for `secs` seconds in the background; its JSON once done.
#[cfg(feature = "bench")]
fn fanout(urls: &[String], rate: &str, secs: &str, extra: &[&str]) -> std::thread::JoinHandle<serde_json::Value> {
    let mut args = vec!["fanout".to_string(), "-c".into(), "40".into(), "-r".into(), rate.into(), "-d".into()];
    args.extend([secs.to_string(), "-w".into(), "0.5".into(), "--json".into()]);
    for u in urls {
        args.extend(["--url".to_string(), u.clone()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    std::thread::spawn(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wschat-bench")).args(&args).output().expect("bench");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(out.status.success(), "{v}");
        v
    })
}

#[cfg(feature = "bench")]
fn assert_clean(v: &serde_json::Value) {
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    assert_eq!(v["delivered"], v["expected"], "{v}");
}

/// A node without peer links joins in the middle of a fanout (every message goes on the bus from then on)
/// and leaves again (back to the links): each switch loses, repeats and reorders nothing.
#[cfg(feature = "bench")]
#[test]
fn switching_between_links_and_the_bus_under_load_loses_nothing() {
    let Some(redis) = redis("switching_between_links_and_the_bus_under_load_loses_nothing") else { return };
    let ((a, _), (b, _)) = (peered(&redis, &[]), peered(&redis, &[]));
    links_up(&[&a, &b], 1);
    settle(&[&a, &b]);
    let run = fanout(&[a.ws_url(), b.ws_url()], "2000", "5", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let published_before = publishes(&redis);
    let mut c = node(&redis, &[]);
    let sent_with_c = metric(a.http, "wschat_cluster_peer_sent_total");
    std::thread::sleep(Duration::from_millis(700));
    assert!(publishes(&redis) > published_before + 100, "with c there, the bus carries the messages");
    assert!(metric(a.http, "wschat_cluster_peer_sent_total") < sent_with_c + 20, "and the links do not");
    c.terminate(Duration::from_secs(10));
    // Once c is gone from the live nodes (a heartbeat later), the links carry the messages again.
    std::thread::sleep(Duration::from_millis(600));
    let sent_after_c = metric(a.http, "wschat_cluster_peer_sent_total");
    let v = run.join().expect("fanout");
    assert_clean(&v);
    let sent = metric(a.http, "wschat_cluster_peer_sent_total");
    assert!(sent > sent_after_c + 100, "{sent} > {sent_after_c} + 100");
    assert_eq!(metric(a.http, "wschat_cluster_lost_total") + metric(b.http, "wschat_cluster_lost_total"), 0);
}

/// Peer links with a coalescing window: the windows' gathered messages go over the links, and an audited
/// fanout whose clients stream is clean.
#[cfg(feature = "bench")]
#[test]
fn peer_links_carry_the_windows_messages() {
    let Some(redis) = redis("peer_links_carry_the_windows_messages") else { return };
    let window = ["--coalesce-us", "1000"];
    let ((a, _), (b, _)) = (peered(&redis, &window), peered(&redis, &window));
    links_up(&[&a, &b], 1);
    settle(&[&a, &b]);
    let v = fanout(&[a.ws_url(), b.ws_url()], "8000", "2", &[]).join().expect("fanout");
    assert_clean(&v);
    for d in [&a, &b] {
        assert!(metric(d.http, "wschat_coalesce_held_total") > 100, "the clients streamed");
        assert!(metric(d.http, "wschat_cluster_peer_sent_total") > 200);
    }
}
