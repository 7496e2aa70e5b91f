//! The three scenarios of the contract on top of the engine: `fanout` (paced senders, latency and audit),
//! `saturate` (rate steps up, then bisects, to the highest sustained delivery rate) and `connect`
//! (handshakes and logins per second, server memory per idle connection). Every phase has a deadline, so
//! every run ends in bounded time whatever the server does.

use std::fmt;
use std::time::{Duration, Instant};

use super::engine::{Engine, EngineConfig, EngineError, Proto};
use super::report::{Latency, Report, Step};
use super::sys;
use super::target::Target;

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Paced senders for a fixed time: throughput, latency, audit.
    Fanout,
    /// Rate steps up until deliveries fall behind or p99 passes the bound.
    Saturate,
    /// Many connections, handshakes and logins per second, memory per idle connection.
    Connect,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Fanout => "fanout",
            Scenario::Saturate => "saturate",
            Scenario::Connect => "connect",
        })
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The scenario.
    pub scenario: Scenario,
    /// The URL as given.
    pub url: String,
    /// The resolved target.
    pub target: Target,
    /// Its protocol.
    pub proto: Proto,
    /// Connections.
    pub clients: usize,
    /// Sending connections (the first ones); `None`: every client sends.
    pub senders: Option<usize>,
    /// Offered messages per second of all senders together; `None`: the scenario's default.
    pub rate: Option<f64>,
    /// Measured time (saturate: per step; connect: how long connections are held idle).
    pub duration: Duration,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Content bytes per message.
    pub payload: usize,
    /// The server's pid, for its CPU share and RSS.
    pub pid: Option<u32>,
    /// Connections handshaking at once.
    pub concurrency: usize,
    /// Chat room size; `None`: one room for fanout and saturate, rooms of 10 for connect.
    pub room_size: Option<usize>,
    /// Saturate: a step whose p99 exceeds this fails.
    pub p99_bound: Duration,
    /// Saturate: most rate steps.
    pub max_steps: usize,
    /// Deadline for connecting and logging everyone in.
    pub setup_timeout: Duration,
    /// Deadline for the deliveries still in flight after sending stops.
    pub drain_timeout: Duration,
}

