//! `wschat-bench`: the load client. Parses the command line and runs a scenario from `wschat::bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use wschat::bench::api::{ApiConfig, ApiKey, Verb};
use wschat::bench::tls::{client_config, Trust};
use wschat::bench::{self, target, BenchConfig, Proto, Scenario};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    /// C clients log in; S of them send at R messages/s for D seconds after W seconds of warm-up.
    Fanout,
    /// Steps the rate up until deliveries fall behind or p99 passes the bound; reports the highest sustained.
    Saturate,
    /// Opens C connections, handshakes and logs in, holds them idle; handshakes/s and server RSS per connection.
    Connect,
    /// A fanout whose clients log in with resume and are cut at random (reset or FIN, no close frame), then
    /// resume on a new connection (to the next URL); audited over all their connections. Exits 1 unless clean.
    Churn,
    /// C clients log in to one room; the server API (--api) says or sends to it at R requests/s over
    /// --api-clients keep-alive connections; every message audited and timed by every client. Exits 1 unless
    /// clean (nothing lost, duplicated or reordered, every request answered 200).
    Api,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum VerbArg {
    /// POST /api/say: a chat say from uid 0 to the room.
    Say,
    /// POST /api/send: a text pushed verbatim to every connection in the room.
    Send,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtoArg {
    /// The workerman-chat JSON protocol.
    Chat,
    /// A plain broadcast server: every text message to every client.
    Raw,
}

/// Load client for wschat and other WebSocket broadcast servers (loopback only unless --allow-remote).
///
/// With several --url (the nodes of one wschat cluster) client i connects to URL i mod n; the audit follows
/// every receiver and sender whatever nodes they are on.
///
/// wss:// URLs measure TLS (rustls, driven by the same single-threaded loop; every connection a full
/// handshake): they need --ca FILE or --insecure, there is no system root store. ws:// and wss:// do not mix
/// in one run.
#[derive(Debug, Parser)]
#[command(name = "wschat-bench", version)]
struct Args {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: ScenarioArg,
    /// Target URL, ws://host[:port][/path] or wss://…; repeat to spread the clients round robin (client i on
    /// URL i mod n).
    ///
    /// Several URLs are the nodes of one cluster: every node relays a room's messages to the room's members on
    /// every other. Each URL is checked like one (loopback unless --allow-remote); all are ws:// or all wss://.
    /// With --proto raw, fanout and saturate take one URL (raw servers relay nothing between them). wss://
    /// connects with TLS 1.3 or 1.2 (ALPN http/1.1), the certificate checked against the URL's host (an IP
    /// address or a DNS name), and needs --ca or --insecure.
    #[arg(long = "url", value_name = "URL", default_value = "ws://127.0.0.1:7272/", action = clap::ArgAction::Append)]
    urls: Vec<String>,
    /// Number of client connections.
    #[arg(long, short = 'c', default_value_t = 100)]
    clients: usize,
    /// Number of sending clients (default: all).
    #[arg(long, short = 's')]
    senders: Option<usize>,
    /// Offered messages per second, all senders together (fanout default: 200000/clients; saturate: the first step;
    /// api: API requests per second, default 10000).
    #[arg(long, short = 'r')]
    rate: Option<f64>,
    /// Seconds measured (saturate: per step; connect: seconds held idle).
    #[arg(long, short = 'd', default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, short = 'w', default_value_t = 1.0)]
    warmup: f64,
    /// Content bytes per message.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Protocol of the target.
    #[arg(long, value_enum, default_value = "chat")]
    proto: ProtoArg,
    /// The server's pid: report its CPU share and (connect) its RSS per connection (several URLs: one server's).
    #[arg(long)]
    pid: Option<u32>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Connections handshaking at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Chat room size (default: one room; connect: rooms of 10).
    #[arg(long)]
    room_size: Option<usize>,
    /// Chat: the name of the room when every client is in one (default: the server's; api: "1").
    #[arg(long, value_name = "NAME")]
    room: Option<String>,
    /// Api: the server API's address (the daemon's --api), host:port.
    #[arg(long, value_name = "ADDR")]
    api: Option<String>,
    /// Api: a file holding the API key (the daemon's --api-key-file; surrounding whitespace trimmed).
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Api: keep-alive HTTP connections to the API, requests spread round robin.
    #[arg(long, default_value_t = 4)]
    api_clients: usize,
    /// Api: most requests unanswered on one connection (pipelining); a higher -r than the server answers
    /// then measures the API at saturation.
    #[arg(long, default_value_t = 64)]
    api_depth: usize,
    /// Api: the call: say (POST /api/say) or send (POST /api/send to the room, a JSON text the clients read).
    #[arg(long, value_enum, default_value = "say")]
    verb: VerbArg,
    /// Saturate: p99 latency bound in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    p99_bound_ms: f64,
    /// Saturate: most rate steps (a failed rate is tried twice).
    #[arg(long, default_value_t = 24)]
    max_steps: usize,
    /// Seconds allowed for connecting and logging in.
    #[arg(long, default_value_t = 60.0)]
    setup_timeout: f64,
    /// Seconds without progress after which in-flight deliveries are given up (10× this at most in all).
    #[arg(long, default_value_t = 2.0)]
    drain_timeout: f64,
    /// Allow targets that are not loopback addresses.
    #[arg(long)]
    allow_remote: bool,
    /// wss://: trust the certificates of this PEM file (CA or the server's own self-signed certificate).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// wss://: accept any server certificate (the handshake's signature is still verified).
    #[arg(long)]
    insecure: bool,
    /// Churn: connections cut per second, all clients together, during the measured time.
    #[arg(long, default_value_t = 10.0)]
    cuts_per_sec: f64,
    /// Churn: the share of cuts that are resets (SO_LINGER 0, then close); the others are FINs (shutdown).
    #[arg(long, default_value_t = 0.5)]
    reset_share: f64,
    /// Churn: milliseconds a cut client stays away before it reconnects and resumes.
    #[arg(long, default_value_t = 0.0)]
    away_ms: f64,
    /// Chat: every client logs in with "resume":true (churn always does): what opting in costs the server.
    #[arg(long)]
    resume: bool,
    /// Chat: every client logs in with a token (user_id: its login name) signed with this key — a PEM private
    /// key (RSA: RS256, EC P-256: ES256) or else an HS256 secret, the bytes of the server's --auth-key
    #[arg(long, value_name = "FILE")]
    token_key: Option<PathBuf>,
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{name} must be a non-negative number of seconds"))
}

fn config(args: &Args) -> Result<BenchConfig, String> {
    let targets = target::resolve_all(&args.urls, args.allow_remote)?;
    let scenario = match args.scenario {
        ScenarioArg::Fanout => Scenario::Fanout,
        ScenarioArg::Saturate => Scenario::Saturate,
        ScenarioArg::Connect => Scenario::Connect,
        ScenarioArg::Churn => Scenario::Churn,
        ScenarioArg::Api => Scenario::Api,
    };
    let wss = targets.iter().any(|t| t.tls.is_some());
    let trust = match (&args.ca, args.insecure) {
        (Some(path), _) => Some(Trust::Ca(path.clone())),
        (None, true) => Some(Trust::Insecure),
        (None, false) => None,
    };
    let tls = match (wss, trust) {
        (true, None) => return Err("wss:// needs --ca FILE or --insecure".into()),
        (false, Some(_)) => return Err("--ca and --insecure apply to wss:// URLs only".into()),
        (true, Some(trust)) => Some(client_config(&trust).map_err(|e| format!("--ca: {e}"))?),
        (false, None) => None,
    };
    let mut cfg = BenchConfig::with_targets(scenario, targets);
    cfg.tls = tls;
    cfg.proto = match args.proto {
        ProtoArg::Chat => Proto::Chat,
        ProtoArg::Raw => Proto::Raw,
    };
    cfg.clients = args.clients;
    cfg.senders = args.senders;
    cfg.rate = args.rate;
    cfg.duration = secs("duration", args.duration)?;
    cfg.warmup = secs("warmup", args.warmup)?;
    cfg.payload = args.payload;
    cfg.pid = args.pid;
    cfg.concurrency = args.concurrency.max(1);
    cfg.room_size = args.room_size;
    cfg.p99_bound = secs("p99-bound-ms", args.p99_bound_ms / 1000.0)?;
    cfg.max_steps = args.max_steps;
    cfg.setup_timeout = secs("setup-timeout", args.setup_timeout)?;
    cfg.drain_timeout = secs("drain-timeout", args.drain_timeout)?;
    cfg.cuts_per_sec = args.cuts_per_sec;
    cfg.reset_share = args.reset_share;
    cfg.away = secs("away-ms", args.away_ms / 1000.0)?;
    if args.resume && cfg.proto != Proto::Chat {
        return Err("--resume needs the chat protocol: raw servers have no sessions".into());
    }
    cfg.opt_in = args.resume;
    if let Some(path) = &args.token_key {
        if cfg.proto != Proto::Chat {
            return Err("--token-key needs the chat protocol".into());
        }
        let key =
            wschat::bench::token::TokenKey::load(path).map_err(|e| format!("--token-key {}: {e}", path.display()))?;
        cfg.token_key = Some(key);
    }
    cfg.room = args.room.clone();
    cfg.api = api_config(args)?;
    Ok(cfg)
}

/// The API settings: `--api` and `--api-key-file` together (the api scenario needs them, the others take none).
fn api_config(args: &Args) -> Result<Option<ApiConfig>, String> {
    let (addr, path) = match (&args.api, &args.api_key_file, args.scenario) {
        (Some(addr), Some(path), ScenarioArg::Api) => (addr, path),
        (None, None, ScenarioArg::Api) => return Err("api needs --api ADDR and --api-key-file FILE".into()),
        (_, _, ScenarioArg::Api) => return Err("api needs both --api ADDR and --api-key-file FILE".into()),
        (None, None, _) => return Ok(None),
        _ => return Err("--api and --api-key-file apply to the api scenario only".into()),
    };
    let (addr, host) = wschat::bench::api::resolve(addr, args.allow_remote).map_err(|e| e.to_string())?;
    let key = ApiKey::load(path).map_err(|e| format!("--api-key-file {e}"))?;
    if args.api_clients == 0 || args.api_depth == 0 {
        return Err("--api-clients and --api-depth must be at least 1".into());
    }
    let verb = match args.verb {
        VerbArg::Say => Verb::Say,
        VerbArg::Send => Verb::Send,
    };
    Ok(Some(ApiConfig { addr, host, key, clients: args.api_clients, depth: args.api_depth, verb }))
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(text) = wschat::manual::early(&argv, <Args as clap::CommandFactory>::command) {
        use std::io::Write;
        let _ = std::io::stdout().write_all(&text);
        return ExitCode::SUCCESS;
    }
    let args = Args::parse_from(argv);
    let cfg = match config(&args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("wschat-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench::run(&cfg) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            if report.connected == 0 && (report.failed > 0 || report.server_errors > 0) {
                // Nothing was measured: say so in the exit status, not only in the report.
                let why = report.first_error.as_deref().unwrap_or("no error given");
                eprintln!(
                    "wschat-bench: no client was ready ({} connections failed, {} errors from the server; first: {why})",
                    report.failed, report.server_errors
                );
                return ExitCode::FAILURE;
            }
            if let Some(churn) = report.churn.as_ref().filter(|c| !c.clean) {
                eprintln!("wschat-bench: churn not clean: {}", churn.problems.join(", "));
                return ExitCode::FAILURE;
            }
            if let Some(api) = report.api.as_ref().filter(|a| !a.clean) {
                let first =
                    api.first_api_error.as_ref().map(|e| format!(" (first API error: {e})")).unwrap_or_default();
                eprintln!("wschat-bench: api not clean: {}{first}", api.problems.join(", "));
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wschat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("wschat-bench").chain(args.iter().copied()))
    }

    #[test]
    fn churn_takes_its_rate_mix_and_pause() {
        let cfg = config(&parse(&["churn"]).unwrap()).unwrap();
        assert_eq!(cfg.scenario, Scenario::Churn);
        assert_eq!((cfg.cuts_per_sec, cfg.reset_share, cfg.away), (10.0, 0.5, Duration::ZERO));
        let args = parse(&["churn", "--cuts-per-sec", "100", "--reset-share", "0.25", "--away-ms", "50"]).unwrap();
        let cfg = config(&args).unwrap();
        assert_eq!((cfg.cuts_per_sec, cfg.reset_share, cfg.away), (100.0, 0.25, Duration::from_millis(50)));
        assert!(config(&parse(&["churn", "--away-ms=-1"]).unwrap()).is_err());
    }

    #[test]
    fn api_takes_its_address_key_and_verb() {
        let dir = std::env::temp_dir().join(format!("wschat-bench-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("api.key");
        std::fs::write(&key, "0123456789abcdef\n").unwrap();
        let key = key.to_str().unwrap();
        let cfg = config(&parse(&["api", "--api", "127.0.0.1:8080", "--api-key-file", key]).unwrap()).unwrap();
        assert_eq!(cfg.scenario, Scenario::Api);
        let api = cfg.api.unwrap();
        assert_eq!((api.addr, api.clients, api.depth, api.verb), ("127.0.0.1:8080".parse().unwrap(), 4, 64, Verb::Say));
        assert_eq!(api.key.bytes(), b"0123456789abcdef");
        let args = ["api", "--api", "127.0.0.1:1", "--api-key-file", key, "--verb", "send", "--api-clients", "2"];
        let cfg = config(&parse(&[&args[..], &["--room", "lobby"]].concat()).unwrap()).unwrap();
        assert_eq!(
            (cfg.api.as_ref().map(|a| (a.verb, a.clients)), cfg.room.as_deref()),
            (Some((Verb::Send, 2)), Some("lobby"))
        );
        for (bad, why) in [
            (&["api"][..], "--api ADDR and --api-key-file"),
            (&["api", "--api", "127.0.0.1:1"], "both"),
            (&["fanout", "--api", "127.0.0.1:1", "--api-key-file", key], "api scenario only"),
            (&["api", "--api", "192.0.2.1:1", "--api-key-file", key], "--allow-remote"),
            (&["api", "--api", "127.0.0.1:1", "--api-key-file", "/nonexistent/k"], "/nonexistent/k"),
            (&["api", "--api", "127.0.0.1:1", "--api-key-file", key, "--api-depth", "0"], "at least 1"),
        ] {
            let err = config(&parse(bad).unwrap()).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_default_url() {
        let args = parse(&["fanout"]).unwrap();
        assert_eq!(args.urls, ["ws://127.0.0.1:7272/"]);
        let cfg = config(&args).unwrap();
        assert_eq!(cfg.targets.len(), 1);
        assert_eq!(cfg.targets[0].url, "ws://127.0.0.1:7272/");
    }

    #[test]
    fn url_repeats_and_replaces_the_default() {
        let args =
            parse(&["fanout", "--url", "ws://127.0.0.1:1/", "--url", "ws://[::1]:2/x", "--url=ws://localhost:3"])
                .unwrap();
        assert_eq!(args.urls, ["ws://127.0.0.1:1/", "ws://[::1]:2/x", "ws://localhost:3"]);
        let cfg = config(&args).unwrap();
        let urls: Vec<&str> = cfg.targets.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(urls, ["ws://127.0.0.1:1/", "ws://[::1]:2/x", "ws://localhost:3"]);
        assert_eq!(cfg.targets[1].path, "/x");
        let args = parse(&["connect", "--url", "ws://127.0.0.1:1/"]).unwrap();
        assert_eq!(args.urls, ["ws://127.0.0.1:1/"]);
    }

    #[test]
    fn every_url_is_checked() {
        let args = parse(&["fanout", "--url", "ws://127.0.0.1:1/", "--url", "ws://192.0.2.1:80/"]).unwrap();
        let err = config(&args).unwrap_err();
        assert!(err.contains("ws://192.0.2.1:80/") && err.contains("--allow-remote"), "{err}");
        let args =
            parse(&["fanout", "--allow-remote", "--url", "ws://127.0.0.1:1/", "--url", "ws://192.0.2.1:80/"]).unwrap();
        assert_eq!(config(&args).unwrap().targets.len(), 2);
        let args = parse(&["fanout", "--url", "ws://127.0.0.1:1/", "--url", "nope"]).unwrap();
        assert!(config(&args).unwrap_err().contains("nope"));
        assert!(parse(&["fanout", "--url"]).is_err());
    }

    #[test]
    fn wss_needs_a_trust_and_does_not_mix_with_ws() {
        let err = config(&parse(&["fanout", "--url", "wss://127.0.0.1:1/"]).unwrap()).unwrap_err();
        assert_eq!(err, "wss:// needs --ca FILE or --insecure");
        let cfg = config(&parse(&["fanout", "--insecure", "--url", "wss://127.0.0.1:1/"]).unwrap()).unwrap();
        assert!(cfg.tls.is_some() && cfg.targets[0].tls.is_some());
        let mixed = ["fanout", "--insecure", "--url", "wss://127.0.0.1:1/", "--url", "ws://127.0.0.1:2/"];
        assert!(config(&parse(&mixed).unwrap()).unwrap_err().contains("cannot be mixed"));
        let err = config(&parse(&["fanout", "--insecure"]).unwrap()).unwrap_err();
        assert!(err.contains("wss:// URLs only"), "{err}");
        let err = config(&parse(&["fanout", "--ca", "/nonexistent/ca.pem", "--url", "wss://127.0.0.1:1/"]).unwrap())
            .unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(parse(&["fanout", "--ca", "x.pem", "--insecure"]).is_err(), "one trust or the other");
    }
}
