//! Shared helpers for integration tests: start the real `wschat` binary on free loopback ports.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// A running daemon, killed when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// The bound WebSocket address.
    pub ws: SocketAddr,
    /// The bound HTTP address.
    pub http: SocketAddr,
    /// The rest of its stdout.
    pub stdout: BufReader<ChildStdout>,
}

impl Daemon {
    /// Starts `wschat --ws 127.0.0.1:0 --http 127.0.0.1:0 ARGS…` and waits for its "listening" line.
    pub fn start(args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
            .args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wschat");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the listening line");
        let (ws, http) = parse_listening_line(&line).unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Daemon { child, ws, http, stdout }
    }

    /// `ws://ADDR/`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.ws)
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `wschat listening ws=ADDR http=ADDR`.
pub fn parse_listening_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("wschat listening ")?;
    let mut ws = None;
    let mut http = None;
    for part in rest.split_whitespace() {
        if let Some(a) = part.strip_prefix("ws=") {
            ws = a.parse().ok();
        } else if let Some(a) = part.strip_prefix("http=") {
            http = a.parse().ok();
        }
    }
    Some((ws?, http?))
}
