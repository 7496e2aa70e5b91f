//! The message a node publishes once per loop turn: a header (who, which number), then records — the turn's
//! chat events grouped by room, and the node-level records that keep presence whole (hello, snapshot, gone).
//! Encoding into reused buffers, and decoding that checks every byte before handing out borrowed views.

use std::fmt;

use super::bytes::{put_str, put_varint, Reader};
use crate::chat::event::RoomEvent;

/// The first bytes of every message: "wc" then the version.
pub const MAGIC: [u8; 2] = *b"wc";

/// The version of the message format this code writes and reads.
pub const VERSION: u8 = 1;

/// Bytes of the fixed header: magic, version, origin.
const FIXED_HEADER: usize = 2 + 1 + 8;

const ROOM: u8 = 1;
const LOGIN: u8 = 2;
const SAY: u8 = 3;
const LOGOUT: u8 = 4;
const HELLO: u8 = 5;
const SNAPSHOT: u8 = 6;
const PRESENT: u8 = 7;
const GONE: u8 = 8;
const SESSION: u8 = 9;
const HANDOVER: u8 = 10;
/// The account id of the user of the login or present record right before it (same uid).
const IDENTITY: u8 = 11;

/// One record of a message, with the room it belongs to filled in. Uids are positive, but for a say's
/// sender: 0 is the server API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A login, say or logout in a room.
    Room(RoomEvent<'a>),
    /// The origin has just joined the cluster: every node answers with a snapshot of its own users.
    Hello,
    /// This message is a snapshot: the [`Record::Present`] records that follow are all the users the
    /// origin holds; whoever the receiver had for the origin and is not among them has left.
    Snapshot,
    /// One user the origin holds (in a snapshot).
    Present {
        /// The room.
        room: &'a str,
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// As a login's order.
        order: u64,
        /// Their account id, when a token proved it.
        user_id: Option<&'a str>,
    },
    /// `node` has left the cluster (it stopped, or its lease ran out): all its users are gone.
    Gone {
        /// The node.
        node: u64,
    },
}

