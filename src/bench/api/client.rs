//! The API's keep-alive connections, driven by the engine's loop: their sockets are registered in the engine's
//! `Poll` under tokens of their own ([`crate::bench::engine::FOREIGN_TOKENS`] up), and the engine's turn hands
//! their events here. Each request carries a stamped content — its connection as the sender, the connection's
//! next sequence number, the send time on the engine's clock — so the WebSocket clients audit and time what it
//! pushed. Requests are pipelined (at most `depth` unanswered per connection) and answered in order, so the
//! answers are matched to their requests by position: each is counted by status, and a 200 makes its
//! message owed to every member of the room.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::time::Instant;

use hdrhistogram::Histogram;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::http::{parse_response, HttpError, Method, RequestHead};
use super::payload::{self, Bodies};
use super::{ApiConfig, ApiError, Verb};
use crate::bench::content::{self, Stamp};

/// Bytes one read may bring.
const READ_CHUNK: usize = 64 * 1024;
/// Longest time the answer histogram holds, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Most bytes of a refusal's body kept for the report.
const BODY_KEPT: usize = 200;

/// Why an API connection failed or a request did not succeed; the first is kept for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// An answer other than 200, with (the start of) its body.
    Status {
        /// The status.
        status: u16,
        /// The body, lossily decoded and cut at 200 bytes.
        body: String,
    },
    /// Bytes that are no answer the bench can read; the connection is closed.
    Http(HttpError),
    /// An answer with no request waiting for it; the connection is closed.
    Unsolicited,
    /// The server closed the connection, with these requests unanswered.
    Closed {
        /// Requests never answered.
        unanswered: usize,
    },
    /// A read or write failed, with these requests unanswered.
    Io {
        /// What failed.
        kind: io::ErrorKind,
        /// Requests never answered.
        unanswered: usize,
    },
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiFailure::Status { status, body } => write!(f, "answered {status}: {body}"),
            ApiFailure::Http(e) => write!(f, "{e}"),
            ApiFailure::Unsolicited => f.write_str("an answer to no request"),
            ApiFailure::Closed { unanswered } => {
                write!(f, "the server closed an API connection with {unanswered} requests unanswered")
            }
            ApiFailure::Io { kind, unanswered } => {
                write!(f, "an API connection failed ({kind}) with {unanswered} requests unanswered")
            }
        }
    }
}

/// What the API connections counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiCounters {
    /// Requests written (queued to a connection).
    pub sent: u64,
    /// Requests sent while measuring.
    pub window_sent: u64,
    /// Answers read.
    pub answered: u64,
    /// Answers read while measuring.
    pub window_answered: u64,
    /// Answers 200.
    pub ok: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that did not succeed: answers other than 200 and requests a failed connection left unanswered.
    pub errors: u64,
    /// Of those, requests never answered.
    pub unanswered: u64,
    /// Recipients the 200 answers named (`users` or `queued`), summed.
    pub recipients: u64,
    /// Sends refused because every open connection had `depth` requests unanswered.
    pub stalls: u64,
    /// Connections lost (closed by the server, or failed).
    pub closed: usize,
    /// The first failure.
    pub first_failure: Option<ApiFailure>,
}

/// One keep-alive connection to the API.
#[derive(Debug)]
struct ApiConn {
    /// `None` once it failed or was closed.
    stream: Option<TcpStream>,
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes of answers not read yet (an answer cut by a read).
    input: Vec<u8>,
    /// The send time of every request not answered yet, oldest first.
    in_flight: VecDeque<u64>,
    /// The next request's sequence number.
    seq: u32,
    /// Queued since the last flush.
    dirty: bool,
}

/// The API's connections of one run.
pub struct ApiClients {
    conns: Vec<ApiConn>,
    head: RequestHead,
    bodies: Bodies,
    verb: Verb,
    payload: usize,
    depth: usize,
    /// The engine's clock base: stamps and answers are timed on the clock the receivers read.
    clock: Instant,
    /// The token of connection 0; connection i is `base + i`.
    base: usize,
    rr: usize,
    dirty: Vec<usize>,
    content: Vec<u8>,
    body: Vec<u8>,
    chunk: Vec<u8>,
    counters: ApiCounters,
    /// Request to answer, nanoseconds, of requests sent from `record_from` on.
    answers: Histogram<u64>,
    measuring: bool,
    record_from: u64,
}

