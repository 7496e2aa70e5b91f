//! The event loop: one thread, one mio `Poll` (edge-triggered epoll), two listeners, a slab of
//! connections, the timer wheel and the signal pipe. It moves bytes between sockets and the pure core
//! (`ws`, `chat`, `http`), applies what the core decides, flushes every touched connection once per loop
//! turn, and runs the shutdown sequence.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, log_enabled, warn, Level};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::chat::hub::{ConnId, Effects, Frame, Hub};
use crate::chat::protocol::{parse_client_message, ErrorCode};
use crate::config::Config;
use crate::conn::{Conn, Kind, Phase};
use crate::http::{self, Route};
use crate::metrics::Metrics;
use crate::timer::{TimerEntry, TimerWheel};
use crate::ws::frame::{close_code, close_payload, frame, FrameHeader, OpCode};
use crate::ws::handshake::{self, error_response};
use crate::ws::message::{Message, MessageDecoder, Role};

const WS_LISTENER: Token = Token(usize::MAX - 1);
const HTTP_LISTENER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// Size of the shared read buffer every socket is read into.
const READ_CHUNK: usize = 64 * 1024;

/// Reads per connection per loop turn before other connections get their turn (the rest is read next
/// turn). One 64 KiB read bounds what one connection costs a turn however fast it sends (a flood of 6-byte
/// pings is 11 000 frames a read), and what one sender can produce for a reader before the reader's
/// socket is written again.
const READS_PER_TURN: usize = 1;

/// How long a closing connection may linger waiting for the peer to close.
const LINGER: Duration = Duration::from_secs(1);

/// Time allowed to send an HTTP request head.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long accepting pauses after the process runs out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the shutdown sequence waits for goodbyes to be written.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Sockets on the WebSocket port beyond `--max-connections`, for handshakes in flight; past this the reactor
/// answers 503 at accept and closes, so file descriptors stay bounded. The web port has its own budget
/// (`--max-web-connections`), so neither port can take the other's sockets.
const EXTRA_SOCKETS: usize = 1024;

/// Logging target of `--trace-frames`.
const FRAMES_TARGET: &str = "wschat::frames";

/// Why the daemon could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listener could not be bound.
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Setting up epoll or the signal pipe failed.
    Setup(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind { what, addr, source } => write!(f, "cannot listen for {what} on {addr}: {source}"),
            StartError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The local time stamp of chat messages, formatted once per second.
#[derive(Debug, Default)]
struct TimeText {
    second: u64,
    text: String,
}

impl TimeText {
    fn refresh(&mut self) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if now != self.second || self.text.is_empty() {
            self.second = now;
            self.text = chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string();
        }
    }
}

/// The daemon's event loop and everything it owns.
pub struct Reactor {
    cfg: Config,
    poll: Poll,
    ws_listener: Option<TcpListener>,
    http_listener: Option<TcpListener>,
    signals: Signals,
    ws_addr: SocketAddr,
    http_addr: SocketAddr,
    conns: Slab<Conn>,
    hub: Hub,
    effects: Effects,
    metrics: Metrics,
    wheel: TimerWheel,
    expired: Vec<TimerEntry>,
    /// Connections with output queued this turn.
    dirty: Vec<usize>,
    /// Connections that stopped reading early and must be read again next turn.
    read_again: Vec<usize>,
    /// Connections whose user must leave the hub (its logout broadcast is applied at a safe point).
    leaving: Vec<usize>,
    scratch: Vec<u8>,
    next_serial: u64,
    page: Rc<[u8]>,
    time: TimeText,
    now: Instant,
    accept_paused_until: Option<Instant>,
    /// A descriptor held in reserve, given up at EMFILE to accept and refuse waiting connections.
    spare_fd: Option<std::fs::File>,
    last_accept_warning: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    /// Sockets held per port, each against its own budget.
    ws_sockets: usize,
    web_sockets: usize,
    /// Unanswered web requests per client address.
    web_pending: HashMap<IpAddr, u32>,
}

