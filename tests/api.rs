//! The server API (`--api`) against the real daemon, over raw TCP: the key (401 without it), keep-alive and
//! pipelining, every refusal the HTTP framing has (400, 404, 405, 411, 413 before the body is sent), the port
//! refusing WebSocket upgrades, and the verbs this build serves — who is where, and text pushed verbatim to
//! the connections of a room, an account or a uid (with exclusions), byte-checked on the chat side.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::{text_frame, Daemon, Raw};
use serde_json::{json, Value};

const KEY: &str = "test-api-key-0123456789";

fn key_file(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wschat-test-api-{}-{test}.key", std::process::id()));
    std::fs::write(&path, format!("{KEY}\n")).expect("write the key");
    path
}

fn daemon(test: &str, extra: &[&str]) -> (Daemon, SocketAddr) {
    let key = key_file(test);
    let mut args = vec!["--api", "127.0.0.1:0", "--api-key-file", key.to_str().expect("path")];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let api = d.api.expect("the listening line names the API's address");
    (d, api)
}

/// One API connection, read with a timeout.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        Client { stream, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// One response: status, head, JSON body.
    fn response(&mut self) -> (u16, String, Value) {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse().ok())
                    .expect("content-length");
                if self.buf.len() >= end + 4 + len {
                    let body: Vec<u8> = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("status");
                    return (status, head, serde_json::from_slice(&body).expect("JSON body"));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("read a response");
            assert!(n > 0, "connection closed before a response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the server closed the connection (after what was read).
    fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }
}

fn request(method: &str, path: &str, body: Option<&Value>, auth: bool) -> Vec<u8> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = if auth { format!("Authorization: Bearer {KEY}\r\n") } else { String::new() };
    format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn login(ws: SocketAddr, name: &str, room: &str) -> Raw {
    let mut raw = Raw::open(ws);
    raw.send(&text_frame(&json!({"type":"login","name":name,"room_id":room}).to_string()));
    assert_eq!(raw.read_json()["type"], "user_list");
    raw
}

#[test]
fn the_key_keep_alive_and_pipelining() {
    let (_d, api) = daemon("keys", &[]);
    let mut c = Client::open(api);
    c.send(&request("GET", "/api/rooms", None, false));
    let (status, head, body) = c.response();
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    let mut wrong = request("GET", "/api/rooms", None, false);
    wrong
        .splice(wrong.len() - 2..wrong.len() - 2, b"Authorization: Bearer test-api-key-0123456780\r\n".iter().copied());
    c.send(&wrong);
    assert_eq!(c.response().0, 401);
    // Three requests in one write, answered in order on the same connection.
    let mut three = request("GET", "/api/rooms", None, true);
    three.extend(request("GET", "/api/rooms/r/users", None, true));
    three.extend(request("GET", "/api/users/nobody", None, true));
    c.send(&three);
    assert_eq!(c.response().2, json!({"ok":true,"rooms":[]}));
    assert_eq!(c.response().2, json!({"ok":true,"room":"r","users":[]}));
    assert_eq!(c.response().2, json!({"ok":true,"user_id":"nobody","online":false,"sessions":[]}));
    // Connection: close is honoured.
    c.send(b"GET /api/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer test-api-key-0123456789\r\n\r\n");
    let (status, head, _) = c.response();
    assert!(status == 200 && head.contains("Connection: close"), "{head}");
    assert!(c.closed());
}

