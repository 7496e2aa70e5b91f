//! Presence: uid allocation and who is in which room, in login order — the user list. Behind a trait so that
//! a cluster can share it; [`LocalPresence`] is one process's own, [`crate::cluster::ClusterPresence`] the
//! cluster's. [`Shared`] is what a shared presence adds: the links it keeps and the other processes' events
//! it brings in.

use std::collections::HashMap;
use std::time::Instant;

use super::event::{ErrorCode, Event, Sink};
use super::hub::Hub;
use crate::app::LinkHost;
use crate::metrics::Metrics;

/// Uids, and the users of each room in login order. The chat core asks it and keeps no copy of its own:
/// the user list a newcomer gets, the room cap and uid allocation all come from here. Synchronous: the core
/// calls it in the middle of a loop turn and takes the answer at once.
///
/// A cluster implementation (Redis, say) has to provide:
/// - uids unique over every process that shares it, never reused (an `INCR` on one key);
/// - each room's users in one login order that every process sees alike (a list per room, or a sorted set
///   scored by a login sequence, beside a hash of names), so two processes hand out the same user list;
/// - a count good for the room cap: the core calls [`Presence::count`] and then [`Presence::join`], so a
///   strict cap across processes needs the two made one atomic step (a script), else the cap is approximate;
/// - answers without a round trip: the reactor is one thread, so a cluster implementation answers from a
///   local replica kept current by the cluster's updates (pub/sub) and sends its own changes without
///   waiting (with the loop turn's other publishes);
/// - the departure of users whose process died (entries under a lease that each process renews).
///
/// Logins and logouts on other processes must also reach this process's members as events; that is the
/// cluster module's part (it feeds them to the core like local ones), not presence's.
pub trait Presence {
    /// A uid for a new login: positive, never handed out before; `None` when none can be had now (a
    /// cluster that has no uid block).
    fn allocate_uid(&mut self) -> Option<u64>;

    /// `uid` named `name` enters `room`, after everyone already in it.
    fn join(&mut self, room: &str, uid: u64, name: &str);

    /// `uid` leaves `room`. Returns how many users are still in it; at 0 the room is gone.
    fn leave(&mut self, room: &str, uid: u64) -> usize;

    /// How many users are in `room` (0 for a room nobody is in).
    fn count(&self, room: &str) -> usize;

    /// Calls `f` with every user of `room` in login order: the room's user list.
    fn for_each_user(&self, room: &str, f: &mut dyn FnMut(u64, &str));

    /// Whether `uid` is in `room`.
    fn contains(&self, room: &str, uid: u64) -> bool;

    /// The name of `uid` when it is a user of another process (the hub knows its own users' names).
    fn name_of(&self, _uid: u64) -> Option<&str> {
        None
    }

    /// Whether logins can be taken now (a cluster node that has not joined yet cannot).
    fn accepts_logins(&self) -> bool {
        true
    }

    /// Whether a say can be taken now (a cluster node whose buffer for Redis is full cannot), or the error
    /// its sender gets; asked once per say, before it is delivered to anyone.
    fn accepts_say(&mut self) -> Result<(), ErrorCode> {
        Ok(())
    }

    /// `event` (a login, a say, a logout) happened in `room` on this process, after the presence change
    /// it implies: a shared presence tells the other processes.
    fn replicate(&mut self, _room: &str, _event: &Event<'_>) {}

    /// Whether a room's history outlives its last user (a cluster keeps it in Redis: every node may
    /// restart, and the room with it).
    fn keeps_empty_rooms(&self) -> bool {
        false
    }
}

/// What a presence shared with other processes adds to the chat: links for the reactor to drive, the
/// other processes' events to apply, its own per-turn work and figures. [`LocalPresence`] has none.
pub trait Shared: Presence + Sized {
    /// The loop turn's time.
    fn set_now(&mut self, _now: Instant) {}

    /// The links to drive.
    fn links(&mut self) -> Option<&mut dyn LinkHost> {
        None
    }

    /// Applies what the links brought in: the hub turns it into events for local connections.
    fn pump(_hub: &mut Hub<Self>, _time: &str, _sink: &mut impl Sink) {}

    /// The end of a loop turn: send what this turn recorded.
    fn end_turn(&mut self) {}

    /// Why the presence cannot fully serve right now, if it cannot.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// The daemon is stopping.
    fn shutdown(&mut self) {}

