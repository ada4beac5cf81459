//! Several servers as one chat (PROTOCOL.md section 10), on Redis.
//!
//! What the nodes share live goes through Redis; what lasts goes to PostgreSQL (storage's
//! other backend). The hub speaks events; this module carries them between nodes:
//!
//! - **Events** ([`Wire`]): a node appends its hub's events (logins, joins, parts, messages,
//!   registrations…) to one Redis stream, in the order they happened; every node reads the
//!   stream from where it last was and hands the others' events to its hub, which renders them
//!   for its own clients. A stream, not pub/sub: a node that reconnects carries on from its
//!   last entry, and what a node sends while Redis is away is queued and sent late, in order.
//! - **Names**: a login claims its name atomically (`SET NX` with a lease the node renews
//!   every 0.4 s); a node that stops renewing loses its names within [`LEASE`].
//! - **Nodes**: each node renews a heartbeat key; the others notice a missing one within
//!   [`LEASE`] and announce its users' departures to their own clients.
//! - **Presence**: each node keeps its users and their channels in a hash of its own, read by
//!   a node that starts or reconnects (a [`ClusterMsg::Snapshot`]).
//! - **Channels**: created atomically cluster-wide (a Lua script: exists? too many? add), in
//!   one order.
//!
//! The event loop never waits on Redis: [`ClusterHandle::submit`] queues without blocking (a
//! full queue is a refusal), and the link's answers come back through a channel and a waker,
//! as storage's do. The link runs on two threads of its own (`link.rs`): one writes (claims,
//! creations, events, heartbeats), one reads the stream.

mod hlc;
mod link;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

pub use hlc::Hlc;

/// A node's number in the cluster (from Redis, at start).
pub type NodeId = u16;

/// How long a name or a node lives without renewal: renewed every 0.4 s, it outlives a
/// 3-second pause of Redis, and a dead node is noticed within 5 seconds.
pub const LEASE: Duration = Duration::from_millis(4200);

/// Operations the link's queue holds at most; past that, [`ClusterHandle::submit`] refuses.
pub const QUEUE: usize = 65_536;

/// What kind of message a [`Wire::Chat`] or [`Wire::Private`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WireKind {
    Chat,
    Action,
    Notice,
}

/// One user of another node, as presence and events describe it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteUser {
    pub node: NodeId,
    pub conn: u64,
    pub name: String,
    pub key: String,
    pub user: String,
    pub host: String,
    /// The channels it is in, by name.
    pub chans: Vec<String>,
}

/// An event one node tells the others, through the stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
// Encoded with postcard (see link.rs); serde's default, external tagging, which it needs.
pub enum Wire {
    /// A user logged in (and may act under its name).
    Login { user: RemoteUser },
    /// A user left the chat (its channels hear it once).
    Logout {
        node: NodeId,
        conn: u64,
        msg: Option<String>,
    },
    Join {
        node: NodeId,
        conn: u64,
        chan: String,
        seq: u64,
    },
    Part {
        node: NodeId,
        conn: u64,
        chan: String,
        msg: Option<String>,
        seq: u64,
    },
    Chat {
        node: NodeId,
        conn: u64,
        chan: String,
        text: String,
        kind: WireKind,
        seq: u64,
    },
    /// A private message for a user of node `to_node` (by name key): that node delivers it,
    /// or keeps it if its user left meanwhile.
    Private {
        node: NodeId,
        conn: u64,
        to_node: NodeId,
        to: String,
        text: String,
        kind: WireKind,
        seq: u64,
    },
    Renamed {
        node: NodeId,
        conn: u64,
        name: String,
        key: String,
    },
    /// A channel was created.
    Channel {
        node: NodeId,
        name: String,
        /// Its place in the cluster's list of channels.
        #[serde(default)]
        pos: Option<u64>,
    },
    /// A name was registered (its hash travels so every node can check passwords).
    Registered {
        node: NodeId,
        key: String,
        name: String,
        history_from: u64,
        hash: String,
    },
    /// A registered name was identified on `node`: its unidentified holders elsewhere go.
    Identified { node: NodeId, key: String },
    /// An offline message for the name `key` was stored (committed) on `node`: a node where
    /// that user is online after all (logged in there a moment ago, before `node` heard of
    /// it) delivers its mailbox now rather than at its next login.
    Mail { node: NodeId, key: String },
}

impl Wire {
    /// The node the event comes from.
    pub fn node(&self) -> NodeId {
        match self {
            Wire::Login { user } => user.node,
            Wire::Logout { node, .. }
            | Wire::Join { node, .. }
            | Wire::Part { node, .. }
            | Wire::Chat { node, .. }
            | Wire::Private { node, .. }
            | Wire::Renamed { node, .. }
            | Wire::Channel { node, .. }
            | Wire::Registered { node, .. }
            | Wire::Identified { node, .. }
            | Wire::Mail { node, .. } => *node,
        }
    }

