//! History against newcomers, with the real binary: a room's history is encoded once per dialect and shared
//! by its newcomers, one welcome queues at most `--history-welcome-bytes` of it (the newest messages that
//! fit), and a say is held to `--max-message-bytes` as its dialect sends it (escaped). The room is the worst
//! case for escaping: 100 says of 65 KB of apostrophes, each 390 KB once escaped for the workerman dialect.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::probe::{cpu_time, login, percentile, rss_kib};
use common::{text_frame, upgrade_request, Daemon, Raw};
use serde_json::{json, Value};

/// Says of the room: this many apostrophes then `#NNN`, a JSON say of 65 046 bytes (under the default
/// 65 536-byte message limit).
const APOSTROPHES: usize = 65_000;
/// Says in the room.
const SAYS: usize = 100;
/// `--history-welcome-bytes`'s default.
const WELCOME_BYTES: usize = 1024 * 1024;

/// A seed client in room 1 that has said [`SAYS`] messages of apostrophes, numbered, oldest first.
fn fill_room(ws: SocketAddr) -> Raw {
    let (mut talker, _) = login(ws, "talker", "1");
    let apostrophes = "'".repeat(APOSTROPHES);
    for i in 0..SAYS {
        let say = json!({"type":"say","to_uid":"all","content":format!("{apostrophes}#{i:03}")});
        talker.send(&text_frame(&say.to_string()));
        assert_eq!(talker.read_json()["type"], "say");
    }
    talker
}

/// Bytes a frame of `payload` bytes takes on the wire (a server frame: unmasked).
fn wire_len(payload: usize) -> usize {
    payload
        + match payload {
            0..=125 => 2,
            126..=65_535 => 4,
            _ => 10,
        }
}

/// A client of workerman-chat's current dialect joining room 1 (its login with the client list is its first
/// frame).
fn wm_join(ws: SocketAddr, name: &str) -> Raw {
    wm_join_room(ws, name, 1)
}

/// A client of workerman-chat's current dialect joining room `room`.
fn wm_join_room(ws: SocketAddr, name: &str, room: u32) -> Raw {
    // A minute for each answer: a daemon saturated by welcomes (as before they were bounded) answers late.
    let mut raw = Raw::connect(ws);
    raw.set_read_timeout(Duration::from_secs(60)).expect("timeout");
    raw.send(upgrade_request("").as_bytes());
    let head = raw.read_head();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    raw.send(&text_frame(&json!({"type":"login","client_name":name,"room_id":room}).to_string()));
    raw
}

/// What a newcomer that just logged in receives before the echo of a marker it says to itself (a private
/// say, kept in no history): its login (with the client list), then the history. Returns the history's
/// bytes on the wire and its messages.
fn welcome(raw: &mut Raw) -> (usize, Vec<Value>) {
    let first = raw.read_json();
    assert_eq!(first["type"], "login", "{first}");
    let me = first["client_id"].as_str().expect("client_id");
    raw.send(&text_frame(&json!({"type":"say","to_client_id":me,"content":"marker"}).to_string()));
    let (mut bytes, mut past) = (0, Vec::new());
    loop {
        let f = raw.read_frame().expect("a frame");
        let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
        if v["to_client_id"] == me && v["content"].as_str().is_some_and(|c| c.ends_with("marker")) {
            return (bytes, past);
        }
        bytes += wire_len(f.payload.len());
        past.push(v);
    }
}

/// The `#NNN` numbers of history messages.
fn numbers(past: &[Value]) -> Vec<usize> {
    past.iter()
        .map(|v| {
            let content = v["content"].as_str().expect("content");
            content.rsplit('#').next().and_then(|n| n.parse().ok()).expect("#NNN")
        })
        .collect()
}

