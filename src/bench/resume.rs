//! The bench's side of resume (chat protocol): the resume request, and the cheap reading of what a session's
//! messages add — the session id at the end of a `user_list`, the `mid` that ends every say, and the
//! `resumed` that closes a replay. Mids and session ids are opaque: they are copied back verbatim, never
//! interpreted. Nothing here allocates.

/// What ends a session's user list: the session id, then `"}`.
const SESSION_KEY: &[u8] = br#","session":""#;

/// What comes before a say's mid: the mid is its last field.
const MID_KEY: &[u8] = br#","mid":""#;

/// Longest session id the bench keeps (the server promises at most 128 bytes).
pub const MAX_SESSION_BYTES: usize = 128;

/// Bytes of a user list's end kept while it is passed over in pieces: the session field and more.
pub const LIST_TAIL_BYTES: usize = MAX_SESSION_BYTES + 32;

/// Appends the request that resumes `session` after the say `last_mid` (none received: `null`). Both are the
/// server's own JSON string contents, written back as they came.
pub fn resume_request(out: &mut Vec<u8>, session: &[u8], last_mid: Option<&[u8]>) {
    out.extend_from_slice(br#"{"type":"resume","session":""#);
    out.extend_from_slice(session);
    match last_mid {
        Some(mid) => {
            out.extend_from_slice(br#"","last_mid":""#);
            out.extend_from_slice(mid);
            out.extend_from_slice(br#""}"#);
        }
        None => out.extend_from_slice(br#"","last_mid":null}"#),
    }
}

/// The value of a string field that ends `json`: `…,"key":"value"}`; `None` when the text ends otherwise or
/// the value holds a quote or a backslash (nothing the server writes there).
fn last_field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let body = json.strip_suffix(b"\"}")?;
    let open = body.iter().rposition(|&b| b == b'"')?;
    let value = &body[open + 1..];
    if value.contains(&b'\\') || !body[..=open].ends_with(key) {
        return None;
    }
    Some(value)
}

/// The mid of a say relay: its last field, `"mid":"…"`; `None` for a say without one.
#[inline]
pub fn say_mid(json: &[u8]) -> Option<&[u8]> {
    last_field(json, MID_KEY)
}

/// A relay's fields before its mid (all of them when it has none), without the closing brace: what the
/// relay to a client without a session would be, but its last byte.
#[inline]
pub fn say_fields(json: &[u8]) -> &[u8] {
    match say_mid(json) {
        // `,"mid":"`, the value, `"}` go.
        Some(mid) => &json[..json.len() - 2 - mid.len() - MID_KEY.len()],
        None => json.strip_suffix(b"}").unwrap_or(json),
    }
}

/// The session id that ends a user list (or the last bytes of one); `None` when there is none.
pub fn list_session(json: &[u8]) -> Option<&[u8]> {
    last_field(json, SESSION_KEY).filter(|s| !s.is_empty() && s.len() <= MAX_SESSION_BYTES)
}

/// What a `resumed` says: whether every missed say came, and how many did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// `recovered`: no say after the client's last mid is missing.
    pub recovered: bool,
    /// `missed`: says replayed.
    pub missed: u64,
}

/// Reads a `resumed` message (`{"type":"resumed","uid":U,"recovered":B,"missed":K}`, any field order).
pub fn resumed(json: &[u8]) -> Option<Resumed> {
    let recovered = match field_value(json, b"recovered")? {
        v if v.starts_with(b"true") => true,
        v if v.starts_with(b"false") => false,
        _ => return None,
    };
    let digits = field_value(json, b"missed")?;
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let missed = digits[..n].iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
    Some(Resumed { recovered, missed })
}

/// What follows `"key":` (spaces skipped) in a flat JSON object.
fn field_value<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    while let Some(at) = json[from..].windows(key.len()).position(|w| w == key) {
        let start = from + at;
        from = start + key.len();
        if start == 0 || json[start - 1] != b'"' {
            continue;
        }
        let Some(mut rest) = json[from..].strip_prefix(b"\":") else { continue };
        while let Some(r) = rest.strip_prefix(b" ") {
            rest = r;
        }
        return Some(rest);
    }
    None
}

/// How a client's connection is cut: never with a close frame, so its session outlives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A reset: `SO_LINGER` 0, then close — the server reads an error.
    Reset,
    /// A FIN: shutdown for writing — the server reads the end of the stream.
    Fin,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::dialect::seed::{ServerMessage, ToUidOut, UserEntry};

    #[test]
    fn the_resume_request_is_json_the_server_reads() {
        let mut out = Vec::new();
        resume_request(&mut out, b"00ff", Some(b"17"));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"type":"resume","session":"00ff","last_mid":"17"}));
        out.clear();
        resume_request(&mut out, b"00ff", None);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"type":"resume","session":"00ff","last_mid":null}));
        use crate::chat::dialect::seed::parse_client_message;
        assert!(parse_client_message(std::str::from_utf8(&out).unwrap()).is_ok());
    }

    #[test]
    fn the_mid_of_the_daemons_say() {
        let say = |mid| {
            let mut json = Vec::new();
            let to_uid = ToUidOut::All("all");
            ServerMessage::Say { from_uid: 3, to_uid, content: "a\"b", time: "2024-01-01 00:00:00", mid }
                .write_json(&mut json);
            json
        };
        let with = say(Some("a1.12345.2~b2.7"));
        assert_eq!(say_mid(&with), Some(&b"a1.12345.2~b2.7"[..]));
        let without = say(None);
        assert_eq!(say_mid(&without), None);
        assert_eq!(say_fields(&with), &without[..without.len() - 1]);
        assert_eq!(say_fields(&without), &without[..without.len() - 1]);
        assert_eq!(say_fields(b"x"), b"x");
        // A content ending like a mid field is no mid: the time comes after it.
        let tricky = br#"{"type":"say","content":"x,\"mid\":\"9\"}","time":"t"}"#;
        assert_eq!(say_mid(tricky), None);
        for bad in [&b""[..], b"\"}", br#""mid":"1"}"#, br#",mid":"1"}"#, br#","mid":"1\"}"#, br#","mid":"1""#] {
            assert_eq!(say_mid(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_session_ends_the_user_list() {
        let users = [UserEntry { uid: 1, name: "b0", user_id: None }];
        let mut json = Vec::new();
        ServerMessage::UserList { user_list: &users }.write_json(&mut json);
        assert_eq!(list_session(&json), None);
        json.truncate(json.len() - 1);
        json.extend_from_slice(br#","session":"0123456789abcdef0123456789abcdef"}"#);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["session"], "0123456789abcdef0123456789abcdef");
        assert_eq!(list_session(&json), Some(&b"0123456789abcdef0123456789abcdef"[..]));
        assert_eq!(list_session(&json[json.len() - LIST_TAIL_BYTES.min(json.len())..]), list_session(&json));
        assert_eq!(list_session(br#"{"session":""}"#), None);
        let long = format!(r#"{{"x":1,"session":"{}"}}"#, "a".repeat(MAX_SESSION_BYTES + 1));
        assert_eq!(list_session(long.as_bytes()), None);
    }

    #[test]
    fn resumed_says_recovered_and_missed() {
        let mut json = Vec::new();
        ServerMessage::Resumed { uid: 4, recovered: true, missed: 12 }.write_json(&mut json);
        assert_eq!(resumed(&json), Some(Resumed { recovered: true, missed: 12 }));
        json.clear();
        ServerMessage::Resumed { uid: 4, recovered: false, missed: 0 }.write_json(&mut json);
        assert_eq!(resumed(&json), Some(Resumed { recovered: false, missed: 0 }));
        assert_eq!(resumed(br#"{"missed": 3, "recovered": true}"#), Some(Resumed { recovered: true, missed: 3 }));
        for bad in
            [&br#"{"type":"resumed"}"#[..], br#"{"recovered":1,"missed":2}"#, br#"{"recovered":true,"missed":x}"#]
        {
            assert_eq!(resumed(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
