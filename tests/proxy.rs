//! The client's address behind a proxy: `X-Forwarded-For` / `Forwarded` from a `--trust-proxy` peer (and
//! from nobody else), PROXY protocol v1 and v2 headers with `--proxy-protocol` (missing, malformed or from
//! an untrusted peer: closed), and `--max-connections-per-ip` counting the client addresses so learned.
//! Raw sockets; 127.0.0.1 plays the trusted proxy and 127.0.0.2 an untrusted peer.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::probe::{connect_from, metric};
use common::{upgrade_request, Daemon};
use wschat::proxy::{Endpoints, ProxyHeader, Version};

const UNTRUSTED: &str = "127.0.0.2";

fn stream(d: &Daemon, from: Option<&str>) -> TcpStream {
    let s = connect_from(from.map(|a| a.parse::<IpAddr>().unwrap()), d.ws, false);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `prefix` then an upgrade request with `headers`; returns the status of the answer (0: closed).
fn upgrade(mut s: TcpStream, prefix: &[u8], headers: &str) -> (u16, TcpStream) {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(upgrade_request(headers).as_bytes());
    let _ = s.write_all(&bytes);
    let mut head = [0u8; 12];
    let status = match s.read_exact(&mut head) {
        Ok(()) => std::str::from_utf8(&head[9..12]).ok().and_then(|c| c.parse().ok()).unwrap_or(0),
        Err(_) => 0,
    };
    (status, s)
}

#[test]
fn forwarded_for_from_a_trusted_proxy_and_from_nobody_else() {
    let d = Daemon::start(&["--trust-proxy", "127.0.0.1/32", "--max-connections-per-ip", "1"]);
    // Two clients behind the trusted proxy: one connection each.
    let (a, _a) = upgrade(stream(&d, None), b"", "X-Forwarded-For: 203.0.113.7\r\n");
    let (b, _b) = upgrade(stream(&d, None), b"", "X-Forwarded-For: 198.51.100.1, 203.0.113.8\r\n");
    let (c, _c) = upgrade(stream(&d, None), b"", "Forwarded: for=203.0.113.9;proto=http\r\n");
    assert_eq!((a, b, c), (101, 101, 101), "three client addresses behind one proxy");
    let (again, _) = upgrade(stream(&d, None), b"", "X-Forwarded-For: 203.0.113.7\r\n");
    assert_eq!(again, 429, "a second connection from 203.0.113.7");
    // From an untrusted peer the headers change nothing: it is one address whatever it claims.
    let (first, _f) = upgrade(stream(&d, Some(UNTRUSTED)), b"", "X-Forwarded-For: 192.0.2.1\r\n");
    let (forged, _) = upgrade(stream(&d, Some(UNTRUSTED)), b"", "X-Forwarded-For: 192.0.2.2\r\n");
    assert_eq!((first, forged), (101, 429));
    assert_eq!(metric(d.http, "wschat_per_ip_rejections_total"), 2);
    // A connection that ends frees its address's place.
    drop(_a);
    assert!(common::probe::eventually(Duration::from_secs(5), || {
        upgrade(stream(&d, None), b"", "X-Forwarded-For: 203.0.113.7\r\n").0 == 101
    }));
}

#[test]
fn proxy_protocol_headers_give_the_client_address() {
    let d = Daemon::start(&["--trust-proxy", "127.0.0.1/32", "--proxy-protocol", "--max-connections-per-ip", "1"]);
    let v1 = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 40000 7272\r\n").into_bytes();
    let (a, _a) = upgrade(stream(&d, None), &v1("203.0.113.7"), "");
    let (b, _b) = upgrade(stream(&d, None), &v1("203.0.113.8"), "");
    assert_eq!((a, b), (101, 101));
    assert_eq!(upgrade(stream(&d, None), &v1("203.0.113.7"), "").0, 429, "the address came from the header");
    let src: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
    let dst: SocketAddr = "[2001:db8::2]:7272".parse().unwrap();
    let v2 =
        ProxyHeader { version: Version::V2, endpoints: Some(Endpoints { source: src, destination: dst }) }.encode();
    let (c, _c) = upgrade(stream(&d, None), &v2, "");
    assert_eq!(c, 101, "a v2 header with IPv6 addresses");
    // The web port too: the header first, then the request.
    let mut w = connect_from(None, d.http, false);
    w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    w.write_all(&v1("192.0.2.44")).unwrap();
    w.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = w.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Missing, malformed, or from an untrusted peer: closed without an answer.
    assert_eq!(upgrade(stream(&d, None), b"", "").0, 0, "no header");
    assert_eq!(upgrade(stream(&d, None), b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n", "").0, 0, "malformed");
    assert_eq!(upgrade(stream(&d, Some(UNTRUSTED)), &v1("203.0.113.50"), "").0, 0, "untrusted peer");
    // /metrics too is behind the proxy: asked with a header.
    let mut m = connect_from(None, d.http, false);
    m.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    m.write_all(b"PROXY TCP4 192.0.2.45 127.0.0.1 40001 55151\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = m.read_to_string(&mut text);
    assert!(common::probe::metric_in(&text, "wschat_proxy_rejections_total") >= 3, "{text}");
}

#[test]
fn proxy_flags_are_checked() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wschat")).args(["--proxy-protocol"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--proxy-protocol: needs --trust-proxy"));
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_wschat")).args(["--trust-proxy", "nonsense"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn web_requests_through_a_trusted_proxy_log_the_client() {
    let log = std::env::temp_dir().join(format!("wschat-proxy-weblog-{}.log", std::process::id()));
    let file = std::fs::File::create(&log).unwrap();
    let d = Daemon::start_with(&["--trust-proxy", "127.0.0.1/32"], |cmd| {
        cmd.env("RUST_LOG", "wschat=debug").stderr(file);
    });
    let bad = |from: Option<&str>| {
        let mut s = connect_from(from.map(|a| a.parse::<IpAddr>().unwrap()), d.http, false);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.4\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    };
    bad(None);
    bad(Some(UNTRUSTED));
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(common::probe::eventually(Duration::from_secs(5), || text().matches("bad web request").count() == 2));
    let text = text();
    assert!(text.contains("198.51.100.4:0: bad web request"), "the client behind the trusted proxy: {text}");
    assert!(text.contains(&format!("{UNTRUSTED}:")), "an untrusted peer is itself: {text}");
    let named = text.lines().filter(|l| l.contains("bad web request") && l.contains("198.51.100.4")).count();
    assert_eq!(named, 1, "the untrusted peer's header changed nothing: {text}");
    let _ = std::fs::remove_file(&log);
}
