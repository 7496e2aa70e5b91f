//! The bench client against the real daemon, chat protocol: short fanout, saturate and connect runs must
//! log everyone in and audit clean.

mod common;

use std::time::Duration;

use common::Daemon;
use wschat::bench::{self, target, BenchConfig, Proto, Scenario};

fn config(daemon: &Daemon, scenario: Scenario) -> BenchConfig {
    let url = daemon.ws_url();
    let mut cfg = BenchConfig::new(scenario, &url, target::resolve(&url, false).unwrap());
    cfg.proto = Proto::Chat;
    cfg.clients = 20;
    cfg.duration = Duration::from_millis(300);
    cfg.warmup = Duration::from_millis(100);
    cfg.setup_timeout = Duration::from_secs(10);
    cfg.drain_timeout = Duration::from_secs(5);
    cfg.pid = Some(daemon.child.id());
    cfg
}

#[test]
fn chat_fanout_audits_clean() {
    let daemon = Daemon::start(&[]);
    let mut cfg = config(&daemon, Scenario::Fanout);
    cfg.senders = Some(5);
    cfg.rate = Some(1000.0);
    let r = bench::run(&cfg).unwrap();
    assert_eq!((r.connected, r.failed), (20, 0), "{r:?}");
    assert!(r.sent >= 250, "{r:?}");
    assert_eq!(r.expected, r.sent * 20);
    assert_eq!((r.delivered, r.lost, r.duplicated, r.out_of_order), (r.expected, 0, 0, 0), "{r:?}");
    assert_eq!(r.server_errors, 0, "{r:?}");
    assert!(r.p50_us > 0.0 && r.server_cpu.is_some(), "{r:?}");
}

#[test]
fn chat_saturate_takes_steps() {
    let daemon = Daemon::start(&[]);
    let mut cfg = config(&daemon, Scenario::Saturate);
    cfg.rate = Some(500.0);
    cfg.max_steps = 2;
    cfg.duration = Duration::from_millis(200);
    cfg.p99_bound = Duration::from_secs(1);
    let r = bench::run(&cfg).unwrap();
    assert_eq!(r.steps.len(), 2, "{r:?}");
    assert!(r.steps[0].ok, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
}

#[test]
fn chat_connect_logs_in_rooms_and_reads_rss() {
    let daemon = Daemon::start(&[]);
    let mut cfg = config(&daemon, Scenario::Connect);
    cfg.clients = 200;
    cfg.concurrency = 50;
    cfg.duration = Duration::from_millis(100);
    let r = bench::run(&cfg).unwrap();
    assert_eq!((r.connected, r.failed), (200, 0), "{r:?}");
    assert!(r.handshakes_per_s.unwrap() > 0.0);
    assert!(r.rss_per_conn_bytes.is_some(), "{r:?}");
    assert_eq!(r.server_errors, 0, "{r:?}");
}
