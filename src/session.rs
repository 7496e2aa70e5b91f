//! One WebSocket connection's session, sans-IO: its phase (head, open, closing), the unfinished input, the
//! message decoder with the rate limit, the queued output, and the decisions the reactor applies — what a
//! run of input bytes yields, what end of stream means, what a write attempt leaves to judge, what a
//! deadline does. The reactor moves the bytes and owns the timers; everything here is driven by byte slices
//! and instants in the unit tests. The life cycle is drawn in docs/LIFECYCLE.md.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::app::CloseRequest;
use crate::outbox::{Flushed, Outbox, Reply};
use crate::shared_bytes::SharedBytes;
use crate::ws::frame::{close_code, close_payload, frame, OpCode};
use crate::ws::message::{Message, MessageDecoder, Role, WsError};

/// How long a closing connection may linger waiting for the peer to close.
pub const LINGER: Duration = Duration::from_secs(1);

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a complete request head.
    Handshake,
    /// WebSocket open: frames flow.
    Open,
    /// A last answer (close frame or HTTP response) is queued; after it is written the write side is shut
    /// and the connection lingers until the peer closes or the linger deadline passes.
    Closing,
}

/// A data message for the application, borrowed from the input or the decoder.
#[derive(Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// A text message, valid UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
    /// A text or binary message refused by the rate limit (not delivered).
    Refused,
}

/// A control frame's payload, copied out of the input (at most 125 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPayload {
    len: u8,
    bytes: [u8; 125],
}

impl ControlPayload {
    fn new(payload: &[u8]) -> ControlPayload {
        let mut bytes = [0u8; 125];
        let len = payload.len().min(125);
        bytes[..len].copy_from_slice(&payload[..len]);
        ControlPayload { len: len as u8, bytes }
    }

    /// The payload.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Why decoding stopped: the input is used up, or a frame the reactor must answer before going on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Everything decodable was decoded; an unfinished frame may remain.
    NeedMore,
    /// A ping: answer it with a pong (`None`: refused by the rate limit, no pong).
    Ping(Option<ControlPayload>),
    /// A pong (nothing to do).
    Pong,
    /// The peer's close frame with its code (1000 for an empty one): echo it and close.
    PeerClose(u16),
    /// A protocol violation: close with this code and reason.
    Violation {
        /// The close code.
        code: u16,
        /// What went wrong.
        reason: String,
    },
    /// The application asked to close.
    App(CloseRequest),
}

/// What end of stream from the peer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eof {
    /// Nothing is owed to the peer: drop the connection now.
    Remove,
    /// Output is still owed: write it, then drop the connection. `was_open`: the session just left Open
    /// (the user leaves, the linger deadline starts).
    FlushFirst {
        /// The session was open until now.
        was_open: bool,
    },
}

/// What a write attempt leaves to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterWrite {
    /// Nothing.
    Keep,
    /// Unsent output stays over the send-buffer limit: cut the client as a slow consumer.
    CutSlow,
    /// The last answer is written: shut the write side (then drop the connection if `remove`).
    ShutWrite {
        /// The peer already ended its side: drop the connection after the shutdown.
        remove: bool,
    },
    /// The peer closed first and everything owed is written: drop the connection.
    Remove,
}

/// What a connection's deadline means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Drop the connection (handshake not finished in time, or linger over).
    Remove,
    /// Silent for two ping intervals: close with 1001.
    CloseIdle,
    /// Silent for one interval: send a ping; the next deadline is `rearm`.
    Ping {
        /// The next deadline.
        rearm: Instant,
    },
    /// Nothing yet; the next deadline is this.
    Rearm(Instant),
}

/// A token bucket: `per_sec` tokens a second, holding at most one second's worth.
#[derive(Debug, Clone, Copy)]
pub struct RateBucket {
    tokens: f32,
    stamp: Instant,
}

