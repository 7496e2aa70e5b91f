//! What nodes exchange through Redis (being built; not wired into the daemon yet): the key and channel
//! layout under the cluster prefix ([`Keys`]), the message one node publishes for a room's batch of one loop
//! turn ([`BatchWriter`], [`Batch`]), and the recovery bookkeeping that tells a delivered message from a
//! duplicate or a gap ([`Tracker`]). Pure code: no socket, no Redis; `docs/CLUSTER.md` is the prose.
//!
//! # Identity and order
//!
//! A node's id is a random 64-bit number drawn at start, not a counter in Redis: a restart is a new id,
//! and a Redis that comes back empty cannot hand a live node's id to a newcomer. Each node numbers the
//! messages it publishes 1, 2, 3… (one sequence over all rooms), writes each to its own capped stream
//! `{prefix}:node:{id}:stream` under the explicit stream id `{seq}-0`, and publishes it on the bus. A
//! receiver keeps the last sequence it delivered per origin; a gap is fetched with one
//! `XRANGE {prefix}:node:{id}:stream {from}-0 {to}-0`, and after its own subscription link dropped a node
//! resumes every origin from [`Tracker::origins`] the same way (the recovery of Centrifugo, with the origin
//! rather than the channel as the unit, so that a stream has one writer and its ids are the sequence).

use std::collections::HashMap;
use std::fmt;

/// The default `--cluster-prefix`.
pub const DEFAULT_PREFIX: &str = "wschat";

/// The longest prefix accepted.
pub const MAX_PREFIX_LEN: usize = 64;

/// Why a `--cluster-prefix` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// Empty or longer than [`MAX_PREFIX_LEN`].
    Length,
    /// A byte other than ASCII letters, digits, `_`, `-` and `.` (a `:` would let one chat's prefix
    /// reach into another's keys; braces are Redis Cluster hash tags).
    Character,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::Length => write!(f, "cluster prefix must be 1 to {MAX_PREFIX_LEN} bytes"),
            PrefixError::Character => {
                f.write_str("cluster prefix may hold only ASCII letters, digits, '_', '-' and '.'")
            }
        }
    }
}

impl std::error::Error for PrefixError {}

/// The Redis keys and the channel of one chat, under its prefix.
///
/// | key | type | holds |
/// | --- | --- | --- |
/// | `{p}:uid` | string | `INCR` counter: cluster-unique uids |
/// | `{p}:nodes` | sorted set | node id (hex) scored by the time (ms) its lease ends; the one survivor whose `ZREM` of a dead node returns 1 sends that node's logouts |
/// | `{p}:node:{id}` | string with a TTL | the node's heartbeat (`SET … PX`) |
/// | `{p}:node:{id}:users` | hash | uid → room of the users the node holds (for their logouts if it dies) |
/// | `{p}:node:{id}:stream` | stream, capped | the node's published messages under ids `{seq}-0`, for gap recovery |
/// | `{p}:room:{room}:members` | sorted set | uids of the room scored by uid: the login order every node agrees on |
/// | `{p}:room:{room}:names` | hash | uid → name of the room's users |
/// | `{p}:history:{room}` | list | the room's last says to all, as encoded batches of one say |
/// | `{p}:bus` | pub/sub channel | every node's messages |
///
/// `{id}` is the node id as 16 lowercase hex digits. `{room}` is the room's byte length in decimal, a
/// `:` and the room itself (`room1` → `5:room1`): the length says where the name ends, so no room name,
/// whatever `:` or suffix it holds, yields the key of another room or another kind ([`Keys::split_room_key`]
/// reads it back). The name stays readable in `redis-cli`.
///
/// One bus channel rather than a channel per room: every node needs every room's logins and logouts anyway
/// (its presence replica answers the user list of a room the moment a local user joins it, without a round
/// trip), so per-room channels would save only the says of rooms a node has nobody in, at the price of a
/// `SUBSCRIBE`/`UNSUBSCRIBE` whenever a room gains its first or loses its last local user, and of the race
/// between a first join and its subscription taking effect. The bus is one subscription set up once; a
/// receiver drops a batch for a room it has nobody in after reading the header alone ([`Batch::room`]
/// comes before the events). Past a handful of nodes the way out is sharding rooms over several Redis by
/// room hash, not finer channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: Box<str>,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys { prefix: DEFAULT_PREFIX.into() }
    }
}

