//! The chat core's vocabulary, apart from any wire format: the commands a client sends (its dialect parses
//! them), the error codes, and the events the core emits — each addressed to a room, to connections or to a
//! newcomer's welcome — into a [`Sink`]. In the daemon the sink is the [`super::fanout::Fanout`], which
//! encodes every event in the dialect of each connection it goes to.

use std::borrow::Cow;
use std::collections::vec_deque;
use std::fmt;

use super::identity::TokenRefusal;
use super::roster::{Audience, RoomRoster};
use crate::app::ConnId;

/// A message from a client, validated for shape (not yet against the hub's state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage<'a> {
    /// Log in as `name` and join `room`.
    Login {
        /// The nickname as sent (not yet trimmed or validated).
        name: Cow<'a, str>,
        /// The room to join (the dialect's default room when the client named none).
        room: Cow<'a, str>,
        /// The client asks for a session it can resume after a dropped connection.
        resume: bool,
        /// The JWT that proves who the client is (`--auth-key`); ignored without a key.
        token: Option<Cow<'a, str>>,
    },
    /// Become the user of session `session` again, owed the says after `last_mid`.
    Resume {
        /// The session's id, as the login's user list gave it.
        session: Cow<'a, str>,
        /// The mid of the last say the client received; `None` when it received none.
        last_mid: Option<Cow<'a, str>>,
    },
    /// Say something to the room or to one user.
    Say {
        /// Who should receive it.
        to: Recipient,
        /// The text, relayed unchanged.
        content: Cow<'a, str>,
    },
    /// Leave the room but keep the connection.
    Logout,
    /// The application-level heartbeat's answer; accepted and ignored.
    Pong,
}

/// Who a say is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// The whole room.
    All,
    /// One user by uid.
    User(u64),
    /// Nobody has the uid named (a string that is not a uid, or 0).
    Nobody,
}

/// The error codes of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not a JSON object, or a field of the wrong JSON type.
    BadJson,
    /// `type` missing or not known.
    UnknownType,
    /// A say or logout before login.
    NotLoggedIn,
    /// A name that is empty, too long, or has control, format (bidi, zero-width) or other invisible
    /// characters.
    BadName,
    /// A second login on the same connection.
    AlreadyLoggedIn,
    /// A private message to a uid that is not in the sender's room.
    NoSuchUser,
    /// A say with empty content.
    EmptyContent,
    /// More messages than `--max-messages-per-sec` allows, or logins past `--join-burst`; the message
    /// was refused, not relayed.
    RateLimited,
    /// The room already holds `--max-room-users` users.
    RoomFull,
    /// A say whose content, HTML-escaped as its sender's dialect sends it, is over `--max-message-bytes`;
    /// it was refused, not relayed.
    MessageTooBig,
    /// A cluster node cannot take the request now: it has not joined the cluster yet, or Redis is away and
    /// its buffer is full. Nothing was delivered to anyone.
    ClusterUnavailable,
    /// A cluster node's Redis is up but has not yet confirmed `--cluster-buffer` bytes of its messages (its
    /// users say more than Redis takes): the say was refused. The same code as [`ErrorCode::ClusterUnavailable`]
    /// (try again later), with its own explanation.
    ClusterBusy,
    /// A resume named a session that is unknown, ended or expired; the connection may log in.
    SessionExpired,
    /// With `--auth-key`: a login without a token that proves who it is (missing, malformed, expired, not
    /// yet valid, badly signed, another alg, bad claims), as the refusal says.
    Unauthorized(TokenRefusal),
    /// With `--auth-key`: the token's `rooms` do not include the room asked for.
    Forbidden,
}

