//! The example backends of the README (examples/backend.py with Python's standard library alone,
//! examples/backend.php with plain PHP) against the real daemon: the token each signs logs in with its account
//! and name, and each API call they make does what the README says (online, a send to an account, a say from
//! the server, a kick), with exit code 1 for a refused call.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::api::key_file;
use common::{skip_or_fail, text_frame, Daemon, Raw};
use serde_json::{json, Value};

/// Runs `interpreter example args…` against `d`; its exit code and what it printed.
fn run(interpreter: &str, example: &Path, env: &[(&str, String)], args: &[&str]) -> (i32, String) {
    let out = Command::new(interpreter)
        .arg(example)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run the example");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn tool_present(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

fn the_example_backend_works(interpreter: &str, file: &str) {
    if !tool_present(interpreter) {
        return skip_or_fail(&format!("the_example_backend_works({file})"), interpreter);
    }
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join(file);
    let secret = std::env::temp_dir().join(format!("wschat-test-backend-{}-{file}.secret", std::process::id()));
    std::fs::write(&secret, b"a secret the backend and the chat share\n").expect("write the secret");
    let key = key_file(&format!("backend-{file}"));
    let d = Daemon::start(&[
        "--auth-key",
        secret.to_str().expect("path"),
        "--api",
        "127.0.0.1:0",
        "--api-key-file",
        key.to_str().expect("path"),
    ]);
    let env = [
        ("WSCHAT_SECRET_FILE", secret.display().to_string()),
        ("WSCHAT_API", format!("http://{}", d.api.expect("api"))),
        ("WSCHAT_API_KEY_FILE", key.display().to_string()),
    ];
    let (code, token) = run(interpreter, &example, &env, &["token", "acct-42", "Ann"]);
    assert_eq!(code, 0, "{token}");
    let mut ann = Raw::open(d.ws);
    ann.send(&text_frame(&json!({"type":"login","name":"typed","room_id":"1","token":token}).to_string()));
    let list = ann.read_json();
    assert_eq!(list["user_list"][0], json!({"uid":1,"name":"Ann","user_id":"acct-42"}), "{list}");
    ann.read_json(); // her own login

    let (code, online) = run(interpreter, &example, &env, &["online", "acct-42"]);
    let online: Value = serde_json::from_str(&online).expect("JSON");
    assert_eq!((code, online["online"].as_bool()), (0, Some(true)), "{online}");
    let (code, _) = run(interpreter, &example, &env, &["send-user", "acct-42", "{\"type\":\"ping_me\"}"]);
    assert_eq!((code, ann.read_text()), (0, "{\"type\":\"ping_me\"}".to_string()));
    let (code, _) = run(interpreter, &example, &env, &["say", "1", "maintenance at 5"]);
    let say = ann.read_json();
    assert_eq!((code, say["from_uid"].as_u64(), say["content"].as_str()), (0, Some(0), Some("maintenance at 5")));
    let (code, refused) = run(interpreter, &example, &env, &["say", "nobody-here", "x"]);
    assert_eq!(code, 1, "a refused call: {refused}");
    assert!(refused.contains("not_found"), "{refused}");
    let (code, _) = run(interpreter, &example, &env, &["kick", "acct-42", "bye"]);
    assert_eq!((code, ann.expect_close()), (0, 4000));
}

#[test]
fn the_python_example_backend_signs_tokens_and_calls_the_api() {
    the_example_backend_works("python3", "backend.py");
}

#[test]
fn the_php_example_backend_signs_tokens_and_calls_the_api() {
    the_example_backend_works("php", "backend.php");
}
