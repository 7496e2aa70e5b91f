//! A cluster node's Redis side, sans-IO: its two connections (commands, and the bus subscription), the
//! lease it renews and the dead nodes it reaps, its uid blocks, the message it publishes per loop turn
//! (queued while Redis is away, up to `--cluster-buffer`), and the messages it receives, put in order per
//! origin with gaps filled from the origin's stream. The reactor moves the bytes ([`LinkHost`]); the chat
//! presence ([`crate::cluster::ClusterPresence`]) feeds it local events and applies what it delivers.
//!
//! Joining: the node subscribes, renews its lease (which tells it who is alive), publishes a hello that
//! every node answers with a snapshot of its users, and loads the rooms' history; it takes logins once it
//! has all of that (or the snapshots' wait ran out) and a block of uids.

mod control;
mod direct;
mod failover;
mod history;
mod host;
mod inbox;
mod outbox;
mod peering;
mod refusals;
mod scripts;
mod slot;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use self::outbox::{Outgoing, Turn};
use self::refusals::Refusals;
use self::slot::{Slot, SlotState};
use super::link::{RedisUrl, Tag};
use super::wire::{Keys, Tracker};
use crate::app::LinkRequest;
use crate::cluster::peer::{PeerConfig, Peers};

pub use self::inbox::Inbound;
pub use self::refusals::SayRefusal;

/// The connection that carries commands (publishes, stream writes, leases, fills).
pub const COMMANDS: usize = 0;
/// The connection subscribed to the bus.
pub const BUS: usize = 1;

/// The connection to a sentinel (with Sentinel only): where the master is, and `+switch-master`.
pub const SENTINEL: usize = 2;

/// The tag of the bus connection's subscription to this node's own channel (the bus's is 0).
const DIRECT_TAG: Tag = 1;

/// Default `--cluster-heartbeat-ms`.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;
/// Default `--cluster-buffer`.
pub const DEFAULT_BUFFER: usize = 8 * 1024 * 1024;

/// Default `--cluster-stream-bytes`: what a node's stream keeps for receivers that missed messages.
pub const DEFAULT_STREAM_BYTES: usize = 16 * 1024 * 1024;

/// Entries kept in a node's stream at most, whatever their size: one per loop turn that published.
pub const STREAM_LEN: usize = 10_000;

/// Bytes counted for a stream entry beyond its message: what Redis spends on keeping one.
pub const STREAM_ENTRY_OVERHEAD: usize = 64;

/// How long the writes of messages that went over peer links (their stream entries and history) may wait
/// before going to Redis, so that several go in one write: the other nodes have them already.
const REDIS_LAG: Duration = Duration::from_millis(10);

/// Refusals (commands Redis answered with an error, says refused) are logged at most once per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A lease lasts this many heartbeats; a node silent for longer is reaped.
const LEASE_BEATS: u32 = 4;

/// Uids taken from Redis at a time; a new block is asked for when half of the last one is used.
const UID_BLOCK: u64 = 1024;

/// No answer from Redis for this long while commands wait: the connection is dropped and made again.
const STALL: Duration = Duration::from_secs(10);

/// Where the master is asked for when Sentinel watches it.
#[derive(Debug, Clone)]
pub struct SentinelConfig {
    /// The sentinels, asked in turn.
    pub sentinels: Vec<SocketAddr>,
    /// The master's name.
    pub master: String,
    /// How to log in to a sentinel.
    pub login: RedisUrl,
}

/// What a node is told at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// How to log in to the Redis server (with Sentinel: to whichever is the master).
    pub url: RedisUrl,
    /// Its address, resolved (with Sentinel: the master's as the sentinels said at start, if one answered).
    pub addr: Option<SocketAddr>,
    /// The sentinels, when Sentinel watches the master.
    pub sentinel: Option<SentinelConfig>,
    /// The keys under `--cluster-prefix`.
    pub keys: Keys,
    /// `--cluster-heartbeat-ms`.
    pub heartbeat: Duration,
    /// `--cluster-buffer`: bytes of messages kept while Redis is away.
    pub buffer: usize,
    /// `--history`: messages kept per room (0: no history in Redis).
    pub history: usize,
    /// `--history-budget`: bytes of history the cluster keeps in Redis over all rooms when this node
    /// writes, and the most a joining node loads.
    pub history_budget: usize,
    /// `--cluster-stream-bytes`: bytes of this node's messages its stream keeps.
    pub stream_bytes: usize,
    /// This node's id (random, fresh at every start).
    pub id: u64,
    /// `--cluster-peer`: where it takes the other nodes' peer links; with it, it sends its messages over
    /// peer links to the nodes that take them.
    pub peer: Option<PeerConfig>,
}

