//! The event loop: one mio `Poll` moving bytes between sockets and the [`Hub`].
//!
//! Each turn: wait for events, accept, hand storage's answers to the hub, read every readable
//! connection up to its budget and hand its complete frames to its protocol (which calls the
//! hub), then write every connection that has output, once, with everything it has.
//! Connections closed during a turn are removed only after the turn, so a token freed in one
//! batch of events is never confused with a new connection.
//!
//! While the hub makes a connection wait (for storage, a password check, a paced reply), the
//! loop hands it nothing more: the rest of its last read is held in the connection and it is
//! not read again until the hub resumes it. So commands run in order, nothing a client sent
//! is dropped whatever `--read-budget` is, and a client that half-closes after its commands
//! still gets every reply before the server closes its side.
//!
//! Closing: a connection the hub is done with is drained, not dropped — a last frame with the
//! reason when there is one, then what is queued is written, its side is shut down, and what
//! it still sends is read and dropped until it closes (so the reason reaches it, not a reset).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::cluster::{ClusterError, ClusterHandle, ClusterOp};
use crate::conn::{BufPool, Closing, Codec, Conn, ReadOutcome, Transport};
use crate::frame::{self, FRAME_LEN};
use crate::hub::{conn_label, ConnId, Hub, HubConfig, Limits, Out, Proto, Sink, SERIAL_SHIFT};
use crate::outq::TurnLog;
use crate::proto;
use crate::proto::irc::message::Piece;
use crate::proto::irc::session::{Ctx as IrcCtx, Session};
use crate::proto::irc::IrcConfig;
use crate::sonnets::{self, Sonnets};
use crate::storage::{HashJob, Request, Storage, StorageError, StorageHandle};
use crate::utils_errors as text;

const SIGNALS: Token = Token(usize::MAX - 2);
const STORAGE: Token = Token(usize::MAX - 3);
/// Listener `i` has token `LISTENERS - i`.
const LISTENERS: usize = usize::MAX - 16;
/// How many listeners there may be (tokens below `LISTENERS - MAX_LISTENERS` are connections).
const MAX_LISTENERS: usize = 8;

/// A hub `ConnId` is the slab index in the low bits and the connection's serial above them, so
/// that no two connections ever share an id even when they share a slot.
const INDEX_MASK: usize = (1 << SERIAL_SHIFT) - 1;

fn conn_id(index: usize, serial: u64) -> ConnId {
    ((serial as usize) << SERIAL_SHIFT) | index
}

/// Past this many history writes waiting, the server stops reading clients until the disk
/// catches up: history is never dropped, and a relayed message is committed within 100 ms.
/// Only the writer's queue counts: password hashing and searches have bounded queues of their
/// own and never stop anyone else.
const STORAGE_HIGH_WATER: usize = 4096;
/// How long the loop sleeps (unless an event comes) while storage is behind.
const STORAGE_WAIT: Duration = Duration::from_millis(1);
/// How long a closing connection may take to read its last output and close its side.
const LINGER: Duration = Duration::from_secs(5);
/// The smallest `--max-queue`: every reply the server sends in one piece fits in it (long
/// ones, such as `/list` or offline messages, are paced by the reader), so that no reply can
/// disconnect its reader.
pub const MIN_QUEUE: usize = 64 * 1024;
/// The longest time a flag may give, in seconds.
const MAX_SECS: f64 = 86_400.0;

/// How the server runs; every limit of section 7 is here.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// TCP port to listen on (0 takes a free one)
    pub port: u16,
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Most connections at once; more get the server-full text and are closed
    #[arg(long, default_value_t = 10_000)]
    pub max_clients: usize,
    /// Most bytes queued for one client (at least 65536); a client that lets more pile up is
    /// disconnected
    #[arg(long, default_value_t = 1 << 20)]
    pub max_queue: usize,
    /// Most bytes read from one connection per turn of the event loop (and never more than a
    /// quarter of --max-queue, so that one sender's turn cannot fill a reader's queue)
    #[arg(long, default_value_t = 16 * 1024)]
    pub read_budget: usize,
    /// Frames per second a client may send before the server stops reading from it (0: no limit)
    #[arg(long, default_value_t = 2_000.0)]
    pub flood_rate: f64,
    /// Frames a client may send in one burst above the flood rate
    #[arg(long, default_value_t = 1_000.0)]
    pub flood_burst: f64,
    /// Seconds a new connection has to send a valid name
    #[arg(long, default_value_t = 30.0)]
    pub name_timeout: f64,
    /// Seconds allowed for flushing queued output at shutdown
    #[arg(long, default_value_t = 2.0)]
    pub shutdown_grace: f64,
    /// The sonnets file for /sonnet (either format; see README); a relative path is relative
    /// to the current directory
    #[arg(long, default_value = sonnets::DEFAULT_SONNETS_PATH)]
    pub sonnets: PathBuf,
    /// Where history, offline messages, channels and registered names are kept (created if
    /// missing); a relative path is relative to the current directory
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Keep everything in memory and forget it at exit (for course use and quick tests)
    #[arg(long)]
    pub ephemeral: bool,
    /// Seconds a registered name has to /identify before it is disconnected
    #[arg(long, default_value_t = crate::hub::IDENTIFY_SECS)]
    pub identify_timeout: u64,
    /// Most channels the server holds; /create past it is refused
    #[arg(long, default_value_t = crate::hub::MAX_CHANNELS)]
    pub max_channels: usize,
    /// Most offline messages kept for one name; /msg past it is refused
    #[arg(long, default_value_t = crate::hub::MAX_OFFLINE)]
    pub max_offline: usize,
    /// The TLS certificate chain (PEM) for --tls-port; re-read on SIGUSR1
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM) for --tls-cert; re-read on SIGUSR1
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Also listen for the frame protocol inside TLS on this port (needs --tls-cert, --tls-key)
    #[arg(long, value_name = "PORT")]
    pub tls_port: Option<u16>,
    /// Do not listen on the plain frame port (PORT is then not used)
    #[arg(long)]
    pub no_plain: bool,
    /// Also serve the web client on this port: the page at /, the chat as a WebSocket at /ws
    /// (HTTPS and WSS when --tls-cert and --tls-key are given)
    #[arg(long, value_name = "PORT")]
    pub web_port: Option<u16>,
    /// An origin (scheme://host[:port]) besides the page's own allowed to open the WebSocket;
    /// may be given several times
    #[arg(long, value_name = "ORIGIN")]
    pub web_origin: Vec<String>,
    /// Also listen for IRC clients on this port
    #[arg(long, value_name = "PORT")]
    pub irc_port: Option<u16>,
    /// Also listen for IRC clients inside TLS on this port (needs --tls-cert, --tls-key)
    #[arg(long, value_name = "PORT")]
    pub irc_tls_port: Option<u16>,
    /// The server's name for IRC clients (numerics, PONG); default: this machine's host name
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// The message of the day for IRC clients (a text file, read at start)
    #[arg(long, value_name = "FILE")]
    pub motd: Option<PathBuf>,
    /// Run as one node of a cluster sharing names, channels and messages through this Redis
    /// (redis://HOST:PORT); needs --db
    #[arg(long, value_name = "URL", requires = "db")]
    pub cluster: Option<String>,
    /// Keep history, offline messages, channels and registered names in this PostgreSQL
    /// database (postgres://USER@HOST:PORT/DB) instead of SQLite in --data-dir
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

