//! The seed dialect: the protocol of the workerman-chat walkthrough this daemon speaks byte for byte —
//! `{"type":"login","name":N}` in; uids, `user_list`, `login`, `say`, `logout` and `error` out (README,
//! "Chat protocol"). Its JSON is [`crate::chat::protocol`]'s.

use super::{Codec, ListAffixes};
use crate::chat::event::{ClientMessage, ErrorCode, Event};
use crate::chat::protocol::{parse_client_message, ServerMessage, ToUidOut, UserEntry};

/// The seed dialect's codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seed;

impl Codec for Seed {
    fn parse<'a>(&self, text: &'a str) -> Result<ClientMessage<'a>, ErrorCode> {
        parse_client_message(text)
    }

    fn write_json(&self, event: &Event<'_>, out: &mut Vec<u8>) -> bool {
        let msg = match *event {
            Event::Login { uid, name, time } => ServerMessage::Login { uid, name, time },
            Event::Say { from_uid, to_uid, content, time } => {
                let to_uid = to_uid.map_or(ToUidOut::All("all"), ToUidOut::User);
                ServerMessage::Say { from_uid, to_uid, content, time }
            }
            Event::Logout { uid, name, time } => ServerMessage::Logout { uid, name, time },
            Event::Error(code) => ServerMessage::Error { code: code.as_str(), message: code.message() },
            Event::UserList { .. } | Event::History(_) => return false,
        };
        msg.write_json(out);
        true
    }

    fn write_list_entry(&self, uid: u64, name: &str, out: &mut Vec<u8>) {
        // The same serializer as `ServerMessage::UserList`, so the bytes are the ones a full encode makes.
        let start = out.len();
        if serde_json::to_writer(&mut *out, &UserEntry { uid, name }).is_err() {
            out.truncate(start);
        }
    }

    fn list_affixes(&self) -> ListAffixes {
        ListAffixes { prefix: br#"{"type":"user_list","user_list":["#, separator: b",", suffix: b"]}" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::error_json;

    fn json(event: Event<'_>) -> String {
        let mut out = Vec::new();
        assert!(Seed.write_json(&event, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_event_has_the_seed_bytes() {
        assert_eq!(
            json(Event::Login { uid: 2, name: "mynick", time: "2014-08-12 17:50:30" }),
            r#"{"type":"login","uid":2,"name":"mynick","time":"2014-08-12 17:50:30"}"#
        );
        assert_eq!(
            json(Event::Say { from_uid: 2, to_uid: None, content: "hi,  all !", time: "2014-08-12 17:51:02" }),
            r#"{"type":"say","from_uid":2,"to_uid":"all","content":"hi,  all !","time":"2014-08-12 17:51:02"}"#
        );
        assert_eq!(
            json(Event::Say { from_uid: 2, to_uid: Some(1), content: "<b>", time: "t" }),
            r#"{"type":"say","from_uid":2,"to_uid":1,"content":"<b>","time":"t"}"#
        );
        assert_eq!(
            json(Event::Logout { uid: 2, name: "猪猪", time: "t" }),
            r#"{"type":"logout","uid":2,"name":"猪猪","time":"t"}"#
        );
        assert_eq!(json(Event::Error(ErrorCode::NoSuchUser)).into_bytes(), error_json(ErrorCode::NoSuchUser));
        let mut entry = Vec::new();
        Seed.write_list_entry(1, "quote\"d", &mut entry);
        assert_eq!(entry, br#"{"uid":1,"name":"quote\"d"}"#);
    }

    #[test]
    fn parsing_is_the_protocols() {
        assert_eq!(Seed.parse(r#"{"type":"pong"}"#), Ok(ClientMessage::Pong));
        assert_eq!(Seed.parse("[]"), Err(ErrorCode::BadJson));
    }
}
