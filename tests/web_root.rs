//! `--web-root DIR`: the real daemon serves a folder laid out like workerman-chat's Web folder on its web
//! port, over raw TCP: content types, HEAD, 304s, index.html for folders, 404s, /healthz and /metrics
//! winning over files of those names, and a corpus of traversal attempts, none of which ever returns the
//! secret placed beside the folder.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Daemon;

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
