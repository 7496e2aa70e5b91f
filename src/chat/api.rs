//! The server API's verbs on the chat of this process (sans-IO): what is in the rooms, who is online, and text
//! pushed verbatim to connections — each call answered with its JSON. The reactor's API port reads the
//! requests and writes the answers; nothing here knows a socket.

use serde::Deserialize;
use serde_json::{json, Value};

use super::dialect::text_frame;
use super::event::{Event, Said};
use super::hub::Hub;
use super::presence::Presence;
use super::roster::Home;
use crate::api::request::{Method, Request};
use crate::api::ApiAnswer;
use crate::app::{ConnId, Effects};

/// Answers `req` from `hub`'s chat; a send queues its frames on `out`. `max_message_bytes` bounds what a send
/// may push (`--max-message-bytes`).
pub fn answer<P: Presence>(hub: &Hub<P>, req: &Request, max_message_bytes: usize, out: &mut Effects) -> ApiAnswer {
    let path: Vec<&str> = req.path.iter().map(String::as_str).collect();
    match (req.method, path.as_slice()) {
        (Method::Get, ["api", "rooms"]) => rooms(hub),
        (Method::Get, ["api", "rooms", room, "users"]) => room_users(hub, room),
        (Method::Get, ["api", "users", user_id]) => user(hub, user_id),
        (Method::Get, ["api", "rooms", room, "history"]) => history(hub, room, &req.query),
        (Method::Post, ["api", "send"]) => send(hub, &req.body, max_message_bytes, out),
        (_, ["api", "rooms"] | ["api", "rooms", _, "users" | "history"] | ["api", "users", _]) => {
            ApiAnswer::method_not_allowed("GET")
        }
        (_, ["api", "send" | "close"]) => ApiAnswer::method_not_allowed("POST"),
        _ => ApiAnswer::error(404, "not_found", "no such API path"),
    }
}

/// `GET /api/rooms`: every room with users, sorted.
fn rooms<P: Presence>(hub: &Hub<P>) -> ApiAnswer {
    let rooms: Vec<Value> =
        hub.roster().rooms_sorted().into_iter().map(|(room, users)| json!({"room": room, "users": users})).collect();
    ApiAnswer::ok(json!({"ok": true, "rooms": rooms}))
}

/// `GET /api/rooms/{R}/users`: the room's users in login order (an empty room has none).
fn room_users<P: Presence>(hub: &Hub<P>, room: &str) -> ApiAnswer {
    let mut users = Vec::new();
    if let Some(r) = hub.roster().room(room) {
        r.each_from(0, |uid, name, user_id| users.push(user_entry(uid, name, user_id)));
    }
    ApiAnswer::ok(json!({"ok": true, "room": room, "users": users}))
}

/// One user as the API lists it: `user_id` only when a token proved one.
fn user_entry(uid: u64, name: &str, user_id: Option<&str>) -> Value {
    match user_id {
        Some(id) => json!({"uid": uid, "name": name, "user_id": id}),
        None => json!({"uid": uid, "name": name}),
    }
}

/// `GET /api/users/{S}`: whether account `S` is online, and where (a detached session counts: the user is
/// present for its grace).
fn user<P: Presence>(hub: &Hub<P>, user_id: &str) -> ApiAnswer {
    let sessions: Vec<Value> = hub
        .roster()
        .seats_of_account(user_id)
        .into_iter()
        .map(|(uid, seat)| json!({"uid": uid, "room": &*seat.room}))
        .collect();
    ApiAnswer::ok(json!({"ok": true, "user_id": user_id, "online": !sessions.is_empty(), "sessions": sessions}))
}

