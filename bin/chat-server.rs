//! `chat-server PORT`: the chat server, by the name to install it under.
//! The code is in `cli/server.rs`, shared with `server`.

#[path = "cli/server.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
