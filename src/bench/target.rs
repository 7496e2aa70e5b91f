//! The bench's targets: `ws://host:port/path` URLs resolved to socket addresses, each refused unless it is a
//! loopback address (the bench floods whatever it points at) or the caller allowed remote targets. A run may
//! have several targets (the nodes of one cluster); its clients are spread over them round robin.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

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
}

/// Why a URL cannot be a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Not `ws://host[:port][/path]`.
    BadUrl(String),
    /// The host does not resolve.
    Unresolved(String),
    /// The host resolves to a non-loopback address and remote targets were not allowed.
    NotLoopback(SocketAddr),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::BadUrl(url) => write!(f, "not a ws://host[:port][/path] URL: {url}"),
            TargetError::Unresolved(host) => write!(f, "cannot resolve {host}"),
            TargetError::NotLoopback(addr) => {
                write!(f, "{addr} is not a loopback address; pass --allow-remote to load a remote server")
            }
        }
    }
}

impl std::error::Error for TargetError {}

/// Splits a `ws://` URL into its authority (`host[:port]`, port defaulting to 80) and its path.
pub fn split_url(url: &str) -> Result<(String, u16, String), TargetError> {
    let bad = || TargetError::BadUrl(url.to_string());
    let rest = url.strip_prefix("ws://").ok_or_else(bad)?;
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
            "" => 80,
            p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(bad)?,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, 80),
        }
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad());
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// Parses and resolves `url`; unless `allow_remote`, every address it resolves to must be loopback.
pub fn resolve(url: &str, allow_remote: bool) -> Result<Target, TargetError> {
    let (host, port, path) = split_url(url)?;
    let addrs: Vec<SocketAddr> =
        (host.as_str(), port).to_socket_addrs().map_err(|_| TargetError::Unresolved(host.clone()))?.collect();
    let addr = *addrs.first().ok_or_else(|| TargetError::Unresolved(host.clone()))?;
    if !allow_remote {
        if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(TargetError::NotLoopback(*remote));
        }
    }
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    Ok(Target { url: url.to_string(), addr, host: authority, path })
}

/// Resolves every URL as [`resolve`] does; at least one is needed. The error names the URL at fault.
pub fn resolve_all<S: AsRef<str>>(urls: &[S], allow_remote: bool) -> Result<Vec<Target>, String> {
    if urls.is_empty() {
        return Err("at least one --url is needed".into());
    }
    urls.iter()
        .map(|url| resolve(url.as_ref(), allow_remote).map_err(|e| format!("--url {}: {e}", url.as_ref())))
        .collect()
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
        assert_eq!(split_url("ws://127.0.0.1:7272/"), Ok(("127.0.0.1".into(), 7272, "/".into())));
        assert_eq!(split_url("ws://localhost"), Ok(("localhost".into(), 80, "/".into())));
        assert_eq!(split_url("ws://[::1]:9/chat?x=1"), Ok(("::1".into(), 9, "/chat?x=1".into())));
        assert_eq!(split_url("ws://[::1]/"), Ok(("::1".into(), 80, "/".into())));
        for bad in
            ["http://x/", "ws://", "ws://:80/", "ws://h:99999/", "ws://[::1/", "ws://h:x/", "ws://a@b/", "ws://h/a b"]
        {
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
