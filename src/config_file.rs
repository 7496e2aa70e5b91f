//! The command line layered over the environment and a configuration file: every flag of a clap command is
//! also an environment variable `WSCHAT_<FLAG>` (`--max-connections` → `WSCHAT_MAX_CONNECTIONS`) and a key of
//! the TOML file `--config` names (`max-connections = 10000`); the command line wins over the environment,
//! which wins over the file, which wins over the defaults. A key the command does not have, a value of the wrong type or one its flag refuses is an
//! error naming the file, the line and the key. [`effective`] writes what is in force back as a valid file.
//!
//! Generic over the clap command: the composition root ([`crate::daemon`]) hands its own in.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::de::{DeTable, DeValue};

/// The prefix of every flag's environment variable.
pub const ENV_PREFIX: &str = "WSCHAT_";

/// The flag naming the file.
pub const CONFIG_FLAG: &str = "config";

/// Flags that are no configuration (what to do, not how to run).
const NOT_KEYS: [&str; 4] = [CONFIG_FLAG, "print-config", "help", "version"];

/// Flags whose value is a secret itself (not a path to one): never printed.
const SECRET_VALUES: [&str; 1] = ["cluster-sentinel-password"];

/// Why the layers could not be put together.
#[derive(Debug)]
pub enum LayerError {
    /// The command line (with the environment) is not one clap accepts: clap's own error, printed as clap
    /// prints it.
    Clap(clap::Error),
    /// The file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key or its value is refused.
    Key {
        /// The file.
        path: PathBuf,
        /// The line of the key (1-based).
        line: usize,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerError::Clap(e) => write!(f, "{e}"),
            LayerError::Read { path, source } => write!(f, "{}: cannot read it: {source}", path.display()),
            LayerError::Syntax { path, line, message } => {
                write!(f, "{}:{line}: not a TOML file: {}", path.display(), message.trim())
            }
            LayerError::Key { path, line, key, reason } => write!(f, "{}:{line}: {key}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for LayerError {}

/// The environment variable of flag `long` (`max-connections` → `WSCHAT_MAX_CONNECTIONS`).
pub fn env_name(long: &str) -> String {
    format!("{ENV_PREFIX}{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// `cmd` with an environment variable for every flag that is configuration.
pub fn with_env(cmd: Command) -> Command {
    cmd.mut_args(|arg| match arg.get_long().map(str::to_string) {
        Some(long) if !NOT_KEYS.contains(&long.as_str()) && !arg.is_hide_set() => arg.env(env_name(&long)),
        _ => arg,
    })
}

/// Parses `argv` with `cmd` (environment variables included, see [`with_env`]); when `--config FILE` is given
/// (on the command line or as `WSCHAT_CONFIG`), the file's keys fill what neither set. The matches, and the
/// file that was read and the keys that took effect from it.
pub fn layered(cmd: Command, argv: &[OsString]) -> Result<(ArgMatches, Option<FileLayer>), LayerError> {
    let cmd = with_env(cmd);
    let first = cmd.clone().try_get_matches_from(argv).map_err(LayerError::Clap)?;
    let Some(path) = first.get_one::<PathBuf>(CONFIG_FLAG).cloned() else { return Ok((first, None)) };
    let text = std::fs::read_to_string(&path).map_err(|source| LayerError::Read { path: path.clone(), source })?;
    let (from_file, keys) = file_args(&cmd, &first, &path, &text)?;
    let mut all: Vec<OsString> = argv.iter().take(1).cloned().collect();
    all.extend(from_file);
    all.extend(argv.iter().skip(1).cloned());
    let matches = cmd.try_get_matches_from(all).map_err(LayerError::Clap)?;
    Ok((matches, Some(FileLayer { path, keys })))
}

/// The configuration file as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLayer {
    /// Where it is.
    pub path: PathBuf,
    /// Its keys that took effect (the command line and the environment set none of them).
    pub keys: Vec<String>,
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(1, |t| t.matches('\n').count() + 1)
}

/// The flags the file's keys stand for, for the keys neither the command line nor the environment set.
fn file_args(
    cmd: &Command,
    first: &ArgMatches,
    path: &Path,
    text: &str,
) -> Result<(Vec<OsString>, Vec<String>), LayerError> {
    let table = DeTable::parse(text).map_err(|e| LayerError::Syntax {
        path: path.to_path_buf(),
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().to_string(),
    })?;
    let (mut args, mut keys) = (Vec::new(), Vec::new());
    for (key, value) in table.get_ref() {
        let line = line_of(text, key.span().start);
        let name: &str = key.get_ref();
        let refuse = |reason: String| LayerError::Key { path: path.to_path_buf(), line, key: name.to_string(), reason };
        let arg =
            cmd.get_arguments().find(|a| a.get_long() == Some(name) && !NOT_KEYS.contains(&name)).ok_or_else(|| {
                refuse("not a configuration key (every key is a flag of wschat --help, without --)".into())
            })?;
        let values = file_values(arg, value.get_ref()).map_err(refuse)?;
        // Each value through the flag's own parser, alone (its ties to other flags are the whole line's).
        let alone = Arg::new("value").long(name.to_string()).value_parser(arg.get_value_parser().clone());
        let check = Command::new("wschat").arg(alone.action(ArgAction::Set)).no_binary_name(true);
        for v in values.iter().filter(|_| arg.get_action().takes_values()) {
            if let Err(e) = check.clone().try_get_matches_from([OsString::from(format!("--{name}={v}"))]) {
                let e = e.to_string();
                let why = e.lines().next().unwrap_or("").trim_start_matches("error: ").to_string();
                return Err(refuse(why));
            }
        }
        let set_elsewhere = matches!(
            first.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if set_elsewhere {
            continue;
        }
        keys.push(name.to_string());
        match arg.get_action() {
            ArgAction::SetTrue => {
                if values.first().map(String::as_str) == Some("true") {
                    args.push(format!("--{name}").into());
                }
            }
            _ => {
                // `--key=value`: a value that starts with `-` is still the value.
                args.extend(values.into_iter().map(|v| OsString::from(format!("--{name}={v}"))));
            }
        }
    }
    Ok((args, keys))
}

/// What the file's `value` means for flag `arg`, as the strings the flag takes: a switch takes a boolean, a
/// repeatable flag an array (or one value), any other flag one string or number.
fn file_values(arg: &Arg, value: &DeValue<'_>) -> Result<Vec<String>, String> {
    let scalar = |v: &DeValue<'_>| -> Result<String, String> {
        match v {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .map(|n| n.to_string())
                .map_err(|_| "an integer out of range".to_string()),
            DeValue::Float(f) => Ok(f.as_str().to_string()),
            other => Err(format!("expected a string or a number, found {}", kind(other))),
        }
    };
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, DeValue::Boolean(b)) => Ok(vec![b.to_string()]),
        (ArgAction::SetTrue, other) => Err(format!("expected true or false, found {}", kind(other))),
        (ArgAction::Append, DeValue::Array(items)) => items.iter().map(|i| scalar(i.get_ref())).collect(),
        (ArgAction::Append, other) => scalar(other).map(|v| vec![v]),
        (_, other) => scalar(other).map(|v| vec![v]),
    }
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The configuration in force, as a file `--config` reads back: every flag's value, wherever it came from
/// (a comment says which), flags without a value commented out; secrets given as values (a password) are not
/// printed, only said to be set.
pub fn effective(cmd: &Command, matches: &ArgMatches, file: Option<&FileLayer>) -> String {
    let mut out = String::from("# wschat's configuration in force (wschat --print-config); --config reads it back.\n");
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_KEYS.contains(&long) || arg.is_hide_set() {
            continue;
        }
        let id = arg.get_id().as_str();
        let in_file = file.filter(|f| f.keys.iter().any(|k| k == long));
        let from = match (matches.value_source(id), in_file) {
            (_, Some(f)) => format!(" # from {}", f.path.display()),
            (Some(ValueSource::CommandLine), _) => " # from the command line".to_string(),
            (Some(ValueSource::EnvVariable), _) => format!(" # from {}", env_name(long)),
            _ => String::new(),
        };
        if let Some(help) = arg.get_help() {
            let help = help.to_string();
            out.push_str(&format!("\n# {}\n", help.lines().next().unwrap_or("")));
        }
        let raw: Vec<String> =
            matches.get_raw(id).map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect()).unwrap_or_default();
        match arg.get_action() {
            ArgAction::SetTrue => {
                out.push_str(&format!("{long} = {}{from}\n", matches.get_flag(id)));
            }
            _ if raw.is_empty() => out.push_str(&format!("# {long} =\n")),
            _ if SECRET_VALUES.contains(&long) || raw.iter().any(|v| has_password(v)) => {
                out.push_str(&format!("# {long} = (set{from}; it holds a password, not printed)\n"));
            }
            ArgAction::Append => {
                let items: Vec<String> = raw.iter().map(|v| toml_value(v)).collect();
                out.push_str(&format!("{long} = [{}]{from}\n", items.join(", ")));
            }
            _ => out.push_str(&format!("{long} = {}{from}\n", toml_value(&raw[0]))),
        }
    }
    out
}

/// The keys whose value differs between two outputs of [`effective`] (a key set in one and not the other
/// included), in the order of `new`.
pub fn changed_keys(old: &str, new: &str) -> Vec<String> {
    fn values(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| {
                let l = l.strip_prefix("# ").filter(|l| l.ends_with(" =") || l.contains(" = (set")).unwrap_or(l);
                let (key, value) = l.split_once(" = ").or_else(|| l.strip_suffix(" =").map(|k| (k, "")))?;
                let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
                key_ok.then(|| (key.to_string(), value.split(" # from ").next().unwrap_or("").to_string()))
            })
            .collect()
    }
    let (old, new) = (values(old), values(new));
    new.into_iter().filter(|(k, v)| !old.iter().any(|(ok, ov)| ok == k && ov == v)).map(|(k, _)| k).collect()
}

/// Whether `v` is a URL with a password in it (`redis://:secret@host`).
fn has_password(v: &str) -> bool {
    v.split_once("://").and_then(|(_, rest)| rest.split(['/', '?']).next()).is_some_and(|a| a.contains('@'))
}

/// A value as TOML: a whole number as a number, anything else as a string.
fn toml_value(v: &str) -> String {
    match v.parse::<u64>() {
        Ok(n) if n.to_string() == v => v.to_string(),
        _ => toml::Value::String(v.to_string()).to_string(),
    }
}
