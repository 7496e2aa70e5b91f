//! The engine's public vocabulary: the target's protocol, a connection's phase, the engine's and a
//! connection's errors, the engine's settings and its counters.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::tls::TlsFailure;
use crate::bench::target::Target;
use crate::ws::handshake::ClientHandshakeError;
use crate::ws::message::WsError;

/// Which protocol the target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// The workerman-chat JSON protocol: log in, `say` to all, receive `say` relays.
    Chat,
    /// A plain broadcast server: every text message goes to every client, sender included, verbatim.
    Raw,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Chat => "chat",
            Proto::Raw => "raw",
        })
    }
}

/// Where a client connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent, waiting for the 101.
    Handshaking,
    /// Login sent, waiting for the user list (chat protocol).
    LoggingIn,
    /// Ready to send and receive.
    Ready,
    /// Cut by the bench without a close frame (churn), its session to be resumed.
    Away,
    /// Resume sent, the missed says coming until `resumed` (chat, churn).
    Resuming,
    /// Closed, by either side or on an error.
    Closed,
}

/// Why the engine could not go on.
#[derive(Debug)]
pub enum EngineError {
    /// Creating or polling the mio `Poll` failed.
    Poll(io::Error),
    /// Starting a TCP connection failed.
    Connect(io::Error),
    /// A wss:// target but no TLS client configuration.
    NoTlsConfig,
    /// rustls cannot start a connection with the configuration.
    Tls(TlsFailure),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Poll(e) => write!(f, "poll failed: {e}"),
            EngineError::Connect(e) => write!(f, "connect failed: {e}"),
            EngineError::NoTlsConfig => f.write_str("wss:// needs --ca FILE or --insecure"),
            EngineError::Tls(e) => write!(f, "tls: {e}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Why one connection was closed; counted, and the first of each kind kept for the report.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnFailure {
    /// The TCP connection could not be established.
    Connect(String),
    /// TLS failed: a certificate not trusted, an alert, a handshake cut short (wss://).
    Tls(TlsFailure),
    /// The server refused or botched the upgrade.
    Handshake(ClientHandshakeError),
    /// The server's frames broke RFC 6455.
    Protocol(WsError),
    /// The server sent a close frame (code, if any).
    ClosedByServer(Option<u16>),
    /// The server closed the TCP connection.
    Eof,
    /// A read or write failed.
    Io(String),
}

impl fmt::Display for ConnFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnFailure::Connect(e) => write!(f, "connect: {e}"),
            ConnFailure::Tls(e) => write!(f, "tls: {e}"),
            ConnFailure::Handshake(e) => write!(f, "handshake: {e}"),
            ConnFailure::Protocol(e) => write!(f, "protocol error from server: {e}"),
            ConnFailure::ClosedByServer(Some(code)) => write!(f, "closed by server with code {code}"),
            ConnFailure::ClosedByServer(None) => f.write_str("closed by server"),
            ConnFailure::Eof => f.write_str("connection closed by server without a close frame"),
            ConnFailure::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

/// Settings of an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The servers to load (the nodes of one cluster, or one server); connection i goes to target i mod n.
    pub targets: Vec<Target>,
    /// Its protocol.
    pub proto: Proto,
    /// Bytes of content per message.
    pub payload: usize,
    /// Largest message accepted from the server.
    pub max_message_bytes: usize,
    /// Above this many unsent bytes a connection sends nothing more until it drains.
    pub max_unsent_bytes: usize,
    /// The TLS client configuration, needed when the targets are wss://.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Chat: log in with `"resume":true` and follow each client's session and last mid, so that a cut
    /// connection can resume.
    pub resume: bool,
    /// Chat: log in with `"resume":true` without following the sessions (what opting in costs the server).
    pub opt_in: bool,
}

/// Counters of everything the engine saw.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Bench messages received (every copy, duplicates included).
    pub deliveries: u64,
    /// Bench messages received while measuring.
    pub window_deliveries: u64,
    /// Chat `login` broadcasts received.
    pub logins_seen: u64,
    /// Chat `logout` broadcasts received.
    pub logouts_seen: u64,
    /// Chat `error` messages received.
    pub server_errors: u64,
    /// The first chat error received, verbatim.
    pub first_server_error: Option<String>,
    /// Text messages that are neither bench messages nor known chat messages.
    pub other_messages: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// The first connection failure.
    pub first_failure: Option<ConnFailure>,
    /// Messages not sent because the connection's unsent output was over the limit.
    pub send_stalls: u64,
    /// Bytes read from the server.
    pub bytes_in: u64,
    /// Successful read calls.
    pub reads: u64,
    /// Successful write calls.
    pub writes: u64,
    /// TLS handshakes completed (wss://).
    pub tls_handshakes: u64,
    /// The first TLS session established, in one line: version, cipher suite, ALPN (wss://).
    pub tls_session: Option<String>,
}
