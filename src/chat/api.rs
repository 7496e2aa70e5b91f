//! The server API's verbs on the chat of this process (sans-IO): what is in the rooms, who is online, and text
//! pushed verbatim to connections — each call answered with its JSON. The reactor's API port reads the
//! requests and writes the answers; nothing here knows a socket.

use serde::Deserialize;
use serde_json::{json, Value};

use super::event::{Event, Said};
use super::hub::{Hub, ServerSayError};
use super::presence::Presence;
use super::roster::Audience;
use crate::api::request::{Method, Request};
use crate::api::ApiAnswer;

/// Answers a question `req` asks of `hub`'s chat (the calls that act are the application's: they need its
/// delivery side); a path that is none of the API's is a 404, a wrong method a 405.
pub fn answer<P: Presence>(hub: &Hub<P>, req: &Request) -> ApiAnswer {
    let path: Vec<&str> = req.path.iter().map(String::as_str).collect();
    match (req.method, path.as_slice()) {
        (Method::Get, ["api", "rooms"]) => rooms(hub),
        (Method::Get, ["api", "rooms", room, "users"]) => room_users(hub, room),
        (Method::Get, ["api", "users", user_id]) => user(hub, user_id),
        (Method::Get, ["api", "rooms", room, "history"]) => history(hub, room, &req.query),
        (_, ["api", "rooms"] | ["api", "rooms", _, "users" | "history"] | ["api", "users", _]) => {
            ApiAnswer::method_not_allowed("GET")
        }
        (_, ["api", "send" | "close" | "say"]) => ApiAnswer::method_not_allowed("POST"),
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
pub struct SendBody {
    to: SendTo,
    /// The text, sent verbatim.
    pub data: String,
    /// Uids left out.
    #[serde(default)]
    pub exclude_uids: Vec<u64>,
}

impl SendBody {
    /// Whom it goes to.
    pub fn audience(&self) -> Audience<'_> {
        match &self.to {
            SendTo { all: Some(true), .. } => Audience::All,
            SendTo { room: Some(room), .. } => Audience::Room(room),
            SendTo { user_id: Some(id), .. } => Audience::Account(id),
            SendTo { uid: Some(uid), .. } => Audience::Uid(*uid),
            // `send_body` let no other through.
            _ => Audience::Uid(0),
        }
    }
}

/// Reads `POST /api/send`'s body: a target that is exactly one of all, room, user_id, uid, and data within
/// `max_message_bytes`; or the 400 to answer.
pub fn send_body(body: &[u8], max_message_bytes: usize) -> Result<SendBody, ApiAnswer> {
    let body: SendBody = serde_json::from_slice(body)
        .map_err(|e| ApiAnswer::error(400, "bad_request", &format!("the body is not a send: {e}")))?;
    let one = matches!(
        body.to,
        SendTo { all: Some(true), room: None, user_id: None, uid: None }
            | SendTo { all: None, room: Some(_), user_id: None, uid: None }
            | SendTo { all: None, room: None, user_id: Some(_), uid: None }
            | SendTo { all: None, room: None, user_id: None, uid: Some(_) }
    );
    if !one {
        let message = "to must be exactly one of {\"all\":true}, {\"room\":R}, {\"user_id\":S}, {\"uid\":U}";
        return Err(ApiAnswer::error(400, "bad_request", message));
    }
    if body.data.len() > max_message_bytes {
        return Err(ApiAnswer::error(400, "bad_request", "data is over --max-message-bytes"));
    }
    Ok(body)
}

/// Whom a server say goes to: `"all"` or a uid.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SayTo {
    Uid(u64),
    All(String),
}

/// The body of `POST /api/say`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SayBody {
    room: String,
    content: String,
    #[serde(default)]
    to_uid: Option<SayTo>,
}

/// A say from the server, read from `POST /api/say`'s body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSay {
    /// The room.
    pub room: String,
    /// The text.
    pub content: String,
    /// One user of the room, or `None` for all of it.
    pub to: Option<u64>,
}

/// Reads `POST /api/say`'s body (`to_uid` "all" when absent; content not empty and within
/// `max_message_bytes`); or the 400 to answer.
pub fn say_body(body: &[u8], max_message_bytes: usize) -> Result<ServerSay, ApiAnswer> {
    let bad = |m: &str| ApiAnswer::error(400, "bad_request", m);
    let body: SayBody = serde_json::from_slice(body).map_err(|e| bad(&format!("the body is not a say: {e}")))?;
    let to = match body.to_uid {
        None => None,
        Some(SayTo::All(all)) if all == "all" => None,
        Some(SayTo::Uid(uid)) if uid > 0 => Some(uid),
        Some(_) => return Err(bad("to_uid must be \"all\" or a uid")),
    };
    if body.content.is_empty() {
        return Err(bad("content is empty"));
    }
    if body.content.len() > max_message_bytes {
        return Err(bad("content is over --max-message-bytes"));
    }
    Ok(ServerSay { room: body.room, content: body.content, to })
}

