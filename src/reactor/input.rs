//! Reading: each socket drained into the shared read buffer (one chunk per connection per turn), request
//! heads answered (the web [`Site`](crate::web::Site), or the WebSocket upgrade with its admission), and
//! frames decoded by the connection's session straight from the shared buffer — data messages to the
//! application, control frames answered here.

use std::io::{self, Read};

use std::net::SocketAddr;

use log::debug;

use super::accept::origin_allowed;
use super::admission::Moment;
use super::{trace, Kind, Reactor};
use crate::app::Departure;
use crate::metrics::Metrics;
use crate::proxy;
use crate::session::{Data, Eof, Phase, Stop, LINGER};
use crate::shared_bytes::SharedBytes;
use crate::ws::frame::{close_code, OpCode};
use crate::ws::handshake;
use crate::ws::handshake::error_response;

/// Size of the shared read buffer every socket is read into.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// Reads per connection per loop turn before other connections get their turn (the rest is read next
/// turn). One 64 KiB read bounds what one connection costs a turn however fast it sends (a flood of 6-byte
/// pings is 11 000 frames a read), and what one sender can produce for a reader before the reader's socket
/// is written again.
const READS_PER_TURN: usize = 1;

/// Reads of connections in their TLS handshake per loop turn; the rest wait for the next turn. A read that
/// completes a ClientHello costs a key exchange and a signature (about 110 µs here): a flood of them gets
/// about a millisecond of each turn, and the clients already connected keep their latency.
pub(super) const TLS_HANDSHAKE_READS_PER_TURN: usize = 8;

impl Reactor {
    /// Reads what the socket holds. When the transport says a short read emptied the stream, new data will
    /// raise a new edge: unless `to_eof`, stop there and save the `WouldBlock` read.
    pub(super) fn on_readable(&mut self, k: usize, to_eof: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(k) else { return };
            if conn.transport.tls().is_some_and(|t| t.in_tls_handshake()) {
                if self.tls_handshake_reads >= TLS_HANDSHAKE_READS_PER_TURN {
                    self.read_again.push(k);
                    return;
                }
                self.tls_handshake_reads += 1;
            }
            let phase = conn.session.phase();
            let result = conn.transport.read(&mut self.scratch);
            if let Some(tls) = conn.transport.tls_mut() {
                if let Some(agreed) = tls.take_established() {
                    debug!("{}: TLS handshake done ({agreed})", conn.peer);
                    if let Some(stats) = self.metrics.tls.as_mut() {
                        stats.handshakes_total += 1;
                    }
                }
            }
            match result {
                Ok(0) => {
                    debug!("{}: peer closed the connection", conn.peer);
                    self.on_eof(k);
                    return;
                }
                Ok(n) => {
                    conn.session.heard_from(self.now);
                    let drained = n < READ_CHUNK && conn.transport.short_read_drains();
                    match (phase, conn.kind) {
                        (Phase::Closing, _) => {} // Lingering: the peer's last bytes are read and dropped.
                        (_, Kind::Api) => self.on_api_input(k, n),
                        (Phase::Open, _) => self.on_frames_input(k, n),
                        (Phase::Handshake, kind) => self.on_head_input(k, n, kind),
                    }
                    if drained && !to_eof {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A signal, or a TLS read that took bytes without plaintext yet: read again next turn.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if conn.transport.tls().is_some_and(|t| t.failure().is_some()) {
                        self.on_tls_failure(k);
                    } else {
                        debug!("{}: read error: {e}", conn.peer);
                        self.remove(k);
                    }
                    return;
                }
            }
        }
        self.read_again.push(k);
    }

    /// The peer sent its FIN: a half-close. What its last bytes produced (a 101, a user list, a close echo,
    /// a web answer) is still written; then the connection is dropped.
    fn on_eof(&mut self, k: usize) {
        if self.conns.get(k).is_some_and(|c| c.session.is_open()) {
            // What the application holds for it this turn (its own say or login among it) is written first.
            self.with_app(|app, out| app.flush_for(k, out));
        }
        let Some(conn) = self.conns.get_mut(k) else { return };
        match conn.session.on_eof(conn.transport.wants_write()) {
            Eof::Remove => self.remove(k),
            Eof::FlushFirst { was_open } => {
                if was_open {
                    // No close frame: the peer never sent one, and it will not answer ours.
                    self.admission.passed(&mut conn.ticket, Moment::Closing);
                    self.leaving.push((k, Departure::Lost));
                    self.arm_timer(k, self.now + LINGER);
                }
                self.mark_dirty(k);
            }
        }
    }

