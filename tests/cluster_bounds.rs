//! What a cluster keeps in Redis, and how fast it gives a dead node up, each against a real redis-server
//! started by the test: the rooms' history bounded over all rooms by `--history-budget` (and a joining node
//! loading no more than its budget), refused writes at `maxmemory` counted and logged once per interval,
//! each node's stream bounded in bytes by `--cluster-stream-bytes`, and the users of a node killed with
//! SIGKILL logged out within 5 s at the default heartbeat.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{health, node, redis, redis_with, send};
use common::probe::{eventually, login, metric, metrics};
use common::redis::RedisServer;
use common::{Daemon, Raw};
use serde_json::json;

const MIB: u64 = 1024 * 1024;

/// The value of metric `name`, if the node has it.
fn metric_opt(http: SocketAddr, name: &str) -> Option<u64> {
    metrics(http).lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok())
}

/// `used_memory` of `INFO memory`.
fn used_memory(redis: &RedisServer) -> u64 {
    let info = redis.cli(&["INFO", "memory"]);
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).expect("used_memory")
}

/// Peak resident memory of a process, in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A node whose log (stderr, at warn level) goes to `log`, waited for until it joined.
fn node_logging(redis: &RedisServer, args: &[&str], log: &std::path::Path) -> Daemon {
    let url = redis.url();
    let mut all = vec!["--cluster", url.as_str()];
    all.extend_from_slice(args);
    let file = std::fs::File::create(log).expect("log file");
    let d = Daemon::start_with(&all, |cmd| {
        cmd.env("RUST_LOG", "warn").stderr(Stdio::from(file));
    });
    assert!(eventually(Duration::from_secs(15), || health(d.http).0 == 200), "node did not join");
    d
}

/// Sends `n` says of `content` (each numbered in front) as `raw`, then reads their echoes.
fn say_many(raw: &mut Raw, n: usize, content: &str) {
    for i in 0..n {
        send(raw, json!({"type":"say","to_uid":"all","content":format!("{i}:{content}")}));
    }
    for i in 0..n {
        let v = raw.read_json();
        assert_eq!(v["type"], "say", "{}", &v.to_string()[..v.to_string().len().min(200)]);
        let got = v["content"].as_str().unwrap_or_default();
        assert!(got.starts_with(&format!("{i}:")), "echo {i} in order");
    }
}

/// The says to all a newcomer in `room` gets as history on `ws`, as their numbers.
fn history(ws: SocketAddr, room: &str) -> Vec<String> {
    let mut raw = Raw::open(ws);
    send(&mut raw, json!({"type":"login","name":"reader","room_id":room}));
    assert_eq!(raw.read_json()["type"], "user_list");
    let mut said = Vec::new();
    loop {
        let v = raw.read_json();
        if v["type"] == "login" {
            return said;
        }
        let content = v["content"].as_str().unwrap_or_default();
        said.push(content.split(':').next().unwrap_or_default().to_string());
    }
}

#[test]
fn history_in_redis_is_bounded_over_all_rooms_and_a_joining_node_loads_its_budget() {
    let Some(redis) = redis("history_in_redis_is_bounded_over_all_rooms_and_a_joining_node_loads_its_budget") else {
        return;
    };
    // 100 rooms × 20 says of 60 KB (120 MB) at --history 20 --history-budget 4 MiB.
    // (A newcomer's welcome may carry all 20 of its room's says: 1.2 MB, over --history-welcome-bytes' default.)
    let flags = ["--history", "20", "--history-budget", "4194304", "--history-welcome-bytes", "8388608"];
    let a = node(&redis, &flags);
    let before = used_memory(&redis);
    let content = "h".repeat(60_000);
    for r in 0..100 {
        let (mut raw, _) = login(a.ws, &format!("u{r}"), &format!("r{r}"));
        say_many(&mut raw, 20, &content);
        // Redis confirmed the room's writes before the next room (else --cluster-buffer may refuse says).
        assert!(eventually(Duration::from_secs(30), || metric(a.http, "wschat_cluster_buffered_bytes") == 0));
    }
    assert!(eventually(Duration::from_secs(30), || metric(a.http, "wschat_cluster_buffered_bytes") == 0));
    let grown = used_memory(&redis).saturating_sub(before);
    let counted: Option<u64> = redis.cli(&["GET", "wschat:history-bytes"]).trim().parse().ok();
    // A node joining now loads at most its budget, newest rooms first.
    let b = node(&redis, &flags);
    let peak = peak_rss_kib(b.child.id());
    let loaded = metric_opt(b.http, "wschat_cluster_history_loaded_bytes");
    eprintln!(
        "history of 100 rooms × 20 says of 60 KB at a 4 MiB budget: Redis grew by {:.1} MiB ({counted:?} bytes \
         counted); a joining node's peak RSS {:.1} MiB, {loaded:?} bytes loaded",
        grown as f64 / MIB as f64,
        peak as f64 / 1024.0
    );
    assert!(grown < 6 * MIB, "Redis holds the cluster's history within the budget: grew by {grown} bytes");
    assert!(counted.is_some_and(|c| c <= 4 * MIB), "{counted:?}");
    assert!(loaded.is_some_and(|l| l > 3 * MIB && l <= 4 * MIB), "loaded {loaded:?}");
    assert!(peak < 48 * 1024, "the joining node's peak RSS stays near its budget: {peak} KiB");
    // The newest rooms are whole, the oldest gone, on both nodes.
    let all: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(history(a.ws, "r99"), all);
    assert!(history(a.ws, "r0").is_empty());
    assert_eq!(history(b.ws, "r99"), all);
    assert_eq!(history(b.ws, "r98"), all);
    assert!(history(b.ws, "r0").is_empty());
}

