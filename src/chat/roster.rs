//! The roster: who is in which room, in the one order every process agrees on — the user list. One owner
//! (the hub) keeps it; presence, the fanout and the user lists read it. Each user has a seat: its room, its
//! name, its place in the room's order (a login sequence here, the login's wall-clock milliseconds in a
//! cluster; ties broken by uid) and its home, a connection of this process or another process (a cluster
//! node). A room also lists the connections of this process in it, the fanout's recipients.
//!
//! Removal leaves a mark in the room's order until the marks outnumber the users, so a wave of departures
//! costs one compaction, not one each. A room's version changes whenever its list changes other than by a
//! user added at the end: what keeps the list encoded may append to it until the version changes.

use std::collections::HashMap;
use std::rc::Rc;

use crate::app::ConnId;

/// Whom text pushed by the server API goes to (`POST /api/send`'s `to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Every logged-in user.
    All,
    /// The users of a room.
    Room(&'a str),
    /// The users of an account (a token's `sub`).
    Account(&'a str),
    /// One user.
    Uid(u64),
}

/// Where a user's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// A connection of this process.
    Here(ConnId),
    /// A connection of another process: the cluster node with this id.
    Node(u64),
    /// This process's user whose connection dropped: detached, its session to be resumed
    /// ([`super::resume`]).
    Away,
}

impl Home {
    /// Whether the user is this process's (connected or detached).
    pub fn is_here(self) -> bool {
        matches!(self, Home::Here(_) | Home::Away)
    }
}

/// Where a user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The room.
    pub room: Rc<str>,
    /// The user's name.
    pub name: Rc<str>,
    /// The user's account id in the application, when a token proved it (`--auth-key`).
    pub user_id: Option<Rc<str>>,
    /// The user's place in the room's order.
    pub order: u64,
    /// Where its connection is.
    pub home: Home,
}

/// One user of this process, as [`Roster::for_each_here`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HereUser<'a> {
    /// Its room.
    pub room: &'a str,
    /// Its uid.
    pub uid: u64,
    /// Its name.
    pub name: &'a str,
    /// Its account id, when a token proved it.
    pub user_id: Option<&'a str>,
    /// Its place in the room's order.
    pub order: u64,
}

/// One place in a room's order; `live` is false for a user who left since the last compaction.
#[derive(Debug, Clone)]
struct Entry {
    order: u64,
    uid: u64,
    name: Rc<str>,
    user_id: Option<Rc<str>>,
    live: bool,
}

/// One room: its users in order, and the connections of this process among them.
#[derive(Debug, Default)]
pub struct RoomRoster {
    name: Rc<str>,
    entries: Vec<Entry>,
    live: usize,
    locals: Vec<ConnId>,
    version: u64,
}

impl RoomRoster {
    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connections of this process in the room, in no particular order.
    pub fn locals(&self) -> &[ConnId] {
        &self.locals
    }

    /// Changes whenever the list changed other than by users added at the end.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Places in the order so far (users and marks of those who left): the position
    /// [`RoomRoster::each_from`] continues from.
    pub fn end(&self) -> usize {
        self.entries.len()
    }

    /// Calls `f` with every user — uid, name, account id — from place `from` on, in order.
    pub fn each_from(&self, from: usize, mut f: impl FnMut(u64, &str, Option<&str>)) {
        for e in self.entries.get(from..).into_iter().flatten().filter(|e| e.live) {
            f(e.uid, &e.name, e.user_id.as_deref());
        }
    }

    /// Where `(order, uid)` stands or would stand.
    fn position(&self, order: u64, uid: u64) -> usize {
        self.entries.partition_point(|e| (e.order, e.uid) < (order, uid))
    }
}

/// A connection of this process and its user.
#[derive(Debug, Clone, Copy)]
struct Local {
    uid: u64,
    /// Its index in its room's `locals`.
    slot: usize,
}

