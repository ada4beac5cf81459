//! The wire protocols. Each turns its clients' input into calls of the hub and renders the
//! hub's events ([`crate::hub::Out`]) as its own bytes; the hub knows none of them.
//!
//! - [`frame`]: the course's 200-byte frames (plain TCP or TLS).
//! - [`web`]: the web port: HTTP for the page, then the frames' texts over a WebSocket.

pub mod frame;
pub mod web;

use crate::hub::{Out, Proto};

/// Renders an event for a connection of protocol `proto`, appended to `buf`.
pub fn render(proto: Proto, out: &Out<'_>, buf: &mut Vec<u8>) {
    match proto {
        Proto::Frame | Proto::Irc | Proto::Web => frame::render(out, buf),
    }
}

/// Renders the reason a connection is being closed, its last words.
pub fn render_reason(proto: Proto, reason: &str, buf: &mut Vec<u8>) {
    match proto {
        Proto::Frame | Proto::Irc | Proto::Web => frame::render_reason(reason, buf),
    }
}
