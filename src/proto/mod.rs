//! The wire protocols. Each turns its clients' input into calls of the hub and renders the
//! hub's events ([`crate::hub::Out`]) as its own bytes; the hub knows none of them.
//!
//! - [`frame`]: the course's 200-byte frames (plain TCP or TLS).
//! - [`irc`]: IRC lines (RFC 1459/2812 as modern clients use them).
//! - [`web`]: the web port: HTTP for the page, then the frames' texts over a WebSocket.

pub mod frame;
pub mod irc;
pub mod web;

use crate::hub::{Out, Proto};

/// What rendering needs besides the event.
pub struct RenderCtx<'a> {
    pub irc: &'a irc::IrcConfig,
}

/// Renders an event for a connection of protocol `proto`, appended to `buf`.
pub fn render(proto: Proto, out: &Out<'_>, ctx: &RenderCtx<'_>, buf: &mut Vec<u8>) {
    match proto {
        Proto::Frame => frame::render(out, buf),
        Proto::Web => web::render(out, buf),
        Proto::Irc => irc::render(out, ctx.irc, buf),
    }
}

/// Renders the reason a connection is being closed, its last words.
pub fn render_reason(proto: Proto, reason: &str, ctx: &RenderCtx<'_>, buf: &mut Vec<u8>) {
    match proto {
        Proto::Frame => frame::render_reason(reason, buf),
        Proto::Web => web::render_reason(reason, buf),
        Proto::Irc => irc::render_reason(reason, ctx.irc, buf),
    }
}
