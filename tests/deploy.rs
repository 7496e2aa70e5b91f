//! The deployment files in dist/ with the real proxies: nginx with dist/nginx/wschat.conf and HAProxy with
//! dist/haproxy/haproxy.cfg (their ports and addresses replaced by free loopback ones), in front of the real
//! daemon, run as docs/DEPLOY.md says. Clients connect from 127.0.0.2, .3, … so that the daemon, behind the
//! proxy on 127.0.0.1, can tell them apart only through X-Forwarded-For or the PROXY header.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::probe::{connect_from, eventually, metric};
use common::{skip_or_fail, text_frame, upgrade_request, Daemon, Raw};
use wschat::proxy::{Endpoints, ProxyHeader, Version};

const NGINX_CONF: &str = include_str!("../dist/nginx/wschat.conf");
const HAPROXY_CFG: &str = include_str!("../dist/haproxy/haproxy.cfg");

/// `text` with each `(from, to)` replaced; panics when `from` is not there, so a change to the dist/ file
/// that this test would no longer follow fails it instead of testing something else.
fn replace_all(text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(out.contains(from), "{from:?} not found in the dist/ file");
        out = out.replace(from, to);
    }
    out
}

/// A free port on 127.0.0.1 (free when this returns).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A folder of its own under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wschat-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A proxy process in the foreground, killed when dropped; `log` is where its errors go.
struct Proxy {
    child: Child,
    log: PathBuf,
}

impl Proxy {
    /// Spawns `cmd` and waits (at most 5 s) until every address in `listens` accepts connections.
    fn start(mut cmd: Command, log: PathBuf, listens: &[SocketAddr]) -> Proxy {
        let child = cmd.stdin(Stdio::null()).spawn().expect("spawn the proxy");
        let mut p = Proxy { child, log };
        let up = eventually(Duration::from_secs(5), || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("the proxy exited ({status}): {}", p.log_text());
            }
            listens.iter().all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
        });
        assert!(up, "the proxy does not listen on {listens:?}: {}", p.log_text());
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `program` is: in PATH, or in /usr/sbin or /sbin (where Debian puts both proxies, and which a
/// user's PATH may lack), as `make deps` looks for it.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A connection from `from` to `addr` that sends an upgrade request with `headers`; returns the status of the
/// answer (0: closed without one) and the connection, past the answer's head.
fn upgrade_from(from: &str, addr: SocketAddr, headers: &str) -> (u16, Raw) {
    let mut raw = Raw::from_stream(connect_from(Some(from.parse::<IpAddr>().unwrap()), addr, false));
    raw.send(upgrade_request(headers).as_bytes());
    let status = status_of(&mut raw);
    (status, raw)
}

/// The status of the next response head on `raw` (0 when the connection ends first).
fn status_of(raw: &mut Raw) -> u16 {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match raw.stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return 0,
        }
    }
    let head = String::from_utf8_lossy(&buf);
    head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Logs `raw` (past a 101) in as `name` in room `room`: user_list, then its own login.
fn login(raw: &mut Raw, name: &str, room: &str) {
    raw.send(&text_frame(&serde_json::json!({"type": "login", "name": name, "room_id": room}).to_string()));
    assert_eq!(raw.read_json()["type"], "user_list");
    while !(raw.read_json()["type"] == "login") {}
}

/// `a` says `content` to everyone; `b` (in the same room) receives it.
fn say_and_hear(a: &mut Raw, b: &mut Raw, content: &str) {
    a.send(&text_frame(&serde_json::json!({"type": "say", "to_uid": "all", "content": content}).to_string()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "{content:?} did not arrive");
        let v = b.read_json();
        if v["type"] == "say" && v["content"] == content {
            return;
        }
    }
}

