//! The server API side of the `api` scenario: the daemon's HTTP/1.1 API (`wschat --api`) loaded with `POST
//! /api/say` or `POST /api/send` to one room over a few keep-alive, pipelined connections, driven by the
//! engine's loop (their sockets sit in its `Poll`), while the engine's WebSocket clients in that room audit
//! and time every message the API pushed. Here: the settings ([`ApiConfig`], the [`ApiKey`], the [`Verb`]),
//! the address check, the key check before the run ([`preflight`]) and the errors; [`http`] reads and writes
//! the HTTP, [`payload`] the JSON bodies, [`client`] drives the connections.

pub mod client;
pub mod http;
pub mod payload;

pub use client::{ApiClients, ApiCounters, ApiFailure};

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self::http::{parse_response, HttpError, Method, RequestHead};

/// The API call the scenario loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `POST /api/say`: a chat say from uid 0 to every member of the room.
    Say,
    /// `POST /api/send`: a text pushed verbatim to every connection in the room.
    Send,
}

impl Verb {
    /// The call's path.
    pub fn path(self) -> &'static str {
        match self {
            Verb::Say => "/api/say",
            Verb::Send => "/api/send",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Say => "say",
            Verb::Send => "send",
        })
    }
}

/// The API key: the key file's bytes, surrounding whitespace trimmed, as the daemon reads its own.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Vec<u8>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({} bytes)", self.0.len())
    }
}

/// Why a key file gives no usable key.
#[derive(Debug)]
pub enum ApiKeyError {
    /// The file cannot be read.
    Read(PathBuf, io::Error),
    /// Nothing but whitespace in it.
    Empty(PathBuf),
    /// A byte that cannot go in an HTTP header (a control byte, a line break inside the key).
    NotAHeaderValue(PathBuf),
}

impl fmt::Display for ApiKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiKeyError::Read(p, e) => write!(f, "{}: cannot read it: {e}", p.display()),
            ApiKeyError::Empty(p) => write!(f, "{}: the key is empty", p.display()),
            ApiKeyError::NotAHeaderValue(p) => {
                write!(f, "{}: the key has a byte that cannot go in an Authorization header", p.display())
            }
        }
    }
}

impl std::error::Error for ApiKeyError {}

impl ApiKey {
    /// Reads the key from `path`.
    pub fn load(path: &Path) -> Result<ApiKey, ApiKeyError> {
        let bytes = std::fs::read(path).map_err(|e| ApiKeyError::Read(path.to_path_buf(), e))?;
        ApiKey::from_bytes(&bytes).map_err(|e| match e {
            ApiKeyError::Empty(_) => ApiKeyError::Empty(path.to_path_buf()),
            _ => ApiKeyError::NotAHeaderValue(path.to_path_buf()),
        })
    }

    /// The key in `bytes` (a key file's content).
    pub fn from_bytes(bytes: &[u8]) -> Result<ApiKey, ApiKeyError> {
        let key = bytes.trim_ascii();
        if key.is_empty() {
            return Err(ApiKeyError::Empty(PathBuf::new()));
        }
        if !key.iter().all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic() || b >= 0x80) {
            return Err(ApiKeyError::NotAHeaderValue(PathBuf::new()));
        }
        Ok(ApiKey(key.to_vec()))
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Everything the scenario needs to reach the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The API's address.
    pub addr: SocketAddr,
    /// The Host header: the address as given.
    pub host: String,
    /// The key.
    pub key: ApiKey,
    /// Keep-alive connections.
    pub clients: usize,
    /// Most requests unanswered on one connection (its pipeline); a connection that has them takes no more.
    pub depth: usize,
    /// The call.
    pub verb: Verb,
}

