//! Rendering events: the human timeline (one block per event, in color on a terminal) and one JSON object per
//! event for scripts. Both show the same decoded payloads: text as text, binary as a hex dump, close frames as
//! code and reason.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, Local, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::event::{AcceptCheck, CloseHow, Content, Direction, Event, EventKind, HttpHead};

/// How the timeline looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colors.
    pub color: bool,
    /// Times in UTC instead of local time.
    pub utc: bool,
    /// Payload bytes shown per frame (the rest is counted).
    pub max_payload: usize,
}

/// ANSI escape sequences.
mod ansi {
    /// Reset.
    pub const RESET: &str = "\x1b[0m";
    /// Dim.
    pub const DIM: &str = "\x1b[2m";
    /// Bold.
    pub const BOLD: &str = "\x1b[1m";
    /// Green: client to server.
    pub const GREEN: &str = "\x1b[32m";
    /// Cyan: server to client.
    pub const CYAN: &str = "\x1b[36m";
    /// Yellow: notes.
    pub const YELLOW: &str = "\x1b[33m";
    /// Red: protocol violations, undecodable packets.
    pub const RED: &str = "\x1b[31m";
    /// Magenta: TCP events.
    pub const MAGENTA: &str = "\x1b[35m";
}

/// Indentation of the lines under an event's first line.
const INDENT: &str = "    ";

/// The timeline renderer; remembers the last date printed.
#[derive(Debug, Clone)]
pub struct TextRenderer {
    /// Look.
    style: Style,
    /// The date of the last event, printed again when it changes.
    last_date: Option<String>,
}

impl TextRenderer {
    /// A renderer with `style`.
    pub fn new(style: Style) -> TextRenderer {
        TextRenderer { style, last_date: None }
    }

    /// Wraps `s` in `code` when colors are on.
    fn paint(&self, code: &str, s: &str) -> String {
        if self.style.color {
            format!("{code}{s}{}", ansi::RESET)
        } else {
            s.to_string()
        }
    }

