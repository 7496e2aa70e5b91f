//! The fanout: the chat core's events turned into deliveries, in each connection's dialect. A room's
//! broadcasts are batched per (room, dialect) and loop turn: an event for the room is encoded once per dialect
//! spoken in it and appended to that dialect's open batch, and [`Fanout::seal`] (called once per turn, before
//! the reactor writes) hands each member the whole batch of its dialect as one shared buffer, so a member
//! costs one queue entry and one iovec per turn however many messages the room saw. Each member has a share
//! of its open batch: all of it, or, for a member who joined during the batch, what came after its own
//! login. The members are the room's connections of this process in the [`Roster`]; each connection's
//! dialect and share are kept here, indexed by connection. Anything addressed to one connection (an error, a private message, its departure) first hands that
//! connection its share so far as a copy and starts its share anew, so every connection still sees its frames
//! in the order they were made, and neither a login nor a message to one member costs the room a delivery per
//! member. A batch is cut at [`MAX_BATCH_BYTES`].
//!
//! A room also keeps its user list encoded per dialect, entry by entry in the roster's order, so a newcomer's
//! `user_list` frame is a copy of bytes, not one JSON encode per member. A dialect's list is built from the
//! roster the first time one of its newcomers needs it, extended while users are only added at the end, and
//! built again when the roster's version of the room changed.
//!
//! The history a newcomer gets is encoded once per (room, dialect) and shared like a broadcast: one buffer,
//! queued for every newcomer of that dialect until the room's history changes (its [`HistoryStamp`]). It
//! holds the newest messages whose frames fit in `--history-welcome-bytes`, so one login queues a bounded
//! amount however the room's messages grow when escaped. The kept buffers of all rooms together are bounded
//! too (past the cap they are all dropped, to be encoded again when next needed).

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::rc::Rc;

use super::dialect::{write_text_frame, Dialect};
use super::event::{Event, History, HistoryStamp, Newcomer, Sink, To};
use super::roster::{RoomRoster, Roster};
use crate::app::{CloseRequest, ConnId, Effects};
use crate::shared_bytes::SharedBytes;

/// A room's open batch is sealed early once it holds this many bytes, which bounds its memory and the size
/// of one write.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Encodes, batches and addresses the chat core's events.
#[derive(Debug, Default)]
pub struct Fanout {
    rooms: HashMap<Rc<str>, Room>,
    /// Each connection's dialect and room share, indexed by connection (ids are the reactor's slab keys).
    shares: Vec<Share>,
    /// The dialect of a connection until it is told otherwise (`--escape-html` picks the escaped seed one).
    default: Dialect,
    /// A newcomer whose welcome was its own login (its dialect's user list is a login): the room's broadcast
    /// of that login, which comes next, is not for it.
    skip_login: Option<ConnId>,
    /// Rooms with an open batch, to seal at the end of the turn.
    batched_rooms: Vec<Rc<str>>,
    /// Reused for JSON encoding, so a broadcast allocates nothing until its batch is sealed.
    scratch: Vec<u8>,
    /// The bound on a welcome's history and the kept encodings' bookkeeping.
    welcomes: WelcomeHistory,
}

/// How newcomers' history is bounded and kept encoded.
#[derive(Debug)]
struct WelcomeHistory {
    /// Bytes of history frames one welcome may queue (`--history-welcome-bytes`).
    limit: usize,
    /// Bytes of encoded history kept over all rooms and dialects; past it every room's is dropped.
    cap: usize,
    /// Bytes of encoded history kept now.
    kept: usize,
    /// Histories encoded since the start (each a (room, dialect, version) not kept or no longer kept).
    encodes: u64,
}

impl Default for WelcomeHistory {
    fn default() -> WelcomeHistory {
        WelcomeHistory {
            limit: crate::config::DEFAULT_HISTORY_WELCOME_BYTES,
            cap: crate::config::DEFAULT_HISTORY_BUDGET,
            kept: 0,
            encodes: 0,
        }
    }
}

/// A room's history encoded in one dialect for its newcomers.
#[derive(Debug)]
struct EncodedHistory {
    /// The version of the history it was encoded from.
    stamp: HistoryStamp,
    frame: SharedBytes,
    messages: u32,
}

