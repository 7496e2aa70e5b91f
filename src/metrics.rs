//! The daemon's counters and gauges, and their Prometheus text exposition.

use std::fmt::Write;

/// Everything /metrics reports. Plain integers: the reactor is single-threaded.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Open WebSocket connections (handshake done).
    pub connections: u64,
    /// Logged-in users (filled in by the application when rendering).
    pub users: u64,
    /// Data messages received from clients.
    pub messages_in_total: u64,
    /// Messages queued to clients (one per recipient and message, however many share a batch).
    pub deliveries_total: u64,
    /// Bytes written to WebSocket clients.
    pub bytes_out_total: u64,
    /// Times a connection's chat output waited for a `--coalesce-us` window.
    pub coalesce_held_total: u64,
    /// Clients disconnected for exceeding the send-buffer limit.
    pub slow_consumer_disconnects_total: u64,
    /// Connections closed for a protocol violation (frames or handshake).
    pub protocol_errors_total: u64,
    /// Handshakes completed.
    pub handshakes_total: u64,
    /// WebSocket handshakes refused (bad request, origin, capacity; at accept included). Web-port refusals
    /// are counted apart.
    pub handshake_rejections_total: u64,
    /// Connections accepted on both listeners.
    pub accepted_total: u64,
    /// HTTP requests answered.
    pub http_requests_total: u64,
    /// Unsent bytes queued for all clients together (each client's backlog summed).
    pub output_queued_bytes: u64,
    /// Clients cut off because the whole daemon's output passed `--max-output-bytes`.
    pub output_budget_disconnects_total: u64,
    /// Bytes of history held over all rooms (filled in from the hub when rendering).
    pub history_bytes: u64,
    /// History messages dropped to stay within `--history-budget` (filled in from the hub).
    pub history_evicted_total: u64,
    /// Web-port connections refused (port budget or per-address cap).
    pub web_rejections_total: u64,
    /// Messages, pings and logins refused by a rate limit.
    pub rate_limited_total: u64,
    /// Logins refused because the room was full (filled in from the hub).
    pub room_full_total: u64,
    /// Connections closed for a missing, malformed or untrusted PROXY header (`--proxy-protocol`).
    pub proxy_rejections_total: u64,
    /// WebSocket handshakes refused by `--max-connections-per-ip` (429).
    pub per_ip_rejections_total: u64,
    /// TLS figures, when both ports speak TLS (`wschat_tls_*`).
    pub tls: Option<TlsStats>,
    /// Server API figures, with `--api` (`wschat_api_*`).
    pub api: Option<ApiStats>,
    /// The application's own series ([`crate::app::Application::fill_metrics`]), rendered after the
    /// daemon's.
    pub app: Series,
}

