//! The node's side of its peer links (`--cluster-peer`, [`crate::cluster::peer`]): which messages go over
//! them instead of the bus, and what comes in over them.
//!
//! A message goes over the links only when every other node that would read it on the bus (alive, or
//! heard from) has a link up, and no earlier message is still on its way through the bus: a receiver that
//! gets message N over a link before N−1 over the bus sees a gap and fetches N−1 from the stream, which
//! Redis confirmed by then. Otherwise it is published as before (a receiver drops a message it already has).
//! When a link breaks, the next message goes over the bus after the stream entries of those that went over
//! links (one connection, in order), so a receiver that missed some finds them in the stream.

use log::warn;

use super::Node;
use crate::cluster::peer::PEER_BASE;
use crate::cluster::wire::{Message, Tracker};

impl Node {
    /// Sends `message` to every other node over its peer link, if they all have one up and the bus has no
    /// earlier message of this node on its way; whether it went.
    pub(super) fn send_to_peers(&mut self, message: &[u8]) -> bool {
        let Some(peers) = &self.peers else { return false };
        if !peers.fits(message.len()) || self.pending.iter().any(|m| !m.is_direct()) {
            return false;
        }
        // A turn with server API acts for other nodes goes over the bus: those acts go through Redis on the
        // same connection right after it, so a node reads the turn's say and its API send in that order.
        if self.has_directs() {
            return false;
        }
        let (me, live, tracker) = (self.cfg.id, &self.live, &self.tracker);
        if others(me, live, tracker).next().is_none() || !others(me, live, tracker).all(|n| peers.ready(n)) {
            return false;
        }
        let now = self.now;
        let Some(peers) = &mut self.peers else { return false };
        for node in others(me, live, tracker) {
            if !peers.send(node, message, now) {
                // That link was dropped: the message goes over the bus too (the others drop the repeat).
                return false;
            }
        }
        peers.count_sent();
        true
    }

    /// Messages another node sent over its peer link: taken like the bus's, if they are its own.
    pub(super) fn on_peer_messages(&mut self, messages: Vec<(u64, Vec<u8>)>) {
        for (from, payload) in messages {
            self.stats.peer_received_total += 1;
            match Message::peek(&payload) {
                Ok((origin, seq)) if origin == from && origin != self.cfg.id => self.accept(origin, seq, payload),
                Ok((origin, _)) => {
                    self.stats.garbage_total += 1;
                    warn!("cluster: node {from:016x} sent a message of node {origin:016x} over its peer link");
                }
                Err(e) => {
                    self.stats.garbage_total += 1;
                    warn!("cluster: skipped a message from node {from:016x}'s peer link: {e}");
                }
            }
        }
    }

    /// Closes the links of nodes neither alive nor heard from, and gives up openings that took too long.
    pub(super) fn tend_peer_links(&mut self) {
        let Some(peers) = &mut self.peers else { return };
        let (me, live, tracker) = (self.cfg.id, &self.live, &self.tracker);
        peers.tend(self.now, |n| others(me, live, tracker).any(|o| o == n));
    }

    /// Whether `link` is a peer link (rather than a Redis connection).
    pub(super) fn is_peer_link(link: usize) -> bool {
        link >= PEER_BASE
    }
}

/// The other nodes that read this node's messages: the live ones, and those heard from (whose lease this
/// node may not have seen yet).
fn others<'a>(me: u64, live: &'a [u64], tracker: &'a Tracker) -> impl Iterator<Item = u64> + 'a {
    let heard = tracker.origins().map(|(n, _)| n).filter(|n| !live.contains(n));
    live.iter().copied().chain(heard).filter(move |&n| n != me)
}
