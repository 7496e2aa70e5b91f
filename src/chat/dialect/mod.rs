//! Dialects: how a connection's client speaks the chat. A dialect parses what its clients send into the chat
//! core's commands and writes the core's events as JSON text frames. Every connection has one: the seed
//! protocol of workerman-chat's walkthrough ([`seed`]; [`Dialect::SeedHtml`] is the same with names and
//! content HTML-escaped, `--escape-html`), or workerman-chat's current client_id protocol ([`workerman`]),
//! recognised from a connection's login ([`Dialect::detect`]) and set in the fanout
//! ([`super::fanout::Fanout::set_dialect`]) before the login is handled. The fanout batches a room's
//! broadcasts per (room, dialect) and caches a room's user list per dialect, so each member gets the bytes of
//! its own dialect and each message is encoded once per dialect in the room. Each dialect's JSON is its own
//! file's; the frames around it, history split into messages and user lists put together are [`Dialect`]'s.

pub mod escape;
pub mod seed;
pub mod workerman;

use std::rc::Rc;

use super::event::{ClientMessage, ErrorCode, Event, History, Newcomer};
use crate::shared_bytes::SharedBytes;
use crate::ws::frame::{encode_header, OpCode, MAX_HEADER_LEN};

/// Longest accepted room id, in bytes.
const MAX_ROOM_BYTES: usize = 64;

/// The room a login without `room_id` joins.
const DEFAULT_ROOM: &str = "1";

/// What a user list's JSON has between two entries, in every dialect.
const LIST_SEPARATOR: u8 = b',';

/// The dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// The seed protocol: `{"type":"login","name":…}`, uids, `user_list` ([`seed`]).
    #[default]
    Seed,
    /// The seed protocol with names and content HTML-escaped (`--escape-html`).
    SeedHtml,
    /// workerman-chat's current protocol: `client_name`, `client_id`, `client_list` ([`workerman`]).
    Workerman,
    /// [`Dialect::Seed`] for a client holding a session: every say carries its `mid`
    /// ([`crate::chat::resume`]).
    SeedMids,
    /// [`Dialect::SeedHtml`] for a client holding a session.
    SeedHtmlMids,
}

impl Dialect {
    /// Every dialect, in [`Dialect::index`] order.
    pub const ALL: [Dialect; 5] =
        [Dialect::Seed, Dialect::SeedHtml, Dialect::Workerman, Dialect::SeedMids, Dialect::SeedHtmlMids];
    /// How many dialects there are: the size of per-dialect tables.
    pub const COUNT: usize = Dialect::ALL.len();

    /// This dialect's place in per-dialect tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The dialect a client that is not logged in speaks, told by its message: a login naming
    /// `client_name` (and no `name`) is workerman-chat's current protocol; anything else, `None` (the
    /// connection keeps its dialect).
    pub fn detect(text: &str) -> Option<Dialect> {
        (text.contains("\"client_name\"") && workerman::is_login(text)).then_some(Dialect::Workerman)
    }

    /// This dialect for a client holding a session (`mids`) or not; a dialect without sessions (workerman's)
    /// stays itself.
    pub fn with_mids(self, mids: bool) -> Dialect {
        match (self, mids) {
            (Dialect::Seed | Dialect::SeedMids, true) => Dialect::SeedMids,
            (Dialect::SeedHtml | Dialect::SeedHtmlMids, true) => Dialect::SeedHtmlMids,
            (Dialect::SeedMids, false) => Dialect::Seed,
            (Dialect::SeedHtmlMids, false) => Dialect::SeedHtml,
            (d, _) => d,
        }
    }

    /// Whether this dialect's says carry their mid (a client holding a session).
    pub fn mids(self) -> bool {
        matches!(self, Dialect::SeedMids | Dialect::SeedHtmlMids)
    }

    /// Whether a client of this dialect can hold a session.
    pub fn resumes(self) -> bool {
        self != Dialect::Workerman
    }