#[test]
fn a_welcome_is_bounded_holds_the_newest_and_is_shared_by_newcomers_that_never_read() {
    let d = Daemon::start(&["--history", "100"]);
    let pid = d.child.id();
    let _talker = fill_room(d.ws);
    // Escaped for this dialect each message is 390 KB: the newest two fit in a welcome (39 MB before).
    let mut newcomer = wm_join(d.ws, "late");
    let (bytes, past) = welcome(&mut newcomer);
    eprintln!("welcome: {bytes} bytes of history, {} messages", past.len());
    assert!(bytes <= WELCOME_BYTES, "{bytes} bytes of history in one welcome");
    assert_eq!(numbers(&past), [SAYS - 2, SAYS - 1], "the newest messages, oldest first");
    assert!(past.iter().all(|v| v["content"].as_str().unwrap().starts_with("&#039;&#039;")), "escaped");
    // Newcomers that never read share one encoded history: they cost the daemon little each.
    let rss_before = rss_kib(pid);
    let idle: Vec<Raw> = (0..40).map(|i| wm_join(d.ws, &format!("idle{i}"))).collect();
    let mut probe = wm_join(d.ws, "probe");
    let (probe_bytes, _) = welcome(&mut probe);
    assert_eq!(probe_bytes, bytes, "the same history for the next newcomer");
    std::thread::sleep(Duration::from_millis(200));
    let rss_after = rss_kib(pid);
    eprintln!("40 newcomers that never read: RSS {rss_before} -> {rss_after} KiB");
    assert!(rss_after < rss_before + 32 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");
    drop(idle);
}

#[test]
fn a_say_over_the_message_limit_once_escaped_is_refused() {
    let d = Daemon::start(&["--history", "10"]);
    let mut wm = wm_join(d.ws, "wm");
    assert_eq!(wm.read_json()["type"], "login");
    // 11 000 apostrophes: 11 KB in, 66 000 bytes escaped, over the 65 536-byte default.
    let say = |n: usize, tag: &str| {
        text_frame(&json!({"type":"say","to_client_id":"all","content":format!("{}{tag}", "'".repeat(n))}).to_string())
    };
    wm.send(&say(11_000, "big"));
    let v = wm.read_json();
    let (kind, code) = (v["type"].as_str().unwrap_or_default(), v["code"].as_str().unwrap_or_default());
    assert_eq!((kind, code), ("error", "message_too_big"), "refused, not relayed");
    // The connection stays open, and a say that fits once escaped goes through.
    wm.send(&say(10_000, "fits"));
    let v = wm.read_json();
    assert_eq!(v["type"], "say");
    assert!(v["content"].as_str().unwrap().ends_with("fits"));
    // The refused say is not in the history either.
    let mut late = wm_join(d.ws, "late");
    let (_, past) = welcome(&mut late);
    assert_eq!(past.len(), 1);
}

#[test]
fn a_bad_history_welcome_bound_is_a_cli_error() {
    let bin = env!("CARGO_BIN_EXE_wschat");
    for bad in ["1MiB", "-1", "67108865"] {
        let arg = format!("--history-welcome-bytes={bad}");
        let out = std::process::Command::new(bin).arg(arg).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--history-welcome-bytes"), "{bad}");
    }
}

/// 10 logins a second into `room` until `stop` (5 s at most), each newcomer of the workerman dialect reading its welcome on
/// a thread of its own; returns how many logged in.
fn joiner(ws: SocketAddr, room: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let mut n = 0;
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(5) {
            std::thread::spawn(move || {
                // Logs in, reads everything until the daemon has been silent for a second, then goes. (A
                // handshake a saturated daemon does not answer in time ends this thread, not the run.)
                let mut stream = wm_join_room(ws, &format!("j{n}"), room).stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = vec![0u8; 1 << 16];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
            n += 1;
            std::thread::sleep((start + Duration::from_millis(100) * n).saturating_duration_since(Instant::now()));
        }
        n
    })
}

/// The next text frame's JSON, past any ping.
fn next_text(raw: &mut Raw) -> Value {
    loop {
        let f = raw.read_frame().expect("a frame");
        if f.opcode == 1 {
            return serde_json::from_slice(&f.payload).expect("JSON");
        }
    }
}

/// The p99 of `n` says from `a` to `b` (alone in their room), one every 2 ms (or as many as 5 s allow):
/// from send until `b` read it.
fn pair_p99(a: &mut Raw, b: &mut Raw, n: usize) -> u128 {
    let mut took = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(5);
    for i in 0..n {
        if Instant::now() > deadline {
            break;
        }
        let content = format!("probe-{i}");
        let start = Instant::now();
        a.send(&text_frame(&json!({"type":"say","to_uid":"all","content":content}).to_string()));
        while next_text(b)["content"] != content.as_str() {}
        took.push(start.elapsed());
        while next_text(a)["content"] != content.as_str() {}
        std::thread::sleep(Duration::from_millis(2));
    }
    percentile(&mut took, 99.0).as_micros()
}

/// Waits (two minutes at most) until the daemon `pid` has used less than 20 ms of CPU in half a second:
/// what it had queued is written.
fn wait_idle(pid: u32) {
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        let before = cpu_time(pid);
        std::thread::sleep(Duration::from_millis(500));
        if cpu_time(pid) - before < Duration::from_millis(20) {
            return;
        }
    }
}

