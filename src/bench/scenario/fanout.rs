//! The `fanout` scenario: paced senders over a warmup and a measured window, then latency and audit.

use super::cpu::{per_cpu, CpuMeter, CLIENT_LIMIT_SHARE};
use super::runner::Run;
use super::BenchError;
use crate::bench::report::{Latency, Report};

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
        let (client, server) = meter.shares();
        let secs = meter.wall.elapsed().as_secs_f64().max(1e-9);
        let offered = self.expected() - expected_before;
        self.drain()?;
        self.engine.stop_latency();
        report.deliveries_per_s = self.engine.counters().window_deliveries as f64 / secs;
        report.offered_deliveries_per_s = offered as f64 / secs;
        report.client_cpu = client;
        report.server_cpu = server;
        report.deliveries_per_server_cpu_s = per_cpu(report.deliveries_per_s, server);
        report.client_limited = client >= CLIENT_LIMIT_SHARE;
        self.latency_into(report, Latency::from_histogram(self.engine.histogram()));
        Ok(())
    }
}
