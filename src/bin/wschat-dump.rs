//! `wschat-dump`: decodes a tcpdump capture of WebSocket traffic into a readable timeline (or JSON, or
//! per-connection statistics). Argument parsing only; the work is in `wschat::dump`.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use wschat::dump::analyzer::AnalyzerOptions;
use wschat::dump::render::Style;
use wschat::dump::{run, Options, Output};

/// When to color the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    /// When stdout is a terminal and NO_COLOR is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Decode a tcpdump capture of WebSocket traffic (pcap or pcapng, `tcpdump -w`): TCP handshake and teardown,
/// the HTTP upgrade, and every frame in both directions with the client's payloads unmasked.
///
/// Live: tcpdump -i any -U -w - port 7272 | wschat-dump -
#[derive(Debug, Parser)]
#[command(name = "wschat-dump", version)]
struct Cli {
    /// The capture file, or - for standard input.
    file: String,
    /// Server port to follow (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "7272")]
    port: Vec<u16>,
    /// Follow only the connection of this client address, e.g. 127.0.0.1:60653.
    #[arg(long, value_name = "ADDR:PORT")]
    conn: Option<SocketAddr>,
    /// One JSON object per event (with --stats: per connection).
    #[arg(long)]
    json: bool,
    /// Per-connection statistics instead of the timeline.
    #[arg(long)]
    stats: bool,
    /// Colors.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Print times in UTC instead of local time.
    #[arg(long)]
    utc: bool,
    /// Payload bytes shown per frame; the rest is counted.
    #[arg(long, default_value_t = 4096, value_name = "BYTES")]
    max_payload: usize,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(text) = wschat::manual::early(&argv, Cli::command) {
        let _ = std::io::stdout().write_all(&text);
        return ExitCode::SUCCESS;
    }
    let matches = wschat::manual::with_flags(Cli::command()).get_matches_from(argv);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let name = if cli.file == "-" { "<stdin>".to_string() } else { cli.file.clone() };
    let input: Box<dyn Read> = if cli.file == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(&cli.file) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("wschat-dump: {name}: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let stdout = io::stdout();
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let output = match (cli.json, cli.stats) {
        (false, false) => Output::Timeline,
        (true, false) => Output::Json,
        (false, true) => Output::Stats,
        (true, true) => Output::StatsJson,
    };
    let opts = Options {
        analyzer: AnalyzerOptions { ports: cli.port, keep: cli.max_payload },
        conn: cli.conn,
        output,
        style: Style { color, utc: cli.utc, max_payload: cli.max_payload },
        live: cli.file == "-",
    };
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let outcome = match run(input, &mut out, &opts) {
        Ok(outcome) => outcome,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat-dump: writing the output: {e}");
            return ExitCode::from(1);
        }
    };
    let _ = out.flush();
    let mut status = ExitCode::SUCCESS;
    if outcome.skipped > 0 {
        if let Some((packet, e)) = &outcome.first_skip {
            eprintln!(
                "wschat-dump: {name}: {} packet(s) could not be decoded (first: packet {packet}: {e})",
                outcome.skipped
            );
        }
        status = ExitCode::from(1);
    }
    if let Some(e) = &outcome.error {
        eprintln!("wschat-dump: {name}: {e}");
        status = ExitCode::from(1);
    }
    status
}
