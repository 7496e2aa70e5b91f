//! Hardening against one client pushing the daemon around, each case against the real binary: a ping
//! flood, the send-buffer limit judged after writing (fast readers of a fast sender, a newcomer to a room
//! whose history or user list outweighs the limit), the whole daemon's output budget, the web port's own
//! socket budget and per-address cap, and a client's bytes arriving together with its FIN.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::probe::{connect_from, eventually, login, metric, percentile, rss_kib, say_latencies};
use common::{client_frame, text_frame, upgrade_request, Daemon, Raw, CLOSE, PING};
use serde_json::{json, Value};

/// A connection that completed the handshake from a socket with a tiny receive window and never reads.
fn non_reader(d: &Daemon, name: Option<&str>, room: &str) -> std::net::TcpStream {
    let mut s = connect_from(None, d.ws, true);
    s.write_all(upgrade_request("").as_bytes()).expect("upgrade");
    if let Some(name) = name {
        s.write_all(&text_frame(&json!({"type":"login","name":name,"room_id":room}).to_string())).expect("login");
    }
    s
}

fn say(raw: &mut Raw, content: &str) {
    raw.send(&text_frame(&json!({"type":"say","to_uid":"all","content":content}).to_string()));
}

/// Reads until a `say` arrives; returns it (joins and leaves are skipped).
fn next_say(raw: &mut Raw) -> Value {
    loop {
        let v = raw.read_json();
        if v["type"] == "say" {
            return v;
        }
        assert!(v["type"] == "login" || v["type"] == "logout", "unexpected {v}");
    }
}

#[test]
fn a_ping_flood_costs_bounded_memory_and_the_others_nothing_measurable() {
    let d = Daemon::start(&["--send-buffer-limit", "1048576", "--max-messages-per-sec", "0"]);
    let pid = d.child.id();
    let (mut a, _) = login(d.ws, "a", "quiet");
    let (mut b, _) = login(d.ws, "b", "quiet");
    let mut quiet = say_latencies(&mut a, &mut b, 300, Duration::from_millis(2));
    let rss_before = rss_kib(pid);

    // One connection that never logs in and never reads sends empty pings, 60 MB/s (paced, so that the
    // flooder itself does not take the test's CPU: this machine may have two cores).
    let stop = Arc::new(AtomicBool::new(false));
    // (A normal receive window: with a tiny one, the daemon's acknowledgements ride on pongs that the
    // full buffer drops, and TCP itself stalls the flooder.)
    let mut flood = connect_from(None, d.ws, false);
    flood.write_all(upgrade_request("").as_bytes()).expect("upgrade");
    let flooder = {
        let stop = stop.clone();
        thread::spawn(move || {
            let chunk = client_frame(true, 0, PING, b"").repeat(10_000);
            let mut sent = 0usize;
            while !stop.load(Ordering::Relaxed) && sent < 400 << 20 {
                match flood.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
                thread::sleep(Duration::from_millis(1));
            }
            (flood, sent)
        })
    };
    thread::sleep(Duration::from_millis(200));
    let mut flooded = say_latencies(&mut a, &mut b, 300, Duration::from_millis(2));
    let rss_during = rss_kib(pid);
    stop.store(true, Ordering::Relaxed);
    let (flood, sent) = flooder.join().expect("flooder");
    let (q50, q90, q99) = (percentile(&mut quiet, 50.0), percentile(&mut quiet, 90.0), percentile(&mut quiet, 99.0));
    let (f50, f99) = (percentile(&mut flooded, 50.0), percentile(&mut flooded, 99.0));
    eprintln!(
        "ping flood: {} MB of pings; RSS {rss_before} -> {rss_during} KiB; bystanders p50/p99 {q50:?}/{q99:?} quiet, \
         {f50:?}/{f99:?} flooded",
        sent >> 20
    );
    assert!(sent > 20 << 20, "the flood was too small to mean anything: {sent} bytes");
    assert!(rss_during < rss_before + 16 * 1024, "RSS grew from {rss_before} to {rss_during} KiB");
    // Generous margins: the flooder, the daemon and this test share two cores, so the tail is the
    // scheduler's. They still catch a loop that reads a flooder without a per-turn budget, which moves the
    // median from 0.2 to 13 ms.
    let f90 = percentile(&mut flooded, 90.0);
    assert!(f50 < q50 + Duration::from_millis(2), "bystander p50 {q50:?} -> {f50:?}");
    assert!(f90 < q90 + Duration::from_millis(5), "bystander p90 {q90:?} -> {f90:?}");
    drop(flood);
    // The chat still works and nobody was cut.
    say(&mut a, "after");
    assert_eq!(next_say(&mut b)["content"], "after");
    assert_eq!(metric(d.http, "wschat_slow_consumer_disconnects_total"), 0);
}

