//! `wschat-bench` over wss:// against the real daemon with `--tls-cert/--tls-key`: an audited fanout loses
//! nothing, connect counts TLS handshakes, and a certificate the bench does not trust, a missing trust or a
//! transport that does not match the server's are clean failures with a readable reason, never a panic.
//! Certificates are made with the openssl command; without it the tests say SKIP, and fail under CI.
#![cfg(feature = "bench")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Daemon;
use wschat::bench::tls::{client_config, Trust};
use wschat::bench::{self, target, BenchConfig, BenchError, Proto, Scenario};

/// The daemon speaking TLS with `pair` on both ports (tests/common's daemon, killed when dropped).
fn tls_daemon(pair: &Pair) -> Daemon {
    let (cert, key) = (pair.0.to_str().expect("utf-8 path"), pair.1.to_str().expect("utf-8 path"));
    Daemon::start(&["--tls-cert", cert, "--tls-key", key])
}

fn wss_url(daemon: &Daemon) -> String {
    format!("wss://{}/", daemon.ws)
}

/// A certificate and its key, as files.
type Pair = (PathBuf, PathBuf);

/// A self-signed ECDSA P-256 server certificate for 127.0.0.1 (tests/common's maker): (cert, key).
fn make_pair(dir: &Path, name: &str) -> Option<Pair> {
    common::tls::make_pair(dir, name).map(|p| (p.cert, p.key))
}

/// Without the openssl command: SKIP, but a failure under CI.
fn skip_or_fail(test: &str) {
    common::skip_or_fail(test, "the openssl command (Debian package openssl)");
}

/// A fresh folder with two unrelated pairs, `a` and `b`; `None` (after the SKIP) without openssl.
fn pairs(test: &str) -> Option<(PathBuf, Pair, Pair)> {
    let dir = std::env::temp_dir().join(format!("wschat-bench-tls-it-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (Some(a), Some(b)) = (make_pair(&dir, "a"), make_pair(&dir, "b")) else {
        skip_or_fail(test);
        return None;
    };
    Some((dir, a, b))
}

fn bench_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wschat-bench")).args(args).output().expect("run wschat-bench")
}

fn config(url: &str, scenario: Scenario) -> BenchConfig {
    let mut cfg = BenchConfig::new(scenario, url, target::resolve(url, false).unwrap());
    cfg.proto = Proto::Chat;
    cfg.clients = 20;
    cfg.duration = Duration::from_millis(300);
    cfg.warmup = Duration::from_millis(100);
    cfg.setup_timeout = Duration::from_secs(10);
    cfg.drain_timeout = Duration::from_secs(5);
    cfg
}

