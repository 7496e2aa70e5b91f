//! The chat hub: users, rooms, uid allocation and history. It turns a client's message into bytes addressed
//! to connections. Broadcasts are batched per room and loop turn: every frame a room broadcasts is appended
//! to the room's open batch, and [`Hub::seal`] (called by the reactor once per turn, before it writes) hands
//! the whole batch to every member as one shared buffer, so a member costs one queue entry and one iovec per
//! turn however many messages the room saw. Each member has a share of the open batch: all of it, or, for a
//! member who joined during the batch, what came after its own login. Anything addressed to one connection
//! (an error, a private message, its departure) first hands that connection its share so far as a copy and
//! starts its share anew, so every connection still sees its frames in the order they were made, and
//! neither a login nor a message to one member costs the room a delivery per member.
//!
//! Limits against memory and amplification (all sans-IO: the reactor passes the time in with
//! [`Hub::set_now`]): history is bounded per room (`--history`) and over all rooms together
//! (`--history-budget`, the globally oldest messages go first); a room holds at most `--max-room-users`
//! users; a connection may log in `--join-burst` times in a row, then once a second. A room keeps its user
//! list encoded, entry by entry in login order, so a newcomer's `user_list` frame is a copy of bytes, not
//! one JSON encode per member.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::protocol::{
    error_json, ClientMessage, ErrorCode, Recipient, ServerMessage, ToUidOut, UserEntry, MAX_NAME_CHARS,
};
use crate::app::{ConnId, Delivery, Effects};
use crate::outbox::Frame;
use crate::ws::frame::{encode_header, OpCode, MAX_HEADER_LEN};

/// A room's open batch is sealed early once it holds this many bytes, which bounds its memory and the size
/// of one write.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// A logged-in user.
#[derive(Debug)]
struct User {
    uid: u64,
    name: Box<str>,
    room: Rc<str>,
    /// The user's index in its room's `members` (kept current when the room is tidied).
    slot: usize,
}

/// What a hub enforces. [`HubLimits::unlimited`] is the old behaviour (only the per-room history count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    /// Messages of history kept per room (`--history`); 0 keeps none.
    pub history: usize,
    /// Bytes of history kept over all rooms together (`--history-budget`); past it the globally oldest
    /// messages are dropped first.
    pub history_budget: usize,
    /// Users allowed in one room (`--max-room-users`); further logins get error `room_full`.
    pub max_room_users: usize,
    /// Logins a connection may make in a row (`--join-burst`), refilled at one a second; 0: no limit.
    /// Further logins get error `rate_limited`.
    pub join_burst: u32,
}

impl HubLimits {
    /// `history` messages per room and no other limit.
    pub fn unlimited(history: usize) -> HubLimits {
        HubLimits { history, history_budget: usize::MAX, max_room_users: usize::MAX, join_burst: 0 }
    }
}

impl From<&crate::config::Config> for HubLimits {
    fn from(cfg: &crate::config::Config) -> HubLimits {
        HubLimits {
            history: cfg.history,
            history_budget: cfg.history_budget,
            max_room_users: cfg.max_room_users,
            join_burst: cfg.join_burst,
        }
    }
}

/// The hub's figures for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Bytes of history held over all rooms (the frames' sizes): `wschat_history_bytes`.
    pub history_bytes: u64,
    /// History messages dropped to stay within the budget: `wschat_history_evicted_total`.
    pub history_evicted_total: u64,
    /// Logins refused because the room was full: `wschat_room_full_total`.
    pub room_full_total: u64,
    /// Logins refused by the join burst (add the reactor's own refusals for `wschat_rate_limited_total`).
    pub rate_limited_total: u64,
}

/// A member slot whose user has left; slots are removed, with their user-list bytes, by [`Room::tidy`].
const GONE: ConnId = ConnId::MAX;

/// One member of a room, in login order.
#[derive(Debug, Clone, Copy)]
struct Member {
    /// The connection, or [`GONE`].
    conn: ConnId,
    /// Bytes of the member's entry in [`Room::list`], its trailing comma included.
    entry: u32,
    /// Where the member's share of the open batch starts: 0 for all of it; further on for a member who
    /// joined since the batch opened (what came before is not for it), or who was already given the batch
    /// so far because something addressed to it alone had to follow it.
    from: u32,
    /// Messages of the open batch before `from`.
    from_messages: u32,
}

/// The bytes of a `user_list` message before the entries.
const LIST_PREFIX: &[u8] = br#"{"type":"user_list","user_list":["#;
/// The bytes of a `user_list` message after the entries.
const LIST_SUFFIX: &[u8] = b"]}";

/// A room: its members in login order with their user list, its recent messages and this turn's open batch
/// of broadcasts.
#[derive(Debug, Default)]
struct Room {
    /// Tells this room from an earlier room of the same name (for the global history queue).
    id: u64,
    /// Members in login order, with slots of those who left since the last tidy.
    members: Vec<Member>,
    /// Members present.
    live: usize,
    /// Slots in `members` marked [`GONE`].
    gone: usize,
    /// Every slot's user-list entry (`{"uid":U,"name":N}`) followed by a comma, in slot order.
    list: Vec<u8>,
    history: VecDeque<Frame>,
    /// The sequence number of `history[0]`; each message kept gets the next one.
    history_seq: u64,
    /// Frames broadcast to every member since the batch was last sealed.
    batch: Vec<u8>,
    /// How many messages `batch` holds.
    batch_messages: u32,
    /// In the hub's list of rooms to seal at the end of the turn.
    listed: bool,
}

