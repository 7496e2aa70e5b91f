//! Resume at the byte level, against the real daemon: sessions of clients that ask for them, what a resumed
//! connection is owed, how sessions end, and the bounds. Raw sockets, so a connection can end exactly as a
//! network does: a FIN or a reset without a close frame.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::probe::{eventually, messages_within, metric, metrics};
use common::{client_frame, text_frame, Daemon, Raw};
use serde_json::{json, Value};

/// A raw client that logged in (with a session when `resume`), its user list read.
fn login(ws: SocketAddr, name: &str, room: &str, resume: bool) -> (Raw, Value) {
    let mut raw = Raw::open(ws);
    let mut msg = json!({"type":"login","name":name,"room_id":room});
    if resume {
        msg["resume"] = json!(true);
    }
    raw.send(&text_frame(&msg.to_string()));
    let list = raw.read_json();
    assert_eq!(list["type"], "user_list", "{list}");
    (raw, list)
}

/// Reads JSON messages until one of `kind` (returned), keeping the others in `seen`.
fn until(raw: &mut Raw, kind: &str, seen: &mut Vec<Value>) -> Value {
    loop {
        let v = raw.read_json();
        if v["type"] == kind {
            return v;
        }
        seen.push(v);
    }
}

/// Sends `msg` as a text frame.
fn send(raw: &mut Raw, msg: Value) {
    raw.send(&text_frame(&msg.to_string()));
}

/// Reads the says `n` of them, skipping logins.
fn says(raw: &mut Raw, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let v = raw.read_json();
        if v["type"] == "say" {
            got.push(v);
        }
    }
    got
}

/// The connection ends as a network drop does: a FIN without a close frame.
fn drop_with_fin(raw: Raw) {
    let _ = raw.stream.shutdown(std::net::Shutdown::Both);
}

/// The connection ends with a reset (SO_LINGER 0).
fn drop_with_reset(raw: Raw) {
    let sock = socket2::SockRef::from(&raw.stream);
    let _ = sock.set_linger(Some(Duration::ZERO));
}

/// A new connection resuming `session` after `last_mid`; returns it, what came before `resumed`, and it.
fn resume(ws: SocketAddr, session: &str, last_mid: Option<&str>) -> (Raw, Vec<Value>, Value) {
    let mut raw = Raw::open(ws);
    send(&mut raw, json!({"type":"resume","session":session,"last_mid":last_mid}));
    let mut seen = Vec::new();
    let resumed = until(&mut raw, "resumed", &mut seen);
    (raw, seen, resumed)
}

/// (from, to, content) of a say.
fn key(v: &Value) -> (u64, String, String) {
    (v["from_uid"].as_u64().unwrap_or(0), v["to_uid"].to_string(), v["content"].as_str().unwrap_or("").to_string())
}