impl Reactor {
    /// Binds both listeners and the signal handlers.
    pub fn bind(cfg: Config) -> Result<Reactor, StartError> {
        let poll = Poll::new().map_err(StartError::Setup)?;
        let mut ws_listener =
            listen(cfg.ws_addr).map_err(|source| StartError::Bind { what: "WebSocket", addr: cfg.ws_addr, source })?;
        let mut http_listener =
            listen(cfg.http_addr).map_err(|source| StartError::Bind { what: "HTTP", addr: cfg.http_addr, source })?;
        let ws_addr = ws_listener.local_addr().map_err(StartError::Setup)?;
        let http_addr = http_listener.local_addr().map_err(StartError::Setup)?;
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(StartError::Setup)?;
        let registry = poll.registry();
        registry.register(&mut ws_listener, WS_LISTENER, Interest::READABLE).map_err(StartError::Setup)?;
        registry.register(&mut http_listener, HTTP_LISTENER, Interest::READABLE).map_err(StartError::Setup)?;
        registry.register(&mut signals, SIGNALS, Interest::READABLE).map_err(StartError::Setup)?;
        let now = Instant::now();
        let page: Rc<[u8]> = Rc::from(http::render_page(ws_addr.port()));
        Ok(Reactor {
            hub: Hub::with_limits((&cfg).into()),
            cfg,
            poll,
            ws_listener: Some(ws_listener),
            http_listener: Some(http_listener),
            signals,
            ws_addr,
            http_addr,
            conns: Slab::with_capacity(1024),
            effects: Effects::default(),
            metrics: Metrics::default(),
            wheel: TimerWheel::new(now),
            expired: Vec::new(),
            dirty: Vec::new(),
            read_again: Vec::new(),
            leaving: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            next_serial: 1,
            page,
            time: TimeText::default(),
            now,
            accept_paused_until: None,
            spare_fd: std::fs::File::open("/dev/null").ok(),
            last_accept_warning: None,
            shutdown_deadline: None,
            ws_sockets: 0,
            web_sockets: 0,
            web_pending: HashMap::new(),
        })
    }

