//! Signed identity (`--auth-key`) against the real daemon, over raw sockets: tokens minted here with the
//! same kept crate a backend would use (HS256 with a secret file; RS256 and ES256 with the PEM keys of
//! tests/data/jwt), every kind of bad token answered `unauthorized` with the connection left open, rooms outside
//! the token `forbidden`, the fifth failure in a row closed with 1008, user_id in the user list and the login
//! broadcast (and kept by a resume), on one node and across a cluster; a key file that cannot be used is a
//! clear error at start.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{text_frame, Daemon, Raw};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &[u8] = b"the backend's secret\n";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/jwt").join(name)
}

/// A file holding the HS256 secret, made once per test.
fn secret_file(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("wschat-test-auth-{}-{test}.key", std::process::id()));
    std::fs::write(&path, SECRET).expect("write the secret");
    path
}

fn hs(claims: Value) -> String {
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).expect("sign")
}

fn signed(alg: Algorithm, key: &str, claims: Value) -> String {
    let pem = std::fs::read(data(key)).expect("key");
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    };
    encode(&Header::new(alg), &claims, &key.expect("encoding key")).expect("sign")
}

fn send(raw: &mut Raw, v: Value) {
    raw.send(&text_frame(&v.to_string()));
}

fn login_msg(token: Option<&str>, name: &str, room: &str) -> Value {
    let mut v = json!({"type":"login","name":name,"room_id":room});
    if let Some(t) = token {
        v["token"] = json!(t);
    }
    v
}

/// Sends a login and returns the first answer (a user list or an error).
fn try_login(raw: &mut Raw, token: Option<&str>, name: &str, room: &str) -> Value {
    send(raw, login_msg(token, name, room));
    raw.read_json()
}

/// The `(code, message)` of an error answer.
fn refusal(v: &Value) -> (&str, &str) {
    assert_eq!(v["type"], "error", "{v}");
    (v["code"].as_str().unwrap_or(""), v["message"].as_str().unwrap_or(""))
}

#[test]
fn tokens_of_each_algorithm_log_in_and_name_the_account() {
    let secret = secret_file("algorithms");
    type Mint = Box<dyn Fn(Value) -> String>;
    let cases: [(PathBuf, Mint); 3] = [
        (secret.clone(), Box::new(hs)),
        (data("es256-public.pem"), Box::new(|c| signed(Algorithm::ES256, "es256-private.pem", c))),
        (data("rs256-public.pem"), Box::new(|c| signed(Algorithm::RS256, "rs256-private.pem", c))),
    ];
    for (key, mint) in cases {
        let d = Daemon::start(&["--auth-key", key.to_str().expect("path")]);
        let mut a = Raw::open(d.ws);
        let list = try_login(&mut a, Some(&mint(json!({"sub":"acct-a","exp":now() + 60}))), "Ann", "r");
        assert_eq!(list, json!({"type":"user_list","user_list":[{"uid":1,"name":"Ann","user_id":"acct-a"}]}));
        let login = a.read_json();
        assert_eq!((login["type"].as_str(), login["user_id"].as_str()), (Some("login"), Some("acct-a")));
        // The token's name wins over the login's.
        let mut b = Raw::open(d.ws);
        let t = mint(json!({"sub":"acct-b","exp":now() + 60,"name":"Bea"}));
        let list = try_login(&mut b, Some(&t), "typed", "r");
        assert_eq!(list["user_list"][1], json!({"uid":2,"name":"Bea","user_id":"acct-b"}), "{key:?}");
        let seen = a.read_json();
        assert_eq!(seen, json!({"type":"login","uid":2,"name":"Bea","user_id":"acct-b","time":seen["time"]}));
    }
}

