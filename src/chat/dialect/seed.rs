//! The seed dialect: the protocol of the workerman-chat walkthrough this daemon speaks byte for byte —
//! `{"type":"login","name":N}` in; uids, `user_list`, `login`, `say`, `logout` and `error` out (README,
//! "Chat protocol"). Its JSON is [`crate::chat::protocol`]'s. With `--escape-html` ([`ESCAPED`]) names and
//! content go out HTML-escaped, for pages that insert them as HTML (the 2014 workerman-chat page).

use std::borrow::Cow;

use super::{escape, Codec};
use crate::chat::event::{ClientMessage, ErrorCode, Event, Newcomer};
use crate::chat::protocol::{parse_client_message, ServerMessage, ToUidOut, UserEntry};

/// The seed dialect's codec; `escape` HTML-escapes names and content.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seed {
    /// Names and content HTML-escaped (`--escape-html`).
    pub escape: bool,
}

/// The seed dialect as the walkthrough has it.
pub const PLAIN: Seed = Seed { escape: false };

/// The seed dialect with names and content HTML-escaped.
pub const ESCAPED: Seed = Seed { escape: true };

impl Seed {
    fn name<'a>(&self, name: &'a str) -> Cow<'a, str> {
        if self.escape {
            escape::html(name)
        } else {
            Cow::Borrowed(name)
        }
    }

    fn content<'a>(&self, content: &'a str) -> Cow<'a, str> {
        if self.escape {
            escape::content(content)
        } else {
            Cow::Borrowed(content)
        }
    }
}

impl Codec for Seed {
    fn parse<'a>(&self, text: &'a str) -> Result<ClientMessage<'a>, ErrorCode> {
        parse_client_message(text)
    }

    fn write_json(&self, event: &Event<'_>, out: &mut Vec<u8>) -> bool {
        match *event {
            Event::Login { uid, name, time } => {
                ServerMessage::Login { uid, name: &self.name(name), time }.write_json(out)
            }
            Event::Say { from_uid, to_uid, content, time, .. } => {
                let to_uid = to_uid.map_or(ToUidOut::All("all"), ToUidOut::User);
                ServerMessage::Say { from_uid, to_uid, content: &self.content(content), time }.write_json(out)
            }
            Event::Logout { uid, name, time } => {
                ServerMessage::Logout { uid, name: &self.name(name), time }.write_json(out)
            }
            Event::Error(code) => ServerMessage::Error { code: code.as_str(), message: code.message() }.write_json(out),
            Event::UserList { .. } | Event::History(_) => return false,
        }
        true
    }

    fn write_list_entry(&self, uid: u64, name: &str, out: &mut Vec<u8>) {
        // The same serializer as `ServerMessage::UserList`, so the bytes are the ones a full encode makes.
        let start = out.len();
        if serde_json::to_writer(&mut *out, &UserEntry { uid, name: &self.name(name) }).is_err() {
            out.truncate(start);
        }
    }

    fn write_list_prefix(&self, _newcomer: &Newcomer<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"type":"user_list","user_list":["#);
    }

    fn list_separator(&self) -> &'static [u8] {
        b","
    }

    fn list_suffix(&self) -> &'static [u8] {
        b"]}"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::error_json;

    fn json(event: Event<'_>) -> String {
        json_in(PLAIN, event)
    }

    fn json_in(codec: Seed, event: Event<'_>) -> String {
        let mut out = Vec::new();
        assert!(codec.write_json(&event, &mut out));
        String::from_utf8(out).unwrap()
    }

    fn say<'a>(content: &'a str) -> Event<'a> {
        Event::Say { from_uid: 2, from_name: "x", to_uid: None, echo_to: None, content, time: "t" }
    }

    #[test]
    fn escaped_names_and_content_and_nothing_else() {
        let xss = "<img src=x onerror=alert(1)>";
        assert_eq!(
            json_in(ESCAPED, say(&format!("{xss}\n'&'"))),
            r#"{"type":"say","from_uid":2,"to_uid":"all","content":"&lt;img src=x onerror=alert(1)&gt;<br />\n&#039;&amp;&#039;","time":"t"}"#
        );
        assert_eq!(
            json_in(ESCAPED, Event::Login { uid: 1, name: "\"&amp;\"", time: "t" }),
            r#"{"type":"login","uid":1,"name":"&quot;&amp;amp;&quot;","time":"t"}"#
        );
        assert_eq!(
            json_in(PLAIN, say(xss)),
            format!(r#"{{"type":"say","from_uid":2,"to_uid":"all","content":"{xss}","time":"t"}}"#)
        );
        let mut entry = Vec::new();
        ESCAPED.write_list_entry(1, "猪<猪>", &mut entry);
        assert_eq!(entry, r#"{"uid":1,"name":"猪&lt;猪&gt;"}"#.as_bytes());
    }

    #[test]
    fn every_event_has_the_seed_bytes() {
        assert_eq!(
            json(Event::Login { uid: 2, name: "mynick", time: "2014-08-12 17:50:30" }),
            r#"{"type":"login","uid":2,"name":"mynick","time":"2014-08-12 17:50:30"}"#
        );
        assert_eq!(
            json(Event::Say {
                from_uid: 2,
                from_name: "mynick",
                to_uid: None,
                echo_to: None,
                content: "hi,  all !",
                time: "2014-08-12 17:51:02"
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
                time: "t"
            }),
            r#"{"type":"say","from_uid":2,"to_uid":1,"content":"<b>","time":"t"}"#
        );
        assert_eq!(
            json(Event::Logout { uid: 2, name: "猪猪", time: "t" }),
            r#"{"type":"logout","uid":2,"name":"猪猪","time":"t"}"#
        );
        assert_eq!(json(Event::Error(ErrorCode::NoSuchUser)).into_bytes(), error_json(ErrorCode::NoSuchUser));
        let mut entry = Vec::new();
        PLAIN.write_list_entry(1, "quote\"d", &mut entry);
        assert_eq!(entry, br#"{"uid":1,"name":"quote\"d"}"#);
    }

    #[test]
    fn parsing_is_the_protocols() {
        assert_eq!(PLAIN.parse(r#"{"type":"pong"}"#), Ok(ClientMessage::Pong));
        assert_eq!(ESCAPED.parse("[]"), Err(ErrorCode::BadJson));
    }
}
