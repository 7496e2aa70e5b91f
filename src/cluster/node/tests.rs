//! Tests of a node without a socket: the reactor's part is played by hand — connects confirmed, Redis's
//! replies fed as RESP bytes, the commands read back from the node's output.

use std::time::{Duration, Instant};

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

use super::*;
use crate::cluster::wire::{write_header, Message, Record, Section};

const ME: u64 = 0xaaaa;
const OTHER: u64 = 0xbbbb;

fn config(history: usize, buffer: usize) -> NodeConfig {
    NodeConfig {
        url: RedisUrl::parse("redis://127.0.0.1:6379").unwrap(),
        addr: "127.0.0.1:6379".parse().unwrap(),
        keys: Keys::default(),
        heartbeat: Duration::from_millis(100),
        buffer,
        history,
        id: ME,
    }
}

/// A command as written: its arguments as text (for comparing) and as bytes (for binary ones).
#[derive(Debug)]
struct Cmd {
    text: Vec<String>,
    raw: Vec<Vec<u8>>,
}

impl std::ops::Deref for Cmd {
    type Target = Vec<String>;
    fn deref(&self) -> &Vec<String> {
        &self.text
    }
}

impl PartialEq<Vec<&str>> for Cmd {
    fn eq(&self, other: &Vec<&str>) -> bool {
        self.text == *other
    }
}

impl PartialEq<Vec<String>> for Cmd {
    fn eq(&self, other: &Vec<String>) -> bool {
        self.text == *other
    }
}

/// The commands the node wrote on `link` since the last call.
fn commands(node: &mut Node, link: usize) -> Vec<Cmd> {
    let mut bytes = node.output(link).to_vec();
    node.written(link, bytes.len());
    let mut out = Vec::new();
    while let Ok(Some((frame, n))) = decode(&bytes) {
        let OwnedFrame::Array(args) = frame else { panic!("a command is an array") };
        let raw: Vec<Vec<u8>> = args
            .into_iter()
            .map(|a| match a {
                OwnedFrame::BulkString(b) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        let text = raw.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        out.push(Cmd { text, raw });
        bytes.drain(..n);
    }
    out
}

fn int(n: i64) -> Vec<u8> {
    format!(":{n}\r\n").into_bytes()
}

fn bulk(b: &[u8]) -> Vec<u8> {
    let mut v = format!("${}\r\n", b.len()).into_bytes();
    v.extend_from_slice(b);
    v.extend_from_slice(b"\r\n");
    v
}

fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", items.len()).into_bytes();
    for i in items {
        v.extend_from_slice(i);
    }
    v
}

fn beat(added: i64, expired: &[u64], live: &[u64]) -> Vec<u8> {
    let ids = |ns: &[u64]| array(&ns.iter().map(|n| bulk(format!("{n:016x}").as_bytes())).collect::<Vec<_>>());
    array(&[int(added), ids(expired), ids(live)])
}

/// A message of `origin` number `seq` with one say to all in room "r".
fn message(origin: u64, seq: u64, content: &str) -> Vec<u8> {
    let mut s = Section::new();
    s.room("r");
    s.say(9, "nine", None, content, "2026-12-02 10:00:00");
    let mut bytes = Vec::new();
    write_header(&mut bytes, origin, seq);
    bytes.extend_from_slice(&s.bytes);
    bytes
}

fn push(payload: &[u8]) -> Vec<u8> {
    array(&[bulk(b"message"), bulk(b"wschat:bus"), bulk(payload)])
}

fn contents(node: &mut Node) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(item) = node.next_inbound() {
        let Inbound::Message(bytes) = item else { continue };
        for r in Message::decode(&bytes).unwrap().records() {
            if let Record::Say { content, .. } = r {
                got.push(content.to_string());
            }
        }
    }
    got
}

