//! The hub: every rule of the chat, as a state machine with no sockets in it.
//!
//! The hub speaks **events**, not bytes. The event loop tells it about connections
//! ([`Hub::connect`], [`Hub::disconnect`]), storage's and the hashers' answers
//! ([`Hub::storage_reply`]), output that was written ([`Hub::flushed`]) and the passing of time
//! ([`Hub::tick`]); each wire protocol (`crate::proto`) turns its clients' input into calls of
//! the operations below (log in, join, part, say, private message, search…). The hub answers
//! through a [`Sink`] with [`Out`] events (Kay joined `tas`; a message from Alice in `tas`; a
//! reply of lines for one connection; a close with a reason), which each protocol renders in
//! its own way: the frame codec renders exactly the course's bytes.
//!
//! Names, channels, membership, registered names and lockouts live here and nowhere else.
//! Membership is a set per client: an IRC client may be in several channels; the course's "one
//! channel at a time" is the frame protocol's rule (`proto::frame`).
//!
//! While a connection waits (for storage, a password check, a search, or a long reply paced by
//! its reader), the event loop stops reading it and keeps the rest of what it read, so that
//! every client gets its replies in the order of its commands and nothing it sent is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use crate::clock::{Clock, SystemClock};
use crate::names::{self, name_key};
use crate::sonnets::Sonnets;
use crate::storage::{Event, HashJob, RegisteredName, Request, Startup};
use crate::utils_errors as text;

mod auth;
mod channels;
mod cluster;
mod history;

pub use auth::{LOCK_FIRST_SECS, LOCK_MAX_SECS};
pub use channels::{check_channel_name, ChannelError, LIST_CHUNK};
pub use history::{Private, PrivateError, SearchError, MAIL_BATCH};

/// Identifies a connection. The event loop never gives the same id to two connections, so a
/// late reply for a closed connection can never reach a new one: it puts the connection's
/// serial number above [`SERIAL_SHIFT`] bits (and its slot below them).
pub type ConnId = usize;

/// Where the event loop puts a connection's serial number in its [`ConnId`].
pub const SERIAL_SHIFT: u32 = 24;

/// How logs name a connection: by its serial number, the same in every log line about it.
pub fn conn_label(id: ConnId) -> impl std::fmt::Display {
    struct Label(usize);
    impl std::fmt::Display for Label {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "conn {}", self.0)
        }
    }
    Label(if id >> SERIAL_SHIFT > 0 {
        id >> SERIAL_SHIFT
    } else {
        id
    })
}

/// Identifies a channel: its index in creation order (channels are never deleted).
pub type ChanId = usize;

/// The wire protocol of a connection; each renders [`Out`] events its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// The course's 200-byte frames, over TCP or TLS.
    Frame,
    /// IRC lines.
    Irc,
    /// 200-byte frames' texts as WebSocket messages (the web client).
    Web,
}

/// A person as others see them: the name, and what IRC shows of them (`name!user@host`).
///
/// Shared strings, so that a login copies no text twice: `user` is most often the name itself,
/// and `host` one of three texts (see [`host_for`]); every idle client holds a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The name, as it was typed at login.
    pub name: Arc<str>,
    /// The IRC `user` (from `USER`; the name for other protocols).
    pub user: Arc<str>,
    /// The host shown to IRC clients (a cloak, never the address).
    pub host: Arc<str>,
}

/// What kind of message a relayed text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgKind {
    /// An ordinary message.
    Chat,
    /// A CTCP ACTION (`/me waves`): frame clients see `* name waves`.
    Action,
    /// An IRC NOTICE: frame clients see it as an ordinary message.
    Notice,
}

/// What a reply is about, for protocols that render some replies specially (IRC's SASL and
/// NickServ); the frame protocol shows every reply's lines as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// An answer to a command.
    Plain,
    /// The prompt to identify a registered name.
    IdentifyPrompt,
    /// The name is now identified.
    Identified,
    /// A wrong password, or a lockout.
    AuthFailed,
    /// The name is now registered (or was already).
    Registered,
    /// Offline messages being delivered.
    Offline,
    /// A password checked before login (IRC's SASL) was right; `lines[0]` is the account.
    SaslOk,
    /// A password checked before login was wrong, or refused by a lockout (`lines[0]` says
    /// why).
    SaslFailed,
}

