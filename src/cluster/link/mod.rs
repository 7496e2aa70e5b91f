//! The Redis link: RESP2 commands and replies over one non-blocking connection, driven sans-IO.
//!
//! - [`RedisUrl`] parses `redis://[user:password@]HOST:PORT[/DB]`.
//! - [`Link`] is one connection's protocol state: commands are queued with a caller's [`Tag`] and encoded
//!   into one output buffer (everything queued in a loop turn leaves in one write); the bytes read from the
//!   socket go in through [`Link::feed`] and come out as [`Event`]s — each reply matched, in order, to the tag
//!   of the command that asked for it, and pub/sub pushes as their own events. A Redis error (`-ERR …`) is a
//!   [`Value::Error`], never a panic; input that is not RESP fails the link with a reason.
//! - The reactor moves the bytes between a socket of its loop and a link (`reactor/links.rs`, for
//!   [`crate::cluster::node::Node`]'s links).
//!
//! RESP is encoded and decoded by the `redis-protocol` crate (RESP2, no async runtime).

use std::collections::VecDeque;

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

mod scan;
mod sentinel_url;
mod url;

pub use scan::{Limits, ReplyError, MAX_DEPTH, MAX_ELEMENTS, MAX_REPLY_BYTES};
pub use sentinel_url::{ClusterUrl, SentinelUrl, DEFAULT_SENTINEL_PORT};
pub use url::{RedisUrl, UrlError, DEFAULT_PORT};

use scan::Scanner;