impl NodeConfig {
    fn lease(&self) -> Duration {
        self.heartbeat * LEASE_BEATS
    }

    /// A node that reconnected leaves others' expired leases alone this long, so that nodes reconnecting
    /// after the same Redis outage (their back-off grows to [`slot::MAX_BACKOFF`]) are not taken for dead —
    /// unless a lease was renewed after it connected (that node went silent while Redis was reachable).
    fn reap_grace(&self) -> Duration {
        self.lease() * 2
    }
}

/// The figures of `wschat_cluster_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// This node's id (`wschat_cluster_node{id="…"}`): which node answered.
    pub node: u64,
    /// 1 while both connections are up and the node has joined.
    pub up: u64,
    /// Nodes alive, as the last heartbeat saw them.
    pub nodes: u64,
    /// Messages published.
    pub published_total: u64,
    /// Messages from other nodes delivered.
    pub received_total: u64,
    /// Connections to Redis lost.
    pub reconnects_total: u64,
    /// Bytes of messages not yet confirmed by Redis.
    pub buffered_bytes: u64,
    /// Says refused because the buffer was full.
    pub refused_total: u64,
    /// Of those, the ones refused while Redis was up: it confirmed less than this node's users said.
    pub refused_backlog_total: u64,
    /// Commands Redis answered with an error (a write refused at `maxmemory`, …).
    pub redis_errors_total: u64,
    /// Bytes of history a joining node loaded from Redis.
    pub history_loaded_bytes: u64,
    /// Bytes of this node's messages its stream holds, as its trimming counts them.
    pub stream_bytes: u64,
    /// Messages of other nodes that could not be had (trimmed from a stream, or lost with Redis).
    pub lost_total: u64,
    /// Messages or values that were not wschat's, skipped.
    pub garbage_total: u64,
    /// Directed messages (the server API's acts on another node's users) published.
    pub direct_sent_total: u64,
    /// Directed messages received on this node's own channel.
    pub direct_received_total: u64,
    /// Directed messages dropped because Redis was away past `--cluster-buffer`.
    pub direct_dropped_total: u64,
    /// 1 when the node takes peer links (`--cluster-peer`).
    pub peer: u64,
    /// Outgoing peer links up (`--cluster-peer`).
    pub peer_links: u64,
    /// Messages sent over peer links instead of the bus.
    pub peer_sent_total: u64,
    /// Messages received over peer links (repeats included).
    pub peer_received_total: u64,
    /// Peer links refused or dropped.
    pub peer_failures_total: u64,
    /// 1 when the node finds its master through Sentinel.
    pub sentinel: u64,
    /// With Sentinel: 1 while a sentinel connection is up and has said where the master is.
    pub sentinel_up: u64,
    /// With Sentinel: connects to a sentinel that failed.
    pub sentinel_failures_total: u64,
    /// With Sentinel: times the master moved (a failover seen by this node).
    pub master_changes_total: u64,
}

/// What a command on the commands connection was for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Heartbeat,
    Uids,
    /// One part (stream entry, publish, history append) of message `seq`.
    Part {
        seq: u64,
    },
    /// Where node `node` takes peer links.
    PeerAddr {
        node: u64,
    },
    Fill {
        origin: u64,
    },
    Reap {
        node: u64,
    },
    HistoryPage,
    /// The master's `ROLE`, with Sentinel.
    Role,
    Ignore,
}

