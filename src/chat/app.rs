//! The chat as an [`Application`]: a client's text parsed in its connection's dialect, the command decided by
//! the [`Hub`], the hub's events encoded and batched by the [`Fanout`], and the local time stamp of chat
//! messages, formatted once per second.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use super::dialect::{escape, text_frame, workerman, Dialect};
use super::event::{ClientMessage, ErrorCode};
use super::fanout::Fanout;
use super::hub::{Hub, HubLimits, Login, Reach};
use super::identity::{Identity, TokenRefusal, Verifier, MAX_FAILURES};
use super::presence::{LocalPresence, Presence};
use crate::api::ApiAnswer;
use crate::app::{Application, CloseRequest, ConnId, Departure, Effects, LinkHost};
use crate::metrics::Metrics;
use crate::shared_bytes::SharedBytes;
use crate::ws::frame::close_code;
use serde_json::json;

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

/// workerman-chat's client_id dialect pings its idle clients in JSON: when each was last heard from.
#[derive(Debug)]
struct AppPing {
    every: Duration,
    heard: HashMap<ConnId, Instant>,
    next_sweep: Option<Instant>,
    frame: SharedBytes,
}

/// What the chat enforces: the hub's limits, the history a welcome may queue and the size of a say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLimits {
    /// The hub's.
    pub hub: HubLimits,
    /// Bytes of history frames one newcomer's welcome may queue (`--history-welcome-bytes`).
    pub history_welcome_bytes: usize,
    /// The largest message (`--max-message-bytes`): a say's content, as its sender's dialect sends it
    /// (HTML-escaped in an escaping dialect), may not be larger.
    pub max_message_bytes: usize,
}

impl From<HubLimits> for ChatLimits {
    fn from(hub: HubLimits) -> ChatLimits {
        ChatLimits {
            hub,
            history_welcome_bytes: crate::config::DEFAULT_HISTORY_WELCOME_BYTES,
            max_message_bytes: crate::config::CHAT_MAX_MESSAGE,
        }
    }
}

impl From<&crate::config::Config> for ChatLimits {
    fn from(cfg: &crate::config::Config) -> ChatLimits {
        ChatLimits {
            hub: cfg.into(),
            history_welcome_bytes: cfg.history_welcome_bytes,
            max_message_bytes: cfg.max_message_bytes,
        }
    }
}

