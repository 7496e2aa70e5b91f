//! The key and channel layout under the cluster prefix.

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
/// | `{p}:uid` | string | the uid counter; nodes take blocks of uids from it (`INCRBY`) |
/// | `{p}:nodes` | sorted set | node id (hex) scored by the time (ms, Redis clock) its lease ends; the one survivor whose `ZREM` of an expired node returns 1 announces that node gone |
/// | `{p}:node:{id}:stream` | stream, capped | the node's published messages under ids `{seq}-0`, for gap recovery |
/// | `{p}:history:{room}` | list, capped | the room's last says to all, one encoded say each |
/// | `{p}:history-rooms` | sorted set | every room with history, scored by its last write (µs, Redis clock): the cluster's budget drops the oldest room's oldest says first, and a joining node reads the newest rooms first |
/// | `{p}:history-sizes` | hash | each room's history in bytes as the budget counts them |
/// | `{p}:history-bytes` | string | all rooms' history in bytes as the budget counts them |
/// | `{p}:bus` | pub/sub channel | every node's messages |
/// | `{p}:node:{id}:direct` | pub/sub channel | the server API's acts on users this node holds, from the node whose API was called |
///
/// `{id}` is the node id as 16 lowercase hex digits. `{room}` is the room's byte length in decimal, a
/// `:` and the room itself (`room1` → `5:room1`): the length says where the name ends, so no room name,
/// whatever `:` or suffix it holds, yields the key of another room ([`Keys::split_room_key`] reads it back).
/// The name stays readable in `redis-cli`.
///
/// Presence (who is in which room) lives in each node's replica, kept by the bus: a node's own users are
/// what it last published (logins, logouts, snapshots), so no Redis key has to be kept in step with them.
///
/// One bus channel rather than a channel per room: every node needs every room's logins and logouts anyway
/// (its presence replica answers the user list of a room the moment a local user joins it, without a round
/// trip), so per-room channels would save only the says of rooms a node has nobody in, at the price of a
/// `SUBSCRIBE`/`UNSUBSCRIBE` whenever a room gains its first or loses its last local user, and of the race
/// between a first join and its subscription taking effect. Past a handful of nodes the way out is sharding
/// rooms over several Redis by room hash, not finer channels.
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

    /// `{p}:node:{id}:stream`, a node's published messages.
    pub fn node_stream(&self, node: u64) -> String {
        format!("{}:node:{}:stream", self.prefix, node_hex(node))
    }

    /// `{p}:history-rooms`, the rooms with history by the time of their last write.
    pub fn history_rooms(&self) -> String {
        format!("{}:history-rooms", self.prefix)
    }

    /// `{p}:history-sizes`, each room's history in bytes.
    pub fn history_sizes(&self) -> String {
        format!("{}:history-sizes", self.prefix)
    }

    /// `{p}:history-bytes`, all rooms' history in bytes.
    pub fn history_bytes(&self) -> String {
        format!("{}:history-bytes", self.prefix)
    }

    /// `{p}:history:{room}`, the room's history.
    pub fn history(&self, room: &str) -> String {
        self.room_key("history", room, "")
    }

    /// `{p}:node:{id}:direct`, the channel of the acts directed to node `node` alone.
    pub fn node_direct(&self, node: u64) -> String {
        format!("{}:node:{}:direct", self.prefix, node_hex(node))
    }

    /// `{p}:node:{id}:peer`, where node `node` takes peer links (`<address> <token>`, with its lease).
    pub fn node_peer(&self, node: u64) -> String {
        format!("{}:node:{}:peer", self.prefix, node_hex(node))
    }

    /// `{p}:bus`, the channel of every node's messages.
    pub fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    fn room_key(&self, kind: &str, room: &str, suffix: &str) -> String {
        format!("{}:{kind}:{}:{room}{suffix}", self.prefix, room.len())
    }

    /// A key of a room read back: `(kind, room, suffix)`, `kind` being `history` and `suffix` what follows
    /// the room (empty for a key this code writes). `None` for a key that is not a room key under this
    /// prefix (another chat's, a node's, or garbage).
    pub fn split_room_key<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str, &'k str)> {
        let rest = key.strip_prefix(&*self.prefix)?.strip_prefix(':')?;
        let (kind, rest) = rest.split_once(':')?;
        if kind != "history" {
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
