//! The delivery audit: for every (receiver, sender) pair it follows the sender's sequence numbers and counts
//! what arrived in order, late (overtaken by a later message), twice, or never. One small cell per pair — the
//! next expected number and a 64-bit window of the numbers just behind it — so checking a delivery is a few
//! instructions and no allocation.

/// How one delivery fits its sender's sequence, as seen by one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next number expected.
    InOrder,
    /// Ahead of the next expected: the ones skipped are late or lost.
    Ahead,
    /// Behind the newest seen and not seen before: it was overtaken.
    Late,
    /// Seen before (or too far behind to tell, more than 64 behind the newest).
    Duplicate,
    /// The sender or receiver index is outside the audit.
    Foreign,
}

/// How many numbers behind the newest the window remembers.
pub const WINDOW: u32 = 64;

/// One (receiver, sender) pair: the number after the newest seen, and which of the 64 before it were seen
/// (bit i set: number `next - 1 - i` arrived).
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    next: u32,
    seen: u64,
}

/// Totals of an audit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditTotals {
    /// Distinct messages delivered (in order, ahead or late).
    pub unique: u64,
    /// Deliveries that arrived after a later message from the same sender.
    pub out_of_order: u64,
    /// Deliveries seen before.
    pub duplicated: u64,
    /// Deliveries naming a sender or receiver the audit does not know.
    pub foreign: u64,
}

/// The audit of a run with `receivers × senders` pairs.
#[derive(Debug, Clone)]
pub struct Audit {
    senders: usize,
    receivers: usize,
    cells: Vec<Cell>,
    totals: AuditTotals,
}

impl Audit {
    /// An audit for `receivers` receivers and `senders` senders, all pairs empty.
    pub fn new(receivers: usize, senders: usize) -> Audit {
        Audit { senders, receivers, cells: vec![Cell::default(); receivers * senders], totals: AuditTotals::default() }
    }

    /// Records that `receiver` got message `seq` from `sender`, and says how it fits.
    #[inline]
    pub fn record(&mut self, receiver: usize, sender: usize, seq: u32) -> Verdict {
        if receiver >= self.receivers || sender >= self.senders {
            self.totals.foreign += 1;
            return Verdict::Foreign;
        }
        let cell = &mut self.cells[receiver * self.senders + sender];
        let verdict = if seq == cell.next {
            cell.seen = (cell.seen << 1) | 1;
            cell.next = seq.wrapping_add(1);
            Verdict::InOrder
        } else if seq > cell.next {
            let shift = seq - cell.next + 1;
            cell.seen = if shift >= 64 { 1 } else { (cell.seen << shift) | 1 };
            cell.next = seq.wrapping_add(1);
            Verdict::Ahead
        } else {
            let behind = cell.next - 1 - seq;
            if behind >= WINDOW || cell.seen & (1 << behind) != 0 {
                Verdict::Duplicate
            } else {
                cell.seen |= 1 << behind;
                Verdict::Late
            }
        };
        match verdict {
            Verdict::InOrder | Verdict::Ahead => self.totals.unique += 1,
            Verdict::Late => {
                self.totals.unique += 1;
                self.totals.out_of_order += 1;
            }
            Verdict::Duplicate => self.totals.duplicated += 1,
            Verdict::Foreign => {}
        }
        verdict
    }

    /// The running totals.
    pub fn totals(&self) -> AuditTotals {
        self.totals
    }

    /// The number after the newest `receiver` has from `sender` (0: none yet, or a pair outside the audit):
    /// a sender that has every say it sent back from the server has this equal to its count of says.
    pub fn next(&self, receiver: usize, sender: usize) -> u32 {
        if receiver >= self.receivers || sender >= self.senders {
            return 0;
        }
        self.cells[receiver * self.senders + sender].next
    }

