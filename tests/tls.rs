//! Native TLS (`--tls-cert/--tls-key`) against the real daemon with a rustls client that trusts exactly the
//! test's certificate: the chat over wss:// (tungstenite over the TLS stream) and the page, health and
//! metrics over https://, TLS 1.3 and 1.2 with ALPN http/1.1; what is not TLS (plain HTTP gets a plain 400,
//! garbage and refused handshakes are closed) and handshakes that stall, each counted by reason; a SIGHUP
//! reload to a new certificate (and a broken one that keeps the old) with `RELOADING=1`/`READY=1` on a
//! notify socket of the test's own; and a PROXY header ahead of the TLS handshake. The conformance suite
//! runs over TLS too (`WSCHAT_TEST_TLS=1 cargo test --test conformance`, part of `make test`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::probe::{eventually, metric_in};
use common::tls::{self, connect, Pair, Tls};
use common::{skip_or_fail, Daemon};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// A wss:// chat client logged in as `name` (the seed's protocol); returns it with the user list it got.
fn chat_client(addr: SocketAddr, trusted: &Path, name: &str) -> (WebSocket<Tls>, Value) {
    let s = connect(addr, trusted).expect("TLS handshake");
    let (mut ws, resp) = tungstenite::client(format!("wss://127.0.0.1:{}/", addr.port()), s).expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text(json!({"type": "login", "name": name}).to_string())).unwrap();
    let list = recv(&mut ws);
    assert_eq!(recv(&mut ws)["name"], name, "its own login after the user list");
    (ws, list)
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

/// Reads one login of `name` after the user list.
fn recv_type(ws: &mut WebSocket<Tls>, kind: &str) -> Value {
    loop {
        let v = recv(ws);
        if v["type"] == kind {
            return v;
        }
    }
}