    /// The bound WebSocket address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Runs until SIGINT or SIGTERM, then closes every client with 1001 and returns.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.now = Instant::now();
            self.hub.set_now(self.now);
            for event in events.iter() {
                match event.token() {
                    WS_LISTENER => self.accept(Kind::WebSocket),
                    HTTP_LISTENER => self.accept(Kind::Http),
                    SIGNALS => self.on_signal(),
                    Token(k) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            // With the peer's FIN or an error in the same event, read to the end: no
                            // further edge will come for it.
                            self.on_readable(k, event.is_read_closed() || event.is_error());
                        }
                        if event.is_writable() {
                            self.flush(k);
                        }
                    }
                }
            }
            for k in std::mem::take(&mut self.read_again) {
                self.on_readable(k, true);
            }
            self.resume_accepting();
            self.expire_timers();
            self.process_leaving();
            self.flush_dirty();
            self.enforce_output_budget();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || self.now >= deadline {
                    info!("stopped: {} connection(s) still open at exit", self.conns.len());
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.read_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut timeout: Option<Duration> = None;
        let mut consider = |d: Duration| timeout = Some(timeout.map_or(d, |t| t.min(d)));
        if !self.wheel.is_empty() {
            consider(self.wheel.until_next_tick(now));
        }
        if let Some(until) = self.accept_paused_until {
            consider(until.saturating_duration_since(now));
        }
        if let Some(deadline) = self.shutdown_deadline {
            consider(deadline.saturating_duration_since(now));
        }
        timeout
    }

    // ----- accepting -----

    fn accept(&mut self, kind: Kind) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let listener = match kind {
                Kind::WebSocket => self.ws_listener.as_ref(),
                Kind::Http => self.http_listener.as_ref(),
            };
            let Some(listener) = listener else { return };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, kind),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) => {}
                Err(e) => {
                    // Out of file descriptors (EMFILE/ENFILE): free the spare one and use it to answer the
                    // waiting connections with 503 instead of leaving them unanswered in the backlog.
                    if is_out_of_descriptors(&e) && self.shed_backlog(kind) {
                        self.warn_accept(&e, "refusing new connections with 503");
                        continue;
                    }
                    // Otherwise (ENOBUFS, ENOMEM, or no spare): the connection stays in the backlog, and
                    // retrying at once would spin the CPU, so pause accepting briefly and retry from the loop.
                    self.accept_paused_until = Some(self.now + ACCEPT_BACKOFF);
                    self.warn_accept(&e, "pausing accepts for 100 ms");
                    return;
                }
            }
        }
    }

    /// Logs an accept failure at most once every 5 seconds.
    fn warn_accept(&mut self, e: &io::Error, action: &str) {
        let quiet = self.last_accept_warning.is_some_and(|t| self.now.duration_since(t) < Duration::from_secs(5));
        if !quiet {
            warn!("accept failed: {e}; {action}");
            self.last_accept_warning = Some(self.now);
        }
    }

    /// With the spare descriptor closed, accepts every waiting connection on the listener, answers it 503
    /// and closes it; then takes the spare back. Returns false when there was no spare to give up.
    fn shed_backlog(&mut self, kind: Kind) -> bool {
        let Some(spare) = self.spare_fd.take() else { return false };
        drop(spare);
        let listener = match kind {
            Kind::WebSocket => self.ws_listener.as_ref(),
            Kind::Http => self.http_listener.as_ref(),
        };
        let mut shed = 0u64;
        if let Some(listener) = listener {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        refuse_at_accept(stream, &mut self.scratch);
                        shed += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        self.metrics.accepted_total += shed;
        self.metrics.handshake_rejections_total += shed;
        self.spare_fd = std::fs::File::open("/dev/null").ok();
        // Without a spare now, report "no progress" so the caller pauses instead of looping.
        self.spare_fd.is_some() && shed > 0
    }

    fn resume_accepting(&mut self) {
        if self.accept_paused_until.is_some_and(|t| self.now >= t) {
            self.accept_paused_until = None;
            self.accept(Kind::WebSocket);
            self.accept(Kind::Http);
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, kind: Kind) {
        self.metrics.accepted_total += 1;
        match kind {
            Kind::WebSocket if self.ws_sockets >= self.cfg.max_connections + EXTRA_SOCKETS => {
                debug!("{peer}: refused at accept, {} WebSocket-port sockets open", self.ws_sockets);
                self.metrics.handshake_rejections_total += 1;
                refuse_at_accept(stream, &mut self.scratch);
                return;
            }
            Kind::Http if self.web_sockets >= self.cfg.max_web_connections => {
                debug!("{peer}: refused at accept, {} web-port sockets open", self.web_sockets);
                self.metrics.web_rejections_total += 1;
                refuse_at_accept(stream, &mut self.scratch);
                return;
            }
            Kind::Http
                if self.web_pending.get(&peer.ip()).is_some_and(|&n| n as usize >= self.cfg.max_web_pending_per_ip) =>
            {
                debug!("{peer}: refused at accept, too many unfinished web requests from this address");
                self.metrics.web_rejections_total += 1;
                refuse_at_accept(stream, &mut self.scratch);
                return;
            }
            _ => {}
        }
        let entry = self.conns.vacant_entry();
        let k = entry.key();
        if let Err(e) = self.poll.registry().register(&mut stream, Token(k), Interest::READABLE | Interest::WRITABLE) {
            warn!("{peer}: cannot register socket: {e}");
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let conn = entry.insert(Conn::new(stream, peer, kind, serial, self.now, self.cfg.max_message_bytes));
        match kind {
            Kind::WebSocket => self.ws_sockets += 1,
            Kind::Http => {
                self.web_sockets += 1;
                conn.web_pending = true;
                *self.web_pending.entry(peer.ip()).or_insert(0) += 1;
            }
        }
        let timeout = match kind {
            Kind::WebSocket => self.cfg.handshake_timeout,
            Kind::Http => HTTP_REQUEST_TIMEOUT,
        };
        self.arm_timer(k, self.now + timeout);
        debug!("{peer}: accepted on the {} port as #{k}", if kind == Kind::WebSocket { "ws" } else { "http" });
    }

    // ----- reading -----

    /// Reads what the socket holds. A short read means the kernel buffer was empty at that moment, so new
    /// data will raise a new edge: unless `to_eof`, stop there and save the `WouldBlock` read.
    fn on_readable(&mut self, k: usize, to_eof: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(k) else { return };
            let phase = conn.phase;
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => {
                    debug!("{}: peer closed the connection", conn.peer);
                    self.on_eof(k);
                    return;
                }
                Ok(n) => {
                    conn.last_rx = self.now;
                    match (phase, conn.kind) {
                        (Phase::Closing, _) => {} // Lingering: the peer's last bytes are read and dropped.
                        (Phase::Open, _) => self.on_frames_input(k, n),
                        (Phase::Handshake, kind) => self.on_head_input(k, n, kind),
                    }
                    if n < READ_CHUNK && !to_eof {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("{}: read error: {e}", conn.peer);
                    self.remove(k);
                    return;
                }
            }
        }
        self.read_again.push(k);
    }

    /// The peer sent its FIN: a half-close. What its last bytes produced (a 101, a user list, a close echo,
    /// a web answer) is still written; then the connection is dropped.
    fn on_eof(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        conn.peer_eof = true;
        if conn.phase == Phase::Open {
            // What the room broadcast this turn (the peer's own say or login among it) is written first.
            let mut effects = std::mem::take(&mut self.effects);
            self.hub.seal_room_of(k, &mut effects);
            self.apply(&mut effects);
            self.effects = effects;
        }
        let Some(conn) = self.conns.get_mut(k) else { return };
        if conn.outbox.is_empty() || conn.phase == Phase::Handshake {
            self.remove(k);
            return;
        }
        if conn.phase == Phase::Open {
            // No close frame: the peer never sent one, and it will not answer ours.
            if conn.counted_open {
                conn.counted_open = false;
                self.metrics.connections -= 1;
            }
            conn.phase = Phase::Closing;
            self.leaving.push(k);
            self.arm_timer(k, self.now + LINGER);
        }
        self.mark_dirty(k);
    }

    /// Bytes of a request head (WebSocket upgrade or web request) arrived in `scratch[..n]`.
    fn on_head_input(&mut self, k: usize, n: usize, kind: Kind) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        conn.inbuf.extend_from_slice(&self.scratch[..n]);
        match kind {
            Kind::Http => self.on_http_request(k),
            Kind::WebSocket => self.on_upgrade_request(k),
        }
    }

    fn on_http_request(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let answer = match http::parse_request(&conn.inbuf) {
            Ok(None) => return,
            Ok(Some(req)) => match req.route {
                Route::Page => req.respond(200, "text/html; charset=utf-8", "", &self.page),
                Route::Health => req.respond(200, "text/plain; charset=utf-8", "", b"ok\n"),
                Route::Metrics => {
                    let mut m = self.metrics.clone();
                    m.users = self.hub.user_count() as u64;
                    let hub = self.hub.stats();
                    m.history_bytes = hub.history_bytes;
                    m.history_evicted_total = hub.history_evicted_total;
                    m.room_full_total = hub.room_full_total;
                    m.rate_limited_total += hub.rate_limited_total;
                    req.respond(200, "text/plain; version=0.0.4; charset=utf-8", "", m.render().as_bytes())
                }
                Route::NotFound => req.respond(404, "text/plain; charset=utf-8", "", b"not found\n"),
            },
            Err(e) => {
                debug!("{}: bad web request: {e}", conn.peer);
                e.response()
            }
        };
        self.metrics.http_requests_total += 1;
        conn.inbuf = Vec::new();
        self.finish_with(k, Rc::from(answer));
    }

    fn on_upgrade_request(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let refusal = match handshake::parse_request(&conn.inbuf) {
            Ok(None) => return,
            Err(e) => {
                debug!("{}: handshake refused ({}): {e}", conn.peer, e.status());
                self.metrics.protocol_errors_total += 1;
                e.response()
            }
            Ok(Some((req, head_len))) => {
                if !origin_allowed(&self.cfg.allowed_origins, req.origin.as_deref()) {
                    debug!("{}: origin {:?} not allowed", conn.peer, req.origin);
                    error_response(403, "", "origin not allowed\n")
                } else if self.metrics.connections >= self.cfg.max_connections as u64 {
                    debug!("{}: refused, {} connections open", conn.peer, self.metrics.connections);
                    error_response(503, "Retry-After: 1\r\n", "too many connections\n")
                } else {
                    conn.outbox.push(Rc::from(handshake::switching_protocols(&req.key)));
                    self.metrics.output_queued_bytes += conn.outbox.queued_bytes() as u64;
                    conn.phase = Phase::Open;
                    conn.counted_open = true;
                    self.metrics.connections += 1;
                    self.metrics.handshakes_total += 1;
                    debug!("{}: WebSocket open as #{k} (path {})", conn.peer, req.path);
                    let rest = conn.inbuf.split_off(head_len);
                    conn.inbuf = Vec::new();
                    self.mark_dirty(k);
                    self.arm_timer(k, self.now + self.cfg.ping_interval);
                    if !rest.is_empty() {
                        // Frames that came in the same segment as the request.
                        if let Some(conn) = self.conns.get_mut(k) {
                            conn.inbuf = rest;
                        }
                        self.process_inbuf(k);
                    }
                    return;
                }
            }
        };
        self.metrics.handshake_rejections_total += 1;
        if let Some(conn) = self.conns.get_mut(k) {
            conn.inbuf = Vec::new();
        }
        self.finish_with(k, Rc::from(refusal));
    }

    /// Frame bytes arrived in `scratch[..n]` for an open connection.
    fn on_frames_input(&mut self, k: usize, n: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if conn.inbuf.is_empty() {
            // Hot path: decode straight from the shared read buffer; keep only an unfinished tail.
            let mut scratch = std::mem::take(&mut self.scratch);
            let used = self.decode_frames(k, &mut scratch[..n]);
            if used < n {
                if let Some(conn) = self.conns.get_mut(k) {
                    if conn.phase == Phase::Open {
                        conn.inbuf.extend_from_slice(&scratch[used..n]);
                    }
                }
            }
            self.scratch = scratch;
        } else {
            conn.inbuf.extend_from_slice(&self.scratch[..n]);
            self.process_inbuf(k);
        }
    }

    /// Decodes what the connection's own buffer holds and keeps the unused rest.
    fn process_inbuf(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let mut buf = std::mem::take(&mut conn.inbuf);
        let used = self.decode_frames(k, &mut buf);
        if let Some(conn) = self.conns.get_mut(k) {
            if conn.phase == Phase::Open && used < buf.len() {
                buf.drain(..used);
                conn.inbuf = buf;
            }
        }
    }

    /// Runs the decoder over `buf` and handles every message; returns the bytes used.
    fn decode_frames(&mut self, k: usize, buf: &mut [u8]) -> usize {
        let Some(conn) = self.conns.get_mut(k) else { return buf.len() };
        let placeholder = MessageDecoder::new(Role::Server, 0);
        let mut decoder = std::mem::replace(&mut conn.decoder, placeholder);
        let mut pos = 0;
        loop {
            if self.conns.get(k).is_none_or(|c| c.phase != Phase::Open) {
                pos = buf.len();
                break;
            }
            match decoder.decode(&mut buf[pos..]) {
                Err(e) => {
                    self.metrics.protocol_errors_total += 1;
                    if let Some(conn) = self.conns.get(k) {
                        debug!("{}: protocol error: {e}; closing with {}", conn.peer, e.close_code());
                    }
                    self.close(k, e.close_code(), &e.to_string());
                    pos = buf.len();
                    break;
                }
                Ok(d) => {
                    let progressed = d.consumed > 0 || d.message.is_some();
                    pos += d.consumed;
                    if let Some(m) = d.message {
                        self.on_message(k, m);
                    }
                    if !progressed {
                        break;
                    }
                }
            }
        }
        if let Some(conn) = self.conns.get_mut(k) {
            conn.decoder = decoder;
        }
        pos
    }

    // ----- messages -----

    fn on_message(&mut self, k: usize, msg: Message<'_>) {
        if self.cfg.trace_frames {
            self.trace_in(k, &msg);
        }
        match msg {
            Message::Text(text) if self.cfg.echo => {
                self.metrics.messages_in_total += 1;
                self.deliver(k, Rc::from(frame(OpCode::Text, text.as_bytes())), 1, false);
            }
            Message::Binary(data) if self.cfg.echo => {
                self.metrics.messages_in_total += 1;
                self.deliver(k, Rc::from(frame(OpCode::Binary, data)), 1, false);
            }
            Message::Text(text) => {
                self.metrics.messages_in_total += 1;
                if self.cfg.max_messages_per_sec > 0 {
                    let (limit, now) = (self.cfg.max_messages_per_sec, self.now);
                    if let Some(conn) = self.conns.get_mut(k) {
                        if !conn.rate.try_take(limit, now) {
                            self.metrics.rate_limited_total += 1;
                            let mut effects = std::mem::take(&mut self.effects);
                            self.hub.error(k, ErrorCode::RateLimited, &mut effects);
                            self.apply(&mut effects);
                            self.effects = effects;
                            return;
                        }
                    }
                }
                self.time.refresh();
                let mut effects = std::mem::take(&mut self.effects);
                match parse_client_message(text) {
                    Ok(m) => self.hub.handle(k, m, &self.time.text, &mut effects),
                    Err(code) => self.hub.error(k, code, &mut effects),
                }
                self.apply(&mut effects);
                self.effects = effects;
                self.process_leaving();
            }
            Message::Binary(_) => {
                self.metrics.protocol_errors_total += 1;
                self.close(k, close_code::UNSUPPORTED_DATA, "binary messages are not part of the chat protocol");
            }
            Message::Ping(payload) => {
                // Pings count toward the message rate limit when one is set; one past it gets no pong.
                if self.cfg.max_messages_per_sec > 0 {
                    let (limit, now) = (self.cfg.max_messages_per_sec, self.now);
                    if self.conns.get_mut(k).is_some_and(|c| !c.rate.try_take(limit, now)) {
                        self.metrics.rate_limited_total += 1;
                        return;
                    }
                }
                self.send_control(k, OpCode::Pong, payload)
            }
            Message::Pong(_) => {}
            Message::Close(code) => {
                let code = code.map_or(close_code::NORMAL, |(c, _)| c);
                if let Some(conn) = self.conns.get(k) {
                    debug!("{}: peer sent close {code}", conn.peer);
                }
                self.close(k, code, "");
            }
        }
    }

    /// Queues every frame the hub addressed.
    fn apply(&mut self, effects: &mut Effects) {
        for d in effects.sends.drain(..) {
            self.deliver(d.conn, d.bytes, d.messages, d.welcome);
        }
    }

    /// Hands the rooms' open broadcast batches to their members' queues.
    fn seal_batches(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        self.hub.seal(&mut effects);
        self.apply(&mut effects);
        self.effects = effects;
    }

    /// Lets users of closed connections leave their rooms; their logout broadcasts may cut off further slow
    /// consumers, which are handled in the same loop.
    fn process_leaving(&mut self) {
        while let Some(k) = self.leaving.pop() {
            if self.shutdown_deadline.is_some() {
                // Everyone is leaving: no logout storm at shutdown.
                continue;
            }
            self.time.refresh();
            let mut effects = std::mem::take(&mut self.effects);
            self.hub.leave(k, &self.time.text, &mut effects);
            self.apply(&mut effects);
            self.effects = effects;
        }
    }

    /// Queues data frames (`messages` of them) for an open connection. The send-buffer limit is judged
    /// after the next write attempt, on what stays unsent ([`Reactor::flush`]).
    fn deliver(&mut self, k: ConnId, frame: Frame, messages: u32, welcome: bool) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        self.metrics.deliveries_total += u64::from(messages);
        if self.cfg.trace_frames {
            trace_out(conn.peer, k, &frame);
        }
        self.metrics.output_queued_bytes += frame.len() as u64;
        if welcome {
            conn.outbox.push_welcome(frame);
        } else {
            conn.outbox.push(frame);
        }
        self.mark_dirty(k);
    }

    /// Queues a ping, or the pong for a ping's payload (replacing a pong still waiting to go out).
    fn send_control(&mut self, k: usize, op: OpCode, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        if op == OpCode::Pong {
            let delta = conn.outbox.push_pong(payload);
            self.metrics.output_queued_bytes = self.metrics.output_queued_bytes.saturating_add_signed(delta as i64);
        } else {
            let f: Frame = Rc::from(frame(op, payload));
            self.metrics.output_queued_bytes += f.len() as u64;
            conn.outbox.push(f);
        }
        self.mark_dirty(k);
    }

    /// Cuts a client whose unsent output stayed over `--send-buffer-limit` after a write attempt (its
    /// welcome excepted): its queue is dropped and it gets close 1008.
    fn cut_slow_consumer(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        self.metrics.slow_consumer_disconnects_total += 1;
        info!(
            "{}: slow consumer: {} bytes unsent after a write, limit {}; disconnecting",
            conn.peer,
            conn.outbox.held_bytes(),
            self.cfg.send_buffer_limit
        );
        self.discard_output(k);
        self.close(k, close_code::POLICY_VIOLATION, "send buffer limit exceeded");
    }

    /// Drops what a connection has queued and not started to write.
    fn discard_output(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        let dropped = conn.outbox.discard_unstarted();
        self.metrics.output_queued_bytes = self.metrics.output_queued_bytes.saturating_sub(dropped as u64);
    }

    /// When the output queued for all clients together passes `--max-output-bytes`, cuts the clients with
    /// the largest backlogs first until it is back under the budget.
    fn enforce_output_budget(&mut self) {
        let budget = self.cfg.max_output_bytes as u64;
        if self.metrics.output_queued_bytes <= budget {
            return;
        }
        let mut backlogs: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.outbox.is_empty())
            .map(|(k, c)| (c.outbox.queued_bytes(), k))
            .collect();
        backlogs.sort_unstable_by(|a, b| b.cmp(a));
        warn!(
            "output budget exceeded: {} bytes queued, budget {budget}; cutting the largest backlogs",
            self.metrics.output_queued_bytes
        );
        for (_, k) in backlogs {
            if self.metrics.output_queued_bytes <= budget {
                break;
            }
            self.metrics.output_budget_disconnects_total += 1;
            let open = self.conns.get(k).is_some_and(|c| c.phase == Phase::Open);
            if open {
                if let Some(conn) = self.conns.get(k) {
                    debug!("{}: cut at the output budget with {} bytes queued", conn.peer, conn.outbox.queued_bytes());
                }
                self.discard_output(k);
                self.close(k, close_code::POLICY_VIOLATION, "server output budget exceeded");
            } else {
                self.remove(k);
            }
        }
        // The cuts' logouts and close frames are small; write them now.
        self.flush_dirty();
    }

    // ----- closing -----

    /// Sends a close frame (when the connection is open) and begins the closing phase.
    fn close(&mut self, k: usize, code: u16, reason: &str) {
        if self.conns.get(k).is_none_or(|c| c.phase != Phase::Open) {
            return;
        }
        // What the connection's room broadcast earlier in this turn goes out before the close frame. (From a
        // slow-consumer cut this seals an empty batch: the cut happens while a sealed batch is being queued.)
        let mut effects = Effects::default();
        self.hub.seal_room_of(k, &mut effects);
        self.apply(&mut effects);
        let Some(conn) = self.conns.get_mut(k) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        // A reason must fit a control frame: 125 bytes minus the code.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let close: Frame = Rc::from(frame(OpCode::Close, &close_payload(code, &reason[..end])));
        if self.cfg.trace_frames {
            trace_out(conn.peer, k, &close);
        }
        self.leaving.push(k);
        self.finish_with(k, close);
    }

    /// Queues a last answer, then the connection half-closes after writing it and lingers.
    fn finish_with(&mut self, k: usize, last: Frame) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        if conn.counted_open {
            conn.counted_open = false;
            self.metrics.connections -= 1;
        }
        if std::mem::take(&mut conn.web_pending) {
            release_pending(&mut self.web_pending, conn.peer.ip());
        }
        conn.phase = Phase::Closing;
        self.metrics.output_queued_bytes += last.len() as u64;
        conn.outbox.push(last);
        self.mark_dirty(k);
        self.arm_timer(k, self.now + LINGER);
    }

    /// Drops a connection at once.
    fn remove(&mut self, k: usize) {
        if !self.conns.contains(k) {
            return;
        }
        // The hub must forget this slab key before the slab can hand it to a new connection.
        if self.hub.uid_of(k).is_some() {
            self.leaving.push(k);
            self.process_leaving();
            // At shutdown process_leaving skips the broadcast; the user must still go.
            let mut ignored = Effects::default();
            self.hub.leave(k, "", &mut ignored);
        }
        self.hub.disconnect(k);
        let mut conn = self.conns.remove(k);
        if conn.counted_open {
            self.metrics.connections -= 1;
        }
        self.metrics.output_queued_bytes =
            self.metrics.output_queued_bytes.saturating_sub(conn.outbox.queued_bytes() as u64);
        match conn.kind {
            Kind::WebSocket => self.ws_sockets -= 1,
            Kind::Http => self.web_sockets -= 1,
        }
        if conn.web_pending {
            release_pending(&mut self.web_pending, conn.peer.ip());
        }
        if let Err(e) = self.poll.registry().deregister(&mut conn.stream) {
            debug!("{}: deregister failed: {e}", conn.peer);
        }
        debug!("{}: connection #{k} closed", conn.peer);
    }

    // ----- writing -----

    fn mark_dirty(&mut self, k: usize) {
        if let Some(conn) = self.conns.get_mut(k) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(k);
            }
        }
    }

    fn flush_dirty(&mut self) {
        // A write error removes a connection, and its logout can open a batch and dirty others: seal and
        // flush until nothing is left, reusing the two lists' allocations.
        self.seal_batches();
        let mut dirty = std::mem::take(&mut self.dirty);
        while !dirty.is_empty() {
            for &k in &dirty {
                self.flush(k);
            }
            dirty.clear();
            self.seal_batches();
            std::mem::swap(&mut dirty, &mut self.dirty);
        }
        self.dirty = dirty;
    }

    fn flush(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        conn.dirty = false;
        if conn.outbox.is_empty() {
            return;
        }
        match conn.outbox.flush(&mut conn.stream) {
            Ok(done) => {
                self.metrics.output_queued_bytes = self.metrics.output_queued_bytes.saturating_sub(done.written as u64);
                if conn.kind == Kind::WebSocket {
                    self.metrics.bytes_out_total += done.written as u64;
                }
                if conn.phase == Phase::Open && conn.outbox.held_bytes() > self.cfg.send_buffer_limit {
                    self.cut_slow_consumer(k);
                    return;
                }
                if done.drained && conn.phase == Phase::Closing && !conn.write_shut {
                    conn.write_shut = true;
                    // Half-close: the peer sees our last bytes and EOF; we keep reading until it closes so
                    // unread input never turns our close into a reset.
                    if let Err(e) = conn.stream.shutdown(Shutdown::Write) {
                        debug!("{}: shutdown failed: {e}", conn.peer);
                        self.remove(k);
                        return;
                    }
                }
                if done.drained && conn.peer_eof {
                    // Both sides are done: the peer closed first and everything it was owed is written.
                    self.remove(k);
                }
            }
            Err(e) => {
                debug!("{}: write error: {e}", conn.peer);
                self.remove(k);
            }
        }
    }

    // ----- timers -----

    fn arm_timer(&mut self, k: usize, at: Instant) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        conn.timer_tick = self.wheel.schedule(at, k, conn.serial);
    }

    fn expire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.expire(self.now, &mut expired);
        for entry in expired.drain(..) {
            let Some(conn) = self.conns.get_mut(entry.key) else { continue };
            if conn.serial != entry.serial || conn.timer_tick != entry.tick {
                continue; // Stale: the connection was replaced or re-armed since.
            }
            self.on_deadline(entry.key);
        }
        self.expired = expired;
    }

    fn on_deadline(&mut self, k: usize) {
        let Some(conn) = self.conns.get_mut(k) else { return };
        match conn.phase {
            Phase::Handshake => {
                debug!("{}: no complete request in time; closing", conn.peer);
                self.remove(k);
            }
            Phase::Closing => self.remove(k),
            Phase::Open => {
                let ping = self.cfg.ping_interval;
                let silent = self.now.saturating_duration_since(conn.last_rx);
                conn.release_idle_buffers();
                if silent >= ping * 2 {
                    debug!("{}: silent for {} s; closing", conn.peer, silent.as_secs());
                    self.close(k, close_code::GOING_AWAY, "idle timeout");
                } else if silent >= ping {
                    let last_rx = conn.last_rx;
                    self.send_control(k, OpCode::Ping, b"");
                    self.arm_timer(k, last_rx + ping * 2);
                } else {
                    let last_rx = conn.last_rx;
                    self.arm_timer(k, last_rx + ping);
                }
            }
        }
    }

    // ----- shutdown -----

    fn on_signal(&mut self) {
        let got: Vec<i32> = self.signals.pending().collect();
        if got.is_empty() || self.shutdown_deadline.is_some() {
            return;
        }
        info!("signal {} received: closing {} connection(s)", got[0], self.metrics.connections);
        self.shutdown_deadline = Some(self.now + SHUTDOWN_GRACE);
        for listener in [self.ws_listener.take(), self.http_listener.take()].into_iter().flatten() {
            let mut listener = listener;
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            match self.conns.get(k).map(|c| c.phase) {
                Some(Phase::Open) => self.close(k, close_code::GOING_AWAY, "server shutting down"),
                Some(Phase::Handshake) => self.remove(k),
                _ => {}
            }
        }
    }

    // ----- tracing -----

    fn trace_in(&self, k: usize, msg: &Message<'_>) {
        let Some(conn) = self.conns.get(k) else { return };
        if !log_enabled!(target: FRAMES_TARGET, Level::Info) {
            return;
        }
        match msg {
            Message::Text(t) => info!(target: FRAMES_TARGET, "{} #{k} <- text {}B {t}", conn.peer, t.len()),
            Message::Binary(b) => info!(target: FRAMES_TARGET, "{} #{k} <- binary {}B {}", conn.peer, b.len(), hex(b)),
            Message::Ping(p) => info!(target: FRAMES_TARGET, "{} #{k} <- ping {}", conn.peer, hex(p)),
            Message::Pong(p) => info!(target: FRAMES_TARGET, "{} #{k} <- pong {}", conn.peer, hex(p)),
            Message::Close(c) => info!(target: FRAMES_TARGET, "{} #{k} <- close {c:?}", conn.peer),
        }
    }
}