/// Why the API cannot be used for a run.
#[derive(Debug)]
pub enum ApiError {
    /// `--api` is not `host:port` (an optional `http://` and trailing `/` aside).
    BadAddr(String),
    /// It does not resolve.
    Unresolved(String),
    /// It resolves to a non-loopback address and remote targets were not allowed.
    NotLoopback(SocketAddr),
    /// Connecting failed.
    Connect(SocketAddr, io::Error),
    /// Reading or writing the key check failed, or it timed out.
    Io(SocketAddr, io::Error),
    /// The API answered the key check with something that is not HTTP the bench reads.
    Http(SocketAddr, HttpError),
    /// The API refused the key (401).
    Unauthorized(SocketAddr, String),
    /// The API answered the key check with another status than 200.
    Refused(SocketAddr, u16, String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadAddr(a) => write!(f, "--api {a}: not host:port"),
            ApiError::Unresolved(a) => write!(f, "--api {a}: cannot resolve it"),
            ApiError::NotLoopback(a) => {
                write!(f, "--api {a} is not a loopback address; pass --allow-remote to load a remote server")
            }
            ApiError::Connect(a, e) => write!(f, "cannot connect to the API at {a}: {e}"),
            ApiError::Io(a, e) => write!(f, "the API at {a} did not answer the key check: {e}"),
            ApiError::Http(a, e) => write!(f, "the API at {a} answered the key check with {e}"),
            ApiError::Unauthorized(a, body) => write!(
                f,
                "the API at {a} refused the key of --api-key-file (401 Unauthorized: {body}); give the file the \
                 daemon's --api-key-file holds"
            ),
            ApiError::Refused(a, status, body) => write!(f, "the API at {a} answered the key check {status}: {body}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// Resolves `--api` (`host:port`, optionally written `http://host:port/`) to its address and the Host header;
/// unless `allow_remote`, every address it resolves to must be loopback.
pub fn resolve(addr: &str, allow_remote: bool) -> Result<(SocketAddr, String), ApiError> {
    let host = addr.strip_prefix("http://").unwrap_or(addr);
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) || host.contains(['/', '@']) {
        return Err(ApiError::BadAddr(addr.to_string()));
    }
    let addrs: Vec<SocketAddr> = host.to_socket_addrs().map_err(|_| ApiError::Unresolved(addr.to_string()))?.collect();
    let first = *addrs.first().ok_or_else(|| ApiError::Unresolved(addr.to_string()))?;
    if !allow_remote {
        if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(ApiError::NotLoopback(*remote));
        }
    }
    Ok((first, host.to_string()))
}

/// How long the key check may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the address and the key before anything is measured: `GET /api/rooms` on a connection of its own
/// must be answered 200. A wrong key is [`ApiError::Unauthorized`], with the daemon's words.
pub fn preflight(cfg: &ApiConfig) -> Result<(), ApiError> {
    let addr = cfg.addr;
    let mut stream = TcpStream::connect_timeout(&addr, PREFLIGHT_TIMEOUT).map_err(|e| ApiError::Connect(addr, e))?;
    let io = |e| ApiError::Io(addr, e);
    stream.set_read_timeout(Some(PREFLIGHT_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(PREFLIGHT_TIMEOUT)).map_err(io)?;
    let mut request = Vec::new();
    RequestHead::new(Method::Get, "/api/rooms", &cfg.host, cfg.key.bytes()).write(&mut request, b"");
    stream.write_all(&request).map_err(io)?;
    let deadline = Instant::now() + PREFLIGHT_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let answer = loop {
        if let Some(r) = parse_response(&buf).map_err(|e| ApiError::Http(addr, e))? {
            break r;
        }
        if Instant::now() > deadline {
            return Err(io(io::ErrorKind::TimedOut.into()));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    };
    let body = String::from_utf8_lossy(&buf[answer.body]).into_owned();
    match answer.status {
        200 => Ok(()),
        401 => Err(ApiError::Unauthorized(addr, body)),
        status => Err(ApiError::Refused(addr, status, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_trimmed_and_checked() {
        assert_eq!(ApiKey::from_bytes(b"  0123456789abcdef\n").unwrap().bytes(), b"0123456789abcdef");
        assert!(matches!(ApiKey::from_bytes(b" \n\t"), Err(ApiKeyError::Empty(_))));
        assert!(matches!(ApiKey::from_bytes(b"abc\r\nX-Evil: 1"), Err(ApiKeyError::NotAHeaderValue(_))));
        assert_eq!(format!("{:?}", ApiKey::from_bytes(b"secret-secret").unwrap()), "ApiKey(13 bytes)");
        let missing = ApiKey::load(Path::new("/nonexistent/api.key")).unwrap_err().to_string();
        assert!(missing.starts_with("/nonexistent/api.key: cannot read it"), "{missing}");
    }

    #[test]
    fn addresses_are_loopback_unless_allowed() {
        let (addr, host) = resolve("127.0.0.1:8080", false).unwrap();
        assert_eq!((addr, host.as_str()), ("127.0.0.1:8080".parse().unwrap(), "127.0.0.1:8080"));
        assert_eq!(resolve("http://[::1]:9/", false).unwrap().1, "[::1]:9");
        assert!(matches!(resolve("192.0.2.1:80", false), Err(ApiError::NotLoopback(_))));
        assert!(resolve("192.0.2.1:80", true).is_ok());
        for bad in ["", "127.0.0.1", "http://127.0.0.1:1/api", "a b:1", "u@127.0.0.1:1"] {
            assert!(matches!(resolve(bad, true), Err(ApiError::BadAddr(_) | ApiError::Unresolved(_))), "{bad}");
        }
    }
}