/// `GET /api/rooms/{R}/history?limit=N`: the newest N (default all) says to all the room keeps, oldest
/// first, as the seed protocol's say objects.
fn history<P: Presence>(hub: &Hub<P>, room: &str, query: &[(String, String)]) -> ApiAnswer {
    let limit = match query.iter().find(|(k, _)| k == "limit") {
        None => usize::MAX,
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return ApiAnswer::error(400, "bad_request", "limit must be a whole number"),
        },
    };
    let said: Vec<&Said> = hub.said_in(room).collect();
    let says: Vec<Value> = said[said.len().saturating_sub(limit)..]
        .iter()
        .filter_map(|s| match s.event() {
            Event::Say { from_uid, content, time, .. } => {
                Some(json!({"type": "say", "from_uid": from_uid, "to_uid": "all", "content": content, "time": time}))
            }
            _ => None,
        })
        .collect();
    ApiAnswer::ok(json!({"ok": true, "room": room, "history": says}))
}

/// Longest close reason (a close frame's payload is at most 125 bytes, 2 of them the code).
pub const MAX_CLOSE_REASON: usize = 123;

/// The body of `POST /api/close`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    uid: Option<u64>,
    user_id: Option<String>,
    reason: Option<String>,
}

/// `POST /api/close`: the users it names (uids, sorted) and the reason their connections are closed with; or
/// the answer to a body that names nobody or too long a reason.
pub fn close_targets<P: Presence>(hub: &Hub<P>, body: &[u8]) -> Result<(Vec<u64>, String), ApiAnswer> {
    let body: CloseBody = serde_json::from_slice(body)
        .map_err(|e| ApiAnswer::error(400, "bad_request", &format!("the body is not a close: {e}")))?;
    let reason = body.reason.unwrap_or_else(|| "closed by the server".to_string());
    if reason.len() > MAX_CLOSE_REASON {
        return Err(ApiAnswer::error(400, "bad_request", "reason must be at most 123 bytes"));
    }
    let uids = match (body.uid, body.user_id) {
        (Some(uid), None) => hub.roster().seat(uid).map(|_| uid).into_iter().collect(),
        (None, Some(id)) => hub.roster().seats_of_account(&id).into_iter().map(|(uid, _)| uid).collect(),
        _ => return Err(ApiAnswer::error(400, "bad_request", "name exactly one of uid and user_id")),
    };
    Ok((uids, reason))
}

/// Who a send goes to: exactly one of its fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendTo {
    all: Option<bool>,
    room: Option<String>,
    user_id: Option<String>,
    uid: Option<u64>,
}

/// The body of `POST /api/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    to: SendTo,
    data: String,
    #[serde(default)]
    exclude_uids: Vec<u64>,
}

