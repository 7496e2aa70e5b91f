//! Per-connection statistics built from the event stream (`--stats`): frames and payload bytes by direction
//! and opcode, TCP and WebSocket handshake times, close frames, how the connection ended, and capture
//! trouble (retransmissions, reordering, gaps).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::event::{CloseHow, ConnRef, Content, Direction, Event, EventKind, Note};
use super::render::human_duration;

/// Frames and payload bytes of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames.
    pub frames: u64,
    /// Payload bytes.
    pub bytes: u64,
}

/// What is known about one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnStats {
    /// Who.
    pub conn: ConnRef,
    /// First event's time.
    pub first: Duration,
    /// Last event's time.
    pub last: Duration,
    /// SYN to the client's ACK, when the handshake was captured.
    pub tcp_handshake: Option<Duration>,
    /// Request to response.
    pub ws_handshake: Option<Duration>,
    /// The response status.
    pub status: Option<u16>,
    /// Frames by direction and opcode name.
    pub frames: BTreeMap<(Direction, String), Tally>,
    /// Close frames sent: direction and code.
    pub close_frames: Vec<(Direction, Option<u16>)>,
    /// How the connection ended.
    pub close: Option<CloseHow>,
    /// The capture started inside it.
    pub mid_stream: bool,
    /// Retransmitted bytes.
    pub retransmitted: u64,
    /// Out-of-order segments.
    pub out_of_order: u64,
    /// Bytes missing from the capture.
    pub missing: u64,
    /// Frames breaking a protocol rule.
    pub bad_frames: u64,
}

impl ConnStats {
    /// Fresh statistics for `conn`, first seen at `ts`.
    fn new(conn: ConnRef, ts: Duration) -> ConnStats {
        ConnStats {
            conn,
            first: ts,
            last: ts,
            tcp_handshake: None,
            ws_handshake: None,
            status: None,
            frames: BTreeMap::new(),
            close_frames: Vec::new(),
            close: None,
            mid_stream: false,
            retransmitted: 0,
            out_of_order: 0,
            missing: 0,
            bad_frames: 0,
        }
    }

    /// Totals for one direction.
    pub fn total(&self, dir: Direction) -> Tally {
        self.frames
            .iter()
            .filter(|((d, _), _)| *d == dir)
            .fold(Tally::default(), |a, (_, t)| Tally { frames: a.frames + t.frames, bytes: a.bytes + t.bytes })
    }
}

/// Collects [`ConnStats`] from events.
#[derive(Debug, Clone, Default)]
pub struct StatsCollector {
    /// By connection id.
    conns: BTreeMap<u32, ConnStats>,
}

impl StatsCollector {
    /// An empty collector.
    pub fn new() -> StatsCollector {
        StatsCollector::default()
    }

    /// Accounts one event.
    pub fn observe(&mut self, ev: &Event) {
        let Some(conn) = ev.conn else { return };
        let s = self.conns.entry(conn.id).or_insert_with(|| ConnStats::new(conn, ev.ts));
        s.last = s.last.max(ev.ts);
        match &ev.kind {
            EventKind::TcpHandshake { syn_to_synack, synack_to_ack } => {
                s.tcp_handshake = Some(syn_to_synack.unwrap_or_default() + synack_to_ack.unwrap_or_default());
            }
            EventKind::TcpClose(how) => s.close = Some(*how),
            EventKind::MidStream => s.mid_stream = true,
            EventKind::HttpResponse { status, after_request, .. } => {
                s.status = Some(*status);
                s.ws_handshake = *after_request;
            }
            EventKind::Frame(f) => {
                if let Some(dir) = ev.dir {
                    let t = s.frames.entry((dir, f.op_name())).or_default();
                    t.frames += 1;
                    t.bytes += f.len;
                    if f.opcode == 8 {
                        let code = match f.content() {
                            Content::Close { code, .. } => Some(code),
                            _ => None,
                        };
                        s.close_frames.push((dir, code));
                    }
                }
                if !f.issues.is_empty() {
                    s.bad_frames += 1;
                }
            }
            EventKind::Note(Note::Retransmission { bytes }) => s.retransmitted += bytes,
            EventKind::Note(Note::OutOfOrder { .. }) => s.out_of_order += 1,
            EventKind::Note(Note::Gap { bytes }) => s.missing += bytes,
            _ => {}
        }
    }

    /// The connections, in order of appearance.
    #[cfg(test)]
    pub fn connections(&self) -> impl Iterator<Item = &ConnStats> {
        self.conns.values()
    }

