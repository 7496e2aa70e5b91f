//! The chat hub: users, rooms, uid allocation and history. It turns a client's message into bytes addressed
//! to connections. Broadcasts are batched per room and loop turn: every frame a room broadcasts is appended
//! to the room's open batch, and [`Hub::seal`] (called by the reactor once per turn, before it writes) hands
//! the whole batch to every member as one shared buffer, so a member costs one queue entry and one iovec per
//! turn however many messages the room saw. Anything addressed to one connection, and any change of a room's
//! members, first seals that room's batch, so every connection still sees its frames in the order they were
//! made.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::protocol::{
    error_json, ClientMessage, ErrorCode, Recipient, ServerMessage, ToUidOut, UserEntry, MAX_NAME_CHARS,
};
use crate::ws::frame::{encode_header, OpCode, MAX_HEADER_LEN};

/// Identifies a connection to the hub (the reactor's slab key).
pub type ConnId = usize;

/// Encoded WebSocket frames (one, or a room's batch of several), shared by every recipient.
pub type Frame = Rc<[u8]>;

/// A room's open batch is sealed early once it holds this many bytes, which bounds its memory and the size
/// of one write.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Bytes for one connection: one frame or a batch of whole frames.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The connection.
    pub conn: ConnId,
    /// Whole frames, shared with the other recipients.
    pub bytes: Frame,
    /// How many messages `bytes` holds.
    pub messages: u32,
    /// Part of a newcomer's welcome (its user list and history): not held against the send-buffer limit,
    /// so a big room or a long history is never the reason a newcomer is cut off.
    pub welcome: bool,
}

/// Output of the hub: bytes with the connection they go to, in order.
#[derive(Debug, Default)]
pub struct Effects {
    /// Deliveries to queue, in delivery order per connection.
    pub sends: Vec<Delivery>,
}

impl Effects {
    /// Empties the list, keeping its capacity.
    pub fn clear(&mut self) {
        self.sends.clear();
    }

    /// Queues one frame for one connection.
    fn push(&mut self, conn: ConnId, frame: Frame) {
        self.sends.push(Delivery { conn, bytes: frame, messages: 1, welcome: false });
    }

    /// Queues one frame of a newcomer's welcome for one connection.
    fn push_welcome(&mut self, conn: ConnId, frame: Frame) {
        self.sends.push(Delivery { conn, bytes: frame, messages: 1, welcome: true });
    }
}

/// A logged-in user.
#[derive(Debug)]
struct User {
    uid: u64,
    name: Box<str>,
    room: Rc<str>,
}

/// A room: its members in login order, its recent messages and this turn's open batch of broadcasts.
#[derive(Debug, Default)]
struct Room {
    members: Vec<ConnId>,
    history: VecDeque<Frame>,
    /// Frames broadcast to every member since the batch was last sealed.
    batch: Vec<u8>,
    /// How many messages `batch` holds.
    batch_messages: u32,
    /// In the hub's list of rooms to seal at the end of the turn.
    listed: bool,
}

impl Room {
    /// Hands the open batch to every member as one shared buffer.
    fn seal(&mut self, out: &mut Effects) {
        if self.batch_messages == 0 {
            return;
        }
        let bytes: Frame = Rc::from(&self.batch[..]);
        out.sends.reserve(self.members.len());
        for &conn in &self.members {
            out.sends.push(Delivery { conn, bytes: bytes.clone(), messages: self.batch_messages, welcome: false });
        }
        self.batch.clear();
        if self.batch.capacity() > MAX_BATCH_BYTES * 2 {
            self.batch.shrink_to(MAX_BATCH_BYTES);
        }
        self.batch_messages = 0;
    }

    /// Appends one frame for every member to the open batch; true when the room must be put on the list of
    /// rooms to seal.
    fn broadcast(&mut self, json: &[u8], out: &mut Effects) -> bool {
        if self.batch.len() + json.len() > MAX_BATCH_BYTES {
            self.seal(out);
        }
        write_text_frame(&mut self.batch, json);
        self.batch_messages += 1;
        !std::mem::replace(&mut self.listed, true)
    }
}

