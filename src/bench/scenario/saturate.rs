//! The `saturate` scenario: measured steps at offered rates chosen by `RateSearch`, each judged sustained or
//! not, up to the highest sustained delivery rate.

use super::cpu::{per_cpu, CpuMeter, CLIENT_LIMIT_SHARE};
use super::runner::Run;
use super::search::RateSearch;
use super::BenchError;
use crate::bench::report::{Latency, Report, Step};

impl Run<'_> {
    /// One saturate step at `rate`: measure, drain, judge.
    fn step(&mut self, senders: usize, rate: f64, rr: &mut usize) -> Result<Step, BenchError> {
        let before = self.engine.audit().totals().unique;
        let expected_before = self.expected();
        let stalls_before = self.engine.counters().send_stalls;
        let meter = CpuMeter::start(self.cfg.pid);
        self.engine.begin_measure();
        let sent = self.paced(senders, rate, self.cfg.duration, rr)?;
        self.engine.end_measure();
        let (client_cpu, server_cpu) = meter.shares();
        let secs = meter.wall.elapsed().as_secs_f64().max(1e-9);
        let window = self.engine.counters().window_deliveries;
        // Every message of the step to every member of its sender's room.
        let offered = self.expected() - expected_before;
        self.drain()?;
        self.engine.stop_latency();
        let got = self.engine.audit().totals().unique - before;
        let lost = offered.saturating_sub(got);
        let latency = Latency::from_histogram(self.engine.histogram());
        let mut step = Step {
            rate,
            offered_deliveries_per_s: offered as f64 / secs,
            deliveries_per_s: window as f64 / secs,
            sent,
            lost,
            latency,
            client_cpu,
            server_cpu,
            ok: false,
            reason: String::new(),
        };
        let offered_msgs = rate * secs;
        step.reason = if (sent as f64) < 0.95 * offered_msgs - 1.0 {
            let stalled = self.engine.counters().send_stalls > stalls_before;
            format!(
                "sent only {:.0}% of the offered rate{}",
                100.0 * sent as f64 / offered_msgs,
                if stalled { " (output backed up)" } else { "" }
            )
        } else if (window as f64) < 0.95 * offered as f64 {
            format!("deliveries fell behind ({:.0}% in time)", 100.0 * window as f64 / offered.max(1) as f64)
        } else if lost > 0 {
            format!("{lost} deliveries missing after the drain")
        } else if latency.p99_us > self.cfg.p99_bound.as_secs_f64() * 1e6 {
            format!("p99 {:.0} µs over the bound", latency.p99_us)
        } else {
            String::new()
        };
        step.ok = step.reason.is_empty();
        Ok(step)
    }

    pub(super) fn saturate(&mut self, report: &mut Report) -> Result<(), BenchError> {
        let senders = self.setup()?;
        report.senders = senders;
        let clients = self.cfg.clients as f64;
        let start = self.cfg.rate.unwrap_or((100_000.0 / clients).max(1.0));
        let mut search = RateSearch::new();
        let mut rate = start;
        let mut rr = 0;
        self.paced(senders, rate, self.cfg.warmup, &mut rr)?;
        let mut retried = false;
        for _ in 0..self.cfg.max_steps.max(1) {
            let step = self.step(senders, rate, &mut rr)?;
            let ok = step.ok;
            report.steps.push(step);
            if self.engine.ready() < self.cfg.clients {
                break;
            }
            // A failed rate gets a second chance, so that one scheduling hiccup of a shared machine does not
            // end the ramp or steer the bisection; it counts as failed only when it fails twice.
            if !ok && !retried {
                retried = true;
                continue;
            }
            retried = false;
            match search.next(rate, ok) {
                Some(next) => rate = next,
                None => break,
            }
        }
        let good = report.steps.iter().filter(|s| s.ok).max_by(|a, b| a.rate.total_cmp(&b.rate)).cloned();
        let best = good.or_else(|| report.steps.first().cloned()).unwrap_or_default();
        report.rate = best.rate;
        report.deliveries_per_s = if best.ok { best.deliveries_per_s } else { 0.0 };
        report.offered_deliveries_per_s = best.offered_deliveries_per_s;
        report.client_cpu = best.client_cpu;
        report.server_cpu = best.server_cpu;
        report.deliveries_per_server_cpu_s = per_cpu(report.deliveries_per_s, best.server_cpu);
        // The client limits the result when the first failing step above the best had it near a full core.
        let failing = report.steps.iter().filter(|s| !s.ok && s.rate > best.rate).map(|s| s.client_cpu);
        report.client_limited = failing.fold(best.client_cpu, f64::max) >= CLIENT_LIMIT_SHARE;
        self.latency_into(report, best.latency);
        Ok(())
    }
}
