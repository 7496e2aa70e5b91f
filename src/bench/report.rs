//! The result of a bench run: one flat record with the keys the contract names (for `--json`), the steps of
//! a saturate run, and the human table printed by default.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Number of samples.
    pub samples: u64,
}

impl Latency {
    /// Percentiles of a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
            samples: h.len(),
        }
    }
}

/// One rate step of a saturate run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Step {
    /// Offered messages per second (all senders together).
    pub rate: f64,
    /// Offered deliveries per second: messages actually sent times receivers, over the step's time.
    pub offered_deliveries_per_s: f64,
    /// Deliveries received per second during the step.
    pub deliveries_per_s: f64,
    /// Messages sent in the step.
    pub sent: u64,
    /// Deliveries still missing when the step's drain ended.
    pub lost: u64,
    /// Latency of the step's messages.
    pub latency: Latency,
    /// The bench's own CPU share during the step (1.0 = one core).
    pub client_cpu: f64,
    /// The server's CPU share during the step, when its pid is known.
    pub server_cpu: Option<f64>,
    /// Whether the step was sustained.
    pub ok: bool,
    /// Why not, when it was not.
    pub reason: String,
}

/// One target URL of a run and how many of its clients connect to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UrlShare {
    /// The URL as given.
    pub url: String,
    /// Clients spread to it.
    pub clients: usize,
}

/// What a churn run adds: its cuts, the resumes, and whether anyone saw a client leave.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChurnReport {
    /// Cuts per second asked for.
    pub cuts_per_s_offered: f64,
    /// Share of cuts asked to be resets (the others FINs).
    pub reset_share: f64,
    /// How long a cut client stayed away before reconnecting, ms.
    pub away_ms: f64,
    /// Connections cut in the measured window.
    pub cuts: u64,
    /// Of those, with a reset.
    pub cuts_reset: u64,
    /// Of those, with a FIN.
    pub cuts_fin: u64,
    /// Cuts due that found no ready client to cut.
    pub cuts_skipped: u64,
    /// Resumes completed (`resumed` received).
    pub resumes: u64,
    /// Resumes completed per second of the measured window.
    pub resumes_per_s: f64,
    /// From the cut (or, after a pause away, the reconnect) to `resumed`.
    pub resume_latency: Latency,
    /// Resumes that said `recovered: false`.
    pub not_recovered: u64,
    /// Says the resumes said they replayed (`missed`, summed).
    pub missed: u64,
    /// Bench messages received in the replays.
    pub replayed: u64,
    /// Of those, says the client had received before its cut.
    pub replay_duplicates: u64,
    /// Resumes the server refused (an error instead of `resumed`).
    pub refused: u64,
    /// Ready connections the server ended (its node killed or shut down), resumed like cuts.
    pub dropped: u64,
    /// Reconnects that failed (a dead node refusing) and were tried again at the next URL.
    pub retried: u64,
    /// Clients not ready again when the run ended.
    pub unresumed: usize,
    /// `logout` messages any client received in the whole run (must be 0: nobody left).
    pub logouts_seen: u64,
    /// `login` messages any client received from the measured window on (must be 0: nobody came).
    pub logins_seen: u64,
    /// True when nothing was lost, duplicated or reordered, nobody was seen leaving or coming, and every
    /// client came back.
    pub clean: bool,
    /// What was not, in words.
    pub problems: Vec<String>,
}

