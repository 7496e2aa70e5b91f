//! `--web-root DIR`: the real daemon serves a folder laid out like workerman-chat's Web folder on its web
//! port, over raw TCP: content types, HEAD, 304s, index.html for folders, 404s, /healthz and /metrics
//! winning over files of those names, and a corpus of traversal attempts, none of which ever returns the
//! secret placed beside the folder; large files sent from the file as readers take them (memory per reader
//! bounded by a chunk, byte-exact to slow readers, a file that shrinks mid-send ends the answer short).

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::probe::{connect_from, eventually, metric, metric_in, metrics};
use common::Daemon;

/// The largest file `--web-root` serves (16 MiB), the size of the files the tests below stream.
const LARGE: usize = 16 * 1024 * 1024;

/// What one connection streaming a file may hold: a 64 KiB chunk of it, and its head.
const CHUNK_AND_HEAD: u64 = 64 * 1024 + 1024;

const SECRET: &str = "TOP-SECRET-b81c5e";

/// `base/secret.txt` beside `base/web/`, the folder served; removed when dropped.
struct Tree {
    base: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let base = std::env::temp_dir().join(format!("wschat-web-root-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let web = base.join("web");
        for dir in ["css", "js", "img", "swf", "sub", "fonts"] {
            std::fs::create_dir_all(web.join(dir)).unwrap();
        }
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("secret.txt"), SECRET).unwrap();
        std::fs::write(base.join("outside/secret.txt"), SECRET).unwrap();
        std::fs::write(base.join("outside/index.html"), SECRET).unwrap();
        let files: [(&str, &[u8]); 14] = [
            ("index.html", b"<!doctype html><title>chat</title>"),
            ("sub/index.html", b"<p>sub</p>"),
            ("css/style.css", b"body{margin:0}"),
            ("js/web_socket.js", b"var WebSocket;"),
            ("js/app.mjs", b"export {};"),
            ("img/face.gif", b"GIF89a"),
            ("img/logo.png", b"\x89PNG\r\n"),
            ("img/photo.jpg", b"\xff\xd8\xff"),
            ("favicon.ico", b"\0\0\x01\0"),
            ("swf/WebSocketMain.swf", b"FWS\x0a"),
            ("fonts/a.woff2", b"wOF2"),
            ("healthz", b"a file named healthz"),
            ("metrics", b"a file named metrics"),
            ("blob.bin", b"\x00\x01"),
        ];
        for (path, body) in files {
            std::fs::write(web.join(path), body).unwrap();
        }
        std::fs::write(web.join(".htpasswd"), SECRET).unwrap();
        symlink("../secret.txt", web.join("leak.txt")).unwrap();
        symlink(base.join("secret.txt"), web.join("leak-abs.txt")).unwrap();
        symlink("../outside", web.join("outdir")).unwrap();
        symlink(base.join("outside"), web.join("outdir-abs")).unwrap();
        symlink("/", web.join("slash")).unwrap();
        Tree { base }
    }