/// The caller's mark on a command, handed back with its reply.
pub type Tag = u64;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK` and other simple strings.
    Simple(String),
    /// `-ERR …`: an error reply from Redis, as a value.
    Error(String),
    /// `:42`
    Int(i64),
    /// A bulk string.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// An array.
    Array(Vec<Value>),
}

impl Value {
    fn from_frame(frame: OwnedFrame) -> Value {
        match frame {
            OwnedFrame::SimpleString(s) => Value::Simple(String::from_utf8_lossy(&s).into_owned()),
            OwnedFrame::Error(e) => Value::Error(e),
            OwnedFrame::Integer(i) => Value::Int(i),
            OwnedFrame::BulkString(b) => Value::Bulk(b),
            OwnedFrame::Array(a) => Value::Array(a.into_iter().map(Value::from_frame).collect()),
            OwnedFrame::Null => Value::Nil,
        }
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// What the input yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The reply to the command queued with `tag`. A (P)SUBSCRIBE or (P)UNSUBSCRIBE of N channels is answered N
    /// times, each confirmation with the command's tag.
    Reply {
        /// The command's tag.
        tag: Tag,
        /// Its reply, an error reply included.
        value: Value,
    },
    /// A message published on a subscribed channel.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// The message.
        payload: Vec<u8>,
    },
    /// A message published on a channel matching a subscribed pattern.
    PMessage {
        /// The pattern subscribed to.
        pattern: Vec<u8>,
        /// The channel it was published on.
        channel: Vec<u8>,
        /// The message.
        payload: Vec<u8>,
    },
}

/// Where the link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// AUTH or SELECT is not answered yet (commands may be queued behind them already).
    Setup,
    /// Logged in and on its database.
    Ready,
    /// Unusable: garbage from the server, a refused AUTH or SELECT, an unexpected reply, or the connection
    /// closed. The connection must be dropped; a new one starts with a new [`Link`].
    Failed(String),
}

/// Who waits for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// The link's own AUTH or SELECT.
    Setup(&'static str),
    /// A caller's command, answered `count` more times.
    User { tag: Tag, count: usize },
}

/// One Redis connection's protocol state, sans-IO. Made when its connection starts; it queues AUTH (when the
/// URL has a password) and SELECT (when the database is not 0) before anything else.
#[derive(Debug)]
pub struct Link {
    state: State,
    out: Vec<u8>,
    input: Vec<u8>,
    waiting: VecDeque<Waiter>,
    events: VecDeque<Event>,
    /// Channels and patterns subscribed to, as the last confirmation counted them.
    subscriptions: i64,
    /// Where the replies in `input` end, and whether they stay within the link's limits (boxed: a link is
    /// held in a connection slot's enum beside variants of a few bytes).
    scan: Box<Scanner>,
    /// The link failed on bytes that are not what Redis sends (see [`Link::sent_garbage`]).
    garbage: bool,
}

impl Link {
    /// A link for a connection to `url`'s server, with its AUTH and SELECT queued, within the default
    /// [`Limits`].
    pub fn new(url: &RedisUrl) -> Link {
        Link::with_limits(url, Limits::default())
    }

    /// [`Link::new`] with other limits on what the server may send.
    pub fn with_limits(url: &RedisUrl, limits: Limits) -> Link {
        let mut link = Link {
            state: State::Ready,
            out: Vec::new(),
            input: Vec::new(),
            waiting: VecDeque::new(),
            events: VecDeque::new(),
            subscriptions: 0,
            scan: Box::new(Scanner::new(limits)),
            garbage: false,
        };
        if let Some(password) = &url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            link.encode(&args);
            link.waiting.push_back(Waiter::Setup("AUTH"));
        }
        if url.db != 0 {
            let db = url.db.to_string();
            link.encode(&[b"SELECT", db.as_bytes()]);
            link.waiting.push_back(Waiter::Setup("SELECT"));
        }
        if !link.waiting.is_empty() {
            link.state = State::Setup;
        }
        link
    }

    fn encode(&mut self, args: &[&[u8]]) {
        let parts: Vec<BorrowedFrame<'_>> = args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
        let frame = BorrowedFrame::Array(&parts);
        let start = self.out.len();
        self.out.resize(start + frame.encode_len(false), 0);
        let n = encode_borrowed(&mut self.out[start..], &frame, false).expect("the buffer was sized by encode_len");
        self.out.truncate(start + n);
    }

    /// Queues a command (`args[0]` is its name) answered by one reply, delivered with `tag`. Nothing is queued
    /// on a failed link. For (P)SUBSCRIBE and (P)UNSUBSCRIBE use [`Link::subscribe`] and friends.
    pub fn command(&mut self, tag: Tag, args: &[&[u8]]) {
        self.queue(tag, args, 1);
    }

    fn queue(&mut self, tag: Tag, args: &[&[u8]], count: usize) {
        if matches!(self.state, State::Failed(_)) || args.is_empty() || count == 0 {
            return;
        }
        self.encode(args);
        self.waiting.push_back(Waiter::User { tag, count });
    }

    fn queue_channels(&mut self, tag: Tag, name: &[u8], channels: &[&[u8]]) {
        let mut args = Vec::with_capacity(channels.len() + 1);
        args.push(name);
        args.extend_from_slice(channels);
        self.queue(tag, &args, channels.len());
    }

    /// Queues SUBSCRIBE of `channels` (none: nothing is queued); one confirmation per channel comes back
    /// with `tag`. From the first confirmation on, the connection takes only pub/sub commands.
    pub fn subscribe(&mut self, tag: Tag, channels: &[&[u8]]) {
        self.queue_channels(tag, b"SUBSCRIBE", channels);
    }

    /// Queues PSUBSCRIBE of `patterns`, as [`Link::subscribe`].
    pub fn psubscribe(&mut self, tag: Tag, patterns: &[&[u8]]) {
        self.queue_channels(tag, b"PSUBSCRIBE", patterns);
    }

    /// Queues UNSUBSCRIBE of `channels` (named: unsubscribing from all, whose answer count the link could not
    /// know, is not offered).
    #[cfg(test)]
    pub fn unsubscribe(&mut self, tag: Tag, channels: &[&[u8]]) {
        self.queue_channels(tag, b"UNSUBSCRIBE", channels);
    }

    /// Queues PUNSUBSCRIBE of `patterns`, as [`Link::unsubscribe`].
    #[cfg(test)]
    pub fn punsubscribe(&mut self, tag: Tag, patterns: &[&[u8]]) {
        self.queue_channels(tag, b"PUNSUBSCRIBE", patterns);
    }

    /// The encoded commands not written yet: write them all in one go.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Drops the first `n` bytes of [`Link::pending_output`], written to the socket.
    pub fn consumed_output(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// The link's state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether the link has failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Whether the link failed because of what the server sent: bytes that are not RESP2, a reply beyond
    /// the link's [`Limits`], or a reply nobody asked for (a protocol error, where a refused AUTH or a closed
    /// connection is not).
    pub fn sent_garbage(&self) -> bool {
        self.garbage
    }

    /// How many replies are still awaited.
    pub fn awaiting(&self) -> usize {
        self.waiting.iter().map(|w| if let Waiter::User { count, .. } = w { *count } else { 1 }).sum()
    }

    /// Whether the connection is in subscribed mode (as the last (un)subscribe confirmation said).
    pub fn is_subscribed(&self) -> bool {
        self.subscriptions > 0
    }

    /// The tags of the commands not answered (fully) yet, oldest first: for a caller that resends them on a
    /// new connection after this one failed.
    pub fn unanswered(&self) -> Vec<Tag> {
        self.waiting.iter().filter_map(|w| if let Waiter::User { tag, .. } = w { Some(*tag) } else { None }).collect()
    }

    fn refuse(&mut self, reason: String) {
        if !self.is_failed() {
            self.garbage = true;
        }
        self.fail(reason);
    }

    fn fail(&mut self, reason: String) {
        if !self.is_failed() {
            self.state = State::Failed(reason);
            self.out.clear();
            self.input.clear();
        }
    }

    /// The server closed the connection: the link fails (what was unanswered stays in [`Link::unanswered`]).
    pub fn closed(&mut self) {
        self.fail("the connection was closed by the server".to_string());
    }

    /// Takes bytes read from the socket: every complete reply becomes an [`Event`] (see [`Link::next_event`]).
    /// Input that is not RESP, a reply beyond the link's [`Limits`] (refused as soon as its headers show it,
    /// before anything of it is decoded), or a reply nobody asked for fails the link.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.is_failed() {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let end = match self.scan.next(&self.input) {
                Ok(Some(end)) => end,
                Ok(None) => break,
                Err(e) => return self.refuse(format!("bad RESP from the server: {e}")),
            };
            let frame = match decode(&self.input[at..end]) {
                Ok(Some((frame, n))) if n == end - at => frame,
                Ok(_) => return self.refuse("bad RESP from the server: a reply of unclear length".to_string()),
                Err(e) => return self.refuse(format!("bad RESP from the server: {e:?}")),
            };
            at = end;
            if let Err(reason) = self.on_frame(Value::from_frame(frame)) {
                return self.fail(reason);
            }
        }
        self.input.drain(..at);
        self.scan.consumed(at);
    }

    /// The next reply or push, in the order they came.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn on_frame(&mut self, value: Value) -> Result<(), String> {
        if self.subscriptions > 0 {
            if let Some(push) = as_push(&value) {
                self.events.push_back(push);
                return Ok(());
            }
        }
        match self.waiting.front_mut() {
            None => {
                self.garbage = true;
                Err(format!("a reply nobody asked for: {value:?}"))
            }
            Some(Waiter::Setup(what)) => {
                let what = *what;
                self.waiting.pop_front();
                if let Value::Error(e) = value {
                    return Err(format!("{what} refused: {e}"));
                }
                if !self.waiting.iter().any(|w| matches!(w, Waiter::Setup(_))) {
                    self.state = State::Ready;
                }
                Ok(())
            }
            Some(Waiter::User { tag, count }) => {
                let tag = *tag;
                *count -= 1;
                if *count == 0 {
                    self.waiting.pop_front();
                }
                if let Value::Array(items) = &value {
                    if let [Value::Bulk(kind), _, Value::Int(n)] = items.as_slice() {
                        if matches!(&kind[..], b"subscribe" | b"psubscribe" | b"unsubscribe" | b"punsubscribe") {
                            self.subscriptions = *n;
                        }
                    }
                }
                self.events.push_back(Event::Reply { tag, value });
                Ok(())
            }
        }
    }
}

/// A `message` or `pmessage` push.
fn as_push(value: &Value) -> Option<Event> {
    let Value::Array(items) = value else { return None };
    match items.as_slice() {
        [Value::Bulk(kind), Value::Bulk(channel), Value::Bulk(payload)] if kind == b"message" => {
            Some(Event::Message { channel: channel.clone(), payload: payload.clone() })
        }
        [Value::Bulk(kind), Value::Bulk(pattern), Value::Bulk(channel), Value::Bulk(payload)]
            if kind == b"pmessage" =>
        {
            Some(Event::PMessage { pattern: pattern.clone(), channel: channel.clone(), payload: payload.clone() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