/// A node that has joined a cluster where `live` nodes are alive, its commands answered so far.
fn joined(history: usize, buffer: usize, live: &[u64]) -> (Node, Instant) {
    let now = Instant::now();
    let mut node = Node::new(config(history, buffer), now);
    let mut reqs = Vec::new();
    node.set_now(now);
    node.requests(&mut reqs);
    assert_eq!(reqs.len(), 2, "both links are asked for at once: {reqs:?}");
    node.connected(COMMANDS);
    node.connected(BUS);
    assert_eq!(commands(&mut node, BUS), [vec!["SUBSCRIBE".to_string(), "wschat:bus".to_string()]]);
    node.input(BUS, &array(&[bulk(b"subscribe"), bulk(b"wschat:bus"), int(1)]));
    let cmds = commands(&mut node, COMMANDS);
    let names: Vec<&str> = cmds.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, if history > 0 { &["EVAL", "EVAL", "SCAN"][..] } else { &["EVAL", "EVAL"][..] }, "{cmds:?}");
    assert!(cmds[0][1].contains("ZADD") && cmds[1][1].contains("INCRBY"));
    let mut all = vec![ME];
    all.extend_from_slice(live);
    let mut replies = [beat(1, &[], &all), int(1024)].concat();
    if history > 0 {
        replies.extend_from_slice(&array(&[bulk(b"0"), array(&[])]));
    }
    node.input(COMMANDS, &replies);
    assert!(!node.joined(), "the hello has not gone out yet");
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    if live.is_empty() {
        assert!(cmds.is_empty(), "alone, a node publishes nothing: {cmds:?}");
    } else {
        assert_eq!(cmds.iter().map(|c| c[0].as_str()).collect::<Vec<_>>(), ["XADD", "PUBLISH"], "the hello: {cmds:?}");
        assert_eq!(&cmds[0][2..6], ["MAXLEN", "~", "10000", "1-0"]);
        let hello = Message::decode(&cmds[1].raw[2]).unwrap();
        assert_eq!((hello.origin, hello.seq, hello.records().collect::<Vec<_>>()), (ME, 1, vec![Record::Hello]));
        node.input(COMMANDS, &[int(1), int(1)].concat());
    }
    for other in live {
        let mut s = Section::new();
        s.snapshot();
        let mut bytes = Vec::new();
        write_header(&mut bytes, *other, 7);
        bytes.extend_from_slice(&s.bytes);
        node.input(BUS, &push(&bytes));
        assert!(matches!(node.next_inbound(), Some(Inbound::Message(_))));
        node.on_snapshot(*other);
    }
    node.set_now(now);
    assert!(node.joined(), "joined once the snapshots came");
    assert_eq!(node.health(), Ok(()));
    (node, now)
}

#[test]
fn joining_takes_a_subscription_a_lease_uids_and_the_snapshots() {
    let (mut node, _) = joined(0, DEFAULT_BUFFER, &[OTHER]);
    assert_eq!(node.allocate_uid(), Some(1));
    assert_eq!(node.allocate_uid(), Some(2));
    assert_eq!(node.stats().nodes, 2);
    assert_eq!(node.stats().up, 1);
}

#[test]
fn a_lone_node_joins_without_waiting_and_publishes_only_history() {
    let (mut node, _) = joined(3, DEFAULT_BUFFER, &[]);
    assert!(node.joined());
    node.record_say("r", 1, "one", None, "hello", "t");
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds.iter().map(|c| c[0].as_str()).collect::<Vec<_>>(), ["RPUSH"], "nobody reads the bus: {cmds:?}");
    node.input(COMMANDS, &int(1));
    assert_eq!(node.stats().buffered_bytes, 0);
    assert_eq!(node.stats().published_total, 0);
}

#[test]
fn gaps_are_filled_from_the_origin_stream_in_order() {
    let (mut node, _) = joined(0, DEFAULT_BUFFER, &[]);
    node.input(BUS, &push(&message(OTHER, 1, "one")));
    node.input(BUS, &push(&message(OTHER, 4, "four")));
    node.input(BUS, &push(&message(OTHER, 5, "five")));
    assert_eq!(contents(&mut node), ["one"], "four and five wait for the fill");
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds, [vec!["XRANGE", "wschat:node:000000000000bbbb:stream", "2-0", "3-0"]]);
    let entry = |seq: u64, text: &str| {
        array(&[bulk(format!("{seq}-0").as_bytes()), array(&[bulk(b"m"), bulk(&message(OTHER, seq, text))])])
    };
    node.input(COMMANDS, &array(&[entry(2, "two"), entry(3, "three")]));
    assert_eq!(contents(&mut node), ["two", "three", "four", "five"]);
    node.input(BUS, &push(&message(OTHER, 3, "three")));
    assert!(contents(&mut node).is_empty(), "a repeat is dropped");
    // A gap the stream cannot fill any more is counted lost; delivery goes on.
    node.input(BUS, &push(&message(OTHER, 8, "eight")));
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds[0][2..], ["6-0", "7-0"]);
    node.input(COMMANDS, &array(&[entry(7, "seven")]));
    assert_eq!(contents(&mut node), ["seven", "eight"]);
    assert_eq!(node.stats().lost_total, 1);
    assert_eq!(node.stats().received_total, 7);
}

#[test]
fn garbage_on_the_bus_is_counted_and_skipped() {
    let (mut node, _) = joined(0, DEFAULT_BUFFER, &[]);
    node.input(BUS, &push(b"{\"type\":\"say\"}"));
    node.input(BUS, &push(&message(ME, 2, "mine")));
    assert!(node.next_inbound().is_none(), "foreign data and this node's own messages are not delivered");
    assert_eq!(node.stats().garbage_total, 1);
}