/// The answer to a say refused by the hub.
pub fn say_refused(why: ServerSayError) -> ApiAnswer {
    match why {
        ServerSayError::EmptyRoom => ApiAnswer::error(404, "not_found", "nobody is in that room"),
        ServerSayError::NoSuchUser => ApiAnswer::error(404, "not_found", "no such user in that room"),
        ServerSayError::Refused(code) => ApiAnswer::error(503, code.as_str(), code.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Application, ConnId, Effects};
    use crate::chat::app::ChatApp;
    use crate::chat::dialect::text_frame;
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
        let a = answer(app.hub(), &get("/api/rooms"));
        assert_eq!(a.status, 200);
        assert_eq!(body(&a), json!({"ok":true,"rooms":[{"room":"r1","users":1},{"room":"r2","users":2}]}));
        let a = answer(app.hub(), &get("/api/rooms/r2/users"));
        assert_eq!(body(&a), json!({"ok":true,"room":"r2","users":[{"uid":1,"name":"a"},{"uid":3,"name":"c"}]}));
        let a = answer(app.hub(), &get("/api/rooms/none/users"));
        assert_eq!(body(&a), json!({"ok":true,"room":"none","users":[]}));
        let a = answer(app.hub(), &get("/api/users/acct"));
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
        let all = body(&answer(app.hub(), &req));
        let contents: Vec<&str> =
            all["history"].as_array().unwrap().iter().filter_map(|s| s["content"].as_str()).collect();
        assert_eq!(contents, ["one", "two", "three"], "says to all only");
        assert_eq!(all["history"][0]["from_uid"], 1);
        assert_eq!(all["history"][0]["to_uid"], "all");
        req.query = vec![("limit".into(), "2".into())];
        let two = body(&answer(app.hub(), &req));
        assert_eq!(two["history"].as_array().unwrap().len(), 2);
        assert_eq!(two["history"][1]["content"], "three");
        req.query = vec![("limit".into(), "-1".into())];
        assert_eq!(answer(app.hub(), &req).status, 400);
        let none = body(&answer(app.hub(), &get("/api/rooms/empty/history")));
        assert_eq!(none, json!({"ok":true,"room":"empty","history":[]}));
    }

    #[test]
    fn wrong_methods_and_paths() {
        let app = chat(&[]);
        let a = answer(app.hub(), &request(Method::Post, "/api/rooms", b""));
        assert_eq!((a.status, a.allow), (405, Some("GET")));
        assert_eq!(body(&a)["error"], "method_not_allowed");
        let a = answer(app.hub(), &get("/api/send"));
        assert_eq!((a.status, a.allow), (405, Some("POST")));
        for path in ["/api", "/api/nothing", "/api/rooms/r/users/x", "/"] {
            let a = answer(app.hub(), &get(path));
            assert_eq!((a.status, body(&a)["error"].as_str()), (404, Some("not_found")), "{path}");
        }
    }

    #[test]
    fn a_send_goes_verbatim_to_its_targets_connections() {
        let mut app = chat(&[("a", "r1"), ("b", "r1"), ("c", "r2")]);
        let cases: [(Value, Vec<ConnId>); 5] = [
            (json!({"to":{"all":true},"data":"x"}), vec![1, 2, 3]),
            (json!({"to":{"room":"r1"},"data":"x"}), vec![1, 2]),
            (json!({"to":{"room":"r1"},"data":"x","exclude_uids":[2]}), vec![1]),
            (json!({"to":{"uid":3},"data":"x"}), vec![3]),
            (json!({"to":{"user_id":"nobody"},"data":"x"}), vec![]),
        ];
        for (send, want) in cases {
            let mut out = Effects::default();
            let a = app.api(&request(Method::Post, "/api/send", send.to_string().as_bytes()), &mut out);
            assert_eq!(body(&a), json!({"ok":true,"queued":want.len()}), "{send}");
            // A room's sends join its batch of the turn, handed out when the turn ends.
            app.end_turn(&mut out);
            let mut got: Vec<ConnId> = out.sends.iter().map(|d| d.conn).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{send}");
            assert!(out.sends.iter().all(|d| d.bytes.as_ref() == text_frame(b"x").as_ref()));
        }
    }

    #[test]
    fn a_rooms_sends_and_says_of_a_turn_go_out_as_one_batch_in_order() {
        let mut app = chat(&[("a", "r1"), ("b", "r1")]);
        let mut out = Effects::default();
        for data in ["one", "two"] {
            let send = json!({"to":{"room":"r1"},"data":data}).to_string();
            app.api(&request(Method::Post, "/api/send", send.as_bytes()), &mut out);
        }
        let say = json!({"room":"r1","content":"three"}).to_string();
        app.api(&request(Method::Post, "/api/say", say.as_bytes()), &mut out);
        app.end_turn(&mut out);
        // One delivery per member holding all three, in the order they were made.
        let mut got: Vec<ConnId> = out.sends.iter().map(|d| d.conn).collect();
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
        for d in &out.sends {
            let text = String::from_utf8_lossy(&d.bytes);
            let (one, two, three) = (text.find("one"), text.find("two"), text.find("three"));
            assert!(one < two && two < three && one.is_some(), "{text}");
            assert!(d.bytes.starts_with(text_frame(b"one").as_ref()), "a send is sent as it is");
        }
    }

    #[test]
    fn a_bad_send_is_a_400_that_sends_nothing() {
        let mut app = chat(&[("a", "r1")]);
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
            let a = app.api(&request(Method::Post, "/api/send", bad.as_bytes()), &mut out);
            assert_eq!((a.status, body(&a)["error"].as_str()), (400, Some("bad_request")), "{bad}");
            assert!(out.sends.is_empty(), "{bad}");
        }
        let big = json!({"to":{"all":true},"data":"y".repeat(crate::config::CHAT_MAX_MESSAGE + 1)}).to_string();
        let a = app.api(&request(Method::Post, "/api/send", big.as_bytes()), &mut Effects::default());
        assert_eq!(a.status, 400);
    }

    /// The text frames `out` holds for `conn`, decoded.
    fn frames_to(out: &Effects, conn: ConnId) -> Vec<Value> {
        let mut all = Vec::new();
        for d in out.sends.iter().filter(|d| d.conn == conn) {
            let mut bytes: &[u8] = &d.bytes;
            while !bytes.is_empty() {
                let (len, head) = match bytes[1] & 0x7f {
                    126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                    127 => panic!("too long"),
                    n => (n as usize, 2),
                };
                all.push(serde_json::from_slice(&bytes[head..head + len]).unwrap());
                bytes = &bytes[head + len..];
            }
        }
        all
    }

    #[test]
    fn a_server_say_reaches_the_room_from_uid_0_and_stays_in_history() {
        let mut app = chat(&[("a", "r1"), ("b", "r1"), ("c", "r2")]);
        let mut out = Effects::default();
        let say = json!({"room":"r1","content":"<b>maintenance</b>"}).to_string();
        let a = app.api(&request(Method::Post, "/api/say", say.as_bytes()), &mut out);
        assert_eq!(body(&a), json!({"ok":true,"room":"r1","users":2}));
        app.end_turn(&mut out);
        for conn in [1, 2] {
            let got = frames_to(&out, conn);
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!((got[0]["type"].as_str(), got[0]["from_uid"].as_u64()), (Some("say"), Some(0)));
            assert_eq!(
                (got[0]["to_uid"].as_str(), got[0]["content"].as_str()),
                (Some("all"), Some("<b>maintenance</b>"))
            );
        }
        assert!(frames_to(&out, 3).is_empty(), "another room");
        let history = body(&answer(app.hub(), &get("/api/rooms/r1/history")));
        assert_eq!(history["history"][0]["from_uid"], 0);
        // To one user of the room: that user alone; a user of another room, or an empty room, is a 404.
        let mut out = Effects::default();
        let a = app.api(&request(Method::Post, "/api/say", br#"{"room":"r1","content":"psst","to_uid":2}"#), &mut out);
        assert_eq!(body(&a)["users"], 1);
        app.end_turn(&mut out);
        assert_eq!(frames_to(&out, 2)[0]["to_uid"], 2);
        assert!(frames_to(&out, 1).is_empty());
        for (bad, status) in [
            (r#"{"room":"r1","content":"x","to_uid":3}"#, 404),
            (r#"{"room":"nobody","content":"x"}"#, 404),
            (r#"{"room":"r1","content":""}"#, 400),
            (r#"{"room":"r1","content":"x","to_uid":"some"}"#, 400),
            (r#"{"room":"r1","content":"x","to_uid":0}"#, 400),
            (r#"{"room":"r1"}"#, 400),
            (r#"{"room":"r1","content":"x","extra":1}"#, 400),
        ] {
            let mut out = Effects::default();
            let a = app.api(&request(Method::Post, "/api/say", bad.as_bytes()), &mut out);
            assert_eq!(a.status, status, "{bad}");
            assert!(out.sends.is_empty(), "{bad}");
        }
    }

    #[test]
    fn a_send_follows_what_the_turn_said_to_the_room_before_it() {
        let mut app = chat(&[("a", "r1"), ("b", "r1")]);
        let mut out = Effects::default();
        app.on_text(1, r#"{"type":"say","to_uid":"all","content":"first"}"#, &mut out);
        app.api(&request(Method::Post, "/api/send", br#"{"to":{"uid":2},"data":"second"}"#), &mut out);
        app.end_turn(&mut out);
        let got: Vec<String> =
            out.sends.iter().filter(|d| d.conn == 2).map(|d| String::from_utf8_lossy(&d.bytes).to_string()).collect();
        let joined = got.concat();
        let (first, second) = (joined.find("first").unwrap(), joined.find("second").unwrap());
        assert!(first < second, "{got:?}");
    }
}