impl Keys {
    /// The keys under `prefix`, if it is a valid one.
    pub fn new(prefix: &str) -> Result<Keys, PrefixError> {
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(PrefixError::Length);
        }
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
            return Err(PrefixError::Character);
        }
        Ok(Keys { prefix: prefix.into() })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{p}:uid`, the uid counter.
    pub fn uid(&self) -> String {
        format!("{}:uid", self.prefix)
    }

    /// `{p}:nodes`, the nodes' leases.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// `{p}:node:{id}`, a node's heartbeat.
    pub fn node(&self, node: u64) -> String {
        format!("{}:node:{}", self.prefix, node_hex(node))
    }

    /// `{p}:node:{id}:users`, the users a node holds.
    pub fn node_users(&self, node: u64) -> String {
        format!("{}:node:{}:users", self.prefix, node_hex(node))
    }

    /// `{p}:node:{id}:stream`, a node's published messages.
    pub fn node_stream(&self, node: u64) -> String {
        format!("{}:node:{}:stream", self.prefix, node_hex(node))
    }

    /// `{p}:room:{room}:members`, the room's uids in login order.
    pub fn room_members(&self, room: &str) -> String {
        self.room_key("room", room, ":members")
    }

    /// `{p}:room:{room}:names`, the names of the room's users.
    pub fn room_names(&self, room: &str) -> String {
        self.room_key("room", room, ":names")
    }

    /// `{p}:history:{room}`, the room's history.
    pub fn history(&self, room: &str) -> String {
        self.room_key("history", room, "")
    }

    /// `{p}:bus`, the one pub/sub channel.
    pub fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    fn room_key(&self, kind: &str, room: &str, suffix: &str) -> String {
        format!("{}:{kind}:{}:{room}{suffix}", self.prefix, room.len())
    }

    /// A key of a room read back: `(kind, room, suffix)`, `kind` being `room` or `history` and `suffix`
    /// what follows the room (`:members`, `:names`, or empty). `None` for a key that is not a room key
    /// under this prefix (another chat's, a node's, or garbage).
    pub fn split_room_key<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str, &'k str)> {
        let rest = key.strip_prefix(&*self.prefix)?.strip_prefix(':')?;
        let (kind, rest) = rest.split_once(':')?;
        if kind != "room" && kind != "history" {
            return None;
        }
        let (len, rest) = rest.split_once(':')?;
        if len.is_empty() || len.len() > 1 && len.starts_with('0') || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: usize = len.parse().ok()?;
        if !rest.is_char_boundary(len.min(rest.len())) || len > rest.len() {
            return None;
        }
        let (room, suffix) = rest.split_at(len);
        Some((kind, room, suffix))
    }
}

/// A node id as it appears in keys: 16 lowercase hex digits.
pub fn node_hex(node: u64) -> String {
    format!("{node:016x}")
}

/// The first bytes of every message: "wc" then the version.
pub const MAGIC: [u8; 2] = *b"wc";

/// The version of the message format this code writes and reads.
pub const VERSION: u8 = 1;

const TAG_LOGIN: u8 = 1;
const TAG_SAY: u8 = 2;
const TAG_LOGOUT: u8 = 3;

/// A chat event as nodes exchange it: what happened, in no dialect; every node encodes it for its own
/// connections. Uids are positive (a zero uid makes a batch that does not decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireEvent<'a> {
    /// Someone logged in to the batch's room.
    Login {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// A say, to the room or to one user of it.
    Say {
        /// The sender's uid.
        from_uid: u64,
        /// The recipient's uid; `None` for the whole room.
        to_uid: Option<u64>,
        /// The text, unchanged.
        content: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// Someone left the batch's room.
    Logout {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
}

impl WireEvent<'_> {
    /// Its time stamp.
    pub fn time(&self) -> &str {
        match self {
            WireEvent::Login { time, .. } | WireEvent::Say { time, .. } | WireEvent::Logout { time, .. } => time,
        }
    }
}

/// Why bytes are not a message; the receiver logs it and skips the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside the message (`at` is where more was needed).
    Truncated {
        /// Offset of the field that did not fit.
        at: usize,
    },
    /// Not a wschat message (another program's data on the channel or key).
    Foreign,
    /// A wschat message of a version this node does not read.
    Version(u8),
    /// A number longer than 64 bits.
    Overlong {
        /// Offset of the number.
        at: usize,
    },
    /// A text that is not UTF-8.
    Utf8 {
        /// Offset of the text.
        at: usize,
    },
    /// An event kind this version does not know.
    UnknownEvent {
        /// The kind byte.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A zero where a sequence number or uid must be positive.
    Zero {
        /// Offset of the number.
        at: usize,
    },
    /// A time stamp that repeats the previous one in the first event of a batch.
    NoPreviousTime {
        /// Offset of the time field.
        at: usize,
    },
    /// Bytes after the end of the message.
    Trailing {
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { at } => write!(f, "truncated cluster message: more bytes needed at offset {at}"),
            WireError::Foreign => f.write_str("not a wschat cluster message"),
            WireError::Version(v) => write!(f, "cluster message version {v}, this node reads version {VERSION}"),
            WireError::Overlong { at } => write!(f, "number longer than 64 bits at offset {at}"),
            WireError::Utf8 { at } => write!(f, "text that is not UTF-8 at offset {at}"),
            WireError::UnknownEvent { tag, at } => write!(f, "unknown event kind {tag} at offset {at}"),
            WireError::Zero { at } => write!(f, "zero sequence number or uid at offset {at}"),
            WireError::NoPreviousTime { at } => write!(f, "first event repeats a time stamp at offset {at}"),
            WireError::Trailing { extra } => write!(f, "{extra} bytes after the end of the cluster message"),
        }
    }
}

impl std::error::Error for WireError {}

/// Writes one batch into a buffer the caller reuses: [`BatchWriter::begin`], then [`BatchWriter::push`]
/// per event, then [`BatchWriter::finish`]. It appends, so one buffer can hold a turn's batches one after
/// the other (each is self-delimiting).
#[derive(Debug)]
pub struct BatchWriter<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    count_at: usize,
    count: u32,
    prev_time: Option<(usize, usize)>,
}

impl<'b> BatchWriter<'b> {
    /// Starts the batch of `origin`'s message number `seq` (from 1) for `room`.
    pub fn begin(buf: &'b mut Vec<u8>, origin: u64, seq: u64, room: &str) -> BatchWriter<'b> {
        let start = buf.len();
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.extend_from_slice(&origin.to_le_bytes());
        put_varint(buf, seq);
        put_str(buf, room);
        let count_at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        BatchWriter { buf, start, count_at, count: 0, prev_time: None }
    }

    /// Appends `event`.
    pub fn push(&mut self, event: &WireEvent<'_>) {
        match *event {
            WireEvent::Login { uid, name, .. } | WireEvent::Logout { uid, name, .. } => {
                self.buf.push(if matches!(event, WireEvent::Login { .. }) { TAG_LOGIN } else { TAG_LOGOUT });
                put_varint(self.buf, uid);
                put_str(self.buf, name);
            }
            WireEvent::Say { from_uid, to_uid, content, .. } => {
                self.buf.push(TAG_SAY);
                put_varint(self.buf, from_uid);
                put_varint(self.buf, to_uid.unwrap_or(0));
                put_str(self.buf, content);
            }
        }
        let time = event.time();
        let same = self.prev_time.is_some_and(|(at, len)| self.buf.get(at..at + len) == Some(time.as_bytes()));
        if same {
            self.buf.push(0);
        } else {
            put_varint(self.buf, time.len() as u64 + 1);
            let at = self.buf.len();
            self.buf.extend_from_slice(time.as_bytes());
            self.prev_time = Some((at, time.len()));
        }
        self.count += 1;
    }

    /// Ends the batch; returns its length in bytes.
    pub fn finish(self) -> usize {
        self.buf[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_le_bytes());
        self.buf.len() - self.start
    }
}

/// Appends the whole batch of `events` to `buf`; returns its length.
pub fn encode(buf: &mut Vec<u8>, origin: u64, seq: u64, room: &str, events: &[WireEvent<'_>]) -> usize {
    let mut w = BatchWriter::begin(buf, origin, seq, room);
    for e in events {
        w.push(e);
    }
    w.finish()
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// A decoded batch, borrowing the bytes it came from. Every field and event was checked by
/// [`Batch::decode`]; [`Batch::events`] only walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The node that published it.
    pub origin: u64,
    /// Its number in the origin's sequence, from 1.
    pub seq: u64,
    /// The room its events happened in.
    pub room: &'a str,
    /// How many events it holds.
    pub count: u32,
    body: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The message that is the whole of `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Batch<'a>, WireError> {
        let (batch, used) = Batch::decode_prefix(bytes)?;
        match bytes.len() - used {
            0 => Ok(batch),
            extra => Err(WireError::Trailing { extra }),
        }
    }

    /// The message at the start of `bytes` and its length (what follows is left alone).
    pub fn decode_prefix(bytes: &'a [u8]) -> Result<(Batch<'a>, usize), WireError> {
        let mut r = Reader { bytes, at: 0 };
        if bytes.len() < 2 || bytes[..2] != MAGIC {
            return Err(if MAGIC.starts_with(bytes) {
                WireError::Truncated { at: bytes.len() }
            } else {
                WireError::Foreign
            });
        }
        r.at = 2;
        let version = r.byte()?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let origin = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| WireError::Truncated { at: 3 })?);
        let seq_at = r.at;
        let seq = r.varint()?;
        if seq == 0 {
            return Err(WireError::Zero { at: seq_at });
        }
        let room = r.str()?;
        let count = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| WireError::Truncated { at: r.at })?);
        let body_at = r.at;
        let mut prev_time = None;
        for _ in 0..count {
            r.event(&mut prev_time)?;
        }
        let batch = Batch { origin, seq, room, count, body: &bytes[body_at..r.at] };
        Ok((batch, r.at))
    }

    /// Its events, in the order they happened.
    pub fn events(&self) -> Events<'a> {
        Events { r: Reader { bytes: self.body, at: 0 }, left: self.count, prev_time: None }
    }
}

