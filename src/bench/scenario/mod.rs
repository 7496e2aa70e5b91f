//! The scenarios on top of the engine: `fanout` (paced senders, latency and audit), `saturate` (rate steps
//! up, then bisects, to the highest sustained delivery rate), `connect` (handshakes and logins per second,
//! server memory per idle connection) and `churn` (a fanout whose clients are cut and resume their
//! sessions, audited over their connections) and `api` (the server API pushing to one room, each message
//! audited and timed by the room's clients). Every phase has a deadline, so
//! every run ends in bounded time whatever the server does. The clients may be spread over several targets,
//! the nodes of one cluster: client i connects to target i mod n, and the audit follows every (receiver,
//! sender) pair whatever nodes they are on.

mod api;
mod churn;
mod connect;
mod cpu;
mod fanout;
mod runner;
mod saturate;
mod search;

pub use search::RateSearch;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::runner::Run;
use super::api::{ApiConfig, ApiError};
use super::engine::{Engine, EngineConfig, EngineError, Proto};
use super::report::{Report, UrlShare};
use super::sys;
use super::target::{clients_per_target, same_scheme, Target};

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Paced senders for a fixed time: throughput, latency, audit.
    Fanout,
    /// Rate steps up until deliveries fall behind or p99 passes the bound.
    Saturate,
    /// Many connections, handshakes and logins per second, memory per idle connection.
    Connect,
    /// A fanout whose clients (logged in with resume) are cut at random without a close frame and resume.
    Churn,
    /// The server API pushes to one room at a paced rate; the room's clients audit and time every message.
    Api,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Fanout => "fanout",
            Scenario::Saturate => "saturate",
            Scenario::Connect => "connect",
            Scenario::Churn => "churn",
            Scenario::Api => "api",
        })
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The scenario.
    pub scenario: Scenario,
    /// The resolved targets, at least one: the nodes of one cluster (uids unique over all of them, a message
    /// said on one relayed to the room's members on every other), or one server. Client i connects to
    /// target i mod n. The raw protocol relays nothing between servers: fanout and saturate take one target.
    pub targets: Vec<Target>,
    /// Its protocol.
    pub proto: Proto,
    /// Connections.
    pub clients: usize,
    /// Sending connections (the first ones); `None`: every client sends.
    pub senders: Option<usize>,
    /// Offered messages per second of all senders together; `None`: the scenario's default.
    pub rate: Option<f64>,
    /// Measured time (saturate: per step; connect: how long connections are held idle).
    pub duration: Duration,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Content bytes per message.
    pub payload: usize,
    /// The server's pid, for its CPU share and RSS.
    pub pid: Option<u32>,
    /// Connections handshaking at once.
    pub concurrency: usize,
    /// Chat room size; `None`: one room for fanout and saturate, rooms of 10 for connect.
    pub room_size: Option<usize>,
    /// Saturate: a step whose p99 exceeds this fails.
    pub p99_bound: Duration,
    /// Saturate: most rate steps.
    pub max_steps: usize,
    /// Deadline for connecting and logging everyone in.
    pub setup_timeout: Duration,
    /// Deadline for the deliveries still in flight after sending stops.
    pub drain_timeout: Duration,
    /// The TLS client configuration (what is trusted), needed when the targets are wss://
    /// ([`crate::bench::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Churn: connections cut per second, all clients together.
    pub cuts_per_sec: f64,
    /// Churn: the share of cuts that are resets (the others are FINs).
    pub reset_share: f64,
    /// Churn: how long a cut client stays away before it reconnects.
    pub away: Duration,
    /// Chat: every client logs in with `"resume":true` (churn always does).
    pub opt_in: bool,
    /// Chat: every client logs in with a token signed with this key, its user_id its login name.
    pub token_key: Option<crate::bench::token::TokenKey>,
    /// Chat: the room of a run with one room (`None`: the login names none, so the server's default); the api
    /// scenario's clients are in it and its requests go to it (`None`: "1", the daemon's default room).
    pub room: Option<String>,
    /// Api: the server API to load.
    pub api: Option<ApiConfig>,
}

impl BenchConfig {
    /// A configuration with the CLI's defaults for `scenario` against `target` (given as `url`).
    pub fn new(scenario: Scenario, url: &str, target: Target) -> BenchConfig {
        BenchConfig::with_targets(scenario, vec![Target { url: url.to_string(), ..target }])
    }

    /// A configuration with the CLI's defaults for `scenario` against `targets`, the clients spread over them
    /// round robin.
    pub fn with_targets(scenario: Scenario, targets: Vec<Target>) -> BenchConfig {
        BenchConfig {
            scenario,
            targets,
            proto: Proto::Chat,
            clients: 100,
            senders: None,
            rate: None,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            payload: 64,
            pid: None,
            concurrency: 200,
            room_size: None,
            p99_bound: Duration::from_millis(50),
            max_steps: 24,
            setup_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(2),
            tls: None,
            cuts_per_sec: 10.0,
            reset_share: 0.5,
            away: Duration::ZERO,
            opt_in: false,
            token_key: None,
            room: None,
            api: None,
        }
    }
}

