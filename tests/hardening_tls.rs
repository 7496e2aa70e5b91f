//! Native TLS under attack, against the real daemon: a connection that sends records without plaintext
//! (empty application-data records and KeyUpdates, interleaved so that neither of rustls's own limits on
//! consecutive ones trips) is closed and counted as `abuse` while a chat beside it goes on; a ClientHello
//! announcing more than any real client sends is refused at once (`oversized`), and handshakes left
//! unfinished cost bounded memory each.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::probe::{eventually, metric_in, rss_kib};
use common::tls::{self, connect, Pair, Tls};
use common::tls13::RawTls13;
use common::Daemon;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// The daemon's /metrics over https.
fn metrics_of(d: &Daemon, pair: &Pair) -> String {
    let mut s = connect(d.http, &pair.cert).expect("TLS to the web port");
    write!(s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn failures(text: &str, reason: &str) -> u64 {
    metric_in(text, &format!("wschat_tls_failures_total{{reason=\"{reason}\"}}"))
}

fn chat_client(addr: SocketAddr, trusted: &Path, name: &str) -> WebSocket<Tls> {
    let s = connect(addr, trusted).expect("TLS handshake");
    let (mut ws, _) = tungstenite::client(format!("wss://127.0.0.1:{}/", addr.port()), s).expect("upgrade");
    ws.send(Message::text(json!({"type": "login", "name": name, "room_id": "side"}).to_string())).unwrap();
    loop {
        let v = recv(&mut ws);
        if v["type"] == "login" && v["name"] == name {
            return ws;
        }
    }
}

fn recv(ws: &mut WebSocket<Tls>) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// True when the daemon closed `sock` (end of stream, or a reset) within its read timeout; an alert record
/// before the end is read past.
fn closed_by_daemon(sock: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn records_without_plaintext_close_the_connection_and_are_counted() {
    let Some((d, pair)) = tls::daemon("barren", &[]) else { return };
    let mut a = chat_client(d.ws, &pair.cert, "alice");
    let mut b = chat_client(d.ws, &pair.cert, "bob");

    // A well-behaved client that updates its keys now and then (and sends an empty record or two) is fine.
    let sock = TcpStream::connect(d.ws).unwrap();
    let mut fair = RawTls13::connect(sock, &pair.cert).expect("TLS 1.3 handshake");
    let mut out = Vec::new();
    fair.data(common::upgrade_request("").as_bytes(), &mut out);
    for _ in 0..20 {
        fair.key_update(&mut out);
        fair.empty_record(&mut out);
    }
    fair.send(&out).unwrap();

    // The attacker: pairs of an empty record and a KeyUpdate, 8 MB of them, never a byte of plaintext.
    let sock = TcpStream::connect(d.ws).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut attacker = RawTls13::connect(sock, &pair.cert).expect("TLS 1.3 handshake");
    let mut flood = Vec::new();
    while flood.len() < 8 << 20 {
        attacker.empty_record(&mut flood);
        attacker.key_update(&mut flood);
    }
    let mut writer = attacker.sock.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        // Fails with a reset or a broken pipe once the daemon has closed the connection.
        writer.write_all(&flood).is_ok()
    });
    assert!(closed_by_daemon(&mut attacker.sock), "the daemon closes a connection sending only empty records");
    assert!(!sender.join().unwrap(), "the daemon stopped taking the flood before its end");

    // The chat beside it went on.
    a.send(Message::text(json!({"type": "say", "to_uid": "all", "content": "still here"}).to_string())).unwrap();
    loop {
        let v = recv(&mut b);
        if v["type"] == "say" {
            assert_eq!(v["content"], "still here");
            break;
        }
    }
    let m = metrics_of(&d, &pair);
    assert_eq!(failures(&m, "abuse"), 1, "{m}");
    // The fair client is still connected: the chat pair and it.
    assert_eq!(metric_in(&m, "wschat_connections"), 3, "{m}");
    drop(fair);
}

/// The first bytes of a ClientHello announcing `announced` bytes, in a record of `record_len`, with `body`
/// bytes of it.
fn client_hello_start(announced: u32, record_len: u16, body: usize) -> Vec<u8> {
    let mut v = vec![0x16, 0x03, 0x01];
    v.extend_from_slice(&record_len.to_be_bytes());
    v.push(1);
    v.extend_from_slice(&announced.to_be_bytes()[1..]);
    v.extend(std::iter::repeat_n(0x41, body));
    v
}

#[test]
fn an_oversized_client_hello_is_refused_at_once() {
    let Some((d, pair)) = tls::daemon("oversized", &[]) else { return };
    // Announcing 64 KiB (rustls's own bound): refused on the first bytes, not held until the handshake timeout.
    let mut s = TcpStream::connect(d.ws).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&client_hello_start(0xffff, 0x4000, 1000)).unwrap();
    assert!(closed_by_daemon(&mut s), "a 64 KiB ClientHello is refused at once");
    // A hello header split over records cannot tell its size up front: the bytes received are bounded.
    let mut s = TcpStream::connect(d.ws).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut split = vec![0x16, 0x03, 0x01, 0x00, 0x01, 0x01];
    for i in 0..4 {
        split.extend_from_slice(&[0x16, 0x03, 0x01, 0x10, 0x00]);
        // The length (60 KiB, under rustls's own bound) comes in the second record.
        let start = if i == 0 { vec![0x00, 0xf0, 0x00] } else { Vec::new() };
        split.extend_from_slice(&start);
        split.extend(std::iter::repeat_n(0x41, 0x1000 - start.len()));
    }
    let _ = s.write_all(&split);
    assert!(closed_by_daemon(&mut s), "16 KiB of handshake without an end is refused");
    let m = metrics_of(&d, &pair);
    assert_eq!(failures(&m, "oversized"), 2, "{m}");
    // A real client is still served.
    assert!(connect(d.ws, &pair.cert).is_ok());
}

