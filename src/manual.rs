//! What a package ships beside the binaries, generated from their command lines so that it never drifts
//! from `--help`: a man page (roff, through clap_mangen) and shell completions (bash, zsh, fish, through
//! clap_complete). Each binary prints them on a hidden flag (`--man-page`, `--completions SHELL`), which
//! `make deb` calls.

use clap::Command;
use clap_complete::Shell;

/// The man page of `cmd` (section 1), as roff.
pub fn man_page(cmd: Command) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = clap_mangen::Man::new(cmd).render(&mut out);
    out
}

/// The completion script of `cmd` for `shell`.
pub fn completions(mut cmd: Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The two hidden flags every binary takes, added to its command.
pub fn with_flags(cmd: Command) -> Command {
    cmd.arg(
        clap::Arg::new("man-page")
            .long("man-page")
            .action(clap::ArgAction::SetTrue)
            .hide(true)
            .help("Print the man page (roff) and exit"),
    )
    .arg(
        clap::Arg::new("completions")
            .long("completions")
            .value_name("SHELL")
            .value_parser(clap::value_parser!(Shell))
            .hide(true)
            .help("Print the completion script for SHELL (bash, zsh, fish, …) and exit"),
    )
}

/// What `matches` of a command built [`with_flags`] ask to print, if anything: the man page or completions
/// of `cmd` (the command without those flags).
pub fn requested(cmd: impl Fn() -> Command, matches: &clap::ArgMatches) -> Option<Vec<u8>> {
    if matches.get_flag("man-page") {
        return Some(man_page(cmd()));
    }
    matches.get_one::<Shell>("completions").map(|&shell| completions(cmd(), shell))
}

/// What `argv` asks to print (`--man-page`, `--completions SHELL`), read before the command line is parsed,
/// so that a binary with required arguments prints its manual without them.
pub fn early(argv: &[std::ffi::OsString], cmd: impl Fn() -> Command) -> Option<Vec<u8>> {
    let flags = with_flags(Command::new("manual").no_binary_name(true).ignore_errors(true));
    let wanted: Vec<&std::ffi::OsString> = argv
        .iter()
        .skip(1)
        .filter(|a| a.to_str().is_some_and(|a| a.starts_with("--man-page") || a.starts_with("--completions")))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let mut args: Vec<std::ffi::OsString> = wanted.into_iter().cloned().collect();
    if let Some(at) = argv.iter().position(|a| a == "--completions") {
        args.extend(argv.get(at + 1).cloned());
    }
    let matches = flags.try_get_matches_from(args).ok()?;
    requested(cmd, &matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Command {
        Command::new("tool").about("A tool").arg(clap::Arg::new("port").long("port").help("The port"))
    }

    #[test]
    fn a_man_page_and_completions_from_the_command_line() {
        let man = String::from_utf8(man_page(cmd())).unwrap();
        assert!(man.starts_with(".ie \\n(.g .ds Aq") || man.contains(".TH tool 1"), "{man}");
        assert!(man.contains("\\-\\-port") && man.contains("The port"), "{man}");
        let bash = String::from_utf8(completions(cmd(), Shell::Bash)).unwrap();
        assert!(bash.contains("--port") && bash.contains("complete"), "{bash}");
        let m = with_flags(cmd()).try_get_matches_from(["tool", "--completions", "fish"]).unwrap();
        assert!(String::from_utf8(requested(cmd, &m).unwrap()).unwrap().contains("complete -c tool"));
        let m = with_flags(cmd()).try_get_matches_from(["tool"]).unwrap();
        assert!(requested(cmd, &m).is_none());
        let argv = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(early(&argv(&["tool", "--man-page"]), cmd).is_some_and(|m| m.starts_with(b".ie")));
        assert!(early(&argv(&["tool", "--completions", "zsh"]), cmd).is_some_and(|m| m.starts_with(b"#compdef")));
        assert!(early(&argv(&["tool", "--port", "1"]), cmd).is_none());
    }
}