#[test]
fn a_client_that_does_not_ask_gets_the_same_bytes() {
    let d = Daemon::start(&[]);
    let (mut plain, list) = login(d.ws, "plain", "r", false);
    assert_eq!(list, json!({"type":"user_list","user_list":[{"uid":1,"name":"plain"}]}));
    plain.read_json();
    let mut session = Raw::open(d.ws);
    send(&mut session, json!({"type":"login","name":"s","room_id":"r","resume":true}));
    let list = session.read_frame().expect("user list").text();
    let id = serde_json::from_str::<Value>(&list).unwrap()["session"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(
        list,
        format!(
            r#"{{"type":"user_list","user_list":[{{"uid":1,"name":"plain"}},{{"uid":2,"name":"s"}}],"session":"{id}"}}"#
        )
    );
    send(&mut plain, json!({"type":"say","to_uid":"all","content":"x"}));
    let f = loop {
        let f = plain.read_frame().expect("frame");
        if f.text().contains("\"say\"") {
            break f;
        }
    };
    let time = serde_json::from_slice::<Value>(&f.payload).unwrap()["time"].as_str().unwrap().to_string();
    assert_eq!(f.text(), format!(r#"{{"type":"say","from_uid":1,"to_uid":"all","content":"x","time":"{time}"}}"#));
    let said = loop {
        let f = session.read_frame().expect("frame").text();
        if f.contains("\"say\"") {
            break f;
        }
    };
    let mid = serde_json::from_str::<Value>(&said).unwrap()["mid"].as_str().expect("a mid").to_string();
    assert!(!mid.is_empty() && mid.is_ascii());
    assert_eq!(
        said,
        format!(r#"{{"type":"say","from_uid":1,"to_uid":"all","content":"x","time":"{time}","mid":"{mid}"}}"#)
    );
}

#[test]
fn the_resumed_says_are_what_an_always_connected_member_received() {
    let d = Daemon::start(&[]);
    let (mut a, list) = login(d.ws, "a", "r", true);
    let session = list["session"].as_str().unwrap().to_string();
    let (mut b, _) = login(d.ws, "b", "r", true);
    let (mut c, _) = login(d.ws, "c", "r", false);
    let (ua, ub, uc) = (1, 2, 3);
    // Before the cut: a room say, a private say to a and one from a (both directions).
    send(&mut c, json!({"type":"say","to_uid":"all","content":"before"}));
    send(&mut c, json!({"type":"say","to_uid":ua,"content":"c to a 1"}));
    send(&mut a, json!({"type":"say","to_uid":uc,"content":"a to c"}));
    let got = says(&mut a, 3);
    // The network loses the last two frames a was sent: its client's last mid is the first.
    let last_mid = got[0]["mid"].as_str().unwrap().to_string();
    drop_with_fin(a);
    // While away: room says, privates to a, and a private between others.
    for i in 0..5 {
        send(&mut c, json!({"type":"say","to_uid":"all","content":format!("all {i}")}));
        if i % 2 == 0 {
            send(&mut c, json!({"type":"say","to_uid":ua,"content":format!("c to a {i}")}));
        }
        send(&mut c, json!({"type":"say","to_uid":ub,"content":format!("c to b {i}")}));
    }
    let b_saw = says(&mut b, 1 + 5 + 5);
    let (mut a2, replayed, resumed) = resume(d.ws, &session, Some(&last_mid));
    assert_eq!(replayed[0]["type"], "user_list");
    assert_eq!(replayed[0]["session"], session.as_str());
    assert_eq!(replayed[0]["user_list"], json!([{"uid":1,"name":"a"},{"uid":2,"name":"b"},{"uid":3,"name":"c"}]));
    let replayed: Vec<Value> = replayed[1..].to_vec();
    let mut want = vec![(uc, ua.to_string(), "c to a 1".to_string()), (ua, uc.to_string(), "a to c".to_string())];
    for i in 0..5 {
        want.push((uc, "\"all\"".to_string(), format!("all {i}")));
        if i % 2 == 0 {
            want.push((uc, ua.to_string(), format!("c to a {i}")));
        }
    }
    assert_eq!(replayed.iter().map(key).collect::<Vec<_>>(), want);
    assert!(replayed.iter().all(|v| v["type"] == "say" && v["mid"].is_string()));
    // The room's says carry the mids the always-connected member got for them.
    let b_mids: Vec<&Value> = b_saw.iter().filter(|v| v["to_uid"] == "all").map(|v| &v["mid"]).collect();
    let a_mids: Vec<&Value> = replayed.iter().filter(|v| v["to_uid"] == "all").map(|v| &v["mid"]).collect();
    assert_eq!(a_mids, b_mids[1..]);
    assert_eq!(resumed, json!({"type":"resumed","uid":ua,"recovered":true,"missed":want.len()}));
    // Nobody saw a logout or a login.
    let others = messages_within(&mut c, Duration::from_millis(300));
    assert!(others.iter().filter(|v| v["type"] == "login").count() == 1, "c's own only: {others:?}");
    assert!(others.iter().all(|v| v["type"] != "logout"), "{others:?}");
    // The resumed connection is the user: its says reach the room, the room's reach it.
    send(&mut a2, json!({"type":"say","to_uid":"all","content":"back"}));
    assert_eq!(says(&mut c, 1)[0]["from_uid"], ua);
    assert_eq!(says(&mut a2, 1)[0]["content"], "back");
}

#[test]
fn resume_twice_and_while_the_old_connection_is_open() {
    let d = Daemon::start(&[]);
    let (mut a, list) = login(d.ws, "a", "r", true);
    let session = list["session"].as_str().unwrap().to_string();
    let (mut w, _) = login(d.ws, "w", "r", false);
    a.read_json();
    w.read_json();
    // The old connection still open: it gets 4001.
    let (a2, _, resumed) = resume(d.ws, &session, None);
    assert_eq!(resumed["recovered"], true);
    assert_eq!(a.expect_close(), 4001);
    // And again, after a reset this time.
    drop_with_reset(a2);
    send(&mut w, json!({"type":"say","content":"m"}));
    let (mut a3, replayed, resumed) = resume(d.ws, &session, None);
    assert_eq!((replayed.len(), resumed["missed"].as_u64()), (2, Some(1)), "{replayed:?}");
    let (_a4, _, _) = resume(d.ws, &session, None);
    assert_eq!(a3.expect_close(), 4001);
    let others = messages_within(&mut w, Duration::from_millis(300));
    assert!(others.iter().all(|v| v["type"] == "say"), "{others:?}");
    assert_eq!(metric(d.http, "wschat_sessions_detached"), 0);
}

#[test]
fn a_goodbye_ends_the_session_at_once_and_other_ends_keep_it() {
    let d = Daemon::start(&[]);
    let (mut w, _) = login(d.ws, "w", "r", false);
    w.read_json();
    // Close 1000 and logout: one logout at once, the session gone.
    for how in ["close 1000", "logout"] {
        let (mut a, list) = login(d.ws, "a", "r", true);
        let session = list["session"].as_str().unwrap().to_string();
        assert_eq!(w.read_json()["type"], "login");
        match how {
            "logout" => send(&mut a, json!({"type":"logout"})),
            _ => a.send(&client_frame(true, 0, 8, &1000u16.to_be_bytes())),
        }
        assert_eq!(w.read_json()["type"], "logout", "{how}");
        let mut again = Raw::open(d.ws);
        send(&mut again, json!({"type":"resume","session":session,"last_mid":null}));
        let answer = again.read_json();
        assert_eq!(answer["code"], "session_expired", "{how}");
        // The connection stays open for a login.
        send(&mut again, json!({"type":"login","name":"z","room_id":"other"}));
        assert_eq!(again.read_json()["type"], "user_list");
    }
    // Close 1001 (a page reload), a FIN, a reset: nobody is told, the session resumes.
    for how in ["close 1001", "fin", "reset"] {
        let (mut a, list) = login(d.ws, "a", "r", true);
        let session = list["session"].as_str().unwrap().to_string();
        assert_eq!(w.read_json()["type"], "login");
        match how {
            "close 1001" => {
                a.send(&client_frame(true, 0, 8, &1001u16.to_be_bytes()));
                assert_eq!(a.expect_close(), 1001);
            }
            "fin" => drop_with_fin(a),
            _ => drop_with_reset(a),
        }
        assert!(messages_within(&mut w, Duration::from_millis(500)).is_empty(), "{how}: nobody is told");
        assert!(eventually(Duration::from_secs(5), || metric(d.http, "wschat_sessions_detached") == 1));
        let (mut back, _, resumed) = resume(d.ws, &session, None);
        assert_eq!(resumed["recovered"], true, "{how}");
        send(&mut back, json!({"type":"logout"}));
        assert_eq!(w.read_json()["type"], "logout");
    }
}

#[test]
fn at_the_default_grace_a_dropped_user_stays() {
    let d = Daemon::start(&[]);
    let (mut w, _) = login(d.ws, "w", "r", false);
    w.read_json();
    let (a, list) = login(d.ws, "a", "r", true);
    let session = list["session"].as_str().unwrap().to_string();
    w.read_json();
    drop_with_fin(a);
    // Well inside the default 30 s: still present, in a newcomer's list too.
    assert!(messages_within(&mut w, Duration::from_secs(3)).is_empty());
    let (_n, list) = login(d.ws, "n", "r", false);
    assert_eq!(list["user_list"], json!([{"uid":1,"name":"w"},{"uid":2,"name":"a"},{"uid":3,"name":"n"}]));
    assert_eq!(metric(d.http, "wschat_sessions_detached"), 1);
    let (_back, _, resumed) = resume(d.ws, &session, None);
    assert_eq!(resumed["uid"], 2);
}

#[test]
fn the_grace_running_out_is_exactly_one_logout() {
    let d = Daemon::start(&["--resume-grace-secs", "1"]);
    let (mut w, _) = login(d.ws, "w", "r", false);
    w.read_json();
    let (a, list) = login(d.ws, "a", "r", true);
    let session = list["session"].as_str().unwrap().to_string();
    w.read_json();
    drop_with_fin(a);
    // The loop wakes for the deadline by itself: nothing else happens meanwhile.
    let seen = messages_within(&mut w, Duration::from_secs(3));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0]["type"].as_str(), seen[0]["uid"].as_u64()), (Some("logout"), Some(2)));
    let mut late = Raw::open(d.ws);
    send(&mut late, json!({"type":"resume","session":session,"last_mid":null}));
    assert_eq!(late.read_json()["code"], "session_expired");
    let m = metrics(d.http);
    assert!(m.contains("wschat_sessions_expired_total 1\n"), "{m}");
    assert!(m.contains("wschat_sessions_detached 0\n"), "{m}");
}

#[test]
fn forged_ended_and_malformed_resumes_are_answered() {
    let d = Daemon::start(&[]);
    let mut raw = Raw::open(d.ws);
    for (msg, code) in [
        (json!({"type":"resume","session":"0123456789abcdef0123456789abcdef","last_mid":null}), "session_expired"),
        (json!({"type":"resume","session":"x".repeat(5000)}), "session_expired"),
        (json!({"type":"resume"}), "bad_json"),
        (json!({"type":"resume","session":7}), "bad_json"),
        (json!({"type":"resume","session":"a","last_mid":{}}), "bad_json"),
        (json!({"type":"login","name":"a","resume":"yes"}), "bad_json"),
    ] {
        send(&mut raw, msg.clone());
        assert_eq!(raw.read_json()["code"], code, "{msg}");
    }
    // Another user's ended session is no way in.
    let (mut other, list) = login(d.ws, "o", "r", true);
    let session = list["session"].as_str().unwrap().to_string();
    send(&mut other, json!({"type":"logout"}));
    send(&mut raw, json!({"type":"resume","session":session}));
    let answer = loop {
        let v = raw.read_json();
        if v["type"] == "error" {
            break v;
        }
    };
    assert_eq!(answer["code"], "session_expired");
    // Logged in: a resume is refused.
    send(&mut raw, json!({"type":"login","name":"me"}));
    raw.read_json();
    send(&mut raw, json!({"type":"resume","session":"0123456789abcdef0123456789abcdef"}));
    let answer = until(&mut raw, "error", &mut Vec::new());
    assert_eq!(answer["code"], "already_logged_in");
}

#[test]
fn past_the_resume_buffer_the_newest_are_kept_and_the_resume_says_so() {
    let d = Daemon::start(&["--resume-buffer", "4096"]);
    let (a, list) = login(d.ws, "a", "r", true);
    let session = list["session"].as_str().unwrap().to_string();
    let (mut w, _) = login(d.ws, "w", "r", false);
    drop_with_fin(a);
    for i in 0..40 {
        send(&mut w, json!({"type":"say","content":format!("{i:03} {}", "x".repeat(200))}));
    }
    says(&mut w, 40);
    let (_a, replayed, resumed) = resume(d.ws, &session, None);
    assert_eq!(resumed["recovered"], false);
    let got: Vec<String> = replayed[1..].iter().map(|v| v["content"].as_str().unwrap()[..3].to_string()).collect();
    assert!(!got.is_empty() && got.len() < 40, "{}", got.len());
    assert_eq!(resumed["missed"].as_u64(), Some(got.len() as u64));
    let want: Vec<String> = (40 - got.len()..40).map(|i| format!("{i:03}")).collect();
    assert_eq!(got, want, "the newest, in order");
    assert!(metrics(d.http).contains("wschat_resumes_total{recovered=\"false\"} 1\n"));
}

#[test]
fn opening_sessions_and_dropping_them_cannot_grow_memory_past_the_bounds() {
    // The say logs count against the output budget: at 1 MiB here, 200 rooms of dropped sessions with 16 KiB
    // of says each (3.2 MiB) are held to it.
    let d = Daemon::start(&["--max-output-bytes", "1048576", "--send-buffer-limit", "65536"]);
    let big = "y".repeat(4000);
    let rss_before = common::probe::rss_kib(d.child.id());
    let mut sessions = Vec::new();
    for i in 0..200 {
        let room = format!("room{i}");
        let (mut a, list) = login(d.ws, "a", &room, true);
        sessions.push(list["session"].as_str().unwrap().to_string());
        for _ in 0..4 {
            send(&mut a, json!({"type":"say","content":big}));
        }
        says(&mut a, 4);
        if i % 2 == 0 {
            drop_with_fin(a);
        } else {
            drop_with_reset(a);
        }
    }
    assert!(eventually(Duration::from_secs(5), || metric(d.http, "wschat_sessions_detached") == 200));
    let held = metric(d.http, "wschat_resume_buffer_bytes");
    assert!(held > 0 && held <= 1_048_576, "{held}");
    let grown = common::probe::rss_kib(d.child.id()).saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "resident memory grew {grown} KiB for 3.2 MiB of says held to 1 MiB");
    // Every one of them still resumes: the newest with all it missed, the oldest without what gave way.
    let (_newest, _, resumed) = resume(d.ws, &sessions[199], None);
    assert_eq!((resumed["recovered"].as_bool(), resumed["missed"].as_u64()), (Some(true), Some(4)));
    let (_oldest, _, resumed) = resume(d.ws, &sessions[0], None);
    assert_eq!(resumed["recovered"], false);
}