/// An event for one connection or many; borrowed from the hub for the time of one call.
#[derive(Debug, Clone, Copy)]
pub enum Out<'a> {
    /// A message in a channel, for its other members.
    Chat {
        chan: &'a str,
        from: &'a Person,
        text: &'a str,
        kind: MsgKind,
    },
    /// A private message, for its recipient.
    Private {
        from: &'a Person,
        to: &'a str,
        text: &'a str,
        kind: MsgKind,
    },
    /// Someone joined a channel (for its other members).
    Joined { chan: &'a str, who: &'a Person },
    /// Someone left a channel (for its remaining members).
    Parted {
        chan: &'a str,
        who: &'a Person,
        msg: Option<&'a str>,
    },
    /// Someone left the chat (for everyone who shared a channel with them).
    Quit {
        who: &'a Person,
        msg: Option<&'a str>,
    },
    /// Someone changed their name (for everyone who shares a channel with them).
    Renamed { old: &'a Person, new: &'a str },
    /// Lines for one connection: a reply. `to` is the recipient's name once it has one (IRC
    /// addresses notices to it).
    Reply {
        kind: ReplyKind,
        lines: &'a [&'a str],
        to: Option<&'a str>,
    },
    /// Protocol-specific bytes prepared by the connection's own protocol (IRC numerics).
    Raw(&'a [u8]),
}

/// Where the hub's output goes.
pub trait Sink {
    /// Queues an event for one connection.
    fn emit(&mut self, to: ConnId, out: &Out<'_>);
    /// Queues an event for every connection of `to` but `except` (a sink renders it once per
    /// protocol for all of them).
    fn emit_many(&mut self, to: &[ConnId], except: Option<ConnId>, out: &Out<'_>) {
        for &id in to {
            if Some(id) != except {
                self.emit(id, out);
            }
        }
    }
    /// Asks for a connection to be closed once its queued output is flushed, after a last
    /// frame (or line) with `reason` when there is one.
    fn close(&mut self, conn: ConnId, reason: Option<&str>);
    /// Hands a request to storage.
    fn store(&mut self, request: Request);
    /// Hands a password job to the hashers; false when their queue is full.
    fn hash(&mut self, job: HashJob) -> bool;
    /// Hands an operation to the cluster link; false when there is no cluster or its queue is
    /// full. (No default: a sink that wraps another must pass it on, or a cluster login
    /// through it would fail.)
    fn cluster(&mut self, op: crate::cluster::ClusterOp) -> bool;
    /// Asks for [`Hub::flushed`] once everything queued for `conn` so far is written.
    fn report_flush(&mut self, conn: ConnId);
    /// The connection no longer waits: its held input may be handled and it may be read.
    fn resume(&mut self, conn: ConnId);
}

/// The longest channel name, in characters, after cleaning.
pub const MAX_CHANNEL_CHARS: usize = 64;
/// Seconds a registered name has to identify, unless configured otherwise.
pub const IDENTIFY_SECS: u64 = 60;
/// Wrong passwords after which the connection is closed.
pub const MAX_PASSWORD_TRIES: u8 = 3;
/// Channels a server holds at most, unless configured otherwise.
pub const MAX_CHANNELS: usize = 1000;
/// Offline messages kept for one name at most, unless configured otherwise.
pub const MAX_OFFLINE: usize = 1000;
/// Searches waiting for the search threads at most; past it `/search` gets the busy text.
pub const MAX_SEARCHES: usize = 32;

/// Why a login (or a change of name) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("not a valid name")]
    Invalid,
    #[error("the name is in use")]
    InUse,
    #[error("too close to a registered name")]
    TooClose,
    /// In a cluster, while Redis cannot be asked.
    #[error("the cluster cannot be asked just now")]
    Unavailable,
}

/// How a login went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Logged in; the name is the connection's.
    Open,
    /// A registered name: the connection must identify first (the prompt was sent).
    MustIdentify,
    /// In a cluster: the name is being claimed; a refusal comes later, success is silent.
    Pending,
}

/// Whether a connection may act under its name.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// An unregistered name, or a registered one that has identified.
    #[default]
    Open,
    /// A registered name that has not identified yet.
    MustIdentify { tries: u8 },
}

