//! The chat core: who gets what. Users and rooms (the [`Roster`], with uids and login order from
//! [`Presence`]), history, and the limits against memory and amplification. A client's command goes in; chat events come out into a
//! [`Sink`], each addressed to a room, to connections or to a newcomer's welcome. No JSON and no frames here:
//! the [`crate::chat::fanout::Fanout`] encodes each event in the dialect of every connection it goes to and
//! batches a room's broadcasts per loop turn.
//!
//! A newcomer gets its user list (everyone in the room, itself last), then the room's history, then its own
//! login like everyone in the room; a private say goes to its target and its sender (once when they are the
//! same); a departure is told to those who stay.
//!
//! Limits (all sans-IO: the reactor passes the time in with [`Hub::set_now`]): history is bounded per room
//! (`--history`) and over all rooms together (`--history-budget`, the globally oldest messages go first); a
//! room holds at most `--max-room-users` users; a connection may log in `--join-burst` times in a row, then
//! once a second.
//!
//! Resume ([`super::resume`]): a login may ask for a session. Its user is detached instead of removed when its
//! connection is lost, stays in the roster (nobody sees a logout) and is taken back by a connection that names
//! the session, which gets its user list, the says it missed, and `resumed`. The grace running out is the logout.

mod directed;
mod history;
mod remote;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use self::directed::{Reach, ServerSayError, CLOSED_BY_SERVER, SERVER_NAME, SERVER_UID};

use self::history::History;
use super::event::{ClientMessage, ErrorCode, Event, Newcomer, Position, Recipient, RoomEvent, Said, Sink, To};
use super::name::valid_name;
use super::presence::{LocalPresence, Presence};
use super::resume::{self, ResumeLimits, Sessions};
use super::roster::{Home, Roster};
use crate::app::{CloseRequest, ConnId, Departure};

/// The close a session's old connection gets when a new one takes the session over.
pub const RESUMED_ELSEWHERE: CloseRequest = CloseRequest { code: 4001, reason: Cow::Borrowed("resumed elsewhere") };

/// What a hub enforces ([`HubLimits::unlimited`]: only the per-room history count).
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
    /// Sessions: the grace and the say log of a room (`--resume-grace-secs`, `--resume-buffer`).
    pub resume: ResumeLimits,
    /// Bytes all rooms' say logs may hold together (`--max-output-bytes`: they count against it).
    pub resume_total: usize,
}

impl HubLimits {
    /// `history` messages per room and no other limit.
    pub fn unlimited(history: usize) -> HubLimits {
        HubLimits {
            history,
            history_budget: usize::MAX,
            max_room_users: usize::MAX,
            join_burst: 0,
            resume: ResumeLimits::default(),
            resume_total: usize::MAX,
        }
    }
}

impl From<&crate::config::Config> for HubLimits {
    fn from(cfg: &crate::config::Config) -> HubLimits {
        HubLimits {
            history: cfg.history,
            history_budget: cfg.history_budget,
            max_room_users: cfg.max_room_users,
            join_burst: cfg.join_burst,
            resume: ResumeLimits { grace: cfg.resume_grace, buffer: cfg.resume_buffer },
            resume_total: cfg.max_output_bytes,
        }
    }
}

/// A login as the hub takes it: what the client asked for, and the account a token proved.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    /// The name to show (the token's, when it names one).
    pub name: &'a str,
    /// The room to join.
    pub room: Cow<'a, str>,
    /// The client asks for a session.
    pub resume: bool,
    /// The account id a token proved (`--auth-key`); `None` for an anonymous user.
    pub user_id: Option<&'a str>,
}

/// The hub's figures for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Bytes of history held over all rooms (the messages as kept, [`Said::cost`]): `wschat_history_bytes`.
    pub history_bytes: u64,
    /// History messages dropped to stay within the budget: `wschat_history_evicted_total`.
    pub history_evicted_total: u64,
    /// Logins refused because the room was full: `wschat_room_full_total`.
    pub room_full_total: u64,
    /// Logins refused by the join burst (add the reactor's own refusals for `wschat_rate_limited_total`).
    pub rate_limited_total: u64,
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