#[test]
fn pings_count_toward_the_rate_limit() {
    let d = Daemon::start(&["--max-messages-per-sec", "5"]);
    let mut c = Raw::open(d.ws);
    for i in 0..20u8 {
        c.send(&client_frame(true, 0, PING, &[i]));
    }
    c.send(&client_frame(true, 0, CLOSE, &1000u16.to_be_bytes()));
    let mut pongs = 0;
    loop {
        let f = c.read_frame().expect("frames, then the close echo");
        match f.opcode {
            10 => pongs += 1,
            8 => break,
            op => panic!("unexpected opcode {op}"),
        }
    }
    assert_eq!(pongs, 5, "a burst of 5, then pings past the limit get no pong");
    assert!(eventually(Duration::from_secs(2), || metric(d.http, "wschat_rate_limited_total") == 15));
}

#[test]
fn readers_of_a_fast_sender_are_judged_after_writing_and_only_the_stuck_one_is_cut() {
    let d = Daemon::start(&["--send-buffer-limit", "65536"]);
    let (sender, sender_uid) = login(d.ws, "sender", "r");
    let mut readers: Vec<Raw> = (0..2).map(|i| login(d.ws, &format!("reader{i}"), "r").0).collect();
    let _stuck = non_reader(&d, Some("stuck"), "r");
    const MESSAGES: usize = 300;
    let content = "x".repeat(10_000);
    // Everyone reads in a thread of its own, the sender its echoes too.
    let mut writer = sender.stream.try_clone().expect("clone");
    let mut handles: Vec<_> = readers
        .drain(..)
        .chain(std::iter::once(sender))
        .map(|mut r| {
            thread::spawn(move || {
                let mut got = 0;
                let mut left = None;
                while got < MESSAGES {
                    let v = r.read_json();
                    match v["type"].as_str() {
                        Some("say") => {
                            assert_eq!(v["from_uid"].as_u64(), Some(sender_uid));
                            got += 1;
                        }
                        Some("logout") => left = v["name"].as_str().map(String::from),
                        _ => {}
                    }
                }
                (got, left)
            })
        })
        .collect();
    for i in 0..MESSAGES {
        writer.write_all(&text_frame(&json!({"type":"say","to_uid":"all","content":content}).to_string())).unwrap();
        if i % 50 == 49 {
            thread::sleep(Duration::from_millis(10));
        }
    }
    for h in handles.drain(..) {
        let (got, _) = h.join().expect("a reader was cut or lost messages");
        assert_eq!(got, MESSAGES);
    }
    assert_eq!(metric(d.http, "wschat_slow_consumer_disconnects_total"), 1, "only the stuck client is cut");
}

#[test]
fn a_newcomer_to_a_room_whose_history_outweighs_the_limit_gets_it_all() {
    // The welcome's own bound raised past the room's 6 MB: what is tested is the send-buffer limit.
    let d = Daemon::start(&["--history", "100", "--send-buffer-limit", "65536", "--history-welcome-bytes", "8388608"]);
    let (mut old, _) = login(d.ws, "old", "h");
    let content = "h".repeat(60_000);
    for i in 0..100 {
        say(&mut old, &format!("{i}:{content}"));
        next_say(&mut old);
    }
    for round in 0..3 {
        let mut c = Raw::open(d.ws);
        c.send(&text_frame(&json!({"type":"login","name":format!("new{round}"),"room_id":"h"}).to_string()));
        assert_eq!(c.read_json()["type"], "user_list", "the user list comes first");
        // Each round's "made it" joins the history and pushes its oldest message out.
        for i in 0..100 {
            let v = c.read_json();
            let text = v["content"].as_str().unwrap_or_default();
            let expected = if i + round < 100 { format!("{}:", i + round) } else { "made it".into() };
            assert!(text.starts_with(&expected), "history {i} of round {round}: {:.80}", v.to_string());
        }
        assert_eq!(c.read_json()["type"], "login");
        say(&mut c, "made it");
        assert_eq!(next_say(&mut c)["content"], "made it");
    }
    assert_eq!(metric(d.http, "wschat_slow_consumer_disconnects_total"), 0);
}

#[test]
fn a_newcomer_to_a_room_whose_user_list_outweighs_the_limit_is_admitted() {
    let d = Daemon::start(&["--send-buffer-limit", "1024"]);
    let name = "😀".repeat(32);
    let mut members: Vec<Raw> = (0..40).map(|_| login(d.ws, &name, "u").0).collect();
    let mut c = Raw::open(d.ws);
    c.send(&text_frame(&json!({"type":"login","name":name,"room_id":"u"}).to_string()));
    let list = c.read_json();
    assert_eq!(list["type"], "user_list", "the user list comes first: {list}");
    assert_eq!(list["user_list"].as_array().map(Vec::len), Some(41));
    assert_eq!(c.read_json()["type"], "login");
    say(&mut c, "hello");
    assert_eq!(next_say(&mut members[0])["content"], "hello");
    assert_eq!(metric(d.http, "wschat_slow_consumer_disconnects_total"), 0);
}

