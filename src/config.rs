//! The daemon's own flags (clap) and the validated [`Config`] they produce, with the contract's defaults; a
//! subsystem with flags of its own (the cluster) owns them, and the composition root ([`crate::daemon`])
//! puts them all on one command line.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The daemon's flags: listeners, limits, the chat's options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// WebSocket listener address (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7272")]
    pub ws: String,
    /// HTTP listener for the chat page, /healthz and /metrics
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:55151")]
    pub http: String,
    /// Open WebSocket connections allowed; further handshakes are answered 503
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Largest frame or reassembled message accepted; larger ones are closed with 1009
    /// [default: 65536; with --echo 16777216]
    #[arg(long, value_name = "N")]
    pub max_message_bytes: Option<usize>,
    /// Time allowed to complete the WebSocket handshake
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,
    /// Idle clients are pinged after this many seconds; silent for two intervals, they are closed
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub ping_interval_secs: u64,
    /// Unsent output allowed per client before it is disconnected as a slow consumer (close 1008)
    /// [default: 4194304; with --echo 67108864]
    #[arg(long, value_name = "BYTES")]
    pub send_buffer_limit: Option<usize>,
    /// Origin allowed to connect (repeatable); without it any origin is allowed
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Last N room messages sent to a newcomer after its user list
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub history: usize,
    /// Chat messages allowed per connection per second (0: no limit); excess ones get error rate_limited
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_messages_per_sec: u32,
    /// Conformance mode: echo every text/binary message to its sender; no chat protocol
    #[arg(long)]
    pub echo: bool,
    /// Log every frame received and sent, unmasked, at info level (target wschat::frames)
    #[arg(long)]
    pub trace_frames: bool,
    /// Unsent output allowed for the whole daemon (every client's backlog summed); past it the largest
    /// backlogs are disconnected first [default: a quarter of physical memory, at least 64 MiB]
    #[arg(long, value_name = "BYTES")]
    pub max_output_bytes: Option<usize>,
    /// Bytes of history kept over all rooms; the oldest messages are dropped first
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_HISTORY_BUDGET)]
    pub history_budget: usize,
    /// Bytes of history one newcomer's welcome may queue: the newest messages that fit, the oldest left out
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_HISTORY_WELCOME_BYTES)]
    pub history_welcome_bytes: usize,
    /// Users allowed in one room; further logins get error room_full
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_room_users: usize,
    /// Logins a connection may make in a burst; after it, one a second (0: no limit); excess: rate_limited
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub join_burst: u32,
    /// How long a user whose connection dropped stays present, its session waiting to be resumed (login with
    /// "resume":true); 0 turns resume off
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub resume_grace_secs: u64,
    /// Bytes of says a room keeps for its sessions to resume with (counted against --max-output-bytes); past
    /// it the oldest go and a resume reports recovered:false
    #[arg(long, value_name = "BYTES", default_value_t = crate::chat::resume::DEFAULT_BUFFER)]
    pub resume_buffer: usize,
    /// Connections the web port serves at once; beyond it new ones get 503
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_web_connections: usize,
    /// Unfinished web requests allowed per client address; beyond it new ones get 503
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_web_pending_per_ip: usize,
    /// Share the ports with other daemons on this machine (SO_REUSEPORT), e.g. one cluster node per core
    #[arg(long)]
    pub reuse_port: bool,
    /// Serve this folder on the web port instead of the embedded page (index.html for /)
    #[arg(long, value_name = "DIR")]
    pub web_root: Option<std::path::PathBuf>,
    /// Escape names and content as HTML (& < > " ' and newlines), for pages that render HTML
    #[arg(long)]
    pub escape_html: bool,
    /// Clients of workerman-chat's current dialect that sent nothing for this long get {"type":"ping"}
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub app_ping_secs: u64,
    /// A proxy or load balancer in front (repeatable): from these peers only, X-Forwarded-For or Forwarded
    /// (or the PROXY header) give the client's address
    #[arg(long = "trust-proxy", value_name = "CIDR")]
    pub trust_proxy: Vec<String>,
    /// Every connection on both ports starts with a PROXY protocol v1 or v2 header from a --trust-proxy peer
    /// (HAProxy send-proxy, cloud load balancers); a missing, malformed or untrusted one closes it
    #[arg(long)]
    pub proxy_protocol: bool,
    /// WebSocket connections allowed per client address (0: no limit); further handshakes get 429
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// Both ports speak TLS (wss:// and https://) with this certificate chain (PEM, leaf first); SIGHUP
    /// reloads it and the key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Logins must carry "token", a JWT signed with this key: a PEM public key (RSA: RS256, P-256: ES256) or
    /// else an HS256 secret (the file's bytes); user lists and logins then name each user's user_id
    #[arg(long, value_name = "FILE")]
    pub auth_key: Option<std::path::PathBuf>,
    /// With --auth-key, also admit logins without a token, as anonymous users (no user_id)
    #[arg(long, requires = "auth_key")]
    pub auth_optional: bool,
    /// Serve the server API (HTTP/1.1 + JSON) on this address: bind it to loopback or a private network
    #[arg(long, value_name = "ADDR", requires = "api_key_file")]
    pub api: Option<String>,
    /// The API's key (the file's bytes, surrounding whitespace trimmed): requests carry Authorization: Bearer KEY
    #[arg(long, value_name = "FILE", requires = "api")]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Connections the API port serves at once; beyond it new ones are closed at accept
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_api_connections: usize,
    /// Chat output of busy connections waits for the next tick of an N µs clock (so at most N µs), then goes
    /// out in one write per connection (0: written at the end of each loop turn); pings, closes and answers
    /// are not held, but while output waits, input is read at the tick too
    #[arg(long, value_name = "N", default_value_t = DEFAULT_COALESCE_US)]
    pub coalesce_us: u64,
    /// What is logged: error, warn, info, debug, trace or off (RUST_LOG, when set, wins)
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = LOG_LEVELS)]
    pub log_level: String,
}

