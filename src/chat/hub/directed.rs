//! The server API's acts on users wherever they are: text pushed to an audience and users closed. What is on
//! this process's connections is done here at once; for users on other processes the act is directed to the
//! processes that hold them (through the presence), and only to those, where [`Hub::apply_remote`] does it.

use std::collections::BTreeSet;

use super::Hub;
use crate::app::{CloseRequest, ConnId};
use crate::chat::dialect::text_frame;
use crate::chat::event::{Directed, Event, Sink, To};
use crate::chat::presence::Presence;
use crate::chat::roster::{Audience, Home};

/// The close code of a user the server API closed.
pub const CLOSED_BY_SERVER: u16 = 4000;

/// How far an act of the API reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reach {
    /// Connections of this process it was done on.
    pub here: usize,
    /// Other processes it was directed to.
    pub nodes: usize,
    /// Users it named, wherever they are.
    pub users: usize,
}

impl<P: Presence> Hub<P> {
    /// This process's connections of `to` but not of the users `exclude`, in connection order.
    pub(super) fn connections_of(&self, to: Audience<'_>, exclude: &[u64]) -> Vec<ConnId> {
        let mut conns = Vec::new();
        self.roster.each_of(to, |uid, seat| match seat.home {
            Home::Here(conn) if !exclude.contains(&uid) => conns.push(conn),
            _ => {}
        });
        conns.sort_unstable();
        conns
    }

    /// `data` verbatim, as one text frame, to every connection of `to` but those of `exclude`: this process's
    /// at once, the others' through the processes that hold them (each once, whatever its number of users).
    pub fn send_verbatim(&mut self, to: Audience<'_>, exclude: &[u64], data: &str, sink: &mut impl Sink) -> Reach {
        let mut conns = Vec::new();
        let mut nodes = BTreeSet::new();
        let mut users = 0;
        self.roster.each_of(to, |uid, seat| {
            if exclude.contains(&uid) {
                return;
            }
            users += 1;
            match seat.home {
                Home::Here(conn) => conns.push(conn),
                Home::Node(node) => {
                    nodes.insert(node);
                }
                // Detached: nothing to write to (a send is not kept for a resume).
                Home::Away => {}
            }
        });
        conns.sort_unstable();
        if let (Audience::Room(room), false) = (to, conns.is_empty()) {
            // A whole room joins the turn's batch of its broadcasts, like a say: one queue entry per member
            // and turn, however many sends (its excluded members skip it, as resumed members skip a say).
            if let Some(members) = self.roster.room(room) {
                // `conns` is a subset of the room's local members: equal sizes, nobody skipped (the usual
                // case, found without a search per member).
                let skipped: Vec<ConnId> = if conns.len() == members.locals().len() {
                    Vec::new()
                } else {
                    members.locals().iter().copied().filter(|c| conns.binary_search(c).is_err()).collect()
                };
                if skipped.is_empty() {
                    sink.send(To::Room(members), Event::Verbatim(data));
                } else {
                    sink.send(To::RoomBut(members, &skipped), Event::Verbatim(data));
                }
            }
        } else if !conns.is_empty() {
            sink.verbatim(&conns, &text_frame(data.as_bytes()));
        }
        let act = Directed::Send { to, exclude: exclude.to_vec(), data };
        for &node in &nodes {
            self.presence.direct(node, &act);
        }
        Reach { here: conns.len(), nodes: nodes.len(), users }
    }

    /// The users `uids` leave — one logout each, their sessions ended — and their connections close with
    /// [`CLOSED_BY_SERVER`] and `reason`: this process's here, the others' on the processes that hold them.
    pub fn close_users(&mut self, uids: &[u64], reason: &str, time: &str, sink: &mut impl Sink) -> Reach {
        let mut reach = Reach::default();
        let mut nodes = BTreeSet::new();
        for &uid in uids {
            match self.roster.seat(uid).map(|s| s.home) {
                Some(Home::Node(node)) => {
                    self.presence.direct(node, &Directed::Close { uid, reason });
                    nodes.insert(node);
                    reach.users += 1;
                }
                Some(_) => {
                    if let Some(Some(conn)) = self.remove_user(uid, time, sink) {
                        sink.close(conn, CloseRequest { code: CLOSED_BY_SERVER, reason: reason.to_owned().into() });
                        reach.here += 1;
                    }
                    reach.users += 1;
                }
                None => {}
            }
        }
        reach.nodes = nodes.len();
        reach
    }
}

/// The uid a say from the server API comes from (no user has it: uids start at 1).
pub const SERVER_UID: u64 = 0;

/// The name a say from the server API comes with (in the dialects that name senders).
pub const SERVER_NAME: &str = "server";

/// Why the server API's say was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSayError {
    /// The room has no user (nobody to say it to, and no history kept for an empty room).
    EmptyRoom,
    /// The user named is not in the room.
    NoSuchUser,
    /// The cluster cannot take a say now (the error a user's say would get).
    Refused(crate::chat::event::ErrorCode),
}

impl<P: Presence> Hub<P> {
    /// A say from the server ([`SERVER_UID`], [`SERVER_NAME`]) in `room`, to all or to one user of it: like
    /// a user's say, in each member's dialect, kept in history (to all), logged for sessions, replicated to
    /// the other processes. Answers how many users of the room it went to.
    pub fn server_say(
        &mut self,
        room: &str,
        to: Option<u64>,
        content: &str,
        time: &str,
        sink: &mut impl Sink,
    ) -> Result<usize, ServerSayError> {
        use crate::chat::event::{Event, RoomEvent, Said, To};
        let (from_uid, from_name) = (SERVER_UID, SERVER_NAME);
        let users = self.roster.count(room);
        if users == 0 {
            return Err(ServerSayError::EmptyRoom);
        }
        match to {
            None => {
                self.presence.accepts_say().map_err(ServerSayError::Refused)?;
                let say = RoomEvent::Say { room, from_uid, from_name, to_uid: None, content, time };
                let at = self.presence.replicate(&say);
                let mid = self.log_say(room, at, None, from_uid, from_name, content, time);
                let mid = mid.as_deref();
                let event = Event::Say { from_uid, from_name, to_uid: None, echo_to: None, content, time, mid };
                if let Some(members) = self.roster.room(room) {
                    sink.send(To::Room(members), event);
                }
                if self.limits.history > 0 {
                    let room: std::rc::Rc<str> = std::rc::Rc::from(room);
                    self.history.keep(&room, Said::new(from_uid, from_name, time, content));
                }
                Ok(users)
            }
            Some(uid) => {
                let home = self.roster.seat(uid).filter(|s| &*s.room == room).map(|s| s.home);
                let home = home.ok_or(ServerSayError::NoSuchUser)?;
                let mut at = None;
                if matches!(home, Home::Node(_)) || self.sessions.logs(room) {
                    self.presence.accepts_say().map_err(ServerSayError::Refused)?;
                    let say = RoomEvent::Say { room, from_uid, from_name, to_uid: Some(uid), content, time };
                    at = self.presence.replicate(&say);
                }
                let mid = self.log_say(room, at, Some(uid), from_uid, from_name, content, time);
                let mid = mid.as_deref();
                if let Home::Here(conn) = home {
                    let event =
                        Event::Say { from_uid, from_name, to_uid: Some(uid), echo_to: None, content, time, mid };
                    sink.send(To::Conns(&[conn]), event);
                }
                Ok(1)
            }
        }
    }
}
