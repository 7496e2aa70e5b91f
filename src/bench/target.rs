//! The bench's targets: `ws://host:port/path` or `wss://host:port/path` URLs resolved to socket addresses,
//! each refused unless it is a loopback address (the bench floods whatever it points at) or the caller allowed
//! remote targets. A run may have several targets (the nodes of one cluster); its clients are spread over them
//! round robin. They all speak TLS or none does: one run measures one transport.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use rustls::pki_types::ServerName;

use super::tls::server_name;

/// A resolved WebSocket target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The address to connect to.
    pub addr: SocketAddr,
    /// The Host header value (`host:port` as written in the URL).
    pub host: String,
    /// The request path, `/` at least.
    pub path: String,
    /// wss://: the name the server's certificate must carry (the URL's host); `None` for ws://.
    pub tls: Option<ServerName<'static>>,
}

/// A URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// wss:// rather than ws://.
    pub tls: bool,
    /// The host, without the brackets of an IPv6 address.
    pub host: String,
    /// The port, 80 (ws) or 443 (wss) when not given.
    pub port: u16,
    /// The path, `/` at least.
    pub path: String,
}

/// Why a URL cannot be a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Not `ws://host[:port][/path]` or `wss://host[:port][/path]`.
    BadUrl(String),
    /// A wss:// host that cannot be a TLS server name.
    BadServerName(String),
    /// ws:// and wss:// URLs in one run.
    MixedSchemes,
    /// The host does not resolve.
    Unresolved(String),
    /// The host resolves to a non-loopback address and remote targets were not allowed.
    NotLoopback(SocketAddr),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::BadUrl(url) => write!(f, "not a ws:// or wss://host[:port][/path] URL: {url}"),
            TargetError::BadServerName(host) => write!(f, "{host} cannot be a TLS server name"),
            TargetError::MixedSchemes => {
                f.write_str("ws:// and wss:// URLs cannot be mixed in one run (one run measures one transport)")
            }
            TargetError::Unresolved(host) => write!(f, "cannot resolve {host}"),
            TargetError::NotLoopback(addr) => {
                write!(f, "{addr} is not a loopback address; pass --allow-remote to load a remote server")
            }
        }
    }
}

impl std::error::Error for TargetError {}

/// Splits a `ws://` or `wss://` URL into its scheme, host, port (defaulting to 80 or 443) and path.
pub fn split_url(url: &str) -> Result<UrlParts, TargetError> {
    let bad = || TargetError::BadUrl(url.to_string());
    let (tls, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        (None, None) => return Err(bad()),
    };
    let default_port = if tls { 443 } else { 80 };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(bad)?;
        let host = &v6[..end];
        let port = match &v6[end + 1..] {
            "" => default_port,
            p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(bad)?,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad());
    }
    Ok(UrlParts { tls, host: host.to_string(), port, path: path.to_string() })
}

/// Parses and resolves `url`; unless `allow_remote`, every address it resolves to must be loopback.
pub fn resolve(url: &str, allow_remote: bool) -> Result<Target, TargetError> {
    let UrlParts { tls, host, port, path } = split_url(url)?;
    let tls = match tls {
        true => Some(server_name(&host).ok_or_else(|| TargetError::BadServerName(host.clone()))?),
        false => None,
    };
    let addrs: Vec<SocketAddr> =
        (host.as_str(), port).to_socket_addrs().map_err(|_| TargetError::Unresolved(host.clone()))?.collect();
    let addr = *addrs.first().ok_or_else(|| TargetError::Unresolved(host.clone()))?;
    if !allow_remote {
        if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(TargetError::NotLoopback(*remote));
        }
    }
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    Ok(Target { url: url.to_string(), addr, host: authority, path, tls })
}

/// Resolves every URL as [`resolve`] does; at least one is needed, and all ws:// or all wss://. The error
/// names the URL at fault.
pub fn resolve_all<S: AsRef<str>>(urls: &[S], allow_remote: bool) -> Result<Vec<Target>, String> {
    if urls.is_empty() {
        return Err("at least one --url is needed".into());
    }
    let targets = urls
        .iter()
        .map(|url| resolve(url.as_ref(), allow_remote).map_err(|e| format!("--url {}: {e}", url.as_ref())))
        .collect::<Result<Vec<Target>, String>>()?;
    if !same_scheme(&targets) {
        return Err(TargetError::MixedSchemes.to_string());
    }
    Ok(targets)
}

/// True when the targets are all ws:// or all wss://.
pub fn same_scheme(targets: &[Target]) -> bool {
    targets.windows(2).all(|w| w[0].tls.is_some() == w[1].tls.is_some())
}

/// The target of client `client` among `targets` targets: round robin, client i on target i mod n.
pub fn target_of(client: usize, targets: usize) -> usize {
    client % targets.max(1)
}

