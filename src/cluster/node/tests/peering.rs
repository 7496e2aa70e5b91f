//! A node with `--cluster-peer`: which messages go over the peer link and which over the bus, the Redis
//! writes that wait, and what comes in over a link.

use super::*;
use crate::cluster::peer::wire::{take_frames, write_frame, Hello};
use crate::cluster::peer::{PeerConfig, PEER_BASE};

/// A joined node whose cluster is itself and OTHER, with its link to OTHER up (when `link_up`); the time.
fn peered(link_up: bool) -> (Node, Instant) {
    let now = Instant::now();
    let mut cfg = config(0, DEFAULT_BUFFER);
    cfg.peer = Some(PeerConfig { addr: "127.0.0.1:7300".parse().unwrap(), listener: None });
    let mut node = subscribed(cfg, now);
    node.input(BUS, &array(&[bulk(b"subscribe"), bulk(b"wschat:node:000000000000aaaa:direct"), int(2)]));
    let cmds = commands(&mut node, COMMANDS);
    let token = node.peers.as_ref().unwrap().token().to_string();
    assert_eq!(token.len(), 32);
    let set = format!("127.0.0.1:7300 {token}");
    assert_eq!(cmds[1], vec!["SET", "wschat:node:000000000000aaaa:peer", &set, "PX", "400"], "with its lease");
    node.input(COMMANDS, &[beat(1, &[], &[ME, OTHER]), b"+OK\r\n".to_vec(), int(1024)].concat());
    // The live node's address is asked for, and a link opened to it.
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds, [vec!["GET", "wschat:node:000000000000bbbb:peer"]]);
    node.input(COMMANDS, &bulk(b"127.0.0.1:7301 theirs"));
    let mut reqs = Vec::new();
    node.requests(&mut reqs);
    assert_eq!(reqs, [LinkRequest::Connect { link: PEER_BASE, addr: "127.0.0.1:7301".parse().unwrap() }]);
    node.connected(PEER_BASE);
    let hello = node.output(PEER_BASE).to_vec();
    node.written(PEER_BASE, hello.len());
    assert_eq!(Hello::take(&hello).unwrap().unwrap().0.token, "theirs");
    if link_up {
        node.input(PEER_BASE, b"OK\n");
        assert_eq!(node.stats().peer_links, 1);
    }
    // The hello goes out (over the link when it is up: its stream entry waits), OTHER's snapshot comes.
    node.end_turn();
    let mut now = now;
    if link_up {
        assert!(node.output(COMMANDS).is_empty());
        now += REDIS_LAG;
        node.set_now(now);
        assert_eq!(names(&commands(&mut node, COMMANDS)), ["XADD"]);
        node.input(COMMANDS, &bulk(b"1-0"));
    } else {
        assert_eq!(names(&commands(&mut node, COMMANDS)), ["XADD", "PUBLISH"]);
        node.input(COMMANDS, &[bulk(b"1-0"), int(1)].concat());
    }
    let mut s = Section::new();
    s.snapshot();
    let mut bytes = Vec::new();
    write_header(&mut bytes, OTHER, 7);
    bytes.extend_from_slice(&s.bytes);
    node.input(BUS, &push(&bytes));
    assert!(matches!(node.next_inbound(), Some(Inbound::Message(_))));
    node.on_snapshot(OTHER);
    node.set_now(now);
    (node, now)
}

/// The (origin, seq) of the messages written on link `link` since the last call.
fn sent(node: &mut Node, link: usize) -> Vec<(u64, u64)> {
    let bytes = node.output(link).to_vec();
    node.written(link, bytes.len());
    let mut frames = Vec::new();
    assert_eq!(take_frames(&bytes, 1 << 20, &mut frames), Ok(bytes.len()));
    frames.iter().map(|f| Message::peek(f).unwrap()).collect()
}

fn names(cmds: &[Cmd]) -> Vec<&str> {
    cmds.iter().map(|c| c[0].as_str()).collect()
}

#[test]
fn a_turn_goes_over_the_peer_link_and_its_redis_writes_wait_together() {
    let (mut node, now) = peered(true);
    sent(&mut node, PEER_BASE);
    commands(&mut node, COMMANDS);
    node.record(&say("one"));
    node.end_turn();
    node.record(&say("two"));
    node.end_turn();
    let got = sent(&mut node, PEER_BASE);
    assert_eq!(got.iter().map(|m| m.1).collect::<Vec<_>>(), [2, 3], "each turn's message at its turn's end");
    assert!(node.output(COMMANDS).is_empty(), "Redis waits: the other node has them");
    let lag = node.wakeup().expect("the loop wakes for them");
    assert!(lag <= now + REDIS_LAG);
    node.set_now(now + REDIS_LAG);
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(names(&cmds), ["XADD", "XADD"], "stream entries in one write, nothing published: {cmds:?}");
    node.input(COMMANDS, &[bulk(b"2-0"), bulk(b"3-0")].concat());
    assert_eq!(node.stats().buffered_bytes, 0, "confirmed");
    assert_eq!(node.stats().peer_sent_total, 3, "the hello and both turns");
}

