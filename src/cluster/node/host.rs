//! A node's connections as the reactor drives them: a link up (the bus subscribed, the commands connection
//! put to work), a link down (what was in flight written again on the next one), what a link brings in, and
//! the node as the reactor's [`LinkHost`] — the connects it asks for, bytes in and out, when it must wake.

use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::slot::{Slot, SlotState};
use super::{Node, BUS, COMMANDS, DIRECT_TAG, SENTINEL};
use crate::app::{LinkHost, LinkRequest};
use crate::cluster::link::Event;

impl Node {
    /// A connection went down (the reactor saw it, or the node gave it up).
    pub(super) fn link_down(&mut self, link: usize, reason: &str) {
        if link == SENTINEL {
            return self.sentinel_down(reason);
        }
        let was_up = self.slots[link].is_up();
        self.slots[link].down(reason, self.now);
        if was_up {
            self.stats.reconnects_total += 1;
            warn!("cluster: {} link to Redis lost: {reason}", if link == COMMANDS { "commands" } else { "bus" });
        } else if let Some(addr) = self.master {
            debug!("cluster: cannot connect to Redis at {addr}: {reason}");
        }
        // With Sentinel the master may have moved: the sentinels are asked again.
        self.ask_sentinels_again();
        if link == COMMANDS {
            self.commands_ready = false;
            (self.lag_until, self.lag_urgent) = (None, false);
            self.inflight.clear();
            self.heartbeat_asked = false;
            self.uids_asked = false;
            self.connected_since = None;
            self.joining.load.asking = false;
            for m in &mut self.pending {
                m.unsent();
            }
            for hold in self.holds.values_mut() {
                hold.asked = false;
            }
        } else {
            self.subscribed = false;
        }
    }

    pub(super) fn link_up(&mut self, link: usize) {
        if link == SENTINEL {
            return self.sentinel_up();
        }
        let slot = &mut self.slots[link];
        slot.up(&self.cfg.url, self.now);
        if link == BUS {
            let bus = self.cfg.keys.bus();
            if let Some(l) = slot.link() {
                l.subscribe(0, &[bus.as_bytes()]);
                l.subscribe(DIRECT_TAG, &[self.direct_channel.as_bytes()]);
            }
            return;
        }
        if self.cfg.sentinel.is_some() {
            // Only a server that says it is the master is written to; the rest waits for its answer.
            return self.check_role();
        }
        self.commands_up();
    }

    /// The commands connection is usable: register, take uids, send what waits, fill, load.
    pub(super) fn commands_up(&mut self) {
        self.commands_ready = true;
        if let Some(addr) = self.master {
            info!("cluster: connected to Redis at {addr}");
        }
        self.command_ups += 1;
        self.connected_since = Some(self.now);
        self.first_beat = true;
        self.heartbeat();
        self.ensure_uids();
        if self.command_ups > 1 {
            // Whatever Redis lost while away (it may have come back empty), this node's users are
            // registered again, and its latest messages written again (receivers drop what they have).
            self.snapshot_due = true;
            self.replay_recent();
        }
        self.send_pending();
        self.send_directs();
        let origins: Vec<u64> = self.holds.keys().copied().collect();
        for origin in origins {
            self.ask_fill(origin);
        }
        self.load_history();
    }

    pub(super) fn on_event(&mut self, link: usize, event: Event) {
        match (link, event) {
            (COMMANDS, Event::Reply { tag, value }) => {
                if let Some(purpose) = self.inflight.remove(&tag) {
                    self.on_reply(purpose, value);
                }
            }
            (BUS, Event::Reply { tag: DIRECT_TAG, value }) => {
                if value.is_error() {
                    warn!("cluster: SUBSCRIBE to this node's own channel refused: {value:?}");
                }
            }
            (BUS, Event::Message { channel, payload }) if channel == self.direct_channel.as_bytes() => {
                self.on_direct(payload)
            }
            (BUS, Event::Reply { value, .. }) => {
                if value.is_error() {
                    warn!("cluster: SUBSCRIBE refused: {value:?}");
                } else {
                    self.on_subscribed();
                }
            }
            (BUS, Event::Message { payload, .. }) => self.on_bus(payload),
            (SENTINEL, event) => self.on_sentinel(event),
            (_, other) => {
                self.stats.garbage_total += 1;
                debug!("cluster: unexpected input on link {link}: {other:?}");
            }
        }
    }
}

impl LinkHost for Node {
    fn requests(&mut self, out: &mut Vec<LinkRequest>) {
        out.append(&mut self.requests);
        if let Some(peers) = &mut self.peers {
            peers.requests(out);
        }
    }