/// What an api run adds: the API's requests, their answers and the verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApiReport {
    /// The call: `say` or `send`.
    pub verb: String,
    /// The API's address.
    pub addr: String,
    /// The room the clients are in and the requests go to.
    pub room: String,
    /// Keep-alive connections to the API.
    pub api_clients: usize,
    /// Most requests unanswered on one connection.
    pub depth: usize,
    /// Requests per second offered, all connections together.
    pub rate: f64,
    /// Requests sent in the whole run (warm-up included).
    pub requests: u64,
    /// Requests sent per second in the measured window.
    pub sent_per_s: f64,
    /// Answers read per second in the measured window: the API's throughput.
    pub requests_per_s: f64,
    /// Answers by status, over the whole run.
    pub statuses: BTreeMap<String, u64>,
    /// Requests that did not succeed: answers other than 200, and requests a lost connection left unanswered.
    pub api_errors: u64,
    /// Of those, requests never answered.
    pub unanswered: u64,
    /// The first of them, in words.
    pub first_api_error: Option<String>,
    /// Recipients the 200 answers named (`users` of a say, `queued` of a send), summed.
    pub recipients: u64,
    /// Times a request fell due with every connection's pipeline full.
    pub stalls: u64,
    /// API connections lost (closed by the server, or failed).
    pub connections_lost: usize,
    /// From a request's send to its answer (the delivery latency is the report's `p50_us`…).
    pub answer_latency: Latency,
    /// CPU seconds the server used in the measured window (with `--pid`).
    pub server_cpu_s: Option<f64>,
    /// Requests answered per second of server CPU time (with `--pid`).
    pub requests_per_server_cpu_s: Option<f64>,
    /// True when every request succeeded and every client got every message once, in order.
    pub clean: bool,
    /// What was not, in words.
    pub problems: Vec<String>,
}

/// Everything a run reports. Keys follow CONTRACT.md; fields a scenario does not measure stay zero or null.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// `fanout`, `saturate` or `connect`.
    pub scenario: String,
    /// `chat` or `raw`.
    pub proto: String,
    /// Every client logged in with `"resume":true` (churn, or `--resume`).
    pub resume: bool,
    /// The algorithm of the tokens the clients logged in with (`--token-key`), if any.
    pub token_alg: Option<String>,
    /// The (first) target URL.
    pub url: String,
    /// Every target URL, in the order given, with the clients spread to it (client i to URL i mod n).
    pub urls: Vec<UrlShare>,
    /// `tcp` (ws://) or `tls` (wss://).
    pub transport: String,
    /// wss://: the first session established, e.g. `TLS1.3 TLS13_AES_128_GCM_SHA256, ALPN http/1.1`.
    pub tls: Option<String>,
    /// Connections asked for.
    pub clients: usize,
    /// Connections that completed the handshake (and login).
    pub connected: usize,
    /// Connections that failed or were closed by the server.
    pub failed: usize,
    /// Sending connections.
    pub senders: usize,
    /// Content bytes per message.
    pub payload: usize,
    /// Offered messages per second (saturate: of the best sustained step).
    pub rate: f64,
    /// Measured seconds (saturate: per step).
    pub duration_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Messages sent in the whole run.
    pub sent: u64,
    /// Deliveries expected: every message to every receiver.
    pub expected: u64,
    /// Distinct deliveries received.
    pub delivered: u64,
    /// Expected deliveries never received.
    pub lost: u64,
    /// Deliveries received more than once.
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same sender.
    pub out_of_order: u64,
    /// Deliveries per second in the measured window (saturate: the highest sustained).
    pub deliveries_per_s: f64,
    /// Offered deliveries per second in the measured window.
    pub offered_deliveries_per_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, µs.
    pub p999_us: f64,
    /// Largest latency, µs.
    pub max_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Latency samples.
    pub latency_samples: u64,
    /// The bench's own CPU share over the measured window (1.0 = one core busy).
    pub client_cpu: f64,
    /// The server's CPU share over the measured window (with `--pid`).
    pub server_cpu: Option<f64>,
    /// Deliveries per second of server CPU time (with `--pid`): the server's capacity on one core, less
    /// sensitive than `deliveries_per_s` to a client that is the limit or to other load on the machine.
    pub deliveries_per_server_cpu_s: Option<f64>,
    /// Handshakes per second of server CPU time (connect with `--pid`).
    pub handshakes_per_server_cpu_s: Option<f64>,
    /// True when the bench itself was near a full core: the figures then bound the client, not the server.
    pub client_limited: bool,
    /// Handshakes (and logins) per second (connect).
    pub handshakes_per_s: Option<f64>,
    /// TLS handshakes completed per second (connect over wss://; each also counts in `handshakes_per_s`).
    pub tls_handshakes_per_s: Option<f64>,
    /// Server RSS growth per connection, bytes (connect with `--pid`).
    pub rss_per_conn_bytes: Option<f64>,
    /// Server RSS before connecting (connect with `--pid`).
    pub rss_before_bytes: Option<u64>,
    /// Server RSS with every connection idle (connect with `--pid`).
    pub rss_after_bytes: Option<u64>,
    /// Chat `error` messages received.
    pub server_errors: u64,
    /// The first problem seen: a chat error or a connection failure.
    pub first_error: Option<String>,
    /// Clients that had not seen every other member of their room in their user list or a login broadcast
    /// when the setup's wait ended (chat fanout and saturate): their servers may not relay them everything.
    pub unsettled: usize,
    /// Sends skipped because a connection's output was backed up.
    pub send_stalls: u64,
    /// Bytes read from the server.
    pub bytes_in: u64,
    /// Read calls that returned data.
    pub reads: u64,
    /// Write calls that wrote data.
    pub writes: u64,
    /// The saturate run's steps.
    pub steps: Vec<Step>,
    /// The churn run's cuts and resumes.
    pub churn: Option<ChurnReport>,
    /// The api run's requests and answers.
    pub api: Option<ApiReport>,
}

