//! The hub as one node of a cluster (`--cluster`): what it tells the other nodes, and how it
//! takes in theirs.
//!
//! The other nodes' users are kept here as [`RemoteMember`]s, with the channels they are in,
//! so that `/who`, `/members`, NAMES and the name rules see the whole cluster; their messages
//! arrive as events and are rendered for this node's clients like local ones. Names are
//! claimed in Redis before a login completes; channels are created there, atomically. Without
//! a cluster none of this runs and the hub is what it always was.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{ChanId, ConnId, Hub, MsgKind, Out, Person, ReplyKind, Sink, Wait};
use crate::cluster::{ClusterMsg, ClusterOp, Created, Hlc, NodeId, RemoteUser, Wire, WireKind};
use crate::names;
use crate::storage::{Event, Request};
use crate::utils_errors as text;

/// How long (in seconds, counted by the once-a-second tick) a `/join` of a channel that Redis
/// has waits for the channel's announcement before it joins anyway.
const FOUND_EARLY_SECS: i64 = 2;

/// A user of another node.
#[derive(Debug)]
pub(super) struct RemoteMember {
    pub person: Person,
    pub key: Box<str>,
    pub chans: Vec<ChanId>,
}

/// What a hub that is one node of a cluster keeps.
#[derive(Debug)]
pub(super) struct ClusterState {
    pub node: NodeId,
    pub hlc: Hlc,
    pub remote: HashMap<(NodeId, u64), RemoteMember>,
    /// The names other nodes' users hold.
    pub names: HashMap<Box<str>, (NodeId, u64)>,
    /// `/join`s of channels Redis has and this node has not heard of yet: each waits for the
    /// channel's announcement (until the unix second given), so that its join is ordered
    /// after what the creating node did with the channel first.
    pub found_early: Vec<(ConnId, Box<str>, i64)>,
}

impl ClusterState {
    pub fn new(node: NodeId, last_seq: u64) -> ClusterState {
        ClusterState {
            node,
            hlc: Hlc::new(node, last_seq),
            remote: HashMap::new(),
            names: HashMap::new(),
            found_early: Vec::new(),
        }
    }
}

fn wire_kind(kind: MsgKind) -> WireKind {
    match kind {
        MsgKind::Chat => WireKind::Chat,
        MsgKind::Action => WireKind::Action,
        MsgKind::Notice => WireKind::Notice,
    }
}

fn msg_kind(kind: WireKind) -> MsgKind {
    match kind {
        WireKind::Chat => MsgKind::Chat,
        WireKind::Action => MsgKind::Action,
        WireKind::Notice => MsgKind::Notice,
    }
}

impl Hub {
    /// This hub's node, when it is one node of a cluster.
    pub fn node(&self) -> Option<NodeId> {
        self.cluster.as_ref().map(|c| c.node)
    }

    /// Makes this hub one node of a cluster: its seqs come from a hybrid logical clock from
    /// now on.
    pub fn join_cluster(&mut self, node: NodeId) {
        self.cluster = Some(ClusterState::new(node, self.seq));
    }

    /// Tells the other nodes, when there are any; false when the link refused (Redis has
    /// been away so long that its backlog is full).
    pub(super) fn publish(&self, sink: &mut impl Sink, wire: Wire) -> bool {
        if self.cluster.is_none() {
            return true;
        }
        let accepted = sink.cluster(ClusterOp::Publish(wire));
        if !accepted {
            log::warn!("cluster: the link refused an event (Redis away, its backlog full)");
        }
        accepted
    }

