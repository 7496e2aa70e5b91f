//! The analyzer: follows every TCP connection to a watched port through its handshake, data and teardown,
//! reassembles both directions with [`HalfStream`], decodes them with [`WsStream`], and turns all of it into
//! timeline [`Event`]s in capture order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::ws::handshake::accept_key;

use super::capture::Packet;
use super::event::{AcceptCheck, CloseHow, ConnRef, Direction, Event, EventKind, Note};
use super::segment::{decode, Segment};
use super::stream::{Start, StreamEvent, WsStream};
use super::tcp::{Flow, HalfStream};

/// What the analyzer watches and keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzerOptions {
    /// Server ports: a connection is followed when one end uses one of them.
    pub ports: Vec<u16>,
    /// Payload bytes kept per frame for display.
    pub keep: usize,
}

impl Default for AnalyzerOptions {
    fn default() -> Self {
        AnalyzerOptions { ports: vec![7272], keep: 4096 }
    }
}

/// One followed connection.
struct Conn {
    /// Who it is.
    r: ConnRef,
    /// Client's initial sequence number, from its SYN.
    isn_client: Option<u32>,
    /// Server's initial sequence number, from its SYN-ACK.
    isn_server: Option<u32>,
    /// When the SYN was captured.
    syn_ts: Option<Duration>,
    /// When the SYN-ACK was captured.
    synack_ts: Option<Duration>,
    /// The handshake event has been emitted.
    handshake_done: bool,
    /// Reassembly, client to server.
    c2s: HalfStream,
    /// Reassembly, server to client.
    s2c: HalfStream,
    /// Decoder, client to server.
    ws_c2s: WsStream,
    /// Decoder, server to client.
    ws_s2c: WsStream,
    /// The side whose FIN came first.
    first_fin: Option<Direction>,
    /// Closed: further packets (but a new SYN) are ignored.
    closed: bool,
    /// The request's `Sec-WebSocket-Key`.
    key: Option<String>,
    /// When the request head completed.
    request_ts: Option<Duration>,
}

impl Conn {
    /// A connection seen from its handshake (`Start::Handshake`) or from its middle.
    fn new(r: ConnRef, start: Start, keep: usize) -> Conn {
        Conn {
            r,
            isn_client: None,
            isn_server: None,
            syn_ts: None,
            synack_ts: None,
            handshake_done: false,
            c2s: HalfStream::new(),
            s2c: HalfStream::new(),
            ws_c2s: WsStream::new(Direction::ClientToServer, start, keep),
            ws_s2c: WsStream::new(Direction::ServerToClient, start, keep),
            first_fin: None,
            closed: false,
            key: None,
            request_ts: None,
        }
    }

    /// The reassembler of `dir`.
    fn half(&mut self, dir: Direction) -> &mut HalfStream {
        match dir {
            Direction::ClientToServer => &mut self.c2s,
            Direction::ServerToClient => &mut self.s2c,
        }
    }

    /// The decoder of `dir`.
    fn ws(&mut self, dir: Direction) -> &mut WsStream {
        match dir {
            Direction::ClientToServer => &mut self.ws_c2s,
            Direction::ServerToClient => &mut self.ws_s2c,
        }
    }
}

/// The whole analysis state.
pub struct Analyzer {
    /// Options.
    opts: AnalyzerOptions,
    /// Connections by (client, server).
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    /// Connections seen so far.
    count: u32,
    /// The current (last) packet's number.
    packet: u64,
    /// The current (last) packet's time.
    ts: Duration,
}

impl Analyzer {
    /// An analyzer with nothing seen yet.
    pub fn new(opts: AnalyzerOptions) -> Analyzer {
        Analyzer { opts, conns: HashMap::new(), count: 0, packet: 0, ts: Duration::ZERO }
    }

    /// Takes one captured packet.
    pub fn packet(&mut self, p: &Packet<'_>, out: &mut Vec<Event>) {
        self.packet = p.number;
        self.ts = p.ts;
        match decode(p.link, p.data, p.orig_len) {
            Ok(Some(seg)) => self.segment(&seg, out),
            Ok(None) => {}
            Err(e) => {
                out.push(Event { packet: p.number, ts: p.ts, conn: None, dir: None, kind: EventKind::PacketSkipped(e) })
            }
        }
    }

