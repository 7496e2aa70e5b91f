//! Resume: sessions that outlive their connections. A login that asks for it gets a session, an unguessable id
//! its client keeps. When the connection ends without a goodbye (a FIN or reset without a close frame, a close
//! other than 1000, a timeout, a cut), the user stays in its room, detached, for the grace; a new connection
//! naming the session becomes that user again and is owed every say addressed to it after the last one its
//! client received (named by its mid). The grace running out is the user's logout.
//!
//! The say log: a room with a session in it (on any process) keeps its says (to all and private), each with
//! its [`Position`] in its origin's order and its mid (the room's [`Frontier`] just after it), up to
//! `--resume-buffer` bytes, and all rooms together up to what the output budget leaves; past either the
//! oldest go, and a resume that needed one of them reports `recovered: false` — never a silent gap. A room
//! without a session keeps nothing, so a chat nobody resumes in pays nothing. Since every process of a
//! cluster sees every say, each keeps the same logs, and a session resumes on any of them. Sans-IO: time
//! comes in.

mod frontier;

pub use frontier::Frontier;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::event::{Event, Position, Said};
use crate::app::ConnId;
use crate::metrics::Series;

/// Default `--resume-grace-secs`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Default `--resume-buffer`.
pub const DEFAULT_BUFFER: usize = 256 * 1024;

/// Characters of a session id shown in logs.
const LOGGED_ID_CHARS: usize = 6;

/// What resume may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeLimits {
    /// How long a detached user stays (`--resume-grace-secs`); zero turns resume off.
    pub grace: Duration,
    /// Bytes of says one room keeps for its sessions (`--resume-buffer`).
    pub buffer: usize,
}

impl Default for ResumeLimits {
    fn default() -> ResumeLimits {
        ResumeLimits { grace: DEFAULT_GRACE, buffer: DEFAULT_BUFFER }
    }
}

impl ResumeLimits {
    /// Whether logins may ask for a session.
    pub fn enabled(&self) -> bool {
        !self.grace.is_zero()
    }
}

/// A fresh session id: 128 bits from the operating system's random source, as 32 hex digits; `None` when the
/// source fails (the login then goes on without a session).
pub fn new_session_id() -> Option<String> {
    crate::random_id::hex128()
}

/// The first characters of a session id, for logs: an id is never logged whole.
pub fn redacted(id: &str) -> &str {
    id.get(..LOGGED_ID_CHARS).unwrap_or("?")
}

/// The resume figures for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumeStats {
    /// Sessions whose user is away: `wschat_sessions_detached`.
    pub detached: u64,
    /// Resumes that delivered every missed say: `wschat_resumes_total{recovered="true"}`.
    pub recovered: u64,
    /// Resumes that could not: `wschat_resumes_total{recovered="false"}`.
    pub not_recovered: u64,
    /// Sessions whose grace ran out: `wschat_sessions_expired_total`.
    pub expired: u64,
    /// Bytes the say logs hold: `wschat_resume_buffer_bytes`.
    pub log_bytes: u64,
}

impl ResumeStats {
    /// Appends the resume series.
    pub fn write(&self, out: &mut Series) {
        out.rows(&[
            ("wschat_sessions_detached", "gauge", "Sessions whose user is away, within the grace.", self.detached),
            (
                "wschat_sessions_expired_total",
                "counter",
                "Sessions whose grace ran out (each one logout).",
                self.expired,
            ),
            (
                "wschat_resume_buffer_bytes",
                "gauge",
                "Bytes of says the rooms keep for their sessions (counted against --max-output-bytes).",
                self.log_bytes,
            ),
        ]);
        out.samples(
            ("wschat_resumes_total", "counter", "Sessions resumed, by whether every missed say was delivered."),
            "recovered",
            &[("true", self.recovered), ("false", self.not_recovered)],
        );
    }
}

/// Where a session's user is, as this process knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// On this process's connection.
    At(ConnId),
    /// This process's user, detached: its connection was lost.
    Away,
    /// On another process (a cluster node), which told of the session.
    Elsewhere,
    /// Its process is gone: away until someone resumes it anywhere or the grace runs out.
    Orphaned,
}