/// A number in engineering style: 1234567 → "1.23 M".
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

impl Report {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let against = match self.urls.len() {
            0 | 1 => self.url.clone(),
            n => format!("{n} URLs"),
        };
        let resume = if self.resume { ", every client opted in to resume" } else { "" };
        let token = self.token_alg.as_ref().map(|a| format!(", {a} tokens")).unwrap_or_default();
        let _ =
            writeln!(s, "wschat-bench {} ({} protocol{resume}{token}) against {against}", self.scenario, self.proto);
        if !self.urls.is_empty() {
            let shares: Vec<String> = self.urls.iter().map(|u| format!("{} ({} clients)", u.url, u.clients)).collect();
            let _ = writeln!(s, "  urls           {}", shares.join(", "));
        }
        if self.transport == "tls" {
            let session = self.tls.as_deref().unwrap_or("no session established");
            let _ = writeln!(s, "  tls            {session}");
        }
        let _ = writeln!(
            s,
            "  clients        {} asked, {} connected, {} failed",
            self.clients, self.connected, self.failed
        );
        if self.scenario != "connect" {
            let _ = writeln!(
                s,
                "  load           {} senders, {} B content, {} msg/s offered, {:.1} s (+{:.1} s warm-up)",
                self.senders,
                self.payload,
                si(self.rate),
                self.duration_s,
                self.warmup_s
            );
            let _ = writeln!(
                s,
                "  deliveries     {}/s (offered {}/s)",
                si(self.deliveries_per_s),
                si(self.offered_deliveries_per_s)
            );
            let _ = writeln!(
                s,
                "  latency µs     p50 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  ({} samples)",
                self.p50_us, self.p99_us, self.p999_us, self.max_us, self.latency_samples
            );
            let _ = writeln!(
                s,
                "  audit          sent {} expected {} delivered {} lost {} duplicated {} out-of-order {}",
                self.sent, self.expected, self.delivered, self.lost, self.duplicated, self.out_of_order
            );
        }
        if let Some(h) = self.handshakes_per_s {
            let _ = writeln!(s, "  handshakes     {}/s", si(h));
        }
        if let Some(h) = self.tls_handshakes_per_s {
            let _ = writeln!(s, "  tls handshakes {}/s (full handshakes, no resumption)", si(h));
        }
        if let Some(r) = self.rss_per_conn_bytes {
            let _ = writeln!(
                s,
                "  server RSS     {:.0} B per connection ({} → {} bytes)",
                r,
                self.rss_before_bytes.unwrap_or(0),
                self.rss_after_bytes.unwrap_or(0)
            );
        }
        if let Some(d) = self.deliveries_per_server_cpu_s {
            let _ = writeln!(s, "  per server CPU {} deliveries per CPU-second", si(d));
        }
        if let Some(h) = self.handshakes_per_server_cpu_s {
            let _ = writeln!(s, "  per server CPU {} handshakes per CPU-second", si(h));
        }
        let server = self.server_cpu.map(|c| format!(", server {:.0}%", c * 100.0)).unwrap_or_default();
        let limited = if self.client_limited { "  — the CLIENT is the limit" } else { "" };
        let _ = writeln!(s, "  cpu            client {:.0}%{server}{limited}", self.client_cpu * 100.0);
        if self.unsettled > 0 {
            let _ = writeln!(
                s,
                "  unsettled      {} clients had not seen every other member of their room when sending began",
                self.unsettled
            );
        }
        if self.send_stalls > 0 {
            let _ = writeln!(s, "  send stalls    {}", self.send_stalls);
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(s, "  first error    {e} ({} chat errors)", self.server_errors);
        }
        if let Some(c) = &self.churn {
            c.table(&mut s);
        }
        if let Some(a) = &self.api {
            a.table(&mut s);
        }
        if !self.steps.is_empty() {
            let _ = writeln!(s, "  steps:    msg/s   offered/s  delivered/s   p99 µs  client  server  verdict");
            for st in &self.steps {
                let server = st.server_cpu.map(|c| format!("{:5.0}%", c * 100.0)).unwrap_or_else(|| "     -".into());
                let verdict = if st.ok { "ok".to_string() } else { format!("no: {}", st.reason) };
                let _ = writeln!(
                    s,
                    "        {:>9} {:>11} {:>12} {:>8.0}  {:5.0}%  {server}  {verdict}",
                    si(st.rate),
                    si(st.offered_deliveries_per_s),
                    si(st.deliveries_per_s),
                    st.latency.p99_us,
                    st.client_cpu * 100.0
                );
            }
        }
        s
    }
}

