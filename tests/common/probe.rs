//! Probes for tests that measure the daemon from outside: its metrics, its memory, descriptors and CPU time,
//! chat clients that log in, peers that cannot read, and latency percentiles.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use super::{text_frame, Raw};

/// The JSON text messages arriving on `raw` within `wait` (the read timeout is 5 s again after).
pub fn messages_within(raw: &mut Raw, wait: Duration) -> Vec<serde_json::Value> {
    raw.set_read_timeout(wait).expect("timeout");
    let mut got = Vec::new();
    while let Some(f) = raw.try_read_frame() {
        if f.opcode == 1 {
            got.push(serde_json::from_slice(&f.payload).expect("JSON"));
        }
    }
    raw.set_read_timeout(Duration::from_secs(5)).expect("timeout");
    got
}

/// The value of a metric from GET /metrics on the web port `http`.
pub fn metric(http: SocketAddr, name: &str) -> u64 {
    metric_in(&metrics(http), name)
}

/// One GET /metrics on the web port `http`: the response, head and body, as text.
pub fn metrics(http: SocketAddr) -> String {
    let mut raw = Raw::connect(http);
    raw.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.read_head()
}

/// The value of metric `name` in a response from [`metrics`], so several can be read from one snapshot.
pub fn metric_in(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from {metrics}"))
}

/// Resident memory of a process, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// How many file descriptors a process holds (/proc/PID/fd).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd").count()
}

/// User plus system CPU time a process has used (/proc/PID/stat). The same as
/// `wschat::bench::sys::process_cpu_time`, which the tests of the daemon cannot use: they build without the
/// `bench` feature too.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the parenthesised command name start with field 3 (state); utime and stime are 14, 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / per_second)
}

/// Waits up to `limit` for `cond`, polling; returns whether it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a chat connection and logs in as `name` in `room`; returns it with its uid once its user_list
/// and its own login have arrived (history in between is skipped).
pub fn login(ws: SocketAddr, name: &str, room: &str) -> (Raw, u64) {
    let mut raw = Raw::open(ws);
    let login = serde_json::json!({"type": "login", "name": name, "room_id": room});
    raw.send(&text_frame(&login.to_string()));
    assert_eq!(raw.read_json()["type"], "user_list");
    loop {
        let v = raw.read_json();
        if v["type"] == "login" && v["name"] == name {
            return (raw, v["uid"].as_u64().expect("uid"));
        }
    }
}

/// A TCP connection from `local` (any loopback address, or None for the default) to `addr`; with
/// `tiny_window` its receive buffer is as small as the kernel allows, set before connecting so the window
/// never grows: a peer that cannot take in what the server sends.
pub fn connect_from(local: Option<IpAddr>, addr: SocketAddr, tiny_window: bool) -> TcpStream {
    let SocketAddr::V4(v4) = addr else { panic!("IPv4 expected") };
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns until it is handed to TcpStream; the
    // pointers passed point to live values of the sizes given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        if tiny_window {
            let size: libc::c_int = 1;
            let p = &size as *const libc::c_int as *const libc::c_void;
            let rc = libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, 4);
            assert_eq!(rc, 0);
        }
        if let Some(IpAddr::V4(ip)) = local {
            let a = sin(ip, 0);
            let rc = libc::bind(fd, &a as *const libc::sockaddr_in as *const libc::sockaddr, len);
            assert_eq!(rc, 0, "bind {ip}: {}", std::io::Error::last_os_error());
        }
        let a = sin(*v4.ip(), v4.port());
        let rc = libc::connect(fd, &a as *const libc::sockaddr_in as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// The `p`-th percentile (0..=100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    assert!(!samples.is_empty());
    samples.sort_unstable();
    let i = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[i]
}

/// Round trips of `n` says from `a` to `b` (both in the same room, nobody else speaking), one every
/// `gap`: how long each took from send until `b` read it.
pub fn say_latencies(a: &mut Raw, b: &mut Raw, n: usize, gap: Duration) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let content = format!("probe-{i}");
        let start = Instant::now();
        a.send(&text_frame(&format!(r#"{{"type":"say","to_uid":"all","content":"{content}"}}"#)));
        loop {
            let v = b.read_json();
            if v["type"] == "say" && v["content"] == content.as_str() {
                break;
            }
        }
        out.push(start.elapsed());
        loop {
            let v = a.read_json();
            if v["type"] == "say" && v["content"] == content.as_str() {
                break;
            }
        }
        std::thread::sleep(gap);
    }
    out
}

impl Raw {
    /// Wraps a connected stream (such as one from [`connect_from`]) with a read timeout of 5 s.
    pub fn from_stream(stream: TcpStream) -> Raw {
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream, buf: Vec::new(), timeout_ends: false, tls: None }
    }
}
