//! The fanout: the chat core's events turned into deliveries, in each connection's dialect. A room's
//! broadcasts are batched per (room, dialect) and loop turn: an event for the room is encoded once per dialect
//! spoken in it and appended to that dialect's open batch, and [`Fanout::seal`] (called once per turn, before
//! the reactor writes) hands each member the whole batch of its dialect as one shared buffer, so a member
//! costs one queue entry and one iovec per turn however many messages the room saw. Each member has a share
//! of its open batch: all of it, or, for a member who joined during the batch, what came after its own
//! login. Anything addressed to one connection (an error, a private message, its departure) first hands that
//! connection its share so far as a copy and starts its share anew, so every connection still sees its frames
//! in the order they were made, and neither a login nor a message to one member costs the room a delivery per
//! member. A batch is cut at [`MAX_BATCH_BYTES`].
//!
//! A room also keeps its user list encoded per dialect, entry by entry in login order, so a newcomer's
//! `user_list` frame is a copy of bytes, not one JSON encode per member. A dialect's list is built from
//! presence the first time one of its newcomers needs it, then kept current by joins and departures.
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
use super::event::{Event, History, HistoryStamp, Newcomer, Sink, To, Users};
use crate::app::{ConnId, Effects};
use crate::shared_bytes::SharedBytes;

/// A room's open batch is sealed early once it holds this many bytes, which bounds its memory and the size
/// of one write.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// A member slot whose connection has left; slots are removed, with their user-list entries, by
/// [`Room::tidy`].
const GONE: ConnId = ConnId::MAX;

/// Encodes, batches and addresses the chat core's events.
#[derive(Debug, Default)]
pub struct Fanout {
    rooms: HashMap<Rc<str>, Room>,
    /// Where each member connection sits.
    seats: HashMap<ConnId, Seat>,
    /// The dialect of a connection until it is told otherwise (`--escape-html` picks the escaped seed one).
    default: Dialect,
    /// Connections that speak another dialect than the default one.
    dialects: HashMap<ConnId, Dialect>,
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

/// A member connection's room and slot.
#[derive(Debug)]
struct Seat {
    room: Rc<str>,
    /// Its index in the room's `members` (kept current when the room is tidied).
    slot: usize,
}

/// One member of a room, in login order.
#[derive(Debug, Clone, Copy)]
struct Member {
    /// The connection, or [`GONE`].
    conn: ConnId,
    dialect: Dialect,
    /// Where the member's share of its dialect's open batch starts: 0 for all of it; further on for a member
    /// who joined since the batch opened (what came before is not for it), or who was already given the
    /// batch so far because something addressed to it alone had to follow it.
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

/// A room's user list encoded in one dialect: every slot's entry followed by the separator, in slot order.
#[derive(Debug, Default, Clone)]
struct UserList {
    bytes: Vec<u8>,
    /// Bytes of each slot's entry, separator included; parallel to [`Room::members`].
    lens: Vec<u32>,
}

/// A room: its members in login order with their encoded user lists, and this turn's open batches.
#[derive(Debug, Default)]
struct Room {
    /// The room's name (the key it is filed under).
    key: Rc<str>,
    /// Members in login order, with slots of those who left since the last tidy.
    members: Vec<Member>,
    /// Members present.
    live: usize,
    /// Slots in `members` marked [`GONE`].
    gone: usize,
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
    fn joined(&mut self, room: &str, conn: ConnId, uid: u64, name: &str) {
        self.fanout.joined(room, conn, uid, name);
    }

    fn left(&mut self, _room: &str, conn: ConnId) {
        self.fanout.left(conn, self.out);
    }

    fn send(&mut self, to: To<'_>, event: Event<'_>) {
        self.fanout.send(to, &event, self.out);
    }