    /// Takes one TCP segment of the current packet.
    pub fn segment(&mut self, seg: &Segment<'_>, out: &mut Vec<Event>) {
        let (client, server, dir) = if self.opts.ports.contains(&seg.dst.port()) {
            (seg.src, seg.dst, Direction::ClientToServer)
        } else if self.opts.ports.contains(&seg.src.port()) {
            (seg.dst, seg.src, Direction::ServerToClient)
        } else {
            return;
        };
        let key = (client, server);
        let is_syn = seg.syn && seg.ack.is_none();
        if is_syn {
            if let Some(c) = self.conns.get(&key) {
                if !c.closed && c.isn_client == Some(seg.seq) {
                    self.emit(out, c.r, Some(dir), EventKind::Note(Note::SynRetransmitted));
                    return;
                }
            }
            if let Some(mut old) = self.conns.remove(&key) {
                if !old.closed {
                    self.end(&mut old, CloseHow::Replaced, out);
                }
            }
            let mut c = self.new_conn(client, server, Start::Handshake);
            c.isn_client = Some(seg.seq);
            c.syn_ts = Some(self.ts);
            c.c2s.syn(seg.seq);
            self.conns.insert(key, c);
            return;
        }
        let mut c = match self.conns.remove(&key) {
            Some(c) => c,
            None if seg.rst => return,
            None if seg.syn => self.new_conn(client, server, Start::Handshake),
            None => {
                let c = self.new_conn(client, server, Start::MidStream);
                self.emit(out, c.r, None, EventKind::MidStream);
                c
            }
        };
        if !c.closed {
            self.track(&mut c, seg, dir, out);
        }
        self.conns.insert(key, c);
    }

