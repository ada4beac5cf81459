//! The hub: every protocol rule, as a state machine with no sockets in it.
//!
//! The event loop tells the hub about connections ([`Hub::connect`]), their complete frames
//! ([`Hub::frame`]) and their end ([`Hub::disconnect`]); the hub answers by handing frames to a
//! [`Sink`]. Names, channels and membership live here and nowhere else.

use std::collections::HashMap;

use crate::command::Command;
use crate::frame::{self, Frame, FRAME_LEN};
use crate::utils_errors as text;

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

/// The state of the chat: names, channels and who is where.
#[derive(Debug, Default)]
pub struct Hub {
    clients: HashMap<ConnId, Client>,
    names: HashMap<Box<str>, ConnId>,
    channels: Vec<Channel>,
    channel_ids: HashMap<Box<str>, usize>,
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
    pub fn new() -> Self {
        Self::default()
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
            Command::Unknown(word) => self.reply(sink, conn, &text::invalid_control_message(word)),
            Command::Time
            | Command::Who
            | Command::Sonnet(_)
            | Command::Help
            | Command::Members
            | Command::Leave => {
                let word = line.split(' ').next().unwrap_or(line);
                self.reply(sink, conn, &text::invalid_control_message(word));
            }
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

    fn chat(&mut self, conn: ConnId, msg: &str, sink: &mut impl Sink) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        let (Some(name), Some(ch)) = (client.name.as_deref(), client.channel) else {
            self.reply(sink, conn, text::NOT_IN_CHANNEL);
            return;
        };
        let prefix = text::chat_prefix(name);
        let members = &self.channels[ch].members;
        for piece in frame::split_text(msg, FRAME_LEN - prefix.len(), false) {
            let mut out = [b' '; FRAME_LEN];
            out[..prefix.len()].copy_from_slice(prefix.as_bytes());
            out[prefix.len()..prefix.len() + piece.len()].copy_from_slice(piece.as_bytes());
            for &member in members {
                if member != conn {
                    sink.send(member, &out);
                }
            }
        }
    }

