//! A redis-server of a test: started on a free loopback port with persistence off, stopped by its PID
//! (killed when dropped). It can be killed and started again on the same port (empty), or frozen with
//! SIGSTOP and thawed with SIGCONT.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server of this test.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Further arguments of redis-server (`--maxmemory …`).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free loopback port; `None` when redis-server is not installed.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// As [`RedisServer::start`], with further arguments of redis-server (`--maxmemory 3mb`).
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut server = RedisServer { child: None, port, extra };
        server.spawn()?;
        Some(server)
    }

    /// Starts one on `port` of 127.0.0.1 (one a test held until now); `None` when redis-server is not
    /// installed.
    pub fn start_on(port: u16) -> Option<RedisServer> {
        let mut server = RedisServer { child: None, port, extra: Vec::new() };
        server.spawn()?;
        Some(server)
    }

    /// Whether redis-server is installed.
    pub fn installed() -> bool {
        Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok()
    }

    fn spawn(&mut self) -> Option<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("spawn redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {} within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(())
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL (all its data is gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server was there a moment ago");
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to it.
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe {
                libc::kill(c.id() as i32, signal);
            }
        }
    }

    /// Runs `redis-cli -p PORT ARGS…` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (installed with redis-server)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
    }
}