    /// Writes one event's block.
    pub fn event(&mut self, ev: &Event, w: &mut dyn Write) -> io::Result<()> {
        let (date, time) = clock(ev.ts, self.style.utc);
        if self.last_date.as_deref() != Some(date.as_str()) {
            let zone = if self.style.utc { "UTC" } else { "local time" };
            writeln!(w, "{}", self.paint(ansi::DIM, &format!("--- {date} ({zone}) ---")))?;
            self.last_date = Some(date);
        }
        let mut head = format!("{} ", self.paint(ansi::DIM, &time));
        match ev.conn {
            Some(c) => {
                let arrow = match ev.dir {
                    Some(Direction::ClientToServer) => self.paint(ansi::GREEN, "→"),
                    Some(Direction::ServerToClient) => self.paint(ansi::CYAN, "←"),
                    None => "↔".to_string(),
                };
                let _ = write!(head, "#{} {} {arrow} {}  ", c.id, c.client, c.server);
            }
            None => {
                let _ = write!(head, "packet {}  ", ev.packet);
            }
        }
        let mut body: Vec<String> = Vec::new();
        match &ev.kind {
            EventKind::TcpHandshake { syn_to_synack, synack_to_ack } => {
                let mut s = String::from("TCP handshake: SYN, SYN-ACK");
                if let Some(d) = syn_to_synack {
                    let _ = write!(s, " (+{})", human_duration(*d));
                }
                s.push_str(", ACK");
                if let Some(d) = synack_to_ack {
                    let _ = write!(s, " (+{})", human_duration(*d));
                }
                head.push_str(&self.paint(ansi::MAGENTA, &s));
            }
            EventKind::TcpClose(how) => {
                let color = if matches!(how, CloseHow::Fin { .. }) { ansi::MAGENTA } else { ansi::YELLOW };
                head.push_str(&self.paint(color, &format!("TCP teardown: {how}")));
            }
            EventKind::MidStream => head
                .push_str(&self.paint(ansi::YELLOW, "capture starts inside this connection (no TCP handshake seen)")),
            EventKind::HttpRequest { head: h, upgrade } => {
                head.push_str(&self.paint(ansi::BOLD, &format!("HTTP request: {}", h.first_line)));
                body.extend(header_lines(h, None));
                if let Err(e) = upgrade {
                    body.push(self.paint(ansi::RED, &format!("not a valid WebSocket upgrade: {e}")));
                }
            }
            EventKind::HttpResponse { head: h, accept, after_request, .. } => {
                let mut s = format!("HTTP response: {}", h.first_line);
                if let Some(d) = after_request {
                    let _ = write!(s, " (+{} after the request)", human_duration(*d));
                }
                head.push_str(&self.paint(ansi::BOLD, &s));
                for line in header_lines(h, Some(accept)) {
                    body.push(line);
                }
                if matches!(accept, AcceptCheck::Invalid { .. } | AcceptCheck::Missing) {
                    let msg = match accept {
                        AcceptCheck::Invalid { expected } => format!("wrong Sec-WebSocket-Accept: expected {expected}"),
                        _ => "no Sec-WebSocket-Accept".to_string(),
                    };
                    body.push(self.paint(ansi::RED, &msg));
                }
            }
            EventKind::Frame(f) => {
                let mask = match f.mask {
                    Some(k) => format!("masked key={}", hex(&k)),
                    None => "unmasked".to_string(),
                };
                let op = self.paint(ansi::BOLD, &f.op_name());
                let _ = write!(head, "{op} fin={} rsv={:03b} {mask} len={}", u8::from(f.fin), f.rsv, f.len);
                if f.compressed {
                    head.push_str(" compressed");
                }
                for issue in &f.issues {
                    let _ = write!(head, "  {}", self.paint(ansi::RED, &format!("⚠ {issue}")));
                }
                body.extend(self.content_lines(f.content(), f.len, f.missing));
            }
            EventKind::Message(m) => {
                let s = format!("message: {} in {} frames, {} bytes", m.opcode, m.frames, m.len);
                head.push_str(&self.paint(ansi::BOLD, &s));
                body.extend(self.content_lines(m.content(), m.len, m.missing));
            }
            EventKind::Note(n) => head.push_str(&self.paint(ansi::YELLOW, &format!("note: {n}"))),
            EventKind::PacketSkipped(e) => head.push_str(&self.paint(ansi::RED, &format!("skipped: {e}"))),
        }
        writeln!(w, "{}", head.trim_end())?;
        for line in body {
            writeln!(w, "{INDENT}{line}")?;
        }
        Ok(())
    }

    /// The lines showing a payload.
    fn content_lines(&self, content: Content<'_>, len: u64, missing: u64) -> Vec<String> {
        let max = self.style.max_payload;
        let mut lines = Vec::new();
        let shown = match content {
            Content::Empty => 0,
            Content::Text(t) => {
                let cut = floor_char_boundary(&t, max);
                lines.push(escape_text(&t[..cut]));
                cut
            }
            Content::InvalidUtf8(b) => {
                lines.push(self.paint(ansi::RED, "invalid UTF-8:"));
                lines.extend(hex_dump(&b[..b.len().min(max)]));
                b.len().min(max)
            }
            Content::Binary(b) => {
                lines.extend(hex_dump(&b[..b.len().min(max)]));
                b.len().min(max)
            }
            Content::Compressed(b) => {
                lines.push("compressed (permessage-deflate), not inflated:".to_string());
                lines.extend(hex_dump(&b[..b.len().min(max)]));
                b.len().min(max)
            }
            Content::Close { code, reason } => {
                lines.push(format!("close code {code} ({}), reason {reason:?}", close_code_name(code)));
                2 + reason.len()
            }
            Content::BadClose { error, bytes } => {
                lines.push(self.paint(ansi::RED, &format!("invalid close payload: {error}")));
                lines.extend(hex_dump(bytes));
                bytes.len()
            }
        };
        let rest = len.saturating_sub(shown as u64);
        if missing > 0 {
            lines.push(self.paint(ansi::YELLOW, &format!("({missing} bytes of this payload are not in the capture)")));
        } else if rest > 0 {
            lines.push(self.paint(ansi::DIM, &format!("… {rest} more bytes")));
        }
        lines
    }
}