    /// End of capture: hands on everything held and reports how each open connection was left.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let mut conns: Vec<Conn> = self.conns.drain().map(|(_, c)| c).collect();
        conns.sort_by_key(|c| c.r.id);
        for mut c in conns {
            if c.closed {
                continue;
            }
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                let mut flows = Vec::new();
                c.half(dir).flush(&mut flows);
                self.flows(&mut c, dir, flows, out);
                if c.closed {
                    break;
                }
            }
            if !c.closed {
                let how = if c.syn_ts.is_some() && c.isn_server.is_none() {
                    CloseHow::NoAnswer
                } else {
                    CloseHow::OpenAtEnd { half_closed_by: c.first_fin }
                };
                self.end(&mut c, how, out);
            }
        }
    }

    /// A new connection record.
    fn new_conn(&mut self, client: SocketAddr, server: SocketAddr, start: Start) -> Conn {
        self.count += 1;
        Conn::new(ConnRef { id: self.count, client, server }, start, self.opts.keep)
    }

    /// Pushes an event stamped with the current packet.
    fn emit(&self, out: &mut Vec<Event>, conn: ConnRef, dir: Option<Direction>, kind: EventKind) {
        out.push(Event { packet: self.packet, ts: self.ts, conn: Some(conn), dir, kind });
    }

    /// Follows one segment of an open connection.
    fn track(&mut self, c: &mut Conn, seg: &Segment<'_>, dir: Direction, out: &mut Vec<Event>) {
        if seg.syn {
            // SYN-ACK from the server (a SYN-ACK from the client would be a simultaneous open: same handling).
            match c.isn_server {
                Some(isn) if isn == seg.seq => {}
                _ => {
                    c.isn_server = Some(seg.seq);
                    c.synack_ts = Some(self.ts);
                    c.half(dir).syn(seg.seq);
                }
            }
        }
        if seg.rst {
            let how = if !c.handshake_done && c.isn_server.is_none() && dir == Direction::ServerToClient {
                CloseHow::Refused
            } else {
                CloseHow::Reset { by: dir }
            };
            self.end(c, how, out);
            return;
        }
        if !c.handshake_done && dir == Direction::ClientToServer && !seg.syn {
            if let (Some(isn), Some(ack)) = (c.isn_server, seg.ack) {
                if ack == isn.wrapping_add(1) || !seg.payload.is_empty() {
                    c.handshake_done = true;
                    let syn_to_synack = c.syn_ts.zip(c.synack_ts).map(|(a, b)| b.saturating_sub(a));
                    let synack_to_ack = c.synack_ts.map(|b| self.ts.saturating_sub(b));
                    self.emit(out, c.r, None, EventKind::TcpHandshake { syn_to_synack, synack_to_ack });
                }
            }
        }
        let other = match dir {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        };
        if let Some(ack) = seg.ack {
            let mut flows = Vec::new();
            c.half(other).peer_ack(ack, &mut flows);
            self.flows(c, other, flows, out);
            if c.closed {
                return;
            }
        }
        let mut flows = Vec::new();
        let payload = if seg.syn { &[][..] } else { seg.payload };
        c.half(dir).segment(seg.seq, payload, seg.missing, seg.fin, &mut flows);
        self.flows(c, dir, flows, out);
    }

    /// Applies reassembled flow items of `dir`.
    fn flows(&mut self, c: &mut Conn, dir: Direction, flows: Vec<Flow>, out: &mut Vec<Event>) {
        for flow in flows {
            let mut found = Vec::new();
            match flow {
                Flow::Data { bytes, segment_start } => c.ws(dir).feed(&bytes, segment_start, &mut found),
                Flow::Gap { bytes } => {
                    self.emit(out, c.r, Some(dir), EventKind::Note(Note::Gap { bytes }));
                    c.ws(dir).gap(bytes, &mut found);
                }
                Flow::Retransmission { bytes } => {
                    self.emit(out, c.r, Some(dir), EventKind::Note(Note::Retransmission { bytes }))
                }
                Flow::OutOfOrder { bytes } => {
                    self.emit(out, c.r, Some(dir), EventKind::Note(Note::OutOfOrder { bytes }))
                }
                Flow::Fin => {
                    c.ws(dir).finish(&mut found);
                    self.stream_events(c, dir, found, out);
                    match c.first_fin {
                        None => c.first_fin = Some(dir),
                        Some(first) if first != dir => {
                            self.end(c, CloseHow::Fin { first }, out);
                            return;
                        }
                        Some(_) => {}
                    }
                    continue;
                }
            }
            self.stream_events(c, dir, found, out);
        }
    }

    /// Turns decoder output into events.
    fn stream_events(&mut self, c: &mut Conn, dir: Direction, found: Vec<StreamEvent>, out: &mut Vec<Event>) {
        for ev in found {
            let kind = match ev {
                StreamEvent::Request(head, upgrade) => {
                    c.key = upgrade.as_ref().ok().map(|r| r.key.clone());
                    c.request_ts = Some(self.ts);
                    EventKind::HttpRequest { head, upgrade: upgrade.map(|_| ()) }
                }
                StreamEvent::Response(head, status) => {
                    let accept = match (&c.key, head.header("sec-websocket-accept")) {
                        (None, _) => AcceptCheck::Unknown,
                        (Some(_), None) => AcceptCheck::Missing,
                        (Some(k), Some(v)) if accept_key(k) == v.trim() => AcceptCheck::Valid,
                        (Some(k), Some(_)) => AcceptCheck::Invalid { expected: accept_key(k) },
                    };
                    let deflate = status == 101
                        && head.header("sec-websocket-extensions").is_some_and(|v| v.contains("permessage-deflate"));
                    c.ws_c2s.set_deflate(deflate);
                    c.ws_s2c.set_deflate(deflate);
                    let after_request = c.request_ts.map(|t| self.ts.saturating_sub(t));
                    EventKind::HttpResponse { head, status, accept, after_request }
                }
                StreamEvent::Frame(f) => EventKind::Frame(f),
                StreamEvent::Message(m) => EventKind::Message(m),
                StreamEvent::Note(n) => EventKind::Note(n),
            };
            self.emit(out, c.r, Some(dir), kind);
        }
    }

    /// Closes a connection: finishes both decoders and reports how it ended.
    fn end(&mut self, c: &mut Conn, how: CloseHow, out: &mut Vec<Event>) {
        c.closed = true;
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let mut found = Vec::new();
            c.ws(dir).finish(&mut found);
            self.stream_events(c, dir, found, out);
        }
        self.emit(out, c.r, None, EventKind::TcpClose(how));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{frame, write_masked_frame, OpCode};
    use crate::ws::handshake::{client_request, switching_protocols};

    const C: &str = "127.0.0.1:40000";
    const S: &str = "127.0.0.1:7272";

    struct Wire {
        a: Analyzer,
        out: Vec<Event>,
        n: u64,
    }

    impl Wire {
        fn new() -> Wire {
            Wire { a: Analyzer::new(AnalyzerOptions::default()), out: Vec::new(), n: 0 }
        }

        #[allow(clippy::too_many_arguments)]
        fn send(&mut self, from_client: bool, seq: u32, ack: Option<u32>, flags: &str, payload: &[u8]) {
            let (src, dst) = if from_client { (C, S) } else { (S, C) };
            self.n += 1;
            self.a.packet = self.n;
            self.a.ts = Duration::from_millis(self.n);
            let seg = Segment {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                seq,
                ack,
                syn: flags.contains('S'),
                fin: flags.contains('F'),
                rst: flags.contains('R'),
                payload,
                missing: 0,
            };
            self.a.segment(&seg, &mut self.out);
        }

        fn kinds(&self) -> Vec<String> {
            self.out
                .iter()
                .map(|e| match &e.kind {
                    EventKind::Frame(f) => format!("frame {}", String::from_utf8_lossy(&f.payload)),
                    EventKind::Note(n) => format!("note {}", n.code()),
                    EventKind::TcpClose(how) => format!("close {}", how.code()),
                    EventKind::HttpRequest { .. } => "request".into(),
                    EventKind::HttpResponse { accept, .. } => format!("response {accept:?}"),
                    other => format!("{other:?}").split([' ', '{', '(']).next().unwrap_or("").to_string(),
                })
                .collect()
        }
    }

    fn masked(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_masked_frame(&mut out, OpCode::Text, payload, [1, 2, 3, 4]);
        out
    }

    #[test]
    fn whole_connection_lifecycle() {
        let mut w = Wire::new();
        let req = client_request("x", "/", "dGhlIHNhbXBsZSBub25jZQ==");
        let resp = switching_protocols("dGhlIHNhbXBsZSBub25jZQ==");
        let hi = masked(b"hi");
        let yo = frame(OpCode::Text, b"yo");
        let c1 = 101 + req.len() as u32;
        let s1 = 501 + resp.len() as u32;
        w.send(true, 100, None, "S", b"");
        w.send(false, 500, Some(101), "S", b"");
        w.send(true, 101, Some(501), "", b"");
        w.send(true, 101, Some(501), "", &req);
        w.send(false, 501, Some(c1), "", &resp);
        w.send(true, c1, Some(s1), "", &hi);
        w.send(false, s1, Some(c1 + hi.len() as u32), "", &yo);
        w.send(true, c1 + hi.len() as u32, None, "F", b"");
        w.send(false, s1 + yo.len() as u32, None, "F", b"");
        w.send(true, c1 + hi.len() as u32 + 1, None, "", b"");
        assert_eq!(w.kinds(), ["TcpHandshake", "request", "response Valid", "frame hi", "frame yo", "close fin"],);
        assert_eq!(w.out.last().unwrap().kind, EventKind::TcpClose(CloseHow::Fin { first: Direction::ClientToServer }));
        assert!(w.out.iter().all(|e| e.conn.unwrap().id == 1));
    }

    #[test]
    fn mid_stream_capture_is_announced_and_resynchronised() {
        let mut w = Wire::new();
        w.send(true, 7000, Some(9000), "", b"\x03garbage");
        w.send(true, 7008, Some(9000), "", &masked(b"later"));
        w.send(false, 9000, None, "", &frame(OpCode::Text, b"srv"));
        w.a.finish(&mut w.out);
        assert_eq!(
            w.kinds(),
            ["MidStream", "note lost_sync", "note resynced", "frame later", "frame srv", "close open_at_end"]
        );
    }

    #[test]
    fn refused_and_reset_and_port_reuse() {
        let mut w = Wire::new();
        w.send(true, 1, None, "S", b"");
        w.send(true, 1, None, "S", b"");
        w.send(false, 0, Some(2), "R", b"");
        w.send(true, 50, None, "S", b"");
        w.send(false, 80, Some(51), "S", b"");
        w.send(true, 51, Some(81), "", b"");
        w.send(true, 51, Some(81), "R", b"");
        w.send(true, 51, Some(81), "", b"ignored after reset");
        w.send(true, 90, None, "S", b"");
        w.a.finish(&mut w.out);
        assert_eq!(
            w.kinds(),
            ["note syn_retransmitted", "close refused", "TcpHandshake", "close reset", "close no_answer"]
        );
        let ids: Vec<u32> = w.out.iter().map(|e| e.conn.unwrap().id).collect();
        assert_eq!(ids, [1, 1, 2, 2, 3]);
    }

    #[test]
    fn other_ports_are_ignored() {
        let mut w = Wire::new();
        let seg = Segment {
            src: "127.0.0.1:1".parse().unwrap(),
            dst: "127.0.0.1:2".parse().unwrap(),
            seq: 0,
            ack: None,
            syn: true,
            fin: false,
            rst: false,
            payload: b"",
            missing: 0,
        };
        w.a.segment(&seg, &mut w.out);
        w.a.finish(&mut w.out);
        assert!(w.out.is_empty());
    }
}
