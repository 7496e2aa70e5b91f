//! systemd integration with the real thing: readiness on a NOTIFY_SOCKET of the test's own, socket
//! activation by Debian's `systemd-socket-activate`, and a restart under socket activation (the test holds
//! the two listening sockets as systemd would and starts the daemon on them twice) that refuses no
//! connection attempt.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::probe::eventually;
use common::{skip_or_fail, Daemon};

/// Two different free loopback ports (both held while choosing, so they differ).
fn two_free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

fn healthz(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

#[test]
fn readiness_and_stopping_reach_the_notify_socket() {
    let path = std::env::temp_dir().join(format!("wschat-notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut d = Daemon::start_with(&[], |cmd| {
        cmd.env("NOTIFY_SOCKET", &path);
    });
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("a notification");
    assert_eq!(buf[..n].trim_ascii_end(), b"READY=1", "sent once both ports listen");
    assert!(healthz(d.http.port()).is_some_and(|t| t.starts_with("HTTP/1.1 200")));
    assert!(d.terminate(Duration::from_secs(5)).is_some_and(|s| s.success()));
    let n = sock.recv(&mut buf).expect("a notification");
    assert_eq!(buf[..n].trim_ascii_end(), b"STOPPING=1");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn socket_activation_by_systemd_socket_activate() {
    if Command::new("systemd-socket-activate").arg("--version").output().is_err() {
        return skip_or_fail(
            "socket_activation_by_systemd_socket_activate",
            "systemd-socket-activate (Debian package systemd)",
        );
    }
    let (ws, http) = two_free_ports();
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{ws}"), "-l", &format!("127.0.0.1:{http}"), "--fdname=ws:http"])
        .arg(env!("CARGO_BIN_EXE_wschat"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate");
    // The first connection makes systemd-socket-activate start the daemon on the two sockets (once it listens).
    let mut health = None;
    assert!(eventually(Duration::from_secs(10), || {
        health = healthz(http);
        health.is_some()
    }));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), format!("wschat listening ws=127.0.0.1:{ws} http=127.0.0.1:{http}"), "served, not bound");
    assert!(health.is_some_and(|t| t.starts_with("HTTP/1.1 200")));
    let (mut raw, uid) = common::probe::login(format!("127.0.0.1:{ws}").parse().unwrap(), "activated", "1");
    assert!(uid > 0);
    raw.send(&common::text_frame(r#"{"type":"say","to_uid":"all","content":"hi"}"#));
    assert_eq!(raw.read_json()["content"], "hi");
    let _ = child.kill();
    let _ = child.wait();
}

/// The daemon started on the test's two listening sockets, as systemd would: fds 3 and 4, LISTEN_FDS,
/// LISTEN_FDNAMES, and LISTEN_PID set to the daemon's own pid by the shell that execs it.
fn activated(ws: &TcpListener, http: &TcpListener) -> Child {
    let (ws_fd, http_fd) = (ws.as_raw_fd(), http.as_raw_fd());
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=ws:http exec "$0""#, env!("CARGO_BIN_EXE_wschat")])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: fcntl and dup2 are async-signal-safe; this runs in the forked child before exec and touches only
    // descriptors. The sockets are first moved out of the way (one of them may be 3 or 4 already), then put
    // at 3 and 4 without close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            let (a, b) = (libc::fcntl(ws_fd, libc::F_DUPFD, 10), libc::fcntl(http_fd, libc::F_DUPFD, 10));
            if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(a);
            libc::close(b);
            Ok(())
        });
    }
    cmd.spawn().expect("spawn the daemon")
}

#[test]
fn a_restart_under_socket_activation_refuses_no_connection_attempt() {
    let ws = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = http.local_addr().unwrap().port();
    let mut first = activated(&ws, &http);
    assert!(eventually(Duration::from_secs(10), || healthz(port).is_some()), "the first daemon serves");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let prober = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match healthz(port) {
                    Some(t) if t.starts_with("HTTP/1.1 200") => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(first.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the first daemon did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = ok.load(Ordering::Relaxed);
    let mut second = activated(&ws, &http);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "an attempt was refused or went unanswered during the restart");
    assert!(ok.load(Ordering::Relaxed) > before, "the second daemon answered on the same sockets");
}

#[test]
fn the_dist_units_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        return skip_or_fail("the_dist_units_verify", "systemd-analyze (Debian package systemd)");
    }
    // `systemd-analyze verify` checks that ExecStart= exists: point it at the binary under test.
    let dir = std::env::temp_dir().join(format!("wschat-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    let mut units = Vec::new();
    for name in ["wschat.service", "wschat-ws.socket", "wschat-http.socket"] {
        let text = std::fs::read_to_string(dist.join(name)).expect("a unit in dist/");
        let text = text.replace("/usr/local/bin/wschat", env!("CARGO_BIN_EXE_wschat"));
        std::fs::write(dir.join(name), text).unwrap();
        units.push(dir.join(name));
    }
    // The TLS drop-in, found beside the unit through SYSTEMD_UNIT_PATH.
    let drop_in = std::fs::read_to_string(dist.join("wschat.service.d/tls.conf")).expect("the TLS drop-in");
    std::fs::create_dir_all(dir.join("wschat.service.d")).unwrap();
    let drop_in = drop_in.replace("/usr/local/bin/wschat", env!("CARGO_BIN_EXE_wschat"));
    let verify = |drop_in: &str| {
        std::fs::write(dir.join("wschat.service.d/tls.conf"), drop_in).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .args(&units)
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, said) = verify(&drop_in);
    // A control: a key systemd does not know in the drop-in is reported, so the drop-in was read.
    let (_, control) = verify(&format!("{drop_in}NotAKey=1\n"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok && said.trim().is_empty(), "systemd-analyze verify: {said}");
    assert!(control.contains("NotAKey"), "the drop-in was not read: {control}");
    let service = std::fs::read_to_string(dist.join("wschat.service")).unwrap();
    for hardening in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(service.contains(hardening), "wschat.service lacks {hardening:?}");
    }
}

#[test]
fn the_tls_drop_in_starts_the_daemon() {
    // The drop-in's command line, with the test's certificate in place of /etc/wschat/tls and free ports.
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    let drop_in = std::fs::read_to_string(dist.join("wschat.service.d/tls.conf")).expect("the TLS drop-in");
    let line = drop_in.lines().filter_map(|l| l.strip_prefix("ExecStart=")).find(|l| !l.is_empty()).expect("ExecStart");
    let dir = common::tls::temp_dir("drop-in");
    let Some(pair) = common::tls::make_pair(&dir, "unit") else {
        return skip_or_fail("the_tls_drop_in_starts_the_daemon", "the openssl command (Debian package openssl)");
    };
    let args: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "/etc/wschat/tls/fullchain.pem" => pair.cert.display().to_string(),
            "/etc/wschat/tls/privkey.pem" => pair.key.display().to_string(),
            other => other.to_string(),
        })
        .collect();
    assert!(args.iter().any(|a| a == "--tls-cert"), "{line}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start(&args);
    let mut s =
        common::tls::client(TcpStream::connect(d.http).unwrap(), common::tls::client_config(&[&pair.cert], None));
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let _ = std::fs::remove_dir_all(&dir);
}
