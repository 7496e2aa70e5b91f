//! wschat-dump on the committed captures of the seed scenario, made with the real tcpdump against the real
//! daemon (tests/fixtures/make-fixtures.sh): pcap from `-i lo`, the same as pcapng, pcap from `-i any` (SLL2),
//! and an `-i any` capture in which the kernel dropped packets.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use wschat::dump::{run, Options, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The capture's events as JSON objects, through the library.
fn events(name: &str, opts: Options) -> Vec<Value> {
    let bytes = std::fs::read(fixture(name)).expect("read fixture");
    let mut out = Vec::new();
    let outcome = run(&bytes[..], &mut out, &Options { output: Output::Json, ..opts }).expect("run");
    assert!(outcome.error.is_none(), "{name}: {:?}", outcome.error);
    assert_eq!(outcome.skipped, 0);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn of_conn(evs: &[Value], conn: u64) -> Vec<&Value> {
    evs.iter().filter(|e| e["conn"] == conn).collect()
}

fn frame_texts(evs: &[&Value], dir: &str) -> Vec<String> {
    evs.iter()
        .filter(|e| e["event"] == "frame" && e["dir"] == dir && e["opcode"] == "text")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

/// The decoded timeline of the seed scenario, the same whatever the link type or container.
fn assert_seed_timeline(name: &str) {
    let evs = events(name, Options::default());
    assert!(evs.iter().all(|e| e["event"] != "note"), "{name}: unexpected notes");
    let zhu = of_conn(&evs, 1);
    let me = of_conn(&evs, 2);
    assert_eq!(zhu.len() + me.len(), evs.len());

    // TCP handshake, then the upgrade request and the 101 response with the seed's key and accept value.
    let kinds: Vec<&str> = me.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..3], ["tcp_handshake", "http_request", "http_response"], "{name}");
    assert_eq!(kinds.last(), Some(&"tcp_close"));
    let req = me[1];
    assert_eq!(req["line"], "GET / HTTP/1.1");
    assert_eq!(req["dir"], "c2s");
    assert_eq!(req["upgrade_ok"], true);
    assert!(req["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "Sec-WebSocket-Key" && h[1] == "zPDr6m4czzUdOFnsxIUEAw=="));
    let resp = me[2];
    assert_eq!(resp["status"], 101);
    assert_eq!(resp["line"], "HTTP/1.1 101 Switching Protocols");
    assert_eq!(resp["accept"], "valid");
    assert!(resp["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "Sec-WebSocket-Accept" && h[1] == "nSsCeIBUsFnDJCRb/BNlFzBUDpM="));

    // The client's frames are masked on the wire and shown unmasked.
    let sent = frame_texts(&me, "c2s");
    assert_eq!(
        sent,
        [r#"{"type":"login","name":"mynick"}"#, r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#],
        "{name}"
    );
    assert!(me.iter().filter(|e| e["event"] == "frame" && e["dir"] == "c2s").all(|e| e["masked"] == true));
    assert!(me.iter().filter(|e| e["event"] == "frame" && e["dir"] == "s2c").all(|e| e["masked"] == false));

    // The server's answers, in order: user_list, login, say.
    let got = frame_texts(&me, "s2c");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with(r#"{"type":"user_list","user_list":[{"uid":1,"name":"猪猪"},{"uid":2,"name":"mynick"}]"#)
    );
    assert!(got[1].starts_with(r#"{"type":"login","uid":2,"name":"mynick","time":""#));
    assert!(got[2].starts_with(r#"{"type":"say","from_uid":2,"to_uid":"all","content":"hi,  all !","time":""#));

    // Both directions interleave in capture order: login sent, then user_list; say sent, then say received.
    let order: Vec<String> = me
        .iter()
        .filter(|e| e["event"] == "frame" && e["opcode"] == "text")
        .map(|e| format!("{} {}", e["dir"].as_str().unwrap(), e["json"]["type"].as_str().unwrap()))
        .collect();
    assert_eq!(order, ["c2s login", "s2c user_list", "s2c login", "c2s say", "s2c say"]);

    // Close handshake and TCP teardown.
    let closes: Vec<(&str, u64)> = me
        .iter()
        .filter(|e| e["opcode"] == "close")
        .map(|e| (e["dir"].as_str().unwrap(), e["close_code"].as_u64().unwrap()))
        .collect();
    assert_eq!(closes, [("c2s", 1000), ("s2c", 1000)]);
    assert_eq!(me.last().unwrap()["how"], "fin");

    // 猪猪 sees mynick arrive, speak and leave.
    let types: Vec<String> = frame_texts(&zhu, "s2c")
        .iter()
        .map(|t| serde_json::from_str::<Value>(t).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["user_list", "login", "login", "say", "logout"]);
    assert_eq!(frame_texts(&zhu, "c2s"), [r#"{"type":"login","name":"猪猪"}"#]);
}

#[test]
fn seed_from_lo_pcap() {
    assert_seed_timeline("seed-lo.pcap");
}

#[test]
fn seed_from_lo_pcapng() {
    assert_seed_timeline("seed-lo.pcapng");
}

#[test]
fn seed_from_any_sll2_pcap() {
    assert_seed_timeline("seed-any.pcap");
}

#[test]
fn kernel_drops_become_gaps_and_decoding_resumes() {
    let evs = events("seed-any-drops.pcap", Options::default());
    let me = of_conn(&evs, 2);
    assert!(me.iter().any(|e| e["note"] == "gap"), "the dropped 101 response is reported as missing");
    assert!(me.iter().any(|e| e["note"] == "resynced"));
    let got = frame_texts(&me, "s2c");
    assert!(got.iter().any(|t| t.contains(r#""content":"hi,  all !""#)), "{got:?}");
    assert_eq!(frame_texts(&me, "c2s")[1], r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#);
}

#[test]
fn conn_filter_and_port_filter() {
    let all = events("seed-lo.pcap", Options::default());
    let client: std::net::SocketAddr =
        all.iter().find(|e| e["conn"] == 2).unwrap()["client"].as_str().unwrap().parse().unwrap();
    let only = events("seed-lo.pcap", Options { conn: Some(client), ..Options::default() });
    assert!(!only.is_empty());
    assert!(only.iter().all(|e| e["conn"] == 2));
    let mut opts = Options::default();
    opts.analyzer.ports = vec![9999];
    assert!(events("seed-lo.pcap", opts).is_empty());
}

#[test]
fn stats_count_frames_by_direction_and_opcode() {
    let bytes = std::fs::read(fixture("seed-lo.pcap")).unwrap();
    let mut out = Vec::new();
    run(&bytes[..], &mut out, &Options { output: Output::StatsJson, ..Options::default() }).unwrap();
    let conns: Vec<Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(conns.len(), 2);
    let me = &conns[1];
    assert_eq!(me["frames"]["c2s"]["text"]["frames"], 2);
    assert_eq!(me["frames"]["c2s"]["close"]["frames"], 1);
    assert_eq!(me["frames"]["s2c"]["text"]["frames"], 3);
    assert_eq!(me["status"], 101);
    assert_eq!(me["closed"], "fin");
    assert!(me["tcp_handshake_us"].as_u64().is_some());
    assert!(me["ws_handshake_us"].as_u64().is_some());
}

#[test]
fn binary_prints_the_timeline_without_colors_when_piped() {
    let out = Command::new(env!("CARGO_BIN_EXE_wschat-dump"))
        .arg(fixture("seed-any.pcap"))
        .arg("--utc")
        .output()
        .expect("run wschat-dump");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colors when piped");
    assert!(text.starts_with("--- 2026-11-25 (UTC) ---\n"), "{text}");
    for needle in [
        "TCP handshake: SYN, SYN-ACK",
        "→ 127.0.0.1:7272  HTTP request: GET / HTTP/1.1",
        "    Sec-WebSocket-Key: zPDr6m4czzUdOFnsxIUEAw==",
        "← 127.0.0.1:7272  HTTP response: HTTP/1.1 101 Switching Protocols",
        "    Sec-WebSocket-Accept: nSsCeIBUsFnDJCRb/BNlFzBUDpM=  (matches the key)",
        "→ 127.0.0.1:7272  text fin=1 rsv=000 masked key=",
        "\n    {\"type\":\"login\",\"name\":\"mynick\"}\n",
        "\n    {\"type\":\"say\",\"to_uid\":\"all\",\"content\":\"hi,  all !\"}\n",
        "← 127.0.0.1:7272  text fin=1 rsv=000 unmasked len=",
        "close code 1000 (normal closure), reason \"\"",
        "TCP teardown: FIN from",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let forced = Command::new(env!("CARGO_BIN_EXE_wschat-dump"))
        .args([fixture("seed-lo.pcap").to_str().unwrap(), "--color", "always", "--stats"])
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert!(String::from_utf8(forced.stdout).unwrap().contains("ended: FIN from"));
}