#[test]
fn while_redis_is_away_says_queue_up_to_the_buffer_then_go_out_in_order() {
    let (mut node, now) = joined(0, 64 * 1024, &[OTHER]);
    node.closed(COMMANDS, "connection refused");
    assert!(node.health().unwrap_err().contains("commands link to Redis is down: connection refused"));
    let content = "x".repeat(1000);
    let mut accepted = 0;
    while node.accepts_say() {
        node.record_say("r", 1, "one", None, &content, "t");
        node.end_turn();
        accepted += 1;
    }
    assert!((60..=66).contains(&accepted), "{accepted} messages of 1 KB in a 64 KiB buffer");
    assert_eq!(node.stats().refused_total, 1);
    assert!(node.stats().buffered_bytes >= 60_000);
    // Back: reconnected after the back-off, everything goes out in order.
    let later = now + Duration::from_secs(1);
    node.set_now(later);
    let mut reqs = Vec::new();
    node.requests(&mut reqs);
    assert_eq!(reqs, [LinkRequest::Connect { link: COMMANDS, addr: "127.0.0.1:6379".parse().unwrap() }]);
    node.connected(COMMANDS);
    let cmds = commands(&mut node, COMMANDS);
    let ids: Vec<&str> = cmds.iter().filter(|c| c[0] == "XADD").map(|c| c[5].as_str()).collect();
    // The hello (1) was confirmed before: it is written again (Redis may have come back empty).
    let want: Vec<String> = (1..=accepted + 1).map(|s| format!("{s}-0")).collect();
    assert_eq!(ids, want);
    let replies: Vec<u8> =
        cmds.iter().flat_map(|c| if c[0] == "EVAL" { beat(0, &[], &[ME]) } else { int(1) }).collect();
    node.input(COMMANDS, &replies);
    assert_eq!(node.stats().buffered_bytes, 0);
    assert_eq!(node.stats().reconnects_total, 1);
}

#[test]
fn an_expired_lease_is_reaped_once_and_announced() {
    const THIRD: u64 = 0xcccc;
    let (mut node, now) = joined(0, DEFAULT_BUFFER, &[OTHER, THIRD]);
    // Within the grace after connecting, expired leases are left alone.
    node.set_now(now + Duration::from_millis(150));
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds[0][0], "EVAL");
    node.input(COMMANDS, &beat(0, &[OTHER], &[ME, THIRD]));
    assert!(commands(&mut node, COMMANDS).is_empty());
    let later = now + Duration::from_secs(2);
    node.set_now(later);
    commands(&mut node, COMMANDS);
    node.input(COMMANDS, &beat(0, &[OTHER], &[ME, THIRD]));
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds, [vec!["ZREM", "wschat:nodes", "000000000000bbbb"]]);
    node.input(COMMANDS, &int(1));
    assert_eq!(node.next_inbound(), Some(Inbound::Gone(OTHER)));
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    let gone = Message::decode(&cmds[1].raw[2]).unwrap();
    assert_eq!(gone.records().collect::<Vec<_>>(), [Record::Gone { node: OTHER }]);
}

#[test]
fn a_node_taken_for_dead_registers_its_users_again() {
    let (mut node, now) = joined(0, DEFAULT_BUFFER, &[OTHER]);
    assert!(!node.snapshot_due());
    node.set_now(now + Duration::from_millis(150));
    commands(&mut node, COMMANDS);
    node.input(COMMANDS, &beat(1, &[], &[ME, OTHER]));
    assert!(node.snapshot_due());
    node.publish_snapshot(|f| f("r", 5, "x", 10));
    let cmds = commands(&mut node, COMMANDS);
    let snap = Message::decode(&cmds[1].raw[2]).unwrap();
    assert_eq!(
        snap.records().collect::<Vec<_>>(),
        [Record::Snapshot, Record::Present { room: "r", uid: 5, name: "x", order: 10 }]
    );
}

#[test]
fn a_failing_uid_counter_is_asked_again_at_the_next_heartbeat_not_in_a_loop() {
    let (mut node, now) = joined(0, DEFAULT_BUFFER, &[]);
    for _ in 0..600 {
        assert!(node.allocate_uid().is_some());
    }
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds.len(), 1, "less than half a block left: one more asked for");
    assert!(cmds[0][1].contains("INCRBY"));
    node.input(COMMANDS, b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert!(commands(&mut node, COMMANDS).is_empty(), "not asked again at once");
    node.set_now(now + Duration::from_millis(150));
    let cmds = commands(&mut node, COMMANDS);
    node.input(COMMANDS, &beat(0, &[], &[ME]));
    let again = commands(&mut node, COMMANDS);
    assert_eq!((cmds.len(), again.len()), (1, 1), "the heartbeat, then the uid block again");
    assert!(again[0][1].contains("INCRBY"));
    node.input(COMMANDS, &int(2048));
    assert_eq!(node.allocate_uid(), Some(601));
    assert_eq!(node.stats().garbage_total, 1);
}