/// Default `--coalesce-us`.
pub const DEFAULT_COALESCE_US: u64 = 0;

/// The values of `--log-level`.
pub const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// The server API's port (`--api`).
#[derive(Clone)]
pub struct ApiPort {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The key a request's `Authorization: Bearer` must carry.
    pub key: Vec<u8>,
    /// Connections served at once.
    pub max_connections: usize,
}

impl std::fmt::Debug for ApiPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ApiPort").field("addr", &self.addr).field("max_connections", &self.max_connections).finish()
    }
}

/// A validated configuration for the reactor.
#[derive(Debug, Clone)]
pub struct Config {
    /// WebSocket listener address.
    pub ws_addr: SocketAddr,
    /// HTTP listener address.
    pub http_addr: SocketAddr,
    /// Open WebSocket connections allowed.
    pub max_connections: usize,
    /// Largest frame or message, in bytes.
    pub max_message_bytes: usize,
    /// Deadline for the handshake.
    pub handshake_timeout: Duration,
    /// Ping interval; two of them without a byte from the client close it.
    pub ping_interval: Duration,
    /// Unsent bytes allowed per client.
    pub send_buffer_limit: usize,
    /// Allowed origins; empty means any.
    pub allowed_origins: Vec<String>,
    /// Messages of history per room.
    pub history: usize,
    /// Chat messages per connection per second; 0 for no limit.
    pub max_messages_per_sec: u32,
    /// Echo mode instead of chat.
    pub echo: bool,
    /// Log every frame.
    pub trace_frames: bool,
    /// Unsent bytes allowed over all clients.
    pub max_output_bytes: usize,
    /// Bytes of history kept over all rooms.
    pub history_budget: usize,
    /// Bytes of history frames one welcome may queue.
    pub history_welcome_bytes: usize,
    /// Users allowed in one room.
    pub max_room_users: usize,
    /// Logins per connection in a burst (refilled at one a second); 0 for no limit.
    pub join_burst: u32,
    /// How long a detached user stays (`--resume-grace-secs`); zero: resume is off.
    pub resume_grace: Duration,
    /// Bytes of says a room keeps for its sessions (`--resume-buffer`).
    pub resume_buffer: usize,
    /// Web-port connections served at once.
    pub max_web_connections: usize,
    /// Unfinished web requests per client address.
    pub max_web_pending_per_ip: usize,
    /// Bind the listeners with SO_REUSEPORT.
    pub reuse_port: bool,
    /// The folder the web port serves (`--web-root`), if not the embedded page.
    pub web_root: Option<std::path::PathBuf>,
    /// Escape names and content as HTML in the seed dialect (`--escape-html`).
    pub escape_html: bool,
    /// Idle time after which a client of workerman-chat's current dialect is pinged in JSON.
    pub app_ping: Duration,
    /// Proxies whose word on the client's address is taken (`--trust-proxy`).
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// Connections start with a PROXY protocol header (`--proxy-protocol`).
    pub proxy_protocol: bool,
    /// WebSocket connections per client address; 0 for no limit.
    pub max_connections_per_ip: usize,
    /// Certificate chain and key files when both ports speak TLS (`--tls-cert`, `--tls-key`).
    pub tls: Option<TlsFiles>,
    /// What logins' tokens are verified with (`--auth-key`, `--auth-optional`); `None`: no tokens.
    pub auth: Option<crate::chat::identity::Verifier>,
    /// The server API's port (`--api`), if any.
    pub api: Option<ApiPort>,
    /// `--log-level`.
    pub log_level: log::LevelFilter,
    /// `--coalesce-us`: how long chat output may wait to go out with more (zero: not at all).
    pub coalesce: Duration,
}

