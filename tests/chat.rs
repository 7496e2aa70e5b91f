//! The chat protocol against the real binary, spoken by tungstenite (an independent client): the seed's
//! scenario exactly, private messages, every error code, logout on disconnect, rooms, history, metrics.

mod common;

use std::time::Duration;

use common::tung::{connect, recv, Ws};
use common::{probe, Daemon};
use serde_json::{json, Value};
use tungstenite::Message;

fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).expect("send");
}

fn login(ws: &mut Ws, name: &str) -> u64 {
    send(ws, json!({"type":"login","name":name}));
    let list = recv(ws);
    assert_eq!(list["type"], "user_list", "{list}");
    let me = recv(ws);
    assert_eq!(me["type"], "login");
    assert_eq!(me["name"], name);
    me["uid"].as_u64().expect("uid")
}

fn assert_time(v: &Value) {
    let t = v["time"].as_str().expect("time");
    assert!(chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok(), "bad time {t}");
}

#[test]
fn seed_scenario_exactly() {
    let d = Daemon::start(&[]);
    let mut pig = connect(&d);
    send(&mut pig, json!({"type":"login","name":"猪猪"}));
    let list = recv(&mut pig);
    let pig_uid = list["user_list"][0]["uid"].as_u64().unwrap();
    assert_eq!(list, json!({"type":"user_list","user_list":[{"uid":pig_uid,"name":"猪猪"}]}));
    let own = recv(&mut pig);
    assert_eq!((own["type"].as_str(), own["uid"].as_u64()), (Some("login"), Some(pig_uid)));

    let mut mynick = connect(&d);
    send(&mut mynick, json!({"type":"login","name":"mynick"}));
    let list = recv(&mut mynick);
    let uid = list["user_list"][1]["uid"].as_u64().unwrap();
    assert!(uid > pig_uid);
    assert_eq!(
        list,
        json!({"type":"user_list","user_list":[{"uid":pig_uid,"name":"猪猪"},{"uid":uid,"name":"mynick"}]})
    );
    for ws in [&mut mynick, &mut pig] {
        let login = recv(ws);
        assert_time(&login);
        assert_eq!(login, json!({"type":"login","uid":uid,"name":"mynick","time":login["time"]}));
        // Field order as in the seed.
        let keys: Vec<&String> = login.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4);
    }

    send(&mut mynick, json!({"type":"say","to_uid":"all","content":"hi,  all !"}));
    for ws in [&mut mynick, &mut pig] {
        let say = recv(ws);
        assert_time(&say);
        assert_eq!(say, json!({"type":"say","from_uid":uid,"to_uid":"all","content":"hi,  all !","time":say["time"]}));
    }
}

