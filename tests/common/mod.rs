//! Shared helpers for integration tests: start the real `wschat` binary on free loopback ports.
#![allow(dead_code)]

pub mod api;
pub mod cluster;
pub mod probe;
pub mod redis;
pub mod sentinel;
pub mod tls;
pub mod tls13;
pub mod tung;

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
    /// The bound API address (`--api`).
    pub api: Option<SocketAddr>,
    /// The rest of its stdout.
    pub stdout: BufReader<ChildStdout>,
}

impl Daemon {
    /// Starts `wschat --ws 127.0.0.1:0 --http 127.0.0.1:0 ARGS…` and waits for its "listening" line.
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_with(args, |_| {})
    }

    /// As [`Daemon::start`], with `configure` having the last word on the command before it is spawned (its
    /// environment, its limits, where its stderr goes); stdout stays a pipe, for the listening line.
    pub fn start_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat"));
        cmd.args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"]).args(args);
        // A test that chose its own certificate keeps it.
        if tls::suite_over_tls() && !args.contains(&"--tls-cert") {
            let pair = tls::suite_pair();
            cmd.arg("--tls-cert").arg(&pair.cert).arg("--tls-key").arg(&pair.key);
        }
        cmd.env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("spawn wschat");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the listening line");
        let parsed = parse_listening_line_api(&line);
        let (ws, http, api) = parsed.unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Daemon { child, ws, http, api, stdout }
    }

    /// As [`Daemon::start`], with the daemon's file-descriptor limit (soft and hard) set to `fd_limit`. It logs
    /// only errors unless RUST_LOG says otherwise: at the limit every refused accept would be a warning.
    pub fn start_limited(fd_limit: u64, args: &[&str]) -> Daemon {
        use std::os::unix::process::CommandExt;
        Daemon::start_with(args, |cmd| {
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", "error");
            }
            // SAFETY: the closure runs in the forked child before exec and only calls setrlimit, which is
            // async-signal-safe and touches no memory shared with the parent.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit { rlim_cur: fd_limit, rlim_max: fd_limit };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
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
    parse_listening_line_api(line).map(|(ws, http, _)| (ws, http))
}

/// As [`parse_listening_line`], with the API's address when the daemon serves one (`api=`).
pub fn parse_listening_line_api(line: &str) -> Option<(SocketAddr, SocketAddr, Option<SocketAddr>)> {
    let rest = line.trim().strip_prefix("wschat listening ")?;
    let (mut ws, mut http, mut api) = (None, None, None);
    for part in rest.split_whitespace() {
        if let Some(a) = part.strip_prefix("ws=") {
            ws = a.parse().ok();
        } else if let Some(a) = part.strip_prefix("http=") {
            http = a.parse().ok();
        } else if let Some(a) = part.strip_prefix("api=") {
            api = a.parse().ok();
        }
    }
    Some((ws?, http?, api))
}

/// A raw TCP client for malformed input: writes exactly the bytes given and reads server frames with its own
/// minimal parser (independent of the crate's codec).
pub struct Raw {
    /// The socket.
    pub stream: std::net::TcpStream,
    buf: Vec<u8>,
    /// A read timeout ends the read (as [`Raw::try_read_frame`] wants) instead of failing the test.
    timeout_ends: bool,
    /// TLS over `stream`, when the suite runs over TLS ([`tls::suite_over_tls`]).
    pub tls: Option<Box<rustls::ClientConnection>>,
}

/// A frame as read by [`Raw`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// FIN bit.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// Unmasked payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Opcodes, as numbers: this harness writes and reads the wire format without the crate's codec.
pub const CONT: u8 = 0x0;
/// Text frame.
pub const TEXT: u8 = 0x1;
/// Binary frame.
pub const BINARY: u8 = 0x2;
/// Close frame.
pub const CLOSE: u8 = 0x8;
/// Ping.
pub const PING: u8 = 0x9;
/// Pong.
pub const PONG: u8 = 0xA;

/// A masked client frame with explicit FIN, RSV bits (high nibble) and opcode.
pub fn client_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11u8, 0x22, 0x33, 0x44];
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A masked, final text frame.
pub fn text_frame(text: &str) -> Vec<u8> {
    client_frame(true, 0, 1, text.as_bytes())
}

/// The upgrade request this harness sends.
pub fn upgrade_request(extra_headers: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
}

