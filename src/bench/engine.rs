//! The load client engine: many WebSocket client connections on one thread and one mio `Poll`. It connects,
//! does the client side of the handshake with `ws::handshake`, logs in (chat protocol), sends stamped
//! messages masked with `ws::frame`, and reads into one shared buffer until a read comes back short (the
//! socket is drained then; edge-triggered epoll reports new data as a new edge) or would block, decoding every
//! frame of a read with `ws::message` in place. A connection keeps only the few bytes of a frame header cut by a
//! read boundary, so idle connections stay small. Each delivery is classified, audited and timed without
//! allocating.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::audit::Audit;
use super::content::{self, ChatKind, Stamp};
use super::target::Target;
use crate::ws::frame::{write_masked_frame, FrameHeader, OpCode};
use crate::ws::handshake::{client_key, client_request, parse_response, ClientHandshakeError, MAX_HEAD_BYTES};
use crate::ws::message::{Message, MessageDecoder, Role, WsError};

/// Which protocol the target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// The workerman-chat JSON protocol: log in, `say` to all, receive `say` relays.
    Chat,
    /// A plain broadcast server: every text message goes to every client, sender included, verbatim.
    Raw,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Chat => "chat",
            Proto::Raw => "raw",
        })
    }
}

/// Where a client connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent, waiting for the 101.
    Handshaking,
    /// Login sent, waiting for the user list (chat protocol).
    LoggingIn,
    /// Ready to send and receive.
    Ready,
    /// Closed, by either side or on an error.
    Closed,
}

/// Why the engine could not go on.
#[derive(Debug)]
pub enum EngineError {
    /// Creating or polling the mio `Poll` failed.
    Poll(io::Error),
    /// Starting a TCP connection failed.
    Connect(io::Error),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Poll(e) => write!(f, "poll failed: {e}"),
            EngineError::Connect(e) => write!(f, "connect failed: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Why one connection was closed; counted, and the first of each kind kept for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnFailure {
    /// The TCP connection could not be established.
    Connect(String),
    /// The server refused or botched the upgrade.
    Handshake(ClientHandshakeError),
    /// The server's frames broke RFC 6455.
    Protocol(WsError),
    /// The server sent a close frame (code, if any).
    ClosedByServer(Option<u16>),
    /// The server closed the TCP connection.
    Eof,
    /// A read or write failed.
    Io(String),
}

impl fmt::Display for ConnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnFailure::Connect(e) => write!(f, "connect: {e}"),
            ConnFailure::Handshake(e) => write!(f, "handshake: {e}"),
            ConnFailure::Protocol(e) => write!(f, "protocol error from server: {e}"),
            ConnFailure::ClosedByServer(Some(code)) => write!(f, "closed by server with code {code}"),
            ConnFailure::ClosedByServer(None) => f.write_str("closed by server"),
            ConnFailure::Eof => f.write_str("connection closed by server without a close frame"),
            ConnFailure::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

/// Settings of an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The server to load.
    pub target: Target,
    /// Its protocol.
    pub proto: Proto,
    /// Bytes of content per message.
    pub payload: usize,
    /// Largest message accepted from the server.
    pub max_message_bytes: usize,
    /// Above this many unsent bytes a connection sends nothing more until it drains.
    pub max_unsent_bytes: usize,
}

/// Counters of everything the engine saw.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Bench messages received (every copy, duplicates included).
    pub deliveries: u64,
    /// Bench messages received while measuring.
    pub window_deliveries: u64,
    /// Chat `login` broadcasts received.
    pub logins_seen: u64,
    /// Chat `logout` broadcasts received.
    pub logouts_seen: u64,
    /// Chat `error` messages received.
    pub server_errors: u64,
    /// The first chat error received, verbatim.
    pub first_server_error: Option<String>,
    /// Text messages that are neither bench messages nor known chat messages.
    pub other_messages: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// The first connection failure.
    pub first_failure: Option<ConnFailure>,
    /// Messages not sent because the connection's unsent output was over the limit.
    pub send_stalls: u64,
    /// Bytes read from the server.
    pub bytes_in: u64,
    /// Successful read calls.
    pub reads: u64,
    /// Successful write calls.
    pub writes: u64,
}

