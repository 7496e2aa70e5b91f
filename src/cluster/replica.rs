//! The cluster's presence replica: every user of every node, by room, in the one order all nodes agree on
//! (the login's wall-clock milliseconds, ties broken by uid), and which node holds each. Kept current by the
//! node's own logins and logouts and by the records other nodes publish; answers the hub at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

/// Where a user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The room.
    pub room: Rc<str>,
    /// The user's place in the room's order.
    pub order: u64,
    /// The node that holds the user's connection.
    pub node: u64,
    /// The user's name.
    pub name: Rc<str>,
}

/// A room's users by `(order, uid)`, with their names.
type Roster = BTreeMap<(u64, u64), Rc<str>>;

/// Every user of the cluster, as this node knows them.
#[derive(Debug, Default)]
pub struct Replica {
    /// Each room's users by `(order, uid)`.
    rooms: HashMap<Rc<str>, Roster>,
    users: HashMap<u64, Seat>,
    by_node: HashMap<u64, HashSet<u64>>,
}

impl Replica {
    /// Nobody.
    pub fn new() -> Replica {
        Replica::default()
    }

    /// Puts `uid` in `room` at `order`, held by `node`. Returns `false` when it was already there as given
    /// (nothing changed); a user found elsewhere is moved.
    pub fn insert(&mut self, node: u64, room: &str, uid: u64, name: &str, order: u64) -> bool {
        if let Some(seat) = self.users.get(&uid) {
            if &*seat.room == room && seat.order == order && seat.node == node && &*seat.name == name {
                return false;
            }
            self.remove(uid);
        }
        let room: Rc<str> = match self.rooms.get_key_value(room) {
            Some((key, _)) => key.clone(),
            None => Rc::from(room),
        };
        let name: Rc<str> = Rc::from(name);
        self.rooms.entry(room.clone()).or_default().insert((order, uid), name.clone());
        self.users.insert(uid, Seat { room, order, node, name });
        self.by_node.entry(node).or_default().insert(uid);
        true
    }

    /// Takes `uid` out; returns where it was.
    pub fn remove(&mut self, uid: u64) -> Option<Seat> {
        let seat = self.users.remove(&uid)?;
        if let Some(users) = self.rooms.get_mut(&seat.room) {
            users.remove(&(seat.order, uid));
            if users.is_empty() {
                self.rooms.remove(&seat.room);
            }
        }
        if let Some(uids) = self.by_node.get_mut(&seat.node) {
            uids.remove(&uid);
            if uids.is_empty() {
                self.by_node.remove(&seat.node);
            }
        }
        Some(seat)
    }

    /// Where `uid` is, if anywhere.
    pub fn seat(&self, uid: u64) -> Option<&Seat> {
        self.users.get(&uid)
    }

    /// Users in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, BTreeMap::len)
    }

    /// Calls `f` with every user of `room`, in order.
    pub fn for_each_user(&self, room: &str, f: &mut dyn FnMut(u64, &str)) {
        for (&(_, uid), name) in self.rooms.get(room).into_iter().flatten() {
            f(uid, name);
        }
    }

    /// The uids `node` holds, sorted.
    pub fn uids_of(&self, node: u64) -> Vec<u64> {
        let mut uids: Vec<u64> = self.by_node.get(&node).into_iter().flatten().copied().collect();
        uids.sort_unstable();
        uids
    }

    /// Calls `f` with every user `node` holds: room, uid, name, order — grouped by room.
    pub fn for_each_of_node(&self, node: u64, f: &mut dyn FnMut(&str, u64, &str, u64)) {
        let mut seats: Vec<(&Seat, u64)> =
            self.by_node.get(&node).into_iter().flatten().filter_map(|u| Some((self.users.get(u)?, *u))).collect();
        seats.sort_unstable_by(|a, b| (&a.0.room, a.0.order, a.1).cmp(&(&b.0.room, b.0.order, b.1)));
        for (seat, uid) in seats {
            f(&seat.room, uid, &seat.name, seat.order);
        }
    }

    /// Users known in all.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether nobody is known.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The highest uid known (0 for none): the floor for the uid counter after Redis lost it.
    pub fn max_uid(&self) -> u64 {
        self.users.keys().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(r: &Replica, room: &str) -> Vec<(u64, String)> {
        let mut got = Vec::new();
        r.for_each_user(room, &mut |uid, name| got.push((uid, name.to_string())));
        got
    }

    #[test]
    fn one_order_for_every_node_whatever_the_arrival() {
        let (mut a, mut b) = (Replica::new(), Replica::new());
        let joins = [(1, "r", 10, "x", 500), (2, "r", 11, "y", 400), (1, "r", 12, "z", 400)];
        for &(node, room, uid, name, order) in &joins {
            a.insert(node, room, uid, name, order);
        }
        for &(node, room, uid, name, order) in joins.iter().rev() {
            b.insert(node, room, uid, name, order);
        }
        let want = vec![(11, "y".to_string()), (12, "z".to_string()), (10, "x".to_string())];
        assert_eq!(list(&a, "r"), want);
        assert_eq!(list(&b, "r"), want);
        assert!(!a.insert(1, "r", 10, "x", 500), "the same login twice changes nothing");
        assert_eq!(a.count("r"), 3);
    }

    #[test]
    fn moves_removals_and_nodes() {
        let mut r = Replica::new();
        r.insert(1, "a", 5, "x", 1);
        r.insert(2, "a", 6, "y", 2);
        r.insert(2, "b", 7, "z", 3);
        assert!(r.insert(2, "b", 5, "x", 9), "a user seen in another room is moved");
        assert_eq!(r.seat(5).map(|s| (&*s.room, s.node)), Some(("b", 2)));
        assert_eq!((r.count("a"), r.count("b")), (1, 2));
        assert_eq!(r.uids_of(2), [5, 6, 7]);
        assert_eq!(r.uids_of(1), Vec::<u64>::new());
        let mut seen = Vec::new();
        r.for_each_of_node(2, &mut |room, uid, _, _| seen.push((room.to_string(), uid)));
        assert_eq!(seen, [("a".to_string(), 6), ("b".to_string(), 7), ("b".to_string(), 5)]);
        assert_eq!(r.remove(6).map(|s| s.node), Some(2));
        assert_eq!(r.count("a"), 0);
        assert!(r.remove(6).is_none());
        assert_eq!((r.len(), r.max_uid()), (2, 7));
    }
}