impl Metrics {
    /// The Prometheus text format of all metrics.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1536);
        let rows: [(&str, &str, &str, u64); 21] = [
            ("wschat_connections", "gauge", "Open WebSocket connections.", self.connections),
            ("wschat_users", "gauge", "Logged-in chat users.", self.users),
            ("wschat_messages_in_total", "counter", "Data messages received from clients.", self.messages_in_total),
            ("wschat_deliveries_total", "counter", "Messages queued to recipients.", self.deliveries_total),
            ("wschat_bytes_out_total", "counter", "Bytes written to WebSocket clients.", self.bytes_out_total),
            (
                "wschat_coalesce_held_total",
                "counter",
                "Times a connection's chat output waited for the --coalesce-us window.",
                self.coalesce_held_total,
            ),
            (
                "wschat_slow_consumer_disconnects_total",
                "counter",
                "Clients cut off at the send-buffer limit.",
                self.slow_consumer_disconnects_total,
            ),
            (
                "wschat_protocol_errors_total",
                "counter",
                "Connections closed for a protocol violation.",
                self.protocol_errors_total,
            ),
            ("wschat_handshakes_total", "counter", "WebSocket handshakes completed.", self.handshakes_total),
            (
                "wschat_handshake_rejections_total",
                "counter",
                "WebSocket handshakes refused.",
                self.handshake_rejections_total,
            ),
            ("wschat_accepted_total", "counter", "TCP connections accepted.", self.accepted_total),
            ("wschat_http_requests_total", "counter", "HTTP requests answered.", self.http_requests_total),
            ("wschat_output_queued_bytes", "gauge", "Unsent bytes queued for all clients.", self.output_queued_bytes),
            (
                "wschat_output_budget_disconnects_total",
                "counter",
                "Clients cut off because the daemon's output passed --max-output-bytes.",
                self.output_budget_disconnects_total,
            ),
            ("wschat_history_bytes", "gauge", "Bytes of history held over all rooms.", self.history_bytes),
            (
                "wschat_history_evicted_total",
                "counter",
                "History messages dropped to stay within --history-budget.",
                self.history_evicted_total,
            ),
            ("wschat_web_rejections_total", "counter", "Web-port connections refused.", self.web_rejections_total),
            (
                "wschat_rate_limited_total",
                "counter",
                "Messages, pings and logins refused by a rate limit.",
                self.rate_limited_total,
            ),
            ("wschat_room_full_total", "counter", "Logins refused because the room was full.", self.room_full_total),
            (
                "wschat_proxy_rejections_total",
                "counter",
                "Connections closed for a missing, malformed or untrusted PROXY header.",
                self.proxy_rejections_total,
            ),
            (
                "wschat_per_ip_rejections_total",
                "counter",
                "WebSocket connections refused for their address: --max-connections-per-ip, or its share of unfinished handshakes.",
                self.per_ip_rejections_total,
            ),
        ];
        write_rows(&mut out, &rows);
        if let Some(t) = &self.tls {
            t.render(&mut out);
        }
        if let Some(a) = &self.api {
            a.render(&mut out);
        }
        out.push_str(&self.app.text);
        out
    }
}

/// Series an application adds after the daemon's own, named and valued by it: /metrics places them and
/// knows nothing of what they count.
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// Their Prometheus text.
    text: String,
}

impl Series {
    /// Appends each `(name, type, help, value)` row.
    pub fn rows(&mut self, rows: &[(&str, &str, &str, u64)]) {
        write_rows(&mut self.text, rows);
    }

    /// Appends a series of one sample told apart by a label: `name{label="value"} n`.
    pub fn labeled(&mut self, head: (&str, &str, &str), (label, value): (&str, &str), n: u64) {
        self.samples(head, label, &[(value, n)]);
    }

    /// Appends a series of samples told apart by one label: `name{label="value"} n` for each `(value, n)`.
    pub fn samples(&mut self, (name, kind, help): (&str, &str, &str), label: &str, samples: &[(&str, u64)]) {
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (value, n) in samples {
            let _ = writeln!(self.text, "{name}{{{label}=\"{value}\"}} {n}");
        }
    }
}

/// Server API counters (with `--api`).
#[derive(Debug, Default, Clone)]
pub struct ApiStats {
    /// Open API connections.
    pub connections: u64,
    /// Requests answered, by status class: 2xx, 4xx, 5xx.
    pub answered: [u64; 3],
}

impl ApiStats {
    /// Counts one answer of `status`.
    pub fn count(&mut self, status: u16) {
        let class = match status {
            200..=299 => 0,
            400..=499 => 1,
            _ => 2,
        };
        self.answered[class] += 1;
    }

    fn render(&self, out: &mut String) {
        write_rows(out, &[("wschat_api_connections", "gauge", "Open server API connections.", self.connections)]);
        let _ = writeln!(out, "# HELP wschat_api_requests_total Server API requests answered, by status class.");
        let _ = writeln!(out, "# TYPE wschat_api_requests_total counter");
        for (class, n) in ["2xx", "4xx", "5xx"].iter().zip(self.answered) {
            let _ = writeln!(out, "wschat_api_requests_total{{status=\"{class}\"}} {n}");
        }
    }
}

/// TLS counters (with `--tls-cert`).
#[derive(Debug, Default, Clone)]
pub struct TlsStats {
    /// TLS handshakes completed, both ports.
    pub handshakes_total: u64,
    /// Connections given up for a TLS reason, by [`TLS_FAILURE_REASONS`].
    pub failures: [u64; TLS_FAILURE_REASONS.len()],
    /// Certificate reloads (SIGHUP) that took the new pair.
    pub reloads_total: u64,
    /// Certificate reloads that failed (the old pair kept).
    pub reload_failures_total: u64,
}

