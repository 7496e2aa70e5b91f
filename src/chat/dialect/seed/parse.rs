//! What the seed dialect's clients send, parsed into the chat core's commands with the contract's error codes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::chat::dialect::{DEFAULT_ROOM, MAX_ROOM_BYTES};
use crate::chat::event::{ClientMessage, ErrorCode, Recipient};

/// The raw shape of any client message; every field optional so that missing fields get protocol errors.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    room_id: Option<Text<'a>>,
    to_uid: Option<ToUid>,
    #[serde(borrow)]
    content: Option<Text<'a>>,
    resume: Option<bool>,
    #[serde(borrow)]
    session: Option<Text<'a>>,
    #[serde(borrow)]
    last_mid: Option<Text<'a>>,
    #[serde(borrow)]
    token: Option<Text<'a>>,
}

/// A JSON string borrowed from the input when it has no escapes. (`Option<Cow<str>>` would always copy:
/// serde borrows only for a bare `Cow` field.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// `to_uid` as it may be written: a number, `"all"`, a uid as a canonical decimal string, or any other string.
#[derive(Debug, PartialEq, Eq)]
enum ToUid {
    /// A JSON number, or a string that is exactly the decimal form of a u64 (see [`canonical_uid`]).
    Number(u64),
    /// The string `"all"`.
    All,
    /// Any other string: nobody has that uid.
    Other,
}