impl ApiReport {
    /// Its lines of the human table.
    fn table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  api            {} to room {:?} at {}, {} keep-alive connections (pipeline {})",
            self.verb, self.room, self.addr, self.api_clients, self.depth
        );
        let statuses: Vec<String> = self.statuses.iter().map(|(k, v)| format!("{k}×{v}")).collect();
        let _ = writeln!(
            s,
            "  requests       {}/s answered ({}/s sent, {}/s offered), {} in all; statuses {}",
            si(self.requests_per_s),
            si(self.sent_per_s),
            si(self.rate),
            self.requests,
            if statuses.is_empty() { "none".to_string() } else { statuses.join(" ") }
        );
        let _ = writeln!(
            s,
            "  api errors     {} ({} unanswered, {} connections lost), {} stalls",
            self.api_errors, self.unanswered, self.connections_lost, self.stalls
        );
        if let Some(e) = &self.first_api_error {
            let _ = writeln!(s, "  first api err  {e}");
        }
        let l = &self.answer_latency;
        let _ = writeln!(
            s,
            "  answer µs      p50 {:.0}  p99 {:.0}  max {:.0}  ({} samples; delivery latency above is from the same send)",
            l.p50_us, l.p99_us, l.max_us, l.samples
        );
        if let (Some(r), Some(cpu)) = (self.requests_per_server_cpu_s, self.server_cpu_s) {
            let _ = writeln!(s, "  per server CPU {} API requests per CPU-second ({cpu:.2} CPU-seconds)", si(r));
        }
        let verdict = if self.clean { "clean".to_string() } else { format!("NOT CLEAN: {}", self.problems.join(", ")) };
        let _ = writeln!(s, "  verdict        {verdict}");
    }
}

