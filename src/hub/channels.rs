//! Channels: creating, joining, parting, saying, and the paced `/list`.

use super::{ChanId, Channel, ConnId, Hub, MsgKind, Out, Sink, Wait, MAX_CHANNEL_CHARS};
use crate::names;
use crate::storage::{Event, Request};

/// A `/list` reply is sent in parts of about this many bytes, each once the previous one is
/// written, so that no reply can fill a reader's queue.
pub const LIST_CHUNK: usize = 16 * 1024;

/// Why a channel operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("no channel name")]
    Missing,
    #[error("the channel name is too long")]
    TooLong,
    #[error("no such channel")]
    NoSuchChannel,
    #[error("the channel exists")]
    Exists,
    #[error("the server has the most channels it may")]
    TooMany,
    #[error("not in that channel")]
    NotMember,
    #[error("not logged in")]
    NotLoggedIn,
    /// In a cluster: the creation is being asked of the other nodes; the answer comes later.
    #[error("being created in the cluster")]
    Pending,
}

/// Checks a channel argument (already cleaned): not empty, not too long.
pub fn check_channel_name(name: &str) -> Result<&str, ChannelError> {
    if name.is_empty() {
        Err(ChannelError::Missing)
    } else if name.chars().count() > MAX_CHANNEL_CHARS {
        Err(ChannelError::TooLong)
    } else {
        Ok(name)
    }
}

impl Hub {
    pub(super) fn add_channel(&mut self, name: &str) -> ChanId {
        let ch = self.channels.len();
        // One server: creation order. A cluster: last until its place is known.
        let rank = if self.cluster.is_some() {
            u64::MAX
        } else {
            ch as u64
        };
        self.channels.push(Channel {
            name: name.into(),
            members: Vec::new(),
            last_join: 0,
            rank,
        });
        self.channel_ids.insert(names::channel_key(name), ch);
        // Its rank is the highest so far (or unknown): its place is last.
        self.order.push(ch);
        ch
    }

    /// Puts a channel where its rank says in the `/list` order.
    pub(super) fn place(&mut self, ch: ChanId, rank: u64) {
        let Some(channel) = self.channels.get_mut(ch) else {
            return;
        };
        channel.rank = rank;
        self.order.retain(|&x| x != ch);
        let channels = &self.channels;
        let at = self
            .order
            .partition_point(|&x| (channels[x].rank, x) < (rank, ch));
        self.order.insert(at, ch);
    }

    /// Creates a channel and joins it. Nothing changes on an error.
    pub fn create(
        &mut self,
        conn: ConnId,
        name: &str,
        sink: &mut impl Sink,
    ) -> Result<ChanId, ChannelError> {
        self.create_as(conn, name, false, sink)
    }

    /// Creates a channel and joins it alone: once the channel exists, the connection leaves
    /// every other channel first (the course protocol's one channel at a time; in a cluster,
    /// when the cluster has made the channel). A refused creation changes nothing: the
    /// connection stays where it was.
    pub fn create_alone(
        &mut self,
        conn: ConnId,
        name: &str,
        sink: &mut impl Sink,
    ) -> Result<ChanId, ChannelError> {
        self.create_as(conn, name, true, sink)
    }

    /// Leaves every channel (each one's members are told): the course protocol's one, before
    /// a `/join` or `/create`.
    pub fn leave_all(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let chans: Vec<ChanId> = self.channels_of(conn).collect();
        for ch in chans {
            let _ = self.part(conn, ch, None, sink);
        }
    }