/// A connection's dialect and, while it is in a room, its share of its dialect's open batch there.
#[derive(Debug, Clone, Default)]
struct Share {
    dialect: Dialect,
    /// The room it is a member of.
    room: Option<Rc<str>>,
    /// Where its share of its dialect's open batch starts: 0 for all of it; further on for a member who
    /// joined since the batch opened (what came before is not for it), or who was already given the batch
    /// so far because something addressed to it alone had to follow it.
    from: u32,
    /// Messages of the open batch before `from`.
    from_messages: u32,
}

/// Frames broadcast to a room's members of one dialect since the batch was last sealed.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    messages: u32,
}

/// A room's user list encoded in one dialect: every user's entry followed by the separator, in the roster's
/// order, as of a version of the room.
#[derive(Debug, Default, Clone)]
struct UserList {
    bytes: Vec<u8>,
    /// The roster's version of the room it was made from.
    version: u64,
    /// The roster's places encoded so far.
    end: usize,
}

/// A room's delivery side: members per dialect, this turn's open batches, encoded user lists and history.
#[derive(Debug, Default)]
struct Room {
    /// The room's name (the key it is filed under).
    key: Rc<str>,
    /// Members present per dialect.
    speakers: [usize; Dialect::COUNT],
    batches: [Batch; Dialect::COUNT],
    /// The user list per dialect, once a newcomer of that dialect needed it.
    lists: [Option<UserList>; Dialect::COUNT],
    /// The history per dialect as newcomers get it, once one of that dialect needed it.
    histories: [Option<EncodedHistory>; Dialect::COUNT],
    /// In the fanout's list of rooms to seal at the end of the turn.
    listed: bool,
}

/// The fanout as the core's [`Sink`], with the deliveries going to `out`.
#[derive(Debug)]
pub struct FanoutSink<'a> {
    fanout: &'a mut Fanout,
    out: &'a mut Effects,
}

impl Sink for FanoutSink<'_> {
    fn joined(&mut self, room: &str, conn: ConnId) {
        self.fanout.joined(room, conn);
    }

    fn left(&mut self, conn: ConnId) {
        self.fanout.left(conn, self.out);
    }

    fn send(&mut self, to: To<'_>, event: Event<'_>) {
        self.fanout.send(to, &event, self.out);
    }

    fn close(&mut self, conn: ConnId, request: CloseRequest) {
        self.out.closes.push((conn, request));
    }

    fn verbatim(&mut self, conns: &[ConnId], frame: &SharedBytes) {
        for &conn in conns {
            // Its room's broadcasts of the turn so far come first.
            self.fanout.serve(conn, self.out);
            self.out.push(conn, frame.clone(), 1);
        }
    }
}

impl Fanout {
    /// No rooms, every connection in the default dialect.
    pub fn new() -> Fanout {
        Fanout::default()
    }

    /// No rooms, every connection in `dialect` until told otherwise.
    pub fn with_default(dialect: Dialect) -> Fanout {
        Fanout { default: dialect, ..Fanout::default() }
    }

    /// Bounds the history one welcome may queue to `limit` bytes of frames (the newest messages that fit),
    /// and the encoded histories kept for newcomers over all rooms to `cap` bytes.
    pub fn with_welcome_history(mut self, limit: usize, cap: usize) -> Fanout {
        self.welcomes.limit = limit;
        self.welcomes.cap = cap;
        self
    }

    /// How many times a history was encoded for newcomers (not counting the times a kept one was shared).
    #[cfg(test)]
    pub fn history_encodes(&self) -> u64 {
        self.welcomes.encodes
    }

    /// Bytes of encoded history kept for newcomers over all rooms.
    #[cfg(test)]
    pub fn history_kept_bytes(&self) -> usize {
        self.welcomes.kept
    }

    /// The core's sink, delivering to `out`.
    pub fn sink<'a>(&'a mut self, out: &'a mut Effects) -> FanoutSink<'a> {
        FanoutSink { fanout: self, out }
    }

    /// Rooms with members.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The dialect `conn` speaks.
    pub fn dialect_of(&self, conn: ConnId) -> Dialect {
        self.shares.get(conn).map_or(self.default, |s| s.dialect)
    }

