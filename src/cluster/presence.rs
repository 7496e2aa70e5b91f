//! The chat's presence seam filled by the cluster: uids from the node's blocks, login order from the wall
//! clock; this node's room events go to the [`Node`] to be published at the end of the turn, and what other
//! nodes publish is decoded here into the chat's [`Remote`] events, the node keeping its own part of it
//! (hellos, snapshots awaited, nodes gone).

use std::time::{Instant, SystemTime};

use log::warn;

use super::node::{Inbound, Node, NodeConfig, SayRefusal};
use super::wire::{read_history_entry, DirectMessage, Message, Record};
use crate::app::LinkHost;
use crate::chat::event::{Directed, ErrorCode, Position, Remote, RoomEvent, Said};
use crate::chat::presence::Presence;
use crate::chat::resume::Sessions;
use crate::chat::roster::Roster;
use crate::metrics::Metrics;

/// Presence shared by the nodes of a cluster.
#[derive(Debug)]
pub struct ClusterPresence {
    node: Node,
    /// Wall-clock milliseconds of the loop turn: a local login's place in its room's order.
    wall_ms: u64,
}

impl ClusterPresence {
    /// The presence of a node configured by `cfg`, connecting from the first turn.
    pub fn new(cfg: NodeConfig, now: Instant) -> ClusterPresence {
        ClusterPresence { node: Node::new(cfg, now), wall_ms: wall_ms() }
    }

    /// Decodes another node's message into `out`; hellos and the end of a snapshot are the node's.
    fn interpret_message<'a>(&mut self, bytes: &'a [u8], out: &mut Vec<Remote<'a>>) {
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.node.count_garbage();
                warn!("cluster: skipped a message: {e}");
                return;
            }
        };
        let origin = msg.origin;
        let mut snapshot: Option<Vec<u64>> = None;
        // A say's place among its room's says in this message: a room's records are one run.
        let mut says: (&str, u32) = ("", 0);
        for record in msg.records() {
            match record {
                Record::Room(RoomEvent::Session { uid, session, .. }) if matches!(out.last(), Some(Remote::Present { uid: u, .. }) if *u == uid) =>
                {
                    // A snapshot's user and its session: one thing.
                    if let Some(Remote::Present { session: s, .. }) = out.last_mut() {
                        *s = Some(session);
                    }
                }
                Record::Room(event) => {
                    if says.0 != event.room() {
                        says = (event.room(), 0);
                    }
                    let at = match event {
                        RoomEvent::Login { uid, .. } => {
                            self.node.saw_uid(uid);
                            None
                        }
                        RoomEvent::Say { .. } => {
                            says.1 += 1;
                            Some(Position { origin, seq: msg.seq, index: says.1 - 1 })
                        }
                        _ => None,
                    };
                    out.push(Remote::Room { origin, event, at });
                }
                Record::Hello => self.node.on_hello(origin),
                Record::Snapshot => snapshot = Some(Vec::new()),
                Record::Present { room, uid, name, order, user_id } => {
                    if let Some(seen) = &mut snapshot {
                        seen.push(uid);
                    }
                    self.node.saw_uid(uid);
                    out.push(Remote::Present { origin, room, uid, name, order, user_id, session: None });
                }
                Record::Gone { node } => self.gone(node, out),
            }
        }
        if let Some(mut present) = snapshot {
            present.sort_unstable();
            out.push(Remote::Snapshot { origin, present });
            self.node.on_snapshot(origin);
        }
    }

    /// `node` left the cluster: the node forgets it, the chat its users (unless it is this node).
    fn gone(&mut self, node: u64, out: &mut Vec<Remote<'_>>) {
        self.node.forget(node);
        if node != self.node.id() {
            out.push(Remote::Gone(node));
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Presence for ClusterPresence {
    type Inbound = Inbound;

    fn allocate_uid(&mut self) -> Option<u64> {
        self.node.allocate_uid()
    }

    fn login_order(&mut self) -> u64 {
        self.wall_ms
    }

    fn accepts_logins(&self) -> bool {
        self.node.joined()
    }

    fn accepts_say(&mut self) -> Result<(), ErrorCode> {
        self.node.accepts_say().map_err(|why| match why {
            SayRefusal::RedisAway => ErrorCode::ClusterUnavailable,
            SayRefusal::Backlog => ErrorCode::ClusterBusy,
        })
    }

    fn replicate(&mut self, event: &RoomEvent<'_>) -> Option<Position> {
        self.node.record(event)
    }

    fn direct(&mut self, node: u64, act: &Directed<'_>) {
        self.node.direct(node, act);
    }

    fn keeps_empty_rooms(&self) -> bool {
        true
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn next_inbound(&mut self) -> Option<Inbound> {
        self.node.next_inbound()
    }

    fn interpret<'a>(&mut self, item: &'a Inbound, out: &mut Vec<Remote<'a>>) {
        match item {
            Inbound::Message(bytes) => self.interpret_message(bytes, out),
            Inbound::Gone(node) => self.gone(*node, out),
            Inbound::Direct(bytes) => match DirectMessage::decode(bytes) {
                Ok(m) => out.extend(m.acts.into_iter().map(|act| Remote::Directed { origin: m.origin, act })),
                Err(e) => {
                    self.node.count_garbage();
                    warn!("cluster: skipped a directed message: {e}");
                }
            },
            Inbound::History { room, entries } => {
                let mut said = Vec::with_capacity(entries.len());
                for entry in entries {
                    match read_history_entry(entry, room) {
                        Ok(RoomEvent::Say { from_uid, from_name, content, time, .. }) => {
                            said.push(Said::new(from_uid, from_name, time, content))
                        }
                        _ => {
                            self.node.count_garbage();
                            warn!("cluster: skipped a history entry of room {room:?} that is not wschat's");
                        }
                    }
                }
                out.push(Remote::History { room, said });
            }
        }
    }

    fn set_now(&mut self, now: Instant) {
        self.wall_ms = wall_ms();
        self.node.set_now(now);
    }

    fn links(&mut self) -> Option<&mut dyn LinkHost> {
        Some(&mut self.node)
    }

    fn end_turn(&mut self, roster: &Roster, sessions: &Sessions) {
        if self.node.snapshot_due() {
            self.node.publish_snapshot(|f| roster.for_each_here(&mut |user| f(user, sessions.id_of(user.uid))));
        } else {
            self.node.end_turn();
        }
    }

    fn health(&self) -> Result<(), String> {
        self.node.health()
    }

    fn shutdown(&mut self) {
        self.node.shutdown();
    }

    fn fill_metrics(&self, m: &mut Metrics) {
        self.node.stats().write(&mut m.app);
    }
}
