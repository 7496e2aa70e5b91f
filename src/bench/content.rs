//! The bench's message content and the cheap parsing of what comes back. A bench message's content is
//! `b<sender>:<seq>:<nanos>:` padded with `x` to the requested size, so every receiver can tell who sent it,
//! its place in that sender's sequence and when it left. Receivers find it without a JSON parser: in the raw
//! protocol the text is the content; in the chat protocol it is the string value of the `content` field.
//! Nothing here allocates.

/// What a bench message's content says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sender's index among the bench's senders.
    pub sender: u32,
    /// The message's number in its sender's sequence, from 0.
    pub seq: u32,
    /// Send time in nanoseconds since the run's clock base.
    pub nanos: u64,
}

/// Longest prefix a stamp can take: `b`, three numbers of at most 20 digits and three colons.
pub const MAX_STAMP_LEN: usize = 1 + 20 * 3 + 3;

/// Appends the decimal digits of `v` to `out`.
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends the content of one bench message to `out`: the stamp, then `x` up to `size` bytes in all (a
/// stamp longer than `size` is written whole).
pub fn encode(out: &mut Vec<u8>, stamp: Stamp, size: usize) {
    let start = out.len();
    out.push(b'b');
    push_u64(out, u64::from(stamp.sender));
    out.push(b':');
    push_u64(out, u64::from(stamp.seq));
    out.push(b':');
    push_u64(out, stamp.nanos);
    out.push(b':');
    let written = out.len() - start;
    if written < size {
        out.resize(start + size, b'x');
    }
}

/// Reads a decimal number from the start of `s` up to the byte `stop`; returns it and the rest after `stop`.
fn take_number(s: &[u8], stop: u8) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    for (i, &b) in s.iter().enumerate() {
        if b == stop {
            return if i == 0 { None } else { Some((v, &s[i + 1..])) };
        }
        if !b.is_ascii_digit() || i >= 20 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    None
}

/// Parses the stamp at the start of a content; `None` for anything that is not a bench message.
pub fn parse(content: &[u8]) -> Option<Stamp> {
    let rest = content.strip_prefix(b"b")?;
    let (sender, rest) = take_number(rest, b':')?;
    let (seq, rest) = take_number(rest, b':')?;
    let (nanos, _) = take_number(rest, b':')?;
    Some(Stamp { sender: u32::try_from(sender).ok()?, seq: u32::try_from(seq).ok()?, nanos })
}

/// Appends the chat request that says `content` to everyone: `{"type":"say","to_uid":"all","content":"…"}`.
/// The content must need no JSON escaping, which [`encode`]'s output never does.
pub fn say_request(out: &mut Vec<u8>, content: &[u8]) {
    out.extend_from_slice(br#"{"type":"say","to_uid":"all","content":""#);
    out.extend_from_slice(content);
    out.extend_from_slice(br#""}"#);
}

/// The chat login request for `name`, in `room` when given. Names and rooms must need no JSON escaping.
pub fn login_request(name: &str, room: Option<&str>) -> Vec<u8> {
    match room {
        Some(room) => format!(r#"{{"type":"login","name":"{name}","room_id":"{room}"}}"#).into_bytes(),
        None => format!(r#"{{"type":"login","name":"{name}"}}"#).into_bytes(),
    }
}

/// Finds the first `"key":"` in a JSON text and returns the string value after it, up to its closing quote
/// (escapes are skipped over, not decoded). A cheap scan for messages whose shape is known, not a parser.
pub fn json_str_field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let value = json_str_start(json, key)?;
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'"' => return Some(&value[..i]),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Like [`json_str_field`] but returns everything after the value's opening quote, without looking for its
/// end: enough to read a stamp at the start of a content.
pub fn json_str_start<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    while let Some(at) = find(&json[from..], key) {
        let key_start = from + at;
        let after = key_start + key.len();
        from = after;
        // The key must be a whole JSON string: a quote before it, then `":`, optional spaces, a quote.
        if key_start == 0 || json[key_start - 1] != b'"' {
            continue;
        }
        let mut rest = match json[after..].strip_prefix(b"\":") {
            Some(r) => r,
            None => continue,
        };
        while let Some(r) = rest.strip_prefix(b" ") {
            rest = r;
        }
        return rest.strip_prefix(b"\"");
    }
    None
}

/// The stamp in a chat `say` relay, read straight from its `content` without checking the rest of the JSON.
#[inline]
pub fn say_stamp(json: &[u8]) -> Option<Stamp> {
    // The daemon writes `content` after `type`, `from_uid` and `to_uid`; start looking past the type.
    let skip = if json.starts_with(SAY_PREFIX) { SAY_PREFIX.len() } else { 0 };
    let at = json_str_start(&json[skip..], b"content")?;
    parse(at)
}

/// How a `say` relay starts when its fields come in the contract's order.
const SAY_PREFIX: &[u8] = br#"{"type":"say","#;

/// The position of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut start = 0;
    while start + needle.len() <= hay.len() {
        let at = hay[start..=hay.len() - needle.len()].iter().position(|&b| b == first)?;
        let pos = start + at;
        if &hay[pos + 1..pos + needle.len()] == rest {
            return Some(pos);
        }
        start = pos + 1;
    }
    None
}

/// The kind of a chat server message, from its `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// A `say` relay.
    Say,
    /// A `login` broadcast.
    Login,
    /// The `user_list` answer to our login.
    UserList,
    /// A `logout` broadcast.
    Logout,
    /// An `error`.
    Error,
    /// Anything else, or no `type` at all.
    Other,
}

/// Classifies a chat server message by its `type` field.
pub fn chat_kind(json: &[u8]) -> ChatKind {
    if json.starts_with(SAY_PREFIX) {
        return ChatKind::Say;
    }
    match json_str_field(json, b"type") {
        Some(b"say") => ChatKind::Say,
        Some(b"login") => ChatKind::Login,
        Some(b"user_list") => ChatKind::UserList,
        Some(b"logout") => ChatKind::Logout,
        Some(b"error") => ChatKind::Error,
        _ => ChatKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_pads_to_size_and_parses_back() {
        let stamp = Stamp { sender: 12, seq: 345, nanos: 6_789_000_123 };
        let mut out = Vec::new();
        encode(&mut out, stamp, 64);
        assert_eq!(out.len(), 64);
        assert!(out.starts_with(b"b12:345:6789000123:xxx"));
        assert_eq!(parse(&out), Some(stamp));
    }

    #[test]
    fn long_stamps_are_written_whole() {
        let stamp = Stamp { sender: u32::MAX, seq: u32::MAX, nanos: u64::MAX };
        let mut out = b"keep".to_vec();
        encode(&mut out, stamp, 8);
        assert!(out.len() <= 4 + MAX_STAMP_LEN);
        assert_eq!(parse(&out[4..]), Some(stamp));
        let mut zero = Vec::new();
        encode(&mut zero, Stamp { sender: 0, seq: 0, nanos: 0 }, 0);
        assert_eq!(zero, b"b0:0:0:");
    }

    #[test]
    fn foreign_content_is_not_a_stamp() {
        for bad in
            [&b""[..], b"hello", b"b", b"b1:2", b"b1:2:3", b"b:1:2:", b"bx:1:2:", b"b1::2:", b"b99999999999:1:1:"]
        {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"b1:2:3:"), Some(Stamp { sender: 1, seq: 2, nanos: 3 }));
        assert_eq!(parse(b"b1:2:99999999999999999999999:"), None);
    }

    #[test]
    fn say_request_is_valid_json() {
        let mut content = Vec::new();
        encode(&mut content, Stamp { sender: 1, seq: 2, nanos: 3 }, 32);
        let mut out = Vec::new();
        say_request(&mut out, &content);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "say");
        assert_eq!(v["to_uid"], "all");
        assert_eq!(v["content"].as_str().unwrap().as_bytes(), &content[..]);
        let login: serde_json::Value = serde_json::from_slice(&login_request("b7", Some("r2"))).unwrap();
        assert_eq!(login["name"], "b7");
        assert_eq!(login["room_id"], "r2");
        let login: serde_json::Value = serde_json::from_slice(&login_request("b7", None)).unwrap();
        assert!(login.get("room_id").is_none());
    }

    #[test]
    fn finds_content_in_a_say_relay() {
        let relay = br#"{"type":"say","from_uid":3,"to_uid":"all","content":"b1:2:3:xx","time":"2024-01-01 00:00:00"}"#;
        assert_eq!(json_str_field(relay, b"content"), Some(&b"b1:2:3:xx"[..]));
        assert_eq!(json_str_field(relay, b"type"), Some(&b"say"[..]));
        assert_eq!(chat_kind(relay), ChatKind::Say);
        // Spaces after the colon, an escaped quote in a value, a key that only appears inside a value.
        let odd = br#"{"name": "say \"content\":", "content": "b\"q"}"#;
        assert_eq!(json_str_field(odd, b"content"), Some(&br#"b\"q"#[..]));
        assert_eq!(json_str_field(br#"{"content":3}"#, b"content"), None);
        assert_eq!(json_str_field(br#"{"content":"unterminated"#, b"content"), None);
        assert_eq!(json_str_field(b"", b"content"), None);
        assert_eq!(say_stamp(relay), Some(Stamp { sender: 1, seq: 2, nanos: 3 }));
        assert_eq!(say_stamp(br#"{"content":"b4:5:6:","type":"say"}"#), Some(Stamp { sender: 4, seq: 5, nanos: 6 }));
        assert_eq!(say_stamp(br#"{"type":"say","content":"hello"}"#), None);
        assert_eq!(json_str_field(br#"{"xcontent":"a"}"#, b"content"), None);
    }

    #[test]
    fn classifies_chat_messages() {
        assert_eq!(chat_kind(br#"{"type":"user_list","user_list":[]}"#), ChatKind::UserList);
        assert_eq!(chat_kind(br#"{"type":"login","uid":1,"name":"a","time":"t"}"#), ChatKind::Login);
        assert_eq!(chat_kind(br#"{"type":"logout","uid":1}"#), ChatKind::Logout);
        assert_eq!(chat_kind(br#"{"type":"error","code":"bad_json","message":"m"}"#), ChatKind::Error);
        assert_eq!(chat_kind(br#"{"type":"ping"}"#), ChatKind::Other);
        assert_eq!(chat_kind(b"not json"), ChatKind::Other);
    }

    #[test]
    fn find_works_at_edges() {
        assert_eq!(find(b"abc", b"abc"), Some(0));
        assert_eq!(find(b"xxabc", b"abc"), Some(2));
        assert_eq!(find(b"ababc", b"abc"), Some(2));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"abc", b""), None);
    }
}
