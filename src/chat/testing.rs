//! For the chat's tests: the hub and the fanout driven together the way [`super::ChatApp`] drives them, with
//! a fixed time stamp, and the deliveries read back as JSON.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;

use super::dialect::seed::{parse_client_message, ServerMessage, UserEntry};
use super::dialect::text_frame;
use super::event::{ClientMessage, ErrorCode};
use super::fanout::Fanout;
use super::hub::{Hub, HubLimits, HubStats};
use crate::app::{ConnId, Departure, Effects};
use crate::ws::frame::FrameHeader;

/// The time stamp the tests put on messages.
pub const T: &str = "2026-11-25 12:00:00";

/// A hub and its fanout.
#[derive(Debug)]
pub struct Chat {
    pub hub: Hub,
    pub fanout: Fanout,
}

impl Chat {
    /// A chat that keeps `history` messages per room, with no other limit.
    pub fn new(history: usize) -> Chat {
        Chat::with_limits(HubLimits::unlimited(history))
    }

    /// A chat enforcing `limits`.
    pub fn with_limits(limits: HubLimits) -> Chat {
        Chat { hub: Hub::with_limits(limits), fanout: Fanout::new() }
    }

    pub fn handle(&mut self, conn: ConnId, msg: ClientMessage<'_>, time: &str, out: &mut Effects) {
        self.hub.handle(conn, msg, time, &mut self.fanout.sink(out));
    }

    pub fn error(&mut self, conn: ConnId, code: ErrorCode, out: &mut Effects) {
        self.hub.error(conn, code, &mut self.fanout.sink(out));
    }

    /// `conn` went away without a goodbye.
    pub fn leave(&mut self, conn: ConnId, time: &str, out: &mut Effects) {
        self.hub.leave(conn, Departure::Lost, time, &mut self.fanout.sink(out));
    }

    pub fn seal(&mut self, out: &mut Effects) {
        self.fanout.seal(self.hub.roster(), out);
    }

    pub fn set_now(&mut self, now: Instant) {
        self.hub.set_now(now);
    }

    pub fn disconnect(&mut self, conn: ConnId) {
        self.hub.disconnect(conn);
        self.fanout.forget(conn);
    }

    pub fn uid_of(&self, conn: ConnId) -> Option<u64> {
        self.hub.uid_of(conn)
    }

    pub fn user_count(&self) -> usize {
        self.hub.user_count()
    }

    pub fn stats(&self) -> HubStats {
        self.hub.stats()
    }
}

/// The JSON payload of an unmasked server frame.
pub fn payload(frame: &[u8]) -> Value {
    let h = FrameHeader::decode(frame).unwrap().unwrap();
    assert_eq!(h.opcode, 1);
    assert_eq!(frame.len(), h.header_len + h.payload_len as usize);
    serde_json::from_slice(&frame[h.header_len..]).unwrap()
}

/// Splits deliveries into (conn, JSON) pairs, one per frame, checking each delivery's message count.
pub fn frames(out: &Effects) -> Vec<(ConnId, Value)> {
    let mut got = Vec::new();
    for d in &out.sends {
        let mut rest = &d.bytes[..];
        let mut n = 0;
        while !rest.is_empty() {
            let h = FrameHeader::decode(rest).unwrap().unwrap();
            let len = h.header_len + h.payload_len as usize;
            got.push((d.conn, payload(&rest[..len])));
            rest = &rest[len..];
            n += 1;
        }
        assert_eq!(n, d.messages);
    }
    got
}

/// Runs one text message through the chat and seals the turn; returns (conn, JSON) pairs.
pub fn send(hub: &mut Chat, conn: ConnId, text: &str) -> Vec<(ConnId, Value)> {
    let mut out = Effects::default();
    match parse_client_message(text) {
        Ok(m) => hub.handle(conn, m, T, &mut out),
        Err(code) => hub.error(conn, code, &mut out),
    }
    hub.seal(&mut out);
    frames(&out)
}

/// The code of the one error in `v`.
pub fn error_code(v: &[(ConnId, Value)]) -> &str {
    assert_eq!(v.len(), 1, "{v:?}");
    v[0].1["code"].as_str().unwrap()
}

/// The user list of `room` encoded from scratch from the roster, to check the list the fanout keeps against.
pub fn fresh_user_list(hub: &Chat, room: &str) -> Vec<u8> {
    let mut users = Vec::new();
    if let Some(r) = hub.hub.roster().room(room) {
        r.each_from(0, |uid, name, _| users.push((uid, name.to_string())));
    }
    let list: Vec<UserEntry<'_>> =
        users.iter().map(|(uid, name)| UserEntry { uid: *uid, name, user_id: None }).collect();
    let mut json = Vec::new();
    ServerMessage::UserList { user_list: &list }.write_json(&mut json);
    text_frame(&json).to_vec()
}

/// What each connection receives, as one byte stream per connection, and the messages counted.
pub fn streams(out: &Effects, into: &mut HashMap<ConnId, (Vec<u8>, u32)>) {
    for d in &out.sends {
        let s = into.entry(d.conn).or_default();
        s.0.extend_from_slice(&d.bytes);
        s.1 += d.messages;
    }
}

/// A chat with `n` users logged in to room "1" on connections 0 to n-1.
pub fn hub_with_members(n: usize) -> Chat {
    let mut hub = Chat::new(0);
    let mut out = Effects::default();
    for c in 0..n {
        let login = format!(r#"{{"type":"login","name":"u{c}"}}"#);
        hub.handle(c, parse_client_message(&login).unwrap(), T, &mut out);
        out.clear();
    }
    hub
}
