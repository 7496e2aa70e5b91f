//! The Debian package (`make deb`: cargo-deb) and the self-contained binary (`make static`), built from this
//! checkout and tried as an operator would: the package's contents, its conffile, lintian (no error), the
//! units through `systemd-analyze verify`, and the packaged binary started with the packaged configuration
//! chatting; the static binary with no dynamic section, chatting.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{note_skip, skip_or_fail, text_frame, Raw};
use serde_json::json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn has(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// Starts `binary ARGS… --ws 127.0.0.1:0 --http 127.0.0.1:0`, and has two users chat through it.
fn chats(binary: &Path, args: &[&str]) {
    let mut child = Command::new(binary)
        .args(args)
        .args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
        .expect("the listening line");
    let (ws, _) = common::parse_listening_line(&line).unwrap_or_else(|| panic!("listening line: {line:?}"));
    let mut a = common::probe::login(ws, "mynick", "1").0;
    let mut b = common::probe::login(ws, "other", "1").0;
    a.read_json(); // b's login
    a.send(&text_frame(&json!({"type":"say","to_uid":"all","content":"hi,  all !"}).to_string()));
    let said = b.read_json();
    assert_eq!((said["type"].as_str(), said["content"].as_str()), (Some("say"), Some("hi,  all !")), "{said}");
    let _ = Raw::connect(ws);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_debian_package_installs_the_daemon_its_units_and_its_configuration() {
    let test = "the_debian_package_installs_the_daemon_its_units_and_its_configuration";
    for tool in ["cargo-deb", "lintian", "dpkg-deb", "systemd-analyze"] {
        if !has(tool) {
            let package = if tool == "cargo-deb" { "cargo install cargo-deb" } else { tool };
            return skip_or_fail(test, &format!("{tool} ({package})"));
        }
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_wschat")).parent().expect("the binaries' directory").to_path_buf();
    if !bin_dir.ends_with("release") {
        // The package takes the release binaries; `make test` builds them (cargo test --release).
        return note_skip(test, "run with --release (make test does) to package the binaries under test");
    }
    run(Command::new("make").args(["-s", "deb-package"]).current_dir(root()));
    let deb = root().join("target/debian/wschat_0.1.0-1_amd64.deb");
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/wschat",
        "./usr/bin/wschat-bench",
        "./usr/bin/wschat-dump",
        "./lib/systemd/system/wschat.service",
        "./lib/systemd/system/wschat-ws.socket",
        "./lib/systemd/system/wschat-http.socket",
        "./etc/wschat/wschat.toml",
        "./usr/share/man/man1/wschat.1.gz",
        "./usr/share/man/man1/wschat-bench.1.gz",
        "./usr/share/man/man1/wschat-dump.1.gz",
        "./usr/share/bash-completion/completions/wschat",
        "./usr/share/zsh/vendor-completions/_wschat",
        "./usr/share/fish/vendor_completions.d/wschat.fish",
        "./usr/share/doc/wschat/copyright",
        "./usr/share/doc/wschat/changelog.Debian.gz",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(path)), "{path} is in the package:\n{contents}");
    }
    let conffiles = run(Command::new("dpkg-deb").arg("--info").arg(&deb).arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/wschat/wschat.toml");
    let lint = run(Command::new("lintian").arg("--no-tag-display-limit").arg(&deb));
    assert!(!lint.lines().any(|l| l.starts_with("E: ")), "lintian found errors:\n{lint}");

    // Unpacked where the test can reach it: the units verify, the binary runs with the packaged file.
    let dir = std::env::temp_dir().join(format!("wschat-test-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir));
    let units = dir.join("lib/systemd/system");
    let service = std::fs::read_to_string(units.join("wschat.service")).expect("the service");
    assert!(service.contains("\nExecStart=/usr/bin/wschat --config /etc/wschat/wschat.toml\n"), "{service}");
    let unpacked =
        format!("{} --config {}", dir.join("usr/bin/wschat").display(), dir.join("etc/wschat/wschat.toml").display());
    std::fs::write(
        units.join("wschat.service"),
        service.replace("/usr/bin/wschat --config /etc/wschat/wschat.toml", &unpacked),
    )
    .expect("write");
    let names = ["wschat.service", "wschat-ws.socket", "wschat-http.socket"];
    run(Command::new("systemd-analyze").arg("verify").args(names.iter().map(|n| units.join(n))));
    let config = dir.join("etc/wschat/wschat.toml");
    chats(&dir.join("usr/bin/wschat"), &["--config", config.to_str().expect("path")]);
    let man =
        run(Command::new("sh").arg("-c").arg(format!("zcat {}", dir.join("usr/share/man/man1/wschat.1.gz").display())));
    assert!(man.contains(".TH wschat 1") && man.contains("\\-\\-config"), "the man page documents the flags");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_static_binary_has_no_dynamic_dependency_and_chats() {
    let test = "the_static_binary_has_no_dynamic_dependency_and_chats";
    if std::env::var_os("WSCHAT_TEST_STATIC").is_none() && std::env::var("CI").is_err() {
        // A release build of its own (a few minutes): under CI, or when asked.
        return note_skip(test, "set WSCHAT_TEST_STATIC=1 to build and try `make static`");
    }
    if !has("readelf") {
        return skip_or_fail(test, "readelf (binutils)");
    }
    run(Command::new("make").args(["-s", "static"]).current_dir(root()));
    let binary = root().join("target/static/wschat");
    let dynamic = run(Command::new("readelf").arg("--dynamic").arg(&binary));
    assert!(dynamic.contains("There is no dynamic section"), "{dynamic}");
    let ldd = Command::new("ldd")
        .arg(&binary)
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
    assert!(ldd.as_deref().unwrap_or("not a dynamic executable").contains("not a dynamic executable"), "{ldd:?}");
    chats(&binary, &[]);
}
