//! wschat-dump live: the real tcpdump captures loopback while the real daemon plays the seed scenario, its
//! stream piped into `wschat-dump -` (`tcpdump -U -w - | wschat-dump -`). Each frame must be printed while the
//! capture is still running, and the whole exchange decoded. Skips (and says why) when tcpdump is missing or
//! not permitted to capture.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tung::{connect, recv, Ws};
use common::Daemon;
use serde_json::Value;
use tungstenite::Message;

/// How long to wait for one thing.
const WAIT: Duration = Duration::from_secs(10);

fn tcpdump_path() -> Option<String> {
    ["/usr/bin/tcpdump", "/usr/sbin/tcpdump", "/sbin/tcpdump", "/bin/tcpdump"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}

fn leave(mut ws: Ws) {
    ws.close(None).expect("close");
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if ws.read().is_err() {
            break;
        }
    }
}

/// Kills what it holds when dropped, so a failing test leaves no capture running.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The events printed by wschat-dump so far, and a wait for the next one that matches.
struct Events {
    rx: Receiver<Value>,
    seen: Vec<Value>,
}

impl Events {
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<(), String> {
        if self.seen.iter().any(&pred) {
            return Ok(());
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    let hit = pred(&v);
                    self.seen.push(v);
                    if hit {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err(format!("timed out waiting for {what}")),
                Err(RecvTimeoutError::Disconnected) => return Err(format!("wschat-dump ended before {what}")),
            }
        }
    }
}

fn frame_text(v: &Value, dir: &str, text: &str) -> bool {
    v["event"] == "frame" && v["dir"] == dir && v["text"] == text
}

#[test]
fn live_pipe_from_tcpdump_prints_each_frame_as_it_arrives() {
    let Some(tcpdump) = tcpdump_path() else {
        common::skip_or_fail("live_pipe_from_tcpdump_prints_each_frame_as_it_arrives", "tcpdump");
        return;
    };
    let daemon = Daemon::start(&[]);
    let port = daemon.ws.port();
    let mut td = Command::new(&tcpdump)
        .args(["-i", "lo", "-U", "--immediate-mode", "-w", "-", &format!("tcp port {port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpdump");
    let td_out = td.stdout.take().expect("tcpdump stdout");
    let td_err = td.stderr.take().expect("tcpdump stderr");
    let mut reaper = Reaper(vec![td]);

    // tcpdump says "listening on" once it captures; anything else first means it cannot.
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = channel();
    {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(td_err).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = ready_tx.send(());
                }
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
    }
    if ready_rx.recv_timeout(WAIT).is_err() {
        common::note_skip(
            "live_pipe_from_tcpdump_prints_each_frame_as_it_arrives",
            &format!("tcpdump cannot capture here:\n{}", log.lock().unwrap()),
        );
        return;
    }

    let mut dump = Command::new(env!("CARGO_BIN_EXE_wschat-dump"))
        .args(["-", "--json", "--port", &port.to_string()])
        .stdin(Stdio::from(td_out))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wschat-dump");
    let dump_out = dump.stdout.take().expect("dump stdout");
    let mut dump_err = dump.stderr.take().expect("dump stderr");
    reaper.0.push(dump);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(dump_out).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let mut events = Events { rx, seen: Vec::new() };

    let result = (|| -> Result<(), String> {
        let mut zhu = connect(&daemon);
        zhu.send(Message::text(r#"{"type":"login","name":"猪猪"}"#)).unwrap();
        assert_eq!(recv(&mut zhu)["type"], "user_list");
        assert_eq!(recv(&mut zhu)["type"], "login");
        // Live: the frame is decoded while the capture runs on.
        events.wait_for("猪猪's login frame", |v| frame_text(v, "c2s", r#"{"type":"login","name":"猪猪"}"#))?;

        let mut me = connect(&daemon);
        me.send(Message::text(r#"{"type":"login","name":"mynick"}"#)).unwrap();
        assert_eq!(recv(&mut me)["type"], "user_list");
        assert_eq!(recv(&mut me)["type"], "login");
        assert_eq!(recv(&mut zhu)["type"], "login");
        events.wait_for("mynick's login frame", |v| frame_text(v, "c2s", r#"{"type":"login","name":"mynick"}"#))?;

        let say = r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#;
        me.send(Message::text(say)).unwrap();
        assert_eq!(recv(&mut me)["type"], "say");
        assert_eq!(recv(&mut zhu)["type"], "say");
        events.wait_for("the say frame", |v| frame_text(v, "c2s", say))?;
        events.wait_for("the relayed say", |v| {
            v["event"] == "frame" && v["dir"] == "s2c" && v["json"]["content"] == "hi,  all !"
        })?;
        leave(me);
        assert_eq!(recv(&mut zhu)["type"], "logout");
        leave(zhu);
        events.wait_for("both teardowns", |v| v["event"] == "tcp_close" && v["conn"] == 2)?;
        events.wait_for("the first teardown", |v| v["event"] == "tcp_close" && v["conn"] == 1)
    })();

    // Stop the capture: tcpdump flushes and exits, wschat-dump sees the end of its input and exits 0.
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(reaper.0[0].id() as i32, libc::SIGINT);
    }
    let _ = reaper.0[0].wait();
    std::thread::sleep(Duration::from_millis(200));
    let tcpdump_log = log.lock().unwrap().clone();
    if let Err(e) = result {
        let dropped = tcpdump_log.lines().any(|l| l.ends_with("dropped by kernel") && !l.starts_with("0 "));
        if dropped {
            common::note_skip(
                "live_pipe_from_tcpdump_prints_each_frame_as_it_arrives",
                &format!("the kernel dropped packets ({e}):\n{tcpdump_log}"),
            );
            return;
        }
        panic!("{e}\ntcpdump:\n{tcpdump_log}\nevents so far: {:#?}", events.seen);
    }
    let status = reaper.0[1].wait().expect("wait for wschat-dump");
    let mut err = String::new();
    let _ = dump_err.read_to_string(&mut err);
    assert!(status.success(), "wschat-dump failed: {err}");
    while let Ok(v) = events.rx.recv_timeout(Duration::from_millis(500)) {
        events.seen.push(v);
    }

    // The whole exchange, decoded: handshakes, the 101s, the unmasked client frames in order.
    let seen = &events.seen;
    assert_eq!(seen.iter().filter(|v| v["event"] == "tcp_handshake").count(), 2);
    assert!(seen
        .iter()
        .filter(|v| v["event"] == "http_response")
        .all(|v| v["status"] == 101 && v["accept"] == "valid"));
    let sent: Vec<&str> = seen
        .iter()
        .filter(|v| v["conn"] == 2 && v["event"] == "frame" && v["dir"] == "c2s" && v["opcode"] == "text")
        .map(|v| v["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        sent,
        [r#"{"type":"login","name":"mynick"}"#, r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#]
    );
    assert!(seen.iter().all(|v| v["event"] != "packet_skipped"));
}
