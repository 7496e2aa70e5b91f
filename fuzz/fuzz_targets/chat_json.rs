//! The chat protocol on arbitrary text: the JSON parser, the hub's handling of what it accepts and the
//! fanout's encoding and batching of what the hub decides.
//!
//! Input layout: lines; each line's first byte picks the connection (0 to 3) and an action, the rest is
//! the text that connection sends. The first byte also picks the limits (history per room and budget, room
//! cap, join burst); each line advances the hub's clock by 300 ms. Checked: no panic; every frame the hub
//! emits is one final, unmasked text frame holding a JSON object with a known `type`; errors carry a known
//! code; uids are unique and positive; users never outnumber connections; history stays within its budget;
//! leaving always empties the hub.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wschat::app::Effects;
use wschat::chat::fanout::Fanout;
use wschat::chat::hub::{Hub, HubLimits};
use wschat::chat::dialect::seed::parse_client_message;
use wschat::ws::frame::{FrameHeader, OpCode};

const TIME: &str = "2024-01-02 03:04:05";

fn check_frames(effects: &mut Effects, conns: usize, uids: &mut HashMap<u64, String>) {
    let frames: Vec<(usize, Vec<u8>, u32)> =
        effects.sends.drain(..).map(|d| (d.conn, d.bytes.to_vec(), d.messages)).collect();
    for (conn, bytes, messages) in frames {
        let mut rest = &bytes[..];
        let mut n = 0;
        while !rest.is_empty() {
            let h = FrameHeader::decode(rest).unwrap().expect("a whole header");
            let len = h.frame_len() as usize;
            assert!(len <= rest.len(), "a batch holds whole frames only");
            check_frame(conn, conns, &rest[..len], uids);
            rest = &rest[len..];
            n += 1;
        }
        assert_eq!(n, messages, "a delivery's message count matches its frames");
    }
}

fn check_frame(conn: usize, conns: usize, frame: &[u8], uids: &mut HashMap<u64, String>) {
    {
        assert!(conn < conns, "frame addressed to unknown connection {conn}");
        let h = FrameHeader::decode(frame).unwrap().expect("a whole header");
        assert!(h.fin && h.mask.is_none() && h.rsv == 0 && h.op() == Some(OpCode::Text));
        assert_eq!(h.frame_len(), frame.len() as u64);
        let payload = &frame[h.header_len..];
        let v: serde_json::Value = serde_json::from_slice(payload).expect("server JSON parses");
        let obj = v.as_object().expect("a JSON object");
        match obj.get("type").and_then(|t| t.as_str()) {
            Some("login") | Some("logout") => {
                let uid = obj["uid"].as_u64().expect("uid");
                assert!(uid > 0);
                let name = obj["name"].as_str().expect("name").to_string();
                assert!(!name.is_empty() && name.chars().count() <= 32);
                if obj["type"] == "login" {
                    if let Some(old) = uids.insert(uid, name.clone()) {
                        assert_eq!(old, name, "uid {uid} reused for another name");
                    }
                }
            }
            Some("say") => {
                assert!(obj["from_uid"].as_u64().is_some_and(|u| u > 0));
                assert!(!obj["content"].as_str().expect("content").is_empty());
            }
            Some("user_list") => assert!(obj["user_list"].is_array()),
            Some("error") => {
                let code = obj["code"].as_str().expect("code");
                assert!(matches!(
                    code,
                    "bad_json"
                        | "unknown_type"
                        | "not_logged_in"
                        | "bad_name"
                        | "already_logged_in"
                        | "no_such_user"
                        | "empty_content"
                        | "rate_limited"
                        | "room_full"
                ));
            }
            other => panic!("unexpected type {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    const CONNS: usize = 4;
    let first = data.first().copied().unwrap_or(0);
    let limits = HubLimits {
        history: usize::from(first & 3),
        // A budget of a few small frames, so eviction across rooms happens often.
        history_budget: if first & 0x40 != 0 { 300 } else { usize::MAX },
        max_room_users: match (first >> 2) & 3 {
            0 => usize::MAX,
            n => usize::from(n),
        },
        join_burst: u32::from((first >> 4) & 3),
    };
    let mut hub = Hub::with_limits(limits);
    let mut fanout = Fanout::new();
    let start = Instant::now();
    let mut clock = start;
    let mut effects = Effects::default();
    let mut uids = HashMap::new();
    for line in data.split(|&b| b == b'\n') {
        clock += Duration::from_millis(300);
        hub.set_now(clock);
        let Some((&ctl, text)) = line.split_first() else { continue };
        let conn = usize::from(ctl) % CONNS;
        if ctl & 0x80 != 0 {
            // The connection ends; a new one gets its id.
            hub.leave(conn, TIME, &mut fanout.sink(&mut effects));
            hub.disconnect(conn);
            fanout.forget(conn);
        } else {
            let text = String::from_utf8_lossy(text);
            match parse_client_message(&text) {
                Ok(m) => hub.handle(conn, m, TIME, &mut fanout.sink(&mut effects)),
                Err(code) => hub.error(conn, code, &mut fanout.sink(&mut effects)),
            }
        }
        if ctl & 0x40 != 0 {
            // Some turns hold several messages: seal only now and then.
            fanout.seal(hub.roster(), &mut effects);
        }
        check_frames(&mut effects, CONNS, &mut uids);
        assert!(hub.user_count() <= CONNS);
        let live: HashSet<u64> = (0..CONNS).filter_map(|c| hub.uid_of(c)).collect();
        assert_eq!(live.len(), hub.user_count(), "two connections share a uid");
        assert!(hub.stats().history_bytes <= limits.history_budget as u64, "history over its budget");
    }
    for conn in 0..CONNS {
        hub.leave(conn, TIME, &mut fanout.sink(&mut effects));
        hub.disconnect(conn);
        fanout.forget(conn);
        fanout.seal(hub.roster(), &mut effects);
        check_frames(&mut effects, CONNS, &mut uids);
    }
    assert_eq!(hub.user_count(), 0);
    assert_eq!(fanout.room_count(), 0, "rooms go with their last member");
    assert_eq!(hub.stats().history_bytes, 0, "history goes with its rooms");
});
