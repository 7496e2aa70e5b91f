//! The event loop: one thread, one mio `Poll` (edge-triggered epoll), two listeners, a slab of connections,
//! the timer wheel and the signal pipe. It moves bytes between sockets and the pure core — each
//! connection's [`Session`], the [`Application`] behind the seam, the web [`Site`] — applies what they
//! decide, flushes every touched connection once per loop turn, and runs the shutdown sequence.
//!
//! The loop is split by what it does: accepting and admission (`accept`), reading and decoding (`input`),
//! queuing, writing and output budgets (`output`), frame tracing (`trace`); this file holds the loop, the
//! token space, closing, removal, timers and shutdown.

mod accept;
mod addresses;
mod admission;
mod api;
mod coalesce;
mod conn;
mod deadlines;
mod input;
mod links;
mod output;
mod reload;
mod trace;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

pub use conn::{Conn, Kind};
pub use reload::{Reload, Reloader, RELOADABLE};

use admission::Moment;

use crate::app::{Application, Departure, Effects};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::outbox::Reply;
use crate::session::{close_frame, Session, LINGER};
use crate::timer::{TimerEntry, TimerWheel};
use crate::web::Site;
use crate::ws::frame::close_code;

const WS_LISTENER: Token = Token(usize::MAX - 1);
const HTTP_LISTENER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
const API_LISTENER: Token = Token(usize::MAX - 4);
const COALESCE_TIMER: Token = Token(usize::MAX - 5);
const LINK_LISTENER: Token = Token(usize::MAX - 6);