/// One session: its user's room and where it is held.
#[derive(Debug)]
struct Session {
    id: Rc<str>,
    room: Rc<str>,
    held: Held,
    /// Its room's frontier when this process learned of it: what it is not owed.
    since: Frontier,
    /// This process has logged its room's says since the session began (it did not learn of it late, from
    /// a snapshot).
    complete: bool,
    /// Counts its detachments, so a stale expiry entry (the user came back and left again) is told apart.
    detachments: u64,
}

/// A say as the log keeps it.
#[derive(Debug)]
struct Logged {
    /// Its place in the order the logs were filled here (which say of all rooms is oldest).
    order: u64,
    at: Position,
    mid: Box<str>,
    to_uid: Option<u64>,
    said: Said,
}

impl Logged {
    /// Whether `uid` received it: a say to all, or a private one it sent or was sent.
    fn is_for(&self, uid: u64) -> bool {
        self.to_uid.is_none_or(|to| to == uid) || self.said.from_uid() == uid
    }

    fn cost(&self) -> usize {
        self.said.cost() + self.mid.len() + std::mem::size_of::<Logged>() - std::mem::size_of::<Said>()
    }
}

/// One room's says, kept while a session is in the room.
#[derive(Debug, Default)]
struct SayLog {
    entries: VecDeque<Logged>,
    bytes: usize,
    /// Sessions in the room.
    sessions: usize,
    /// The room's frontier: the mid of the next say is this after it.
    frontier: Frontier,
    /// The newest position of each origin dropped to stay within the bounds.
    dropped: Frontier,
}

/// What a resume finds: the says its client missed and whether they are all there.
#[derive(Debug)]
pub struct Missed<'a> {
    said: Vec<&'a Logged>,
    /// False when says after the client's last mid are no longer kept.
    pub recovered: bool,
}

impl<'a> Missed<'a> {
    /// How many says are owed.
    pub fn len(&self) -> usize {
        self.said.len()
    }

    /// Whether none is owed.
    pub fn is_empty(&self) -> bool {
        self.said.is_empty()
    }

    /// The says, oldest first, each with its mid.
    pub fn events(&self) -> impl Iterator<Item = Event<'a>> + '_ {
        self.said.iter().map(|l| l.said.event_to(l.to_uid, Some(&l.mid)))
    }
}

/// A session taken over by a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Takeover {
    /// Its user.
    pub uid: u64,
    /// The connection that held it, still open (to be closed), if any.
    pub old: Option<ConnId>,
    /// It was held by another process (which is to let it go).
    pub from_elsewhere: bool,
}

/// A session whose grace ran out: its user is to log out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The user.
    pub uid: u64,
    /// This process's own user (it tells the others); else the user of a process gone (each process
    /// removes it on its own).
    pub here: bool,
}

/// Every session of this process, and the say logs of their rooms.
#[derive(Debug, Default)]
pub struct Sessions {
    limits: ResumeLimits,
    /// The bytes all logs together may hold (what the output budget leaves).
    total: usize,
    by_id: HashMap<Rc<str>, u64>,
    by_uid: HashMap<u64, Session>,
    logs: HashMap<Rc<str>, SayLog>,
    /// Each non-empty log's oldest say, by the order it was logged in, and its room: the globally oldest
    /// first.
    fronts: BTreeMap<u64, Rc<str>>,
    log_bytes: usize,
    /// Says logged so far: the order of the logs' entries here.
    logged: u64,
    /// Detached users by deadline (the grace is one length, so detaching order is deadline order).
    expiring: VecDeque<(Instant, u64, u64)>,
    /// Connections resumed with a mid past their room's log here (their client got says on another process
    /// that have not arrived here yet): those says, when they arrive, are not for them again.
    ahead: Vec<Ahead>,
    stats: ResumeStats,
}

/// A resumed connection whose client had says this process has not logged yet.
#[derive(Debug)]
struct Ahead {
    uid: u64,
    conn: ConnId,
    room: Rc<str>,
    had: Frontier,
}

