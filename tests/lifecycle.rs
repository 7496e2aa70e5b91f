//! The daemon's life: the web port, CLI errors, idle pings and timeouts, slow consumers, SIGTERM.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::probe::metric;
use common::{client_frame, text_frame, Daemon, Raw};

fn http(d: &Daemon, request: &str) -> String {
    let mut raw = Raw::connect(d.http);
    raw.send(request.as_bytes());
    let answer = raw.read_head();
    assert!(raw.sees_eof(), "HTTP connections close after the response");
    answer
}

#[test]
fn web_port_routes() {
    let d = Daemon::start(&[]);
    let page = http(&d, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page:.200}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains(&format!("content=\"{}\"", d.ws.port())), "the page names the ws port");
    for id in ["name", "login", "message", "send", "to", "messages", "users"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
    }
    let health = http(&d, "GET /healthz HTTP/1.1\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200 ") && health.ends_with("\r\n\r\nok\n"), "{health}");
    let metrics = http(&d, "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(metrics.contains("# TYPE wschat_connections gauge"));
    assert!(http(&d, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    let post = http(&d, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"), "{post}");
    assert!(http(&d, "BLAH\x00\r\n\r\n").starts_with("HTTP/1.1 400 "));
}

#[test]
fn cli_errors_are_clear_and_exit_non_zero() {
    let bin = env!("CARGO_BIN_EXE_wschat");
    let out = Command::new(bin).args(["--ws", "not-an-address"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ws") && err.contains("not-an-address"), "{err}");
    let out = Command::new(bin).args(["--max-connections", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A port already in use.
    let d = Daemon::start(&[]);
    let out = Command::new(bin).args(["--ws", &d.ws.to_string(), "--http", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen") && err.contains(&d.ws.to_string()), "{err}");
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--ws",
        "--http",
        "--max-connections",
        "--max-message-bytes",
        "--handshake-timeout-ms",
        "--ping-interval-secs",
        "--send-buffer-limit",
        "--allow-origin",
        "--history",
        "--echo",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn idle_clients_are_pinged_and_silent_ones_closed() {
    let d = Daemon::start(&["--ping-interval-secs", "1"]);
    let started = Instant::now();
    let mut silent = Raw::open(d.ws);
    let mut alive = Raw::open(d.ws);
    // The live one answers every ping, in its own thread, for three intervals; then it is still served.
    let alive = std::thread::spawn(move || {
        let mut pings = 0;
        while started.elapsed() < Duration::from_millis(3200) {
            let f = alive.read_frame().expect("the live client stays open");
            if f.opcode == 9 {
                pings += 1;
                alive.send(&client_frame(true, 0, 10, &f.payload));
            }
        }
        alive.send(&text_frame(r#"{"type":"login","name":"alive"}"#));
        loop {
            let f = alive.read_frame().expect("still open");
            if f.opcode == 1 {
                return pings;
            }
        }
    });
    // The silent one never answers: first a ping, then a close with 1001 after two intervals.
    let ping = silent.read_frame().unwrap();
    assert_eq!(ping.opcode, 9);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(silent.expect_close(), 1001);
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert!(alive.join().expect("live client thread") >= 2);
}

#[test]
fn slow_consumer_is_cut_and_the_others_lose_nothing() {
    let d = Daemon::start(&["--send-buffer-limit", "65536"]);
    let mut slow = Raw::open(d.ws);
    slow.send(&text_frame(r#"{"type":"login","name":"slow"}"#));
    let mut fast = Raw::open(d.ws);
    fast.send(&text_frame(r#"{"type":"login","name":"fast"}"#));
    assert_eq!(fast.read_json()["type"], "user_list");
    assert_eq!(fast.read_json()["type"], "login");
    let content = "x".repeat(50_000);
    const N: usize = 400; // 20 MB: more than the kernel's socket buffers can hide.
    let mut received = 0;
    let mut logout_seen = false;
    let say = text_frame(&format!(r#"{{"type":"say","to_uid":"all","content":"{content}"}}"#));
    for _ in 0..N {
        fast.send(&say);
        // Read what came back so the fast client never becomes slow itself.
        let v = fast.read_json();
        match v["type"].as_str() {
            Some("say") => {
                assert_eq!(v["content"].as_str().map(str::len), Some(50_000));
                received += 1;
            }
            Some("logout") => {
                assert_eq!(v["name"], "slow");
                logout_seen = true;
                let v = fast.read_json();
                assert_eq!(v["type"], "say");
                received += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, N, "the fast client lost messages");
    assert!(logout_seen, "the slow consumer was never cut");
    assert_eq!(metric(d.http, "wschat_slow_consumer_disconnects_total"), 1);
    // The slow one finds its backlog (cut short) and then the end of the connection.
    assert!(slow.sees_eof());
}

#[test]
fn sigterm_closes_everyone_with_1001_and_exits_zero() {
    let mut d = Daemon::start(&[]);
    let mut clients: Vec<Raw> = (0..3).map(|_| Raw::open(d.ws)).collect();
    clients[0].send(&text_frame(r#"{"type":"login","name":"a"}"#));
    assert_eq!(clients[0].read_json()["type"], "user_list");
    let started = Instant::now();
    let status = d.terminate(Duration::from_secs(3)).expect("exited in time");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_millis(2500));
    for c in &mut clients {
        assert_eq!(c.expect_close(), 1001);
    }
}

#[test]
fn trace_frames_logs_unmasked_payloads() {
    let mut d = Daemon::start_with(&["--trace-frames"], |cmd| {
        cmd.env("RUST_LOG", "info").stderr(Stdio::piped());
    });
    let mut raw = Raw::open(d.ws);
    raw.send(&text_frame(r#"{"type":"login","name":"mynick"}"#));
    raw.read_json();
    d.terminate(Duration::from_secs(5)).expect("exited after SIGTERM");
    let mut log = String::new();
    d.child.stderr.take().expect("stderr").read_to_string(&mut log).expect("the log");
    assert!(log.contains(r#"<- text 32B {"type":"login","name":"mynick"}"#), "{log}");
    assert!(log.contains(r#"-> text"#) && log.contains(r#"{"type":"user_list""#), "{log}");
}
