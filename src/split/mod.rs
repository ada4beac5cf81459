//! The split-message client: sends every frame in random pieces, to prove that a server buffers
//! partial frames, and doubles as the project's load and benchmark tool.
//!
//! # Layout
//! - [`pieces`]: where to cut a byte run into random pieces.
//! - [`session`]: one blocking connection with a reader thread (interactive and replay modes).
//! - [`interactive`]: `split_client NAME HOST PORT`, like `client` but sending in pieces.
//! - [`replay`]: `split_client replay`, the course's split-messages scenario.
//! - [`message`]: the stress messages: encoding, and verifying them byte for byte in place.
//! - [`histogram`]: a fixed-size log-linear latency histogram.
//! - [`stress`]: `split_client stress`, N clients in one mio event loop, over one or several
//!   servers, plain or TLS, as frames, WebSocket or IRC; and `split_client regflood`
//!   ([`stress::regflood`]), chat round trips through a flood of registrations.
//! - [`floor`]: `split_client floor`, the kernel's part of a fan-out with no server at all.

pub mod floor;
pub mod histogram;
pub mod interactive;
pub mod message;
pub mod pieces;
pub mod replay;
pub mod session;
pub mod stress;

pub use floor::{run_floor, FloorConfig, FloorReport};
pub use interactive::{run_interactive, InteractiveConfig};
pub use replay::{run_replay, ReplayConfig};
pub use stress::regflood::{run_regflood, RegfloodConfig, RegfloodReport};
pub use stress::{run_stress, StressConfig, StressReport};

/// What can stop the split client.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The server could not be reached; the text is what the user sees.
    #[error("{0}")]
    Unreachable(String),
    /// The server closed the connection; the text is what the user sees.
    #[error("{0}")]
    Disconnected(String),
    /// A socket, stdin or stdout failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The options do not describe a possible run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The replay's channel does not exist on the server; the text says what to do.
    #[error("{0}")]
    NoReplayChannel(String),
    /// The stress clients could not log in or join their channels.
    #[error("stress setup failed: {0}")]
    Setup(String),
}
