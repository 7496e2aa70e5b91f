//! The `fanout` scenario: paced senders over a warmup and a measured window, then latency and audit.

use super::cpu::CpuMeter;
use super::runner::Run;
use super::BenchError;
use crate::bench::report::Report;

impl Run<'_> {
    pub(super) fn fanout(&mut self, report: &mut Report) -> Result<(), BenchError> {
        let senders = self.setup()?;
        let rate = self.cfg.rate.unwrap_or(200_000.0 / self.cfg.clients as f64);
        report.senders = senders;
        report.rate = rate;
        let mut rr = 0;
        self.paced(senders, rate, self.cfg.warmup, &mut rr)?;
        let expected_before = self.expected();
        let meter = CpuMeter::start(self.cfg.pid);
        self.engine.begin_measure();
        self.paced(senders, rate, self.cfg.duration, &mut rr)?;
        self.engine.end_measure();
        let shares = meter.shares();
        let secs = meter.wall.elapsed().as_secs_f64().max(1e-9);
        let offered = self.expected() - expected_before;
        self.drain()?;
        self.window_into(report, offered, secs, shares);
        Ok(())
    }
}
