//! What a node publishes: the records of one loop turn, grouped by room, become one message with the next
//! sequence number; it goes to the node's stream and the bus (and a room's says to all to its history) in
//! one pipelined write, and stays queued — counted against `--cluster-buffer` — until Redis confirmed every
//! part, so that a connection lost in between resends it (receivers drop the duplicate).

use std::collections::HashMap;
use std::time::Duration;

use super::refusals::SayRefusal;
use super::{Node, Purpose, STREAM_ENTRY_OVERHEAD, STREAM_LEN};
use crate::chat::event::{Position, RoomEvent};
use crate::chat::roster::HereUser;
use crate::cluster::wire::{history_entry, write_header, Section};

/// Confirmed messages are kept this long to be written again after a reconnect: longer than a message
/// takes from Redis to the subscribers, so one that Redis lost on the way (killed, restarted empty) still
/// reaches them.
const RECENT_AGE: Duration = Duration::from_secs(10);

/// At most this many bytes of confirmed messages are kept for that.
const RECENT_BYTES: usize = 4 * 1024 * 1024;

/// The records of the current loop turn.
#[derive(Debug, Default)]
pub(super) struct Turn {
    /// Node-level records (hello, gone), first in the message.
    pub head: Section,
    /// Each room's records, in the order the rooms first had one this turn; sections past `used` are
    /// kept for their buffers.
    rooms: Vec<(String, Section)>,
    used: usize,
    index: HashMap<String, usize>,
    /// Says to all of this turn, per room (the index of `rooms`), as history entries.
    history: Vec<(usize, Vec<u8>)>,
}

impl Turn {
    /// The section of `room`, opened when it has none yet this turn.
    pub fn room(&mut self, room: &str) -> (usize, &mut Section) {
        let i = match self.index.get(room) {
            Some(&i) => i,
            None => {
                let i = self.used;
                if i == self.rooms.len() {
                    self.rooms.push((String::new(), Section::new()));
                }
                let (name, section) = &mut self.rooms[i];
                name.clear();
                name.push_str(room);
                section.clear();
                section.room(room);
                self.used += 1;
                self.index.insert(room.to_string(), i);
                i
            }
        };
        (i, &mut self.rooms[i].1)
    }

    /// Whether nothing was recorded this turn.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.used == 0
    }

    /// Bytes recorded this turn.
    pub fn bytes(&self) -> usize {
        self.head.bytes.len() + self.rooms[..self.used].iter().map(|(_, s)| s.bytes.len()).sum::<usize>()
    }

    fn clear(&mut self) {
        self.head.clear();
        self.used = 0;
        self.index.clear();
        self.history.clear();
    }
}

/// A message not yet confirmed by Redis.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub seq: u64,
    bytes: Vec<u8>,
    /// Per room: its history key and the entries to append.
    history: Vec<(String, Vec<Vec<u8>>)>,
    /// Answers still awaited; `None` while not sent on the current connection.
    parts_left: Option<usize>,
    /// It went to every other node over peer links: Redis gets only its stream entry and history, and
    /// those may wait ([`super::REDIS_LAG`]).
    direct: bool,
}

impl Outgoing {
    /// Its size against the buffer.
    fn cost(&self) -> usize {
        self.bytes.len() + self.history.iter().flat_map(|(_, e)| e).map(Vec::len).sum::<usize>()
    }

    /// The connection it went out on was lost: send it again.
    pub fn unsent(&mut self) {
        self.parts_left = None;
    }

    /// Whether it was written to the current connection.
    pub fn is_sent(&self) -> bool {
        self.parts_left.is_some()
    }

    /// Whether it went to the other nodes over peer links.
    pub fn is_direct(&self) -> bool {
        self.direct
    }
}

impl Node {
    /// Whether a say can be taken: the messages waiting for Redis are within `--cluster-buffer`; if not,
    /// why (Redis away, or up but behind). Refused ones are counted and logged once per interval.
    pub fn accepts_say(&mut self) -> Result<(), SayRefusal> {
        if self.pending_bytes + self.turn.bytes() < self.cfg.buffer {
            return Ok(());
        }
        let why = if self.health().is_ok() { SayRefusal::Backlog } else { SayRefusal::RedisAway };
        self.note_say_refused(why);
        Err(why)
    }