    fn connected(&mut self, link: usize) {
        if Node::is_peer_link(link) {
            if let Some(peers) = &mut self.peers {
                peers.connected(link);
            }
            return;
        }
        if matches!(self.slots.get(link).map(|s| &s.state), Some(SlotState::Connecting { .. })) {
            self.link_up(link);
        }
    }

    fn input(&mut self, link: usize, bytes: &[u8]) {
        if Node::is_peer_link(link) {
            let mut messages = Vec::new();
            if let Some(peers) = &mut self.peers {
                peers.input(link, bytes, self.now, &mut messages);
            }
            return self.on_peer_messages(messages);
        }
        let Some(l) = self.slots.get_mut(link).and_then(Slot::link) else { return };
        l.feed(bytes);
        let mut events = Vec::new();
        while let Some(e) = l.next_event() {
            events.push(e);
        }
        let failed = match l.state() {
            crate::cluster::link::State::Failed(reason) => Some(reason.clone()),
            _ => None,
        };
        if l.sent_garbage() {
            self.stats.garbage_total += 1;
        }
        if !events.is_empty() {
            self.slots[link].answered(self.now);
        }
        for e in events {
            self.on_event(link, e);
        }
        if let Some(reason) = failed {
            self.requests.push(LinkRequest::Close { link });
            self.link_down(link, &reason);
        }
    }

    fn closed(&mut self, link: usize, reason: &str) {
        if Node::is_peer_link(link) {
            debug!("cluster: peer link {link} closed: {reason}");
            if let Some(peers) = &mut self.peers {
                peers.closed(link, self.now);
            }
            return;
        }
        if link < self.slots.len() && !matches!(self.slots[link].state, SlotState::Down { .. }) {
            self.link_down(link, reason);
        }
    }

    fn output(&self, link: usize) -> &[u8] {
        if Node::is_peer_link(link) {
            return self.peers.as_ref().map_or(&[], |p| p.output(link));
        }
        if link == COMMANDS && self.lagging() {
            // Only writes the peers do not wait for are queued: they go together, a little later.
            return &[];
        }
        self.link_output(link)
    }

    fn written(&mut self, link: usize, n: usize) {
        if Node::is_peer_link(link) {
            if let Some(peers) = &mut self.peers {
                peers.written(link, n);
            }
            return;
        }
        if let Some(l) = self.slots.get_mut(link).and_then(Slot::link) {
            l.consumed_output(n);
        }
        if link == COMMANDS && self.link_output(COMMANDS).is_empty() {
            (self.lag_until, self.lag_urgent) = (None, false);
        }
    }

    fn listener(&mut self) -> Option<std::net::TcpListener> {
        let listener = self.listener.take()?;
        if let Some(peer) = &self.cfg.peer {
            info!("cluster: taking peer links on {}", peer.addr);
        }
        std::sync::Arc::try_unwrap(listener).or_else(|shared| shared.try_clone()).ok()
    }

    fn accepted(&mut self) -> Option<usize> {
        let now = self.now;
        self.peers.as_mut()?.accepted(now)
    }

    fn wakeup(&self) -> Option<Instant> {
        let mut at = self.redis_wakeup();
        if self.lagging() {
            at = at.into_iter().chain(self.lag_until).min();
        }
        at.into_iter().chain(self.peers.as_ref().and_then(|p| p.wakeup())).min()
    }

    fn idle(&self) -> bool {
        self.peers.as_ref().is_none_or(|p| p.idle())
            && (self.pending.is_empty() && self.turn.is_empty() && self.link_output(COMMANDS).is_empty()
                || !self.commands_ready)
    }

    fn gather(&mut self, on: bool) {
        self.gathering = on;
        if !on {
            self.end_turn();
        }
    }
}

impl Node {
    /// What a Redis connection has to write, lag or not.
    fn link_output(&self, link: usize) -> &[u8] {
        match self.slots.get(link).map(|s| &s.state) {
            Some(SlotState::Up(l)) => l.pending_output(),
            _ => &[],
        }
    }

    /// When the Redis side next has something to do.
    fn redis_wakeup(&self) -> Option<Instant> {
        let mut at = self.slots.iter().filter_map(Slot::due).min();
        if self.master.is_none() {
            // No master to connect to: only the sentinel connection's time counts.
            at = self.slots.get(SENTINEL).and_then(Slot::due);
        }
        if self.commands_ready && !self.heartbeat_asked {
            at = Some(at.map_or(self.next_heartbeat, |t| t.min(self.next_heartbeat)));
        }
        if !self.joined {
            // Joining waits on time-outs too (the snapshots'); look again soon.
            at = Some(
                at.map_or(self.now + Duration::from_millis(100), |t| t.min(self.now + Duration::from_millis(100))),
            );
        }
        at
    }
}