    /// A TLS connection failed (in a read, or at the start of TLS after a PROXY header): logged with its
    /// reason, counted, dropped.
    fn on_tls_failure(&mut self, k: usize) {
        let Some(conn) = self.conns.get(k) else { return };
        if let Some(failure) = conn.transport.tls().and_then(|t| t.failure()) {
            debug!("{}: {failure}; closed", conn.peer);
            if let Some(stats) = self.metrics.tls.as_mut() {
                stats.count_failure(failure.reason());
            }
        }
        self.remove(k);
    }

    /// Bytes of a request head (WebSocket upgrade or web request) arrived in `scratch[..n]`.
    fn on_head_input(&mut self, k: usize, n: usize, kind: Kind) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        conn.session.receive_head(&self.scratch[..n]);
        if self.cfg.proxy_protocol && !conn.proxied {
            match proxy::parse(conn.session.head()) {
                Ok(None) => return,
                Ok(Some((len, header))) => {
                    // The client's address from the proxy (the peer was checked at accept).
                    let port = header.endpoints.map_or(0, |e| e.source.port());
                    conn.peer = SocketAddr::new(header.client_ip(conn.socket_ip), port);
                    conn.proxied = true;
                    conn.session.consume_input(len);
                    debug!("{}: PROXY header from {} read", conn.peer, conn.socket_ip);
                    // Now the client is known: it counts against its own address's share.
                    if let Err(refusal) = self.count_client(k) {
                        self.refuse_counted(k, refusal);
                        return;
                    }
                    let Some(conn) = self.conns.get_mut(k) else { return };
                    if let Some(tls) = conn.transport.tls_mut() {
                        // TLS begins after the header: what followed it is the start of the handshake.
                        let rest = conn.session.take_input();
                        if tls.begin_tls(&rest).is_err() {
                            self.on_tls_failure(k);
                        }
                        return;
                    }
                    if conn.session.head().is_empty() {
                        return;
                    }
                }
                Err(e) => {
                    debug!("{}: no valid PROXY header ({e}); closed", conn.peer);
                    self.metrics.proxy_rejections_total += 1;
                    self.remove(k);
                    return;
                }
            }
        }
        match kind {
            Kind::Http => self.on_web_request(k),
            Kind::WebSocket => self.on_upgrade_request(k),
            Kind::Api => {} // Read by `on_api_input`, never as a head.
        }
    }

    fn on_web_request(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let (metrics, app) = (&self.metrics, &self.app);
        let (open, queued) = (self.admission.open(), self.queued.bytes());
        let api_open = self.admission.sockets(Kind::Api);
        let snapshot = || {
            let mut m = Metrics { connections: open, output_queued_bytes: queued, ..metrics.clone() };
            if let Some(api) = m.api.as_mut() {
                api.connections = api_open as u64;
            }
            app.fill_metrics(&mut m);
            m
        };
        let health = || app.health();
        let Some(answer) = self.site.answer(conn.session.head(), snapshot, health) else { return };
        if !conn.proxied && !self.cfg.trusted_proxies.is_empty() {
            // A trusted proxy's word on the client, for the log (as for an upgrade) and its address's share.
            let client = proxy::client_addr_of_head(conn.socket_ip, &self.cfg.trusted_proxies, conn.session.head());
            if client != conn.socket_ip {
                conn.peer = SocketAddr::new(client, 0);
            }
        }
        if let Some(e) = answer.refused {
            debug!("{}: bad web request: {e}", conn.peer);
        }
        conn.session.end_head();
        // The answer counts against the client's address until it is written.
        if let Err(refusal) = self.count_client(k) {
            self.refuse_counted(k, refusal);
            return;
        }
        self.metrics.http_requests_total += 1;
        self.finish_with(k, answer.bytes);
    }

    fn on_upgrade_request(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let refusal = match handshake::parse_request(conn.session.head()) {
            Ok(None) => return,
            Err(e) => {
                debug!("{}: handshake refused ({}): {e}", conn.peer, e.status());
                self.metrics.protocol_errors_total += 1;
                e.response()
            }
            Ok(Some((req, head_len))) => {
                if !conn.proxied && !req.forwarding.is_empty() {
                    // A trusted proxy's word on the client (from anyone else the headers change nothing).
                    let headers = req.forwarding.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
                    let client = proxy::client_addr(conn.socket_ip, &self.cfg.trusted_proxies, headers).addr;
                    if client != conn.socket_ip {
                        conn.peer = SocketAddr::new(client, 0);
                    }
                }
                // The client counts against its address: from accept, from its PROXY header, or from now (a
                // trusted proxy's forwarding header) — refused with 429 when that address is at its limit.
                let counted = self.count_client(k);
                let Some(conn) = self.conns.get_mut(k) else { return };
                if self.shutdown_deadline.is_some() {
                    debug!("{}: refused, shutting down", conn.peer);
                    error_response(503, "Retry-After: 1\r\n", "server shutting down\n")
                } else if !origin_allowed(&self.cfg.allowed_origins, req.origin.as_deref()) {
                    debug!("{}: origin {:?} not allowed", conn.peer, req.origin);
                    error_response(403, "", "origin not allowed\n")
                } else if self.admission.open() >= self.cfg.max_connections as u64 {
                    debug!("{}: refused, {} connections open", conn.peer, self.admission.open());
                    error_response(503, "Retry-After: 1\r\n", "too many connections\n")
                } else if let Err(refusal) = counted {
                    debug!("{}: refused, {refusal}", conn.peer);
                    self.metrics.per_ip_rejections_total += 1;
                    refusal.answer()
                } else {
                    self.admission.open_ticket(&mut conn.ticket);
                    let accept: SharedBytes = SharedBytes::from(handshake::switching_protocols(&req.key));
                    let mut rest = self.queued.track(&mut conn.session, |s| s.open(accept, head_len));
                    self.metrics.handshakes_total += 1;
                    debug!("{}: WebSocket open as #{k} (path {})", conn.peer, req.path);
                    self.mark_dirty(k);
                    self.arm_timer(k, self.now + self.cfg.ping_interval);
                    if !rest.is_empty() {
                        // Frames that came in the same segment as the request.
                        self.decode_keeping_tail(k, &mut rest);
                    }
                    return;
                }
            }
        };
        self.metrics.handshake_rejections_total += 1;
        if let Some(conn) = self.conns.get_mut(k) {
            conn.session.end_head();
        }
        self.finish_with(k, SharedBytes::from(refusal));
    }

    /// Frame bytes arrived in `scratch[..n]` for an open connection.
    fn on_frames_input(&mut self, k: usize, n: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let mut buf = conn.session.take_input();
        if buf.is_empty() {
            // Hot path: decode straight from the shared read buffer; keep only an unfinished tail.
            let mut scratch = std::mem::take(&mut self.scratch);
            self.decode_keeping_tail(k, &mut scratch[..n]);
            self.scratch = scratch;
            return;
        }
        buf.extend_from_slice(&self.scratch[..n]);
        let used = self.decode_frames(k, &mut buf);
        if let Some(conn) = self.conns.get_mut(k) {
            conn.session.keep_unused(buf, used);
        }
    }

    /// Decodes `buf` and keeps its unfinished tail in the session.
    fn decode_keeping_tail(&mut self, k: usize, buf: &mut [u8]) {
        let used = self.decode_frames(k, buf);
        if let Some(conn) = self.conns.get_mut(k) {
            conn.session.keep_tail(&buf[used..]);
        }
    }

    /// Runs the session's decoder over `buf`: data messages go to the application (its deliveries queued
    /// after each run, so order is kept), control frames are answered here. Returns the bytes used.
    fn decode_frames(&mut self, k: usize, buf: &mut [u8]) -> usize {
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.get_mut(k) else { return buf.len() };
            let (app, metrics, effects) = (&mut self.app, &mut self.metrics, &mut self.effects);
            let (peer, tracing) = (conn.peer, self.cfg.trace_frames);
            let (used, stop) = conn.session.decode(&mut buf[pos..], self.now, |data| {
                metrics.messages_in_total += 1;
                if tracing {
                    trace::incoming_data(peer, k, &data);
                }
                match data {
                    Data::Text(text) => app.on_text(k, text, effects),
                    Data::Binary(bytes) => app.on_binary(k, bytes, effects)?,
                    Data::Refused => {
                        metrics.rate_limited_total += 1;
                        app.on_refused(k, effects);
                    }
                }
                Ok(())
            });
            pos += used;
            self.apply_pending();
            if tracing {
                trace::incoming_stop(peer, k, &stop);
            }
            match stop {
                Stop::NeedMore => return pos,
                Stop::Ping(Some(payload)) => self.send_control(k, OpCode::Pong, payload.as_slice()),
                Stop::Ping(None) => self.metrics.rate_limited_total += 1,
                Stop::Pong => {}
                Stop::PeerClose(code) => {
                    debug!("{peer}: peer sent close {code}");
                    let departure = if code == close_code::NORMAL { Departure::Goodbye } else { Departure::Lost };
                    self.close_as(k, code, "", departure);
                    return buf.len();
                }
                Stop::Violation { code, reason } => {
                    self.metrics.protocol_errors_total += 1;
                    debug!("{peer}: protocol error: {reason}; closing with {code}");
                    self.close(k, code, &reason);
                    return buf.len();
                }
                Stop::App(req) => {
                    self.metrics.protocol_errors_total += 1;
                    self.close(k, req.code, &req.reason);
                    return buf.len();
                }
            }
        }
    }
}
