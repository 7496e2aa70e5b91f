//! The node's bookkeeping with Redis: replies to its commands, the heartbeat and reaping, uid blocks,
//! joining (subscription, hello, history load) .

use std::collections::HashSet;
use std::time::Duration;

use log::{debug, info, warn};

use super::scripts::{self, Beat};
use super::{Inbound, Node, Purpose, UID_BLOCK};
use crate::cluster::link::Value;
use crate::cluster::wire::node_hex;

/// How long a joining node waits for the snapshots of the nodes that were alive, at least.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// Keys asked per SCAN round.
const SCAN_COUNT: &str = "1000";

impl Node {
    pub(super) fn on_reply(&mut self, purpose: Purpose, value: Value) {
        if let Value::Error(e) = &value {
            match purpose {
                // A stream entry that is already there: a resend after a lost answer.
                Purpose::Part { .. } if e.contains("equal or smaller") => {}
                _ => warn!("cluster: Redis refused a command ({purpose:?}): {e}"),
            }
        }
        match purpose {
            Purpose::Heartbeat => self.on_beat(&value),
            Purpose::Uids => self.on_uids(&value),
            Purpose::Part { seq } => self.part_done(seq),
            Purpose::History { seq, key, pushed } => {
                self.part_done(seq);
                self.trim_history(&key, pushed, &value);
            }
            Purpose::Fill { origin } => self.on_fill(origin, value),
            Purpose::Reap { node } => {
                if value == Value::Int(1) {
                    self.reaped(node);
                }
            }
            Purpose::Scan => self.on_scan(value),
            Purpose::LoadHistory { room } => self.on_history(room, value),
            Purpose::Ignore => {}
        }
    }

    /// Renews the lease, and learns who is alive and who expired.
    pub(super) fn heartbeat(&mut self) {
        let nodes = self.cfg.keys.nodes();
        let stream = self.cfg.keys.node_stream(self.cfg.id);
        let me = node_hex(self.cfg.id);
        let lease = self.cfg.lease().as_millis().to_string();
        let stream_ttl = (self.cfg.lease() + Duration::from_secs(3600)).as_millis().to_string();
        let args: [&[u8]; 8] = [
            b"EVAL",
            scripts::HEARTBEAT.as_bytes(),
            b"2",
            nodes.as_bytes(),
            stream.as_bytes(),
            me.as_bytes(),
            lease.as_bytes(),
            stream_ttl.as_bytes(),
        ];
        if self.command(Purpose::Heartbeat, &args) {
            self.heartbeat_asked = true;
        }
    }

    fn on_beat(&mut self, value: &Value) {
        self.heartbeat_asked = false;
        self.next_heartbeat = self.now + self.cfg.heartbeat;
        let Some(beat) = Beat::parse(value) else {
            self.stats.garbage_total += 1;
            return;
        };
        let first = std::mem::replace(&mut self.first_beat, false);
        if beat.added && !first && !self.shutting_down {
            warn!("cluster: this node's lease had been taken for expired; registering its users again");
            self.snapshot_due = true;
        }
        self.stats.nodes = beat.live.len() as u64;
        self.ensure_uids();
        if self.joining.awaiting.is_none() {
            let others: HashSet<u64> = beat.live.iter().copied().filter(|&n| n != self.cfg.id).collect();
            self.joining.awaiting = Some(others);
        }
        self.live = beat.live;
        let grace_over = self.connected_since.is_some_and(|t| self.now >= t + self.cfg.reap_grace());
        if !grace_over || self.shutting_down {
            return;
        }
        let nodes = self.cfg.keys.nodes();
        for node in beat.expired {
            if node == self.cfg.id {
                continue;
            }
            let hex = node_hex(node);
            self.command(Purpose::Reap { node }, &[b"ZREM", nodes.as_bytes(), hex.as_bytes()]);
        }
    }

    /// This node won the removal of `node`'s expired lease: it tells the cluster that node is gone (once in
    /// the whole cluster) and lets its own users hear of the departures.
    fn reaped(&mut self, node: u64) {
        info!("cluster: node {} stopped renewing its lease; its users are logged out", node_hex(node));
        self.turn.head.gone(node);
        self.inbound.push_back(Inbound::Gone(node));
        self.forget(node);
    }

    /// `node` is gone: its messages are no longer expected.
    pub fn forget(&mut self, node: u64) {
        if node == self.cfg.id {
            if !self.shutting_down {
                warn!("cluster: another node took this one for gone; registering its users again");
                self.snapshot_due = true;
            }
            return;
        }
        self.tracker.forget(node);
        self.holds.remove(&node);
    }

    /// `origin` said hello: it waits for a snapshot of this node's users.
    pub fn on_hello(&mut self, origin: u64) {
        if origin != self.cfg.id {
            self.snapshot_due = true;
        }
    }

    /// `origin`'s snapshot arrived.
    pub fn on_snapshot(&mut self, origin: u64) {
        if let Some(awaiting) = &mut self.joining.awaiting {
            awaiting.remove(&origin);
        }
    }

    /// Asks for a new uid block when less than half a block is left.
    pub(super) fn ensure_uids(&mut self) {
        let left: u64 = self.uids.iter().map(|(next, last)| last - next + 1).sum();
        if self.uids_asked || left >= UID_BLOCK / 2 {
            return;
        }
        let key = self.cfg.keys.uid();
        let floor = self.uid_floor.to_string();
        let size = UID_BLOCK.to_string();
        let args: [&[u8]; 6] =
            [b"EVAL", scripts::UID_BLOCK.as_bytes(), b"1", key.as_bytes(), floor.as_bytes(), size.as_bytes()];
        self.uids_asked = self.command(Purpose::Uids, &args);
    }

