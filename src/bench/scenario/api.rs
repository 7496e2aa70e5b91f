//! The `api` scenario: every client logs in to one room; then the server API (`wschat --api`) is loaded with
//! `POST /api/say` or `POST /api/send` to that room at a paced rate over a few keep-alive, pipelined
//! connections, for a warm-up and a measured window. Each request's content carries its connection (the
//! audit's sender), a sequence number and its send time, so each client audits that every message the API
//! pushed reached it once and in order, and times it from the request's send to its delivery. Any answer
//! other than 200 fails the run, like a lost delivery.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::cpu::{per_cpu, CpuMeter};
use super::runner::Run;
use super::{BenchConfig, BenchError};
use crate::bench::api::{self, ApiClients};
use crate::bench::engine::{Proto, FOREIGN_TOKENS};
use crate::bench::report::{ApiReport, Latency, Report};

/// The room of the run when `--room` names none: the daemon's default room.
pub(super) const DEFAULT_ROOM: &str = "1";

/// Requests per second when `-r` gives none.
const DEFAULT_RATE: f64 = 10_000.0;

/// The settings an api run cannot work without.
pub(super) fn check(cfg: &BenchConfig) -> Result<(), BenchError> {
    let config = |why: &str| Err(BenchError::Config(why.into()));
    let Some(api) = &cfg.api else { return config("the api scenario needs --api ADDR and --api-key-file FILE") };
    if cfg.proto != Proto::Chat {
        return config("the api scenario needs the chat protocol: its clients log in to a room");
    }
    if api.clients == 0 {
        return config("--api-clients must be at least 1");
    }
    if cfg.senders.is_some() {
        return config("--senders does not apply to api: the API's connections send (--api-clients)");
    }
    if cfg.room_size.is_some_and(|n| n < cfg.clients) {
        return config("the api scenario puts every client in one room: drop --room-size");
    }
    Ok(())
}

/// After the totals: the api verdict, when the run was one.
pub(super) fn judge(report: &mut Report) {
    if let Some(mut api) = report.api.take() {
        api.problems = problems(report, &api);
        api.clean = api.problems.is_empty();
        report.api = Some(api);
    }
}

/// What went wrong in an api run, in words; empty when nothing did.
fn problems(report: &Report, api: &ApiReport) -> Vec<String> {
    let mut p = Vec::new();
    for (n, what) in [
        (report.lost, "deliveries lost"),
        (report.duplicated, "deliveries duplicated"),
        (report.out_of_order, "deliveries out of order"),
        (api.api_errors, "API requests failed"),
        (api.connections_lost as u64, "API connections lost"),
        (report.clients.saturating_sub(report.connected) as u64, "clients not connected at the end"),
    ] {
        if n > 0 {
            p.push(format!("{n} {what}"));
        }
    }
    if api.statuses.get("200").copied().unwrap_or(0) == 0 {
        p.push("no API request succeeded".into());
    }
    p
}

