//! `redis://[user:password@]HOST:PORT[/DB]` addresses of the Redis server.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// The port of a URL without one.
pub const DEFAULT_PORT: u16 = 6379;

/// Where a Redis server is and how to log in: `redis://[user:password@]HOST:PORT[/DB]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// The host name or address, without the brackets of an IPv6 address.
    pub host: String,
    /// The TCP port ([`DEFAULT_PORT`] when the URL names none).
    pub port: u16,
    /// The ACL user, when the URL names one (`AUTH user password`).
    pub user: Option<String>,
    /// The password, when the URL gives one (`AUTH [user] password`).
    pub password: Option<String>,
    /// The database number (`SELECT db` when it is not 0).
    pub db: u32,
}

/// Why a Redis URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// The URL does not start with `redis://` (or `redis+sentinel://`).
    Scheme,
    /// A Sentinel URL names no master (`redis+sentinel://HOST:PORT/MASTER`), or a name with bytes other than
    /// ASCII letters, digits, `_`, `-` and `.`.
    Master(String),
    /// No host between `//` (or `@`) and the port.
    EmptyHost,
    /// An IPv6 address whose `[` is not closed, or with something other than `:PORT` after the `]`.
    Ipv6,
    /// The port is not a number in 1..=65535.
    Port(String),
    /// The database is not a number.
    Db(String),
    /// A user is named without a password (`redis://user@host`).
    UserWithoutPassword,
    /// A `%` not followed by two hexadecimal digits, or a decoded user or password that is not UTF-8.
    PercentEncoding,
    /// Something the URL form has no place for (a query, a fragment, a second path segment).
    Unexpected(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme => write!(f, "a Redis URL starts with redis:// or redis+sentinel://"),
            UrlError::Master(m) => write!(
                f,
                "the Sentinel URL's master name {m:?} is not 1-64 ASCII letters, digits, _ - . (redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER[/DB])"
            ),
            UrlError::EmptyHost => write!(f, "the Redis URL names no host"),
            UrlError::Ipv6 => write!(f, "the Redis URL's IPv6 address is not [ADDRESS] or [ADDRESS]:PORT"),
            UrlError::Port(p) => write!(f, "the Redis URL's port {p:?} is not a number in 1..=65535"),
            UrlError::Db(d) => write!(f, "the Redis URL's database {d:?} is not a number"),
            UrlError::UserWithoutPassword => write!(f, "the Redis URL names a user without a password"),
            UrlError::PercentEncoding => write!(f, "the Redis URL's user or password has a bad %-escape"),
            UrlError::Unexpected(s) => write!(f, "the Redis URL has an unexpected {s:?}"),
        }
    }
}

impl std::error::Error for UrlError {}

pub(super) fn percent_decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UrlError::PercentEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::PercentEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::PercentEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::PercentEncoding)
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    match p.parse::<u16>() {
        Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(UrlError::Port(p.to_string())),
    }
}

/// `user:password` (either may be empty, %-encoded) into the user and the password.
pub(super) fn parse_userinfo(userinfo: Option<&str>) -> Result<(Option<String>, Option<String>), UrlError> {
    match userinfo {
        None => Ok((None, None)),
        Some(u) => match u.split_once(':') {
            None => Err(UrlError::UserWithoutPassword),
            Some((user, pass)) => {
                let user = if user.is_empty() { None } else { Some(percent_decode(user)?) };
                Ok((user, Some(percent_decode(pass)?)))
            }
        },
    }
}

/// `HOST[:PORT]` (an IPv6 host in brackets), the port `default` when none is given.
pub(super) fn parse_host_port(hostport: &str, default: u16) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(UrlError::Ipv6)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::Ipv6);
        }
        let port = match after {
            "" => default,
            _ => parse_port(after.strip_prefix(':').ok_or(UrlError::Ipv6)?)?,
        };
        (addr, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(UrlError::Ipv6),
            Some((h, p)) => (h, parse_port(p)?),
            None => (hostport, default),
        }
    };
    if host.is_empty() {
        return Err(UrlError::EmptyHost);
    }
    Ok((host.to_string(), port))
}

/// The database of a path (`None` or empty: 0).
pub(super) fn parse_db(path: Option<&str>) -> Result<u32, UrlError> {
    match path {
        None | Some("") => Ok(0),
        Some(d) if d.contains('/') => Err(UrlError::Unexpected(d.to_string())),
        Some(d) if d.bytes().all(|b| b.is_ascii_digit()) => d.parse().map_err(|_| UrlError::Db(d.to_string())),
        Some(d) => Err(UrlError::Db(d.to_string())),
    }
}

/// `HOST:PORT`, with an IPv6 host in brackets: what [`ToSocketAddrs`] takes.
pub(super) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl RedisUrl {
    /// Parses `redis://[user:password@]HOST[:PORT][/DB]`. HOST is a name, an IPv4 address or an IPv6 address
    /// in brackets; PORT defaults to 6379, DB to 0. User and password may be %-encoded; `:password@` alone
    /// gives a password without a user.
    pub fn parse(url: &str) -> Result<RedisUrl, UrlError> {
        let rest = url.strip_prefix("redis://").ok_or(UrlError::Scheme)?;
        if let Some(i) = rest.find(['?', '#']) {
            return Err(UrlError::Unexpected(rest[i..].to_string()));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = parse_userinfo(userinfo)?;
        let (host, port) = parse_host_port(hostport, DEFAULT_PORT)?;
        let db = parse_db(path)?;
        Ok(RedisUrl { host, port, user, password, db })
    }

    /// `HOST:PORT`, with an IPv6 host in brackets: what [`ToSocketAddrs`] takes.
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }

    /// The server's addresses (a host name is resolved, which may block: call it at start-up).
    pub fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.host_port().to_socket_addrs()?.collect())
    }
}

/// The URL with the password masked, for logs.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://")?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            _ => {}
        }
        write!(f, "{}", self.host_port())?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}