    fn on_uids(&mut self, value: &Value) {
        self.uids_asked = false;
        match *value {
            Value::Int(last) if last >= UID_BLOCK as i64 => {
                let last = last as u64;
                self.uids.push_back((last - UID_BLOCK + 1, last));
                self.uid_floor = self.uid_floor.max(last);
            }
            _ => {
                // Asked again at the next heartbeat, not at once: a key that keeps failing must not become a
                // loop of commands.
                self.stats.garbage_total += 1;
                warn!("cluster: {:?} is not a uid block; asking again at the next heartbeat", value);
                return;
            }
        }
        self.ensure_uids();
    }

    pub(super) fn on_subscribed(&mut self) {
        self.subscribed = true;
        self.subscriptions += 1;
        if self.subscriptions == 1 {
            debug!("cluster: subscribed to {}", self.cfg.keys.bus());
            self.joining.hello_at = Some(self.now);
        } else {
            // Resume every origin from its last delivered message, and ask everyone for a snapshot in case
            // what was missed cannot be had any more.
            let origins: Vec<(u64, u64)> = self.tracker.origins().collect();
            for (origin, last) in origins {
                self.hold(origin, last + 1, None);
            }
        }
        self.turn.head.hello();
    }

    /// Loads every room's history from Redis when the node has not yet (SCAN, then one LRANGE per room).
    pub(super) fn load_history(&mut self) {
        if self.joining.history_loaded || self.joining.scanning {
            return;
        }
        if self.cfg.history == 0 {
            self.joining.history_loaded = true;
            return;
        }
        self.scan("0");
    }

    fn scan(&mut self, cursor: &str) {
        let pattern = self.cfg.keys.history_pattern();
        let args: [&[u8]; 6] =
            [b"SCAN", cursor.as_bytes(), b"MATCH", pattern.as_bytes(), b"COUNT", SCAN_COUNT.as_bytes()];
        self.joining.scanning = self.command(Purpose::Scan, &args);
    }

    fn on_scan(&mut self, value: Value) {
        self.joining.scanning = false;
        let Value::Array(items) = value else { return };
        let [cursor, Value::Array(keys)] = items.as_slice() else { return };
        let limit = format!("-{}", self.cfg.history);
        for key in keys {
            let Some(key) = key.as_bytes().and_then(|k| std::str::from_utf8(k).ok()) else { continue };
            let Some(("history", room, "")) = self.cfg.keys.split_room_key(key) else {
                self.stats.garbage_total += 1;
                continue;
            };
            let room = room.to_string();
            if self.command(Purpose::LoadHistory { room }, &[b"LRANGE", key.as_bytes(), limit.as_bytes(), b"-1"]) {
                self.joining.loading += 1;
            }
        }
        match cursor.as_bytes() {
            Some(b"0") | None => self.joining.scanning = false,
            Some(c) => {
                let c = String::from_utf8_lossy(c).into_owned();
                self.scan(&c);
            }
        }
        self.check_history_loaded();
    }

    fn on_history(&mut self, room: String, value: Value) {
        self.joining.loading = self.joining.loading.saturating_sub(1);
        if let Value::Array(items) = value {
            let entries: Vec<Vec<u8>> = items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Bulk(b) => Some(b),
                    _ => None,
                })
                .collect();
            self.inbound.push_back(Inbound::History { room, entries });
        }
        self.check_history_loaded();
    }

    fn check_history_loaded(&mut self) {
        if !self.joining.scanning && self.joining.loading == 0 && !self.joining.history_loaded {
            self.joining.history_loaded = true;
            debug!("cluster: history loaded");
        }
    }

    /// Trims a room's history in Redis once it outgrew `--history` by a margin (so not every append costs
    /// a trim), and gives it its time to live when it is new or trimmed.
    fn trim_history(&mut self, key: &str, pushed: usize, value: &Value) {
        let Value::Int(len) = *value else { return };
        let len = usize::try_from(len).unwrap_or(0);
        let limit = self.cfg.history;
        let ttl = super::outbox::HISTORY_TTL.as_millis().to_string();
        if len > limit + 32 {
            let from = format!("-{limit}");
            self.command(Purpose::Ignore, &[b"LTRIM", key.as_bytes(), from.as_bytes(), b"-1"]);
            self.command(Purpose::Ignore, &[b"PEXPIRE", key.as_bytes(), ttl.as_bytes()]);
        } else if len <= pushed {
            self.command(Purpose::Ignore, &[b"PEXPIRE", key.as_bytes(), ttl.as_bytes()]);
        }
    }

    /// Takes logins once the node is subscribed, has heard the nodes that were alive (or waited long
    /// enough), has loaded the history and holds uids.
    pub(super) fn check_joined(&mut self) {
        if self.joined {
            return;
        }
        let Some(hello_at) = self.joining.hello_at else { return };
        let Some(awaiting) = &self.joining.awaiting else { return };
        let waited = self.now >= hello_at + SNAPSHOT_WAIT.max(self.cfg.heartbeat * 2);
        // The hello must have left (it is in the first message) before anyone could answer it.
        let hello_sent = self.seq > 0 && self.pending.iter().all(|m| m.seq > 1 || m.is_sent());
        if (awaiting.is_empty() && hello_sent || waited) && self.joining.history_loaded && !self.uids.is_empty() {
            self.joined = true;
            if !awaiting.is_empty() {
                warn!("cluster: {} node(s) sent no snapshot in time; joining without them", awaiting.len());
            }
            info!("cluster: joined as node {} ({} node(s) alive)", node_hex(self.cfg.id), self.live.len().max(1));
        }
    }
}