    fn create_as(
        &mut self,
        conn: ConnId,
        name: &str,
        alone: bool,
        sink: &mut impl Sink,
    ) -> Result<ChanId, ChannelError> {
        let name = check_channel_name(name)?;
        if !self.is_open(conn) {
            return Err(ChannelError::NotLoggedIn);
        }
        if self.channel_id(name).is_some() {
            return Err(ChannelError::Exists);
        }
        if self.channels.len() >= self.limits.max_channels {
            return Err(ChannelError::TooMany);
        }
        if self.cluster.is_some() {
            if let Some(c) = self.clients.get_mut(&conn) {
                c.create_alone = alone;
            }
            if !self.create_remote(conn, name, sink) {
                self.reply(sink, conn, &[crate::utils_errors::STORAGE_FAILED]);
            }
            return Err(ChannelError::Pending);
        }
        if alone {
            self.leave_all(conn, sink);
        }
        let ch = self.add_channel(name);
        log::info!("{}: created channel {name}", super::conn_label(conn));
        sink.store(Request::Event(Event::Channel {
            name: name.to_string(),
            time: self.clock.now(),
        }));
        self.join_id(conn, ch, sink);
        Ok(ch)
    }

    /// Joins an existing channel (staying in the others). Joining a channel one is in does
    /// nothing.
    pub fn join(
        &mut self,
        conn: ConnId,
        name: &str,
        sink: &mut impl Sink,
    ) -> Result<ChanId, ChannelError> {
        let name = check_channel_name(name)?;
        if !self.is_open(conn) {
            return Err(ChannelError::NotLoggedIn);
        }
        let ch = self.channel_id(name).ok_or(ChannelError::NoSuchChannel)?;
        self.join_id(conn, ch, sink);
        Ok(ch)
    }

    /// Adds `conn` to channel `ch`; its existing members are told.
    pub(super) fn join_id(&mut self, conn: ConnId, ch: ChanId, sink: &mut impl Sink) {
        if self.is_member(conn, ch) || ch >= self.channels.len() {
            return;
        }
        let seq = self.next_seq();
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let (Some(person), Some(key)) = (client.person.as_ref(), client.key.as_deref()) else {
            return;
        };
        if client.chans.capacity() == 0 {
            // Most clients are in one channel: room for one (16 bytes), not the four a first
            // push makes room for. Later joins grow it as usual.
            client.chans.reserve_exact(1);
        }
        client.chans.push((ch, seq));
        log::info!(
            "{}: {} joined {}",
            super::conn_label(conn),
            person.name,
            self.channels[ch].name
        );
        sink.store(Request::Event(Event::Join {
            seq,
            user_key: key.to_string(),
            channel: self.channels[ch].name.to_string(),
        }));
        sink.emit_many(
            &self.channels[ch].members,
            None,
            &Out::Joined {
                chan: &self.channels[ch].name,
                who: person,
            },
        );
        self.channels[ch].members.push(conn);
        self.channels[ch].last_join = seq;
        self.tell_join(sink, conn, ch, seq);
    }

    /// Leaves a channel; its remaining members are told (`msg`: an IRC part message).
    pub fn part(
        &mut self,
        conn: ConnId,
        ch: ChanId,
        msg: Option<&str>,
        sink: &mut impl Sink,
    ) -> Result<(), ChannelError> {
        if !self.is_member(conn, ch) {
            return Err(ChannelError::NotMember);
        }
        let seq = self.leave_quietly(conn, ch, sink);
        self.tell_part(sink, conn, ch, msg, seq);
        let Some(person) = self.clients.get(&conn).and_then(|c| c.person.as_ref()) else {
            return Ok(());
        };
        log::info!(
            "{}: {} left {}",
            super::conn_label(conn),
            person.name,
            self.channels[ch].name
        );
        sink.emit_many(
            &self.channels[ch].members,
            None,
            &Out::Parted {
                chan: &self.channels[ch].name,
                who: person,
                msg,
            },
        );
        Ok(())
    }

