//! The two Lua scripts a node runs in Redis, each one command: the heartbeat (lease, and who is alive or
//! expired, on the Redis clock so that nodes on several machines need no synchronised clocks) and the uid
//! block (never below what the cluster already handed out, even after Redis lost its counter).

use crate::cluster::link::Value;

/// `EVAL HEARTBEAT 2 {p}:nodes {p}:node:{id}:stream id lease_ms stream_ttl_ms`: renews this node's lease and
/// its stream's time to live; answers `{added, expired ids, live ids, ms, expired ms}` (`added` 1: the node
/// was not registered — a survivor took it for dead, or Redis came back empty; `ms`: until the first other
/// node's lease ends, -1 when there is none, so that the next beat can be when a dead node's lease runs out
/// rather than up to a heartbeat later; `expired ms`: how long ago each expired lease ended, so that a
/// node renewed while this one was connected is reaped at once, without the grace after a reconnect).
pub const HEARTBEAT: &str = "\
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local ended = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
local expired, ago = {}, {}
for i = 1, #ended, 2 do
  expired[#expired + 1] = ended[i]
  ago[#ago + 1] = now - tonumber(ended[i + 1])
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local ids, next = {}, -1
for i = 1, #live, 2 do
  ids[#ids + 1] = live[i]
  local left = tonumber(live[i + 1]) - now
  if live[i] ~= ARGV[1] and (next < 0 or left < next) then next = left end
end
return {added, expired, ids, next, ago}";

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
    /// Nodes whose lease ran out, with how many milliseconds ago it did (`None` when not told).
    pub expired: Vec<(u64, Option<u64>)>,
    /// Nodes alive, this one included.
    pub live: Vec<u64>,
    /// Milliseconds until the first other node's lease ends, if another is alive.
    pub next_expiry_ms: Option<u64>,
}

impl Beat {
    /// Reads the script's answer; `None` for anything else (an error reply, garbage).
    pub fn parse(value: &Value) -> Option<Beat> {
        let Value::Array(items) = value else { return None };
        let (added, expired, live, next, ago) = match items.as_slice() {
            [Value::Int(a), Value::Array(e), Value::Array(l)] => (a, e, l, None, &[][..]),
            [Value::Int(a), Value::Array(e), Value::Array(l), Value::Int(n), Value::Array(ago)] => {
                (a, e, l, u64::try_from(*n).ok(), ago.as_slice())
            }
            _ => return None,
        };
        let ago = |i: usize| match ago.get(i) {
            Some(Value::Int(ms)) => u64::try_from(*ms).ok(),
            _ => None,
        };
        // Ids and times are paired before foreign members are skipped.
        let expired = expired.iter().enumerate().filter_map(|(i, v)| Some((node_id(v)?, ago(i)))).collect();
        Some(Beat { added: *added == 1, expired, live: node_ids(live), next_expiry_ms: next })
    }
}

/// The node ids among `values` (16 hex digits each); anything else in the set is skipped.
fn node_ids(values: &[Value]) -> Vec<u64> {
    values.iter().filter_map(node_id).collect()
}

/// A node id (16 hex digits), if `value` is one.
fn node_id(value: &Value) -> Option<u64> {
    let b = value.as_bytes().filter(|b| b.len() == 16)?;
    u64::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
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
        assert_eq!(
            Beat::parse(&v),
            Some(Beat { added: true, expired: vec![(0xab, None)], live: vec![u64::MAX], next_expiry_ms: None })
        );
        let Value::Array(mut items) = v else { unreachable!() };
        items.push(Value::Int(1500));
        items.push(Value::Array(vec![Value::Int(30), Value::Int(40)]));
        let beat = Beat::parse(&Value::Array(items.clone())).unwrap();
        assert_eq!((beat.next_expiry_ms, beat.expired), (Some(1500), vec![(0xab, Some(30))]));
        items[3] = Value::Int(-1);
        assert_eq!(Beat::parse(&Value::Array(items)).map(|b| b.next_expiry_ms), Some(None));
        assert_eq!(Beat::parse(&Value::Error("NOSCRIPT".into())), None);
        assert_eq!(Beat::parse(&Value::Array(vec![Value::Int(0)])), None);
    }
}
