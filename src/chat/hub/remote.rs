//! The hub of a chat shared with other processes: their events applied to this process's users, like local
//! ones. A login or logout elsewhere changes the roster and reaches the room's local members; a say to all
//! reaches them and the room's history; a private say reaches its target if it is here. A snapshot makes an
//! origin's users exactly the ones it lists; a process gone takes all of its users with it.

use std::rc::Rc;

use log::warn;

use super::Hub;
use crate::app::CloseRequest;
use crate::chat::dialect::text_frame;
use crate::chat::event::{Directed, Event, Remote, RoomEvent, Said, Sink, To};
use crate::chat::presence::Presence;
use crate::chat::roster::Home;

impl<P: Presence> Hub<P> {
    /// Applies everything the presence's links brought in, in order; `time` stamps what this process says on
    /// its own (departures it learns of from a snapshot or a process gone).
    pub fn apply_inbound(&mut self, time: &str, sink: &mut impl Sink) {
        while let Some(item) = self.presence.next_inbound() {
            let mut remote = Vec::new();
            self.presence.interpret(&item, &mut remote);
            for r in remote {
                self.apply_remote(r, time, sink);
            }
        }
    }

    /// Applies one thing another process told.
    pub fn apply_remote(&mut self, remote: Remote<'_>, time: &str, sink: &mut impl Sink) {
        match remote {
            Remote::Room { origin, event: RoomEvent::Login { room, uid, name, order, user_id, time }, .. } => {
                self.remote_join(origin, room, uid, (name, user_id), order, time, sink)
            }
            Remote::Present { origin, room, uid, name, order, user_id, session } => {
                self.remote_join(origin, room, uid, (name, user_id), order, time, sink);
                if let Some(session) = session.filter(|_| self.roster.seat(uid).is_some_and(|s| !s.home.is_here())) {
                    // Learned from a snapshot: this process did not log what the session was owed before.
                    self.sessions.open_elsewhere(session, uid, room, false);
                }
            }
            Remote::Room {
                event: RoomEvent::Say { room, from_uid, from_name, to_uid: None, content, time },
                at,
                ..
            } => {
                let mid = self.log_say(room, at, None, from_uid, from_name, content, time);
                let mid = mid.as_deref();
                let mut had = Vec::new();
                if let Some(at) = at {
                    self.sessions.already_had(room, at, &mut had);
                }
                let event = Event::Say { from_uid, from_name, to_uid: None, echo_to: None, content, time, mid };
                if let Some(members) = self.roster.room(room) {
                    sink.send(if had.is_empty() { To::Room(members) } else { To::RoomBut(members, &had) }, event);
                }
                if self.limits.history > 0 {
                    let room: Rc<str> = Rc::from(room);
                    self.history.keep(&room, Said::new(from_uid, from_name, time, content));
                }
            }
            Remote::Room {
                event: RoomEvent::Say { room, from_uid, from_name, to_uid: Some(uid), content, time },
                at,
                ..
            } => {
                let home = self.roster.seat(uid).filter(|s| &*s.room == room).map(|s| s.home);
                let mid = self.log_say(room, at, Some(uid), from_uid, from_name, content, time);
                let mid = mid.as_deref();
                let mut had = Vec::new();
                if let Some(at) = at {
                    self.sessions.already_had(room, at, &mut had);
                }
                match home {
                    Some(Home::Here(conn)) if !had.contains(&conn) => {
                        let event =
                            Event::Say { from_uid, from_name, to_uid: Some(uid), echo_to: None, content, time, mid };
                        sink.send(To::Conns(&[conn]), event);
                    }
                    _ => {}
                }
            }
            Remote::Room { event: RoomEvent::Logout { uid, time, .. }, .. } => self.remote_leave(uid, time, sink),
            Remote::Room { event: RoomEvent::Session { room, uid, session }, .. } => {
                if self.roster.seat(uid).is_some_and(|s| !s.home.is_here() && &*s.room == room) {
                    self.sessions.open_elsewhere(session, uid, room, true);
                }
            }
            Remote::Room { origin, event: RoomEvent::Handover { room, uid }, .. } => {
                if self.roster.seat(uid).is_none_or(|s| &*s.room != room) {
                    return;
                }
                // The user resumed on `origin`: a connection here that still held it is closed, nobody is told.
                if let Some(old) = self.sessions.moved_elsewhere(uid) {
                    sink.left(old);
                    sink.close(old, super::RESUMED_ELSEWHERE);
                }
                self.roster.rehome(uid, Home::Node(origin));
            }
            Remote::Snapshot { origin, present } => {
                for uid in self.roster.uids_of_node(origin) {
                    if present.binary_search(&uid).is_err() {
                        self.remote_leave(uid, time, sink);
                    }
                }
            }
            Remote::Gone(node) => {
                for uid in self.roster.uids_of_node(node) {
                    // A user with a session may resume on any process within the grace.
                    let orphaned = self.now.is_some_and(|now| self.sessions.orphan(uid, now));
                    if !orphaned {
                        self.remote_leave(uid, time, sink);
                    }
                }
            }
            Remote::Directed { act: Directed::Send { to, exclude, data }, .. } => {
                let conns = self.connections_of(to, &exclude);
                sink.verbatim(&conns, &text_frame(data.as_bytes()));
            }
            Remote::Directed { act: Directed::Close { uid, reason }, .. } => {
                // Only this process's user (one that moved on meanwhile is left to where it went).
                if self.roster.seat(uid).is_some_and(|s| !s.home.is_here()) {
                    return;
                }
                if let Some(Some(conn)) = self.remove_user(uid, time, sink) {
                    sink.close(conn, CloseRequest { code: super::CLOSED_BY_SERVER, reason: reason.to_owned().into() });
                }
            }
            Remote::History { room, said } => {
                let room: Rc<str> = Rc::from(room);
                self.history.replace(&room, said);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn remote_join(
        &mut self,
        origin: u64,
        room: &str,
        uid: u64,
        (name, user_id): (&str, Option<&str>),
        order: u64,
        time: &str,
        sink: &mut impl Sink,
    ) {
        let moved = match self.roster.seat(uid) {
            Some(seat) if seat.home.is_here() => {
                // Only a uid counter that was lost can hand one uid out twice; this process's user keeps it.
                warn!("cluster: node {origin:016x} announced uid {uid}, which is a user of this node; ignored");
                return;
            }
            Some(seat) => &*seat.room != room,
            None => false,
        };
        if moved {
            self.remote_leave(uid, time, sink);
        }
        if self.roster.join_as(room, uid, name, user_id, order, Home::Node(origin)) {
            if let Some(members) = self.roster.room(room) {
                sink.send(To::Room(members), Event::Login { uid, name, user_id, time });
            }
        }
    }

    pub(super) fn remote_leave(&mut self, uid: u64, time: &str, sink: &mut impl Sink) {
        if self.roster.seat(uid).is_none_or(|s| s.home.is_here()) {
            return; // Nobody, or this process's own user: only this process says when it leaves.
        }
        self.sessions.end(uid);
        let Some(seat) = self.roster.leave(uid) else { return };
        if let Some(members) = self.roster.room(&seat.room) {
            sink.send(To::Room(members), Event::Logout { uid, name: &seat.name, time });
        }
    }
}