/// One client connection.
#[derive(Debug)]
struct Conn {
    stream: Option<TcpStream>,
    phase: Phase,
    /// The handshake key, while handshaking.
    key: Option<Box<str>>,
    /// The login request to send after the handshake (chat protocol).
    login: Option<Box<[u8]>>,
    /// Unconsumed input: a handshake head or a frame header cut by a read boundary.
    pending: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    dirty: bool,
    decoder: MessageDecoder,
    /// Payload bytes of a user list still to come, passed over unread: the bench needs only its start, and
    /// filling a big room sends every newcomer a list of everyone (10 000 users: 300 KB).
    skip: u64,
}

/// Everything the read path updates, apart from the connections and the read buffer.
#[derive(Debug)]
struct Sink {
    proto: Proto,
    counters: Counters,
    hist: Histogram<u64>,
    audit: Audit,
    measuring: bool,
    /// Latency is recorded for messages sent at or after this time (nanoseconds since the clock base).
    record_from: u64,
    ready: usize,
}

/// Smallest read the shared buffer always has room for.
const READ_CHUNK: usize = 64 * 1024;

/// Longest latency the histogram holds, in nanoseconds (longer ones are clamped).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

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
        Ok(Engine {
            scratch: vec![0; READ_CHUNK + config.max_message_bytes.min(1 << 20)],
            sink: Sink::new(config.proto),
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

    /// Starts a connection; with the chat protocol it logs in as `name` (in `room` when given) after the
    /// handshake. Returns its index, which is also its receiver index in the audit.
    pub fn open(&mut self, name: &str, room: Option<&str>) -> Result<usize, EngineError> {
        let idx = self.conns.len();
        let mut stream = TcpStream::connect(self.config.target.addr).map_err(EngineError::Connect)?;
        self.poll
            .registry()
            .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
            .map_err(EngineError::Connect)?;
        let _ = stream.set_nodelay(true);
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        let key = client_key(nonce);
        let out = client_request(&self.config.target.host, &self.config.target.path, &key);
        let login = match self.config.proto {
            Proto::Chat => Some(content::login_request(name, room).into_boxed_slice()),
            Proto::Raw => None,
        };
        self.conns.push(Conn {
            stream: Some(stream),
            phase: Phase::Connecting,
            key: Some(key.into_boxed_str()),
            login,
            pending: Vec::new(),
            out,
            out_pos: 0,
            dirty: false,
            decoder: MessageDecoder::new(Role::Client, self.config.max_message_bytes),
            skip: 0,
        });
        self.try_request(idx);
        Ok(idx)
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

    /// The phase of connection `idx`.
    pub fn phase(&self, idx: usize) -> Option<Phase> {
        self.conns.get(idx).map(|c| c.phase)
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
        let Some(seq) = self.seq.get(sender).copied() else { return false };
        let Some(conn) = self.conns.get(sender) else { return false };
        if conn.phase != Phase::Ready {
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
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = self.poll.poll(&mut events, timeout);
        if let Err(e) = polled {
            self.events = events;
            return if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(EngineError::Poll(e)) };
        }
        for event in events.iter() {
            let idx = event.token().0;
            if idx >= self.conns.len() {
                continue;
            }
            if event.is_writable() || event.is_write_closed() || event.is_error() {
                self.on_writable(idx);
            }
            if event.is_readable() || event.is_read_closed() {
                self.on_readable(idx);
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
    }

    fn close(&mut self, idx: usize, why: Option<ConnFailure>) {
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
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        } else if conn.out_pos > (1 << 16) && conn.out_pos * 2 > conn.out.len() {
            conn.out.drain(..conn.out_pos);
            conn.out_pos = 0;
        }
    }

    fn on_readable(&mut self, idx: usize) {
        loop {
            let conn = &mut self.conns[idx];
            if conn.phase == Phase::Connecting || conn.phase == Phase::Closed {
                return;
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
            if n < space {
                return;
            }
        }
    }
}

/// xorshift64*: the one generator of the engine, for masking keys and handshake nonces, which need variety,
/// not secrecy.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn close_conn(poll: &Poll, conn: &mut Conn, sink: &mut Sink, why: Option<ConnFailure>) {
    if conn.phase == Phase::Closed {
        return;
    }
    if conn.phase == Phase::Ready {
        sink.ready -= 1;
    }
    conn.phase = Phase::Closed;
    if let Some(mut stream) = conn.stream.take() {
        let _ = poll.registry().deregister(&mut stream);
    }
    conn.out = Vec::new();
    conn.pending = Vec::new();
    sink.counters.closed += 1;
    if sink.counters.first_failure.is_none() {
        sink.counters.first_failure = why;
    }
}

/// Handles the bytes of one read for connection `idx`: the handshake response, then every whole frame; keeps
/// what is left over in `conn.pending`.
fn process(
    idx: usize,
    conn: &mut Conn,
    buf: &mut [u8],
    sink: &mut Sink,
    now: u64,
    rng: &mut Rng,
) -> Result<(), ConnFailure> {
    let mut pos = 0;
    if conn.phase == Phase::Handshaking {
        let key = conn.key.as_deref().unwrap_or("");
        match parse_response(buf, key) {
            Ok(None) => {
                if buf.len() > MAX_HEAD_BYTES {
                    return Err(ConnFailure::Handshake(ClientHandshakeError::Malformed));
                }
                conn.pending.extend_from_slice(buf);
                return Ok(());
            }
            Ok(Some(head)) => {
                pos = head;
                conn.key = None;
                match conn.login.take() {
                    Some(login) => {
                        let key = rng.next_u64() as u32;
                        write_masked_frame(&mut conn.out, OpCode::Text, &login, key.to_le_bytes());
                        conn.phase = Phase::LoggingIn;
                    }
                    None => {
                        conn.phase = Phase::Ready;
                        sink.ready += 1;
                    }
                }
            }
            Err(e) => return Err(ConnFailure::Handshake(e)),
        }
    }
    loop {
        if conn.skip > 0 {
            let n = conn.skip.min((buf.len() - pos) as u64);
            conn.skip -= n;
            pos += n as usize;
            if conn.skip > 0 {
                break;
            }
        }
        // Fast path for what nearly every read holds: whole, final, unmasked, unextended text frames between
        // messages. The bench trusts the server's UTF-8 here (the conformance tests check the daemon's) and
        // reads the stamp from the bytes; everything else goes through the full message decoder.
        if !conn.decoder.is_mid_message() {
            if let Ok(Some(h)) = FrameHeader::decode(&buf[pos..]) {
                let end = h.header_len as u64 + h.payload_len;
                let plain_text = h.fin && h.rsv == 0 && h.mask.is_none() && h.op() == Some(OpCode::Text);
                if plain_text && end <= (buf.len() - pos) as u64 {
                    let end = pos + end as usize;
                    sink.on_text(idx, &mut conn.phase, &buf[pos + h.header_len..end], now);
                    pos = end;
                    continue;
                }
                // A user list cut by the read: its start says what it is; the rest is passed over as it comes
                // instead of being assembled (and validated) only to be dropped.
                let start = &buf[pos + h.header_len..];
                if plain_text && sink.proto == Proto::Chat && start.starts_with(content::USER_LIST_PREFIX) {
                    sink.on_text(idx, &mut conn.phase, start, now);
                    conn.skip = h.payload_len - start.len() as u64;
                    pos = buf.len();
                    continue;
                }
            }
        }
        let decoded = conn.decoder.decode(&mut buf[pos..]).map_err(ConnFailure::Protocol)?;
        if decoded.consumed == 0 && decoded.message.is_none() {
            break;
        }
        pos += decoded.consumed;
        match decoded.message {
            None => {}
            Some(Message::Text(text)) => sink.on_text(idx, &mut conn.phase, text.as_bytes(), now),
            Some(Message::Binary(_)) | Some(Message::Pong(_)) => sink.counters.other_messages += 1,
            Some(Message::Ping(payload)) => {
                write_masked_frame(&mut conn.out, OpCode::Pong, payload, (now as u32).to_le_bytes());
            }
            Some(Message::Close(code)) => {
                let code = code.map(|(c, _)| c);
                write_masked_frame(&mut conn.out, OpCode::Close, &code.unwrap_or(1000).to_be_bytes(), [1, 2, 3, 4]);
                if let Some(stream) = conn.stream.as_mut() {
                    let _ = stream.write(&conn.out[conn.out_pos..]);
                }
                return Err(ConnFailure::ClosedByServer(code));
            }
        }
    }
    conn.pending.extend_from_slice(&buf[pos..]);
    Ok(())
}

impl Sink {
    fn new(proto: Proto) -> Sink {
        Sink {
            proto,
            counters: Counters::default(),
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid"),
            audit: Audit::new(0, 0),
            measuring: false,
            record_from: u64::MAX,
            ready: 0,
        }
    }

    #[inline]
    fn on_text(&mut self, receiver: usize, phase: &mut Phase, text: &[u8], now: u64) {
        match self.proto {
            Proto::Raw => self.on_content(receiver, text, now),
            Proto::Chat => match content::chat_kind(text) {
                ChatKind::Say => match content::say_stamp(text) {
                    Some(stamp) => self.on_stamp(receiver, stamp, now),
                    None => self.counters.other_messages += 1,
                },
                ChatKind::UserList => {
                    if *phase == Phase::LoggingIn {
                        *phase = Phase::Ready;
                        self.ready += 1;
                    }
                }
                ChatKind::Login => self.counters.logins_seen += 1,
                ChatKind::Logout => self.counters.logouts_seen += 1,
                ChatKind::Error => {
                    self.counters.server_errors += 1;
                    if self.counters.first_server_error.is_none() {
                        self.counters.first_server_error = Some(String::from_utf8_lossy(text).into_owned());
                    }
                }
                ChatKind::Other => self.counters.other_messages += 1,
            },
        }
    }

    #[inline]
    fn on_content(&mut self, receiver: usize, content: &[u8], now: u64) {
        match content::parse(content) {
            Some(stamp) => self.on_stamp(receiver, stamp, now),
            None => self.counters.other_messages += 1,
        }
    }

    #[inline]
    fn on_stamp(&mut self, receiver: usize, stamp: Stamp, now: u64) {
        self.counters.deliveries += 1;
        if self.measuring {
            self.counters.window_deliveries += 1;
        }
        self.audit.record(receiver, stamp.sender as usize, stamp.seq);
        if stamp.nanos >= self.record_from {
            self.hist.saturating_record(now.saturating_sub(stamp.nanos).max(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::write_frame;
    use crate::ws::handshake::switching_protocols;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A connection in the handshaking phase, without a socket: `process` is driven with byte slices.
    fn conn(proto: Proto) -> Conn {
        Conn {
            stream: None,
            phase: Phase::Handshaking,
            key: Some(KEY.into()),
            login: (proto == Proto::Chat).then(|| content::login_request("b0", None).into_boxed_slice()),
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            dirty: false,
            decoder: MessageDecoder::new(Role::Client, 1 << 16),
            skip: 0,
        }
    }

    fn sink(proto: Proto, senders: usize) -> Sink {
        let mut sink = Sink::new(proto);
        sink.audit = Audit::new(1, senders);
        sink.record_from = 0;
        sink
    }

    fn stamped(sender: u32, seq: u32, nanos: u64) -> Vec<u8> {
        let mut c = Vec::new();
        content::encode(&mut c, Stamp { sender, seq, nanos }, 64);
        c
    }

    fn relay(content: &[u8]) -> Vec<u8> {
        let mut json = br#"{"type":"say","from_uid":1,"to_uid":"all","content":""#.to_vec();
        json.extend_from_slice(content);
        json.extend_from_slice(br#"","time":"2024-01-01 00:00:00"}"#);
        json
    }

    fn feed(c: &mut Conn, s: &mut Sink, bytes: &[u8], now: u64) -> Result<(), ConnFailure> {
        let mut rng = Rng::new(7);
        let mut buf = std::mem::take(&mut c.pending);
        buf.extend_from_slice(bytes);
        process(0, c, &mut buf, s, now, &mut rng)
    }

    /// Unmasks the client frames in `out` and returns their opcodes and payloads.
    fn sent_frames(out: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        let mut dec = MessageDecoder::new(Role::Server, 1 << 16);
        let mut buf = out.to_vec();
        let mut pos = 0;
        let mut frames = Vec::new();
        loop {
            let d = dec.decode(&mut buf[pos..]).unwrap();
            if d.consumed == 0 && d.message.is_none() {
                return frames;
            }
            pos += d.consumed;
            match d.message {
                Some(Message::Text(t)) => frames.push((OpCode::Text, t.as_bytes().to_vec())),
                Some(Message::Pong(p)) => frames.push((OpCode::Pong, p.to_vec())),
                Some(Message::Close(c)) => {
                    frames.push((OpCode::Close, c.map(|(code, _)| code.to_be_bytes().to_vec()).unwrap_or_default()))
                }
                _ => {}
            }
        }
    }

    #[test]
    fn raw_handshake_and_frames_in_one_read() {
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 2));
        let mut bytes = switching_protocols(KEY);
        write_frame(&mut bytes, OpCode::Text, &stamped(0, 0, 100));
        write_frame(&mut bytes, OpCode::Text, &stamped(1, 0, 100));
        write_frame(&mut bytes, OpCode::Text, b"not a bench message");
        feed(&mut c, &mut s, &bytes, 1100).unwrap();
        assert_eq!((c.phase, s.ready), (Phase::Ready, 1));
        assert_eq!(s.counters.deliveries, 2);
        assert_eq!(s.counters.other_messages, 1);
        assert_eq!(s.audit.totals().unique, 2);
        assert_eq!(s.hist.len(), 2);
        assert!(s.hist.equivalent(s.hist.max(), 1000), "latency 1100 - 100 ns");
        assert!(c.pending.is_empty() && c.key.is_none());
    }

    #[test]
    fn handshake_head_and_frames_cut_anywhere() {
        let mut bytes = switching_protocols(KEY);
        for seq in 0..5 {
            write_frame(&mut bytes, OpCode::Text, &stamped(0, seq, 1));
        }
        for cut in 1..bytes.len() {
            let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
            feed(&mut c, &mut s, &bytes[..cut], 5).unwrap();
            feed(&mut c, &mut s, &bytes[cut..], 5).unwrap();
            assert_eq!((c.phase, s.counters.deliveries, s.audit.totals().unique), (Phase::Ready, 5, 5), "cut {cut}");
            assert!(c.pending.is_empty(), "cut {cut}");
        }
    }

    #[test]
    fn chat_login_then_user_list_then_relays() {
        let (mut c, mut s) = (conn(Proto::Chat), sink(Proto::Chat, 1));
        feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
        assert_eq!(c.phase, Phase::LoggingIn);
        assert_eq!(sent_frames(&c.out), vec![(OpCode::Text, br#"{"type":"login","name":"b0"}"#.to_vec())]);
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"user_list","user_list":[{"uid":1,"name":"b0"}]}"#);
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"login","uid":1,"name":"b0","time":"t"}"#);
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 0, 10)));
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 1, 10)));
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 1, 10)));
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"error","code":"bad_json","message":"m"}"#);
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"logout","uid":2,"name":"x","time":"t"}"#);
        feed(&mut c, &mut s, &bytes, 20).unwrap();
        assert_eq!((c.phase, s.ready), (Phase::Ready, 1));
        assert_eq!(s.counters.logins_seen, 1);
        assert_eq!(s.counters.logouts_seen, 1);
        assert_eq!(s.counters.deliveries, 3);
        assert_eq!(s.audit.totals().duplicated, 1);
        assert_eq!(s.counters.server_errors, 1);
        assert!(s.counters.first_server_error.as_deref().unwrap().contains("bad_json"));
    }

    #[test]
    fn a_big_user_list_is_passed_over_wherever_reads_cut_it() {
        let mut list = br#"{"type":"user_list","user_list":["#.to_vec();
        for uid in 1..=8000 {
            list.extend_from_slice(format!(r#"{{"uid":{uid},"name":"b{uid}"}},"#).as_bytes());
        }
        list.pop();
        list.extend_from_slice(b"]}");
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Text, &list);
        write_frame(&mut bytes, OpCode::Text, br#"{"type":"login","uid":8000,"name":"b0","time":"t"}"#);
        write_frame(&mut bytes, OpCode::Text, &relay(&stamped(0, 0, 10)));
        for cut in [1, 2, 5, 20, 40, 1000, 65536, bytes.len() - 100, bytes.len() - 1] {
            let (mut c, mut s) = (conn(Proto::Chat), sink(Proto::Chat, 1));
            // As the engine has it: a cut before the list's first bytes leaves it to the decoder.
            c.decoder = MessageDecoder::new(Role::Client, 1 << 20);
            feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
            for piece in [&bytes[..cut], &bytes[cut..]] {
                for chunk in piece.chunks(64 * 1024) {
                    feed(&mut c, &mut s, chunk, 20).unwrap();
                }
            }
            assert_eq!(
                (c.phase, s.ready, s.counters.logins_seen, s.counters.deliveries),
                (Phase::Ready, 1, 1, 1),
                "{cut}"
            );
            assert!(c.pending.is_empty() && c.skip == 0 && !c.decoder.is_mid_message(), "{cut}");
        }
    }

    #[test]
    fn ping_is_answered_and_close_ends_the_connection() {
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        feed(&mut c, &mut s, &switching_protocols(KEY), 0).unwrap();
        let mut bytes = Vec::new();
        write_frame(&mut bytes, OpCode::Ping, b"hb");
        feed(&mut c, &mut s, &bytes, 0).unwrap();
        assert_eq!(sent_frames(&c.out), vec![(OpCode::Pong, b"hb".to_vec())]);
        c.out.clear();
        let close = crate::ws::frame::frame(OpCode::Close, &crate::ws::frame::close_payload(1001, "bye"));
        assert_eq!(feed(&mut c, &mut s, &close, 0), Err(ConnFailure::ClosedByServer(Some(1001))));
        assert_eq!(sent_frames(&c.out), vec![(OpCode::Close, 1001u16.to_be_bytes().to_vec())]);
    }

    #[test]
    fn bad_servers_are_connection_failures() {
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let wrong = switching_protocols("AAAAAAAAAAAAAAAAAAAAAA==");
        assert_eq!(feed(&mut c, &mut s, &wrong, 0), Err(ConnFailure::Handshake(ClientHandshakeError::BadAccept)));
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let mut bytes = switching_protocols(KEY);
        write_masked_frame(&mut bytes, OpCode::Text, b"hi", [1, 2, 3, 4]);
        assert_eq!(feed(&mut c, &mut s, &bytes, 0), Err(ConnFailure::Protocol(WsError::MaskedFrame)));
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let endless = vec![b'x'; MAX_HEAD_BYTES + 1];
        assert!(matches!(feed(&mut c, &mut s, &endless, 0), Err(ConnFailure::Handshake(_))));
        let (mut c, mut s) = (conn(Proto::Raw), sink(Proto::Raw, 1));
        let mut bytes = switching_protocols(KEY);
        bytes.extend_from_slice(&[0x81, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(feed(&mut c, &mut s, &bytes, 0), Err(ConnFailure::Protocol(WsError::LengthOverflow)));
    }
}
