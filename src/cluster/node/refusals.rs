//! What Redis or the node refused — commands Redis answered with an error (a write at `maxmemory`, …) and
//! says refused because `--cluster-buffer` was full — counted at once and logged at most once per
//! [`LOG_EVERY`](super::LOG_EVERY): a Redis that refuses every write must not become a log line per command.

use std::time::Instant;

use log::warn;

use super::{Node, LOG_EVERY};

/// Why a say was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SayRefusal {
    /// Redis is down or silent, and what waits for it fills `--cluster-buffer`.
    RedisAway,
    /// Redis is up, but it has not confirmed `--cluster-buffer` bytes of this node's messages yet: the
    /// node's users say more than Redis takes.
    Backlog,
}

/// Refusals since the last log line.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    errors: u64,
    last_error: String,
    away: u64,
    backlog: u64,
    logged_at: Option<Instant>,
}

impl Node {
    /// Redis answered a command with an error: counted, and logged with the others of the interval.
    pub(super) fn note_redis_error(&mut self, what: &str, error: &str) {
        self.stats.redis_errors_total += 1;
        let r = &mut self.refusals;
        r.errors += 1;
        r.last_error.clear();
        r.last_error.push_str(what);
        r.last_error.push_str(": ");
        r.last_error.extend(error.chars().take(200));
        self.log_refusals(false);
    }

    /// A say was refused: counted, and logged with the others of the interval.
    pub(super) fn note_say_refused(&mut self, why: SayRefusal) {
        self.stats.refused_total += 1;
        match why {
            SayRefusal::RedisAway => self.refusals.away += 1,
            SayRefusal::Backlog => {
                self.stats.refused_backlog_total += 1;
                self.refusals.backlog += 1;
            }
        }
        self.log_refusals(false);
    }

    /// Logs what was refused since the last line, if anything was and the last line is old enough (or
    /// `now` is set).
    pub(super) fn log_refusals(&mut self, now: bool) {
        let r = &mut self.refusals;
        if r.errors + r.away + r.backlog == 0 {
            return;
        }
        if !now && r.logged_at.is_some_and(|at| self.now < at + LOG_EVERY) {
            return;
        }
        let since =
            r.logged_at.map_or_else(String::new, |at| format!(" in the last {:.0} s", (self.now - at).as_secs_f64()));
        if r.errors > 0 {
            warn!(
                "cluster: Redis refused {} command(s){since} (wschat_cluster_redis_errors_total); the last: {}",
                r.errors, r.last_error
            );
        }
        if r.backlog > 0 {
            warn!(
                "cluster: {} say(s) refused{since}: Redis is up but has not confirmed --cluster-buffer ({} bytes) of \
                 this node's messages yet; its users say more than Redis takes",
                r.backlog, self.cfg.buffer
            );
        }
        if r.away > 0 {
            warn!(
                "cluster: {} say(s) refused{since}: Redis is unreachable and --cluster-buffer ({} bytes) is full",
                r.away, self.cfg.buffer
            );
        }
        *r = Refusals { logged_at: Some(self.now), ..Refusals::default() };
    }
}
