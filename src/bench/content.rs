//! The bench's message content and the cheap parsing of what comes back. A bench message's content is `x`
//! padding followed by a fixed-width stamp, `b` and 32 hex digits (sender, sequence number, send time), so
//! every receiver can tell who sent it, its place in that sender's sequence and when it left. The stamp sits
//! at the end of the content because that is where a receiver finds it in constant time: in the raw protocol
//! the text is the content; in the chat protocol the daemon writes `content` just before the fixed-width
//! `time` field, so the stamp sits at a known distance from the end of the relay (a relay of another shape
//! falls back to a scan for the `content` field). Nothing here allocates.

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

/// Length of a stamp: the marker `b` and 8 + 8 + 16 hex digits.
pub const STAMP_LEN: usize = 1 + 32;

/// The byte that starts a stamp.
const MARKER: u8 = b'b';

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `v` as `digits` lower-case hex digits.
fn push_hex(out: &mut Vec<u8>, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// Appends the content of one bench message to `out`: `x` padding, then the stamp, `size` bytes in all (a
/// `size` below [`STAMP_LEN`] still gets the whole stamp).
pub fn encode(out: &mut Vec<u8>, stamp: Stamp, size: usize) {
    out.resize(out.len() + size.saturating_sub(STAMP_LEN), b'x');
    out.push(MARKER);
    push_hex(out, u64::from(stamp.sender), 8);
    push_hex(out, u64::from(stamp.seq), 8);
    push_hex(out, stamp.nanos, 16);
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A high bit in each byte of `w` that lies strictly between `lo` and `hi` (bytes below 0x80, `hi` ≤ 0x80),
/// all lanes at once ("determine if a word has a byte between m and n").
#[inline]
fn bytes_between(w: u64, lo: u8, hi: u8) -> u64 {
    let low7 = w & (ONES * 0x7f);
    (ONES * (127 + u64::from(hi)) - low7) & !w & (low7 + ONES * (127 - u64::from(lo))) & HIGHS
}

/// Reads 8 lower-case hex digits, most significant first; `None` when any byte is not one. Works on the
/// whole word at once: a receiver parses millions of stamps a second.
#[inline]
fn hex8(digits: &[u8; 8]) -> Option<u32> {
    let w = u64::from_be_bytes(*digits);
    let digit = bytes_between(w, b'0' - 1, b'9' + 1);
    let letter = bytes_between(w, b'a' - 1, b'f' + 1);
    if digit | letter != HIGHS {
        return None;
    }
    // '0'..'9' → low nibble; 'a'..'f' → low nibble (1..6) + 9, told apart by bit 6.
    let nibbles = (w & (ONES * 0x0f)) + ((w >> 6) & ONES) * 9;
    // Pack pairs of nibbles, then pairs of bytes, then pairs of 16-bit halves.
    let v = (nibbles | (nibbles >> 4)) & 0x00ff_00ff_00ff_00ff;
    let v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    let v = (v | (v >> 16)) & 0x0000_0000_ffff_ffff;
    Some(v as u32)
}

/// Parses a stamp that fills `bytes` exactly.
#[inline]
fn parse_exact(bytes: &[u8; STAMP_LEN]) -> Option<Stamp> {
    let (marker, digits) = bytes.split_first()?;
    if *marker != MARKER {
        return None;
    }
    let sender = hex8(digits[0..8].try_into().ok()?)?;
    let seq = hex8(digits[8..16].try_into().ok()?)?;
    let high = hex8(digits[16..24].try_into().ok()?)?;
    let low = hex8(digits[24..32].try_into().ok()?)?;
    Some(Stamp { sender, seq, nanos: (u64::from(high) << 32) | u64::from(low) })
}

/// Parses the stamp at the end of a content; `None` for anything that is not a bench message.
#[inline]
pub fn parse(content: &[u8]) -> Option<Stamp> {
    let start = content.len().checked_sub(STAMP_LEN)?;
    parse_exact(content[start..].try_into().ok()?)
}
/// Appends the chat request that says `content` to everyone: `{"type":"say","to_uid":"all","content":"…"}`.
/// The content must need no JSON escaping, which [`encode`]'s output never does.
pub fn say_request(out: &mut Vec<u8>, content: &[u8]) {
    out.extend_from_slice(br#"{"type":"say","to_uid":"all","content":""#);
    out.extend_from_slice(content);
    out.extend_from_slice(br#""}"#);
}

/// How the text the `api` scenario pushes with `POST /api/send` starts: `{"type":"bench","content":"`.
const BENCH_DATA_PREFIX: &[u8] = br#"{"type":"bench","content":""#;
/// How it ends, after the content.
const BENCH_DATA_SUFFIX: &[u8] = br#""}"#;

/// Appends the text the `api` scenario pushes verbatim with `POST /api/send`: `{"type":"bench","content":"…"}`,
/// a JSON object of a type no chat message has, that ends with the content and so with its stamp. The content
/// must need no JSON escaping, which [`encode`]'s output never does.
pub fn bench_data(out: &mut Vec<u8>, content: &[u8]) {
    out.extend_from_slice(BENCH_DATA_PREFIX);
    out.extend_from_slice(content);
    out.extend_from_slice(BENCH_DATA_SUFFIX);
}

/// The stamp in a text [`bench_data`] wrote. Fast path: the stamp ends the text just before its closing `"}`;
/// otherwise the `content` field is looked up by a scan.
#[inline]
pub fn bench_stamp(json: &[u8]) -> Option<Stamp> {
    if let Some(fields) = json.strip_suffix(BENCH_DATA_SUFFIX) {
        if let Some(stamp) = parse(fields) {
            return Some(stamp);
        }
    }
    parse(json_str_field(json, b"content")?)
}

/// The chat login request for `name`, in `room` when given, asking for a session when `resume`, proving who
/// it is with `token` when given. Names, rooms and tokens must need no JSON escaping (a JWT is base64url and
/// dots).
pub fn login_request(name: &str, room: Option<&str>, resume: bool, token: Option<&str>) -> Vec<u8> {
    let resume = if resume { r#","resume":true"# } else { "" };
    let token = token.map(|t| format!(r#","token":"{t}""#)).unwrap_or_default();
    match room {
        Some(room) => format!(r#"{{"type":"login","name":"{name}","room_id":"{room}"{resume}{token}}}"#).into_bytes(),
        None => format!(r#"{{"type":"login","name":"{name}"{resume}{token}}}"#).into_bytes(),
    }
}

/// The login name of bench client `i`: `b` and its index, so that any client that sees the name (in a user
/// list or a login broadcast, from whichever server of a cluster) knows which bench client it is.
pub fn client_name(i: usize) -> String {
    format!("b{i}")
}

/// The bench client a login name stands for: `b` and at most 10 decimal digits; `None` for any other name.
pub fn client_of_name(name: &[u8]) -> Option<usize> {
    let digits = name.strip_prefix(b"b")?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0usize, |v, &d| v * 10 + usize::from(d - b'0')))
}

/// How a login broadcast starts in the contract's field order, up to the uid's digits.
const LOGIN_UID_PREFIX: &[u8] = br#"{"type":"login","uid":"#;

/// The bench client named in a chat `login` broadcast. Fast path for the contract's field order
/// (`{"type":"login","uid":N,"name":"…"`): filling a big room, every client reads every login broadcast.
pub fn login_client(json: &[u8]) -> Option<usize> {
    if let Some(rest) = json.strip_prefix(LOGIN_UID_PREFIX) {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Some(name) = rest[digits..].strip_prefix(br#","name":""#) {
            if let Some(end) = name.iter().position(|&b| b == b'"') {
                return client_of_name(&name[..end]);
            }
        }
    }
    client_of_name(json_str_field(json, b"name")?)
}

/// A scan for the bench clients named in a `user_list` (`"name":"b<digits>"`, spaces allowed after the
/// colon) that can be fed the list in pieces cut anywhere, as the reads bring it: a big room's list is passed
/// over as it comes, never assembled. Anything else named (other users, other keys) is passed over. Escaped
/// quotes cannot fake a match: inside a JSON string a quote is always `\"`, and the key needs a bare one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameScan {
    /// Bytes of `"name":` matched (0..=7), then 7: spaces, 8: the opening quote seen, 9: `b` seen, digits.
    state: u8,
    digits: u8,
    value: u64,
}

/// The key a name scan looks for.
const NAME_KEY: &[u8] = br#""name":"#;

impl NameScan {
    /// Starts over, for the next list.
    pub fn reset(&mut self) {
        *self = NameScan::default();
    }

    /// Scans the next piece of the list; calls `found` with each bench client named.
    pub fn feed(&mut self, bytes: &[u8], mut found: impl FnMut(usize)) {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == 0 {
                // Between matches only a quote can start one: jump to the next.
                match bytes[i..].iter().position(|&b| b == b'"') {
                    Some(at) => i += at,
                    None => return,
                }
            }
            let b = bytes[i];
            i += 1;
            let key_len = NAME_KEY.len() as u8;
            match self.state {
                s if s < key_len && b == NAME_KEY[s as usize] => self.state += 1,
                s if s == key_len && b == b' ' => {}
                s if s == key_len && b == b'"' => self.state += 1,
                s if s == key_len + 1 && b == b'b' => {
                    self.state += 1;
                    self.digits = 0;
                    self.value = 0;
                }
                s if s == key_len + 2 && b.is_ascii_digit() && self.digits < 10 => {
                    self.digits += 1;
                    self.value = self.value * 10 + u64::from(b - b'0');
                }
                s if s == key_len + 2 && b == b'"' && self.digits > 0 => {
                    found(self.value as usize);
                    self.state = 0;
                }
                // A mismatch; a quote may start the key anew.
                _ => self.state = u8::from(b == b'"'),
            }
        }
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

/// The stamp in a chat `say` relay. Fast path: the relay ends with `","time":"YYYY-MM-DD HH:MM:SS"}` and the
/// stamp ends the content just before it. Otherwise the `content` field is looked up by a scan.
#[inline]
pub fn say_stamp(json: &[u8]) -> Option<Stamp> {
    // A session's say has its mid after the time: the same view without it.
    let fields = crate::bench::resume::say_fields(json);
    if let Some(stamp_end) = fields.len().checked_sub(TIME_TAIL_LEN) {
        if fields[stamp_end..].starts_with(TIME_TAIL_START) && stamp_end >= STAMP_LEN {
            if let Some(stamp) = parse(&fields[..stamp_end]) {
                return Some(stamp);
            }
        }
    }
    parse(json_str_field(json, b"content")?)
}

/// What follows the content in a relay written in the contract's field order.
const TIME_TAIL_START: &[u8] = br#"","time":""#;
/// Length of that tail: the field's start, a `YYYY-MM-DD HH:MM:SS` time, its closing quote.
const TIME_TAIL_LEN: usize = TIME_TAIL_START.len() + 19 + 1;

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
    /// The `resumed` that ends the answer to a resume.
    Resumed,
    /// A text pushed by the `api` scenario through `POST /api/send` ([`bench_data`]).
    Bench,
    /// Anything else, or no `type` at all.
    Other,
}

/// How a `user_list` starts when `type` comes first.
pub const USER_LIST_PREFIX: &[u8] = br#"{"type":"user_list","#;

/// How every server message starts when `type` comes first, as the contract has it.
const TYPE_START: &[u8] = br#"{"type":""#;

/// Classifies a chat server message by its `type` field.
pub fn chat_kind(json: &[u8]) -> ChatKind {
    // Messages in the contract's field order are told apart by the byte after `{"type":"` and one
    // comparison, before any scan: filling a big room, every client reads every login broadcast (50 M of
    // them for a room of 10 000).
    if let (Some(head), Some(&first)) = (json.get(..TYPE_START.len()), json.get(TYPE_START.len())) {
        if head == TYPE_START {
            let (prefix, kind): (&[u8], _) = match first {
                b's' => (SAY_PREFIX, ChatKind::Say),
                b'l' if json.get(TYPE_START.len() + 3) == Some(&b'i') => (br#"{"type":"login","#, ChatKind::Login),
                b'l' => (br#"{"type":"logout","#, ChatKind::Logout),
                b'u' => (USER_LIST_PREFIX, ChatKind::UserList),
                b'e' => (br#"{"type":"error","#, ChatKind::Error),
                b'r' => (br#"{"type":"resumed","#, ChatKind::Resumed),
                b'b' => (br#"{"type":"bench","#, ChatKind::Bench),
                _ => (b"", ChatKind::Other),
            };
            if !prefix.is_empty() && json.starts_with(prefix) {
                return kind;
            }
        }
    }
    match json_str_field(json, b"type") {
        Some(b"say") => ChatKind::Say,
        Some(b"login") => ChatKind::Login,
        Some(b"user_list") => ChatKind::UserList,
        Some(b"logout") => ChatKind::Logout,
        Some(b"error") => ChatKind::Error,
        Some(b"resumed") => ChatKind::Resumed,
        Some(b"bench") => ChatKind::Bench,
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
        assert!(out.starts_with(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxb0000000c00000159"));
        assert_eq!(parse(&out), Some(stamp));
    }

    #[test]
    fn extreme_stamps_and_short_sizes_are_written_whole() {
        let stamp = Stamp { sender: u32::MAX, seq: u32::MAX, nanos: u64::MAX };
        let mut out = b"keep".to_vec();
        encode(&mut out, stamp, 8);
        assert_eq!(out.len(), 4 + STAMP_LEN);
        assert_eq!(parse(&out[4..]), Some(stamp));
        let mut zero = Vec::new();
        encode(&mut zero, Stamp { sender: 0, seq: 0, nanos: 0 }, 0);
        assert_eq!(zero, b"b00000000000000000000000000000000");
    }

    #[test]
    fn hex8_agrees_with_a_plain_parser_on_every_byte() {
        for v in [0u32, 1, 0x9, 0xa, 0xf, 0x10, 0xdead_beef, 0x0123_4567, 0x89ab_cdef, u32::MAX] {
            let text = format!("{v:08x}");
            assert_eq!(hex8(text.as_bytes().try_into().unwrap()), Some(v), "{text}");
        }
        for b in 0..=255u8 {
            for at in [0, 3, 7] {
                let mut digits = *b"0123abcd";
                digits[at] = b;
                let plain = std::str::from_utf8(&digits)
                    .ok()
                    .filter(|t| t.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
                    .and_then(|t| u32::from_str_radix(t, 16).ok());
                assert_eq!(hex8(&digits), plain, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn foreign_content_is_not_a_stamp() {
        let good = b"b00000001000000020000000000000003";
        assert_eq!(parse(good), Some(Stamp { sender: 1, seq: 2, nanos: 3 }));
        assert_eq!(parse(&[b"xyz".as_slice(), good].concat()), Some(Stamp { sender: 1, seq: 2, nanos: 3 }));
        for bad in [
            &b""[..],
            b"hello",
            b"b",
            b"b0000000100000002000000000000003",
            b"a00000001000000020000000000000003",
            b"b0000000100000002000000000000000g",
            b"b000000010000000200000000000000:3",
            b"b0000000100000002000000000000000A",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
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
        let login: serde_json::Value = serde_json::from_slice(&login_request("b7", Some("r2"), false, None)).unwrap();
        assert_eq!(login["name"], "b7");
        assert_eq!(login["room_id"], "r2");
        assert!(login.get("resume").is_none());
        let login: serde_json::Value = serde_json::from_slice(&login_request("b7", None, false, None)).unwrap();
        assert!(login.get("room_id").is_none());
        let login: serde_json::Value = serde_json::from_slice(&login_request("b7", Some("r2"), true, None)).unwrap();
        assert_eq!((login["room_id"].as_str(), login["resume"].as_bool()), (Some("r2"), Some(true)));
        let login: serde_json::Value = serde_json::from_slice(&login_request("b7", None, true, None)).unwrap();
        assert_eq!(login, serde_json::json!({"type":"login","name":"b7","resume":true}));
        let login: serde_json::Value =
            serde_json::from_slice(&login_request("b7", None, false, Some("a.b.c"))).unwrap();
        assert_eq!(login, serde_json::json!({"type":"login","name":"b7","token":"a.b.c"}));
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
        assert_eq!(json_str_field(br#"{"xcontent":"a"}"#, b"content"), None);
    }

    #[test]
    fn say_stamp_reads_the_daemons_relay_and_other_shapes() {
        let stamp = Stamp { sender: 7, seq: 9, nanos: 123_456 };
        let mut content = Vec::new();
        encode(&mut content, stamp, 64);
        let content = String::from_utf8(content).unwrap();
        // The daemon's own relay, field order included.
        let relay = crate::chat::dialect::seed::ServerMessage::Say {
            from_uid: 3,
            to_uid: crate::chat::dialect::seed::ToUidOut::All("all"),
            content: &content,
            time: "2024-01-01 00:00:00",
            mid: None,
        };
        let mut json = Vec::new();
        relay.write_json(&mut json);
        assert_eq!(say_stamp(&json), Some(stamp));
        // A session's say carries its mid last.
        let with_mid = crate::chat::dialect::seed::ServerMessage::Say {
            from_uid: 3,
            to_uid: crate::chat::dialect::seed::ToUidOut::All("all"),
            content: &content,
            time: "2024-01-01 00:00:00",
            mid: Some("12"),
        };
        json.clear();
        with_mid.write_json(&mut json);
        assert!(json.ends_with(br#","mid":"12"}"#));
        assert_eq!(say_stamp(&json), Some(stamp));
        // Content first, time missing, or a longer time: the scan finds it.
        let other = format!(r#"{{"content":"{content}","type":"say"}}"#);
        assert_eq!(say_stamp(other.as_bytes()), Some(stamp));
        let other = format!(r#"{{"type":"say","content":"{content}","time":"2024-01-01 00:00:00.123"}}"#);
        assert_eq!(say_stamp(other.as_bytes()), Some(stamp));
        assert_eq!(say_stamp(br#"{"type":"say","content":"hello","time":"2024-01-01 00:00:00"}"#), None);
        assert_eq!(say_stamp(br#"","time":"2024-01-01 00:00:00"}"#), None);
    }

    #[test]
    fn bench_data_is_json_and_parses_back() {
        let stamp = Stamp { sender: 3, seq: 70_000, nanos: 9_876_543_210 };
        let mut content = Vec::new();
        encode(&mut content, stamp, 64);
        let mut data = Vec::new();
        bench_data(&mut data, &content);
        let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(v["type"], "bench");
        assert_eq!(v["content"].as_str().unwrap().as_bytes(), &content[..]);
        assert_eq!(chat_kind(&data), ChatKind::Bench);
        assert_eq!(bench_stamp(&data), Some(stamp));
        // Another field order or spacing: the scan finds it.
        let content = String::from_utf8(content).unwrap();
        let other = format!(r#"{{"content": "{content}", "type":"bench"}}"#);
        assert_eq!(chat_kind(other.as_bytes()), ChatKind::Bench);
        assert_eq!(bench_stamp(other.as_bytes()), Some(stamp));
        for bad in [&br#"{"type":"bench","content":"hello"}"#[..], br#"{"type":"bench"}"#, br#""}"#, b""] {
            assert_eq!(bench_stamp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(chat_kind(br#"{"type":"benches","content":"x"}"#), ChatKind::Other);
    }

    #[test]
    fn classifies_chat_messages() {
        assert_eq!(chat_kind(br#"{"type":"user_list","user_list":[]}"#), ChatKind::UserList);
        assert_eq!(chat_kind(br#"{"type":"login","uid":1,"name":"a","time":"t"}"#), ChatKind::Login);
        assert_eq!(chat_kind(br#"{"type":"logout","uid":1}"#), ChatKind::Logout);
        assert_eq!(chat_kind(br#"{"type":"error","code":"bad_json","message":"m"}"#), ChatKind::Error);
        assert_eq!(chat_kind(br#"{"type":"ping"}"#), ChatKind::Other);
        assert_eq!(chat_kind(br#"{"type":"resumed","uid":1,"recovered":true,"missed":0}"#), ChatKind::Resumed);
        assert_eq!(chat_kind(br#"{"uid":1,"type":"resumed"}"#), ChatKind::Resumed);
        assert_eq!(chat_kind(br#"{"type":"resume","uid":1}"#), ChatKind::Other);
        assert_eq!(chat_kind(b"not json"), ChatKind::Other);
        // Other field orders and spacing are still classified by the scan.
        assert_eq!(chat_kind(br#"{"uid":1, "type": "login"}"#), ChatKind::Login);
        assert_eq!(chat_kind(br#"{"type":"logins","uid":1}"#), ChatKind::Other);
        assert_eq!(chat_kind(br#"{"type":"user_list"}"#), ChatKind::UserList);
    }

    #[test]
    fn client_names_round_trip() {
        assert_eq!(client_name(0), "b0");
        assert_eq!(client_of_name(client_name(123_456).as_bytes()), Some(123_456));
        for bad in [&b""[..], b"b", b"x1", b"b1x", b"b-1", b"b12345678901", b" b1", "b١".as_bytes()] {
            assert_eq!(client_of_name(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn login_broadcasts_name_their_client() {
        assert_eq!(login_client(br#"{"type":"login","uid":17,"name":"b42","time":"2024-01-01 00:00:00"}"#), Some(42));
        assert_eq!(login_client(br#"{"type":"login","uid":17,"name":"mynick","time":"t"}"#), None);
        // Another field order: the scan finds the name.
        assert_eq!(login_client(br#"{"name": "b7","type":"login","uid":3}"#), Some(7));
        assert_eq!(login_client(br#"{"type":"login","uid":3}"#), None);
        // The daemon's own broadcast.
        let login = crate::chat::dialect::seed::ServerMessage::Login {
            uid: 99,
            name: "b5",
            user_id: None,
            time: "2024-01-01 00:00:00",
        };
        let mut json = Vec::new();
        login.write_json(&mut json);
        assert_eq!(login_client(&json), Some(5));
    }

    fn scan_all(pieces: &[&[u8]]) -> Vec<usize> {
        let mut scan = NameScan::default();
        let mut found = Vec::new();
        for p in pieces {
            scan.feed(p, |c| found.push(c));
        }
        found
    }

    #[test]
    fn name_scan_finds_bench_clients_wherever_the_list_is_cut() {
        let list = br#"{"type":"user_list","user_list":[{"uid":1,"name":"b0"},{"uid":2,"name":"\"name\":\"b9\""},{"uid":3,"name":"alice"},{"uid":4,"name": "b12"},{"uid":5,"name":"b3x"},{"uid":6,"name":"b"},{"uid":70,"name":"b4294967296"}]}"#;
        let want = vec![0, 12, 4_294_967_296];
        assert_eq!(scan_all(&[list]), want);
        for cut in 0..=list.len() {
            assert_eq!(scan_all(&[&list[..cut], &list[cut..]]), want, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = list.chunks(1).collect();
        assert_eq!(scan_all(&bytes), want);
        // Too many digits is no bench name; a reset forgets a half-read name.
        assert_eq!(scan_all(&[br#""name":"b12345678901""#]), Vec::<usize>::new());
        let mut scan = NameScan::default();
        scan.feed(br#""name":"b1"#, |_| panic!("not closed yet"));
        scan.reset();
        scan.feed(br#"2","name":"b3""#, |c| assert_eq!(c, 3));
    }

    #[test]
    fn name_scan_reads_the_daemons_user_list() {
        use crate::chat::dialect::seed::{ServerMessage, UserEntry};
        let names: Vec<String> =
            (0..300).map(|i| if i % 7 == 3 { format!("user{i}") } else { client_name(i * 3) }).collect();
        let users: Vec<UserEntry> =
            names.iter().enumerate().map(|(i, name)| UserEntry { uid: 1000 + i as u64, name, user_id: None }).collect();
        let mut json = Vec::new();
        ServerMessage::UserList { user_list: &users }.write_json(&mut json);
        let want: Vec<usize> = (0..300).filter(|i| i % 7 != 3).map(|i| i * 3).collect();
        assert_eq!(scan_all(&[&json]), want);
        for piece in [1, 7, 64, 1000] {
            let pieces: Vec<&[u8]> = json.chunks(piece).collect();
            assert_eq!(scan_all(&pieces), want, "pieces of {piece}");
        }
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
