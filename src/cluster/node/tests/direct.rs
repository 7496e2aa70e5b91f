//! The server API's acts for other nodes: each goes on its target node's own channel.

use super::*;

#[test]
fn api_acts_go_to_their_nodes_own_channels_only() {
    use crate::chat::event::Directed;
    use crate::chat::roster::Audience;
    use crate::cluster::wire::{put_directed, write_direct_header, DirectMessage};
    const THIRD: u64 = 0xcccc;
    let (mut node, _) = joined(0, DEFAULT_BUFFER, &[OTHER, THIRD]);
    let send = Directed::Send { to: Audience::Account("acct"), exclude: vec![], data: "x" };
    node.direct(OTHER, &send);
    node.direct(OTHER, &Directed::Close { uid: 5, reason: "bye" });
    node.end_turn();
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds.len(), 1, "one message for the turn's acts on one node: {cmds:?}");
    assert_eq!(cmds[0][..2], ["PUBLISH", "wschat:node:000000000000bbbb:direct"]);
    let m = DirectMessage::decode(&cmds[0].raw[2]).unwrap();
    assert_eq!((m.origin, m.target, m.acts.len()), (ME, OTHER, 2));
    assert_eq!(node.stats().direct_sent_total, 1);
    node.input(COMMANDS, &int(1));

    // What another node directs to this one arrives on its own channel; a message for another node is garbage.
    let channel = b"wschat:node:000000000000aaaa:direct";
    let mut mine = Vec::new();
    write_direct_header(&mut mine, OTHER, ME);
    put_directed(&mut mine, &send);
    node.input(BUS, &array(&[bulk(b"message"), bulk(channel), bulk(&mine)]));
    assert_eq!(node.next_inbound(), Some(Inbound::Direct(mine)));
    let mut stray = Vec::new();
    write_direct_header(&mut stray, OTHER, THIRD);
    node.input(BUS, &array(&[bulk(b"message"), bulk(channel), bulk(&stray)]));
    assert_eq!(node.next_inbound(), None);
    assert_eq!((node.stats().direct_received_total, node.stats().garbage_total), (1, 1));
}
