//! The Redis link: RESP2 commands and replies over one non-blocking connection, driven sans-IO.
//!
//! - [`RedisUrl`] parses `redis://[user:password@]HOST:PORT[/DB]`.
//! - [`Link`] is one connection's protocol state: commands are queued with a caller's [`Tag`] and encoded
//!   into one output buffer (everything queued in a loop turn leaves in one write); the bytes read from the
//!   socket go in through [`Link::feed`] and come out as [`Event`]s — each reply matched, in order, to the tag
//!   of the command that asked for it, and pub/sub pushes as their own events. A Redis error (`-ERR …`) is a
//!   [`Value::Error`], never a panic; input that is not RESP fails the link with a reason.
//! - [`Driver`] moves the bytes between a mio `TcpStream` and a [`Link`]: connect, write, read. The reactor
//!   registers its socket like any other.
//!
//! RESP is encoded and decoded by the `redis-protocol` crate (RESP2, no async runtime).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};

use mio::net::TcpStream;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

/// The port of a URL without one.
pub const DEFAULT_PORT: u16 = 6379;

/// Where a Redis server is and how to log in: `redis://[user:password@]HOST:PORT[/DB]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// The host name or address, without the brackets of an IPv6 address.
    pub host: String,
    /// The TCP port ([`DEFAULT_PORT`] when the URL names none).
    pub port: u16,
    /// The ACL user, when the URL names one (`AUTH user password`).
    pub user: Option<String>,
    /// The password, when the URL gives one (`AUTH [user] password`).
    pub password: Option<String>,
    /// The database number (`SELECT db` when it is not 0).
    pub db: u32,
}

/// Why a Redis URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// The URL does not start with `redis://`.
    Scheme,
    /// No host between `//` (or `@`) and the port.
    EmptyHost,
    /// An IPv6 address whose `[` is not closed, or with something other than `:PORT` after the `]`.
    Ipv6,
    /// The port is not a number in 1..=65535.
    Port(String),
    /// The database is not a number.
    Db(String),
    /// A user is named without a password (`redis://user@host`).
    UserWithoutPassword,
    /// A `%` not followed by two hexadecimal digits, or a decoded user or password that is not UTF-8.
    PercentEncoding,
    /// Something the URL form has no place for (a query, a fragment, a second path segment).
    Unexpected(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme => write!(f, "a Redis URL starts with redis://"),
            UrlError::EmptyHost => write!(f, "the Redis URL names no host"),
            UrlError::Ipv6 => write!(f, "the Redis URL's IPv6 address is not [ADDRESS] or [ADDRESS]:PORT"),
            UrlError::Port(p) => write!(f, "the Redis URL's port {p:?} is not a number in 1..=65535"),
            UrlError::Db(d) => write!(f, "the Redis URL's database {d:?} is not a number"),
            UrlError::UserWithoutPassword => write!(f, "the Redis URL names a user without a password"),
            UrlError::PercentEncoding => write!(f, "the Redis URL's user or password has a bad %-escape"),
            UrlError::Unexpected(s) => write!(f, "the Redis URL has an unexpected {s:?}"),
        }
    }
}

impl std::error::Error for UrlError {}

fn percent_decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UrlError::PercentEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::PercentEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::PercentEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::PercentEncoding)
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    match p.parse::<u16>() {
        Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(UrlError::Port(p.to_string())),
    }
}

impl RedisUrl {
    /// Parses `redis://[user:password@]HOST[:PORT][/DB]`. HOST is a name, an IPv4 address or an IPv6 address
    /// in brackets; PORT defaults to 6379, DB to 0. User and password may be %-encoded; `:password@` alone
    /// gives a password without a user.
    pub fn parse(url: &str) -> Result<RedisUrl, UrlError> {
        let rest = url.strip_prefix("redis://").ok_or(UrlError::Scheme)?;
        if let Some(i) = rest.find(['?', '#']) {
            return Err(UrlError::Unexpected(rest[i..].to_string()));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                None => return Err(UrlError::UserWithoutPassword),
                Some((user, pass)) => {
                    let user = if user.is_empty() { None } else { Some(percent_decode(user)?) };
                    (user, Some(percent_decode(pass)?))
                }
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(UrlError::Ipv6)?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::Ipv6);
            }
            let port = match after {
                "" => DEFAULT_PORT,
                _ => parse_port(after.strip_prefix(':').ok_or(UrlError::Ipv6)?)?,
            };
            (addr, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return Err(UrlError::Ipv6),
                Some((h, p)) => (h, parse_port(p)?),
                None => (hostport, DEFAULT_PORT),
            }
        };
        if host.is_empty() {
            return Err(UrlError::EmptyHost);
        }
        let db = match path {
            None | Some("") => 0,
            Some(d) if d.contains('/') => return Err(UrlError::Unexpected(d.to_string())),
            Some(d) if d.bytes().all(|b| b.is_ascii_digit()) => d.parse().map_err(|_| UrlError::Db(d.to_string()))?,
            Some(d) => return Err(UrlError::Db(d.to_string())),
        };
        Ok(RedisUrl { host: host.to_string(), port, user, password, db })
    }

    /// `HOST:PORT`, with an IPv6 host in brackets: what [`ToSocketAddrs`] takes.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The server's addresses (a host name is resolved, which may block: call it at start-up).
    pub fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.host_port().to_socket_addrs()?.collect())
    }
}

