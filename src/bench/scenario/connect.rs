//! The `connect` scenario: handshakes and logins per second, then server memory per idle connection.

use std::time::{Duration, Instant};

use super::cpu::{per_cpu, CpuMeter, CLIENT_LIMIT_SHARE};
use super::runner::Run;
use super::BenchError;
use crate::bench::report::Report;
use crate::bench::sys;

impl Run<'_> {
    pub(super) fn connect(&mut self, report: &mut Report) -> Result<(), BenchError> {
        let rss_before = self.cfg.pid.and_then(sys::rss_bytes);
        let meter = CpuMeter::start(self.cfg.pid);
        let deadline = Instant::now() + self.cfg.setup_timeout;
        let took = self.connect_all(deadline)?;
        let (client, server) = meter.shares();
        let ready = self.engine.ready();
        report.handshakes_per_s = Some(ready as f64 / took.as_secs_f64().max(1e-9));
        // wss://: every connection's full TLS handshake is inside the figure above; counted on its own too.
        if self.cfg.targets.iter().any(|t| t.tls.is_some()) {
            let tls = self.engine.counters().tls_handshakes;
            report.tls_handshakes_per_s = Some(tls as f64 / took.as_secs_f64().max(1e-9));
        }
        report.client_cpu = client;
        report.server_cpu = server;
        report.handshakes_per_server_cpu_s = report.handshakes_per_s.and_then(|h| per_cpu(h, server));
        report.client_limited = client >= CLIENT_LIMIT_SHARE;
        // Hold everyone idle (answering pings) so the server settles, then read its memory.
        let hold = Instant::now() + self.cfg.duration;
        while Instant::now() < hold {
            self.engine.turn(Some(Duration::from_millis(20)))?;
        }
        let rss_after = self.cfg.pid.and_then(sys::rss_bytes);
        report.rss_before_bytes = rss_before;
        report.rss_after_bytes = rss_after;
        if let (Some(b), Some(a)) = (rss_before, rss_after) {
            if ready > 0 {
                report.rss_per_conn_bytes = Some((a as f64 - b as f64) / ready as f64);
            }
        }
        Ok(())
    }
}