/// The uid a `to_uid` string names: only the canonical decimal form counts — ASCII digits, no sign, no leading
/// zero, no whitespace, no exponent or radix prefix, fitting a u64 — so `"13"` is uid 13 but `"+13"`, `"013"`,
/// `" 13"`, `"1e1"` and `"0x0d"` are nobody's. `"0"` is canonical (and nobody's uid).
pub(in crate::chat::dialect) fn canonical_uid(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let canonical = !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// Hand-written rather than `#[serde(untagged)]`: untagged buffers the value first, which costs allocations on
/// every `say`; this visitor classifies the string where it lies in the input and keeps none of it.
impl<'de> Deserialize<'de> for ToUid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ToUid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a uid number or a string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ToUid::Number(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(match v {
                    "all" => ToUid::All,
                    _ => canonical_uid(v).map_or(ToUid::Other, ToUid::Number),
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses one text message from a client.
pub fn parse_client_message(text: &str) -> Result<ClientMessage<'_>, ErrorCode> {
    // serde would also accept a JSON array for a struct; the protocol wants an object.
    if !text.trim_start().starts_with('{') {
        return Err(ErrorCode::BadJson);
    }
    let msg: Incoming<'_> = serde_json::from_str(text).map_err(|_| ErrorCode::BadJson)?;
    match msg.kind.as_ref().map(|k| k.0.as_ref()) {
        Some("login") => {
            let room = match msg.room_id.map(|r| r.0) {
                Some(r) if r.len() > MAX_ROOM_BYTES => return Err(ErrorCode::BadJson),
                Some(r) if !r.trim().is_empty() => r,
                _ => Cow::Borrowed(DEFAULT_ROOM),
            };
            let resume = msg.resume.unwrap_or(false);
            let name = msg.name.map(|n| n.0).unwrap_or_default();
            Ok(ClientMessage::Login { name, room, resume, token: msg.token.map(|t| t.0) })
        }
        Some("say") => {
            let to = match msg.to_uid {
                None => Recipient::All,
                Some(ToUid::All) => Recipient::All,
                Some(ToUid::Number(0)) | Some(ToUid::Other) => Recipient::Nobody,
                Some(ToUid::Number(n)) => Recipient::User(n),
            };
            Ok(ClientMessage::Say { to, content: msg.content.map(|c| c.0).unwrap_or_default() })
        }
        Some("logout") => Ok(ClientMessage::Logout),
        Some("pong") => Ok(ClientMessage::Pong),
        Some("resume") => {
            let session = msg.session.ok_or(ErrorCode::BadJson)?.0;
            Ok(ClientMessage::Resume { session, last_mid: msg.last_mid.map(|m| m.0) })
        }
        _ => Err(ErrorCode::UnknownType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_messages_parse() {
        assert_eq!(
            parse_client_message(r#"{"type":"login","name":"mynick"}"#),
            Ok(ClientMessage::Login { name: "mynick".into(), room: DEFAULT_ROOM.into(), resume: false, token: None })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"login","name":"a","room_id":"r","resume":true}"#),
            Ok(ClientMessage::Login { name: "a".into(), room: "r".into(), resume: true, token: None })
        );
        assert_eq!(parse_client_message(r#"{"type":"login","name":"a","resume":1}"#), Err(ErrorCode::BadJson));
        assert_eq!(
            parse_client_message(r#"{"type":"resume","session":"ab","last_mid":"17"}"#),
            Ok(ClientMessage::Resume { session: "ab".into(), last_mid: Some("17".into()) })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"resume","session":"ab","last_mid":null}"#),
            Ok(ClientMessage::Resume { session: "ab".into(), last_mid: None })
        );
        for bad in [
            r#"{"type":"resume"}"#,
            r#"{"type":"resume","session":1}"#,
            r#"{"type":"resume","session":"a","last_mid":5}"#,
        ] {
            assert_eq!(parse_client_message(bad), Err(ErrorCode::BadJson), "{bad}");
        }
        assert_eq!(
            parse_client_message(r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#),
            Ok(ClientMessage::Say { to: Recipient::All, content: "hi,  all !".into() })
        );
    }

    #[test]
    fn recipients() {
        let to = |v: &str| match parse_client_message(&format!(r#"{{"type":"say","to_uid":{v},"content":"x"}}"#)) {
            Ok(ClientMessage::Say { to, .. }) => Ok(to),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(to("7"), Ok(Recipient::User(7)));
        assert_eq!(to("\"7\""), Ok(Recipient::User(7)));
        assert_eq!(to("\"all\""), Ok(Recipient::All));
        assert_eq!(to("\"bob\""), Ok(Recipient::Nobody));
        assert_eq!(to("0"), Ok(Recipient::Nobody));
        assert_eq!(to("-1"), Err(ErrorCode::BadJson));
        assert_eq!(to("1.5"), Err(ErrorCode::BadJson));
        assert_eq!(to("[1]"), Err(ErrorCode::BadJson));
        assert_eq!(to("\"0\""), Ok(Recipient::Nobody));
        assert_eq!(to("\"18446744073709551615\""), Ok(Recipient::User(u64::MAX)));
        assert_eq!(to("\"\\u0031\\u0033\""), Ok(Recipient::User(13)), "escapes decode before the check");
        assert_eq!(
            parse_client_message(r#"{"type":"say","content":"x"}"#),
            Ok(ClientMessage::Say { to: Recipient::All, content: "x".into() })
        );
    }

    #[test]
    fn to_uid_strings_must_be_canonical_decimal() {
        let to = |v: &str| match parse_client_message(&format!(r#"{{"type":"say","to_uid":{v},"content":"x"}}"#)) {
            Ok(ClientMessage::Say { to, .. }) => to,
            other => panic!("{v}: {other:?}"),
        };
        assert_eq!(to(r#""13""#), Recipient::User(13));
        assert_eq!(to("13"), Recipient::User(13));
        let signs_zeros_spaces = ["+13", "013", "0013", "00", "-0", "-13", "+", "", " 13", "13 ", "\\t13", "13\\n"];
        let other_notations = ["1e1", "0x0d", "0d", "13.0", "1_3", "1,3", "18446744073709551616"];
        // Arabic-Indic and fullwidth digits for 13; "all" is exact.
        let not_ascii_or_all = ["\\u0661\\u0663", "\\uff11\\uff13", "ALL", "all ", "bob"];
        for v in signs_zeros_spaces.into_iter().chain(other_notations).chain(not_ascii_or_all) {
            assert_eq!(to(&format!("\"{v}\"")), Recipient::Nobody, "{v:?}");
        }
        for (s, want) in [("1", Some(1)), ("13", Some(13)), ("0", Some(0)), ("013", None), ("+1", None), ("", None)] {
            assert_eq!(canonical_uid(s), want, "{s:?}");
        }
    }

    #[test]
    fn rooms() {
        assert_eq!(
            parse_client_message(r#"{"type":"login","name":"a","room_id":"lobby"}"#),
            Ok(ClientMessage::Login { name: "a".into(), room: "lobby".into(), resume: false, token: None })
        );
        let long = format!(r#"{{"type":"login","name":"a","room_id":"{}"}}"#, "r".repeat(65));
        assert_eq!(parse_client_message(&long), Err(ErrorCode::BadJson));
        assert_eq!(parse_client_message(r#"{"type":"login","name":"a","room_id":5}"#), Err(ErrorCode::BadJson));
    }

    #[test]
    fn shape_errors() {
        for bad in ["", "null", "[]", "[\"login\"]", "\"login\"", "42", "{", "{\"type\":\"login\"", "not json"] {
            assert_eq!(parse_client_message(bad), Err(ErrorCode::BadJson), "{bad}");
        }
        assert_eq!(parse_client_message(r#"{"type":5}"#), Err(ErrorCode::BadJson));
        assert_eq!(parse_client_message(r#"{"type":"login","name":5}"#), Err(ErrorCode::BadJson));
        assert_eq!(parse_client_message(r#"{"type":"say","content":["x"]}"#), Err(ErrorCode::BadJson));
        assert_eq!(parse_client_message(r#"{}"#), Err(ErrorCode::UnknownType));
        assert_eq!(parse_client_message(r#"{"type":"dance"}"#), Err(ErrorCode::UnknownType));
        assert_eq!(parse_client_message(r#"{"type":"logout"}"#), Ok(ClientMessage::Logout));
        assert_eq!(parse_client_message(r#"{"type":"pong"}"#), Ok(ClientMessage::Pong));
    }

    #[test]
    fn escaped_strings_are_decoded() {
        assert_eq!(
            parse_client_message(r#"{"type":"login","name":"\u732a\u732a"}"#),
            Ok(ClientMessage::Login { name: "猪猪".into(), room: DEFAULT_ROOM.into(), resume: false, token: None })
        );
    }
}
