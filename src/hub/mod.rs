//! The hub: every protocol rule, as a state machine with no sockets in it.
//!
//! The event loop tells the hub about connections ([`Hub::connect`]), their complete frames
//! ([`Hub::frame`]) and their end ([`Hub::disconnect`]); the hub answers by handing frames to a
//! [`Sink`]. Names, channels and membership live here and nowhere else.

use std::collections::HashMap;

use crate::clock::{Clock, SystemClock};
use crate::command::Command;
use crate::frame::{self, Frame};
use crate::sonnets::Sonnets;
use crate::utils_errors as text;

mod channels;
mod ics;

/// Identifies a connection; the event loop chooses it and never reuses one while the hub knows it.
pub type ConnId = usize;

/// Where the hub's output goes.
pub trait Sink {
    /// Queues one frame for a connection.
    fn send(&mut self, to: ConnId, frame: &Frame);
    /// Asks for a connection to be closed once its queued output is flushed.
    fn close(&mut self, conn: ConnId);
}

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// The longest channel name, in characters, after cleaning.
pub const MAX_CHANNEL_CHARS: usize = 64;

#[derive(Debug, Default)]
struct Client {
    name: Option<Box<str>>,
    channel: Option<usize>,
}

#[derive(Debug)]
struct Channel {
    name: Box<str>,
    /// Members in joining order; a broadcast walks this list.
    members: Vec<ConnId>,
}

/// What the hub is given at start.
pub struct HubConfig {
    /// The source of time for `/time` and history.
    pub clock: Box<dyn Clock>,
    /// The sonnets for `/sonnet`, when the server has them.
    pub sonnets: Option<Sonnets>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            clock: Box::new(SystemClock),
            sonnets: None,
        }
    }
}

/// The state of the chat: names, channels and who is where.
pub struct Hub {
    clients: HashMap<ConnId, Client>,
    names: HashMap<Box<str>, ConnId>,
    channels: Vec<Channel>,
    channel_ids: HashMap<Box<str>, usize>,
    clock: Box<dyn Clock>,
    sonnets: Option<Sonnets>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(HubConfig::default())
    }
}

/// Checks a name: 1 to 32 characters, no whitespace, no control characters.
pub fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && !name
            .chars()
            .any(|c| c.is_whitespace() || frame::is_control(c))
}

impl Hub {
    /// An empty hub: no clients, no channels.
    pub fn new(config: HubConfig) -> Self {
        Hub {
            clients: HashMap::new(),
            names: HashMap::new(),
            channels: Vec::new(),
            channel_ids: HashMap::new(),
            clock: config.clock,
            sonnets: config.sonnets,
        }
    }

    /// How many connections the hub knows, named or not.
    pub fn connections(&self) -> usize {
        self.clients.len()
    }

    /// The name of a connection, once it has logged in.
    pub fn name_of(&self, conn: ConnId) -> Option<&str> {
        self.clients.get(&conn)?.name.as_deref()
    }

    /// A new connection, without a name yet.
    pub fn connect(&mut self, conn: ConnId) {
        self.clients.insert(conn, Client::default());
    }

    /// A connection is gone (EOF, reset, or removed by the server).
    pub fn disconnect(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(client) = self.clients.remove(&conn) else {
            return;
        };
        if let Some(name) = client.name {
            log::info!("conn {conn}: {name} disconnected");
            if let Some(ch) = client.channel {
                self.remove_member(ch, conn);
                self.broadcast(sink, ch, None, &text::has_left(&name));
            }
            self.names.remove(&name);
        }
    }

    /// A complete frame from a connection.
    pub fn frame(&mut self, conn: ConnId, raw: &[u8], sink: &mut impl Sink) {
        let decoded = frame::decode(raw);
        if decoded.is_empty() {
            return;
        }
        let Some(client) = self.clients.get(&conn) else {
            log::warn!("conn {conn}: frame for an unknown connection");
            return;
        };
        if client.name.is_none() {
            self.login(conn, &decoded, sink);
            return;
        }
        let cleaned = frame::clean(&decoded);
        let line = cleaned.trim_end();
        if line.is_empty() {
            return;
        }
        match Command::parse(line) {
            Command::Chat(msg) => self.chat(conn, msg, sink),
            Command::Join(arg) => self.join(conn, arg, sink),
            Command::Create(arg) => self.create(conn, arg, sink),
            Command::List => self.list(conn, sink),
            Command::Members => self.members(conn, sink),
            Command::Leave => self.leave(conn, sink),
            Command::Time => self.time(conn, sink),
            Command::Who => self.who(conn, sink),
            Command::Help => self.help(conn, sink),
            Command::Sonnet(arg) => self.sonnet(conn, arg, sink),
            Command::Unknown(word) => self.reply(sink, conn, &text::invalid_control_message(word)),
        }
    }

    fn login(&mut self, conn: ConnId, name: &str, sink: &mut impl Sink) {
        if !valid_name(name) {
            self.reply(sink, conn, &text::invalid_name(&frame::clean(name)));
        } else if self.names.contains_key(name) {
            self.reply(sink, conn, &text::name_in_use(name));
        } else {
            let name: Box<str> = name.into();
            log::info!("conn {conn}: logged in as {name}");
            self.names.insert(name.clone(), conn);
            if let Some(client) = self.clients.get_mut(&conn) {
                client.name = Some(name);
            }
        }
    }

    /// Sends lines packed into as few frames as hold them.
    fn reply_lines<'a>(
        &self,
        sink: &mut impl Sink,
        conn: ConnId,
        lines: impl IntoIterator<Item = &'a str>,
    ) {
        for f in frame::pack_lines(lines) {
            self.send_text(sink, conn, &f);
        }
    }

    /// Sends a one-line text (cut into several frames if it is longer than one).
    fn reply(&self, sink: &mut impl Sink, conn: ConnId, line: &str) {
        self.reply_lines(sink, conn, [line]);
    }

    fn send_text(&self, sink: &mut impl Sink, conn: ConnId, piece: &str) {
        match frame::pad(piece) {
            Ok(f) => sink.send(conn, &f),
            Err(e) => log::error!("conn {conn}: dropped an over-long reply: {e}"),
        }
    }

    /// Sends a one-line text to every member of `ch` but `except`, encoded once.
    fn broadcast(&self, sink: &mut impl Sink, ch: usize, except: Option<ConnId>, line: &str) {
        for piece in frame::pack_lines([line]) {
            let Ok(f) = frame::pad(&piece) else { continue };
            for &member in &self.channels[ch].members {
                if Some(member) != except {
                    sink.send(member, &f);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