/// The chat core of one daemon; `P` hands out uids and login order ([`LocalPresence`] unless a cluster
/// shares them).
#[derive(Debug)]
pub struct Hub<P: Presence = LocalPresence> {
    limits: HubLimits,
    presence: P,
    /// Who is in which room: this process's users and, in a cluster, everyone else's.
    roster: Roster,
    history: History,
    /// Sessions that outlive their connections, and the says owed to them.
    sessions: Sessions,
    /// Logins refused because the room was full.
    room_full_total: u64,
    /// Logins refused by the join burst.
    rate_limited_total: u64,
    /// Join allowances of connections that logged in recently; a full bucket is the same as none.
    joins: HashMap<ConnId, JoinBucket>,
    /// The time the reactor last gave; `None` until it gives one.
    now: Option<Instant>,
    /// When full join buckets are next swept out.
    next_join_sweep: Option<Instant>,
}

impl Hub {
    /// An empty hub that keeps the last `history_limit` messages of each room, with no other limit.
    pub fn new(history_limit: usize) -> Hub {
        Hub::with_limits(HubLimits::unlimited(history_limit))
    }

    /// An empty hub enforcing `limits`.
    pub fn with_limits(limits: HubLimits) -> Hub {
        Hub::with_presence(limits, LocalPresence::new())
    }
}

impl<P: Presence> Hub<P> {
    /// A hub enforcing `limits`, with uids and rooms kept by `presence`.
    pub fn with_presence(limits: HubLimits, presence: P) -> Hub<P> {
        Hub {
            limits,
            presence,
            roster: Roster::new(),
            history: History::new(limits.history, limits.history_budget),
            sessions: Sessions::new(limits.resume, limits.resume_total),
            room_full_total: 0,
            rate_limited_total: 0,
            joins: HashMap::new(),
            now: None,
            next_join_sweep: None,
        }
    }

    /// Uids and login order, and the other processes.
    pub fn presence(&self) -> &P {
        &self.presence
    }

    /// Uids and login order, and the other processes, to drive a shared presence.
    pub fn presence_mut(&mut self) -> &mut P {
        &mut self.presence
    }

