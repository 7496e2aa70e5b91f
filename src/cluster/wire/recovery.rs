//! Recovery bookkeeping: per origin node, the last sequence delivered; a message is delivered, a duplicate or
//! reveals a gap.

use std::collections::HashMap;

/// What to do with a message, by its origin and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next one from its origin (or the first seen from a new origin): deliver it.
    Deliver,
    /// Already delivered (a replay after recovery, or a late copy): drop it.
    Duplicate,
    /// Messages `from..=to` of its origin were not delivered: fetch them from the origin's stream, hand each
    /// to [`Tracker::observe`], then this message again. Nothing was recorded.
    Gap {
        /// The first missing sequence number.
        from: u64,
        /// The last missing one (the message's own number minus one).
        to: u64,
    },
}

/// Per origin node, the last sequence number delivered. Pure bookkeeping: the caller fetches gaps and says
/// when one cannot be filled ([`Tracker::accept_loss`]).
///
/// An origin first seen mid-sequence is taken as it is (its earlier messages predate this node's
/// subscription and were for nobody here), unless [`Tracker::expect`] announced it — a node that registered
/// after this one subscribed — in which case its messages are due from 1.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    last: HashMap<u64, u64>,
}

impl Tracker {
    /// No origin known.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// `origin` started after this node subscribed: every one of its messages is due, from 1.
    pub fn expect(&mut self, origin: u64) {
        self.last.entry(origin).or_insert(0);
    }

    /// The verdict on message `seq` of `origin`; a delivered one is recorded.
    pub fn observe(&mut self, origin: u64, seq: u64) -> Verdict {
        match self.last.get_mut(&origin) {
            None => {
                self.last.insert(origin, seq);
                Verdict::Deliver
            }
            Some(last) if seq <= *last => Verdict::Duplicate,
            Some(last) if seq == *last + 1 => {
                *last = seq;
                Verdict::Deliver
            }
            Some(last) => Verdict::Gap { from: *last + 1, to: seq - 1 },
        }
    }

    /// Messages of `origin` up to `seq` cannot be had (trimmed from its stream, or Redis lost them): go on
    /// after them.
    pub fn accept_loss(&mut self, origin: u64, seq: u64) {
        let last = self.last.entry(origin).or_insert(0);
        *last = (*last).max(seq);
    }

    /// `origin` is gone (its lease ran out and its users were logged out): forget it.
    pub fn forget(&mut self, origin: u64) {
        self.last.remove(&origin);
    }

    /// The last sequence number delivered from `origin`, if it is known (0: expected, nothing yet).
    pub fn last(&self, origin: u64) -> Option<u64> {
        self.last.get(&origin).copied()
    }

    /// Every known origin with its last delivered number: where to resume each one's stream after this
    /// node's subscription link came back.
    pub fn origins(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.last.iter().map(|(&o, &s)| (o, s))
    }
}
