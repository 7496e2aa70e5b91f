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