    /// `conn`'s share, made (in the default dialect) if it has none yet.
    fn share_mut(&mut self, conn: ConnId) -> &mut Share {
        if self.shares.len() <= conn {
            let default = Share { dialect: self.default, ..Share::default() };
            self.shares.resize(conn + 1, default);
        }
        &mut self.shares[conn]
    }

    /// Makes `conn` speak `dialect` from now on; before it logs in (a member keeps the dialect it joined with).
    pub fn set_dialect(&mut self, conn: ConnId, dialect: Dialect) {
        let share = self.share_mut(conn);
        debug_assert!(share.room.is_none(), "dialect changed inside a room");
        share.dialect = dialect;
    }

    /// Forgets `conn` (its dialect); call when it is gone, after it left its room.
    pub fn forget(&mut self, conn: ConnId) {
        let default = self.default;
        if let Some(share) = self.shares.get_mut(conn) {
            debug_assert!(share.room.is_none(), "forget before leave");
            *share = Share { dialect: default, ..Share::default() };
        }
    }

    /// Gives `conn` what its room's open batch holds for it so far, so that what comes next for `conn` follows
    /// it. The rest of the room gets the batch when it is sealed.
    pub fn serve(&mut self, conn: ConnId, out: &mut Effects) {
        let Some(share) = self.shares.get_mut(conn) else { return };
        if let Some(room) = share.room.as_ref().and_then(|key| self.rooms.get(key)) {
            room.serve(conn, share, out);
        }
    }

    /// Hands every open batch to its room's members, as `roster` has them. Called before the reactor writes.
    pub fn seal(&mut self, roster: &Roster, out: &mut Effects) {
        for key in self.batched_rooms.drain(..) {
            if let Some(room) = self.rooms.get_mut(&key) {
                room.listed = false;
                let members = roster.room(&key).map_or(&[][..], |r| r.locals());
                room.seal(members, &mut self.shares, out);
            }
        }
    }

    fn joined(&mut self, room: &str, conn: ConnId) {
        let dialect = self.dialect_of(conn);
        if !self.rooms.contains_key(room) {
            let key: Rc<str> = Rc::from(room);
            self.rooms.insert(key.clone(), Room { key, ..Room::default() });
        }
        let Some(r) = self.rooms.get_mut(room) else { return };
        r.speakers[dialect.index()] += 1;
        // What the room said before this login is not for the newcomer: its share of the open batch starts at
        // its own login broadcast.
        let batch = &r.batches[dialect.index()];
        let (key, from, from_messages) = (r.key.clone(), batch.bytes.len() as u32, batch.messages);
        let share = self.share_mut(conn);
        debug_assert!(share.room.is_none(), "joined twice");
        (share.room, share.from, share.from_messages) = (Some(key), from, from_messages);
    }

    fn left(&mut self, conn: ConnId, out: &mut Effects) {
        self.serve(conn, out);
        let Some(share) = self.shares.get_mut(conn) else { return };
        let Some(key) = share.room.take() else { return };
        (share.from, share.from_messages) = (0, 0);
        let Some(room) = self.rooms.get_mut(&key) else { return };
        room.speakers[share.dialect.index()] -= 1;
        if room.speakers.iter().all(|&n| n == 0) {
            if let Some(gone) = self.rooms.remove(&key) {
                let freed: usize = gone.histories.iter().flatten().map(|h| h.frame.len()).sum();
                self.welcomes.kept -= freed;
            }
        }
    }

    fn send(&mut self, to: To<'_>, event: &Event<'_>, out: &mut Effects) {
        match to {
            To::Room(room) => self.broadcast(room, event, out),
            To::RoomBut(room, but) => {
                // Each of `but` is given its share so far and starts anew after the event: it skips it.
                for &conn in but {
                    self.serve(conn, out);
                }
                self.broadcast(room, event, out);
                for &conn in but {
                    let Some(share) = self.shares.get_mut(conn) else { continue };
                    if let Some(r) = share.room.as_ref().and_then(|k| self.rooms.get(k)) {
                        r.skip_share(share);
                    }
                }
            }
            To::Conn(conn) => self.send_each(&[conn], event, out),
            To::Conns(conns) => self.send_each(conns, event, out),
            To::Welcome(conn) => self.welcome(conn, event, out),
        }
    }