#[test]
fn the_output_budget_cuts_the_largest_backlogs_and_spares_readers() {
    let d = Daemon::start(&["--max-output-bytes", "16777216", "--send-buffer-limit", "16777216"]);
    let pid = d.child.id();
    let (mut reader, _) = login(d.ws, "reader", "big");
    let stuck: Vec<_> = (0..30).map(|i| non_reader(&d, Some(&format!("stuck{i}")), "big")).collect();
    let (mut sender, _) = login(d.ws, "sender", "big");
    let rss_before = rss_kib(pid);
    let content = "b".repeat(60_000);
    for i in 0..100 {
        say(&mut sender, &format!("{i}:{content}"));
        let v = next_say(&mut reader);
        assert!(v["content"].as_str().is_some_and(|s| s.starts_with(&format!("{i}:"))));
        next_say(&mut sender);
    }
    let cut = metric(d.http, "wschat_output_budget_disconnects_total");
    let queued = metric(d.http, "wschat_output_queued_bytes");
    let rss_after = rss_kib(pid);
    eprintln!("output budget: {cut} cut, {queued} bytes queued after, RSS {rss_before} -> {rss_after} KiB");
    assert!(cut >= 1, "nobody was cut at the budget");
    assert!(queued <= 16777216, "{queued} bytes queued over the budget");
    assert_eq!(metric(d.http, "wschat_slow_consumer_disconnects_total"), 0);
    assert!(rss_after < rss_before + 64 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");
    drop(stuck);
}

/// GET /healthz from `local`: the status code, or None when the connection ends without an answer.
fn healthz_from(d: &Daemon, local: IpAddr) -> Option<u16> {
    let mut raw = Raw::from_stream(connect_from(Some(local), d.http, false));
    raw.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    raw.stream.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// True when the server answered 503 on `s` (a refused idle connection), false when it says nothing yet.
fn refused_503(s: &mut std::net::TcpStream) -> bool {
    s.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 256];
    let refused = matches!(s.read(&mut buf), Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 503"));
    s.set_nonblocking(false).expect("blocking");
    refused
}

#[test]
fn idle_web_connections_never_take_the_chat_down() {
    let d = Daemon::start(&["--max-web-connections", "32"]);
    let lo = |last: u8| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
    // One address: 8 unfinished requests are held, the rest refused at once.
    let mut same: Vec<_> = (0..20).map(|_| connect_from(Some(lo(1)), d.http, false)).collect();
    thread::sleep(Duration::from_millis(200));
    let refused = same.iter_mut().map(refused_503).filter(|&r| r).count();
    assert_eq!(refused, 12, "a per-address cap of 8 unfinished requests");
    assert_eq!(healthz_from(&d, lo(2)), Some(200), "another address is served");
    // Many addresses: the web port's own budget of 32 fills, the WebSocket port does not notice.
    let mut many: Vec<_> = (10..50).map(|i| connect_from(Some(lo(i)), d.http, false)).collect();
    thread::sleep(Duration::from_millis(200));
    let refused = many.iter_mut().map(refused_503).filter(|&r| r).count();
    assert!(refused >= 40 - 24, "the web port's budget: {refused} of 40 refused");
    assert_eq!(healthz_from(&d, lo(3)), Some(503));
    let (mut a, _) = login(d.ws, "a", "1");
    let (mut b, _) = login(d.ws, "b", "1");
    say(&mut a, "still here");
    assert_eq!(next_say(&mut b)["content"], "still here");
    drop(same);
    drop(many);
    assert!(eventually(Duration::from_secs(2), || healthz_from(&d, lo(3)) == Some(200)));
    assert!(metric(d.http, "wschat_web_rejections_total") >= 28);
}

#[test]
fn bytes_and_fin_together_are_answered_before_the_close() {
    let d = Daemon::start(&[]);
    let (mut other, _) = login(d.ws, "other", "1");
    // Handshake, login and a say in one write, then FIN.
    let mut c = Raw::connect(d.ws);
    let mut bytes = upgrade_request("").into_bytes();
    bytes.extend(text_frame(r#"{"type":"login","name":"brief"}"#));
    bytes.extend(text_frame(r#"{"type":"say","to_uid":"all","content":"bye"}"#));
    c.send(&bytes);
    c.stream.shutdown(Shutdown::Write).expect("FIN");
    assert!(c.read_head().starts_with("HTTP/1.1 101 "));
    assert_eq!(c.read_json()["type"], "user_list");
    assert_eq!(c.read_json()["type"], "login");
    assert_eq!(c.read_json()["content"].as_str(), Some("bye"));
    assert!(c.sees_eof());
    assert_eq!(other.read_json()["name"], "brief");
    assert_eq!(other.read_json()["content"].as_str(), Some("bye"));
    assert_eq!(other.read_json()["type"], "logout");

    // A close frame and FIN together: the close is echoed.
    let mut c = Raw::open(d.ws);
    c.send(&client_frame(true, 0, CLOSE, &[0x03, 0xe8, b'o', b'k']));
    c.stream.shutdown(Shutdown::Write).expect("FIN");
    assert_eq!(c.expect_close(), 1000);
    assert!(c.sees_eof());

    // A web request and FIN together.
    let mut h = Raw::connect(d.http);
    h.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    h.stream.shutdown(Shutdown::Write).expect("FIN");
    let answer = h.read_head();
    assert!(answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("ok\n"), "{answer}");
}