/// Where joining stands.
#[derive(Debug, Default)]
struct Joining {
    /// The live nodes of the first heartbeat, whose snapshots are awaited.
    awaiting: Option<HashSet<u64>>,
    /// When the hello went out; the snapshots are waited for until then plus a grace.
    hello_at: Option<Instant>,
    /// The rooms' history is loaded.
    history_loaded: bool,
    /// Where its loading stands.
    load: history::Load,
}

/// One node's Redis side.
#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    now: Instant,
    /// The commands and bus connections, and with Sentinel the sentinel connection.
    slots: Vec<Slot>,
    /// Where the master is: the server of a `redis://` URL, or what the sentinels said last (`None` until
    /// one said).
    master: Option<SocketAddr>,
    /// The commands connection may be used: it is up and, with Sentinel, its server said it is the master.
    commands_ready: bool,
    /// The sentinel asked next.
    sentinel_at: usize,
    /// When the sentinels were last asked again because of a lost master link.
    resolved_at: Option<Instant>,
    requests: Vec<LinkRequest>,
    inflight: HashMap<Tag, Purpose>,
    next_tag: Tag,
    /// Uid ranges (next, last) not handed out yet.
    uids: VecDeque<(u64, u64)>,
    uids_asked: bool,
    /// The highest uid known anywhere: the counter's floor when asking for a block.
    uid_floor: u64,
    joining: Joining,
    joined: bool,
    /// Confirmed subscriptions so far (the first is the join, the others are resumptions).
    subscriptions: u64,
    subscribed: bool,
    /// Commands connections made so far.
    command_ups: u64,
    connected_since: Option<Instant>,
    next_heartbeat: Instant,
    heartbeat_asked: bool,
    /// The first heartbeat of this commands connection is not answered yet.
    first_beat: bool,
    live: Vec<u64>,
    /// A snapshot of this node's users is due (someone said hello, or presence must be re-registered).
    snapshot_due: bool,
    /// The turns' records gather into one message until the reactor writes the links (`LinkHost::gather`).
    gathering: bool,
    turn: Turn,
    seq: u64,
    pending: VecDeque<Outgoing>,
    pending_bytes: usize,
    /// Messages Redis confirmed lately, kept to be written again after a reconnect (Redis may have come
    /// back empty, or lost what was on its way to subscribers).
    recent: VecDeque<(Instant, Outgoing)>,
    recent_bytes: usize,
    /// This node's entries in its stream, oldest first, with what each is counted for: the oldest are
    /// trimmed (`MINID`) to stay within `--cluster-stream-bytes`.
    stream: VecDeque<(u64, usize)>,
    stream_bytes: usize,
    /// Refusals not logged yet, and when they were last logged.
    refusals: Refusals,
    tracker: Tracker,
    holds: HashMap<u64, inbox::Hold>,
    inbound: VecDeque<Inbound>,
    /// The server API's acts for other nodes, not written yet.
    directs: direct::Directs,
    /// This node's own channel, `{p}:node:{id}:direct`.
    direct_channel: String,
    stats: ClusterStats,
    shutting_down: bool,
    /// The peer links, with `--cluster-peer`.
    peers: Option<Peers>,
    /// The peer listener, until the reactor takes it.
    listener: Option<std::sync::Arc<std::net::TcpListener>>,
    /// Commands written may wait until then ([`REDIS_LAG`]): only writes of messages the peers have.
    lag_until: Option<Instant>,
    /// A command that may not wait was queued: everything queued goes at the turn's end.
    lag_urgent: bool,
}

