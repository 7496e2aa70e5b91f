//! The composition root: the command line, each subsystem's flags flattened into one, turned into the
//! application those flags ask for and the reactor that serves it. Only this module knows every subsystem;
//! the seam ([`crate::app`]) and the reactor know none.

use std::time::Instant;

use clap::Parser;

use crate::app::Application;
use crate::chat::dialect::Dialect;
use crate::chat::ChatApp;
use crate::cluster::flags::{ClusterArgs, ClusterConfig};
use crate::cluster::node::NodeConfig;
use crate::cluster::ClusterPresence;
use crate::config::{Args, Config, ConfigError};
use crate::echo::EchoApp;
use crate::reactor::{Reactor, StartError};

/// Command-line flags of `wschat`.
#[derive(Debug, Parser)]
#[command(
    name = "wschat",
    version,
    about = "WebSocket chat daemon speaking the workerman-chat protocol",
    long_about = "WebSocket chat daemon speaking the workerman-chat protocol on a single-threaded mio reactor.\n\
                  Open http://127.0.0.1:55151 in a browser to chat. RUST_LOG sets the log level (default info)."
)]
pub struct CommandLine {
    /// The daemon's own flags.
    #[command(flatten)]
    pub daemon: Args,
    /// The cluster's.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// What the command line asks the daemon to be, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The reactor's and the chat's configuration.
    pub config: Config,
    /// The cluster to join (`--cluster`), if any.
    pub cluster: Option<ClusterConfig>,
}

impl CommandLine {
    /// Validates every subsystem's flags.
    pub fn into_plan(self) -> Result<Plan, ConfigError> {
        let config = self.daemon.into_config()?;
        let cluster = self.cluster.into_config(config.echo)?;
        Ok(Plan { config, cluster })
    }
}

impl Plan {
    /// The application the plan asks for: the echo with `--echo`, else the chat with its limits — a node of
    /// a cluster with `--cluster`.
    pub fn application(&self) -> Box<dyn Application> {
        let cfg = &self.config;
        if cfg.echo {
            return Box::new(EchoApp);
        }
        let dialect = if cfg.escape_html { Dialect::SeedHtml } else { Dialect::Seed };
        match &self.cluster {
            None => Box::new(ChatApp::new(cfg.into()).with_default_dialect(dialect).with_app_ping(cfg.app_ping)),
            Some(c) => {
                let node = NodeConfig {
                    url: c.url.clone(),
                    addr: c.addr,
                    keys: c.keys.clone(),
                    heartbeat: c.heartbeat,
                    buffer: c.buffer,
                    history: cfg.history,
                    history_budget: cfg.history_budget,
                    stream_bytes: c.stream_bytes,
                    id: random_node_id(),
                };
                let presence = ClusterPresence::new(node, Instant::now());
                Box::new(
                    ChatApp::with_presence(cfg.into(), presence)
                        .with_default_dialect(dialect)
                        .with_app_ping(cfg.app_ping),
                )
            }
        }
    }

    /// Binds the listeners, serving the plan's application.
    pub fn bind(self) -> Result<Reactor, StartError> {
        let app = self.application();
        Reactor::bind(self.config, app)
    }
}

/// A fresh random node id: the standard library's randomly keyed hasher over the process id and the time.
fn random_node_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::app::Effects;

    fn plan(args: &[&str]) -> Result<Plan, ConfigError> {
        let mut all = vec!["wschat"];
        all.extend_from_slice(args);
        CommandLine::try_parse_from(all).expect("clap accepts").into_plan()
    }

    #[test]
    fn one_command_line_holds_every_subsystems_flags() {
        CommandLine::command().debug_assert();
        let p = plan(&["--cluster", "redis://127.0.0.1:6390", "--cluster-prefix", "c2", "--history", "5"]).unwrap();
        assert_eq!((p.config.history, p.cluster.map(|c| c.addr.port())), (5, Some(6390)));
        assert!(plan(&[]).unwrap().cluster.is_none());
        let e = plan(&["--cluster", "redis://127.0.0.1:6390", "--echo"]).unwrap_err();
        assert_eq!(e.to_string(), "--cluster: cannot be used with --echo");
    }

    #[test]
    fn the_plan_picks_the_application() {
        let mut out = Effects::default();
        plan(&["--echo"]).unwrap().application().on_text(1, "hi", &mut out);
        assert_eq!(&out.sends[0].bytes[..], b"\x81\x02hi", "the echo sends it back");
        out.clear();
        let mut chat = plan(&[]).unwrap().application();
        chat.on_text(1, r#"{"type":"login","name":"a","room_id":"1"}"#, &mut out);
        chat.end_turn(&mut out);
        assert!(chat.is_member(1), "the chat logs in");
    }

    #[test]
    fn node_ids_differ() {
        assert_ne!(random_node_id(), random_node_id());
    }
}
