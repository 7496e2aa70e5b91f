//! The chat as an [`Application`]: a client's text parsed in its connection's dialect, the command decided by
//! the [`Hub`], the hub's events encoded and batched by the [`Fanout`], and the local time stamp of chat
//! messages, formatted once per second.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::dialect::{text_frame, workerman, Dialect};
use super::event::ErrorCode;
use super::fanout::Fanout;
use super::hub::{Hub, HubLimits};
use super::presence::{LocalPresence, Shared};
use crate::app::{Application, ConnId, Effects, LinkHost};
use crate::metrics::Metrics;
use crate::outbox::Frame;
use crate::session::CloseRequest;
use crate::ws::frame::close_code;

/// The local time stamp of chat messages ("YYYY-MM-DD HH:MM:SS"), formatted once per second.
#[derive(Debug, Default)]
struct TimeText {
    second: u64,
    text: String,
}

impl TimeText {
    fn refresh(&mut self) -> &str {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if now != self.second || self.text.is_empty() {
            self.second = now;
            self.text = chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string();
        }
        &self.text
    }
}

/// Default `--app-ping-secs`.
pub const DEFAULT_APP_PING: Duration = Duration::from_secs(25);

/// workerman-chat's current dialect pings its idle clients in JSON: when each was last heard from.
#[derive(Debug)]
struct AppPing {
    every: Duration,
    heard: HashMap<ConnId, Instant>,
    next_sweep: Option<Instant>,
    frame: Frame,
}

/// The workerman-chat application; `P` keeps who is where (this process alone, or a cluster).
#[derive(Debug)]
pub struct ChatApp<P: Shared = LocalPresence> {
    hub: Hub<P>,
    fanout: Fanout,
    time: TimeText,
    ping: AppPing,
    now: Option<Instant>,
}

impl ChatApp {
    /// A chat with no users, enforcing `limits`.
    pub fn new(limits: HubLimits) -> ChatApp {
        ChatApp::with_presence(limits, LocalPresence::new())
    }
}

impl<P: Shared> ChatApp<P> {
    /// A chat with no users, enforcing `limits`, with presence kept by `presence`.
    pub fn with_presence(limits: HubLimits, presence: P) -> ChatApp<P> {
        ChatApp {
            hub: Hub::with_presence(limits, presence),
            fanout: Fanout::new(),
            time: TimeText::default(),
            ping: AppPing {
                every: DEFAULT_APP_PING,
                heard: HashMap::new(),
                next_sweep: None,
                frame: text_frame(workerman::PING),
            },
            now: None,
        }
    }

    /// Connections speak `dialect` until their login says otherwise (`--escape-html`: the escaped seed one).
    pub fn with_default_dialect(mut self, dialect: Dialect) -> ChatApp<P> {
        self.fanout = Fanout::with_default(dialect);
        self
    }

    /// Idle clients of workerman-chat's current dialect get `{"type":"ping"}` after `every` (`--app-ping-secs`).
    pub fn with_app_ping(mut self, every: Duration) -> ChatApp<P> {
        self.ping.every = every;
        self
    }

    /// Pings the clients of workerman-chat's current dialect that were silent for the interval (looked at
    /// once a second).
    fn ping_idle(&mut self, out: &mut Effects) {
        let Some(now) = self.now else { return };
        if self.ping.heard.is_empty() || self.ping.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        self.ping.next_sweep = Some(now + Duration::from_secs(1));
        for (&conn, last) in &mut self.ping.heard {
            if now.saturating_duration_since(*last) >= self.ping.every {
                out.push(conn, self.ping.frame.clone(), 1);
                *last = now;
            }
        }
    }
}

impl<P: Shared> Application for ChatApp<P> {
    fn set_now(&mut self, now: Instant) {
        self.now = Some(now);
        self.hub.set_now(now);
        self.hub.presence_mut().set_now(now);
    }

