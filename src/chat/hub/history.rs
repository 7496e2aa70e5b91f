//! What rooms said to all, kept for newcomers: the last `--history` messages per room, and no more than
//! `--history-budget` bytes over all rooms together (past it the globally oldest messages go first). A room's
//! history goes with the room.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::chat::event::{History as Past, HistoryStamp, Said};

/// Every room's history, within the count per room and the global budget.
#[derive(Debug)]
pub(super) struct History {
    /// Messages kept per room; 0 keeps none.
    limit: usize,
    /// Bytes kept over all rooms ([`Said::cost`]).
    budget: u64,
    rooms: HashMap<Rc<str>, RoomHistory>,
    /// Every message kept in any room, oldest first, plus ones already dropped (by the per-room count, or
    /// with their room), which are skipped and now and then swept out.
    pub(super) queue: VecDeque<Kept>,
    /// Messages in all rooms' histories.
    pub(super) messages: usize,
    next_room_id: u64,
    /// Bytes held: `wschat_history_bytes`.
    pub(super) bytes: u64,
    /// Messages dropped to stay within the budget: `wschat_history_evicted_total`.
    pub(super) evicted: u64,
}

/// One room's history.
#[derive(Debug)]
struct RoomHistory {
    /// Tells this room from an earlier room of the same name (for the global queue).
    id: u64,
    said: VecDeque<Said>,
    /// The sequence number of `said[0]`; each message kept gets the next one.
    seq: u64,
}

/// A message kept in some room's history, in the order of the global queue.
#[derive(Debug)]
pub(super) struct Kept {
    room: Rc<str>,
    /// [`RoomHistory::id`]: a room dropped and made again under the same name is another room.
    room_id: u64,
    /// The message's sequence number in its room.
    seq: u64,
}

impl History {
    /// No history yet; `limit` messages per room, `budget` bytes over all.
    pub(super) fn new(limit: usize, budget: usize) -> History {
        History {
            limit,
            budget: u64::try_from(budget).unwrap_or(u64::MAX),
            rooms: HashMap::new(),
            queue: VecDeque::new(),
            messages: 0,
            next_room_id: 1,
            bytes: 0,
            evicted: 0,
        }
    }

    /// What `room` said, oldest first, with the stamp of this version; `None` when it kept nothing.
    pub(super) fn of(&self, room: &str) -> Option<Past<'_>> {
        self.rooms.get(room).filter(|r| !r.said.is_empty()).map(|r| Past {
            said: r.said.iter(),
            stamp: HistoryStamp { room: r.id, first: r.seq, len: r.said.len() as u64 },
        })
    }

    /// Keeps `said` in `room`'s history, within the per-room count and the global budget.
    pub(super) fn keep(&mut self, room: &Rc<str>, said: Said) {
        if self.limit == 0 {
            return;
        }
        let next_room_id = &mut self.next_room_id;
        let history = self.rooms.entry(room.clone()).or_insert_with(|| {
            *next_room_id += 1;
            RoomHistory { id: *next_room_id - 1, said: VecDeque::new(), seq: 0 }
        });
        self.bytes += said.cost() as u64;
        let seq = history.seq + history.said.len() as u64;
        history.said.push_back(said);
        self.messages += 1;
        if history.said.len() > self.limit {
            if let Some(old) = history.said.pop_front() {
                history.seq += 1;
                self.messages -= 1;
                self.bytes -= old.cost() as u64;
            }
        }
        self.queue.push_back(Kept { room: room.clone(), room_id: history.id, seq });
        self.enforce_budget();
        // Entries already dropped are skipped when they reach the front; sweep them out before they could
        // outnumber the live ones, so the queue stays within a constant factor of the history (amortised O(1)).
        if self.queue.len() > 2 * self.messages + 1024 {
            let rooms = &self.rooms;
            self.queue.retain(|k| rooms.get(&k.room).is_some_and(|r| r.id == k.room_id && k.seq >= r.seq));
        }
    }

    /// Makes `said` (oldest first) `room`'s whole history, within the limits: what a cluster loads from Redis.
    pub(super) fn replace(&mut self, room: &Rc<str>, said: impl IntoIterator<Item = Said>) {
        self.drop_room(room);
        for s in said {
            self.keep(room, s);
        }
    }

    /// Drops `room`'s history (its last user left); its entries in the global queue are skipped from now on.
    pub(super) fn drop_room(&mut self, room: &str) {
        if let Some(history) = self.rooms.remove(room) {
            self.messages -= history.said.len();
            self.bytes -= history.said.iter().map(|s| s.cost() as u64).sum::<u64>();
        }
    }

    /// Rooms with a history.
    #[cfg(test)]
    pub(super) fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Drops the globally oldest kept messages until the history fits the budget.
    fn enforce_budget(&mut self) {
        while self.bytes > self.budget {
            let Some(k) = self.queue.pop_front() else { break };
            let Some(history) = self.rooms.get_mut(&k.room) else { continue };
            if history.id != k.room_id || k.seq != history.seq {
                continue;
            }
            if let Some(old) = history.said.pop_front() {
                history.seq += 1;
                self.messages -= 1;
                self.bytes -= old.cost() as u64;
                self.evicted += 1;
            }
        }
    }
}
