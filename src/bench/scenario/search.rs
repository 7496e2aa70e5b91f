//! `RateSearch`: the saturate scenario's search for the highest sustained rate.

/// The saturate search over offered rates. It doubles the rate until two steps in a row fail (an event-driven
/// server batches more under more load, so one failure at a low rate does not prove a higher one fails too),
/// goes down by quarters when nothing passed, then bisects between the highest sustained rate and the lowest
/// failed rate above it until they are within 5 %.
#[derive(Debug, Clone)]
pub struct RateSearch {
    /// Still doubling.
    ramping: bool,
    fails_in_row: u32,
    history: Vec<(f64, bool)>,
}

impl Default for RateSearch {
    fn default() -> Self {
        RateSearch::new()
    }
}

impl RateSearch {
    /// A search that has tried nothing yet (the caller picks the first rate).
    pub fn new() -> RateSearch {
        RateSearch { ramping: true, fails_in_row: 0, history: Vec::new() }
    }

    /// Records that the step at `rate` was sustained (`ok`) or not; returns the next rate to try, or `None`
    /// when the search is over.
    pub fn next(&mut self, rate: f64, ok: bool) -> Option<f64> {
        self.history.push((rate, ok));
        if self.ramping {
            self.fails_in_row = if ok { 0 } else { self.fails_in_row + 1 };
            if self.fails_in_row < 2 {
                return Some(rate * 2.0);
            }
            self.ramping = false;
        }
        let passed = self.history.iter().filter(|h| h.1).map(|h| h.0).reduce(f64::max);
        match passed {
            None => {
                let lowest = self.history.iter().map(|h| h.0).reduce(f64::min)?;
                (lowest > 1.0).then_some(lowest / 4.0)
            }
            Some(lo) => {
                let hi = self.history.iter().filter(|h| !h.1 && h.0 > lo).map(|h| h.0).reduce(f64::min);
                match hi {
                    None => Some(lo * 2.0),
                    Some(hi) if (hi - lo) / lo < 0.05 => None,
                    Some(hi) => Some((lo + hi) / 2.0),
                }
            }
        }
    }

    /// The highest sustained rate so far.
    #[cfg(test)]
    pub fn best(&self) -> Option<f64> {
        self.history.iter().filter(|h| h.1).map(|h| h.0).reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a server model `ok(rate)`; returns the rates tried and the best.
    fn search(start: f64, max_steps: usize, ok: impl Fn(f64) -> bool) -> (Vec<f64>, Option<f64>) {
        let mut s = RateSearch::new();
        let mut rate = start;
        let mut tried = Vec::new();
        for _ in 0..max_steps {
            tried.push(rate);
            match s.next(rate, ok(rate)) {
                Some(r) => rate = r,
                None => break,
            }
        }
        (tried, s.best())
    }

    #[test]
    fn ramps_then_bisects_to_within_five_percent() {
        let (tried, best) = search(100.0, 30, |r| r <= 1000.0);
        assert_eq!(&tried[..6], &[100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0]);
        let best = best.unwrap();
        assert!((950.0..=1000.0).contains(&best), "{best} {tried:?}");
        assert!(tried.len() < 15, "{tried:?}");
    }

    #[test]
    fn one_failure_at_a_low_rate_does_not_stop_the_ramp() {
        // Fails at 100 (no batching yet), sustains 200..=6400 (batching), fails above.
        let (tried, best) = search(100.0, 30, |r| (150.0..=6400.0).contains(&r));
        assert_eq!(&tried[..3], &[100.0, 200.0, 400.0]);
        assert!(best.unwrap() >= 6100.0, "{tried:?}");
    }

    #[test]
    fn goes_down_when_nothing_passes() {
        let (tried, best) = search(1000.0, 30, |r| r <= 70.0);
        assert_eq!(&tried[..4], &[1000.0, 2000.0, 250.0, 62.5]);
        assert!((66.0..=70.0).contains(&best.unwrap()), "{tried:?}");
        let (tried, best) = search(8.0, 30, |_| false);
        assert_eq!(best, None);
        assert_eq!(tried, vec![8.0, 16.0, 2.0, 0.5]);
    }

    #[test]
    fn the_step_budget_bounds_the_search() {
        let (tried, best) = search(1.0, 5, |_| true);
        assert_eq!(tried, vec![1.0, 2.0, 4.0, 8.0, 16.0]);
        assert_eq!(best, Some(16.0));
    }
}