/// Users and rooms of one daemon.
#[derive(Debug)]
pub struct Hub {
    next_uid: u64,
    history_limit: usize,
    users: HashMap<ConnId, User>,
    by_uid: HashMap<u64, ConnId>,
    rooms: HashMap<Rc<str>, Room>,
    /// Rooms with an open batch, to seal at the end of the turn.
    batched_rooms: Vec<Rc<str>>,
    /// Reused for JSON encoding, so a broadcast allocates nothing until its batch is sealed.
    scratch: Vec<u8>,
}

/// Appends `json` as one unmasked text frame.
fn write_text_frame(out: &mut Vec<u8>, json: &[u8]) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, OpCode::Text, None, json.len());
    out.reserve(n + json.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(json);
}

/// Encodes `json` as one unmasked text frame.
pub fn text_frame(json: &[u8]) -> Frame {
    let mut bytes = Vec::new();
    write_text_frame(&mut bytes, json);
    Rc::from(bytes)
}

/// A nickname after trimming, if it is acceptable.
pub fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let chars = name.chars().count();
    if (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
        Some(name)
    } else {
        None
    }
}

impl Hub {
    /// An empty hub that keeps the last `history_limit` messages of each room.
    pub fn new(history_limit: usize) -> Hub {
        Hub {
            next_uid: 1,
            history_limit,
            users: HashMap::new(),
            by_uid: HashMap::new(),
            rooms: HashMap::new(),
            batched_rooms: Vec::new(),
            scratch: Vec::with_capacity(512),
        }
    }

    /// How many users are logged in.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The uid of the user on `conn`, if logged in.
    pub fn uid_of(&self, conn: ConnId) -> Option<u64> {
        self.users.get(&conn).map(|u| u.uid)
    }

    /// Handles one message from `conn`; `time` is the local time stamp to put on what it causes.
    pub fn handle(&mut self, conn: ConnId, msg: ClientMessage<'_>, time: &str, out: &mut Effects) {
        let result = match msg {
            ClientMessage::Login { name, room } => self.login(conn, &name, room, time, out),
            ClientMessage::Say { to, content } => self.say(conn, to, &content, time, out),
            ClientMessage::Logout => match self.users.contains_key(&conn) {
                true => {
                    self.leave(conn, time, out);
                    Ok(())
                }
                false => Err(ErrorCode::NotLoggedIn),
            },
            ClientMessage::Pong => Ok(()),
        };
        if let Err(code) = result {
            self.error(conn, code, out);
        }
    }

    /// Sends the error message for `code` to `conn`.
    pub fn error(&mut self, conn: ConnId, code: ErrorCode, out: &mut Effects) {
        self.seal_room_of(conn, out);
        out.push(conn, text_frame(&error_json(code)));
    }

    /// Hands every open batch to its room's members. The reactor calls this before it writes.
    pub fn seal(&mut self, out: &mut Effects) {
        for key in self.batched_rooms.drain(..) {
            if let Some(room) = self.rooms.get_mut(&key) {
                room.listed = false;
                room.seal(out);
            }
        }
    }

    /// Seals the open batch of the room `conn` is in, so that what comes next for `conn` follows it.
    pub fn seal_room_of(&mut self, conn: ConnId, out: &mut Effects) {
        if let Some(user) = self.users.get(&conn) {
            if let Some(room) = self.rooms.get_mut(&user.room) {
                room.seal(out);
            }
        }
    }

    /// Broadcasts the JSON in `self.scratch` to the room `key` through its open batch.
    fn broadcast_scratch(&mut self, key: &Rc<str>, out: &mut Effects) {
        let Some(room) = self.rooms.get_mut(key) else { return };
        if room.broadcast(&self.scratch, out) {
            self.batched_rooms.push(key.clone());
        }
    }