/// The default storage directory, relative to where the server runs.
pub const DEFAULT_DATA_DIR: &str = "chat-data";

impl ServerConfig {
    /// A configuration with the defaults, listening on `bind:port`.
    pub fn new(bind: IpAddr, port: u16) -> Self {
        ServerConfig {
            port,
            bind,
            max_clients: 10_000,
            max_queue: 1 << 20,
            read_budget: 16 * 1024,
            flood_rate: 2_000.0,
            flood_burst: 1_000.0,
            name_timeout: 30.0,
            shutdown_grace: 2.0,
            sonnets: PathBuf::from(sonnets::DEFAULT_SONNETS_PATH),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            ephemeral: false,
            identify_timeout: crate::hub::IDENTIFY_SECS,
            max_channels: crate::hub::MAX_CHANNELS,
            max_offline: crate::hub::MAX_OFFLINE,
            tls_cert: None,
            tls_key: None,
            tls_port: None,
            no_plain: false,
            web_port: None,
            web_origin: Vec::new(),
            irc_port: None,
            irc_tls_port: None,
            server_name: None,
            motd: None,
            cluster: None,
            db: None,
        }
    }

    /// Refuses every flag value that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(flag: &'static str, value: impl ToString, why: &'static str) -> ConfigError {
            ConfigError {
                flag,
                value: value.to_string(),
                why,
            }
        }
        let secs = |flag, v: f64, zero_ok: bool| {
            if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) || v > MAX_SECS {
                Err(bad(
                    flag,
                    v,
                    if zero_ok {
                        "must be a number of seconds from 0 to 86400"
                    } else {
                        "must be a number of seconds above 0, at most 86400"
                    },
                ))
            } else {
                Ok(())
            }
        };
        if self.max_clients == 0 {
            return Err(bad("max-clients", 0, "must be at least 1"));
        }
        if self.max_queue < MIN_QUEUE {
            return Err(bad(
                "max-queue",
                self.max_queue,
                "must be at least 65536 bytes, so that any reply fits",
            ));
        }
        if !(FRAME_LEN..=64 << 20).contains(&self.read_budget) {
            return Err(bad(
                "read-budget",
                self.read_budget,
                "must be from 200 (one frame) to 67108864 bytes",
            ));
        }
        if !self.flood_rate.is_finite() || self.flood_rate < 0.0 {
            return Err(bad(
                "flood-rate",
                self.flood_rate,
                "must be a number of frames a second, 0 or more (0: no limit)",
            ));
        }
        if !self.flood_burst.is_finite() || self.flood_burst < 1.0 {
            return Err(bad(
                "flood-burst",
                self.flood_burst,
                "must be a number of frames, at least 1",
            ));
        }
        secs("name-timeout", self.name_timeout, false)?;
        secs("shutdown-grace", self.shutdown_grace, true)?;
        if !(1..=86_400).contains(&self.identify_timeout) {
            return Err(bad(
                "identify-timeout",
                self.identify_timeout,
                "must be from 1 to 86400 seconds",
            ));
        }
        if self.max_channels == 0 {
            return Err(bad("max-channels", 0, "must be at least 1"));
        }
        if self.max_offline == 0 {
            return Err(bad("max-offline", 0, "must be at least 1"));
        }
        let tls = self.tls_cert.is_some() && self.tls_key.is_some();
        if let Some(port) = self.tls_port {
            if !tls {
                return Err(bad(
                    "tls-port",
                    port,
                    "needs --tls-cert FILE and --tls-key FILE",
                ));
            }
        }
        if let Some(port) = self.irc_tls_port {
            if !tls {
                return Err(bad(
                    "irc-tls-port",
                    port,
                    "needs --tls-cert FILE and --tls-key FILE",
                ));
            }
        }
        if let Some(o) = self
            .web_origin
            .iter()
            .find(|o| crate::proto::web::normalize_origin(o).is_none())
        {
            return Err(bad(
                "web-origin",
                o,
                "must be an origin as a browser sends it: scheme://host[:port]",
            ));
        }
        if self.no_plain && self.listeners().is_empty() {
            return Err(bad(
                "no-plain",
                "",
                "leaves nothing to listen on: give --tls-port (or an IRC port) too",
            ));
        }
        Ok(())
    }

    /// What the server listens on, in the order it prints them.
    pub fn listeners(&self) -> Vec<ListenerKind> {
        let mut out = Vec::new();
        if !self.no_plain {
            out.push(ListenerKind {
                port: self.port,
                proto: Proto::Frame,
                tls: false,
            });
        }
        if let Some(port) = self.tls_port {
            out.push(ListenerKind {
                port,
                proto: Proto::Frame,
                tls: true,
            });
        }
        if let Some(port) = self.web_port {
            out.push(ListenerKind {
                port,
                proto: Proto::Web,
                tls: self.tls_cert.is_some() && self.tls_key.is_some(),
            });
        }
        if let Some(port) = self.irc_port {
            out.push(ListenerKind {
                port,
                proto: Proto::Irc,
                tls: false,
            });
        }
        if let Some(port) = self.irc_tls_port {
            out.push(ListenerKind {
                port,
                proto: Proto::Irc,
                tls: true,
            });
        }
        out
    }
}

/// One listening port: its protocol, and whether it speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerKind {
    pub port: u16,
    pub proto: Proto,
    pub tls: bool,
}

impl ListenerKind {
    /// How the server's stdout names it: `Listening on ADDR` for the plain frame port,
    /// `Listening for TLS on ADDR`, and so on.
    pub fn label(&self) -> &'static str {
        match (self.proto, self.tls) {
            (Proto::Frame, false) => "",
            (Proto::Frame, true) => "TLS",
            (Proto::Web, false) => "web",
            (Proto::Web, true) => "web over TLS",
            (Proto::Irc, false) => "IRC",
            (Proto::Irc, true) => "IRC over TLS",
        }
    }
}

/// A listening socket.
struct Listener {
    socket: TcpListener,
    kind: ListenerKind,
    addr: SocketAddr,
}

/// A flag value that cannot work.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    flag: &'static str,
    value: String,
    why: &'static str,
}

