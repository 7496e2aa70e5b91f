//! Mids that mean the same on every process: a say's [`Position`] in its origin's order, and a room's
//! [`Frontier`] — for each origin, the last of its says the room delivered here. A say's mid is the frontier
//! just after it: whichever process a client resumes on, the says it is owed are those of each origin past
//! the frontier its last mid names, whatever order they arrived in there.

use std::fmt::Write;

use crate::chat::event::Position;

/// Origins a mid names at most: a room's frontier past it forgets the origin it heard from longest ago (a
/// process long gone), so a mid stays short.
const MAX_ORIGINS: usize = 16;

/// For each origin, the last position delivered: sorted by origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// (origin, message number, index), one per origin, sorted by origin.
    marks: Vec<(u64, u64, u32)>,
    /// The origins in the order they last advanced, oldest first (which one to forget).
    recency: Vec<u64>,
}

impl Frontier {
    /// Nothing delivered.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// `at` was delivered.
    pub fn advance(&mut self, at: Position) {
        let mark = (at.origin, at.seq, at.index);
        match self.marks.binary_search_by_key(&at.origin, |m| m.0) {
            Ok(i) => self.marks[i] = self.marks[i].max(mark),
            Err(i) => self.marks.insert(i, mark),
        }
        self.recency.retain(|&o| o != at.origin);
        self.recency.push(at.origin);
        if self.marks.len() > MAX_ORIGINS {
            let oldest = self.recency.remove(0);
            self.marks.retain(|m| m.0 != oldest);
        }
    }

    /// The last position of `origin` delivered, if any.
    pub fn of(&self, origin: u64) -> Option<(u64, u32)> {
        let i = self.marks.binary_search_by_key(&origin, |m| m.0).ok()?;
        Some((self.marks[i].1, self.marks[i].2))
    }

    /// Each origin's mark: (origin, message number, index).
    pub fn marks(&self) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
        self.marks.iter().copied()
    }

    /// Whether `at` was delivered by then.
    pub fn covers(&self, at: Position) -> bool {
        self.of(at.origin).is_some_and(|m| (at.seq, at.index) <= m)
    }

    /// The frontier as a mid: `origin.seq[.index]` per origin (hex, decimal, decimal), joined by `~`.
    pub fn write_mid(&self, out: &mut String) {
        for (i, &(origin, seq, index)) in self.marks.iter().enumerate() {
            if i > 0 {
                out.push('~');
            }
            let _ = write!(out, "{origin:x}.{seq}");
            if index > 0 {
                let _ = write!(out, ".{index}");
            }
        }
    }

    /// The frontier a mid names; `None` for anything else.
    pub fn parse(mid: &str) -> Option<Frontier> {
        let mut f = Frontier::new();
        for part in mid.split('~').take(MAX_ORIGINS + 1) {
            let mut fields = part.split('.');
            let origin = u64::from_str_radix(fields.next()?, 16).ok()?;
            let seq = fields.next()?.parse().ok()?;
            let index = fields.next().map_or(Some(0), |i| i.parse().ok())?;
            if fields.next().is_some() || f.of(origin).is_some() {
                return None;
            }
            f.advance(Position { origin, seq, index });
        }
        (f.marks.len() <= MAX_ORIGINS).then_some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(origin: u64, seq: u64, index: u32) -> Position {
        Position { origin, seq, index }
    }

    #[test]
    fn a_frontier_advances_per_origin_and_round_trips_as_a_mid() {
        let mut f = Frontier::new();
        f.advance(at(0xb, 5, 0));
        f.advance(at(0xa, 7, 2));
        f.advance(at(0xb, 4, 9));
        assert!(f.covers(at(0xb, 5, 0)) && f.covers(at(0xa, 7, 1)) && !f.covers(at(0xa, 7, 3)));
        assert!(!f.covers(at(0xc, 1, 0)), "an origin not heard from");
        let mut mid = String::new();
        f.write_mid(&mut mid);
        assert_eq!(mid, "a.7.2~b.5");
        assert_eq!(Frontier::parse(&mid).map(|p| p.marks), Some(f.marks.clone()));
        for bad in ["", "x", "a.", "a.1.2.3", "a.1~a.2", "g.1", "a.-1", "17"] {
            assert_eq!(Frontier::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Frontier::parse("0.17").and_then(|f| f.of(0)), Some((17, 0)));
    }

    #[test]
    fn a_frontier_forgets_the_origin_heard_from_longest_ago() {
        let mut f = Frontier::new();
        for origin in 1..=MAX_ORIGINS as u64 + 1 {
            f.advance(at(origin, 1, 0));
        }
        assert_eq!((f.of(1), f.of(2).is_some(), f.marks.len()), (None, true, MAX_ORIGINS));
        let mut mid = String::new();
        f.write_mid(&mut mid);
        assert!(Frontier::parse(&mid).is_some());
    }
}