/// The events of a [`Batch`].
#[derive(Debug, Clone)]
pub struct Events<'a> {
    r: Reader<'a>,
    left: u32,
    prev_time: Option<&'a str>,
}

impl<'a> Iterator for Events<'a> {
    type Item = WireEvent<'a>;

    fn next(&mut self) -> Option<WireEvent<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked by `Batch::decode`; an error here cannot happen and would end the walk.
        self.r.event(&mut self.prev_time).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Events<'_> {}

#[derive(Debug, Clone)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(WireError::Truncated { at: self.at })?;
        let got = &self.bytes[self.at..end];
        self.at = end;
        Ok(got)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(WireError::Overlong { at: start });
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::Overlong { at: start })
    }

    fn positive(&mut self) -> Result<u64, WireError> {
        let at = self.at;
        match self.varint()? {
            0 => Err(WireError::Zero { at }),
            v => Ok(v),
        }
    }

    fn text(&mut self, len: u64) -> Result<&'a str, WireError> {
        let at = self.at;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated { at })?;
        std::str::from_utf8(self.take(len)?).map_err(|_| WireError::Utf8 { at })
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let len = self.varint()?;
        self.text(len)
    }

    fn event(&mut self, prev_time: &mut Option<&'a str>) -> Result<WireEvent<'a>, WireError> {
        let at = self.at;
        let tag = self.byte()?;
        let event = match tag {
            TAG_LOGIN | TAG_LOGOUT => {
                let uid = self.positive()?;
                let name = self.str()?;
                if tag == TAG_LOGIN {
                    WireEvent::Login { uid, name, time: "" }
                } else {
                    WireEvent::Logout { uid, name, time: "" }
                }
            }
            TAG_SAY => {
                let from_uid = self.positive()?;
                let to_uid = Some(self.varint()?).filter(|&u| u != 0);
                let content = self.str()?;
                WireEvent::Say { from_uid, to_uid, content, time: "" }
            }
            tag => return Err(WireError::UnknownEvent { tag, at }),
        };
        let time_at = self.at;
        let time = match self.varint()? {
            0 => prev_time.ok_or(WireError::NoPreviousTime { at: time_at })?,
            n => self.text(n - 1)?,
        };
        *prev_time = Some(time);
        Ok(match event {
            WireEvent::Login { uid, name, .. } => WireEvent::Login { uid, name, time },
            WireEvent::Logout { uid, name, .. } => WireEvent::Logout { uid, name, time },
            WireEvent::Say { from_uid, to_uid, content, .. } => WireEvent::Say { from_uid, to_uid, content, time },
        })
    }
}

