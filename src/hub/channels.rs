//! The channel commands: chat, /join, /create, /list, /members and /leave.

use super::{Channel, ConnId, Hub, Sink, MAX_CHANNEL_CHARS};
use crate::frame::{self, FRAME_LEN};
use crate::storage::{Event, Request};
use crate::utils_errors as text;

impl Hub {
    /// Relays a chat message as `[name] text` to every other member, each frame encoded once.
    pub(super) fn chat(&mut self, conn: ConnId, msg: &str, sink: &mut impl Sink) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        let (Some(name), Some(ch)) = (client.name.as_deref(), client.channel) else {
            self.reply(sink, conn, text::NOT_IN_CHANNEL);
            return;
        };
        // `[name] ` on the stack: the hot path allocates nothing. A name is at most 32
        // characters (128 bytes), so the prefix always leaves room.
        let mut prefix = [0u8; FRAME_LEN];
        let prefix_len = name.len() + 3;
        prefix[0] = b'[';
        prefix[1..=name.len()].copy_from_slice(name.as_bytes());
        prefix[name.len() + 1..prefix_len].copy_from_slice(b"] ");
        let members = &self.channels[ch].members;
        frame::prefixed_frames(&prefix[..prefix_len], msg, |f| {
            sink.send_many(members, Some(conn), f);
        });
        // History keeps every channel message, even one nobody else heard.
        let event = Event::Chat {
            seq: 0,
            time: self.clock.now(),
            channel: self.channels[ch].name.to_string(),
            sender: name.to_string(),
            text: msg.to_string(),
        };
        self.record(sink, event);
    }

    /// Stores an event under the next sequence number.
    pub(super) fn record(&mut self, sink: &mut impl Sink, mut event: Event) {
        let next = self.next_seq();
        match &mut event {
            Event::Chat { seq, .. }
            | Event::Private { seq, .. }
            | Event::Join { seq, .. }
            | Event::Leave { seq, .. } => *seq = next,
            Event::User { .. } => {}
        }
        sink.store(Request::Event(event));
    }

    /// Stores that `user` left channel `ch` (it stops seeing that channel's messages).
    pub(super) fn record_leave(&mut self, sink: &mut impl Sink, user: &str, ch: usize) {
        let event = Event::Leave {
            seq: 0,
            user: user.to_string(),
            channel: self.channels[ch].name.to_string(),
        };
        self.record(sink, event);
    }

    /// Checks a channel argument; replies with the error and returns None when it is not valid.
    pub(super) fn channel_arg<'a>(
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

    pub(super) fn join(&mut self, conn: ConnId, arg: &str, sink: &mut impl Sink) {
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

    pub(super) fn create(&mut self, conn: ConnId, arg: &str, sink: &mut impl Sink) {
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
            self.record_leave(sink, &name, old);
            self.broadcast(sink, old, None, &text::has_left(&name));
        }
        log::info!("conn {conn}: {name} joined {}", self.channels[ch].name);
        let event = Event::Join {
            seq: 0,
            user: name.to_string(),
            channel: self.channels[ch].name.to_string(),
        };
        self.record(sink, event);
        self.broadcast(sink, ch, None, &text::has_joined(&name));
        self.channels[ch].members.push(conn);
    }

    pub(super) fn remove_member(&mut self, ch: usize, conn: ConnId) {
        let members = &mut self.channels[ch].members;
        if let Some(pos) = members.iter().position(|&m| m == conn) {
            members.remove(pos);
        }
    }

    pub(super) fn list(&mut self, conn: ConnId, sink: &mut impl Sink) {
        self.reply_lines(sink, conn, self.channels.iter().map(|c| &*c.name));
    }

    /// `/members`: the sorted names of the caller's channel.
    pub(super) fn members(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(ch) = self.clients.get(&conn).and_then(|c| c.channel) else {
            self.reply(sink, conn, text::NOT_IN_CHANNEL);
            return;
        };
        let mut names = self.member_names(ch);
        names.sort_unstable();
        self.reply(
            sink,
            conn,
            &text::members_of(&self.channels[ch].name, &names),
        );
    }

    /// `/leave`: out of the channel, its members told, no reply.
    pub(super) fn leave(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let (Some(ch), Some(name)) = (client.channel.take(), client.name.clone()) else {
            self.reply(sink, conn, text::NOT_IN_CHANNEL);
            return;
        };
        self.remove_member(ch, conn);
        log::info!("conn {conn}: {name} left {}", self.channels[ch].name);
        self.record_leave(sink, &name, ch);
        self.broadcast(sink, ch, None, &text::has_left(&name));
    }

    /// The names of a channel's members, in joining order.
    pub(super) fn member_names(&self, ch: usize) -> Vec<&str> {
        self.channels[ch]
            .members
            .iter()
            .filter_map(|m| self.clients.get(m)?.name.as_deref())
            .collect()
    }
}