/// What a connection waits for; while it waits, the loop does not handle its input.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Wait {
    #[default]
    Nothing,
    /// A storage reply (an offline message stored).
    Storage,
    /// A password hashed or checked.
    Hash,
    /// A search.
    Search,
    /// Its offline messages, paced by its reading.
    Mail,
    /// The rest of a long `/list`, paced by its reading.
    List { next: ChanId },
    /// Its name claimed in the cluster.
    Claim,
    /// A channel created in the cluster.
    Create,
    /// Whether the cluster has a channel this node has not heard of yet.
    Find,
}

/// Offline messages being delivered to a connection, a batch at a time.
#[derive(Debug, Default)]
struct Delivery {
    /// The id of the last message fetched.
    after: i64,
    /// Messages handed to the socket, deleted once the loop reports them written.
    unacked: Vec<i64>,
    /// The header is sent with the first batch.
    started: bool,
    /// Another node stored a message for this mailbox during the delivery: fetch again once
    /// it ends.
    again: bool,
}

/// What only IRC connections have; see [`Client::irc`].
#[derive(Debug, Default)]
struct IrcExtras {
    /// An IRC away message.
    away: Option<Box<str>>,
    /// A registered name whose password this connection proved before logging in (IRC's
    /// SASL): logging in with that name needs no `/identify`.
    account: Option<Box<str>>,
    /// An IRC real name (from `USER`), shown by `WHO` and `WHOIS`.
    realname: Option<Box<str>>,
}

#[derive(Debug)]
struct Client {
    proto: Proto,
    addr: Option<IpAddr>,
    /// Set at login.
    person: Option<Person>,
    key: Option<Arc<str>>,
    /// The channels it is in, in joining order, each with the seq of its joining.
    chans: Vec<(ChanId, u64)>,
    /// The last seq before this connection logged in: an unregistered name sees history after it.
    login_seq: u64,
    auth: Auth,
    wait: Wait,
    /// Boxed, like `irc`: only a connection with mail waiting has one, and every client is
    /// an entry of the hub's map, so what is inline here is paid for by every idle client.
    mail: Option<Box<Delivery>>,
    /// What only IRC connections set (created on the first of them).
    irc: Option<Box<IrcExtras>>,
    /// A creation waiting for the cluster was a [`Hub::create_alone`]: on success the
    /// connection leaves its other channels first.
    create_alone: bool,
    /// In a cluster, `/identify` succeeded and the name is being claimed: the identified text
    /// waits for the claim (it may fail while Redis is away).
    identifying: bool,
}

impl Client {
    fn new(proto: Proto, addr: Option<IpAddr>) -> Client {
        Client {
            proto,
            addr,
            person: None,
            key: None,
            chans: Vec::new(),
            login_seq: 0,
            auth: Auth::Open,
            wait: Wait::Nothing,
            mail: None,
            irc: None,
            create_alone: false,
            identifying: false,
        }
    }

    fn name(&self) -> Option<&str> {
        self.person.as_ref().map(|p| &*p.name)
    }

    /// The IRC extras, created when first set.
    fn irc_mut(&mut self) -> &mut IrcExtras {
        self.irc.get_or_insert_with(Box::default)
    }

    fn account(&self) -> Option<&str> {
        self.irc.as_ref()?.account.as_deref()
    }
}

#[derive(Debug)]
struct Channel {
    name: Box<str>,
    /// Members in joining order; a broadcast walks this list.
    members: Vec<ConnId>,
    /// The seq of the latest join here: an event from another node ordered after it is for
    /// every member (see `local_members`).
    last_join: u64,
    /// Where `/list` shows it: its creation order on one server; in a cluster, its place in
    /// the cluster's list (the same on every node), `u64::MAX` until that is known.
    rank: u64,
}

/// The configurable limits of the hub.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Seconds a registered name has to identify.
    pub identify_secs: u64,
    /// Channels at most.
    pub max_channels: usize,
    /// Offline messages per name at most.
    pub max_offline: usize,
    /// Searches in flight at most.
    pub max_searches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            identify_secs: IDENTIFY_SECS,
            max_channels: MAX_CHANNELS,
            max_offline: MAX_OFFLINE,
            max_searches: MAX_SEARCHES,
        }
    }
}

/// What the hub is given at start.
pub struct HubConfig {
    /// The source of time for `/time`, history and lockouts.
    pub clock: Box<dyn Clock>,
    /// The sonnets for `/sonnet`, when the server has them.
    pub sonnets: Option<Sonnets>,
    /// What storage remembers.
    pub startup: Startup,
    /// The limits.
    pub limits: Limits,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            clock: Box::new(SystemClock),
            sonnets: None,
            startup: Startup::default(),
            limits: Limits::default(),
        }
    }
}