impl fmt::Debug for ApiClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClients").field("conns", &self.conns.len()).field("counters", &self.counters).finish()
    }
}

impl ApiClients {
    /// Opens `cfg.clients` connections to the API and registers them in `registry` under tokens `base..`; the
    /// requests will be `cfg.verb` to `room` with `payload` content bytes, stamped on `clock`.
    pub fn connect(
        cfg: &ApiConfig,
        room: &str,
        payload: usize,
        registry: &Registry,
        clock: Instant,
        base: usize,
    ) -> Result<ApiClients, ApiError> {
        let mut conns = Vec::with_capacity(cfg.clients);
        for i in 0..cfg.clients {
            let timeout = std::time::Duration::from_secs(5);
            let std =
                std::net::TcpStream::connect_timeout(&cfg.addr, timeout).map_err(|e| ApiError::Connect(cfg.addr, e))?;
            let io = |e| ApiError::Io(cfg.addr, e);
            std.set_nodelay(true).map_err(io)?;
            std.set_nonblocking(true).map_err(io)?;
            let mut stream = TcpStream::from_std(std);
            registry.register(&mut stream, Token(base + i), Interest::READABLE | Interest::WRITABLE).map_err(io)?;
            conns.push(ApiConn {
                stream: Some(stream),
                out: Vec::with_capacity(16 * 1024),
                out_pos: 0,
                input: Vec::new(),
                in_flight: VecDeque::with_capacity(cfg.depth),
                seq: 0,
                dirty: false,
            });
        }
        Ok(ApiClients {
            conns,
            head: RequestHead::new(Method::Post, cfg.verb.path(), &cfg.host, cfg.key.bytes()),
            bodies: Bodies::new(cfg.verb, room),
            verb: cfg.verb,
            payload,
            depth: cfg.depth.max(1),
            clock,
            base,
            rr: 0,
            dirty: Vec::new(),
            content: Vec::with_capacity(256),
            body: Vec::with_capacity(512),
            chunk: vec![0; READ_CHUNK],
            counters: ApiCounters::default(),
            answers: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid"),
            measuring: false,
            record_from: u64::MAX,
        })
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Queues the next request on the next connection (round robin) that has room in its pipeline; false when
    /// none has (counted as a stall). [`ApiClients::flush`] writes it.
    pub fn send(&mut self) -> bool {
        let n = self.conns.len();
        for _ in 0..n {
            let i = self.rr % n;
            self.rr = self.rr.wrapping_add(1);
            let conn = &self.conns[i];
            if conn.stream.is_none() || conn.in_flight.len() >= self.depth {
                continue;
            }
            let nanos = self.now();
            self.content.clear();
            content::encode(&mut self.content, Stamp { sender: i as u32, seq: conn.seq, nanos }, self.payload);
            self.body.clear();
            self.bodies.write(&mut self.body, &self.content);
            let conn = &mut self.conns[i];
            self.head.write(&mut conn.out, &self.body);
            conn.in_flight.push_back(nanos);
            conn.seq = conn.seq.wrapping_add(1);
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(i);
            }
            self.counters.sent += 1;
            if self.measuring {
                self.counters.window_sent += 1;
            }
            return true;
        }
        self.counters.stalls += 1;
        false
    }

    /// Writes what [`ApiClients::send`] queued, one write per connection.
    pub fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            self.conns[i].dirty = false;
            self.flush_conn(i);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Handles an event of the engine's `Poll` for one of these connections (others are ignored).
    pub fn on_event(&mut self, event: &Event) {
        let Some(i) = event.token().0.checked_sub(self.base).filter(|&i| i < self.conns.len()) else { return };
        if event.is_writable() || event.is_error() {
            self.flush_conn(i);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read_conn(i);
        }
    }