impl ChurnReport {
    /// Its lines of the human table.
    fn table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  churn          {} cuts ({} resets, {} FINs; {}/s asked, {} skipped), away {:.0} ms",
            self.cuts,
            self.cuts_reset,
            self.cuts_fin,
            si(self.cuts_per_s_offered),
            self.cuts_skipped,
            self.away_ms
        );
        if self.dropped + self.retried > 0 {
            let _ = writeln!(
                s,
                "  dropped        {} connections ended by the server, {} reconnects tried again",
                self.dropped, self.retried
            );
        }
        let _ = writeln!(
            s,
            "  resumes        {} ({}/s), {} not recovered, {} refused, {} not back; {} missed, {} replayed, {} again",
            self.resumes,
            si(self.resumes_per_s),
            self.not_recovered,
            self.refused,
            self.unresumed,
            self.missed,
            self.replayed,
            self.replay_duplicates
        );
        let l = &self.resume_latency;
        let _ = writeln!(
            s,
            "  resume µs      p50 {:.0}  p99 {:.0}  max {:.0}  ({} samples)",
            l.p50_us, l.p99_us, l.max_us, l.samples
        );
        let _ = writeln!(s, "  presence       {} logouts seen, {} logins seen", self.logouts_seen, self.logins_seen);
        let verdict = if self.clean { "clean".to_string() } else { format!("NOT CLEAN: {}", self.problems.join(", ")) };
        let _ = writeln!(s, "  verdict        {verdict}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_contract_keys() {
        let r = Report { scenario: "fanout".into(), clients: 3, ..Default::default() };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for key in [
            "scenario",
            "clients",
            "sent",
            "expected",
            "delivered",
            "lost",
            "duplicated",
            "out_of_order",
            "deliveries_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "client_cpu",
            "handshakes_per_s",
            "rss_per_conn_bytes",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["clients"], 3);
        let r = Report {
            urls: vec![UrlShare { url: "ws://a/".into(), clients: 2 }, UrlShare { url: "ws://b/".into(), clients: 1 }],
            ..r
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["urls"][1]["url"], "ws://b/");
        assert_eq!(v["urls"][0]["clients"], 2);
    }

    #[test]
    fn table_names_every_url_and_its_clients_on_one_line() {
        let one = Report {
            url: "ws://127.0.0.1:7272/".into(),
            urls: vec![UrlShare { url: "ws://127.0.0.1:7272/".into(), clients: 100 }],
            ..Default::default()
        };
        let t = one.to_table();
        assert!(t.starts_with("wschat-bench  ( protocol) against ws://127.0.0.1:7272/\n"), "{t}");
        assert!(t.contains("\n  urls           ws://127.0.0.1:7272/ (100 clients)\n"), "{t}");
        let two = Report {
            url: "ws://127.0.0.1:1/".into(),
            urls: vec![
                UrlShare { url: "ws://127.0.0.1:1/".into(), clients: 3 },
                UrlShare { url: "ws://127.0.0.1:2/".into(), clients: 2 },
            ],
            unsettled: 4,
            ..Default::default()
        };
        let t = two.to_table();
        assert!(t.contains("against 2 URLs\n"), "{t}");
        assert!(t.contains("\n  urls           ws://127.0.0.1:1/ (3 clients), ws://127.0.0.1:2/ (2 clients)\n"), "{t}");
        assert!(t.contains("4 clients had not seen every other member"), "{t}");
    }

    #[test]
    fn a_churn_run_reports_its_resumes_and_verdict() {
        let churn = ChurnReport {
            cuts: 12,
            cuts_reset: 5,
            cuts_fin: 7,
            resumes: 12,
            resumes_per_s: 100.0,
            logouts_seen: 1,
            problems: vec!["1 logouts seen".into()],
            ..ChurnReport::default()
        };
        let r = Report { scenario: "churn".into(), churn: Some(churn), ..Report::default() };
        let t = r.to_table();
        assert!(t.contains("\n  churn          12 cuts (5 resets, 7 FINs;"), "{t}");
        assert!(t.contains("\n  resumes        12 (100/s)"), "{t}");
        assert!(t.contains("\n  presence       1 logouts seen, 0 logins seen\n"), "{t}");
        assert!(t.contains("\n  verdict        NOT CLEAN: 1 logouts seen\n"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["churn"]["resumes"], 12);
        assert_eq!(v["churn"]["clean"], false);
        assert!(v["churn"]["resume_latency"]["p99_us"].is_number());
        let none: serde_json::Value = serde_json::from_str(&Report::default().to_json()).unwrap();
        assert!(none["churn"].is_null());
        assert!(!Report::default().to_table().contains("verdict"));
    }

    #[test]
    fn an_api_run_reports_its_requests_and_verdict() {
        let api = ApiReport {
            verb: "say".into(),
            addr: "127.0.0.1:8080".into(),
            room: "1".into(),
            api_clients: 4,
            depth: 64,
            rate: 10_000.0,
            requests: 60_000,
            requests_per_s: 9_990.0,
            statuses: BTreeMap::from([("200".to_string(), 59_999), ("503".to_string(), 1)]),
            api_errors: 1,
            first_api_error: Some("answered 503: busy".into()),
            requests_per_server_cpu_s: Some(20_000.0),
            server_cpu_s: Some(2.5),
            problems: vec!["1 API requests failed".into()],
            ..ApiReport::default()
        };
        let r = Report { scenario: "api".into(), api: Some(api), ..Report::default() };
        let t = r.to_table();
        assert!(
            t.contains(
                "\n  api            say to room \"1\" at 127.0.0.1:8080, 4 keep-alive connections (pipeline 64)\n"
            ),
            "{t}"
        );
        assert!(t.contains("\n  requests       10.0 k/s answered (0/s sent, 10.0 k/s offered), 60000 in all; statuses 200×59999 503×1\n"), "{t}");
        assert!(t.contains("\n  first api err  answered 503: busy\n"), "{t}");
        assert!(t.contains("\n  per server CPU 20.0 k API requests per CPU-second (2.50 CPU-seconds)\n"), "{t}");
        assert!(t.contains("\n  verdict        NOT CLEAN: 1 API requests failed\n"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!((v["api"]["requests"].as_u64(), v["api"]["api_errors"].as_u64()), (Some(60_000), Some(1)));
        assert_eq!(v["api"]["statuses"]["503"], 1);
        assert!(v["api"]["answer_latency"]["p99_us"].is_number());
        assert!(serde_json::from_str::<serde_json::Value>(&Report::default().to_json()).unwrap()["api"].is_null());
    }

    #[test]
    fn latency_from_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        assert_eq!(Latency::from_histogram(&h), Latency::default());
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert!((l.p50_us - 500.0).abs() < 2.0, "{l:?}");
        assert!((l.p99_us - 990.0).abs() < 2.0, "{l:?}");
        assert!((l.max_us - 1000.0).abs() < 2.0, "{l:?}");
        assert_eq!(l.samples, 1000);
    }

    #[test]
    fn table_mentions_the_essentials() {
        let r = Report {
            scenario: "saturate".into(),
            client_limited: true,
            steps: vec![Step { rate: 1000.0, ok: true, ..Default::default() }],
            first_error: Some("boom".into()),
            ..Default::default()
        };
        let t = r.to_table();
        assert!(t.contains("CLIENT is the limit"));
        assert!(t.contains("boom"));
        assert!(t.contains("1.0 k"));
        assert!(!t.contains("tls"), "{t}");
        let tls = Report {
            scenario: "connect".into(),
            transport: "tls".into(),
            tls: Some("TLS1.3 TLS13_AES_128_GCM_SHA256, ALPN http/1.1".into()),
            handshakes_per_s: Some(2000.0),
            tls_handshakes_per_s: Some(2100.0),
            ..Default::default()
        };
        let t = tls.to_table();
        assert!(t.contains("\n  tls            TLS1.3 TLS13_AES_128_GCM_SHA256, ALPN http/1.1\n"), "{t}");
        assert!(t.contains("\n  tls handshakes 2.1 k/s"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&tls.to_json()).unwrap();
        assert_eq!((v["transport"].as_str(), v["tls_handshakes_per_s"].as_f64()), (Some("tls"), Some(2100.0)));
        assert_eq!(si(4_800_000.0), "4.80 M");
        assert_eq!(si(12.0), "12");
    }
}