/// Every user this process knows of, by room.
#[derive(Debug, Default)]
pub struct Roster {
    rooms: HashMap<Rc<str>, RoomRoster>,
    seats: HashMap<u64, Seat>,
    locals: HashMap<ConnId, Local>,
    /// This process's detached users.
    away: usize,
    /// The last version handed out (over all rooms, so a room made again never repeats one).
    versions: u64,
}

impl Roster {
    /// Nobody anywhere.
    pub fn new() -> Roster {
        Roster::default()
    }

    /// `users` in `room` in the order given (on another process), for tests of what reads a roster.
    #[cfg(test)]
    pub fn with_users(room: &str, users: &[(u64, &str)]) -> Roster {
        let mut r = Roster::new();
        for (order, &(uid, name)) in users.iter().enumerate() {
            r.join(room, uid, name, order as u64, Home::Node(0));
        }
        r
    }

    /// Seats `uid`, named `name`, with no account id, in `room` at `order`, at `home` (see [`Roster::join_as`]).
    pub fn join(&mut self, room: &str, uid: u64, name: &str, order: u64, home: Home) -> bool {
        self.join_as(room, uid, name, None, order, home)
    }

    /// Seats `uid`, named `name`, of account `user_id`, in `room` at `order`, at `home`. False when it sat
    /// there already as given (nothing changed); a user seated elsewhere is moved.
    pub fn join_as(&mut self, room: &str, uid: u64, name: &str, user_id: Option<&str>, order: u64, home: Home) -> bool {
        if let Some(seat) = self.seats.get(&uid) {
            let same = &*seat.room == room && seat.order == order && seat.home == home && &*seat.name == name;
            if same && seat.user_id.as_deref() == user_id {
                return false;
            }
            self.leave(uid);
        }
        if !self.rooms.contains_key(room) {
            self.versions += 1;
            let name: Rc<str> = Rc::from(room);
            self.rooms.insert(name.clone(), RoomRoster { name, version: self.versions, ..RoomRoster::default() });
        }
        let Some(r) = self.rooms.get_mut(room) else { return false };
        let key = r.name.clone();
        let name: Rc<str> = Rc::from(name);
        let user_id: Option<Rc<str>> = user_id.map(Rc::from);
        let at = r.position(order, uid);
        if at < r.entries.len() {
            self.versions += 1;
            r.version = self.versions;
        }
        r.entries.insert(at, Entry { order, uid, name: name.clone(), user_id: user_id.clone(), live: true });
        r.live += 1;
        // Seated as elsewhere (counted nowhere), then given its home.
        self.seats.insert(uid, Seat { room: key, name, user_id, order, home: Home::Node(0) });
        self.rehome(uid, home);
        true
    }

    /// Moves `uid`'s seat to `home` (a session detached or resumed) without changing the room's list.
    pub fn rehome(&mut self, uid: u64, home: Home) {
        let Some(seat) = self.seats.get_mut(&uid) else { return };
        let Some(r) = self.rooms.get_mut(&seat.room) else { return };
        match seat.home {
            Home::Here(conn) => {
                if let Some(local) = self.locals.remove(&conn) {
                    r.locals.swap_remove(local.slot);
                    if let Some(moved) = r.locals.get(local.slot).and_then(|c| self.locals.get_mut(c)) {
                        moved.slot = local.slot;
                    }
                }
            }
            Home::Away => self.away -= 1,
            Home::Node(_) => {}
        }
        match home {
            Home::Here(conn) => {
                self.locals.insert(conn, Local { uid, slot: r.locals.len() });
                r.locals.push(conn);
            }
            Home::Away => self.away += 1,
            Home::Node(_) => {}
        }
        seat.home = home;
    }