#[test]
fn at_maxmemory_refused_writes_are_counted_and_logged_once_per_interval() {
    let test = "at_maxmemory_refused_writes_are_counted_and_logged_once_per_interval";
    let Some(redis) = redis_with(test, &["--maxmemory", "2mb"]) else { return };
    let log = std::env::temp_dir().join(format!("wschat-{test}-{}.log", std::process::id()));
    let a = node_logging(&redis, &["--history", "1000"], &log);
    let (mut raw, _) = login(a.ws, "x", "m");
    // 3 MB of history into a Redis with about 1 MB free, one say per loop turn (one write each): most of
    // the writes are refused.
    let content = "m".repeat(8_000);
    for i in 0..400 {
        say_many(&mut raw, 1, &format!("{i}{content}"));
    }
    assert!(eventually(Duration::from_secs(10), || metric(a.http, "wschat_cluster_buffered_bytes") == 0));
    let errors = metric_opt(a.http, "wschat_cluster_redis_errors_total");
    let refused_writes = redis.cli(&["INFO", "stats"]);
    let oom =
        refused_writes.lines().find_map(|l| l.strip_prefix("total_error_replies:")).unwrap_or("?").trim().to_string();
    let mut text = String::new();
    std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text)).expect("the log");
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("refused")).collect();
    eprintln!("{oom} error replies from Redis, {errors:?} counted, {} log lines about them", lines.len());
    assert!(errors.is_some_and(|e| e >= 100), "the refused writes are counted: {errors:?}");
    assert!(
        lines.len() <= 2,
        "logged once per interval, not per command: {} lines: {:?}",
        lines.len(),
        &lines[..lines.len().min(3)]
    );
    assert!(lines[0].contains("OOM"), "{}", lines[0]);
    // The node serves on.
    send(&mut raw, json!({"type":"say","to_uid":"all","content":"still here"}));
    assert_eq!(raw.read_json()["content"], "still here");
}

/// The id of the node answering on `http`, as in its keys.
fn node_id(http: SocketAddr) -> String {
    let m = metrics(http);
    let at = m.find("wschat_cluster_node{id=\"").expect("the node's id") + "wschat_cluster_node{id=\"".len();
    m[at..at + 16].to_string()
}

