//! What the `api` scenario sends and reads back on the API port: the JSON body of each request, written
//! around a stamped content (src/bench/content.rs: sender, sequence number, send time) from a prefix and a
//! suffix made once, and the recipient count of an answer (`users` of a say, `queued` of a send).

use super::Verb;

/// The suffix of a say body, after the content.
const SAY_SUFFIX: &[u8] = br#"","to_uid":"all"}"#;
/// The data's start inside a send body: `{"type":"bench","content":"` as a JSON string's escaped bytes.
const SEND_DATA_START: &[u8] = br#""data":"{\"type\":\"bench\",\"content\":\""#;
/// The suffix of a send body, after the content: the data's `"}` escaped, then the body's end.
const SEND_SUFFIX: &[u8] = br#"\"}"}"#;

/// The bodies of one verb's requests to one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bodies {
    prefix: Vec<u8>,
    suffix: &'static [u8],
}

impl Bodies {
    /// The bodies of `verb` to the members of `room`: `{"room":R,"content":C,"to_uid":"all"}` (say) or
    /// `{"to":{"room":R},"data":"{\"type\":\"bench\",\"content\":C}"}` (send, whose data each member receives
    /// verbatim, as [`crate::bench::content::bench_data`] writes it).
    pub fn new(verb: Verb, room: &str) -> Bodies {
        let room = serde_json::Value::from(room).to_string();
        let (prefix, suffix) = match verb {
            Verb::Say => (format!(r#"{{"room":{room},"content":""#).into_bytes(), SAY_SUFFIX),
            Verb::Send => {
                let mut prefix = format!(r#"{{"to":{{"room":{room}}},"#).into_bytes();
                prefix.extend_from_slice(SEND_DATA_START);
                (prefix, SEND_SUFFIX)
            }
        };
        Bodies { prefix, suffix }
    }

    /// Appends the body carrying `content`, which must need no JSON escaping (a bench content never does).
    pub fn write(&self, out: &mut Vec<u8>, content: &[u8]) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(content);
        out.extend_from_slice(self.suffix);
    }
}

/// The recipients an `ok` answer of `verb` names: `"users":N` (say) or `"queued":N` (send); `None` when the
/// answer has no such number.
pub fn recipients(verb: Verb, body: &[u8]) -> Option<u64> {
    let key: &[u8] = match verb {
        Verb::Say => br#""users":"#,
        Verb::Send => br#""queued":"#,
    };
    let at = body.windows(key.len()).position(|w| w == key)?;
    let digits = &body[at + key.len()..];
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    Some(digits[..n].iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::content::{self, Stamp};

    fn stamped(seq: u32) -> Vec<u8> {
        let mut c = Vec::new();
        content::encode(&mut c, Stamp { sender: 2, seq, nanos: 77 }, 64);
        c
    }

    #[test]
    fn a_say_body_is_the_daemons_say() {
        let mut body = Vec::new();
        Bodies::new(Verb::Say, "lobby").write(&mut body, &stamped(5));
        let say = crate::chat::api::say_body(&body, 1 << 16).unwrap();
        assert_eq!((say.room.as_str(), say.to), ("lobby", None));
        assert_eq!(content::parse(say.content.as_bytes()), Some(Stamp { sender: 2, seq: 5, nanos: 77 }));
    }

    #[test]
    fn a_send_body_carries_bench_data_to_the_room() {
        let mut body = Vec::new();
        Bodies::new(Verb::Send, "r\"1\\é").write(&mut body, &stamped(6));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["to"], serde_json::json!({"room": "r\"1\\é"}));
        let data = v["data"].as_str().unwrap().as_bytes();
        let mut want = Vec::new();
        content::bench_data(&mut want, &stamped(6));
        assert_eq!(data, &want[..]);
        assert_eq!(content::bench_stamp(data), Some(Stamp { sender: 2, seq: 6, nanos: 77 }));
        assert_eq!(v.as_object().map(|o| o.len()), Some(2));
    }

    #[test]
    fn room_names_are_escaped() {
        let mut body = Vec::new();
        Bodies::new(Verb::Say, "a\"b\\c\u{1}").write(&mut body, b"x");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["room"].as_str(), v["content"].as_str(), v["to_uid"].as_str()),
            (Some("a\"b\\c\u{1}"), Some("x"), Some("all"))
        );
    }

    #[test]
    fn answers_name_their_recipients() {
        assert_eq!(recipients(Verb::Say, br#"{"ok":true,"room":"1","users":100}"#), Some(100));
        assert_eq!(recipients(Verb::Send, br#"{"ok":true,"queued":0}"#), Some(0));
        assert_eq!(recipients(Verb::Send, br#"{"ok":true,"users":3}"#), None);
        assert_eq!(recipients(Verb::Say, br#"{"ok":true,"users":"3"}"#), None);
        assert_eq!(recipients(Verb::Say, br#"{"ok":true,"users":99999999999999999999}"#), None);
        assert_eq!(recipients(Verb::Say, b""), None);
    }
}
