//! The rooms' history in Redis, bounded over all rooms like a node's own: every append is one Lua script
//! that pushes the turn's says to the room's list, trims it to `--history` messages, and drops the oldest
//! room's oldest says while all rooms together are past the writer's `--history-budget`. A joining node
//! reads the newest rooms first, a page at a time, and stops at its own budget.

use std::time::Duration;

use log::debug;

use super::{Inbound, Node, Purpose};
use crate::cluster::link::Value;

/// A room's history in Redis expires this long after its last write (and the index with the last write of
/// any room).
pub const HISTORY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Bytes counted for a history entry beyond its own: what Redis and a node spend on keeping one (and more
/// than a node's record of a say, so what a joining node loads within its budget also fits its budget).
pub const ENTRY_OVERHEAD: usize = 64;

/// A joining node asks for pages of about this many bytes (at least one room each).
const PAGE_BYTES: usize = 1024 * 1024;

/// Rooms a load script looks at per call, at most.
const PAGE_ROOMS: usize = 64;

/// `EVAL HISTORY_APPEND 4 room rooms sizes bytes limit budget overhead ttl_ms entry…`: appends the entries
/// to the room's list, keeps its last `limit`, marks the room as the newest, then drops the oldest room's
/// oldest entries while all rooms hold more than `budget` bytes (each entry counted as its length plus
/// `overhead`). A room whose list expired or vanished is forgotten with the bytes it was counted for.
/// Answers how many entries the budget dropped. One script, so the budget holds whatever nodes write at once.
pub const HISTORY_APPEND: &str = "\
local room, rooms, sizes, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, budget, over, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
local sum = tonumber(redis.call('GET', total)) or 0
local size = tonumber(redis.call('HGET', sizes, room)) or 0
if redis.call('EXISTS', room) == 0 then
  sum = sum - size
  size = 0
end
for i = 5, #ARGV do
  redis.call('RPUSH', room, ARGV[i])
  size = size + #ARGV[i] + over
  sum = sum + #ARGV[i] + over
end
for _ = 1, redis.call('LLEN', room) - limit do
  local e = redis.call('LPOP', room)
  size = size - #e - over
  sum = sum - #e - over
end
redis.call('ZADD', rooms, now, room)
redis.call('HSET', sizes, room, size)
redis.call('PEXPIRE', room, ttl)
local dropped = 0
while sum > budget do
  local oldest = redis.call('ZRANGE', rooms, 0, 0)[1]
  if not oldest then
    sum = 0
    break
  end
  local left = tonumber(redis.call('HGET', sizes, oldest)) or 0
  local e = redis.call('LPOP', oldest)
  if e then
    left = left - #e - over
    sum = sum - #e - over
    dropped = dropped + 1
  end
  if not e or left <= 0 or redis.call('EXISTS', oldest) == 0 then
    sum = sum - math.max(left, 0)
    redis.call('ZREM', rooms, oldest)
    redis.call('HDEL', sizes, oldest)
    redis.call('DEL', oldest)
  else
    redis.call('HSET', sizes, oldest, left)
  end
end
if sum < 0 then sum = 0 end
redis.call('SET', total, sum, 'PX', ttl)
redis.call('PEXPIRE', rooms, ttl)
redis.call('PEXPIRE', sizes, ttl)
return dropped";

/// `EVAL HISTORY_LOAD 1 rooms below left limit page overhead max_rooms`: from the newest room with a last
/// write below `below` (`+inf` at first, then the answer's cursor), the last `limit` entries of each
/// room, newest first, until `page` bytes were taken or taking the next entry would pass `left` (each entry
/// counted as its length plus `overhead`). Answers `{cursor, {room key, {entries newest first}, …}}`, the
/// cursor empty when nothing is left to read (or the budget is spent).
pub const HISTORY_LOAD: &str = "\
local below, left, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local page, over, max_rooms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out, used = {}, 0
local found = redis.call('ZREVRANGEBYSCORE', KEYS[1], below, '-inf', 'WITHSCORES', 'LIMIT', 0, max_rooms)
for i = 1, #found, 2 do
  local key = found[i]
  local entries = redis.pcall('LRANGE', key, -limit, -1)
  if type(entries) == 'table' and entries.err == nil then
    local taken = {}
    for j = #entries, 1, -1 do
      local cost = #entries[j] + over
      if used + cost > left then
        if #taken > 0 then
          out[#out + 1] = key
          out[#out + 1] = taken
        end
        return {'', out}
      end
      used = used + cost
      taken[#taken + 1] = entries[j]
    end
    if #taken > 0 then
      out[#out + 1] = key
      out[#out + 1] = taken
    end
  end
  if used >= page then
    return {'(' .. found[i + 1], out}
  end
end
if #found < 2 * max_rooms then
  return {'', out}
end
return {'(' .. found[#found], out}";

/// Where a joining node's history load stands.
#[derive(Debug, Default)]
pub(super) struct Load {
    /// A page was asked for on the current commands connection.
    pub asking: bool,
    /// Bytes the node may still load (its `--history-budget`, less what it loaded).
    left: usize,
    /// Bytes loaded so far: `wschat_cluster_history_loaded_bytes`.
    pub loaded: u64,
}

impl Node {
    /// The arguments of a history write after the room's key: the index, the sizes, the total, then the
    /// per-room limit, the budget, the entry overhead and the time to live.
    pub(super) fn history_args(&self) -> [String; 7] {
        let k = &self.cfg.keys;
        [
            k.history_rooms(),
            k.history_sizes(),
            k.history_bytes(),
            self.cfg.history.to_string(),
            self.cfg.history_budget.to_string(),
            ENTRY_OVERHEAD.to_string(),
            HISTORY_TTL.as_millis().to_string(),
        ]
    }

    /// Loads the rooms' history from Redis, newest rooms first and within `--history-budget`, when the
    /// node has not yet.
    pub(super) fn load_history(&mut self) {
        if self.joining.history_loaded || self.joining.load.asking {
            return;
        }
        if self.cfg.history == 0 {
            self.joining.history_loaded = true;
            return;
        }
        self.joining.load = Load { asking: false, left: self.cfg.history_budget, loaded: 0 };
        self.ask_history_page("+inf");
    }

    fn ask_history_page(&mut self, below: &str) {
        let rooms = self.cfg.keys.history_rooms();
        let left = self.joining.load.left.to_string();
        let limit = self.cfg.history.to_string();
        let page = PAGE_BYTES.to_string();
        let over = ENTRY_OVERHEAD.to_string();
        let max_rooms = PAGE_ROOMS.to_string();
        let args: [&[u8]; 10] = [
            b"EVAL",
            HISTORY_LOAD.as_bytes(),
            b"1",
            rooms.as_bytes(),
            below.as_bytes(),
            left.as_bytes(),
            limit.as_bytes(),
            page.as_bytes(),
            over.as_bytes(),
            max_rooms.as_bytes(),
        ];
        self.joining.load.asking = self.command(Purpose::HistoryPage, &args);
    }

    /// A page of history came: each room's entries go to the chat oldest first; the next page is asked
    /// for while there is one and budget left.
    pub(super) fn on_history_page(&mut self, value: Value) {
        self.joining.load.asking = false;
        let is_error = value.is_error();
        let Some((cursor, rooms)) = parse_page(value) else {
            // An error reply was counted where replies are read; anything else is not an answer of this script.
            if !is_error {
                self.stats.garbage_total += 1;
            }
            self.history_done();
            return;
        };
        for (key, mut entries) in rooms {
            let Some(("history", room, "")) =
                std::str::from_utf8(&key).ok().and_then(|k| self.cfg.keys.split_room_key(k))
            else {
                self.stats.garbage_total += 1;
                continue;
            };
            let bytes: usize = entries.iter().map(|e| e.len() + ENTRY_OVERHEAD).sum();
            self.joining.load.left = self.joining.load.left.saturating_sub(bytes);
            self.joining.load.loaded += bytes as u64;
            entries.reverse();
            self.inbound.push_back(Inbound::History { room: room.to_string(), entries });
        }
        match cursor {
            Some(below) if self.joining.load.left > 0 => self.ask_history_page(&below),
            _ => self.history_done(),
        }
    }

    fn history_done(&mut self) {
        if !self.joining.history_loaded {
            self.joining.history_loaded = true;
            debug!("cluster: history loaded ({} bytes)", self.joining.load.loaded);
        }
    }
}

/// A room's key and its entries, newest first.
type Page = Vec<(Vec<u8>, Vec<Vec<u8>>)>;

/// Reads a load script's answer: the cursor (`None`: done) and each room's key and entries. Entries that
/// are not strings are skipped; an answer of another shape is `None`.
fn parse_page(value: Value) -> Option<(Option<String>, Page)> {
    let Value::Array(items) = value else { return None };
    let mut items = items.into_iter();
    let (Some(cursor), Some(Value::Array(flat)), None) = (items.next(), items.next(), items.next()) else {
        return None;
    };
    let cursor = match cursor {
        Value::Bulk(c) if c.is_empty() => None,
        Value::Bulk(c) => Some(String::from_utf8(c).ok()?),
        _ => return None,
    };
    let mut rooms = Vec::new();
    let mut flat = flat.into_iter();
    while let (Some(key), Some(entries)) = (flat.next(), flat.next()) {
        let (Value::Bulk(key), Value::Array(entries)) = (key, entries) else { return None };
        let entries = entries
            .into_iter()
            .filter_map(|e| match e {
                Value::Bulk(b) => Some(b),
                _ => None,
            })
            .collect();
        rooms.push((key, entries));
    }
    Some((cursor, rooms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_and_other_shapes_refused() {
        let page = Value::Array(vec![
            Value::Bulk(b"(17".to_vec()),
            Value::Array(vec![
                Value::Bulk(b"wschat:history:1:a".to_vec()),
                Value::Array(vec![Value::Bulk(b"new".to_vec()), Value::Int(3), Value::Bulk(b"old".to_vec())]),
            ]),
        ]);
        let (cursor, rooms) = parse_page(page).unwrap();
        assert_eq!(cursor.as_deref(), Some("(17"));
        assert_eq!(rooms, [(b"wschat:history:1:a".to_vec(), vec![b"new".to_vec(), b"old".to_vec()])]);
        let done = Value::Array(vec![Value::Bulk(Vec::new()), Value::Array(vec![])]);
        assert_eq!(parse_page(done), Some((None, Vec::new())));
        assert_eq!(parse_page(Value::Error("OOM".into())), None);
        assert_eq!(parse_page(Value::Array(vec![Value::Int(1), Value::Array(vec![])])), None);
        let bad_room =
            Value::Array(vec![Value::Bulk(Vec::new()), Value::Array(vec![Value::Int(1), Value::Array(vec![])])]);
        assert_eq!(parse_page(bad_room), None);
    }
}
