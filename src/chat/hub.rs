//! The chat hub: users, rooms, uid allocation and history. It turns a client's message into frames addressed
//! to connections; a broadcast is encoded once and the same shared frame goes to every member.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::protocol::{
    error_json, ClientMessage, ErrorCode, Recipient, ServerMessage, ToUidOut, UserEntry, MAX_NAME_CHARS,
};
use crate::ws::frame::{encode_header, OpCode, MAX_HEADER_LEN};

/// Identifies a connection to the hub (the reactor's slab key).
pub type ConnId = usize;

/// An encoded WebSocket frame, shared by every recipient.
pub type Frame = Rc<[u8]>;

/// Output of the hub: each frame with the connection it goes to, in order.
#[derive(Debug, Default)]
pub struct Effects {
    /// Frames to queue, in delivery order per connection.
    pub sends: Vec<(ConnId, Frame)>,
}

impl Effects {
    /// Empties the list, keeping its capacity.
    pub fn clear(&mut self) {
        self.sends.clear();
    }
}

/// A logged-in user.
#[derive(Debug)]
struct User {
    uid: u64,
    name: Box<str>,
    room: Rc<str>,
}

/// A room: its members in login order and its recent messages.
#[derive(Debug, Default)]
struct Room {
    members: Vec<ConnId>,
    history: VecDeque<Frame>,
}

/// Users and rooms of one daemon.
#[derive(Debug)]
pub struct Hub {
    next_uid: u64,
    history_limit: usize,
    users: HashMap<ConnId, User>,
    by_uid: HashMap<u64, ConnId>,
    rooms: HashMap<Rc<str>, Room>,
    /// Reused for JSON encoding so a message costs one allocation: its shared frame.
    scratch: Vec<u8>,
}

/// Encodes `json` as one unmasked text frame.
pub fn text_frame(json: &[u8]) -> Frame {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, OpCode::Text, None, json.len());
    let mut frame = Vec::with_capacity(n + json.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(json);
    Rc::from(frame)
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
        out.sends.push((conn, text_frame(&error_json(code))));
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
        out.sends.push((conn, text_frame(&self.scratch)));
        for past in &room.history {
            out.sends.push((conn, past.clone()));
        }
        self.scratch.clear();
        ServerMessage::Login { uid, name, time }.write_json(&mut self.scratch);
        let frame = text_frame(&self.scratch);
        broadcast(&room.members, &frame, out);
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
                let frame = text_frame(&self.scratch);
                if let Some(room) = self.rooms.get_mut(&room_key) {
                    broadcast(&room.members, &frame, out);
                    if self.history_limit > 0 {
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
                out.sends.push((target, frame.clone()));
                if target != conn {
                    out.sends.push((conn, frame));
                }
            }
            Recipient::Nobody => return Err(ErrorCode::NoSuchUser),
        }
        Ok(())
    }

    /// Removes the user on `conn` (if any) and tells the rest of its room. Call when a connection goes away.
    pub fn leave(&mut self, conn: ConnId, time: &str, out: &mut Effects) {
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
        let frame = text_frame(&self.scratch);
        broadcast(&room.members, &frame, out);
    }
}

/// Queues one shared frame for every member.
fn broadcast(members: &[ConnId], frame: &Frame, out: &mut Effects) {
    out.sends.reserve(members.len());
    for &m in members {
        out.sends.push((m, frame.clone()));
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

    /// Runs one text message through the hub; returns (conn, JSON) pairs.
    fn send(hub: &mut Hub, conn: ConnId, text: &str) -> Vec<(ConnId, Value)> {
        let mut out = Effects::default();
        match parse_client_message(text) {
            Ok(m) => hub.handle(conn, m, T, &mut out),
            Err(code) => hub.error(conn, code, &mut out),
        }
        out.sends.iter().map(|(c, f)| (*c, payload(f))).collect()
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
        assert_eq!(out.sends.len(), 5);
        assert!(out.sends.windows(2).all(|w| Rc::ptr_eq(&w[0].1, &w[1].1)));
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
        let got: Vec<_> = out.sends.iter().map(|(c, f)| (*c, payload(f))).collect();
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
