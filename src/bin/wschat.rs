//! `wschat`: the chat daemon. Parses flags, binds, prints the bound addresses, runs the reactor.

use std::io::Write;
use std::process::ExitCode;

use wschat::config_file::LayerError;
use wschat::daemon::CommandLine;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let loaded = match CommandLine::load(&argv) {
        Ok(l) => l,
        Err(LayerError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("wschat: error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(text) = loaded.print {
        let _ = std::io::stdout().write_all(&text);
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        env_logger::Builder::from_env(env_logger::Env::default()).init();
    } else {
        // Everything passes the logger; the level in force (--log-level, changed at SIGHUP) filters.
        env_logger::Builder::new().filter_level(log::LevelFilter::Trace).init();
        log::set_max_level(loaded.command_line.daemon.log_level.parse().unwrap_or(log::LevelFilter::Info));
    }
    let reload = loaded.file.as_ref().map(|_| (argv.clone(), loaded.effective.clone()));
    let daemon = match loaded.command_line.into_daemon() {
        Ok(daemon) => daemon,
        Err(e) => {
            eprintln!("wschat: error: {e}");
            return ExitCode::from(2);
        }
    };
    let page = match &daemon.config.web_root {
        Some(dir) => format!("{} served", dir.display()),
        None => "chat page".to_string(),
    };
    let mut reactor = match daemon.bind() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wschat: error: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some((argv, effective)) = reload {
        reactor.set_reloader(wschat::daemon::reloader(argv, effective));
    }
    let api = reactor.api_addr().map(|a| format!(" api={a}")).unwrap_or_default();
    println!("wschat listening ws={} http={}{api}", reactor.ws_addr(), reactor.http_addr());
    let _ = std::io::stdout().flush();
    wschat::systemd::notify(wschat::systemd::State::Ready);
    log::info!("listening: WebSocket on {}, {page} on http://{}/", reactor.ws_addr(), reactor.http_addr());
    if let Some(api) = reactor.api_addr() {
        log::info!("server API on http://{api}/api/");
    }
    match reactor.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat: error: event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}