    fn web(&self) -> PathBuf {
        self.base.join("web")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn start(tree: &Tree) -> Daemon {
    Daemon::start(&["--web-root", tree.web().to_str().unwrap()])
}

/// Sends `request` as it is and reads the whole answer (the daemon closes after one).
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn get(addr: SocketAddr, target: &str) -> Response {
    Response::parse(exchange(addr, format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()))
}

struct Response {
    raw: Vec<u8>,
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: Vec<u8>) -> Response {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
            panic!("no complete head: {:?}", String::from_utf8_lossy(&raw));
        });
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line: {head}"));
        let body = raw[split + 4..].to_vec();
        Response { raw, status, head, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

#[test]
fn serves_the_folder_with_its_content_types() {
    let tree = Tree::new("types");
    let d = start(&tree);
    for (path, ct, body) in [
        ("/", "text/html; charset=utf-8", &b"<!doctype html><title>chat</title>"[..]),
        ("/index.html", "text/html; charset=utf-8", b"<!doctype html><title>chat</title>"),
        ("/?ws=ws://127.0.0.1:1/", "text/html; charset=utf-8", b"<!doctype html><title>chat</title>"),
        ("/sub/", "text/html; charset=utf-8", b"<p>sub</p>"),
        ("/css/style.css", "text/css; charset=utf-8", b"body{margin:0}"),
        ("/js/web_socket.js?v=2", "text/javascript; charset=utf-8", b"var WebSocket;"),
        ("/js/app.mjs", "text/javascript; charset=utf-8", b"export {};"),
        ("/img/face.gif", "image/gif", b"GIF89a"),
        ("/img/logo.png", "image/png", b"\x89PNG\r\n"),
        ("/img/photo.jpg", "image/jpeg", b"\xff\xd8\xff"),
        ("/favicon.ico", "image/x-icon", b"\0\0\x01\0"),
        ("/swf/WebSocketMain.swf", "application/x-shockwave-flash", b"FWS\x0a"),
        ("/fonts/a.woff2", "font/woff2", b"wOF2"),
        ("/blob.bin", "application/octet-stream", b"\x00\x01"),
        (&format!("http://{}/css/style.css", d.http), "text/css; charset=utf-8", b"body{margin:0}"),
    ] {
        let r = get(d.http, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("Content-Type"), Some(ct), "{path}");
        assert_eq!(r.header("Content-Length"), Some(body.len().to_string().as_str()), "{path}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"), "{path}");
        assert!(r.header("ETag").is_some() && r.header("Last-Modified").is_some(), "{path}: {}", r.text());
        assert_eq!(r.body, body, "{path}");
    }
    let r = get(d.http, "/sub?a=1");
    assert_eq!((r.status, r.header("Location")), (301, Some("/sub/?a=1")), "{}", r.text());
    for path in ["/nope.html", "/css/nope.css", "/fonts/", "/index.html/", "/.htpasswd"] {
        let r = get(d.http, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = get(d.http, "/healthz");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "/healthz wins over the file: {}", r.text());
    let r = get(d.http, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("wschat_http_requests_total"), "{}", r.text());
    let r = Response::parse(exchange(d.http, b"POST /index.html HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
}

#[test]
fn head_and_conditional_requests() {
    let tree = Tree::new("cond");
    let d = start(&tree);
    let full = get(d.http, "/css/style.css");
    let head = Response::parse(exchange(d.http, b"HEAD /css/style.css HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(head.status, 200);
    assert_eq!(head.head, full.head, "HEAD: the same head");
    assert_eq!(head.header("Content-Length"), Some("14"));
    assert!(head.body.is_empty(), "HEAD: no body");
    let etag = full.header("ETag").unwrap();
    let date = full.header("Last-Modified").unwrap();
    for (name, value) in [("If-None-Match", etag), ("If-Modified-Since", date), ("If-None-Match", "*")] {
        for method in ["GET", "HEAD"] {
            let req = format!("{method} /css/style.css HTTP/1.1\r\nHost: x\r\n{name}: {value}\r\n\r\n");
            let r = Response::parse(exchange(d.http, req.as_bytes()));
            assert_eq!(r.status, 304, "{method} {name}: {}", r.text());
            assert!(r.body.is_empty(), "304: no body");
            assert_eq!(r.header("ETag"), Some(etag));
        }
    }
    for (name, value) in [("If-None-Match", "W/\"stale\""), ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")] {
        let req = format!("GET /css/style.css HTTP/1.1\r\nHost: x\r\n{name}: {value}\r\n\r\n");
        let r = Response::parse(exchange(d.http, req.as_bytes()));
        assert_eq!((r.status, r.body.as_slice()), (200, &b"body{margin:0}"[..]), "{name}: {}", r.text());
    }
}

#[test]
fn no_path_leaves_the_folder() {
    let tree = Tree::new("traversal");
    let d = start(&tree);
    let long = format!("/{}", "a/".repeat(700));
    let longer = format!("/{}", "..%2f".repeat(300));
    let targets: Vec<String> = [
        "/../secret.txt",
        "/../../../../../../etc/passwd",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2E%2fsecret.txt",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..\\secret.txt",
        "/..\\..\\secret.txt",
        "/..%5csecret.txt",
        "/..%5Csecret.txt",
        "/%2e%2e%5csecret.txt",
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%ae%c0%ae%c0%afsecret.txt",
        "/%e0%80%ae%e0%80%ae/secret.txt",
        "/..%00/secret.txt",
        "/secret.txt%00.html",
        "/index.html%00/../../secret.txt",
        "//etc/passwd",
        "///etc/passwd",
        "/./../secret.txt",
        "/./index.html",
        "/....//secret.txt",
        "/...//secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/%2e/secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/leak.txt",
        "/leak-abs.txt",
        "/outdir/secret.txt",
        "/outdir/",
        "/outdir",
        "/outdir-abs/secret.txt",
        "/outdir-abs/",
        "/slash/etc/passwd",
        "/.htpasswd",
        "/%2ehtpasswd",
        "/%",
        "/%zz/secret.txt",
        "/a%2",
        "http://x/../secret.txt",
        "http://x/%2e%2e/secret.txt",
        "*",
        long.as_str(),
        longer.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert!(targets.len() >= 20);
    let mut requests: Vec<(String, Vec<u8>)> =
        targets.iter().map(|t| (t.clone(), format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())).collect();
    // A NUL in the middle of the path, raw; a path of raw invalid UTF-8; an overlong raw head.
    requests.push(("raw NUL".into(), b"GET /index.html\0../../secret.txt HTTP/1.1\r\n\r\n".to_vec()));
    requests.push(("raw invalid UTF-8".into(), b"GET /\xc0\xae\xc0\xae/secret.txt HTTP/1.1\r\n\r\n".to_vec()));
    requests.push(("raw tab".into(), b"GET /..\t/secret.txt HTTP/1.1\r\n\r\n".to_vec()));
    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "../".repeat(3000));
    requests.push(("huge".into(), huge.into_bytes()));
    for (what, request) in &requests {
        let raw = exchange(d.http, request);
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(SECRET), "{what}: the secret leaked: {text}");
        assert!(!text.contains("root:x:0:0"), "{what}: /etc/passwd leaked: {text}");
        let r = Response::parse(raw);
        assert!([400, 403, 404, 414, 431].contains(&r.status), "{what}: {}", r.text());
        let mut head = request.clone();
        head.splice(..3, *b"HEAD");
        let raw = exchange(d.http, &head);
        assert!(!String::from_utf8_lossy(&raw).contains(SECRET), "{what} (HEAD)");
    }
    let status = |t: &str| get(d.http, t).status;
    assert_eq!(status("/../secret.txt"), 400);
    assert_eq!(status("/leak.txt"), 403, "a symlink out of the folder");
    assert_eq!(status("/outdir/secret.txt"), 403, "a symlinked folder out of the folder");
    assert_eq!(status("/%252e%252e/secret.txt"), 404, "double encoding is a literal name");
    assert_eq!(status(&long), 414);
    // Still serving.
    let r = get(d.http, "/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(get(d.http, "/").status, 200);
    assert!(Path::new(&tree.base).join("secret.txt").exists());
}

#[test]
fn a_large_file_reaches_a_slow_reader_whole() {
    let tree = Tree::new("large");
    let size = 4 * 1024 * 1024;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(tree.web().join("big.bin"), &body).unwrap();
    let d = start(&tree);
    // A reader with a small receive buffer that takes a few seconds: longer than the one-second linger a
    // finished answer has once it is queued, with most of the file still in the daemon then.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&d.http.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let started = std::time::Instant::now();
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read failed after {} bytes: {e}", got.len()),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    assert_eq!(got.len() - head_end, size, "the whole file, after {:?}", started.elapsed());
    assert!(got[head_end..] == body[..]);
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "the read was slow enough to matter: {:?}",
        started.elapsed()
    );
}

/// `len` bytes of a pattern that shows where any byte came from.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A line of /proc/PID/status in KiB (`VmRSS`, `VmHWM`: the peak).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing"))
}

/// Reads until end of stream or an error (a reset counts as the end); returns what came.
fn read_all(s: &mut TcpStream, pause: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
        std::thread::sleep(pause);
    }
}

#[test]
fn sixty_clients_that_never_read_a_16_mib_file_pin_a_chunk_each_not_the_file() {
    let tree = Tree::new("nonreaders");
    std::fs::write(tree.web().join("big.bin"), pattern(LARGE)).unwrap();
    let d = start(&tree);
    let pid = d.child.id();
    assert_eq!(get(d.http, "/index.html").status, 200);
    let (rss_before, peak_before) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    // Sixty clients, each from an address of its own (the web port's per-address cap stays out of it), with
    // a receive window as small as the kernel allows, ask for the file and never read.
    let clients: Vec<TcpStream> = (0..60u8)
        .map(|i| {
            let mut s = connect_from(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 3, 10 + i))), d.http, true);
            s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
            s
        })
        .collect();
    // Every request answered: the counter in each /metrics snapshot excludes that snapshot's own request.
    let mut polls = 0;
    let answered = eventually(Duration::from_secs(10), || {
        let n = metric(d.http, "wschat_http_requests_total");
        polls += 1;
        n >= 1 + 60 + (polls - 1)
    });
    assert!(answered, "the sixty requests were not all answered");
    let snapshot = metrics(d.http);
    let queued = metric_in(&snapshot, "wschat_output_queued_bytes");
    let (rss, peak) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    eprintln!(
        "60 non-readers of a 16 MiB file: RSS {rss_before} -> {rss} KiB, peak {peak_before} -> {peak} KiB, \
         {queued} bytes queued"
    );
    assert!(
        queued <= 60 * CHUNK_AND_HEAD,
        "queued web bytes are counted and bounded by a chunk per reader: {queued} bytes queued"
    );
    assert!(
        peak < peak_before + 64 * 1024,
        "the daemon's peak RSS grew from {peak_before} to {peak} KiB for 60 readers of a 16 MiB file"
    );
    drop(clients);
    // Still serving.
    assert_eq!(get(d.http, "/healthz").status, 200);
}

