//! IRC, the pure pieces: the line codec ([`message`]), the numeric replies ([`numerics`]) and
//! SASL PLAIN ([`sasl`]).
//!
//! Nothing here touches a socket or the hub; the glue between the hub's events and IRC lines
//! lives with the hub. docs/IRC.md has the research notes (what clients send and expect).

pub mod message;
pub mod numerics;
pub mod sasl;

#[cfg(test)]
mod tests;