/// `POST /api/send`: `data` verbatim, as one text frame, to every connection of the target on this process
/// (logged-in users only: a connection that has not logged in belongs to no one).
fn send<P: Presence>(hub: &Hub<P>, body: &[u8], max_message_bytes: usize, out: &mut Effects) -> ApiAnswer {
    let body: SendBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return ApiAnswer::error(400, "bad_request", &format!("the body is not a send: {e}")),
    };
    if body.data.len() > max_message_bytes {
        return ApiAnswer::error(400, "bad_request", "data is over --max-message-bytes");
    }
    let roster = hub.roster();
    let here = |home: Home| match home {
        Home::Here(conn) => Some(conn),
        _ => None,
    };
    let mut conns: Vec<(ConnId, u64)> = match body.to {
        SendTo { all: Some(true), room: None, user_id: None, uid: None } => roster.local_conns().collect(),
        SendTo { all: None, room: Some(room), user_id: None, uid: None } => match roster.room(&room) {
            Some(r) => r.locals().iter().filter_map(|&c| Some((c, roster.uid_of(c)?))).collect(),
            None => Vec::new(),
        },
        SendTo { all: None, room: None, user_id: Some(id), uid: None } => {
            roster.seats_of_account(&id).into_iter().filter_map(|(uid, s)| Some((here(s.home)?, uid))).collect()
        }
        SendTo { all: None, room: None, user_id: None, uid: Some(uid) } => {
            roster.seat(uid).and_then(|s| here(s.home)).map(|c| (c, uid)).into_iter().collect()
        }
        _ => {
            let message = "to must be exactly one of {\"all\":true}, {\"room\":R}, {\"user_id\":S}, {\"uid\":U}";
            return ApiAnswer::error(400, "bad_request", message);
        }
    };
    conns.retain(|(_, uid)| !body.exclude_uids.contains(uid));
    conns.sort_unstable();
    let frame = text_frame(body.data.as_bytes());
    for &(conn, _) in &conns {
        out.push(conn, frame.clone(), 1);
    }
    ApiAnswer::ok(json!({"ok": true, "queued": conns.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Application;
    use crate::chat::app::ChatApp;
    use crate::chat::hub::HubLimits;

    fn get(path: &str) -> Request {
        request(Method::Get, path, b"")
    }

    fn request(method: Method, path: &str, body: &[u8]) -> Request {
        Request {
            method,
            path: path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            query: Vec::new(),
            authorization: None,
            body: body.to_vec(),
            keep_alive: true,
            upgrade: false,
        }
    }

    /// A chat with `users` (name, room) logged in on connections 1, 2, …
    fn chat(users: &[(&str, &str)]) -> ChatApp {
        let mut app = ChatApp::new(HubLimits::unlimited(10).into());
        for (i, (name, room)) in users.iter().enumerate() {
            let mut out = Effects::default();
            app.on_text(i + 1, &json!({"type":"login","name":name,"room_id":room}).to_string(), &mut out);
            app.end_turn(&mut out);
        }
        app
    }

    fn body(a: &ApiAnswer) -> Value {
        serde_json::from_slice(&a.body).unwrap()
    }

    #[test]
    fn rooms_and_their_users_in_order() {
        let app = chat(&[("a", "r2"), ("b", "r1"), ("c", "r2")]);
        let a = answer(app.hub(), &get("/api/rooms"), 1024, &mut Effects::default());
        assert_eq!(a.status, 200);
        assert_eq!(body(&a), json!({"ok":true,"rooms":[{"room":"r1","users":1},{"room":"r2","users":2}]}));
        let a = answer(app.hub(), &get("/api/rooms/r2/users"), 1024, &mut Effects::default());
        assert_eq!(body(&a), json!({"ok":true,"room":"r2","users":[{"uid":1,"name":"a"},{"uid":3,"name":"c"}]}));
        let a = answer(app.hub(), &get("/api/rooms/none/users"), 1024, &mut Effects::default());
        assert_eq!(body(&a), json!({"ok":true,"room":"none","users":[]}));
        let a = answer(app.hub(), &get("/api/users/acct"), 1024, &mut Effects::default());
        assert_eq!(body(&a), json!({"ok":true,"user_id":"acct","online":false,"sessions":[]}));
    }

    #[test]
    fn a_rooms_history_newest_last_as_say_objects() {
        let mut app = ChatApp::new(HubLimits::unlimited(10).into());
        let mut out = Effects::default();
        app.on_text(1, r#"{"type":"login","name":"a","room_id":"r"}"#, &mut out);
        for said in ["one", "two", "three"] {
            app.on_text(1, &json!({"type":"say","to_uid":"all","content":said}).to_string(), &mut out);
        }
        app.on_text(1, r#"{"type":"say","to_uid":1,"content":"private"}"#, &mut out);
        app.end_turn(&mut out);
        let mut req = get("/api/rooms/r/history");
        let all = body(&answer(app.hub(), &req, 1024, &mut Effects::default()));
        let contents: Vec<&str> =
            all["history"].as_array().unwrap().iter().filter_map(|s| s["content"].as_str()).collect();
        assert_eq!(contents, ["one", "two", "three"], "says to all only");
        assert_eq!(all["history"][0]["from_uid"], 1);
        assert_eq!(all["history"][0]["to_uid"], "all");
        req.query = vec![("limit".into(), "2".into())];
        let two = body(&answer(app.hub(), &req, 1024, &mut Effects::default()));
        assert_eq!(two["history"].as_array().unwrap().len(), 2);
        assert_eq!(two["history"][1]["content"], "three");
        req.query = vec![("limit".into(), "-1".into())];
        assert_eq!(answer(app.hub(), &req, 1024, &mut Effects::default()).status, 400);
        let none = body(&answer(app.hub(), &get("/api/rooms/empty/history"), 1024, &mut Effects::default()));
        assert_eq!(none, json!({"ok":true,"room":"empty","history":[]}));
    }

    #[test]
    fn wrong_methods_and_paths() {
        let app = chat(&[]);
        let a = answer(app.hub(), &request(Method::Post, "/api/rooms", b""), 1024, &mut Effects::default());
        assert_eq!((a.status, a.allow), (405, Some("GET")));
        assert_eq!(body(&a)["error"], "method_not_allowed");
        let a = answer(app.hub(), &get("/api/send"), 1024, &mut Effects::default());
        assert_eq!((a.status, a.allow), (405, Some("POST")));
        for path in ["/api", "/api/nothing", "/api/rooms/r/users/x", "/"] {
            let a = answer(app.hub(), &get(path), 1024, &mut Effects::default());
            assert_eq!((a.status, body(&a)["error"].as_str()), (404, Some("not_found")), "{path}");
        }
    }

    #[test]
    fn a_send_goes_verbatim_to_its_targets_connections() {
        let app = chat(&[("a", "r1"), ("b", "r1"), ("c", "r2")]);
        let cases: [(Value, Vec<ConnId>); 5] = [
            (json!({"to":{"all":true},"data":"x"}), vec![1, 2, 3]),
            (json!({"to":{"room":"r1"},"data":"x"}), vec![1, 2]),
            (json!({"to":{"room":"r1"},"data":"x","exclude_uids":[2]}), vec![1]),
            (json!({"to":{"uid":3},"data":"x"}), vec![3]),
            (json!({"to":{"user_id":"nobody"},"data":"x"}), vec![]),
        ];
        for (send, want) in cases {
            let mut out = Effects::default();
            let a = answer(app.hub(), &request(Method::Post, "/api/send", send.to_string().as_bytes()), 1024, &mut out);
            assert_eq!(body(&a), json!({"ok":true,"queued":want.len()}), "{send}");
            let mut got: Vec<ConnId> = out.sends.iter().map(|d| d.conn).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{send}");
            assert!(out.sends.iter().all(|d| d.bytes.as_ref() == text_frame(b"x").as_ref()));
        }
    }

    #[test]
    fn a_bad_send_is_a_400_that_sends_nothing() {
        let app = chat(&[("a", "r1")]);
        for bad in [
            "not json",
            r#"{"to":{"all":true}}"#,
            r#"{"to":{},"data":"x"}"#,
            r#"{"to":{"all":true,"uid":1},"data":"x"}"#,
            r#"{"to":{"all":false},"data":"x"}"#,
            r#"{"to":{"everyone":true},"data":"x"}"#,
            r#"{"to":{"uid":-1},"data":"x"}"#,
            r#"{"to":{"all":true},"data":"x","extra":1}"#,
        ] {
            let mut out = Effects::default();
            let a = answer(app.hub(), &request(Method::Post, "/api/send", bad.as_bytes()), 1024, &mut out);
            assert_eq!((a.status, body(&a)["error"].as_str()), (400, Some("bad_request")), "{bad}");
            assert!(out.sends.is_empty(), "{bad}");
        }
        let big = json!({"to":{"all":true},"data":"y".repeat(1025)}).to_string();
        let a = answer(app.hub(), &request(Method::Post, "/api/send", big.as_bytes()), 1024, &mut Effects::default());
        assert_eq!(a.status, 400);
    }
}