impl ErrorCode {
    /// The code as sent in the `code` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::NotLoggedIn => "not_logged_in",
            ErrorCode::BadName => "bad_name",
            ErrorCode::AlreadyLoggedIn => "already_logged_in",
            ErrorCode::NoSuchUser => "no_such_user",
            ErrorCode::EmptyContent => "empty_content",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::MessageTooBig => "message_too_big",
            ErrorCode::ClusterUnavailable | ErrorCode::ClusterBusy => "cluster_unavailable",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::Unauthorized(_) => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
        }
    }

    /// A human-readable explanation, sent in the `message` field.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "expected a JSON object with fields of the right types",
            ErrorCode::UnknownType => "type must be one of login, say, logout, pong, resume",
            ErrorCode::NotLoggedIn => "log in first",
            ErrorCode::BadName => {
                "name must be 1 to 32 visible characters: no control, bidi, zero-width or other invisible characters"
            }
            ErrorCode::AlreadyLoggedIn => "this connection is already logged in",
            ErrorCode::NoSuchUser => "no user with that uid in your room",
            ErrorCode::EmptyContent => "content must not be empty",
            ErrorCode::RateLimited => "too many messages per second; this one was not delivered",
            ErrorCode::RoomFull => "this room is full",
            ErrorCode::MessageTooBig => {
                "the content is over the message size limit once HTML-escaped; it was not delivered"
            }
            ErrorCode::ClusterUnavailable => {
                "the chat cluster cannot take this right now (Redis is unreachable); nothing was delivered, try again"
            }
            ErrorCode::ClusterBusy => {
                "this node has more messages waiting for Redis than it may hold (Redis is up but behind); nothing \
                 was delivered, try again"
            }
            ErrorCode::SessionExpired => "that session is unknown, ended or expired; log in again",
            ErrorCode::Unauthorized(why) => why.message(),
            ErrorCode::Forbidden => "the token does not allow this room",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ErrorCode {}

/// Who an event goes to.
#[derive(Debug, Clone, Copy)]
pub enum To<'a> {
    /// Every member of the room (a login, a say to all, a logout), as the roster has them.
    Room(&'a RoomRoster),
    /// Every member of the room but these connections (resumed ones whose clients had the say already).
    RoomBut(&'a RoomRoster, &'a [ConnId]),
    /// One connection (an error).
    Conn(ConnId),
    /// Each of these connections once, in order (a private say: its target, then its sender).
    Conns(&'a [ConnId]),
    /// A newcomer's welcome (its user list, the room's history): for the newcomer alone, before its login
    /// reaches the room, and not held against the send-buffer limit.
    Welcome(ConnId),
}

/// What happened, for the connections it is addressed to; every dialect has its own bytes for it.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// The users of `room` in login order (to a welcome).
    UserList {
        /// The room.
        room: &'a str,
        /// Its users, in the roster's order.
        users: &'a RoomRoster,
        /// Whom the list is for (a dialect whose user list is the newcomer's own login names it).
        newcomer: Newcomer<'a>,
    },
    /// What the room said to all before the newcomer came, oldest first (to a welcome).
    History(History<'a>),
    /// Someone logged in.
    Login {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Their account id in the application, when a token proved it (`--auth-key`).
        user_id: Option<&'a str>,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// A chat message.
    Say {
        /// The sender's uid.
        from_uid: u64,
        /// The sender's name.
        from_name: &'a str,
        /// The recipient's uid for a private message; `None` when said to the whole room.
        to_uid: Option<u64>,
        /// For a private message, the sender's own copy carries the recipient's name here (a dialect may
        /// word the two copies differently); `None` for the recipient's copy and for a say to all.
        echo_to: Option<&'a str>,
        /// The text, unchanged.
        content: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
        /// Its mid, for the connections of a session (see [`super::resume`]); `None` where nobody resumes.
        mid: Option<&'a str>,
    },
    /// Someone left.
    Logout {
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// A request was refused; the connection stays open.
    Error(ErrorCode),
    /// Text the server API sends as it is: the same bytes in every dialect (`POST /api/send` to a room).
    Verbatim(&'a str),
    /// A resume is complete: the missed says were sent.
    Resumed {
        /// The session's user.
        uid: u64,
        /// Whether every missed say was still kept.
        recovered: bool,
        /// How many missed says were sent.
        missed: usize,
    },
}

/// The user a welcome is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newcomer<'a> {
    /// Its uid.
    pub uid: u64,
    /// Its name.
    pub name: &'a str,
    /// The login's local time.
    pub time: &'a str,
    /// The session it holds, for a client that asked for one.
    pub session: Option<&'a str>,
}

/// A room's history, oldest first, with the stamp of this version of it.
#[derive(Debug, Clone)]
pub struct History<'a> {
    /// The messages, oldest first.
    pub said: vec_deque::Iter<'a, Said>,
    /// Equal stamps mean the same messages: what encodes a history once may keep it until the stamp changes.
    pub stamp: HistoryStamp,
}

/// One version of one room's history: the room (a room dropped and made again under the same name is
/// another), the sequence number of its oldest message kept and how many it keeps. Messages are only added
/// at the end and dropped from the front, so two equal stamps name the same messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryStamp {
    /// The room's history, told apart from earlier rooms of the same name.
    pub room: u64,
    /// The sequence number of the oldest message kept.
    pub first: u64,
    /// Messages kept.
    pub len: u64,
}

/// A say to all as history keeps it: the sender, and its time stamp, name and content in one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    from_uid: u64,
    /// Bytes of `text` that are the time stamp; the sender's name follows, then the content.
    time_len: u32,
    /// Bytes of `text` that are the sender's name.
    name_len: u32,
    text: Box<str>,
}

