//! `wschat-bench`: the load client. Parses the command line and runs a scenario from `wschat::bench`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use wschat::bench::{self, target, BenchConfig, Proto, Scenario};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    /// C clients log in; S of them send at R messages/s for D seconds after W seconds of warm-up.
    Fanout,
    /// Steps the rate up until deliveries fall behind or p99 passes the bound; reports the highest sustained.
    Saturate,
    /// Opens C connections, handshakes and logs in, holds them idle; handshakes/s and server RSS per connection.
    Connect,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtoArg {
    /// The workerman-chat JSON protocol.
    Chat,
    /// A plain broadcast server: every text message to every client.
    Raw,
}

/// Load client for wschat and other WebSocket broadcast servers (loopback only unless --allow-remote).
#[derive(Debug, Parser)]
#[command(name = "wschat-bench", version)]
struct Args {
    /// The scenario to run.
    #[arg(value_enum)]
    scenario: ScenarioArg,
    /// Target URL.
    #[arg(long, default_value = "ws://127.0.0.1:7272/")]
    url: String,
    /// Number of client connections.
    #[arg(long, short = 'c', default_value_t = 100)]
    clients: usize,
    /// Number of sending clients (default: all).
    #[arg(long, short = 's')]
    senders: Option<usize>,
    /// Offered messages per second, all senders together (fanout default: 200000/clients; saturate: the first step).
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
    /// The server's pid: report its CPU share and (connect) its RSS per connection.
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
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{name} must be a non-negative number of seconds"))
}

fn config(args: &Args) -> Result<BenchConfig, String> {
    let target = target::resolve(&args.url, args.allow_remote).map_err(|e| e.to_string())?;
    let scenario = match args.scenario {
        ScenarioArg::Fanout => Scenario::Fanout,
        ScenarioArg::Saturate => Scenario::Saturate,
        ScenarioArg::Connect => Scenario::Connect,
    };
    let mut cfg = BenchConfig::new(scenario, &args.url, target);
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
    Ok(cfg)
}

fn main() -> ExitCode {
    let args = Args::parse();
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wschat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