#[test]
fn unfinished_handshakes_cost_bounded_memory() {
    let Some((d, pair)) = tls::daemon("half-open", &[]) else { return };
    let pid = d.child.id();
    // Warm up: one full handshake, so the first handshake's one-time allocations are not counted.
    drop(connect(d.ws, &pair.cert));
    std::thread::sleep(Duration::from_millis(200));
    const N: usize = 300;
    let before = rss_kib(pid);
    // ClientHellos announcing 64 KiB with 60 KiB of it sent, then silence (the half-open attack).
    let mut held = Vec::new();
    for _ in 0..N {
        let mut s = TcpStream::connect(d.ws).unwrap();
        let mut hello = client_hello_start(0xffff, 0x4000, 0x4000 - 4);
        for _ in 0..2 {
            hello.extend_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00]);
            hello.extend(std::iter::repeat_n(0x41, 0x4000));
        }
        let _ = s.write_all(&hello);
        held.push(s);
    }
    // And hellos of a size a client may send (6 KiB announced, 5 KiB of it), then silence.
    for _ in 0..N {
        let mut s = TcpStream::connect(d.ws).unwrap();
        let _ = s.write_all(&client_hello_start(6 * 1024, 6 * 1024 + 4, 5 * 1024));
        held.push(s);
    }
    assert!(
        eventually(Duration::from_secs(5), || failures(&metrics_of(&d, &pair), "oversized") == N as u64),
        "every 64 KiB hello refused"
    );
    let after = rss_kib(pid);
    let per_conn = (after.saturating_sub(before) * 1024) as f64 / (2 * N) as f64;
    println!("RSS {before} -> {after} KiB: {per_conn:.0} bytes per unfinished handshake");
    assert!(per_conn < 16.0 * 1024.0, "{per_conn:.0} bytes per unfinished handshake");
    drop(held);
}

/// Say round trips between two wss clients, one every `gap`, until `stop` is set: each latency.
fn bystander(a: &mut WebSocket<Tls>, b: &mut WebSocket<Tls>, stop: &std::sync::atomic::AtomicBool) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let content = format!("probe-{i}");
        i += 1;
        let start = std::time::Instant::now();
        a.send(Message::text(json!({"type": "say", "to_uid": "all", "content": content}).to_string())).unwrap();
        loop {
            let v = recv(b);
            if v["type"] == "say" && v["content"] == content.as_str() {
                break;
            }
        }
        out.push(start.elapsed());
        loop {
            let v = recv(a);
            if v["type"] == "say" && v["content"] == content.as_str() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

fn summary(mut samples: Vec<Duration>) -> String {
    let n = samples.len();
    let p50 = common::probe::percentile(&mut samples, 50.0);
    let p99 = common::probe::percentile(&mut samples, 99.0);
    let max = samples.last().copied().unwrap_or_default();
    format!("{n} says: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", ms(p50), ms(p99), ms(max))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Measurement, not a check (`cargo test --release --test hardening_tls -- --ignored --nocapture`): a chat
/// pair's say latency alone, then while one connection sends 64 MB of empty records and KeyUpdates, then
/// while 64 clients do full TLS handshakes over and over.
#[test]
#[ignore]
fn measure_bystander_latency_under_tls_attacks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some((d, pair)) = tls::daemon("measure", &[]) else { return };
    let mut a = chat_client(d.ws, &pair.cert, "alice");
    let mut b = chat_client(d.ws, &pair.cert, "bob");
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = {
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            s.store(true, Ordering::Relaxed)
        });
        let v = bystander(&mut a, &mut b, &stop);
        t.join().unwrap();
        v
    };
    println!("unloaded: {}", summary(quiet));

    stop.store(false, Ordering::Relaxed);
    let sock = TcpStream::connect(d.ws).unwrap();
    let mut attacker = RawTls13::connect(sock, &pair.cert).expect("TLS 1.3 handshake");
    let mut flood = Vec::new();
    while flood.len() < 64 << 20 {
        attacker.empty_record(&mut flood);
        attacker.key_update(&mut flood);
    }
    let s = stop.clone();
    let mut writer = attacker.sock.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut sent = 0usize;
        for chunk in flood.chunks(1 << 16) {
            if writer.write_all(chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let took = started.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        s.store(true, Ordering::Relaxed);
        (sent, took)
    });
    let during = bystander(&mut a, &mut b, &stop);
    let (sent, took) = t.join().unwrap();
    println!("empty records + KeyUpdates: {sent} bytes taken in {:.1} ms; bystander {}", ms(took), summary(during));

    stop.store(false, Ordering::Relaxed);
    let handshakes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (s, h, cert, ws) = (stop.clone(), handshakes.clone(), pair.cert.clone(), d.ws);
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if connect(ws, &cert).is_ok() {
                        h.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(4));
        s.store(true, Ordering::Relaxed)
    });
    let during = bystander(&mut a, &mut b, &stop);
    t.join().unwrap();
    for w in workers {
        w.join().unwrap();
    }
    let n = handshakes.load(Ordering::Relaxed);
    println!("64 clients handshaking ({:.0} handshakes/s): bystander {}", n as f64 / 4.0, summary(during));
}
