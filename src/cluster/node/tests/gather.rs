//! Tests of a node whose turns gather while a coalescing window is open (`LinkHost::gather`): one message
//! for the window, its says keeping the places they were given, a snapshot after what gathered.

use super::*;

#[test]
fn gathered_turns_make_one_message_sealed_when_released() {
    let (mut node, _) = joined(0, DEFAULT_BUFFER, &[OTHER]);
    node.gather(true);
    let first = node.record(&say("one")).expect("a say has a place");
    node.end_turn();
    assert!(commands(&mut node, COMMANDS).is_empty(), "gathering: nothing goes out at the turn's end");
    let second = node.record(&say("two")).expect("a say has a place");
    node.end_turn();
    // Both says belong to the one message the window makes, in order.
    assert_eq!((first.seq, first.index), (second.seq, 0));
    assert_eq!(second.index, 1);
    node.gather(false);
    let cmds = commands(&mut node, COMMANDS);
    assert_eq!(cmds.iter().map(|c| c[0].as_str()).collect::<Vec<_>>(), ["XADD", "PUBLISH"], "{cmds:?}");
    let m = Message::decode(&cmds[1].raw[2]).unwrap();
    assert_eq!(m.seq, first.seq);
    let says = m.records().filter(|r| matches!(r, Record::Room(RoomEvent::Say { .. }))).count();
    assert_eq!(says, 2, "{:?}", m.records().collect::<Vec<_>>());
    // Not gathering: each turn is its own message again.
    let third = node.record(&say("three")).expect("a say has a place");
    assert_eq!(third.seq, first.seq + 1);
    node.end_turn();
    assert_eq!(commands(&mut node, COMMANDS).len(), 2);
}

#[test]
fn a_snapshot_due_while_gathering_goes_after_what_gathered() {
    let (mut node, _) = joined(0, DEFAULT_BUFFER, &[OTHER]);
    node.gather(true);
    let said = node.record(&say("before the snapshot")).expect("a say has a place");
    node.publish_snapshot(|_| {});
    let cmds = commands(&mut node, COMMANDS);
    let published: Vec<Message> =
        cmds.iter().filter(|c| c[0] == "PUBLISH").map(|c| Message::decode(&c.raw[2]).unwrap()).collect();
    assert_eq!(published.len(), 2, "{cmds:?}");
    assert_eq!(published[0].seq, said.seq, "the say keeps the sequence number it was given");
    assert_eq!(published[1].seq, said.seq + 1);
}
