//! workerman-chat's current protocol (its master's `Events.php` and `Web/index.php`): a login names
//! `client_name` and `room_id` (a number or a string); users are `client_id`s (the uid as a string); the
//! newcomer's welcome is its own login carrying `client_list` (every user of the room, itself included);
//! says carry the sender's name; a private say's content is prefixed for its target (`<b>对你说: </b>`) and for
//! its sender (`<b>你对NAME说: </b>`); names and content are always HTML-escaped, as the page inserts them as
//! HTML. Where the original ignores bad input or throws, wschat answers with its own `error` message (the
//! page ignores types it does not know).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::{escape, seed, DEFAULT_ROOM, MAX_ROOM_BYTES};
use crate::chat::event::{ClientMessage, ErrorCode, Event, Newcomer, Recipient};

/// What a user list's JSON (the welcome's `client_list`) has after its entries.
pub const LIST_SUFFIX: &[u8] = b"}}";

/// Whether `text` is a login of this protocol: `type` login with `client_name` and no seed `name`.
pub fn is_login(text: &str) -> bool {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else { return false };
    m.get("type").and_then(Value::as_str) == Some("login") && m.contains_key("client_name") && !m.contains_key("name")
}

/// A uid as this protocol writes it: a decimal string.
fn id(uid: u64) -> String {
    uid.to_string()
}

#[derive(Serialize)]
struct Login<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    client_id: String,
    client_name: &'a str,
    time: &'a str,
}

#[derive(Serialize)]
struct Say<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from_client_id: String,
    from_client_name: &'a str,
    to_client_id: String,
    content: &'a str,
    time: &'a str,
}

#[derive(Serialize)]
struct Logout<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from_client_id: String,
    from_client_name: &'a str,
    time: &'a str,
}

fn write(out: &mut Vec<u8>, value: &impl Serialize) {
    // Plain structs into a Vec: serializing cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A JSON string field of `m`: `Ok(None)` when absent or null, `Err` when of another type.
fn text<'a>(m: &'a serde_json::Map<String, Value>, key: &str) -> Result<Option<&'a str>, ErrorCode> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ErrorCode::BadJson),
    }
}

/// Parses one text message from a client.
pub fn parse_client_message(text_in: &str) -> Result<ClientMessage<'_>, ErrorCode> {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text_in) else { return Err(ErrorCode::BadJson) };
    match m.get("type").and_then(Value::as_str) {
        Some("login") => {
            let name = text(&m, "client_name")?.unwrap_or_default().to_string();
            let room = match m.get("room_id") {
                None | Some(Value::Null) => DEFAULT_ROOM.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) if s.len() > MAX_ROOM_BYTES => return Err(ErrorCode::BadJson),
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                Some(Value::String(_)) => DEFAULT_ROOM.to_string(),
                Some(_) => return Err(ErrorCode::BadJson),
            };
            Ok(ClientMessage::Login { name: Cow::Owned(name), room: Cow::Owned(room), resume: false, token: None })
        }
        Some("say") => {
            let to = match m.get("to_client_id") {
                None | Some(Value::Null) => Recipient::All,
                Some(Value::String(s)) if s == "all" => Recipient::All,
                Some(Value::String(s)) => {
                    seed::canonical_uid(s).filter(|&u| u > 0).map_or(Recipient::Nobody, Recipient::User)
                }
                Some(Value::Number(n)) => n.as_u64().filter(|&u| u > 0).map_or(Recipient::Nobody, Recipient::User),
                Some(_) => return Err(ErrorCode::BadJson),
            };
            let content = text(&m, "content")?.unwrap_or_default().to_string();
            Ok(ClientMessage::Say { to, content: Cow::Owned(content) })
        }
        Some("pong") => Ok(ClientMessage::Pong),
        Some("logout") => Ok(ClientMessage::Logout),
        _ => Err(ErrorCode::UnknownType),
    }
}