/// An HTTPS GET over `s`: the whole answer as text.
fn get(mut s: Tls, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // The daemon ends with close_notify; a bare TCP end after the answer would do too.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("read: {e}"),
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Plain bytes to `addr`; everything answered until the daemon closes.
fn plain_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The daemon's /metrics over https.
fn metrics_of(d: &Daemon, pair: &Pair) -> String {
    get(connect(d.http, &pair.cert).expect("TLS to the web port"), "/metrics")
}

/// `wschat_tls_failures_total{reason}` in a /metrics text.
fn failures(text: &str, reason: &str) -> u64 {
    metric_in(text, &format!("wschat_tls_failures_total{{reason=\"{reason}\"}}"))
}

#[test]
fn chat_over_wss_and_the_page_over_https() {
    let Some((d, pair)) = tls::daemon("chat", &[]) else { return };
    let (mut a, list) = chat_client(d.ws, &pair.cert, "猪猪");
    assert_eq!(list["type"], "user_list");
    let (mut b, _) = chat_client(d.ws, &pair.cert, "mynick");
    let login = recv_type(&mut a, "login");
    assert_eq!(login["name"], "mynick");
    b.send(Message::text(json!({"type": "say", "to_uid": "all", "content": "hi,  all !"}).to_string())).unwrap();
    for ws in [&mut a, &mut b] {
        let say = recv_type(ws, "say");
        assert_eq!((&say["from_uid"], say["content"].as_str()), (&login["uid"], Some("hi,  all !")));
    }
    // The page, health and metrics over https; ALPN http/1.1; TLS 1.2 too.
    let s = connect(d.http, &pair.cert).unwrap();
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(s.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let page = get(s, "/");
    assert!(page.starts_with("HTTP/1.1 200 "), "{}", &page[..page.len().min(200)]);
    assert!(page.contains("wschat-ws-port"), "the chat page");
    let sock = TcpStream::connect(d.http).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = tls::client(sock, tls::client_config(&[&pair.cert], Some(&[&rustls::version::TLS12])));
    tls::handshake(&mut s).unwrap();
    assert_eq!(s.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert!(get(s, "/healthz").starts_with("HTTP/1.1 200 "));
    let m = metrics_of(&d, &pair);
    assert_eq!(metric_in(&m, "wschat_connections"), 2);
    assert!(metric_in(&m, "wschat_tls_handshakes_total") >= 5, "{m}");
    // A client that leaves with close_notify and FIN: the other sees the logout.
    drop(b);
    assert_eq!(recv_type(&mut a, "logout")["uid"], login["uid"]);
}

#[test]
fn what_is_not_tls_is_refused_and_counted() {
    let Some((d, pair)) = tls::daemon("refused", &[]) else { return };
    // Plain HTTP on either port: a plain-text 400 that says what to use, then the end.
    for addr in [d.ws, d.http] {
        let answer = plain_exchange(addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400 ") && text.contains("use https:// or wss://"), "{text}");
    }
    // Bytes that are no TLS at all: closed without a word.
    assert_eq!(plain_exchange(d.ws, &[0x01, 0x02, 0x03, 0xff, 0x00]), b"");
    // A handshake record that is garbage: a TLS alert (content type 21), then the end.
    let answer = plain_exchange(d.ws, &[0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x02, 0xde, 0xad]);
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
    // A client that does not trust the certificate gives up; the daemon sees its alert.
    let other = tls::make_pair(&tls::temp_dir("refused-other"), "b").expect("openssl");
    assert!(connect(d.ws, &other.cert).is_err(), "a certificate the client does not trust");
    let m = metrics_of(&d, &pair);
    assert_eq!(failures(&m, "plain_http"), 2, "{m}");
    assert_eq!(failures(&m, "not_tls"), 1, "{m}");
    assert!(eventually(Duration::from_secs(5), || failures(&metrics_of(&d, &pair), "handshake") == 2));
    // The daemon goes on serving.
    let (mut a, _) = chat_client(d.ws, &pair.cert, "after");
    a.send(Message::text(json!({"type": "say", "to_uid": "all", "content": "still here"}).to_string())).unwrap();
    assert_eq!(recv_type(&mut a, "say")["content"], "still here");
}

#[test]
fn stalled_handshakes_time_out() {
    let Some((d, pair)) = tls::daemon("stalled", &["--handshake-timeout-ms", "300"]) else { return };
    let started = Instant::now();
    // Silent after connecting, and stopping in the middle of a ClientHello.
    let mut silent = TcpStream::connect(d.ws).unwrap();
    let mut half = TcpStream::connect(d.ws).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    // A chat goes on meanwhile.
    let (mut a, _) = chat_client(d.ws, &pair.cert, "busy");
    for s in [&mut silent, &mut half] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed, nothing said");
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "closed after the handshake timeout, not at the read timeout ({waited:?})"
    );
    a.send(Message::text(json!({"type": "say", "to_uid": "all", "content": "x"}).to_string())).unwrap();
    assert_eq!(recv_type(&mut a, "say")["content"], "x");
    assert_eq!(failures(&metrics_of(&d, &pair), "timeout"), 2);
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_the_old_on_error() {
    use std::os::unix::net::UnixDatagram;
    let dir = tls::temp_dir("reload");
    let (Some(a), Some(b)) = (tls::make_pair(&dir, "a"), tls::make_pair(&dir, "b")) else {
        return skip_or_fail("sighup_reloads_the_certificate", "the openssl command (Debian package openssl)");
    };
    let live = Pair { cert: dir.join("live.crt"), key: dir.join("live.key") };
    std::fs::copy(&a.cert, &live.cert).unwrap();
    std::fs::copy(&a.key, &live.key).unwrap();
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let args = ["--tls-cert", live.cert.to_str().unwrap(), "--tls-key", live.key.to_str().unwrap()];
    let d = Daemon::start_with(&args, |cmd| {
        cmd.env("NOTIFY_SOCKET", &notify_path);
    });
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(buf[..n].trim_ascii_end(), b"READY=1");
    let (mut before, _) = chat_client(d.ws, &a.cert, "before");
    // The files now hold pair b; SIGHUP.
    std::fs::copy(&b.cert, &live.cert).unwrap();
    std::fs::copy(&b.key, &live.key).unwrap();
    hup(&d);
    let n = notify.recv(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(buf[..n].trim_ascii_end(), b"READY=1");
    assert!(connect(d.ws, &b.cert).is_ok(), "new handshakes get the new certificate");
    assert!(connect(d.ws, &a.cert).is_err(), "and no longer the old one");
    // The connection opened before keeps its session.
    before.send(Message::text(json!({"type": "say", "to_uid": "all", "content": "old session"}).to_string())).unwrap();
    assert_eq!(recv_type(&mut before, "say")["content"], "old session");
    // A broken key: logged, the pair in use kept.
    std::fs::write(&live.key, "not a key").unwrap();
    hup(&d);
    let _ = notify.recv(&mut buf);
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(buf[..n].trim_ascii_end(), b"READY=1");
    assert!(connect(d.ws, &b.cert).is_ok(), "the pair in use is kept");
    let m = metrics_of(&d, &b);
    assert_eq!(metric_in(&m, "wschat_tls_reloads_total"), 1);
    assert_eq!(metric_in(&m, "wschat_tls_reload_failures_total"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends SIGHUP to the daemon.
fn hup(d: &Daemon) {
    let status = std::process::Command::new("kill").args(["-HUP", &d.child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_proxy_header_comes_before_the_handshake() {
    let extra = ["--proxy-protocol", "--trust-proxy", "127.0.0.1/32", "--max-connections-per-ip", "1"];
    let Some((d, pair)) = tls::daemon("proxied", &extra) else { return };
    let mut held = Vec::new();
    let mut upgrade = |client: &str| -> u16 {
        let mut sock = TcpStream::connect(d.ws).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(format!("PROXY TCP4 {client} 127.0.0.1 40000 7272\r\n").as_bytes()).unwrap();
        let mut s = tls::client(sock, tls::client_config(&[&pair.cert], None));
        if tls::handshake(&mut s).is_err() {
            return 0;
        }
        s.write_all(common::upgrade_request("").as_bytes()).unwrap();
        let mut head = [0u8; 12];
        let status = match s.read_exact(&mut head) {
            Ok(()) => std::str::from_utf8(&head[9..12]).ok().and_then(|c| c.parse().ok()).unwrap_or(0),
            Err(_) => 0,
        };
        held.push(s); // Kept open: it holds its address's place.
        status
    };
    assert_eq!(upgrade("198.51.100.7"), 101);
    assert_eq!(upgrade("198.51.100.8"), 101, "another client");
    // The client address came from the header before TLS: at its limit, the connection is closed before
    // the handshake (nothing can be said in plain text on a TLS port), counted as a per-address refusal.
    assert_eq!(upgrade("198.51.100.7"), 0, "refused at the header, before TLS");
    let mut sock = TcpStream::connect(d.http).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 55151\r\n").unwrap();
    let mut s = tls::client(sock, tls::client_config(&[&pair.cert], None));
    tls::handshake(&mut s).unwrap();
    assert_eq!(metric_in(&get(s, "/metrics"), "wschat_per_ip_rejections_total"), 1);
    // Without the header, TLS straight away: closed.
    assert!(connect(d.ws, &pair.cert).is_err());
}