/// How many of `clients` clients go to each of `targets` targets under [`target_of`].
pub fn clients_per_target(clients: usize, targets: usize) -> Vec<usize> {
    let n = targets.max(1);
    (0..n).map(|t| clients / n + usize::from(t < clients % n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let parts =
            |tls, host: &str, port, path: &str| Ok(UrlParts { tls, host: host.into(), port, path: path.into() });
        assert_eq!(split_url("ws://127.0.0.1:7272/"), parts(false, "127.0.0.1", 7272, "/"));
        assert_eq!(split_url("ws://localhost"), parts(false, "localhost", 80, "/"));
        assert_eq!(split_url("ws://[::1]:9/chat?x=1"), parts(false, "::1", 9, "/chat?x=1"));
        assert_eq!(split_url("ws://[::1]/"), parts(false, "::1", 80, "/"));
        assert_eq!(split_url("wss://127.0.0.1:7272/x"), parts(true, "127.0.0.1", 7272, "/x"));
        assert_eq!(split_url("wss://localhost"), parts(true, "localhost", 443, "/"));
        assert_eq!(split_url("wss://[::1]/"), parts(true, "::1", 443, "/"));
        for bad in [
            "http://x/",
            "ws://",
            "ws://:80/",
            "ws://h:99999/",
            "ws://[::1/",
            "ws://h:x/",
            "ws://a@b/",
            "ws://h/a b",
            "wss://",
            "wss:/h/",
            "WSS://h/",
        ] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_is_allowed_and_remote_refused() {
        let t = resolve("ws://127.0.0.1:7272/", false).unwrap();
        assert_eq!(t.url, "ws://127.0.0.1:7272/");
        assert_eq!(t.addr, "127.0.0.1:7272".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:7272");
        let t = resolve("ws://[::1]:80/x", false).unwrap();
        assert_eq!(t.host, "[::1]:80");
        assert_eq!(t.path, "/x");
        assert!(matches!(resolve("ws://192.0.2.1:80/", false), Err(TargetError::NotLoopback(_))));
        assert!(resolve("ws://192.0.2.1:80/", true).is_ok());
        assert!(matches!(resolve("ws://10.1.2.3/", false), Err(TargetError::NotLoopback(_))));
        assert!(t.tls.is_none());
        let t = resolve("wss://127.0.0.1:7272/", false).unwrap();
        assert!(matches!(t.tls, Some(ServerName::IpAddress(_))), "{t:?}");
        assert_eq!((t.host.as_str(), t.path.as_str()), ("127.0.0.1:7272", "/"));
        let t = resolve("wss://localhost:7272/", false).unwrap();
        assert_eq!(t.tls, ServerName::try_from("localhost").ok());
        assert!(matches!(resolve("wss://[::1]:1/", false).unwrap().tls, Some(ServerName::IpAddress(_))));
        assert!(matches!(resolve("wss://192.0.2.1:443/", false), Err(TargetError::NotLoopback(_))));
    }

    #[test]
    fn ws_and_wss_do_not_mix() {
        let ts = resolve_all(&["wss://127.0.0.1:1/", "wss://localhost:2/"], false).unwrap();
        assert!(ts.iter().all(|t| t.tls.is_some()) && same_scheme(&ts));
        let err = resolve_all(&["ws://127.0.0.1:1/", "wss://127.0.0.1:2/"], false).unwrap_err();
        assert!(err.contains("cannot be mixed"), "{err}");
        assert!(resolve_all(&["wss://127.0.0.1:1/", "ws://127.0.0.1:2/"], false).is_err());
    }

    #[test]
    fn resolves_every_url_and_names_the_bad_one() {
        let ts = resolve_all(&["ws://127.0.0.1:7272/", "ws://[::1]:7273/x", "ws://127.0.0.1:7272/"], false).unwrap();
        let urls: Vec<&str> = ts.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(urls, ["ws://127.0.0.1:7272/", "ws://[::1]:7273/x", "ws://127.0.0.1:7272/"]);
        assert_eq!(ts[1].addr, "[::1]:7273".parse().unwrap());
        assert_eq!(ts[0], ts[2]);
        let err = resolve_all(&["ws://127.0.0.1:1/", "ws://192.0.2.1:80/"], false).unwrap_err();
        assert!(err.contains("--url ws://192.0.2.1:80/") && err.contains("--allow-remote"), "{err}");
        assert!(resolve_all(&["ws://127.0.0.1:1/", "ws://192.0.2.1:80/"], true).is_ok());
        let err = resolve_all(&["ws://127.0.0.1:1/", "http://x/"], false).unwrap_err();
        assert!(err.contains("http://x/"), "{err}");
        assert!(resolve_all::<&str>(&[], false).is_err());
    }

    #[test]
    fn clients_are_spread_round_robin() {
        let spread: Vec<usize> = (0..7).map(|i| target_of(i, 3)).collect();
        assert_eq!(spread, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..10).all(|i| target_of(i, 1) == 0));
        assert_eq!(target_of(5, 0), 0);
        assert_eq!(clients_per_target(7, 3), [3, 2, 2]);
        assert_eq!(clients_per_target(2, 3), [1, 1, 0]);
        assert_eq!(clients_per_target(100, 1), [100]);
        assert_eq!(clients_per_target(4, 2), [2, 2]);
        // The counts are what target_of gives.
        for (clients, n) in [(0, 2), (1, 4), (13, 5), (100, 3), (64, 64)] {
            let mut counted = vec![0; n];
            (0..clients).for_each(|i| counted[target_of(i, n)] += 1);
            assert_eq!(clients_per_target(clients, n), counted, "{clients} over {n}");
        }
    }
}