impl Node {
    /// A node that will connect at the first turn.
    pub fn new(cfg: NodeConfig, now: Instant) -> Node {
        let slots = (0..if cfg.sentinel.is_some() { 3 } else { 2 }).map(|_| Slot::new(now)).collect();
        let master = cfg.addr;
        let mut cfg = cfg;
        let listener = cfg.peer.as_mut().and_then(|p| p.listener.take());
        // A peer is sent at most what the buffer holds: beyond it, the bus carries its messages.
        let peers = cfg.peer.as_ref().and_then(|_| match crate::random_id::hex128() {
            Some(token) => Some(Peers::new(cfg.id, cfg.keys.prefix(), token, PEER_MAX_MESSAGE, cfg.buffer)),
            None => {
                log::warn!("cluster: no random token for peer links (the random source failed); using the bus");
                None
            }
        });
        Node {
            direct_channel: cfg.keys.node_direct(cfg.id),
            cfg,
            now,
            slots,
            master,
            commands_ready: false,
            sentinel_at: 0,
            resolved_at: None,
            requests: Vec::new(),
            inflight: HashMap::new(),
            next_tag: 1,
            uids: VecDeque::new(),
            uids_asked: false,
            uid_floor: 0,
            joining: Joining::default(),
            joined: false,
            subscriptions: 0,
            subscribed: false,
            command_ups: 0,
            connected_since: None,
            next_heartbeat: now,
            heartbeat_asked: false,
            first_beat: true,
            live: Vec::new(),
            snapshot_due: false,
            gathering: false,
            turn: Turn::default(),
            seq: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
            recent: VecDeque::new(),
            recent_bytes: 0,
            stream: VecDeque::new(),
            stream_bytes: 0,
            refusals: Refusals::default(),
            tracker: Tracker::new(),
            holds: HashMap::new(),
            inbound: VecDeque::new(),
            directs: direct::Directs::default(),
            stats: ClusterStats::default(),
            shutting_down: false,
            peers,
            listener,
            lag_until: None,
            lag_urgent: false,
        }
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.cfg.id
    }

    /// Whether the node has joined the cluster (it takes logins from then on, Redis up or not).
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// The figures for /metrics.
    pub fn stats(&self) -> ClusterStats {
        let mut s = self.stats;
        s.node = self.cfg.id;
        s.up = u64::from(self.health().is_ok());
        s.buffered_bytes = (self.pending_bytes + self.turn.bytes()) as u64;
        s.history_loaded_bytes = self.joining.load.loaded;
        s.stream_bytes = self.stream_bytes as u64;
        s.sentinel = u64::from(self.cfg.sentinel.is_some());
        if let Some(p) = self.peers.as_ref().map(|p| p.stats()) {
            s.peer = 1;
            (s.peer_links, s.peer_sent_total, s.peer_failures_total) = (p.links, p.sent_total, p.failures_total);
        }
        s
    }

    /// Why the node cannot serve as a full member of the cluster right now, if it cannot.
    pub fn health(&self) -> Result<(), String> {
        if self.master.is_none() {
            let master = self.cfg.sentinel.as_ref().map_or("", |s| s.master.as_str());
            let why = &self.slots.get(SENTINEL).map_or("", |s| s.down_reason.as_str());
            return Err(format!("cluster: asking the sentinels where master {master:?} is (last: {why})"));
        }
        if !self.commands_ready && self.slots[COMMANDS].is_up() {
            return Err("cluster: checking that the server the sentinels named is the master".to_string());
        }
        if !self.joined {
            let mut why = "cluster: joining (waiting for Redis and the other nodes)".to_string();
            for (i, what) in [(COMMANDS, "commands"), (BUS, "subscription")] {
                let slot = &self.slots[i];
                if !slot.is_up() {
                    why.push_str(&format!("; the {what} link to Redis is down: {}", slot.down_reason));
                }
            }
            return Err(why);
        }
        for (i, what) in [(COMMANDS, "commands"), (BUS, "subscription")] {
            let slot = &self.slots[i];
            match &slot.state {
                SlotState::Up(link) if link.awaiting() > 0 && self.now > slot.last_input + self.cfg.heartbeat * 2 => {
                    let secs = (self.now - slot.last_input).as_secs_f64();
                    return Err(format!("cluster: Redis has not answered on the {what} link for {secs:.1} s"));
                }
                SlotState::Up(_) => {}
                _ => return Err(format!("cluster: the {what} link to Redis is down: {}", slot.down_reason)),
            }
        }
        Ok(())
    }

