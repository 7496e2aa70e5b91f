//! Redis with Sentinel for a test: a master, a replica and three sentinels on free loopback ports
//! (persistence off, `down-after-milliseconds` 1000), each stopped by its PID when dropped. The sentinels'
//! configuration files (which they rewrite) live in a directory of the test's own.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::RedisServer;

/// The name the sentinels know the master by.
pub const MASTER: &str = "mymaster";

/// One sentinel process.
pub struct Sentinel {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Sentinel {
    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A master, its replica and three sentinels.
pub struct SentinelSet {
    /// The two data servers; which one is the master changes with a failover.
    pub servers: Vec<RedisServer>,
    /// The sentinels.
    pub sentinels: Vec<Sentinel>,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl SentinelSet {
    /// Starts them all and waits until the sentinels know the replica; `None` when redis-server is not
    /// installed.
    pub fn start(test: &str) -> Option<SentinelSet> {
        let dir = std::env::temp_dir().join(format!("wschat-test-sentinel-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the sentinels");
        // Replication without a file: a full sync streams straight to the replica, nothing lands on disk.
        let dir_text = dir.display().to_string();
        let no_disk = ["--dir", &dir_text, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"];
        let master = RedisServer::start_with(&no_disk)?;
        let port = master.port.to_string();
        let mut replica_args = no_disk.to_vec();
        replica_args.extend_from_slice(&["--replicaof", "127.0.0.1", &port]);
        let replica = RedisServer::start_with(&replica_args)?;
        let mut set = SentinelSet { servers: vec![master, replica], sentinels: Vec::new(), dir };
        for _ in 0..3 {
            set.start_sentinel();
        }
        let ready = set.eventually(Duration::from_secs(20), |s| {
            s.sentinel_cli(0, &["SENTINEL", "replicas", MASTER]).contains("slave")
                && s.servers[1].cli(&["INFO", "replication"]).contains("master_link_status:up")
        });
        assert!(ready, "the sentinels did not see the replica in sync");
        Some(set)
    }

    fn start_sentinel(&mut self) {
        let port = free_port();
        let conf = self.dir.join(format!("sentinel-{port}.conf"));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {MASTER} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n\
             sentinel parallel-syncs {MASTER} 1\n",
            self.dir.display(),
            self.servers[0].port
        );
        std::fs::write(&conf, text).expect("write a sentinel's configuration");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a sentinel");
        wait_listening(port, "a sentinel");
        self.sentinels.push(Sentinel { child: Some(child), port });
    }

    /// `redis+sentinel://127.0.0.1:A,127.0.0.1:B,127.0.0.1:C/mymaster`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// Runs `redis-cli` against sentinel `i`.
    pub fn sentinel_cli(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.sentinels[i].port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (installed with redis-server)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The port of the master as a live sentinel says.
    pub fn master_port(&self) -> Option<u16> {
        (0..self.sentinels.len()).filter(|&i| self.sentinels[i].child.is_some()).find_map(|i| {
            self.sentinel_cli(i, &["SENTINEL", "get-master-addr-by-name", MASTER]).lines().nth(1)?.trim().parse().ok()
        })
    }

    /// Which of [`SentinelSet::servers`] is the master now.
    pub fn master_index(&self) -> usize {
        let port = self.master_port().expect("a sentinel names the master");
        self.servers.iter().position(|s| s.port == port).expect("the master is one of the servers")
    }

    /// Asks for a planned failover and waits until the sentinels name the other server.
    pub fn failover(&self) {
        let before = self.master_port();
        let live = self.sentinels.iter().position(|s| s.child.is_some()).expect("a live sentinel");
        let answer = self.sentinel_cli(live, &["SENTINEL", "failover", MASTER]);
        assert!(answer.contains("OK"), "SENTINEL failover: {answer}");
        let moved = self.eventually(Duration::from_secs(20), |s| s.master_port().is_some_and(|p| Some(p) != before));
        assert!(moved, "the sentinels did not move the master");
    }

    /// Waits until the replica of the current master is in sync again (before a second failover).
    pub fn wait_replica_in_sync(&self) {
        let replica = 1 - self.master_index();
        let synced = self.eventually(Duration::from_secs(30), |s| {
            s.servers[replica].cli(&["INFO", "replication"]).contains("master_link_status:up")
                && s.sentinel_cli(0, &["SENTINEL", "replicas", MASTER]).contains(&s.servers[replica].port.to_string())
        });
        assert!(synced, "the replica did not sync with the new master");
    }

    /// Polls `cond` every 50 ms for up to `limit`.
    pub fn eventually(&self, limit: Duration, mut cond: impl FnMut(&SentinelSet) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        self.sentinels.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
