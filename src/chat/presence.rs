//! Presence: what decides uids and the order of logins, and what a chat shared with other processes adds —
//! telling them this process's room events, bringing theirs in, the links that carry them. Who is in which
//! room is the hub's [`super::roster::Roster`]; presence reads it, never keeps a copy. [`LocalPresence`] is
//! one process alone; a cluster implements this trait on its side (the chat knows nothing of it).

use std::convert::Infallible;
use std::time::Instant;

use super::event::{Directed, ErrorCode, Position, Remote, RoomEvent};
use super::resume::Sessions;
use super::roster::Roster;
use crate::app::LinkHost;
use crate::metrics::Metrics;

/// Uids, login order, and the other processes a chat may be shared with. Synchronous: the core calls it in
/// the middle of a loop turn and takes the answer at once, so a shared implementation answers from what it
/// already knows and sends its own changes without waiting (with the loop turn's other output).
pub trait Presence {
    /// What the links bring in, kept until the hub applies it.
    type Inbound;

    /// A uid for a new login: positive, never handed out before; `None` when none can be had now (a
    /// cluster that has no uid block).
    fn allocate_uid(&mut self) -> Option<u64>;

    /// The place in its room's order of a login made now (ties are broken by uid).
    fn login_order(&mut self) -> u64;

    /// Whether logins can be taken now (a cluster node that has not joined yet cannot).
    fn accepts_logins(&self) -> bool {
        true
    }

    /// Whether a say can be taken now (a cluster node whose buffer for Redis is full cannot), or the error
    /// its sender gets; asked once per say, before it is delivered to anyone.
    fn accepts_say(&mut self) -> Result<(), ErrorCode> {
        Ok(())
    }

    /// `event` happened on this process, after the roster changed for it: a shared presence tells the
    /// others. A say's place in this process's order is returned.
    fn replicate(&mut self, event: &RoomEvent<'_>) -> Option<Position>;

    /// The server API asks process `node` (never this one) to do `act` on its connections; a shared presence
    /// sends it there, to that process alone, at the end of the turn.
    fn direct(&mut self, _node: u64, _act: &Directed<'_>) {}

    /// Whether the chat is shared with other processes (a cluster).
    fn is_shared(&self) -> bool {
        false
    }

    /// Whether a room's history outlives its last user (a cluster keeps it for every node).
    fn keeps_empty_rooms(&self) -> bool {
        false
    }

    /// The next thing the links brought in, in order.
    fn next_inbound(&mut self) -> Option<Self::Inbound> {
        None
    }

    /// What `item` means for the chat, in order, into `out`; the presence's own part of it (bookkeeping of
    /// the other processes) is done here.
    fn interpret<'a>(&mut self, _item: &'a Self::Inbound, _out: &mut Vec<Remote<'a>>) {}

    /// The loop turn's time.
    fn set_now(&mut self, _now: Instant) {}

    /// The links to drive.
    fn links(&mut self) -> Option<&mut dyn LinkHost> {
        None
    }

    /// The end of a loop turn: send what this turn recorded; `roster` is who is where now, `sessions` which
    /// of them hold a session.
    fn end_turn(&mut self, _roster: &Roster, _sessions: &Sessions) {}

    /// Why the presence cannot fully serve right now, if it cannot.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// The daemon is stopping.
    fn shutdown(&mut self) {}

    /// Its figures for /metrics.
    fn fill_metrics(&self, _m: &mut Metrics) {}
}

/// Presence in this process alone: uids and login order counted from 1.
#[derive(Debug)]
pub struct LocalPresence {
    next_uid: u64,
    next_order: u64,
    /// Says taken so far: each say's position.
    says: u64,
}

impl Default for LocalPresence {
    fn default() -> LocalPresence {
        LocalPresence { next_uid: 1, next_order: 1, says: 0 }
    }
}

impl LocalPresence {
    /// Nobody yet; the first uid is 1.
    pub fn new() -> LocalPresence {
        LocalPresence::default()
    }
}

impl Presence for LocalPresence {
    type Inbound = Infallible;

    fn allocate_uid(&mut self) -> Option<u64> {
        let uid = self.next_uid;
        self.next_uid += 1;
        Some(uid)
    }

    fn login_order(&mut self) -> u64 {
        let order = self.next_order;
        self.next_order += 1;
        order
    }

    fn replicate(&mut self, event: &RoomEvent<'_>) -> Option<Position> {
        let RoomEvent::Say { .. } = event else { return None };
        self.says += 1;
        Some(Position { origin: 0, seq: self.says, index: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_login_order_count_up_and_never_repeat() {
        let mut p = LocalPresence::new();
        let uids: Vec<_> = (0..3).filter_map(|_| p.allocate_uid()).collect();
        assert_eq!(uids, [1, 2, 3]);
        assert_eq!((p.login_order(), p.login_order()), (1, 2));
        assert!(p.accepts_logins() && p.accepts_say().is_ok() && !p.keeps_empty_rooms());
        assert!(p.next_inbound().is_none());
    }
}