    /// Who is in which room.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// What `room` said to all that this process keeps (`--history`), oldest first.
    pub fn said_in(&self, room: &str) -> impl Iterator<Item = &Said> + '_ {
        self.history.of(room).into_iter().flat_map(|past| past.said)
    }

    /// The end of a loop turn: a shared presence sends what the turn recorded.
    pub fn end_turn(&mut self) {
        self.presence.end_turn(&self.roster, &self.sessions);
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
        debug_assert!(self.roster.uid_of(conn).is_none(), "disconnect before leave");
        self.joins.remove(&conn);
    }

    /// Sessions and their say logs.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Drops at least `bytes` of the say logs, the oldest first (the output budget is exceeded).
    pub fn shed_logs(&mut self, bytes: usize) -> usize {
        self.sessions.shed(bytes)
    }

    /// When the next detached user's grace runs out.
    pub fn wakeup(&self) -> Option<Instant> {
        self.sessions.next_expiry()
    }

    /// Logs out the detached users whose grace ran out by the time last set.
    pub fn expire_sessions(&mut self, time: &str, sink: &mut impl Sink) {
        let Some(now) = self.now else { return };
        if self.sessions.next_expiry().is_none_or(|t| t > now) {
            return;
        }
        for expired in self.sessions.expire(now) {
            let uid = expired.uid;
            if !expired.here {
                // The user of a process gone: every process removes it on its own.
                self.remote_leave(uid, time, sink);
            } else if let Some(seat) = self.roster.leave(uid) {
                log::debug!("uid {uid}: detached past the grace; logged out");
                self.depart(uid, &seat.room, &seat.name, time, sink);
            }
        }
    }

    /// The hub's figures for /metrics.
    pub fn stats(&self) -> HubStats {
        HubStats {
            history_bytes: self.history.bytes,
            history_evicted_total: self.history.evicted,
            room_full_total: self.room_full_total,
            rate_limited_total: self.rate_limited_total,
        }
    }

    /// Whether the chat is shared with other processes (a cluster).
    pub fn is_shared(&self) -> bool {
        self.presence.is_shared()
    }

    /// How many users are logged in on this process's connections.
    pub fn user_count(&self) -> usize {
        self.roster.local_count()
    }

    /// The uid of the user on `conn`, if logged in.
    pub fn uid_of(&self, conn: ConnId) -> Option<u64> {
        self.roster.uid_of(conn)
    }

    /// Handles one command from `conn`; `time` is the local time stamp to put on what it causes.
    pub fn handle(&mut self, conn: ConnId, msg: ClientMessage<'_>, time: &str, sink: &mut impl Sink) {
        let result = match msg {
            ClientMessage::Login { name, room, resume, .. } => {
                self.login(conn, Login { name: &name, room, resume, user_id: None }, time, sink)
            }
            ClientMessage::Resume { session, last_mid } => self.resume(conn, &session, last_mid.as_deref(), time, sink),
            ClientMessage::Say { to, content } => self.say(conn, to, &content, time, sink),
            ClientMessage::Logout => match self.roster.uid_of(conn).is_some() {
                true => {
                    self.leave(conn, Departure::Goodbye, time, sink);
                    Ok(())
                }
                false => Err(ErrorCode::NotLoggedIn),
            },
            ClientMessage::Pong => Ok(()),
        };
        if let Err(code) = result {
            self.error(conn, code, sink);
        }
    }

    /// Tells `conn` its request was refused with `code`.
    pub fn error(&mut self, conn: ConnId, code: ErrorCode, sink: &mut impl Sink) {
        sink.send(To::Conn(conn), Event::Error(code));
    }

    /// Logs `conn` in as `login` says, its account id proved by a token (`--auth-key`); a refusal is
    /// answered with its error.
    pub fn login_as(&mut self, conn: ConnId, login: Login<'_>, time: &str, sink: &mut impl Sink) {
        if let Err(code) = self.login(conn, login, time, sink) {
            self.error(conn, code, sink);
        }
    }

    fn login(&mut self, conn: ConnId, login: Login<'_>, time: &str, sink: &mut impl Sink) -> Result<(), ErrorCode> {
        let Login { name, room, resume, user_id } = login;
        if self.roster.uid_of(conn).is_some() {
            return Err(ErrorCode::AlreadyLoggedIn);
        }
        let name = valid_name(name).ok_or(ErrorCode::BadName)?;
        if !self.presence.accepts_logins() {
            return Err(ErrorCode::ClusterUnavailable);
        }
        if self.roster.count(&room) >= self.limits.max_room_users {
            self.room_full_total += 1;
            return Err(ErrorCode::RoomFull);
        }
        if !self.take_join(conn) {
            self.rate_limited_total += 1;
            return Err(ErrorCode::RateLimited);
        }
        let uid = self.presence.allocate_uid().ok_or(ErrorCode::ClusterUnavailable)?;
        let order = self.presence.login_order();
        self.roster.join_as(&room, uid, name, user_id, order, Home::Here(conn));
        self.presence.replicate(&RoomEvent::Login { room: &room, uid, name, order, user_id, time });
        sink.joined(&room, conn);
        let session = match resume && self.sessions.enabled() {
            true => resume::new_session_id().map(|id| self.sessions.open(&id, uid, &room, conn)),
            false => None,
        };
        if let Some(session) = session.as_deref() {
            self.presence.replicate(&RoomEvent::Session { room: &room, uid, session });
        }
        // The welcome: the user list, then what the room said before; then the room (the newcomer included)
        // hears of the login.
        let Some(members) = self.roster.room(&room) else { return Ok(()) };
        let newcomer = Newcomer { uid, name, time, session: session.as_deref() };
        sink.send(To::Welcome(conn), Event::UserList { room: &room, users: members, newcomer });
        if let Some(past) = self.history.of(&room) {
            sink.send(To::Welcome(conn), Event::History(past));
        }
        sink.send(To::Room(members), Event::Login { uid, name, user_id, time });
        Ok(())
    }

    /// `conn` becomes the user of session `id`: its seat moves here (a connection still holding it is closed
    /// with 4001), and it gets the room's user list, every say it missed after `last_mid`, and `resumed`.
    fn resume(
        &mut self,
        conn: ConnId,
        id: &str,
        last_mid: Option<&str>,
        time: &str,
        sink: &mut impl Sink,
    ) -> Result<(), ErrorCode> {
        if self.roster.uid_of(conn).is_some() {
            return Err(ErrorCode::AlreadyLoggedIn);
        }
        if !self.take_join(conn) {
            self.rate_limited_total += 1;
            return Err(ErrorCode::RateLimited);
        }
        let Some(takeover) = self.sessions.take_over(id, conn) else {
            log::debug!("resume of unknown session {}…", resume::redacted(id));
            return Err(ErrorCode::SessionExpired);
        };
        let uid = takeover.uid;
        if let Some(old) = takeover.old {
            sink.left(old);
            sink.close(old, RESUMED_ELSEWHERE);
        }
        self.roster.rehome(uid, Home::Here(conn));
        let Some(seat) = self.roster.seat(uid) else { return Ok(()) };
        let (room, name) = (seat.room.clone(), seat.name.clone());
        if takeover.from_elsewhere {
            // The other processes move the seat here; the one that held it lets its connection go.
            self.presence.replicate(&RoomEvent::Handover { room: &room, uid });
        }
        sink.joined(&room, conn);
        let Some(members) = self.roster.room(&room) else { return Ok(()) };
        let newcomer = Newcomer { uid, name: &name, time, session: Some(id) };
        sink.send(To::Welcome(conn), Event::UserList { room: &room, users: members, newcomer });
        let missed = self.sessions.missed(uid, last_mid);
        for event in missed.events() {
            sink.send(To::Welcome(conn), event);
        }
        let (recovered, missed) = (missed.recovered, missed.len());
        log::debug!("uid {uid}: resumed session {}… ({missed} missed, recovered {recovered})", resume::redacted(id));
        sink.send(To::Conn(conn), Event::Resumed { uid, recovered, missed });
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

    fn say(
        &mut self,
        conn: ConnId,
        to: Recipient,
        content: &str,
        time: &str,
        sink: &mut impl Sink,
    ) -> Result<(), ErrorCode> {
        let (from_uid, sender) = self.roster.seat_of(conn).ok_or(ErrorCode::NotLoggedIn)?;
        if content.is_empty() {
            return Err(ErrorCode::EmptyContent);
        }
        let (room, from_name) = (sender.room.clone(), sender.name.clone());
        let from_name = &*from_name;
        match to {
            Recipient::All => {
                self.presence.accepts_say()?;
                let say = RoomEvent::Say { room: &room, from_uid, from_name, to_uid: None, content, time };
                let at = self.presence.replicate(&say);
                let mid = self.log_say(&room, at, None, from_uid, from_name, content, time);
                let mid = mid.as_deref();
                let event = Event::Say { from_uid, from_name, to_uid: None, echo_to: None, content, time, mid };
                if let Some(members) = self.roster.room(&room) {
                    sink.send(To::Room(members), event);
                }
                if self.limits.history > 0 {
                    self.history.keep(&room, Said::new(from_uid, from_name, time, content));
                }
            }
            Recipient::User(uid) => {
                let target = self.roster.seat(uid).filter(|s| s.room == room).map(|s| (s.home, s.name.clone()));
                let Some((home, target_name)) = target else { return Err(ErrorCode::NoSuchUser) };
                // A target on another process gets the say from there (the sender's echo is here); in a room
                // with a session every process keeps the say, to be resumed anywhere.
                let mut at = None;
                if matches!(home, Home::Node(_)) || self.sessions.logs(&room) {
                    self.presence.accepts_say()?;
                    let say = RoomEvent::Say { room: &room, from_uid, from_name, to_uid: Some(uid), content, time };
                    at = self.presence.replicate(&say);
                }
                let mid = self.log_say(&room, at, Some(uid), from_uid, from_name, content, time);
                let mid = mid.as_deref();
                // The target's copy, then the sender's (once, when they are the same).
                match home {
                    Home::Here(target) if target != conn => {
                        let to_uid = Some(uid);
                        let event = Event::Say { from_uid, from_name, to_uid, echo_to: None, content, time, mid };
                        sink.send(To::Conns(&[target]), event);
                    }
                    _ => {}
                }
                let echo_to = Some(&*target_name);
                let echo = Event::Say { from_uid, from_name, to_uid: Some(uid), echo_to, content, time, mid };
                sink.send(To::Conns(&[conn]), echo);
            }
            Recipient::Nobody => return Err(ErrorCode::NoSuchUser),
        }
        Ok(())
    }

    /// Keeps a say at `at` in its room's log when a session is in the room; its mid.
    #[allow(clippy::too_many_arguments)]
    fn log_say(
        &mut self,
        room: &str,
        at: Option<Position>,
        to_uid: Option<u64>,
        from_uid: u64,
        from_name: &str,
        content: &str,
        time: &str,
    ) -> Option<String> {
        match (self.sessions.logs(room), at) {
            (true, Some(at)) => self.sessions.log_say(room, at, to_uid, Said::new(from_uid, from_name, time, content)),
            _ => None,
        }
    }

    /// The user on `conn` (if any) is done with it, as `departure` says. A user with a session whose
    /// connection was lost is detached: it stays, and nobody is told. Anyone else is removed and the rest of
    /// its room told (at shutdown nobody is: the caller's sink drops it).
    pub fn leave(&mut self, conn: ConnId, departure: Departure, time: &str, sink: &mut impl Sink) {
        let Some(uid) = self.roster.uid_of(conn) else { return };
        if departure == Departure::Lost {
            if let Some(now) = self.now.filter(|_| self.sessions.has(uid)) {
                self.sessions.detach(uid, now);
                self.roster.rehome(uid, Home::Away);
                sink.left(conn);
                return;
            }
        }
        let had_session = self.sessions.has(uid);
        self.sessions.end(uid);
        let Some(seat) = self.roster.leave(uid) else { return };
        // What the room said while the user was in it is still the user's (a client logout keeps the
        // connection open).
        sink.left(conn);
        if departure == Departure::Shutdown && had_session {
            // Not a logout: the other processes keep a user with a session for the grace when this one is
            // gone, to be resumed there.
            return;
        }
        self.depart(uid, &seat.room, &seat.name, time, sink);
    }

    /// The server removes `uid` (the API's close): its session ends, its room hears one logout. Answers
    /// `Some(conn)` for a user on this process's connection `conn` (to be closed), `Some(None)` for a
    /// detached one, `None` for a user this process does not hold.
    pub fn remove_user(&mut self, uid: u64, time: &str, sink: &mut impl Sink) -> Option<Option<ConnId>> {
        match self.roster.seat(uid)?.home {
            Home::Here(conn) => {
                self.leave(conn, Departure::Goodbye, time, sink);
                Some(Some(conn))
            }
            Home::Away => {
                self.sessions.end(uid);
                let seat = self.roster.leave(uid)?;
                self.depart(uid, &seat.room, &seat.name, time, sink);
                Some(None)
            }
            Home::Node(_) => None,
        }
    }

    /// `uid`, named `name`, has left `room`: the other processes and the room are told.
    fn depart(&mut self, uid: u64, room: &str, name: &str, time: &str, sink: &mut impl Sink) {
        self.presence.replicate(&RoomEvent::Logout { room, uid, name, time });
        match self.roster.room(room) {
            Some(members) => sink.send(To::Room(members), Event::Logout { uid, name, time }),
            // Room names come from clients: keeping empty rooms would let them grow memory without bound.
            None if !self.presence.keeps_empty_rooms() => self.history.drop_room(room),
            None => {}
        }
    }
}
