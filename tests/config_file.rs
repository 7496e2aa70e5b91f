//! The configuration file (`--config`) and the environment (`WSCHAT_*`) under the command line, through the
//! real binary: every key round-trips through `--print-config`; precedence command line > environment >
//! file > default; each kind of bad file answered with the file, the line and the key, exit 2; SIGHUP reads
//! the file again (what may change at run time changes, the rest is logged as needing a restart, a broken
//! file changes nothing).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn wschat(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat"));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WSCHAT_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).output().expect("run wschat")
}

fn file(test: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wschat-test-config-{}-{test}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write the file");
    path
}

/// `--print-config` of `args`: its lines that set a key, without the comment saying where it came from.
fn printed(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let out = wschat(&[args, &["--print-config"]].concat(), env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(" # from ").next().unwrap_or(l).to_string())
        .collect()
}

/// A value other than the default for every key (a new flag must be added here).
const EVERY_KEY: &[(&str, &str)] = &[
    ("ws", r#""127.0.0.1:9001""#),
    ("http", r#""127.0.0.1:9002""#),
    ("max-connections", "123"),
    ("max-message-bytes", "4096"),
    ("handshake-timeout-ms", "5000"),
    ("ping-interval-secs", "7"),
    ("send-buffer-limit", "1048576"),
    ("allow-origin", r#"["https://a.example", "https://b.example"]"#),
    ("history", "9"),
    ("max-messages-per-sec", "11"),
    ("echo", "true"),
    ("trace-frames", "true"),
    ("max-output-bytes", "99999999"),
    ("history-budget", "1000000"),
    ("history-welcome-bytes", "2000"),
    ("max-room-users", "77"),
    ("join-burst", "3"),
    ("resume-grace-secs", "12"),
    ("resume-buffer", "65536"),
    ("max-web-connections", "33"),
    ("max-web-pending-per-ip", "4"),
    ("reuse-port", "true"),
    ("web-root", r#""/srv/www""#),
    ("escape-html", "true"),
    ("app-ping-secs", "40"),
    ("trust-proxy", r#"["10.0.0.0/8", "192.168.0.0/16"]"#),
    ("proxy-protocol", "true"),
    ("max-connections-per-ip", "20"),
    ("tls-cert", r#""/etc/wschat/cert.pem""#),
    ("tls-key", r#""/etc/wschat/key.pem""#),
    ("auth-key", r#""/etc/wschat/jwt.pem""#),
    ("auth-optional", "true"),
    ("api", r#""127.0.0.1:8080""#),
    ("api-key-file", r#""/etc/wschat/api.key""#),
    ("max-api-connections", "16"),
    ("coalesce-us", "300"),
    ("log-level", r#""debug""#),
    ("cluster", r#""redis://127.0.0.1:6390/2""#),
    ("cluster-prefix", r#""chat2""#),
    ("cluster-heartbeat-ms", "500"),
    ("cluster-buffer", "1048576"),
    ("cluster-stream-bytes", "2097152"),
];

#[test]
fn every_key_round_trips_through_print_config() {
    let text: String = EVERY_KEY.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let full = file("full", &text);
    let first = printed(&["--config", full.to_str().expect("path")], &[]);
    let want: Vec<String> = EVERY_KEY.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let mut got = first.clone();
    got.sort();
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(got, sorted, "every key took its value from the file, and no key is missing from this test");
    // What it printed is a file that gives the same configuration.
    let out = wschat(&["--config", full.to_str().expect("path"), "--print-config"], &[]);
    let again = file("again", &String::from_utf8_lossy(&out.stdout));
    assert_eq!(printed(&["--config", again.to_str().expect("path")], &[]), first);
    // The defaults round-trip too (keys without a value are printed commented out).
    let out = wschat(&["--print-config"], &[]);
    let defaults = file("defaults", &String::from_utf8_lossy(&out.stdout));
    assert_eq!(printed(&["--config", defaults.to_str().expect("path")], &[]), printed(&[], &[]));
    // A password given as a value is never printed.
    let secret = wschat(&["--cluster", "redis://:hunter2@127.0.0.1:6390", "--print-config"], &[]);
    let text = String::from_utf8_lossy(&secret.stdout);
    assert!(!text.contains("hunter2") && text.contains("# cluster = (set"), "{text}");
}

#[test]
fn the_command_line_wins_over_the_environment_which_wins_over_the_file() {
    let f = file("precedence", "max-connections = 5\nhistory = 2\n");
    let path = f.to_str().expect("path");
    let value = |args: &[&str], env: &[(&str, &str)], key: &str| -> String {
        printed(args, env).into_iter().find(|l| l.starts_with(&format!("{key} = "))).expect("the key")
    };
    assert_eq!(value(&[], &[], "max-connections"), "max-connections = 10000", "the default");
    assert_eq!(value(&["--config", path], &[], "max-connections"), "max-connections = 5", "the file");
    let env = [("WSCHAT_MAX_CONNECTIONS", "6")];
    assert_eq!(value(&["--config", path], &env, "max-connections"), "max-connections = 6", "the environment");
    let cli = ["--config", path, "--max-connections", "7"];
    assert_eq!(value(&cli, &env, "max-connections"), "max-connections = 7", "the command line");
    assert_eq!(value(&cli, &env, "history"), "history = 2", "the file still fills the rest");
    // The file itself may come from the environment, and a switch from a variable.
    let env = [("WSCHAT_CONFIG", path), ("WSCHAT_REUSE_PORT", "true")];
    assert_eq!(value(&[], &env, "history"), "history = 2");
    assert_eq!(value(&[], &env, "reuse-port"), "reuse-port = true");
    // Where each value came from is said.
    let out = wschat(&["--config", path, "--history", "1", "--print-config"], &[("WSCHAT_JOIN_BURST", "2")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("max-connections = 5 # from {path}")), "{text}");
    assert!(text.contains("history = 1 # from the command line"), "{text}");
    assert!(text.contains("join-burst = 2 # from WSCHAT_JOIN_BURST"), "{text}");
}

#[test]
fn a_bad_file_names_the_file_the_line_and_the_key() {
    let cases: [(&str, &str, &str); 7] = [
        ("unknown", "history = 1\n\nno-such-key = 3\n", ":3: no-such-key: not a configuration key"),
        ("type", "# a comment\nreuse-port = \"yes\"\n", ":2: reuse-port: expected true or false, found a string"),
        ("value", "max-connections = \"many\"\n", ":1: max-connections: invalid value 'many'"),
        ("array", "ws = [\"a\"]\n", ":1: ws: expected a string or a number, found an array"),
        ("syntax", "history = 1\nmax-connections = = 2\n", ":2: not a TOML file"),
        ("flag", "help = true\n", ":1: help: not a configuration key"),
        ("range", "join-burst = -1\n", ":1: join-burst: invalid value '-1'"),
    ];
    for (name, text, says) in cases {
        let f = file(name, text);
        let out = wschat(&["--config", f.to_str().expect("path")], &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(&format!("wschat: error: {}{says}", f.display())), "{name}: {err}");
    }
    let out = wschat(&["--config", "/nonexistent/wschat.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/wschat.toml: cannot read it"));
    // A value the flags refuse together (not one alone) is the daemon's usual error.
    let f = file("together", "auth-optional = true\n");
    let out = wschat(&["--config", f.to_str().expect("path")], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The status line's code of an upgrade from `origin`.
fn upgrade_status(ws: std::net::SocketAddr, origin: &str) -> u16 {
    let mut raw = common::Raw::connect(ws);
    raw.send(common::upgrade_request(&format!("Origin: {origin}\r\n")).as_bytes());
    let head = raw.read_head();
    head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn wait_for_log(log: &std::path::Path, says: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(says) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "the log never said {says:?}: {text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn sighup(d: &common::Daemon) {
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe {
        libc::kill(d.child.id() as i32, libc::SIGHUP);
    }
}

#[test]
fn sighup_reads_the_file_again_and_a_broken_one_changes_nothing() {
    let f = file("sighup", "allow-origin = [\"https://a.example\"]\nlog-level = \"warn\"\n");
    let log = std::env::temp_dir().join(format!("wschat-test-config-{}-sighup.log", std::process::id()));
    let stderr = std::fs::File::create(&log).expect("log file");
    let d = common::Daemon::start_with(&["--config", f.to_str().expect("path")], |cmd| {
        cmd.env_remove("RUST_LOG").stderr(stderr);
    });
    assert_eq!(upgrade_status(d.ws, "https://a.example"), 101);
    assert_eq!(upgrade_status(d.ws, "https://b.example"), 403);
    std::fs::write(&f, "allow-origin = [\"https://b.example\"]\nlog-level = \"info\"\nhistory = 5\n").expect("write");
    sighup(&d);
    let text = wait_for_log(&log, "now in force: allow-origin, log-level");
    wait_for_log(&log, "history changed in");
    assert!(text.contains("takes a restart"), "{text}");
    assert_eq!(upgrade_status(d.ws, "https://b.example"), 101, "the new origin is allowed");
    assert_eq!(upgrade_status(d.ws, "https://a.example"), 403, "the old one no longer");
    // A broken file: said why, nothing changed.
    std::fs::write(&f, "allow-origin = [\"https://a.example\"]\nmax-connections = \"x\"\n").expect("write");
    sighup(&d);
    let text = wait_for_log(&log, "the configuration in force is kept");
    assert!(text.contains(&format!("{}:2: max-connections: invalid value 'x'", f.display())), "{text}");
    assert_eq!(upgrade_status(d.ws, "https://b.example"), 101, "still the last good configuration");
    // The same file again: nothing changed.
    std::fs::write(&f, "allow-origin = [\"https://b.example\"]\nlog-level = \"info\"\nhistory = 5\n").expect("write");
    sighup(&d);
    wait_for_log(&log, "read again; nothing changed");
}