impl RateBucket {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> RateBucket {
        RateBucket { tokens: f32::MAX, stamp: now }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, per_sec: u32, now: Instant) -> bool {
        let cap = per_sec.max(1) as f32;
        let elapsed = now.saturating_duration_since(self.stamp).as_secs_f32();
        self.stamp = now;
        self.tokens = (self.tokens.min(cap) + elapsed * per_sec as f32).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    /// Life-cycle phase.
    phase: Phase,
    /// Bytes received but not yet used: a partial request head, or the tail of a partial frame.
    inbuf: Vec<u8>,
    /// Queued output.
    outbox: Outbox,
    /// When the peer last sent anything.
    last_rx: Instant,
    /// The peer's FIN has been read: once the queued output is written, the connection is dropped.
    peer_eof: bool,
    /// The write side has been shut down (FIN sent).
    write_shut: bool,
    decoder: MessageDecoder,
    /// Data messages and pings allowed per second; 0 for no limit.
    rate_limit: u32,
    rate: RateBucket,
}

/// A close frame with `code` and as much of `reason` as fits a control frame (125 bytes minus the code).
pub fn close_frame(code: u16, reason: &str) -> SharedBytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    SharedBytes::from(frame(OpCode::Close, &close_payload(code, &reason[..end])))
}

impl Session {
    /// A session waiting for its request head.
    pub fn new(now: Instant, max_message_bytes: usize, rate_limit: u32) -> Session {
        Session {
            phase: Phase::Handshake,
            inbuf: Vec::new(),
            outbox: Outbox::default(),
            last_rx: now,
            peer_eof: false,
            write_shut: false,
            decoder: MessageDecoder::new(Role::Server, max_message_bytes),
            rate_limit,
            rate: RateBucket::new(now),
        }
    }

    /// Where the connection is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The WebSocket is open: frames flow both ways.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The peer sent something at `now`: it is not idle.
    pub fn heard_from(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// Bytes of the request head (or of a PROXY header before it) arrived.
    pub fn receive_head(&mut self, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
    }

    /// The request head received so far.
    pub fn head(&self) -> &[u8] {
        &self.inbuf
    }

    /// The first `len` bytes of the input are used (a PROXY header read before the request).
    pub fn consume_input(&mut self, len: usize) {
        self.inbuf.drain(..len.min(self.inbuf.len()));
    }

    /// Takes the input kept so far (empty when nothing is kept: then no copy is needed).
    pub fn take_input(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.inbuf)
    }

    /// The request head is answered: its bytes and their memory are given back.
    pub fn end_head(&mut self) {
        self.inbuf = Vec::new();
    }

    /// The handshake succeeded: queue the 101 and open. Returns what followed the head of `head_len` bytes
    /// (frames sent in the same segment as the request).
    pub fn open(&mut self, switching_protocols: SharedBytes, head_len: usize) -> Vec<u8> {
        self.outbox.push(switching_protocols);
        self.phase = Phase::Open;
        let rest = self.inbuf.split_off(head_len.min(self.inbuf.len()));
        self.inbuf = Vec::new();
        rest
    }

    /// Queues frames for the peer; a newcomer's `welcome` is not held against the send-buffer limit.
    pub fn queue(&mut self, frames: SharedBytes, welcome: bool) {
        if welcome {
            self.outbox.push_welcome(frames);
        } else {
            self.outbox.push(frames);
        }
    }

    /// Queues the pong for a ping's `payload` (a newer one replaces the latest while too many wait).
    pub fn queue_pong(&mut self, payload: &[u8]) {
        self.outbox.push_pong(payload);
    }

    /// Drops the output not started yet (before a last close frame to a client that is cut).
    pub fn discard_unstarted(&mut self) -> usize {
        self.outbox.discard_unstarted()
    }