/// What to do with a message, by its origin and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next one from its origin (or the first seen from a new origin): deliver it.
    Deliver,
    /// Already delivered (a replay after recovery, or a late copy): drop it.
    Duplicate,
    /// Messages `from..=to` of its origin were not delivered: fetch them from the origin's stream, hand each
    /// to [`Tracker::observe`], then this message again. Nothing was recorded.
    Gap {
        /// The first missing sequence number.
        from: u64,
        /// The last missing one (the message's own number minus one).
        to: u64,
    },
}

/// Per origin node, the last sequence number delivered. Pure bookkeeping: the caller fetches gaps and says
/// when one cannot be filled ([`Tracker::accept_loss`]).
///
/// An origin first seen mid-sequence is taken as it is (its earlier messages predate this node's
/// subscription and were for nobody here), unless [`Tracker::expect`] announced it — a node that registered
/// after this one subscribed — in which case its messages are due from 1.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    last: HashMap<u64, u64>,
}

impl Tracker {
    /// No origin known.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// `origin` started after this node subscribed: every one of its messages is due, from 1.
    pub fn expect(&mut self, origin: u64) {
        self.last.entry(origin).or_insert(0);
    }

    /// The verdict on message `seq` of `origin`; a delivered one is recorded.
    pub fn observe(&mut self, origin: u64, seq: u64) -> Verdict {
        match self.last.get_mut(&origin) {
            None => {
                self.last.insert(origin, seq);
                Verdict::Deliver
            }
            Some(last) if seq <= *last => Verdict::Duplicate,
            Some(last) if seq == *last + 1 => {
                *last = seq;
                Verdict::Deliver
            }
            Some(last) => Verdict::Gap { from: *last + 1, to: seq - 1 },
        }
    }