    /// Appends `event` to the open batch of each dialect spoken in `members`' room.
    fn broadcast(&mut self, members: &RoomRoster, event: &Event<'_>, out: &mut Effects) {
        let skip = if let Event::Login { .. } = event { self.skip_login.take() } else { None };
        let room = members.name();
        let Fanout { rooms, shares, scratch, .. } = self;
        let Some(r) = rooms.get_mut(room) else { return };
        let mut appended = false;
        for d in Dialect::ALL {
            if r.speakers[d.index()] == 0 {
                continue;
            }
            scratch.clear();
            if d.write_json(event, scratch) {
                r.append(d, scratch, members.locals(), shares, out);
                appended = true;
            }
        }
        if let Some(share) = skip.and_then(|conn| shares.get_mut(conn)) {
            if share.room.as_deref() == Some(room) {
                r.skip_share(share);
            }
        }
        if appended && !std::mem::replace(&mut r.listed, true) {
            self.batched_rooms.push(r.key.clone());
        }
    }

    /// Gives each of `conns` its share of its room's batch, then `event`, encoded once per dialect.
    fn send_each(&mut self, conns: &[ConnId], event: &Event<'_>, out: &mut Effects) {
        let mut made: Option<(Dialect, SharedBytes, u32)> = None;
        for &conn in conns {
            self.serve(conn, out);
            let d = self.dialect_of(conn);
            let (bytes, n) = match &made {
                Some((md, bytes, n)) if *md == d => (bytes.clone(), *n),
                _ => {
                    let (bytes, n) = d.frames(event, &mut self.scratch);
                    made = Some((d, bytes.clone(), n));
                    (bytes, n)
                }
            };
            if n > 0 {
                out.push(conn, bytes, n);
            }
        }
    }

    /// Gives `conn` a part of its welcome.
    fn welcome(&mut self, conn: ConnId, event: &Event<'_>, out: &mut Effects) {
        self.serve(conn, out);
        let d = self.dialect_of(conn);
        let (bytes, n) = match *event {
            Event::UserList { room, users, newcomer } => {
                if d.welcome_is_login() {
                    self.skip_login = Some(conn);
                }
                (self.user_list(room, d, users, &newcomer), 1)
            }
            Event::History(ref past) => self.history(conn, d, past),
            _ => d.frames(event, &mut self.scratch),
        };
        if n > 0 {
            out.push_welcome(conn, bytes, n);
        }
    }

    /// The history frames for a newcomer `conn` of dialect `d`: its room's kept encoding of `past` when it
    /// has one of this version, else `past` encoded (within the welcome's bound) and kept for the next one.
    fn history(&mut self, conn: ConnId, d: Dialect, past: &History<'_>) -> (SharedBytes, u32) {
        let Fanout { rooms, shares, scratch, welcomes, .. } = self;
        let key = shares.get(conn).and_then(|s| s.room.clone());
        let room = key.as_ref().and_then(|k| rooms.get_mut(k));
        if let Some(Some(kept)) = room.as_ref().map(|r| &r.histories[d.index()]) {
            if kept.stamp == past.stamp {
                return (kept.frame.clone(), kept.messages);
            }
        }
        welcomes.encodes += 1;
        let (frame, messages) = d.history(past, welcomes.limit, scratch);
        let Some(room) = room else { return (frame, messages) };
        if let Some(stale) = room.histories[d.index()].take() {
            welcomes.kept -= stale.frame.len();
        }
        if welcomes.kept + frame.len() > welcomes.cap {
            // Rare (a cap's worth of encodes): drop every room's, rather than keep an order of use.
            for r in rooms.values_mut() {
                r.histories = Default::default();
            }
            welcomes.kept = 0;
        }
        if frame.len() <= welcomes.cap {
            if let Some(room) = key.as_ref().and_then(|k| rooms.get_mut(k)) {
                welcomes.kept += frame.len();
                room.histories[d.index()] = Some(EncodedHistory { stamp: past.stamp, frame: frame.clone(), messages });
            }
        }
        (frame, messages)
    }