#[test]
fn a_command_that_cannot_wait_takes_the_waiting_ones_along_in_order() {
    let (mut node, now) = peered(true);
    sent(&mut node, PEER_BASE);
    commands(&mut node, COMMANDS);
    node.record(&say("one"));
    node.end_turn();
    assert!(node.output(COMMANDS).is_empty());
    // A gap of OTHER's: its fill may not wait.
    node.input(BUS, &push(&message(OTHER, 10, "ten")));
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(names(&cmds), ["XADD", "XRANGE"], "{cmds:?}");
    assert!(node.lag_until.is_none() && !node.lag_urgent, "all written: nothing waits");
    let _ = now;
}

#[test]
fn without_a_link_to_every_node_messages_go_over_the_bus_until_it_is_up_and_the_bus_is_clear() {
    let (mut node, _) = peered(false);
    node.record(&say("one"));
    node.end_turn();
    assert!(node.output(PEER_BASE).is_empty());
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(names(&cmds), ["XADD", "PUBLISH"]);
    node.input(PEER_BASE, b"OK\n");
    node.record(&say("two"));
    node.end_turn();
    assert!(sent(&mut node, PEER_BASE).is_empty(), "message 2 is not confirmed yet: 3 would overtake it");
    assert_eq!(names(&commands(&mut node, COMMANDS)), ["XADD", "PUBLISH"]);
    node.input(COMMANDS, &[bulk(b"2-0"), int(1), bulk(b"3-0"), int(1)].concat());
    node.record(&say("three"));
    node.end_turn();
    assert_eq!(sent(&mut node, PEER_BASE).iter().map(|m| m.1).collect::<Vec<_>>(), [4]);
    assert!(node.output(COMMANDS).is_empty());
}

#[test]
fn after_a_lost_link_the_bus_carries_on_behind_the_waiting_stream_entries() {
    let (mut node, now) = peered(true);
    sent(&mut node, PEER_BASE);
    commands(&mut node, COMMANDS);
    node.record(&say("one"));
    node.end_turn();
    assert_eq!(sent(&mut node, PEER_BASE).len(), 1);
    node.closed(PEER_BASE, "reset");
    assert_eq!(node.stats().peer_links, 0);
    node.record(&say("two"));
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(names(&cmds), ["XADD", "XADD", "PUBLISH"], "{cmds:?}");
    assert_eq!((cmds[0][5].as_str(), cmds[1][5].as_str()), ("2-0", "3-0"), "the stream has 2 before 3 is published");
    // The link is made again after a back-off (its address asked again at a heartbeat).
    assert!(node.peers.as_mut().unwrap().wants_address(OTHER, now + Duration::from_secs(1)));
}

#[test]
fn an_incoming_link_is_taken_like_the_bus_from_its_own_node_only() {
    let (mut node, now) = peered(true);
    let link = node.accepted().expect("a free link");
    let token = node.peers.as_ref().unwrap().token().to_string();
    let mut bytes = Hello { prefix: "wschat".into(), from: OTHER, to: ME, token }.encode();
    write_frame(&mut bytes, &message(OTHER, 8, "eight"));
    write_frame(&mut bytes, &message(0xcccc, 1, "forged"));
    write_frame(&mut bytes, &message(OTHER, 9, "nine"));
    node.input(link, &bytes);
    assert_eq!(node.output(link), b"OK\n");
    assert_eq!(contents(&mut node), ["eight", "nine"]);
    assert_eq!((node.stats().peer_received_total, node.stats().garbage_total), (3, 1));
    // The same message over the bus as well: a repeat.
    node.input(BUS, &push(&message(OTHER, 9, "nine")));
    assert!(contents(&mut node).is_empty());
    // A wrong token closes the link.
    let link = node.accepted().unwrap();
    node.input(link, &Hello { prefix: "wschat".into(), from: OTHER, to: ME, token: "guess".into() }.encode());
    let mut reqs = Vec::new();
    node.requests(&mut reqs);
    assert_eq!(reqs, [LinkRequest::Close { link }]);
    let _ = now;
}

#[test]
fn a_turn_with_api_acts_for_another_node_goes_over_the_bus_before_them() {
    use crate::chat::event::Directed;
    let (mut node, _) = peered(true);
    sent(&mut node, PEER_BASE);
    node.record(&say("with an act"));
    node.direct(OTHER, &Directed::Close { uid: 5, reason: "bye" });
    node.end_turn();
    assert!(sent(&mut node, PEER_BASE).is_empty());
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(names(&cmds), ["XADD", "PUBLISH", "PUBLISH"], "{cmds:?}");
    assert_eq!((cmds[1][1].as_str(), cmds[2][1].as_str()), ("wschat:bus", "wschat:node:000000000000bbbb:direct"));
}
