//! Faults against the real binary: clients killed mid-handshake and mid-frame (by dropping the socket, by
//! resetting it, and by SIGKILLing a client process), half-open and stuck peers reaped by the timeouts,
//! 10 000 connections opened and closed in bursts, the file-descriptor limit hit, SIGTERM while clients
//! chat, and garbage from many connections at once. Each test checks that the other clients keep being
//! served, that nothing they were sent is lost, and that the daemon ends up holding nothing: its gauges
//! and its own file-descriptor table (/proc/PID/fd) return to where they started.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::probe::{connect_from, cpu_time, eventually, login, metric, open_fds};
use common::{client_frame, text_frame, upgrade_request, Daemon, Raw, CLOSE, CONT, PING, TEXT};
use serde_json::Value;

// ----- helpers -----

/// Closes a socket with a TCP reset instead of a FIN (SO_LINGER with a zero timeout).
fn reset(stream: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a pointer to a live linger struct of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(stream);
}

/// Asserts that within `limit` the daemon holds as many descriptors as at `baseline` and has `connections`
/// WebSockets open.
fn assert_back_to(d: &Daemon, baseline: usize, connections: u64, limit: Duration) {
    let pid = d.child.id();
    assert!(
        eventually(limit, || open_fds(pid) == baseline),
        "the daemon holds {} descriptors, {baseline} at the start",
        open_fds(pid)
    );
    assert_eq!(metric(d.http, "wschat_connections"), connections);
}

/// Reads chat messages until one of `kind` arrives and returns it.
fn next_of(raw: &mut Raw, kind: &str) -> Value {
    loop {
        let v = raw.read_json();
        if v["type"] == kind {
            return v;
        }
        assert!(v["type"] == "login" || v["type"] == "logout", "unexpected {v}");
    }
}

/// A client process (bash with /dev/tcp) that connects, writes `bytes` and then waits to be killed.
fn client_process(addr: SocketAddr, bytes: &[u8]) -> Child {
    let escaped: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
    let script = format!(
        "exec 3<>/dev/tcp/{}/{} || exit 1; printf '{}' >&3; echo sent; exec sleep 60",
        addr.ip(),
        addr.port(),
        escaped
    );
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn bash");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("bash output");
    assert_eq!(line.trim(), "sent", "the client process could not connect");
    child
}

