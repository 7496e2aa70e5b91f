//! The cluster's command-line flags (`--cluster*`), flattened into the daemon's command line, validated
//! into the [`NodeConfig`] they describe.

use std::time::Duration;

use std::net::SocketAddr;

use super::link::ClusterUrl;
use super::node::{NodeConfig, SentinelConfig, DEFAULT_BUFFER, DEFAULT_HEARTBEAT_MS, DEFAULT_STREAM_BYTES};
use super::peer::PeerConfig;
use super::sentinel::{ask_at_start, StartError};
use super::wire::{Keys, DEFAULT_PREFIX};
use crate::config::{in_range, Config, ConfigError};

/// The flags of a node of a cluster.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Join a cluster of wschat nodes through this Redis server: redis://[user:password@]HOST:PORT[/DB], or
    /// the master Sentinel watches: redis+sentinel://[user:password@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// The sentinels' password, when it is not the master's (the URL's)
    #[arg(long, value_name = "PASSWORD")]
    pub cluster_sentinel_password: Option<String>,
    /// Name of the chat in Redis, so that several chats can share one server (letters, digits, _ - .)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PREFIX)]
    pub cluster_prefix: String,
    /// How often a node renews its lease; a node silent for 4 heartbeats is taken for dead
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HEARTBEAT_MS)]
    pub cluster_heartbeat_ms: u64,
    /// Bytes of messages kept for the cluster while Redis is away; past it says get cluster_unavailable
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BUFFER)]
    pub cluster_buffer: usize,
    /// Bytes of its latest messages a node's stream in Redis keeps for nodes that missed them (the newest
    /// entry always; at most 10000 entries)
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_STREAM_BYTES)]
    pub cluster_stream_bytes: usize,
    /// Take the other nodes' peer links on this address (an IP the other nodes reach, and a port; 0 picks
    /// one) and send this node's messages straight to the nodes that take them, Redis keeping the rest
    #[arg(long, value_name = "ADDR")]
    pub cluster_peer: Option<SocketAddr>,
}

impl ClusterArgs {
    /// Validates the flags into the node of a cluster with id `id`, if `--cluster` names one; `daemon` tells
    /// the history to share and whether the daemon serves the echo, which has no chat to share.
    pub fn into_node(self, daemon: &Config, id: u64) -> Result<Option<NodeConfig>, ConfigError> {
        let Some(url) = &self.cluster else { return Ok(None) };
        let err = |flag, reason: String| ConfigError::Unusable { flag, reason };
        if daemon.echo {
            return Err(err("--cluster", "cannot be used with --echo".to_string()));
        }
        let (url, addr, sentinel) = match ClusterUrl::parse(url).map_err(|e| err("--cluster", e.to_string()))? {
            ClusterUrl::Redis(url) => {
                if self.cluster_sentinel_password.is_some() {
                    let why = "is for a redis+sentinel:// --cluster".to_string();
                    return Err(err("--cluster-sentinel-password", why));
                }
                let addr = url
                    .socket_addrs()
                    .map_err(|e| err("--cluster", format!("cannot resolve {}: {e}", url.host_port())))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| err("--cluster", format!("{} resolves to no address", url.host_port())))?;
                (url, Some(addr), None)
            }
            ClusterUrl::Sentinel(s) => {
                let sentinels =
                    s.socket_addrs().map_err(|e| err("--cluster", format!("cannot resolve a sentinel: {e}")))?;
                let login = s.sentinel_login(self.cluster_sentinel_password.as_deref());
                // Asked once now: a master no sentinel knows is an error at start. No sentinel answering is
                // not: the node keeps asking from the loop.
                let master = match ask_at_start(&sentinels, &login, &s.master) {
                    Ok(addr) => Some(addr),
                    Err(e @ StartError::UnknownMaster { .. }) => return Err(err("--cluster", e.to_string())),
                    Err(e @ StartError::NoAnswer(_)) => {
                        log::warn!("cluster: {e}; asking again from the loop");
                        None
                    }
                };
                let url = s.master_url(master.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))));
                (url, master, Some(SentinelConfig { sentinels, master: s.master.clone(), login }))
            }
        };
        let keys = Keys::new(&self.cluster_prefix).map_err(|e| err("--cluster-prefix", e.to_string()))?;
        in_range((50..=60_000).contains(&self.cluster_heartbeat_ms), "--cluster-heartbeat-ms", "between 50 and 60000")?;
        in_range(self.cluster_buffer >= 64 * 1024, "--cluster-buffer", "at least 65536")?;
        in_range(self.cluster_stream_bytes >= 64 * 1024, "--cluster-stream-bytes", "at least 65536")?;
        let peer = match self.cluster_peer {
            None => None,
            Some(addr) if addr.ip().is_unspecified() => {
                let why = format!("{addr} is not an address other nodes can reach: name this machine's IP");
                return Err(err("--cluster-peer", why));
            }
            Some(addr) => {
                Some(bind_peer(addr).map_err(|e| err("--cluster-peer", format!("cannot listen on {addr}: {e}")))?)
            }
        };
        Ok(Some(NodeConfig {
            url,
            addr,
            sentinel,
            keys,
            heartbeat: Duration::from_millis(self.cluster_heartbeat_ms),
            buffer: self.cluster_buffer,
            history: daemon.history,
            history_budget: daemon.history_budget,
            stream_bytes: self.cluster_stream_bytes,
            id,
            peer,
        }))
    }
}