#[test]
fn every_bad_token_is_refused_and_the_connection_stays_open() {
    let d = Daemon::start(&["--auth-key", data("es256-public.pem").to_str().expect("path")]);
    let es = |c: Value| signed(Algorithm::ES256, "es256-private.pem", c);
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let good_claims = json!({"sub":"u","exp":now() + 60});
    let alg_none = format!("{}.{}.", b64(json!({"alg":"none","typ":"JWT"})), b64(good_claims.clone()));
    // An HS256 token whose secret is the server's public key: the classic confusion attack.
    let public = std::fs::read(data("es256-public.pem")).expect("key");
    let confused = encode(&Header::new(Algorithm::HS256), &good_claims, &EncodingKey::from_secret(&public)).unwrap();
    let good = es(good_claims.clone());
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let cases = [
        (None, "this chat needs a \"token\" with each login"),
        (Some("not-a-jwt".to_string()), "the token is not a well-formed JWT"),
        (Some(es(json!({"sub":"u","exp":now() - 600}))), "the token has expired"),
        (Some(es(json!({"sub":"u","exp":now() + 600,"nbf":now() + 300}))), "the token is not valid yet (nbf)"),
        (Some(tampered), "the token's signature does not verify"),
        (Some(alg_none), "the token's alg is not the one of the chat's key"),
        (Some(confused), "the token's alg is not the one of the chat's key"),
        (
            Some(es(json!({"exp":now() + 60}))),
            "the token needs exp and sub (1 to 64 bytes); name a string and rooms an array of strings",
        ),
    ];
    for (i, (token, message)) in cases.iter().enumerate() {
        // Four failures per connection: none of them closes it.
        let mut raw = Raw::open(d.ws);
        let answer = try_login(&mut raw, token.as_deref(), "u", "r");
        assert_eq!(refusal(&answer), ("unauthorized", *message), "case {i}");
        let answer = try_login(&mut raw, Some(&good), "u", "r");
        assert_eq!(answer["type"], "user_list", "the same connection logs in after case {i}: {answer}");
    }
}

#[test]
fn rooms_outside_the_token_are_forbidden_and_the_fifth_failure_closes() {
    let secret = secret_file("rooms");
    let d = Daemon::start(&["--auth-key", secret.to_str().expect("path")]);
    let only_b = hs(json!({"sub":"u","exp":now() + 60,"rooms":["b","c"]}));
    let mut raw = Raw::open(d.ws);
    assert_eq!(
        refusal(&try_login(&mut raw, Some(&only_b), "u", "a")),
        ("forbidden", "the token does not allow this room")
    );
    for _ in 0..3 {
        assert_eq!(refusal(&try_login(&mut raw, None, "u", "b")).0, "unauthorized");
    }
    assert_eq!(refusal(&try_login(&mut raw, Some("x"), "u", "b")).0, "unauthorized");
    assert_eq!(raw.expect_close(), 1008, "the fifth failure in a row");
    // A room the token names is fine.
    let mut ok = Raw::open(d.ws);
    assert_eq!(try_login(&mut ok, Some(&only_b), "u", "c")["type"], "user_list");
}

#[test]
fn anonymous_users_where_allowed_and_a_resume_keeps_the_account() {
    let secret = secret_file("optional");
    let d = Daemon::start(&["--auth-key", secret.to_str().expect("path"), "--auth-optional"]);
    let mut anon = Raw::open(d.ws);
    let list = try_login(&mut anon, None, "anon", "r");
    assert_eq!(list["user_list"], json!([{"uid":1,"name":"anon"}]));
    anon.read_json();
    // A bad token is never taken for an anonymous login.
    let mut bad = Raw::open(d.ws);
    assert_eq!(refusal(&try_login(&mut bad, Some("bad"), "b", "r")).0, "unauthorized");
    // A session of a user with an account resumes as that account.
    let mut acct = Raw::open(d.ws);
    let mut msg = login_msg(Some(&hs(json!({"sub":"acct-9","exp":now() + 60}))), "nine", "r");
    msg["resume"] = json!(true);
    send(&mut acct, msg);
    let list = acct.read_json();
    let session = list["session"].as_str().expect("session").to_string();
    drop(acct);
    let mut back = Raw::open(d.ws);
    send(&mut back, json!({"type":"resume","session":session,"last_mid":null}));
    let list = back.read_json();
    assert_eq!(list["user_list"][1], json!({"uid":2,"name":"nine","user_id":"acct-9"}), "{list}");
    // A newcomer sees both.
    let mut late = Raw::open(d.ws);
    let list = try_login(&mut late, None, "late", "r");
    let ids: Vec<Option<&str>> =
        list["user_list"].as_array().expect("list").iter().map(|u| u["user_id"].as_str()).collect();
    assert_eq!(ids, [None, Some("acct-9"), None]);
}