fn sigkill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// Everyone in `clients` gets `sender`'s say to all, in order, with nothing before it.
fn say_round(sender: usize, clients: &mut [(Raw, u64)], content: &str) {
    let uid = clients[sender].1;
    clients[sender].0.send(&text_frame(&format!(r#"{{"type":"say","to_uid":"all","content":"{content}"}}"#)));
    for (raw, _) in clients.iter_mut() {
        let v = raw.read_json();
        assert_eq!((v["type"].as_str(), v["from_uid"].as_u64()), (Some("say"), Some(uid)), "{v}");
        assert_eq!(v["content"], content);
    }
}

// ----- clients killed -----

#[test]
fn clients_killed_mid_handshake_and_mid_frame_leave_the_others_served() {
    let d = Daemon::start(&[]);
    let pid = d.child.id();
    let mut alice = login(d.ws, "alice", "1");
    let bob = login(d.ws, "bob", "1");
    next_of(&mut alice.0, "login");
    let mut others = [alice, bob];
    let baseline = open_fds(pid);
    let request = upgrade_request("");
    let half_request = &request.as_bytes()[..40];
    // A 1000-byte text frame of which only the header and 10 payload bytes ever arrive.
    let partial_frame = client_frame(true, 0, TEXT, &[b'x'; 1000])[..8 + 10].to_vec();

    // Mid-handshake: half a request, then FIN; then again with a reset.
    let mut victim = Raw::connect(d.ws);
    victim.send(half_request);
    drop(victim);
    let mut victim = Raw::connect(d.ws);
    victim.send(half_request);
    reset(victim.stream);
    say_round(0, &mut others, "after two killed handshakes");

    // Mid-frame, logged in: the others see the victim leave, then keep chatting.
    for (i, how) in
        ["fin", "reset", "fin inside a fragmented message", "reset inside a fragmented message"].into_iter().enumerate()
    {
        let (mut victim, uid) = login(d.ws, &format!("victim{i}"), "1");
        for (raw, _) in others.iter_mut() {
            assert_eq!(next_of(raw, "login")["uid"], uid);
        }
        if how.contains("fragmented") {
            victim.send(&client_frame(false, 0, TEXT, br#"{"type":"say","#));
            victim.send(&client_frame(false, 0, CONT, br#""to_uid":"all","#));
        }
        victim.send(&partial_frame);
        if how.starts_with("reset") {
            reset(victim.stream);
        } else {
            drop(victim);
        }
        for (raw, _) in others.iter_mut() {
            let bye = next_of(raw, "logout");
            assert_eq!(bye["uid"], uid, "{how}: {bye}");
        }
        say_round(1, &mut others, &format!("after victim {i} ({how})"));
    }

    // Client processes SIGKILLed mid-handshake and mid-frame (the second never read its 101, so the kernel
    // resets the connection).
    let mut p1 = client_process(d.ws, half_request);
    let mut with_frame = request.as_bytes().to_vec();
    with_frame.extend_from_slice(&partial_frame);
    let mut p2 = client_process(d.ws, &with_frame);
    sigkill(&mut p1);
    sigkill(&mut p2);
    say_round(0, &mut others, "after two killed processes");

    // The daemon holds exactly what it held before the victims came.
    assert_back_to(&d, baseline, 2, Duration::from_secs(3));
    assert_eq!(metric(d.http, "wschat_users"), 2);
    say_round(1, &mut others, "still here");
}

// ----- timeouts -----

#[test]
fn half_open_and_stuck_peers_are_reaped_by_the_timeouts() {
    let d = Daemon::start(&["--echo", "--ping-interval-secs", "1", "--handshake-timeout-ms", "500"]);
    let pid = d.child.id();
    let baseline = open_fds(pid);

    // Never says anything, or stops half-way through its request: the handshake timeout closes them.
    let mut mute = Raw::connect(d.ws);
    let mut half_handshake = Raw::connect(d.ws);
    half_handshake.send(&upgrade_request("").as_bytes()[..30]);
    // Open, then silent as a peer that vanished without a FIN: pinged, then closed with 1001.
    let mut vanished = Raw::open(d.ws);
    let mut vanished_mid_frame = Raw::open(d.ws);
    vanished_mid_frame.send(&client_frame(true, 0, TEXT, b"never finished")[..9]);
    // Stuck: its receive window is closed, so the server cannot even deliver its close; it must still
    // let go of the socket after the closing linger.
    let mut stuck = connect_from(None, d.ws, true);
    stuck.write_all(upgrade_request("").as_bytes()).expect("request");
    let mut echo_me = Vec::new();
    for _ in 0..16 {
        echo_me.extend(client_frame(true, 0, 2, &[0x5a; 65536]));
    }
    stuck.write_all(&echo_me).expect("1 MiB to echo");
    // The three open ones are held for two ping intervals at least (the others maybe only 500 ms).
    assert!(eventually(Duration::from_secs(2), || open_fds(pid) >= baseline + 3), "{}", open_fds(pid));

    // Every one of them is gone within the two ping intervals plus the closing linger (and some slack).
    assert_back_to(&d, baseline, 0, Duration::from_secs(8));

    // What each peer finds when it looks again.
    for raw in [&mut mute, &mut half_handshake] {
        // Closed, at most with an HTTP error (a 408, say), never upgraded.
        let mut rest = Vec::new();
        let _ = raw.stream.read_to_end(&mut rest);
        assert!(rest.is_empty() || rest.starts_with(b"HTTP/1.1 4"), "{}", String::from_utf8_lossy(&rest));
    }
    for raw in [&mut vanished, &mut vanished_mid_frame] {
        let ping = raw.read_frame().expect("a ping");
        assert_eq!(ping.opcode, PING);
        assert_eq!(raw.expect_close(), 1001);
        assert!(raw.read_frame().is_none(), "EOF after the close");
    }
    // The stuck one reads its echoes (as many as got through) and then the end: a close or a reset.
    stuck.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut got = Vec::new();
    match stuck.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

// ----- many connections -----

#[test]
fn ten_thousand_connections_in_bursts_of_a_thousand() {
    let d = Daemon::start(&["--echo"]);
    let pid = d.child.id();
    let baseline = open_fds(pid);
    const BURSTS: usize = 10;
    const BURST: usize = 1000;
    let close = client_frame(true, 0, CLOSE, &1000u16.to_be_bytes());
    for burst in 0..BURSTS {
        let mut clients: Vec<Raw> = (0..BURST).map(|_| Raw::connect(d.ws)).collect();
        for c in clients.iter_mut() {
            c.send(upgrade_request("").as_bytes());
        }
        for c in clients.iter_mut() {
            let head = c.read_head();
            assert!(head.starts_with("HTTP/1.1 101 "), "burst {burst}: {head}");
        }
        assert!(open_fds(pid) >= baseline + BURST);
        // A third say goodbye properly, a third just go (FIN), a third reset.
        let mut closing = Vec::new();
        for (i, mut c) in clients.into_iter().enumerate() {
            match i % 3 {
                0 => {
                    c.send(&close);
                    closing.push(c);
                }
                1 => drop(c),
                _ => reset(c.stream),
            }
        }
        for mut c in closing {
            assert_eq!(c.expect_close(), 1000);
            assert!(c.read_frame().is_none());
        }
    }
    assert_back_to(&d, baseline, 0, Duration::from_secs(5));
    assert_eq!(metric(d.http, "wschat_handshakes_total"), (BURSTS * BURST) as u64);
    let mut last = Raw::open(d.ws);
    last.send(&text_frame("still serving"));
    assert_eq!(last.read_frame().expect("echo").text(), "still serving");
}

// ----- the file-descriptor limit -----

/// What a connection that sent an upgrade request has received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Answer {
    Upgraded,
    Refused503,
    Nothing,
    Other,
}

/// Sends an upgrade request on `n` new connections and gives the server `wait` to answer them all.
fn flood(addr: SocketAddr, n: usize, wait: Duration) -> Vec<(TcpStream, Answer)> {
    let mut socks: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect (the kernel's backlog takes it)");
            s.write_all(upgrade_request("").as_bytes()).expect("request");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let mut heads: Vec<Vec<u8>> = vec![Vec::new(); n];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && heads.iter().any(|h| !h.windows(4).any(|w| w == b"\r\n\r\n")) {
        for (s, h) in socks.iter_mut().zip(heads.iter_mut()) {
            let mut buf = [0u8; 1024];
            if let Ok(k) = s.read(&mut buf) {
                h.extend_from_slice(&buf[..k]);
            }
        }
        sleep(Duration::from_millis(10));
    }
    socks
        .into_iter()
        .zip(heads)
        .map(|(s, h)| {
            let answer = if h.is_empty() {
                Answer::Nothing
            } else if h.starts_with(b"HTTP/1.1 101 ") {
                Answer::Upgraded
            } else if h.starts_with(b"HTTP/1.1 503 ") {
                Answer::Refused503
            } else {
                Answer::Other
            };
            s.set_nonblocking(false).expect("blocking");
            s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            (s, answer)
        })
        .collect()
}

fn tally(socks: &[(TcpStream, Answer)]) -> HashMap<Answer, usize> {
    let mut t = HashMap::new();
    for (_, a) in socks {
        *t.entry(*a).or_insert(0) += 1;
    }
    t
}

#[test]
fn fd_limit_hit_excess_refused_with_503_no_spinning_and_recovery() {
    let d = Daemon::start_limited(64, &["--echo"]);
    let pid = d.child.id();
    let mut first = Raw::open(d.ws);
    // Far more connections than 64 descriptors allow: the admitted ones are upgraded, every other one is
    // answered 503 at once (a spare descriptor is given up to accept and refuse them), none is left waiting.
    let socks = flood(d.ws, 100, Duration::from_secs(2));
    let t = tally(&socks);
    let upgraded = t.get(&Answer::Upgraded).copied().unwrap_or(0);
    assert!(upgraded >= 30, "{t:?}");
    assert_eq!(t.get(&Answer::Other), None, "only 101 or 503: {t:?}");
    assert_eq!(t.get(&Answer::Nothing), None, "every client gets an answer while saturated: {t:?}");
    assert!(t.contains_key(&Answer::Refused503), "the limit was not reached: {t:?}");
    // Saturated and still being knocked on: no CPU spinning, and the admitted clients are served.
    let before = cpu_time(pid);
    let started = Instant::now();
    let knockers = flood(d.ws, 20, Duration::from_millis(500));
    assert!(knockers.iter().all(|(_, a)| *a == Answer::Refused503), "{:?}", tally(&knockers));
    sleep(Duration::from_millis(500));
    let share = (cpu_time(pid) - before).as_secs_f64() / started.elapsed().as_secs_f64();
    assert!(share < 0.5, "the daemon used {:.0}% of a CPU while saturated", share * 100.0);
    first.send(&text_frame("served while saturated"));
    assert_eq!(first.read_frame().expect("echo").text(), "served while saturated");
    // Recovery: once the admitted ones leave, new clients are served again.
    drop(first);
    drop(socks);
    drop(knockers);
    assert!(eventually(Duration::from_secs(3), || metric(d.http, "wschat_connections") == 0));
    let mut last = Raw::open(d.ws);
    last.send(&text_frame("recovered"));
    assert_eq!(last.read_frame().expect("echo").text(), "recovered");
}

// ----- SIGTERM under load -----

#[test]
fn sigterm_while_clients_chat_closes_everyone_with_1001_and_loses_nothing() {
    const CLIENTS: usize = 12;
    let mut d = Daemon::start(&[]);
    let ws = d.ws;
    let logged_in = Arc::new(Barrier::new(CLIENTS + 1));
    let round_trips = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let logged_in = Arc::clone(&logged_in);
            let round_trips = Arc::clone(&round_trips);
            std::thread::spawn(move || {
                let mut raw = Raw::open(ws);
                raw.send(&text_frame(&format!(r#"{{"type":"login","name":"c{i}"}}"#)));
                // Logged in once the user list is back; nobody says anything before everyone is.
                assert_eq!(raw.read_json()["type"], "user_list");
                logged_in.wait();
                // Say "i:seq" to everyone, one at a time, until the server says goodbye; record the last
                // sequence number seen from every sender (checking each sender's order has no gap).
                let mut last: HashMap<usize, i64> = HashMap::new();
                let mut seq = 0i64;
                let mut waiting_for_own = false;
                loop {
                    if !waiting_for_own {
                        let say = format!(r#"{{"type":"say","to_uid":"all","content":"{i}:{seq}"}}"#);
                        // The server may be gone by now; a failed write shows up as the end below.
                        let _ = raw.stream.write_all(&text_frame(&say));
                        waiting_for_own = true;
                    }
                    let f = raw.read_frame().unwrap_or_else(|| panic!("client {i}: EOF without a close frame"));
                    if f.opcode == CLOSE {
                        assert!(raw.read_frame().is_none(), "client {i}: EOF after the close");
                        return (f.close_code(), last);
                    }
                    let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
                    if v["type"] != "say" {
                        continue;
                    }
                    let content = v["content"].as_str().expect("content");
                    let (from, n) = content.split_once(':').expect("i:seq");
                    let (from, n): (usize, i64) = (from.parse().expect("sender"), n.parse().expect("seq"));
                    let prev = last.insert(from, n).unwrap_or(-1);
                    assert_eq!(n, prev + 1, "client {i}: from {from} got {n} after {prev}");
                    if from == i {
                        assert_eq!(n, seq);
                        seq += 1;
                        waiting_for_own = false;
                        round_trips.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    logged_in.wait();
    assert!(eventually(Duration::from_secs(10), || round_trips.load(Ordering::Relaxed) >= CLIENTS * 100));
    let status = d.terminate(Duration::from_secs(5)).expect("exited within 5 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    let results: Vec<(Option<u16>, HashMap<usize, i64>)> =
        threads.into_iter().map(|t| t.join().expect("client thread")).collect();
    for (i, (code, _)) in results.iter().enumerate() {
        assert_eq!(*code, Some(1001), "client {i}");
    }
    // Nothing lost: a say that reached its own sender was queued for everyone before the goodbyes, so every
    // client saw exactly as much of every sender as the sender itself saw come back.
    for sender in 0..CLIENTS {
        let own = results[sender].1.get(&sender).copied().unwrap_or(-1);
        assert!(own >= 0, "client {sender} never got its own say back");
        for (receiver, (_, last)) in results.iter().enumerate() {
            assert_eq!(last.get(&sender).copied().unwrap_or(-1), own, "{receiver} from {sender}");
        }
    }
}

// ----- garbage -----

#[test]
fn garbage_from_many_connections_at_once() {
    let d = Daemon::start(&["--echo"]);
    let pid = d.child.id();
    let baseline = open_fds(pid);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut conns = Vec::new();
    for i in 0..200 {
        let len = 1 + (random() % 3000) as usize;
        let junk: Vec<u8> = (0..len).map(|_| random() as u8).collect();
        let mut raw = Raw::connect(d.ws);
        if i % 2 == 0 {
            // Garbage where the request should be.
            raw.send(&junk);
        } else {
            // Garbage frames after a good handshake.
            raw.send(upgrade_request("").as_bytes());
            raw.send(&junk);
        }
        conns.push(raw);
    }
    sleep(Duration::from_millis(300));
    for raw in conns {
        reset(raw.stream);
    }
    assert_back_to(&d, baseline, 0, Duration::from_secs(5));
    let mut last = Raw::open(d.ws);
    last.send(&text_frame("fine"));
    assert_eq!(last.read_frame().expect("echo").text(), "fine");
}
