//! Finding 8 of the hardening issue, against the real binary: request heads with many header lines, HEAD and
//! absolute-form targets on the web port, invisible characters in names, and non-canonical `to_uid` strings.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{text_frame, upgrade_request, Daemon, Raw};

/// Sends `request` and returns everything the server answers until it closes the connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&out)),
    }
    out
}

/// The status code, the head (up to the blank line) and the body of a response.
fn split(response: &[u8]) -> (u16, String, Vec<u8>) {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, response[end..].to_vec())
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head}"))
}

/// `n` header lines `X-Filler-i: value`.
fn filler(n: usize, value: &str) -> String {
    (0..n).map(|i| format!("X-Filler-{i}: {value}\r\n")).collect()
}

// ---- 1. header lines: only the 8 KiB limit matters -----------------------------------------------

#[test]
fn ws_port_upgrades_with_100_header_lines_and_refuses_over_8_kib() {
    let d = Daemon::start(&[]);
    for n in [65, 100, 120] {
        let req = upgrade_request(&filler(n, "some-value"));
        assert!(req.len() < 8192, "{n} lines: {} bytes", req.len());
        let mut raw = Raw::connect(d.ws);
        raw.send(req.as_bytes());
        let head = raw.read_head();
        assert!(head.starts_with("HTTP/1.1 101 "), "{n} header lines: {head}");
        raw.send(&text_frame(r#"{"type":"login","name":"many"}"#));
        assert_eq!(raw.read_json()["type"], "user_list");
    }
    // 100 lines that add up to more than 8 KiB: 431, then close.
    let req = upgrade_request(&filler(100, &"v".repeat(90)));
    assert!(req.len() > 8192);
    let (status, head, _) = split(&exchange(d.ws, req.as_bytes()));
    assert_eq!(status, 431, "{head}");
}

#[test]
fn web_port_serves_100_header_lines_and_refuses_over_8_kib() {
    let d = Daemon::start(&[]);
    for n in [65, 100, 120] {
        let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", filler(n, "some-value"));
        assert!(req.len() < 8192);
        let (status, head, body) = split(&exchange(d.http, req.as_bytes()));
        assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]), "{n} header lines: {head}");
    }
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", filler(100, &"v".repeat(90)));
    assert!(req.len() > 8192);
    let (status, head, _) = split(&exchange(d.http, req.as_bytes()));
    assert_eq!(status, 431, "{head}");
}

// ---- 2. HEAD and absolute-form targets on the web port ---------------------------------------------

#[test]
fn head_on_the_web_port_is_get_without_a_body() {
    let d = Daemon::start(&[]);
    for path in ["/", "/index.html", "/healthz", "/nope", "/?ws=ws://127.0.0.1:1/"] {
        let get = exchange(d.http, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let head = exchange(d.http, format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let (get_status, get_head, get_body) = split(&get);
        let (head_status, head_head, head_body) = split(&head);
        assert_eq!(head_status, get_status, "HEAD {path}: {head_head}");
        assert_eq!(head_head, get_head, "HEAD {path}: the same header fields as GET");
        assert_eq!(content_length(&head_head), get_body.len(), "HEAD {path}: Content-Length of the GET body");
        assert!(head_body.is_empty(), "HEAD {path} sent a body: {:?}", String::from_utf8_lossy(&head_body));
    }
    // /metrics changes between two requests; its HEAD still announces a length and sends nothing after.
    let (status, head, body) = split(&exchange(d.http, b"HEAD /metrics HTTP/1.1\r\n\r\n"));
    assert_eq!(status, 200, "{head}");
    assert!(content_length(&head) > 0 && body.is_empty(), "{head}");
    // Other methods still get 405, whose Allow now names both.
    let (status, head, _) = split(&exchange(d.http, b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD\r\n"), "{head}");
}

#[test]
fn absolute_form_targets_are_routed_by_their_path() {
    let d = Daemon::start(&[]);
    let host = d.http;
    let cases = [
        (format!("GET http://{host}/healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"), 200, Some(&b"ok\n"[..])),
        (format!("GET http://{host}/healthz?probe=1 HTTP/1.1\r\nHost: {host}\r\n\r\n"), 200, Some(&b"ok\n"[..])),
        (format!("GET HTTPS://{host}/healthz HTTP/1.1\r\n\r\n"), 200, Some(&b"ok\n"[..])),
        (format!("GET http://{host}/nope HTTP/1.1\r\n\r\n"), 404, None),
        (format!("HEAD http://{host}/healthz HTTP/1.1\r\n\r\n"), 200, Some(&b""[..])),
    ];
    for (req, want, want_body) in cases {
        let (status, head, body) = split(&exchange(host, req.as_bytes()));
        assert_eq!(status, want, "{req:?} -> {head}");
        if let Some(b) = want_body {
            assert_eq!(body, b, "{req:?}");
        }
    }
    for target in [format!("http://{host}/"), format!("http://{host}"), format!("http://{host}?ws=x")] {
        let (status, head, body) = split(&exchange(host, format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes()));
        assert_eq!(status, 200, "{target} -> {head}");
        assert!(head.contains("Content-Type: text/html"), "{target} -> {head}");
        assert!(String::from_utf8_lossy(&body).contains(&format!("content=\"{}\"", d.ws.port())));
    }
    let (status, head, body) = split(&exchange(host, format!("GET http://{host}/metrics HTTP/1.1\r\n\r\n").as_bytes()));
    assert_eq!(status, 200, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("# TYPE wschat_connections gauge"));
}

#[test]
fn ws_port_still_wants_get_for_an_upgrade() {
    let d = Daemon::start(&[]);
    let (status, head, _) = split(&exchange(d.ws, upgrade_request("").replace("GET ", "HEAD ").as_bytes()));
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("Allow: GET\r\n"), "{head}");
    let (status, head, _) = split(&exchange(d.ws, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(status, 426, "{head}");
    let (status, head, _) = split(&exchange(d.ws, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(status, 405, "{head}");
}