    /// Writes the queued output as far as `w` takes it.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<Flushed> {
        self.outbox.flush(w)
    }

    /// Output is still owed to the peer (in memory or in a file body).
    pub fn owes_output(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Unsent bytes in memory.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.queued_bytes()
    }

    /// Unsent bytes held against the send-buffer limit (the welcome's excepted).
    pub fn held_bytes(&self) -> usize {
        self.outbox.held_bytes()
    }

    /// While a last answer is being written, the bytes written so far (does the peer keep taking them?).
    pub fn writing_last_answer(&self) -> Option<u64> {
        (self.phase == Phase::Closing && !self.outbox.is_empty()).then(|| self.outbox.written_total())
    }

    /// Queues a last answer (a close frame or an HTTP response, maybe with a file body) and begins closing.
    pub fn finish(&mut self, last: impl Into<Reply>) {
        let Reply { head, body } = last.into();
        self.phase = Phase::Closing;
        self.outbox.push(head);
        if let Some(body) = body {
            self.outbox.push_body(body);
        }
    }

    /// Decodes frames from `buf`, handing each data message to `on_data` (which may ask to close), until the
    /// input is used up or a frame needs the reactor. Returns the bytes used and why it stopped; the caller
    /// keeps the unused rest (see [`Session::keep_tail`]) or calls again after handling the stop.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        now: Instant,
        mut on_data: impl FnMut(Data<'_>) -> Result<(), CloseRequest>,
    ) -> (usize, Stop) {
        let mut pos = 0;
        while self.phase == Phase::Open {
            let step = match self.decoder.decode(&mut buf[pos..]) {
                Ok(step) => step,
                Err(e) => return (buf.len(), violation(e)),
            };
            pos += step.consumed;
            let Some(message) = step.message else {
                if step.consumed == 0 {
                    break;
                }
                continue;
            };
            let limited = self.rate_limit > 0
                && matches!(message, Message::Text(_) | Message::Binary(_) | Message::Ping(_))
                && !self.rate.try_take(self.rate_limit, now);
            let data = match message {
                Message::Text(_) | Message::Binary(_) if limited => Data::Refused,
                Message::Text(t) => Data::Text(t),
                Message::Binary(b) => Data::Binary(b),
                Message::Ping(p) => return (pos, Stop::Ping((!limited).then(|| ControlPayload::new(p)))),
                Message::Pong(_) => return (pos, Stop::Pong),
                Message::Close(c) => return (pos, Stop::PeerClose(c.map_or(close_code::NORMAL, |(c, _)| c))),
            };
            if let Err(req) = on_data(data) {
                return (buf.len(), Stop::App(req));
            }
        }
        if self.phase != Phase::Open {
            pos = buf.len();
        }
        (pos, Stop::NeedMore)
    }

    /// Keeps the undecoded rest of the input (an unfinished frame) for the next read, while open.
    pub fn keep_tail(&mut self, rest: &[u8]) {
        if self.phase == Phase::Open && !rest.is_empty() {
            self.inbuf.extend_from_slice(rest);
        }
    }

    /// Keeps `buf` (the input taken with [`Session::take_input`] and more) past its first `used` bytes for
    /// the next read, while open, reusing its memory.
    pub fn keep_unused(&mut self, mut buf: Vec<u8>, used: usize) {
        if self.phase == Phase::Open && used < buf.len() {
            buf.drain(..used);
            self.inbuf = buf;
        }
    }

    /// The peer sent its FIN (a half-close): what is owed to it is still written — what is queued, and
    /// what the transport still holds above the socket (`transport_holds`: TLS records not yet taken).
    pub fn on_eof(&mut self, transport_holds: bool) -> Eof {
        self.peer_eof = true;
        if (self.outbox.is_empty() && !transport_holds) || self.phase == Phase::Handshake {
            return Eof::Remove;
        }
        let was_open = self.phase == Phase::Open;
        self.phase = Phase::Closing;
        Eof::FlushFirst { was_open }
    }

    /// Judges the queue after a write attempt that `drained` it or not: the send-buffer limit applies to
    /// what stays unsent (the welcome excepted); a drained closing session shuts its write side.
    pub fn after_write(&mut self, drained: bool, send_buffer_limit: usize) -> AfterWrite {
        if self.phase == Phase::Open && self.outbox.held_bytes() > send_buffer_limit {
            return AfterWrite::CutSlow;
        }
        if !drained || self.phase != Phase::Closing {
            return AfterWrite::Keep;
        }
        if !self.write_shut {
            self.write_shut = true;
            return AfterWrite::ShutWrite { remove: self.peer_eof };
        }
        if self.peer_eof {
            AfterWrite::Remove
        } else {
            AfterWrite::Keep
        }
    }

    /// What the connection's deadline means at `now`.
    pub fn on_deadline(&mut self, now: Instant, ping_interval: Duration) -> Deadline {
        if self.phase != Phase::Open {
            return Deadline::Remove;
        }
        self.release_idle_buffers();
        let silent = now.saturating_duration_since(self.last_rx);
        if silent >= ping_interval * 2 {
            Deadline::CloseIdle
        } else if silent >= ping_interval {
            Deadline::Ping { rearm: self.last_rx + ping_interval * 2 }
        } else {
            Deadline::Rearm(self.last_rx + ping_interval)
        }
    }

    /// Gives back buffers an idle connection does not need.
    fn release_idle_buffers(&mut self) {
        if self.inbuf.is_empty() {
            self.inbuf = Vec::new();
        }
        self.outbox.release_if_empty();
    }
}