    /// Takes `uid` out of its room; returns where it was. A room goes with its last user.
    pub fn leave(&mut self, uid: u64) -> Option<Seat> {
        // Off its home first (a process elsewhere is counted nowhere), so the room's connections and the
        // detached count are right.
        let home = self.seats.get(&uid)?.home;
        self.rehome(uid, Home::Node(0));
        let mut seat = self.seats.remove(&uid)?;
        seat.home = home;
        let Some(r) = self.rooms.get_mut(&seat.room) else { return Some(seat) };
        let at = r.position(seat.order, uid);
        if let Some(e) = r.entries.get_mut(at).filter(|e| e.uid == uid && e.live) {
            e.live = false;
            r.live -= 1;
            self.versions += 1;
            r.version = self.versions;
        }
        if r.live == 0 {
            self.rooms.remove(&seat.room);
        } else if r.entries.len() - r.live > r.live.max(32) {
            r.entries.retain(|e| e.live);
            if r.entries.capacity() > 2 * r.live + 64 {
                r.entries.shrink_to(r.live + r.live / 2);
            }
        }
        Some(seat)
    }

    /// Where `uid` is, if anywhere.
    pub fn seat(&self, uid: u64) -> Option<&Seat> {
        self.seats.get(&uid)
    }

    /// The user on this process's connection `conn`, if logged in.
    pub fn uid_of(&self, conn: ConnId) -> Option<u64> {
        self.locals.get(&conn).map(|l| l.uid)
    }

    /// The seat of the user on `conn`, with its uid.
    pub fn seat_of(&self, conn: ConnId) -> Option<(u64, &Seat)> {
        let uid = self.uid_of(conn)?;
        Some((uid, self.seats.get(&uid)?))
    }

    /// `room`, if anyone is in it.
    pub fn room(&self, room: &str) -> Option<&RoomRoster> {
        self.rooms.get(room)
    }