    fn flush_conn(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let Some(stream) = conn.stream.as_mut() else { return };
        while conn.out_pos < conn.out.len() {
            match stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => return self.fail(i, io::ErrorKind::WriteZero),
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, e.kind()),
            }
        }
        conn.out.clear();
        conn.out_pos = 0;
    }

    fn read_conn(&mut self, i: usize) {
        loop {
            let Some(stream) = self.conns[i].stream.as_mut() else { return };
            let n = match stream.read(&mut self.chunk) {
                Ok(0) => return self.lose(i, None),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(i, e.kind()),
            };
            self.conns[i].input.extend_from_slice(&self.chunk[..n]);
            if let Err(why) = self.answers_of(i) {
                return self.lose(i, Some(why));
            }
            if n < self.chunk.len() {
                return;
            }
        }
    }

    /// Takes every whole answer off connection `i`'s input, each for its oldest request.
    fn answers_of(&mut self, i: usize) -> Result<(), ApiFailure> {
        let now = self.now();
        let mut input = std::mem::take(&mut self.conns[i].input);
        let mut pos = 0;
        let result = loop {
            let answer = match parse_response(&input[pos..]) {
                Ok(Some(answer)) => answer,
                Ok(None) => break Ok(()),
                Err(e) => break Err(ApiFailure::Http(e)),
            };
            let Some(sent) = self.conns[i].in_flight.pop_front() else { break Err(ApiFailure::Unsolicited) };
            self.count(answer.status, &input[pos + answer.body.start..pos + answer.body.end]);
            if sent >= self.record_from {
                self.answers.saturating_record(now.saturating_sub(sent).max(1));
            }
            pos += answer.len;
        };
        input.drain(..pos);
        self.conns[i].input = input;
        result
    }

    /// Counts one answer.
    fn count(&mut self, status: u16, body: &[u8]) {
        let c = &mut self.counters;
        c.answered += 1;
        if self.measuring {
            c.window_answered += 1;
        }
        *c.statuses.entry(status).or_insert(0) += 1;
        if status == 200 {
            c.ok += 1;
            c.recipients += payload::recipients(self.verb, body).unwrap_or(0);
        } else {
            c.errors += 1;
            if c.first_failure.is_none() {
                let body = String::from_utf8_lossy(&body[..body.len().min(BODY_KEPT)]).into_owned();
                c.first_failure = Some(ApiFailure::Status { status, body });
            }
        }
    }

    /// Connection `i` failed on a read or write.
    fn fail(&mut self, i: usize, kind: io::ErrorKind) {
        let unanswered = self.conns[i].in_flight.len();
        self.lose(i, Some(ApiFailure::Io { kind, unanswered }));
    }

    /// Connection `i` is lost, for `why` (`None`: the server closed it); its unanswered requests are errors.
    fn lose(&mut self, i: usize, why: Option<ApiFailure>) {
        let conn = &mut self.conns[i];
        if conn.stream.take().is_none() {
            return;
        }
        let unanswered = conn.in_flight.len();
        conn.in_flight.clear();
        conn.out = Vec::new();
        conn.out_pos = 0;
        conn.input = Vec::new();
        let c = &mut self.counters;
        c.errors += unanswered as u64;
        c.unanswered += unanswered as u64;
        c.closed += 1;
        if c.first_failure.is_none() {
            c.first_failure = Some(why.unwrap_or(ApiFailure::Closed { unanswered }));
        }
    }

    /// Requests not answered yet, on connections still open.
    pub fn in_flight(&self) -> usize {
        self.conns.iter().map(|c| c.in_flight.len()).sum()
    }

    /// Connections still open.
    pub fn open(&self) -> usize {
        self.conns.iter().filter(|c| c.stream.is_some()).count()
    }

    /// Everything counted so far.
    pub fn counters(&self) -> &ApiCounters {
        &self.counters
    }

    /// Request-to-answer times of the requests sent since [`ApiClients::begin_measure`], nanoseconds.
    pub fn answer_histogram(&self) -> &Histogram<u64> {
        &self.answers
    }

    /// Starts a measurement window: requests and answers are counted from now, and the answers to requests
    /// sent from now on are timed into a fresh histogram.
    pub fn begin_measure(&mut self) {
        self.answers.reset();
        self.counters.window_sent = 0;
        self.counters.window_answered = 0;
        self.record_from = self.now();
        self.measuring = true;
    }

    /// Ends the measurement window (later answers are still timed, until [`ApiClients::stop_latency`]).
    pub fn end_measure(&mut self) {
        self.measuring = false;
    }

    /// Stops timing answers.
    pub fn stop_latency(&mut self) {
        self.record_from = u64::MAX;
    }
}