impl Sessions {
    /// No sessions; resume as `limits` say, the logs of all rooms together within `total` bytes.
    pub fn new(limits: ResumeLimits, total: usize) -> Sessions {
        Sessions { limits, total, ..Sessions::default() }
    }

    /// Whether logins may ask for a session.
    pub fn enabled(&self) -> bool {
        self.limits.enabled()
    }

    /// The resume figures for /metrics.
    pub fn stats(&self) -> ResumeStats {
        ResumeStats { log_bytes: self.log_bytes as u64, ..self.stats }
    }

    /// Opens a session with id `id` for `uid` in `room` on `conn`.
    pub fn open(&mut self, id: &str, uid: u64, room: &str, conn: ConnId) -> Rc<str> {
        self.insert(id, uid, room, Held::At(conn), true)
    }

    /// Another process told that its user `uid` of `room` holds session `id`; `complete` when it told at
    /// the login (not in a snapshot to a process that joined later): this process then logs all the
    /// session is owed.
    pub fn open_elsewhere(&mut self, id: &str, uid: u64, room: &str, complete: bool) {
        let known = self.by_uid.get(&uid).is_some_and(|s| &*s.id == id && &*s.room == room);
        if !known {
            self.insert(id, uid, room, Held::Elsewhere, complete);
        }
    }

    fn insert(&mut self, id: &str, uid: u64, room: &str, held: Held, complete: bool) -> Rc<str> {
        self.end(uid);
        let id: Rc<str> = Rc::from(id);
        let log = self.logs.entry(Rc::from(room)).or_default();
        log.sessions += 1;
        let since = log.frontier.clone();
        let room = self.logs.get_key_value(room).map_or_else(|| Rc::from(room), |(k, _)| k.clone());
        self.by_id.insert(id.clone(), uid);
        self.by_uid.insert(uid, Session { id: id.clone(), room, held, since, complete, detachments: 0 });
        id
    }

    /// `room`'s say log counts one session less; it goes with its last.
    fn unlog_room(&mut self, room: &Rc<str>) {
        let Some(log) = self.logs.get_mut(room) else { return };
        log.sessions -= 1;
        if log.sessions == 0 {
            self.log_bytes -= log.bytes;
            if let Some(front) = log.entries.front() {
                self.fronts.remove(&front.order);
            }
            self.logs.remove(room);
        }
    }

    /// Whether `uid` has a session.
    pub fn has(&self, uid: u64) -> bool {
        self.by_uid.contains_key(&uid)
    }

    /// Whether `room` keeps its says (a session is in it).
    pub fn logs(&self, room: &str) -> bool {
        self.logs.contains_key(room)
    }

    /// Keeps a say of `room` at `at` in its origin's order (when a session is in the room) and returns its
    /// mid.
    pub fn log_say(&mut self, room: &str, at: Position, to_uid: Option<u64>, said: Said) -> Option<String> {
        let (key, log) = self.logs.get_key_value(room)?;
        let (key, was_empty) = (key.clone(), log.entries.is_empty());
        self.logged += 1;
        let order = self.logged;
        if was_empty {
            self.fronts.insert(order, key.clone());
        }
        let mut mid = String::new();
        let mut cost = 0;
        if let Some(log) = self.logs.get_mut(&key) {
            log.frontier.advance(at);
            log.frontier.write_mid(&mut mid);
            let logged = Logged { order, at, mid: mid.as_str().into(), to_uid, said };
            cost = logged.cost();
            log.entries.push_back(logged);
            log.bytes += cost;
        }
        self.log_bytes += cost;
        while self.logs.get(&key).is_some_and(|l| l.bytes > self.limits.buffer) {
            self.drop_oldest(&key);
        }
        if self.log_bytes > self.total {
            self.shed(self.log_bytes - self.total);
        }
        Some(mid)
    }

