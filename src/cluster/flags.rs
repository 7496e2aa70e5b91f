//! The cluster's command-line flags (`--cluster*`), flattened into the daemon's command line, and the
//! validated [`ClusterConfig`] they produce.

use std::net::SocketAddr;
use std::time::Duration;

use super::link::RedisUrl;
use super::node::{DEFAULT_BUFFER, DEFAULT_HEARTBEAT_MS, DEFAULT_STREAM_BYTES};
use super::wire::{Keys, DEFAULT_PREFIX};
use crate::config::ConfigError;

/// The flags of a node of a cluster.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Join a cluster of wschat nodes through this Redis server: redis://[user:password@]HOST:PORT[/DB]
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
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
}

/// How a node joins its cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Redis server.
    pub url: RedisUrl,
    /// Its address, resolved at start.
    pub addr: SocketAddr,
    /// The chat's keys in Redis.
    pub keys: Keys,
    /// The lease's renewal interval.
    pub heartbeat: Duration,
    /// Bytes kept while Redis is away.
    pub buffer: usize,
    /// Bytes of messages each node's stream keeps.
    pub stream_bytes: usize,
}

impl ClusterArgs {
    /// Validates the flags into the cluster to join, if `--cluster` names one; `echo` tells whether the
    /// daemon serves the echo, which has no chat to share.
    pub fn into_config(self, echo: bool) -> Result<Option<ClusterConfig>, ConfigError> {
        let Some(url) = &self.cluster else { return Ok(None) };
        let err = |flag, reason: String| ConfigError::Unusable { flag, reason };
        if echo {
            return Err(err("--cluster", "cannot be used with --echo".to_string()));
        }
        let url = RedisUrl::parse(url).map_err(|e| err("--cluster", e.to_string()))?;
        let addr = url
            .socket_addrs()
            .map_err(|e| err("--cluster", format!("cannot resolve {}: {e}", url.host_port())))?
            .into_iter()
            .next()
            .ok_or_else(|| err("--cluster", format!("{} resolves to no address", url.host_port())))?;
        let keys = Keys::new(&self.cluster_prefix).map_err(|e| err("--cluster-prefix", e.to_string()))?;
        if !(50..=60_000).contains(&self.cluster_heartbeat_ms) {
            return Err(ConfigError::OutOfRange { flag: "--cluster-heartbeat-ms", allowed: "between 50 and 60000" });
        }
        if self.cluster_buffer < 64 * 1024 {
            return Err(ConfigError::OutOfRange { flag: "--cluster-buffer", allowed: "at least 65536" });
        }
        if self.cluster_stream_bytes < 64 * 1024 {
            return Err(ConfigError::OutOfRange { flag: "--cluster-stream-bytes", allowed: "at least 65536" });
        }
        Ok(Some(ClusterConfig {
            url,
            addr,
            keys,
            heartbeat: Duration::from_millis(self.cluster_heartbeat_ms),
            buffer: self.cluster_buffer,
            stream_bytes: self.cluster_stream_bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The cluster's flags alone on a command line.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        cluster: ClusterArgs,
    }

    fn parse(args: &[&str], echo: bool) -> Result<Option<ClusterConfig>, ConfigError> {
        let mut all = vec!["wschat"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("clap accepts").cluster.into_config(echo)
    }

    #[test]
    fn cluster_flags() {
        assert!(parse(&[], false).unwrap().is_none());
        let cluster = parse(&["--cluster", "redis://127.0.0.1:6390/2", "--cluster-prefix", "chat2"], false).unwrap();
        let cluster = cluster.unwrap();
        assert_eq!((cluster.addr.port(), cluster.url.db, cluster.keys.prefix()), (6390, 2, "chat2"));
        assert_eq!((cluster.heartbeat, cluster.buffer), (Duration::from_secs(1), 8 * 1024 * 1024));
        assert_eq!(cluster.stream_bytes, 16 * 1024 * 1024);
        for bad in [
            &["--cluster", "http://x"][..],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-prefix", "a:b"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-heartbeat-ms", "1"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-buffer", "10"],
            &["--cluster", "redis://127.0.0.1:1", "--cluster-stream-bytes", "1000"],
        ] {
            let e = parse(bad, false).unwrap_err();
            assert!(e.to_string().starts_with("--cluster"), "{e}");
        }
        let e = parse(&["--cluster", "redis://127.0.0.1:1"], true).unwrap_err();
        assert!(e.to_string().starts_with("--cluster"), "{e}");
    }
}
