//! The composition root: the command line, each subsystem's flags flattened into one, turned into the
//! application those flags ask for and the reactor that serves it. Only this module knows every subsystem;
//! the seam ([`crate::app`]) and the reactor know none.

use std::time::Instant;

use clap::Parser;

use crate::app::Application;
use crate::chat::dialect::Dialect;
use crate::chat::ChatApp;
use crate::cluster::flags::ClusterArgs;
use crate::cluster::ClusterPresence;
use crate::config::{Args, Config, ConfigError};
use crate::config_file::{self, LayerError};
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
    /// Read the flags' values from this TOML file (every flag a key: max-connections = 10000); the command
    /// line and WSCHAT_* environment variables win over it
    #[arg(long, value_name = "FILE", env = "WSCHAT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Print the configuration in force (command line, environment, file, defaults) as a file --config reads,
    /// and exit
    #[arg(long)]
    pub print_config: bool,
    /// The daemon's own flags.
    #[command(flatten)]
    pub daemon: Args,
    /// The cluster's.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// What the command line asks for: the reactor's configuration and the application it serves.
pub struct Daemon {
    /// The reactor's configuration.
    pub config: Config,
    app: Box<dyn Application>,
}

/// The command line as `wschat` started with it: over the environment and the configuration file.
pub struct Loaded {
    /// The flags.
    pub command_line: CommandLine,
    /// What to print instead of running: the configuration in force as a file (`--print-config`), the man
    /// page (`--man-page`) or a completion script (`--completions SHELL`).
    pub print: Option<Vec<u8>>,
    /// The configuration in force, as `--print-config` prints it (what SIGHUP compares).
    pub effective: String,
    /// The configuration file, if one was read (read again at SIGHUP).
    pub file: Option<config_file::FileLayer>,
}

impl CommandLine {
    /// `argv` over the environment (`WSCHAT_*`) and the file `--config` names.
    pub fn load(argv: &[std::ffi::OsString]) -> Result<Loaded, LayerError> {
        let cmd = <CommandLine as clap::CommandFactory>::command();
        let (matches, file) = config_file::layered(crate::manual::with_flags(cmd.clone()), argv)?;
        let manual = crate::manual::requested(|| config_file::with_env(cmd.clone()), &matches);
        let command_line =
            <CommandLine as clap::FromArgMatches>::from_arg_matches(&matches).map_err(LayerError::Clap)?;
        let effective = config_file::effective(&config_file::with_env(cmd), &matches, file.as_ref());
        let print = manual.or_else(|| command_line.print_config.then(|| effective.clone().into_bytes()));
        Ok(Loaded { command_line, print, effective, file })
    }

    /// Validates every subsystem's flags and builds the application: the echo with `--echo`, else the chat
    /// with its limits — a node of a cluster with `--cluster`.
    pub fn into_daemon(self) -> Result<Daemon, ConfigError> {
        let config = self.daemon.into_config()?;
        let node = self.cluster.into_node(&config, random_node_id())?;
        let dialect = if config.escape_html { Dialect::SeedHtml } else { Dialect::Seed };
        let (limits, ping, auth) = ((&config).into(), config.app_ping, config.auth.clone());
        let app: Box<dyn Application> = match node {
            _ if config.echo => Box::new(EchoApp),
            None => Box::new(ChatApp::new(limits).with_default_dialect(dialect).with_app_ping(ping).with_auth(auth)),
            Some(node) => {
                let presence = ClusterPresence::new(node, Instant::now());
                let chat = ChatApp::with_presence(limits, presence).with_default_dialect(dialect);
                Box::new(chat.with_app_ping(ping).with_auth(auth))
            }
        };
        Ok(Daemon { config, app })
    }

    /// `wschat` with `args`, which clap must accept.
    #[cfg(test)]
    pub(crate) fn of(args: &[&str]) -> CommandLine {
        CommandLine::try_parse_from(std::iter::once("wschat").chain(args.iter().copied())).expect("clap accepts")
    }
}

/// A reloader for SIGHUP: `argv` loaded again (the file read again) into the configuration and the keys whose
/// value changed since `effective` (the last configuration taken).
pub fn reloader(argv: Vec<std::ffi::OsString>, mut effective: String) -> crate::reactor::Reloader {
    Box::new(move || {
        let loaded = CommandLine::load(&argv).map_err(|e| e.to_string())?;
        let config = loaded.command_line.daemon.into_config().map_err(|e| e.to_string())?;
        let changed = config_file::changed_keys(&effective, &loaded.effective);
        effective = loaded.effective;
        let file = loaded.file.map(|f| f.path);
        Ok(crate::reactor::Reload { config, changed, file })
    })
}

impl Daemon {
    /// Binds the listeners, serving the application.
    pub fn bind(self) -> Result<Reactor, StartError> {
        Reactor::bind(self.config, self.app)
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

    #[test]
    fn one_command_line_holds_every_subsystems_flags() {
        CommandLine::command().debug_assert();
        let e = CommandLine::of(&["--cluster", "redis://127.0.0.1:6390", "--echo"]).into_daemon().err();
        assert_eq!(e.map(|e| e.to_string()).as_deref(), Some("--cluster: cannot be used with --echo"));
        let mut out = Effects::default();
        CommandLine::of(&["--echo"]).into_daemon().unwrap().app.on_text(1, "hi", &mut out);
        assert_eq!(&out.sends[0].bytes[..], b"\x81\x02hi", "the echo sends it back");
        let mut chat = CommandLine::of(&[]).into_daemon().unwrap().app;
        chat.on_text(1, r#"{"type":"login","name":"a","room_id":"1"}"#, &mut out);
        assert!(chat.is_member(1), "the chat logs in");
        let mut node = CommandLine::of(&["--cluster", "redis://127.0.0.1:6390"]).into_daemon().unwrap().app;
        assert!(node.links().is_some(), "a node of a cluster keeps its Redis links");
    }
}