/// Why bytes are not a message; the receiver logs it and skips the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside the message (`at` is where more was needed).
    Truncated {
        /// Offset of the field that did not fit.
        at: usize,
    },
    /// Not a wschat message (another program's data on the channel or key).
    Foreign,
    /// A wschat message of a version this node does not read.
    Version(u8),
    /// A number longer than 64 bits.
    Overlong {
        /// Offset of the number.
        at: usize,
    },
    /// A text that is not UTF-8.
    Utf8 {
        /// Offset of the text.
        at: usize,
    },
    /// A record kind this version does not know.
    UnknownRecord {
        /// The kind byte.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A zero where a sequence number or uid must be positive.
    Zero {
        /// Offset of the number.
        at: usize,
    },
    /// A room record (login, say, logout, present) before any room was named.
    NoRoom {
        /// Offset of the record.
        at: usize,
    },
    /// A time stamp that repeats the previous one where there is none.
    NoPreviousTime {
        /// Offset of the time field.
        at: usize,
    },
    /// An account id that does not follow a login or present record of the same uid.
    StrayIdentity {
        /// Offset of the record.
        at: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { at } => write!(f, "truncated cluster message: more bytes needed at offset {at}"),
            WireError::Foreign => f.write_str("not a wschat cluster message"),
            WireError::Version(v) => write!(f, "cluster message version {v}, this node reads version {VERSION}"),
            WireError::Overlong { at } => write!(f, "number longer than 64 bits at offset {at}"),
            WireError::Utf8 { at } => write!(f, "text that is not UTF-8 at offset {at}"),
            WireError::UnknownRecord { tag, at } => write!(f, "unknown record kind {tag} at offset {at}"),
            WireError::Zero { at } => write!(f, "zero sequence number or uid at offset {at}"),
            WireError::NoRoom { at } => write!(f, "a room record before any room at offset {at}"),
            WireError::NoPreviousTime { at } => write!(f, "a repeated time stamp with none before at offset {at}"),
            WireError::StrayIdentity { at } => write!(f, "an account id for no login before it at offset {at}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Writes the header of `origin`'s message number `seq` into an empty or reused buffer.
pub fn write_header(buf: &mut Vec<u8>, origin: u64, seq: u64) {
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.extend_from_slice(&origin.to_le_bytes());
    put_varint(buf, seq);
}

/// Records of one section (a room's events of a turn, or the node-level records), appended to a buffer
/// the caller keeps; the time stamp of an event is written once and then repeated as one byte.
#[derive(Debug, Default, Clone)]
pub struct Section {
    /// The encoded records.
    pub bytes: Vec<u8>,
    /// The time stamp last written, so the next equal one is a single zero byte.
    last_time: String,
    /// Says written: the next one's place among them.
    says: u32,
}

impl Section {
    /// An empty section.
    pub fn new() -> Section {
        Section::default()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Empties the section, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.last_time.clear();
        self.says = 0;
    }

    /// Says written so far (the index of the next one among them).
    pub fn says(&self) -> u32 {
        self.says
    }

    /// Starts the records of `room` (the ones that follow belong to it).
    pub fn room(&mut self, room: &str) {
        self.bytes.push(ROOM);
        put_str(&mut self.bytes, room);
        self.last_time.clear();
    }

    /// A login, say (`to_uid` `None` for the whole room) or logout, in the current room (the event's own room
    /// is the caller's to start with [`Section::room`]).
    pub fn event(&mut self, event: &RoomEvent<'_>) {
        match *event {
            RoomEvent::Login { uid, name, order, user_id, time, .. } => {
                self.bytes.push(LOGIN);
                put_varint(&mut self.bytes, uid);
                put_str(&mut self.bytes, name);
                put_varint(&mut self.bytes, order);
                self.time(time);
                self.identity(uid, user_id);
            }
            RoomEvent::Say { from_uid, from_name, to_uid, content, time, .. } => {
                self.says += 1;
                self.bytes.push(SAY);
                put_varint(&mut self.bytes, from_uid);
                put_str(&mut self.bytes, from_name);
                put_varint(&mut self.bytes, to_uid.unwrap_or(0));
                put_str(&mut self.bytes, content);
                self.time(time);
            }
            RoomEvent::Logout { uid, name, time, .. } => {
                self.bytes.push(LOGOUT);
                put_varint(&mut self.bytes, uid);
                put_str(&mut self.bytes, name);
                self.time(time);
            }
            RoomEvent::Session { uid, session, .. } => {
                self.bytes.push(SESSION);
                put_varint(&mut self.bytes, uid);
                put_str(&mut self.bytes, session);
            }
            RoomEvent::Handover { uid, .. } => {
                self.bytes.push(HANDOVER);
                put_varint(&mut self.bytes, uid);
            }
        }
    }

    /// The origin has just joined.
    pub fn hello(&mut self) {
        self.bytes.push(HELLO);
    }

    /// The message is a snapshot of the origin's users.
    pub fn snapshot(&mut self) {
        self.bytes.push(SNAPSHOT);
    }

    /// A user the origin holds (in the current room), in a snapshot.
    pub fn present(&mut self, uid: u64, name: &str, user_id: Option<&str>, order: u64) {
        self.bytes.push(PRESENT);
        put_varint(&mut self.bytes, uid);
        put_str(&mut self.bytes, name);
        put_varint(&mut self.bytes, order);
        self.identity(uid, user_id);
    }

    /// The account id of the login or present record just written, when it has one (a record of its own,
    /// so that messages without account ids are byte for byte what they were).
    fn identity(&mut self, uid: u64, user_id: Option<&str>) {
        if let Some(user_id) = user_id {
            self.bytes.push(IDENTITY);
            put_varint(&mut self.bytes, uid);
            put_str(&mut self.bytes, user_id);
        }
    }

    /// `node` has left the cluster.
    pub fn gone(&mut self, node: u64) {
        self.bytes.push(GONE);
        self.bytes.extend_from_slice(&node.to_le_bytes());
    }

    fn time(&mut self, time: &str) {
        if !self.last_time.is_empty() && self.last_time == time {
            self.bytes.push(0);
            return;
        }
        put_varint(&mut self.bytes, time.len() as u64 + 1);
        self.bytes.extend_from_slice(time.as_bytes());
        self.last_time.clear();
        self.last_time.push_str(time);
    }
}

/// A decoded message, borrowing its bytes. Every record was checked by [`Message::decode`];
/// [`Message::records`] only walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The node that published it.
    pub origin: u64,
    /// Its number in the origin's sequence, from 1.
    pub seq: u64,
    /// How many records it holds (room switches not counted).
    pub count: usize,
    body: &'a [u8],
}

impl<'a> Message<'a> {
    /// Reads only the header: `(origin, seq)`, for ordering before the whole message is checked.
    pub fn peek(bytes: &[u8]) -> Result<(u64, u64), WireError> {
        let mut r = Reader::new(bytes);
        read_header(&mut r)
    }

    /// The message that is the whole of `bytes`, every record checked.
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, WireError> {
        let mut r = Reader::new(bytes);
        let (origin, seq) = read_header(&mut r)?;
        let body = &bytes[r.at..];
        let mut walk = Records { r: Reader::new(body), room: None, prev_time: None, base: r.at };
        let mut count = 0;
        while let Some(rec) = walk.next_checked() {
            rec?;
            count += 1;
        }
        Ok(Message { origin, seq, count, body })
    }

    /// Its records, in order.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + 'a {
        let mut walk = Records { r: Reader::new(self.body), room: None, prev_time: None, base: 0 };
        // Checked by `decode`; an error here cannot happen and would end the walk.
        std::iter::from_fn(move || walk.next_checked().and_then(Result::ok))
    }
}

/// A walk over the records of a message body.
struct Records<'a> {
    r: Reader<'a>,
    room: Option<&'a str>,
    prev_time: Option<&'a str>,
    /// Offset of the body in the message, for error positions.
    base: usize,
}

