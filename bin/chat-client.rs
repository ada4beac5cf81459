//! `chat-client NAME HOST PORT`: the chat client, by the name to install it under.
//! The code is in `cli/client.rs`, shared with `client`.

#[path = "cli/client.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