    /// Users in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |r| r.live)
    }

    /// Rooms someone is in.
    #[cfg(test)]
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Every room someone is in, with its number of users, sorted by name.
    pub fn rooms_sorted(&self) -> Vec<(&str, usize)> {
        let mut rooms: Vec<(&str, usize)> = self.rooms.values().map(|r| (&*r.name, r.live)).collect();
        rooms.sort_unstable();
        rooms
    }

    /// The users of account `user_id` (a token's `sub`), sorted by uid.
    pub fn seats_of_account(&self, user_id: &str) -> Vec<(u64, &Seat)> {
        let mut seats: Vec<(u64, &Seat)> =
            self.seats.iter().filter(|(_, s)| s.user_id.as_deref() == Some(user_id)).map(|(&u, s)| (u, s)).collect();
        seats.sort_unstable_by_key(|&(uid, _)| uid);
        seats
    }

    /// Calls `f` with every user `to` names (uid and seat), in no particular order.
    pub fn each_of(&self, to: Audience<'_>, mut f: impl FnMut(u64, &Seat)) {
        match to {
            Audience::All => self.seats.iter().for_each(|(&uid, seat)| f(uid, seat)),
            Audience::Room(room) => {
                let Some(r) = self.rooms.get(room) else { return };
                for e in r.entries.iter().filter(|e| e.live) {
                    if let Some(seat) = self.seats.get(&e.uid) {
                        f(e.uid, seat);
                    }
                }
            }
            Audience::Account(id) => {
                self.seats.iter().filter(|(_, s)| s.user_id.as_deref() == Some(id)).for_each(|(&u, s)| f(u, s))
            }
            Audience::Uid(uid) => {
                if let Some(seat) = self.seats.get(&uid) {
                    f(uid, seat);
                }
            }
        }
    }

    /// The connections of this process's logged-in users, in no particular order.
    pub fn local_conns(&self) -> impl Iterator<Item = (ConnId, u64)> + '_ {
        self.locals.iter().map(|(&conn, l)| (conn, l.uid))
    }

    /// This process's users: on its connections, and detached.
    pub fn local_count(&self) -> usize {
        self.locals.len() + self.away
    }

    /// The uids whose home is node `node`, sorted.
    pub fn uids_of_node(&self, node: u64) -> Vec<u64> {
        let mut uids: Vec<u64> =
            self.seats.iter().filter(|(_, s)| s.home == Home::Node(node)).map(|(&uid, _)| uid).collect();
        uids.sort_unstable();
        uids
    }

    /// Calls `f` with every user of this process (connected or detached), grouped by room, each room in
    /// order.
    pub fn for_each_here(&self, f: &mut dyn FnMut(HereUser<'_>)) {
        let mut here: Vec<(&Seat, u64)> =
            self.locals.values().filter_map(|l| Some((self.seats.get(&l.uid)?, l.uid))).collect();
        if self.away > 0 {
            here.extend(self.seats.iter().filter(|(_, s)| s.home == Home::Away).map(|(&uid, s)| (s, uid)));
        }
        here.sort_unstable_by(|a, b| (&a.0.room, a.0.order, a.1).cmp(&(&b.0.room, b.0.order, b.1)));
        for (seat, uid) in here {
            f(HereUser {
                room: &seat.room,
                uid,
                name: &seat.name,
                user_id: seat.user_id.as_deref(),
                order: seat.order,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(r: &Roster, room: &str) -> Vec<(u64, String)> {
        let mut got = Vec::new();
        if let Some(room) = r.room(room) {
            room.each_from(0, |uid, name, _| got.push((uid, name.to_string())));
        }
        got
    }

    #[test]
    fn rooms_accounts_and_connections_are_listed() {
        let mut r = Roster::new();
        r.join_as("b", 1, "x", Some("acct"), 1, Home::Here(10));
        r.join_as("a", 2, "y", None, 2, Home::Here(11));
        r.join_as("b", 3, "z", Some("acct"), 3, Home::Node(4));
        r.join_as("b", 4, "w", Some("other"), 4, Home::Away);
        assert_eq!(r.rooms_sorted(), [("a", 1), ("b", 3)]);
        let acct: Vec<(u64, Home)> = r.seats_of_account("acct").iter().map(|(u, s)| (*u, s.home)).collect();
        assert_eq!(acct, [(1, Home::Here(10)), (3, Home::Node(4))]);
        assert!(r.seats_of_account("nobody").is_empty());
        let mut conns: Vec<(ConnId, u64)> = r.local_conns().collect();
        conns.sort_unstable();
        assert_eq!(conns, [(10, 1), (11, 2)]);
    }

    #[test]
    fn one_order_whatever_the_arrival_and_rooms_that_go_with_their_last_user() {
        let (mut a, mut b) = (Roster::new(), Roster::new());
        let joins = [(Home::Node(1), 10, "x", 500), (Home::Node(2), 11, "y", 400), (Home::Here(7), 12, "z", 400)];
        for &(home, uid, name, order) in &joins {
            a.join("r", uid, name, order, home);
        }
        for &(home, uid, name, order) in joins.iter().rev() {
            b.join("r", uid, name, order, home);
        }
        let want = vec![(11, "y".to_string()), (12, "z".to_string()), (10, "x".to_string())];
        assert_eq!((users(&a, "r"), users(&b, "r")), (want.clone(), want));
        assert!(!a.join("r", 10, "x", 500, Home::Node(1)), "the same login twice changes nothing");
        assert_eq!(
            (a.count("r"), a.local_count(), a.uid_of(7), a.room("r").map(|r| r.locals().to_vec())),
            (3, 1, Some(12), Some(vec![7]))
        );
        assert_eq!(a.leave(12).map(|s| s.home), Some(Home::Here(7)));
        assert_eq!((a.uid_of(7), a.count("r"), a.leave(12)), (None, 2, None));
        a.leave(10);
        a.leave(11);
        assert_eq!((a.room_count(), a.count("r")), (0, 0));
    }

    #[test]
    fn moves_nodes_and_this_process_users() {
        let mut r = Roster::new();
        r.join("a", 5, "x", 1, Home::Node(1));
        r.join("a", 6, "y", 2, Home::Node(2));
        r.join("b", 7, "z", 3, Home::Node(2));
        r.join("b", 8, "w", 4, Home::Here(0));
        r.join("a", 9, "v", 5, Home::Here(1));
        assert!(r.join("b", 5, "x", 9, Home::Node(2)), "a user seen in another room is moved");
        assert_eq!(r.seat(5).map(|s| (&*s.room, s.home)), Some(("b", Home::Node(2))));
        assert_eq!((r.count("a"), r.count("b")), (2, 3));
        assert_eq!((r.uids_of_node(2), r.uids_of_node(1)), (vec![5, 6, 7], vec![]));
        let mut here = Vec::new();
        r.for_each_here(&mut |u| here.push((u.room.to_string(), u.uid, u.order)));
        assert_eq!(here, [("a".to_string(), 9, 5), ("b".to_string(), 8, 4)]);
        assert_eq!(r.seat_of(1).map(|(uid, s)| (uid, &*s.name)), Some((9, "v")));
    }

    #[test]
    fn a_detached_user_keeps_its_place_and_comes_back_on_another_connection() {
        let mut r = Roster::new();
        r.join("r", 1, "a", 1, Home::Here(10));
        r.join("r", 2, "b", 2, Home::Here(11));
        r.join("r", 3, "c", 3, Home::Node(5));
        let v = r.room("r").map(RoomRoster::version);
        r.rehome(1, Home::Away);
        assert_eq!(
            (r.uid_of(10), r.local_count(), r.room("r").map(|m| m.locals().to_vec())),
            (None, 2, Some(vec![11]))
        );
        assert_eq!((users(&r, "r").len(), r.room("r").map(RoomRoster::version)), (3, v), "the list is unchanged");
        let mut here = Vec::new();
        r.for_each_here(&mut |u| here.push(u.uid));
        assert_eq!(here, [1, 2], "a detached user is still this process's");
        r.rehome(1, Home::Here(12));
        assert_eq!((r.uid_of(12), r.local_count()), (Some(1), 2));
        r.rehome(2, Home::Away);
        assert_eq!(r.leave(2).map(|s| s.home), Some(Home::Away));
        assert_eq!((r.local_count(), r.count("r")), (1, 2));
        assert!(Home::Away.is_here() && Home::Here(1).is_here() && !Home::Node(1).is_here());
    }

    #[test]
    fn versions_change_unless_users_are_added_at_the_end() {
        let mut r = Roster::new();
        r.join("r", 1, "a", 10, Home::Here(1));
        let v = r.room("r").map(RoomRoster::version);
        r.join("r", 2, "b", 20, Home::Here(2));
        assert_eq!(r.room("r").map(RoomRoster::version), v, "added at the end");
        r.join("r", 3, "c", 15, Home::Node(9));
        let v2 = r.room("r").map(RoomRoster::version);
        assert_ne!(v2, v, "added in the middle");
        r.leave(3);
        assert_ne!(r.room("r").map(RoomRoster::version), v2, "a departure");
        r.leave(1);
        r.leave(2);
        r.join("r", 4, "d", 1, Home::Here(1));
        assert_ne!(r.room("r").map(RoomRoster::version), v, "a room made again");
    }

    #[test]
    fn many_departures_keep_the_order_and_cost_one_compaction() {
        let mut r = Roster::new();
        for uid in 1..=1000u64 {
            r.join("big", uid, &format!("u{uid}"), uid, Home::Here(uid as usize));
        }
        for uid in (1..=1000).filter(|u| u % 3 != 0) {
            r.leave(uid);
        }
        let left = users(&r, "big");
        assert_eq!(left.len(), 333);
        assert!(left.iter().map(|(u, _)| *u).eq((3..=999).step_by(3)));
        let room = r.room("big").map(|b| (b.end(), b.locals().len()));
        assert!(room.is_some_and(|(end, locals)| end < 1000 && locals == 333), "compacted on the way: {room:?}");
        for conn in r.room("big").map(|b| b.locals().to_vec()).unwrap_or_default() {
            assert_eq!(r.seat_of(conn).map(|(uid, _)| uid), Some(conn as u64), "every connection still finds its user");
        }
        for uid in (3..=999).step_by(3) {
            r.leave(uid);
        }
        assert_eq!((r.room_count(), r.local_count()), (0, 0));
    }
}
