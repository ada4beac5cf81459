//! A channel chat server with 200-byte frames, its client and a split-message load tool.
//!
//! # Layout
//! - [`frame`]: 200-byte frames: decoding a byte stream, padding, cutting and packing text.
//! - [`clock`]: the injectable clock and the `dd.mm.yy,HH:MM` format.
//! - [`command`]: parsing a client's frame into a command.
//! - [`names`]: which names are valid, and when two names are the same name.
//! - [`hub`]: every rule of the chat, as a state machine with no sockets, speaking events.
//! - [`proto`]: the wire protocols, one module each (`frame`, `web`, `irc`), each parsing its
//!   input into hub calls and rendering the hub's events as its own bytes; the hub knows none
//!   of them, and a relayed event is rendered once per protocol per turn.
//! - [`conn`]: one connection's socket, buffers, interest and flood budget.
//! - [`outq`]: output queues that share each relayed frame within a turn of the loop.
//! - [`os`]: the open-file limit, raised at start by the server and the stress tool.
//! - [`server`]: the mio event loop, its listeners and the limits of section 7.
//! - [`tls`]: TLS (rustls) for the server, a layer under any protocol's codec (in
//!   [`conn`]'s transport); its certificate is reloaded on SIGUSR1.
//! - [`sonnets`]: the 154 sonnets, loaded once at start, and the `/sonnet N` argument.
//! - [`client`]: the interactive client: typed lines to frames, frames to the terminal.
//! - [`cluster`]: several servers as one chat: the hub's events, names, nodes and channels
//!   shared through Redis by a link on its own thread (the loop never waits on it), with a
//!   hybrid logical clock numbering events cluster-wide.
//! - [`storage`]: history, offline messages, channels and registered names, on its own threads
//!   behind one interface: SQLite (one server) or PostgreSQL (`--db`, a cluster); passwords are
//!   hashed on a bounded pool of their own.
//! - [`split`]: the split-message client and the stress/benchmark tool.
//! - [`utils_errors`]: every user-visible protocol text (the file sits at the repository root).

#[path = "../utils_errors.rs"]
pub mod utils_errors;

pub mod client;
pub mod clock;
pub mod cluster;
pub mod command;
pub mod conn;
pub mod frame;
pub mod hub;
pub mod names;
pub mod os;
pub mod outq;
pub mod proto;
pub mod server;
pub mod sonnets;
pub mod split;
pub mod storage;
pub mod tls;