/// Appends the JSON text of one message (a login, say, logout or error) and returns true; for the events that
/// are no single message (a user list, a history) appends nothing and returns false.
pub fn write_json(event: &Event<'_>, out: &mut Vec<u8>) -> bool {
    match *event {
        Event::Login { uid, name, time, .. } => {
            write(out, &Login { kind: "login", client_id: id(uid), client_name: &escape::html(name), time })
        }
        Event::Say { from_uid, from_name, to_uid, echo_to, content, time, .. } => {
            let body = escape::content(content);
            let content: Cow<'_, str> = match (to_uid, echo_to) {
                (None, _) => body,
                (Some(_), None) => Cow::Owned(format!("<b>对你说: </b>{body}")),
                (Some(_), Some(target)) => Cow::Owned(format!("<b>你对{}说: </b>{body}", escape::html(target))),
            };
            let to_client_id = to_uid.map_or_else(|| "all".to_string(), id);
            let from_client_name = &escape::html(from_name);
            let say = Say {
                kind: "say",
                from_client_id: id(from_uid),
                from_client_name,
                to_client_id,
                content: &content,
                time,
            };
            write(out, &say);
        }
        Event::Logout { uid, name, time } => {
            write(out, &Logout { kind: "logout", from_client_id: id(uid), from_client_name: &escape::html(name), time })
        }
        // Errors are wschat's own message, the same in every dialect.
        Event::Error(_) => return seed::write_json(event, false, false, out),
        // Its clients hold no sessions.
        // A verbatim text is written by `Dialect::write_json` itself, the same in every dialect.
        Event::UserList { .. } | Event::History(_) | Event::Resumed { .. } | Event::Verbatim(_) => return false,
    }
    true
}

/// Appends one user's entry of the welcome's `client_list`.
pub fn write_list_entry(uid: u64, name: &str, out: &mut Vec<u8>) {
    write(out, &id(uid));
    out.push(b':');
    write(out, &escape::html(name));
}