/// `msg` unless it is a say whose content, as `dialect` sends it (escaped or not), is over `limit` bytes: the
/// limit a message has coming in holds for the copies going out.
fn within_limit(dialect: Dialect, msg: ClientMessage<'_>, limit: usize) -> Result<ClientMessage<'_>, ErrorCode> {
    match &msg {
        ClientMessage::Say { content, .. } if dialect.escapes() && escape::content_len(content) > limit => {
            Err(ErrorCode::MessageTooBig)
        }
        _ => Ok(msg),
    }
}

/// Logins' tokens (`--auth-key`), and each connection's failed logins in a row.
#[derive(Debug)]
struct Auth {
    verifier: Verifier,
    failures: HashMap<ConnId, u8>,
}

impl Auth {
    /// The account a login to `room` with `token` proves; `None` for an anonymous login where those are
    /// admitted (`--auth-optional`: no token at all; a token that is there must be good).
    fn admit(&self, token: Option<&str>, room: &str) -> Result<Option<Identity>, ErrorCode> {
        let Some(token) = token else {
            return match self.verifier.optional {
                true => Ok(None),
                false => Err(ErrorCode::Unauthorized(TokenRefusal::Missing)),
            };
        };
        let identity = self.verifier.verify(token).map_err(ErrorCode::Unauthorized)?;
        if !identity.allows(room) {
            return Err(ErrorCode::Forbidden);
        }
        Ok(Some(identity))
    }

    /// Counts a refused login of `conn`; true when it was one too many.
    fn failed(&mut self, conn: ConnId) -> bool {
        let n = self.failures.entry(conn).or_insert(0);
        *n = n.saturating_add(1);
        *n >= MAX_FAILURES
    }
}

/// The close of a connection that failed to log in [`MAX_FAILURES`] times in a row.
const TOO_MANY_FAILURES: CloseRequest =
    CloseRequest { code: close_code::POLICY_VIOLATION, reason: std::borrow::Cow::Borrowed("too many failed logins") };

/// The workerman-chat application; `P` keeps who is where (this process alone, or a cluster).
#[derive(Debug)]
pub struct ChatApp<P: Presence = LocalPresence> {
    hub: Hub<P>,
    fanout: Fanout,
    limits: ChatLimits,
    time: TimeText,
    ping: AppPing,
    now: Option<Instant>,
    auth: Option<Auth>,
}

impl ChatApp {
    /// A chat with no users, enforcing `limits`.
    pub fn new(limits: ChatLimits) -> ChatApp {
        ChatApp::with_presence(limits, LocalPresence::new())
    }
}

impl<P: Presence> ChatApp<P> {
    /// A chat with no users, enforcing `limits`, with presence kept by `presence`.
    pub fn with_presence(limits: ChatLimits, presence: P) -> ChatApp<P> {
        ChatApp {
            hub: Hub::with_presence(limits.hub, presence),
            fanout: ChatApp::<P>::fanout(limits, Dialect::default()),
            limits,
            time: TimeText::default(),
            ping: AppPing {
                every: DEFAULT_APP_PING,
                heard: HashMap::new(),
                next_sweep: None,
                frame: text_frame(workerman::PING),
            },
            now: None,
            auth: None,
        }
    }

    /// `POST /api/close`: the users named leave (one logout to their rooms, their sessions ended, so they
    /// cannot be resumed) and their connections are closed with 4000 and the reason, on whichever process
    /// holds them.
    fn api_close(&mut self, body: &[u8], out: &mut Effects) -> ApiAnswer {
        let (uids, reason) = match super::api::close_targets(&self.hub, body) {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let time = self.time.refresh();
        let reach = self.hub.close_users(&uids, &reason, time, &mut self.fanout.sink(out));
        self.answer_reach(json!({"ok": true, "closed": reach.users}), reach)
    }

    /// `POST /api/send`: text verbatim to the connections of its target, wherever they are.
    fn api_send(&mut self, body: &[u8], out: &mut Effects) -> ApiAnswer {
        let send = match super::api::send_body(body, self.limits.max_message_bytes) {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        let sink = &mut self.fanout.sink(out);
        let reach = self.hub.send_verbatim(send.audience(), &send.exclude_uids, &send.data, sink);
        self.answer_reach(json!({"ok": true, "queued": reach.here}), reach)
    }

    /// `POST /api/say`: a say from the server to a room or one user of it.
    fn api_say(&mut self, body: &[u8], out: &mut Effects) -> ApiAnswer {
        let say = match super::api::say_body(body, self.limits.max_message_bytes) {
            Ok(s) => s,
            Err(answer) => return answer,
        };
        let time = self.time.refresh();
        match self.hub.server_say(&say.room, say.to, &say.content, time, &mut self.fanout.sink(out)) {
            Ok(users) => ApiAnswer::ok(json!({"ok": true, "room": say.room, "users": users})),
            Err(why) => super::api::say_refused(why),
        }
    }

    /// `answer`, with `"nodes"` (the other processes the act was sent to) when the chat is shared.
    fn answer_reach(&self, mut answer: serde_json::Value, reach: Reach) -> ApiAnswer {
        if self.hub.is_shared() {
            answer["nodes"] = reach.nodes.into();
        }
        ApiAnswer::ok(answer)
    }

    /// The chat core, for reading.
    pub fn hub(&self) -> &Hub<P> {
        &self.hub
    }

    /// Logins must prove who they are with a token `verifier` accepts (`--auth-key`); `None`: no tokens.
    pub fn with_auth(mut self, verifier: Option<Verifier>) -> ChatApp<P> {
        self.auth = verifier.map(|verifier| Auth { verifier, failures: HashMap::new() });
        self
    }

    /// Connections speak `dialect` until their login says otherwise (`--escape-html`: the escaped seed one).
    pub fn with_default_dialect(mut self, dialect: Dialect) -> ChatApp<P> {
        self.fanout = ChatApp::<P>::fanout(self.limits, dialect);
        self
    }

    /// A fanout for `limits` whose connections speak `dialect` until told otherwise. The encoded histories
    /// it keeps for newcomers are held to the history's own budget.
    fn fanout(limits: ChatLimits, dialect: Dialect) -> Fanout {
        let cap = limits.hub.history_budget.max(limits.history_welcome_bytes);
        Fanout::with_default(dialect).with_welcome_history(limits.history_welcome_bytes, cap)
    }

    /// Idle clients of workerman-chat's client_id dialect get `{"type":"ping"}` after `every` (`--app-ping-secs`).
    pub fn with_app_ping(mut self, every: Duration) -> ChatApp<P> {
        self.ping.every = every;
        self
    }

    /// Pings the clients of workerman-chat's client_id dialect that were silent for the interval (looked at
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

impl<P: Presence> Application for ChatApp<P> {
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
        let limit = self.limits.max_message_bytes;
        let parsed = dialect.parse(text).and_then(|m| within_limit(dialect, m, limit));
        // A client holding a session gets mids on its says: a login or a resume decides, before the hub seats it.
        let mids = match parsed {
            Ok(ClientMessage::Login { resume, .. }) => Some(resume && self.hub.sessions().enabled()),
            Ok(ClientMessage::Resume { .. }) => Some(true),
            _ => None,
        };
        if let Some(mids) = mids.filter(|_| self.hub.uid_of(conn).is_none() && dialect.resumes()) {
            self.fanout.set_dialect(conn, dialect.with_mids(mids));
        }
        let sink = &mut self.fanout.sink(out);
        match (parsed, self.auth.as_mut()) {
            (Ok(ClientMessage::Login { name, room, resume, token }), Some(auth)) if self.hub.uid_of(conn).is_none() => {
                match auth.admit(token.as_deref(), &room) {
                    Ok(identity) => {
                        auth.failures.remove(&conn);
                        let name = identity.as_ref().and_then(|i| i.name.as_deref()).unwrap_or(&name);
                        let user_id = identity.as_ref().map(|i| i.user_id.as_str());
                        self.hub.login_as(conn, Login { name, room, resume, user_id }, time, sink);
                    }
                    Err(code) => {
                        self.hub.error(conn, code, sink);
                        if auth.failed(conn) {
                            out.closes.push((conn, TOO_MANY_FAILURES));
                        }
                    }
                }
            }
            (Ok(m), _) => self.hub.handle(conn, m, time, sink),
            (Err(code), _) => self.hub.error(conn, code, sink),
        }
    }

    fn on_binary(&mut self, _conn: ConnId, _data: &[u8], _out: &mut Effects) -> Result<(), CloseRequest> {
        Err(CloseRequest {
            code: close_code::UNSUPPORTED_DATA,
            reason: "binary messages are not part of the chat protocol".into(),
        })
    }

    fn on_refused(&mut self, conn: ConnId, out: &mut Effects) {
        self.hub.error(conn, ErrorCode::RateLimited, &mut self.fanout.sink(out));
    }

    fn flush_for(&mut self, conn: ConnId, out: &mut Effects) {
        self.fanout.serve(conn, out);
    }

    fn on_leave(&mut self, conn: ConnId, departure: Departure, out: &mut Effects) {
        let time = self.time.refresh();
        if departure == Departure::Shutdown {
            // Nobody here is told; a cluster still tells the other nodes (with the time stamp).
            self.hub.leave(conn, departure, time, &mut self.fanout.sink(&mut Effects::default()));
        } else {
            self.hub.leave(conn, departure, time, &mut self.fanout.sink(out));
        }
    }

    fn api(&mut self, req: &crate::api::request::Request, out: &mut Effects) -> crate::api::ApiAnswer {
        use crate::api::request::Method;
        match (req.method, req.path.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
            (Method::Post, ["api", "send"]) => self.api_send(&req.body, out),
            (Method::Post, ["api", "say"]) => self.api_say(&req.body, out),
            (Method::Post, ["api", "close"]) => self.api_close(&req.body, out),
            _ => super::api::answer(&self.hub, req),
        }
    }

    fn is_member(&self, conn: ConnId) -> bool {
        self.hub.uid_of(conn).is_some()
    }

    fn on_gone(&mut self, conn: ConnId) {
        self.hub.disconnect(conn);
        self.fanout.forget(conn);
        self.ping.heard.remove(&conn);
        if let Some(auth) = self.auth.as_mut() {
            auth.failures.remove(&conn);
        }
    }

    fn end_turn(&mut self, out: &mut Effects) {
        self.ping_idle(out);
        if self.hub.wakeup().is_some() {
            let time = self.time.refresh();
            self.hub.expire_sessions(time, &mut self.fanout.sink(out));
        }
        self.fanout.seal(self.hub.roster(), out);
        self.hub.end_turn();
    }

    fn wakeup(&self) -> Option<Instant> {
        self.hub.wakeup()
    }

    fn held_output(&self) -> usize {
        self.hub.sessions().log_bytes()
    }

    fn shed_output(&mut self, bytes: usize) -> usize {
        self.hub.shed_logs(bytes)
    }

    fn fill_metrics(&self, m: &mut Metrics) {
        m.users = self.hub.user_count() as u64;
        self.hub.sessions().stats().write(&mut m.app);
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
        self.hub.apply_inbound(time, &mut self.fanout.sink(out));
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

    /// The `type` and `code` of every frame `out` holds for `conn`.
    fn kinds(out: &Effects, conn: ConnId) -> Vec<String> {
        crate::chat::testing::frames(out)
            .into_iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, v)| {
                format!(
                    "{}{}",
                    v["type"].as_str().unwrap(),
                    v["code"].as_str().map_or(String::new(), |c| format!(":{c}"))
                )
            })
            .collect()
    }

    /// Says `content` to all on `conn` in `dialect`'s words and seals the turn.
    fn say(app: &mut ChatApp, conn: ConnId, wm: bool, content: &str) -> Vec<String> {
        let mut out = Effects::default();
        let text = match wm {
            true => serde_json::json!({"type":"say","to_client_id":"all","content":content}),
            false => serde_json::json!({"type":"say","to_uid":"all","content":content}),
        };
        app.on_text(conn, &text.to_string(), &mut out);
        app.end_turn(&mut out);
        kinds(&out, conn)
    }

    #[test]
    fn a_say_is_held_to_the_message_limit_as_its_dialect_sends_it() {
        let limits = ChatLimits { max_message_bytes: 60_000, ..HubLimits::unlimited(10).into() };
        let mut app = ChatApp::new(limits);
        let mut out = Effects::default();
        app.on_text(1, r#"{"type":"login","client_name":"wm","room_id":1}"#, &mut out);
        app.on_text(2, r#"{"type":"login","name":"seed"}"#, &mut out);
        app.end_turn(&mut out);
        // 10 000 apostrophes are 60 000 bytes escaped: at the limit. One more is over it.
        assert_eq!(say(&mut app, 1, true, &"'".repeat(10_000)), ["say"]);
        assert_eq!(say(&mut app, 1, true, &"'".repeat(10_001)), ["error:message_too_big"]);
        assert_eq!(say(&mut app, 1, true, &"a".repeat(59_000)), ["say"], "plain text is its own size");
        // The plain seed dialect sends content as it came: its size is the frame's, judged by the decoder.
        assert_eq!(say(&mut app, 2, false, &"'".repeat(50_000)), ["say"]);
        let mut escaped = ChatApp::new(limits).with_default_dialect(Dialect::SeedHtml);
        escaped.on_text(1, r#"{"type":"login","name":"html"}"#, &mut out);
        escaped.end_turn(&mut out);
        assert_eq!(say(&mut escaped, 1, false, &"<\n".repeat(6_000)), ["error:message_too_big"]);
        assert_eq!(say(&mut escaped, 1, false, &"<".repeat(15_000)), ["say"]);
        let e = ErrorCode::MessageTooBig;
        assert_eq!((e.as_str(), e.to_string()), ("message_too_big", "message_too_big".to_string()));
    }

    #[test]
    fn a_login_then_a_binary_message() {
        let mut app = ChatApp::new(HubLimits::unlimited(0).into());
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

#[cfg(test)]
mod resume_tests {
    use super::*;
    use crate::chat::resume::ResumeLimits;
    use serde_json::{json, Value};

    const T0: u64 = 0;

    /// What each connection got, and the closes asked.
    type Turn = (Vec<(ConnId, Value)>, Vec<(ConnId, u16)>);

    struct Run {
        app: ChatApp,
        t0: Instant,
    }

    impl Run {
        fn new() -> Run {
            let mut app = ChatApp::new(HubLimits::unlimited(10).into());
            let t0 = Instant::now();
            app.set_now(t0);
            Run { app, t0 }
        }

        fn at(&mut self, secs: u64) {
            self.app.set_now(self.t0 + Duration::from_secs(secs));
        }

        /// `text` from `conn`, the turn sealed: what each connection got, and the closes asked.
        fn send(&mut self, conn: ConnId, text: &str) -> Turn {
            let mut out = Effects::default();
            self.app.on_text(conn, text, &mut out);
            self.app.end_turn(&mut out);
            let closes = out.closes.iter().map(|(c, r)| (*c, r.code)).collect();
            (crate::chat::testing::frames(&out), closes)
        }

        fn leave(&mut self, conn: ConnId, departure: Departure) -> Vec<(ConnId, Value)> {
            let mut out = Effects::default();
            self.app.on_leave(conn, departure, &mut out);
            self.app.on_gone(conn);
            self.app.end_turn(&mut out);
            crate::chat::testing::frames(&out)
        }

        fn tick(&mut self) -> Vec<(ConnId, Value)> {
            let mut out = Effects::default();
            self.app.end_turn(&mut out);
            crate::chat::testing::frames(&out)
        }
    }

    fn strip_time(mut v: Value) -> Value {
        if let Some(o) = v.as_object_mut() {
            o.remove("time");
        }
        v
    }

    #[test]
    fn a_lost_connection_resumes_with_what_it_missed_and_nobody_sees_it_go() {
        let mut r = Run::new();
        let (got, _) = r.send(1, r#"{"type":"login","name":"a","resume":true}"#);
        let session = got[0].1["session"].as_str().unwrap().to_string();
        assert_eq!(got[0].1["user_list"], json!([{"uid":1,"name":"a"}]));
        assert_eq!(session.len(), 32);
        let (got, _) = r.send(2, r#"{"type":"login","name":"b"}"#);
        assert!(got.iter().all(|(_, v)| v.get("session").is_none()), "only who asks gets a session");
        let (got, _) = r.send(2, r#"{"type":"say","to_uid":"all","content":"one"}"#);
        let mine: Vec<&Value> = got.iter().filter(|(c, _)| *c == 1).map(|(_, v)| v).collect();
        assert_eq!(mine[0]["mid"].as_str().map(str::len).map(|n| n > 0), Some(true));
        let theirs: Vec<&Value> = got.iter().filter(|(c, _)| *c == 2).map(|(_, v)| v).collect();
        assert!(theirs[0].get("mid").is_none(), "a client without a session gets today's bytes");
        let last_mid = mine[0]["mid"].as_str().unwrap().to_string();
        // The connection drops: nobody is told.
        assert_eq!(r.leave(1, Departure::Lost), []);
        r.send(2, r#"{"type":"say","to_uid":"all","content":"two"}"#);
        r.send(2, r#"{"type":"say","to_uid":1,"content":"psst"}"#);
        assert_eq!(r.app.hub.sessions().stats().detached, 1);
        let resume = json!({"type":"resume","session":session,"last_mid":last_mid}).to_string();
        let (got, closes) = r.send(3, &resume);
        assert!(closes.is_empty());
        let got: Vec<Value> = got.into_iter().map(|(c, v)| (assert_eq!(c, 3), strip_time(v)).1).collect();
        assert_eq!(
            got[0],
            json!({"type":"user_list","user_list":[{"uid":1,"name":"a"},{"uid":2,"name":"b"}],"session":session})
        );
        assert_eq!(got[1]["content"], "two");
        assert_eq!((got[2]["content"].as_str(), got[2]["to_uid"].as_u64()), (Some("psst"), Some(1)));
        assert_eq!(got[3], json!({"type":"resumed","uid":1,"recovered":true,"missed":2}));
        assert_eq!(got.len(), 4);
        // Back in the room: it hears the next say, with its mid.
        let (got, _) = r.send(2, r#"{"type":"say","to_uid":"all","content":"three"}"#);
        assert!(got.iter().any(|(c, v)| *c == 3 && v["content"] == "three" && v["mid"].is_string()));
        assert_eq!((r.app.hub.sessions().stats().detached, r.app.hub.sessions().stats().recovered), (0, 1));
    }

    #[test]
    fn a_resume_while_the_old_connection_is_open_closes_it_with_4001() {
        let mut r = Run::new();
        let (got, _) = r.send(1, r#"{"type":"login","name":"a","resume":true}"#);
        let session = got[0].1["session"].as_str().unwrap().to_string();
        let (got, closes) = r.send(2, &json!({"type":"resume","session":session,"last_mid":null}).to_string());
        assert_eq!(closes, [(1, 4001)]);
        assert!(got.iter().all(|(c, _)| *c == 2));
        assert_eq!(got.last().map(|(_, v)| v["type"].clone()), Some(json!("resumed")));
        // The old connection's end changes nothing.
        assert_eq!(r.leave(1, Departure::Goodbye), []);
        assert_eq!(r.app.hub.uid_of(2), Some(1));
        // A second resume of the same session works as well.
        let (_, closes) = r.send(3, &json!({"type":"resume","session":session}).to_string());
        assert_eq!(closes, [(2, 4001)]);
    }

    #[test]
    fn the_grace_running_out_is_one_logout_and_the_session_is_gone() {
        let mut r = Run::new();
        let (got, _) = r.send(1, r#"{"type":"login","name":"a","resume":true}"#);
        let session = got[0].1["session"].as_str().unwrap().to_string();
        r.send(2, r#"{"type":"login","name":"b"}"#);
        r.at(T0 + 10);
        assert_eq!(r.leave(1, Departure::Lost), []);
        assert_eq!(r.app.wakeup(), Some(r.t0 + Duration::from_secs(40)));
        r.at(39);
        assert_eq!(r.tick(), []);
        r.at(41);
        let got = r.tick();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0, got[0].1["type"].as_str(), got[0].1["uid"].as_u64()), (2, Some("logout"), Some(1)));
        assert_eq!(r.tick(), [], "exactly one");
        let (got, _) = r.send(3, &json!({"type":"resume","session":session,"last_mid":null}).to_string());
        assert_eq!(got[0].1["code"], "session_expired");
        assert_eq!(r.app.hub.sessions().stats().expired, 1);
    }

    #[test]
    fn a_goodbye_or_a_logout_ends_the_session_at_once_and_other_ends_do_not() {
        let mut r = Run::new();
        r.send(9, r#"{"type":"login","name":"w"}"#);
        for (conn, how) in [(1, "close 1000"), (2, "logout")] {
            let (got, _) = r.send(conn, r#"{"type":"login","name":"a","resume":true}"#);
            let session = got[0].1["session"].as_str().unwrap().to_string();
            let seen = match how {
                "logout" => r.send(conn, r#"{"type":"logout"}"#).0,
                _ => r.leave(conn, Departure::Goodbye),
            };
            assert!(seen.iter().any(|(c, v)| *c == 9 && v["type"] == "logout"), "{how}: the room is told");
            let (got, _) = r.send(5, &json!({"type":"resume","session":session}).to_string());
            assert_eq!(got[0].1["code"], "session_expired", "{how}");
        }
        // A login without resume leaves as before, whatever the end.
        r.send(3, r#"{"type":"login","name":"c"}"#);
        assert!(r.leave(3, Departure::Lost).iter().any(|(_, v)| v["type"] == "logout"));
        // Resume on a logged-in connection, and malformed or unknown sessions.
        let (got, _) = r.send(9, r#"{"type":"resume","session":"x"}"#);
        assert_eq!(got[0].1["code"], "already_logged_in");
        let (got, _) = r.send(6, r#"{"type":"resume"}"#);
        assert_eq!(got[0].1["code"], "bad_json");
        let (got, _) = r.send(6, r#"{"type":"resume","session":"00000000000000000000000000000000"}"#);
        assert_eq!(got[0].1["code"], "session_expired");
        // The connection stays usable for a login, without mids.
        let (got, _) = r.send(6, r#"{"type":"login","name":"d"}"#);
        assert!(got[0].1.get("session").is_none());
        let (got, _) = r.send(6, r#"{"type":"say","content":"x"}"#);
        assert!(got.iter().all(|(_, v)| v.get("mid").is_none()));
    }

    #[test]
    fn resume_off_ignores_the_request() {
        let limits = HubLimits {
            resume: ResumeLimits { grace: Duration::ZERO, ..ResumeLimits::default() },
            ..HubLimits::unlimited(0)
        };
        let mut app = ChatApp::new(limits.into());
        app.set_now(Instant::now());
        let mut out = Effects::default();
        app.on_text(1, r#"{"type":"login","name":"a","resume":true}"#, &mut out);
        app.on_text(1, r#"{"type":"say","content":"x"}"#, &mut out);
        app.end_turn(&mut out);
        let got = crate::chat::testing::frames(&out);
        assert!(got.iter().all(|(_, v)| v.get("session").is_none() && v.get("mid").is_none()), "{got:?}");
        app.on_leave(1, Departure::Lost, &mut out);
        assert_eq!(app.hub.user_count(), 0);
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;
    use crate::chat::identity::AuthKey;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::{json, Value};

    const SECRET: &[u8] = b"backend secret";

    fn token(claims: Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn exp() -> u64 {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) + 600
    }

    fn app(optional: bool) -> ChatApp {
        let verifier = Verifier::new(AuthKey::from_bytes(SECRET).unwrap(), optional);
        ChatApp::new(HubLimits::unlimited(10).into()).with_auth(Some(verifier))
    }

    /// `text` from `conn`, the turn sealed: what each connection got, and the closes asked.
    type Turn = (Vec<(ConnId, Value)>, Vec<(ConnId, u16)>);

    fn send(app: &mut ChatApp, conn: ConnId, text: &str) -> Turn {
        let mut out = Effects::default();
        app.on_text(conn, text, &mut out);
        app.end_turn(&mut out);
        let closes = out.closes.iter().map(|(c, r)| (*c, r.code)).collect();
        (crate::chat::testing::frames(&out), closes)
    }

    fn login(tok: Option<&str>, name: &str, room: &str) -> String {
        let mut v = json!({"type":"login","name":name,"room_id":room});
        if let Some(t) = tok {
            v["token"] = json!(t);
        }
        v.to_string()
    }

    #[test]
    fn a_token_names_the_user_in_the_list_and_the_login() {
        let mut app = app(false);
        let t = token(json!({"sub":"acct-1","exp":exp(),"name":"Ann"}));
        let (got, closes) = send(&mut app, 1, &login(Some(&t), "ignored", "r"));
        assert!(closes.is_empty());
        assert_eq!(got[0].1["user_list"], json!([{"uid":1,"name":"Ann","user_id":"acct-1"}]));
        assert_eq!((got[1].1["type"].as_str(), got[1].1["user_id"].as_str()), (Some("login"), Some("acct-1")));
        assert_eq!(got[1].1["name"], "Ann", "the token's name wins");
        // The login's own name when the token has none; both listed with their accounts.
        let t = token(json!({"sub":"acct-2","exp":exp()}));
        let (got, _) = send(&mut app, 2, &login(Some(&t), "Bob", "r"));
        let list = got.iter().find(|(c, v)| *c == 2 && v["type"] == "user_list").unwrap();
        assert_eq!(
            list.1["user_list"],
            json!([{"uid":1,"name":"Ann","user_id":"acct-1"},{"uid":2,"name":"Bob","user_id":"acct-2"}])
        );
    }

    #[test]
    fn bad_logins_are_refused_and_the_fifth_in_a_row_closes_with_1008() {
        let mut app = app(false);
        let expired = token(json!({"sub":"a","exp":1}));
        let only_b = token(json!({"sub":"a","exp":exp(),"rooms":["b"]}));
        let answers = [
            (login(None, "a", "r"), "unauthorized", "this chat needs a \"token\" with each login"),
            (login(Some("x.y.z"), "a", "r"), "unauthorized", "the token is not a well-formed JWT"),
            (login(Some(&expired), "a", "r"), "unauthorized", "the token has expired"),
            (login(Some(&only_b), "a", "r"), "forbidden", "the token does not allow this room"),
        ];
        for (text, code, message) in &answers {
            let (got, closes) = send(&mut app, 1, text);
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!((got[0].1["code"].as_str(), got[0].1["message"].as_str()), (Some(*code), Some(*message)));
            assert!(closes.is_empty(), "the connection stays open");
        }
        let (got, closes) = send(&mut app, 1, &answers[0].0);
        assert_eq!(got[0].1["code"], "unauthorized");
        assert_eq!(closes, [(1, close_code::POLICY_VIOLATION)]);
    }

    #[test]
    fn a_good_login_starts_the_count_again_and_rooms_are_kept() {
        let mut app = app(false);
        for _ in 0..4 {
            send(&mut app, 1, &login(None, "a", "r"));
        }
        let t = token(json!({"sub":"a","exp":exp(),"rooms":["b"]}));
        let (got, closes) = send(&mut app, 1, &login(Some(&t), "a", "b"));
        assert!(closes.is_empty() && got[0].1["type"] == "user_list", "{got:?}");
        let (got, _) = send(&mut app, 1, r#"{"type":"logout"}"#);
        assert!(got.iter().all(|(_, v)| v["type"] != "error"), "{got:?}");
        for _ in 0..4 {
            let (_, closes) = send(&mut app, 1, &login(None, "a", "r"));
            assert!(closes.is_empty(), "four failures after a success are not five");
        }
    }

    #[test]
    fn anonymous_logins_where_allowed_and_a_bad_token_is_never_anonymous() {
        let mut app = app(true);
        let (got, _) = send(&mut app, 1, &login(None, "anon", "r"));
        assert_eq!(got[0].1["user_list"], json!([{"uid":1,"name":"anon"}]), "no user_id for an anonymous user");
        let (got, _) = send(&mut app, 2, &login(Some("bad"), "b", "r"));
        assert_eq!(got[0].1["code"], "unauthorized");
    }

    #[test]
    fn without_a_key_a_token_is_ignored_and_nothing_changes() {
        let mut app = ChatApp::new(HubLimits::unlimited(10).into());
        let (got, _) = send(&mut app, 1, &login(Some("anything"), "a", "r"));
        assert_eq!(got[0].1["user_list"], json!([{"uid":1,"name":"a"}]));
        assert!(got[1].1.get("user_id").is_none());
    }
}