fn violation(e: WsError) -> Stop {
    Stop::Violation { code: e.close_code(), reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{encode_header, MAX_HEADER_LEN};

    /// A final, masked client frame.
    fn masked(op: OpCode, payload: &[u8]) -> Vec<u8> {
        let key = [0x0f, 0xf0, 0x55, 0xaa];
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut head, true, op, Some(key), payload.len());
        let mut out = head[..n].to_vec();
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    fn open_session() -> Session {
        let mut s = Session::new(Instant::now(), 1 << 16, 0);
        s.open(SharedBytes::from(&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..]), 0);
        s
    }

    /// Decodes `bytes` to the end, collecting data messages and stops (NeedMore excluded).
    fn run(s: &mut Session, bytes: &[u8]) -> (Vec<String>, Vec<Stop>) {
        let mut buf = bytes.to_vec();
        let (mut texts, mut stops, mut pos) = (Vec::new(), Vec::new(), 0);
        loop {
            let (used, stop) = s.decode(&mut buf[pos..], Instant::now(), |d| {
                texts.push(match d {
                    Data::Text(t) => t.to_string(),
                    Data::Binary(b) => format!("{} bytes", b.len()),
                    Data::Refused => "refused".into(),
                });
                Ok(())
            });
            pos += used;
            match stop {
                Stop::NeedMore => break,
                s @ (Stop::Ping(_) | Stop::Pong) => stops.push(s),
                s => {
                    stops.push(s);
                    break;
                }
            }
        }
        s.keep_tail(&buf[pos..]);
        (texts, stops)
    }

    #[test]
    fn messages_and_control_frames_in_order_and_a_tail_kept() {
        let mut s = open_session();
        let mut bytes = masked(OpCode::Text, b"one");
        bytes.extend(masked(OpCode::Ping, b"p"));
        bytes.extend(masked(OpCode::Text, b"two"));
        let partial = masked(OpCode::Text, b"three");
        bytes.extend(&partial[..4]);
        let (texts, stops) = run(&mut s, &bytes);
        assert_eq!(texts, ["one", "two"]);
        assert_eq!(stops, [Stop::Ping(Some(ControlPayload::new(b"p")))]);
        assert_eq!(s.inbuf, partial[..4]);
        let mut rest = std::mem::take(&mut s.inbuf);
        rest.extend(&partial[4..]);
        assert_eq!(run(&mut s, &rest).0, ["three"]);
    }

    #[test]
    fn close_violation_and_application_requests_stop_decoding() {
        let mut s = open_session();
        let mut bytes = masked(OpCode::Close, &[0x03, 0xe9]);
        bytes.extend(masked(OpCode::Text, b"after"));
        let (texts, stops) = run(&mut s, &bytes);
        assert!(texts.is_empty());
        assert_eq!(stops, [Stop::PeerClose(1001)]);

        let mut s = open_session();
        let unmasked = [0x81, 0x01, b'x'];
        let (_, stops) = run(&mut s, &unmasked);
        assert!(matches!(stops[..], [Stop::Violation { code: close_code::PROTOCOL_ERROR, .. }]), "{stops:?}");

        let mut s = open_session();
        let mut buf = masked(OpCode::Binary, b"bin");
        let wish = CloseRequest { code: close_code::UNSUPPORTED_DATA, reason: "no binary".into() };
        let (used, stop) = s.decode(&mut buf, Instant::now(), |_| Err(wish.clone()));
        assert_eq!((used, stop), (buf.len(), Stop::App(wish)));
    }

    #[test]
    fn the_rate_limit_covers_messages_and_pings() {
        let mut s = Session::new(Instant::now(), 1 << 16, 2);
        s.open(SharedBytes::from(&b"101"[..]), 0);
        let mut bytes = Vec::new();
        for _ in 0..2 {
            bytes.extend(masked(OpCode::Text, b"t"));
        }
        bytes.extend(masked(OpCode::Ping, b""));
        bytes.extend(masked(OpCode::Text, b"t"));
        let (texts, stops) = run(&mut s, &bytes);
        assert_eq!(texts, ["t", "t", "refused"]);
        assert_eq!(stops, [Stop::Ping(None)]);
    }

    #[test]
    fn end_of_stream_flushes_what_is_owed() {
        let mut s = Session::new(Instant::now(), 1 << 16, 0);
        assert_eq!(s.on_eof(false), Eof::Remove, "a half-sent head is owed nothing");
        let mut s = open_session();
        assert_eq!(s.on_eof(false), Eof::FlushFirst { was_open: true });
        assert_eq!(s.phase, Phase::Closing);
        assert_eq!(s.after_write(true, 1024), AfterWrite::ShutWrite { remove: true });
        let mut s = open_session();
        let mut w: Vec<u8> = Vec::new();
        s.outbox.flush(&mut w).unwrap();
        let mut held = open_session();
        held.outbox.flush(&mut w).unwrap();
        assert_eq!(s.on_eof(false), Eof::Remove, "nothing owed");
        assert_eq!(held.on_eof(true), Eof::FlushFirst { was_open: true }, "the transport still holds bytes");
        assert_eq!(held.after_write(true, 1024), AfterWrite::ShutWrite { remove: true });
    }

    #[test]
    fn the_limit_is_judged_on_what_stays_unsent() {
        let mut s = open_session();
        s.outbox.push(SharedBytes::from(vec![0u8; 2000]));
        assert_eq!(s.after_write(false, 1024), AfterWrite::CutSlow);
        let mut s = open_session();
        s.outbox.push_welcome(SharedBytes::from(vec![0u8; 2000]));
        assert_eq!(s.after_write(false, 1024), AfterWrite::Keep, "a welcome does not count");
        s.finish(close_frame(1000, ""));
        assert_eq!(s.after_write(true, 1024), AfterWrite::ShutWrite { remove: false });
        assert_eq!(s.after_write(true, 1024), AfterWrite::Keep);
        s.peer_eof = true;
        assert_eq!(s.after_write(true, 1024), AfterWrite::Remove);
    }

    #[test]
    fn deadlines_ping_then_close_an_idle_client() {
        let t0 = Instant::now();
        let ping = Duration::from_secs(25);
        let mut s = open_session();
        s.last_rx = t0;
        assert_eq!(s.on_deadline(t0 + Duration::from_secs(10), ping), Deadline::Rearm(t0 + ping));
        assert_eq!(s.on_deadline(t0 + ping, ping), Deadline::Ping { rearm: t0 + ping * 2 });
        assert_eq!(s.on_deadline(t0 + ping * 2, ping), Deadline::CloseIdle);
        let mut s = Session::new(t0, 1024, 0);
        assert_eq!(s.on_deadline(t0 + ping, ping), Deadline::Remove);
    }

    #[test]
    fn a_head_is_kept_until_answered_and_what_follows_it_opens_the_stream() {
        let mut s = Session::new(Instant::now(), 1 << 16, 0);
        s.receive_head(b"PROXY ..\r\nGET / HTTP/1.1\r\n\r\n\x81");
        s.consume_input(10);
        assert_eq!(s.head(), b"GET / HTTP/1.1\r\n\r\n\x81");
        let rest = s.open(SharedBytes::from(&b"101"[..]), 18);
        assert_eq!((&rest[..], s.head(), s.is_open(), s.queued_bytes()), (&b"\x81"[..], &b""[..], true, 3));
        s.keep_unused(b"abcdef".to_vec(), 4);
        assert_eq!(s.take_input(), b"ef");
        assert!(s.take_input().is_empty());
        s.finish(close_frame(1000, ""));
        assert_eq!(s.writing_last_answer(), Some(0));
        s.write_to(&mut Vec::new()).unwrap();
        assert_eq!(s.writing_last_answer(), None);
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        let f = close_frame(1008, &"é".repeat(100));
        assert!(f.len() <= 2 + 125);
        assert!(std::str::from_utf8(&f[4..]).is_ok());
    }

    #[test]
    fn bucket_allows_a_second_worth_then_refills() {
        let t0 = Instant::now();
        let mut b = RateBucket::new(t0);
        assert_eq!((0..15).filter(|_| b.try_take(10, t0)).count(), 10);
        assert!(!b.try_take(10, t0 + Duration::from_millis(50)));
        assert!(b.try_take(10, t0 + Duration::from_millis(200)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| b.try_take(10, later)).count(), 10);
    }
}
