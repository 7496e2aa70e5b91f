//! The two Lua scripts a node runs in Redis, each one command: the heartbeat (lease, and who is alive or
//! expired, on the Redis clock so that nodes on several machines need no synchronised clocks) and the uid
//! block (never below what the cluster already handed out, even after Redis lost its counter).

use crate::cluster::link::Value;

/// `EVAL HEARTBEAT 2 {p}:nodes {p}:node:{id}:stream id lease_ms stream_ttl_ms`: renews this node's lease and
/// its stream's time to live; answers `{added, expired ids, live ids}` (`added` 1: the node was not
/// registered — a survivor took it for dead, or Redis came back empty).
pub const HEARTBEAT: &str = "\
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
return {added, expired, live}";

/// `EVAL UID_BLOCK 1 {p}:uid floor size`: raises the counter to at least `floor` (the highest uid this node
/// knows; a counter that is not a number is replaced), then takes the next `size` uids; answers the last
/// one of the block.
pub const UID_BLOCK: &str = "\
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c == nil or c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCRBY', KEYS[1], ARGV[2])";

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// The node was not registered before this beat.
    pub added: bool,
    /// Nodes whose lease ran out.
    pub expired: Vec<u64>,
    /// Nodes alive, this one included.
    pub live: Vec<u64>,
}

impl Beat {
    /// Reads the script's answer; `None` for anything else (an error reply, garbage).
    pub fn parse(value: &Value) -> Option<Beat> {
        let Value::Array(items) = value else { return None };
        let [Value::Int(added), Value::Array(expired), Value::Array(live)] = items.as_slice() else { return None };
        Some(Beat { added: *added == 1, expired: node_ids(expired), live: node_ids(live) })
    }
}

/// The node ids among `values` (16 hex digits each); anything else in the set is skipped.
fn node_ids(values: &[Value]) -> Vec<u64> {
    values
        .iter()
        .filter_map(|v| v.as_bytes())
        .filter(|b| b.len() == 16)
        .filter_map(|b| std::str::from_utf8(b).ok())
        .filter_map(|s| u64::from_str_radix(s, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_are_read_and_foreign_members_skipped() {
        let v = Value::Array(vec![
            Value::Int(1),
            Value::Array(vec![Value::Bulk(b"00000000000000ab".to_vec()), Value::Bulk(b"garbage".to_vec())]),
            Value::Array(vec![Value::Bulk(b"ffffffffffffffff".to_vec()), Value::Int(3)]),
        ]);
        assert_eq!(Beat::parse(&v), Some(Beat { added: true, expired: vec![0xab], live: vec![u64::MAX] }));
        assert_eq!(Beat::parse(&Value::Error("NOSCRIPT".into())), None);
        assert_eq!(Beat::parse(&Value::Array(vec![Value::Int(0)])), None);
    }
}