#[test]
fn fanout_over_wss_loses_nothing() {
    let Some((dir, a, _)) = pairs("fanout") else { return };
    let daemon = tls_daemon(&a);
    let url = wss_url(&daemon);
    let pid = daemon.child.id().to_string();
    let ca = a.0.to_str().unwrap();
    let args = ["fanout", "--url", &url, "--ca", ca, "-c", "20", "-s", "5", "-r", "1000", "-d", "0.5", "-w", "0.2"];
    let out =
        bench_cli(&[&args[..], &["--setup-timeout", "10", "--drain-timeout", "5", "--pid", &pid, "--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["transport"], "tls", "{v}");
    let session = v["tls"].as_str().unwrap_or_default();
    assert!(session.starts_with("TLS1.3 TLS13_") && session.ends_with("ALPN http/1.1"), "{v}");
    assert_eq!((v["connected"].as_u64(), v["failed"].as_u64()), (Some(20), Some(0)), "{v}");
    let sent = v["sent"].as_u64().unwrap();
    assert!(sent >= 300, "{v}");
    assert_eq!(v["expected"].as_u64(), Some(sent * 20), "{v}");
    assert_eq!(v["delivered"], v["expected"], "{v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    // The table says the transport in one line.
    let out = bench_cli(&["fanout", "--url", &url, "--ca", ca, "-c", "4", "-r", "200", "-d", "0.2", "-w", "0.1"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && table.contains("\n  tls            TLS1.3 TLS13_"), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connect_over_wss_counts_tls_handshakes() {
    let Some((dir, a, _)) = pairs("connect") else { return };
    let daemon = tls_daemon(&a);
    let mut cfg = config(&wss_url(&daemon), Scenario::Connect);
    // --insecure: the daemon's certificate is in no root store here, and need not be.
    cfg.tls = Some(client_config(&Trust::Insecure).unwrap());
    cfg.clients = 100;
    cfg.concurrency = 30;
    cfg.duration = Duration::from_millis(100);
    cfg.pid = Some(daemon.child.id());
    let r = bench::run(&cfg).unwrap();
    assert_eq!((r.connected, r.failed, r.server_errors), (100, 0, 0), "{r:?}");
    let (tls, all) = (r.tls_handshakes_per_s.unwrap(), r.handshakes_per_s.unwrap());
    // Every TLS handshake completes just before its WebSocket handshake and login: about the same rate.
    assert!(tls > 0.0 && tls >= all * 0.9, "{r:?}");
    assert!(r.tls.as_deref().is_some_and(|s| s.starts_with("TLS1.3")), "{r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_untrusted_certificate_fails_cleanly_with_its_reason() {
    let Some((dir, a, b)) = pairs("wrong-ca") else { return };
    let daemon = tls_daemon(&a);
    let url = wss_url(&daemon);
    let wrong = b.0.to_str().unwrap();
    let out = bench_cli(&["fanout", "--url", &url, "--ca", wrong, "-c", "5", "-d", "0.2", "--setup-timeout", "10"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("only 0 of 5 clients were ready"), "{stderr}");
    assert!(stderr.contains("tls: invalid peer certificate"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // No trust at all is refused before anything connects; so is a CA file that is not one.
    let out = bench_cli(&["fanout", "--url", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wss:// needs --ca FILE or --insecure"));
    let key = a.1.to_str().unwrap();
    let out = bench_cli(&["fanout", "--url", &url, "--ca", key]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no PEM certificate"));
    // The daemon is still fine: the right CA works after all that.
    let ok = bench_cli(&["connect", "--url", &url, "--ca", a.0.to_str().unwrap(), "-c", "10", "-d", "0.1"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_transport_that_does_not_match_the_servers_fails_cleanly() {
    let Some((dir, a, _)) = pairs("mismatch") else { return };
    let trust = Some(client_config(&Trust::Ca(a.0.clone())).unwrap());
    // wss:// to a plain daemon: its answer is no TLS.
    let plain = Daemon::start(&[]);
    let mut cfg = config(&format!("wss://{}/", plain.ws), Scenario::Fanout);
    cfg.tls = trust.clone();
    cfg.clients = 3;
    match bench::run(&cfg) {
        Err(BenchError::Setup { ready: 0, first_failure: Some(why), .. }) => assert!(why.starts_with("tls: "), "{why}"),
        other => panic!("{other:?}"),
    }
    // ws:// to a TLS daemon: the upgrade request is refused.
    let tls = tls_daemon(&a);
    let mut cfg = config(&format!("ws://{}/", tls.ws), Scenario::Fanout);
    cfg.clients = 3;
    match bench::run(&cfg) {
        Err(BenchError::Setup { ready: 0, first_failure: Some(_), .. }) => {}
        other => panic!("{other:?}"),
    }
    // wss:// without a TLS configuration, through the library.
    let mut cfg = config(&wss_url(&tls), Scenario::Fanout);
    cfg.tls = None;
    match bench::run(&cfg) {
        Err(BenchError::Config(why)) => assert_eq!(why, "wss:// needs --ca FILE or --insecure"),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_certificate_reload_under_an_audited_fanout_loses_nothing() {
    let Some((dir, a, b)) = pairs("reload") else { return };
    // The daemon reads the files at `live`; the clients trust both pairs (one file with both certificates).
    let live: Pair = (dir.join("live.crt"), dir.join("live.key"));
    std::fs::copy(&a.0, &live.0).unwrap();
    std::fs::copy(&a.1, &live.1).unwrap();
    let both = dir.join("both.crt");
    let mut pem = std::fs::read(&a.0).unwrap();
    pem.extend(std::fs::read(&b.0).unwrap());
    std::fs::write(&both, pem).unwrap();
    let daemon = tls_daemon(&live);
    let url = wss_url(&daemon);
    let pid = daemon.child.id().to_string();
    let fanout = Command::new(env!("CARGO_BIN_EXE_wschat-bench"))
        .args(["fanout", "--url", &url, "--ca", both.to_str().unwrap(), "-c", "50", "-s", "10", "-r", "2000"])
        .args(["-d", "2.5", "-w", "0.3", "--setup-timeout", "10", "--drain-timeout", "5", "--pid", &pid, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wschat-bench");
    // In the middle of the measured run: the files now hold pair b, and SIGHUP.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::copy(&b.0, &live.0).unwrap();
    std::fs::copy(&b.1, &live.1).unwrap();
    let hup = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(hup.success());
    let out = fanout.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["connected"].as_u64(), v["failed"].as_u64()), (Some(50), Some(0)), "{v}");
    assert!(v["sent"].as_u64().unwrap() >= 2000, "{v}");
    assert_eq!(v["delivered"], v["expected"], "{v}");
    for key in ["lost", "duplicated", "out_of_order", "server_errors"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    // The next handshake sees the new certificate: trusting only b connects, trusting only a does not.
    let connect = |ca: &Path| {
        let out =
            bench_cli(&["connect", "--url", &url, "--ca", ca.to_str().unwrap(), "-c", "1", "-d", "0.1", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["connected"].as_u64() == Some(1)
    };
    assert!(connect(&b.0), "a client trusting only the new certificate");
    assert!(!connect(&a.0), "a client trusting only the old certificate");
    let _ = std::fs::remove_dir_all(&dir);
}