    fn roster_changed(&mut self, room: &str) {
        if let Some(r) = self.fanout.rooms.get_mut(room) {
            r.lists = Default::default();
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
    pub fn history_encodes(&self) -> u64 {
        self.welcomes.encodes
    }

    /// Bytes of encoded history kept for newcomers over all rooms.
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
        self.dialects.get(&conn).copied().unwrap_or(self.default)
    }

    /// Makes `conn` speak `dialect` from now on; before it logs in (a member keeps the dialect it joined with).
    pub fn set_dialect(&mut self, conn: ConnId, dialect: Dialect) {
        debug_assert!(!self.seats.contains_key(&conn), "dialect changed inside a room");
        if dialect == self.default {
            self.dialects.remove(&conn);
        } else {
            self.dialects.insert(conn, dialect);
        }
    }

    /// Forgets `conn` (its dialect); call when it is gone, after it left its room.
    pub fn forget(&mut self, conn: ConnId) {
        debug_assert!(!self.seats.contains_key(&conn), "forget before leave");
        self.dialects.remove(&conn);
    }

    /// Gives `conn` what its room's open batch holds for it so far, so that what comes next for `conn` follows
    /// it. The rest of the room gets the batch when it is sealed.
    pub fn serve(&mut self, conn: ConnId, out: &mut Effects) {
        let Some(seat) = self.seats.get(&conn) else { return };
        if let Some(room) = self.rooms.get_mut(&seat.room) {
            room.serve(seat.slot, out);
        }
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

    fn joined(&mut self, room: &str, conn: ConnId, uid: u64, name: &str) {
        debug_assert!(!self.seats.contains_key(&conn), "joined twice");
        let dialect = self.dialect_of(conn);
        if !self.rooms.contains_key(room) {
            let key: Rc<str> = Rc::from(room);
            self.rooms.insert(key.clone(), Room { key, ..Room::default() });
        }
        let Fanout { rooms, seats, .. } = self;
        let Some(r) = rooms.get_mut(room) else { return };
        tidy(r, seats);
        // What the room said before this login is not for the newcomer: its share of the open batch starts at
        // its own login broadcast.
        let slot = r.join(conn, dialect, uid, name);
        seats.insert(conn, Seat { room: r.key.clone(), slot });
    }

    fn left(&mut self, conn: ConnId, out: &mut Effects) {
        let Some(seat) = self.seats.remove(&conn) else { return };
        let Fanout { rooms, seats, welcomes, .. } = self;
        let Some(room) = rooms.get_mut(&seat.room) else { return };
        room.serve(seat.slot, out);
        room.part(seat.slot);
        if room.gone > room.live.max(32) {
            tidy(room, seats);
        }
        if room.live == 0 {
            if let Some(gone) = rooms.remove(&seat.room) {
                let freed: usize = gone.histories.iter().flatten().map(|h| h.frame.len()).sum();
                welcomes.kept -= freed;
            }
        }
    }

    fn send(&mut self, to: To<'_>, event: &Event<'_>, out: &mut Effects) {
        match to {
            To::Room(room) => self.broadcast(room, event, out),
            To::Conn(conn) => self.send_each(&[conn], event, out),
            To::Conns(conns) => self.send_each(conns, event, out),
            To::Welcome(conn) => self.welcome(conn, event, out),
        }
    }

    /// Appends `event` to the open batch of each dialect spoken in `room`.
    fn broadcast(&mut self, room: &str, event: &Event<'_>, out: &mut Effects) {
        let skip = if let Event::Login { .. } = event { self.skip_login.take() } else { None };
        let Some(r) = self.rooms.get_mut(room) else { return };
        let mut appended = false;
        for d in Dialect::ALL {
            if r.speakers[d.index()] == 0 {
                continue;
            }
            self.scratch.clear();
            if d.write_json(event, &mut self.scratch) {
                r.append(d, &self.scratch, out);
                appended = true;
            }
        }
        if let Some(seat) = skip.and_then(|conn| self.seats.get(&conn)) {
            if *seat.room == *room {
                r.skip_share(seat.slot);
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
        let Fanout { rooms, seats, scratch, welcomes, .. } = self;
        let room = seats.get(&conn).and_then(|seat| rooms.get_mut(&seat.room));
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
            if let Some(room) = seats.get(&conn).and_then(|seat| rooms.get_mut(&seat.room)) {
                welcomes.kept += frame.len();
                room.histories[d.index()] = Some(EncodedHistory { stamp: past.stamp, frame: frame.clone(), messages });
            }
        }
        (frame, messages)
    }

    /// The `user_list` frame for `newcomer` of `room` in dialect `d`, from the room's encoded list (made from
    /// `users` when the room has none in `d` yet).
    fn user_list(&mut self, room: &str, d: Dialect, users: Users<'_>, newcomer: &Newcomer<'_>) -> SharedBytes {
        let Fanout { rooms, seats, scratch, .. } = self;
        let newcomer = *newcomer;
        let Some(r) = rooms.get_mut(room) else {
            return d.frames(&Event::UserList { room, users, newcomer }, scratch).0;
        };
        tidy(r, seats);
        if r.lists[d.index()].is_none() {
            let mut list = UserList::default();
            users.for_each(|uid, name| {
                let start = list.bytes.len();
                d.write_list_entry(uid, name, &mut list.bytes);
                list.lens.push(u32::try_from(list.bytes.len() - start).unwrap_or(u32::MAX));
            });
            if list.lens.len() != r.members.len() {
                // Presence knows users this room has no member for: encode the list afresh every time.
                return d.user_list_frame(&list.bytes, &newcomer);
            }
            r.lists[d.index()] = Some(list);
        }
        match &r.lists[d.index()] {
            Some(list) => d.user_list_frame(&list.bytes, &newcomer),
            None => d.frames(&Event::UserList { room, users, newcomer }, scratch).0,
        }
    }
}

impl Room {
    /// Hands every open batch to the members of its dialect, and opens new ones.
    fn seal(&mut self, out: &mut Effects) {
        for d in Dialect::ALL {
            self.seal_dialect(d, out);
        }
    }

    /// Hands `d`'s open batch to every member of that dialect as one shared buffer (a member whose share
    /// starts later gets a copy of its share), and opens a new one.
    fn seal_dialect(&mut self, d: Dialect, out: &mut Effects) {
        let batch = &mut self.batches[d.index()];
        if batch.messages == 0 {
            return;
        }
        let bytes: SharedBytes = Rc::from(&batch.bytes[..]);
        out.sends.reserve(self.speakers[d.index()]);
        for m in &mut self.members {
            if m.conn == GONE || m.dialect != d {
                continue;
            }
            if m.from == 0 {
                out.push(m.conn, bytes.clone(), batch.messages);
                continue;
            }
            let from = m.from as usize;
            if from < batch.bytes.len() {
                out.push(m.conn, Rc::from(&batch.bytes[from..]), batch.messages - m.from_messages);
            }
            (m.from, m.from_messages) = (0, 0);
        }
        batch.bytes.clear();
        if batch.bytes.capacity() > MAX_BATCH_BYTES * 2 {
            batch.bytes.shrink_to(MAX_BATCH_BYTES);
        }
        batch.messages = 0;
    }

    /// Appends `json` as one frame to `d`'s open batch, sealing the batch first when it would grow too big.
    fn append(&mut self, d: Dialect, json: &[u8], out: &mut Effects) {
        if self.batches[d.index()].bytes.len() + json.len() > MAX_BATCH_BYTES {
            self.seal_dialect(d, out);
        }
        let batch = &mut self.batches[d.index()];
        write_text_frame(&mut batch.bytes, json);
        batch.messages += 1;
    }

    /// Gives the member in `slot` its share of its open batch so far, as a copy, and starts its share anew
    /// at the end: what comes next for it alone then follows what the room said before. The other members
    /// are not touched; they get the batch when it is sealed.
    fn serve(&mut self, slot: usize, out: &mut Effects) {
        let Some(m) = self.members.get_mut(slot) else { return };
        let batch = &self.batches[m.dialect.index()];
        let from = m.from as usize;
        if from < batch.bytes.len() {
            out.push(m.conn, Rc::from(&batch.bytes[from..]), batch.messages - m.from_messages);
        }
        (m.from, m.from_messages) = (batch.bytes.len() as u32, batch.messages);
    }

    /// The member in `slot` does not share what its open batch holds so far (the frame just appended was
    /// its own login, which its welcome already was).
    fn skip_share(&mut self, slot: usize) {
        let Some(m) = self.members.get_mut(slot) else { return };
        let batch = &self.batches[m.dialect.index()];
        (m.from, m.from_messages) = (batch.bytes.len() as u32, batch.messages);
    }

    /// Adds a member at the end, with its entry in every encoded user list; it shares only what its open
    /// batch gets from now on. Returns its slot. The room must be tidy.
    fn join(&mut self, conn: ConnId, dialect: Dialect, uid: u64, name: &str) -> usize {
        for (d, list) in Dialect::ALL.into_iter().zip(&mut self.lists) {
            if let Some(list) = list {
                let start = list.bytes.len();
                d.write_list_entry(uid, name, &mut list.bytes);
                list.lens.push(u32::try_from(list.bytes.len() - start).unwrap_or(u32::MAX));
            }
        }
        let batch = &self.batches[dialect.index()];
        self.members.push(Member { conn, dialect, from: batch.bytes.len() as u32, from_messages: batch.messages });
        self.live += 1;
        self.speakers[dialect.index()] += 1;
        self.members.len() - 1
    }

    /// Marks the member in `slot` as gone; its entries stay until the next tidy (before the next login, or
    /// when gone slots outnumber the members), so a wave of departures costs one compaction, not one each.
    fn part(&mut self, slot: usize) {
        let Some(m) = self.members.get_mut(slot) else { return };
        if m.conn == GONE {
            return;
        }
        m.conn = GONE;
        self.gone += 1;
        self.live -= 1;
        self.speakers[m.dialect.index()] -= 1;
    }

    /// Drops the slots and user-list entries of members who left, moving the rest down in one pass. Returns
    /// the first slot whose member moved (`members.len()` when none did).
    fn tidy(&mut self) -> usize {
        if self.gone == 0 {
            return self.members.len();
        }
        let first_gone = self.members.iter().position(|m| m.conn == GONE).unwrap_or(self.members.len());
        for list in self.lists.iter_mut().flatten() {
            let (mut read, mut write, mut kept) = (0, 0, 0);
            for (i, m) in self.members.iter().enumerate() {
                let len = list.lens[i] as usize;
                if m.conn != GONE {
                    if read != write {
                        list.bytes.copy_within(read..read + len, write);
                    }
                    write += len;
                    list.lens[kept] = list.lens[i];
                    kept += 1;
                }
                read += len;
            }
            list.bytes.truncate(write);
            list.lens.truncate(kept);
            if list.bytes.capacity() > 2 * list.bytes.len() + 4096 {
                list.bytes.shrink_to(list.bytes.len() + list.bytes.len() / 2);
            }
        }
        self.members.retain(|m| m.conn != GONE);
        self.gone = 0;
        if self.members.capacity() > 2 * self.members.len() + 64 {
            self.members.shrink_to(self.members.len() + self.members.len() / 2);
        }
        first_gone
    }
}

/// Tidies `room` and tells the members who moved their new slots.
fn tidy(room: &mut Room, seats: &mut HashMap<ConnId, Seat>) {
    let first_moved = room.tidy();
    for (slot, m) in room.members.iter().enumerate().skip(first_moved) {
        if let Some(seat) = seats.get_mut(&m.conn) {
            seat.slot = slot;
        }
    }
}
