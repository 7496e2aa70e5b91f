//! `Run`, the state of one run, and the steps every scenario shares: connecting and logging in everyone,
//! paced sending, draining, and filling in the report's latency and totals. Nothing here assumes one server:
//! the engine spreads the clients over the targets, a client knows the other members of its room by their
//! login names whichever node they are on, and the audit knows senders by the stamp in their messages.

use std::time::{Duration, Instant};

use super::cpu::{per_cpu, CLIENT_LIMIT_SHARE};
use super::{BenchConfig, BenchError, Scenario};
use crate::bench::api::ApiClients;
use crate::bench::content::client_name;
use crate::bench::engine::{Engine, Proto};
use crate::bench::report::{Latency, Report};

/// One run of a scenario: its settings and its engine.
pub(super) struct Run<'a> {
    pub(super) cfg: &'a BenchConfig,
    pub(super) engine: Engine,
    /// Clients that had not seen every other member of their room when the setup's wait ended.
    pub(super) unsettled: usize,
    /// Each client's login token (`--token-key`), signed before any clock or CPU meter starts: the server's
    /// verification is measured, not the bench's signing.
    pub(super) tokens: Vec<String>,
    /// Api: the connections to the server API, driven by the engine's turns ([`Run::turn`]).
    pub(super) api: Option<ApiClients>,
}