impl Said {
    /// `content` said to all by `from_uid`, named `from_name`, at `time`.
    pub fn new(from_uid: u64, from_name: &str, time: &str, content: &str) -> Said {
        let mut text = String::with_capacity(time.len() + from_name.len() + content.len());
        text.push_str(time);
        text.push_str(from_name);
        text.push_str(content);
        let len = |s: &str| u32::try_from(s.len()).unwrap_or(u32::MAX);
        Said { from_uid, time_len: len(time), name_len: len(from_name), text: text.into_boxed_str() }
    }

    /// Bytes it holds against the history budget: its text and its record.
    pub fn cost(&self) -> usize {
        std::mem::size_of::<Said>() + self.text.len()
    }

    /// The say it was.
    pub fn event(&self) -> Event<'_> {
        self.event_to(None, None)
    }

    /// The say it was, to `to_uid` (`None`: the room) under `mid`.
    pub fn event_to<'a>(&'a self, to_uid: Option<u64>, mid: Option<&'a str>) -> Event<'a> {
        let (time, rest) = self.text.split_at(self.time_len as usize);
        let (from_name, content) = rest.split_at(self.name_len as usize);
        Event::Say { from_uid: self.from_uid, from_name, to_uid, echo_to: None, content, time, mid }
    }

    /// The sender's uid.
    pub fn from_uid(&self) -> u64 {
        self.from_uid
    }
}

/// Where the chat core's decisions go. Membership is told first: [`Sink::joined`] before the newcomer's
/// welcome and its login to the room, [`Sink::left`] before the room hears of a departure.
pub trait Sink {
    /// `conn` is in `room` now, after everyone already there: what is sent to the room from now on is for it
    /// too.
    fn joined(&mut self, room: &str, conn: ConnId);

    /// `conn` is no longer in its room: what the room said while it was there is still its own, nothing sent
    /// to the room from now on is.
    fn left(&mut self, conn: ConnId);

    /// `event` for `to`.
    fn send(&mut self, to: To<'_>, event: Event<'_>);

    /// Closes `conn` after what was sent to it (a session's old connection, taken over by a new one).
    fn close(&mut self, conn: ConnId, request: crate::app::CloseRequest);

    /// `frame` (one text frame made by the server API, the same in every dialect) for each of `conns`,
    /// after what the turn sent them before.
    fn verbatim(&mut self, conns: &[ConnId], frame: &crate::shared_bytes::SharedBytes);
}