#[test]
fn a_slow_reader_gets_a_16_mib_file_byte_exact_while_the_daemon_holds_a_chunk() {
    let tree = Tree::new("slow16");
    let body = pattern(LARGE);
    std::fs::write(tree.web().join("big.bin"), &body).unwrap();
    let d = start(&tree);
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let mut most_queued = 0;
    let started = Instant::now();
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read failed after {} bytes: {e}", got.len()),
        }
        if got.len() % 16 == 0 {
            most_queued = most_queued.max(metric(d.http, "wschat_output_queued_bytes"));
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    let r = Response::parse(got);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(LARGE.to_string().as_str()));
    assert_eq!(r.body.len(), LARGE, "the whole file, after {:?}", started.elapsed());
    assert!(r.body == body, "byte for byte");
    eprintln!("16 MiB to a slow reader in {:?}; at most {most_queued} bytes queued", started.elapsed());
    assert!(most_queued <= CHUNK_AND_HEAD, "a slow reader holds a chunk, not the file: {most_queued} bytes queued");
}

#[test]
fn a_file_that_shrinks_while_it_is_sent_ends_the_answer_without_a_byte_past_it() {
    let tree = Tree::new("shrink");
    let original = pattern(LARGE);
    let path = tree.web().join("big.bin");
    std::fs::write(&path, &original).unwrap();
    let d = start(&tree);
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // The daemon sends what the socket takes while this client is not reading; then the file is cut to
    // half plus a bit (more than the socket buffers hold).
    std::thread::sleep(Duration::from_millis(300));
    let cut = LARGE / 2 + 100;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut as u64).unwrap();
    let r = Response::parse(read_all(&mut s, Duration::ZERO));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(LARGE.to_string().as_str()), "announced as it was opened");
    eprintln!("file cut to {cut} bytes mid-send: {} body bytes arrived", r.body.len());
    assert!(r.body.len() <= cut, "nothing past where the file now ends: {} bytes", r.body.len());
    assert!(r.body[..] == original[..r.body.len()], "only the file's own bytes");
    assert!(r.body.len() < LARGE, "the answer ends short, so the client knows it is cut");
    // The daemon goes on serving, and the connection is gone from its count.
    assert_eq!(get(d.http, "/healthz").status, 200);
    assert!(eventually(Duration::from_secs(3), || metric(d.http, "wschat_output_queued_bytes") == 0));
}