impl Room {
    /// Hands the open batch to every member as one shared buffer (a member whose share starts later gets a
    /// copy of its share), and opens a new one.
    fn seal(&mut self, out: &mut Effects) {
        if self.batch_messages == 0 {
            return;
        }
        let bytes: Frame = Rc::from(&self.batch[..]);
        out.sends.reserve(self.live);
        for m in &mut self.members {
            if m.conn == GONE {
                continue;
            }
            if m.from == 0 {
                out.sends.push(Delivery {
                    conn: m.conn,
                    bytes: bytes.clone(),
                    messages: self.batch_messages,
                    welcome: false,
                });
                continue;
            }
            let from = m.from as usize;
            if from < self.batch.len() {
                out.sends.push(Delivery {
                    conn: m.conn,
                    bytes: Rc::from(&self.batch[from..]),
                    messages: self.batch_messages - m.from_messages,
                    welcome: false,
                });
            }
            (m.from, m.from_messages) = (0, 0);
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

    /// Gives the member in `slot` its share of the open batch so far, as a copy, and starts its share anew
    /// at the end: what comes next for it alone then follows what the room said before. The other members
    /// are not touched; they get the batch when it is sealed.
    fn serve(&mut self, slot: usize, out: &mut Effects) {
        let (len, messages) = (self.batch.len(), self.batch_messages);
        let Some(m) = self.members.get_mut(slot) else { return };
        let from = m.from as usize;
        if from < len {
            out.sends.push(Delivery {
                conn: m.conn,
                bytes: Rc::from(&self.batch[from..]),
                messages: messages - m.from_messages,
                welcome: false,
            });
        }
        (m.from, m.from_messages) = (len as u32, messages);
    }

    /// Adds a member at the end, with its user-list entry; it shares only what the open batch gets from now
    /// on. Returns its slot.
    fn join(&mut self, conn: ConnId, uid: u64, name: &str) -> usize {
        let start = self.list.len();
        // The same serializer as `ServerMessage::UserList`, so the bytes are the ones a full encode makes.
        if serde_json::to_writer(&mut self.list, &UserEntry { uid, name }).is_err() {
            self.list.truncate(start);
        }
        self.list.push(b',');
        let entry = u32::try_from(self.list.len() - start).unwrap_or(u32::MAX);
        self.members.push(Member { conn, entry, from: self.batch.len() as u32, from_messages: self.batch_messages });
        self.live += 1;
        self.members.len() - 1
    }

    /// Marks the member in `slot` as gone; its bytes stay until the next tidy (before the next login, or
    /// when gone slots outnumber the members), so a wave of departures costs one compaction, not one each.
    fn part(&mut self, slot: usize) {
        let Some(m) = self.members.get_mut(slot) else { return };
        m.conn = GONE;
        self.gone += 1;
        self.live -= 1;
    }

    /// Drops the slots and user-list entries of members who left, moving the rest down in one pass. Returns
    /// the first slot whose member moved (`members.len()` when none did).
    fn tidy(&mut self) -> usize {
        if self.gone == 0 {
            return self.members.len();
        }
        let first_gone = self.members.iter().position(|m| m.conn == GONE).unwrap_or(self.members.len());
        let (mut read, mut write, mut kept) = (0, 0, 0);
        for i in 0..self.members.len() {
            let m = self.members[i];
            let len = m.entry as usize;
            if m.conn != GONE {
                if read != write {
                    self.list.copy_within(read..read + len, write);
                }
                write += len;
                self.members[kept] = m;
                kept += 1;
            }
            read += len;
        }
        self.members.truncate(kept);
        self.list.truncate(write);
        self.gone = 0;
        if self.list.capacity() > 2 * self.list.len() + 4096 {
            self.list.shrink_to(self.list.len() + self.list.len() / 2);
        }
        if self.members.capacity() > 2 * self.members.len() + 64 {
            self.members.shrink_to(self.members.len() + self.members.len() / 2);
        }
        first_gone
    }

    #[cfg(test)]
    fn clone_user_list_for_test(&self) -> Vec<u8> {
        let mut probe = Room {
            list: self.list.clone(),
            members: self.members.clone(),
            gone: self.gone,
            live: self.live,
            ..Room::default()
        };
        probe.tidy();
        probe.user_list_frame().to_vec()
    }

    /// The `user_list` frame of the members in login order: the room's entry bytes between a prefix and a
    /// suffix, copied once into the frame. The room must be tidy.
    fn user_list_frame(&self) -> Frame {
        debug_assert_eq!(self.gone, 0, "user list of an untidy room");
        let entries = &self.list[..self.list.len().saturating_sub(1)];
        frame_of_parts(&[LIST_PREFIX, entries, LIST_SUFFIX])
    }
}

/// Tidies `room` and tells the members who moved their new slots.
fn tidy(room: &mut Room, users: &mut HashMap<ConnId, User>) {
    let first_moved = room.tidy();
    for (slot, m) in room.members.iter().enumerate().skip(first_moved) {
        if let Some(user) = users.get_mut(&m.conn) {
            user.slot = slot;
        }
    }
}

/// A message kept in some room's history, in the order of the global history queue.
#[derive(Debug)]
struct Kept {
    room: Rc<str>,
    /// [`Room::id`]: a room dropped and made again under the same name is another room.
    room_id: u64,
    /// The message's sequence number in its room.
    seq: u64,
}

/// A connection's allowance of logins: `--join-burst` in a row, then one a second.
#[derive(Debug, Clone, Copy)]
struct JoinBucket {
    tokens: u32,
    /// When the tokens were last counted; a whole second since adds one.
    since: Option<Instant>,
}

impl JoinBucket {
    /// Adds the tokens earned up to `now`; a full bucket earns nothing, so a burst is followed by a wait of
    /// one second per login.
    fn refill(&mut self, burst: u32, now: Option<Instant>) {
        let (Some(now), Some(since)) = (now, self.since) else {
            self.since = self.since.or(now);
            return;
        };
        if self.tokens >= burst {
            self.since = Some(now);
            return;
        }
        let secs = now.saturating_duration_since(since).as_secs();
        if secs > 0 {
            self.tokens = u32::try_from(u64::from(self.tokens) + secs).unwrap_or(u32::MAX).min(burst);
            self.since = Some(if self.tokens >= burst { now } else { since + Duration::from_secs(secs) });
        }
    }
}

/// Users and rooms of one daemon.
#[derive(Debug)]
pub struct Hub {
    next_uid: u64,
    limits: HubLimits,
    users: HashMap<ConnId, User>,
    by_uid: HashMap<u64, ConnId>,
    rooms: HashMap<Rc<str>, Room>,
    next_room_id: u64,
    /// Rooms with an open batch, to seal at the end of the turn.
    batched_rooms: Vec<Rc<str>>,
    /// Reused for JSON encoding, so a broadcast allocates nothing until its batch is sealed.
    scratch: Vec<u8>,
    /// Every message kept in any room's history, oldest first, plus ones already dropped (by the per-room
    /// count, or with their room), which are skipped and now and then swept out.
    kept: VecDeque<Kept>,
    /// Messages in all rooms' histories.
    history_messages: usize,
    stats: HubStats,
    /// Join allowances of connections that logged in recently; a full bucket is the same as none.
    joins: HashMap<ConnId, JoinBucket>,
    /// The time the reactor last gave; `None` until it gives one.
    now: Option<Instant>,
    /// When full join buckets are next swept out.
    next_join_sweep: Option<Instant>,
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

/// Encodes the concatenation of `parts` as one unmasked text frame, copying each byte once.
fn frame_of_parts(parts: &[&[u8]]) -> Frame {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut head, true, OpCode::Text, None, len);
    let mut frame = Rc::<[u8]>::new_uninit_slice(n + len);
    let dst = Rc::get_mut(&mut frame).expect("a new Rc has no other owner");
    let mut at = 0;
    for part in std::iter::once(&head[..n]).chain(parts.iter().copied()) {
        dst[at..at + part.len()].write_copy_of_slice(part);
        at += part.len();
    }
    assert_eq!(at, dst.len());
    // SAFETY: the parts were written back to back from the start, and the assert shows they filled it.
    unsafe { frame.assume_init() }
}

/// A nickname after trimming, if it is acceptable: 1 to [`MAX_NAME_CHARS`] characters, none of them invisible.
///
/// Refused (error `bad_name`): control characters; bidi controls (U+061C, U+200E/F, U+202A–U+202E,
/// U+2066–U+2069); zero-width and other default-ignorable characters (U+00AD soft hyphen, U+034F, U+115F/U+1160
/// and U+3164/U+FFA0 Hangul fillers, U+17B4/5, U+180E, U+200B–U+200D, U+2060–U+206F, U+FEFF, U+FFF0–U+FFFB,
/// U+1BCA0–U+1BCA3, U+1D173–U+1D17A, U+E0000–U+E0FFF); other format characters (U+0600–U+0605, U+06DD, U+070F,
/// U+0890/1, U+08E2, U+110BD, U+110CD, U+13430–U+1343F); U+2028/U+2029 inside a name; the blank U+2800. So a
/// name cannot reorder the text around it or pass for another name that looks the same. Emoji keep working:
/// a variation selector is allowed right after a character it can modify (an emoji or symbol, a CJK ideograph,
/// a Mongolian letter, or a keycap digit, `#` or `*` followed by U+20E3), a zero-width joiner between two emoji,
/// and tag characters in a flag sequence (U+1F3F4, tags, U+E007F) — never alone, stacked or at the edges.
pub fn valid_name(name: &str) -> Option<&str> {
    /// What the previous character lets the next one attach to.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Prev {
        /// Nothing can attach: the start, or after a selector, joiner or finished flag.
        Nothing,
        /// A visible character: a variation selector, joiner or tag may follow as it allows.
        Base(char),
        /// A variation selector after this base: only a joiner may follow (when the base is an emoji).
        Selected(char),
        /// Inside a flag's tag sequence: more tags or the cancel tag U+E007F must follow.
        Tag,
    }
    fn emoji(c: char) -> bool {
        matches!(c, '\u{A9}' | '\u{AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}' | '\u{2190}'..='\u{2BFF}'
            | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}' | '\u{1F000}'..='\u{1FAFF}')
    }
    fn ideograph(c: char) -> bool {
        matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3FFFF}')
    }
    fn selector_fits(selector: char, base: char, next: Option<char>) -> bool {
        match selector {
            '\u{FE0E}' | '\u{FE0F}' => {
                emoji(base) || (matches!(base, '0'..='9' | '#' | '*') && next == Some('\u{20E3}'))
            }
            '\u{FE00}'..='\u{FE0D}' => emoji(base) || ideograph(base),
            '\u{E0100}'..='\u{E01EF}' => ideograph(base),
            '\u{180B}'..='\u{180D}' | '\u{180F}' => matches!(base, '\u{1820}'..='\u{18AF}'),
            _ => false,
        }
    }
    fn invisible(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{600}'..='\u{605}' | '\u{6DD}' | '\u{70F}'
                | '\u{890}' | '\u{891}' | '\u{8E2}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
                | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
                | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
                | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
    }

