//! The hub of a cluster node: other nodes' events applied to this node's users, like local ones. A login
//! or logout elsewhere changes the presence replica and reaches the room's local members; a say to all
//! reaches them and the room's history; a private say reaches its target if it is here. A snapshot makes an
//! origin's users exactly the ones it lists; a node gone takes all of its users with it.

use std::collections::HashSet;
use std::rc::Rc;

use log::warn;

use super::Hub;
use crate::chat::event::{Event, Said, Sink, To};
use crate::cluster::node::Inbound;
use crate::cluster::wire::{read_history_entry, Message, Record};
use crate::cluster::ClusterPresence;

impl Hub<ClusterPresence> {
    /// Applies everything the cluster delivered, in order; `time` stamps what this node says on its own
    /// (departures it learns of from a snapshot or a node gone).
    pub fn apply_inbound(&mut self, time: &str, sink: &mut impl Sink) {
        while let Some(item) = self.presence.node_mut().next_inbound() {
            match item {
                Inbound::Message(bytes) => self.apply_message(&bytes, time, sink),
                Inbound::Gone(node) => self.remote_gone(node, time, sink),
                Inbound::History { room, entries } => self.load_history(&room, &entries),
            }
        }
    }

    fn apply_message(&mut self, bytes: &[u8], time: &str, sink: &mut impl Sink) {
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.presence.count_garbage();
                warn!("cluster: skipped a message: {e}");
                return;
            }
        };
        let origin = msg.origin;
        let mut snapshot: Option<HashSet<u64>> = None;
        for record in msg.records() {
            match record {
                Record::Login { room, uid, name, order, time } => {
                    self.remote_join(origin, room, uid, name, order, time, sink)
                }
                Record::Say { room, from_uid, from_name, to_uid: None, content, time } => {
                    let event = Event::Say { from_uid, from_name, to_uid: None, echo_to: None, content, time };
                    sink.send(To::Room(room), event);
                    if self.limits.history > 0 {
                        let room: Rc<str> = Rc::from(room);
                        self.history.keep(&room, Said::new(from_uid, from_name, time, content));
                    }
                }
                Record::Say { room, from_uid, from_name, to_uid: Some(uid), content, time } => {
                    let target = self.by_uid.get(&uid).copied();
                    if let Some(conn) = target.filter(|c| self.users.get(c).is_some_and(|u| &*u.room == room)) {
                        let event = Event::Say { from_uid, from_name, to_uid: Some(uid), echo_to: None, content, time };
                        sink.send(To::Conns(&[conn]), event);
                    }
                }
                Record::Logout { uid, time, .. } => self.remote_leave(uid, time, sink),
                Record::Hello => self.presence.node_mut().on_hello(origin),
                Record::Snapshot => snapshot = Some(HashSet::new()),
                Record::Present { room, uid, name, order } => {
                    if let Some(seen) = &mut snapshot {
                        seen.insert(uid);
                    }
                    self.remote_join(origin, room, uid, name, order, time, sink);
                }
                Record::Gone { node } => self.remote_gone(node, time, sink),
            }
        }
        if let Some(seen) = snapshot {
            for uid in self.presence.replica().uids_of(origin) {
                if !seen.contains(&uid) {
                    self.remote_leave(uid, time, sink);
                }
            }
            self.presence.node_mut().on_snapshot(origin);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn remote_join(
        &mut self,
        origin: u64,
        room: &str,
        uid: u64,
        name: &str,
        order: u64,
        time: &str,
        sink: &mut impl Sink,
    ) {
        if self.by_uid.contains_key(&uid) {
            // Only a Redis that lost the uid counter could hand one uid out twice; this node's user keeps it.
            warn!("cluster: node {origin:016x} announced uid {uid}, which is a user of this node; ignored");
            return;
        }
        let moved_from = self.presence.replica().seat(uid).map(|s| s.room.clone()).filter(|r| &**r != room);
        if let Some(old) = moved_from {
            self.remote_leave(uid, time, sink);
            sink.roster_changed(&old);
        }
        if self.presence.remote_join(origin, room, uid, name, order) {
            sink.roster_changed(room);
            sink.send(To::Room(room), Event::Login { uid, name, time });
        }
    }

    fn remote_leave(&mut self, uid: u64, time: &str, sink: &mut impl Sink) {
        if self.by_uid.contains_key(&uid) {
            return; // This node's own user: only this node says when it leaves.
        }
        let Some(seat) = self.presence.remote_leave(uid) else { return };
        sink.roster_changed(&seat.room);
        sink.send(To::Room(&seat.room), Event::Logout { uid, name: &seat.name, time });
    }

    fn remote_gone(&mut self, node: u64, time: &str, sink: &mut impl Sink) {
        self.presence.node_mut().forget(node);
        if node == self.presence.node_id() {
            return;
        }
        for uid in self.presence.replica().uids_of(node) {
            self.remote_leave(uid, time, sink);
        }
    }

    fn load_history(&mut self, room: &str, entries: &[Vec<u8>]) {
        let mut said = Vec::with_capacity(entries.len());
        for entry in entries {
            match read_history_entry(entry, room) {
                Ok(Record::Say { from_uid, from_name, content, time, .. }) => {
                    said.push(Said::new(from_uid, from_name, time, content))
                }
                _ => {
                    self.presence.count_garbage();
                    warn!("cluster: skipped a history entry of room {room:?} that is not wschat's");
                }
            }
        }
        let room: Rc<str> = Rc::from(room);
        self.history.replace(&room, said);
    }
}
