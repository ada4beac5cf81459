//! The event loop: one mio `Poll` moving bytes between sockets and the [`Hub`].
//!
//! Each turn: wait for events, accept, read every readable connection up to its budget and hand
//! complete frames to the hub, then write every connection that has output, once, with
//! everything it has. Connections closed during a turn are removed only after the turn, so a
//! token freed in one batch of events is never confused with a new connection.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::conn::{BufPool, Conn, ReadOutcome};
use crate::frame::{self, Frame, FRAME_LEN};
use crate::hub::{ConnId, Hub, HubConfig, Sink};
use crate::outq::TurnLog;
use crate::sonnets::{self, Sonnets};
use crate::storage::{Request, Storage, StorageError, StorageHandle};
use crate::utils_errors as text;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const STORAGE: Token = Token(usize::MAX - 3);

/// A hub `ConnId` is the slab index in the low bits and the connection's serial above them, so
/// that no two connections ever share an id even when they share a slot.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

fn conn_id(index: usize, serial: u64) -> ConnId {
    ((serial as usize) << INDEX_BITS) | index
}

/// Past this many storage requests waiting, the server stops reading clients until storage
/// catches up: history is never dropped, and a relayed message is committed within 100 ms.
const STORAGE_HIGH_WATER: usize = 4096;
/// How long the loop sleeps (unless an event comes) while storage is behind.
const STORAGE_WAIT: Duration = Duration::from_millis(1);

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
    /// Most bytes queued for one client; a client that lets more pile up is disconnected
    #[arg(long, default_value_t = 1 << 20)]
    pub max_queue: usize,
    /// Most bytes read from one connection per turn of the event loop
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
    /// The sonnets file for /sonnet (either format; see README)
    #[arg(long, default_value = sonnets::DEFAULT_SONNETS_PATH)]
    pub sonnets: PathBuf,
    /// Where history, offline messages and registered names are kept (created if missing)
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Keep everything in memory and forget it at exit (for course use and quick tests)
    #[arg(long)]
    pub ephemeral: bool,
    /// Seconds a registered name has to /identify before it is disconnected
    #[arg(long, default_value_t = crate::hub::IDENTIFY_SECS)]
    pub identify_timeout: u64,
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
        }
    }
}

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("event loop failure: {0}")]
    Poll(#[source] io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// The hub's view of the connections: queues frames, and notes who overflowed or must close.
struct Outbox<'a> {
    conns: &'a mut Slab<Conn>,
    dirty: &'a mut Vec<usize>,
    overflowed: &'a mut Vec<usize>,
    pool: &'a mut BufPool,
    /// This turn's frames, each stored once for all the queues that share it.
    log: &'a mut TurnLog,
    /// Requests for storage, handed over together at the end of the turn.
    to_store: &'a mut Vec<Request>,
    max_queue: usize,
}

