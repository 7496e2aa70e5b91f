//! The application seam: what the reactor calls when a WebSocket carries a message, when a connection goes
//! away and at the end of each loop turn; the application answers with deliveries (shared bytes addressed
//! to connections, in order). The reactor knows no more of an application than this trait. Two implement
//! it, the chat and the conformance echo; the composition root ([`crate::daemon`]) picks one. The seam
//! knows neither.

use std::net::SocketAddr;
use std::time::Instant;

use crate::metrics::Metrics;
use crate::shared_bytes::SharedBytes;

/// Identifies a connection to the application (the reactor's slab key).
pub type ConnId = usize;

/// The application's wish to close a connection after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// The close code.
    pub code: u16,
    /// The reason sent with it (at most 123 bytes go out).
    pub reason: std::borrow::Cow<'static, str>,
}

/// How a connection's messages ended: what decides whether its user leaves or may come back
/// ([`crate::chat::resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// The peer said goodbye: its close frame carried 1000 (or no code).
    Goodbye,
    /// Anything else: a FIN or reset without a close frame, another close code, a timeout, a cut.
    Lost,
    /// The daemon is stopping: everyone leaves and nobody is told.
    Shutdown,
}

/// Bytes for one connection: one frame or a batch of whole frames.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The connection.
    pub conn: ConnId,
    /// Whole frames, shared with the other recipients.
    pub bytes: SharedBytes,
    /// How many messages `bytes` holds.
    pub messages: u32,
    /// Part of a newcomer's welcome (its user list and history): not held against the send-buffer limit,
    /// so a big room or a long history is never the reason a newcomer is cut off.
    pub welcome: bool,
}

/// Output of an application: bytes with the connection they go to, in order.
#[derive(Debug, Default)]
pub struct Effects {
    /// Deliveries to queue, in delivery order per connection.
    pub sends: Vec<Delivery>,
    /// Connections to close once their deliveries are queued.
    pub closes: Vec<(ConnId, CloseRequest)>,
}

impl Effects {
    /// Empties the lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.sends.clear();
        self.closes.clear();
    }

    /// Queues `messages` whole frames for one connection.
    pub fn push(&mut self, conn: ConnId, bytes: SharedBytes, messages: u32) {
        self.sends.push(Delivery { conn, bytes, messages, welcome: false });
    }

    /// Queues `messages` whole frames of a newcomer's welcome for one connection.
    pub fn push_welcome(&mut self, conn: ConnId, bytes: SharedBytes, messages: u32) {
        self.sends.push(Delivery { conn, bytes, messages, welcome: true });
    }
}

/// An application served over WebSocket connections.
pub trait Application {
    /// The loop turn's time, given once per turn before any event (applications read no clock).
    fn set_now(&mut self, now: Instant);

    /// A text message from `conn`.
    fn on_text(&mut self, conn: ConnId, text: &str, out: &mut Effects);

    /// A binary message from `conn`; an error closes the connection with its code.
    fn on_binary(&mut self, conn: ConnId, data: &[u8], out: &mut Effects) -> Result<(), CloseRequest>;

    /// A message from `conn` was refused by the rate limit.
    fn on_refused(&mut self, conn: ConnId, out: &mut Effects);

    /// The reactor is about to queue bytes of its own for `conn` (a close frame): hand over first whatever
    /// the application still holds for it, so the order is kept.
    fn flush_for(&mut self, conn: ConnId, out: &mut Effects);

    /// `conn`'s messages are over (close, end of stream, error), as `departure` says.
    fn on_leave(&mut self, conn: ConnId, departure: Departure, out: &mut Effects);

    /// Whether `conn` holds state that [`Application::on_leave`] must clear (a logged-in user).
    fn is_member(&self, conn: ConnId) -> bool;

    /// `conn` is gone; its id may be given to a new connection.
    fn on_gone(&mut self, conn: ConnId);