/// The `reason` labels of `wschat_tls_failures_total`: a plain HTTP request on a TLS port, bytes that are
/// not TLS, a handshake rustls refused, a TLS error after the handshake, a handshake not finished in time.
pub const TLS_FAILURE_REASONS: [&str; 7] =
    ["plain_http", "not_tls", "handshake", "protocol", "timeout", "oversized", "abuse"];

impl TlsStats {
    /// Counts one failure under its reason label (one of [`TLS_FAILURE_REASONS`]).
    pub fn count_failure(&mut self, reason: &str) {
        if let Some(i) = TLS_FAILURE_REASONS.iter().position(|r| *r == reason) {
            self.failures[i] += 1;
        }
    }

    fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, u64); 3] = [
            ("wschat_tls_handshakes_total", "counter", "TLS handshakes completed.", self.handshakes_total),
            (
                "wschat_tls_reloads_total",
                "counter",
                "Certificate reloads (SIGHUP) that took the new certificate and key.",
                self.reloads_total,
            ),
            (
                "wschat_tls_reload_failures_total",
                "counter",
                "Certificate reloads that failed; the certificate in use was kept.",
                self.reload_failures_total,
            ),
        ];
        write_rows(out, &rows);
        out.push_str(
            "# HELP wschat_tls_failures_total Connections closed for a TLS reason.\n\
             # TYPE wschat_tls_failures_total counter\n",
        );
        for (reason, n) in TLS_FAILURE_REASONS.iter().zip(self.failures) {
            let _ = writeln!(out, "wschat_tls_failures_total{{reason=\"{reason}\"}} {n}");
        }
    }
}

/// Appends each `(name, type, help, value)` row in the Prometheus text format.
fn write_rows(out: &mut String, rows: &[(&str, &str, &str, u64)]) {
    for (name, kind, help, value) in rows {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_contract_metric_with_type() {
        let m = Metrics { connections: 3, deliveries_total: 42, ..Default::default() };
        let text = m.render();
        assert!(text.contains("# TYPE wschat_connections gauge\nwschat_connections 3\n"));
        assert!(text.contains("# TYPE wschat_users gauge\n"));
        assert!(text.contains("wschat_deliveries_total 42\n"));
        for counter in [
            "wschat_messages_in_total",
            "wschat_bytes_out_total",
            "wschat_slow_consumer_disconnects_total",
            "wschat_protocol_errors_total",
        ] {
            assert!(text.contains(&format!("# TYPE {counter} counter\n{counter} 0\n")), "{counter}");
        }
        assert!(!text.contains("wschat_cluster"), "a single node has no cluster figures");
        assert!(!text.contains("wschat_tls"), "no TLS figures without TLS");
        let mut tls = TlsStats::default();
        tls.count_failure("plain_http");
        tls.count_failure("timeout");
        let text = Metrics { tls: Some(tls), ..Default::default() }.render();
        assert!(text.contains("\nwschat_tls_failures_total{reason=\"plain_http\"} 1\n"), "{text}");
        assert!(text.contains("\nwschat_tls_failures_total{reason=\"timeout\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE wschat_tls_failures_total counter\nwschat_tls_failures_total{"), "{text}");
    }

    #[test]
    fn an_applications_series_come_last_as_written() {
        let mut m = Metrics { connections: 1, ..Default::default() };
        m.app.rows(&[("app_a_total", "counter", "A.", 2), ("app_b", "gauge", "B.", 3)]);
        m.app.labeled(("app_c", "gauge", "C."), ("id", "x"), 1);
        let text = m.render();
        let app = "# HELP app_a_total A.\n# TYPE app_a_total counter\napp_a_total 2\n\
                   # HELP app_b B.\n# TYPE app_b gauge\napp_b 3\n\
                   # HELP app_c C.\n# TYPE app_c gauge\napp_c{id=\"x\"} 1\n";
        assert!(text.ends_with(app), "{text}");
        assert_eq!(text.matches("app_").count(), app.matches("app_").count());
    }
}