impl Raw {
    /// Connects without sending anything.
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        let mut raw = Raw { stream, buf: Vec::new(), timeout_ends: false, tls: None };
        if tls::suite_over_tls() {
            let pair = tls::suite_pair();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
            let config = tls::client_config(&[&pair.cert], None);
            raw.tls = Some(Box::new(rustls::ClientConnection::new(config, name).expect("TLS client")));
        }
        raw
    }

    /// Connects and completes a WebSocket handshake; panics unless the answer is 101.
    pub fn open(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send(upgrade_request("").as_bytes());
        let head = raw.read_head();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
        raw
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        match self.tls.as_mut() {
            Some(tls) => rustls::Stream::new(tls.as_mut(), &mut self.stream).write_all(bytes).expect("write"),
            None => self.stream.write_all(bytes).expect("write"),
        }
    }

    fn fill(&mut self) -> bool {
        use std::io::Read;
        let mut chunk = [0u8; 65536];
        let read = match self.tls.as_mut() {
            // A TCP end without close_notify is the end too: the server's close is what is tested.
            Some(tls) => match rustls::Stream::new(tls.as_mut(), &mut self.stream).read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            None => self.stream.read(&mut chunk),
        };
        match read {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e)
                if self.timeout_ends
                    && matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                false
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads an HTTP response head (and, when it announces one, its body); returns them as text.
    pub fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                let mut text = String::from_utf8_lossy(&head).into_owned();
                let len = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                while self.buf.len() < len && self.fill() {}
                let body: Vec<u8> = self.buf.drain(..len.min(self.buf.len())).collect();
                text.push_str(&String::from_utf8_lossy(&body));
                return text;
            }
            assert!(self.fill(), "connection closed before a response head: {:?}", String::from_utf8_lossy(&self.buf));
        }
    }

    /// Reads the next server frame; `None` on EOF.
    pub fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if self.buf.len() >= 2 {
                let (fin, opcode) = (self.buf[0] & 0x80 != 0, self.buf[0] & 0x0f);
                assert_eq!(self.buf[1] & 0x80, 0, "server frames must not be masked");
                let (len, head) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4),
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= head + len {
                    let payload = self.buf[head..head + len].to_vec();
                    self.buf.drain(..head + len);
                    return Some(RawFrame { fin, opcode, payload });
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    /// The next frame, or `None` when none came within the read timeout (or at the end of the stream).
    pub fn try_read_frame(&mut self) -> Option<RawFrame> {
        self.timeout_ends = true;
        let f = self.read_frame();
        self.timeout_ends = false;
        f
    }

    /// Reads frames until a close frame and returns its code; panics on EOF without one.
    pub fn expect_close(&mut self) -> u16 {
        loop {
            match self.read_frame() {
                Some(f) if f.opcode == 8 => return f.close_code().unwrap_or(1005),
                Some(_) => continue,
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// True when the server closes the TCP connection (EOF or reset) within the read timeout.
    pub fn sees_eof(&mut self) -> bool {
        loop {
            match self.read_frame() {
                Some(_) => continue,
                None => return true,
            }
        }
    }

    /// Reads the next text frame as text.
    pub fn read_text(&mut self) -> String {
        let f = self.read_frame().expect("a frame");
        assert_eq!(f.opcode, 1, "expected text, got {f:?}");
        String::from_utf8(f.payload).expect("UTF-8")
    }

    /// Reads the next text frame as JSON.
    pub fn read_json(&mut self) -> serde_json::Value {
        let f = self.read_frame().expect("a frame");
        assert_eq!(f.opcode, 1, "expected text, got {f:?}");
        serde_json::from_slice(&f.payload).expect("JSON")
    }
}

/// Records that `test` is skipped and why: prints `SKIP: <test>: <reason>` straight to stderr (past the test
/// harness's capture) and appends the line to the file named by WSCHAT_SKIP_LOG, which `make test` lists at
/// the end. For a skip that is not about a missing dependency (say, the kernel dropped packets).
pub fn note_skip(test: &str, reason: &str) {
    use std::io::Write;
    let line = format!("SKIP: {test}: {}\n", reason.trim().replace('\n', " | "));
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os("WSCHAT_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Skips `test` because `missing` (a tool the test needs, e.g. "tcpdump") is not installed: recorded as
/// with [`note_skip`], naming `make deps`, which installs it. Under CI (env CI=true) it fails the test
/// instead: there a missing dependency is a broken set-up, not a reason to pass. The caller returns after it.
pub fn skip_or_fail(test: &str, missing: &str) {
    let reason = format!("{missing} is not installed (`make deps` installs it)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {reason}; under CI a missing dependency fails the test");
    }
    note_skip(test, &reason);
}
