//! The server API (`--api`) against the real daemon, over raw TCP: the key (401 without it), keep-alive and
//! pipelining, every refusal the HTTP framing has (400, 404, 405, 411, 413 before the body is sent), the port
//! refusing WebSocket upgrades, and the verbs this build serves — who is where, and text pushed verbatim to
//! the connections of a room, an account or a uid (with exclusions), byte-checked on the chat side.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::api::{key_file, request, Client};
use common::{text_frame, Daemon, Raw};
use serde_json::json;

fn daemon(test: &str, extra: &[&str]) -> (Daemon, SocketAddr) {
    let key = key_file(test);
    let mut args = vec!["--api", "127.0.0.1:0", "--api-key-file", key.to_str().expect("path")];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let api = d.api.expect("the listening line names the API's address");
    (d, api)
}

fn login(ws: SocketAddr, name: &str, room: &str) -> Raw {
    let mut raw = Raw::open(ws);
    raw.send(&text_frame(&json!({"type":"login","name":name,"room_id":room}).to_string()));
    assert_eq!(raw.read_json()["type"], "user_list");
    raw
}

#[test]
fn the_key_keep_alive_and_pipelining() {
    let (d, api) = daemon("keys", &[]);
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
    // Counted on /metrics by status class.
    let m = common::probe::metrics(d.http);
    assert!(m.contains("\nwschat_api_requests_total{status=\"2xx\"} 4\n"), "{m}");
    assert!(m.contains("\nwschat_api_requests_total{status=\"4xx\"} 2\n"), "{m}");
    let closed = || common::probe::metric(d.http, "wschat_api_connections") == 0;
    assert!(common::probe::eventually(Duration::from_secs(5), closed), "the closed connection is gone");
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

/// `text` with its `"time":"YYYY-MM-DD HH:MM:SS"` replaced by `"time":"T"`.
fn untimed(text: &str) -> String {
    match text.find(r#""time":""#) {
        Some(at) => format!("{}T{}", &text[..at + 8], &text[at + 8 + 19..]),
        None => text.to_string(),
    }
}

#[test]
fn a_say_from_the_server_in_each_members_dialect() {
    let (d, api) = daemon("say", &["--history", "5"]);
    let mut seed = login(d.ws, "seed", "1");
    seed.read_json();
    let mut wm = Raw::open(d.ws);
    wm.send(&text_frame(r#"{"type":"login","client_name":"wm","room_id":1}"#));
    wm.read_text();
    seed.read_json(); // wm's login
    let mut resuming = Raw::open(d.ws);
    resuming.send(&text_frame(r#"{"type":"login","name":"r","room_id":"1","resume":true}"#));
    resuming.read_json();
    resuming.read_json();
    seed.read_json();
    wm.read_text();
    let mut http = Client::open(api);
    let content = "<b>maintenance</b> at 5";
    http.send(&request("POST", "/api/say", Some(&json!({"room":"1","content":content})), true));
    assert_eq!(http.response().2, json!({"ok":true,"room":"1","users":3}));
    assert_eq!(
        untimed(&seed.read_text()),
        r#"{"type":"say","from_uid":0,"to_uid":"all","content":"<b>maintenance</b> at 5","time":"T"}"#
    );
    assert_eq!(
        untimed(&wm.read_text()),
        r#"{"type":"say","from_client_id":"0","from_client_name":"server","to_client_id":"all","content":"&lt;b&gt;maintenance&lt;/b&gt; at 5","time":"T"}"#
    );
    let said = resuming.read_json();
    assert_eq!((said["from_uid"].as_u64(), said["content"].as_str()), (Some(0), Some(content)));
    assert!(said["mid"].is_string(), "a client with a session gets a mid: {said}");
    // To one user of the room, and kept in the room's history (says to all only).
    http.send(&request("POST", "/api/say", Some(&json!({"room":"1","content":"psst","to_uid":1})), true));
    assert_eq!(http.response().2, json!({"ok":true,"room":"1","users":1}));
    assert_eq!(untimed(&seed.read_text()), r#"{"type":"say","from_uid":0,"to_uid":1,"content":"psst","time":"T"}"#);
    http.send(&request("GET", "/api/rooms/1/history", None, true));
    let history = http.response().2;
    assert_eq!(history["history"].as_array().map(Vec::len), Some(1), "{history}");
    assert_eq!(history["history"][0]["from_uid"], 0);
    let mut late = login(d.ws, "late", "1");
    let past = late.read_json();
    assert_eq!((past["from_uid"].as_u64(), past["content"].as_str()), (Some(0), Some(content)), "a newcomer's history");
    // Refusals: nobody in the room, a user of another room, a bad body.
    for (body, status) in [
        (json!({"room":"empty","content":"x"}), 404),
        (json!({"room":"1","content":"x","to_uid":99}), 404),
        (json!({"room":"1","content":""}), 400),
        (json!({"room":"1"}), 400),
        (json!({"room":1,"content":"x"}), 400),
    ] {
        http.send(&request("POST", "/api/say", Some(&body), true));
        assert_eq!(http.response().0, status, "{body}");
    }
    http.send(&request("GET", "/api/say", None, true));
    assert_eq!(http.response().0, 405);
}
