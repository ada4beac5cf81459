//! The hub: every protocol rule, as a state machine with no sockets in it.
//!
//! The event loop tells the hub about connections ([`Hub::connect`]), their complete frames
//! ([`Hub::frame`]), their end ([`Hub::disconnect`]), storage's answers ([`Hub::storage_reply`])
//! and the passing of time ([`Hub::tick`]); the hub answers through a [`Sink`]: frames for
//! connections, requests for storage. Names, channels and membership live here and nowhere else.
//!
//! While a connection waits for storage (its offline messages at login, a password check, a
//! search), the hub holds the frames it sends meanwhile and the event loop stops reading it, so
//! every client gets its replies in the order of its commands. A login waits only when the hub
//! knows messages are waiting for the name: every other login is handled at once, in order with
//! everyone else's frames (a course grader's "Alice creates, Kay joins" depends on that).

use std::collections::{HashMap, HashSet, VecDeque};

use crate::clock::{Clock, SystemClock};
use crate::command::Command;
use crate::frame::{self, Frame};
use crate::sonnets::Sonnets;
use crate::storage::{Event, Request, Startup};
use crate::utils_errors as text;

mod channels;
mod history;
mod ics;

/// Identifies a connection. The event loop never gives the same id to two connections, so a
/// late reply for a closed connection can never reach a new one.
pub type ConnId = usize;

/// Where the hub's output goes.
pub trait Sink {
    /// Queues one frame for a connection.
    fn send(&mut self, to: ConnId, frame: &Frame);
    /// Queues one frame for every connection of `to` but `except` (a sink may store it once
    /// for all of them).
    fn send_many(&mut self, to: &[ConnId], except: Option<ConnId>, frame: &Frame) {
        for &id in to {
            if Some(id) != except {
                self.send(id, frame);
            }
        }
    }
    /// Asks for a connection to be closed once its queued output is flushed.
    fn close(&mut self, conn: ConnId);
    /// Hands a request to storage.
    fn store(&mut self, request: Request);
    /// Asks for [`Hub::flushed`] once everything queued for `conn` so far is written.
    fn report_flush(&mut self, conn: ConnId);
}

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// The longest channel name, in characters, after cleaning.
pub const MAX_CHANNEL_CHARS: usize = 64;
/// Seconds a registered name has to identify, unless configured otherwise.
pub const IDENTIFY_SECS: u64 = 60;
/// Wrong passwords after which the connection is closed.
pub const MAX_PASSWORD_TRIES: u8 = 3;
/// Frames held for a waiting connection; the event loop does not read a waiting connection,
/// so at most one read's worth arrives, far below this.
const MAX_HELD: usize = 4096;

/// Whether a connection may act under its name.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// An unregistered name, or a registered one that has identified.
    #[default]
    Open,
    /// A registered name that has not identified yet.
    MustIdentify { tries: u8 },
}

