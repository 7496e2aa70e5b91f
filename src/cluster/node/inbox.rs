//! What a node receives: the bus's messages put in order per origin. The next one is delivered, a repeat
//! dropped; a gap holds the origin's messages back while the missing ones are fetched from its stream
//! (`XRANGE`), and whatever the stream no longer has is counted lost, so delivery goes on.

use std::collections::VecDeque;

use log::{debug, warn};

use super::{Node, Purpose};
use crate::cluster::link::Value;
use crate::cluster::wire::{Message, Verdict};

/// What the chat applies, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Another node's message, checked for order (decode it with [`Message::decode`]).
    Message(Vec<u8>),
    /// A directed message for this node (decode it with [`crate::cluster::wire::DirectMessage::decode`]).
    Direct(Vec<u8>),
    /// A node is gone and this node reaped it: its users leave.
    Gone(u64),
    /// A room's history as Redis keeps it, oldest first (each entry an encoded say), loaded when joining.
    History {
        /// The room.
        room: String,
        /// The entries.
        entries: Vec<Vec<u8>>,
    },
}

/// An origin whose messages wait for a fill.
#[derive(Debug, Default)]
pub(super) struct Hold {
    /// Its live messages that came meanwhile, in order.
    queue: VecDeque<(u64, Vec<u8>)>,
    /// The first sequence number to fetch.
    from: u64,
    /// The last one (`None`: everything the stream has, when resuming after a lost subscription).
    to: Option<u64>,
    /// The XRANGE was sent on the current commands connection.
    pub asked: bool,
}

impl Node {
    pub(super) fn on_bus(&mut self, payload: Vec<u8>) {
        let (origin, seq) = match Message::peek(&payload) {
            Ok(header) => header,
            Err(e) => {
                self.stats.garbage_total += 1;
                warn!("cluster: skipped a message on the bus: {e}");
                return;
            }
        };
        if origin == self.cfg.id {
            return; // This node's own, delivered locally when it happened.
        }
        self.accept(origin, seq, payload);
    }

    pub(super) fn accept(&mut self, origin: u64, seq: u64, payload: Vec<u8>) {
        if let Some(hold) = self.holds.get_mut(&origin) {
            hold.queue.push_back((seq, payload));
            return;
        }
        match self.tracker.observe(origin, seq) {
            Verdict::Deliver => self.deliver(payload),
            Verdict::Duplicate => debug!("cluster: dropped a repeat of message {seq} of node {origin:016x}"),
            Verdict::Gap { from, to } => {
                debug!("cluster: messages {from}..={to} of node {origin:016x} missed; fetching them");
                self.hold(origin, from, Some(to));
                if let Some(hold) = self.holds.get_mut(&origin) {
                    hold.queue.push_back((seq, payload));
                }
            }
        }
    }

    fn deliver(&mut self, payload: Vec<u8>) {
        self.stats.received_total += 1;
        self.inbound.push_back(super::Inbound::Message(payload));
    }

    /// Holds `origin`'s messages back and fetches `from..=to` (or on) from its stream.
    pub(super) fn hold(&mut self, origin: u64, from: u64, to: Option<u64>) {
        self.holds.entry(origin).or_insert(Hold { queue: VecDeque::new(), from, to, asked: false });
        self.ask_fill(origin);
    }

    pub(super) fn ask_fill(&mut self, origin: u64) {
        let Some(hold) = self.holds.get(&origin) else { return };
        if hold.asked {
            return;
        }
        let key = self.cfg.keys.node_stream(origin);
        let from = format!("{}-0", hold.from);
        let to = hold.to.map_or("+".to_string(), |to| format!("{to}-0"));
        let asked =
            self.command(Purpose::Fill { origin }, &[b"XRANGE", key.as_bytes(), from.as_bytes(), to.as_bytes()]);
        if let Some(hold) = self.holds.get_mut(&origin) {
            hold.asked = asked;
        }
    }

    /// The fill of `origin` came: deliver what the stream had, count what it had not, then release what
    /// was held (which may show another gap).
    pub(super) fn on_fill(&mut self, origin: u64, value: Value) {
        let Some(hold) = self.holds.remove(&origin) else { return };
        for payload in stream_entries(value) {
            match Message::peek(&payload) {
                Ok((o, seq)) if o == origin => {
                    let mut verdict = self.tracker.observe(origin, seq);
                    if let Verdict::Gap { to, .. } = verdict {
                        // Missing from the stream too: what lies before this entry is lost.
                        self.lost(origin, to);
                        verdict = self.tracker.observe(origin, seq);
                    }
                    if verdict == Verdict::Deliver {
                        self.deliver(payload);
                    }
                }
                _ => self.stats.garbage_total += 1,
            }
        }
        if let Some(to) = hold.to {
            self.lost(origin, to);
        }
        for (seq, payload) in hold.queue {
            self.accept(origin, seq, payload);
        }
    }

    /// Messages of `origin` up to `to` that were not delivered cannot be had: counted, and skipped.
    fn lost(&mut self, origin: u64, to: u64) {
        let last = self.tracker.last(origin).unwrap_or(0);
        if to > last {
            self.stats.lost_total += to - last;
            warn!("cluster: {} message(s) of node {origin:016x} could not be recovered", to - last);
            self.tracker.accept_loss(origin, to);
        }
    }
}

/// The payloads (field `m`) of an XRANGE answer, in order; anything else is skipped.
fn stream_entries(value: Value) -> Vec<Vec<u8>> {
    let Value::Array(entries) = value else { return Vec::new() };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else { return None };
            let mut parts = parts.into_iter();
            let _id = parts.next()?;
            let Value::Array(fields) = parts.next()? else { return None };
            let mut fields = fields.into_iter();
            while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
                if name.as_bytes() == Some(b"m") {
                    if let Value::Bulk(b) = value {
                        return Some(b);
                    }
                }
            }
            None
        })
        .collect()
}