    /// How many of the first `sent` messages of `sender` `receiver` has not received (yet).
    #[cfg(test)]
    pub fn missing(&self, receiver: usize, sender: usize, sent: u32) -> u32 {
        if receiver >= self.receivers || sender >= self.senders {
            return sent;
        }
        let cell = self.cells[receiver * self.senders + sender];
        let mut missing = sent.saturating_sub(cell.next);
        // Holes in the window below `next`.
        let span = cell.next.min(WINDOW).min(sent);
        for behind in 0..span {
            let seq = cell.next - 1 - behind;
            if seq < sent && cell.seen & (1 << behind) == 0 {
                missing += 1;
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut a = Audit::new(2, 3);
        for seq in 0..1000 {
            for s in 0..3 {
                for r in 0..2 {
                    assert_eq!(a.record(r, s, seq), Verdict::InOrder);
                }
            }
        }
        assert_eq!(a.totals(), AuditTotals { unique: 6000, ..Default::default() });
        assert_eq!(a.missing(1, 2, 1000), 0);
        assert_eq!(a.missing(1, 2, 1002), 2);
    }

    #[test]
    fn swap_is_one_late_delivery() {
        let mut a = Audit::new(1, 1);
        assert_eq!(a.record(0, 0, 0), Verdict::InOrder);
        assert_eq!(a.record(0, 0, 2), Verdict::Ahead);
        assert_eq!(a.missing(0, 0, 3), 1);
        assert_eq!(a.record(0, 0, 1), Verdict::Late);
        assert_eq!(a.record(0, 0, 3), Verdict::InOrder);
        assert_eq!(a.totals(), AuditTotals { unique: 4, out_of_order: 1, duplicated: 0, foreign: 0 });
        assert_eq!(a.missing(0, 0, 4), 0);
        assert_eq!((a.next(0, 0), a.next(1, 0), a.next(0, 1)), (4, 0, 0));
    }

    #[test]
    fn duplicates_are_caught_in_order_and_late() {
        let mut a = Audit::new(1, 1);
        a.record(0, 0, 0);
        assert_eq!(a.record(0, 0, 0), Verdict::Duplicate);
        a.record(0, 0, 3);
        assert_eq!(a.record(0, 0, 1), Verdict::Late);
        assert_eq!(a.record(0, 0, 1), Verdict::Duplicate);
        assert_eq!(a.record(0, 0, 3), Verdict::Duplicate);
        let t = a.totals();
        assert_eq!((t.unique, t.duplicated, t.out_of_order), (3, 3, 1));
        assert_eq!(a.missing(0, 0, 4), 1);
    }

    #[test]
    fn loss_is_what_never_came() {
        let mut a = Audit::new(1, 1);
        for seq in (0..200).filter(|s| s % 10 != 5) {
            a.record(0, 0, seq);
        }
        // Holes further back than the window are still counted: the window slid over them unseen.
        assert_eq!(a.totals().unique, 180);
        assert_eq!(a.totals().out_of_order, 0);
        assert_eq!(200 - a.totals().unique, 20);
        // `missing` only sees holes within the window plus what is beyond `next`.
        assert_eq!(a.missing(0, 0, 210), 10 + 6);
    }

    #[test]
    fn big_jumps_and_far_behind() {
        let mut a = Audit::new(1, 1);
        assert_eq!(a.record(0, 0, 1000), Verdict::Ahead);
        assert_eq!(a.record(0, 0, 999), Verdict::Late);
        assert_eq!(a.record(0, 0, 10), Verdict::Duplicate);
        assert_eq!(a.record(0, 0, u32::MAX - 1), Verdict::Ahead);
        assert_eq!(a.record(0, 0, u32::MAX - 2), Verdict::Late);
    }

    #[test]
    fn foreign_indices_are_counted_not_trusted() {
        let mut a = Audit::new(2, 2);
        assert_eq!(a.record(2, 0, 0), Verdict::Foreign);
        assert_eq!(a.record(0, 7, 0), Verdict::Foreign);
        assert_eq!(a.totals().foreign, 2);
        assert_eq!(a.totals().unique, 0);
        assert_eq!(a.missing(5, 0, 3), 3);
    }
}