/// One token per client of `cfg` (none without `--token-key`), its user_id the client's login name.
pub(super) fn mint_tokens(cfg: &BenchConfig) -> Vec<String> {
    let Some(key) = &cfg.token_key else { return Vec::new() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (0..cfg.clients).map(|i| key.mint(&client_name(i), now)).collect()
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
    pub(super) fn connect_all(&mut self, deadline: Instant) -> Result<Duration, BenchError> {
        let wanted = self.cfg.clients;
        let start = Instant::now();
        let rooms = self.room_size();
        let single_room = rooms >= wanted;
        let named = self.room_name();
        while self.engine.ready() < wanted && Instant::now() < deadline {
            let settled = self.engine.ready() + self.engine.closed();
            if settled >= wanted && self.engine.len() >= wanted {
                break;
            }
            while self.engine.len() < wanted && self.engine.len() - settled < self.cfg.concurrency {
                let i = self.engine.len();
                let room = if single_room { named.clone() } else { Some(format!("r{}", i / rooms)) };
                self.engine.open(&client_name(i), room.as_deref(), self.tokens.get(i).map(String::as_str))?;
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

    /// Connects and logs in everyone, then (chat) waits until every client has seen every other member of
    /// its room, in its user list or a login broadcast: then every server (every node of a cluster, where a
    /// login on one node reaches the others a little later) relays to the whole room, and the storm of login
    /// broadcasts is over, so it does not mix with the measurement. The wait ends after 10 s or at the setup
    /// deadline all the same; the clients still missing someone are reported.
    pub(super) fn setup(&mut self) -> Result<usize, BenchError> {
        let deadline = Instant::now() + self.cfg.setup_timeout;
        if self.cfg.proto == Proto::Chat {
            self.engine.track_members(self.cfg.clients, self.room_size());
        }
        self.connect_all(deadline)?;
        if self.engine.ready() < self.cfg.clients {
            return Err(self.setup_error());
        }
        if self.cfg.proto == Proto::Chat {
            let settle = Instant::now() + Duration::from_secs(10);
            while self.engine.members_settled() < self.cfg.clients && Instant::now() < settle.min(deadline) {
                self.engine.turn(Some(Duration::from_millis(5)))?;
            }
            self.unsettled = self.engine.stop_tracking_members();
        }
        // The api scenario's senders are its API connections: client i's messages carry sender i.
        let senders = match &self.cfg.api {
            Some(api) if self.cfg.scenario == Scenario::Api => api.clients,
            _ => self.cfg.senders.unwrap_or(self.cfg.clients),
        }
        .max(1);
        self.engine.start_audit(senders);
        Ok(senders)
    }

    /// Sends at `rate` messages per second, round robin over the senders, for `dur`; returns messages sent.
    pub(super) fn paced(
        &mut self,
        senders: usize,
        rate: f64,
        dur: Duration,
        rr: &mut usize,
    ) -> Result<u64, BenchError> {
        self.paced_with(senders, rate, dur, rr, |_, _| {})
    }

    /// [`Run::paced`], calling `between(engine, elapsed)` at every step, before the engine's turn.
    pub(super) fn paced_with(
        &mut self,
        senders: usize,
        rate: f64,
        dur: Duration,
        rr: &mut usize,
        mut between: impl FnMut(&mut Engine, Duration),
    ) -> Result<u64, BenchError> {
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
            between(&mut self.engine, elapsed);
            let next = Duration::from_secs_f64((done + 1) as f64 / rate);
            let wait = next.saturating_sub(start.elapsed()).min(Duration::from_millis(1)).min(dur - elapsed.min(dur));
            self.engine.turn(Some(wait))?;
        }
        Ok(done)
    }

    /// Receivers of each message of `sender`: every client (raw), or every member of its room (chat), on
    /// whatever target.
    fn receivers_of(&self, sender: usize) -> u64 {
        let clients = self.cfg.clients;
        if self.cfg.proto == Proto::Raw {
            return clients as u64;
        }
        let room = self.room_size().min(clients);
        let start = sender / room * room;
        room.min(clients - start) as u64
    }

    /// Deliveries expected so far: every message sent to every member of its sender's room, and every API
    /// request answered 200 to every client (all in the room).
    pub(super) fn expected(&self) -> u64 {
        let sent = self.engine.sent_per_sender().iter().enumerate();
        let api = self.api.as_ref().map_or(0, |a| a.counters().ok * self.cfg.clients as u64);
        sent.map(|(s, &n)| u64::from(n) * self.receivers_of(s)).sum::<u64>() + api
    }

    /// The room of a run with one room, as its logins name it (`None`: the server's default).
    fn room_name(&self) -> Option<String> {
        match (&self.cfg.room, self.cfg.scenario) {
            (Some(room), _) => Some(room.clone()),
            (None, Scenario::Api) => Some(super::api::DEFAULT_ROOM.to_string()),
            (None, _) => None,
        }
    }

    /// One turn of the engine, the API's connections' events handled in it.
    pub(super) fn turn(&mut self, timeout: Option<Duration>) -> Result<(), BenchError> {
        match &mut self.api {
            Some(api) => self.engine.turn_with(timeout, |event| api.on_event(event))?,
            None => self.engine.turn(timeout)?,
        }
        Ok(())
    }

    /// Distinct deliveries and API answers so far: what a drain waits on.
    fn progress(&self) -> (u64, u64) {
        (self.engine.audit().totals().unique, self.api.as_ref().map_or(0, |a| a.counters().answered))
    }

    /// Keeps receiving until every expected delivery (and every API answer) arrived, or nothing arrived for
    /// the drain timeout, or ten drain timeouts passed in all (a server far behind may take a while to catch
    /// up; the next step must not start with its backlog).
    pub(super) fn drain(&mut self) -> Result<(), BenchError> {
        let start = Instant::now();
        let mut last = self.progress();
        let mut last_progress = start;
        while last.0 < self.expected() || self.api.as_ref().is_some_and(|a| a.in_flight() > 0) {
            let now = Instant::now();
            if now - last_progress > self.cfg.drain_timeout || now - start > self.cfg.drain_timeout * 10 {
                break;
            }
            if self.engine.ready() + self.engine.closed() < self.cfg.clients || self.engine.ready() == 0 {
                break;
            }
            self.turn(Some(Duration::from_millis(2)))?;
            let now = self.progress();
            if now != last {
                last = now;
                last_progress = Instant::now();
            }
        }
        Ok(())
    }

    /// A fixed-rate run's measured window, once drained, into `report`: deliveries and offered deliveries over
    /// its `secs`, the CPU shares of its `meter`, the delivery latency (its recording stops here).
    pub(super) fn window_into(
        &mut self,
        report: &mut Report,
        offered: u64,
        secs: f64,
        (client, server): (f64, Option<f64>),
    ) {
        self.engine.stop_latency();
        report.deliveries_per_s = self.engine.counters().window_deliveries as f64 / secs;
        report.offered_deliveries_per_s = offered as f64 / secs;
        report.client_cpu = client;
        report.server_cpu = server;
        report.deliveries_per_server_cpu_s = per_cpu(report.deliveries_per_s, server);
        report.client_limited = client >= CLIENT_LIMIT_SHARE;
        self.latency_into(report, Latency::from_histogram(self.engine.histogram()));
    }

    pub(super) fn latency_into(&self, report: &mut Report, l: Latency) {
        report.p50_us = l.p50_us;
        report.p99_us = l.p99_us;
        report.p999_us = l.p999_us;
        report.max_us = l.max_us;
        report.mean_us = l.mean_us;
        report.latency_samples = l.samples;
    }

    /// Fills in the totals every scenario reports.
    pub(super) fn finish(&self, report: &mut Report) {
        let c = self.engine.counters();
        let totals = self.engine.audit().totals();
        report.connected = self.engine.ready();
        report.failed = c.closed as usize;
        report.sent = self.engine.sent() + self.api.as_ref().map_or(0, |a| a.counters().sent);
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
        report.unsettled = self.unsettled;
        report.send_stalls = c.send_stalls;
        report.bytes_in = c.bytes_in;
        report.reads = c.reads;
        report.writes = c.writes;
        report.tls = c.tls_session.clone();
    }
}
