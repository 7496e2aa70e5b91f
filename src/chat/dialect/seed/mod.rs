//! The seed dialect: the protocol of the workerman-chat walkthrough this daemon speaks byte for byte —
//! `{"type":"login","name":N}` in ([`parse_client_message`]); uids, `user_list`, `login`, `say`, `logout` and
//! `error` out, field for field as the walkthrough has them (README, "Chat protocol"). With `--escape-html`
//! ([`super::Dialect::SeedHtml`]) names and content go out HTML-escaped, for pages that insert them as HTML
//! (the 2014 workerman-chat page).

mod parse;

use std::borrow::Cow;

use serde::Serialize;

use super::escape;
use crate::chat::event::Event;
pub(super) use parse::canonical_uid;
pub use parse::parse_client_message;

/// What a user list's JSON has before its entries.
pub const LIST_PREFIX: &[u8] = br#"{"type":"user_list","user_list":["#;

/// What a user list's JSON has after its entries.
pub const LIST_SUFFIX: &[u8] = b"]}";

/// What a session's user list has after its entries, before the session id and `"}`.
pub const SESSION_FIELD: &[u8] = br#"],"session":""#;

/// One entry of a user list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserEntry<'a> {
    /// The user's uid.
    pub uid: u64,
    /// The user's name.
    pub name: &'a str,
    /// The user's account id, when a token proved it (absent otherwise: without `--auth-key` every byte is
    /// as before). Data for the backend, never HTML-escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
}

/// The `to_uid` of an outgoing say: the string "all" or a uid number.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ToUidOut {
    /// Sent to the whole room.
    All(&'static str),
    /// Sent privately to this uid.
    User(u64),
}

/// A message from the server, serialized with `type` first as workerman-chat does.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    /// Everyone in the room, in login order, sent to a newcomer.
    UserList {
        /// The users.
        user_list: &'a [UserEntry<'a>],
    },
    /// Someone logged in.
    Login {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Their account id, when a token proved it.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// A chat message.
    Say {
        /// The sender's uid.
        from_uid: u64,
        /// "all" or the recipient's uid.
        to_uid: ToUidOut,
        /// The text, unchanged.
        content: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
        /// Its mid, for a client holding a session.
        #[serde(skip_serializing_if = "Option::is_none")]
        mid: Option<&'a str>,
    },
    /// Someone left.
    Logout {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// A request was refused; the connection stays open.
    Error {
        /// The error code.
        code: &'a str,
        /// A human-readable explanation.
        message: &'a str,
    },
    /// A resume is complete.
    Resumed {
        /// The session's uid.
        uid: u64,
        /// Whether every missed say was sent.
        recovered: bool,
        /// How many were.
        missed: usize,
    },
}

impl ServerMessage<'_> {
    /// Appends the JSON text of this message to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing these plain structs into a Vec cannot fail: no maps with non-string keys, no I/O.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.extend_from_slice(br#"{"type":"error","code":"internal","message":"encoding failed"}"#);
        }
    }
}

/// `name`, HTML-escaped when `escape_html`.
fn name(name: &str, escape_html: bool) -> Cow<'_, str> {
    if escape_html {
        escape::html(name)
    } else {
        Cow::Borrowed(name)
    }
}

/// Appends the JSON text of one message (a login, say, logout, error or resumed; a say with its mid when
/// `mids`) and returns true; for the events that are no single message (a user list, a history) appends
/// nothing and returns false.
pub fn write_json(event: &Event<'_>, escape_html: bool, mids: bool, out: &mut Vec<u8>) -> bool {
    match *event {
        Event::Login { uid, name: who, user_id, time } => {
            ServerMessage::Login { uid, name: &name(who, escape_html), user_id, time }.write_json(out)
        }
        Event::Say { from_uid, to_uid, content, time, mid, .. } => {
            let to_uid = to_uid.map_or(ToUidOut::All("all"), ToUidOut::User);
            let content = if escape_html { escape::content(content) } else { Cow::Borrowed(content) };
            let mid = mid.filter(|_| mids);
            ServerMessage::Say { from_uid, to_uid, content: &content, time, mid }.write_json(out)
        }
        Event::Logout { uid, name: who, time } => {
            ServerMessage::Logout { uid, name: &name(who, escape_html), time }.write_json(out)
        }
        Event::Error(code) => ServerMessage::Error { code: code.as_str(), message: code.message() }.write_json(out),
        Event::Resumed { uid, recovered, missed } => ServerMessage::Resumed { uid, recovered, missed }.write_json(out),
        // Written by `Dialect::write_json` itself, the same in every dialect.
        Event::UserList { .. } | Event::History(_) | Event::Verbatim(_) => return false,
    }
    true
}