    fn on_text(&mut self, conn: ConnId, text: &str, out: &mut Effects) {
        let time = self.time.refresh();
        let mut dialect = self.fanout.dialect_of(conn);
        if self.hub.uid_of(conn).is_none() {
            // Which protocol a client speaks shows in its login.
            if let Some(d) = Dialect::detect(text).filter(|&d| d != dialect) {
                self.fanout.set_dialect(conn, d);
                dialect = d;
            }
        }
        if dialect == Dialect::Workerman {
            if let Some(now) = self.now {
                self.ping.heard.insert(conn, now);
            }
        }
        let sink = &mut self.fanout.sink(out);
        match dialect.parse(text) {
            Ok(m) => self.hub.handle(conn, m, time, sink),
            Err(code) => self.hub.error(conn, code, sink),
        }
    }

    fn on_binary(&mut self, _conn: ConnId, _data: &[u8], _out: &mut Effects) -> Result<(), CloseRequest> {
        Err(CloseRequest {
            code: close_code::UNSUPPORTED_DATA,
            reason: "binary messages are not part of the chat protocol",
        })
    }

    fn on_refused(&mut self, conn: ConnId, out: &mut Effects) {
        self.hub.error(conn, ErrorCode::RateLimited, &mut self.fanout.sink(out));
    }

    fn flush_for(&mut self, conn: ConnId, out: &mut Effects) {
        self.fanout.serve(conn, out);
    }

    fn on_leave(&mut self, conn: ConnId, announce: bool, out: &mut Effects) {
        let time = self.time.refresh();
        if announce {
            self.hub.leave(conn, time, &mut self.fanout.sink(out));
        } else {
            // Nobody here is told; a cluster still tells the other nodes (with the time stamp).
            self.hub.leave(conn, time, &mut self.fanout.sink(&mut Effects::default()));
        }
    }

    fn is_member(&self, conn: ConnId) -> bool {
        self.hub.uid_of(conn).is_some()
    }

    fn on_gone(&mut self, conn: ConnId) {
        self.hub.disconnect(conn);
        self.fanout.forget(conn);
        self.ping.heard.remove(&conn);
    }

    fn end_turn(&mut self, out: &mut Effects) {
        self.ping_idle(out);
        self.fanout.seal(out);
        self.hub.presence_mut().end_turn();
    }

    fn fill_metrics(&self, m: &mut Metrics) {
        m.users = self.hub.user_count() as u64;
        let hub = self.hub.stats();
        m.history_bytes = hub.history_bytes;
        m.history_evicted_total = hub.history_evicted_total;
        m.room_full_total = hub.room_full_total;
        m.rate_limited_total += hub.rate_limited_total;
        self.hub.presence().fill_metrics(m);
    }

    fn links(&mut self) -> Option<&mut dyn LinkHost> {
        self.hub.presence_mut().links()
    }

    fn after_links(&mut self, out: &mut Effects) {
        let time = self.time.refresh();
        P::pump(&mut self.hub, time, &mut self.fanout.sink(out));
    }

    fn health(&self) -> Result<(), String> {
        self.hub.presence().health()
    }

    fn shutdown(&mut self) {
        self.hub.presence_mut().shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_has_the_contract_format() {
        let mut t = TimeText::default();
        let b = t.refresh().as_bytes().to_vec();
        assert_eq!(b.len(), 19);
        assert_eq!((b[4], b[7], b[10], b[13], b[16]), (b'-', b'-', b' ', b':', b':'));
    }

    #[test]
    fn a_login_then_a_binary_message() {
        let mut app = ChatApp::new(HubLimits::unlimited(0));
        let mut out = Effects::default();
        app.on_text(1, r#"{"type":"login","name":"a"}"#, &mut out);
        app.end_turn(&mut out);
        assert_eq!(out.sends.len(), 2);
        assert!(app.is_member(1));
        let refused = app.on_binary(1, b"x", &mut out).unwrap_err();
        assert_eq!(refused.code, close_code::UNSUPPORTED_DATA);
        let mut m = Metrics::default();
        app.fill_metrics(&mut m);
        assert_eq!(m.users, 1);
    }
}