    /// Its figures for /metrics.
    fn fill_metrics(&self, _m: &mut Metrics) {}
}

impl Shared for LocalPresence {}

/// Presence in this process alone: uids counted from 1, rooms in memory (a room exists while someone is in
/// it).
#[derive(Debug)]
pub struct LocalPresence {
    next_uid: u64,
    rooms: HashMap<Box<str>, Roster>,
    /// Each user's index in its room's roster.
    slots: HashMap<u64, usize>,
}

/// The users of one room in login order; those who left are `None` until the roster is compacted (when they
/// outnumber the others), so a wave of departures costs one compaction, not one each.
#[derive(Debug, Default)]
struct Roster {
    users: Vec<Option<(u64, Box<str>)>>,
    live: usize,
}

impl Default for LocalPresence {
    fn default() -> LocalPresence {
        LocalPresence { next_uid: 1, rooms: HashMap::new(), slots: HashMap::new() }
    }
}

impl LocalPresence {
    /// Nobody anywhere; the first uid is 1.
    pub fn new() -> LocalPresence {
        LocalPresence::default()
    }

    /// Rooms someone is in.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

impl Presence for LocalPresence {
    fn allocate_uid(&mut self) -> Option<u64> {
        let uid = self.next_uid;
        self.next_uid += 1;
        Some(uid)
    }

    fn join(&mut self, room: &str, uid: u64, name: &str) {
        if !self.rooms.contains_key(room) {
            self.rooms.insert(room.into(), Roster::default());
        }
        let Some(roster) = self.rooms.get_mut(room) else { return };
        self.slots.insert(uid, roster.users.len());
        roster.users.push(Some((uid, name.into())));
        roster.live += 1;
    }

    fn leave(&mut self, room: &str, uid: u64) -> usize {
        let Some(roster) = self.rooms.get_mut(room) else { return 0 };
        let Some(slot) = self.slots.remove(&uid) else { return roster.live };
        if let Some(entry @ Some(_)) = roster.users.get_mut(slot) {
            *entry = None;
            roster.live -= 1;
        }
        let live = roster.live;
        if live == 0 {
            self.rooms.remove(room);
        } else if roster.users.len() - live > live.max(32) {
            roster.users.retain(Option::is_some);
            for (slot, (uid, _)) in roster.users.iter().flatten().enumerate() {
                self.slots.insert(*uid, slot);
            }
            if roster.users.capacity() > 2 * live + 64 {
                roster.users.shrink_to(live + live / 2);
            }
        }
        live
    }

    fn count(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |r| r.live)
    }

    fn for_each_user(&self, room: &str, f: &mut dyn FnMut(u64, &str)) {
        let Some(roster) = self.rooms.get(room) else { return };
        for (uid, name) in roster.users.iter().flatten() {
            f(*uid, name);
        }
    }

    fn contains(&self, room: &str, uid: u64) -> bool {
        let (Some(roster), Some(&slot)) = (self.rooms.get(room), self.slots.get(&uid)) else { return false };
        matches!(roster.users.get(slot), Some(Some((u, _))) if *u == uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(p: &LocalPresence, room: &str) -> Vec<(u64, String)> {
        let mut got = Vec::new();
        p.for_each_user(room, &mut |uid, name| got.push((uid, name.to_string())));
        got
    }

    #[test]
    fn login_order_counts_and_rooms_that_go_with_their_last_user() {
        let mut p = LocalPresence::new();
        let (a, b, c) = (p.allocate_uid().unwrap(), p.allocate_uid().unwrap(), p.allocate_uid().unwrap());
        assert_eq!((a, b, c), (1, 2, 3));
        p.join("r", a, "a");
        p.join("r", b, "b");
        p.join("other", c, "c");
        assert_eq!(users(&p, "r"), [(1, "a".into()), (2, "b".into())]);
        assert_eq!((p.count("r"), p.count("other"), p.count("none"), p.room_count()), (2, 1, 0, 2));
        assert!(p.contains("r", a) && !p.contains("other", a) && !p.contains("r", c));
        assert_eq!(p.leave("r", a), 1);
        assert!(!p.contains("r", a));
        let d = p.allocate_uid().unwrap();
        p.join("r", d, "d");
        assert_eq!(users(&p, "r"), [(2, "b".into()), (4, "d".into())], "a newcomer is last; uids never come back");
        assert_eq!(p.leave("other", c), 0);
        assert_eq!((p.count("other"), p.room_count()), (0, 1));
        assert_eq!(p.leave("r", 99), 2, "leaving twice, or never having joined, changes nothing");
    }

    #[test]
    fn many_departures_keep_the_order_of_those_who_stay() {
        let mut p = LocalPresence::new();
        for _ in 0..1000 {
            let uid = p.allocate_uid().unwrap();
            p.join("big", uid, &format!("u{uid}"));
        }
        for uid in (1..=1000).filter(|u| u % 3 != 0) {
            p.leave("big", uid);
        }
        let left = users(&p, "big");
        assert_eq!(left.len(), 333);
        assert!(left.iter().map(|(u, _)| *u).eq((3..=999).step_by(3)));
        assert!(p.rooms["big"].users.len() < 1000, "compacted on the way");
        for uid in (3..=999).step_by(3) {
            p.leave("big", uid);
        }
        assert_eq!(p.room_count(), 0);
        assert!(p.slots.is_empty());
    }
}