/// Round trips of says from `a` to `b`, one every 2 ms, `n` of them or as many as `limit` allows; pings the
/// the daemon sends a silent client in between are answered.
fn say_latencies(a: &mut common::Raw, b: &mut common::Raw, n: usize, limit: Duration) -> Vec<Duration> {
    let until = |r: &mut common::Raw, content: &str| loop {
        let f = r.read_frame().expect("a frame");
        if f.opcode == 9 {
            // A silent client is pinged while it waits: answer, so it stays.
            r.send(&common::client_frame(true, 0, 10, &f.payload));
            continue;
        }
        assert_eq!(f.opcode, 1, "a text frame");
        let v: serde_json::Value = serde_json::from_slice(&f.payload).expect("JSON");
        if v["type"] == "say" && v["content"] == content {
            return;
        }
    };
    let started = Instant::now();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let content = format!("probe-{i}");
        let sent = Instant::now();
        a.send(&common::text_frame(&format!(r#"{{"type":"say","to_uid":"all","content":"{content}"}}"#)));
        until(b, &content);
        out.push(sent.elapsed());
        until(a, &content);
        if started.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

/// Chat latency of a bystander pair while 64 clients (32 reading as fast as they can, again and again, 32
/// reading 64 KiB every 10 ms) fetch a 16 MiB file. A measurement, not a test: `cargo test --release --test
/// web_root -- --ignored --nocapture web_flood`. Prints p50/p99 quiet and flooded for each of five runs
/// (at most 200 says or 30 s each), then their medians. With `WEB_FLOOD_ONCE=1` each client fetches the file
/// once: 64 GETs at once rather than a sustained flood.
#[test]
#[ignore]
fn web_flood_bystander_latency() {
    use common::probe::{login, percentile};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let tree = Tree::new("flood");
    std::fs::write(tree.web().join("big.bin"), pattern(LARGE)).unwrap();
    let d = start(&tree);
    let pid = d.child.id();
    let (mut a, _) = login(d.ws, "a", "quiet");
    let (mut b, _) = login(d.ws, "b", "quiet");
    // Before large files were streamed, a say could wait seconds behind the flood.
    a.set_read_timeout(Duration::from_secs(120)).unwrap();
    b.set_read_timeout(Duration::from_secs(120)).unwrap();
    // WEB_FLOOD_ONCE=1: each of the 64 fetches the file once (64 GETs at once), instead of again and again.
    let once = std::env::var_os("WEB_FLOOD_ONCE").is_some();
    let mut rows = Vec::new();
    for run in 0..5 {
        let mut quiet = say_latencies(&mut a, &mut b, 300, Duration::from_secs(30));
        let stop = Arc::new(AtomicBool::new(false));
        let fetched = Arc::new(AtomicU64::new(0));
        let peak_before = status_kib(pid, "VmHWM");
        let readers: Vec<_> = (0..64u8)
            .map(|i| {
                let (stop, fetched, http) = (stop.clone(), fetched.clone(), d.http);
                let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 4, 10 + i));
                std::thread::spawn(move || {
                    let pause = if i % 2 == 0 { Duration::ZERO } else { Duration::from_millis(10) };
                    if once {
                        // The probe is already running: the 64 GETs arrive in the middle of it.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    let mut fetches = 0;
                    while !stop.load(Ordering::Relaxed) && (!once || fetches == 0) {
                        fetches += 1;
                        let mut s = connect_from(Some(ip), http, false);
                        s.set_read_timeout(Some(Duration::from_millis(if once { 30_000 } else { 500 }))).unwrap();
                        if s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
                            continue;
                        }
                        let mut chunk = vec![0; 64 * 1024];
                        while !stop.load(Ordering::Relaxed) {
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => fetched.fetch_add(n as u64, Ordering::Relaxed),
                            };
                            std::thread::sleep(pause);
                        }
                    }
                })
            })
            .collect();
        if !once {
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut flooded = say_latencies(&mut a, &mut b, 200, Duration::from_secs(30));
        let rss = status_kib(pid, "VmRSS");
        let peak = status_kib(pid, "VmHWM");
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        let row = [
            percentile(&mut quiet, 50.0),
            percentile(&mut quiet, 99.0),
            percentile(&mut flooded, 50.0),
            percentile(&mut flooded, 99.0),
        ];
        eprintln!(
            "run {run}: bystander p50/p99 quiet {:?}/{:?}, flooded {:?}/{:?}; {} MiB fetched; RSS {rss} KiB, \
             peak {peak_before} -> {peak} KiB",
            row[0],
            row[1],
            row[2],
            row[3],
            fetched.load(Ordering::Relaxed) >> 20
        );
        rows.push(row);
        std::thread::sleep(Duration::from_millis(2500));
    }
    let median = |i: usize| {
        let mut v: Vec<Duration> = rows.iter().map(|r| r[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    eprintln!(
        "median of {} runs: bystander p50/p99 quiet {:?}/{:?}, flooded {:?}/{:?}",
        rows.len(),
        median(0),
        median(1),
        median(2),
        median(3)
    );
}

/// The daemon's memory while 60 clients read a 16 MiB file slowly (64 KiB every 50 ms, for 4 s). A
/// measurement, not a test: `cargo test --release --test web_root -- --ignored --nocapture web_slow_readers`.
#[test]
#[ignore]
fn web_slow_readers_rss() {
    let tree = Tree::new("slow60");
    std::fs::write(tree.web().join("big.bin"), pattern(LARGE)).unwrap();
    let d = start(&tree);
    let pid = d.child.id();
    let peak_before = status_kib(pid, "VmHWM");
    let http = d.http;
    let readers: Vec<_> = (0..60u8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = connect_from(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 5, 10 + i))), http, false);
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let (mut chunk, mut got, started) = (vec![0; 64 * 1024], 0, Instant::now());
                while started.elapsed() < Duration::from_secs(4) {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                got
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let rss = status_kib(pid, "VmRSS");
    let got: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    eprintln!(
        "60 slow readers of a 16 MiB file: RSS {rss} KiB at 2 s, peak {peak_before} -> {} KiB, {} MiB read",
        status_kib(pid, "VmHWM"),
        got >> 20
    );
}
