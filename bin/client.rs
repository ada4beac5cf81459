//! `client NAME HOST PORT`: the chat client, by the name the course uses.
//! The code is in `cli/client.rs`, shared with `chat-client`.

#[path = "cli/client.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