impl Run<'_> {
    pub(super) fn api(&mut self, report: &mut Report) -> Result<(), BenchError> {
        let all = self.cfg;
        let Some(cfg) = all.api.as_ref() else {
            return Err(BenchError::Config("the api scenario needs --api ADDR and --api-key-file FILE".into()));
        };
        // The address and the key are checked before anyone logs in: a wrong key is said at once.
        api::preflight(cfg)?;
        let senders = self.setup()?;
        let room = all.room.clone().unwrap_or_else(|| DEFAULT_ROOM.to_string());
        let registry = self.engine.registry();
        let clients = ApiClients::connect(cfg, &room, self.cfg.payload, registry, self.engine.clock(), FOREIGN_TOKENS)?;
        self.api = Some(clients);
        let rate = self.cfg.rate.unwrap_or(DEFAULT_RATE);
        report.senders = senders;
        report.rate = rate;
        self.paced_api(rate, self.cfg.warmup)?;
        let meter = CpuMeter::start(self.cfg.pid);
        self.engine.begin_measure();
        self.with_api(ApiClients::begin_measure);
        self.paced_api(rate, self.cfg.duration)?;
        self.engine.end_measure();
        self.with_api(ApiClients::end_measure);
        let shares = meter.shares();
        let secs = meter.wall.elapsed().as_secs_f64().max(1e-9);
        self.drain()?;
        self.with_api(ApiClients::stop_latency);
        let Some(clients) = self.api.as_ref() else { return Ok(()) };
        let c = clients.counters().clone();
        let answer_latency = Latency::from_histogram(clients.answer_histogram());
        let offered = c.window_sent * self.cfg.clients as u64;
        self.window_into(report, offered, secs, shares);
        let requests_per_s = c.window_answered as f64 / secs;
        report.api = Some(ApiReport {
            verb: cfg.verb.to_string(),
            addr: cfg.host.clone(),
            room,
            api_clients: cfg.clients,
            depth: cfg.depth,
            rate,
            requests: c.sent,
            sent_per_s: c.window_sent as f64 / secs,
            requests_per_s,
            statuses: c.statuses.iter().map(|(status, n)| (status.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            api_errors: c.errors,
            unanswered: c.unanswered,
            first_api_error: c.first_failure.as_ref().map(ToString::to_string),
            recipients: c.recipients,
            stalls: c.stalls,
            connections_lost: c.closed,
            answer_latency,
            server_cpu_s: shares.1.map(|share| share * secs),
            requests_per_server_cpu_s: per_cpu(requests_per_s, shares.1),
            clean: false,
            problems: Vec::new(),
        });
        Ok(())
    }

    /// Applies `f` to the API's connections, when there are any.
    fn with_api(&mut self, f: impl FnOnce(&mut ApiClients)) {
        if let Some(api) = self.api.as_mut() {
            f(api);
        }
    }

    /// Sends API requests at `rate` per second, round robin over the connections, for `dur`; returns the
    /// requests sent. A request due when every pipeline is full waits (a stall) and goes as soon as an answer
    /// makes room: with a rate above what the server answers, the run measures the API at saturation.
    fn paced_api(&mut self, rate: f64, dur: Duration) -> Result<u64, BenchError> {
        let start = Instant::now();
        let mut done: u64 = 0;
        // At most 2 ms worth of requests in one burst.
        let burst = ((rate * 0.002) as u64).max(1);
        loop {
            let elapsed = start.elapsed();
            if elapsed >= dur {
                break;
            }
            let due = ((elapsed.as_secs_f64() * rate) as u64).min(done + burst);
            if let Some(api) = self.api.as_mut() {
                while done < due && api.send() {
                    done += 1;
                }
                api.flush();
            }
            let next = Duration::from_secs_f64((done + 1) as f64 / rate);
            let wait = next.saturating_sub(start.elapsed()).min(Duration::from_millis(1)).min(dur - elapsed);
            self.turn(Some(wait))?;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::api::{ApiConfig, ApiKey, Verb};
    use crate::bench::scenario::Scenario;

    fn cfg() -> BenchConfig {
        let url = "ws://127.0.0.1:1/";
        let target = crate::bench::target::resolve(url, false).unwrap();
        let mut cfg = BenchConfig::new(Scenario::Api, url, target);
        cfg.api = Some(ApiConfig {
            addr: "127.0.0.1:2".parse().unwrap(),
            host: "127.0.0.1:2".into(),
            key: ApiKey::from_bytes(b"0123456789abcdef").unwrap(),
            clients: 4,
            depth: 64,
            verb: Verb::Say,
        });
        cfg
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        assert!(check(&cfg()).is_ok());
        let refused = |change: fn(&mut BenchConfig), what: &str| {
            let mut c = cfg();
            change(&mut c);
            let err = check(&c).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        };
        refused(|c| c.api = None, "--api ADDR");
        refused(|c| c.proto = Proto::Raw, "chat protocol");
        refused(|c| c.senders = Some(2), "--senders");
        refused(|c| c.room_size = Some(10), "one room");
        refused(|c| c.api.as_mut().unwrap().clients = 0, "--api-clients");
        let mut c = cfg();
        c.room_size = Some(100);
        assert!(check(&c).is_ok());
    }

    #[test]
    fn a_run_is_clean_only_when_nothing_went_wrong() {
        let report = Report { clients: 100, connected: 100, ..Report::default() };
        let statuses = BTreeMap::from([("200".to_string(), 10)]);
        let api = ApiReport { statuses, ..ApiReport::default() };
        assert!(problems(&report, &api).is_empty());
        let bad = Report { lost: 3, duplicated: 1, out_of_order: 2, clients: 100, connected: 99, ..Report::default() };
        let api = ApiReport { api_errors: 4, connections_lost: 1, statuses: BTreeMap::new(), ..api };
        assert_eq!(
            problems(&bad, &api),
            [
                "3 deliveries lost",
                "1 deliveries duplicated",
                "2 deliveries out of order",
                "4 API requests failed",
                "1 API connections lost",
                "1 clients not connected at the end",
                "no API request succeeded",
            ]
        );
    }
}