/// Binds the peer listener (non-blocking, as the reactor drives it); the port as bound is advertised.
fn bind_peer(addr: SocketAddr) -> std::io::Result<PeerConfig> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(PeerConfig { addr: listener.local_addr()?, listener: Some(std::sync::Arc::new(listener)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::CommandLine;

    fn parse(args: &[&str]) -> Result<Option<NodeConfig>, ConfigError> {
        let cli = CommandLine::of(args);
        cli.cluster.into_node(&cli.daemon.into_config().expect("the daemon's flags are valid"), 7)
    }

    #[test]
    fn cluster_flags() {
        assert!(parse(&[]).unwrap().is_none());
        let args = ["--cluster", "redis://127.0.0.1:6390/2", "--cluster-prefix", "chat2", "--history", "5"];
        let cluster = parse(&args).unwrap().unwrap();
        assert_eq!((cluster.id, cluster.history, cluster.history_budget), (7, 5, 64 * 1024 * 1024));
        assert_eq!((cluster.addr.map(|a| a.port()), cluster.url.db, cluster.keys.prefix()), (Some(6390), 2, "chat2"));
        assert!(cluster.sentinel.is_none());
        assert_eq!((cluster.heartbeat, cluster.buffer), (Duration::from_secs(1), 8 * 1024 * 1024));
        assert_eq!(cluster.stream_bytes, 16 * 1024 * 1024);
        assert!(cluster.peer.is_none(), "peer links are asked for");
        let args = ["--cluster", "redis://127.0.0.1:6390", "--cluster-peer", "127.0.0.1:0"];
        let peer = parse(&args).unwrap().unwrap().peer.expect("a peer listener");
        assert!(peer.addr.ip().is_loopback() && peer.addr.port() != 0, "the port as bound: {}", peer.addr);
        // The port taken: a clear error, not a panic.
        let taken = format!("127.0.0.1:{}", peer.addr.port());
        let e = parse(&["--cluster", "redis://127.0.0.1:6390", "--cluster-peer", &taken]).unwrap_err();
        assert!(e.to_string().starts_with("--cluster-peer: cannot listen on"), "{e}");
        for bad in [
            &["--cluster", "http://x"][..],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-prefix", "a:b"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-heartbeat-ms", "1"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-buffer", "10"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-stream-bytes", "1000"],
            &["--cluster", "redis://127.0.0.1:1", "--echo"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-sentinel-password", "x"],
            &["--cluster", "redis+sentinel://127.0.0.1:1"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-peer", "0.0.0.0:7300"],
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("--cluster"), "{e}");
        }
    }
}