impl std::fmt::Display for ConfigError {
    /// `--flag value: why`, or `--flag: why` for a flag that takes no value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.value.is_empty() {
            write!(f, "--{}: {}", self.flag, self.why)
        } else {
            write!(f, "--{} {}: {}", self.flag, self.value, self.why)
        }
    }
}

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source} (is another server on that port? `server 0` takes a free one)")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("event loop failure: {0}")]
    Poll(#[source] io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error("{0}")]
    Cluster(#[from] ClusterError),
}

/// The hub's view of the connections: renders and queues events, and notes who overflowed,
/// must close, or may be read again.
struct Outbox<'a> {
    conns: &'a mut Slab<Conn>,
    dirty: &'a mut Vec<usize>,
    /// Connections the hub asked to close (drained), reported to the hub this turn.
    closing: &'a mut Vec<usize>,
    /// Connections whose queue overflowed: removed now.
    overflowed: &'a mut Vec<usize>,
    readable: &'a mut Vec<usize>,
    pool: &'a mut BufPool,
    /// This turn's bytes, each event stored once per protocol for all the queues that share it.
    log: &'a mut TurnLog,
    /// Requests for storage, handed over together at the end of the turn.
    to_store: &'a mut Vec<Request>,
    storage: &'a StorageHandle,
    cluster: Option<&'a ClusterHandle>,
    irc: &'a IrcConfig,
    max_queue: usize,
}

/// Index of a protocol in a per-protocol cache.
fn proto_slot(p: Proto) -> usize {
    match p {
        Proto::Frame => 0,
        Proto::Irc => 1,
        Proto::Web => 2,
    }
}

impl Outbox<'_> {
    /// Queues `len` bytes at `at` in the log (or `own` when the log could not take them) for
    /// connection `index`; a queue that would pass `--max-queue` closes its connection instead.
    #[inline]
    fn enqueue(&mut self, index: usize, at: Option<(u32, u32)>, own: &[u8]) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let len = at.map_or(own.len(), |(_, l)| l as usize);
        if conn.queued() + len > self.max_queue {
            log::warn!(
                "{}: outbound queue full ({} bytes): disconnecting",
                conn_label(conn.id),
                conn.queued()
            );
            conn.closing = Closing::Now;
            self.overflowed.push(index);
            return;
        }
        match at {
            Some((start, len)) => conn.out.push_shared(self.log, start, len),
            None => conn.out.push_own(own, self.log, self.pool),
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(index);
        }
    }
}

/// The live connection with this hub id (none if it is gone).
#[inline]
fn live(conns: &mut Slab<Conn>, id: ConnId) -> Option<(usize, &mut Conn)> {
    let index = id & INDEX_MASK;
    let conn = conns.get_mut(index)?;
    (conn.id == id).then_some((index, conn))
}

