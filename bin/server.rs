//! `server PORT`: the chat server.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use chat::server::{Server, ServerConfig};

/// The channel chat server: 200-byte frames, channels, and the ICS commands (see README.md).
///
/// Logs go to stderr; set RUST_LOG (error, warn, info, debug) to choose how much.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: ServerConfig,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let server = match Server::bind(cli.config) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            eprintln!("server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    // The first (and only) line on stdout: scripts and tests read the port from it.
    let _ = writeln!(stdout, "Listening on {}", server.local_addr());
    let _ = stdout.flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
