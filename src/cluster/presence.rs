//! The chat's presence seam filled by the cluster: answers come from the [`Replica`] at once; this node's
//! logins, says and logouts go to the [`Node`] to be published at the end of the turn; what other nodes
//! publish comes back through the hub ([`crate::chat::Hub::apply_inbound`]).

use std::time::{Instant, SystemTime};

use super::node::{Node, NodeConfig, SayRefusal};
use super::replica::{Replica, Seat};
use crate::app::LinkHost;
use crate::chat::event::{ErrorCode, Event, Sink};
use crate::chat::hub::Hub;
use crate::chat::presence::{Presence, Shared};
use crate::metrics::Metrics;

/// Presence shared by the nodes of a cluster.
#[derive(Debug)]
pub struct ClusterPresence {
    node: Node,
    replica: Replica,
    /// Wall-clock milliseconds of the loop turn: a local login's place in its room's order.
    wall_ms: u64,
}

impl ClusterPresence {
    /// The presence of a node configured by `cfg`, connecting from the first turn.
    pub fn new(cfg: NodeConfig, now: Instant) -> ClusterPresence {
        ClusterPresence { node: Node::new(cfg, now), replica: Replica::new(), wall_ms: wall_ms() }
    }

    /// The node.
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node.id()
    }

    /// Every user of the cluster as this node knows them.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// A user of another node is in `room`; false when that was known already.
    pub fn remote_join(&mut self, origin: u64, room: &str, uid: u64, name: &str, order: u64) -> bool {
        self.node.saw_uid(uid);
        self.replica.insert(origin, room, uid, name, order)
    }

    /// A user of another node left; where it was.
    pub fn remote_leave(&mut self, uid: u64) -> Option<Seat> {
        self.replica.remove(uid)
    }

    /// Something from the cluster was not wschat's and was skipped.
    pub fn count_garbage(&mut self) {
        self.node.count_garbage();
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Presence for ClusterPresence {
    fn allocate_uid(&mut self) -> Option<u64> {
        self.node.allocate_uid()
    }

    fn join(&mut self, room: &str, uid: u64, name: &str) {
        let me = self.node.id();
        self.replica.insert(me, room, uid, name, self.wall_ms);
    }

    fn leave(&mut self, room: &str, uid: u64) -> usize {
        self.replica.remove(uid);
        self.replica.count(room)
    }

    fn count(&self, room: &str) -> usize {
        self.replica.count(room)
    }

    fn for_each_user(&self, room: &str, f: &mut dyn FnMut(u64, &str)) {
        self.replica.for_each_user(room, f);
    }

    fn contains(&self, room: &str, uid: u64) -> bool {
        self.replica.seat(uid).is_some_and(|s| &*s.room == room)
    }

    fn name_of(&self, uid: u64) -> Option<&str> {
        self.replica.seat(uid).map(|s| &*s.name)
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

    fn replicate(&mut self, room: &str, event: &Event<'_>) {
        match *event {
            Event::Login { uid, name, time } => {
                let order = self.replica.seat(uid).map_or(self.wall_ms, |s| s.order);
                self.node.record_login(room, uid, name, order, time);
            }
            Event::Say { from_uid, from_name, to_uid, content, time, .. } => {
                self.node.record_say(room, from_uid, from_name, to_uid, content, time)
            }
            Event::Logout { uid, name, time } => self.node.record_logout(room, uid, name, time),
            _ => {}
        }
    }

    fn keeps_empty_rooms(&self) -> bool {
        true
    }
}

impl Shared for ClusterPresence {
    fn set_now(&mut self, now: Instant) {
        self.wall_ms = wall_ms();
        self.node.set_now(now);
    }

    fn links(&mut self) -> Option<&mut dyn LinkHost> {
        Some(&mut self.node)
    }

    fn pump(hub: &mut Hub<Self>, time: &str, sink: &mut impl Sink) {
        hub.apply_inbound(time, sink);
    }

    fn end_turn(&mut self) {
        if self.node.snapshot_due() {
            let me = self.node.id();
            let replica = &self.replica;
            self.node.publish_snapshot(|f| replica.for_each_of_node(me, f));
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