    /// Sets the time; runs what is due (reconnects, heartbeats, time-outs). Called once per loop turn.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
        for link in 0..self.slots.len() {
            let addr = if link == SENTINEL { self.sentinel_addr() } else { self.master };
            let slot = &mut self.slots[link];
            match &slot.state {
                SlotState::Down { retry_at } if now >= *retry_at && !self.shutting_down => {
                    // Without a master known yet, only the sentinel connection is made.
                    if let Some(addr) = addr {
                        slot.state = SlotState::Connecting { since: now };
                        self.requests.push(LinkRequest::Connect { link, addr });
                    }
                }
                SlotState::Connecting { since } if now >= *since + slot::CONNECT_TIMEOUT => {
                    self.requests.push(LinkRequest::Close { link });
                    self.link_down(link, "connect timed out");
                }
                SlotState::Up(l) if l.awaiting() > 0 && now > slot.last_input + STALL => {
                    self.requests.push(LinkRequest::Close { link });
                    self.link_down(link, "Redis stopped answering");
                }
                _ => {}
            }
        }
        self.prune_recent();
        self.log_refusals(false);
        if self.peers.as_ref().and_then(|p| p.wakeup()).is_some_and(|t| now >= t) {
            self.tend_peer_links();
        }
        if self.commands_ready && !self.heartbeat_asked && now >= self.next_heartbeat {
            self.heartbeat();
        }
        self.check_joined();
    }

    /// Asks the reactor to drop both connections after what is queued is written: the node is leaving.
    /// Local users' logouts (from the hub) and a "gone" record for this node go out first.
    pub fn shutdown(&mut self) {
        if std::mem::replace(&mut self.shutting_down, true) {
            return;
        }
        self.turn.head.gone(self.cfg.id);
        let nodes = self.cfg.keys.nodes();
        let me = super::wire::node_hex(self.cfg.id);
        self.command(Purpose::Ignore, &[b"ZREM", nodes.as_bytes(), me.as_bytes()]);
    }

    /// The next item received from the cluster, in order.
    pub fn next_inbound(&mut self) -> Option<Inbound> {
        self.inbound.pop_front()
    }

    /// Something from the cluster was not wschat's and was skipped (counted in `wschat_cluster_garbage_total`).
    pub fn count_garbage(&mut self) {
        self.stats.garbage_total += 1;
    }

    /// `uid` is in use somewhere: no uid block below it will be asked for.
    pub fn saw_uid(&mut self, uid: u64) {
        self.uid_floor = self.uid_floor.max(uid);
    }

    /// A uid for a local login, when a block has one.
    pub fn allocate_uid(&mut self) -> Option<u64> {
        let (next, last) = self.uids.front_mut()?;
        let uid = *next;
        if *next == *last {
            self.uids.pop_front();
        } else {
            *next += 1;
        }
        self.ensure_uids();
        Some(uid)
    }

    /// Queues a command on the commands connection (nothing when it is down: what matters is redone when
    /// it comes back).
    fn command(&mut self, purpose: Purpose, args: &[&[u8]]) -> bool {
        self.command_lagging(purpose, args, false)
    }

    /// Queues a command that may wait up to [`REDIS_LAG`] (`lag`) for others to go in the same write, or
    /// that goes at the turn's end, with everything queued before it.
    fn command_lagging(&mut self, purpose: Purpose, args: &[&[u8]], lag: bool) -> bool {
        if !self.commands_ready {
            return false;
        }
        let tag = self.next_tag;
        let Some(link) = self.slots[COMMANDS].link() else { return false };
        link.command(tag, args);
        self.next_tag += 1;
        self.inflight.insert(tag, purpose);
        if lag {
            self.lag_until.get_or_insert(self.now + REDIS_LAG);
        } else {
            self.lag_urgent = true;
        }
        true
    }

    /// Whether the commands queued wait (see [`Node::command_lagging`]).
    fn lagging(&self) -> bool {
        !self.lag_urgent && self.lag_until.is_some_and(|t| self.now < t)
    }
}

/// The largest message a peer link takes (every node the same, whatever its `--cluster-buffer`); a larger
/// one goes over the bus.
const PEER_MAX_MESSAGE: usize = 64 * 1024 * 1024;

#[cfg(test)]
mod tests;