/// Logs outgoing frames, one line each (server frames are unmasked, so the payload is readable as is).
fn trace_out(peer: SocketAddr, k: usize, mut frames: &[u8]) {
    if !log_enabled!(target: FRAMES_TARGET, Level::Info) {
        return;
    }
    while let Ok(Some(h)) = FrameHeader::decode(frames) {
        let end = h.header_len.saturating_add(h.payload_len as usize).min(frames.len());
        let payload = &frames[h.header_len.min(end)..end];
        match h.op() {
            Some(OpCode::Text) => {
                info!(target: FRAMES_TARGET, "{peer} #{k} -> text {}B {}", payload.len(), String::from_utf8_lossy(payload))
            }
            Some(op) => info!(target: FRAMES_TARGET, "{peer} #{k} -> {op} {}B {}", payload.len(), hex(payload)),
            None => {}
        }
        frames = &frames[end..];
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().take(64).map(|b| format!("{b:02x}")).collect()
}

/// Length of the listen queue asked for (the kernel caps it at `net.core.somaxconn`). The usual 128 overflows
/// when thousands of clients connect at once: their SYNs are dropped and they retry a second later.
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listening socket on `addr` with address reuse and a deep accept queue.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one system call less per connection.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// EMFILE or ENFILE: the process or the system has no file descriptor left.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Answers a connection that will not be served with 503 and closes it. The request it may already have
/// sent is read first, so that closing does not reset the connection and destroy the answer in flight.
fn refuse_at_accept(mut stream: TcpStream, scratch: &mut [u8]) {
    use std::io::Write;
    let answer = error_response(503, "Retry-After: 1\r\n", "server at capacity\n");
    let _ = stream.write(&answer);
    let _ = stream.read(scratch);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Counts one unfinished web request from `ip` as answered or gone.
fn release_pending(pending: &mut HashMap<IpAddr, u32>, ip: IpAddr) {
    if let Some(n) = pending.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            pending.remove(&ip);
        }
    }
}

