//! A coarse hashed timing wheel for connection deadlines (handshake, ping, idle, linger). Scheduling and
//! expiry cost O(1) per entry and no system calls; stale entries are filtered by the reactor, which keeps
//! the one deadline that is current on each connection.

use std::time::{Duration, Instant};

/// Granularity of every deadline.
pub const TICK: Duration = Duration::from_millis(20);

/// Slots in the wheel: one turn spans `SLOTS * TICK` (about 20 s); later deadlines wait for their round.
const SLOTS: usize = 1024;

/// A scheduled deadline: which connection (slab key and its serial) and the tick it falls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEntry {
    /// The connection's slab key.
    pub key: usize,
    /// The connection's serial, to ignore entries of a connection that was replaced in the slab.
    pub serial: u64,
    /// The tick the deadline falls on.
    pub tick: u64,
}

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    start: Instant,
    /// The last tick whose entries have been expired.
    current: u64,
    slots: Vec<Vec<TimerEntry>>,
    len: usize,
}

impl TimerWheel {
    /// An empty wheel whose tick 0 is `start`.
    pub fn new(start: Instant) -> TimerWheel {
        TimerWheel { start, current: 0, slots: (0..SLOTS).map(|_| Vec::new()).collect(), len: 0 }
    }

    /// The tick at or after `at`.
    pub fn tick_at(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.start);
        d.as_nanos().div_ceil(TICK.as_nanos()) as u64
    }

    /// Number of pending entries (stale ones included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules a deadline at `at` for connection `key`/`serial`; returns its tick, which the caller keeps
    /// to recognise the entry when it expires. A deadline in the past fires on the next tick.
    pub fn schedule(&mut self, at: Instant, key: usize, serial: u64) -> u64 {
        let tick = self.tick_at(at).max(self.current + 1);
        self.slots[(tick % SLOTS as u64) as usize].push(TimerEntry { key, serial, tick });
        self.len += 1;
        tick
    }

    /// Moves every entry due at `now` into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<TimerEntry>) {
        let d = now.saturating_duration_since(self.start);
        let now_tick = (d.as_nanos() / TICK.as_nanos()) as u64;
        if now_tick <= self.current {
            return;
        }
        // After a long stall, one pass over every slot is enough.
        let steps = (now_tick - self.current).min(SLOTS as u64);
        for step in 1..=steps {
            let slot = &mut self.slots[((self.current + step) % SLOTS as u64) as usize];
            let before = slot.len();
            let mut i = 0;
            while i < slot.len() {
                if slot[i].tick <= now_tick {
                    out.push(slot.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            self.len -= before - slot.len();
        }
        self.current = now_tick;
    }

    /// How long until the next tick boundary, for the poll timeout.
    pub fn until_next_tick(&self, now: Instant) -> Duration {
        let next = self.start + Duration::from_nanos((self.current + 1).saturating_mul(TICK.as_nanos() as u64));
        next.saturating_duration_since(now).max(Duration::from_millis(1)).min(TICK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_or_after_the_deadline_never_before() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.schedule(t0 + Duration::from_millis(100), 1, 1);
        w.schedule(t0 + Duration::from_millis(30), 2, 1);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(20), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(45), &mut out);
        assert_eq!(out.iter().map(|e| e.key).collect::<Vec<_>>(), [2]);
        out.clear();
        w.expire(t0 + Duration::from_millis(99), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out.iter().map(|e| e.key).collect::<Vec<_>>(), [1]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_round() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let far = t0 + TICK * (SLOTS as u32 + 5);
        w.schedule(far, 7, 3);
        let mut out = Vec::new();
        w.expire(t0 + TICK * 10, &mut out);
        w.expire(t0 + TICK * (SLOTS as u32), &mut out);
        assert!(out.is_empty());
        w.expire(far, &mut out);
        assert_eq!(out, [TimerEntry { key: 7, serial: 3, tick: SLOTS as u64 + 5 }]);
    }

    #[test]
    fn a_long_stall_expires_everything_due() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        for i in 0..100u32 {
            w.schedule(t0 + Duration::from_millis(u64::from(i) * 37), i as usize, 0);
        }
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_secs(3600), &mut out);
        assert_eq!(out.len(), 100);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_tick() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_secs(1), &mut out);
        let tick = w.schedule(t0, 1, 0);
        assert_eq!(tick, w.current + 1);
        w.expire(t0 + Duration::from_secs(1) + TICK, &mut out);
        assert_eq!(out.len(), 1);
    }
}