    /// Messages of `origin` up to `seq` cannot be had (trimmed from its stream, or Redis lost them): go on
    /// after them.
    pub fn accept_loss(&mut self, origin: u64, seq: u64) {
        let last = self.last.entry(origin).or_insert(0);
        *last = (*last).max(seq);
    }

    /// `origin` is gone (its lease ran out and its users were logged out): forget it.
    pub fn forget(&mut self, origin: u64) {
        self.last.remove(&origin);
    }

    /// The last sequence number delivered from `origin`, if it is known (0: expected, nothing yet).
    pub fn last(&self, origin: u64) -> Option<u64> {
        self.last.get(&origin).copied()
    }

    /// Every known origin with its last delivered number: where to resume each one's stream after this
    /// node's subscription link came back.
    pub fn origins(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.last.iter().map(|(&o, &s)| (o, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-11-25 12:00:00";
    const T2: &str = "2026-11-25 12:00:01";

    fn sample() -> Vec<WireEvent<'static>> {
        vec![
            WireEvent::Login { uid: 1, name: "猪猪", time: T1 },
            WireEvent::Say { from_uid: 1, to_uid: None, content: "hi,  all !", time: T1 },
            WireEvent::Say { from_uid: 1, to_uid: Some(300), content: "", time: T2 },
            WireEvent::Logout { uid: u64::MAX, name: "mynick", time: T2 },
        ]
    }

    #[test]
    fn keys_under_the_prefix() {
        let k = Keys::default();
        assert_eq!(k.prefix(), "wschat");
        assert_eq!(k.uid(), "wschat:uid");
        assert_eq!(k.nodes(), "wschat:nodes");
        assert_eq!(k.node(0xab), "wschat:node:00000000000000ab");
        assert_eq!(k.node_users(1), "wschat:node:0000000000000001:users");
        assert_eq!(k.node_stream(u64::MAX), "wschat:node:ffffffffffffffff:stream");
        assert_eq!(k.room_members("room1"), "wschat:room:5:room1:members");
        assert_eq!(k.room_names("猪"), "wschat:room:3:猪:names");
        assert_eq!(k.history("room1"), "wschat:history:5:room1");
        assert_eq!(k.bus(), "wschat:bus");
        assert_eq!(Keys::new("chat-2.eu_west").unwrap().bus(), "chat-2.eu_west:bus");
    }

    #[test]
    fn prefixes_that_could_reach_other_keys_are_refused() {
        assert_eq!(Keys::new(""), Err(PrefixError::Length));
        assert_eq!(Keys::new(&"a".repeat(65)), Err(PrefixError::Length));
        assert!(Keys::new(&"a".repeat(64)).is_ok());
        for bad in ["a:b", "a{b}", "a b", "猪", "a\n"] {
            assert_eq!(Keys::new(bad), Err(PrefixError::Character), "{bad:?}");
        }
        assert!(!PrefixError::Character.to_string().is_empty());
    }

    #[test]
    fn no_room_name_forges_another_key() {
        let k = Keys::default();
        // Names that would collide under naive concatenation.
        assert_ne!(k.room_members("a:members"), k.room_names("a:members:names"));
        assert_ne!(k.room_members("a"), k.room_members("a:members:room:1:a"));
        assert_ne!(k.history("1:a"), k.history("a"));
        let rooms = ["", "a", "a:members", "1:a", "5:room1:members", ":", "{x}", "room:1:a", "猪猪", "a\u{0}b"];
        let mut all = std::collections::HashSet::new();
        for room in rooms {
            for (key, kind, suffix) in [
                (k.room_members(room), "room", ":members"),
                (k.room_names(room), "room", ":names"),
                (k.history(room), "history", ""),
            ] {
                assert_eq!(k.split_room_key(&key), Some((kind, room, suffix)), "{key:?}");
                assert!(all.insert(key.clone()), "two rooms share {key:?}");
                assert_ne!(key, k.uid());
                assert_ne!(key, k.bus());
            }
        }
        assert_eq!(k.split_room_key("other:room:1:a:members"), None);
        assert_eq!(k.split_room_key("wschat:room:9:a"), None);
        assert_eq!(k.split_room_key("wschat:room:01:a"), None);
        assert_eq!(k.split_room_key("wschat:room:2:猪"), None, "a length inside a character");
        assert_eq!(k.split_room_key("wschat:node:1"), None);
    }

    #[test]
    fn round_trip_and_compact_times() {
        let mut buf = vec![0xee]; // appends after what is there
        let len = encode(&mut buf, 0x0123_4567_89ab_cdef, 42, "room1", &sample());
        assert_eq!(len, buf.len() - 1);
        let b = Batch::decode(&buf[1..]).unwrap();
        assert_eq!((b.origin, b.seq, b.room, b.count), (0x0123_4567_89ab_cdef, 42, "room1", 4));
        assert_eq!(b.events().collect::<Vec<_>>(), sample());
        assert_eq!(b.events().len(), 4);
        // Two distinct time stamps over four events: each written once.
        assert_eq!(buf.windows(T1.len()).filter(|w| *w == T1.as_bytes()).count(), 1);
        assert_eq!(buf.windows(T2.len()).filter(|w| *w == T2.as_bytes()).count(), 1);
    }

    #[test]
    fn batches_are_self_delimiting() {
        let mut buf = Vec::new();
        let a = encode(&mut buf, 1, 1, "a", &sample());
        encode(&mut buf, 1, 2, "b", &[]);
        let (first, used) = Batch::decode_prefix(&buf).unwrap();
        assert_eq!((used, first.room, first.seq), (a, "a", 1));
        let second = Batch::decode(&buf[used..]).unwrap();
        assert_eq!((second.room, second.seq, second.events().count()), ("b", 2, 0));
        assert_eq!(Batch::decode(&buf), Err(WireError::Trailing { extra: buf.len() - a }));
    }

    #[test]
    fn the_header_layout() {
        let mut buf = Vec::new();
        encode(&mut buf, 2, 300, "r", &[WireEvent::Say { from_uid: 5, to_uid: None, content: "x", time: "t" }]);
        let header = [b'w', b'c', 1, 2, 0, 0, 0, 0, 0, 0, 0, 0xac, 0x02, 1, b'r', 1, 0, 0, 0];
        assert_eq!(buf[..header.len()], header);
        assert_eq!(buf[header.len()..], [TAG_SAY, 5, 0, 1, b'x', 2, b't']);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut good = Vec::new();
        encode(&mut good, 7, 1, "room", &sample());
        for cut in 0..good.len() {
            assert!(matches!(Batch::decode(&good[..cut]), Err(WireError::Truncated { .. })), "cut at {cut}");
        }
        assert_eq!(Batch::decode(b"{\"type\":\"say\"}"), Err(WireError::Foreign));
        assert_eq!(Batch::decode(b"wc\x02rest"), Err(WireError::Version(2)));
        let mut zero_seq = good.clone();
        zero_seq[11] = 0;
        assert_eq!(Batch::decode(&zero_seq), Err(WireError::Zero { at: 11 }));
        let body = 11 + 1 + 1 + 4 + 4; // seq, room length, room, count
        let mut tag = good.clone();
        tag[body] = 9;
        assert_eq!(Batch::decode(&tag), Err(WireError::UnknownEvent { tag: 9, at: body }));
        let mut utf8 = good.clone();
        utf8[13] = 0xff;
        assert_eq!(Batch::decode(&utf8), Err(WireError::Utf8 { at: 13 }));
        let mut overlong = b"wc\x01\0\0\0\0\0\0\0\0".to_vec();
        overlong.extend_from_slice(&[0xff; 11]);
        assert_eq!(Batch::decode(&overlong), Err(WireError::Overlong { at: 11 }));
        let mut huge = b"wc\x01\0\0\0\0\0\0\0\0\x01".to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(Batch::decode(&huge), Err(WireError::Truncated { at: 22 }), "a length past the end");
        let mut repeat_first = b"wc\x01\0\0\0\0\0\0\0\0\x01\x01r\x01\0\0\0".to_vec();
        repeat_first.extend_from_slice(&[TAG_LOGIN, 1, 1, b'n', 0]);
        assert_eq!(Batch::decode(&repeat_first), Err(WireError::NoPreviousTime { at: 22 }));
        for e in [WireError::Foreign, WireError::Trailing { extra: 1 }, WireError::Truncated { at: 3 }] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut t = Tracker::new();
        assert_eq!(t.observe(9, 5), Verdict::Deliver, "first seen mid-sequence: taken as it is");
        assert_eq!(t.observe(9, 6), Verdict::Deliver);
        assert_eq!(t.observe(9, 6), Verdict::Duplicate);
        assert_eq!(t.observe(9, 2), Verdict::Duplicate);
        assert_eq!(t.observe(9, 10), Verdict::Gap { from: 7, to: 9 });
        assert_eq!(t.last(9), Some(6), "a gap records nothing");
        for seq in 7..=9 {
            assert_eq!(t.observe(9, seq), Verdict::Deliver, "the fetched range");
        }
        assert_eq!(t.observe(9, 10), Verdict::Deliver, "then the message that showed the gap");
        assert_eq!(t.observe(9, 13), Verdict::Gap { from: 11, to: 12 });
        t.accept_loss(9, 12);
        assert_eq!(t.observe(9, 13), Verdict::Deliver, "after a loss that cannot be filled");
        assert_eq!(t.observe(9, 11), Verdict::Duplicate);
        t.accept_loss(9, 3);
        assert_eq!(t.last(9), Some(13), "accepting an old loss does not go back");
    }

    #[test]
    fn node_restart_is_a_new_origin() {
        let mut t = Tracker::new();
        for seq in 1..=3 {
            assert_eq!(t.observe(1, seq), Verdict::Deliver);
        }
        // Node 1 restarts as node 2 (a fresh random id), which registered after this node subscribed.
        t.expect(2);
        assert_eq!(t.last(2), Some(0));
        assert_eq!(t.observe(2, 3), Verdict::Gap { from: 1, to: 2 }, "an expected origin is due from 1");
        assert_eq!(t.observe(2, 1), Verdict::Deliver);
        assert_eq!(t.observe(1, 4), Verdict::Deliver, "the old life's late message is still its own sequence");
        t.forget(1);
        assert_eq!(t.last(1), None);
        let mut origins: Vec<_> = t.origins().collect();
        origins.sort();
        assert_eq!(origins, [(2, 1)]);
        t.expect(2);
        assert_eq!(t.last(2), Some(1), "expecting a known origin changes nothing");
    }

    fn event() -> impl proptest::strategy::Strategy<Value = (u8, u64, u64, String, String)> {
        (0u8..3, 1u64.., proptest::prelude::any::<u64>(), ".{0,12}", "[0-9: -]{0,3}")
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok(b) = Batch::decode(&bytes) {
                proptest::prop_assert_eq!(b.events().count(), b.count as usize);
            }
            let mut prefixed = b"wc\x01".to_vec();
            prefixed.extend_from_slice(&bytes);
            if let Ok((b, used)) = Batch::decode_prefix(&prefixed) {
                proptest::prop_assert!(used <= prefixed.len());
                proptest::prop_assert_eq!(b.events().count(), b.count as usize);
            }
        }

        #[test]
        fn encode_then_decode_round_trips(
            origin in proptest::prelude::any::<u64>(),
            seq in 1u64..,
            room in ".{0,16}",
            raw in proptest::collection::vec(event(), 0..20),
        ) {
            let events: Vec<WireEvent<'_>> = raw
                .iter()
                .map(|(kind, a, b, text, time)| match kind {
                    0 => WireEvent::Login { uid: *a, name: text, time },
                    1 => WireEvent::Say { from_uid: *a, to_uid: Some(*b).filter(|&u| u != 0), content: text, time },
                    _ => WireEvent::Logout { uid: *a, name: text, time },
                })
                .collect();
            let mut buf = Vec::new();
            let len = encode(&mut buf, origin, seq, &room, &events);
            proptest::prop_assert_eq!(len, buf.len());
            let b = Batch::decode(&buf).unwrap();
            proptest::prop_assert_eq!((b.origin, b.seq, b.room), (origin, seq, room.as_str()));
            proptest::prop_assert_eq!(b.events().collect::<Vec<_>>(), events);
            for cut in 0..buf.len() {
                proptest::prop_assert!(Batch::decode(&buf[..cut]).is_err());
            }
        }
    }
}