/// The request or response headers that matter to WebSocket, one line each.
fn header_lines(h: &HttpHead, accept: Option<&AcceptCheck>) -> Vec<String> {
    h.websocket_headers()
        .map(|(n, v)| {
            let mut line = format!("{n}: {v}");
            if n.eq_ignore_ascii_case("sec-websocket-accept") && accept == Some(&AcceptCheck::Valid) {
                line.push_str("  (matches the key)");
            }
            line
        })
        .collect()
}

/// The largest char boundary of `s` at or below `max`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// Text on one line: control characters escaped.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A classic hex dump: offset, 16 bytes, ASCII.
pub fn hex_dump(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut line = format!("{:04x}  ", i * 16);
            for j in 0..16 {
                match chunk.get(j) {
                    Some(b) => {
                        let _ = write!(line, "{b:02x} ");
                    }
                    None => line.push_str("   "),
                }
                if j == 7 {
                    line.push(' ');
                }
            }
            line.push(' ');
            line.extend(chunk.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }));
            line
        })
        .collect()
}

/// The registered name of a close code.
pub fn close_code_name(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status",
        1006 => "abnormal closure",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        3000..=3999 => "registered",
        4000..=4999 => "private use",
        _ => "unknown",
    }
}

/// A duration the way people read it: µs, ms or s.
pub fn human_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// The date and the time of day (microseconds) of `ts`.
fn clock(ts: Duration, utc: bool) -> (String, String) {
    let secs = i64::try_from(ts.as_secs()).unwrap_or(i64::MAX);
    let Some(t) = DateTime::<Utc>::from_timestamp(secs, ts.subsec_nanos()) else {
        return ("?".into(), format!("{:.6}", ts.as_secs_f64()));
    };
    if utc {
        (t.format("%Y-%m-%d").to_string(), t.format("%H:%M:%S%.6f").to_string())
    } else {
        let t = t.with_timezone(&Local);
        (t.format("%Y-%m-%d").to_string(), t.format("%H:%M:%S%.6f").to_string())
    }
}

/// An RFC 3339 time with microseconds.
fn rfc3339(ts: Duration, utc: bool) -> String {
    let secs = i64::try_from(ts.as_secs()).unwrap_or(i64::MAX);
    match DateTime::<Utc>::from_timestamp(secs, ts.subsec_nanos()) {
        Some(t) if utc => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        Some(t) => t.with_timezone(&Local).to_rfc3339_opts(SecondsFormat::Micros, true),
        None => String::new(),
    }
}

