//! The `churn` scenario: a fanout whose clients, all logged in with resume, are cut at random without a close
//! frame — a reset or a FIN — and come back on a new connection (to the next URL when there are several)
//! that resumes their session after the last say they received. The audit follows every (receiver, sender)
//! pair over all of a client's connections: what came before a cut and what the resume replayed together
//! must be every say, once, in order. Nobody may see a logout or a login.
//!
//! A sender is cut only once every say it sent has come back to it (a say to the room comes back to its
//! sender too): says the network takes on their way to the server were never the server's, and no promise
//! covers them; the audit counts every say sent as owed to the whole room. A connection the server ends (its
//! node killed: run this against two nodes and kill one) is resumed the same way, at the next URL; a sender
//! dropped so numbers its next say after the last of its own that its resume brought back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::cpu::CpuMeter;
use super::runner::Run;
use super::{BenchConfig, BenchError};
use crate::bench::engine::{Engine, Phase, Proto, ResumeCounters};
use crate::bench::report::{ChurnReport, Latency, Report};
use crate::bench::resume::Cut;

/// Random picks tried to find a ready client to cut before the cut is skipped.
const PICKS: usize = 16;

/// The settings a churn run cannot work without.
pub(super) fn check(cfg: &BenchConfig) -> Result<(), BenchError> {
    if cfg.proto != Proto::Chat {
        return Err(BenchError::Config("churn needs the chat protocol: raw servers have no sessions".into()));
    }
    if !(cfg.cuts_per_sec >= 0.0 && cfg.cuts_per_sec.is_finite()) {
        return Err(BenchError::Config("--cuts-per-sec must be a non-negative number".into()));
    }
    if !(0.0..=1.0).contains(&cfg.reset_share) {
        return Err(BenchError::Config("--reset-share must be between 0 and 1".into()));
    }
    Ok(())
}

/// The cuts of a run: when they fall due, whom they hit and how, and the clients on their way back.
#[derive(Debug)]
struct Churner {
    /// Cuts per second.
    rate: f64,
    reset_share: f64,
    away: Duration,
    /// Senders: clients `0..senders`.
    senders: usize,
    /// Cuts fallen due so far.
    due: u64,
    /// Due cuts that found no ready client.
    skipped: u64,
    /// Senders held until their says come back, then cut.
    waiting: Vec<(usize, Cut)>,
    /// Clients cut, and when they reconnect.
    returning: VecDeque<(Instant, usize)>,
}

impl Churner {
    fn new(cfg: &BenchConfig, senders: usize) -> Churner {
        Churner {
            rate: cfg.cuts_per_sec,
            reset_share: cfg.reset_share,
            away: cfg.away,
            senders,
            due: 0,
            skipped: 0,
            waiting: Vec::new(),
            returning: VecDeque::new(),
        }
    }

    /// Cuts per second fallen due `elapsed` into the window: spread evenly.
    fn due_by(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rate) as u64
    }

    /// Reset or FIN, as the share says.
    fn how(&self, roll: u64) -> Cut {
        if (roll % 1_000_000) as f64 / 1e6 < self.reset_share {
            Cut::Reset
        } else {
            Cut::Fin
        }
    }

    /// A ready client not already waiting for its cut, picked at random.
    fn pick(&self, engine: &mut Engine) -> Option<usize> {
        let n = engine.len().max(1) as u64;
        for _ in 0..PICKS {
            let idx = (engine.random() % n) as usize;
            if engine.phase(idx) == Some(Phase::Ready) && !self.waiting.iter().any(|&(w, _)| w == idx) {
                return Some(idx);
            }
        }
        None
    }

    /// One step of the window: the cuts due, the held senders whose says are back, the returns due.
    fn tick(&mut self, engine: &mut Engine, elapsed: Duration) {
        self.cuts(engine, elapsed);
        self.returns(engine);
    }

    /// The cuts due `elapsed` into the window, and the held senders whose says are back.
    fn cuts(&mut self, engine: &mut Engine, elapsed: Duration) {
        let due = self.due_by(elapsed);
        while self.due < due {
            self.due += 1;
            let how = self.how(engine.random());
            match self.pick(engine) {
                Some(idx) if idx < self.senders => {
                    engine.hold(idx);
                    self.waiting.push((idx, how));
                }
                Some(idx) => self.cut(engine, idx, how),
                None => self.skipped += 1,
            }
        }
        let mut i = 0;
        while i < self.waiting.len() {
            let (idx, how) = self.waiting[i];
            if engine.in_flight(idx) == 0 {
                self.waiting.swap_remove(i);
                self.cut(engine, idx, how);
            } else {
                i += 1;
            }
        }
    }

    /// The clients the server dropped join the returning; those whose time away is up reconnect.
    fn returns(&mut self, engine: &mut Engine) {
        let now = Instant::now();
        for idx in engine.take_dropped() {
            self.returning.push_back((now + self.away, idx));
        }
        while let Some(&(at, idx)) = self.returning.front() {
            if at > now {
                break;
            }
            self.returning.pop_front();
            engine.reconnect(idx);
        }
    }

    fn cut(&mut self, engine: &mut Engine, idx: usize, how: Cut) {
        if engine.cut(idx, how) {
            self.returning.push_back((Instant::now() + self.away, idx));
        } else {
            engine.release(idx);
            self.skipped += 1;
        }
    }

    /// No more cuts: the held senders may send again and every client away comes back now (those the server
    /// drops from now on still come back, through [`Churner::returns`]).
    fn stop(&mut self, engine: &mut Engine) {
        for (idx, _) in self.waiting.drain(..) {
            engine.release(idx);
        }
        for (_, idx) in self.returning.drain(..) {
            engine.reconnect(idx);
        }
    }
}