/// The state of the chat: names, channels and who is where.
pub struct Hub {
    /// Boxed: a map keeps room for more entries than it holds (up to twice as many), and a
    /// client is large; an empty slot then costs a pointer, not a client.
    clients: HashMap<ConnId, Box<Client>>,
    /// The connection that owns each name (by key): it may act under it.
    owners: HashMap<Arc<str>, ConnId>,
    /// Connections that hold a registered name without having identified, by key.
    pending: HashMap<Box<str>, Vec<ConnId>>,
    channels: Vec<Channel>,
    /// The channels in `/list` order: by rank, then by id.
    order: Vec<ChanId>,
    channel_ids: HashMap<Box<str>, ChanId>,
    clock: Box<dyn Clock>,
    sonnets: Option<Sonnets>,
    /// The last sequence number given to a stored event.
    seq: u64,
    /// The key of every name that ever logged in.
    known: HashSet<Arc<str>>,
    /// Registered names, by key.
    registered: HashMap<Box<str>, RegisteredName>,
    /// Offline messages stored (or being stored) per name key.
    mail: HashMap<Box<str>, usize>,
    /// When each unidentified registered name must have identified, oldest first.
    identify_deadlines: VecDeque<(i64, ConnId)>,
    guard: auth::Guard,
    limits: Limits,
    /// Searches handed to storage and not answered yet.
    searches: usize,
    /// When the hub is one node of a cluster.
    cluster: Option<cluster::ClusterState>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(HubConfig::default())
    }
}

/// The host shown in the IRC prefix of a connection's user: the transport, never an address.
/// One string per transport, shared by every person.
fn host_for(proto: Proto) -> Arc<str> {
    static HOSTS: LazyLock<[Arc<str>; 3]> =
        LazyLock::new(|| ["frame", "irc", "web"].map(Arc::from));
    let i = match proto {
        Proto::Frame => 0,
        Proto::Irc => 1,
        Proto::Web => 2,
    };
    HOSTS[i].clone()
}

/// Checks a name (see [`names::valid_name`]).
pub fn valid_name(name: &str) -> bool {
    names::valid_name(name)
}

impl Hub {
    /// A hub with no clients, remembering what `config.startup` holds.
    pub fn new(config: HubConfig) -> Self {
        let startup = config.startup;
        let mut hub = Hub {
            clients: HashMap::new(),
            owners: HashMap::new(),
            pending: HashMap::new(),
            channels: Vec::new(),
            order: Vec::new(),
            channel_ids: HashMap::new(),
            clock: config.clock,
            sonnets: config.sonnets,
            seq: startup.last_seq,
            known: startup.known.into_iter().map(Into::into).collect(),
            registered: startup
                .registered
                .into_iter()
                .map(|(key, r)| (key.into(), r))
                .collect(),
            mail: startup
                .offline
                .into_iter()
                .map(|(key, n)| (key.into(), n))
                .collect(),
            identify_deadlines: VecDeque::new(),
            guard: auth::Guard::default(),
            limits: config.limits,
            searches: 0,
            cluster: None,
        };
        for name in startup.channels {
            hub.add_channel(&name);
        }
        hub
    }

    // ---- Queries --------------------------------------------------------------------------

    /// How many connections the hub knows, named or not.
    pub fn connections(&self) -> usize {
        self.clients.len()
    }

    /// The name of a connection, once it has logged in.
    pub fn name_of(&self, conn: ConnId) -> Option<&str> {
        self.clients.get(&conn)?.name()
    }

    /// The person behind a connection, once it has logged in.
    pub fn person(&self, conn: ConnId) -> Option<&Person> {
        self.clients.get(&conn)?.person.as_ref()
    }

