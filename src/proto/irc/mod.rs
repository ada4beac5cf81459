//! IRC: the line codec ([`message`]), the numeric replies ([`numerics`]), SASL PLAIN
//! ([`sasl`]) and a client's session ([`session`]: its commands as hub calls, the hub's events
//! as IRC lines).
//!
//! Nothing here touches a socket. docs/IRC.md has the research notes (what clients send and
//! expect).

pub mod message;
pub mod numerics;
pub mod sasl;
pub mod session;

pub use session::{render, render_reason, IrcConfig, Session};

#[cfg(test)]
mod tests;