/// Why a churn run is not clean, in words; empty when it is.
pub(super) fn problems(report: &Report, churn: &ChurnReport) -> Vec<String> {
    let mut p = Vec::new();
    for (n, what) in [
        (report.lost, "deliveries lost"),
        (report.duplicated, "deliveries duplicated"),
        (report.out_of_order, "deliveries out of order"),
        (churn.logouts_seen, "logouts seen"),
        (churn.logins_seen, "logins seen while churning"),
        (churn.refused, "resumes refused"),
        (churn.unresumed as u64, "clients not back at the end"),
    ] {
        if n > 0 {
            p.push(format!("{n} {what}"));
        }
    }
    if churn.cuts > 0 && churn.resumes == 0 {
        p.push("no resume completed".into());
    }
    p
}

impl Run<'_> {
    pub(super) fn churn(&mut self, report: &mut Report) -> Result<(), BenchError> {
        let senders = self.setup()?;
        let clients = self.cfg.clients;
        let granted = self.engine.resume_counters().sessions;
        if granted < clients as u64 {
            return Err(BenchError::Config(format!(
                "the server granted {granted} sessions to {clients} logins asking for one (resume off?)"
            )));
        }
        let rate = self.cfg.rate.unwrap_or(200_000.0 / clients as f64);
        report.senders = senders;
        report.rate = rate;
        let mut rr = 0;
        self.paced(senders, rate, self.cfg.warmup, &mut rr)?;
        let (logins_before, before) = (self.engine.counters().logins_seen, self.engine.resume_counters());
        let expected_before = self.expected();
        let meter = CpuMeter::start(self.cfg.pid);
        self.engine.begin_measure();
        let mut churner = Churner::new(self.cfg, senders);
        self.paced_with(senders, rate, self.cfg.duration, &mut rr, |engine, elapsed| churner.tick(engine, elapsed))?;
        self.engine.end_measure();
        let shares = meter.shares();
        let secs = meter.wall.elapsed().as_secs_f64().max(1e-9);
        let in_window = self.engine.resume_counters();
        let offered = self.expected() - expected_before;
        churner.stop(&mut self.engine);
        self.await_resumes(&mut churner)?;
        self.drain()?;
        self.window_into(report, offered, secs, shares);
        let after = self.engine.resume_counters();
        let unresumed = (0..clients).filter(|&i| self.engine.phase(i) != Some(Phase::Ready)).count();
        report.churn = Some(ChurnReport {
            cuts_per_s_offered: self.cfg.cuts_per_sec,
            reset_share: self.cfg.reset_share,
            away_ms: self.cfg.away.as_secs_f64() * 1e3,
            cuts: after.cuts_reset + after.cuts_fin - before.cuts_reset - before.cuts_fin,
            cuts_reset: after.cuts_reset - before.cuts_reset,
            cuts_fin: after.cuts_fin - before.cuts_fin,
            cuts_skipped: churner.skipped,
            resumes: after.resumes - before.resumes,
            resumes_per_s: (in_window.resumes - before.resumes) as f64 / secs,
            resume_latency: self.engine.resume_histogram().map(Latency::from_histogram).unwrap_or_default(),
            not_recovered: after.not_recovered - before.not_recovered,
            missed: after.missed - before.missed,
            replayed: after.replayed - before.replayed,
            replay_duplicates: after.replay_duplicates - before.replay_duplicates,
            refused: after.refused - before.refused,
            dropped: after.dropped - before.dropped,
            retried: after.retried - before.retried,
            unresumed,
            logouts_seen: self.engine.counters().logouts_seen,
            logins_seen: self.engine.counters().logins_seen - logins_before,
            clean: false,
            problems: Vec::new(),
        });
        Ok(())
    }

    /// Waits until every client cut or dropped is back (resumed), refused, or failed, or the drain's longest
    /// wait passed.
    fn await_resumes(&mut self, churner: &mut Churner) -> Result<(), BenchError> {
        let deadline = Instant::now() + self.cfg.drain_timeout * 10;
        while Instant::now() < deadline {
            let ResumeCounters { refused, .. } = self.engine.resume_counters();
            if self.engine.ready() + self.engine.closed() + refused as usize >= self.cfg.clients {
                break;
            }
            self.engine.turn(Some(Duration::from_millis(2)))?;
            churner.returns(&mut self.engine);
        }
        Ok(())
    }
}