/// Appends what the welcome has before its `client_list`'s entries: the newcomer's own login, reopened.
pub fn write_list_prefix(newcomer: &Newcomer<'_>, out: &mut Vec<u8>) {
    let login = Login {
        kind: "login",
        client_id: id(newcomer.uid),
        client_name: &escape::html(newcomer.name),
        time: newcomer.time,
    };
    write(out, &login);
    // The login object, reopened for its last field.
    out.pop();
    out.extend_from_slice(br#","client_list":{"#);
}

/// `{"type":"ping"}`: what this protocol's server sends an idle client, which answers `{"type":"pong"}`.
pub const PING: &[u8] = br#"{"type":"ping"}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::dialect::Dialect;

    const T: &str = "2026-12-02 10:00:00";

    fn json(event: Event<'_>) -> String {
        let mut out = Vec::new();
        assert!(write_json(&event, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_message_byte_for_byte() {
        assert_eq!(
            json(Event::Login { uid: 5, name: "<b>x</b>", user_id: None, time: T }),
            r#"{"type":"login","client_id":"5","client_name":"&lt;b&gt;x&lt;/b&gt;","time":"2026-12-02 10:00:00"}"#
        );
        let say = |to_uid, echo_to| Event::Say {
            from_uid: 5,
            from_name: "猪猪",
            to_uid,
            echo_to,
            content: "a\n<i>",
            time: T,
            mid: None,
        };
        assert_eq!(
            json(say(None, None)),
            r#"{"type":"say","from_client_id":"5","from_client_name":"猪猪","to_client_id":"all","content":"a<br />\n&lt;i&gt;","time":"2026-12-02 10:00:00"}"#
        );
        assert_eq!(
            json(say(Some(7), None)),
            r#"{"type":"say","from_client_id":"5","from_client_name":"猪猪","to_client_id":"7","content":"<b>对你说: </b>a<br />\n&lt;i&gt;","time":"2026-12-02 10:00:00"}"#
        );
        assert_eq!(
            json(say(Some(7), Some("a&b"))),
            r#"{"type":"say","from_client_id":"5","from_client_name":"猪猪","to_client_id":"7","content":"<b>你对a&amp;b说: </b>a<br />\n&lt;i&gt;","time":"2026-12-02 10:00:00"}"#
        );
        assert_eq!(
            json(Event::Logout { uid: 5, name: "'x'", time: T }),
            r#"{"type":"logout","from_client_id":"5","from_client_name":"&#039;x&#039;","time":"2026-12-02 10:00:00"}"#
        );
        assert_eq!(
            json(Event::Error(ErrorCode::NoSuchUser)),
            r#"{"type":"error","code":"no_such_user","message":"no user with that uid in your room"}"#
        );
    }

    #[test]
    fn the_welcome_is_the_login_with_the_client_list() {
        let roster = crate::chat::roster::Roster::with_users("1", &[(1, "a\"b"), (5, "me")]);
        let Some(users) = roster.room("1") else { panic!("the test room") };
        let newcomer = Newcomer { uid: 5, name: "me", time: T, session: None };
        let mut scratch = Vec::new();
        let d = Dialect::Workerman;
        let (frame, n) = d.frames(&Event::UserList { room: "1", users, newcomer }, &mut scratch);
        let json = r#"{"type":"login","client_id":"5","client_name":"me","time":"2026-12-02 10:00:00","client_list":{"1":"a&quot;b","5":"me"}}"#;
        assert_eq!((&frame[..], n), (&crate::chat::dialect::text_frame(json.as_bytes())[..], 1));
        let mut entries = Vec::new();
        d.write_list_entry(1, "a\"b", None, &mut entries);
        d.write_list_entry(5, "me", None, &mut entries);
        assert_eq!(&d.user_list_frame(&entries, &newcomer)[..], &frame[..]);
        assert!(d.welcome_is_login());
    }

    #[test]
    fn parsing_and_detection() {
        let login = parse_client_message;
        assert_eq!(
            login(r#"{"type":"login","client_name":"x","room_id":1}"#),
            Ok(ClientMessage::Login { name: "x".into(), room: "1".into(), resume: false, token: None })
        );
        assert_eq!(
            login(r#"{"type":"login","client_name":"x","room_id":"lobby"}"#),
            Ok(ClientMessage::Login { name: "x".into(), room: "lobby".into(), resume: false, token: None })
        );
        assert_eq!(
            login(r#"{"type":"login","client_name":"x"}"#),
            Ok(ClientMessage::Login { name: "x".into(), room: "1".into(), resume: false, token: None })
        );
        assert_eq!(login(r#"{"type":"login","client_name":"x","room_id":[1]}"#), Err(ErrorCode::BadJson));
        assert_eq!(login(r#"{"type":"login","client_name":5}"#), Err(ErrorCode::BadJson));
        let say = parse_client_message;
        assert_eq!(
            say(r#"{"type":"say","to_client_id":"all","to_client_name":"所有人","content":"hi"}"#),
            Ok(ClientMessage::Say { to: Recipient::All, content: "hi".into() })
        );
        assert_eq!(
            say(r#"{"type":"say","to_client_id":"7","content":"x"}"#),
            Ok(ClientMessage::Say { to: Recipient::User(7), content: "x".into() })
        );
        assert_eq!(
            say(r#"{"type":"say","to_client_id":7,"content":"x"}"#),
            Ok(ClientMessage::Say { to: Recipient::User(7), content: "x".into() })
        );
        assert_eq!(
            say(r#"{"type":"say","to_client_id":"7f3a","content":"x"}"#),
            Ok(ClientMessage::Say { to: Recipient::Nobody, content: "x".into() })
        );
        assert_eq!(parse_client_message(r#"{"type":"pong"}"#), Ok(ClientMessage::Pong));
        assert_eq!(parse_client_message("garbage"), Err(ErrorCode::BadJson));
        assert_eq!(parse_client_message(r#"{"type":"dance"}"#), Err(ErrorCode::UnknownType));
        assert_eq!(Dialect::detect(r#"{"type":"login","client_name":"x","room_id":1}"#), Some(Dialect::Workerman));
        assert_eq!(Dialect::detect(r#"{"type":"login","name":"x"}"#), None);
        assert_eq!(Dialect::detect(r#"{"type":"say","client_name":"x"}"#), None);
        assert_eq!(Dialect::detect(r#"{"type":"login","name":"x","client_name":"y"}"#), None);
    }
}