/// A change in a room that every process sharing the chat applies alike: the hub makes it for its own
/// users, a shared presence carries it to the other processes, and the hub applies theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent<'a> {
    /// Someone logged in to `room`.
    Login {
        /// The room.
        room: &'a str,
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Their place in the room's order ([`super::roster::Seat::order`]).
        order: u64,
        /// Their account id in the application, when a token proved it (`--auth-key`).
        user_id: Option<&'a str>,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// A say, to `room` or to one user of it.
    Say {
        /// The room.
        room: &'a str,
        /// The sender's uid.
        from_uid: u64,
        /// The sender's name.
        from_name: &'a str,
        /// The recipient's uid; `None` for the whole room.
        to_uid: Option<u64>,
        /// The text, unchanged.
        content: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// Someone left `room`.
    Logout {
        /// The room.
        room: &'a str,
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Local time, "YYYY-MM-DD HH:MM:SS".
        time: &'a str,
    },
    /// `uid` of `room` holds session `session` ([`super::resume`]): told after its login, and in snapshots.
    Session {
        /// The room.
        room: &'a str,
        /// The session's user.
        uid: u64,
        /// The session's id.
        session: &'a str,
    },
    /// The process telling it took `uid`'s session over: the user's connection is there now (nobody left,
    /// nobody came).
    Handover {
        /// The room.
        room: &'a str,
        /// The session's user.
        uid: u64,
    },
}

impl<'a> RoomEvent<'a> {
    /// The room it happened in.
    pub fn room(&self) -> &'a str {
        match *self {
            RoomEvent::Login { room, .. }
            | RoomEvent::Say { room, .. }
            | RoomEvent::Logout { room, .. }
            | RoomEvent::Session { room, .. }
            | RoomEvent::Handover { room, .. } => room,
        }
    }
}

/// Where a say stands in its origin's order, the same on every process: the process that took it, the
/// number of the message it went out in (on one process alone, a count of its says) and its place among that
/// message's says of its room. Positions of one origin are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The process that took the say (0 on a process alone).
    pub origin: u64,
    /// The origin's message it went out in.
    pub seq: u64,
    /// Its place among the message's says of its room.
    pub index: u32,
}

/// What the server API asks the process that holds a user's connections to do, when that process is
/// another one (the API answers on any node; the node holding the target acts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directed<'a> {
    /// `data` verbatim, as one text frame, to that process's connections of `to`, but not to the users
    /// `exclude`.
    Send {
        /// Whom.
        to: Audience<'a>,
        /// Uids left out.
        exclude: Vec<u64>,
        /// The text.
        data: &'a str,
    },
    /// The user `uid` leaves (one logout, its session ended) and its connection closes with 4000 and
    /// `reason`.
    Close {
        /// The user.
        uid: u64,
        /// The close frame's reason.
        reason: &'a str,
    },
}

/// What other processes sharing the chat tell this one, in the order it is to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote<'a> {
    /// Something happened in a room of process `origin`.
    Room {
        /// The process.
        origin: u64,
        /// What happened.
        event: RoomEvent<'a>,
        /// A say's place in the origin's order.
        at: Option<Position>,
    },
    /// One user process `origin` holds (part of a snapshot of its users).
    Present {
        /// The process.
        origin: u64,
        /// The room.
        room: &'a str,
        /// Their uid.
        uid: u64,
        /// Their name.
        name: &'a str,
        /// Their place in the room's order.
        order: u64,
        /// Their account id in the application, if a token proved it.
        user_id: Option<&'a str>,
        /// The session they hold, if any.
        session: Option<&'a str>,
    },
    /// Process `origin` holds exactly the users `present` (sorted): any other user it was known to hold
    /// has left.
    Snapshot {
        /// The process.
        origin: u64,
        /// The uids it holds, sorted.
        present: Vec<u64>,
    },
    /// Process `node` is gone, and its users with it.
    Gone(u64),
    /// The server API of process `origin` asks this one to act on its own connections.
    Directed {
        /// The process whose API was called.
        origin: u64,
        /// What to do.
        act: Directed<'a>,
    },
    /// A room's history as the processes keep it together, oldest first.
    History {
        /// The room.
        room: &'a str,
        /// Its says.
        said: Vec<Said>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn said_keeps_time_and_content_apart() {
        let said = Said::new(7, "猪猪", "2026-11-25 12:00:00", "hi, all");
        match said.event() {
            Event::Say { from_uid, from_name, to_uid, echo_to, content, time, mid: None } => {
                assert_eq!((from_uid, from_name, to_uid, echo_to), (7, "猪猪", None, None));
                assert_eq!((content, time), ("hi, all", "2026-11-25 12:00:00"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(said.cost(), std::mem::size_of::<Said>() + 19 + 6 + 7);
        assert!(matches!(Said::new(1, "", "", "x").event(), Event::Say { content: "x", time: "", from_name: "", .. }));
    }
}