    /// The connections in `room` whose clients already had the say at `at` (they resumed here with a mid
    /// past this process's log, the say arriving after), into `out`; a connection's watch ends once this
    /// process's log has caught up with its mid.
    pub fn already_had(&mut self, room: &str, at: Position, out: &mut Vec<ConnId>) {
        if self.ahead.is_empty() {
            return;
        }
        let (logs, by_uid) = (&self.logs, &self.by_uid);
        let held = |a: &Ahead| by_uid.get(&a.uid).is_some_and(|s| s.held == Held::At(a.conn));
        self.ahead.retain(|a| {
            if &*a.room != room {
                return true;
            }
            if a.had.covers(at) {
                out.push(a.conn);
            }
            let caught_up = logs.get(room).is_none_or(|l| {
                a.had.marks().all(|(origin, seq, index)| l.frontier.covers(Position { origin, seq, index }))
            });
            !caught_up && held(a)
        });
    }

    /// Drops the oldest says of all rooms together until `bytes` are freed (or nothing is left); returns what
    /// was freed.
    pub fn shed(&mut self, bytes: usize) -> usize {
        let mut freed = 0;
        while freed < bytes {
            let Some(room) = self.fronts.first_key_value().map(|(_, room)| room.clone()) else { break };
            freed += self.drop_oldest(&room);
        }
        freed
    }

    /// Drops the oldest say of `room`'s log; returns its bytes.
    fn drop_oldest(&mut self, room: &Rc<str>) -> usize {
        let Some(log) = self.logs.get_mut(room) else { return 0 };
        let Some(old) = log.entries.pop_front() else { return 0 };
        let cost = old.cost();
        log.bytes -= cost;
        log.dropped.advance(old.at);
        self.log_bytes -= cost;
        self.fronts.remove(&old.order);
        if let Some(next) = log.entries.front() {
            self.fronts.insert(next.order, room.clone());
        }
        cost
    }

    /// The bytes the say logs hold.
    pub fn log_bytes(&self) -> usize {
        self.log_bytes
    }

    /// The connection holding `uid`'s session went away without a goodbye: the user is detached until `now`
    /// plus the grace. False when it has no session (it leaves as before).
    pub fn detach(&mut self, uid: u64, now: Instant) -> bool {
        let Some(s) = self.by_uid.get_mut(&uid) else { return false };
        if matches!(s.held, Held::At(_)) {
            s.held = Held::Away;
            self.away(uid, now);
        }
        true
    }

    /// `uid`'s process is gone: its session waits for the grace, to be resumed on any process. False when it
    /// has none (the user leaves as before).
    pub fn orphan(&mut self, uid: u64, now: Instant) -> bool {
        let Some(s) = self.by_uid.get_mut(&uid) else { return false };
        if s.held == Held::Elsewhere {
            s.held = Held::Orphaned;
            self.away(uid, now);
        }
        true
    }

    /// Counts `uid`'s session away and due at `now` plus the grace.
    fn away(&mut self, uid: u64, now: Instant) {
        let Some(s) = self.by_uid.get_mut(&uid) else { return };
        s.detachments += 1;
        self.stats.detached += 1;
        self.expiring.push_back((now + self.limits.grace, uid, s.detachments));
    }

    /// Ends `uid`'s session, if it has one.
    pub fn end(&mut self, uid: u64) {
        let Some(s) = self.by_uid.remove(&uid) else { return };
        self.by_id.remove(&s.id);
        if matches!(s.held, Held::Away | Held::Orphaned) {
            self.stats.detached -= 1;
        }
        self.unlog_room(&s.room);
    }

    /// The session `id` moves to `conn`; `None` when no such session is alive.
    pub fn take_over(&mut self, id: &str, conn: ConnId) -> Option<Takeover> {
        let uid = *self.by_id.get(id)?;
        let s = self.by_uid.get_mut(&uid)?;
        let held = std::mem::replace(&mut s.held, Held::At(conn));
        if matches!(held, Held::Away | Held::Orphaned) {
            self.stats.detached -= 1;
        }
        let old = match held {
            Held::At(old) => Some(old),
            _ => None,
        };
        Some(Takeover { uid, old, from_elsewhere: matches!(held, Held::Elsewhere | Held::Orphaned) })
    }

    /// Another process took `uid`'s session over; returns the connection here that held it, if any.
    pub fn moved_elsewhere(&mut self, uid: u64) -> Option<ConnId> {
        let s = self.by_uid.get_mut(&uid)?;
        let held = std::mem::replace(&mut s.held, Held::Elsewhere);
        if matches!(held, Held::Away | Held::Orphaned) {
            self.stats.detached -= 1;
        }
        match held {
            Held::At(conn) => Some(conn),
            _ => None,
        }
    }