#[test]
fn server_json_keeps_the_seed_field_order() {
    let d = Daemon::start(&[]);
    let mut a = connect(&d);
    send(&mut a, json!({"type":"login","name":"mynick"}));
    let raw = |ws: &mut Ws| match ws.read().unwrap() {
        Message::Text(t) => t.as_str().to_string(),
        m => panic!("{m:?}"),
    };
    assert!(raw(&mut a).starts_with(r#"{"type":"user_list","user_list":[{"uid":"#));
    assert!(raw(&mut a).starts_with(r#"{"type":"login","uid":"#));
    send(&mut a, json!({"type":"say","to_uid":"all","content":"hi,  all !"}));
    let say = raw(&mut a);
    assert!(say.starts_with(r#"{"type":"say","from_uid":"#), "{say}");
    assert!(say.contains(r#","to_uid":"all","content":"hi,  all !","time":""#), "{say}");
}

#[test]
fn private_messages_reach_only_target_and_sender() {
    let d = Daemon::start(&[]);
    let (mut a, mut b, mut c) = (connect(&d), connect(&d), connect(&d));
    let ua = login(&mut a, "a");
    let ub = login(&mut b, "b");
    recv(&mut a); // b's login
    let _uc = login(&mut c, "c");
    recv(&mut a);
    recv(&mut b);
    send(&mut a, json!({"type":"say","to_uid":ub.to_string(),"content":"psst"}));
    let expected = |v: &Value| {
        assert_eq!(v["from_uid"].as_u64(), Some(ua));
        assert_eq!(v["to_uid"].as_u64(), Some(ub));
        assert_eq!(v["content"], "psst");
    };
    expected(&recv(&mut b));
    expected(&recv(&mut a));
    // c gets nothing: its next message is the one sent to all afterwards.
    send(&mut a, json!({"type":"say","to_uid":"all","content":"public"}));
    assert_eq!(recv(&mut c)["content"], "public");
    send(&mut a, json!({"type":"say","to_uid":ub,"content":"numeric uid"}));
    assert_eq!(recv(&mut b)["content"], "public");
    assert_eq!(recv(&mut b)["content"], "numeric uid");
}

#[test]
fn every_error_code_keeps_the_connection_open() {
    let d = Daemon::start(&[]);
    let mut ws = connect(&d);
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "bad_json"),
        ("[1,2]".into(), "bad_json"),
        (r#"{"type":"login","name":7}"#.into(), "bad_json"),
        ("{}".into(), "unknown_type"),
        (r#"{"type":"jump"}"#.into(), "unknown_type"),
        (r#"{"type":"say","to_uid":"all","content":"x"}"#.into(), "not_logged_in"),
        (r#"{"type":"login","name":""}"#.into(), "bad_name"),
        (format!(r#"{{"type":"login","name":"{}"}}"#, "n".repeat(33)), "bad_name"),
        (r#"{"type":"login","name":"tab\tname"}"#.into(), "bad_name"),
    ];
    for (text, code) in &cases {
        ws.send(Message::text(text.clone())).unwrap();
        let e = recv(&mut ws);
        assert_eq!(e["type"], "error", "{text}");
        assert_eq!(e["code"], *code, "{text}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    login(&mut ws, "ok");
    for (v, code) in [
        (json!({"type":"login","name":"again"}), "already_logged_in"),
        (json!({"type":"say","to_uid":999999,"content":"x"}), "no_such_user"),
        (json!({"type":"say","to_uid":"all","content":""}), "empty_content"),
    ] {
        send(&mut ws, v);
        assert_eq!(recv(&mut ws)["code"], code);
    }
    send(&mut ws, json!({"type":"say","to_uid":"all","content":"still here"}));
    assert_eq!(recv(&mut ws)["content"], "still here");
}

#[test]
fn leaving_users_are_announced_and_uids_are_not_reused() {
    let d = Daemon::start(&[]);
    let mut a = connect(&d);
    let ua = login(&mut a, "a");
    let mut b = connect(&d);
    let ub = login(&mut b, "b");
    recv(&mut a);
    drop(b); // TCP close without a close frame
    let out = recv(&mut a);
    assert_time(&out);
    assert_eq!(out, json!({"type":"logout","uid":ub,"name":"b","time":out["time"]}));
    let mut c = connect(&d);
    c.close(None).ok();
    let mut b2 = connect(&d);
    let ub2 = login(&mut b2, "b");
    assert!(ub2 > ub && ub > ua);
    // A clean close handshake also logs out.
    b2.close(None).unwrap();
    assert_eq!(recv(&mut a)["type"], "login");
    assert_eq!(recv(&mut a)["type"], "logout");
}

#[test]
fn content_is_relayed_unchanged() {
    let d = Daemon::start(&[]);
    let mut a = connect(&d);
    login(&mut a, "a");
    for content in ["<img src=x onerror=alert(1)>", "  spaces  ", "猪猪 \u{1F600} \"quotes\" \\ back", "&amp; <b>"] {
        send(&mut a, json!({"type":"say","to_uid":"all","content":content}));
        assert_eq!(recv(&mut a)["content"], content);
    }
}

#[test]
fn rooms_and_history() {
    let d = Daemon::start(&["--history", "2"]);
    let mut a = connect(&d);
    send(&mut a, json!({"type":"login","name":"a","room_id":"red"}));
    recv(&mut a);
    recv(&mut a);
    for i in 0..3 {
        send(&mut a, json!({"type":"say","to_uid":"all","content":format!("m{i}")}));
        recv(&mut a);
    }
    let mut blue = connect(&d);
    send(&mut blue, json!({"type":"login","name":"b","room_id":"blue"}));
    assert_eq!(recv(&mut blue)["user_list"].as_array().unwrap().len(), 1);
    assert_eq!(recv(&mut blue)["type"], "login");
    let mut red = connect(&d);
    send(&mut red, json!({"type":"login","name":"c","room_id":"red"}));
    assert_eq!(recv(&mut red)["user_list"].as_array().unwrap().len(), 2);
    assert_eq!(recv(&mut red)["content"], "m1");
    assert_eq!(recv(&mut red)["content"], "m2");
    assert_eq!(recv(&mut red)["type"], "login");
    // Say in blue is not seen in red.
    send(&mut blue, json!({"type":"say","to_uid":"all","content":"blue only"}));
    assert_eq!(recv(&mut blue)["content"], "blue only");
    send(&mut a, json!({"type":"say","to_uid":"all","content":"red"}));
    assert_eq!(recv(&mut a)["type"], "login");
    assert_eq!(recv(&mut a)["content"], "red");
}

#[test]
fn per_sender_order_is_kept_under_load() {
    let d = Daemon::start(&[]);
    let mut senders: Vec<Ws> = (0..4).map(|_| connect(&d)).collect();
    let mut reader = connect(&d);
    login(&mut reader, "reader");
    let mut uids = Vec::new();
    for (i, s) in senders.iter_mut().enumerate() {
        uids.push(login(s, &format!("s{i}")));
        recv(&mut reader);
    }
    const N: usize = 500;
    for n in 0..N {
        for s in senders.iter_mut() {
            s.send(Message::text(json!({"type":"say","to_uid":"all","content":n.to_string()}).to_string())).unwrap();
        }
    }
    let mut next = vec![0usize; uids.len()];
    for _ in 0..N * uids.len() {
        let v = recv(&mut reader);
        let who = uids.iter().position(|u| Some(*u) == v["from_uid"].as_u64()).expect("known sender");
        assert_eq!(v["content"], next[who].to_string(), "sender {who} out of order");
        next[who] += 1;
    }
    assert!(next.iter().all(|&n| n == N));
}

#[test]
fn metrics_count_what_happened() {
    let d = Daemon::start(&[]);
    let mut a = connect(&d);
    login(&mut a, "a");
    send(&mut a, json!({"type":"say","to_uid":"all","content":"x"}));
    recv(&mut a);
    let body = probe::metrics(d.http);
    let value = |name: &str| probe::metric_in(&body, name);
    assert_eq!(value("wschat_connections"), 1);
    assert_eq!(value("wschat_users"), 1);
    assert_eq!(value("wschat_messages_in_total"), 2);
    assert_eq!(value("wschat_deliveries_total"), 3);
    assert!(value("wschat_bytes_out_total") > 100);
    assert_eq!(value("wschat_slow_consumer_disconnects_total"), 0);
    assert_eq!(value("wschat_protocol_errors_total"), 0);
}

#[test]
fn rate_limit_refuses_excess_messages_with_an_error() {
    let d = Daemon::start(&["--max-messages-per-sec", "5"]);
    let mut a = connect(&d);
    login(&mut a, "chatty"); // the login used one of the five
    for i in 0..8 {
        send(&mut a, json!({"type":"say","to_uid":"all","content":format!("m{i}")}));
    }
    let answers: Vec<Value> = (0..8).map(|_| recv(&mut a)).collect();
    let said = answers.iter().filter(|v| v["type"] == "say").count();
    let limited = answers.iter().filter(|v| v["code"] == "rate_limited").count();
    assert_eq!((said, limited), (4, 4), "{answers:?}");
    std::thread::sleep(Duration::from_millis(500));
    send(&mut a, json!({"type":"say","to_uid":"all","content":"later"}));
    assert_eq!(recv(&mut a)["content"], "later");
}

/// Logs a raw client in and reads its user list and own login broadcast; returns the uid.
fn raw_login(raw: &mut common::Raw, name: &str) -> u64 {
    raw.send(&common::text_frame(&json!({"type":"login","name":name}).to_string()));
    assert_eq!(raw.read_json()["type"], "user_list");
    let me = raw.read_json();
    assert_eq!(me["name"], name);
    me["uid"].as_u64().expect("uid")
}

/// What a JSON message says in one word: its content, its error code, or its type.
fn gist(v: &Value) -> String {
    v["content"].as_str().or(v["code"].as_str()).or(v["type"].as_str()).unwrap_or("?").to_string()
}

#[test]
fn one_read_of_mixed_messages_keeps_every_connections_order() {
    // Several messages in one write reach the daemon in one read, so one loop turn: the room's broadcasts are
    // batched, and whatever goes to one connection alone must still sit between them in the right place.
    let d = Daemon::start(&[]);
    let mut a = common::Raw::open(d.ws);
    let mut b = common::Raw::open(d.ws);
    raw_login(&mut a, "a");
    let b_uid = raw_login(&mut b, "b");
    assert_eq!(a.read_json()["name"], "b");
    let turn = [
        json!({"type":"say","to_uid":"all","content":"one"}).to_string(),
        json!({"type":"say","to_uid":b_uid,"content":"private"}).to_string(),
        json!({"type":"say","to_uid":"all","content":"two"}).to_string(),
        "{not json".to_string(),
        json!({"type":"say","to_uid":"all","content":"three"}).to_string(),
    ];
    let bytes: Vec<u8> = turn.iter().flat_map(|t| common::text_frame(t)).collect();
    a.send(&bytes);
    let for_a: Vec<String> = (0..5).map(|_| gist(&a.read_json())).collect();
    assert_eq!(for_a, ["one", "private", "two", "bad_json", "three"]);
    let for_b: Vec<String> = (0..4).map(|_| gist(&b.read_json())).collect();
    assert_eq!(for_b, ["one", "private", "two", "three"]);

    // A broadcast and a close in one read: the broadcast still reaches everyone, the sender before its close
    // frame, and the others hear the logout after it.
    let mut bytes = common::text_frame(&json!({"type":"say","content":"bye"}).to_string());
    bytes.extend_from_slice(&common::client_frame(true, 0, 8, &1000u16.to_be_bytes()));
    a.send(&bytes);
    assert_eq!(gist(&a.read_json()), "bye");
    assert_eq!(a.expect_close(), 1000);
    assert_eq!(gist(&b.read_json()), "bye");
    assert_eq!(gist(&b.read_json()), "logout");
}