impl Outbox<'_> {
    /// The live connection with this hub id (none if it is gone).
    fn conn(&mut self, id: ConnId) -> Option<(usize, &mut Conn)> {
        live(self.conns, id)
    }

    /// Queues the frame stored in the log at `at` (or, when the log is full, `frame` itself)
    /// for connection `id`, unless it is gone or closing; a queue that would pass
    /// `--max-queue` closes its connection instead.
    #[inline]
    fn enqueue(&mut self, id: ConnId, at: Option<u32>, frame: &Frame) {
        let Some((to, conn)) = live(self.conns, id) else {
            return;
        };
        if conn.closing {
            return;
        }
        if conn.queued() + FRAME_LEN > self.max_queue {
            log::warn!(
                "conn {to}: outbound queue full ({} bytes): disconnecting",
                conn.queued()
            );
            conn.closing = true;
            self.overflowed.push(to);
            return;
        }
        match at {
            Some(at) => conn.out.push_shared(self.log, at),
            None => conn.out.push_own(frame, self.log, self.pool),
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(to);
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
    fn send(&mut self, id: ConnId, frame: &Frame) {
        let at = self.log.push(frame);
        self.enqueue(id, at, frame);
    }

    /// The frame is stored once, and every member's queue refers to it.
    fn send_many(&mut self, to: &[ConnId], except: Option<ConnId>, frame: &Frame) {
        let at = self.log.push(frame);
        for &id in to {
            if Some(id) != except {
                self.enqueue(id, at, frame);
            }
        }
    }

    fn close(&mut self, id: ConnId) {
        if let Some((index, c)) = self.conn(id) {
            if !c.closing {
                c.closing = true;
                self.overflowed.push(index);
            }
        }
    }

    fn store(&mut self, request: Request) {
        self.to_store.push(request);
    }

    fn report_flush(&mut self, id: ConnId) {
        if let Some((_, c)) = self.conn(id) {
            c.report_flush = true;
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
            overflowed: &mut $server.closing,
            pool: &mut $server.pool,
            log: &mut $server.log,
            to_store: &mut $server.to_store,
            max_queue: $server.cfg.max_queue,
        }
    };
}

/// The running server.
pub struct Server {
    cfg: ServerConfig,
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: signal_hook_mio::v1_0::Signals,
    conns: Slab<Conn>,
    hub: Hub,
    storage: StorageHandle,
    /// Storage requests of this turn (see [`Server::submit_stored`]).
    to_store: Vec<Request>,
    next_serial: u64,
    /// Connections not read because the hub waits for storage on their behalf.
    parked: Vec<usize>,
    /// The last time the hub was told that time passed.
    ticked: Instant,
    /// Connections with output to write this turn.
    dirty: Vec<usize>,
    /// Output buffers of connections with nothing queued, for reuse.
    pool: BufPool,
    /// The frames queued this turn, shared by the queues (see [`crate::outq`]).
    log: TurnLog,
    /// Connections with input left to read.
    readable: Vec<usize>,
    /// Connections waiting for their flood budget, with the time it refills.
    throttled: Vec<(Instant, usize)>,
    /// Connections the hub or a full queue asked to close (reported to the hub this turn).
    closing: Vec<usize>,
    /// Connections to remove at the end of the turn.
    dead: Vec<usize>,
    /// When each unnamed connection must have sent a name, oldest first.
    name_deadlines: VecDeque<(Instant, usize, u64)>,
    /// A spare descriptor, given up to accept (and refuse) a connection when none are left.
    spare_fd: Option<File>,
    frames: Vec<Frame>,
    read_buf: Vec<u8>,
    shutdown_at: Option<Instant>,
}

impl Server {
    /// Binds the listener; the server does nothing until [`Server::run`].
    pub fn bind(cfg: ServerConfig) -> Result<Server, ServerError> {
        let addr = SocketAddr::new(cfg.bind, cfg.port);
        raise_fd_limit(cfg.max_clients);
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let mut listener = listen(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let mut signals = signal_hook_mio::v1_0::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .map_err(ServerError::Signals)?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let sonnets = load_sonnets(&cfg.sonnets);
        let identify_secs = cfg.identify_timeout;
        let waker = Arc::new(Waker::new(poll.registry(), STORAGE).map_err(ServerError::Poll)?);
        let (storage, startup) = if cfg.ephemeral {
            log::info!("storage: in memory (--ephemeral): nothing survives a restart");
            Storage::ephemeral(waker)?
        } else {
            log::info!(
                "storage: {}",
                cfg.data_dir.join(crate::storage::DB_FILE).display()
            );
            Storage::open(&cfg.data_dir, waker)?
        };
        Ok(Server {
            read_buf: vec![0; cfg.read_budget.clamp(FRAME_LEN, 256 * 1024)],
            cfg,
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            conns: Slab::new(),
            hub: Hub::new(HubConfig {
                sonnets,
                startup,
                identify_secs,
                ..HubConfig::default()
            }),
            storage,
            to_store: Vec::new(),
            parked: Vec::new(),
            ticked: Instant::now(),
            next_serial: 0,
            dirty: Vec::new(),
            pool: BufPool::default(),
            log: TurnLog::default(),
            readable: Vec::new(),
            throttled: Vec::new(),
            closing: Vec::new(),
            dead: Vec::new(),
            name_deadlines: VecDeque::new(),
            spare_fd: File::open("/dev/null").ok(),
            frames: Vec::new(),
            shutdown_at: None,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs until SIGINT or SIGTERM, then flushes (bounded), closes storage and returns.
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
                    LISTENER => self.accept(now),
                    SIGNALS => self.on_signal(now),
                    STORAGE => {} // Replies are drained below, every turn.
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
            if self.shutdown_at.is_none() {
                if self.storage.backlog() < STORAGE_HIGH_WATER {
                    self.read_all(now);
                } else {
                    log::debug!(
                        "storage is behind ({} waiting): not reading",
                        self.storage.backlog()
                    );
                }
            }
            self.expire_names(now);
            self.tick(now);
            self.settle();
            self.write_all();
            self.remove_dead();
            self.end_turn();
            self.submit_stored();
            if let Some(deadline) = self.shutdown_at {
                let drained = self.conns.iter().all(|(_, c)| c.queued() == 0);
                if drained || now >= deadline {
                    log::info!(
                        "shut down with {} connections ({})",
                        self.conns.len(),
                        if drained {
                            "all output flushed"
                        } else {
                            "grace period over"
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
        // the loop spin; it would take the core from the storage thread it waits for (with
        // history on, that spinning cost a quarter of the throughput).
        if self.storage.backlog() >= STORAGE_HIGH_WATER {
            return Some(STORAGE_WAIT);
        }
        if !self.readable.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut next: Option<Instant> = self.shutdown_at;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(&(t, _)) = self.throttled.iter().min_by_key(|(t, _)| *t) {
            consider(t);
        }
        if let Some(&(t, _, _)) = self.name_deadlines.front() {
            consider(t);
        }
        if self.hub.has_deadlines() {
            consider(self.ticked + Duration::from_secs(1));
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    /// Keeps what was queued after the writes of this turn (replies to the flush reports,
    /// departures) out of the log, which is then cleared.
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

    /// Hands this turn's storage requests over, all at once: the writer thread wakes once a
    /// turn rather than once a message, and commits them in one transaction (under load,
    /// hundreds of messages per commit, which makes history cheap; see docs/BENCHMARKS.md).
    fn submit_stored(&mut self) {
        if !self.to_store.is_empty() {
            self.storage.submit_all(&mut self.to_store);
        }
    }

    /// Hands storage's answers to the hub, then reads the connections that waited for them.
    fn storage_replies(&mut self) {
        let mut any = false;
        for reply in self.storage.replies() {
            any = true;
            let mut outbox = outbox!(self);
            self.hub.storage_reply(reply, &mut outbox);
        }
        if !any {
            return;
        }
        let mut i = 0;
        while i < self.parked.len() {
            let index = self.parked[i];
            match self.conns.get_mut(index) {
                Some(conn) if self.hub.is_waiting(conn.id) => i += 1,
                Some(conn) => {
                    self.parked.swap_remove(i);
                    if !conn.pending_read {
                        conn.pending_read = true;
                        self.readable.push(index);
                    }
                }
                None => {
                    self.parked.swap_remove(i);
                }
            }
        }
    }

    /// Tells the hub that time passed (registered names that must identify), once a second.
    fn tick(&mut self, now: Instant) {
        if !self.hub.has_deadlines() || now < self.ticked + Duration::from_secs(1) {
            return;
        }
        self.ticked = now;
        let mut outbox = outbox!(self);
        self.hub.tick(&mut outbox);
    }

    fn on_signal(&mut self, now: Instant) {
        let got: Vec<i32> = self.signals.pending().collect();
        if got.is_empty() || self.shutdown_at.is_some() {
            return;
        }
        log::info!("signal {got:?}: no longer accepting; flushing queued output");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_at = Some(now + Duration::from_secs_f64(self.cfg.shutdown_grace.max(0.0)));
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_fd_exhaustion(&e) => {
                    // No descriptor left: give up the spare one to take the connection and
                    // tell it the server is full, rather than leave it hanging. Linux says
                    // EMFILE before it looks for a pending connection, so only this second
                    // accept tells whether one is waiting: when none is, stop (looping on
                    // EMFILE would never end).
                    self.spare_fd = None;
                    let next = listener.accept();
                    let waiting = match next {
                        Ok((stream, peer)) => {
                            log::error!(
                                "accept: {e}; refusing {peer}: server full (raise `ulimit -n`?)"
                            );
                            refuse(stream);
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

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        if self.conns.len() >= self.cfg.max_clients.min(INDEX_MASK) || self.shutdown_at.is_some() {
            log::warn!(
                "refusing {peer}: server full ({} connections)",
                self.conns.len()
            );
            refuse(stream);
            return;
        }
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let id = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(id), Interest::READABLE)
        {
            log::error!("cannot register {peer}: {e}");
            return;
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        let mut conn = Conn::new(stream, conn_id(id, serial), self.cfg.flood_burst, now);
        // Data may have arrived before registration: read on this turn.
        conn.pending_read = true;
        self.hub.connect(conn.id);
        entry.insert(conn);
        self.readable.push(id);
        let deadline = now + Duration::from_secs_f64(self.cfg.name_timeout.max(0.0));
        self.name_deadlines.push_back((deadline, id, serial));
        log::info!("conn {id}: accepted from {peer}");
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

    /// Reads every connection with pending input, up to its budget, and feeds the hub.
    fn read_all(&mut self, now: Instant) {
        let ids = std::mem::take(&mut self.readable);
        let mut again = Vec::new();
        for id in ids {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            conn.pending_read = false;
            if conn.closing || conn.throttled {
                continue;
            }
            if self.hub.is_waiting(conn.id) {
                // Read again once storage has answered (see storage_replies).
                self.parked.push(id);
                continue;
            }
            let allowed = conn.allowance(self.cfg.flood_rate, self.cfg.flood_burst, now);
            if allowed == 0 {
                conn.throttled = true;
                let wait = Duration::from_secs_f64(1.0 / self.cfg.flood_rate.max(1e-3));
                self.throttled.push((now + wait, id));
                continue;
            }
            let budget = self
                .cfg
                .read_budget
                .min(allowed.saturating_mul(FRAME_LEN))
                .max(1);
            self.frames.clear();
            let outcome =
                conn.read_frames(&mut self.read_buf, budget, &mut self.frames, &mut self.pool);
            let hub_id = conn.id;
            let mut outbox = outbox!(self);
            for f in &self.frames {
                self.hub.frame(hub_id, f, &mut outbox);
            }
            match outcome {
                ReadOutcome::Drained => {}
                ReadOutcome::BudgetSpent => again.push(id),
                ReadOutcome::Closed => self.close(id),
            }
        }
        for id in again {
            if let Some(c) = self.conns.get_mut(id) {
                if !c.pending_read && !c.closing {
                    c.pending_read = true;
                    self.readable.push(id);
                }
            }
        }
    }

    /// Closes connections that sent no valid name in time.
    fn expire_names(&mut self, now: Instant) {
        while let Some(&(deadline, id, serial)) = self.name_deadlines.front() {
            if deadline > now {
                break;
            }
            self.name_deadlines.pop_front();
            let hub_id = conn_id(id, serial);
            let same = self.conns.get(id).is_some_and(|c| c.id == hub_id);
            if same && self.hub.name_of(hub_id).is_none() {
                log::info!("conn {id}: no valid name in time; closing");
                self.close(id);
            }
        }
    }

    /// Reports connections that must go to the hub (which may make more go).
    fn settle(&mut self) {
        while let Some(id) = self.closing.pop() {
            self.close(id);
        }
    }

    /// Tells the hub a connection is gone and schedules its removal after a last flush.
    fn close(&mut self, id: usize) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.closing = true;
        if !conn.in_hub {
            return;
        }
        conn.in_hub = false;
        let hub_id = conn.id;
        self.dead.push(id);
        let mut outbox = outbox!(self);
        self.hub.disconnect(hub_id, &mut outbox);
        // Disconnecting may overflow other queues: settle them too.
        while let Some(other) = self.closing.pop() {
            self.close(other);
        }
    }

    /// Writes every connection with pending output, once, with everything it has.
    fn write_all(&mut self) {
        let ids = std::mem::take(&mut self.dirty);
        let mut flushed = Vec::new();
        for &id in &ids {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            conn.dirty = false;
            let result = conn
                .flush(&self.log, &mut self.pool)
                .and_then(|()| conn.update_interest(self.poll.registry(), Token(id)));
            match result {
                Ok(()) if conn.report_flush && conn.queued() == 0 => {
                    conn.report_flush = false;
                    flushed.push(conn.id);
                }
                Ok(()) => {}
                Err(e) => {
                    log::debug!("conn {id}: write failed: {e}");
                    self.close(id);
                }
            }
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
        for id in std::mem::take(&mut self.dead) {
            if let Some(mut conn) = self.conns.try_remove(id) {
                // A last try for what was queued (a reply to the final frames, say).
                let _ = conn.flush(&self.log, &mut self.pool);
                conn.release(&mut self.pool);
                let _ = self.poll.registry().deregister(&mut conn.stream);
                log::info!("conn {id}: closed");
            }
        }
        self.throttled.retain(|&(_, id)| self.conns.contains(id));
        self.parked.retain(|&id| self.conns.contains(id));
    }
}

/// Loads the sonnets once; a missing or wrong file is logged once and the server runs without.
fn load_sonnets(path: &std::path::Path) -> Option<Sonnets> {
    match Sonnets::load(path) {
        Ok(s) => {
            log::info!("loaded 154 sonnets from {}", path.display());
            Some(s)
        }
        Err(e) => {
            log::warn!(
                "no sonnets from {}: {e}; /sonnet will say none are available \
                 (scripts/fetch_sonnets.sh fetches them)",
                path.display()
            );
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
fn refuse(mut stream: TcpStream) {
    if let Ok(f) = frame::pad(text::SERVER_FULL) {
        let _ = stream.write(&f);
    }
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