/// Microseconds as a JSON number.
fn micros(d: Duration) -> Value {
    json!(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Headers as `[[name, value], …]`.
fn headers_json(h: &HttpHead) -> Value {
    Value::Array(h.headers.iter().map(|(n, v)| json!([n, v])).collect())
}

/// Adds the fields that show a payload.
fn content_json(m: &mut Map<String, Value>, content: Content<'_>, max: usize) {
    match content {
        Content::Empty => {}
        Content::Text(t) => {
            let cut = floor_char_boundary(&t, max);
            if let Ok(v) = serde_json::from_str::<Value>(&t) {
                m.insert("json".into(), v);
            }
            m.insert("text".into(), json!(&t[..cut]));
        }
        Content::InvalidUtf8(b) => {
            m.insert("invalid_utf8".into(), json!(true));
            m.insert("hex".into(), json!(hex(&b[..b.len().min(max)])));
        }
        Content::Binary(b) => {
            m.insert("hex".into(), json!(hex(&b[..b.len().min(max)])));
        }
        Content::Compressed(b) => {
            m.insert("hex".into(), json!(hex(&b[..b.len().min(max)])));
        }
        Content::Close { code, reason } => {
            m.insert("close_code".into(), json!(code));
            m.insert("close_reason".into(), json!(reason));
        }
        Content::BadClose { error, bytes } => {
            m.insert("close_error".into(), json!(error.to_string()));
            m.insert("hex".into(), json!(hex(bytes)));
        }
    }
}

/// One event as a JSON object.
pub fn event_json(ev: &Event, style: &Style) -> Value {
    let mut m = Map::new();
    m.insert("packet".into(), json!(ev.packet));
    m.insert("ts".into(), json!(ev.ts.as_secs_f64()));
    m.insert("time".into(), json!(rfc3339(ev.ts, style.utc)));
    if let Some(c) = ev.conn {
        m.insert("conn".into(), json!(c.id));
        m.insert("client".into(), json!(c.client.to_string()));
        m.insert("server".into(), json!(c.server.to_string()));
    }
    if let Some(d) = ev.dir {
        m.insert("dir".into(), json!(d.code()));
    }
    let event = match &ev.kind {
        EventKind::TcpHandshake { syn_to_synack, synack_to_ack } => {
            m.insert("syn_to_synack_us".into(), syn_to_synack.map_or(Value::Null, micros));
            m.insert("synack_to_ack_us".into(), synack_to_ack.map_or(Value::Null, micros));
            "tcp_handshake"
        }
        EventKind::TcpClose(how) => {
            m.insert("how".into(), json!(how.code()));
            match how {
                CloseHow::Fin { first } => {
                    m.insert("first".into(), json!(first.sender()));
                }
                CloseHow::Reset { by } => {
                    m.insert("by".into(), json!(by.sender()));
                }
                CloseHow::OpenAtEnd { half_closed_by: Some(d) } => {
                    m.insert("half_closed_by".into(), json!(d.sender()));
                }
                _ => {}
            }
            m.insert("description".into(), json!(how.to_string()));
            "tcp_close"
        }
        EventKind::MidStream => "mid_stream",
        EventKind::HttpRequest { head, upgrade } => {
            m.insert("line".into(), json!(head.first_line));
            m.insert("headers".into(), headers_json(head));
            m.insert("upgrade_ok".into(), json!(upgrade.is_ok()));
            if let Err(e) = upgrade {
                m.insert("upgrade_error".into(), json!(e.to_string()));
            }
            "http_request"
        }
        EventKind::HttpResponse { head, status, accept, after_request } => {
            m.insert("line".into(), json!(head.first_line));
            m.insert("status".into(), json!(status));
            m.insert("headers".into(), headers_json(head));
            let accept = match accept {
                AcceptCheck::Valid => "valid",
                AcceptCheck::Invalid { .. } => "invalid",
                AcceptCheck::Missing => "missing",
                AcceptCheck::Unknown => "unknown",
            };
            m.insert("accept".into(), json!(accept));
            m.insert("after_request_us".into(), after_request.map_or(Value::Null, micros));
            "http_response"
        }
        EventKind::Frame(f) => {
            m.insert("opcode".into(), json!(f.op_name()));
            m.insert("opcode_raw".into(), json!(f.opcode));
            m.insert("fin".into(), json!(f.fin));
            m.insert("rsv".into(), json!(f.rsv));
            m.insert("masked".into(), json!(f.mask.is_some()));
            m.insert("mask_key".into(), f.mask.map_or(Value::Null, |k| json!(hex(&k))));
            m.insert("len".into(), json!(f.len));
            if f.compressed {
                m.insert("compressed".into(), json!(true));
            }
            if f.missing > 0 {
                m.insert("missing".into(), json!(f.missing));
            }
            if !f.issues.is_empty() {
                m.insert("issues".into(), json!(f.issues.iter().map(|i| i.code()).collect::<Vec<_>>()));
            }
            content_json(&mut m, f.content(), style.max_payload);
            "frame"
        }
        EventKind::Message(msg) => {
            m.insert("opcode".into(), json!(msg.opcode.to_string()));
            m.insert("frames".into(), json!(msg.frames));
            m.insert("len".into(), json!(msg.len));
            content_json(&mut m, msg.content(), style.max_payload);
            "message"
        }
        EventKind::Note(n) => {
            m.insert("note".into(), json!(n.code()));
            m.insert("message".into(), json!(n.to_string()));
            "note"
        }
        EventKind::PacketSkipped(e) => {
            m.insert("error".into(), json!(e.to_string()));
            "packet_skipped"
        }
    };
    m.insert("event".into(), json!(event));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::event::{ConnRef, Frame, Note};

    fn style() -> Style {
        Style { color: false, utc: true, max_payload: 8 }
    }

    fn ev(kind: EventKind, dir: Option<Direction>) -> Event {
        Event {
            packet: 3,
            ts: Duration::new(1407837030, 652_680_000),
            conn: Some(ConnRef {
                id: 1,
                client: "127.0.0.1:60653".parse().unwrap(),
                server: "127.0.0.1:7272".parse().unwrap(),
            }),
            dir,
            kind,
        }
    }

    fn frame(opcode: u8, payload: &[u8]) -> Frame {
        Frame { mask: Some([0x5b, 0x4f, 0x6f, 0x2c]), ..Frame::whole(opcode, payload) }
    }

    fn text(e: &Event, r: &mut TextRenderer) -> String {
        let mut out = Vec::new();
        r.event(e, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn frame_block_shows_header_fields_and_payload() {
        let mut r = TextRenderer::new(style());
        let s = text(&ev(EventKind::Frame(frame(1, b"{\"a\":\n1}")), Some(Direction::ClientToServer)), &mut r);
        assert_eq!(
            s,
            "--- 2014-08-12 (UTC) ---\n09:50:30.652680 #1 127.0.0.1:60653 → 127.0.0.1:7272  text fin=1 rsv=000 \
             masked key=5b4f6f2c len=8\n    {\"a\":\\n1}\n"
        );
        // The date line is printed once.
        let s = text(&ev(EventKind::Frame(frame(2, &[0, 1, 2])), Some(Direction::ServerToClient)), &mut r);
        assert!(s.starts_with("09:50:30.652680 #1 127.0.0.1:60653 ← 127.0.0.1:7272  binary"), "{s}");
        assert!(s.contains("\n    0000  00 01 02 "), "{s}");
    }

    #[test]
    fn long_payloads_are_cut_and_counted() {
        let mut r = TextRenderer::new(style());
        let s = text(&ev(EventKind::Frame(frame(1, "猪猪猪猪".as_bytes())), None), &mut r);
        assert!(s.contains("\n    猪猪\n    … 6 more bytes\n"), "{s}");
    }

    #[test]
    fn close_and_notes() {
        let mut r = TextRenderer::new(Style { color: true, ..style() });
        let s = text(&ev(EventKind::Frame(frame(8, &[3, 0xe8])), None), &mut r);
        assert!(s.contains("close code 1000 (normal closure), reason \"\""), "{s}");
        assert!(s.contains("\x1b["));
        let s = text(&ev(EventKind::Note(Note::Gap { bytes: 5 }), None), &mut r);
        assert!(s.contains("note: 5 bytes missing from the capture"));
    }

    #[test]
    fn json_frame_has_the_decoded_payload() {
        let v = event_json(
            &ev(EventKind::Frame(frame(1, br#"{"type":"say"}"#)), Some(Direction::ClientToServer)),
            &Style { max_payload: 100, ..style() },
        );
        assert_eq!(v["event"], "frame");
        assert_eq!(v["dir"], "c2s");
        assert_eq!(v["mask_key"], "5b4f6f2c");
        assert_eq!(v["text"], r#"{"type":"say"}"#);
        assert_eq!(v["json"]["type"], "say");
        assert_eq!(v["time"], "2014-08-12T09:50:30.652680Z");
        assert_eq!(v["client"], "127.0.0.1:60653");
    }

    #[test]
    fn helpers() {
        assert_eq!(escape_text("a\tb\u{1}"), "a\\tb\\u{1}");
        assert_eq!(human_duration(Duration::from_micros(25)), "25µs");
        assert_eq!(human_duration(Duration::from_micros(11_500)), "11.5ms");
        assert_eq!(human_duration(Duration::from_millis(2500)), "2.500s");
        assert_eq!(hex_dump(b"0123456789abcdefX").len(), 2);
        assert_eq!(close_code_name(1009), "message too big");
    }
}
