//! Cluster nodes of a test: `wschat --cluster` daemons on free loopback ports sharing one redis-server,
//! each waited for until `/healthz` says it joined.

use std::net::SocketAddr;
use std::time::Duration;

use super::probe::eventually;
use super::redis::RedisServer;
use super::{skip_or_fail, text_frame, Daemon, Raw};

/// A redis-server for `test`; `None` (the test skipped, or failed under CI) when it is not installed.
pub fn redis(test: &str) -> Option<RedisServer> {
    redis_with(test, &[])
}

/// As [`redis`], with further arguments of redis-server (`--maxmemory 3mb`).
pub fn redis_with(test: &str, extra: &[&str]) -> Option<RedisServer> {
    let r = RedisServer::start_with(extra);
    if r.is_none() {
        skip_or_fail(test, "redis-server (Debian package redis-server)");
    }
    r
}

/// Sends `v` as one text frame.
pub fn send(raw: &mut Raw, v: serde_json::Value) {
    raw.send(&text_frame(&v.to_string()));
}

/// Heartbeat of test nodes: a dead node is reaped within about a second.
pub const HEARTBEAT_MS: &str = "200";

/// Starts a node of `redis`'s cluster with `args` (the heartbeat [`HEARTBEAT_MS`] unless they name one)
/// and waits until it joined.
pub fn node(redis: &RedisServer, args: &[&str]) -> Daemon {
    node_at(&redis.url(), args)
}

/// As [`node`], for the cluster at `url` (`redis+sentinel://…`).
pub fn node_at(url: &str, args: &[&str]) -> Daemon {
    let mut all = vec!["--cluster", url];
    if !args.contains(&"--cluster-heartbeat-ms") {
        all.extend_from_slice(&["--cluster-heartbeat-ms", HEARTBEAT_MS]);
    }
    all.extend_from_slice(args);
    let d = Daemon::start(&all);
    assert!(eventually(Duration::from_secs(15), || health(d.http).0 == 200), "node did not join: {:?}", health(d.http));
    d
}

/// `/healthz`: status and body.
pub fn health(http: SocketAddr) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(http) else { return (0, String::new()) };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Waits until every node has published and delivered everything (nothing buffered, counters still).
pub fn settle(nodes: &[&Daemon]) {
    let snapshot = || -> Vec<(u64, u64, u64)> {
        nodes
            .iter()
            .map(|d| {
                let m = super::probe::metrics(d.http);
                let g = |n| super::probe::metric_in(&m, n);
                (
                    g("wschat_cluster_buffered_bytes"),
                    g("wschat_cluster_published_total"),
                    g("wschat_cluster_received_total"),
                )
            })
            .collect()
    };
    let mut last = snapshot();
    let settled = eventually(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(60));
        let now = snapshot();
        let quiet = now == last && now.iter().all(|(buffered, _, _)| *buffered == 0);
        last = now;
        quiet
    });
    assert!(settled, "the cluster did not settle: {last:?}");
}
