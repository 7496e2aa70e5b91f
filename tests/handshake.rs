//! The WebSocket handshake rules of the contract against the real binary, with raw sockets.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{text_frame, upgrade_request, Daemon, Raw};

fn status_of(d: &Daemon, request: &str) -> (u16, String) {
    let mut raw = Raw::connect(d.ws);
    raw.send(request.as_bytes());
    let head = raw.read_head();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(raw.sees_eof(), "the server must close after refusing");
    (status, head)
}

#[test]
fn seed_request_gets_the_seed_response() {
    let d = Daemon::start(&[]);
    let seed = "GET / HTTP/1.1\r\nHost: 127.0.0.1:7272\r\nUser-Agent: Mozilla/5.0 (X11; Ubuntu; Linux i686; rv:31.0) Gecko/20100101 Firefox/31.0\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:55151\r\nSec-WebSocket-Key: zPDr6m4czzUdOFnsxIUEAw==\r\nConnection: keep-alive, Upgrade\r\nPragma: no-cache\r\nUpgrade: websocket\r\n\r\n";
    let mut raw = Raw::connect(d.ws);
    raw.send(seed.as_bytes());
    assert_eq!(
        raw.read_head(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: nSsCeIBUsFnDJCRb/BNlFzBUDpM=\r\n\r\n"
    );
}

#[test]
fn any_path_and_token_lists() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::connect(d.ws);
    raw.send(
        upgrade_request("")
            .replace("GET / ", "GET /some/path?x=1 ")
            .replace("Connection: Upgrade", "connection: keep-alive, UPGRADE")
            .as_bytes(),
    );
    assert!(raw.read_head().starts_with("HTTP/1.1 101 "));
}

#[test]
fn request_in_many_small_pieces() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::connect(d.ws);
    let req = upgrade_request("");
    for piece in req.as_bytes().chunks(3) {
        raw.send(piece);
        sleep(Duration::from_millis(1));
    }
    assert!(raw.read_head().starts_with("HTTP/1.1 101 "));
    raw.send(&text_frame(r#"{"type":"login","name":"slow"}"#));
    assert_eq!(raw.read_json()["type"], "user_list");
}

#[test]
fn request_and_first_frames_in_one_segment() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::connect(d.ws);
    let mut bytes = upgrade_request("").into_bytes();
    bytes.extend(text_frame(r#"{"type":"login","name":"fast"}"#));
    bytes.extend(text_frame(r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#));
    raw.send(&bytes);
    assert!(raw.read_head().starts_with("HTTP/1.1 101 "));
    assert_eq!(raw.read_json()["type"], "user_list");
    assert_eq!(raw.read_json()["type"], "login");
    assert_eq!(raw.read_json()["content"], "hi,  all !");
}

#[test]
fn refusals() {
    let d = Daemon::start(&[]);
    let good = upgrade_request("");
    let cases = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_string(), 426),
        (good.replace("Upgrade: websocket\r\n", "Upgrade: h2c\r\n"), 400),
        (good.replace("Connection: Upgrade", "Connection: keep-alive"), 400),
        (good.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400),
        (good.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), 400),
        (good.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), 426),
        (good.replace("GET", "POST"), 405),
        ("\x16\x03\x01 binary garbage\r\n\r\n".to_string(), 400),
        (upgrade_request(&format!("X-Huge: {}\r\n", "h".repeat(9000))), 431),
    ];
    for (req, want) in cases {
        let (status, head) = status_of(&d, &req);
        assert_eq!(status, want, "{req:.80} -> {head}");
    }
    let (_, head) = status_of(&d, &good.replace("Version: 13", "Version: 99"));
    assert!(head.contains("Sec-WebSocket-Version: 13\r\n"), "{head}");
}

#[test]
fn oversized_head_that_never_ends() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::connect(d.ws);
    raw.send(b"GET / HTTP/1.1\r\nX: ");
    raw.send(&vec![b'a'; 9000]);
    let head = raw.read_head();
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
}

#[test]
fn origin_allow_list() {
    let d = Daemon::start(&["--allow-origin", "http://127.0.0.1:55151"]);
    let (status, _) = status_of(&d, &upgrade_request("Origin: http://evil.example\r\n"));
    assert_eq!(status, 403);
    let mut ok = Raw::connect(d.ws);
    ok.send(upgrade_request("Origin: http://127.0.0.1:55151\r\n").as_bytes());
    assert!(ok.read_head().starts_with("HTTP/1.1 101 "));
    // No Origin: not a browser, allowed.
    Raw::open(d.ws);
}

#[test]
fn max_connections_answers_503() {
    let d = Daemon::start(&["--max-connections", "2"]);
    let _a = Raw::open(d.ws);
    let b = Raw::open(d.ws);
    let (status, head) = status_of(&d, &upgrade_request(""));
    assert_eq!(status, 503, "{head}");
    drop(b);
    sleep(Duration::from_millis(100));
    Raw::open(d.ws);
}

#[test]
fn handshake_timeout_closes_silent_connections() {
    let d = Daemon::start(&["--handshake-timeout-ms", "200"]);
    let mut raw = Raw::connect(d.ws);
    raw.send(b"GET / HTTP/1.1\r\n");
    let started = std::time::Instant::now();
    assert!(raw.sees_eof());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "closed too early: {waited:?}");
}

#[test]
fn thousand_connections() {
    let d = Daemon::start(&[]);
    let mut conns: Vec<Raw> = (0..1000).map(|_| Raw::open(d.ws)).collect();
    for (i, c) in conns.iter_mut().enumerate().step_by(100) {
        c.send(&text_frame(&format!(r#"{{"type":"login","name":"u{i}"}}"#)));
        assert_eq!(c.read_json()["type"], "user_list");
    }
    let mut raw = Raw::connect(d.http);
    raw.send(b"GET /metrics HTTP/1.1\r\n\r\n");
    let m = raw.read_head();
    assert!(m.contains("\nwschat_connections 1000\n"), "{m}");
    assert!(m.contains("\nwschat_users 10\n"), "{m}");
}
