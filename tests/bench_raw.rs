//! The bench client against an in-test raw broadcast server (threads, std sockets, the crate's codec): short
//! fanout, saturate and connect runs must audit clean; broken servers must give errors, not panics.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use wschat::bench::{self, target, BenchConfig, BenchError, Proto, Scenario};
use wschat::ws::frame::{write_frame, OpCode};
use wschat::ws::handshake::{parse_request, switching_protocols};
use wschat::ws::message::{Message, MessageDecoder, Role};

type Clients = Arc<Mutex<Vec<TcpStream>>>;

/// A raw broadcast server: every text message to every client, sender included. Threads, one per client.
fn raw_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let clients = Clients::default();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let clients = clients.clone();
            thread::spawn(move || serve(stream, clients));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, clients: Clients) {
    stream.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let used = loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match parse_request(&buf) {
            Ok(Some((req, used))) => {
                stream.write_all(&switching_protocols(&req.key)).unwrap();
                break used;
            }
            Ok(None) => {}
            Err(_) => return,
        }
    };
    buf.drain(..used);
    clients.lock().unwrap().push(stream.try_clone().unwrap());
    let mut dec = MessageDecoder::new(Role::Server, 1 << 20);
    let mut out = Vec::new();
    loop {
        loop {
            let d = match dec.decode(&mut buf) {
                Ok(d) => d,
                Err(_) => return,
            };
            if d.consumed == 0 && d.message.is_none() {
                break;
            }
            let consumed = d.consumed;
            if let Some(Message::Text(t)) = d.message {
                write_frame(&mut out, OpCode::Text, t.as_bytes());
            }
            buf.drain(..consumed);
        }
        if !out.is_empty() {
            for c in clients.lock().unwrap().iter_mut() {
                let _ = c.write_all(&out);
            }
            out.clear();
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn config(scenario: Scenario, addr: SocketAddr) -> BenchConfig {
    let url = format!("ws://{addr}/");
    let mut cfg = BenchConfig::new(scenario, &url, target::resolve(&url, false).unwrap());
    cfg.proto = Proto::Raw;
    cfg.clients = 8;
    cfg.duration = Duration::from_millis(300);
    cfg.warmup = Duration::from_millis(100);
    cfg.setup_timeout = Duration::from_secs(10);
    cfg.drain_timeout = Duration::from_secs(5);
    cfg
}

#[test]
fn fanout_against_a_raw_server_audits_clean() {
    let addr = raw_server();
    let mut cfg = config(Scenario::Fanout, addr);
    cfg.senders = Some(3);
    cfg.rate = Some(600.0);
    cfg.payload = 100;
    cfg.pid = Some(std::process::id());
    let r = bench::run(&cfg).unwrap();
    assert_eq!(r.connected, 8);
    assert_eq!(r.failed, 0);
    assert!(r.sent >= 150, "{r:?}");
    assert_eq!(r.expected, r.sent * 8);
    assert_eq!((r.delivered, r.lost, r.duplicated, r.out_of_order), (r.expected, 0, 0, 0), "{r:?}");
    assert!(r.deliveries_per_s > 0.0 && r.p50_us > 0.0 && r.p99_us >= r.p50_us && r.max_us >= r.p99_us);
    assert!(r.client_cpu > 0.0 && r.server_cpu.is_some());
    assert!(r.first_error.is_none(), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["scenario"], "fanout");
}

#[test]
fn saturate_steps_up_and_reports_the_best_step() {
    let addr = raw_server();
    let mut cfg = config(Scenario::Saturate, addr);
    cfg.rate = Some(200.0);
    cfg.max_steps = 3;
    cfg.duration = Duration::from_millis(200);
    cfg.p99_bound = Duration::from_secs(1);
    let r = bench::run(&cfg).unwrap();
    assert_eq!(r.steps.len(), 3, "{r:?}");
    assert!(r.steps[0].ok, "{r:?}");
    assert!(r.steps[1].rate > r.steps[0].rate);
    assert!(r.deliveries_per_s > 0.0);
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
}

#[test]
fn connect_counts_handshakes_and_server_memory() {
    let addr = raw_server();
    let mut cfg = config(Scenario::Connect, addr);
    cfg.clients = 50;
    cfg.concurrency = 10;
    cfg.duration = Duration::from_millis(50);
    cfg.pid = Some(std::process::id());
    let r = bench::run(&cfg).unwrap();
    assert_eq!(r.connected, 50);
    assert!(r.handshakes_per_s.unwrap() > 0.0);
    assert!(r.rss_per_conn_bytes.is_some() && r.rss_after_bytes.is_some());
    assert_eq!(r.sent, 0);
}

/// A server that answers every upgrade with `reply` and then closes.
fn refusing_server(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(reply);
        }
    });
    addr
}

#[test]
fn refused_and_broken_servers_are_errors_not_panics() {
    let cases: [(&[u8], &str); 3] = [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403"),
        (b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n", "Accept"),
        (b"garbage that is not HTTP at all\r\n\r\n", "malformed"),
    ];
    for (reply, needle) in cases {
        let mut cfg = config(Scenario::Fanout, refusing_server(reply));
        cfg.clients = 3;
        cfg.setup_timeout = Duration::from_secs(2);
        match bench::run(&cfg) {
            Err(e @ BenchError::Setup { ready: 0, .. }) => assert!(e.to_string().contains(needle), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    // Frames a server may not send (masked) after a good handshake: the connection fails, the run reports it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            if let Ok(Some((req, _))) = parse_request(&buf[..n]) {
                let _ = stream.write_all(&switching_protocols(&req.key));
                let _ = stream.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
            }
        }
    });
    let mut cfg = config(Scenario::Connect, addr);
    cfg.clients = 4;
    cfg.duration = Duration::from_millis(100);
    let r = bench::run(&cfg).unwrap();
    assert_eq!(r.failed, 4, "{r:?}");
    assert!(r.first_error.unwrap().contains("masked"));
}

#[test]
fn a_closed_port_is_an_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = config(Scenario::Fanout, port);
    cfg.setup_timeout = Duration::from_secs(2);
    let err = bench::run(&cfg).unwrap_err().to_string();
    assert!(err.contains("refused") || err.contains("connect"), "{err}");
}

#[test]
fn the_cli_refuses_remote_targets_and_prints_json() {
    let bin = env!("CARGO_BIN_EXE_wschat-bench");
    let out = Command::new(bin).args(["fanout", "--url", "ws://192.0.2.1:7272/"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
    let addr = raw_server();
    let url = format!("ws://{addr}/");
    let out = Command::new(bin)
        .args(["fanout", "--proto", "raw", "--url", &url, "-c", "4", "-r", "200", "-d", "0.2", "-w", "0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["clients"], 4);
    assert_eq!(v["lost"], 0);
    assert!(v["delivered"].as_u64().unwrap() > 0);
}