    /// The end of a loop turn: hand over what was batched during it, and what came due by the turn's time.
    fn end_turn(&mut self, out: &mut Effects);

    /// Bytes the application holds for connections beyond their queues (resume's say logs): they count
    /// against the daemon's output budget.
    fn held_output(&self) -> usize {
        0
    }

    /// The output budget is exceeded: drop at least `bytes` of what [`Application::held_output`] counts, the
    /// oldest first, if it can; returns what was dropped.
    fn shed_output(&mut self, _bytes: usize) -> usize {
        0
    }

    /// When the application next has something to do without input (a detached user's grace running out):
    /// the loop wakes by then.
    fn wakeup(&self) -> Option<Instant> {
        None
    }

    /// Fills in the application's figures for /metrics: the daemon's fields it knows (users, history) and
    /// series of its own ([`Metrics::app`]).
    fn fill_metrics(&self, metrics: &mut Metrics);

    /// The outside connections the application keeps (a cluster's Redis links), for the reactor to drive;
    /// `None` for an application that has none.
    fn links(&mut self) -> Option<&mut dyn LinkHost> {
        None
    }

    /// The links brought input this turn: apply what it means (other nodes' events) to the connections.
    fn after_links(&mut self, _out: &mut Effects) {}

    /// Why the application cannot fully serve right now (for `/healthz`), if it cannot.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// Answers one call of the server API (`--api`), queuing on `out` what it pushes to connections; an
    /// application without an API answers 404.
    fn api(&mut self, _req: &crate::api::request::Request, _out: &mut Effects) -> crate::api::ApiAnswer {
        crate::api::ApiAnswer::error(404, "not_found", "this daemon has no API")
    }

    /// The daemon is stopping: say goodbye on the links (the reactor keeps driving them until they are
    /// idle or the shutdown grace ends).
    fn shutdown(&mut self) {}
}

/// What an application asks the reactor to do with its outside links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRequest {
    /// Open link `link` as a TCP connection to `addr` (non-blocking); report [`LinkHost::connected`] or
    /// [`LinkHost::closed`].
    Connect {
        /// The link's index.
        link: usize,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Drop link `link`'s connection (the application already knows it is gone).
    Close {
        /// The link's index.
        link: usize,
    },
}

/// Outside connections kept by an application and driven by the reactor like its own sockets: the
/// reactor connects, reads and writes; the host decides, sans-IO.
pub trait LinkHost {
    /// Takes the connects and closes asked since the last call.
    fn requests(&mut self, out: &mut Vec<LinkRequest>);
    /// Link `link`'s connect completed.
    fn connected(&mut self, link: usize);
    /// Bytes read from link `link`.
    fn input(&mut self, link: usize, bytes: &[u8]);
    /// Link `link`'s connection failed or was closed by the peer.
    fn closed(&mut self, link: usize, reason: &str);
    /// Bytes to write on link `link`.
    fn output(&self, link: usize) -> &[u8];
    /// `n` bytes of [`LinkHost::output`] were written.
    fn written(&mut self, link: usize, n: usize);
    /// When the host next has something to do without input (a retry, a heartbeat).
    fn wakeup(&self) -> Option<Instant>;
    /// Nothing is left to write (the reactor may exit).
    fn idle(&self) -> bool;
    /// A listener for links other hosts open (a cluster node's peer links), handed over once; the reactor
    /// accepts on it and asks [`LinkHost::accepted`] for each connection's link.
    fn listener(&mut self) -> Option<std::net::TcpListener> {
        None
    }
    /// A connection came in on [`LinkHost::listener`]: the link it becomes, or `None` to refuse it.
    fn accepted(&mut self) -> Option<usize> {
        None
    }
    /// While `on`, the turns' messages gather instead of each going out at its turn's end (a coalescing
    /// window is open); turning it off sends what gathered, as one message, before the reactor writes the
    /// links. Hosts that do not gather ignore it.
    fn gather(&mut self, _on: bool) {}
}
