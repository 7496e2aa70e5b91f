use std::time::{Duration, Instant};

use super::wire::{write_frame, Hello};
use super::*;

const A: u64 = 0xa;
const B: u64 = 0xb;

fn table(me: u64, token: &str) -> Peers {
    Peers::new(me, "wschat", token.to_string(), 1024, 4096)
}

fn requests(p: &mut Peers) -> Vec<LinkRequest> {
    let mut out = Vec::new();
    p.requests(&mut out);
    out
}

/// A's link to B opened and accepted; returns A's table, B's, A's link index and B's.
fn linked(now: Instant) -> (Peers, Peers, usize, usize) {
    let (mut a, mut b) = (table(A, "ta"), table(B, "tb"));
    assert!(a.wants_address(B, now));
    assert!(!a.wants_address(B, now), "asked once");
    a.address(B, Some(b"127.0.0.1:9 tb"), now);
    let out_link = match requests(&mut a).as_slice() {
        [LinkRequest::Connect { link, addr }] => {
            assert_eq!(addr.port(), 9);
            *link
        }
        other => panic!("{other:?}"),
    };
    assert!(a.output(out_link).is_empty(), "nothing goes before the connect completed");
    a.connected(out_link);
    let hello = a.output(out_link).to_vec();
    assert!(hello.starts_with(b"WSCHAT-PEER/1 wschat 000000000000000a 000000000000000b tb\n"));
    a.written(out_link, hello.len());
    let in_link = b.accepted(now).expect("a free link");
    let mut got = Vec::new();
    assert!(b.input(in_link, &hello, now, &mut got));
    assert_eq!(b.output(in_link), ACCEPTED);
    b.written(in_link, 3);
    assert!(!a.ready(B));
    assert!(a.input(out_link, b"OK\n", now, &mut got));
    assert!(a.ready(B) && got.is_empty());
    (a, b, out_link, in_link)
}

#[test]
fn a_link_opens_with_the_token_and_carries_messages_in_order() {
    let now = Instant::now();
    let (mut a, mut b, out_link, in_link) = linked(now);
    assert_eq!(a.stats().links, 1);
    assert!(a.send(B, b"first", now) && a.send(B, b"second", now));
    let bytes = a.output(out_link).to_vec();
    a.written(out_link, bytes.len());
    let mut got = Vec::new();
    // Split anywhere: the messages come out whole, tagged with their sender.
    assert!(b.input(in_link, &bytes[..7], now, &mut got));
    assert!(got.is_empty());
    assert!(b.input(in_link, &bytes[7..], now, &mut got));
    assert_eq!(got, vec![(A, b"first".to_vec()), (A, b"second".to_vec())]);
}

#[test]
fn a_wrong_token_prefix_or_target_is_refused() {
    let now = Instant::now();
    for hello in [
        Hello { prefix: "wschat".into(), from: A, to: B, token: "guess".into() },
        Hello { prefix: "other".into(), from: A, to: B, token: "tb".into() },
        Hello { prefix: "wschat".into(), from: A, to: 0xc, token: "tb".into() },
        Hello { prefix: "wschat".into(), from: B, to: B, token: "tb".into() },
    ] {
        let mut b = table(B, "tb");
        let link = b.accepted(now).unwrap();
        let mut got = Vec::new();
        let mut bytes = hello.encode();
        write_frame(&mut bytes, b"sneaked in");
        assert!(!b.input(link, &bytes, now, &mut got), "{hello:?}");
        assert!(got.is_empty());
        assert_eq!(requests(&mut b), vec![LinkRequest::Close { link }]);
        assert!(b.output(link).is_empty(), "no OK");
    }
    let mut b = table(B, "tb");
    let link = b.accepted(now).unwrap();
    assert!(!b.input(link, b"GET / HTTP/1.1\r\n\r\n", now, &mut Vec::new()), "not a peer");
}

#[test]
fn a_message_over_the_limit_drops_the_link() {
    let now = Instant::now();
    let (_, mut b, _, in_link) = linked(now);
    let mut bytes = Vec::new();
    write_frame(&mut bytes, &[0u8; 1025]);
    assert!(!b.input(in_link, &bytes[..8], now, &mut Vec::new()));
    assert_eq!(requests(&mut b), vec![LinkRequest::Close { link: in_link }]);
}

#[test]
fn a_refusal_or_a_loss_backs_off_before_connecting_again() {
    let now = Instant::now();
    let mut a = table(A, "ta");
    assert!(a.wants_address(B, now));
    a.address(B, Some(b"127.0.0.1:9 tb"), now);
    let link = match requests(&mut a).as_slice() {
        [LinkRequest::Connect { link, .. }] => *link,
        other => panic!("{other:?}"),
    };
    a.connected(link);
    assert!(!a.input(link, b"NO\n", now, &mut Vec::new()), "not OK");
    assert!(!a.ready(B));
    assert_eq!(a.stats().failures_total, 1);
    assert!(!a.wants_address(B, now), "backing off");
    assert!(!a.wants_address(B, now + Duration::from_millis(50)));
    assert!(a.wants_address(B, now + FIRST_RETRY));
    // No address (the node does not listen): asked again later, not at once.
    a.address(B, None, now + FIRST_RETRY);
    assert!(requests(&mut a).iter().all(|r| matches!(r, LinkRequest::Close { .. })));
    assert!(!a.wants_address(B, now + FIRST_RETRY * 2));
    assert!(a.wants_address(B, now + FIRST_RETRY * 3 + Duration::from_millis(1)));
}

#[test]
fn a_slow_peer_is_dropped_and_a_gone_one_closed() {
    let now = Instant::now();
    let (mut a, _, out_link, _) = linked(now);
    assert!(a.send(B, &[1u8; 1000], now));
    assert!(a.send(B, &[1u8; 1000], now));
    assert!(a.send(B, &[1u8; 1000], now));
    assert!(a.send(B, &[1u8; 1000], now));
    assert!(!a.send(B, &[1u8; 1000], now), "past the 4096 bytes unread: dropped");
    assert!(!a.ready(B) && a.output(out_link).is_empty());
    assert_eq!(requests(&mut a), vec![LinkRequest::Close { link: out_link }]);

    let (mut a, _, out_link, _) = linked(now);
    a.tend(now, |n| n == B);
    assert!(a.ready(B), "alive: kept");
    a.tend(now, |_| false);
    assert!(!a.ready(B));
    assert_eq!(requests(&mut a), vec![LinkRequest::Close { link: out_link }]);
}

#[test]
fn an_opening_that_never_completes_times_out() {
    let now = Instant::now();
    let mut b = table(B, "tb");
    let link = b.accepted(now).unwrap();
    assert_eq!(b.wakeup(), Some(now + OPEN_TIMEOUT));
    b.tend(now + OPEN_TIMEOUT, |_| true);
    assert_eq!(requests(&mut b), vec![LinkRequest::Close { link }]);
    assert_eq!(b.wakeup(), None);
    // A dropped link's index is not handed out again before the reactor took its close.
    let mut b = table(B, "tb");
    let first = b.accepted(now).unwrap();
    assert!(!b.input(first, b"junk\n", now, &mut Vec::new()));
    assert_ne!(b.accepted(now), Some(first), "its close is pending");
    assert_eq!(requests(&mut b), vec![LinkRequest::Close { link: first }]);
    assert_eq!(b.accepted(now), Some(first), "free again once the close was taken");
    // Every link taken: a further connection is not accepted.
    let mut b = table(B, "tb");
    for _ in 0..MAX_PEER_LINKS {
        assert!(b.accepted(now).is_some());
    }
    assert!(b.accepted(now).is_none());
}