/// The median of `v`, which it sorts.
fn median(v: &mut [u128]) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Figures for the README (not asserted), medians of `RUNS` runs (default 5): history bytes and daemon CPU per login into the
/// room above, a bystander pair's p99 in another room unloaded and under 10 logins/s into it, RSS with 40
/// newcomers that never read.
/// `cargo test --release --test hardening_history measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_newcomers_into_a_room_of_escaped_history() {
    let d = Daemon::start(&["--history", "100", "--join-burst", "0"]);
    let pid = d.child.id();
    let _talker = fill_room(d.ws);
    let (mut a, _) = login(d.ws, "a", "quiet");
    let (mut b, _) = login(d.ws, "b", "quiet");
    for raw in [&mut a, &mut b] {
        raw.set_read_timeout(Duration::from_secs(60)).expect("timeout");
    }
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    pair_p99(&mut a, &mut b, 100);
    let (mut unloaded, mut loaded, mut control, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for run in 0..runs {
        unloaded.push(pair_p99(&mut a, &mut b, 1000));
        let stop = Arc::new(AtomicBool::new(false));
        let joins = joiner(d.ws, 1, stop.clone());
        std::thread::sleep(Duration::from_millis(300));
        loaded.push(pair_p99(&mut a, &mut b, 1000));
        stop.store(true, Ordering::Relaxed);
        let logins = joins.join().expect("joiner");
        wait_idle(pid);
        // The same logins into a room without history: what logging in costs without a welcome to write.
        let stop = Arc::new(AtomicBool::new(false));
        let joins = joiner(d.ws, 2, stop.clone());
        std::thread::sleep(Duration::from_millis(300));
        control.push(pair_p99(&mut a, &mut b, 1000));
        stop.store(true, Ordering::Relaxed);
        joins.join().expect("joiner");
        wait_idle(pid);
        // Logins one after the other, each reading its whole welcome: CPU per login.
        let (cpu_before, until) = (cpu_time(pid), Instant::now() + Duration::from_secs(10));
        let mut logins_read = 0;
        while logins_read < 50 && Instant::now() < until {
            let mut raw = wm_join(d.ws, &format!("r{run}-{logins_read}"));
            bytes = welcome(&mut raw).0;
            logins_read += 1;
        }
        cpu.push(((cpu_time(pid) - cpu_before) / logins_read).as_micros());
        eprintln!(
            "run {run}: p99 unloaded {} us, under {logins} logins at 10/s {} us (into a room without history {} \
             us); CPU per login {} us",
            unloaded[run], loaded[run], control[run], cpu[run]
        );
    }
    // 40 newcomers that never read.
    wait_idle(pid);
    let rss_before = rss_kib(pid);
    let idle: Vec<Raw> = (0..40).map(|i| wm_join(d.ws, &format!("idle{i}"))).collect();
    wait_idle(pid);
    let rss_after = rss_kib(pid);
    drop(idle);
    println!(
        "FIGURES history_bytes_per_welcome={bytes} cpu_per_login_us={} p99_unloaded_us={} \
         p99_10_logins_per_s_us={} p99_10_logins_per_s_without_history_us={} \
         rss_40_idle_kib={rss_before}->{rss_after}",
        median(&mut cpu),
        median(&mut unloaded),
        median(&mut loaded),
        median(&mut control),
    );
}