/// Time allowed to send an HTTP request head.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the shutdown sequence waits for goodbyes to be written.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

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
    /// The sockets handed over by the service manager cannot be used.
    Activation(crate::systemd::ActivationError),
    /// The TLS certificate or key cannot be used.
    Tls(crate::tls::TlsError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind { what, addr, source } => write!(f, "cannot listen for {what} on {addr}: {source}"),
            StartError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
            StartError::Activation(e) => write!(f, "{e}"),
            StartError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The daemon's event loop and everything it owns.
pub struct Reactor {
    cfg: Config,
    poll: Poll,
    ws_listener: Option<TcpListener>,
    http_listener: Option<TcpListener>,
    /// The server API's listener (`--api`).
    api_listener: Option<TcpListener>,
    api_addr: Option<SocketAddr>,
    signals: Signals,
    ws_addr: SocketAddr,
    http_addr: SocketAddr,
    conns: Slab<Conn>,
    app: Box<dyn Application>,
    site: Site,
    effects: Effects,
    metrics: Metrics,
    wheel: TimerWheel,
    expired: Vec<TimerEntry>,
    /// Connections with output queued this turn.
    dirty: Vec<usize>,
    /// Held connections whose due time came (reused list of slab key and serial).
    due_now: Vec<(usize, u64)>,
    /// `--coalesce-us`: the window, the held connections and their timer.
    coalesce: coalesce::Coalescer,
    /// Connections that stopped reading early and must be read again next turn.
    read_again: Vec<usize>,
    /// Connections that wrote one chunk of a file body and must be written again next turn.
    write_again: Vec<usize>,
    /// Connections whose messages are over, and how; the application lets them go at a safe point.
    leaving: Vec<(usize, Departure)>,
    scratch: Vec<u8>,
    next_serial: u64,
    now: Instant,
    accept_paused_until: Option<Instant>,
    /// A descriptor held in reserve, given up at EMFILE to accept and refuse waiting connections.
    spare_fd: Option<std::fs::File>,
    last_accept_warning: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    /// Sockets per port, each port's sockets per client address, open WebSockets: what tickets count.
    admission: admission::Admission,
    /// Unsent bytes queued for all clients.
    queued: output::OutputGauge,
    /// Reads of connections still in their TLS handshake this loop turn ([`input::TLS_HANDSHAKE_READS_PER_TURN`]).
    tls_handshake_reads: usize,
    /// The application's link sockets (a cluster's Redis connections), by link.
    link_sockets: Vec<Option<links::LinkSocket>>,
    /// Where other hosts open links to the application (a cluster node's peer links), if it takes any.
    link_listener: Option<TcpListener>,
    /// Reused for the application's link requests.
    link_requests: Vec<crate::app::LinkRequest>,
    /// A link had an event this turn: the application applies what it brought (only link input brings
    /// anything).
    links_touched: bool,
    /// The links have output that waits for the coalescing window's end (or the next client write).
    links_deferred: bool,
    /// The certificate and key both ports serve with `--tls-cert` (reloaded at SIGHUP).
    tls: Option<crate::tls::CertStore>,
    /// Reads the configuration again at SIGHUP (with `--config`).
    reloader: Option<Reloader>,
}

impl Reactor {
    /// Binds both listeners and the signal handlers, serving `app`.
    pub fn bind(cfg: Config, app: Box<dyn Application>) -> Result<Reactor, StartError> {
        let poll = Poll::new().map_err(StartError::Setup)?;
        let tls = match &cfg.tls {
            Some(files) => Some(crate::tls::CertStore::load(&files.cert, &files.key).map_err(StartError::Tls)?),
            None => None,
        };
        // Under socket activation the service manager's sockets are served instead of binding new ones.
        let (mut ws_listener, mut http_listener) = match crate::systemd::activated().map_err(StartError::Activation)? {
            Some(a) => (TcpListener::from_std(a.ws), TcpListener::from_std(a.http)),
            None => {
                let ws = accept::listen(cfg.ws_addr, cfg.reuse_port).map_err(|source| StartError::Bind {
                    what: "WebSocket",
                    addr: cfg.ws_addr,
                    source,
                })?;
                let http = accept::listen(cfg.http_addr, cfg.reuse_port).map_err(|source| StartError::Bind {
                    what: "HTTP",
                    addr: cfg.http_addr,
                    source,
                })?;
                (ws, http)
            }
        };
        let ws_addr = ws_listener.local_addr().map_err(StartError::Setup)?;
        let http_addr = http_listener.local_addr().map_err(StartError::Setup)?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(StartError::Setup)?;
        let registry = poll.registry();
        registry.register(&mut ws_listener, WS_LISTENER, Interest::READABLE).map_err(StartError::Setup)?;
        registry.register(&mut http_listener, HTTP_LISTENER, Interest::READABLE).map_err(StartError::Setup)?;
        registry.register(&mut signals, SIGNALS, Interest::READABLE).map_err(StartError::Setup)?;
        let mut api_listener = match &cfg.api {
            None => None,
            Some(api) => Some(accept::listen(api.addr, cfg.reuse_port).map_err(|source| StartError::Bind {
                what: "API",
                addr: api.addr,
                source,
            })?),
        };
        let api_addr = match api_listener.as_mut() {
            None => None,
            Some(l) => {
                registry.register(l, API_LISTENER, Interest::READABLE).map_err(StartError::Setup)?;
                Some(l.local_addr().map_err(StartError::Setup)?)
            }
        };
        let coalesce = coalesce::Coalescer::new(cfg.coalesce, registry, COALESCE_TIMER).map_err(StartError::Setup)?;
        let mut app = app;
        let mut link_listener = app.links().and_then(|host| host.listener()).map(TcpListener::from_std);
        if let Some(l) = link_listener.as_mut() {
            registry.register(l, LINK_LISTENER, Interest::READABLE).map_err(StartError::Setup)?;
        }
        let site = Site::with_root(ws_addr.port(), cfg.web_root.clone()).escaped(ws_addr.port(), cfg.escape_html);
        let now = Instant::now();
        let metrics = Metrics {
            tls: tls.as_ref().map(|_| Default::default()),
            api: cfg.api.as_ref().map(|_| Default::default()),
            ..Default::default()
        };
        Ok(Reactor {
            cfg,
            poll,
            ws_listener: Some(ws_listener),
            http_listener: Some(http_listener),
            api_listener,
            api_addr,
            signals,
            ws_addr,
            http_addr,
            conns: Slab::with_capacity(1024),
            app,
            site,
            effects: Effects::default(),
            metrics,
            wheel: TimerWheel::new(now),
            expired: Vec::new(),
            dirty: Vec::new(),
            due_now: Vec::new(),
            coalesce,
            read_again: Vec::new(),
            write_again: Vec::new(),
            leaving: Vec::new(),
            scratch: vec![0; input::READ_CHUNK],
            next_serial: 1,
            now,
            accept_paused_until: None,
            spare_fd: std::fs::File::open("/dev/null").ok(),
            last_accept_warning: None,
            shutdown_deadline: None,
            admission: Default::default(),
            queued: Default::default(),
            tls_handshake_reads: 0,
            link_sockets: (0..links::MAX_LINKS).map(|_| None).collect(),
            link_listener,
            link_requests: Vec::new(),
            links_touched: false,
            links_deferred: false,
            tls,
            reloader: None,
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

    /// The bound address of the server API (`--api`), if it serves one.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// Runs until SIGINT or SIGTERM, then closes every client with 1001 and returns.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let mut timeout = self.poll_timeout();
            // With a window open, input waits for its tick like the output it would make (see `coalesce`);
            // not while stopping, when the loop only drains.
            if self.shutdown_deadline.is_none() && self.coalesce.wait_for_tick(timeout) {
                timeout = Some(Duration::ZERO);
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.now = Instant::now();
            self.app.set_now(self.now);
            self.tls_handshake_reads = 0;
            for event in events.iter() {
                match event.token() {
                    WS_LISTENER => self.accept(Kind::WebSocket),
                    HTTP_LISTENER => self.accept(Kind::Http),
                    API_LISTENER => self.accept(Kind::Api),
                    SIGNALS => self.on_signal(),
                    COALESCE_TIMER => self.coalesce.on_timer(),
                    LINK_LISTENER => self.accept_links(),
                    t if links::link_of(t).is_some() => {
                        let link = links::link_of(t).unwrap_or(0);
                        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                        let to_end = event.is_read_closed() || event.is_error();
                        self.on_link_event(link, readable, event.is_writable() || event.is_error(), to_end);
                    }
                    Token(k) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            // With the peer's FIN or an error in the same event, read to the end: no
                            // further edge will come for it.
                            self.on_readable(k, event.is_read_closed() || event.is_error());
                        }
                        // A dirty connection is written at the turn's end, or at its window's end if held.
                        if event.is_writable() && self.conns.get(k).is_some_and(|c| !c.dirty) {
                            self.flush(k);
                        }
                    }
                }
            }
            for k in std::mem::take(&mut self.read_again) {
                self.on_readable(k, true);
            }
            self.resume_writing();
            self.resume_accepting();
            self.expire_timers();
            self.drive_links();
            self.process_leaving();
            self.flush_dirty();
            self.enforce_output_budget();
            self.drive_links();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() && self.links_idle() || self.now >= deadline {
                    info!("stopped: {} connection(s) still open at exit", self.conns.len());
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.read_again.is_empty() || !self.write_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut timeout: Option<Duration> = None;
        let wakeup = self.app.links().and_then(|host| host.wakeup());
        let mut consider = |d: Duration| timeout = Some(timeout.map_or(d, |t| t.min(d)));
        for at in [wakeup, self.app.wakeup()].into_iter().flatten() {
            consider(at.saturating_duration_since(now));
        }
        if !self.wheel.is_empty() {
            consider(self.wheel.until_next_tick(now));
        }
        if let Some(until) = self.accept_paused_until {
            consider(until.saturating_duration_since(now));
        }
        if let Some(until) = self.coalesce.until() {
            // The timerfd wakes the loop on time; epoll's millisecond timeout is only the backstop.
            consider(until.saturating_duration_since(now));
        }
        if let Some(deadline) = self.shutdown_deadline {
            consider(deadline.saturating_duration_since(now));
        }
        timeout
    }

    // ----- the application -----

    /// Queues every delivery the application made, then closes the connections it asked to close.
    fn apply(&mut self, effects: &mut Effects) {
        for d in effects.sends.drain(..) {
            self.deliver(d.conn, d.bytes, d.messages, d.welcome);
        }
        for (k, request) in effects.closes.drain(..) {
            self.close(k, request.code, &request.reason);
        }
    }

    /// Runs `f` against the application with the reusable effects list, then queues what it produced.
    fn with_app(&mut self, f: impl FnOnce(&mut dyn Application, &mut Effects)) {
        f(self.app.as_mut(), &mut self.effects);
        self.apply_pending();
    }

    /// Queues what the reusable effects list holds, keeping its allocation.
    fn apply_pending(&mut self) {
        let mut effects = std::mem::take(&mut self.effects);
        self.apply(&mut effects);
        self.effects = effects;
    }

    /// Lets connections whose messages are over leave the application; their goodbyes (logout broadcasts)
    /// may cut off further slow consumers, which are handled in the same loop.
    fn process_leaving(&mut self) {
        while let Some((k, departure)) = self.leaving.pop() {
            // At shutdown everyone is leaving: no logout storm.
            let departure = if self.shutdown_deadline.is_some() { Departure::Shutdown } else { departure };
            self.with_app(|app, out| app.on_leave(k, departure, out));
        }
    }

    // ----- closing -----

    /// Sends a close frame (when the connection is open) and begins the closing phase; the connection's
    /// messages end as [`Departure::Lost`].
    fn close(&mut self, k: usize, code: u16, reason: &str) {
        self.close_as(k, code, reason, Departure::Lost);
    }

    /// Sends a close frame and begins the closing phase; the connection's messages end as `departure`.
    fn close_as(&mut self, k: usize, code: u16, reason: &str, departure: Departure) {
        if self.conns.get(k).is_none_or(|c| !c.session.is_open()) {
            return;
        }
        // What the application still holds for this connection (its room's broadcasts of this turn) goes
        // out before the close frame.
        self.with_app(|app, out| app.flush_for(k, out));
        let Some(conn) = self.conns.get(k) else { return };
        if !conn.session.is_open() {
            return;
        }
        let close = close_frame(code, reason);
        if self.cfg.trace_frames {
            trace::outgoing(conn.peer, k, &close);
        }
        self.leaving.push((k, departure));
        self.finish_with(k, close);
    }

    /// Queues a last answer (with a file body streamed after it, for a large file), then the connection
    /// half-closes after writing it and lingers.
    fn finish_with(&mut self, k: usize, last: impl Into<Reply>) {
        let last = last.into();
        let Some(conn) = self.conns.get_mut(k) else { return };
        self.admission.passed(&mut conn.ticket, Moment::Closing);
        self.queued.track(&mut conn.session, |s| s.finish(last));
        self.mark_dirty(k);
        self.arm_timer(k, self.now + LINGER);
    }

    /// Drops a connection at once.
    fn remove(&mut self, k: usize) {
        if !self.conns.contains(k) {
            return;
        }
        // The application must forget this slab key before the slab can hand it to a new connection.
        if self.app.is_member(k) {
            self.leaving.push((k, Departure::Lost));
            self.process_leaving();
        }
        self.app.on_gone(k);
        let mut conn = self.conns.remove(k);
        self.admission.close(conn.ticket);
        self.queued.forget(&conn.session);
        if let Err(e) = self.poll.registry().deregister(conn.transport.socket()) {
            debug!("{}: deregister failed: {e}", conn.peer);
        }
        debug!("{}: connection #{k} closed", conn.peer);
    }

    // ----- shutdown -----

    fn on_signal(&mut self) {
        let got: Vec<i32> = self.signals.pending().collect();
        if got.contains(&SIGHUP) {
            self.reload();
        }
        let Some(&stop) = got.iter().find(|&&s| s != SIGHUP) else { return };
        if self.shutdown_deadline.is_some() {
            return;
        }
        info!("signal {stop} received: closing {} connection(s)", self.admission.open());
        self.shutdown_deadline = Some(self.now + SHUTDOWN_GRACE);
        crate::systemd::notify(crate::systemd::State::Stopping);
        self.app.shutdown();
        let listeners =
            [self.ws_listener.take(), self.http_listener.take(), self.api_listener.take(), self.link_listener.take()];
        for listener in listeners.into_iter().flatten() {
            let mut listener = listener;
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            // A request already accepted is still answered (a web request as usual, an upgrade with 503), so
            // that a restart under socket activation leaves no attempt unanswered; it has until the grace ends.
            if self.conns.get(k).is_some_and(|c| c.session.is_open()) {
                self.close(k, close_code::GOING_AWAY, "server shutting down");
            }
        }
    }

    /// A fresh session for a connection accepted now.
    fn new_session(&self) -> Session {
        Session::new(self.now, self.cfg.max_message_bytes, self.cfg.max_messages_per_sec)
    }
}