    fn login(
        &mut self,
        conn: ConnId,
        name: &str,
        room: Cow<'_, str>,
        time: &str,
        out: &mut Effects,
    ) -> Result<(), ErrorCode> {
        if self.users.contains_key(&conn) {
            return Err(ErrorCode::AlreadyLoggedIn);
        }
        let name = valid_name(name).ok_or(ErrorCode::BadName)?;
        let uid = self.next_uid;
        self.next_uid += 1;
        let room_key: Rc<str> = match self.rooms.get_key_value(room.as_ref()) {
            Some((k, _)) => k.clone(),
            None => Rc::from(room.as_ref()),
        };
        let entry = self.rooms.entry(room_key.clone()).or_default();
        // What the room said before this login is not for the newcomer: seal it for the members it had.
        entry.seal(out);
        entry.members.push(conn);
        self.users.insert(conn, User { uid, name: name.into(), room: room_key.clone() });
        self.by_uid.insert(uid, conn);

        let room = &self.rooms[&room_key];
        let list: Vec<UserEntry<'_>> = room
            .members
            .iter()
            .filter_map(|c| self.users.get(c))
            .map(|u| UserEntry { uid: u.uid, name: &u.name })
            .collect();
        self.scratch.clear();
        ServerMessage::UserList { user_list: &list }.write_json(&mut self.scratch);
        out.push_welcome(conn, text_frame(&self.scratch));
        for past in &room.history {
            out.push_welcome(conn, past.clone());
        }
        self.scratch.clear();
        ServerMessage::Login { uid, name, time }.write_json(&mut self.scratch);
        self.broadcast_scratch(&room_key, out);
        Ok(())
    }

    fn say(
        &mut self,
        conn: ConnId,
        to: Recipient,
        content: &str,
        time: &str,
        out: &mut Effects,
    ) -> Result<(), ErrorCode> {
        let sender = self.users.get(&conn).ok_or(ErrorCode::NotLoggedIn)?;
        if content.is_empty() {
            return Err(ErrorCode::EmptyContent);
        }
        let from_uid = sender.uid;
        let room_key = sender.room.clone();
        match to {
            Recipient::All => {
                self.scratch.clear();
                ServerMessage::Say { from_uid, to_uid: ToUidOut::All("all"), content, time }
                    .write_json(&mut self.scratch);
                self.broadcast_scratch(&room_key, out);
                if self.history_limit > 0 {
                    let frame = text_frame(&self.scratch);
                    if let Some(room) = self.rooms.get_mut(&room_key) {
                        if room.history.len() == self.history_limit {
                            room.history.pop_front();
                        }
                        room.history.push_back(frame);
                    }
                }
            }
            Recipient::User(uid) => {
                let target = self
                    .by_uid
                    .get(&uid)
                    .copied()
                    .filter(|c| self.users.get(c).is_some_and(|u| u.room == room_key))
                    .ok_or(ErrorCode::NoSuchUser)?;
                self.scratch.clear();
                ServerMessage::Say { from_uid, to_uid: ToUidOut::User(uid), content, time }
                    .write_json(&mut self.scratch);
                let frame = text_frame(&self.scratch);
                // Sender and target share the room: one seal keeps both in order.
                self.seal_room_of(conn, out);
                out.push(target, frame.clone());
                if target != conn {
                    out.push(conn, frame);
                }
            }
            Recipient::Nobody => return Err(ErrorCode::NoSuchUser),
        }
        Ok(())
    }

