//! `chat-split-client`: the split-message client and load tool, by the name to install it under.
//! The code is in `cli/split_client.rs`, shared with `split_client`.

#[path = "cli/split_client.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