#[test]
fn a_ping_timeout_detaches_rather_than_logs_out() {
    let d = Daemon::start(&["--ping-interval-secs", "1"]);
    let (mut w, _) = login(d.ws, "w", "r", false);
    let (mut a, list) = login(d.ws, "a", "r", true);
    let session = list["session"].as_str().unwrap().to_string();
    // a never answers a ping: the server closes it after two intervals (1001). w stays heard from (a pong
    // every 300 ms) and watches.
    let watcher = std::thread::spawn(move || {
        w.set_read_timeout(Duration::from_millis(300)).expect("timeout");
        let mut got = Vec::new();
        for _ in 0..12 {
            w.send(&client_frame(true, 0, 10, b""));
            while let Some(f) = w.try_read_frame() {
                if f.opcode == 1 {
                    got.push(serde_json::from_slice::<Value>(&f.payload).expect("JSON"));
                }
            }
        }
        (w, got)
    });
    let mut closed = false;
    while let Some(f) = a.read_frame() {
        if f.opcode == 8 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the silent client was closed");
    let (mut w, seen) = watcher.join().expect("watcher");
    send(&mut w, json!({"type":"say","content":"still here"}));
    assert_eq!(says(&mut w, 1)[0]["content"], "still here", "the watcher was kept");
    assert!(seen.iter().all(|v| v["type"] != "logout"), "{seen:?}");
    assert_eq!(metric(d.http, "wschat_sessions_detached"), 1);
    let (_back, _, resumed) = resume(d.ws, &session, None);
    assert_eq!(resumed["uid"], 2);
}