    /// Puts a local user's current state in this node's presence (or removes it).
    pub(super) fn share_presence(&self, sink: &mut impl Sink, conn: ConnId) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let user = self.remote_user(conn, cluster.node);
        sink.cluster(ClusterOp::Presence {
            conn: conn as u64,
            user,
        });
    }

    /// A local, logged-in user as the other nodes see it.
    pub(super) fn remote_user(&self, conn: ConnId, node: NodeId) -> Option<RemoteUser> {
        let client = self.clients.get(&conn)?;
        let person = client.person.as_ref()?;
        if client.auth != super::Auth::Open {
            return None;
        }
        Some(RemoteUser {
            node,
            conn: conn as u64,
            name: person.name.to_string(),
            key: client.key.as_deref()?.to_string(),
            user: person.user.to_string(),
            host: person.host.to_string(),
            chans: client
                .chans
                .iter()
                .map(|&(ch, _)| self.channels[ch].name.to_string())
                .collect(),
        })
    }

    /// The name is another node's user's.
    pub(super) fn remote_owner(&self, key: &str) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.names.contains_key(key))
    }

    /// Another node's user by name, if one holds it.
    pub(super) fn remote_person(&self, key: &str) -> Option<&Person> {
        let c = self.cluster.as_ref()?;
        let id = c.names.get(key)?;
        Some(&c.remote.get(id)?.person)
    }

    /// The other nodes' users in a channel.
    pub(super) fn remote_members(&self, ch: ChanId) -> impl Iterator<Item = &Person> {
        self.cluster.iter().flat_map(move |c| {
            c.remote
                .values()
                .filter(move |m| m.chans.contains(&ch))
                .map(|m| &m.person)
        })
    }

    /// The people in a channel, each with its connection here (None: on another node): the
    /// local members in joining order, then the other nodes'.
    pub fn member_entries(&self, ch: ChanId) -> impl Iterator<Item = (Option<ConnId>, &Person)> {
        self.members(ch)
            .iter()
            .filter_map(|&m| Some((Some(m), self.clients.get(&m)?.person.as_ref()?)))
            .chain(self.remote_members(ch).map(|p| (None, p)))
    }

    /// How many people are in a channel, on every node.
    pub fn member_count(&self, ch: ChanId) -> usize {
        self.members(ch).len() + self.remote_members(ch).count()
    }

    /// Every user that may act under its name, here (with its connection) and on the other
    /// nodes.
    pub fn everyone(&self) -> impl Iterator<Item = (Option<ConnId>, &Person)> {
        self.users()
            .map(|(id, p)| (Some(id), p))
            .chain(self.remote_people().map(|(p, _)| (None, p)))
    }

    /// The user holding a name (compared as names compare), here or on another node.
    pub fn person_named(&self, name: &str) -> Option<(Option<ConnId>, &Person)> {
        if let Some(id) = self.find_user(name).filter(|&id| self.is_open(id)) {
            return Some((Some(id), self.person(id)?));
        }
        self.remote_person(&names::name_key(name))
            .map(|p| (None, p))
    }

    /// The channels of the user holding a name, here or on another node.
    pub fn channels_of_name(&self, name: &str) -> Vec<ChanId> {
        if let Some(id) = self.find_user(name) {
            return self.channels_of(id).collect();
        }
        let key = names::name_key(name);
        self.cluster
            .as_ref()
            .and_then(|c| c.remote.get(c.names.get(&key)?))
            .map(|m| m.chans.clone())
            .unwrap_or_default()
    }

    /// The other nodes' users, each with its channels.
    pub fn remote_people(&self) -> impl Iterator<Item = (&Person, &[ChanId])> {
        self.cluster
            .iter()
            .flat_map(|c| c.remote.values().map(|m| (&m.person, m.chans.as_slice())))
    }

    /// A local login, waiting for its name to be claimed in the cluster.
    pub(super) fn claim(&mut self, conn: ConnId, key: &str, sink: &mut impl Sink) -> bool {
        if !sink.cluster(ClusterOp::Claim {
            conn: conn as u64,
            key: key.to_string(),
        }) {
            return false;
        }
        self.set_wait(conn, Wait::Claim);
        true
    }

    /// A login's name is now the connection's, cluster-wide.
    pub(super) fn logged_in(&mut self, conn: ConnId, sink: &mut impl Sink) {
        if let Some(node) = self.node() {
            if let Some(user) = self.remote_user(conn, node) {
                self.publish(sink, Wire::Login { user });
            }
            self.share_presence(sink, conn);
        }
    }

    /// A local user left: the other nodes hear it, and its name is free again.
    pub(super) fn logged_out(
        &mut self,
        conn: ConnId,
        key: &str,
        msg: Option<&str>,
        sink: &mut impl Sink,
    ) {
        if let Some(c) = &self.cluster {
            let node = c.node;
            sink.cluster(ClusterOp::Release {
                conn: conn as u64,
                key: key.to_string(),
            });
            sink.cluster(ClusterOp::Presence {
                conn: conn as u64,
                user: None,
            });
            self.publish(
                sink,
                Wire::Logout {
                    node,
                    conn: conn as u64,
                    msg: msg.map(str::to_string),
                },
            );
        }
    }

    /// Publishes a local event with this node's number.
    pub(super) fn tell_join(&self, sink: &mut impl Sink, conn: ConnId, ch: ChanId, seq: u64) {
        if let Some(node) = self.node() {
            let chan = self.channels[ch].name.to_string();
            self.publish(
                sink,
                Wire::Join {
                    node,
                    conn: conn as u64,
                    chan,
                    seq,
                },
            );
            self.share_presence(sink, conn);
        }
    }

    pub(super) fn tell_part(
        &self,
        sink: &mut impl Sink,
        conn: ConnId,
        ch: ChanId,
        msg: Option<&str>,
        seq: u64,
    ) {
        if let Some(node) = self.node() {
            let chan = self.channels[ch].name.to_string();
            self.publish(
                sink,
                Wire::Part {
                    node,
                    conn: conn as u64,
                    chan,
                    msg: msg.map(str::to_string),
                    seq,
                },
            );
            self.share_presence(sink, conn);
        }
    }

    /// Publishes a local chat message; false when the link refused it (the sender is told).
    pub(super) fn tell_chat(
        &self,
        sink: &mut impl Sink,
        conn: ConnId,
        ch: ChanId,
        text: &str,
        kind: MsgKind,
        seq: u64,
    ) -> bool {
        if let Some(node) = self.node() {
            return self.publish(
                sink,
                Wire::Chat {
                    node,
                    conn: conn as u64,
                    chan: self.channels[ch].name.to_string(),
                    text: text.to_string(),
                    kind: wire_kind(kind),
                    seq,
                },
            );
        }
        true
    }

    /// A private message for another node's user; false when the link refused it.
    pub(super) fn tell_private(
        &self,
        sink: &mut impl Sink,
        conn: ConnId,
        to: &str,
        text: &str,
        kind: MsgKind,
        seq: u64,
    ) -> bool {
        let to_node = self
            .cluster
            .as_ref()
            .and_then(|c| c.names.get(to))
            .map(|&(n, _)| n);
        if let (Some(node), Some(to_node)) = (self.node(), to_node) {
            return self.publish(
                sink,
                Wire::Private {
                    node,
                    conn: conn as u64,
                    to_node,
                    to: to.to_string(),
                    text: text.to_string(),
                    kind: wire_kind(kind),
                    seq,
                },
            );
        }
        true
    }

    /// Creates a channel cluster-wide: the connection waits for the answer.
    pub(super) fn create_remote(&mut self, conn: ConnId, name: &str, sink: &mut impl Sink) -> bool {
        let op = ClusterOp::CreateChannel {
            conn: conn as u64,
            name: name.to_string(),
            key: names::channel_key(name).to_string(),
            max: self.limits.max_channels,
        };
        if !sink.cluster(op) {
            return false;
        }
        self.set_wait(conn, Wait::Create);
        true
    }

    /// A `/join` of a channel this node does not know: another node may have created it a
    /// moment ago, its announcement still on the way. Asks the cluster, and the connection
    /// waits for the answer; false (the channel does not exist) without a cluster, or when
    /// the link cannot take the question.
    pub fn find_remote(&mut self, conn: ConnId, name: &str, sink: &mut impl Sink) -> bool {
        if self.cluster.is_none() || !self.is_open(conn) {
            return false;
        }
        let op = ClusterOp::FindChannel {
            conn: conn as u64,
            key: names::channel_key(name).to_string(),
            asked: name.to_string(),
        };
        if !sink.cluster(op) {
            return false;
        }
        self.set_wait(conn, Wait::Find);
        true
    }

    /// What the cluster link tells: answers to this node's claims and creations, and the other
    /// nodes' events.
    pub fn cluster_msg(&mut self, msg: ClusterMsg, sink: &mut impl Sink) {
        if self.cluster.is_none() {
            return;
        }
        match msg {
            ClusterMsg::Claimed { conn, ok, .. } => self.claimed(conn as ConnId, ok, sink),
            ClusterMsg::ChannelCreated {
                conn,
                name,
                outcome,
            } => self.channel_created(conn as ConnId, &name, outcome, sink),
            ClusterMsg::ChannelFound { conn, asked, name } => {
                self.channel_found(conn as ConnId, &asked, name.as_deref(), sink)
            }
            ClusterMsg::Remote(wire) => self.remote_event(wire, sink),
            ClusterMsg::Snapshot { users, channels } => self.snapshot(users, channels),
            ClusterMsg::NodeGone { node } => {
                let ids: Vec<(NodeId, u64)> = self
                    .cluster
                    .iter()
                    .flat_map(|c| c.remote.keys().copied())
                    .filter(|&(n, _)| n == node)
                    .collect();
                for id in ids {
                    self.remote_gone(id, None, true, sink);
                }
            }
        }
    }

    fn claimed(&mut self, conn: ConnId, ok: Option<bool>, sink: &mut impl Sink) {
        log::debug!(
            "{}: name claimed in the cluster: {ok:?}",
            super::conn_label(conn)
        );
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        if client.wait != Wait::Claim {
            // An IRC rename claims its new name as it goes: another node won the race for
            // it, and two holders of one name must not stay.
            if ok == Some(false) {
                if let Some(name) = client.name() {
                    let reply = text::name_in_use(name);
                    sink.close(conn, Some(&reply));
                }
            }
            return;
        }
        let (Some(key), Some(name)) = (client.key.clone(), client.name().map(str::to_string))
        else {
            return;
        };
        let identified = self.registered.contains_key(&*key);
        let identifying = self
            .clients
            .get_mut(&conn)
            .is_some_and(|c| std::mem::take(&mut c.identifying));
        match ok {
            Some(true) => {
                self.owners.insert(key.clone(), conn);
                if identifying {
                    self.reply_kind(
                        sink,
                        conn,
                        ReplyKind::Identified,
                        &[&text::identified(&name)],
                    );
                }
                self.logged_in(conn, sink);
                if identified {
                    // A registered name identified here: its holders elsewhere go.
                    if let Some(node) = self.node() {
                        self.publish(
                            sink,
                            Wire::Identified {
                                node,
                                key: key.to_string(),
                            },
                        );
                    }
                }
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.wait = Wait::Nothing;
                }
                self.start_mail(conn, sink);
                if !self.is_waiting(conn) {
                    sink.resume(conn);
                }
            }
            Some(false) if identified => {
                // Another node's connection identified it first.
                sink.close(conn, Some(&text::identified_elsewhere(&name)));
            }
            None if identifying => {
                // The password was right but the cluster cannot be asked: the connection
                // stays as it was, unidentified, and may send /identify again.
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.auth = super::Auth::MustIdentify { tries: 0 };
                }
                self.pending.entry(Box::from(&*key)).or_default().push(conn);
                self.reply_kind(sink, conn, ReplyKind::Plain, &[text::STORAGE_FAILED]);
                self.done_waiting(conn, sink);
            }
            refused => {
                let reply = if refused.is_some() {
                    text::name_in_use(&name)
                } else {
                    text::STORAGE_FAILED.to_string()
                };
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.person = None;
                    c.key = None;
                }
                if self.proto_of(conn) == Some(super::Proto::Irc) {
                    // IRC clients took the login as done: they cannot be asked again.
                    sink.close(conn, Some(&reply));
                } else {
                    self.reply_kind(sink, conn, ReplyKind::Plain, &[&reply]);
                    self.done_waiting(conn, sink);
                }
            }
        }
    }

    fn channel_created(
        &mut self,
        conn: ConnId,
        name: &str,
        outcome: Created,
        sink: &mut impl Sink,
    ) {
        if !self.waits_for(conn, Wait::Create) {
            return;
        }
        let existing = self.channel_id(name);
        let alone = self
            .clients
            .get_mut(&conn)
            .is_some_and(|c| std::mem::take(&mut c.create_alone));
        match outcome {
            Created::Created { pos } => {
                if alone {
                    self.leave_all(conn, sink);
                }
                let ch = existing.unwrap_or_else(|| self.add_channel(name));
                self.place(ch, pos);
                sink.store(Request::Event(Event::Channel {
                    name: name.to_string(),
                    time: self.clock.now(),
                }));
                if let Some(node) = self.node() {
                    self.publish(
                        sink,
                        Wire::Channel {
                            node,
                            name: name.to_string(),
                            pos: Some(pos),
                        },
                    );
                }
                self.join_id(conn, ch, sink);
            }
            Created::Exists => {
                // Another node made it first (its announcement may still be on the way).
                let ch = existing.unwrap_or_else(|| self.add_channel(name));
                if self.proto_of(conn) == Some(super::Proto::Irc) {
                    self.join_id(conn, ch, sink);
                } else {
                    self.reply(sink, conn, &[&text::channel_exists(name)]);
                }
            }
            Created::TooMany => {
                let reply = text::too_many_channels(name, self.limits.max_channels);
                self.reply(sink, conn, &[&reply]);
            }
            Created::Failed => self.reply(sink, conn, &[text::STORAGE_FAILED]),
        }
        self.done_waiting(conn, sink);
    }

    /// The answer to [`Hub::find_remote`]: the `/join` goes on as it would have, had the
    /// channel's announcement arrived first (it is placed in `/list` when it does).
    fn channel_found(
        &mut self,
        conn: ConnId,
        asked: &str,
        name: Option<&str>,
        sink: &mut impl Sink,
    ) {
        if !self.waits_for(conn, Wait::Find) {
            return;
        }
        let Some(name) = name else {
            self.reply(sink, conn, &[&text::no_such_channel(asked)]);
            self.done_waiting(conn, sink);
            return;
        };
        if self.channel_id(name).is_some() {
            self.join_found(conn, name, sink);
            return;
        }
        // Its announcement is still on the way, and with it what its creator did first (its
        // own join, at the same millisecond maybe): a join ordered before those would not be
        // shown to them. Wait for it, a bounded time (`settle_found`).
        let until = self.clock.now() + FOUND_EARLY_SECS;
        if let Some(c) = self.cluster.as_mut() {
            c.found_early.push((conn, name.into(), until));
        }
    }

    /// Ends the waits of [`Hub::channel_found`] whose channel has been announced (call it once
    /// the link's messages at hand are all taken in, so that the clock has seen them all), or
    /// whose time is up (`expired_too`, from the once-a-second tick): they join now.
    pub fn settle_found(&mut self, expired_too: bool, sink: &mut impl Sink) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.found_early.is_empty() {
            return;
        }
        let now = self.clock.now();
        let waiting = std::mem::take(&mut c.found_early);
        let mut left = Vec::new();
        for (conn, name, until) in waiting {
            if !self.waits_for(conn, Wait::Find) {
                continue;
            }
            if self.channel_id(&name).is_some() || (expired_too && now >= until) {
                self.join_found(conn, &name, sink);
            } else {
                left.push((conn, name, until));
            }
        }
        if let Some(c) = self.cluster.as_mut() {
            c.found_early.extend(left);
        }
    }

    /// The `/join` of a channel the cluster has: the course protocol's one-channel rule, then
    /// the join.
    fn join_found(&mut self, conn: ConnId, name: &str, sink: &mut impl Sink) {
        let ch = self
            .channel_id(name)
            .unwrap_or_else(|| self.add_channel(name));
        if !self.is_member(conn, ch) {
            self.leave_all(conn, sink);
            self.join_id(conn, ch, sink);
        }
        self.done_waiting(conn, sink);
    }

    fn waits_for(&self, conn: ConnId, what: Wait) -> bool {
        self.clients.get(&conn).is_some_and(|c| c.wait == what)
    }

    /// The local members of a channel who joined it before an event from another node: an
    /// event that reaches this node late (it was ordered before a member's join by the
    /// cluster's clock) is not theirs to see, just as it would not be on one server.
    fn local_members(&self, ch: ChanId, seq: u64) -> Cow<'_, [ConnId]> {
        if self.channels.get(ch).is_some_and(|c| c.last_join < seq) {
            // Everyone joined before it (the usual case): the list as it is.
            return Cow::Borrowed(self.members(ch));
        }
        let late: Vec<ConnId> = self
            .members(ch)
            .iter()
            .copied()
            .filter(|conn| {
                self.clients
                    .get(conn)
                    .is_some_and(|c| c.chans.iter().any(|&(x, joined)| x == ch && joined < seq))
            })
            .collect();
        Cow::Owned(late)
    }

    fn observe(&mut self, seq: Option<u64>) {
        if let (Some(seq), Some(c)) = (seq, self.cluster.as_mut()) {
            c.hlc.observe(seq);
        }
    }

    fn remote_event(&mut self, wire: Wire, sink: &mut impl Sink) {
        self.observe(wire.seq());
        match wire {
            Wire::Login { user } => self.remote_login(user),
            Wire::Logout { node, conn, msg } => {
                self.remote_gone((node, conn), msg.as_deref(), false, sink)
            }
            Wire::Join {
                node,
                conn,
                chan,
                seq,
                ..
            } => {
                let Some(ch) = self
                    .channel_id(&chan)
                    .or_else(|| Some(self.add_channel(&chan)))
                else {
                    return;
                };
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                let Some(m) = c.remote.get_mut(&(node, conn)) else {
                    return;
                };
                if m.chans.contains(&ch) {
                    return;
                }
                m.chans.push(ch);
                let person = m.person.clone();
                let chan = &self.channels[ch].name;
                sink.emit_many(
                    &self.local_members(ch, seq),
                    None,
                    &Out::Joined { chan, who: &person },
                );
            }
            Wire::Part {
                node,
                conn,
                chan,
                msg,
                seq,
                ..
            } => {
                let Some(ch) = self.channel_id(&chan) else {
                    return;
                };
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                let Some(m) = c.remote.get_mut(&(node, conn)) else {
                    return;
                };
                let Some(pos) = m.chans.iter().position(|&x| x == ch) else {
                    return;
                };
                m.chans.remove(pos);
                let person = m.person.clone();
                let chan = &self.channels[ch].name;
                let out = Out::Parted {
                    chan,
                    who: &person,
                    msg: msg.as_deref(),
                };
                sink.emit_many(&self.local_members(ch, seq), None, &out);
            }
            Wire::Chat {
                node,
                conn,
                chan,
                text,
                kind,
                seq,
                ..
            } => {
                let Some(ch) = self.channel_id(&chan) else {
                    return;
                };
                let Some(person) = self
                    .cluster
                    .as_ref()
                    .and_then(|c| c.remote.get(&(node, conn)))
                    .map(|m| m.person.clone())
                else {
                    return;
                };
                let out = Out::Chat {
                    chan: &self.channels[ch].name,
                    from: &person,
                    text: &text,
                    kind: msg_kind(kind),
                };
                sink.emit_many(&self.local_members(ch, seq), None, &out);
            }
            Wire::Private {
                node,
                conn,
                to_node,
                to,
                text,
                kind,
                ..
            } => {
                if Some(to_node) == self.node() {
                    self.remote_private((node, conn), &to, &text, msg_kind(kind), sink);
                }
            }
            Wire::Renamed {
                node,
                conn,
                name,
                key,
            } => {
                let Some(c) = self.cluster.as_mut() else {
                    return;
                };
                let Some(m) = c.remote.get_mut(&(node, conn)) else {
                    return;
                };
                let old = m.person.clone();
                let old_key = std::mem::replace(&mut m.key, key.as_str().into());
                m.person.name = name.as_str().into();
                let chans = m.chans.clone();
                c.names.remove(&old_key);
                c.names.insert(key.as_str().into(), (node, conn));
                self.known.insert(key.into());
                let mut audience: Vec<ConnId> = Vec::new();
                for ch in chans {
                    for &m in self.members(ch) {
                        if !audience.contains(&m) {
                            audience.push(m);
                        }
                    }
                }
                sink.emit_many(
                    &audience,
                    None,
                    &Out::Renamed {
                        old: &old,
                        new: &name,
                    },
                );
            }
            Wire::Channel { name, pos, .. } => {
                let ch = self
                    .channel_id(&name)
                    .unwrap_or_else(|| self.add_channel(&name));
                if let Some(pos) = pos {
                    self.place(ch, pos);
                }
            }
            Wire::Mail { key, .. } => self.remote_mail(&key, sink),
            Wire::Registered {
                key,
                name,
                history_from,
                hash,
                ..
            } => {
                let entry = crate::storage::RegisteredName {
                    name,
                    history_from,
                    hash,
                };
                self.registered.insert(key.as_str().into(), entry);
                self.known.insert(key.as_str().into());
                self.enforce_registration(&key, usize::MAX, sink);
            }
            Wire::Identified { key, .. } => {
                if let Some(others) = self.pending.remove(key.as_str()) {
                    let name = self
                        .registered
                        .get(key.as_str())
                        .map_or(key.clone(), |r| r.name.clone());
                    let reason = text::identified_elsewhere(&name);
                    for other in others {
                        sink.close(other, Some(&reason));
                    }
                }
            }
        }
    }

    fn remote_login(&mut self, user: RemoteUser) {
        let chans: Vec<ChanId> = user
            .chans
            .iter()
            .map(|name| {
                self.channel_id(name)
                    .unwrap_or_else(|| self.add_channel(name))
            })
            .collect();
        self.known.insert(user.key.as_str().into());
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let id = (user.node, user.conn);
        c.names.insert(user.key.as_str().into(), id);
        c.remote.insert(
            id,
            RemoteMember {
                person: Person {
                    name: user.name.into(),
                    user: user.user.into(),
                    host: user.host.into(),
                },
                key: user.key.into(),
                chans,
            },
        );
    }

    /// Another node's user is gone (logged out, or its node died): its channels here hear it
    /// once. `died`: its node cannot store the end of its stays, so this node does (every
    /// survivor may; the first one's counts).
    fn remote_gone(
        &mut self,
        id: (NodeId, u64),
        msg: Option<&str>,
        died: bool,
        sink: &mut impl Sink,
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let Some(m) = c.remote.remove(&id) else {
            return;
        };
        if died {
            for &ch in &m.chans {
                let seq = self.next_seq();
                sink.store(Request::Event(Event::Leave {
                    seq,
                    user_key: m.key.to_string(),
                    channel: self.channels[ch].name.to_string(),
                }));
            }
        }
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if c.names.get(&m.key) == Some(&id) {
            c.names.remove(&m.key);
        }
        let mut audience: Vec<ConnId> = Vec::new();
        for &ch in &m.chans {
            for &local in self.members(ch) {
                if !audience.contains(&local) {
                    audience.push(local);
                }
            }
        }
        sink.emit_many(
            &audience,
            None,
            &Out::Quit {
                who: &m.person,
                msg,
            },
        );
    }

    /// A private message from another node: delivered to its local recipient, or kept for it
    /// when it left meanwhile (never lost).
    fn remote_private(
        &mut self,
        from: (NodeId, u64),
        to: &str,
        text: &str,
        kind: MsgKind,
        sink: &mut impl Sink,
    ) {
        let Some(sender) = self
            .cluster
            .as_ref()
            .and_then(|c| c.remote.get(&from))
            .map(|m| m.person.clone())
        else {
            return;
        };
        match self.owners.get(to).copied() {
            Some(conn) => {
                let recipient = self.name_of(conn).unwrap_or(to).to_string();
                let out = Out::Private {
                    from: &sender,
                    to: &recipient,
                    text,
                    kind,
                };
                sink.emit(conn, &out);
            }
            None => {
                *self.mail.entry(to.into()).or_default() += 1;
                sink.store(Request::StoreOffline {
                    notify: None,
                    sender: sender.name.to_string(),
                    recipient: to.to_string(),
                    recipient_key: to.to_string(),
                    time: self.clock.now(),
                    text: text.to_string(),
                    max: Some(self.limits.max_offline),
                });
            }
        }
    }

    /// After the link (re)connected: the other nodes' users as Redis holds them join what this
    /// hub knew. Nobody is taken away here: a node that is still putting its users back into
    /// a restarted Redis would look empty; departures come as logouts, or with a dead node.
    fn snapshot(&mut self, users: Vec<RemoteUser>, channels: Vec<String>) {
        // The cluster's list, in its order: every node shows /list so.
        for (pos, name) in channels.iter().enumerate() {
            let ch = self
                .channel_id(name)
                .unwrap_or_else(|| self.add_channel(name));
            self.place(ch, pos as u64);
        }
        for user in users {
            self.remote_login(user);
        }
    }

    /// The seq after the last one, from the cluster's clock when there is one.
    pub(super) fn cluster_seq(&mut self) -> Option<u64> {
        self.cluster.as_mut().map(|c| c.hlc.tick())
    }
}