    /// Checks a channel argument; replies with the error and returns None when it is not valid.
    fn channel_arg<'a>(
        &self,
        conn: ConnId,
        arg: &'a str,
        missing: &str,
        sink: &mut impl Sink,
    ) -> Option<&'a str> {
        if arg.is_empty() {
            self.reply(sink, conn, missing);
            None
        } else if arg.chars().count() > MAX_CHANNEL_CHARS {
            self.reply(sink, conn, text::CHANNEL_NAME_TOO_LONG);
            None
        } else {
            Some(arg)
        }
    }

    fn join(&mut self, conn: ConnId, arg: &str, sink: &mut impl Sink) {
        let Some(name) = self.channel_arg(conn, arg, text::JOIN_REQUIRES_ARGUMENT, sink) else {
            return;
        };
        let Some(&ch) = self.channel_ids.get(name) else {
            self.reply(sink, conn, &text::no_such_channel(name));
            return;
        };
        if self.clients.get(&conn).and_then(|c| c.channel) == Some(ch) {
            return;
        }
        self.move_to(conn, ch, sink);
    }

    fn create(&mut self, conn: ConnId, arg: &str, sink: &mut impl Sink) {
        let Some(name) = self.channel_arg(conn, arg, text::CREATE_REQUIRES_ARGUMENT, sink) else {
            return;
        };
        if self.channel_ids.contains_key(name) {
            self.reply(sink, conn, &text::channel_exists(name));
            return;
        }
        let ch = self.channels.len();
        self.channels.push(Channel {
            name: name.into(),
            members: Vec::new(),
        });
        self.channel_ids.insert(name.into(), ch);
        self.move_to(conn, ch, sink);
    }

    /// Leaves the current channel (telling its members) and joins `ch` (telling its members).
    fn move_to(&mut self, conn: ConnId, ch: usize, sink: &mut impl Sink) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let Some(name) = client.name.clone() else {
            return;
        };
        let old = client.channel.replace(ch);
        if let Some(old) = old {
            self.remove_member(old, conn);
            self.broadcast(sink, old, None, &text::has_left(&name));
        }
        log::info!("conn {conn}: {name} joined {}", self.channels[ch].name);
        self.broadcast(sink, ch, None, &text::has_joined(&name));
        self.channels[ch].members.push(conn);
    }

    fn remove_member(&mut self, ch: usize, conn: ConnId) {
        let members = &mut self.channels[ch].members;
        if let Some(pos) = members.iter().position(|&m| m == conn) {
            members.remove(pos);
        }
    }

    fn list(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let frames = frame::pack_lines(self.channels.iter().map(|c| &*c.name));
        for f in frames {
            self.send_text(sink, conn, &f);
        }
    }

    /// Sends a one-line text (cut into several frames if it is longer than one).
    fn reply(&self, sink: &mut impl Sink, conn: ConnId, line: &str) {
        for f in frame::pack_lines([line]) {
            self.send_text(sink, conn, &f);
        }
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
pub(crate) mod tests {
    use super::*;

    /// A sink that records everything, for tests.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub sent: Vec<(ConnId, String)>,
        pub closed: Vec<ConnId>,
    }

    impl Sink for Recorder {
        fn send(&mut self, to: ConnId, frame: &Frame) {
            self.sent.push((to, frame::decode(frame).into_owned()));
        }
        fn close(&mut self, conn: ConnId) {
            self.closed.push(conn);
        }
    }

    impl Recorder {
        pub fn take(&mut self) -> Vec<(ConnId, String)> {
            std::mem::take(&mut self.sent)
        }
    }

    pub(crate) struct Fixture {
        pub hub: Hub,
        pub out: Recorder,
    }

    impl Fixture {
        pub fn new() -> Self {
            Fixture {
                hub: Hub::new(),
                out: Recorder::default(),
            }
        }
        pub fn send(&mut self, conn: ConnId, line: &str) -> Vec<(ConnId, String)> {
            let f = frame::pad(line).unwrap();
            self.hub.frame(conn, &f, &mut self.out);
            self.out.take()
        }
        pub fn login(&mut self, conn: ConnId, name: &str) {
            self.hub.connect(conn);
            assert_eq!(self.send(conn, name), vec![]);
        }
    }

    fn one(conn: ConnId, s: &str) -> Vec<(ConnId, String)> {
        vec![(conn, s.to_string())]
    }

    #[test]
    fn login_is_silent_and_names_are_checked() {
        let mut f = Fixture::new();
        f.hub.connect(1);
        assert_eq!(f.send(1, "   "), vec![]);
        assert_eq!(
            f.send(1, "two words"),
            one(
                1,
                "Invalid name two words: a name is 1 to 32 characters without spaces."
            )
        );
        let long = "x".repeat(33);
        assert_eq!(f.send(1, &long), one(1, &text::invalid_name(&long)));
        assert_eq!(
            f.send(1, "a\x1bb"),
            one(
                1,
                "Invalid name ab: a name is 1 to 32 characters without spaces."
            )
        );
        assert_eq!(f.send(1, &"é".repeat(32)), vec![]);
        assert_eq!(f.hub.name_of(1), Some("é".repeat(32).as_str()));
        f.hub.connect(2);
        assert_eq!(
            f.send(2, &"é".repeat(32)),
            one(2, &text::name_in_use(&"é".repeat(32)))
        );
        assert_eq!(f.send(2, "Bob"), vec![]);
    }

    #[test]
    fn chat_outside_a_channel() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        assert_eq!(f.send(1, "hello"), one(1, text::NOT_IN_CHANNEL));
    }

    #[test]
    fn create_join_chat_leave_flow() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        f.login(2, "Kay");
        f.login(3, "Bob");
        assert_eq!(f.send(1, "/create tas"), vec![]);
        assert_eq!(f.send(2, "/join tas"), one(1, "Kay has joined"));
        assert_eq!(f.send(2, "Hi!"), one(1, "[Kay] Hi!"));
        assert_eq!(f.send(1, "Hello!"), one(2, "[Alice] Hello!"));
        assert_eq!(
            f.send(3, "/join tas"),
            vec![(1, "Bob has joined".into()), (2, "Bob has joined".into())]
        );
        assert_eq!(f.send(2, "/join tas"), vec![]);
        assert_eq!(
            f.send(2, "/create other"),
            vec![(1, "Kay has left".into()), (3, "Kay has left".into())]
        );
        assert_eq!(
            f.send(1, "/join other"),
            vec![(3, "Alice has left".into()), (2, "Alice has joined".into())]
        );
        f.hub.disconnect(1, &mut f.out);
        assert_eq!(f.out.take(), one(2, "Alice has left"));
        // The name is free again.
        f.login(4, "Alice");
    }

    #[test]
    fn join_errors_change_nothing() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        f.login(2, "Kay");
        f.send(1, "/create a");
        f.send(2, "/join a");
        assert_eq!(
            f.send(2, "/join nowhere"),
            one(2, "No channel named nowhere exists. Try '/create nowhere'?")
        );
        assert_eq!(
            f.send(2, "/join"),
            one(
                2,
                "/join command must be followed by the name of a channel to join."
            )
        );
        assert_eq!(f.send(2, "/join    "), one(2, text::JOIN_REQUIRES_ARGUMENT));
        assert_eq!(
            f.send(2, "/create a"),
            one(2, "Room a already exists, so cannot be created.")
        );
        assert_eq!(
            f.send(2, "/create"),
            one(
                2,
                "/create command must be followed by the name of a channel to create"
            )
        );
        assert_eq!(
            f.send(2, &format!("/create {}", "c".repeat(65))),
            one(2, "Channel names are at most 64 characters.")
        );
        assert_eq!(
            f.send(2, &format!("/join {}", "c".repeat(65))),
            one(2, text::CHANNEL_NAME_TOO_LONG)
        );
        assert_eq!(f.send(2, "/list"), one(2, "a"));
        // Kay is still in a: its messages still reach Alice.
        assert_eq!(f.send(2, "still here"), one(1, "[Kay] still here"));
    }

    #[test]
    fn control_only_argument_counts_as_missing() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        assert_eq!(
            f.send(1, "/create \x01\x02"),
            one(1, text::CREATE_REQUIRES_ARGUMENT)
        );
        assert_eq!(f.send(1, "/create a\x1b[2Jb"), vec![]);
        assert_eq!(f.send(1, "/list"), one(1, "a[2Jb"));
    }

    #[test]
    fn channel_names_may_hold_spaces() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        f.login(2, "Kay");
        assert_eq!(f.send(1, "/create  the lounge  "), vec![]);
        assert_eq!(f.send(2, "/join the lounge"), one(1, "Kay has joined"));
        let sixty_four = "é".repeat(64);
        assert_eq!(
            f.send(1, &format!("/create {sixty_four}")),
            one(2, "Alice has left")
        );
    }

    #[test]
    fn list_in_creation_order_and_nothing_when_empty() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        assert_eq!(f.send(1, "/list"), vec![]);
        for c in ["zeta", "alpha", "mid"] {
            f.send(1, &format!("/create {c}"));
        }
        assert_eq!(f.send(1, "/list"), one(1, "zeta\nalpha\nmid"));
    }

    #[test]
    fn list_packs_many_channels_into_frames() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        let names: Vec<String> = (0..100).map(|i| format!("channel-{i:03}")).collect();
        for c in &names {
            f.send(1, &format!("/create {c}"));
        }
        let out = f.send(1, "/list");
        assert!(out.len() > 1);
        assert!(out.iter().all(|(c, t)| *c == 1 && t.len() <= FRAME_LEN));
        let got: Vec<&str> = out.iter().flat_map(|(_, t)| t.lines()).collect();
        assert_eq!(got, names);
    }

    #[test]
    fn unknown_commands_name_only_the_word() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        assert_eq!(
            f.send(1, "/joinx a b c"),
            one(1, "/joinx is not a valid control message. Valid messages are /create, /list, and /join.")
        );
    }

    #[test]
    fn empty_frames_are_ignored() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        assert_eq!(f.send(1, ""), vec![]);
        assert_eq!(f.send(1, "\x01\x02  "), vec![]);
    }

    #[test]
    fn control_characters_are_removed_from_chat() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        f.login(2, "Kay");
        f.send(1, "/create a");
        f.send(2, "/join a");
        assert_eq!(
            f.send(2, "\x1b[31mred\x1b[0m\r\nfake"),
            one(1, "[Kay] [31mred[0mfake")
        );
    }

    #[test]
    fn over_long_relays_keep_the_prefix_on_every_piece() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        let name = "N".repeat(32);
        f.login(2, &name);
        f.send(1, "/create a");
        f.send(2, "/join a");
        let mut raw = [0xffu8; FRAME_LEN]; // 200 invalid bytes: 600 bytes of U+FFFD
        raw[0] = b'x';
        f.hub.frame(2, &raw, &mut f.out);
        let out = f.out.take();
        let prefix = format!("[{name}] ");
        assert!(out.len() > 1);
        let mut body = String::new();
        for (to, t) in &out {
            assert_eq!(*to, 1);
            assert!(t.len() <= FRAME_LEN);
            assert!(t.starts_with(&prefix), "{t}");
            body.push_str(&t[prefix.len()..]);
        }
        assert_eq!(body, frame::decode(&raw));
    }

    #[test]
    fn long_replies_are_cut_not_truncated() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        let channel = "€".repeat(64); // 192 bytes: the reply is longer than a frame
        let out = f.send(1, &format!("/join {channel}"));
        assert_eq!(out.len(), 3); // 425 bytes
        let joined: String = out.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(joined, text::no_such_channel(&channel));
    }

    #[test]
    fn frames_from_unnamed_connections_are_never_broadcast() {
        let mut f = Fixture::new();
        f.login(1, "Alice");
        f.send(1, "/create a");
        f.hub.connect(2);
        f.hub.disconnect(2, &mut f.out);
        assert_eq!(f.out.take(), vec![]);
    }
}