impl<'a> Records<'a> {
    fn next_checked(&mut self) -> Option<Result<Record<'a>, WireError>> {
        loop {
            if self.r.at >= self.r.bytes.len() {
                return None;
            }
            match self.record() {
                Ok(Some(rec)) => return Some(Ok(rec)),
                Ok(None) => continue,
                Err(e) => {
                    self.r.at = self.r.bytes.len();
                    return Some(Err(e.shifted(self.base)));
                }
            }
        }
    }

    fn room(&self, at: usize) -> Result<&'a str, WireError> {
        self.room.ok_or(WireError::NoRoom { at })
    }

    /// The next record; `None` for a room switch.
    fn record(&mut self) -> Result<Option<Record<'a>>, WireError> {
        let at = self.r.at;
        let tag = self.r.byte()?;
        let rec = match tag {
            ROOM => {
                self.room = Some(self.r.str()?);
                self.prev_time = None;
                return Ok(None);
            }
            LOGIN => {
                let room = self.room(at)?;
                let uid = self.r.positive()?;
                let name = self.r.str()?;
                let order = self.r.varint()?;
                let time = self.time()?;
                let user_id = self.identity(uid)?;
                Record::Room(RoomEvent::Login { room, uid, name, order, user_id, time })
            }
            SAY => {
                let room = self.room(at)?;
                // 0: a say of the server API, which no user made.
                let from_uid = self.r.varint()?;
                let from_name = self.r.str()?;
                let to_uid = Some(self.r.varint()?).filter(|&u| u != 0);
                let content = self.r.str()?;
                let time = self.time()?;
                Record::Room(RoomEvent::Say { room, from_uid, from_name, to_uid, content, time })
            }
            LOGOUT => {
                let room = self.room(at)?;
                let uid = self.r.positive()?;
                let name = self.r.str()?;
                let time = self.time()?;
                Record::Room(RoomEvent::Logout { room, uid, name, time })
            }
            SESSION => {
                let room = self.room(at)?;
                let uid = self.r.positive()?;
                let session = self.r.str()?;
                Record::Room(RoomEvent::Session { room, uid, session })
            }
            HANDOVER => {
                let room = self.room(at)?;
                let uid = self.r.positive()?;
                Record::Room(RoomEvent::Handover { room, uid })
            }
            HELLO => Record::Hello,
            SNAPSHOT => Record::Snapshot,
            PRESENT => {
                let room = self.room(at)?;
                let uid = self.r.positive()?;
                let name = self.r.str()?;
                let order = self.r.varint()?;
                let user_id = self.identity(uid)?;
                Record::Present { room, uid, name, order, user_id }
            }
            IDENTITY => return Err(WireError::StrayIdentity { at }),
            GONE => Record::Gone { node: self.r.u64_le()? },
            tag => return Err(WireError::UnknownRecord { tag, at }),
        };
        Ok(Some(rec))
    }

    /// The account id record that may follow a login or present record of `uid`.
    fn identity(&mut self, uid: u64) -> Result<Option<&'a str>, WireError> {
        let at = self.r.at;
        if self.r.bytes.get(at) != Some(&IDENTITY) {
            return Ok(None);
        }
        self.r.byte()?;
        if self.r.positive()? != uid {
            return Err(WireError::StrayIdentity { at });
        }
        Ok(Some(self.r.str()?))
    }

    fn time(&mut self) -> Result<&'a str, WireError> {
        let at = self.r.at;
        let time = match self.r.varint()? {
            0 => self.prev_time.ok_or(WireError::NoPreviousTime { at })?,
            n => self.r.text(n - 1)?,
        };
        self.prev_time = Some(time);
        Ok(time)
    }
}