/// After the totals: the churn verdict, when the run churned.
pub(super) fn judge(report: &mut Report) {
    if let Some(mut churn) = report.churn.take() {
        churn.problems = problems(report, &churn);
        churn.clean = churn.problems.is_empty();
        report.churn = Some(churn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn churner(rate: f64, reset_share: f64) -> Churner {
        let url = "ws://127.0.0.1:1/";
        let target = crate::bench::target::resolve(url, false).unwrap();
        let mut cfg = BenchConfig::new(super::super::Scenario::Churn, url, target);
        cfg.cuts_per_sec = rate;
        cfg.reset_share = reset_share;
        Churner::new(&cfg, 2)
    }

    #[test]
    fn cuts_fall_due_evenly_and_mix_as_asked() {
        let c = churner(100.0, 0.25);
        assert_eq!(c.due_by(Duration::from_millis(5)), 0);
        assert_eq!(c.due_by(Duration::from_millis(10)), 1);
        assert_eq!(c.due_by(Duration::from_secs(2)), 200);
        let resets = (0..1_000_000u64).step_by(997).filter(|&r| c.how(r) == Cut::Reset).count();
        let all = (0..1_000_000u64).step_by(997).count();
        assert!((resets as f64 / all as f64 - 0.25).abs() < 0.01, "{resets} of {all}");
        assert!((0..1000).all(|r| churner(1.0, 0.0).how(r * 7919) == Cut::Fin));
        assert!((0..1000).all(|r| churner(1.0, 1.0).how(r * 7919) == Cut::Reset));
        assert_eq!(churner(0.0, 0.5).due_by(Duration::from_secs(100)), 0);
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let url = "ws://127.0.0.1:1/";
        let target = crate::bench::target::resolve(url, false).unwrap();
        let mut cfg = BenchConfig::new(super::super::Scenario::Churn, url, target);
        assert!(check(&cfg).is_ok());
        cfg.reset_share = 1.5;
        assert!(check(&cfg).unwrap_err().to_string().contains("--reset-share"));
        cfg.reset_share = 1.0;
        cfg.cuts_per_sec = f64::NAN;
        assert!(check(&cfg).unwrap_err().to_string().contains("--cuts-per-sec"));
        cfg.cuts_per_sec = 5.0;
        cfg.proto = Proto::Raw;
        assert!(check(&cfg).unwrap_err().to_string().contains("chat protocol"));
    }

    #[test]
    fn a_run_is_clean_only_when_nothing_went_wrong() {
        let report = Report::default();
        let churn = ChurnReport { cuts: 10, resumes: 10, ..ChurnReport::default() };
        assert!(problems(&report, &churn).is_empty());
        let bad = Report { lost: 3, duplicated: 1, out_of_order: 2, ..Report::default() };
        let churn = ChurnReport { resumes: 0, logouts_seen: 1, logins_seen: 2, refused: 1, unresumed: 1, ..churn };
        assert_eq!(
            problems(&bad, &churn),
            [
                "3 deliveries lost",
                "1 deliveries duplicated",
                "2 deliveries out of order",
                "1 logouts seen",
                "2 logins seen while churning",
                "1 resumes refused",
                "1 clients not back at the end",
                "no resume completed",
            ]
        );
    }
}
