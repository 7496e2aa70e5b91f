//! History against newcomers, with the real binary: a room's history is encoded once per dialect and shared
//! by its newcomers, one welcome queues at most `--history-welcome-bytes` of it (the newest messages that
//! fit), and a say is held to `--max-message-bytes` as its dialect sends it (escaped). The room is the worst
//! case for escaping: 100 says of 65 KB of apostrophes, each 390 KB once escaped for the workerman dialect.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::probe::{cpu_time, eventually, login, percentile, rss_kib, say_latencies};
use common::{text_frame, Daemon, Raw};
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
    let mut raw = Raw::open(ws);
    raw.send(&text_frame(&json!({"type":"login","client_name":name,"room_id":1}).to_string()));
    raw
}

/// What a newcomer that just logged in receives before the echo of a marker it says: its login (with the
/// client list), then the history. Returns the history's bytes on the wire and its messages.
fn welcome(raw: &mut Raw) -> (usize, Vec<Value>) {
    let first = raw.read_json();
    assert_eq!(first["type"], "login", "{first}");
    raw.send(&text_frame(&json!({"type":"say","to_client_id":"all","content":"marker"}).to_string()));
    let (mut bytes, mut past) = (0, Vec::new());
    loop {
        let f = raw.read_frame().expect("a frame");
        let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
        if v["content"] == "marker" {
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
    assert_eq!((v["type"].as_str(), v["code"].as_str()), (Some("error"), Some("message_too_big")), "{v}");
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

/// Figures for the README (not asserted): welcome bytes and daemon CPU per login into the room above, a
/// bystander pair's p99 in another room unloaded and under 10 logins/s into it, RSS with 40 newcomers that
/// never read. `cargo test --release --test hardening_history -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_newcomers_into_a_room_of_escaped_history() {
    let d = Daemon::start(&["--history", "100", "--join-burst", "0"]);
    let pid = d.child.id();
    let _talker = fill_room(d.ws);
    let (mut a, _) = login(d.ws, "a", "quiet");
    let (mut b, _) = login(d.ws, "b", "quiet");
    say_latencies(&mut a, &mut b, 50, Duration::from_millis(2));
    let mut unloaded = say_latencies(&mut a, &mut b, 1000, Duration::from_millis(2));
    let p99_unloaded = percentile(&mut unloaded, 99.0);
    // Logins, each reading its whole welcome: bytes and CPU per login.
    let cpu_before = cpu_time(pid);
    let mut bytes = 0;
    for i in 0..20 {
        let mut raw = wm_join(d.ws, &format!("reader{i}"));
        bytes = welcome(&mut raw).0;
    }
    let cpu_per_login = (cpu_time(pid) - cpu_before) / 20;
    // 10 logins/s into the room (each newcomer reads its welcome, on its own thread) while the pair chats.
    let ws = d.ws;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let joiner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut raw = wm_join(ws, &format!("j{n}"));
                std::thread::spawn(move || {
                    let _ = raw.read_frame();
                    while raw.try_read_frame().is_some() {}
                });
                n += 1;
                let next = start + Duration::from_millis(100) * n;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut loaded = say_latencies(&mut a, &mut b, 1000, Duration::from_millis(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let logins = joiner.join().expect("joiner");
    let p99_loaded = percentile(&mut loaded, 99.0);
    // 40 newcomers that never read.
    assert!(eventually(Duration::from_secs(10), || {
        let before = rss_kib(pid);
        std::thread::sleep(Duration::from_millis(300));
        rss_kib(pid) <= before
    }));
    let rss_before = rss_kib(pid);
    let idle: Vec<Raw> = (0..40).map(|i| wm_join(d.ws, &format!("idle{i}"))).collect();
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib(pid);
    drop(idle);
    println!(
        "FIGURES welcome_bytes={bytes} cpu_per_login_us={} p99_unloaded_us={} p99_10_logins_per_s_us={} \
         logins={logins} rss_40_idle_kib={rss_before}->{rss_after}",
        cpu_per_login.as_micros(),
        p99_unloaded.as_micros(),
        p99_loaded.as_micros(),
    );
}