    /// The `user_list` frame for `newcomer` of `room` in dialect `d`, from the room's encoded list, extended
    /// with the users added at the end since, or made again from `users` when the room's version changed.
    fn user_list(&mut self, room: &str, d: Dialect, users: &RoomRoster, newcomer: &Newcomer<'_>) -> SharedBytes {
        let newcomer = *newcomer;
        let Some(r) = self.rooms.get_mut(room) else {
            return d.frames(&Event::UserList { room, users, newcomer }, &mut self.scratch).0;
        };
        let list = r.lists[d.index()].get_or_insert_with(UserList::default);
        if list.version != users.version() {
            list.bytes.clear();
            (list.version, list.end) = (users.version(), 0);
        }
        users.each_from(list.end, |uid, name, user_id| d.write_list_entry(uid, name, user_id, &mut list.bytes));
        list.end = users.end();
        if list.bytes.capacity() > 2 * list.bytes.len() + 4096 {
            list.bytes.shrink_to(list.bytes.len() + list.bytes.len() / 2);
        }
        d.user_list_frame(&list.bytes, &newcomer)
    }
}

impl Room {
    /// Hands every open batch to `members` of its dialect, and opens new ones.
    fn seal(&mut self, members: &[ConnId], shares: &mut [Share], out: &mut Effects) {
        for d in Dialect::ALL {
            self.seal_dialect(d, members, shares, out);
        }
    }

    /// Hands `d`'s open batch to every one of `members` of that dialect as one shared buffer (a member whose
    /// share starts later gets a copy of its share), and opens a new one.
    fn seal_dialect(&mut self, d: Dialect, members: &[ConnId], shares: &mut [Share], out: &mut Effects) {
        let batch = &mut self.batches[d.index()];
        if batch.messages == 0 {
            return;
        }
        let bytes: SharedBytes = Rc::from(&batch.bytes[..]);
        out.sends.reserve(self.speakers[d.index()]);
        for &conn in members {
            let Some(m) = shares.get_mut(conn).filter(|m| m.dialect == d) else { continue };
            if m.from == 0 {
                out.push(conn, bytes.clone(), batch.messages);
                continue;
            }
            let from = m.from as usize;
            if from < batch.bytes.len() {
                out.push(conn, Rc::from(&batch.bytes[from..]), batch.messages - m.from_messages);
            }
            (m.from, m.from_messages) = (0, 0);
        }
        batch.bytes.clear();
        if batch.bytes.capacity() > MAX_BATCH_BYTES * 2 {
            batch.bytes.shrink_to(MAX_BATCH_BYTES);
        }
        batch.messages = 0;
    }

    /// Appends `json` as one frame to `d`'s open batch, sealing the batch first (for `members`) when it would
    /// grow too big.
    fn append(&mut self, d: Dialect, json: &[u8], members: &[ConnId], shares: &mut [Share], out: &mut Effects) {
        if self.batches[d.index()].bytes.len() + json.len() > MAX_BATCH_BYTES {
            self.seal_dialect(d, members, shares, out);
        }
        let batch = &mut self.batches[d.index()];
        write_text_frame(&mut batch.bytes, json);
        batch.messages += 1;
    }

    /// Gives `conn` (whose `share` this is) its share of its open batch so far, as a copy, and starts its
    /// share anew at the end: what comes next for it alone then follows what the room said before. The other
    /// members are not touched; they get the batch when it is sealed.
    fn serve(&self, conn: ConnId, share: &mut Share, out: &mut Effects) {
        let batch = &self.batches[share.dialect.index()];
        let from = share.from as usize;
        if from < batch.bytes.len() {
            out.push(conn, Rc::from(&batch.bytes[from..]), batch.messages - share.from_messages);
        }
        (share.from, share.from_messages) = (batch.bytes.len() as u32, batch.messages);
    }

    /// The member whose `share` this is does not share what its open batch holds so far (the frame just
    /// appended was its own login, which its welcome already was).
    fn skip_share(&self, share: &mut Share) {
        let batch = &self.batches[share.dialect.index()];
        (share.from, share.from_messages) = (batch.bytes.len() as u32, batch.messages);
    }
}