/// The URL with the password masked, for logs.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://")?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            _ => {}
        }
        write!(f, "{}", self.host_port())?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

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
}

impl Link {
    /// A link for a connection to `url`'s server, with its AUTH and SELECT queued.
    pub fn new(url: &RedisUrl) -> Link {
        let mut link = Link {
            state: State::Ready,
            out: Vec::new(),
            input: Vec::new(),
            waiting: VecDeque::new(),
            events: VecDeque::new(),
            subscriptions: 0,
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
    pub fn unsubscribe(&mut self, tag: Tag, channels: &[&[u8]]) {
        self.queue_channels(tag, b"UNSUBSCRIBE", channels);
    }

    /// Queues PUNSUBSCRIBE of `patterns`, as [`Link::unsubscribe`].
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
    /// Input that is not RESP, or a reply nobody asked for, fails the link.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.is_failed() {
            return;
        }
        self.input.extend_from_slice(bytes);
        let mut at = 0;
        while at < self.input.len() {
            match decode(&self.input[at..]) {
                Ok(Some((frame, n))) => {
                    at += n;
                    if let Err(reason) = self.on_frame(Value::from_frame(frame)) {
                        self.fail(reason);
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(format!("bad RESP from the server: {e:?}"));
                    return;
                }
            }
        }
        self.input.drain(..at);
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
            None => Err(format!("a reply nobody asked for: {value:?}")),
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

/// A [`Link`] over a non-blocking mio `TcpStream`: register [`Driver::socket`] for readable and writable
/// events, call [`Driver::on_writable`] and [`Driver::on_readable`] on them, and [`Driver::flush`] after
/// queuing commands (at the end of a loop turn).
#[derive(Debug)]
pub struct Driver {
    stream: TcpStream,
    link: Link,
    connected: bool,
}

impl Driver {
    /// Starts a non-blocking connect to `addr` for `link`.
    pub fn connect(addr: SocketAddr, link: Link) -> io::Result<Driver> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Driver { stream, link, connected: false })
    }

    /// The socket, to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The link, to queue commands and take events.
    pub fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Whether the connect has completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// A writable event: completes the connect (an error if it failed) and writes what is queued.
    pub fn on_writable(&mut self) -> io::Result<()> {
        self.flush().map(|_| ())
    }

    fn check_connected(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(true);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes the link's pending output until it is all written or the socket would block; returns the
    /// bytes written (0 while the connect is under way).
    pub fn flush(&mut self) -> io::Result<usize> {
        if !self.check_connected()? {
            return Ok(0);
        }
        let mut written = 0;
        while !self.link.pending_output().is_empty() {
            match self.stream.write(self.link.pending_output()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.link.consumed_output(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// A readable event: reads until the socket would block, feeding the link through `buf`. Returns
    /// `Ok(false)` at end of stream (the link is then failed as closed).
    pub fn on_readable(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if !self.check_connected()? {
            return Ok(true);
        }
        loop {
            match self.stream.read(buf) {
                Ok(0) => {
                    self.link.closed();
                    return Ok(false);
                }
                Ok(n) => self.link.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RedisUrl {
        RedisUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_that_parse() {
        let u = url("redis://127.0.0.1:6380");
        assert_eq!((u.host.as_str(), u.port, u.db, u.user, u.password), ("127.0.0.1", 6380, 0, None, None));
        let u = url("redis://localhost");
        assert_eq!((u.host.as_str(), u.port), ("localhost", 6379));
        let u = url("redis://[::1]:7000/3");
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 7000, 3));
        assert_eq!(u.host_port(), "[::1]:7000");
        let u = url("redis://[fe80::1]");
        assert_eq!((u.host.as_str(), u.port), ("fe80::1", 6379));
        let u = url("redis://alice:s3cret@redis.example:6379/15");
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        assert_eq!(u.db, 15);
        let u = url("redis://:p%40ss%3A@h/");
        assert_eq!((u.user, u.password.as_deref(), u.db), (None, Some("p@ss:"), 0));
        assert_eq!(url("redis://u:pw@h:1/2").to_string(), "redis://u:***@h:1/2");
        assert_eq!(url("redis://:pw@[::1]").to_string(), "redis://:***@[::1]:6379");
    }

    #[test]
    fn urls_that_do_not() {
        let bad = |s: &str| RedisUrl::parse(s).expect_err(s);
        assert_eq!(bad("http://h:1"), UrlError::Scheme);
        assert_eq!(bad("rediss://h:1"), UrlError::Scheme);
        assert_eq!(bad("redis://"), UrlError::EmptyHost);
        assert_eq!(bad("redis://:6379"), UrlError::EmptyHost);
        assert_eq!(bad("redis://h:"), UrlError::Port(String::new()));
        assert_eq!(bad("redis://h:0"), UrlError::Port("0".into()));
        assert_eq!(bad("redis://h:65536"), UrlError::Port("65536".into()));
        assert_eq!(bad("redis://h:+1"), UrlError::Port("+1".into()));
        assert_eq!(bad("redis://h:x"), UrlError::Port("x".into()));
        assert_eq!(bad("redis://h/x"), UrlError::Db("x".into()));
        assert_eq!(bad("redis://h/-1"), UrlError::Db("-1".into()));
        assert_eq!(bad("redis://h/99999999999"), UrlError::Db("99999999999".into()));
        assert_eq!(bad("redis://h/1/2"), UrlError::Unexpected("1/2".into()));
        assert_eq!(bad("redis://h?db=1"), UrlError::Unexpected("?db=1".into()));
        assert_eq!(bad("redis://::1:6379"), UrlError::Ipv6);
        assert_eq!(bad("redis://[::1"), UrlError::Ipv6);
        assert_eq!(bad("redis://[::1]6379"), UrlError::Ipv6);
        assert_eq!(bad("redis://[nothex]:1"), UrlError::Ipv6);
        assert_eq!(bad("redis://[::1]:x"), UrlError::Port("x".into()));
        assert_eq!(bad("redis://alice@h"), UrlError::UserWithoutPassword);
        assert_eq!(bad("redis://:p%4@h"), UrlError::PercentEncoding);
        assert_eq!(bad("redis://:p%zz@h"), UrlError::PercentEncoding);
        // Every error says what is wrong.
        assert!(bad("redis://h:x").to_string().contains("\"x\""));
    }

    fn events(link: &mut Link) -> Vec<Event> {
        std::iter::from_fn(|| link.next_event()).collect()
    }

    fn reply(tag: Tag, value: Value) -> Event {
        Event::Reply { tag, value }
    }

    #[test]
    fn setup_queues_auth_and_select_first() {
        let link = Link::new(&url("redis://h"));
        assert_eq!(link.pending_output(), b"");
        assert_eq!(link.state(), &State::Ready);

        let mut link = Link::new(&url("redis://:pw@h/2"));
        link.command(7, &[b"PING"]);
        assert_eq!(
            link.pending_output(),
            b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*1\r\n$4\r\nPING\r\n"
        );
        assert_eq!(link.state(), &State::Setup);
        link.feed(b"+OK\r\n+OK\r\n+PONG\r\n");
        assert_eq!(link.state(), &State::Ready);
        assert_eq!(events(&mut link), [reply(7, Value::Simple("PONG".into()))]);

        let link = Link::new(&url("redis://bob:pw@h"));
        assert_eq!(link.pending_output(), b"*3\r\n$4\r\nAUTH\r\n$3\r\nbob\r\n$2\r\npw\r\n");
    }

    #[test]
    fn a_refused_auth_fails_the_link() {
        let mut link = Link::new(&url("redis://:wrong@h"));
        link.command(1, &[b"PING"]);
        link.feed(b"-WRONGPASS invalid username-password pair\r\n");
        assert!(matches!(link.state(), State::Failed(r) if r.contains("AUTH refused: WRONGPASS")), "{link:?}");
        assert_eq!(link.unanswered(), [1]);
        assert_eq!(link.pending_output(), b"");
    }

    #[test]
    fn pipelined_replies_come_in_order_with_their_tags_across_any_split() {
        let mut link = Link::new(&url("redis://h"));
        link.command(1, &[b"SET", b"k", b"v"]);
        link.command(2, &[b"GET", b"k"]);
        link.command(3, &[b"INCR", b"n"]);
        link.command(4, &[b"GET", b"missing"]);
        link.command(5, &[b"LRANGE", b"l", b"0", b"-1"]);
        link.command(6, &[b"BOGUS"]);
        let out = link.pending_output().to_vec();
        assert!(out.starts_with(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n"));
        link.consumed_output(10);
        assert_eq!(link.pending_output(), &out[10..]);
        link.consumed_output(out.len());
        assert_eq!(link.pending_output(), b"");

        let input: &[u8] =
            b"+OK\r\n$1\r\nv\r\n:1\r\n$-1\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n-ERR unknown command 'BOGUS'\r\n";
        let expected = [
            reply(1, Value::Simple("OK".into())),
            reply(2, Value::Bulk(b"v".to_vec())),
            reply(3, Value::Int(1)),
            reply(4, Value::Nil),
            reply(5, Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Bulk(vec![])])),
            reply(6, Value::Error("ERR unknown command 'BOGUS'".into())),
        ];
        for chunk in [1, 2, 3, 7, input.len()] {
            let mut l = Link::new(&url("redis://h"));
            for (tag, _) in expected.iter().enumerate() {
                l.command(tag as Tag + 1, &[b"X"]);
            }
            for piece in input.chunks(chunk) {
                l.feed(piece);
            }
            assert_eq!(events(&mut l), expected, "chunks of {chunk}");
            assert_eq!(l.awaiting(), 0);
            assert_eq!(l.state(), &State::Ready);
        }
    }

    #[test]
    fn pushes_are_their_own_events_once_subscribed() {
        let mut link = Link::new(&url("redis://h"));
        link.subscribe(1, &[b"a", b"b"]);
        link.psubscribe(2, &[b"r.*"]);
        assert_eq!(link.awaiting(), 3);
        link.feed(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        assert!(link.is_subscribed());
        link.feed(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n");
        link.feed(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$10\r\npsubscribe\r\n$3\r\nr.*\r\n:3\r\n");
        link.feed(b"*4\r\n$8\r\npmessage\r\n$3\r\nr.*\r\n$3\r\nr.1\r\n$1\r\nx\r\n");
        let confirm = |kind: &str, ch: &str, n| {
            Value::Array(vec![Value::Bulk(kind.into()), Value::Bulk(ch.into()), Value::Int(n)])
        };
        assert_eq!(
            events(&mut link),
            [
                reply(1, confirm("subscribe", "a", 1)),
                Event::Message { channel: b"a".to_vec(), payload: b"hi".to_vec() },
                reply(1, confirm("subscribe", "b", 2)),
                reply(2, confirm("psubscribe", "r.*", 3)),
                Event::PMessage { pattern: b"r.*".to_vec(), channel: b"r.1".to_vec(), payload: b"x".to_vec() },
            ]
        );
        link.unsubscribe(3, &[b"a", b"b"]);
        link.punsubscribe(4, &[b"r.*"]);
        link.feed(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n");
        link.feed(b"*3\r\n$12\r\npunsubscribe\r\n$3\r\nr.*\r\n:0\r\n");
        assert!(!link.is_subscribed());
        assert_eq!(events(&mut link).len(), 3);
        // Not subscribed, an array that looks like a push is a reply.
        link.command(5, &[b"LRANGE", b"l", b"0", b"-1"]);
        link.feed(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n");
        assert!(matches!(&events(&mut link)[..], [Event::Reply { tag: 5, .. }]));
    }

    #[test]
    fn garbage_fails_the_link_with_a_reason() {
        let mut link = Link::new(&url("redis://h"));
        link.command(1, &[b"PING"]);
        link.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert!(matches!(link.state(), State::Failed(r) if r.contains("bad RESP")), "{link:?}");
        assert_eq!(link.next_event(), None);
        link.feed(b"+PONG\r\n");
        assert_eq!(link.next_event(), None);
        link.command(2, &[b"PING"]);
        assert_eq!(link.pending_output(), b"");
        assert_eq!(link.unanswered(), [1]);

        let mut link = Link::new(&url("redis://h"));
        link.feed(b"+OK\r\n");
        assert!(matches!(link.state(), State::Failed(r) if r.contains("nobody asked for")), "{link:?}");

        let mut link = Link::new(&url("redis://h"));
        link.command(1, &[b"GET", b"k"]);
        link.feed(b"$3\r\nabcdef\r\n");
        assert!(link.is_failed(), "{link:?}");

        let mut link = Link::new(&url("redis://h"));
        link.closed();
        assert!(matches!(link.state(), State::Failed(r) if r.contains("closed")));
    }
}