/// Why a run failed as a whole.
#[derive(Debug)]
pub enum BenchError {
    /// The engine could not poll or connect.
    Engine(EngineError),
    /// Not every client was ready by the setup deadline.
    Setup {
        /// Clients ready.
        ready: usize,
        /// Clients asked for.
        wanted: usize,
        /// The first failure seen, if any.
        first_failure: Option<String>,
    },
    /// A setting that cannot work.
    Config(String),
    /// The server API cannot be used (api).
    Api(ApiError),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Engine(e) => write!(f, "{e}"),
            BenchError::Setup { ready, wanted, first_failure } => {
                write!(f, "only {ready} of {wanted} clients were ready in time")?;
                if let Some(why) = first_failure {
                    write!(f, " (first failure: {why})")?;
                }
                Ok(())
            }
            BenchError::Config(why) => write!(f, "bad settings: {why}"),
            BenchError::Api(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<ApiError> for BenchError {
    fn from(e: ApiError) -> Self {
        BenchError::Api(e)
    }
}

impl From<EngineError> for BenchError {
    fn from(e: EngineError) -> Self {
        BenchError::Engine(e)
    }
}

/// Runs the configured scenario.
pub fn run(cfg: &BenchConfig) -> Result<Report, BenchError> {
    if cfg.clients == 0 {
        return Err(BenchError::Config("--clients must be at least 1".into()));
    }
    if cfg.senders.is_some_and(|s| s > cfg.clients) {
        return Err(BenchError::Config("--senders cannot exceed --clients".into()));
    }
    if cfg.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(BenchError::Config("--rate must be a positive number".into()));
    }
    if cfg.targets.is_empty() {
        return Err(BenchError::Config("at least one target URL is needed".into()));
    }
    if !same_scheme(&cfg.targets) {
        return Err(BenchError::Config("ws:// and wss:// URLs cannot be mixed in one run".into()));
    }
    let wss = cfg.targets[0].tls.is_some();
    if wss && cfg.tls.is_none() {
        return Err(BenchError::Config("wss:// needs --ca FILE or --insecure".into()));
    }
    let distinct = cfg.targets.iter().filter(|t| t.addr != cfg.targets[0].addr).count();
    if cfg.scenario == Scenario::Churn {
        churn::check(cfg)?;
    }
    if let Some(room) = &cfg.room {
        if room.is_empty() || room.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(BenchError::Config(
                "--room must be a name without quotes, backslashes or control characters".into(),
            ));
        }
    }
    if cfg.scenario == Scenario::Api {
        api::check(cfg)?;
    }
    if cfg.proto == Proto::Raw && cfg.scenario != Scenario::Connect && distinct > 0 {
        return Err(BenchError::Config(
            "the raw protocol relays nothing between servers: fanout and saturate take one --url".into(),
        ));
    }
    sys::raise_fd_limit();
    let engine = Engine::new(EngineConfig {
        targets: cfg.targets.clone(),
        proto: cfg.proto,
        payload: cfg.payload,
        max_message_bytes: 1 << 20,
        max_unsent_bytes: 4 << 20,
        tls: if wss { cfg.tls.clone() } else { None },
        resume: cfg.scenario == Scenario::Churn,
        opt_in: cfg.opt_in,
    })?;
    let mut report = Report {
        scenario: cfg.scenario.to_string(),
        proto: cfg.proto.to_string(),
        resume: cfg.opt_in || cfg.scenario == Scenario::Churn,
        token_alg: cfg.token_key.as_ref().map(|k| format!("{:?}", k.algorithm())),
        url: cfg.targets[0].url.clone(),
        urls: cfg
            .targets
            .iter()
            .zip(clients_per_target(cfg.clients, cfg.targets.len()))
            .map(|(t, clients)| UrlShare { url: t.url.clone(), clients })
            .collect(),
        transport: if wss { "tls" } else { "tcp" }.to_string(),
        clients: cfg.clients,
        payload: cfg.payload,
        duration_s: cfg.duration.as_secs_f64(),
        warmup_s: cfg.warmup.as_secs_f64(),
        ..Report::default()
    };
    let mut run = Run { cfg, engine, unsettled: 0, tokens: runner::mint_tokens(cfg), api: None };
    match cfg.scenario {
        Scenario::Fanout => run.fanout(&mut report)?,
        Scenario::Saturate => run.saturate(&mut report)?,
        Scenario::Connect => run.connect(&mut report)?,
        Scenario::Churn => run.churn(&mut report)?,
        Scenario::Api => run.api(&mut report)?,
    }
    run.finish(&mut report);
    churn::judge(&mut report);
    api::judge(&mut report);
    run.engine.close_all();
    Ok(report)
}