impl BenchConfig {
    /// A configuration with the CLI's defaults for `scenario` against `target`.
    pub fn new(scenario: Scenario, url: &str, target: Target) -> BenchConfig {
        BenchConfig {
            scenario,
            url: url.to_string(),
            target,
            proto: Proto::Chat,
            clients: 100,
            senders: None,
            rate: None,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            payload: 64,
            pid: None,
            concurrency: 200,
            room_size: None,
            p99_bound: Duration::from_millis(50),
            max_steps: 24,
            setup_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// Why a run failed as a whole.
#[derive(Debug)]
pub enum BenchError {
    /// The engine could not poll or connect.
    Engine(EngineError),
    /// Not every client was ready by the setup deadline.
    Setup {
        /// Clients ready.
        ready: usize,
        /// Clients asked for.
        wanted: usize,
        /// The first failure seen, if any.
        first_failure: Option<String>,
    },
    /// A setting that cannot work.
    Config(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Engine(e) => write!(f, "{e}"),
            BenchError::Setup { ready, wanted, first_failure } => {
                write!(f, "only {ready} of {wanted} clients were ready in time")?;
                if let Some(why) = first_failure {
                    write!(f, " (first failure: {why})")?;
                }
                Ok(())
            }
            BenchError::Config(why) => write!(f, "bad settings: {why}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<EngineError> for BenchError {
    fn from(e: EngineError) -> Self {
        BenchError::Engine(e)
    }
}

/// Runs the configured scenario.
pub fn run(cfg: &BenchConfig) -> Result<Report, BenchError> {
    if cfg.clients == 0 {
        return Err(BenchError::Config("--clients must be at least 1".into()));
    }
    if cfg.senders.is_some_and(|s| s > cfg.clients) {
        return Err(BenchError::Config("--senders cannot exceed --clients".into()));
    }
    if cfg.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(BenchError::Config("--rate must be a positive number".into()));
    }
    sys::raise_fd_limit();
    let engine = Engine::new(EngineConfig {
        target: cfg.target.clone(),
        proto: cfg.proto,
        payload: cfg.payload,
        max_message_bytes: 1 << 20,
        max_unsent_bytes: 4 << 20,
    })?;
    let mut report = Report {
        scenario: cfg.scenario.to_string(),
        proto: cfg.proto.to_string(),
        url: cfg.url.clone(),
        clients: cfg.clients,
        payload: cfg.payload,
        duration_s: cfg.duration.as_secs_f64(),
        warmup_s: cfg.warmup.as_secs_f64(),
        ..Report::default()
    };
    let mut run = Run { cfg, engine };
    match cfg.scenario {
        Scenario::Fanout => run.fanout(&mut report)?,
        Scenario::Saturate => run.saturate(&mut report)?,
        Scenario::Connect => run.connect(&mut report)?,
    }
    run.finish(&mut report);
    run.engine.close_all();
    Ok(report)
}

/// CPU shares of the bench and the server over an interval.
struct CpuMeter {
    wall: Instant,
    own: Duration,
    pid: Option<u32>,
    server: Option<Duration>,
}

impl CpuMeter {
    fn start(pid: Option<u32>) -> CpuMeter {
        CpuMeter { wall: Instant::now(), own: sys::own_cpu_time(), pid, server: pid.and_then(sys::process_cpu_time) }
    }

    /// (client share, server share) since the start.
    fn shares(&self) -> (f64, Option<f64>) {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let own = (sys::own_cpu_time().saturating_sub(self.own)).as_secs_f64() / wall;
        let server = match (self.pid.and_then(sys::process_cpu_time), self.server) {
            (Some(now), Some(then)) => Some(now.saturating_sub(then).as_secs_f64() / wall),
            _ => None,
        };
        (own, server)
    }
}

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
    pub fn best(&self) -> Option<f64> {
        self.history.iter().filter(|h| h.1).map(|h| h.0).reduce(f64::max)
    }
}

/// A rate per second of server CPU time, given the server's CPU share over the same interval.
fn per_cpu(rate: f64, server_share: Option<f64>) -> Option<f64> {
    server_share.filter(|&c| c > 0.01 && rate > 0.0).map(|c| rate / c)
}

/// A client share at or above this means the bench, not the server, was the bottleneck.
const CLIENT_LIMIT_SHARE: f64 = 0.9;

struct Run<'a> {
    cfg: &'a BenchConfig,
    engine: Engine,
}

impl Run<'_> {
    fn room_size(&self) -> usize {
        match (self.cfg.room_size, self.cfg.scenario) {
            (Some(n), _) => n.max(1),
            (None, Scenario::Connect) => 10,
            (None, _) => self.cfg.clients,
        }
    }

    /// Opens every client with bounded concurrency and waits until all are ready or the deadline passes;
    /// returns when the last one became ready.
    fn connect_all(&mut self, deadline: Instant) -> Result<Duration, BenchError> {
        let start = Instant::now();
        let rooms = self.room_size();
        let wanted = self.cfg.clients;
        let single_room = rooms >= wanted;
        while self.engine.ready() < wanted && Instant::now() < deadline {
            let settled = self.engine.ready() + self.engine.closed();
            if settled >= wanted && self.engine.len() >= wanted {
                break;
            }
            while self.engine.len() < wanted && self.engine.len() - settled < self.cfg.concurrency {
                let i = self.engine.len();
                let room = if single_room { None } else { Some(format!("r{}", i / rooms)) };
                self.engine.open(&format!("b{i}"), room.as_deref())?;
            }
            self.engine.turn(Some(Duration::from_millis(5)))?;
        }
        Ok(start.elapsed())
    }

    fn setup_error(&self) -> BenchError {
        BenchError::Setup {
            ready: self.engine.ready(),
            wanted: self.cfg.clients,
            first_failure: self.engine.counters().first_failure.as_ref().map(|f| f.to_string()),
        }
    }

    /// Connects and logs in everyone, then (chat, one room) waits until the storm of login broadcasts is
    /// over, so it does not mix with the measurement.
    fn setup(&mut self) -> Result<usize, BenchError> {
        let deadline = Instant::now() + self.cfg.setup_timeout;
        self.connect_all(deadline)?;
        if self.engine.ready() < self.cfg.clients {
            return Err(self.setup_error());
        }
        if self.cfg.proto == Proto::Chat {
            let c = self.cfg.clients as u64;
            let expected_logins = c * (c + 1) / 2;
            let settle = Instant::now() + Duration::from_secs(10);
            while self.engine.counters().logins_seen < expected_logins && Instant::now() < settle.min(deadline) {
                self.engine.turn(Some(Duration::from_millis(5)))?;
            }
        }
        let senders = self.cfg.senders.unwrap_or(self.cfg.clients).max(1);
        self.engine.start_audit(senders);
        Ok(senders)
    }

    /// Sends at `rate` messages per second, round robin over the senders, for `dur`; returns messages sent.
    fn paced(&mut self, senders: usize, rate: f64, dur: Duration, rr: &mut usize) -> Result<u64, BenchError> {
        let start = Instant::now();
        let mut done: u64 = 0;
        // At most 2 ms worth of messages (and at least one round of senders) in one burst.
        let burst = ((rate * 0.002) as u64).max(senders as u64).max(1);
        loop {
            let elapsed = start.elapsed();
            if elapsed >= dur {
                break;
            }
            let due = ((elapsed.as_secs_f64() * rate) as u64).min(done + burst);
            let mut refused = 0;
            while done < due && refused < senders {
                let s = *rr % senders;
                *rr += 1;
                if self.engine.send(s) {
                    done += 1;
                    refused = 0;
                } else {
                    refused += 1;
                }
            }
            self.engine.flush();
            let next = Duration::from_secs_f64((done + 1) as f64 / rate);
            let wait = next.saturating_sub(start.elapsed()).min(Duration::from_millis(1)).min(dur - elapsed.min(dur));
            self.engine.turn(Some(wait))?;
        }
        Ok(done)
    }

    /// Deliveries expected so far: every message sent to every connected client.
    fn expected(&self) -> u64 {
        self.engine.sent() * self.cfg.clients as u64
    }

    /// Keeps receiving until every expected delivery arrived, or nothing arrived for the drain timeout, or
    /// ten drain timeouts passed in all (a server far behind may take a while to catch up; the next step
    /// must not start with its backlog).
    fn drain(&mut self) -> Result<(), BenchError> {
        let start = Instant::now();
        let mut last = self.engine.audit().totals().unique;
        let mut last_progress = start;
        while last < self.expected() {
            let now = Instant::now();
            if now - last_progress > self.cfg.drain_timeout || now - start > self.cfg.drain_timeout * 10 {
                break;
            }
            if self.engine.ready() + self.engine.closed() < self.cfg.clients || self.engine.ready() == 0 {
                break;
            }
            self.engine.turn(Some(Duration::from_millis(2)))?;
            let unique = self.engine.audit().totals().unique;
            if unique > last {
                last = unique;
                last_progress = Instant::now();
            }
        }
        Ok(())
    }

    fn fanout(&mut self, report: &mut Report) -> Result<(), BenchError> {
        let senders = self.setup()?;
        let rate = self.cfg.rate.unwrap_or(200_000.0 / self.cfg.clients as f64);
        report.senders = senders;
        report.rate = rate;
        let mut rr = 0;
        self.paced(senders, rate, self.cfg.warmup, &mut rr)?;
        let meter = CpuMeter::start(self.cfg.pid);
        self.engine.begin_measure();
        let sent = self.paced(senders, rate, self.cfg.duration, &mut rr)?;
        self.engine.end_measure();
        let (client, server) = meter.shares();
        let secs = meter.wall.elapsed().as_secs_f64().max(1e-9);
        self.drain()?;
        self.engine.stop_latency();
        report.deliveries_per_s = self.engine.counters().window_deliveries as f64 / secs;
        report.offered_deliveries_per_s = (sent * self.cfg.clients as u64) as f64 / secs;
        report.client_cpu = client;
        report.server_cpu = server;
        report.deliveries_per_server_cpu_s = per_cpu(report.deliveries_per_s, server);
        report.client_limited = client >= CLIENT_LIMIT_SHARE;
        self.latency_into(report, Latency::from_histogram(self.engine.histogram()));
        Ok(())
    }

    fn latency_into(&self, report: &mut Report, l: Latency) {
        report.p50_us = l.p50_us;
        report.p99_us = l.p99_us;
        report.p999_us = l.p999_us;
        report.max_us = l.max_us;
        report.mean_us = l.mean_us;
        report.latency_samples = l.samples;
    }

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
        self.drain()?;
        self.engine.stop_latency();
        let receivers = self.cfg.clients as u64;
        let got = self.engine.audit().totals().unique - before;
        let lost = (self.expected() - expected_before).saturating_sub(got);
        let latency = Latency::from_histogram(self.engine.histogram());
        let mut step = Step {
            rate,
            offered_deliveries_per_s: (sent * receivers) as f64 / secs,
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
        } else if (window as f64) < 0.95 * (sent * receivers) as f64 {
            format!("deliveries fell behind ({:.0}% in time)", 100.0 * window as f64 / (sent * receivers).max(1) as f64)
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

    fn saturate(&mut self, report: &mut Report) -> Result<(), BenchError> {
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

    fn connect(&mut self, report: &mut Report) -> Result<(), BenchError> {
        let rss_before = self.cfg.pid.and_then(sys::rss_bytes);
        let meter = CpuMeter::start(self.cfg.pid);
        let deadline = Instant::now() + self.cfg.setup_timeout;
        let took = self.connect_all(deadline)?;
        let (client, server) = meter.shares();
        let ready = self.engine.ready();
        report.handshakes_per_s = Some(ready as f64 / took.as_secs_f64().max(1e-9));
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

    /// Fills in the totals every scenario reports.
    fn finish(&self, report: &mut Report) {
        let c = self.engine.counters();
        let totals = self.engine.audit().totals();
        report.connected = self.engine.ready();
        report.failed = c.closed as usize;
        report.sent = self.engine.sent();
        report.expected = self.expected();
        report.delivered = totals.unique;
        report.lost = report.expected.saturating_sub(totals.unique);
        report.duplicated = totals.duplicated;
        report.out_of_order = totals.out_of_order;
        report.server_errors = c.server_errors;
        report.first_error =
            c.first_failure.as_ref().map(|f| f.to_string()).or_else(|| c.first_server_error.clone()).or_else(|| {
                (totals.foreign > 0).then(|| format!("{} deliveries from unknown senders", totals.foreign))
            });
        report.send_stalls = c.send_stalls;
        report.bytes_in = c.bytes_in;
        report.reads = c.reads;
        report.writes = c.writes;
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