    /// The human summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.conns.is_empty() {
            out.push_str("no connections on the watched ports\n");
        }
        for s in self.conns.values() {
            let _ = writeln!(
                out,
                "#{} {} ↔ {}  {} long",
                s.conn.id,
                s.conn.client,
                s.conn.server,
                human_duration(s.last.saturating_sub(s.first))
            );
            let mut hs = Vec::new();
            match s.tcp_handshake {
                Some(d) => hs.push(format!("TCP handshake {}", human_duration(d))),
                None if s.mid_stream => hs.push("capture started inside the connection".to_string()),
                None => hs.push("no TCP handshake".to_string()),
            }
            match (s.status, s.ws_handshake) {
                (Some(st), Some(d)) => hs.push(format!("WebSocket handshake {} ({st})", human_duration(d))),
                (Some(st), None) => hs.push(format!("HTTP response {st}")),
                _ => hs.push("no WebSocket handshake".to_string()),
            }
            let _ = writeln!(out, "    {}", hs.join(", "));
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                let parts: Vec<String> = s
                    .frames
                    .iter()
                    .filter(|((d, _), _)| *d == dir)
                    .map(|((_, op), t)| format!("{op} {} frames {} bytes", t.frames, t.bytes))
                    .collect();
                let total = s.total(dir);
                let label = match dir {
                    Direction::ClientToServer => "client → server",
                    Direction::ServerToClient => "server → client",
                };
                let detail = if parts.is_empty() { "no frames".to_string() } else { parts.join(", ") };
                let _ = writeln!(out, "    {label}: {} frames {} bytes ({detail})", total.frames, total.bytes);
            }
            for (dir, code) in &s.close_frames {
                let code = code.map_or("no code".to_string(), |c| c.to_string());
                let _ = writeln!(out, "    close frame from the {}: {code}", dir.sender());
            }
            let how = s.close.map_or("unknown".to_string(), |h| h.to_string());
            let _ = writeln!(out, "    ended: {how}");
            if s.retransmitted + s.out_of_order + s.missing + s.bad_frames > 0 {
                let _ = writeln!(
                    out,
                    "    capture: {} bytes retransmitted, {} segments out of order, {} bytes missing, {} bad frames",
                    s.retransmitted, s.out_of_order, s.missing, s.bad_frames
                );
            }
        }
        out
    }

    /// One JSON object per connection.
    pub fn json(&self) -> Vec<Value> {
        self.conns
            .values()
            .map(|s| {
                let mut frames = serde_json::Map::new();
                for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                    let mut by_op = serde_json::Map::new();
                    for ((d, op), t) in &s.frames {
                        if *d == dir {
                            by_op.insert(op.clone(), json!({"frames": t.frames, "bytes": t.bytes}));
                        }
                    }
                    let total = s.total(dir);
                    by_op.insert("total".into(), json!({"frames": total.frames, "bytes": total.bytes}));
                    frames.insert(dir.code().into(), serde_json::Value::Object(by_op));
                }
                let us = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                json!({
                    "conn": s.conn.id,
                    "client": s.conn.client.to_string(),
                    "server": s.conn.server.to_string(),
                    "first_ts": s.first.as_secs_f64(),
                    "last_ts": s.last.as_secs_f64(),
                    "mid_stream": s.mid_stream,
                    "tcp_handshake_us": us(s.tcp_handshake),
                    "ws_handshake_us": us(s.ws_handshake),
                    "status": s.status,
                    "frames": frames,
                    "close_frames": s.close_frames.iter()
                        .map(|(d, c)| json!({"from": d.sender(), "code": c})).collect::<Vec<_>>(),
                    "closed": s.close.map(|h| h.code()),
                    "closed_description": s.close.map(|h| h.to_string()),
                    "retransmitted_bytes": s.retransmitted,
                    "out_of_order_segments": s.out_of_order,
                    "missing_bytes": s.missing,
                    "bad_frames": s.bad_frames,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::event::Frame;

    fn ev(ts: u64, dir: Option<Direction>, kind: EventKind) -> Event {
        Event {
            packet: ts,
            ts: Duration::from_millis(ts),
            conn: Some(ConnRef {
                id: 1,
                client: "127.0.0.1:1".parse().unwrap(),
                server: "127.0.0.1:7272".parse().unwrap(),
            }),
            dir,
            kind,
        }
    }

    fn frame(opcode: u8, payload: &[u8]) -> EventKind {
        EventKind::Frame(Frame::whole(opcode, payload))
    }

    #[test]
    fn counts_by_direction_and_opcode() {
        let mut c = StatsCollector::new();
        let c2s = Some(Direction::ClientToServer);
        let s2c = Some(Direction::ServerToClient);
        c.observe(&ev(
            1,
            None,
            EventKind::TcpHandshake {
                syn_to_synack: Some(Duration::from_micros(20)),
                synack_to_ack: Some(Duration::from_micros(10)),
            },
        ));
        c.observe(&ev(2, c2s, frame(1, b"abc")));
        c.observe(&ev(3, c2s, frame(1, b"de")));
        c.observe(&ev(4, s2c, frame(2, b"xyz1")));
        c.observe(&ev(5, c2s, frame(8, &[3, 0xe8])));
        c.observe(&ev(6, None, EventKind::TcpClose(CloseHow::Fin { first: Direction::ServerToClient })));
        let s = c.connections().next().unwrap();
        assert_eq!(s.tcp_handshake, Some(Duration::from_micros(30)));
        assert_eq!(s.frames[&(Direction::ClientToServer, "text".to_string())], Tally { frames: 2, bytes: 5 });
        assert_eq!(s.total(Direction::ClientToServer), Tally { frames: 3, bytes: 7 });
        assert_eq!(s.close_frames, [(Direction::ClientToServer, Some(1000))]);
        let text = c.text();
        assert!(
            text.contains("client → server: 3 frames 7 bytes (close 1 frames 2 bytes, text 2 frames 5 bytes)"),
            "{text}"
        );
        assert!(text.contains("ended: FIN from server, then FIN from client"), "{text}");
        let j = &c.json()[0];
        assert_eq!(j["frames"]["s2c"]["binary"]["bytes"], 4);
        assert_eq!(j["closed"], "fin");
        assert_eq!(j["tcp_handshake_us"], 30);
    }
}