    /// Takes `conn` out of `ch` and records it, telling nobody; returns the leave's seq.
    fn leave_quietly(&mut self, conn: ConnId, ch: ChanId, sink: &mut impl Sink) -> u64 {
        let seq = self.next_seq();
        let Some(client) = self.clients.get_mut(&conn) else {
            return seq;
        };
        let Some(pos) = client.chans.iter().position(|&(x, _)| x == ch) else {
            return seq;
        };
        client.chans.remove(pos);
        if let Some(key) = client.key.as_deref() {
            sink.store(Request::Event(Event::Leave {
                seq,
                user_key: key.to_string(),
                channel: self.channels[ch].name.to_string(),
            }));
        }
        let members = &mut self.channels[ch].members;
        if let Some(pos) = members.iter().position(|&m| m == conn) {
            members.remove(pos);
        }
        seq
    }

    /// Takes a departing connection out of all its channels; everyone who shared one hears it
    /// once.
    pub(super) fn quit_channels(&mut self, conn: ConnId, msg: Option<&str>, sink: &mut impl Sink) {
        let audience = self.audience(conn);
        let chans: Vec<ChanId> = self.channels_of(conn).collect();
        for ch in chans {
            let _ = self.leave_quietly(conn, ch, sink);
        }
        if let Some(person) = self.clients.get(&conn).and_then(|c| c.person.as_ref()) {
            sink.emit_many(&audience, None, &Out::Quit { who: person, msg });
        }
    }

    /// A message to a channel the connection is in: every other member gets it; history
    /// keeps it, even when nobody else heard it.
    pub fn say(
        &mut self,
        conn: ConnId,
        ch: ChanId,
        msg: &str,
        kind: MsgKind,
        sink: &mut impl Sink,
    ) -> Result<(), ChannelError> {
        if !self.is_member(conn, ch) {
            return Err(ChannelError::NotMember);
        }
        let seq = self.next_seq();
        let Some(client) = self.clients.get(&conn) else {
            return Err(ChannelError::NotLoggedIn);
        };
        let (Some(person), Some(key)) = (client.person.as_ref(), client.key.as_deref()) else {
            return Err(ChannelError::NotLoggedIn);
        };
        let channel = &self.channels[ch];
        sink.emit_many(
            &channel.members,
            Some(conn),
            &Out::Chat {
                chan: &channel.name,
                from: person,
                text: msg,
                kind,
            },
        );
        let stored = match kind {
            MsgKind::Action => crate::utils_errors::action_line(&person.name, msg),
            MsgKind::Chat | MsgKind::Notice => msg.to_string(),
        };
        sink.store(Request::Event(Event::Chat {
            seq,
            time: self.clock.now(),
            channel: channel.name.to_string(),
            sender: person.name.to_string(),
            sender_key: key.to_string(),
            text: stored,
        }));
        if !self.tell_chat(sink, conn, ch, msg, kind, seq) {
            // The channel's members here have it; those on other nodes will not.
            self.reply(sink, conn, &[crate::utils_errors::STORAGE_FAILED]);
        }
        Ok(())
    }

    /// `/list`: the channel names in creation order, packed into frames, sent in parts that
    /// each wait for the previous one to be written. Nothing at all when there are none.
    pub fn list(&mut self, conn: ConnId, sink: &mut impl Sink) {
        self.list_from(conn, 0, sink);
    }

    pub(super) fn list_from(&mut self, conn: ConnId, start: ChanId, sink: &mut impl Sink) {
        // `start` and `end` are places in the /list order.
        let mut end = start;
        let mut bytes = 0;
        while end < self.order.len() && bytes < LIST_CHUNK {
            bytes += self.channels[self.order[end]].name.len() + 1;
            end += 1;
        }
        if end > start {
            // Each part is one reply: the frame codec packs its lines into whole frames.
            let lines: Vec<&str> = self.order[start..end]
                .iter()
                .map(|&ch| &*self.channels[ch].name)
                .collect();
            self.reply(sink, conn, &lines);
        }
        if end < self.order.len() {
            self.set_wait(conn, Wait::List { next: end });
            sink.report_flush(conn);
        } else {
            self.done_waiting(conn, sink);
        }
    }
}