/// Where the certificate chain and its key are read from (at start and at each SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The PEM certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The PEM private key.
    pub key: std::path::PathBuf,
}

/// A flag value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// An address that does not parse or resolve.
    BadAddress {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
    },
    /// A number outside its allowed range.
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// What is allowed.
        allowed: &'static str,
    },
    /// A path that cannot be used.
    BadPath {
        /// The flag.
        flag: &'static str,
        /// The path given.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A flag whose value cannot be used (a cluster URL, a CIDR, a combination of flags), with why.
    Unusable {
        /// The flag.
        flag: &'static str,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadAddress { flag, value } => {
                write!(f, "{flag}: cannot use {value:?} as an address (expected HOST:PORT, e.g. 127.0.0.1:7272)")
            }
            ConfigError::OutOfRange { flag, allowed } => write!(f, "{flag}: must be {allowed}"),
            ConfigError::Unusable { flag, reason } => write!(f, "{flag}: {reason}"),
            ConfigError::BadPath { flag, value, reason } => write!(f, "{flag}: {value:?} is {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Nothing when `ok`, else `flag` is out of its `allowed` range: a flag's bounds checked in one line.
pub fn in_range(ok: bool, flag: &'static str, allowed: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { flag, allowed })
    }
}

/// Default `--max-message-bytes` in chat mode.
pub const CHAT_MAX_MESSAGE: usize = 64 * 1024;
/// Default `--send-buffer-limit` in chat mode.
pub const CHAT_SEND_BUFFER: usize = 4 * 1024 * 1024;
/// Default `--max-message-bytes` with `--echo`.
pub const ECHO_MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Default `--send-buffer-limit` with `--echo`: room for a few of the largest echoes.
pub const ECHO_SEND_BUFFER: usize = 64 * 1024 * 1024;

/// Default `--history-budget`: 64 MiB over all rooms.
pub const DEFAULT_HISTORY_BUDGET: usize = 64 * 1024 * 1024;

/// Default `--history-welcome-bytes`: 1 MiB of history per newcomer.
pub const DEFAULT_HISTORY_WELCOME_BYTES: usize = 1024 * 1024;

/// Largest accepted `--history-welcome-bytes`.
pub const MAX_HISTORY_WELCOME_BYTES: usize = 64 * 1024 * 1024;

/// Smallest default `--max-output-bytes`, whatever the machine's memory.
pub const MIN_DEFAULT_OUTPUT_BUDGET: usize = 64 * 1024 * 1024;

/// Default `--max-output-bytes`: a quarter of physical memory, at least [`MIN_DEFAULT_OUTPUT_BUDGET`].
pub fn default_output_budget() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions; it returns -1 when the value is unknown.
    let (pages, page_size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let physical = if pages > 0 && page_size > 0 { (pages as u128) * (page_size as u128) } else { 0 };
    usize::try_from(physical / 4).unwrap_or(usize::MAX).max(MIN_DEFAULT_OUTPUT_BUDGET)
}

/// Largest accepted `--max-message-bytes` (the frame codec itself supports more; this bounds memory).
pub const MAX_MESSAGE_LIMIT: usize = 64 * 1024 * 1024;

fn resolve(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    let bad = || ConfigError::BadAddress { flag, value: value.to_string() };
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    value.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)
}

