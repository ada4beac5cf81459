//! `split_client`: the split-message client and load tool, by the name the course uses.
//! The code is in `cli/split_client.rs`, shared with `chat-split-client`.

#[path = "cli/split_client.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