    /// Removes the user on `conn` (if any) and tells the rest of its room. Call when a connection goes away.
    pub fn leave(&mut self, conn: ConnId, time: &str, out: &mut Effects) {
        self.seal_room_of(conn, out);
        let Some(user) = self.users.remove(&conn) else { return };
        self.by_uid.remove(&user.uid);
        let Some(room) = self.rooms.get_mut(&user.room) else { return };
        room.members.retain(|&c| c != conn);
        if room.members.is_empty() {
            // Room names come from clients: keeping empty rooms would let them grow memory without bound.
            self.rooms.remove(&user.room);
            return;
        }
        self.scratch.clear();
        ServerMessage::Logout { uid: user.uid, name: &user.name, time }.write_json(&mut self.scratch);
        self.broadcast_scratch(&user.room, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::parse_client_message;
    use serde_json::{json, Value};

    const T: &str = "2026-11-25 12:00:00";

    /// The JSON payload of an unmasked server frame.
    fn payload(frame: &[u8]) -> Value {
        let h = crate::ws::frame::FrameHeader::decode(frame).unwrap().unwrap();
        assert_eq!(h.opcode, 1);
        assert_eq!(frame.len(), h.header_len + h.payload_len as usize);
        serde_json::from_slice(&frame[h.header_len..]).unwrap()
    }

    /// Splits deliveries into (conn, JSON) pairs, one per frame, checking each delivery's message count.
    fn frames(out: &Effects) -> Vec<(ConnId, Value)> {
        let mut got = Vec::new();
        for d in &out.sends {
            let mut rest = &d.bytes[..];
            let mut n = 0;
            while !rest.is_empty() {
                let h = crate::ws::frame::FrameHeader::decode(rest).unwrap().unwrap();
                let len = h.header_len + h.payload_len as usize;
                got.push((d.conn, payload(&rest[..len])));
                rest = &rest[len..];
                n += 1;
            }
            assert_eq!(n, d.messages);
        }
        got
    }

    /// Runs one text message through the hub and seals the turn; returns (conn, JSON) pairs.
    fn send(hub: &mut Hub, conn: ConnId, text: &str) -> Vec<(ConnId, Value)> {
        let mut out = Effects::default();
        match parse_client_message(text) {
            Ok(m) => hub.handle(conn, m, T, &mut out),
            Err(code) => hub.error(conn, code, &mut out),
        }
        hub.seal(&mut out);
        frames(&out)
    }

    fn error_code(v: &[(ConnId, Value)]) -> &str {
        assert_eq!(v.len(), 1, "{v:?}");
        v[0].1["code"].as_str().unwrap()
    }

    #[test]
    fn seed_scenario() {
        let mut hub = Hub::new(0);
        let first = send(&mut hub, 10, r#"{"type":"login","name":"猪猪"}"#);
        assert_eq!(
            first,
            vec![
                (10, json!({"type":"user_list","user_list":[{"uid":1,"name":"猪猪"}]})),
                (10, json!({"type":"login","uid":1,"name":"猪猪","time":T})),
            ]
        );
        let second = send(&mut hub, 11, r#"{"type":"login","name":"mynick"}"#);
        assert_eq!(
            second,
            vec![
                (11, json!({"type":"user_list","user_list":[{"uid":1,"name":"猪猪"},{"uid":2,"name":"mynick"}]})),
                (10, json!({"type":"login","uid":2,"name":"mynick","time":T})),
                (11, json!({"type":"login","uid":2,"name":"mynick","time":T})),
            ]
        );
        let say = send(&mut hub, 11, r#"{"type":"say","to_uid":"all","content":"hi,  all !"}"#);
        let expected = json!({"type":"say","from_uid":2,"to_uid":"all","content":"hi,  all !","time":T});
        assert_eq!(say, vec![(10, expected.clone()), (11, expected)]);
    }

    #[test]
    fn broadcast_frame_is_shared_not_copied() {
        let mut hub = Hub::new(0);
        for c in 0..5 {
            send(&mut hub, c, &format!(r#"{{"type":"login","name":"u{c}"}}"#));
        }
        let mut out = Effects::default();
        let msg = parse_client_message(r#"{"type":"say","to_uid":"all","content":"x"}"#).unwrap();
        hub.handle(0, msg, T, &mut out);
        assert!(out.sends.is_empty(), "broadcasts wait in the batch until the turn is sealed");
        hub.seal(&mut out);
        assert_eq!(out.sends.len(), 5);
        assert!(out.sends.windows(2).all(|w| Rc::ptr_eq(&w[0].bytes, &w[1].bytes)));
    }

    #[test]
    fn a_turn_of_broadcasts_is_one_shared_delivery_per_member() {
        let mut hub = Hub::new(0);
        for c in 0..3 {
            send(&mut hub, c, &format!(r#"{{"type":"login","name":"u{c}"}}"#));
        }
        let mut out = Effects::default();
        for i in 0..4 {
            let text = format!(r#"{{"type":"say","to_uid":"all","content":"m{i}"}}"#);
            hub.handle(i % 3, parse_client_message(&text).unwrap(), T, &mut out);
        }
        hub.seal(&mut out);
        assert_eq!(out.sends.len(), 3);
        assert!(out.sends.iter().all(|d| d.messages == 4 && Rc::ptr_eq(&d.bytes, &out.sends[0].bytes)));
        let got = frames(&out);
        let for_1: Vec<_> = got.iter().filter(|(c, _)| *c == 1).map(|(_, v)| v["content"].clone()).collect();
        assert_eq!(for_1, ["m0", "m1", "m2", "m3"]);
        // Sealing again finds nothing open.
        let mut again = Effects::default();
        hub.seal(&mut again);
        assert!(again.sends.is_empty());
    }

    #[test]
    fn anything_for_one_connection_keeps_its_place_after_the_batch() {
        let mut hub = Hub::new(0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
        let mut out = Effects::default();
        let turn = [
            r#"{"type":"say","to_uid":"all","content":"one"}"#,
            r#"{"type":"say","to_uid":2,"content":"private"}"#,
            r#"{"type":"say","to_uid":"all","content":"two"}"#,
            r#"{"type":"fly"}"#,
            r#"{"type":"say","to_uid":"all","content":"three"}"#,
        ];
        for text in turn {
            match parse_client_message(text) {
                Ok(m) => hub.handle(1, m, T, &mut out),
                Err(code) => hub.error(1, code, &mut out),
            }
        }
        // A newcomer joins in the same turn: it gets none of the earlier batch, then the rest.
        hub.handle(3, parse_client_message(r#"{"type":"login","name":"c"}"#).unwrap(), T, &mut out);
        hub.handle(2, parse_client_message(r#"{"type":"say","to_uid":"all","content":"four"}"#).unwrap(), T, &mut out);
        hub.leave(2, T, &mut out);
        hub.handle(1, parse_client_message(r#"{"type":"say","to_uid":"all","content":"five"}"#).unwrap(), T, &mut out);
        hub.seal(&mut out);
        let got = frames(&out);
        let seen = |conn: ConnId| -> Vec<String> {
            got.iter()
                .filter(|(c, _)| *c == conn)
                .map(|(_, v)| {
                    v["content"].as_str().or(v["code"].as_str()).unwrap_or(v["type"].as_str().unwrap()).to_string()
                })
                .collect()
        };
        assert_eq!(seen(1), ["one", "private", "two", "unknown_type", "three", "login", "four", "logout", "five"]);
        assert_eq!(seen(2), ["one", "private", "two", "three", "login", "four"]);
        assert_eq!(seen(3), ["user_list", "login", "four", "logout", "five"]);
    }

    #[test]
    fn a_large_turn_is_cut_into_bounded_batches() {
        let mut hub = Hub::new(0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        let content = "y".repeat(1000);
        let text = format!(r#"{{"type":"say","to_uid":"all","content":"{content}"}}"#);
        let mut out = Effects::default();
        for _ in 0..200 {
            hub.handle(1, parse_client_message(&text).unwrap(), T, &mut out);
        }
        hub.seal(&mut out);
        assert!(out.sends.len() >= 3);
        assert!(out.sends.iter().all(|d| d.bytes.len() <= MAX_BATCH_BYTES));
        assert_eq!(out.sends.iter().map(|d| d.messages).sum::<u32>(), 200);
        assert_eq!(hub.batched_rooms.len(), 0);
    }

    #[test]
    fn private_message_goes_to_target_and_sender_only() {
        let mut hub = Hub::new(0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
        send(&mut hub, 3, r#"{"type":"login","name":"c"}"#);
        let got = send(&mut hub, 1, r#"{"type":"say","to_uid":"2","content":"psst"}"#);
        let expected = json!({"type":"say","from_uid":1,"to_uid":2,"content":"psst","time":T});
        assert_eq!(got, vec![(2, expected.clone()), (1, expected)]);
        let to_self = send(&mut hub, 1, r#"{"type":"say","to_uid":1,"content":"me"}"#);
        assert_eq!(to_self.len(), 1);
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":99,"content":"x"}"#)), "no_such_user");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":"bob","content":"x"}"#)), "no_such_user");
    }

    #[test]
    fn every_error_code() {
        let mut hub = Hub::new(0);
        assert_eq!(error_code(&send(&mut hub, 1, "[1]")), "bad_json");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"fly"}"#)), "unknown_type");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","content":"x"}"#)), "not_logged_in");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"logout"}"#)), "not_logged_in");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"   "}"#)), "bad_name");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login"}"#)), "bad_name");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"a\u0007b"}"#)), "bad_name");
        let long = "x".repeat(33);
        assert_eq!(error_code(&send(&mut hub, 1, &format!(r#"{{"type":"login","name":"{long}"}}"#))), "bad_name");
        assert_eq!(send(&mut hub, 1, &format!(r#"{{"type":"login","name":"{}"}}"#, "猪".repeat(32))).len(), 2);
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"again"}"#)), "already_logged_in");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":"all","content":""}"#)), "empty_content");
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":"all"}"#)), "empty_content");
    }

    #[test]
    fn names_are_trimmed_and_content_is_unchanged() {
        let mut hub = Hub::new(0);
        let got = send(&mut hub, 1, r#"{"type":"login","name":"  mynick \t"}"#);
        assert_eq!(got[1].1["name"], "mynick");
        let html = "<img src=x onerror=alert(1)>  ";
        let got = send(&mut hub, 1, &serde_json::to_string(&json!({"type":"say","content":html})).unwrap());
        assert_eq!(got[0].1["content"], html);
    }

    #[test]
    fn logout_on_leave_and_uids_never_reused() {
        let mut hub = Hub::new(0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
        let mut out = Effects::default();
        hub.leave(1, T, &mut out);
        hub.seal(&mut out);
        let got = frames(&out);
        assert_eq!(got, vec![(2, json!({"type":"logout","uid":1,"name":"a","time":T}))]);
        assert_eq!(hub.user_count(), 1);
        // Slab keys are reused by the reactor; uids are not.
        let again = send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        assert_eq!(again[0].1["user_list"], json!([{"uid":2,"name":"b"},{"uid":3,"name":"a"}]));
        // Leaving twice, or without login, is harmless.
        let mut out = Effects::default();
        hub.leave(9, T, &mut out);
        assert!(out.sends.is_empty());
    }

    #[test]
    fn client_logout_keeps_the_connection_usable() {
        let mut hub = Hub::new(0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
        let got = send(&mut hub, 1, r#"{"type":"logout"}"#);
        assert_eq!(got, vec![(2, json!({"type":"logout","uid":1,"name":"a","time":T}))]);
        assert_eq!(send(&mut hub, 1, r#"{"type":"login","name":"a2"}"#).len(), 3);
    }

    #[test]
    fn rooms_are_separate() {
        let mut hub = Hub::new(0);
        send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"red"}"#);
        send(&mut hub, 2, r#"{"type":"login","name":"b","room_id":"blue"}"#);
        let got = send(&mut hub, 2, r#"{"type":"login","name":"c"}"#);
        assert_eq!(error_code(&got), "already_logged_in");
        let said = send(&mut hub, 1, r#"{"type":"say","to_uid":"all","content":"x"}"#);
        assert_eq!(said.len(), 1);
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"say","to_uid":2,"content":"x"}"#)), "no_such_user");
    }

    #[test]
    fn history_goes_to_newcomers_after_the_user_list() {
        let mut hub = Hub::new(2);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        for i in 0..3 {
            send(&mut hub, 1, &format!(r#"{{"type":"say","to_uid":"all","content":"m{i}"}}"#));
        }
        send(&mut hub, 1, r#"{"type":"say","to_uid":1,"content":"private"}"#);
        let got = send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
        let kinds: Vec<_> = got.iter().filter(|(c, _)| *c == 2).map(|(_, v)| v["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["user_list", "say", "say", "login"]);
        let contents: Vec<_> = got.iter().filter_map(|(_, v)| v["content"].as_str()).collect();
        assert_eq!(contents, ["m1", "m2"]);
    }

    #[test]
    fn empty_rooms_are_dropped() {
        let mut hub = Hub::new(5);
        send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"tmp"}"#);
        let mut out = Effects::default();
        hub.leave(1, T, &mut out);
        assert!(hub.rooms.is_empty());
    }
}
