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

// ---- 3. invisible characters in names --------------------------------------------------------------

/// Logs in on a fresh connection; returns the connection and the server's first answer.
fn try_login(d: &Daemon, name: &str) -> (Raw, serde_json::Value) {
    let mut raw = Raw::open(d.ws);
    raw.send(&text_frame(&serde_json::json!({"type":"login","name":name}).to_string()));
    let first = raw.read_json();
    (raw, first)
}

#[test]
fn names_with_invisible_characters_are_bad_names() {
    let d = Daemon::start(&[]);
    let invisible = [
        "\u{202E}",
        "\u{202A}",
        "\u{202B}",
        "\u{202C}",
        "\u{202D}",
        "\u{200B}",
        "\u{200C}",
        "\u{200D}",
        "\u{FEFF}",
        "\u{3164}",
        "\u{2028}",
        "\u{2029}",
        "\u{2066}",
        "\u{2067}",
        "\u{2068}",
        "\u{2069}",
        "\u{200E}",
        "\u{200F}",
        "\u{061C}",
        "\u{00AD}",
        "\u{115F}",
        "\u{1160}",
        "\u{FFA0}",
        "\u{2060}",
        "\u{2800}",
        "\u{034F}",
        "\u{180E}",
        "\u{FE0F}",
        "\u{E0001}",
        "\u{E0041}",
    ];
    for c in invisible {
        let mut names = vec![format!("ad{c}min"), c.repeat(3)];
        if c.trim() == c {
            // U+2028/U+2029 are whitespace: at the edges they are trimmed off like spaces.
            names.extend([format!("{c}admin"), format!("admin{c}")]);
        }
        for name in names {
            let (_raw, answer) = try_login(&d, &name);
            let code = c.chars().next().map_or(0, u32::from);
            assert_eq!(answer["type"], "error", "{name:?} (U+{code:04X}) was accepted: {answer}");
            assert_eq!(answer["code"], "bad_name", "{name:?}: {answer}");
        }
    }
    // A variation selector alone, or stacked, or a joiner that joins nothing visible.
    for name in
        ["\u{FE0F}\u{FE0F}", "a\u{FE0F}\u{FE0F}", "\u{200D}😀", "😀\u{200D}", "a\u{200D}b", "😀\u{200D}\u{200D}😀"]
    {
        let (_raw, answer) = try_login(&d, name);
        assert_eq!(answer["code"], "bad_name", "{name:?}: {answer}");
    }
}

#[test]
fn visible_non_ascii_names_and_emoji_still_work() {
    let d = Daemon::start(&[]);
    let names = [
        "猪猪",
        "Zoë Ångström",
        "Ελένη",
        "محمد",
        "שרה",
        "😀",
        "👍🏽",
        "❤️",
        "1️⃣",
        "👨‍👩‍👧",
        "🏳️‍🌈",
        "❤️‍🔥",
        "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        "葛\u{E0100}",
    ];
    let mut conns = Vec::new();
    for name in names {
        let (mut raw, list) = try_login(&d, name);
        assert_eq!(list["type"], "user_list", "{name:?}: {list}");
        let me = raw.read_json();
        assert_eq!((me["type"].as_str(), me["name"].as_str()), (Some("login"), Some(name)), "{me}");
        conns.push(raw);
    }
}

// ---- 4. to_uid strings must be canonical decimal ---------------------------------------------------

#[test]
fn non_canonical_to_uid_strings_reach_nobody() {
    let d = Daemon::start(&[]);
    // Twelve users first, so that the one under test has uid 13.
    let mut others = Vec::new();
    for i in 0..12 {
        let (mut raw, list) = try_login(&d, &format!("filler{i}"));
        assert_eq!(list["type"], "user_list");
        assert_eq!(raw.read_json()["type"], "login");
        others.push(raw);
    }
    let (mut target, list) = try_login(&d, "thirteen");
    assert_eq!(list["type"], "user_list");
    let me = target.read_json();
    assert_eq!(me["uid"], 13, "{me}");
    let (mut sender, list) = try_login(&d, "sender");
    assert_eq!(list["type"], "user_list");
    assert_eq!(sender.read_json()["type"], "login");
    assert_eq!(target.read_json()["name"], "sender", "the target sees the sender join");

    for to in ["+13", "013", " 13", "13 ", "1e1", "0x0d", "0013", "13.0", "\u{FF11}\u{FF13}", "-13", ""] {
        let say = serde_json::json!({"type":"say","to_uid":to,"content":format!("to {to:?}")});
        sender.send(&text_frame(&say.to_string()));
        let answer = sender.read_json();
        assert_eq!(answer["code"], "no_such_user", "to_uid {to:?}: {answer}");
    }
    // The canonical forms still reach uid 13, string and number alike; the target got nothing before them.
    for to in [serde_json::json!("13"), serde_json::json!(13)] {
        sender.send(&text_frame(&serde_json::json!({"type":"say","to_uid":to,"content":"psst"}).to_string()));
        let got = target.read_json();
        assert_eq!(
            (got["type"].as_str(), got["content"].as_str(), got["to_uid"].as_u64()),
            (Some("say"), Some("psst"), Some(13))
        );
        assert_eq!(sender.read_json()["content"], "psst", "echoed to the sender");
    }
}