    /// True once a connection may act under its name (logged in, and identified if its name
    /// is registered).
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.clients
            .get(&conn)
            .is_some_and(|c| c.person.is_some() && c.auth == Auth::Open)
    }

    /// True while a connection waits: the event loop must neither read it nor hand the hub
    /// the rest of its input.
    pub fn is_waiting(&self, conn: ConnId) -> bool {
        self.clients
            .get(&conn)
            .is_some_and(|c| c.wait != Wait::Nothing)
    }

    /// True while some registered name has yet to identify, or a `/join` waits for a
    /// channel's announcement (the loop should tick the hub).
    pub fn has_deadlines(&self) -> bool {
        !self.identify_deadlines.is_empty()
            || self
                .cluster
                .as_ref()
                .is_some_and(|c| !c.found_early.is_empty())
    }

    /// The channels in creation order.
    pub fn channel_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|&ch| &*self.channels[ch].name)
    }

    /// How many channels exist.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The channels in `/list` order (creation order; in a cluster, the cluster's order).
    pub fn channels_in_order(&self) -> &[ChanId] {
        &self.order
    }

    /// The channel with this name (compared case-insensitively).
    pub fn channel_id(&self, name: &str) -> Option<ChanId> {
        self.channel_ids.get(&names::channel_key(name)).copied()
    }

    /// A channel's name as it was created.
    pub fn channel_name(&self, ch: ChanId) -> &str {
        self.channels.get(ch).map_or("", |c| &c.name)
    }

    /// The channels a connection is in, in joining order.
    pub fn channels_of(&self, conn: ConnId) -> impl Iterator<Item = ChanId> + '_ {
        self.clients
            .get(&conn)
            .into_iter()
            .flat_map(|c| c.chans.iter().map(|&(ch, _)| ch))
    }

    /// True when the connection is in the channel.
    pub fn is_member(&self, conn: ConnId, ch: ChanId) -> bool {
        self.clients
            .get(&conn)
            .is_some_and(|c| c.chans.iter().any(|&(x, _)| x == ch))
    }

    /// The members of a channel, in joining order.
    pub fn members(&self, ch: ChanId) -> &[ConnId] {
        self.channels.get(ch).map_or(&[], |c| &c.members)
    }

    /// The people in a channel: its local members in joining order, then the other nodes'.
    pub fn member_people(&self, ch: ChanId) -> impl Iterator<Item = &Person> {
        self.members(ch)
            .iter()
            .filter_map(|m| self.clients.get(m)?.person.as_ref())
            .chain(self.remote_members(ch))
    }

    /// Every user that may act under its name, on this node and the others, with its
    /// channels.
    pub fn people(&self) -> Vec<(&Person, Vec<ChanId>)> {
        let mut out: Vec<(&Person, Vec<ChanId>)> = self
            .users()
            .map(|(id, p)| (p, self.channels_of(id).collect()))
            .collect();
        out.extend(self.remote_people().map(|(p, c)| (p, c.to_vec())));
        out
    }

    /// Every user that may act under its name, with its connection, in no order.
    pub fn users(&self) -> impl Iterator<Item = (ConnId, &Person)> {
        self.clients.iter().filter_map(|(&id, c)| {
            (c.auth == Auth::Open)
                .then_some(c.person.as_ref())
                .flatten()
                .map(|p| (id, p))
        })
    }

    /// The connection that owns a name (compared as names compare), if it is connected.
    pub fn find_user(&self, name: &str) -> Option<ConnId> {
        self.owners.get(&*name_key(name)).copied()
    }

    /// The protocol of a connection.
    pub fn proto_of(&self, conn: ConnId) -> Option<Proto> {
        Some(self.clients.get(&conn)?.proto)
    }

    /// A connected user's away message (IRC `AWAY`).
    pub fn away_of(&self, conn: ConnId) -> Option<&str> {
        self.clients.get(&conn)?.irc.as_ref()?.away.as_deref()
    }

    /// Sets or clears a connection's away message.
    pub fn set_away(&mut self, conn: ConnId, msg: Option<&str>) {
        if let Some(c) = self.clients.get_mut(&conn) {
            if c.irc.is_none() && msg.is_none() {
                return;
            }
            c.irc_mut().away = msg.map(Into::into);
        }
    }

    /// A connection's IRC real name, when it gave one.
    pub fn realname_of(&self, conn: ConnId) -> Option<&str> {
        self.clients.get(&conn)?.irc.as_ref()?.realname.as_deref()
    }

    /// Sets a connection's IRC real name (`USER`), for `WHO` and `WHOIS` replies to others.
    pub fn set_realname(&mut self, conn: ConnId, realname: &str) {
        if let Some(c) = self.clients.get_mut(&conn) {
            c.irc_mut().realname = Some(realname.into());
        }
    }

    /// The key of the registered name whose password this connection proved before logging
    /// in ([`Hub::authenticate`]), if it did: IRC's SASL session asks after each answer.
    pub fn account_of(&self, conn: ConnId) -> Option<&str> {
        self.clients.get(&conn)?.account()
    }

    /// True when `name` (compared as names compare) is a registered name.
    pub fn is_registered(&self, name: &str) -> bool {
        self.registered.contains_key(&name_key(name))
    }

    /// `dd.mm.yy,HH:MM` of now, in the server's local time.
    pub fn now_stamp(&self) -> String {
        self.clock.stamp(self.clock.now())
    }

    /// The sonnets, when the server has them.
    pub fn sonnets(&self) -> Option<&Sonnets> {
        self.sonnets.as_ref()
    }

    /// The hub's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    // ---- Connections and names ------------------------------------------------------------

    /// A new connection, without a name yet.
    pub fn connect(&mut self, conn: ConnId, proto: Proto, addr: Option<IpAddr>) {
        self.clients
            .insert(conn, Box::new(Client::new(proto, addr)));
    }

    /// A connection is gone (EOF, reset, `/quit`, or removed by the server); `msg` is an IRC
    /// quit message.
    pub fn disconnect(&mut self, conn: ConnId, msg: Option<&str>, sink: &mut impl Sink) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        if let (Some(name), Some(key)) = (client.name(), client.key.clone()) {
            log::info!("{}: {name} disconnected", conn_label(conn));
            let open = client.auth == Auth::Open;
            if open {
                self.quit_channels(conn, msg, sink);
            }
            if self.owners.get(&key) == Some(&conn) {
                self.owners.remove(&key);
                self.logged_out(conn, &key, msg, sink);
            }
            self.forget_pending(&key, conn);
        }
        self.clients.remove(&conn);
    }

    /// Logs a connection in under `name` (`user`: the IRC user name, if any).
    pub fn login(
        &mut self,
        conn: ConnId,
        name: &str,
        user: Option<&str>,
        sink: &mut impl Sink,
    ) -> Result<Login, NameError> {
        if !names::valid_name(name) {
            return Err(NameError::Invalid);
        }
        let key = name_key(name);
        let registered = match self.registered.get(&key) {
            Some(r) if *r.name != *name => return Err(NameError::TooClose),
            Some(_) => true,
            None => false,
        };
        if self.owners.contains_key(&*key)
            || self.remote_owner(&key)
            || (!registered && self.pending.contains_key(&key))
        {
            return Err(NameError::InUse);
        }
        if !self.clients.contains_key(&conn) {
            return Err(NameError::Invalid);
        }
        if registered {
            log::debug!("{}: {name} is registered: must identify", conn_label(conn));
        } else {
            log::info!("{}: logged in as {name}", conn_label(conn));
        }
        // One string for the key the client, `owners` and `known` hold.
        let key: Arc<str> = key.into();
        if self.known.insert(key.clone()) {
            sink.store(Request::Event(Event::User {
                name: name.to_string(),
                key: key.to_string(),
                time: self.clock.now(),
            }));
        }
        // In a cluster, the clock's now (the last seq this node gave may be far behind).
        let seq = if self.cluster.is_some() {
            self.next_seq()
        } else {
            self.seq
        };
        let Some(client) = self.clients.get_mut(&conn) else {
            return Err(NameError::Invalid);
        };
        // A name that is its own key (lower case, no look-alike letters) shares its string.
        let shared: Arc<str> = if *key == *name {
            key.clone()
        } else {
            name.into()
        };
        let user = match user {
            Some(user) if user != name => user.into(),
            _ => shared.clone(),
        };
        let person = Person {
            name: shared,
            user,
            host: host_for(client.proto),
        };
        client.login_seq = seq;
        client.person = Some(person);
        client.key = Some(key.clone());
        let proven = client.account() == Some(&*key);
        if registered && proven {
            // Its password was checked before login (SASL): identified at once.
            if !self.take_name(conn, &key, name, sink) {
                self.start_mail(conn, sink);
            }
            Ok(Login::Open)
        } else if registered {
            self.require_identify(conn, sink);
            Ok(Login::MustIdentify)
        } else if self.cluster.is_some() {
            if self.claim(conn, &key, sink) {
                Ok(Login::Pending)
            } else {
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.person = None;
                    c.key = None;
                }
                Err(NameError::Unavailable)
            }
        } else {
            self.owners.insert(key.clone(), conn);
            self.start_mail(conn, sink);
            Ok(Login::Open)
        }
    }

    /// Makes a connection holding a registered name identify first: the prompt, the
    /// deadline, and no channels until then.
    fn require_identify(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let (Some(key), Some(name)) = (client.key.clone(), client.name().map(str::to_string))
        else {
            return;
        };
        client.auth = Auth::MustIdentify { tries: 0 };
        self.pending.entry(Box::from(&*key)).or_default().push(conn);
        let secs = i64::try_from(self.limits.identify_secs).unwrap_or(i64::MAX);
        let deadline = self.clock.now().saturating_add(secs);
        self.identify_deadlines.push_back((deadline, conn));
        let prompt = text::registered_name_prompt(&name, self.limits.identify_secs);
        self.reply_kind(sink, conn, ReplyKind::IdentifyPrompt, &[&prompt]);
    }

    fn forget_pending(&mut self, key: &str, conn: ConnId) {
        if let Some(list) = self.pending.get_mut(key) {
            list.retain(|&c| c != conn);
            if list.is_empty() {
                self.pending.remove(key);
            }
        }
    }

    /// Changes a logged-in connection's name (IRC `NICK`); everyone sharing a channel sees it.
    pub fn rename(
        &mut self,
        conn: ConnId,
        new: &str,
        sink: &mut impl Sink,
    ) -> Result<(), NameError> {
        if !names::valid_name(new) {
            return Err(NameError::Invalid);
        }
        let key = name_key(new);
        let Some(client) = self.clients.get(&conn) else {
            return Err(NameError::Invalid);
        };
        let (Some(old), Some(old_key)) = (client.person.clone(), client.key.clone()) else {
            return Err(NameError::Invalid);
        };
        if client.auth != Auth::Open {
            return Err(NameError::InUse);
        }
        if *old.name == *new {
            return Ok(());
        }
        let same_person = *key == *old_key;
        if !same_person {
            if self.registered.contains_key(&key) {
                return Err(NameError::TooClose);
            }
            if self.owners.contains_key(&*key)
                || self.remote_owner(&key)
                || self.pending.contains_key(&key)
            {
                return Err(NameError::InUse);
            }
        } else if self.registered.get(&key).is_some_and(|r| *r.name != *new) {
            return Err(NameError::TooClose);
        }
        log::info!("{}: {} is now known as {new}", conn_label(conn), old.name);
        // One string for the key the client, `owners` and `known` hold.
        let key: Arc<str> = key.into();
        if self.known.insert(key.clone()) {
            sink.store(Request::Event(Event::User {
                name: new.to_string(),
                key: key.to_string(),
                time: self.clock.now(),
            }));
        }
        let audience = self.audience(conn);
        sink.emit_many(&audience, Some(conn), &Out::Renamed { old: &old, new });
        self.owners.remove(&old_key);
        self.owners.insert(key.clone(), conn);
        if let Some(client) = self.clients.get_mut(&conn) {
            if let Some(p) = client.person.as_mut() {
                p.name = if *key == *new {
                    key.clone()
                } else {
                    new.into()
                };
            }
            client.key = Some(key.clone());
            // A new name starts a new history: it inherits nothing of the old one's.
            client.login_seq = self.seq;
        }
        if let Some(node) = self.node() {
            sink.cluster(crate::cluster::ClusterOp::Release {
                conn: conn as u64,
                key: old_key.to_string(),
            });
            sink.cluster(crate::cluster::ClusterOp::Claim {
                conn: conn as u64,
                key: key.to_string(),
            });
            self.publish(
                sink,
                crate::cluster::Wire::Renamed {
                    node,
                    conn: conn as u64,
                    name: new.to_string(),
                    key: key.to_string(),
                },
            );
            self.share_presence(sink, conn);
        }
        Ok(())
    }

    /// Everyone who shares a channel with `conn`, once each.
    fn audience(&self, conn: ConnId) -> Vec<ConnId> {
        let Some(client) = self.clients.get(&conn) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for &(ch, _) in &client.chans {
            for &m in self.members(ch) {
                if m != conn && seen.insert(m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// Closes registered-name connections that did not identify in time, and forgets old
    /// lockouts.
    pub fn tick(&mut self, sink: &mut impl Sink) {
        let now = self.clock.now();
        while let Some(&(deadline, conn)) = self.identify_deadlines.front() {
            if deadline > now {
                break;
            }
            self.identify_deadlines.pop_front();
            let Some(client) = self.clients.get(&conn) else {
                continue;
            };
            if matches!(client.auth, Auth::MustIdentify { .. }) {
                let name = client.name().unwrap_or_default().to_string();
                log::info!(
                    "{}: {name} did not identify in time; closing",
                    conn_label(conn)
                );
                sink.close(conn, Some(&text::identify_timeout(&name)));
            }
        }
        self.guard.expire(now);
        self.settle_found(true, sink);
    }

    // ---- Replies ----------------------------------------------------------------------------

    /// Sends lines to one connection.
    pub fn reply_kind(&self, sink: &mut impl Sink, conn: ConnId, kind: ReplyKind, lines: &[&str]) {
        let to = self.name_of(conn);
        sink.emit(conn, &Out::Reply { kind, lines, to });
    }

    /// Sends a plain reply of lines to one connection.
    pub fn reply(&self, sink: &mut impl Sink, conn: ConnId, lines: &[&str]) {
        self.reply_kind(sink, conn, ReplyKind::Plain, lines);
    }

    // ---- Waiting ------------------------------------------------------------------------------

    fn set_wait(&mut self, conn: ConnId, wait: Wait) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.wait = wait;
        }
    }

    /// The waiting is over: the loop may hand over the connection's held input.
    fn done_waiting(&mut self, conn: ConnId, sink: &mut impl Sink) {
        if let Some(client) = self.clients.get_mut(&conn) {
            if client.wait != Wait::Nothing {
                client.wait = Wait::Nothing;
                sink.resume(conn);
            }
        }
    }

    /// The loop wrote everything queued for `conn` when it asked: a paced reply goes on.
    pub fn flushed(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        match client.wait {
            Wait::Mail => self.mail_flushed(conn, sink),
            Wait::List { next } => self.list_from(conn, next, sink),
            _ => {}
        }
    }

    /// The next sequence number for a stored event (in a cluster, from its clock).
    fn next_seq(&mut self) -> u64 {
        match self.cluster_seq() {
            Some(seq) => self.seq = seq,
            None => self.seq += 1,
        }
        self.seq
    }

    /// Panics unless membership, names and pending identifications agree with each other
    /// (for the fuzz tests, after every step).
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        for (ch, channel) in self.channels.iter().enumerate() {
            let mut seen = HashSet::new();
            for &m in &channel.members {
                assert!(seen.insert(m), "{m} twice in channel {ch}");
                let c = self.clients.get(&m);
                assert!(
                    c.is_some_and(|c| c.chans.iter().any(|&(x, _)| x == ch)),
                    "member {m} of channel {ch} is gone or does not list it"
                );
            }
        }
        for (&id, c) in &self.clients {
            assert_eq!(
                c.person.is_some(),
                c.key.is_some(),
                "{id}: a name without a key"
            );
            let mut seen = HashSet::new();
            for &(ch, _) in &c.chans {
                assert!(seen.insert(ch), "{id} lists channel {ch} twice");
                assert!(
                    self.channels
                        .get(ch)
                        .is_some_and(|x| x.members.contains(&id)),
                    "{id} lists channel {ch}, which does not list it"
                );
            }
            let open = c.person.is_some() && c.auth == Auth::Open;
            assert!(
                open || c.chans.is_empty(),
                "{id} is in channels unnamed or unidentified"
            );
            if let (true, Some(key)) = (open, c.key.as_deref()) {
                assert_eq!(self.owners.get(key), Some(&id), "{id} does not own {key}");
            }
        }
        for (key, &id) in &self.owners {
            let c = self.clients.get(&id);
            assert!(
                c.is_some_and(|c| c.key.as_deref() == Some(&**key) && c.auth == Auth::Open),
                "{key} is owned by {id}, gone, unidentified or under another name"
            );
            assert!(
                !self.pending.contains_key(&**key),
                "{key} both owned and pending"
            );
        }
        for (key, holders) in &self.pending {
            assert!(!holders.is_empty(), "an empty pending list for {key}");
            let mut seen = HashSet::new();
            for &id in holders {
                assert!(seen.insert(id), "{id} pending twice for {key}");
                let c = self.clients.get(&id);
                assert!(
                    c.is_some_and(|c| c.key.as_deref() == Some(&**key)
                        && matches!(c.auth, Auth::MustIdentify { .. })),
                    "{id} pending for {key}: gone, identified or under another name"
                );
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
pub(crate) mod fuzz;