impl Args {
    /// Validates the flags into a [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        // Echo mode serves conformance suites, whose limit cases send messages of up to 16 MiB.
        let (default_message, default_send_buffer) =
            if self.echo { (ECHO_MAX_MESSAGE, ECHO_SEND_BUFFER) } else { (CHAT_MAX_MESSAGE, CHAT_SEND_BUFFER) };
        let max_message_bytes = self.max_message_bytes.unwrap_or(default_message);
        let send_buffer_limit = self.send_buffer_limit.unwrap_or(default_send_buffer);
        let ws_addr = resolve("--ws", &self.ws)?;
        let http_addr = resolve("--http", &self.http)?;
        in_range(self.max_connections > 0, "--max-connections", "at least 1")?;
        in_range(
            (125..=MAX_MESSAGE_LIMIT).contains(&max_message_bytes),
            "--max-message-bytes",
            "between 125 and 67108864",
        )?;
        in_range(self.handshake_timeout_ms > 0, "--handshake-timeout-ms", "at least 1")?;
        in_range((1..=86_400).contains(&self.ping_interval_secs), "--ping-interval-secs", "between 1 and 86400")?;
        in_range(send_buffer_limit >= 1024, "--send-buffer-limit", "at least 1024")?;
        in_range(self.history <= 10_000, "--history", "at most 10000")?;
        in_range(
            self.history_welcome_bytes <= MAX_HISTORY_WELCOME_BYTES,
            "--history-welcome-bytes",
            "at most 67108864",
        )?;
        let max_output_bytes = self.max_output_bytes.unwrap_or_else(default_output_budget);
        in_range(max_output_bytes >= send_buffer_limit, "--max-output-bytes", "at least --send-buffer-limit")?;
        in_range(self.max_room_users > 0, "--max-room-users", "at least 1")?;
        in_range(self.resume_grace_secs <= 86_400, "--resume-grace-secs", "between 0 and 86400")?;
        in_range(self.resume_buffer >= 1024, "--resume-buffer", "at least 1024")?;
        in_range(self.max_web_connections > 0, "--max-web-connections", "at least 1")?;
        in_range(self.max_web_pending_per_ip > 0, "--max-web-pending-per-ip", "at least 1")?;
        in_range((1..=86_400).contains(&self.app_ping_secs), "--app-ping-secs", "between 1 and 86400")?;
        let trusted_proxies = crate::proxy::TrustedProxies::parse(self.trust_proxy.iter().map(String::as_str))
            .map_err(|e| ConfigError::Unusable { flag: "--trust-proxy", reason: e.to_string() })?;
        if self.proxy_protocol && trusted_proxies.is_empty() {
            return Err(ConfigError::Unusable {
                flag: "--proxy-protocol",
                reason: "needs --trust-proxy CIDR: the addresses of the proxies that send the header".to_string(),
            });
        }
        let auth = match &self.auth_key {
            None => None,
            Some(path) => {
                let key = crate::chat::identity::AuthKey::load(path).map_err(|e| ConfigError::Unusable {
                    flag: "--auth-key",
                    reason: format!("{}: {e}", path.display()),
                })?;
                Some(crate::chat::identity::Verifier::new(key, self.auth_optional))
            }
        };
        let api = match (&self.api, &self.api_key_file) {
            (Some(addr), Some(path)) => {
                let unusable = |reason: String| ConfigError::Unusable { flag: "--api-key-file", reason };
                let bytes =
                    std::fs::read(path).map_err(|e| unusable(format!("{}: cannot read it: {e}", path.display())))?;
                let key = bytes.trim_ascii().to_vec();
                if key.len() < 16 {
                    return Err(unusable(format!("{}: the key must be at least 16 bytes", path.display())));
                }
                in_range(self.max_api_connections > 0, "--max-api-connections", "at least 1")?;
                Some(ApiPort { addr: resolve("--api", addr)?, key, max_connections: self.max_api_connections })
            }
            _ => None,
        };
        let web_root = match &self.web_root {
            None => None,
            Some(dir) => {
                Some(std::fs::canonicalize(dir).ok().filter(|d| d.is_dir()).ok_or_else(|| ConfigError::BadPath {
                    flag: "--web-root",
                    value: dir.display().to_string(),
                    reason: "not a readable folder",
                })?)
            }
        };
        in_range(self.coalesce_us <= 10_000, "--coalesce-us", "at most 10000 (10 ms)")?;
        Ok(Config {
            ws_addr,
            http_addr,
            max_connections: self.max_connections,
            max_message_bytes,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            ping_interval: Duration::from_secs(self.ping_interval_secs),
            send_buffer_limit,
            allowed_origins: self.allow_origin,
            history: self.history,
            max_messages_per_sec: self.max_messages_per_sec,
            echo: self.echo,
            trace_frames: self.trace_frames,
            max_output_bytes,
            history_budget: self.history_budget,
            history_welcome_bytes: self.history_welcome_bytes,
            max_room_users: self.max_room_users,
            join_burst: self.join_burst,
            resume_grace: Duration::from_secs(self.resume_grace_secs),
            resume_buffer: self.resume_buffer,
            max_web_connections: self.max_web_connections,
            max_web_pending_per_ip: self.max_web_pending_per_ip,
            reuse_port: self.reuse_port,
            web_root,
            escape_html: self.escape_html,
            app_ping: Duration::from_secs(self.app_ping_secs),
            trusted_proxies,
            proxy_protocol: self.proxy_protocol,
            max_connections_per_ip: self.max_connections_per_ip,
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
            auth,
            api,
            log_level: self.log_level.parse().unwrap_or(log::LevelFilter::Info),
            coalesce: Duration::from_micros(self.coalesce_us),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::daemon::CommandLine as Cli;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Cli::of(args).daemon.into_config()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.ws_addr, "0.0.0.0:7272".parse().unwrap());
        assert_eq!(c.http_addr, "0.0.0.0:55151".parse().unwrap());
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_message_bytes, 65_536);
        assert_eq!(c.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.ping_interval, Duration::from_secs(25));
        assert_eq!(c.send_buffer_limit, 4 * 1024 * 1024);
        assert!(c.allowed_origins.is_empty());
        assert_eq!(c.history, 0);
        assert_eq!(c.max_messages_per_sec, 0);
        assert!(!c.echo);
        assert!(c.max_output_bytes >= MIN_DEFAULT_OUTPUT_BUDGET);
        assert_eq!(c.history_budget, 64 * 1024 * 1024);
        assert_eq!(c.history_welcome_bytes, 1024 * 1024);
        assert_eq!(c.max_room_users, 10_000);
        assert_eq!(c.join_burst, 5);
        assert_eq!((c.max_web_connections, c.max_web_pending_per_ip), (256, 8));
    }

    #[test]
    fn flags() {
        let c = parse(&["--ws", "127.0.0.1:0", "--allow-origin", "http://a", "--allow-origin", "http://b", "--echo"])
            .unwrap();
        assert_eq!(c.ws_addr.port(), 0);
        assert_eq!(c.allowed_origins, ["http://a", "http://b"]);
        assert!(c.echo);
        assert_eq!((c.max_message_bytes, c.send_buffer_limit), (ECHO_MAX_MESSAGE, ECHO_SEND_BUFFER));
        let c = parse(&["--echo", "--max-message-bytes", "1000", "--send-buffer-limit", "4096"]).unwrap();
        assert_eq!((c.max_message_bytes, c.send_buffer_limit), (1000, 4096));
        assert!(parse(&["--ws", "[::1]:7272"]).is_ok());
        assert!(!c.reuse_port && parse(&["--reuse-port"]).unwrap().reuse_port);
    }

    #[test]
    fn bad_values_are_explained() {
        let e = parse(&["--ws", "nonsense"]).unwrap_err();
        assert!(e.to_string().contains("--ws"), "{e}");
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--max-message-bytes", "10"]).is_err());
        assert!(parse(&["--ping-interval-secs", "0"]).is_err());
        assert!(parse(&["--max-output-bytes", "1000"]).is_err());
        assert!(parse(&["--max-room-users", "0"]).is_err());
        assert!(parse(&["--history-welcome-bytes", "67108865"]).unwrap_err().to_string().contains("at most"));
        assert!(Cli::try_parse_from(["wschat", "--history-welcome-bytes", "1MiB"]).is_err());
        assert_eq!(parse(&["--history-welcome-bytes", "0"]).unwrap().history_welcome_bytes, 0);
        assert!(Cli::try_parse_from(["wschat", "--max-connections", "-5"]).is_err());
    }

    #[test]
    fn drop_in_flags() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.web_root.is_none(), c.escape_html, c.app_ping), (true, false, Duration::from_secs(25)));
        let dir = std::env::temp_dir();
        let c = parse(&["--web-root", dir.to_str().unwrap(), "--escape-html", "--app-ping-secs", "5"]).unwrap();
        assert_eq!(c.web_root, Some(std::fs::canonicalize(&dir).unwrap()));
        assert!(c.escape_html);
        assert_eq!(c.app_ping, Duration::from_secs(5));
        let e = parse(&["--web-root", "/no/such/folder"]).unwrap_err();
        assert!(e.to_string().starts_with("--web-root: \"/no/such/folder\""), "{e}");
        assert!(parse(&["--app-ping-secs", "0"]).is_err());
    }

    #[test]
    fn proxy_flags() {
        let c = parse(&[
            "--trust-proxy",
            "10.0.0.0/8",
            "--trust-proxy",
            "::1",
            "--proxy-protocol",
            "--max-connections-per-ip",
            "3",
        ])
        .unwrap();
        assert!(
            c.trusted_proxies.is_trusted("10.1.2.3".parse().unwrap())
                && c.trusted_proxies.is_trusted("::1".parse().unwrap())
        );
        assert!(c.proxy_protocol);
        assert_eq!(c.max_connections_per_ip, 3);
        assert!(parse(&["--trust-proxy", "10.0.0.0/99"]).unwrap_err().to_string().starts_with("--trust-proxy"));
        assert!(parse(&["--proxy-protocol"]).unwrap_err().to_string().contains("needs --trust-proxy"));
        assert_eq!(parse(&[]).unwrap().max_connections_per_ip, 0);
    }
}
