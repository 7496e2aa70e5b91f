//! CPU accounting of a run: the bench's and the server's CPU shares over an interval, rates per server CPU
//! second, and the share at which the bench itself is the bottleneck.

use std::time::{Duration, Instant};

use crate::bench::sys;

/// CPU shares of the bench and the server over an interval.
pub(super) struct CpuMeter {
    pub(super) wall: Instant,
    own: Duration,
    pid: Option<u32>,
    server: Option<Duration>,
}

impl CpuMeter {
    pub(super) fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter { wall: Instant::now(), own: sys::own_cpu_time(), pid, server: pid.and_then(sys::process_cpu_time) }
    }

    /// (client share, server share) since the start.
    pub(super) fn shares(&self) -> (f64, Option<f64>) {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let own = (sys::own_cpu_time().saturating_sub(self.own)).as_secs_f64() / wall;
        let server = match (self.pid.and_then(sys::process_cpu_time), self.server) {
            (Some(now), Some(then)) => Some(now.saturating_sub(then).as_secs_f64() / wall),
            _ => None,
        };
        (own, server)
    }
}

/// A rate per second of server CPU time, given the server's CPU share over the same interval.
pub(super) fn per_cpu(rate: f64, server_share: Option<f64>) -> Option<f64> {
    server_share.filter(|&c| c > 0.01 && rate > 0.0).map(|c| rate / c)
}

/// A client share at or above this means the bench, not the server, was the bottleneck.
pub(super) const CLIENT_LIMIT_SHARE: f64 = 0.9;
