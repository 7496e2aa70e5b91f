//! The load client engine: many WebSocket client connections on one thread and one mio `Poll`, spread round
//! robin over one or more targets (the nodes of a cluster). It connects,
//! does the client side of the handshake with `ws::handshake`, logs in (chat protocol), sends stamped
//! messages masked with `ws::frame`, and reads into one shared buffer until a read comes back short (the
//! socket is drained then; edge-triggered epoll reports new data as a new edge) or would block, decoding every
//! frame of a read with `ws::message` in place. A connection keeps only the few bytes of a frame header cut by a
//! read boundary, so idle connections stay small. Each delivery is classified, audited and timed without
//! allocating. A wss:// connection has a TLS layer (`tls`) between its socket and that path, driven by the
//! same loop: the plain path pays one `Option` check for it. With resume (churn) a client outlives its
//! connections: one cut without a close frame is replaced by a new one that resumes its session (`churn`),
//! under the same index, so the audit follows the client.

mod churn;
mod conn;
mod members;
mod read;
mod sessions;
mod tls;
mod types;

pub use sessions::ResumeCounters;
pub use tls::TlsFailure;
pub use types::{ConnFailure, Counters, EngineConfig, EngineError, Phase, Proto};

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use self::conn::{close_conn, Conn, Rng};
use self::read::{process, Sink};
use self::tls::TlsLayer;
use super::audit::Audit;
use super::content::{self, NameScan, Stamp};
use super::target::target_of;
use crate::ws::frame::{write_masked_frame, OpCode};
use crate::ws::handshake::{client_key, client_request};
use crate::ws::message::{MessageDecoder, Role};

/// Smallest read the shared buffer always has room for.
const READ_CHUNK: usize = 64 * 1024;

/// Tokens from this one up are not the engine's connections: sockets of the caller's registered in the
/// engine's `Poll` ([`Engine::registry`]), whose events [`Engine::turn_with`] hands back.
pub const FOREIGN_TOKENS: usize = usize::MAX / 2 + 1;

/// The client engine.
pub struct Engine {
    config: EngineConfig,
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    scratch: Vec<u8>,
    sink: Sink,
    clock: Instant,
    rng: Rng,
    /// Next sequence number per sender.
    seq: Vec<u32>,
    dirty: Vec<usize>,
    content: Vec<u8>,
    body: Vec<u8>,
    /// wss://: what one socket read brought, before TLS turns it into plaintext in `scratch` (empty for ws://).
    tls_in: Vec<u8>,
    /// Connections cut with a FIN, read and dropped until the server closes them (churn).
    zombies: Vec<churn::Zombie>,
    /// Clients whose connection the server ended, away until the churn brings them back (churn).
    dropped: Vec<usize>,
    /// Senders dropped by the server whose next say number is set, once resumed, from what came back to them.
    rewinds: Vec<usize>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").field("conns", &self.conns.len()).field("ready", &self.sink.ready).finish()
    }
}