    /// The id of `uid`'s session.
    pub fn id_of(&self, uid: u64) -> Option<&str> {
        self.by_uid.get(&uid).map(|s| &*s.id)
    }

    /// The says `uid`'s client missed after `last_mid` (the mid of its last say received on any process, or
    /// none since the session began): those of each origin past the frontier it names, at most
    /// `--resume-buffer` bytes of them (the newest), and whether that is all of them; counted in the figures.
    pub fn missed(&mut self, uid: u64, last_mid: Option<&str>) -> Missed<'_> {
        let Some(s) = self.by_uid.get(&uid) else { return Missed { said: Vec::new(), recovered: false } };
        // A mid no process handed out means: everything since the session began, and no promise.
        let (had, readable) = match last_mid.map(Frontier::parse) {
            None => (Frontier::new(), true),
            Some(Some(f)) => (f, true),
            Some(None) => (Frontier::new(), false),
        };
        let owed = |at: Position| !had.covers(at) && !s.since.covers(at);
        let Some(log) = self.logs.get(&s.room) else { return Missed { said: Vec::new(), recovered: false } };
        let mut said: Vec<&Logged> = log.entries.iter().filter(|l| owed(l.at) && l.is_for(uid)).collect();
        if let Held::At(conn) = s.held {
            if !had.marks().all(|(origin, seq, index)| log.frontier.covers(Position { origin, seq, index })) {
                self.ahead.push(Ahead { uid, conn, room: s.room.clone(), had: had.clone() });
            }
        }
        // Something the client may have been owed was dropped: an origin's newest dropped say it had not.
        let lost = log.dropped.marks().any(|(origin, seq, index)| owed(Position { origin, seq, index }));
        let mut recovered = readable && s.complete && !lost;
        let mut bytes = 0;
        if let Some(keep) = said.iter().rev().position(|l| {
            bytes += l.cost();
            bytes > self.limits.buffer
        }) {
            said.drain(..said.len() - keep);
            recovered = false;
        }
        if recovered {
            self.stats.recovered += 1;
        } else {
            self.stats.not_recovered += 1;
        }
        Missed { said, recovered }
    }

    /// Ends the sessions whose grace ran out by `now` and returns their users, each of whom is to log out.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let mut gone = Vec::new();
        while let Some(&(deadline, uid, detachment)) = self.expiring.front() {
            if deadline > now {
                break;
            }
            self.expiring.pop_front();
            let Some(s) = self.by_uid.get(&uid).filter(|s| s.detachments == detachment) else { continue };
            let here = match s.held {
                Held::Away => true,
                Held::Orphaned => false,
                Held::At(_) | Held::Elsewhere => continue,
            };
            self.end(uid);
            self.stats.expired += 1;
            gone.push(Expired { uid, here });
        }
        gone
    }

    /// When the next detached user's grace runs out.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiring.front().map(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(from: u64, content: &str) -> Said {
        Said::new(from, "n", "t", content)
    }

    /// The n-th say of origin 0 (a process alone numbers its says).
    fn at(n: u64) -> Position {
        Position { origin: 0, seq: n, index: 0 }
    }

    fn contents(m: &Missed<'_>) -> Vec<(u64, Option<u64>, String)> {
        m.events()
            .map(|e| match e {
                Event::Say { from_uid, to_uid, content, mid: Some(_), .. } => (from_uid, to_uid, content.to_string()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn limits(buffer: usize) -> ResumeLimits {
        ResumeLimits { grace: Duration::from_secs(30), buffer }
    }

    fn cost_of_one() -> usize {
        let mut s = Sessions::new(limits(1 << 20), 1 << 20);
        s.open("id", 7, "r", 3);
        s.log_say("r", at(1), None, say(1, "xxxxxxxxxx"));
        s.log_bytes()
    }

    #[test]
    fn ids_are_128_random_bits_and_logged_in_part() {
        let (a, b) = (new_session_id().unwrap(), new_session_id().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(redacted(&a).len(), 6);
        assert_eq!(redacted("ab"), "?");
    }

    #[test]
    fn a_room_with_a_session_keeps_its_says_and_the_resume_gets_those_after_the_last_mid() {
        let mut s = Sessions::new(limits(1 << 20), 1 << 20);
        assert_eq!(s.log_say("r", at(1), None, say(1, "before")), None, "no session, no log");
        s.open("id", 7, "r", 3);
        let m1 = s.log_say("r", at(2), None, say(1, "a")).unwrap();
        s.log_say("r", at(3), Some(7), say(1, "to me"));
        s.log_say("r", at(4), Some(2), say(1, "not mine"));
        s.log_say("r", at(5), Some(1), say(7, "from me"));
        assert_eq!(m1, "0.2");
        assert_eq!(s.take_over("nope", 4), None);
        let t = s.take_over("id", 4);
        assert_eq!(t, Some(Takeover { uid: 7, old: Some(3), from_elsewhere: false }));
        let missed = s.missed(7, None);
        assert!(missed.recovered);
        assert_eq!(
            contents(&missed),
            [(1, None, "a".into()), (1, Some(7), "to me".into()), (7, Some(1), "from me".into())]
        );
        let missed = s.missed(7, Some(&m1));
        assert_eq!(missed.len(), 2);
        let missed = s.missed(7, Some("garbage"));
        assert_eq!((missed.len(), missed.recovered), (3, false), "an unknown mid: everything, no promise");
        assert_eq!((s.stats().recovered, s.stats().not_recovered), (2, 1));
    }

    #[test]
    fn says_of_several_origins_are_owed_past_each_origins_mark_whatever_their_order_here() {
        let mut s = Sessions::new(limits(1 << 20), 1 << 20);
        s.open_elsewhere("id", 7, "r", true);
        let (a, b) =
            (|n, i| Position { origin: 0xa, seq: n, index: i }, |n| Position { origin: 0xb, seq: n, index: 0 });
        // Another process delivered a1.0, b1, a1.1 and then b2 and named the frontier after a1.1 ("a.1.1~b.1");
        // here they arrived as a1.0, a1.1, b1, b2, a2.0.
        for (p, c) in [(a(1, 0), "a10"), (a(1, 1), "a11"), (b(1), "b1"), (b(2), "b2"), (a(2, 0), "a20")] {
            s.log_say("r", p, None, say(1, c));
        }
        assert_eq!(s.take_over("id", 9), Some(Takeover { uid: 7, old: None, from_elsewhere: true }));
        let missed = s.missed(7, Some("a.1.1~b.1"));
        let got: Vec<String> = contents(&missed).into_iter().map(|c| c.2).collect();
        assert_eq!((got, missed.recovered), (vec!["b2".to_string(), "a20".to_string()], true));
        // Learned late (a snapshot): no promise.
        let mut late = Sessions::new(limits(1 << 20), 1 << 20);
        late.open_elsewhere("id", 7, "r", false);
        late.take_over("id", 1);
        assert!(!late.missed(7, None).recovered);
    }

    #[test]
    fn says_a_resumed_client_had_elsewhere_are_not_for_it_again_when_they_arrive_late() {
        let mut s = Sessions::new(limits(1 << 20), 1 << 20);
        s.open_elsewhere("id", 7, "r", true);
        let a = |n| Position { origin: 0xa, seq: n, index: 0 };
        s.log_say("r", a(1), None, say(1, "a1"));
        s.take_over("id", 9);
        // The client had a2 already (from the process it was on); here a2 has not arrived yet.
        let missed = s.missed(7, Some("a.2"));
        assert_eq!((missed.len(), missed.recovered), (0, true));
        let mut had = Vec::new();
        s.log_say("r", a(2), None, say(1, "a2"));
        s.already_had("r", a(2), &mut had);
        assert_eq!(had, [9], "a2 is not for it again");
        had.clear();
        s.log_say("r", a(3), None, say(1, "a3"));
        s.already_had("r", a(3), &mut had);
        assert!(had.is_empty() && s.ahead.is_empty(), "caught up: the watch ends");
    }

    #[test]
    fn the_oldest_go_past_the_buffer_and_the_resume_says_so() {
        let one = cost_of_one();
        let mut s = Sessions::new(limits(3 * one), 1 << 20);
        s.open("id", 7, "r", 3);
        let mut mids = Vec::new();
        for n in 1..=5 {
            mids.push(s.log_say("r", at(n), None, say(1, "xxxxxxxxxx")).unwrap());
        }
        assert_eq!(s.log_bytes(), 3 * one);
        let missed = s.missed(7, None);
        assert_eq!((missed.len(), missed.recovered), (3, false));
        let missed = s.missed(7, Some(&mids[1]));
        assert_eq!((missed.len(), missed.recovered), (3, true), "the dropped ones were received");
    }

    #[test]
    fn all_rooms_share_the_total_and_a_room_without_sessions_keeps_nothing() {
        let one = cost_of_one();
        let mut s = Sessions::new(limits(1 << 20), 4 * one);
        s.open("a", 1, "r1", 1);
        s.open("b", 2, "r2", 2);
        for n in 1..=4 {
            s.log_say("r1", at(n), None, say(1, "xxxxxxxxxx"));
        }
        for n in 5..=6 {
            s.log_say("r2", at(n), None, say(1, "xxxxxxxxxx"));
        }
        assert_eq!(s.log_bytes(), 4 * one, "the oldest says gave way, wherever they were");
        assert_eq!((s.missed(1, None).len(), s.missed(1, None).recovered), (2, false));
        assert!(s.missed(2, None).recovered);
        s.end(1);
        assert_eq!((s.logs("r1"), s.log_bytes()), (false, 2 * one));
        assert_eq!(s.shed(usize::MAX), 2 * one);
    }

    #[test]
    fn a_detached_session_expires_after_the_grace_unless_taken_over() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(30);
        let mut s = Sessions::new(limits(1 << 20), 1 << 20);
        s.open("a", 1, "r", 1);
        s.open("b", 2, "r", 2);
        assert!(s.detach(1, t0));
        assert!(s.detach(2, t0 + Duration::from_secs(1)));
        assert!(!s.detach(3, t0), "no session");
        assert_eq!((s.stats().detached, s.next_expiry()), (2, Some(t0 + grace)));
        assert_eq!(s.take_over("b", 5), Some(Takeover { uid: 2, old: None, from_elsewhere: false }));
        assert_eq!(s.stats().detached, 1);
        assert!(s.expire(t0 + grace - Duration::from_millis(1)).is_empty());
        assert_eq!(s.expire(t0 + grace + Duration::from_secs(5)), [Expired { uid: 1, here: true }]);
        assert_eq!((s.stats().expired, s.stats().detached, s.has(1), s.has(2)), (1, 0, false, true));
        // Detached again later: the new deadline counts, not the old one.
        s.detach(2, t0 + Duration::from_secs(40));
        assert!(s.expire(t0 + Duration::from_secs(60)).is_empty());
        assert_eq!(s.expire(t0 + Duration::from_secs(70)), [Expired { uid: 2, here: true }]);
        assert!(!s.logs("r"));
    }

    #[test]
    fn a_session_of_a_process_gone_waits_for_the_grace_and_moves_on_a_handover() {
        let t0 = Instant::now();
        let mut s = Sessions::new(limits(1 << 20), 1 << 20);
        s.open_elsewhere("x", 5, "r", true);
        s.open_elsewhere("y", 6, "r", true);
        s.open("z", 7, "r", 1);
        assert!(s.orphan(5, t0) && s.orphan(6, t0) && !s.orphan(8, t0));
        assert_eq!(s.stats().detached, 2);
        assert_eq!(s.moved_elsewhere(6), None, "resumed on a third process");
        assert_eq!(s.moved_elsewhere(7), Some(1), "this process's connection is let go");
        assert_eq!(s.expire(t0 + Duration::from_secs(31)), [Expired { uid: 5, here: false }]);
        assert_eq!((s.stats().detached, s.has(6), s.has(7)), (0, true, true));
    }
}
