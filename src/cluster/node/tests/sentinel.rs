//! Tests of a node whose master Sentinel watches: asked of the sentinels, `ROLE` checked, a move followed, the
//! next sentinel when one fails, a write refused as READONLY written again.

use super::*;

/// A node whose master Sentinel watches (two sentinels), none known yet.
fn with_sentinels(now: Instant) -> Node {
    let mut cfg = config(0, DEFAULT_BUFFER);
    cfg.addr = None;
    cfg.sentinel = Some(SentinelConfig {
        sentinels: vec!["127.0.0.1:26379".parse().unwrap(), "127.0.0.1:26380".parse().unwrap()],
        master: "mymaster".to_string(),
        login: RedisUrl::parse("redis://127.0.0.1:1").unwrap(),
    });
    let mut node = Node::new(cfg, now);
    node.set_now(now);
    node
}

fn requests(node: &mut Node) -> Vec<LinkRequest> {
    let mut reqs = Vec::new();
    node.requests(&mut reqs);
    reqs
}

fn master_answer(port: u16) -> Vec<u8> {
    array(&[bulk(b"127.0.0.1"), bulk(port.to_string().as_bytes())])
}

#[test]
fn with_sentinel_the_master_is_asked_for_its_role_checked_and_a_move_followed() {
    let now = Instant::now();
    let mut node = with_sentinels(now);
    let sentinel: std::net::SocketAddr = "127.0.0.1:26379".parse().unwrap();
    assert_eq!(
        requests(&mut node),
        [LinkRequest::Connect { link: SENTINEL, addr: sentinel }],
        "no master to connect to"
    );
    assert!(node.health().unwrap_err().contains("asking the sentinels where master \"mymaster\" is"));
    node.connected(SENTINEL);
    let cmds = commands(&mut node, SENTINEL);
    assert_eq!(cmds, [vec!["SENTINEL", "get-master-addr-by-name", "mymaster"], vec!["SUBSCRIBE", "+switch-master"]]);
    node.input(
        SENTINEL,
        &[master_answer(7400), array(&[bulk(b"subscribe"), bulk(b"+switch-master"), int(1)])].concat(),
    );
    assert_eq!(node.stats().sentinel_up, 1);
    node.set_now(now);
    let master: std::net::SocketAddr = "127.0.0.1:7400".parse().unwrap();
    assert_eq!(
        requests(&mut node),
        [LinkRequest::Connect { link: COMMANDS, addr: master }, LinkRequest::Connect { link: BUS, addr: master }]
    );
    // The server the sentinels named is written to only once it says it is the master.
    node.connected(COMMANDS);
    assert_eq!(commands(&mut node, COMMANDS), [vec!["ROLE"]]);
    node.record(&say("waits for the role"));
    node.end_turn();
    assert!(commands(&mut node, COMMANDS).is_empty(), "nothing before the role");
    node.input(COMMANDS, &array(&[bulk(b"master"), int(0), array(&[])]));
    let names: Vec<String> = commands(&mut node, COMMANDS).iter().map(|c| c[0].clone()).collect();
    assert_eq!(names[..2], ["EVAL", "EVAL"], "the heartbeat and a uid block, once the role said master");

    // +switch-master: both master connections dropped and made again to the new one at once.
    let switch = b"mymaster 127.0.0.1 7400 127.0.0.1 7401";
    node.input(SENTINEL, &array(&[bulk(b"message"), bulk(b"+switch-master"), bulk(switch)]));
    assert_eq!(node.stats().master_changes_total, 1);
    let reqs = requests(&mut node);
    assert!(reqs.contains(&LinkRequest::Close { link: COMMANDS }), "{reqs:?}");
    node.set_now(now);
    let moved: std::net::SocketAddr = "127.0.0.1:7401".parse().unwrap();
    let reqs = requests(&mut node);
    assert!(reqs.contains(&LinkRequest::Connect { link: COMMANDS, addr: moved }), "{reqs:?}");
    // A server that is still a replica is left, and the sentinels asked again.
    node.connected(COMMANDS);
    assert_eq!(commands(&mut node, COMMANDS), [vec!["ROLE"]]);
    node.input(COMMANDS, &array(&[bulk(b"slave"), bulk(b"127.0.0.1"), int(7400)]));
    let reqs = requests(&mut node);
    assert!(
        reqs.contains(&LinkRequest::Close { link: COMMANDS }) && reqs.contains(&LinkRequest::Close { link: SENTINEL }),
        "{reqs:?}"
    );
}

#[test]
fn a_sentinel_that_knows_no_master_or_is_away_makes_way_for_the_next() {
    let now = Instant::now();
    let mut node = with_sentinels(now);
    requests(&mut node);
    node.connected(SENTINEL);
    commands(&mut node, SENTINEL);
    node.input(SENTINEL, b"$-1\r\n");
    assert_eq!(requests(&mut node), [LinkRequest::Close { link: SENTINEL }]);
    node.set_now(now + Duration::from_secs(1));
    let next: std::net::SocketAddr = "127.0.0.1:26380".parse().unwrap();
    assert_eq!(requests(&mut node), [LinkRequest::Connect { link: SENTINEL, addr: next }]);
    node.closed(SENTINEL, "connection refused");
    assert_eq!(node.stats().sentinel_failures_total, 1);
    node.set_now(now + Duration::from_secs(2));
    let first: std::net::SocketAddr = "127.0.0.1:26379".parse().unwrap();
    assert_eq!(requests(&mut node), [LinkRequest::Connect { link: SENTINEL, addr: first }], "round and round");
}

#[test]
fn a_write_refused_as_readonly_is_written_again_to_the_next_master() {
    let (mut node, now) = joined(0, DEFAULT_BUFFER, &[OTHER]);
    node.record(&say("precious"));
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds.iter().map(|c| c[0].as_str()).collect::<Vec<_>>(), ["XADD", "PUBLISH"]);
    node.input(COMMANDS, b"-READONLY You can't write against a read only replica.\r\n");
    assert_eq!(requests(&mut node), [LinkRequest::Close { link: COMMANDS }], "the connection is given up");
    assert!(node.stats().buffered_bytes > 0, "the say is still owed");
    node.set_now(now + Duration::from_secs(1));
    requests(&mut node);
    node.connected(COMMANDS);
    let again = commands(&mut node, COMMANDS)
        .into_iter()
        .filter(|c| c[0] == "XADD")
        .filter(|c| Message::decode(&c.raw[7]).unwrap().records().any(|r| r == Record::Room(say("precious"))))
        .count();
    assert_eq!(again, 1, "written again on the new connection");
}