/// Whether a handshake's Origin passes the allow-list; no list allows all, no Origin (not a browser) passes.
fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(_) if allowed.is_empty() => true,
        Some(o) => {
            let o = o.trim().trim_end_matches('/');
            allowed.iter().any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_policy() {
        let list = vec!["http://127.0.0.1:55151".to_string()];
        assert!(origin_allowed(&[], Some("http://evil")));
        assert!(origin_allowed(&list, None));
        assert!(origin_allowed(&list, Some("http://127.0.0.1:55151")));
        assert!(origin_allowed(&list, Some("HTTP://127.0.0.1:55151/")));
        assert!(!origin_allowed(&list, Some("http://evil.example")));
    }

    #[test]
    fn accepted_connections_inherit_nodelay_and_the_queue_is_deep() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().unwrap());
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", addr.port())])
            .output()
            .expect("ss from iproute2 (`make deps` installs it)");
        // `ss` shows the accept queue's limit in the Send-Q column of a listening socket.
        let text = String::from_utf8_lossy(&out.stdout);
        let limit = text.split_whitespace().nth(2).and_then(|v| v.parse::<u32>().ok());
        assert!(limit.is_some_and(|l| l > 128), "listen backlog {limit:?}: {text}");
    }

    #[test]
    fn time_text_has_the_contract_format() {
        let mut t = TimeText::default();
        t.refresh();
        let b = t.text.as_bytes();
        assert_eq!(b.len(), 19, "{}", t.text);
        assert_eq!((b[4], b[7], b[10], b[13], b[16]), (b'-', b'-', b' ', b':', b':'));
    }
}