    /// Parses one text message from a client of this dialect.
    pub fn parse(self, text: &str) -> Result<ClientMessage<'_>, ErrorCode> {
        match self {
            Dialect::Workerman => workerman::parse_client_message(text),
            _ => seed::parse_client_message(text),
        }
    }

    /// Appends the JSON text of one message; false (and nothing appended) for a user list or a history.
    pub fn write_json(self, event: &Event<'_>, out: &mut Vec<u8>) -> bool {
        if let Event::Verbatim(text) = event {
            out.extend_from_slice(text.as_bytes());
            return true;
        }
        match self {
            Dialect::Workerman => workerman::write_json(event, out),
            _ => seed::write_json(event, self.escapes(), self.mids(), out),
        }
    }

    /// `event` as one buffer of whole frames, and how many messages it holds.
    pub fn frames(self, event: &Event<'_>, scratch: &mut Vec<u8>) -> (SharedBytes, u32) {
        scratch.clear();
        match event {
            Event::History(past) => self.history(past, usize::MAX, scratch),
            Event::UserList { users, newcomer, .. } => {
                users.each_from(0, |uid, name, user_id| self.write_list_entry(uid, name, user_id, scratch));
                (self.user_list_frame(scratch, newcomer), 1)
            }
            _ if self.write_json(event, scratch) => (text_frame(scratch), 1),
            _ => (Rc::from(&[][..]), 0),
        }
    }

    /// The newest messages of `past` whose frames fit in `limit` bytes together (the older ones are left
    /// out), as one buffer of whole frames, oldest first, and how many messages it holds. Each message is
    /// encoded once, newest first, until the next one would not fit.
    pub fn history(self, past: &History<'_>, limit: usize, scratch: &mut Vec<u8>) -> (SharedBytes, u32) {
        let mut newest_first = Vec::new();
        let mut ends = Vec::new();
        for said in past.said.clone().rev() {
            scratch.clear();
            self.write_json(&said.event(), scratch);
            let mut head = [0u8; MAX_HEADER_LEN];
            let framed = encode_header(&mut head, true, OpCode::Text, None, scratch.len()) + scratch.len();
            if newest_first.len() + framed > limit {
                break;
            }
            write_text_frame(&mut newest_first, scratch);
            ends.push(newest_first.len());
        }
        let mut parts = Vec::with_capacity(ends.len());
        for (i, &end) in ends.iter().enumerate().rev() {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            parts.push(&newest_first[start..end]);
        }
        (concat(&parts), u32::try_from(ends.len()).unwrap_or(u32::MAX))
    }

    /// Whether this dialect HTML-escapes content (the size a say goes out with is then its escaped size).
    pub fn escapes(self) -> bool {
        match self {
            Dialect::Seed | Dialect::SeedMids => false,
            Dialect::SeedHtml | Dialect::SeedHtmlMids | Dialect::Workerman => true,
        }
    }

    /// Appends the user-list entry of `uid` named `name` to a room's cached entries, followed by the
    /// separator ([`Dialect::user_list_frame`] cuts the last one off).
    pub fn write_list_entry(self, uid: u64, name: &str, user_id: Option<&str>, out: &mut Vec<u8>) {
        match self {
            // workerman-chat's client_list is a map of ids to names: no place for an account id.
            Dialect::Workerman => workerman::write_list_entry(uid, name, out),
            _ => seed::write_list_entry(uid, name, user_id, self.escapes(), out),
        }
        out.push(LIST_SEPARATOR);
    }

    /// The user-list frame for `newcomer` of a room's cached entries (each followed by the separator),
    /// copied once.
    pub fn user_list_frame(self, entries: &[u8], newcomer: &Newcomer<'_>) -> SharedBytes {
        let entries = &entries[..entries.len().saturating_sub(1)];
        match (self, newcomer.session) {
            (Dialect::Workerman, _) => {
                let mut prefix = Vec::with_capacity(64);
                workerman::write_list_prefix(newcomer, &mut prefix);
                frame_of_parts(&[&prefix, entries, workerman::LIST_SUFFIX])
            }
            // A session id is ASCII hex: nothing in it needs escaping.
            (_, Some(id)) => frame_of_parts(&[seed::LIST_PREFIX, entries, seed::SESSION_FIELD, id.as_bytes(), b"\"}"]),
            (_, None) => frame_of_parts(&[seed::LIST_PREFIX, entries, seed::LIST_SUFFIX]),
        }
    }

    /// Whether the newcomer's user list is its own login too (then the room's broadcast of that login is not
    /// sent to the newcomer).
    pub fn welcome_is_login(self) -> bool {
        self == Dialect::Workerman
    }
}

/// Appends `json` as one unmasked text frame.
pub fn write_text_frame(out: &mut Vec<u8>, json: &[u8]) {
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, OpCode::Text, None, json.len());
    out.reserve(n + json.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(json);
}

/// `json` as one unmasked text frame.
pub fn text_frame(json: &[u8]) -> SharedBytes {
    frame_of_parts(&[json])
}

