//! The command line of `client NAME HOST PORT` (the interactive chat client), shared by the
//! binaries `client` and `chat-client`.

use std::process::ExitCode;

use clap::Parser;

use chat::client::{self, ClientConfig};

/// Connects to a chat server as NAME; typed lines are sent, received messages are shown.
#[derive(Parser)]
#[command(
    version,
    after_help = "Environment: CHAT_PASSWORD, if set, answers the server's /identify prompt for a registered NAME."
)]
struct Args {
    /// The name to log in with.
    name: String,
    /// The server's host name or address.
    host: String,
    /// The server's port.
    port: String,
}

/// Parses the command line and runs the client.
pub fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let config = ClientConfig {
        name: args.name,
        host: args.host,
        port: args.port,
        password: std::env::var(client::PASSWORD_ENV).ok(),
    };
    ExitCode::from(client::run_stdio(&config))
}