    /// The seq the event carries (the hub's clock follows it).
    pub fn seq(&self) -> Option<u64> {
        match self {
            Wire::Join { seq, .. }
            | Wire::Part { seq, .. }
            | Wire::Chat { seq, .. }
            | Wire::Private { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// What the hub asks of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterOp {
    /// Claims a name for a connection of this node; answered [`ClusterMsg::Claimed`].
    Claim { conn: u64, key: String },
    /// Gives a name back (its holder, `conn`, logged out or was renamed).
    Release { conn: u64, key: String },
    /// Creates a channel, atomically, within `max`; answered [`ClusterMsg::ChannelCreated`].
    CreateChannel {
        conn: u64,
        name: String,
        key: String,
        max: usize,
    },
    /// Asks whether the cluster has the channel `key` (a `/join` of a channel this node has
    /// not heard of yet); answered [`ClusterMsg::ChannelFound`], with `asked` as typed.
    FindChannel {
        conn: u64,
        key: String,
        asked: String,
    },
    /// Tells the other nodes.
    Publish(Wire),
    /// Sets (or, with None, removes) one of this node's users in its presence hash.
    Presence { conn: u64, user: Option<RemoteUser> },
}

/// How a channel creation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Made; `pos` is its place in the cluster's list of channels (what `/list` shows in
    /// order on every node).
    Created {
        pos: u64,
    },
    Exists,
    /// The cluster has the most channels it may.
    TooMany,
    /// Redis could not be asked.
    Failed,
}

/// What the link tells the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterMsg {
    /// A claim's outcome: `Some(true)` the name is this connection's, `Some(false)` another
    /// node's user has it, `None` Redis could not be asked.
    Claimed {
        conn: u64,
        key: String,
        ok: Option<bool>,
    },
    ChannelCreated {
        conn: u64,
        name: String,
        outcome: Created,
    },
    /// A lookup's answer: the channel's name as it was created, `None` when the cluster has
    /// no such channel or Redis could not be asked.
    ChannelFound {
        conn: u64,
        asked: String,
        name: Option<String>,
    },
    /// Another node's event.
    Remote(Wire),
    /// The other nodes' users and the cluster's channels, read after (re)connecting: the hub's
    /// view of them is replaced by this one.
    Snapshot {
        users: Vec<RemoteUser>,
        channels: Vec<String>,
    },
    /// A node stopped renewing its lease: its users are gone.
    NodeGone { node: NodeId },
}

/// Why the cluster link could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach Redis at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("cannot start a cluster thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("every one of the 1024 node ids is in use by a running node")]
    NoFreeNode,
}

/// The event loop's end of the cluster link.
pub struct ClusterHandle {
    node: NodeId,
    /// A turn's operations go over at once (the writer wakes once a turn, not once a
    /// message); the channel holds at most [`QUEUE`] operations, counted by `queued`.
    ops: Sender<Vec<ClusterOp>>,
    /// This turn's operations, until [`ClusterHandle::flush`].
    pending: RefCell<Vec<ClusterOp>>,
    /// Operations sent to the writer and not taken by it yet.
    queued: Arc<AtomicUsize>,
    msgs: Receiver<ClusterMsg>,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// How many operations wait for Redis to come back (see `Shared::backlog`).
    backlog: Arc<AtomicUsize>,
}

impl ClusterHandle {
    /// Connects to Redis at `url`, takes a node id from `number` (a number never given
    /// before, from the database: the first id from it that no running node holds) and starts
    /// the link's threads. The node's channels so far (from storage) are offered to the
    /// cluster's list.
    pub fn start(
        url: &str,
        number: u64,
        waker: Arc<mio::Waker>,
        channels: Vec<String>,
    ) -> Result<ClusterHandle, ClusterError> {
        link::start(url, number, waker, channels)
    }

    /// True when another node of the cluster at `url` is running now.
    pub fn others_alive(url: &str) -> Result<bool, ClusterError> {
        link::others_alive(url)
    }

    /// This node's number.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Queues an operation; never blocks. False when the queue is full (the caller refuses
    /// the command).
    pub fn submit(&self, op: ClusterOp) -> bool {
        if self.backlog.load(Ordering::Relaxed) >= QUEUE {
            // Redis has been away for a long while and this much waits for it: refused, so
            // that the sender is told, rather than accepted and dropped later.
            return false;
        }
        let mut pending = self.pending.borrow_mut();
        if self.queued.load(Ordering::Relaxed) + pending.len() >= QUEUE {
            return false;
        }
        pending.push(op);
        true
    }

    /// Hands this turn's operations to the link; the loop calls it at the end of every turn.
    pub fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        if batch.is_empty() {
            return;
        }
        self.queued.fetch_add(batch.len(), Ordering::Relaxed);
        if self.ops.send(batch).is_err() {
            log::error!("cluster: the link has stopped");
        }
    }

    /// True while Redis answers.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// What the link has told so far; never blocks.
    pub fn msgs(&self) -> impl Iterator<Item = ClusterMsg> + '_ {
        self.msgs.try_iter()
    }
}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_events_round_trip_in_postcard() {
        let events = vec![
            Wire::Login {
                user: RemoteUser {
                    node: 3,
                    conn: 9,
                    name: "Kay".into(),
                    key: "kay".into(),
                    user: "kay".into(),
                    host: "frame".into(),
                    chans: vec!["tas".into()],
                },
            },
            Wire::Chat {
                node: 3,
                conn: 9,
                chan: "the lounge".into(),
                text: "héllo \"quoted\"".into(),
                kind: WireKind::Action,
                seq: 77,
            },
            Wire::Identified {
                node: 1,
                key: "alice".into(),
            },
        ];
        for e in events {
            let bytes = postcard::to_allocvec(&e).unwrap();
            assert_eq!(postcard::from_bytes::<Wire>(&bytes).unwrap(), e);
        }
        // An unknown kind of event, and one cut short, are errors, not panics.
        assert!(postcard::from_bytes::<Wire>(&[200]).is_err());
        let bytes = postcard::to_allocvec(&Wire::Identified {
            node: 1,
            key: "alice".into(),
        })
        .unwrap();
        assert!(postcard::from_bytes::<Wire>(&bytes[..bytes.len() - 1]).is_err());
    }
}
