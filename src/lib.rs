//! A channel chat server with 200-byte frames, its client and a split-message load tool.
//!
//! # Layout
//! - [`frame`]: 200-byte frames: decoding a byte stream, padding, cutting and packing text.
//! - [`command`]: parsing a client's frame into a command.
//! - [`hub`]: every protocol rule, as a state machine with no sockets.
//! - [`utils_errors`]: every user-visible protocol text (the file sits at the repository root).

#[path = "../utils_errors.rs"]
pub mod utils_errors;

pub mod command;
pub mod frame;
pub mod hub;
pub mod split;