#[derive(Debug, Default)]
struct Client {
    name: Option<Box<str>>,
    channel: Option<usize>,
    /// The last seq before this connection logged in: an unregistered name sees history after it.
    login_seq: u64,
    auth: Auth,
    /// A storage reply is due; frames wait in `held` until it comes.
    waiting: bool,
    held: VecDeque<Frame>,
    /// Offline messages handed to the socket, deleted once the loop reports them written.
    unacked: Vec<i64>,
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
    /// What storage remembers: the last seq, the known and the registered names.
    pub startup: Startup,
    /// Seconds a registered name has to identify.
    pub identify_secs: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            clock: Box::new(SystemClock),
            sonnets: None,
            startup: Startup::default(),
            identify_secs: IDENTIFY_SECS,
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
    /// The last sequence number given to a stored event.
    seq: u64,
    /// Every name that ever logged in.
    known: HashSet<Box<str>>,
    /// Registered names, each with the seq its history starts after.
    registered: HashMap<Box<str>, u64>,
    /// Names with offline messages in storage (until their deletion is requested).
    has_offline: HashSet<Box<str>>,
    /// When each unidentified registered name must have identified, oldest first.
    identify_deadlines: VecDeque<(i64, ConnId)>,
    identify_secs: u64,
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
    /// A hub with no clients and no channels, remembering what `config.startup` holds.
    pub fn new(config: HubConfig) -> Self {
        let startup = config.startup;
        Hub {
            clients: HashMap::new(),
            names: HashMap::new(),
            channels: Vec::new(),
            channel_ids: HashMap::new(),
            clock: config.clock,
            sonnets: config.sonnets,
            seq: startup.last_seq,
            known: startup.known_names.into_iter().map(Into::into).collect(),
            registered: startup
                .registered
                .into_iter()
                .map(|(name, from)| (name.into(), from))
                .collect(),
            has_offline: startup
                .offline_recipients
                .into_iter()
                .map(Into::into)
                .collect(),
            identify_deadlines: VecDeque::new(),
            identify_secs: config.identify_secs,
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

    /// True while a connection waits for storage: the event loop should not read it.
    pub fn is_waiting(&self, conn: ConnId) -> bool {
        self.clients.get(&conn).is_some_and(|c| c.waiting)
    }

    /// True while some registered name has yet to identify (the loop should tick the hub).
    pub fn has_deadlines(&self) -> bool {
        !self.identify_deadlines.is_empty()
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
        let Some(name) = client.name else {
            return;
        };
        log::info!("conn {conn}: {name} disconnected");
        if let Some(ch) = client.channel {
            self.remove_member(ch, conn);
            self.record_leave(sink, &name, ch);
            self.broadcast(sink, ch, None, &text::has_left(&name));
        }
        self.names.remove(&name);
    }

    /// Closes registered-name connections that did not identify in time.
    pub fn tick(&mut self, sink: &mut impl Sink) {
        let now = self.clock.now();
        while let Some(&(deadline, conn)) = self.identify_deadlines.front() {
            if deadline > now {
                break;
            }
            self.identify_deadlines.pop_front();
            let pending = self
                .clients
                .get(&conn)
                .is_some_and(|c| matches!(c.auth, Auth::MustIdentify { .. }));
            if pending {
                log::info!("conn {conn}: did not identify in time; closing");
                sink.close(conn);
            }
        }
    }

    /// A complete frame from a connection.
    pub fn frame(&mut self, conn: ConnId, raw: &Frame, sink: &mut impl Sink) {
        let Some(client) = self.clients.get_mut(&conn) else {
            log::warn!("conn {conn}: frame for an unknown connection");
            return;
        };
        if client.waiting {
            if client.held.len() < MAX_HELD {
                client.held.push_back(*raw);
            } else {
                log::error!("conn {conn}: too many frames held while waiting; one dropped");
            }
            return;
        }
        self.process(conn, raw, sink);
    }

    /// Handles the frames held while the connection waited, until it waits again.
    fn resume(&mut self, conn: ConnId, sink: &mut impl Sink) {
        loop {
            let Some(client) = self.clients.get_mut(&conn) else {
                return;
            };
            if client.waiting {
                return;
            }
            let Some(raw) = client.held.pop_front() else {
                // Most clients wait only at login: give the frames' memory back.
                client.held = VecDeque::new();
                return;
            };
            self.process(conn, &raw, sink);
        }
    }

    fn process(&mut self, conn: ConnId, raw: &Frame, sink: &mut impl Sink) {
        let decoded = frame::decode(raw);
        if decoded.is_empty() {
            return;
        }
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        if client.name.is_none() {
            self.login(conn, &decoded, sink);
            return;
        }
        let must_identify = matches!(client.auth, Auth::MustIdentify { .. });
        let cleaned = frame::clean(&decoded);
        let line = cleaned.trim_end();
        if line.is_empty() {
            return;
        }
        let command = Command::parse(line);
        if must_identify {
            match command {
                Command::Identify(password) => self.identify(conn, password, sink),
                _ => self.reply(sink, conn, text::IDENTIFY_FIRST),
            }
            return;
        }
        match command {
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
            Command::Msg(arg) => self.msg(conn, arg, sink),
            Command::Search(term) => self.search(conn, term, sink),
            Command::Register(password) => self.register(conn, password, sink),
            Command::Identify(password) => self.identify(conn, password, sink),
            Command::Unknown(word) => self.reply(sink, conn, &text::invalid_control_message(word)),
        }
    }

    fn login(&mut self, conn: ConnId, name: &str, sink: &mut impl Sink) {
        if !valid_name(name) {
            self.reply(sink, conn, &text::invalid_name(&frame::clean(name)));
            return;
        }
        if self.names.contains_key(name) {
            self.reply(sink, conn, &text::name_in_use(name));
            return;
        }
        let name: Box<str> = name.into();
        log::info!("conn {conn}: logged in as {name}");
        self.names.insert(name.clone(), conn);
        if self.known.insert(name.clone()) {
            sink.store(Request::Event(Event::User {
                name: name.to_string(),
                time: self.clock.now(),
            }));
        }
        let registered = self.registered.contains_key(&name);
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        client.login_seq = self.seq;
        client.name = Some(name.clone());
        if registered {
            client.auth = Auth::MustIdentify { tries: 0 };
            let secs = i64::try_from(self.identify_secs).unwrap_or(i64::MAX);
            let deadline = self.clock.now().saturating_add(secs);
            self.identify_deadlines.push_back((deadline, conn));
            let prompt = text::registered_name_prompt(&name, self.identify_secs);
            self.reply(sink, conn, &prompt);
        } else {
            self.fetch_offline(conn, &name, sink);
        }
    }

    /// The next sequence number for a stored event.
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Sends a request whose reply this connection waits for.
    fn ask(&mut self, conn: ConnId, request: Request, sink: &mut impl Sink) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.waiting = true;
        }
        sink.store(request);
    }

    /// The waiting is over: handle what was held.
    fn done_waiting(&mut self, conn: ConnId, sink: &mut impl Sink) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.waiting = false;
        }
        self.resume(conn, sink);
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

    /// Sends `prefix` + `body`, cut into frames that each begin with the prefix (when the prefix
    /// leaves room for text; otherwise the whole line is packed like any long line).
    fn send_prefixed(&self, sink: &mut impl Sink, to: ConnId, prefix: &str, body: &str) {
        if !frame::prefixed_frames(prefix.as_bytes(), body, |f| sink.send(to, f)) {
            self.reply(sink, to, &format!("{prefix}{body}"));
        }
    }

    /// Sends a one-line text to every member of `ch` but `except`, encoded once.
    fn broadcast(&self, sink: &mut impl Sink, ch: usize, except: Option<ConnId>, line: &str) {
        for piece in frame::pack_lines([line]) {
            let Ok(f) = frame::pad(&piece) else { continue };
            sink.send_many(&self.channels[ch].members, except, &f);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