impl Sink for Outbox<'_> {
    fn emit(&mut self, to: ConnId, out: &Out<'_>) {
        self.emit_many(std::slice::from_ref(&to), None, out);
    }

    /// The event is rendered once per protocol, stored once in the log, and every member's
    /// queue refers to it.
    fn emit_many(&mut self, to: &[ConnId], except: Option<ConnId>, out: &Out<'_>) {
        let mut rendered: [Option<Option<(u32, u32)>>; 3] = [None; 3];
        let mut scratch = Vec::new();
        for &id in to {
            if Some(id) == except {
                continue;
            }
            let Some((index, conn)) = live(self.conns, id) else {
                continue;
            };
            if conn.is_closing() {
                continue;
            }
            let proto = conn.proto;
            let slot = proto_slot(proto);
            let ctx = proto::RenderCtx { irc: self.irc };
            let at = *rendered[slot]
                .get_or_insert_with(|| self.log.append(|buf| proto::render(proto, out, &ctx, buf)));
            if at.is_none() {
                // The log is full this turn (or the event renders to nothing for this protocol).
                scratch.clear();
                proto::render(proto, out, &ctx, &mut scratch);
                if scratch.is_empty() {
                    continue;
                }
            }
            self.enqueue(index, at, &scratch);
        }
    }

    fn close(&mut self, id: ConnId, reason: Option<&str>) {
        let Some((index, conn)) = live(self.conns, id) else {
            return;
        };
        if conn.is_closing() {
            return;
        }
        let mut bytes = Vec::new();
        if conn.is_plain_http() {
            // An HTTP request that never upgraded: no chat words for it.
        } else if let Some(reason) = reason {
            let ctx = proto::RenderCtx { irc: self.irc };
            proto::render_reason(conn.proto, reason, &ctx, &mut bytes);
        } else if conn.proto == Proto::Web {
            proto::web::render_close(&mut bytes);
        }
        if !bytes.is_empty() {
            // The reason is small and goes out even past the queue bound.
            conn.out.push_own(&bytes, self.log, self.pool);
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(index);
            }
        }
        conn.closing = Closing::Draining {
            until: Instant::now() + LINGER,
            shut: false,
        };
        self.closing.push(index);
    }

    fn store(&mut self, request: Request) {
        self.to_store.push(request);
    }

    fn hash(&mut self, job: HashJob) -> bool {
        self.storage.try_hash(job)
    }

    fn cluster(&mut self, op: ClusterOp) -> bool {
        self.cluster.is_some_and(|c| c.submit(op))
    }

    fn report_flush(&mut self, id: ConnId) {
        if let Some((index, c)) = live(self.conns, id) {
            c.report_flush = true;
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    fn resume(&mut self, id: ConnId) {
        if let Some((index, c)) = live(self.conns, id) {
            if !c.pending_read && !c.is_closing() {
                c.pending_read = true;
                self.readable.push(index);
            }
        }
    }
}

/// The hub's [`Sink`] over the server's connections. A macro rather than a method, so that it
/// borrows the fields it needs and leaves `hub` free.
macro_rules! outbox {
    ($server:ident) => {
        Outbox {
            conns: &mut $server.conns,
            dirty: &mut $server.dirty,
            closing: &mut $server.closing,
            overflowed: &mut $server.overflowed,
            readable: &mut $server.readable,
            pool: &mut $server.pool,
            log: &mut $server.log,
            to_store: &mut $server.to_store,
            storage: &$server.storage,
            cluster: $server.cluster.as_ref(),
            irc: &$server.irc,
            max_queue: $server.cfg.max_queue,
        }
    };
}

/// The running server.
pub struct Server {
    cfg: ServerConfig,
    poll: Poll,
    /// The listening sockets (emptied at shutdown).
    listeners: Vec<Listener>,
    /// Where each listener listens, as printed at start.
    addrs: Vec<(ListenerKind, SocketAddr)>,
    /// The TLS configuration new TLS connections get (replaced on SIGUSR1).
    tls: Option<Arc<rustls::ServerConfig>>,
    signals: signal_hook_mio::v1_0::Signals,
    conns: Slab<Conn>,
    hub: Hub,
    storage: StorageHandle,
    /// The cluster link, when the server is one node of a cluster.
    cluster: Option<ClusterHandle>,
    /// Storage requests of this turn (see [`Server::submit_stored`]).
    to_store: Vec<Request>,
    next_serial: u64,
    /// The last time the hub was told that time passed.
    ticked: Instant,
    /// Connections with output to write this turn.
    dirty: Vec<usize>,
    /// Output buffers of connections with nothing queued, for reuse.
    pool: BufPool,
    /// The bytes queued this turn, shared by the queues (see [`crate::outq`]).
    log: TurnLog,
    /// Connections with input left to read.
    readable: Vec<usize>,
    /// Connections waiting for their flood budget, with the time it refills.
    throttled: Vec<(Instant, usize)>,
    /// Connections the hub asked to close (reported to the hub this turn).
    closing: Vec<usize>,
    /// Connections whose queue overflowed this turn.
    overflowed: Vec<usize>,
    /// Connections to remove at the end of the turn.
    dead: Vec<usize>,
    /// Connections being drained, with when they must be gone.
    draining: VecDeque<(Instant, usize, ConnId)>,
    /// When each unnamed connection must have sent a name, oldest first.
    /// (The id holds the slab index: an entry is 24 bytes, and one waits per connection.)
    name_deadlines: VecDeque<(Instant, ConnId)>,
    /// A spare descriptor, given up to accept (and refuse) a connection when none are left.
    spare_fd: Option<File>,
    read_buf: Vec<u8>,
    /// One IRC line, copied out of its connection's buffer while its session handles it.
    line_buf: Vec<u8>,
    /// What IRC sessions share.
    irc: IrcConfig,
    /// The origins besides its own a web page may open the WebSocket from.
    web_origins: Arc<[String]>,
    /// The last time IRC sessions were told that time passed.
    irc_ticked: Instant,
    shutdown_at: Option<Instant>,
}

impl Server {
    /// Checks the configuration and binds the listener; the server does nothing until
    /// [`Server::run`].
    pub fn bind(cfg: ServerConfig) -> Result<Server, ServerError> {
        cfg.validate()?;
        raise_fd_limit(cfg.max_clients);
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), STORAGE).map_err(ServerError::Poll)?);
        // Storage first: a second server on the same directory stops here, before it binds.
        // One waker for storage and the cluster link (mio allows one per poll).
        let link_waker = waker.clone();
        let (storage, startup) = if let Some(url) = &cfg.db {
            let first = match &cfg.cluster {
                Some(redis) => !ClusterHandle::others_alive(redis)?,
                None => true,
            };
            Storage::postgres(url, waker, first)?
        } else if cfg.ephemeral {
            log::info!("storage: in memory (--ephemeral): nothing survives a restart");
            Storage::ephemeral(waker)?
        } else {
            log::info!(
                "storage: {}",
                absolute(&cfg.data_dir.join(crate::storage::DB_FILE)).display()
            );
            Storage::open(&cfg.data_dir, waker)?
        };
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => {
                let config = crate::tls::load_config(cert, key)?;
                log::info!("TLS: certificate {}", absolute(cert).display());
                Some(config)
            }
            _ => None,
        };
        let mut listeners = Vec::new();
        for (i, kind) in cfg.listeners().into_iter().enumerate().take(MAX_LISTENERS) {
            let addr = SocketAddr::new(cfg.bind, kind.port);
            let mut socket = listen(addr).map_err(|source| ServerError::Bind { addr, source })?;
            let addr = socket
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            poll.registry()
                .register(&mut socket, Token(LISTENERS - i), Interest::READABLE)
                .map_err(ServerError::Poll)?;
            listeners.push(Listener { socket, kind, addr });
        }
        let addrs = listeners.iter().map(|l| (l.kind, l.addr)).collect();
        let mut signals = signal_hook_mio::v1_0::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
            signal_hook::consts::SIGUSR1,
        ])
        .map_err(ServerError::Signals)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let sonnets = load_sonnets(&cfg.sonnets);
        let limits = Limits {
            identify_secs: cfg.identify_timeout,
            max_channels: cfg.max_channels,
            max_offline: cfg.max_offline,
            ..Limits::default()
        };
        let irc = irc_config(&cfg);
        let mut hub = Hub::new(HubConfig {
            sonnets,
            startup,
            limits,
            ..HubConfig::default()
        });
        let cluster = match &cfg.cluster {
            Some(url) => {
                let channels = hub.channel_names().map(str::to_string).collect();
                // `--cluster` needs `--db` (checked with the flags).
                let db = cfg.db.as_deref().unwrap_or_default();
                let number = crate::storage::cluster_node_number(db)?;
                let link = ClusterHandle::start(url, number, link_waker, channels)?;
                hub.join_cluster(link.node());
                Some(link)
            }
            None => None,
        };
        let web_origins: Arc<[String]> = cfg
            .web_origin
            .iter()
            .filter_map(|o| crate::proto::web::normalize_origin(o))
            .collect::<Vec<_>>()
            .into();
        Ok(Server {
            read_buf: vec![0; cfg.read_budget.clamp(FRAME_LEN, 256 * 1024)],
            cfg,
            poll,
            listeners,
            addrs,
            tls,
            signals,
            conns: Slab::new(),
            hub,
            storage,
            cluster,
            to_store: Vec::new(),
            ticked: Instant::now(),
            next_serial: 0,
            dirty: Vec::new(),
            pool: BufPool::default(),
            log: TurnLog::default(),
            readable: Vec::new(),
            throttled: Vec::new(),
            closing: Vec::new(),
            overflowed: Vec::new(),
            dead: Vec::new(),
            draining: VecDeque::new(),
            name_deadlines: VecDeque::new(),
            spare_fd: File::open("/dev/null").ok(),
            line_buf: Vec::new(),
            web_origins,
            irc,
            irc_ticked: Instant::now(),
            shutdown_at: None,
        })
    }

    /// Where the server listens, in the order of [`ServerConfig::listeners`].
    pub fn listening(&self) -> &[(ListenerKind, SocketAddr)] {
        &self.addrs
    }

    /// Runs until SIGINT, SIGTERM or SIGHUP, then tells every client, flushes (bounded),
    /// commits storage and returns.
    pub fn run(mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ServerError::Poll(e));
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.on_signal(now),
                    Token(t) if t <= LISTENERS && t > LISTENERS - MAX_LISTENERS => {
                        self.accept(LISTENERS - t, now)
                    }
                    STORAGE => {} // Storage's and the cluster's answers are drained below.
                    Token(index) => {
                        let Some(conn) = self.conns.get_mut(index) else {
                            continue;
                        };
                        if (event.is_readable() || event.is_read_closed() || event.is_error())
                            && !conn.pending_read
                        {
                            conn.pending_read = true;
                            self.readable.push(index);
                        }
                        if event.is_writable() && !conn.dirty {
                            conn.dirty = true;
                            self.dirty.push(index);
                        }
                    }
                }
            }
            self.storage_replies();
            self.wake_throttled(now);
            if self.storage.backlog() < STORAGE_HIGH_WATER {
                self.read_all(now);
            } else {
                log::debug!(
                    "storage is behind ({} waiting): not reading",
                    self.storage.backlog()
                );
            }
            self.expire(now);
            self.tick(now);
            self.tick_irc(now);
            self.settle(now);
            self.write_all();
            self.settle(now);
            self.remove_dead();
            self.end_turn();
            self.submit_stored();
            if let Some(deadline) = self.shutdown_at {
                if self.conns.is_empty() || now >= deadline {
                    log::info!(
                        "shut down ({})",
                        if self.conns.is_empty() {
                            "every client told and flushed".to_string()
                        } else {
                            format!("grace period over, {} left unflushed", self.conns.len())
                        }
                    );
                    self.storage.shutdown()?;
                    return Ok(());
                }
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        // First: while storage is behind nothing is read, so input left to read must not make
        // the loop spin; it would take the core from the storage thread it waits for.
        if self.storage.backlog() >= STORAGE_HIGH_WATER {
            return Some(STORAGE_WAIT);
        }
        if !self.readable.is_empty() || !self.dirty.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut next: Option<Instant> = self.shutdown_at;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(&(t, _)) = self.throttled.iter().min_by_key(|(t, _)| *t) {
            consider(t);
        }
        if let Some(&(t, _)) = self.name_deadlines.front() {
            consider(t);
        }
        if let Some(&(t, _, _)) = self.draining.front() {
            consider(t);
        }
        if self.hub.has_deadlines() {
            consider(self.ticked + Duration::from_secs(1));
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    /// Keeps what was queued after the writes of this turn out of the log, which is then
    /// cleared.
    fn end_turn(&mut self) {
        if self.log.is_empty() {
            return;
        }
        for &id in &self.dirty {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.out.materialize(&self.log, &mut self.pool);
            }
        }
        self.log.clear();
    }

    /// Hands this turn's storage requests and cluster operations over, all at once: the
    /// writer threads wake once a turn rather than once a message (storage commits them in one
    /// transaction, the cluster link sends them in one pipeline).
    fn submit_stored(&mut self) {
        if !self.to_store.is_empty() {
            self.storage.submit_all(&mut self.to_store);
        }
        if let Some(cluster) = &self.cluster {
            cluster.flush();
        }
    }

    /// Hands storage's and the cluster's answers to the hub (which resumes the connections
    /// that waited).
    fn storage_replies(&mut self) {
        let replies: Vec<_> = self.storage.replies().collect();
        for reply in replies {
            let mut outbox = outbox!(self);
            self.hub.storage_reply(reply, &mut outbox);
        }
        let msgs: Vec<_> = self.cluster.iter().flat_map(|c| c.msgs()).collect();
        let any = !msgs.is_empty();
        for msg in msgs {
            let mut outbox = outbox!(self);
            self.hub.cluster_msg(msg, &mut outbox);
        }
        if any {
            let mut outbox = outbox!(self);
            self.hub.settle_found(false, &mut outbox);
        }
    }

    /// Tells the hub that time passed (registered names that must identify), once a second.
    fn tick(&mut self, now: Instant) {
        if now < self.ticked + Duration::from_secs(1) {
            return;
        }
        self.ticked = now;
        let mut outbox = outbox!(self);
        self.hub.tick(&mut outbox);
    }

    fn on_signal(&mut self, now: Instant) {
        let got: Vec<i32> = self.signals.pending().collect();
        if got.contains(&signal_hook::consts::SIGUSR1) {
            self.reload_tls();
        }
        let stop: Vec<&str> = got
            .iter()
            .filter(|&&s| s != signal_hook::consts::SIGUSR1)
            .map(|&s| signal_hook::low_level::signal_name(s).unwrap_or("a signal"))
            .collect();
        if stop.is_empty() || self.shutdown_at.is_some() {
            return;
        }
        log::info!(
            "{}: no longer accepting; telling every client and flushing",
            stop.join(", ")
        );
        for mut listener in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut listener.socket);
        }
        let grace = Duration::from_secs_f64(self.cfg.shutdown_grace);
        self.shutdown_at = Some(now + grace);
        let ids: Vec<ConnId> = self.conns.iter().map(|(_, c)| c.id).collect();
        for id in ids {
            let mut outbox = outbox!(self);
            outbox.close(id, Some(text::SHUTTING_DOWN));
        }
        self.settle(now);
    }

    /// SIGUSR1: reads the certificate and key again; new connections get them, open ones keep
    /// theirs. A file that cannot be used is logged and the old ones stay.
    fn reload_tls(&mut self) {
        let (Some(cert), Some(key)) = (&self.cfg.tls_cert, &self.cfg.tls_key) else {
            log::info!("SIGUSR1: no TLS configured, nothing to reload");
            return;
        };
        match crate::tls::load_config(cert, key) {
            Ok(config) => {
                self.tls = Some(config);
                log::info!(
                    "SIGUSR1: TLS certificate and key reloaded from {}",
                    cert.display()
                );
            }
            Err(e) => log::error!("SIGUSR1: {e}; keeping the certificate in use"),
        }
    }

    fn accept(&mut self, which: usize, now: Instant) {
        loop {
            let Some(listener) = self.listeners.get(which) else {
                return;
            };
            let kind = listener.kind;
            match listener.socket.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, kind, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_fd_exhaustion(&e) => {
                    // No descriptor left: give up the spare one to take the connection and
                    // tell it the server is full, rather than leave it hanging. Linux says
                    // EMFILE before it looks for a pending connection, so only this second
                    // accept tells whether one is waiting: when none is, stop (looping on
                    // EMFILE would never end).
                    self.spare_fd = None;
                    let next = listener.socket.accept();
                    let waiting = match next {
                        Ok((stream, peer)) => {
                            log::error!(
                                "accept: {e}; refusing {peer}: server full (raise `ulimit -n`?)"
                            );
                            refuse(stream, kind, &self.irc);
                            true
                        }
                        Err(_) => false,
                    };
                    // After the refused connection is closed, so that its descriptor is free.
                    self.spare_fd = File::open("/dev/null").ok();
                    if !waiting || self.spare_fd.is_none() {
                        return;
                    }
                }
                Err(e) => {
                    log::error!("accept: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, kind: ListenerKind, now: Instant) {
        if self.conns.len() >= self.cfg.max_clients.min(INDEX_MASK) || self.shutdown_at.is_some() {
            log::warn!(
                "refusing {peer}: server full ({} connections)",
                self.conns.len()
            );
            refuse(stream, kind, &self.irc);
            return;
        }
        let _ = stream.set_nodelay(true);
        let transport = match (kind.tls, &self.tls) {
            (false, _) => Transport::Plain,
            (true, Some(config)) => match crate::tls::accept(config) {
                Ok(tls) => Transport::Tls(Box::new(tls)),
                Err(e) => {
                    log::error!("cannot start TLS for {peer}: {e}");
                    return;
                }
            },
            (true, None) => return,
        };
        let entry = self.conns.vacant_entry();
        let index = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(index), Interest::READABLE)
        {
            log::error!("cannot register {peer}: {e}");
            return;
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        let id = conn_id(index, serial);
        let mut conn = Conn::new(
            stream,
            transport,
            kind.proto,
            id,
            self.cfg.flood_burst,
            now,
            &self.web_origins,
        );
        // Data may have arrived before registration: read on this turn.
        conn.pending_read = true;
        self.hub.connect(id, conn.proto, Some(peer.ip()));
        entry.insert(conn);
        self.readable.push(index);
        let deadline = now + Duration::from_secs_f64(self.cfg.name_timeout);
        self.name_deadlines.push_back((deadline, id));
        let over = if kind.tls { " over TLS" } else { "" };
        log::info!("{}: accepted from {peer}{over}", conn_label(id));
    }

    fn wake_throttled(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.throttled.len() {
            let (t, id) = self.throttled[i];
            if t <= now {
                self.throttled.swap_remove(i);
                if let Some(c) = self.conns.get_mut(id) {
                    c.throttled = false;
                    if !c.pending_read {
                        c.pending_read = true;
                        self.readable.push(id);
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    /// Hands `data` to the connection's protocol, an input at a time, until the hub makes the
    /// connection wait; returns how many bytes were used (the caller holds the rest). IRC keeps
    /// what it was given in its own buffer.
    fn feed(&mut self, index: usize, data: &[u8], now: Instant) -> usize {
        let Some(conn) = self.conns.get_mut(index) else {
            return data.len();
        };
        match &mut conn.codec {
            Codec::Frame => self.feed_frames(index, data),
            Codec::Irc(irc) => {
                irc.buf.extend_from_slice(data);
                self.pump_irc(index, now);
                data.len()
            }
            Codec::Web(web) => {
                web.codec.feed(data);
                self.pump_web(index);
                data.len()
            }
        }
    }

    /// Hands a web connection's inputs (WebSocket messages, each a frame's text) to the frame
    /// protocol until the hub makes it wait; writes what the codec answers itself (the page,
    /// the upgrade, pongs); closes the connection when the codec says so.
    fn pump_web(&mut self, index: usize) {
        let mut out = Vec::new();
        loop {
            let Some(conn) = self.conns.get_mut(index) else {
                return;
            };
            if conn.is_closing() {
                return;
            }
            let hub_id = conn.id;
            let Codec::Web(web) = &mut conn.codec else {
                return;
            };
            if self.hub.is_waiting(hub_id) {
                web.stalled = true;
                break;
            }
            web.stalled = false;
            let step = web.codec.next(&mut out);
            if !out.is_empty() {
                conn.out.push_own(&out, &self.log, &mut self.pool);
                out.clear();
                if !conn.dirty {
                    conn.dirty = true;
                    self.dirty.push(index);
                }
            }
            match step {
                Ok(Some(crate::proto::web::WebInput::Message(text))) => {
                    conn.charge();
                    let Ok(frame) = frame::pad(&text) else {
                        continue;
                    };
                    let mut outbox = outbox!(self);
                    proto::frame::handle(&mut self.hub, hub_id, &frame, &mut outbox);
                }
                Ok(None) => break,
                Err(why) => {
                    log::debug!("{}: web: {why}", conn_label(hub_id));
                    let mut outbox = outbox!(self);
                    outbox.close(hub_id, None);
                    break;
                }
            }
        }
    }

    /// Handles input an earlier read left; false when the connection still waits (or closes).
    fn pump_held(&mut self, index: usize, now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(index) else {
            return false;
        };
        match &conn.codec {
            Codec::Frame => {
                let held = std::mem::take(&mut conn.held);
                let used = self.feed_frames(index, &held);
                if used < held.len() {
                    if let Some(conn) = self.conns.get_mut(index) {
                        conn.held = held[used..].into();
                    }
                    return false;
                }
            }
            Codec::Irc(_) => {
                self.pump_irc(index, now);
            }
            Codec::Web(_) => {
                self.pump_web(index);
            }
        }
        self.conns
            .get(index)
            .is_some_and(|c| !c.is_closing() && !c.has_held() && !self.hub.is_waiting(c.id))
    }

    /// Hands an IRC connection's complete lines to its session until the hub makes it wait.
    fn pump_irc(&mut self, index: usize, now: Instant) {
        self.settle_irc(index, now);
        let mut pos = 0;
        loop {
            let Some(conn) = self.conns.get_mut(index) else {
                return;
            };
            let closing = conn.is_closing();
            let hub_id = conn.id;
            let Codec::Irc(irc) = &mut conn.codec else {
                return;
            };
            if closing {
                irc.buf.clear();
                return;
            }
            if self.hub.is_waiting(hub_id) {
                irc.buf.drain(..pos);
                return;
            }
            let too_long = match irc.splitter.next(&irc.buf[pos..]) {
                Piece::Line { line, consumed } => {
                    self.line_buf.clear();
                    self.line_buf.extend_from_slice(line);
                    pos += consumed;
                    false
                }
                Piece::TooLong { consumed } => {
                    pos += consumed;
                    true
                }
                Piece::Incomplete { consumed } => {
                    pos += consumed;
                    irc.buf.drain(..pos);
                    return;
                }
            };
            let Some(mut session) = irc.session.take() else {
                return;
            };
            conn.charge();
            let line = std::mem::take(&mut self.line_buf);
            {
                let mut outbox = outbox!(self);
                let mut ctx = IrcCtx {
                    hub: &mut self.hub,
                    conn: hub_id,
                    cfg: &self.irc,
                    sink: &mut outbox,
                    now,
                };
                if too_long {
                    session.too_long(&mut ctx);
                } else {
                    session.line(&line, &mut ctx);
                }
            }
            self.line_buf = line;
            if let Some(conn) = self.conns.get_mut(index) {
                if let Codec::Irc(irc) = &mut conn.codec {
                    irc.session = Some(session);
                }
            }
        }
    }

    /// Lets an IRC session finish what waited for the hub (a `JOIN` the cluster had to
    /// create the channel for) as soon as the hub no longer makes it wait, before its next
    /// line.
    fn settle_irc(&mut self, index: usize, now: Instant) {
        let Some(conn) = self.conns.get(index) else {
            return;
        };
        if conn.is_closing() || self.hub.is_waiting(conn.id) {
            return;
        }
        let Codec::Irc(irc) = &conn.codec else {
            return;
        };
        if irc.session.as_ref().is_some_and(|s| s.has_pending()) {
            self.with_irc_session(index, now, |session, ctx| session.settle(ctx));
        }
    }

    /// Tells every IRC session that time passed (pings), once a second.
    fn tick_irc(&mut self, now: Instant) {
        if now < self.irc_ticked + Duration::from_secs(1) {
            return;
        }
        self.irc_ticked = now;
        let ids: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.codec, Codec::Irc(_)) && !c.is_closing())
            .map(|(i, _)| i)
            .collect();
        for index in ids {
            self.with_irc_session(index, now, |session, ctx| session.tick(ctx));
        }
    }

    /// Runs `f` on an IRC connection's session with the hub and this loop's sink, the session
    /// taken out of the connection meanwhile (it cannot borrow the loop while in it) and put
    /// back after, if the connection is still there.
    fn with_irc_session(
        &mut self,
        index: usize,
        now: Instant,
        f: impl FnOnce(&mut Session, &mut IrcCtx<'_, Outbox<'_>>),
    ) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let hub_id = conn.id;
        let Codec::Irc(irc) = &mut conn.codec else {
            return;
        };
        let Some(mut session) = irc.session.take() else {
            return;
        };
        {
            let mut outbox = outbox!(self);
            let mut ctx = IrcCtx {
                hub: &mut self.hub,
                conn: hub_id,
                cfg: &self.irc,
                sink: &mut outbox,
                now,
            };
            f(&mut session, &mut ctx);
        }
        if let Some(conn) = self.conns.get_mut(index) {
            if let Codec::Irc(irc) = &mut conn.codec {
                irc.session = Some(session);
            }
        }
    }

    /// Hands the complete frames of `data` to the frame protocol, one at a time, until the hub
    /// makes the connection wait; returns how many bytes were used (the caller holds the rest).
    fn feed_frames(&mut self, index: usize, data: &[u8]) -> usize {
        let mut pos = 0;
        while pos < data.len() {
            let Some(conn) = self.conns.get_mut(index) else {
                return data.len();
            };
            if conn.is_closing() {
                // After `/quit` (or any close) the rest of the input is not handled.
                return data.len();
            }
            let hub_id = conn.id;
            if self.hub.is_waiting(hub_id) {
                return pos;
            }
            let Some(frame) = conn.next_frame(data, &mut pos, &mut self.pool) else {
                break;
            };
            conn.charge();
            let mut outbox = outbox!(self);
            proto::frame::handle(&mut self.hub, hub_id, &frame, &mut outbox);
        }
        data.len()
    }

    /// Reads every connection with pending input, up to its budget, and feeds its protocol.
    fn read_all(&mut self, now: Instant) {
        let ids = std::mem::take(&mut self.readable);
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut again = Vec::new();
        for index in ids {
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            conn.pending_read = false;
            match conn.closing {
                Closing::No => {}
                Closing::Draining { shut: true, .. } => {
                    self.discard_input(index, &mut buf);
                    continue;
                }
                _ => continue,
            }
            if conn.throttled || self.shutdown_at.is_some() {
                continue;
            }
            let hub_id = conn.id;
            if self.hub.is_waiting(hub_id) {
                // Read again once the hub resumes it.
                continue;
            }
            // What an earlier read left comes first.
            if conn.has_held() && !self.pump_held(index, now) {
                continue;
            }
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            if conn.is_closing() || self.hub.is_waiting(hub_id) {
                continue;
            }
            if conn.eof {
                self.close(
                    index,
                    Closing::Draining {
                        until: now + LINGER,
                        shut: false,
                    },
                );
                continue;
            }
            let allowed = conn.allowance(self.cfg.flood_rate, self.cfg.flood_burst, now);
            if allowed == 0 {
                conn.throttled = true;
                let wait = Duration::from_secs_f64(1.0 / self.cfg.flood_rate.max(1e-3));
                self.throttled.push((now + wait, index));
                continue;
            }
            // The flood budget counts inputs: frames, or IRC lines of up to 512 bytes.
            let unit = if matches!(conn.codec, Codec::Irc(_)) {
                crate::proto::irc::message::MAX_LINE
            } else {
                FRAME_LEN
            };
            let mut left = self
                .cfg
                .read_budget
                .min(self.cfg.max_queue / 4)
                .min(allowed.saturating_mul(unit))
                .max(1);
            let mut failed = false;
            while left > 0 {
                let Some(conn) = self.conns.get_mut(index) else {
                    break;
                };
                let want = left.min(buf.len());
                match conn.read_some(&mut buf[..want]) {
                    ReadOutcome::Data(n) => {
                        left -= n;
                        let used = self.feed(index, &buf[..n], now);
                        if used < n {
                            // The hub made it wait: keep the rest, read nothing more.
                            if let Some(conn) = self.conns.get_mut(index) {
                                conn.held = [&conn.held[..], &buf[used..n]].concat().into();
                            }
                            break;
                        }
                        if self.conns.get(index).is_none_or(|c| c.is_closing()) {
                            break;
                        }
                    }
                    ReadOutcome::Drained => break,
                    ReadOutcome::Eof => {
                        conn.eof = true;
                        break;
                    }
                    ReadOutcome::Failed => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                self.close(index, Closing::Now);
                continue;
            }
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            // A TLS handshake message (or an alert) to send.
            if conn.wants_write() && !conn.dirty {
                conn.dirty = true;
                self.dirty.push(index);
            }
            if conn.is_closing() {
                continue;
            }
            if conn.eof && conn.held.is_empty() && !self.hub.is_waiting(hub_id) {
                self.close(
                    index,
                    Closing::Draining {
                        until: now + LINGER,
                        shut: false,
                    },
                );
            } else if left == 0 && conn.held.is_empty() {
                again.push(index);
            }
        }
        self.read_buf = buf;
        for index in again {
            if let Some(c) = self.conns.get_mut(index) {
                if !c.pending_read && !c.is_closing() {
                    c.pending_read = true;
                    self.readable.push(index);
                }
            }
        }
    }

    /// A drained connection's side is shut: read and drop what it still sends until it closes.
    fn discard_input(&mut self, index: usize, buf: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        for _ in 0..16 {
            match conn.read_raw(buf) {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Drained => return,
                ReadOutcome::Eof | ReadOutcome::Failed => {
                    conn.closing = Closing::Now;
                    self.dead.push(index);
                    return;
                }
            }
        }
        // More to drop: come back next turn.
        if !conn.pending_read {
            conn.pending_read = true;
            self.readable.push(index);
        }
    }

    /// Closes connections that sent no valid name in time, and removes drained connections
    /// whose time is up.
    fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, hub_id)) = self.name_deadlines.front() {
            if deadline > now {
                break;
            }
            self.name_deadlines.pop_front();
            let index = hub_id & INDEX_MASK;
            let same = self.conns.get(index).is_some_and(|c| c.id == hub_id);
            if same && self.hub.name_of(hub_id).is_none() {
                log::info!("{}: no valid name in time; closing", conn_label(hub_id));
                let mut outbox = outbox!(self);
                outbox.close(hub_id, Some(text::NAME_TIMEOUT));
            }
        }
        while let Some(&(deadline, index, id)) = self.draining.front() {
            if deadline > now {
                break;
            }
            self.draining.pop_front();
            if let Some(conn) = self.conns.get_mut(index) {
                if conn.id == id && conn.closing != Closing::Now {
                    log::debug!("{}: did not close in time; dropping it", conn_label(id));
                    conn.closing = Closing::Now;
                    self.dead.push(index);
                }
            }
        }
    }

    /// Reports the connections that must go to the hub (which may make more go).
    fn settle(&mut self, now: Instant) {
        loop {
            if let Some(index) = self.overflowed.pop() {
                self.close(index, Closing::Now);
            } else if let Some(index) = self.closing.pop() {
                let mode = match self.conns.get(index).map(|c| c.closing) {
                    Some(Closing::Draining { until, shut }) => Closing::Draining { until, shut },
                    _ => Closing::Draining {
                        until: now + LINGER,
                        shut: false,
                    },
                };
                self.close(index, mode);
            } else {
                return;
            }
        }
    }

    /// Tells the hub a connection is gone; then drains it, or removes it at the end of the
    /// turn.
    fn close(&mut self, index: usize, mode: Closing) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let hub_id = conn.id;
        match mode {
            Closing::Now => {
                conn.closing = Closing::Now;
                self.dead.push(index);
            }
            Closing::Draining { until, .. } => {
                if conn.closing == Closing::Now {
                    return;
                }
                let until = match self.shutdown_at {
                    Some(end) => until.min(end),
                    None => until,
                };
                conn.closing = Closing::Draining { until, shut: false };
                self.draining.push_back((until, index, hub_id));
                if !conn.dirty {
                    conn.dirty = true;
                    self.dirty.push(index);
                }
            }
            Closing::No => return,
        }
        if conn.in_hub {
            conn.in_hub = false;
            let mut outbox = outbox!(self);
            self.hub.disconnect(hub_id, None, &mut outbox);
        }
    }

    /// Writes every connection with pending output, once, with everything it has; shuts down
    /// the sending side of drained connections once their queue is empty.
    fn write_all(&mut self) {
        let ids = std::mem::take(&mut self.dirty);
        let mut flushed = Vec::new();
        let mut failed = Vec::new();
        for &index in &ids {
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            conn.dirty = false;
            if conn.closing == Closing::Now {
                continue;
            }
            let result = conn
                .flush(&self.log, &mut self.pool)
                .and_then(|()| conn.update_interest(self.poll.registry(), Token(index)));
            match result {
                Ok(()) if conn.queued() == 0 => {
                    if let Closing::Draining { until, shut: false } = conn.closing {
                        conn.shut_write();
                        conn.closing = Closing::Draining { until, shut: true };
                        if !conn.pending_read {
                            conn.pending_read = true;
                            self.readable.push(index);
                        }
                    } else if conn.report_flush {
                        conn.report_flush = false;
                        flushed.push(conn.id);
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    log::debug!("{}: write failed: {e}", conn_label(conn.id));
                    failed.push(index);
                }
            }
        }
        for index in failed {
            self.close(index, Closing::Now);
        }
        // A connection closed above may have queued departures for others that were written
        // already: they are in `self.dirty` again, for the next turn; keep them.
        if self.dirty.is_empty() {
            let mut ids = ids;
            ids.clear();
            self.dirty = ids;
        }
        for hub_id in flushed {
            let mut outbox = outbox!(self);
            self.hub.flushed(hub_id, &mut outbox);
        }
    }

    /// Removes the connections closed during this turn.
    fn remove_dead(&mut self) {
        for index in std::mem::take(&mut self.dead) {
            let Some(conn) = self.conns.get(index) else {
                continue;
            };
            if conn.closing != Closing::Now {
                continue;
            }
            if let Some(mut conn) = self.conns.try_remove(index) {
                conn.release(&mut self.pool);
                let _ = self.poll.registry().deregister(&mut conn.stream);
                log::info!("{}: closed", conn_label(conn.id));
            }
        }
        self.throttled.retain(|&(_, id)| self.conns.contains(id));
    }
}

/// What IRC sessions share, from the configuration: the server's name (the host name unless
/// `--server-name`), the network, the MOTD file's lines.
fn irc_config(cfg: &ServerConfig) -> IrcConfig {
    let server_name = cfg.server_name.clone().unwrap_or_else(|| {
        let name = crate::os::host_name();
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if ok {
            name
        } else {
            "chat.local".to_string()
        }
    });
    let motd = cfg
        .motd
        .as_ref()
        .and_then(|path| match std::fs::read_to_string(path) {
            Ok(text) => Some(
                text.lines()
                    .map(|l| frame::clean(l).into_owned())
                    .collect::<Vec<_>>()
                    .into(),
            ),
            Err(e) => {
                log::warn!("no MOTD from {}: {e}", absolute(path).display());
                None
            }
        });
    IrcConfig {
        network: "chat".into(),
        server_name: server_name.into(),
        motd,
        created: {
            use crate::clock::Clock;
            let clock = crate::clock::SystemClock;
            clock.stamp(clock.now()).into()
        },
    }
}

/// A path as an absolute one, for the log (the path itself when that cannot be worked out).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Loads the sonnets once; a missing or wrong file is logged once and the server runs without.
fn load_sonnets(path: &Path) -> Option<Sonnets> {
    match Sonnets::load(path) {
        Ok(s) => {
            log::info!("loaded 154 sonnets from {}", absolute(path).display());
            Some(s)
        }
        Err(e) => {
            log::warn!("{}", sonnets::missing_warning(path, &e));
            None
        }
    }
}

/// How many connections may wait to be accepted (the kernel caps it at `somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listening socket with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Tells a connection the server is full and closes it.
/// Tells a connection the server has no room for it, in its listener's protocol, with one
/// write that cannot block the loop (a full socket buffer just loses the text). A TLS
/// listener's connection is only closed: a handshake would be work for someone refused.
fn refuse(mut stream: TcpStream, kind: ListenerKind, irc: &proto::irc::IrcConfig) {
    if kind.tls {
        return;
    }
    let mut out = Vec::new();
    match kind.proto {
        Proto::Frame => {
            if let Ok(f) = frame::pad(text::SERVER_FULL) {
                out.extend_from_slice(&f);
            }
        }
        Proto::Irc => proto::irc::render_reason(text::SERVER_FULL, irc, &mut out),
        Proto::Web => proto::web::http::server_full(&mut out),
    }
    let _ = stream.write(&out);
    // Closing a socket with unread input resets the connection, and a reset can destroy the
    // text at the client before it is read: what the client sent already (its name, say) is
    // read and dropped first, boundedly, and our side is shut down cleanly.
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Raises the soft open-file limit to the hard one, and says so when it is still too low.
fn raise_fd_limit(max_clients: usize) {
    let limit = crate::os::raise_nofile_limit();
    // The listener, the poll, the signal pipe, the spare, storage and the std streams need some.
    let usable = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(16);
    if usable < max_clients {
        log::warn!(
            "the open-file limit ({limit}) is too low for --max-clients {max_clients}: about \
             {usable} clients fit; the others will get the server-full text"
        );
    }
}
