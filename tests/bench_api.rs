//! `wschat-bench api` against the real daemon's server API: the room's clients must get every message the
//! API pushed (say and send), once and in order, every request answered 200, and the exit status 0; a wrong
//! key stops the bench before it measures, with a message that says so; a refused request fails the run.
//! Nothing here asserts a time or a rate.
#![cfg(feature = "bench")]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Daemon;

const KEY: &str = "bench-api-key-0123456789";

/// A key file holding `key` (and a newline, which both sides trim), in a folder of its own.
fn key_file(key: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wschat-bench-api-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("api.key");
    std::fs::write(&path, format!("{key}\n")).expect("write the key");
    path
}

/// A daemon serving the API with [`KEY`], and `extra` flags.
fn daemon(extra: &[&str]) -> Daemon {
    let key = key_file(KEY);
    let key = key.to_str().expect("utf-8 path");
    let mut args = vec!["--api", "127.0.0.1:0", "--api-key-file", key];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

/// Runs `wschat-bench api` against `d` with the key in `key`, and `args`.
fn bench(d: &Daemon, key: &str, args: &[&str]) -> Output {
    let api = d.api.expect("the daemon serves the API").to_string();
    let key = key_file(key);
    Command::new(env!("CARGO_BIN_EXE_wschat-bench"))
        .args(["api", "--url", &d.ws_url(), "--api", &api])
        .arg("--api-key-file")
        .arg(&key)
        .args(["--pid", &d.child.id().to_string(), "--drain-timeout", "5"])
        .args(args)
        .output()
        .expect("run wschat-bench")
}

/// The JSON report of a run that must have exited 0.
fn clean_report(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}\n{}", out.status, String::from_utf8_lossy(&out.stdout));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Every request answered 200, every client got every message once and in order.
fn assert_clean(v: &serde_json::Value, clients: u64, verb: &str) {
    let api = &v["api"];
    assert_eq!((api["verb"].as_str(), api["clean"].as_bool()), (Some(verb), Some(true)), "{v}");
    let requests = api["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{v}");
    assert_eq!(api["api_errors"], 0, "{v}");
    assert_eq!(api["unanswered"], 0, "{v}");
    assert_eq!(api["statuses"]["200"].as_u64(), Some(requests), "every request answered 200: {v}");
    assert_eq!(api["recipients"].as_u64(), Some(requests * clients), "the answers name every client: {v}");
    assert_eq!((v["connected"].as_u64(), v["failed"].as_u64()), (Some(clients), Some(0)), "{v}");
    assert_eq!(v["sent"].as_u64(), Some(requests), "{v}");
    assert_eq!(v["expected"].as_u64(), Some(requests * clients), "{v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    assert_eq!(v["delivered"], v["expected"], "{v}");
    assert!(v["latency_samples"].as_u64().unwrap() > 0, "the window's deliveries are timed: {v}");
    assert!(api["answer_latency"]["samples"].as_u64().unwrap() > 0, "{v}");
    assert!(api["server_cpu_s"].is_number(), "--pid gives the server's CPU time: {v}");
}

#[test]
fn says_through_the_api_reach_every_client_once_and_in_order() {
    let d = daemon(&[]);
    let out = bench(&d, KEY, &["-c", "20", "-r", "500", "-d", "1", "-w", "0.2", "--api-clients", "3", "--json"]);
    let v = clean_report(&out);
    assert_clean(&v, 20, "say");
    assert_eq!((v["api"]["room"].as_str(), v["api"]["api_clients"].as_u64()), (Some("1"), Some(3)), "{v}");
}

#[test]
fn sends_through_the_api_reach_every_client_once_and_in_order() {
    let d = daemon(&[]);
    let args = ["-c", "15", "-r", "400", "-d", "1", "-w", "0.2", "--verb", "send", "--room", "lobby", "--json"];
    let v = clean_report(&bench(&d, KEY, &args));
    assert_clean(&v, 15, "send");
    assert_eq!(v["api"]["room"], "lobby", "{v}");
}

#[test]
fn the_defaults_run_clean() {
    // 100 clients, 4 connections, 10 000 requests/s (the defaults), briefly: correctness only, no timing.
    let d = daemon(&[]);
    let v = clean_report(&bench(&d, KEY, &["-d", "0.5", "-w", "0", "--json"]));
    assert_clean(&v, 100, "say");
    assert_eq!((v["api"]["api_clients"].as_u64(), v["api"]["rate"].as_f64()), (Some(4), Some(10_000.0)), "{v}");
}

#[test]
fn the_table_says_clean() {
    let d = daemon(&[]);
    let out = bench(&d, KEY, &["-c", "5", "-r", "200", "-d", "0.3", "-w", "0", "--verb", "send"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.starts_with("wschat-bench api (chat protocol) against ws://"), "{table}");
    assert!(table.contains("\n  api            send to room \"1\" at 127.0.0.1:"), "{table}");
    assert!(table.contains("\n  verdict        clean\n"), "{table}");
}

#[test]
fn a_wrong_key_stops_the_bench_with_a_clear_message() {
    let d = daemon(&[]);
    let out = bench(&d, "not-the-key-of-the-daemon", &["-c", "5", "-r", "100", "-d", "0.3", "-w", "0", "--json"]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the key of --api-key-file (401 Unauthorized"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing was measured: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn refused_requests_fail_the_run_and_are_counted() {
    // Contents over the daemon's --max-message-bytes: every say is a 400.
    let d = daemon(&["--max-message-bytes", "1024"]);
    let out = bench(&d, KEY, &["-c", "5", "-r", "100", "-d", "0.3", "-w", "0", "--payload", "2000", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api not clean") && stderr.contains("answered 400"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a report all the same");
    let api = &v["api"];
    let requests = api["requests"].as_u64().unwrap();
    assert!(requests > 0, "{v}");
    assert_eq!((api["api_errors"].as_u64(), api["statuses"]["400"].as_u64()), (Some(requests), Some(requests)), "{v}");
    assert_eq!(
        (api["clean"].as_bool(), v["expected"].as_u64(), v["lost"].as_u64()),
        (Some(false), Some(0), Some(0)),
        "{v}"
    );
}

#[test]
fn an_api_that_is_not_there_is_a_connect_error() {
    let d = daemon(&[]);
    let key = key_file(KEY);
    let out = Command::new(env!("CARGO_BIN_EXE_wschat-bench"))
        .args(["api", "--url", &d.ws_url(), "--api", "127.0.0.1:1"])
        .arg("--api-key-file")
        .arg(&key)
        .args(["-c", "2", "-d", "0.1", "-w", "0"])
        .output()
        .expect("run wschat-bench");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to the API at 127.0.0.1:1"), "{stderr}");
}
