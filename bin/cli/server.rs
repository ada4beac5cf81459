//! The server's command line, shared by the binaries `server` and `chat-server`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};

use chat::server::{Server, ServerConfig};
use chat::sonnets;

/// The channel chat server: 200-byte frames, channels, and the ICS commands (see README.md).
///
/// Logs go to stderr; set RUST_LOG (error, warn, info, debug) to choose how much. Relative
/// paths (--sonnets, --data-dir, --fetch-sonnets) are relative to the current directory.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Download Shakespeare's sonnets to DEST (default data/sonnets.txt, relative to the current
    /// directory, where the server looks for them) and exit; needs bash, python3 with pip, and
    /// access to PyPI
    #[arg(
        long,
        value_name = "DEST",
        num_args = 0..=1,
        default_missing_value = sonnets::DEFAULT_SONNETS_PATH,
        exclusive = true
    )]
    #[allow(dead_code)] // Read from the matches, before the rest is.
    fetch_sonnets: Option<PathBuf>,
    #[command(flatten)]
    config: ServerConfig,
}

/// Parses the command line and runs the server (or the sonnets download).
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // PORT is required, except with --fetch-sonnets, which stands alone.
    let name = std::env::args_os()
        .next()
        .and_then(|arg0| {
            let file = std::path::Path::new(&arg0)
                .file_name()?
                .to_str()?
                .to_owned();
            Some(file)
        })
        .unwrap_or_else(|| "chat-server".to_owned());
    let matches = Cli::command()
        .mut_arg("port", |port| {
            port.required(false)
                .required_unless_present("fetch_sonnets")
        })
        .override_usage(format!(
            "{name} [OPTIONS] <PORT>\n       {name} --fetch-sonnets [DEST]"
        ))
        .get_matches();
    if let Some(dest) = matches.get_one::<PathBuf>("fetch_sonnets") {
        return match sonnets::fetch(dest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let server = match Server::bind(cli.config) {
        Ok(s) => s,
        Err(e) => {
            // Once, on stderr, whatever RUST_LOG says.
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    // The only lines on stdout, one per listener, plain frames first: scripts and tests read
    // the ports from them.
    for (kind, addr) in server.listening() {
        let _ = match kind.label() {
            "" => writeln!(stdout, "Listening on {addr}"),
            label => writeln!(stdout, "Listening for {label} on {addr}"),
        };
    }
    let _ = stdout.flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
