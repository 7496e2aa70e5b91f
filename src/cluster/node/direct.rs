//! The acts of the server API this node directs to one other node: gathered per target node over a loop
//! turn, published at its end on that node's own channel, kept (within `--cluster-buffer`) while Redis is
//! away; and the ones other nodes direct to this node, received on its channel.

use std::collections::VecDeque;

use log::warn;

use super::{Inbound, Node, Purpose};
use crate::chat::event::Directed;
use crate::cluster::wire::{put_directed, write_direct_header, DirectMessage};

/// Directed messages of this node not written to Redis yet.
#[derive(Debug, Default)]
pub(super) struct Directs {
    /// This turn's message per target node.
    turn: Vec<(u64, Vec<u8>)>,
    /// Whole messages waiting for the commands connection, oldest first.
    waiting: VecDeque<(u64, Vec<u8>)>,
    waiting_bytes: usize,
}

impl Node {
    /// Directs `act` to node `target` (published at the end of the turn, with the turn's other acts for it).
    pub fn direct(&mut self, target: u64, act: &Directed<'_>) {
        let turn = &mut self.directs.turn;
        let at = match turn.iter().position(|(t, _)| *t == target) {
            Some(at) => at,
            None => {
                let mut buf = Vec::with_capacity(64);
                write_direct_header(&mut buf, self.cfg.id, target);
                turn.push((target, buf));
                turn.len() - 1
            }
        };
        put_directed(&mut turn[at].1, act);
    }

    /// Whether directed messages of this turn, or older ones, wait to be written.
    pub(super) fn has_directs(&self) -> bool {
        !self.directs.turn.is_empty() || !self.directs.waiting.is_empty()
    }

    /// The end of a turn: its directed messages join the waiting ones, and what waits is written.
    pub(super) fn end_turn_directs(&mut self) {
        for (target, bytes) in self.directs.turn.drain(..) {
            self.directs.waiting_bytes += bytes.len();
            self.directs.waiting.push_back((target, bytes));
        }
        // Bounded like the bus's buffer: past it the oldest acts are dropped, and said so.
        while self.directs.waiting_bytes > self.cfg.buffer {
            let Some((target, bytes)) = self.directs.waiting.pop_front() else { break };
            self.directs.waiting_bytes -= bytes.len();
            self.stats.direct_dropped_total += 1;
            warn!("cluster: an API act for node {target:016x} dropped: Redis has been away too long");
        }
        self.send_directs();
    }

    /// Publishes the waiting directed messages, if the commands connection is up.
    pub(super) fn send_directs(&mut self) {
        if !self.commands_ready {
            return;
        }
        while let Some((target, bytes)) = self.directs.waiting.pop_front() {
            let channel = self.cfg.keys.node_direct(target);
            if !self.command(Purpose::Ignore, &[b"PUBLISH", channel.as_bytes(), &bytes]) {
                self.directs.waiting.push_front((target, bytes));
                return;
            }
            self.directs.waiting_bytes -= bytes.len();
            self.stats.direct_sent_total += 1;
        }
    }

    /// A message on this node's own channel: handed to the chat if it is a directed message for this node.
    pub(super) fn on_direct(&mut self, payload: Vec<u8>) {
        match DirectMessage::decode(&payload) {
            Ok(m) if m.target == self.cfg.id => {
                self.stats.direct_received_total += 1;
                self.inbound.push_back(Inbound::Direct(payload));
            }
            Ok(m) => {
                self.stats.garbage_total += 1;
                warn!("cluster: a directed message for node {:016x} came to this node; skipped", m.target);
            }
            Err(e) => {
                self.stats.garbage_total += 1;
                warn!("cluster: skipped a directed message: {e}");
            }
        }
    }
}