impl WireError {
    /// The same error with its offset moved by `by` (an offset in the body made one in the message).
    fn shifted(self, by: usize) -> WireError {
        match self {
            WireError::Truncated { at } => WireError::Truncated { at: at + by },
            WireError::Overlong { at } => WireError::Overlong { at: at + by },
            WireError::Utf8 { at } => WireError::Utf8 { at: at + by },
            WireError::UnknownRecord { tag, at } => WireError::UnknownRecord { tag, at: at + by },
            WireError::Zero { at } => WireError::Zero { at: at + by },
            WireError::NoRoom { at } => WireError::NoRoom { at: at + by },
            WireError::NoPreviousTime { at } => WireError::NoPreviousTime { at: at + by },
            other => other,
        }
    }
}

/// Reads a message's header: its origin and sequence number.
fn read_header(r: &mut Reader<'_>) -> Result<(u64, u64), WireError> {
    if r.bytes.len() < 2 || r.bytes[..2] != MAGIC {
        return Err(if MAGIC.starts_with(r.bytes) {
            WireError::Truncated { at: r.bytes.len() }
        } else {
            WireError::Foreign
        });
    }
    r.at = 2;
    let version = r.byte()?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let origin = r.u64_le()?;
    debug_assert_eq!(r.at, FIXED_HEADER);
    let seq = r.positive()?;
    Ok((origin, seq))
}

/// One history entry as kept in Redis (`{p}:history:{room}`): a section holding one say to all.
pub fn history_entry(from_uid: u64, from_name: &str, content: &str, time: &str) -> Vec<u8> {
    let mut s = Section::new();
    s.event(&RoomEvent::Say { room: "", from_uid, from_name, to_uid: None, content, time });
    s.bytes
}

/// Reads a history entry of `room` back: the say it holds. Anything but exactly one say to all — a room
/// record first (whose say would be another room's), a second record, trailing bytes — is
/// [`WireError::Foreign`] or the error of its first bad field.
pub fn read_history_entry<'a>(bytes: &'a [u8], room: &'a str) -> Result<RoomEvent<'a>, WireError> {
    if bytes.first() != Some(&SAY) {
        return Err(if bytes.is_empty() { WireError::Truncated { at: 0 } } else { WireError::Foreign });
    }
    let mut walk = Records { r: Reader::new(bytes), room: Some(room), prev_time: None, base: 0 };
    match walk.record()? {
        Some(Record::Room(say @ RoomEvent::Say { to_uid: None, .. })) if walk.r.at == bytes.len() => Ok(say),
        _ => Err(WireError::Foreign),
    }
}
