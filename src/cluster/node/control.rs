//! The node's bookkeeping with Redis: replies to its commands, the heartbeat and reaping, uid blocks,
//! joining (subscription, hello; the history load is in `history.rs`).

use std::collections::HashSet;
use std::time::Duration;

use log::{debug, info, warn};

use super::scripts::{self, Beat};
use super::{Inbound, Node, Purpose, UID_BLOCK};
use crate::cluster::link::Value;
use crate::cluster::sentinel::means_not_master;
use crate::cluster::wire::node_hex;

/// A lease counts as renewed while this node was connected when that was at least this long after it
/// connected (the two clocks are compared across a round trip).
const RENEWAL_SLACK: Duration = Duration::from_millis(100);

/// A beat timed for another lease's end comes this long after it (Redis's clock and this node's tick apart).
const EXPIRY_SLACK: Duration = Duration::from_millis(20);

/// How long a joining node waits for the snapshots of the nodes that were alive, at least.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

impl Node {
    pub(super) fn on_reply(&mut self, purpose: Purpose, value: Value) {
        if let Value::Error(e) = &value {
            if means_not_master(e) && purpose != Purpose::Role {
                // Not written: the connection is dropped, so everything unconfirmed is written again to the
                // master the sentinels name next.
                // Counted and logged at most once per 10 s with the other refusals (NOREPLICAS may last).
                let e = format!("{e}; reconnecting to the master to write it again");
                self.note_redis_error("a write", &e);
                self.drop_link(super::COMMANDS, "the server is not a usable master");
                return;
            }
            match purpose {
                // A stream entry that is already there: a resend after a lost answer.
                Purpose::Part { .. } if e.contains("equal or smaller") => {}
                _ => {
                    let what = format!("{purpose:?}");
                    self.note_redis_error(&what, e);
                }
            }
        }
        match purpose {
            Purpose::Heartbeat => self.on_beat(&value),
            Purpose::Uids => self.on_uids(&value),
            // A part Redis refused (out of memory) is not sent again: it is counted, and the message is done.
            Purpose::Part { seq } => self.part_done(seq),
            Purpose::Fill { origin } => self.on_fill(origin, value),
            Purpose::Reap { node } => {
                if value == Value::Int(1) {
                    self.reaped(node);
                }
            }
            Purpose::HistoryPage => self.on_history_page(value),
            Purpose::Role => self.on_role(&value),
            Purpose::PeerAddr { node } => {
                let now = self.now;
                if let Some(peers) = &mut self.peers {
                    peers.address(node, value.as_bytes(), now);
                }
            }
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
        if let (Some(peer), Some(peers)) = (&self.cfg.peer, &self.peers) {
            // Where this node takes peer links, for as long as its lease.
            let key = self.cfg.keys.node_peer(self.cfg.id);
            let value = format!("{} {}", peer.addr, peers.token());
            let args: [&[u8]; 5] = [b"SET", key.as_bytes(), value.as_bytes(), b"PX", lease.as_bytes()];
            self.command(Purpose::Ignore, &args);
        }
    }

    /// Asks where the live nodes without a peer link take them, and closes the links of nodes gone.
    fn tend_peers(&mut self) {
        self.tend_peer_links();
        let now = self.now;
        let Some(peers) = &mut self.peers else { return };
        let wanted: Vec<u64> = self.live.iter().copied().filter(|&n| peers.wants_address(n, now)).collect();
        for node in wanted {
            let key = self.cfg.keys.node_peer(node);
            if !self.command(Purpose::PeerAddr { node }, &[b"GET", key.as_bytes()]) {
                if let Some(peers) = &mut self.peers {
                    peers.address(node, None, now);
                }
            }
        }
    }

    fn on_beat(&mut self, value: &Value) {
        self.heartbeat_asked = false;
        self.next_heartbeat = self.now + self.cfg.heartbeat;
        let Some(beat) = Beat::parse(value) else {
            if !value.is_error() {
                self.stats.garbage_total += 1;
            }
            return;
        };
        // Another lease ends before the next beat: beat again just after it, so a dead node is reaped when
        // its lease runs out (4 heartbeats after its last renewal) rather than up to a heartbeat later.
        if let Some(ms) = beat.next_expiry_ms {
            let at = self.now + Duration::from_millis(ms) + EXPIRY_SLACK;
            self.next_heartbeat = self.next_heartbeat.min(at);
        }
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
        self.tend_peers();
        let Some(since) = self.connected_since else { return };
        if self.shutting_down {
            return;
        }
        let grace_over = self.now >= since + self.cfg.reap_grace();
        let lease = self.cfg.lease();
        let nodes = self.cfg.keys.nodes();
        for (node, ago) in beat.expired {
            // Within the grace after this node connected, a lease is left alone unless it was renewed while
            // this node was connected: then it ran out with Redis reachable, not in an outage all shared.
            let renewed = ago.and_then(|ms| self.now.checked_sub(Duration::from_millis(ms) + lease));
            let renewed_since = renewed.is_some_and(|at| at > since + RENEWAL_SLACK);
            if node == self.cfg.id || !grace_over && !renewed_since {
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
                // An error reply was logged with the other refusals of its interval.
                if !value.is_error() {
                    warn!("cluster: {:?} is not a uid block; asking again at the next heartbeat", value);
                }
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
