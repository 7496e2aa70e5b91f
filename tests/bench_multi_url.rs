//! `wschat-bench` with several `--url`: the clients are spread round robin over the URLs, the report names
//! every URL with its clients, and the audit follows every (receiver, sender) pair whatever URL each is on.
//! The same daemon given twice is a cluster of one: nothing may be lost. Two daemons that are not a cluster
//! relay nothing to each other: the bench must see exactly that.
#![cfg(feature = "bench")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Daemon;
use wschat::bench::{self, target, BenchConfig, BenchError, Proto, Scenario};

fn bench_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wschat-bench")).args(args).output().expect("run wschat-bench")
}

#[test]
fn the_same_daemon_twice_loses_nothing() {
    let daemon = Daemon::start(&[]);
    let url = daemon.ws_url();
    let pid = daemon.child.id().to_string();
    let out = bench_cli(&[
        "fanout",
        "--url",
        &url,
        "--url",
        &url,
        "-c",
        "21",
        "-s",
        "6",
        "-r",
        "1000",
        "-d",
        "0.5",
        "-w",
        "0.2",
        "--setup-timeout",
        "10",
        "--drain-timeout",
        "5",
        "--pid",
        &pid,
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shares: Vec<(String, u64)> = v["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["url"].as_str().unwrap().to_string(), u["clients"].as_u64().unwrap()))
        .collect();
    assert_eq!(shares, [(url.clone(), 11), (url.clone(), 10)], "{v}");
    assert_eq!(v["url"], url.as_str());
    assert_eq!((v["connected"].as_u64(), v["failed"].as_u64()), (Some(21), Some(0)), "{v}");
    let sent = v["sent"].as_u64().unwrap();
    assert!(sent >= 300, "{v}");
    assert_eq!(v["expected"].as_u64(), Some(sent * 21), "{v}");
    assert_eq!(v["delivered"], v["expected"], "{v}");
    for key in ["lost", "duplicated", "out_of_order", "unsettled", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }

    // The table says which URLs, with how many clients each, on one line; connect spreads its rooms too.
    let out = bench_cli(&["connect", "--url", &url, "--url", &url, "-c", "30", "-d", "0.1", "--pid", &pid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("against 2 URLs\n"), "{table}");
    assert!(table.contains(&format!("\n  urls           {url} (15 clients), {url} (15 clients)\n")), "{table}");
    assert!(table.contains("30 asked, 30 connected, 0 failed"), "{table}");
}

#[test]
fn every_url_is_checked_on_the_command_line() {
    let out = bench_cli(&["fanout", "--url", "ws://127.0.0.1:7272/", "--url", "ws://192.0.2.1:7272/"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ws://192.0.2.1:7272/") && err.contains("--allow-remote"), "{err}");
    let help = bench_cli(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("round robin"));
}

/// Two daemons that are not a cluster: a client sees only the members and the messages of its own daemon. The
/// setup's wait for every member ends at its deadline with every client unsettled, and the audit counts the
/// other daemon's half of every room as lost, with no duplicate and nothing foreign.
#[test]
fn two_separate_daemons_lose_each_others_half() {
    let (a, b) = (Daemon::start(&[]), Daemon::start(&[]));
    let urls = [a.ws_url(), b.ws_url()];
    let targets = target::resolve_all(&urls, false).unwrap();
    let mut cfg = BenchConfig::with_targets(Scenario::Fanout, targets);
    cfg.proto = Proto::Chat;
    cfg.clients = 8;
    cfg.senders = Some(4);
    cfg.rate = Some(400.0);
    cfg.duration = Duration::from_millis(300);
    cfg.warmup = Duration::from_millis(100);
    cfg.setup_timeout = Duration::from_secs(2);
    cfg.drain_timeout = Duration::from_millis(500);
    let r = bench::run(&cfg).unwrap();
    assert_eq!((r.connected, r.failed, r.unsettled), (8, 0, 8), "{r:?}");
    assert_eq!(r.urls.iter().map(|u| u.clients).collect::<Vec<_>>(), [4, 4]);
    assert!(r.sent >= 80, "{r:?}");
    assert_eq!(r.expected, r.sent * 8);
    assert_eq!((r.delivered, r.lost), (r.expected / 2, r.expected / 2), "{r:?}");
    assert_eq!((r.duplicated, r.out_of_order, r.server_errors), (0, 0, 0), "{r:?}");
    assert!(r.first_error.is_none(), "{r:?}");

    // The raw protocol relays nothing between servers: a run that sends over two of them is refused.
    let mut raw = cfg.clone();
    raw.proto = Proto::Raw;
    match bench::run(&raw) {
        Err(BenchError::Config(why)) => assert!(why.contains("one --url"), "{why}"),
        other => panic!("{other:?}"),
    }
}
