//! Tests of a node without a socket: the reactor's part is played by hand — connects confirmed, Redis's
//! replies fed as RESP bytes, the commands read back from the node's output.

use std::time::{Duration, Instant};

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

use super::*;
use crate::app::LinkHost;

mod direct;
mod gather;
mod peering;
mod sentinel;
use crate::chat::event::RoomEvent;
use crate::chat::roster::HereUser;
use crate::cluster::wire::{write_header, Message, Record, Section};

/// User 1's say to all of room "r".
fn say(content: &str) -> RoomEvent<'_> {
    RoomEvent::Say { room: "r", from_uid: 1, from_name: "one", to_uid: None, content, time: "t" }
}

const ME: u64 = 0xaaaa;
const OTHER: u64 = 0xbbbb;

fn config(history: usize, buffer: usize) -> NodeConfig {
    NodeConfig {
        url: RedisUrl::parse("redis://127.0.0.1:6379").unwrap(),
        addr: Some("127.0.0.1:6379".parse().unwrap()),
        sentinel: None,
        keys: Keys::default(),
        heartbeat: Duration::from_millis(100),
        buffer,
        history,
        history_budget: 1024 * 1024,
        stream_bytes: DEFAULT_STREAM_BYTES,
        id: ME,
        peer: None,
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
    let time = "2026-12-02 10:00:00";
    s.event(&RoomEvent::Say { room: "r", from_uid: 9, from_name: "nine", to_uid: None, content, time });
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
            if let Record::Room(RoomEvent::Say { content, .. }) = r {
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
    let own = "wschat:node:000000000000aaaa:direct".to_string();
    let subscribed = [vec!["SUBSCRIBE".to_string(), "wschat:bus".to_string()], vec!["SUBSCRIBE".to_string(), own]];
    assert_eq!(commands(&mut node, BUS), subscribed, "the bus, and this node's own channel");
    node.input(BUS, &array(&[bulk(b"subscribe"), bulk(b"wschat:bus"), int(1)]));
    node.input(BUS, &array(&[bulk(b"subscribe"), bulk(b"wschat:node:000000000000aaaa:direct"), int(2)]));
    let cmds = commands(&mut node, COMMANDS);
    let names: Vec<&str> = cmds.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, if history > 0 { &["EVAL", "EVAL", "EVAL"][..] } else { &["EVAL", "EVAL"][..] }, "{cmds:?}");
    assert!(cmds[0][1].contains("ZADD") && cmds[1][1].contains("INCRBY"));
    if history > 0 {
        assert!(cmds[2][1].contains("ZREVRANGEBYSCORE"), "the history, newest rooms first");
        assert_eq!(cmds[2][3..6], ["wschat:history-rooms", "+inf", "1048576"], "from the newest, within the budget");
    }
    let mut all = vec![ME];
    all.extend_from_slice(live);
    let mut replies = [beat(1, &[], &all), int(1024)].concat();
    if history > 0 {
        replies.extend_from_slice(&array(&[bulk(b""), array(&[])]));
    }
    node.input(COMMANDS, &replies);
    assert!(!node.joined(), "the hello has not gone out yet");
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    if live.is_empty() {
        assert!(cmds.is_empty(), "alone, a node publishes nothing: {cmds:?}");
    } else {
        assert_eq!(cmds.iter().map(|c| c[0].as_str()).collect::<Vec<_>>(), ["XADD", "PUBLISH"], "the hello: {cmds:?}");
        assert_eq!(&cmds[0][2..6], ["MINID", "~", "1-0", "1-0"]);
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
    node.record(&say("hello"));
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds.iter().map(|c| c[0].as_str()).collect::<Vec<_>>(), ["EVAL"], "nobody reads the bus: {cmds:?}");
    assert!(cmds[0][1].contains("RPUSH"));
    assert_eq!(
        cmds[0][3..11],
        [
            "wschat:history:1:r",
            "wschat:history-rooms",
            "wschat:history-sizes",
            "wschat:history-bytes",
            "3",
            "1048576",
            "64",
            "604800000"
        ],
        "the room, the index, the sizes, the total; per room 3, 1 MiB over all"
    );
    node.input(COMMANDS, &int(0));
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
    while node.accepts_say().is_ok() {
        node.record(&say(&content));
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
    node.publish_snapshot(|f| f(HereUser { room: "r", uid: 5, name: "x", user_id: None, order: 10 }, None));
    let cmds = commands(&mut node, COMMANDS);
    let snap = Message::decode(&cmds[1].raw[2]).unwrap();
    assert_eq!(
        snap.records().collect::<Vec<_>>(),
        [Record::Snapshot, Record::Present { room: "r", uid: 5, name: "x", order: 10, user_id: None }]
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

#[test]
fn the_stream_keeps_the_newest_messages_within_its_bytes() {
    let (mut node, _) = joined(0, DEFAULT_BUFFER, &[OTHER]);
    node.cfg.stream_bytes = 64 * 1024;
    let content = "s".repeat(20_000);
    let mut minids = Vec::new();
    for _ in 0..10 {
        node.record(&say(&content));
        node.end_turn();
        let cmds = commands(&mut node, COMMANDS);
        let xadd = cmds.iter().find(|c| c[0] == "XADD").expect("an XADD");
        assert_eq!(xadd[2..4], ["MINID", "~"]);
        minids.push((xadd[5].clone(), xadd[4].clone()));
        node.input(COMMANDS, &[int(1), int(1)].concat());
    }
    // The hello is 1; says 2..=11 of 20 KB each: three fit in 64 KiB.
    assert_eq!(minids[0], ("2-0".to_string(), "1-0".to_string()));
    assert_eq!(minids[9], ("11-0".to_string(), "9-0".to_string()));
    assert!(node.stats().stream_bytes <= 64 * 1024 && node.stats().stream_bytes >= 60_000);
}

#[test]
fn a_say_refused_while_redis_is_up_says_so() {
    let (mut node, _) = joined(0, 64 * 1024, &[OTHER]);
    let content = "x".repeat(1000);
    let mut accepted = 0;
    // Redis is up but answers nothing: the buffer fills with messages in flight.
    while node.accepts_say().is_ok() {
        node.record(&say(&content));
        node.end_turn();
        accepted += 1;
    }
    assert!(accepted >= 60, "{accepted}");
    assert_eq!(node.accepts_say(), Err(SayRefusal::Backlog));
    assert_eq!((node.stats().refused_total, node.stats().refused_backlog_total), (2, 2));
    node.closed(COMMANDS, "connection reset");
    assert_eq!(node.accepts_say(), Err(SayRefusal::RedisAway));
    assert_eq!((node.stats().refused_total, node.stats().refused_backlog_total), (3, 2));
}

#[test]
fn errors_from_redis_are_counted() {
    let (mut node, _) = joined(2, DEFAULT_BUFFER, &[]);
    for _ in 0..50 {
        node.record(&say("hello"));
        node.end_turn();
        commands(&mut node, COMMANDS);
        node.input(COMMANDS, b"-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    }
    assert_eq!(node.stats().redis_errors_total, 50);
    assert_eq!(node.stats().buffered_bytes, 0, "a refused write is not kept");
}

#[test]
fn a_joining_node_loads_history_newest_rooms_first_within_its_budget() {
    let now = Instant::now();
    let mut node = Node::new(config(5, DEFAULT_BUFFER), now);
    node.set_now(now);
    node.requests(&mut Vec::new());
    node.connected(COMMANDS);
    let cmds = commands(&mut node, COMMANDS);
    let load = cmds.iter().find(|c| c[1].contains("ZREVRANGEBYSCORE")).expect("the load");
    assert_eq!(load[4..], ["+inf", "1048576", "5", "1048576", "64", "64"]);
    node.input(COMMANDS, &[beat(1, &[], &[ME]), int(1024)].concat());
    let entry = |t: &str| bulk(&crate::cluster::wire::history_entry(3, "c", t, "2026-12-02 10:00:00"));
    let page = array(&[
        bulk(b"(1733000000000001"),
        array(&[bulk(b"wschat:history:1:b"), array(&[entry("b2"), entry("b1")]), bulk(b"foreign"), array(&[])]),
    ]);
    node.input(COMMANDS, &page);
    match node.next_inbound() {
        Some(Inbound::History { room, entries }) => {
            assert_eq!(room, "b");
            assert_eq!(entries.len(), 2);
            assert!(entries[0].windows(2).any(|w| w == b"b1"), "oldest first");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(node.stats().garbage_total, 1, "a key that is no room's");
    let cmds = commands(&mut node, COMMANDS);
    let next = cmds.iter().find(|c| c[1].contains("ZREVRANGEBYSCORE")).expect("the next page");
    let loaded = node.stats().history_loaded_bytes;
    assert!(loaded > 128, "{loaded}");
    assert_eq!(next[4..6], ["(1733000000000001".to_string(), (1024 * 1024 - loaded).to_string()]);
    node.input(COMMANDS, &array(&[bulk(b""), array(&[])]));
    assert!(node.joining.history_loaded);
}

/// A heartbeat's answer with the times: `next` ms until the first other lease ends, and how long ago each
/// expired one ended.
fn beat_timed(expired: &[(u64, i64)], live: &[u64], next: i64) -> Vec<u8> {
    let ids = |ns: &[u64]| array(&ns.iter().map(|n| bulk(format!("{n:016x}").as_bytes())).collect::<Vec<_>>());
    let dead: Vec<u64> = expired.iter().map(|e| e.0).collect();
    let ago: Vec<Vec<u8>> = expired.iter().map(|e| int(e.1)).collect();
    array(&[int(0), ids(&dead), ids(live), int(next), array(&ago)])
}

#[test]
fn a_lease_renewed_after_connecting_is_reaped_when_it_ends_even_within_the_grace() {
    const THIRD: u64 = 0xcccc;
    let (mut node, now) = joined(0, DEFAULT_BUFFER, &[OTHER, THIRD]);
    // A lease ends in 30 ms: the next beat is then, not a heartbeat (100 ms) later.
    node.set_now(now + Duration::from_millis(150));
    commands(&mut node, COMMANDS);
    node.input(COMMANDS, &beat_timed(&[], &[ME, OTHER, THIRD], 30));
    assert_eq!(node.wakeup(), Some(now + Duration::from_millis(150 + 30 + 20)));
    // 700 ms after connecting (the grace is 800): OTHER's lease (400 ms) ended 50 ms ago, so it was renewed
    // 250 ms after this node connected: reaped. THIRD's ended 250 ms ago: renewed before, left alone.
    node.set_now(now + Duration::from_millis(700));
    commands(&mut node, COMMANDS);
    node.input(COMMANDS, &beat_timed(&[(OTHER, 50), (THIRD, 250)], &[ME], -1));
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds, [vec!["ZREM", "wschat:nodes", "000000000000bbbb"]]);
    node.input(COMMANDS, &int(1));
    assert_eq!(node.next_inbound(), Some(Inbound::Gone(OTHER)));
}

/// A node of `cfg` with both connections up and the bus subscription (not its own channel's) confirmed.
fn subscribed(cfg: NodeConfig, now: Instant) -> Node {
    let mut node = Node::new(cfg, now);
    node.set_now(now);
    node.requests(&mut Vec::new());
    node.connected(COMMANDS);
    node.connected(BUS);
    commands(&mut node, BUS);
    node.input(BUS, &array(&[bulk(b"subscribe"), bulk(b"wschat:bus"), int(1)]));
    node
}

#[test]
fn a_hello_recorded_before_the_first_heartbeat_answered_is_published() {
    let now = Instant::now();
    let mut node = subscribed(config(0, DEFAULT_BUFFER), now);
    commands(&mut node, COMMANDS);
    // The subscription came first; the heartbeat (who is alive) has not answered yet.
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds.iter().map(|c| c[0].as_str()).collect::<Vec<_>>(), ["XADD", "PUBLISH"], "{cmds:?}");
    node.input(COMMANDS, &[beat(1, &[], &[ME, OTHER]), int(1024), int(1), int(1)].concat());
    let mut s = Section::new();
    s.snapshot();
    let mut bytes = Vec::new();
    write_header(&mut bytes, OTHER, 3);
    bytes.extend_from_slice(&s.bytes);
    node.input(BUS, &push(&bytes));
    node.on_snapshot(OTHER);
    node.set_now(now);
    assert!(node.joined(), "joined on the snapshot, without waiting out the snapshots' time");
}
