//! `wschat-bench churn` against the real daemon at its resume defaults: clients logged in with resume are cut
//! without a close frame (resets and FINs) while a fanout runs, and resume on a new connection. The audit
//! over all of a client's connections must be clean, nobody may see a logout or a login, and every client
//! must come back. Given the same daemon twice, clients resume through the other URL.
#![cfg(feature = "bench")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Daemon;
use wschat::bench::{self, target, BenchConfig, BenchError, Proto, Scenario};

fn config(daemon: &Daemon) -> BenchConfig {
    let url = daemon.ws_url();
    let mut cfg = BenchConfig::new(Scenario::Churn, &url, target::resolve(&url, false).unwrap());
    cfg.proto = Proto::Chat;
    cfg.clients = 20;
    cfg.senders = Some(5);
    cfg.rate = Some(500.0);
    cfg.duration = Duration::from_secs(2);
    cfg.warmup = Duration::from_millis(200);
    cfg.setup_timeout = Duration::from_secs(10);
    cfg.drain_timeout = Duration::from_secs(5);
    cfg.pid = Some(daemon.child.id());
    cfg.cuts_per_sec = 10.0;
    cfg.reset_share = 0.5;
    cfg
}

#[test]
fn clients_cut_with_resets_and_fins_resume_and_nothing_is_lost() {
    let daemon = Daemon::start(&[]);
    let r = bench::run(&config(&daemon)).unwrap();
    let c = r.churn.clone().expect("a churn run reports its churn");
    assert!(c.clean, "{:?}\n{}", c.problems, r.to_table());
    assert_eq!((r.connected, r.failed), (20, 0), "{r:?}");
    assert!(c.cuts >= 15, "{c:?}");
    assert!(c.cuts_reset > 0 && c.cuts_fin > 0, "both kinds of cut: {c:?}");
    assert_eq!(c.resumes, c.cuts, "{c:?}");
    assert_eq!((c.refused, c.unresumed, c.not_recovered), (0, 0, 0), "{c:?}");
    assert_eq!((c.logouts_seen, c.logins_seen), (0, 0), "{c:?}");
    assert_eq!(c.replay_duplicates, 0, "{c:?}");
    assert_eq!(c.replayed, c.missed, "every say a resume counts is replayed: {c:?}");
    assert_eq!(c.resume_latency.samples, c.resumes, "{c:?}");
    assert!(c.resume_latency.p50_us > 0.0, "{c:?}");
    assert!(r.sent >= 800, "{r:?}");
    assert_eq!(r.expected, r.sent * 20, "{r:?}");
    assert_eq!((r.delivered, r.lost, r.duplicated, r.out_of_order), (r.expected, 0, 0, 0), "{r:?}");
    assert_eq!(r.server_errors, 0, "{r:?}");
}

#[test]
fn the_cli_resumes_through_the_other_url_after_a_pause_and_exits_zero_when_clean() {
    let daemon = Daemon::start(&[]);
    let url = daemon.ws_url();
    let out = Command::new(env!("CARGO_BIN_EXE_wschat-bench"))
        .args(["churn", "--url", &url, "--url", &url, "-c", "21", "-s", "4", "-r", "400", "-d", "1", "-w", "0.2"])
        .args(["--cuts-per-sec", "12", "--reset-share", "0.5", "--away-ms", "50", "--drain-timeout", "5", "--json"])
        .output()
        .expect("run wschat-bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["churn"];
    assert_eq!(c["clean"], true, "{v}");
    assert!(c["cuts"].as_u64().unwrap() >= 8, "{v}");
    assert_eq!(c["resumes"], c["cuts"], "{v}");
    // 50 ms away at 400 says/s: every resume has says to replay.
    assert!(c["missed"].as_u64().unwrap() >= c["resumes"].as_u64().unwrap(), "{v}");
    assert_eq!(c["replayed"], c["missed"], "{v}");
    assert_eq!(c["away_ms"], 50.0, "{v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    assert_eq!(v["delivered"], v["expected"], "{v}");
}

#[test]
fn says_the_server_could_not_keep_are_reported_lost_and_the_exit_status_says_so() {
    // A room keeps at most 1024 bytes of says for its sessions: a client away 300 ms at 500 says/s misses
    // more than that, the resume says recovered:false and the audit finds the gap.
    let daemon = Daemon::start(&["--resume-buffer", "1024"]);
    let url = daemon.ws_url();
    let out = Command::new(env!("CARGO_BIN_EXE_wschat-bench"))
        .args(["churn", "--url", &url, "-c", "10", "-s", "2", "-r", "500", "-d", "0.6", "-w", "0.1"])
        .args(["--cuts-per-sec", "5", "--away-ms", "300", "--drain-timeout", "2", "--json"])
        .output()
        .expect("run wschat-bench");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("churn not clean"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["churn"];
    assert_eq!(c["clean"], false, "{v}");
    assert!(c["not_recovered"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["lost"].as_u64().unwrap() > 0, "{v}");
    assert!(c["problems"][0].as_str().unwrap().ends_with("deliveries lost"), "{v}");
    assert_eq!((v["duplicated"].as_u64(), c["logouts_seen"].as_u64()), (Some(0), Some(0)), "{v}");
}

#[test]
fn a_server_without_resume_is_refused_before_any_cut() {
    let daemon = Daemon::start(&["--resume-grace-secs", "0"]);
    let mut cfg = config(&daemon);
    cfg.duration = Duration::from_millis(100);
    match bench::run(&cfg) {
        Err(BenchError::Config(why)) => assert!(why.contains("granted 0 sessions to 20"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_fanout_with_every_client_opted_in_is_audited_like_any_other() {
    let daemon = Daemon::start(&[]);
    let url = daemon.ws_url();
    let bin = env!("CARGO_BIN_EXE_wschat-bench");
    let out = Command::new(bin)
        .args(["fanout", "--url", &url, "-c", "10", "-r", "200", "-d", "1", "-w", "0.2", "--resume", "--json"])
        .output()
        .expect("run wschat-bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resume"], true, "{v}");
    assert!(v["sent"].as_u64().unwrap() >= 150, "{v}");
    assert_eq!(v["delivered"], v["expected"], "every say, mid and all, audited: {v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    let raw = Command::new(bin).args(["fanout", "--url", &url, "--proto", "raw", "--resume"]).output().unwrap();
    assert_eq!(raw.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&raw.stderr).contains("--resume needs the chat protocol"));
}
