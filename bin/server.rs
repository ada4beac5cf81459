//! `server PORT`: the chat server, by the name the course uses.
//! The code is in `cli/server.rs`, shared with `chat-server`.

#[path = "cli/server.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