#[test]
fn an_account_is_known_on_every_node_of_a_cluster() {
    use common::cluster::{node, redis, settle};
    let Some(redis) = redis("an_account_is_known_on_every_node_of_a_cluster") else { return };
    let secret = secret_file("cluster");
    let key = secret.to_str().expect("path");
    let (a, b) = (node(&redis, &["--auth-key", key]), node(&redis, &["--auth-key", key]));
    let mut far = Raw::open(b.ws);
    assert_eq!(try_login(&mut far, Some(&hs(json!({"sub":"far","exp":now() + 60}))), "far", "r")["type"], "user_list");
    far.read_json();
    // Node a has heard of far before near logs in there.
    settle(&[&a, &b]);
    let mut near = Raw::open(a.ws);
    let list = try_login(&mut near, Some(&hs(json!({"sub":"near","exp":now() + 60}))), "near", "r");
    // Logins in the same millisecond on two nodes are ordered by uid: compare as sets.
    let mut ids: Vec<&str> =
        list["user_list"].as_array().expect("list").iter().filter_map(|u| u["user_id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["far", "near"], "{list}");
    let login = far.read_json();
    assert_eq!((login["type"].as_str(), login["user_id"].as_str()), (Some("login"), Some("near")));
    // A node that joins later learns the accounts from the others' snapshots.
    let c = node(&redis, &["--auth-key", key]);
    settle(&[&a, &b, &c]);
    let mut late = Raw::open(c.ws);
    let list = try_login(&mut late, Some(&hs(json!({"sub":"late","exp":now() + 60}))), "late", "r");
    let mut ids: Vec<&str> =
        list["user_list"].as_array().expect("list").iter().filter_map(|u| u["user_id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["far", "late", "near"], "{list}");
}

#[test]
fn a_key_file_that_cannot_be_used_is_an_error_at_start() {
    let bin = env!("CARGO_BIN_EXE_wschat");
    let missing = std::env::temp_dir().join("wschat-test-auth-no-such-key");
    let empty = std::env::temp_dir().join(format!("wschat-test-auth-{}-empty.key", std::process::id()));
    std::fs::write(&empty, b"").expect("write");
    let cases = [
        (vec!["--auth-key".to_string(), missing.display().to_string()], "cannot read it"),
        (vec!["--auth-key".to_string(), empty.display().to_string()], "it is empty"),
        (vec!["--auth-key".to_string(), data("es384-public.pem").display().to_string()], "other than P-256"),
        (vec!["--auth-key".to_string(), data("es256-private.pem").display().to_string()], "a private key"),
        (vec!["--auth-optional".to_string()], "--auth-key"),
    ];
    for (args, says) in cases {
        let out =
            Command::new(bin).args(["--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"]).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.contains("--auth-"), "{args:?}: {err}");
    }
}

#[test]
fn the_bench_logs_in_with_a_token_per_client() {
    let d = Daemon::start(&["--auth-key", data("es256-public.pem").to_str().expect("path")]);
    let url = d.ws_url();
    let bench = env!("CARGO_BIN_EXE_wschat-bench");
    let out = Command::new(bench)
        .args(["connect", "--url", &url, "-c", "30", "-d", "0.1", "--json"])
        .args(["--token-key", data("es256-private.pem").to_str().expect("path")])
        .output()
        .expect("run wschat-bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["connected"].as_u64(), v["failed"].as_u64(), v["token_alg"].as_str()),
        (Some(30), Some(0), Some("ES256"))
    );
    assert_eq!(v["server_errors"], 0, "{v}");
    // Without a token every login is refused, and the bench says so.
    let out = Command::new(bench)
        .args(["connect", "--url", &url, "-c", "3", "-d", "0.1", "--setup-timeout", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(bench).args(["connect", "--url", &url, "--token-key", "/nonexistent/key"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-key /nonexistent/key: cannot read it"));
}