    let name = name.trim();
    if !(1..=MAX_NAME_CHARS).contains(&name.chars().count()) {
        return None;
    }
    let mut prev = Prev::Nothing;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        prev = match (c, prev) {
            (_, Prev::Tag) => match c {
                '\u{E0020}'..='\u{E007E}' => Prev::Tag,
                '\u{E007F}' => Prev::Nothing,
                _ => return None,
            },
            ('\u{E0020}'..='\u{E007E}', Prev::Base('\u{1F3F4}')) => Prev::Tag,
            ('\u{200D}', Prev::Base(b) | Prev::Selected(b)) if emoji(b) && next.is_some_and(emoji) => Prev::Nothing,
            (_, Prev::Base(b)) if selector_fits(c, b, next) => Prev::Selected(b),
            _ if invisible(c) => return None,
            _ => Prev::Base(c),
        };
    }
    (prev != Prev::Tag).then_some(name)
}

#[cfg(test)]
mod valid_name_tests {
    use super::valid_name;

    /// Every invisible character the hardening issue lists, and their neighbours.
    const INVISIBLE: &[(char, &str)] = &[
        ('\u{202E}', "right-to-left override"),
        ('\u{202D}', "left-to-right override"),
        ('\u{202A}', "left-to-right embedding"),
        ('\u{202B}', "right-to-left embedding"),
        ('\u{202C}', "pop directional formatting"),
        ('\u{2066}', "left-to-right isolate"),
        ('\u{2067}', "right-to-left isolate"),
        ('\u{2068}', "first strong isolate"),
        ('\u{2069}', "pop directional isolate"),
        ('\u{200E}', "left-to-right mark"),
        ('\u{200F}', "right-to-left mark"),
        ('\u{061C}', "Arabic letter mark"),
        ('\u{200B}', "zero width space"),
        ('\u{200C}', "zero width non-joiner"),
        ('\u{200D}', "zero width joiner"),
        ('\u{2060}', "word joiner"),
        ('\u{2061}', "function application"),
        ('\u{2062}', "invisible times"),
        ('\u{2063}', "invisible separator"),
        ('\u{2064}', "invisible plus"),
        ('\u{206A}', "inhibit symmetric swapping"),
        ('\u{FEFF}', "zero width no-break space (BOM)"),
        ('\u{00AD}', "soft hyphen"),
        ('\u{034F}', "combining grapheme joiner"),
        ('\u{115F}', "Hangul choseong filler"),
        ('\u{1160}', "Hangul jungseong filler"),
        ('\u{3164}', "Hangul filler"),
        ('\u{FFA0}', "halfwidth Hangul filler"),
        ('\u{17B4}', "Khmer vowel inherent aq"),
        ('\u{180E}', "Mongolian vowel separator"),
        ('\u{2028}', "line separator"),
        ('\u{2029}', "paragraph separator"),
        ('\u{2800}', "Braille pattern blank"),
        ('\u{FE0F}', "variation selector 16"),
        ('\u{FE0E}', "variation selector 15"),
        ('\u{FE00}', "variation selector 1"),
        ('\u{E0100}', "variation selector 17"),
        ('\u{180B}', "Mongolian free variation selector 1"),
        ('\u{FFF9}', "interlinear annotation anchor"),
        ('\u{0600}', "Arabic number sign"),
        ('\u{1D173}', "musical symbol begin beam"),
        ('\u{1BCA0}', "shorthand format letter overlap"),
        ('\u{E0001}', "language tag"),
        ('\u{E0041}', "tag latin capital letter A"),
        ('\u{E007F}', "cancel tag"),
        ('\u{0007}', "bell"),
        ('\u{0085}', "next line"),
        ('\u{009B}', "control sequence introducer"),
    ];