/// The concatenation of `parts` as one unmasked text frame, copying each byte once into one allocation.
fn frame_of_parts(parts: &[&[u8]]) -> SharedBytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, OpCode::Text, None, len);
    concat_with(&head[..n], parts)
}

/// The concatenation of `parts` (whole frames) in one allocation.
fn concat(parts: &[&[u8]]) -> SharedBytes {
    concat_with(&[], parts)
}

/// `first` followed by `parts`, copying each byte once into one allocation.
fn concat_with(first: &[u8], parts: &[&[u8]]) -> SharedBytes {
    let len = first.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut frame = Rc::<[u8]>::new_uninit_slice(len);
    let dst = Rc::get_mut(&mut frame).expect("a new Rc has no other owner");
    let mut at = 0;
    for part in std::iter::once(first).chain(parts.iter().copied()) {
        dst[at..at + part.len()].write_copy_of_slice(part);
        at += part.len();
    }
    assert_eq!(at, dst.len());
    // SAFETY: the parts were written back to back from the start, and the assert shows they filled it.
    unsafe { frame.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::event::Said;
    use std::collections::VecDeque;

    #[test]
    fn frames_of_one_message_a_history_and_a_user_list() {
        let d = Dialect::Seed;
        let mut scratch = Vec::new();
        let (frame, n) = d.frames(&Event::Login { uid: 1, name: "a", user_id: None, time: "t" }, &mut scratch);
        let newcomer = Newcomer { uid: 2, name: "mynick", time: "t", session: None };
        assert_eq!(n, 1);
        assert_eq!(&frame[..], &text_frame(br#"{"type":"login","uid":1,"name":"a","time":"t"}"#)[..]);

        let past: VecDeque<Said> = [Said::new(1, "a", "t", "x"), Said::new(2, "b", "u", "y")].into_iter().collect();
        let stamp = crate::chat::event::HistoryStamp { room: 1, first: 0, len: 2 };
        let history = History { said: past.iter(), stamp };
        let (frame, n) = d.frames(&Event::History(history.clone()), &mut scratch);
        let mut want = text_frame(br#"{"type":"say","from_uid":1,"to_uid":"all","content":"x","time":"t"}"#).to_vec();
        want.extend_from_slice(&text_frame(br#"{"type":"say","from_uid":2,"to_uid":"all","content":"y","time":"u"}"#));
        assert_eq!((&frame[..], n), (&want[..], 2));
        // Bounded: the newest that fit, oldest first.
        let (all, n) = d.history(&history, want.len(), &mut scratch);
        assert_eq!((&all[..], n), (&want[..], 2));
        let (newest, n) = d.history(&history, want.len() - 1, &mut scratch);
        assert_eq!((&newest[..], n), (&want[want.len() / 2..], 1));
        let (none, n) = d.history(&history, 10, &mut scratch);
        assert_eq!((none.len(), n), (0, 0));

        let roster = crate::chat::roster::Roster::with_users("1", &[(1, "猪猪"), (2, "mynick")]);
        let Some(users) = roster.room("1") else { panic!("the test room") };
        let (fresh, n) = d.frames(&Event::UserList { room: "1", users, newcomer }, &mut scratch);
        let json = r#"{"type":"user_list","user_list":[{"uid":1,"name":"猪猪"},{"uid":2,"name":"mynick"}]}"#;
        assert_eq!((&fresh[..], n), (&text_frame(json.as_bytes())[..], 1));
        // The same list from cached entries.
        let mut entries = Vec::new();
        d.write_list_entry(1, "猪猪", None, &mut entries);
        d.write_list_entry(2, "mynick", None, &mut entries);
        assert_eq!(&d.user_list_frame(&entries, &newcomer)[..], &fresh[..]);
        assert_eq!(&d.user_list_frame(&[], &newcomer)[..], &text_frame(br#"{"type":"user_list","user_list":[]}"#)[..]);
    }

    #[test]
    fn frames_of_any_length_have_the_right_header() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let json = vec![b'x'; len];
            let frame = text_frame(&json);
            let mut appended = vec![1, 2];
            write_text_frame(&mut appended, &json);
            assert_eq!(&appended[2..], &frame[..]);
            let h = crate::ws::frame::FrameHeader::decode(&frame).unwrap().unwrap();
            assert!(h.fin && h.mask.is_none() && h.opcode == 1);
            assert_eq!((h.header_len + h.payload_len as usize, h.payload_len), (frame.len(), len as u64));
        }
    }
}