    /// A local room event; a say to all is also kept in its room's history (`--history`). A say's place in
    /// this node's order (the message this turn becomes, its place among the room's says in it) is returned.
    pub fn record(&mut self, event: &RoomEvent<'_>) -> Option<Position> {
        let (i, section) = self.turn.room(event.room());
        let index = section.says();
        section.event(event);
        let at = matches!(event, RoomEvent::Say { .. }).then_some(Position {
            origin: self.cfg.id,
            seq: self.seq + 1,
            index,
        });
        match *event {
            RoomEvent::Login { uid, .. } => self.saw_uid(uid),
            RoomEvent::Say { from_uid, from_name, to_uid: None, content, time, .. } if self.cfg.history > 0 => {
                self.turn.history.push((i, history_entry(from_uid, from_name, content, time)))
            }
            _ => {}
        }
        at
    }

    /// Whether a snapshot of this node's users is due (see [`Node::publish_snapshot`]).
    pub fn snapshot_due(&self) -> bool {
        self.snapshot_due && self.subscriptions > 0
    }

    /// Publishes this node's users as a snapshot, after the turn's message: `each` calls its argument with
    /// every local user and its session, grouped by room.
    pub fn publish_snapshot(&mut self, each: impl FnOnce(&mut dyn FnMut(HereUser<'_>, Option<&str>))) {
        // What gathered goes first, under the sequence number its says were given.
        self.seal_turn();
        self.snapshot_due = false;
        let mut section = Section::new();
        section.snapshot();
        let mut current: Option<String> = None;
        each(&mut |HereUser { room, uid, name, user_id, order }, session| {
            if current.as_deref() != Some(room) {
                section.room(room);
                current = Some(room.to_string());
            }
            section.present(uid, name, user_id, order);
            if let Some(session) = session {
                section.event(&RoomEvent::Session { room, uid, session });
            }
        });
        self.seq += 1;
        let mut bytes = Vec::with_capacity(section.bytes.len() + 16);
        write_header(&mut bytes, self.cfg.id, self.seq);
        bytes.extend_from_slice(&section.bytes);
        let direct = self.send_to_peers(&bytes);
        self.queue(Outgoing { seq: self.seq, bytes, history: Vec::new(), parts_left: None, direct });
        self.send_pending();
        self.end_turn_directs();
    }

    /// Turns the records of this loop turn into one message and sends what is queued — unless they gather
    /// (a coalescing window is open; see `LinkHost::gather`), when the turns of the window make one message.
    pub fn end_turn(&mut self) {
        if !self.gathering {
            self.seal_turn();
        }
    }

    /// Turns the records gathered into one message and sends what is queued.
    fn seal_turn(&mut self) {
        if !self.turn.is_empty() {
            self.seq += 1;
            let mut bytes = Vec::with_capacity(self.turn.bytes() + 16);
            write_header(&mut bytes, self.cfg.id, self.seq);
            bytes.extend_from_slice(&self.turn.head.bytes);
            for (_, section) in &self.turn.rooms[..self.turn.used] {
                bytes.extend_from_slice(&section.bytes);
            }
            let mut history: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
            let mut slot_of: HashMap<usize, usize> = HashMap::new();
            for (i, entry) in self.turn.history.drain(..) {
                let at = *slot_of.entry(i).or_insert_with(|| {
                    history.push((self.cfg.keys.history(&self.turn.rooms[i].0), Vec::new()));
                    history.len() - 1
                });
                history[at].1.push(entry);
            }
            self.turn.clear();
            let direct = self.send_to_peers(&bytes);
            self.queue(Outgoing { seq: self.seq, bytes, history, parts_left: None, direct });
        }
        self.send_pending();
        self.end_turn_directs();
    }

    fn queue(&mut self, m: Outgoing) {
        self.pending_bytes += m.cost();
        self.pending.push_back(m);
    }

    /// Writes every queued message not sent on the current connection: stream entry first, then the
    /// publish (so a receiver that subscribes between the two finds it in the stream), then history.
    pub(super) fn send_pending(&mut self) {
        if !self.commands_ready {
            return;
        }
        let stream = self.cfg.keys.node_stream(self.cfg.id);
        let bus = self.cfg.keys.bus();
        let history_args = self.history_args();
        // Alone (no other node alive, none ever heard from): nobody would read the bus or the stream, so
        // only the history is written. A node that joins says hello first, which makes this one publish
        // from then on; what it missed before is its snapshot's business.
        let peers = self.has_peers();
        let mut pending = std::mem::take(&mut self.pending);
        for m in pending.iter_mut().filter(|m| !m.is_sent()) {
            let seq = m.seq;
            let mut parts = m.history.len();
            // A message the peers have over their links is not published, and its writes may wait.
            let lag = m.direct;
            if peers || m.direct {
                let id = format!("{seq}-0");
                let minid = format!("{}-0", self.stream_keep(seq, m.bytes.len()));
                let xadd: [&[u8]; 8] =
                    [b"XADD", stream.as_bytes(), b"MINID", b"~", minid.as_bytes(), id.as_bytes(), b"m", &m.bytes];
                if !self.command_lagging(Purpose::Part { seq }, &xadd, lag) {
                    break;
                }
                parts += 1;
                if !m.direct {
                    self.command(Purpose::Part { seq }, &[b"PUBLISH", bus.as_bytes(), &m.bytes]);
                    parts += 1;
                }
                // Sequence numbers count the messages, so the highest one sent is how many were published (a
                // resend is not counted again).
                self.stats.published_total = self.stats.published_total.max(m.seq);
            }
            for (key, entries) in &m.history {
                let mut args: Vec<&[u8]> = Vec::with_capacity(entries.len() + 11);
                args.extend_from_slice(&[b"EVAL", super::history::HISTORY_APPEND.as_bytes(), b"4", key.as_bytes()]);
                args.extend(history_args.iter().map(String::as_bytes));
                args.extend(entries.iter().map(Vec::as_slice));
                self.command_lagging(Purpose::Part { seq }, &args, lag);
            }
            m.parts_left = Some(parts);
        }
        self.pending = pending;
        self.pop_confirmed();
    }

    /// Notes that message `seq` of `len` bytes goes to the stream (once, whatever its resends) and answers
    /// the oldest sequence number the stream keeps: the newest entries within `--cluster-stream-bytes`
    /// (always the newest one) and [`STREAM_LEN`].
    fn stream_keep(&mut self, seq: u64, len: usize) -> u64 {
        if self.stream.back().is_none_or(|&(last, _)| seq > last) {
            let cost = len + STREAM_ENTRY_OVERHEAD;
            self.stream.push_back((seq, cost));
            self.stream_bytes += cost;
        }
        while self.stream.len() > 1 && (self.stream_bytes > self.cfg.stream_bytes || self.stream.len() > STREAM_LEN) {
            if let Some((_, cost)) = self.stream.pop_front() {
                self.stream_bytes -= cost;
            }
        }
        self.stream.front().map_or(seq, |&(first, _)| first.min(seq))
    }

    /// Whether another node is alive or was heard from (and not gone since).
    /// Before the first heartbeat answered, who is alive is not known: the node publishes (its hello must
    /// reach the nodes whose snapshots it then waits for).
    fn has_peers(&self) -> bool {
        self.joining.awaiting.is_none()
            || self.live.iter().any(|&n| n != self.cfg.id)
            || self.tracker.origins().next().is_some()
    }

    /// One part of message `seq` was answered; fully answered messages at the front leave the queue.
    pub(super) fn part_done(&mut self, seq: u64) {
        if let Some(m) = self.pending.iter_mut().find(|m| m.seq == seq) {
            if let Some(left) = &mut m.parts_left {
                *left = left.saturating_sub(1);
            }
        }
        self.pop_confirmed();
    }

    /// Moves the fully confirmed messages at the front of the queue to the recent ones.
    fn pop_confirmed(&mut self) {
        while self.pending.front().is_some_and(|m| m.parts_left == Some(0)) {
            if let Some(mut m) = self.pending.pop_front() {
                self.pending_bytes -= m.cost();
                // History was appended; only the message itself is written again after a reconnect.
                m.history = Vec::new();
                self.recent_bytes += m.cost();
                self.recent.push_back((self.now, m));
            }
        }
        self.prune_recent();
    }

    /// Forgets confirmed messages older than [`RECENT_AGE`] or past [`RECENT_BYTES`].
    pub(super) fn prune_recent(&mut self) {
        while let Some((at, m)) = self.recent.front() {
            if self.now < *at + RECENT_AGE && self.recent_bytes <= RECENT_BYTES {
                break;
            }
            self.recent_bytes -= m.cost();
            self.recent.pop_front();
        }
    }

    /// Puts the recently confirmed messages back in front of the queue, to be written again (stream entry
    /// and publish) on the new connection.
    pub(super) fn replay_recent(&mut self) {
        while let Some((_, mut m)) = self.recent.pop_back() {
            self.recent_bytes -= m.cost();
            m.unsent();
            self.pending_bytes += m.cost();
            self.pending.push_front(m);
        }
    }
}