/// One HTTP/1.0 GET of `path` from `from` to `addr`, optionally with a PROXY header first; the whole
/// response as text (empty when the connection is closed without one).
fn get(from: &str, addr: SocketAddr, prefix: &[u8], path: &str) -> String {
    let mut s = connect_from(Some(from.parse::<IpAddr>().unwrap()), addr, false);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(prefix);
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The checks both proxies must pass, with the daemon behind `ws` (the proxy's WebSocket port) and `web`
/// (its page port) started with `--max-connections-per-ip 1`: the chat works through the proxy, and the
/// daemon sees each client's own address, whatever a client claims in X-Forwarded-For.
fn client_addresses_reach_the_daemon(ws: SocketAddr, web: SocketAddr) {
    let (status, mut a) = upgrade_from("127.0.0.2", ws, "");
    assert_eq!(status, 101, "the first connection from 127.0.0.2");
    let (status, mut b) = upgrade_from("127.0.0.3", ws, "");
    assert_eq!(status, 101, "the first connection from 127.0.0.3");
    login(&mut a, "alice", "deploy");
    login(&mut b, "bob", "deploy");
    say_and_hear(&mut a, &mut b, "through the proxy");
    say_and_hear(&mut b, &mut a, "and back");
    // One connection per client address: the daemon sees 127.0.0.2, not the proxy's 127.0.0.1.
    assert_eq!(upgrade_from("127.0.0.2", ws, "").0, 429, "a second connection from 127.0.0.2");
    // A client's own X-Forwarded-For changes nothing: it is still its address that counts.
    let forged = "X-Forwarded-For: 192.0.2.9\r\n";
    assert_eq!(upgrade_from("127.0.0.2", ws, forged).0, 429, "127.0.0.2 claiming to be 192.0.2.9");
    let (first, _c) = upgrade_from("127.0.0.4", ws, forged);
    let (second, _d) = upgrade_from("127.0.0.5", ws, forged);
    assert_eq!((first, second), (101, 101), "two clients claiming the same address are two clients");
    assert_eq!(upgrade_from("127.0.0.4", ws, forged).0, 429, "a second forged one from 127.0.0.4");
    // The page and /healthz load through the proxy; the page connects to the proxy's WebSocket port.
    let page = get("127.0.0.2", web, b"", "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let meta = format!("<meta name=\"wschat-ws-port\" content=\"{}\">", ws.port());
    assert!(page.contains(&meta), "the page names the proxy's port {}: {page}", ws.port());
    let health = get("127.0.0.2", web, b"", "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // A connection that ends frees its client's place.
    drop(a);
    assert!(eventually(Duration::from_secs(5), || upgrade_from("127.0.0.2", ws, "").0 == 101));
}

#[test]
fn nginx_in_front_passes_the_client_address() {
    let Some(nginx) = find_program("nginx") else {
        return skip_or_fail("nginx_in_front_passes_the_client_address", "nginx (Debian package nginx)");
    };
    let d = Daemon::start(&["--trust-proxy", "127.0.0.1/32", "--max-connections-per-ip", "1"]);
    let dir = TempDir::new("nginx");
    let (ws_port, web_port) = (free_port(), free_port());
    let site = replace_all(
        NGINX_CONF,
        &[
            ("server 127.0.0.1:17272;", format!("server {};", d.ws)),
            ("content=\"17272\"", format!("content=\"{}\"", d.ws.port())),
            ("server 127.0.0.1:15151;", format!("server {};", d.http)),
            ("listen 7272;", format!("listen 127.0.0.1:{ws_port};")),
            ("content=\"7272\"", format!("content=\"{ws_port}\"")),
            ("listen 80;", format!("listen 127.0.0.1:{web_port};")),
        ],
    );
    std::fs::write(dir.0.join("wschat.conf"), site).unwrap();
    let p = |name: &str| dir.0.join(name).display().to_string();
    let main = format!(
        "pid {pid};\nerror_log {log} warn;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n  \
         client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n  \
         uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  include {site};\n}}\n",
        pid = p("nginx.pid"),
        log = p("error.log"),
        t = dir.0.display(),
        site = p("wschat.conf"),
    );
    std::fs::write(dir.0.join("nginx.conf"), main).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.args(["-p", &p(""), "-c", &p("nginx.conf"), "-e", &p("error.log")])
        .args(["-g", "daemon off; master_process off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let ws: SocketAddr = ([127, 0, 0, 1], ws_port).into();
    let web: SocketAddr = ([127, 0, 0, 1], web_port).into();
    let proxy = Proxy::start(cmd, dir.0.join("error.log"), &[ws, web]);
    client_addresses_reach_the_daemon(ws, web);
    assert_eq!(metric(d.http, "wschat_per_ip_rejections_total"), 3);
    // /metrics is for the host only, not for clients through nginx.
    assert!(get("127.0.0.2", web, b"", "/metrics").starts_with("HTTP/1.1 403"));
    drop(proxy);
}

#[test]
fn haproxy_in_front_sends_proxy_v2() {
    let Some(haproxy) = find_program("haproxy") else {
        return skip_or_fail("haproxy_in_front_sends_proxy_v2", "haproxy (Debian package haproxy)");
    };
    let d = Daemon::start(&["--trust-proxy", "127.0.0.1/32", "--proxy-protocol", "--max-connections-per-ip", "1"]);
    let dir = TempDir::new("haproxy");
    // HAProxy takes the daemon's WebSocket port number on another address, as on the public one in the file.
    let ws: SocketAddr = ([127, 0, 0, 4], d.ws.port()).into();
    let web: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let cfg = replace_all(
        HAPROXY_CFG,
        &[
            // Two file descriptors a connection: within the limits of a test's shell, not only a server's.
            ("maxconn 20000", "maxconn 1000".to_string()),
            ("bind 192.0.2.10:7272", format!("bind {ws}")),
            ("bind :80", format!("bind {web}")),
            ("server wschat 127.0.0.1:7272 ", format!("server wschat {} ", d.ws)),
            ("server wschat 127.0.0.1:55151 ", format!("server wschat {} ", d.http)),
        ],
    );
    let cfg_path = dir.0.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let log = dir.0.join("haproxy.log");
    let mut cmd = Command::new(haproxy);
    cmd.arg("-f").arg(&cfg_path).arg("-db").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    let proxy = Proxy::start(cmd, log, &[ws, web]);
    client_addresses_reach_the_daemon(ws, web);
    let metrics = get("127.0.0.1", web, b"", "/metrics");
    assert_eq!(common::probe::metric_in(&metrics, "wschat_per_ip_rejections_total"), 3, "{metrics}");
    // Straight to the daemon, past HAProxy: closed without an answer, from an untrusted peer even with a
    // header, and from the trusted address without one.
    let endpoints = Endpoints { source: "192.0.2.9:40000".parse().unwrap(), destination: d.ws };
    let v2 = &ProxyHeader { version: Version::V2, endpoints: Some(endpoints) }.encode()[..];
    assert_eq!(upgrade_from_with(UNTRUSTED, d.ws, v2), 0, "a header from 127.0.0.2");
    assert_eq!(upgrade_from_with("127.0.0.1", d.ws, b""), 0, "no header from 127.0.0.1");
    assert_eq!(get(UNTRUSTED, d.http, v2, "/healthz"), "", "the web port, from 127.0.0.2");
    assert_eq!(get("127.0.0.1", d.http, b"", "/healthz"), "", "the web port, no header");
    drop(proxy);
}

const UNTRUSTED: &str = "127.0.0.2";

/// As [`upgrade_from`], with `prefix` (a PROXY header, say) before the request; the status only.
fn upgrade_from_with(from: &str, addr: SocketAddr, prefix: &[u8]) -> u16 {
    let mut raw = Raw::from_stream(connect_from(Some(from.parse::<IpAddr>().unwrap()), addr, false));
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(upgrade_request("").as_bytes());
    let _ = raw.stream.write_all(&bytes);
    status_of(&mut raw)
}