#[test]
fn every_refusal_of_the_framing() {
    let (_d, api) = daemon("refusals", &[]);
    let cases: [(&[u8], u16, &str); 6] = [
        (b"GET /api/nothing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-api-key-0123456789\r\n\r\n", 404, "not_found"),
        (b"DELETE /api/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-api-key-0123456789\r\n\r\n", 405, "method_not_allowed"),
        (b"POST /api/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-api-key-0123456789\r\nContent-Length: 5\r\n\r\nnope!", 400, "bad_request"),
        (b"POST /api/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "length_required"),
        (b"POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n", 413, "too_large"),
        (b"GET /api/rooms HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer test-api-key-0123456789\r\n\r\n", 400, "bad_request"),
    ];
    for (bytes, want, code) in cases {
        let mut c = Client::open(api);
        c.send(bytes);
        let (status, head, body) = c.response();
        assert_eq!((status, body["error"].as_str()), (want, Some(code)), "{}", String::from_utf8_lossy(bytes));
        assert_eq!(body["ok"], false);
        if want == 405 {
            assert!(head.contains("Allow: GET"), "{head}");
        }
    }
    // A body cut short is waited for; the rest completes it.
    let mut c = Client::open(api);
    let body = json!({"to":{"all":true},"data":"x"}).to_string();
    let whole = request("POST", "/api/send", Some(&serde_json::from_str(&body).unwrap()), true);
    c.send(&whole[..whole.len() - 5]);
    std::thread::sleep(Duration::from_millis(200));
    c.send(&whole[whole.len() - 5..]);
    assert_eq!(c.response().2, json!({"ok":true,"queued":0}));
}

#[test]
fn who_is_where_and_text_pushed_to_connections() {
    let (d, api) = daemon("verbs", &[]);
    let mut a = login(d.ws, "a", "r1");
    let mut b = login(d.ws, "b", "r1");
    let mut c = login(d.ws, "c", "r2");
    a.read_json(); // a's own login
    a.read_json(); // b's login
    b.read_json();
    c.read_json();
    let mut http = Client::open(api);
    http.send(&request("GET", "/api/rooms", None, true));
    assert_eq!(http.response().2, json!({"ok":true,"rooms":[{"room":"r1","users":2},{"room":"r2","users":1}]}));
    http.send(&request("GET", "/api/rooms/r1/users", None, true));
    assert_eq!(http.response().2, json!({"ok":true,"room":"r1","users":[{"uid":1,"name":"a"},{"uid":2,"name":"b"}]}));
    // Verbatim, as one text frame: what the backend sends is what the client reads.
    let data = r#"{"type":"notice","text":"maintenance at 5"}"#;
    http.send(&request("POST", "/api/send", Some(&json!({"to":{"room":"r1"},"data":data,"exclude_uids":[2]})), true));
    assert_eq!(http.response().2, json!({"ok":true,"queued":1}));
    assert_eq!(a.read_text(), data);
    http.send(&request("POST", "/api/send", Some(&json!({"to":{"uid":3},"data":"just you"})), true));
    assert_eq!(http.response().2, json!({"ok":true,"queued":1}));
    assert_eq!(c.read_text(), "just you");
    http.send(&request("POST", "/api/send", Some(&json!({"to":{"all":true},"data":"everyone"})), true));
    assert_eq!(http.response().2, json!({"ok":true,"queued":3}));
    for raw in [&mut a, &mut b, &mut c] {
        assert_eq!(raw.read_text(), "everyone");
    }
}

#[test]
fn the_flags_are_checked_at_start() {
    let bin = env!("CARGO_BIN_EXE_wschat");
    let short = std::env::temp_dir().join(format!("wschat-test-api-{}-short.key", std::process::id()));
    std::fs::write(&short, "short\n").expect("write");
    let cases: [(Vec<String>, &str); 3] = [
        (vec!["--api".into(), "127.0.0.1:0".into()], "--api-key-file"),
        (
            vec!["--api".into(), "127.0.0.1:0".into(), "--api-key-file".into(), short.display().to_string()],
            "at least 16 bytes",
        ),
        (
            vec!["--api".into(), "127.0.0.1:0".into(), "--api-key-file".into(), "/nonexistent/key".into()],
            "cannot read it",
        ),
    ];
    for (args, says) in cases {
        let out = std::process::Command::new(bin)
            .args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(&args)
            .output()
            .expect("run wschat");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_rooms_history_as_say_objects() {
    let (d, api) = daemon("history", &["--history", "5"]);
    let mut a = login(d.ws, "a", "lobby");
    a.read_json();
    for said in ["hi,  all !", "second", "third"] {
        a.send(&text_frame(&json!({"type":"say","to_uid":"all","content":said}).to_string()));
        a.read_json();
    }
    let mut http = Client::open(api);
    http.send(&request("GET", "/api/rooms/lobby/history?limit=2", None, true));
    let (_, _, body) = http.response();
    let says = body["history"].as_array().expect("history");
    assert_eq!(says.len(), 2, "{body}");
    assert_eq!((says[0]["content"].as_str(), says[1]["content"].as_str()), (Some("second"), Some("third")));
    assert_eq!(
        (says[1]["type"].as_str(), says[1]["from_uid"].as_u64(), says[1]["to_uid"].as_str()),
        (Some("say"), Some(1), Some("all"))
    );
    // Percent-decoded path segments: a room with a space.
    let mut b = login(d.ws, "b", "the lounge");
    b.read_json();
    http.send(&request("GET", "/api/rooms/the%20lounge/users", None, true));
    assert_eq!(http.response().2, json!({"ok":true,"room":"the lounge","users":[{"uid":2,"name":"b"}]}));
}

#[test]
fn a_closed_user_is_logged_out_and_cannot_resume() {
    let (d, api) = daemon("close", &[]);
    let mut a = Raw::open(d.ws);
    a.send(&text_frame(r#"{"type":"login","name":"a","room_id":"r","resume":true}"#));
    let session = a.read_json()["session"].as_str().expect("session").to_string();
    a.read_json();
    let mut b = login(d.ws, "b", "r");
    b.read_json();
    a.read_json();
    let mut http = Client::open(api);
    for bad in
        [json!({"uid":1,"user_id":"x"}), json!({}), json!({"uid":1,"reason":"x".repeat(124)}), json!({"uid":"1"})]
    {
        http.send(&request("POST", "/api/close", Some(&bad), true));
        assert_eq!(http.response().0, 400, "{bad}");
    }
    http.send(&request("POST", "/api/close", Some(&json!({"uid":1,"reason":"account suspended"})), true));
    assert_eq!(http.response().2, json!({"ok":true,"closed":1}));
    assert_eq!(a.expect_close(), 4000);
    let logout = b.read_json();
    assert_eq!((logout["type"].as_str(), logout["uid"].as_u64()), (Some("logout"), Some(1)));
    // The session ended with it.
    let mut again = Raw::open(d.ws);
    again.send(&text_frame(&json!({"type":"resume","session":session,"last_mid":null}).to_string()));
    assert_eq!(again.read_json()["code"], "session_expired");
    // Nobody left to close.
    http.send(&request("POST", "/api/close", Some(&json!({"uid":1})), true));
    assert_eq!(http.response().2, json!({"ok":true,"closed":0}));
    http.send(&request("GET", "/api/close", None, true));
    assert_eq!(http.response().0, 405);
}