/// Appends one user's entry of a user list: the bytes [`ServerMessage::UserList`] has for it.
pub fn write_list_entry(uid: u64, who: &str, user_id: Option<&str>, escape_html: bool, out: &mut Vec<u8>) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, &UserEntry { uid, name: &name(who, escape_html), user_id }).is_err() {
        out.truncate(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::dialect::Dialect;
    use crate::chat::event::{ClientMessage, ErrorCode};

    fn json_in(escape_html: bool, event: Event<'_>) -> String {
        let mut out = Vec::new();
        assert!(write_json(&event, escape_html, false, &mut out));
        String::from_utf8(out).unwrap()
    }

    fn json(event: Event<'_>) -> String {
        json_in(false, event)
    }

    fn say<'a>(content: &'a str) -> Event<'a> {
        Event::Say { from_uid: 2, from_name: "x", to_uid: None, echo_to: None, content, time: "t", mid: None }
    }

    #[test]
    fn escaped_names_and_content_and_nothing_else() {
        let xss = "<img src=x onerror=alert(1)>";
        assert_eq!(
            json_in(true, say(&format!("{xss}\n'&'"))),
            r#"{"type":"say","from_uid":2,"to_uid":"all","content":"&lt;img src=x onerror=alert(1)&gt;<br />\n&#039;&amp;&#039;","time":"t"}"#
        );
        assert_eq!(
            json_in(true, Event::Login { uid: 1, name: "\"&amp;\"", user_id: None, time: "t" }),
            r#"{"type":"login","uid":1,"name":"&quot;&amp;amp;&quot;","time":"t"}"#
        );
        assert_eq!(
            json(say(xss)),
            format!(r#"{{"type":"say","from_uid":2,"to_uid":"all","content":"{xss}","time":"t"}}"#)
        );
        let mut entry = Vec::new();
        write_list_entry(1, "猪<猪>", None, true, &mut entry);
        assert_eq!(entry, r#"{"uid":1,"name":"猪&lt;猪&gt;"}"#.as_bytes());
    }

    #[test]
    fn every_message_has_the_seed_bytes_and_field_order() {
        assert_eq!(
            json(Event::Login { uid: 2, name: "mynick", user_id: None, time: "2014-08-12 17:50:30" }),
            r#"{"type":"login","uid":2,"name":"mynick","time":"2014-08-12 17:50:30"}"#
        );
        assert_eq!(
            json(Event::Say {
                from_uid: 2,
                from_name: "mynick",
                to_uid: None,
                echo_to: None,
                content: "hi,  all !",
                time: "2014-08-12 17:51:02",
                mid: None,
            }),
            r#"{"type":"say","from_uid":2,"to_uid":"all","content":"hi,  all !","time":"2014-08-12 17:51:02"}"#
        );
        assert_eq!(
            json(Event::Say {
                from_uid: 2,
                from_name: "x",
                to_uid: Some(1),
                echo_to: Some("y"),
                content: "<b>",
                time: "t",
                mid: None,
            }),
            r#"{"type":"say","from_uid":2,"to_uid":1,"content":"<b>","time":"t"}"#
        );
        assert_eq!(
            json(Event::Logout { uid: 2, name: "猪猪", time: "t" }),
            r#"{"type":"logout","uid":2,"name":"猪猪","time":"t"}"#
        );
        assert_eq!(
            json(Event::Error(ErrorCode::NoSuchUser)),
            r#"{"type":"error","code":"no_such_user","message":"no user with that uid in your room"}"#
        );
        let users =
            [UserEntry { uid: 1, name: "猪猪", user_id: None }, UserEntry { uid: 2, name: "mynick", user_id: None }];
        let mut list = Vec::new();
        ServerMessage::UserList { user_list: &users }.write_json(&mut list);
        assert_eq!(
            list,
            r#"{"type":"user_list","user_list":[{"uid":1,"name":"猪猪"},{"uid":2,"name":"mynick"}]}"#.as_bytes()
        );
        let mut entry = Vec::new();
        write_list_entry(1, "quote\"d", None, false, &mut entry);
        assert_eq!(entry, br#"{"uid":1,"name":"quote\"d"}"#);
    }

    #[test]
    fn parsing_is_the_protocols() {
        assert_eq!(Dialect::Seed.parse(r#"{"type":"pong"}"#), Ok(ClientMessage::Pong));
        assert_eq!(Dialect::SeedHtml.parse("[]"), Err(ErrorCode::BadJson));
    }
}
