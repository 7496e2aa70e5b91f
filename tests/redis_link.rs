//! The Redis link and its driver against a real redis-server (started here on a free loopback port with
//! persistence off, killed by its PID when the test ends), driven by a small mio loop bounded in time.

mod common;

use common::redis::RedisServer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};

use mio::net::TcpStream;
use wschat::cluster::link::{Event, Link, RedisUrl, State, Tag, Value};

trait UrlOf {
    fn link_url(&self) -> RedisUrl;
}

impl UrlOf for RedisServer {
    fn link_url(&self) -> RedisUrl {
        RedisUrl::parse(&self.url()).unwrap()
    }
}

/// A [`Link`] over a non-blocking mio `TcpStream` (the test's own driver; the daemon drives its links in
/// `reactor/links.rs`): register [`Driver::socket`] for readable and writable
/// events, call [`Driver::on_writable`] and [`Driver::on_readable`] on them, and [`Driver::flush`] after
/// queuing commands (at the end of a loop turn).
#[derive(Debug)]
struct Driver {
    stream: TcpStream,
    link: Link,
    connected: bool,
}

impl Driver {
    /// Starts a non-blocking connect to `addr` for `link`.
    fn connect(addr: SocketAddr, link: Link) -> io::Result<Driver> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Driver { stream, link, connected: false })
    }

    /// The socket, to register with the poll.
    fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// The link, to queue commands and take events.
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// A writable event: completes the connect (an error if it failed) and writes what is queued.
    fn on_writable(&mut self) -> io::Result<()> {
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
    fn flush(&mut self) -> io::Result<usize> {
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
    fn on_readable(&mut self, buf: &mut [u8]) -> io::Result<bool> {
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

/// One link with its own poll: a blocking loop around the non-blocking driver, for the test only.
struct Client {
    poll: Poll,
    driver: Driver,
    buf: Vec<u8>,
}

impl Client {
    fn connect(url: &RedisUrl) -> Client {
        let addr: SocketAddr = url.socket_addrs().unwrap()[0];
        let poll = Poll::new().unwrap();
        let mut driver = Driver::connect(addr, Link::new(url)).unwrap();
        poll.registry().register(driver.socket(), Token(0), Interest::READABLE | Interest::WRITABLE).unwrap();
        Client { poll, driver, buf: vec![0; 64 * 1024] }
    }

    fn link(&mut self) -> &mut Link {
        self.driver.link()
    }

    /// One loop turn: flush, wait up to 100 ms for readiness, connect, write, read.
    fn turn(&mut self, events: &mut Events) {
        self.driver.flush().expect("write");
        self.poll.poll(events, Some(Duration::from_millis(100))).unwrap();
        for ev in events.iter() {
            if ev.is_writable() {
                self.driver.on_writable().expect("connect or write");
            }
            if ev.is_readable() {
                assert!(self.driver.on_readable(&mut self.buf).expect("read"), "redis closed the connection");
            }
        }
    }

    /// Runs the loop until `n` events came, within 10 s.
    fn events(&mut self, n: usize) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let mut events = Events::with_capacity(8);
        loop {
            while let Some(e) = self.driver.link().next_event() {
                got.push(e);
            }
            if got.len() >= n {
                return got;
            }
            if let State::Failed(reason) = self.driver.link().state() {
                panic!("the link failed: {reason} (after {got:?})");
            }
            assert!(Instant::now() < deadline, "{} of {n} events within 10 s: {got:?}", got.len());
            self.turn(&mut events);
        }
    }

    /// Runs the loop until the link fails, within 10 s; returns the reason.
    fn failure(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Events::with_capacity(8);
        loop {
            if let State::Failed(reason) = self.driver.link().state() {
                return reason.clone();
            }
            assert!(Instant::now() < deadline, "the link did not fail within 10 s");
            self.turn(&mut events);
        }
    }

    /// Queues one command and returns its reply.
    fn call(&mut self, tag: Tag, args: &[&[u8]]) -> Value {
        self.link().command(tag, args);
        match &self.events(1)[..] {
            [Event::Reply { tag: t, value }] if *t == tag => value.clone(),
            other => panic!("expected the reply to {tag}, got {other:?}"),
        }
    }
}

#[test]
fn redis_link_against_a_real_server() {
    let Some(redis) = RedisServer::start() else {
        return common::skip_or_fail("redis_link_against_a_real_server", "redis-server");
    };
    let url = redis.link_url();
    let mut c = Client::connect(&url);

    assert_eq!(c.call(1, &[b"PING"]), Value::Simple("PONG".into()));
    assert_eq!(c.call(2, &[b"SET", b"greeting", b"hi,  all !"]), Value::Simple("OK".into()));
    assert_eq!(c.call(3, &[b"GET", b"greeting"]), Value::Bulk("hi,  all !".into()));
    assert_eq!(c.call(4, &[b"GET", b"nothing"]), Value::Nil);
    assert_eq!(c.call(5, &[b"INCR", b"n"]), Value::Int(1));
    assert_eq!(c.call(6, &[b"INCR", b"n"]), Value::Int(2));

    // A server error is a value, and the link goes on.
    match c.call(7, &[b"INCR", b"greeting"]) {
        Value::Error(e) => assert!(e.starts_with("ERR "), "{e}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    assert!(c.call(8, &[b"NOSUCHCOMMAND"]).is_error());
    assert_eq!(c.call(9, &[b"PING"]), Value::Simple("PONG".into()));

    // 100 commands queued in one turn leave in one write and are answered in order.
    for i in 0..100u64 {
        let v = i.to_string();
        if i.is_multiple_of(2) {
            c.link().command(1000 + i, &[b"RPUSH", b"list", v.as_bytes()]);
        } else {
            c.link().command(1000 + i, &[b"INCR", b"counter"]);
        }
    }
    let batch = c.link().pending_output().len();
    assert_eq!(c.driver.flush().unwrap(), batch, "the batch leaves in one flush");
    let replies = c.events(100);
    for (i, e) in replies.iter().enumerate() {
        let i = i as u64;
        let want = if i.is_multiple_of(2) { Value::Int((i / 2 + 1) as i64) } else { Value::Int(i.div_ceil(2) as i64) };
        assert_eq!(e, &Event::Reply { tag: 1000 + i, value: want });
    }
    assert_eq!(c.link().awaiting(), 0);

    // SUBSCRIBE on one link, PUBLISH on another: the push arrives as its own event.
    let mut sub = Client::connect(&url);
    sub.link().subscribe(1, &[b"room:1", b"room:2"]);
    sub.link().psubscribe(2, &[b"room:*"]);
    assert_eq!(sub.events(3).len(), 3);
    assert!(sub.link().is_subscribed());
    assert_eq!(c.call(10, &[b"PUBLISH", b"room:2", b"hello"]), Value::Int(2));
    let pushes = sub.events(2);
    assert_eq!(
        pushes,
        [
            Event::Message { channel: b"room:2".to_vec(), payload: b"hello".to_vec() },
            Event::PMessage { pattern: b"room:*".to_vec(), channel: b"room:2".to_vec(), payload: b"hello".to_vec() },
        ]
    );

    // AUTH and SELECT on connect: a wrong password fails the link with Redis's reason; SELECT 3 lands on db 3.
    let mut db3 = Client::connect(&RedisUrl::parse(&format!("redis://127.0.0.1:{}/3", redis.port)).unwrap());
    assert_eq!(db3.call(1, &[b"SET", b"where", b"three"]), Value::Simple("OK".into()));
    assert_eq!(c.call(11, &[b"GET", b"where"]), Value::Nil);
    assert_eq!(c.call(12, &[b"CONFIG", b"SET", b"requirepass", b"pw"]), Value::Simple("OK".into()));
    let mut bad = Client::connect(&RedisUrl::parse(&format!("redis://:wrong@127.0.0.1:{}", redis.port)).unwrap());
    bad.link().command(1, &[b"PING"]);
    let reason = bad.failure();
    assert!(reason.contains("AUTH refused: WRONGPASS"), "{reason}");
    assert_eq!(bad.link().unanswered(), [1]);
    let mut good = Client::connect(&RedisUrl::parse(&format!("redis://:pw@127.0.0.1:{}/3", redis.port)).unwrap());
    assert_eq!(good.call(1, &[b"GET", b"where"]), Value::Bulk(b"three".to_vec()));
}