impl Engine {
    /// An engine with no connections yet.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        let poll = Poll::new().map_err(EngineError::Poll)?;
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = since_epoch.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
        let tls_in = if config.targets.iter().any(|t| t.tls.is_some()) { vec![0; READ_CHUNK] } else { Vec::new() };
        let mut sink = Sink::new(config.proto);
        if config.resume && config.proto == Proto::Chat {
            sink.sessions = Some(sessions::Sessions::new());
        }
        Ok(Engine {
            tls_in,
            scratch: vec![0; READ_CHUNK + config.max_message_bytes.min(1 << 20)],
            sink,
            zombies: Vec::new(),
            dropped: Vec::new(),
            rewinds: Vec::new(),
            config,
            poll,
            events: Events::with_capacity(1024),
            conns: Vec::new(),
            clock: Instant::now(),
            rng: Rng::new(seed),
            seq: Vec::new(),
            dirty: Vec::new(),
            content: Vec::with_capacity(256),
            body: Vec::with_capacity(512),
        })
    }

    /// Nanoseconds since the engine's clock base: the time stamped into messages.
    pub fn now_nanos(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// The engine's clock base: a stamp's time is nanoseconds since it.
    pub fn clock(&self) -> Instant {
        self.clock
    }

    /// The engine's `Poll` registry, for sockets of the caller's under tokens from [`FOREIGN_TOKENS`] up.
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    /// Starts a connection to target `idx mod n` (round robin over the targets); with the chat protocol it
    /// logs in as `name` (in `room` when given, with `token` when given) after the handshake. Returns its index
    /// `idx`, which is also its receiver index in the audit.
    pub fn open(&mut self, name: &str, room: Option<&str>, token: Option<&str>) -> Result<usize, EngineError> {
        let idx = self.conns.len();
        let resume = self.config.resume || self.config.opt_in;
        let login = match self.config.proto {
            Proto::Chat => Some(content::login_request(name, room, resume, token).into_boxed_slice()),
            Proto::Raw => None,
        };
        let conn = self.connect(idx, target_of(idx, self.config.targets.len()), login, false)?;
        self.conns.push(conn);
        self.try_request(idx);
        Ok(idx)
    }

    /// A new connection for client `idx` to target `target_idx`, sending `login` (a login or, when `resuming`,
    /// a resume) after the handshake.
    fn connect(
        &mut self,
        idx: usize,
        target_idx: usize,
        login: Option<Box<[u8]>>,
        resuming: bool,
    ) -> Result<Conn, EngineError> {
        let Some(target) = self.config.targets.get(target_idx) else {
            return Err(EngineError::Connect(io::Error::new(io::ErrorKind::InvalidInput, "no target")));
        };
        let tls = match &target.tls {
            None => None,
            Some(name) => {
                let config = self.config.tls.clone().ok_or(EngineError::NoTlsConfig)?;
                Some(Box::new(TlsLayer::new(config, name.clone()).map_err(EngineError::Tls)?))
            }
        };
        let mut stream = TcpStream::connect(target.addr).map_err(EngineError::Connect)?;
        self.poll
            .registry()
            .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
            .map_err(EngineError::Connect)?;
        let _ = stream.set_nodelay(true);
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        let key = client_key(nonce);
        let out = client_request(&target.host, &target.path, &key);
        Ok(Conn {
            stream: Some(stream),
            phase: Phase::Connecting,
            key: Some(key.into_boxed_str()),
            login,
            resuming,
            held: false,
            target: target_idx,
            pending: Vec::new(),
            out,
            out_pos: 0,
            dirty: false,
            decoder: MessageDecoder::new(Role::Client, self.config.max_message_bytes),
            skip: 0,
            scan: NameScan::default(),
            tls,
        })
    }

    /// Number of connections opened.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection was opened.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Connections ready to send and receive.
    pub fn ready(&self) -> usize {
        self.sink.ready
    }

    /// Connections closed so far.
    pub fn closed(&self) -> usize {
        self.sink.counters.closed as usize
    }

    /// Everything counted so far.
    pub fn counters(&self) -> &Counters {
        &self.sink.counters
    }

    /// The latency histogram (nanoseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.sink.hist
    }

    /// The delivery audit.
    pub fn audit(&self) -> &Audit {
        &self.sink.audit
    }

    /// Messages sent so far by each sender.
    pub fn sent_per_sender(&self) -> &[u32] {
        &self.seq
    }

    /// Total messages sent.
    pub fn sent(&self) -> u64 {
        self.seq.iter().map(|&s| u64::from(s)).sum()
    }

    /// Starts following who sees whom (chat): `clients` clients, to be opened as connections 0.., in rooms of
    /// `room_size` consecutive clients, logged in as [`content::client_name`] says. Call it before opening them.
    pub fn track_members(&mut self, clients: usize, room_size: usize) {
        self.sink.members = Some(members::Members::new(clients, room_size));
    }

    /// Clients that have seen every other member of their room (all of them when nothing is followed).
    pub fn members_settled(&self) -> usize {
        self.sink.members.as_ref().map_or(self.conns.len(), members::Members::settled)
    }

    /// Stops following who sees whom; returns how many clients had not seen every other member of their room.
    pub fn stop_tracking_members(&mut self) -> usize {
        self.sink.members.take().map_or(0, |m| m.unsettled())
    }

    /// Starts auditing: the first `senders` connections are the senders, every connection a receiver.
    pub fn start_audit(&mut self, senders: usize) {
        self.sink.audit = Audit::new(self.conns.len(), senders);
        self.seq = vec![0; senders];
    }

    /// Starts a measurement window: deliveries are counted from now, latencies of messages sent from now on
    /// are recorded into a fresh histogram.
    pub fn begin_measure(&mut self) {
        self.sink.hist.reset();
        self.sink.counters.window_deliveries = 0;
        self.sink.record_from = self.now_nanos();
        self.sink.measuring = true;
    }

    /// Ends the measurement window: later deliveries still go to the audit, not to the window count; their
    /// latencies are still recorded (messages sent inside the window and received after it count).
    pub fn end_measure(&mut self) {
        self.sink.measuring = false;
    }

    /// Stops recording latencies.
    pub fn stop_latency(&mut self) {
        self.sink.record_from = u64::MAX;
    }

    /// Queues one stamped message from sender `sender` (a connection index below the audit's sender count);
    /// false when that connection cannot take it now (not ready, or too much unsent output).
    pub fn send(&mut self, sender: usize) -> bool {
        if !self.rewinds.is_empty() {
            self.settle_rewinds();
        }
        let Some(seq) = self.seq.get(sender).copied() else { return false };
        let Some(conn) = self.conns.get(sender) else { return false };
        if conn.phase != Phase::Ready || conn.held {
            return false;
        }
        if conn.out.len() - conn.out_pos > self.config.max_unsent_bytes {
            self.sink.counters.send_stalls += 1;
            return false;
        }
        let nanos = self.now_nanos();
        let key = self.rng.next_u64() as u32;
        self.content.clear();
        content::encode(&mut self.content, Stamp { sender: sender as u32, seq, nanos }, self.config.payload);
        let payload: &[u8] = match self.config.proto {
            Proto::Raw => &self.content,
            Proto::Chat => {
                self.body.clear();
                content::say_request(&mut self.body, &self.content);
                &self.body
            }
        };
        let conn = &mut self.conns[sender];
        write_masked_frame(&mut conn.out, OpCode::Text, payload, key.to_le_bytes());
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(sender);
        }
        self.seq[sender] = seq + 1;
        true
    }

    /// Writes out everything queued by [`Engine::send`] since the last flush, one write per connection.
    pub fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &idx in &dirty {
            self.conns[idx].dirty = false;
            self.flush_conn(idx);
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Waits up to `timeout` for readiness and handles every event: reads, frames, writes.
    pub fn turn(&mut self, timeout: Option<Duration>) -> Result<(), EngineError> {
        self.turn_with(timeout, |_| {})
    }

    /// [`Engine::turn`], handing every event of a token from [`FOREIGN_TOKENS`] up to `foreign`, in the order
    /// the events came.
    pub fn turn_with(
        &mut self,
        timeout: Option<Duration>,
        mut foreign: impl FnMut(&mio::event::Event),
    ) -> Result<(), EngineError> {
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = self.poll.poll(&mut events, timeout);
        if let Err(e) = polled {
            self.events = events;
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(EngineError::Poll(e)) };
        }
        if !self.zombies.is_empty() {
            self.drain_zombies();
        }
        for event in events.iter() {
            let idx = event.token().0;
            if idx >= self.conns.len() {
                if idx >= FOREIGN_TOKENS {
                    foreign(event);
                }
                continue;
            }
            if event.is_writable() || event.is_write_closed() || event.is_error() {
                self.on_writable(idx);
            }
            if event.is_readable() || event.is_read_closed() {
                // With the server's FIN in the same event, read to the end: no further edge comes for it.
                self.on_readable(idx, event.is_read_closed() || event.is_error());
            }
        }
        self.events = events;
        Ok(())
    }

    /// Closes every connection.
    pub fn close_all(&mut self) {
        for idx in 0..self.conns.len() {
            if self.conns[idx].phase != Phase::Closed {
                self.close(idx, None);
            }
        }
        self.drop_zombies();
    }

    fn close(&mut self, idx: usize, why: Option<ConnFailure>) {
        if why.as_ref().is_some_and(|why| self.drop_to_resume(idx, why)) {
            return;
        }
        close_conn(&self.poll, &mut self.conns[idx], &mut self.sink, why);
    }

    fn on_writable(&mut self, idx: usize) {
        if self.conns[idx].phase == Phase::Connecting {
            self.try_request(idx);
        } else {
            self.flush_conn(idx);
        }
    }

    /// Writes the upgrade request of a connection still connecting. On loopback the TCP handshake usually
    /// completes inside `connect`, so this is tried at once: a write that succeeds proves the connection (no
    /// `getsockopt`/`getpeername` and no wait for the writable event); one that would block waits for that
    /// event; any other error is the connect failure itself (refused, unreachable).
    fn try_request(&mut self, idx: usize) {
        let conn = &mut self.conns[idx];
        if conn.tls.is_some() {
            return self.flush_tls(idx);
        }
        let Some(stream) = conn.stream.as_mut() else { return };
        loop {
            match stream.write(&conn.out[conn.out_pos..]) {
                Ok(n) => {
                    self.sink.counters.writes += 1;
                    conn.out_pos += n;
                    conn.phase = Phase::Handshaking;
                    return self.flush_conn(idx);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(idx, Some(ConnFailure::Connect(e.to_string()))),
            }
        }
    }

    fn flush_conn(&mut self, idx: usize) {
        let conn = &mut self.conns[idx];
        if conn.phase == Phase::Connecting || conn.phase == Phase::Closed {
            return;
        }
        if conn.tls.is_some() {
            return self.flush_tls(idx);
        }
        let Some(stream) = conn.stream.as_mut() else { return };
        while conn.out_pos < conn.out.len() {
            match stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => return self.close(idx, Some(ConnFailure::Eof)),
                Ok(n) => {
                    conn.out_pos += n;
                    self.sink.counters.writes += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(idx, Some(ConnFailure::Io(e.to_string()))),
            }
        }
        conn.settle_out();
    }

    /// Reads what connection `idx` has; `to_end`: until the socket says so (its FIN arrived), never stopping at
    /// a short read.
    fn on_readable(&mut self, idx: usize, to_end: bool) {
        loop {
            let conn = &mut self.conns[idx];
            if conn.phase == Phase::Connecting || conn.phase == Phase::Closed {
                return;
            }
            if conn.tls.is_some() {
                return self.on_readable_tls(idx);
            }
            let Some(stream) = conn.stream.as_mut() else { return };
            let keep = conn.pending.len();
            if self.scratch.len() < keep + READ_CHUNK {
                self.scratch.resize(keep + READ_CHUNK, 0);
            }
            self.scratch[..keep].copy_from_slice(&conn.pending);
            let space = self.scratch.len() - keep;
            let n = match stream.read(&mut self.scratch[keep..]) {
                Ok(0) => return self.close(idx, Some(ConnFailure::Eof)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(idx, Some(ConnFailure::Io(e.to_string()))),
            };
            self.sink.counters.reads += 1;
            self.sink.counters.bytes_in += n as u64;
            conn.pending.clear();
            let now = self.clock.elapsed().as_nanos() as u64;
            let outcome = process(idx, conn, &mut self.scratch[..keep + n], &mut self.sink, now, &mut self.rng);
            match outcome {
                Ok(()) => {}
                Err(why) => return self.close(idx, Some(why)),
            }
            if !conn.out.is_empty() {
                self.flush_conn(idx);
            }
            // A read that did not fill the buffer drained the socket: epoll reports new data as a new edge,
            // so the extra read that would only say WouldBlock is skipped.
            if n < space && !to_end {
                return;
            }
        }
    }
}