    #[test]
    fn invisible_characters_are_refused_anywhere() {
        for &(c, what) in INVISIBLE {
            let mut names = vec![format!("ad{c}min"), c.to_string().repeat(3), format!("{c}")];
            if !c.is_whitespace() {
                // Whitespace at the edges is trimmed off (U+2028, U+2029, U+0085): the name that is left is fine.
                names.extend([format!("{c}admin"), format!("admin{c}")]);
            }
            for name in names {
                assert_eq!(valid_name(&name), None, "U+{:04X} {what} in {name:?}", c as u32);
            }
        }
    }

    #[test]
    fn selectors_joiners_and_tags_only_where_emoji_use_them() {
        for name in [
            "\u{FE0F}",
            "\u{FE0F}😀",
            "a\u{FE0F}",
            "ad\u{FE0F}min",
            "😀\u{FE0F}\u{FE0F}",
            "1\u{FE0F}",
            "a\u{FE0F}\u{20E3}",
            "a\u{E0100}",
            "\u{200D}😀",
            "😀\u{200D}",
            "a\u{200D}b",
            "😀\u{200D}a",
            "😀\u{200D}\u{200D}😀",
            "😀\u{E0067}\u{E007F}",
            "🏴\u{E0067}\u{E0062}",
            "🏴\u{E0067}x\u{E007F}",
            "🏴\u{E007F}",
            "a\u{180B}",
        ] {
            assert_eq!(valid_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn visible_names_and_emoji_are_kept() {
        for name in [
            "mynick",
            "猪猪",
            "Zoë Ångström",
            "Ελένη",
            "محمد",
            "שרה",
            "दिव्या",
            "😀",
            "👍🏽",
            "❤️",
            "☺︎",
            "©️",
            "1️⃣",
            "#️⃣",
            "👨‍👩‍👧",
            "🏳️‍🌈",
            "❤️‍🔥",
            "🧑🏽‍💻",
            "👁️‍🗨️",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
            "葛\u{E0100}",
            "\u{1820}\u{180B}",
            "a b",
        ] {
            assert_eq!(valid_name(name), Some(name), "{name:?}");
        }
        assert_eq!(valid_name("  猪猪 \u{3000}"), Some("猪猪"), "whitespace around a name is trimmed");
        assert_eq!(valid_name("\u{2028}猪猪\u{2029}"), Some("猪猪"));
        assert_eq!(valid_name(&"猪".repeat(32)), Some("猪".repeat(32).as_str()));
        assert_eq!(valid_name(&"猪".repeat(33)), None);
        assert_eq!(valid_name(""), None);
        assert_eq!(valid_name(" \t "), None);
    }
}

impl Hub {
    /// An empty hub that keeps the last `history_limit` messages of each room, with no other limit.
    pub fn new(history_limit: usize) -> Hub {
        Hub::with_limits(HubLimits::unlimited(history_limit))
    }

    /// An empty hub enforcing `limits`.
    pub fn with_limits(limits: HubLimits) -> Hub {
        Hub {
            next_uid: 1,
            limits,
            users: HashMap::new(),
            by_uid: HashMap::new(),
            rooms: HashMap::new(),
            next_room_id: 1,
            batched_rooms: Vec::new(),
            scratch: Vec::with_capacity(512),
            kept: VecDeque::new(),
            history_messages: 0,
            stats: HubStats::default(),
            joins: HashMap::new(),
            now: None,
            next_join_sweep: None,
        }
    }

    /// The limits this hub enforces.
    pub fn limits(&self) -> HubLimits {
        self.limits
    }

    /// Sets the current time, for the join allowances. The reactor calls this once per loop turn; the hub
    /// never reads a clock. Until it is called, no time passes.
    pub fn set_now(&mut self, now: Instant) {
        self.now = Some(now);
        if self.limits.join_burst == 0 {
            return;
        }
        // Once a second, forget the allowances that have filled up again: a full bucket is the same as none,
        // so an idle connection costs nothing here.
        if self.next_join_sweep.is_none_or(|t| now >= t) {
            let (burst, now_opt) = (self.limits.join_burst, self.now);
            self.joins.retain(|_, b| {
                b.refill(burst, now_opt);
                b.tokens < burst
            });
            self.next_join_sweep = Some(now + Duration::from_secs(1));
        }
    }

    /// Forgets everything kept about `conn` (its join allowance). Call when the connection ends, after
    /// [`Hub::leave`], before its id can be given to another connection.
    pub fn disconnect(&mut self, conn: ConnId) {
        debug_assert!(!self.users.contains_key(&conn), "disconnect before leave");
        self.joins.remove(&conn);
    }

    /// The hub's figures for /metrics.
    pub fn stats(&self) -> HubStats {
        self.stats
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
        out.push(conn, text_frame(&error_json(code)), 1);
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

    /// Gives `conn` what its room's open batch holds for it so far, so that what comes next for `conn` follows
    /// it. The rest of the room gets the batch when it is sealed: a message to one member does not cost a
    /// delivery to every member.
    pub fn seal_room_of(&mut self, conn: ConnId, out: &mut Effects) {
        if let Some(user) = self.users.get(&conn) {
            if let Some(room) = self.rooms.get_mut(&user.room) {
                room.serve(user.slot, out);
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
        let existing = self.rooms.get_key_value(room.as_ref());
        if existing.is_some_and(|(_, r)| r.live >= self.limits.max_room_users) {
            self.stats.room_full_total += 1;
            return Err(ErrorCode::RoomFull);
        }
        let room_key: Rc<str> = match existing {
            Some((k, _)) => k.clone(),
            None => Rc::from(room.as_ref()),
        };
        if !self.take_join(conn) {
            self.stats.rate_limited_total += 1;
            return Err(ErrorCode::RateLimited);
        }
        let uid = self.next_uid;
        self.next_uid += 1;
        let next_room_id = &mut self.next_room_id;
        let entry = self.rooms.entry(room_key.clone()).or_insert_with(|| {
            let id = *next_room_id;
            *next_room_id += 1;
            Room { id, ..Room::default() }
        });
        tidy(entry, &mut self.users);
        // What the room said before this login is not for the newcomer: its share of the open batch starts
        // at its own login broadcast.
        let slot = entry.join(conn, uid, name);
        out.push_welcome(conn, entry.user_list_frame(), 1);
        for past in &entry.history {
            out.push_welcome(conn, past.clone(), 1);
        }
        self.users.insert(conn, User { uid, name: name.into(), room: room_key.clone(), slot });
        self.by_uid.insert(uid, conn);
        self.scratch.clear();
        ServerMessage::Login { uid, name, time }.write_json(&mut self.scratch);
        self.broadcast_scratch(&room_key, out);
        Ok(())
    }

    /// Takes one login from `conn`'s allowance; false when it has none left.
    fn take_join(&mut self, conn: ConnId) -> bool {
        let burst = self.limits.join_burst;
        if burst == 0 {
            return true;
        }
        let bucket = self.joins.entry(conn).or_insert(JoinBucket { tokens: burst, since: self.now });
        bucket.refill(burst, self.now);
        if bucket.tokens == 0 {
            return false;
        }
        bucket.tokens -= 1;
        true
    }

    /// Keeps a copy of the say-to-all in `self.scratch` in the room's history, within the per-room count and
    /// the global budget.
    fn keep_history(&mut self, room_key: &Rc<str>) {
        let limit = self.limits.history;
        let Some(room) = self.rooms.get_mut(room_key) else { return };
        let frame = text_frame(&self.scratch);
        self.stats.history_bytes += frame.len() as u64;
        let seq = room.history_seq + room.history.len() as u64;
        room.history.push_back(frame);
        self.history_messages += 1;
        if room.history.len() > limit {
            if let Some(old) = room.history.pop_front() {
                room.history_seq += 1;
                self.history_messages -= 1;
                self.stats.history_bytes -= old.len() as u64;
            }
        }
        self.kept.push_back(Kept { room: room_key.clone(), room_id: room.id, seq });
        self.enforce_history_budget();
        // Entries already dropped are skipped when they reach the front; sweep them out before they could
        // outnumber the live ones, so the queue stays within a constant factor of the history (amortised O(1)).
        if self.kept.len() > 2 * self.history_messages + 1024 {
            let rooms = &self.rooms;
            self.kept.retain(|k| rooms.get(&k.room).is_some_and(|r| r.id == k.room_id && k.seq >= r.history_seq));
        }
    }

    /// Drops the globally oldest kept messages until the history fits the budget.
    fn enforce_history_budget(&mut self) {
        while self.stats.history_bytes > self.limits.history_budget as u64 {
            let Some(k) = self.kept.pop_front() else { break };
            let Some(room) = self.rooms.get_mut(&k.room) else { continue };
            if room.id != k.room_id || k.seq != room.history_seq {
                continue;
            }
            if let Some(old) = room.history.pop_front() {
                room.history_seq += 1;
                self.history_messages -= 1;
                self.stats.history_bytes -= old.len() as u64;
                self.stats.history_evicted_total += 1;
            }
        }
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
                if self.limits.history > 0 {
                    self.keep_history(&room_key);
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
                // Both get what the room said before this, first.
                self.seal_room_of(target, out);
                self.seal_room_of(conn, out);
                out.push(target, frame.clone(), 1);
                if target != conn {
                    out.push(conn, frame, 1);
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
        // What the room said while the user was in it is still the user's (a client logout keeps the
        // connection open).
        room.serve(user.slot, out);
        room.part(user.slot);
        if room.gone > room.live.max(32) {
            tidy(room, &mut self.users);
        }
        if room.live == 0 {
            // Room names come from clients: keeping empty rooms would let them grow memory without bound.
            // Its history goes with it; its entries in the global queue are skipped from now on.
            self.history_messages -= room.history.len();
            self.stats.history_bytes -= room.history.iter().map(|f| f.len() as u64).sum::<u64>();
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
    use std::time::{Duration, Instant};

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

    /// A hub with the given limits; the clock starts at `base`.
    fn limited(history: usize, history_budget: usize, max_room_users: usize, join_burst: u32) -> (Hub, Instant) {
        let mut hub = Hub::with_limits(HubLimits { history, history_budget, max_room_users, join_burst });
        let base = Instant::now();
        hub.set_now(base);
        (hub, base)
    }

    fn say_all(hub: &mut Hub, conn: ConnId, content: &str) {
        send(hub, conn, &serde_json::to_string(&json!({"type":"say","content":content})).unwrap());
    }

    /// The contents of the history a newcomer to `room` gets.
    fn history_of(hub: &mut Hub, conn: ConnId, room: &str) -> Vec<String> {
        let got = send(hub, conn, &format!(r#"{{"type":"login","name":"peek","room_id":"{room}"}}"#));
        let mut out = Effects::default();
        hub.leave(conn, T, &mut out);
        hub.seal(&mut out);
        got.iter().filter(|(c, v)| *c == conn && v["type"] == "say").map(|(_, v)| v["content"].to_string()).collect()
    }

    /// The bytes of a say-to-all frame from `uid`, as history keeps it.
    fn say_frame_len(uid: u64, content: &str) -> usize {
        let mut json = Vec::new();
        ServerMessage::Say { from_uid: uid, to_uid: ToUidOut::All("all"), content, time: T }.write_json(&mut json);
        text_frame(&json).len()
    }

    #[test]
    fn the_history_budget_drops_the_globally_oldest_first() {
        let one = say_frame_len(1, "a0");
        // Room of 10 per room, but the whole daemon keeps only 5 messages' worth.
        let (mut hub, _) = limited(10, 5 * one, usize::MAX, 0);
        send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"A"}"#);
        send(&mut hub, 2, r#"{"type":"login","name":"b","room_id":"B"}"#);
        for i in 0..3 {
            say_all(&mut hub, 1, &format!("a{i}"));
            say_all(&mut hub, 2, &format!("b{i}"));
        }
        // a0 b0 a1 b1 a2 b2: six kept, one over the budget, so a0 (the oldest of all) went.
        assert_eq!(hub.stats().history_evicted_total, 1);
        assert_eq!(hub.stats().history_bytes, 5 * one as u64);
        say_all(&mut hub, 2, "b3");
        say_all(&mut hub, 2, "b4");
        // Then b0, then a1: oldest first, whatever the room.
        assert_eq!(hub.stats().history_evicted_total, 3);
        assert_eq!(history_of(&mut hub, 9, "A"), [r#""a2""#]);
        assert_eq!(history_of(&mut hub, 9, "B"), [r#""b1""#, r#""b2""#, r#""b3""#, r#""b4""#]);
        assert_eq!(hub.stats().history_bytes, 5 * one as u64);
    }

    #[test]
    fn history_of_dropped_rooms_is_released_and_skipped() {
        let one = say_frame_len(1, "x0");
        let (mut hub, _) = limited(3, 4 * one, usize::MAX, 0);
        send(&mut hub, 1, r#"{"type":"login","name":"a","room_id":"A"}"#);
        for i in 0..3 {
            say_all(&mut hub, 1, &format!("x{i}"));
        }
        let mut out = Effects::default();
        hub.leave(1, T, &mut out);
        assert_eq!(hub.stats().history_bytes, 0);
        // A new room under the same name starts empty; the old entries in the queue are not its messages.
        send(&mut hub, 2, r#"{"type":"login","name":"b","room_id":"A"}"#);
        for i in 0..4 {
            say_all(&mut hub, 2, &format!("y{i}"));
        }
        assert_eq!(hub.stats().history_evicted_total, 0, "only the per-room count dropped y0");
        assert_eq!(history_of(&mut hub, 9, "A"), [r#""y1""#, r#""y2""#, r#""y3""#]);
        say_all(&mut hub, 2, "y4");
        assert_eq!(hub.stats().history_bytes, 3 * one as u64);
        assert_eq!(hub.stats().history_evicted_total, 0);
    }

    #[test]
    fn per_room_history_count_still_applies_and_the_queue_stays_bounded() {
        let (mut hub, _) = limited(2, usize::MAX, usize::MAX, 0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        for i in 0..10_000 {
            say_all(&mut hub, 1, &format!("m{i}"));
        }
        assert_eq!(history_of(&mut hub, 9, "1"), [r#""m9998""#, r#""m9999""#]);
        assert!(hub.kept.len() <= 2 * hub.history_messages + 1025, "{}", hub.kept.len());
        assert_eq!(hub.stats().history_bytes, 2 * say_frame_len(1, "m9999") as u64);
        assert_eq!(hub.stats().history_evicted_total, 0);
    }

    #[test]
    fn a_message_bigger_than_the_budget_is_not_kept() {
        let (mut hub, _) = limited(5, 10, usize::MAX, 0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        say_all(&mut hub, 1, "far more than ten bytes once framed");
        assert_eq!(hub.stats().history_bytes, 0);
        assert_eq!(hub.stats().history_evicted_total, 1);
        assert!(history_of(&mut hub, 9, "1").is_empty());
    }

    #[test]
    fn join_burst_then_one_login_a_second() {
        let (mut hub, base) = limited(0, usize::MAX, usize::MAX, 3);
        send(&mut hub, 2, r#"{"type":"login","name":"watcher"}"#);
        let cycle = |hub: &mut Hub| -> Vec<(ConnId, Value)> {
            let got = send(hub, 1, r#"{"type":"login","name":"a"}"#);
            if hub.uid_of(1).is_some() {
                send(hub, 1, r#"{"type":"logout"}"#);
            }
            got
        };
        // The burst survives logouts: it is the connection's, not the session's.
        for _ in 0..3 {
            assert_eq!(cycle(&mut hub).len(), 3, "user list + login to both");
        }
        let refused = cycle(&mut hub);
        assert_eq!(
            refused,
            vec![(1, json!({"type":"error","code":"rate_limited","message":ErrorCode::RateLimited.message()}))]
        );
        assert_eq!(hub.uid_of(1), None, "nothing else happened");
        assert_eq!(hub.stats().rate_limited_total, 1);
        hub.set_now(base + Duration::from_millis(999));
        assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
        hub.set_now(base + Duration::from_millis(1000));
        assert_eq!(cycle(&mut hub).len(), 3);
        assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
        // Two seconds earn two logins; never more than the burst.
        hub.set_now(base + Duration::from_millis(3000));
        assert_eq!(cycle(&mut hub).len(), 3);
        assert_eq!(cycle(&mut hub).len(), 3);
        assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
        hub.set_now(base + Duration::from_secs(100));
        for _ in 0..3 {
            assert_eq!(cycle(&mut hub).len(), 3);
        }
        assert_eq!(error_code(&cycle(&mut hub)), "rate_limited");
        assert_eq!(hub.stats().rate_limited_total, 5);
        // Refused logins, bad names and a second login do not spend the allowance.
        assert_eq!(error_code(&send(&mut hub, 2, r#"{"type":"login","name":"again"}"#)), "already_logged_in");
        // Another connection has its own allowance; an ended connection's is forgotten, so a new connection
        // given the same id starts with a full burst.
        hub.disconnect(1);
        for _ in 0..3 {
            assert_eq!(cycle(&mut hub).len(), 3);
        }
        assert_eq!(send(&mut hub, 3, r#"{"type":"login","name":"c"}"#).len(), 3);
    }

    #[test]
    fn full_join_allowances_are_swept_out() {
        let (mut hub, base) = limited(0, usize::MAX, usize::MAX, 2);
        for c in 0..100 {
            send(&mut hub, c, &format!(r#"{{"type":"login","name":"u{c}"}}"#));
        }
        assert_eq!(hub.joins.len(), 100);
        hub.set_now(base + Duration::from_millis(500));
        assert_eq!(hub.joins.len(), 100, "not yet refilled");
        hub.set_now(base + Duration::from_millis(1500));
        assert!(hub.joins.is_empty());
        // A swept connection starts again with a full burst, which is what it had earned.
        send(&mut hub, 0, r#"{"type":"logout"}"#);
        assert_eq!(send(&mut hub, 0, r#"{"type":"login","name":"x"}"#)[0].1["type"], "user_list");
        send(&mut hub, 0, r#"{"type":"logout"}"#);
        assert_eq!(send(&mut hub, 0, r#"{"type":"login","name":"x"}"#)[0].1["type"], "user_list");
        send(&mut hub, 0, r#"{"type":"logout"}"#);
        assert_eq!(error_code(&send(&mut hub, 0, r#"{"type":"login","name":"x"}"#)), "rate_limited");
    }

    #[test]
    fn a_full_room_refuses_logins() {
        let (mut hub, _) = limited(0, usize::MAX, 2, 0);
        send(&mut hub, 1, r#"{"type":"login","name":"a"}"#);
        send(&mut hub, 2, r#"{"type":"login","name":"b"}"#);
        let refused = send(&mut hub, 3, r#"{"type":"login","name":"c"}"#);
        assert_eq!(refused, vec![(3, json!({"type":"error","code":"room_full","message":"this room is full"}))]);
        assert_eq!((hub.uid_of(3), hub.user_count(), hub.stats().room_full_total), (None, 2, 1));
        // Other rooms are not affected; a place that comes free can be taken.
        assert_eq!(send(&mut hub, 3, r#"{"type":"login","name":"c","room_id":"other"}"#).len(), 2);
        send(&mut hub, 1, r#"{"type":"logout"}"#);
        assert_eq!(send(&mut hub, 4, r#"{"type":"login","name":"d"}"#).len(), 3);
        assert_eq!(error_code(&send(&mut hub, 1, r#"{"type":"login","name":"a"}"#)), "room_full");
        assert_eq!(hub.stats().room_full_total, 2);
    }

    /// The user list of `room` encoded from scratch, the way it was before rooms kept it.
    fn fresh_user_list(hub: &Hub, room: &str) -> Vec<u8> {
        let room = &hub.rooms[room];
        let list: Vec<UserEntry<'_>> = room
            .members
            .iter()
            .filter(|m| m.conn != GONE)
            .map(|m| &hub.users[&m.conn])
            .map(|u| UserEntry { uid: u.uid, name: &u.name })
            .collect();
        let mut json = Vec::new();
        ServerMessage::UserList { user_list: &list }.write_json(&mut json);
        text_frame(&json).to_vec()
    }

    #[test]
    fn user_list_bytes_match_a_fresh_encode() {
        let mut hub = Hub::new(0);
        let names = ["猪猪", "quote\"d", "back\\slash", "plain", "<b>&amp;", "\u{e9}t\u{e9}", "\u{2028}/"];
        for (c, name) in names.iter().enumerate() {
            let got = send(&mut hub, c, &json!({"type":"login","name":name}).to_string());
            assert_eq!(got[0].1["type"], "user_list");
            // What the newcomer got is byte for byte what a full encode of the room makes.
            let mut out = Effects::default();
            hub.seal(&mut out);
            let frame = hub.rooms["1"].clone_user_list_for_test();
            assert_eq!(frame, fresh_user_list(&hub, "1"));
        }
        let mut out = Effects::default();
        hub.leave(0, T, &mut out);
        hub.leave(3, T, &mut out);
        assert_eq!(hub.rooms["1"].clone_user_list_for_test(), fresh_user_list(&hub, "1"));
        hub.seal(&mut out);
        let got = send(&mut hub, 10, r#"{"type":"login","name":"late"}"#);
        let uids: Vec<_> =
            got[0].1["user_list"].as_array().unwrap().iter().map(|e| e["uid"].as_u64().unwrap()).collect();
        assert_eq!(uids, [2, 3, 5, 6, 7, 8]);
    }

    #[test]
    fn many_departures_cost_one_compaction() {
        let mut hub = hub_with_members(1000);
        let mut out = Effects::default();
        for c in (0..1000).step_by(3) {
            hub.leave(c, T, &mut out);
        }
        let room = &hub.rooms["1"];
        assert!(room.gone > 0 && room.members.len() == room.live + room.gone);
        send(&mut hub, 5000, r#"{"type":"login","name":"late"}"#);
        let room = &hub.rooms["1"];
        assert_eq!((room.gone, room.members.len(), room.live), (0, 667, 667));
        assert_eq!(room.list.len(), room.members.iter().map(|m| m.entry as usize).sum::<usize>());
    }

    fn hub_with_members(n: usize) -> Hub {
        let mut hub = Hub::new(0);
        let mut out = Effects::default();
        for c in 0..n {
            let login = format!(r#"{{"type":"login","name":"u{c}"}}"#);
            hub.handle(c, parse_client_message(&login).unwrap(), T, &mut out);
            out.clear();
        }
        hub
    }

    proptest::proptest! {
        /// Any order of logins, logouts, client logouts and rooms: the user list a newcomer gets is the
        /// bytes of a fresh encode of the room's members in login order, and a broadcast reaches exactly
        /// the members.
        #[test]
        fn user_lists_stay_identical_to_a_fresh_encode(
            ops in proptest::collection::vec((0usize..12, 0u8..4, 0u8..3, "[a-z猪\"\\\\ ]{1,6}"), 1..120)
        ) {
            let mut hub = Hub::new(0);
            for (conn, action, room, name) in ops {
                let mut out = Effects::default();
                match action {
                    0 | 1 => {
                        let login = json!({"type":"login","name":name,"room_id":format!("r{room}")}).to_string();
                        hub.handle(conn, parse_client_message(&login).unwrap(), T, &mut out);
                        hub.seal(&mut out);
                        if let Some(first) = out.sends.iter().find(|d| d.conn == conn && d.welcome) {
                            let key = format!("r{room}");
                            proptest::prop_assert_eq!(&first.bytes[..], &fresh_user_list(&hub, &key)[..]);
                        }
                    }
                    2 => hub.leave(conn, T, &mut out),
                    _ => hub.handle(conn, ClientMessage::Logout, T, &mut out),
                }
                for (key, room) in &hub.rooms {
                    proptest::prop_assert!(room.live > 0);
                    proptest::prop_assert_eq!(room.members.iter().filter(|m| m.conn != GONE).count(), room.live);
                    proptest::prop_assert_eq!(room.members.len(), room.live + room.gone);
                    proptest::prop_assert_eq!(
                        room.list.len(),
                        room.members.iter().map(|m| m.entry as usize).sum::<usize>()
                    );
                    proptest::prop_assert_eq!(room.clone_user_list_for_test(), fresh_user_list(&hub, key));
                }
                for (conn, user) in &hub.users {
                    proptest::prop_assert_eq!(hub.rooms[&user.room].members[user.slot].conn, *conn);
                }
            }
        }
    }

    /// What each connection receives, as one byte stream per connection, and the messages counted.
    fn streams(out: &Effects, into: &mut HashMap<ConnId, (Vec<u8>, u32)>) {
        for d in &out.sends {
            let s = into.entry(d.conn).or_default();
            s.0.extend_from_slice(&d.bytes);
            s.1 += d.messages;
        }
    }

    proptest::proptest! {
        /// Batching is invisible: whatever is sealed when, every connection receives the same bytes in the
        /// same order as from a hub that seals after every message (where nothing is batched). Covers
        /// newcomers and leavers in the middle of a batch, private messages and errors to members whose
        /// share of the batch is open, and logouts followed by a login in the same turn.
        #[test]
        fn batching_never_changes_what_a_connection_receives(
            ops in proptest::collection::vec((0usize..6, 0u8..8, 0u8..3, 0u64..12, proptest::bool::ANY), 1..150)
        ) {
            let mut batched = Hub::new(1);
            let mut reference = Hub::new(1);
            let (mut got, mut want) = (HashMap::new(), HashMap::new());
            let mut out = Effects::default();
            for (i, (conn, action, room, uid, seal)) in ops.into_iter().enumerate() {
                let text = match action {
                    0 | 1 => json!({"type":"login","name":format!("n{i}"),"room_id":format!("r{room}")}).to_string(),
                    2 => json!({"type":"say","content":format!("all{i}")}).to_string(),
                    3 => json!({"type":"say","to_uid":uid,"content":format!("p{i}")}).to_string(),
                    4 => r#"{"type":"logout"}"#.to_string(),
                    5 => r#"{"type":"fly"}"#.to_string(),
                    _ => String::new(),
                };
                for (hub, sink, seal) in [(&mut batched, &mut got, seal), (&mut reference, &mut want, true)] {
                    if action >= 6 {
                        hub.leave(conn, T, &mut out);
                    } else {
                        match parse_client_message(&text) {
                            Ok(m) => hub.handle(conn, m, T, &mut out),
                            Err(code) => hub.error(conn, code, &mut out),
                        }
                    }
                    if seal {
                        hub.seal(&mut out);
                    }
                    streams(&out, sink);
                    out.clear();
                }
            }
            batched.seal(&mut out);
            streams(&out, &mut got);
            proptest::prop_assert_eq!(got, want);
            for (conn, user) in &batched.users {
                proptest::prop_assert_eq!(batched.rooms[&user.room].members[user.slot].conn, *conn);
            }
        }
    }

    #[test]
    fn a_newcomer_does_not_cost_the_room_a_delivery() {
        let mut hub = hub_with_members(100);
        let mut out = Effects::default();
        hub.seal(&mut out);
        out.clear();
        for c in 100..150 {
            let login = format!(r#"{{"type":"login","name":"u{c}"}}"#);
            hub.handle(c, parse_client_message(&login).unwrap(), T, &mut out);
        }
        hub.seal(&mut out);
        // 50 welcomes, then one delivery per member: the old ones share the batch, each newcomer gets the
        // part from its own login on.
        assert_eq!(out.sends.len(), 50 + 150);
        let shared = &out.sends[50].bytes;
        assert_eq!(out.sends[50..150].iter().filter(|d| Rc::ptr_eq(&d.bytes, shared)).count(), 100);
        assert_eq!(out.sends[150..].iter().map(|d| d.messages).collect::<Vec<_>>(), (1..=50).rev().collect::<Vec<_>>());
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
