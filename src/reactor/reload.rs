//! SIGHUP: the TLS pair's files read again, and with `--config` the file read again, and what may change at run time taken — the origins
//! allowed, the connection and rate limits, the output limits, the deadlines of new connections, the log
//! level — while a change to anything else (a port, the cluster, the chat's limits) is logged as needing a
//! restart. A file that cannot be read or is refused leaves everything as it was, and says why.

use log::{info, warn};

use super::Reactor;
use crate::config::Config;

/// What reading the configuration again gave: the configuration, the keys whose value changed, the file.
pub struct Reload {
    /// The configuration as the command line, the environment and the file now say.
    pub config: Config,
    /// The keys (flag names) whose value changed since the last reload (or the start).
    pub changed: Vec<String>,
    /// The configuration file, for the log.
    pub file: Option<std::path::PathBuf>,
}

/// Reads the configuration again (the daemon's composition root knows how).
pub type Reloader = Box<dyn FnMut() -> Result<Reload, String>>;

/// The keys a running daemon takes at SIGHUP. `tls-cert` and `tls-key` are not among them: their files are
/// read again at every SIGHUP, at the paths of the start.
pub const RELOADABLE: [&str; 10] = [
    "allow-origin",
    "max-connections",
    "max-connections-per-ip",
    "max-messages-per-sec",
    "handshake-timeout-ms",
    "ping-interval-secs",
    "send-buffer-limit",
    "max-output-bytes",
    "max-web-pending-per-ip",
    "log-level",
];

impl Reactor {
    /// SIGHUP: reads the certificate and key again (new handshakes get the new pair; connections already
    /// open keep theirs; a file that fails leaves the pair in use), and the configuration file.
    pub(super) fn reload(&mut self) {
        crate::systemd::notify(crate::systemd::State::Reloading);
        self.reload_config();
        match (self.tls.as_mut(), self.metrics.tls.as_mut()) {
            (Some(store), Some(stats)) => match store.reload() {
                Ok(()) => {
                    stats.reloads_total += 1;
                    info!("SIGHUP: certificate and key reloaded; new handshakes use them");
                }
                Err(e) => {
                    stats.reload_failures_total += 1;
                    warn!("SIGHUP: {e}; keeping the certificate and key in use");
                }
            },
            _ => info!("SIGHUP: nothing to reload (no --tls-cert)"),
        }
        crate::systemd::notify(crate::systemd::State::Ready);
    }

    /// Reads the configuration again at SIGHUP, when `--config` was given.
    pub(super) fn reload_config(&mut self) {
        let Some(reloader) = self.reloader.as_mut() else { return };
        let reload = match reloader() {
            Ok(r) => r,
            Err(e) => return warn!("SIGHUP: {e}; the configuration in force is kept"),
        };
        let file = reload.file.as_ref().map_or("the configuration".to_string(), |f| f.display().to_string());
        let (mut taken, mut later) = (Vec::new(), Vec::new());
        for key in &reload.changed {
            if self.take(key, &reload.config) {
                taken.push(key.as_str());
            } else {
                later.push(key.as_str());
            }
        }
        match taken.is_empty() {
            true if later.is_empty() => info!("SIGHUP: {file} read again; nothing changed"),
            true => {}
            false => info!("SIGHUP: {file} read again; now in force: {}", taken.join(", ")),
        }
        if !later.is_empty() {
            warn!("SIGHUP: {} changed in {file}; that takes a restart of wschat", later.join(", "));
        }
    }

    /// Takes `key`'s value from `new`, if it may change at run time.
    fn take(&mut self, key: &str, new: &Config) -> bool {
        let cfg = &mut self.cfg;
        match key {
            "allow-origin" => cfg.allowed_origins = new.allowed_origins.clone(),
            "max-connections" => cfg.max_connections = new.max_connections,
            "max-connections-per-ip" => cfg.max_connections_per_ip = new.max_connections_per_ip,
            "max-messages-per-sec" => cfg.max_messages_per_sec = new.max_messages_per_sec,
            "handshake-timeout-ms" => cfg.handshake_timeout = new.handshake_timeout,
            "ping-interval-secs" => cfg.ping_interval = new.ping_interval,
            "send-buffer-limit" => cfg.send_buffer_limit = new.send_buffer_limit,
            "max-output-bytes" => cfg.max_output_bytes = new.max_output_bytes,
            "max-web-pending-per-ip" => cfg.max_web_pending_per_ip = new.max_web_pending_per_ip,
            "log-level" => {
                cfg.log_level = new.log_level;
                if std::env::var_os("RUST_LOG").is_none() {
                    log::set_max_level(new.log_level);
                }
            }
            _ => return false,
        }
        debug_assert!(RELOADABLE.contains(&key));
        true
    }

    /// Reads the configuration again at each SIGHUP with `reloader`.
    pub fn set_reloader(&mut self, reloader: Reloader) {
        self.reloader = Some(reloader);
    }
}
