//! Tests of the Redis link: addresses, pipelining, pub/sub, failures — byte slices only.

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

    let input: &[u8] = b"+OK\r\n$1\r\nv\r\n:1\r\n$-1\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n-ERR unknown command 'BOGUS'\r\n";
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
    let confirm =
        |kind: &str, ch: &str, n| Value::Array(vec![Value::Bulk(kind.into()), Value::Bulk(ch.into()), Value::Int(n)]);
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

/// `*1\r\n` `depth` times around one integer.
fn nested(depth: usize) -> Vec<u8> {
    let mut v = b"*1\r\n".repeat(depth);
    v.extend_from_slice(b":1\r\n");
    v
}

#[test]
fn a_reply_nested_31_000_deep_fails_the_link_instead_of_the_stack() {
    let deep = nested(31_000);
    for read in [deep.len(), 4096, 1] {
        let mut link = Link::new(&url("redis://h"));
        link.command(1, &[b"PING"]);
        for chunk in deep.chunks(read) {
            link.feed(chunk);
        }
        assert!(matches!(link.state(), State::Failed(r) if r.contains("nested deeper than 8")), "{:?}", link.state());
        assert!(link.sent_garbage());
        assert_eq!(link.next_event(), None);
        assert_eq!(link.unanswered(), [1]);
    }
}

#[test]
fn replies_within_the_limits_decode_and_the_rest_fail_the_link() {
    let mut link = Link::new(&url("redis://h"));
    link.command(1, &[b"X"]);
    link.command(2, &[b"Y"]);
    let mut input = nested(MAX_DEPTH - 1);
    input.extend_from_slice(b"*2\r\n$3\r\na\r\n\r\n*-1\r\n");
    for b in &input {
        link.feed(std::slice::from_ref(b));
    }
    let mut want = Value::Int(1);
    for _ in 0..MAX_DEPTH - 1 {
        want = Value::Array(vec![want]);
    }
    assert_eq!(link.next_event(), Some(Event::Reply { tag: 1, value: want }));
    assert_eq!(
        link.next_event(),
        Some(Event::Reply { tag: 2, value: Value::Array(vec![Value::Bulk(b"a\r\n".to_vec()), Value::Nil]) })
    );
    assert!(!link.is_failed() && !link.sent_garbage());

    let small = Limits { max_depth: 2, max_elements: 10, max_reply_bytes: 100 };
    for (input, why) in [
        (&b"*1\r\n*1\r\n*1\r\n:1\r\n"[..], "nested deeper than 2"),
        (b"*11\r\n", "11 elements"),
        (b"$101\r\n", "a bulk string of 101 bytes"),
        (b"$95\r\n", "a reply over the link's budget of 100 bytes"),
        (b"$2\r\nabc\r\n", "not ended by CRLF"),
    ] {
        let mut link = Link::with_limits(&url("redis://h"), small);
        link.command(1, &[b"X"]);
        link.feed(input);
        assert!(matches!(link.state(), State::Failed(r) if r.contains(why)), "{why}: {:?}", link.state());
        assert!(link.sent_garbage());
    }
}

#[test]
fn only_what_the_server_sent_is_garbage() {
    let mut link = Link::new(&url("redis://:pw@h"));
    link.feed(b"-WRONGPASS\r\n");
    assert!(link.is_failed() && !link.sent_garbage(), "a refused AUTH is not garbage");
    let mut link = Link::new(&url("redis://h"));
    link.closed();
    assert!(!link.sent_garbage());
    let mut link = Link::new(&url("redis://h"));
    link.feed(b"+OK\r\n");
    assert!(link.sent_garbage(), "a reply nobody asked for");
}

#[test]
fn a_large_reply_in_many_reads_decodes_once() {
    // An XRANGE answer of 2 000 entries of 1 KiB, in 1 400-byte reads.
    let mut reply = b"*2000\r\n".to_vec();
    for i in 1..=2000 {
        let id = format!("{i}-0");
        reply.extend_from_slice(format!("*2\r\n${}\r\n{id}\r\n*2\r\n$1\r\nm\r\n$1024\r\n", id.len()).as_bytes());
        reply.extend_from_slice(&[b'x'; 1024]);
        reply.extend_from_slice(b"\r\n");
    }
    let mut link = Link::new(&url("redis://h"));
    link.command(7, &[b"XRANGE"]);
    for chunk in reply.chunks(1400) {
        link.feed(chunk);
    }
    let Some(Event::Reply { tag: 7, value: Value::Array(entries) }) = link.next_event() else { panic!("{link:?}") };
    assert_eq!(entries.len(), 2000);
    assert!(!link.is_failed());
}

/// A measurement, not a check (`cargo test --release --lib measure_feed -- --ignored --nocapture`, with
/// ENTRIES and READ to change the reply and the reads): a fill of 1 KiB entries fed in reads, through the
/// link's pre-scan against decoding the whole input again on every read.
#[test]
#[ignore]
fn measure_feed_of_a_large_reply() {
    use std::time::Instant;
    let n: usize = std::env::var("ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let read: usize = std::env::var("READ").ok().and_then(|v| v.parse().ok()).unwrap_or(65_536);
    let mut reply = format!("*{n}\r\n").into_bytes();
    for i in 1..=n {
        let id = format!("{i}-0");
        reply.extend_from_slice(format!("*2\r\n${}\r\n{id}\r\n*2\r\n$1\r\nm\r\n$1024\r\n", id.len()).as_bytes());
        reply.extend_from_slice(&[b'x'; 1024]);
        reply.extend_from_slice(b"\r\n");
    }
    let mut old = Vec::new();
    let mut new = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut input: Vec<u8> = Vec::new();
        let mut got = 0;
        for chunk in reply.chunks(read) {
            input.extend_from_slice(chunk);
            let mut at = 0;
            while at < input.len() {
                match decode(&input[at..]) {
                    Ok(Some((_, k))) => {
                        at += k;
                        got += 1;
                    }
                    _ => break,
                }
            }
            input.drain(..at);
        }
        assert_eq!(got, 1);
        old.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let mut link = Link::new(&url("redis://h"));
        link.command(1, &[b"XRANGE"]);
        for chunk in reply.chunks(read) {
            link.feed(chunk);
        }
        assert!(link.next_event().is_some());
        new.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    old.sort_by(f64::total_cmp);
    new.sort_by(f64::total_cmp);
    println!(
        "MEASURE {} bytes in reads of {read}: decode on every read {:.1} ms, pre-scan {:.1} ms (medians of 5)",
        reply.len(),
        old[2],
        new[2]
    );
}