#[test]
fn a_node_stream_stays_within_its_bytes_at_the_default() {
    let Some(redis) = redis("a_node_stream_stays_within_its_bytes_at_the_default") else { return };
    let (a, _b) = (node(&redis, &[]), node(&redis, &[]));
    let stream = format!("wschat:node:{}:stream", node_id(a.http));
    // 34 MB of says through a's stream, four senders at once (turns of several says each). Each sends in
    // rounds of ten and starts a round only while less than 4 MiB wait for Redis: four rounds in flight stay
    // under --cluster-buffer's 8 MiB, past which a node behind Redis refuses says (cluster_unavailable),
    // as it should — a loaded machine's Redis falls that far behind 34 MB sent at once.
    let content = "s".repeat(60_000);
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (ws, http) = (a.ws, a.http);
            let content = content.clone();
            std::thread::spawn(move || {
                let (mut raw, _) = login(ws, &format!("s{s}"), &format!("s{s}"));
                for _ in 0..14 {
                    let under = || metric(http, "wschat_cluster_buffered_bytes") < 4 * MIB;
                    assert!(eventually(Duration::from_secs(30), under), "Redis stays behind");
                    say_many(&mut raw, 10, &content);
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    assert!(eventually(Duration::from_secs(30), || metric(a.http, "wschat_cluster_buffered_bytes") == 0));
    let usage: u64 = redis.cli(&["MEMORY", "USAGE", &stream, "SAMPLES", "0"]).trim().parse().unwrap_or(0);
    let counted = metric_opt(a.http, "wschat_cluster_stream_bytes");
    let entries = redis.cli(&["XLEN", &stream]);
    eprintln!(
        "34 MB of says: the stream holds {:.1} MiB (MEMORY USAGE) in {} entries, {counted:?} bytes counted",
        usage as f64 / MIB as f64,
        entries.trim()
    );
    assert!(usage > 8 * MIB, "the stream holds the latest messages: {usage}");
    // Entries of a megabyte or more (a loop turn of 60 KB says) take up to a quarter more in Redis's
    // allocator than their bytes.
    assert!(usage <= 20 * MIB, "within --cluster-stream-bytes (16 MiB) and the allocator's rounding: {usage}");
    assert!(counted.is_some_and(|c| c <= 16 * MIB), "{counted:?}");
}

#[test]
fn a_bad_cluster_stream_bytes_is_a_cli_error() {
    let bin = env!("CARGO_BIN_EXE_wschat");
    for bad in ["1000", "lots"] {
        let out = Command::new(bin)
            .args(["--cluster", "redis://127.0.0.1:1", "--cluster-stream-bytes", bad])
            .output()
            .expect("run wschat");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster-stream-bytes"), "{bad}");
    }
}

/// Kills `victim` with SIGKILL right after it renewed its lease (the worst moment: its lease has the
/// longest to run), and answers how long until `watcher` saw the logout of `uid`.
fn kill_and_time_logout(redis: &RedisServer, victim: &mut Daemon, watcher: &mut Raw, uid: u64) -> Duration {
    let id = node_id(victim.http);
    let score = || redis.cli(&["ZSCORE", "wschat:nodes", &id]);
    let first = score();
    assert!(eventually(Duration::from_secs(5), || score() != first), "the lease is renewed");
    let t0 = Instant::now();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(victim.child.id() as i32, libc::SIGKILL);
    }
    let _ = victim.child.wait();
    watcher.set_read_timeout(Duration::from_secs(5)).expect("timeout");
    loop {
        let Some(frame) = watcher.try_read_frame() else {
            panic!("no logout of {uid} within 5 s of the SIGKILL (at {:?})", t0.elapsed());
        };
        let v: serde_json::Value = serde_json::from_slice(&frame.payload).expect("JSON");
        if v["type"] == "logout" && v["uid"] == uid {
            return t0.elapsed();
        }
        let left = Duration::from_secs(5).saturating_sub(t0.elapsed()).max(Duration::from_millis(1));
        watcher.set_read_timeout(left).expect("timeout");
    }
}

#[test]
fn sigkill_at_the_default_heartbeat_logs_users_out_within_5_s() {
    let Some(redis) = redis("sigkill_at_the_default_heartbeat_logs_users_out_within_5_s") else { return };
    let defaults = ["--cluster-heartbeat-ms", "1000"];
    let a = node(&redis, &defaults);
    let (mut watcher, _) = login(a.ws, "watcher", "k");
    // Three victims one after the other: the first killed as soon as it joined (the survivor itself has
    // just connected), the others once the survivor is long settled.
    let mut delays = Vec::new();
    for i in 0..3 {
        let mut victim = node(&redis, &defaults);
        let (_user, uid) = login(victim.ws, &format!("v{i}"), "k");
        loop {
            let v = watcher.read_json();
            if v["type"] == "login" && v["uid"] == uid {
                break;
            }
        }
        delays.push(kill_and_time_logout(&redis, &mut victim, &mut watcher, uid));
    }
    eprintln!("logout after SIGKILL at the default heartbeat: {delays:?}");
    assert_eq!(metric(a.http, "wschat_cluster_nodes"), 1);
}
