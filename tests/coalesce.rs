//! `--coalesce-us`: chat output held for a window still reaches everyone, once and in order (an audited
//! fanout), and what must not wait does not wedge behind it: the handshake answer, a pong, a close, the web
//! port's answers — with the longest window accepted (10 ms) and beside the default (no window). Only
//! connections that stream (three frames a window or more) are held; light traffic never is.

mod common;

use std::process::Command;

use common::probe::{login, metric};
use common::{client_frame, text_frame, Daemon, Raw};
use serde_json::{json, Value};

fn audited_fanout(d: &Daemon) -> Value {
    audited_fanout_over(&[d])
}

/// 20 clients spread over `nodes`, 2000 messages/s for 1.5 s: every message reaches every client once, in order.
fn audited_fanout_over(nodes: &[&Daemon]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat-bench"));
    cmd.arg("fanout");
    for d in nodes {
        cmd.args(["--url", &d.ws_url()]);
    }
    let out = cmd
        .args(["-c", "20", "-r", "2000", "-d", "1.5", "-w", "0.3", "--setup-timeout", "15", "--json"])
        .output()
        .expect("run wschat-bench");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(out.status.success(), "{v}");
    assert_eq!(v["delivered"], v["expected"], "{v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    v
}

#[test]
fn held_output_reaches_everyone_once_and_in_order() {
    // 2000 messages/s to 20 clients: 2000 frames/s each, a stream for windows of 1 ms and more.
    for window in ["0", "200", "2000", "10000"] {
        let d = Daemon::start(&["--coalesce-us", window]);
        let v = audited_fanout(&d);
        assert!(v["sent"].as_u64().unwrap_or(0) > 1000, "{window}: {v}");
        let held = metric(d.http, "wschat_coalesce_held_total");
        let sent = v["sent"].as_u64().unwrap_or(0);
        match window {
            "0" => assert_eq!(held, 0),
            // 2000 frames/s is under three a 200 µs window: at most a burst of the client's now and then waits
            // (of 20 connections times `sent` messages).
            "200" => assert!(held < sent / 10, "held {held} times of {sent} messages"),
            _ => assert!(held > 100, "{window}: held {held} times"),
        }
    }
}

#[test]
fn light_traffic_is_never_held() {
    let d = Daemon::start(&["--coalesce-us", "10000"]);
    let (mut a, _) = login(d.ws, "a", "r");
    let (mut b, _) = login(d.ws, "b", "r");
    a.read_json(); // b's login
                   // Twenty frames/s, far under three per 10 ms window.
    for i in 0..6 {
        a.send(&text_frame(&json!({"type":"say","to_uid":"all","content":format!("m{i}")}).to_string()));
        assert_eq!(b.read_json()["content"], format!("m{i}"));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(metric(d.http, "wschat_coalesce_held_total"), 0);
}

#[test]
fn pings_closes_and_answers_do_not_wait_for_the_window() {
    let d = Daemon::start(&["--coalesce-us", "10000"]);
    let (mut a, _) = login(d.ws, "a", "r");
    let (mut b, _) = login(d.ws, "b", "r");
    a.read_json(); // b's login
    a.send(&text_frame(&json!({"type":"say","to_uid":"all","content":"held a while"}).to_string()));
    assert_eq!(b.read_json()["content"], "held a while");
    // A ping is answered; a close is answered with a close.
    a.send(&client_frame(true, 0, 0x9, b"are you there"));
    let pong = loop {
        let f = a.read_frame().expect("a frame");
        if f.opcode == 0xA {
            break f;
        }
    };
    assert_eq!(pong.payload, b"are you there");
    a.send(&client_frame(true, 0, 0x8, &1000u16.to_be_bytes()));
    assert_eq!(a.expect_close(), 1000);
    // The web port answers as ever.
    let mut web = Raw::connect(d.http);
    web.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(web.read_head().starts_with("HTTP/1.1 200"));
    // And a bad value is refused at start.
    let out = Command::new(env!("CARGO_BIN_EXE_wschat")).args(["--coalesce-us", "10001"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--coalesce-us"));
}

#[test]
fn a_cluster_node_holds_its_redis_output_with_its_clients() {
    let Some(redis) = common::cluster::redis("a_cluster_node_holds_its_redis_output_with_its_clients") else { return };
    // 10 ms windows: a client getting 2000 frames/s streams.
    let a = common::cluster::node(&redis, &["--coalesce-us", "10000"]);
    let b = common::cluster::node(&redis, &["--coalesce-us", "10000"]);
    common::cluster::settle(&[&a, &b]);
    let reads_before = redis_reads(&redis);
    let v = audited_fanout_over(&[&a, &b]);
    let reads = redis_reads(&redis) - reads_before;
    let sent = v["sent"].as_u64().unwrap_or(0);
    let mut published = 0;
    for d in [&a, &b] {
        assert!(metric(d.http, "wschat_coalesce_held_total") > 100);
        assert_eq!(metric(d.http, "wschat_cluster_lost_total"), 0);
        published += metric(d.http, "wschat_cluster_published_total");
    }
    // A node's says of a window make one cluster message (at most 100 a second a node, some 400 over the
    // run), written to Redis in one go: not one message and one write per loop turn (about one per say).
    assert!(published > 0 && published < sent / 4, "{published} cluster messages for {sent} says");
    assert!(reads < sent / 4, "Redis read {reads} times for {sent} says");
}

/// Redis's count of reads from its clients (INFO stats `total_reads_processed`).
fn redis_reads(redis: &common::redis::RedisServer) -> u64 {
    let info = redis.cli(&["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("total_reads_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_reads_processed in INFO stats")
}
