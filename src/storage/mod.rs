//! Persistent storage: history, offline messages and registered names, in SQLite or in
//! PostgreSQL (chosen at start; nothing outside this module knows which).
//!
//! The event loop must never wait on disk or on password hashing, so storage runs on its own
//! threads and talks to the loop through a queue:
//!
//! - the loop owns a [`StorageHandle`]; [`StorageHandle::submit`] queues a [`Request`] and never
//!   blocks, [`StorageHandle::replies`] drains the finished [`Reply`]s, and every batch of replies
//!   wakes the loop through the `mio::Waker` it handed to [`Storage::open`];
//! - the database is a [`backend::Backend`] (the writer's connection) plus one
//!   [`backend::Reader`] per search thread: `sqlite/` or `postgres/`;
//! - the **writer** thread (`writer.rs`) takes every queued request at once, applies them in one
//!   transaction, commits, and only then sends the replies that depend on the commit;
//! - the **hashers** (`hasher.rs`, every core but one) compute and verify
//!   argon2 password hashes from a bounded queue, so neither the loop nor the commits wait for
//!   them, and a flood of registrations is refused with the busy text rather than queued;
//! - the **readers** (`search.rs`) run `/search` queries on their own connections, so a search
//!   never delays a commit, and one search never holds up another.
//!
//! Every storage thread runs at nice [`crate::os::BACKGROUND_NICE`], below the event loop: on a
//! shared core a commit or a search waits for the loop's turn to end rather than cutting it
//! short (on the benchmark's one core, IRC at saturation went from 8.6 to 9.3 M deliveries/s).
//! A writer that falls behind is not starved: past `STORAGE_HIGH_WATER` queued requests the
//! loop stops reading and sleeps, and the core is the writer's.
//!
//! Sequence numbers, assigned by the hub, order everything: a channel message is visible to a
//! user when its seq lies strictly inside one of the user's membership intervals of that channel.
//! The tables are described in `sqlite/schema.rs`.

mod backend;
mod hasher;
mod postgres;
mod queue;
mod search;
mod sqlite;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use crate::hub::ConnId;
use backend::{Backend, Reader};
use hasher::HashPool;
use queue::Shared;

pub use search::MAX_SEARCH_RESULTS;

/// The database file inside the storage directory.
pub const DB_FILE: &str = "chat.db";

/// How long [`StorageHandle::shutdown`] waits for the storage threads before giving up on them.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Something that happened in the chat, stored without a reply.
///
/// Names are stored as they were typed (for showing) with their key (`names::name_key`, for
/// who may see what); channels by name, looked up by their key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A chat message sent in a channel.
    Chat {
        seq: u64,
        time: i64,
        channel: String,
        sender: String,
        sender_key: String,
        text: String,
    },
    /// A private message (`/msg`), delivered or not.
    Private {
        seq: u64,
        time: i64,
        sender: String,
        sender_key: String,
        recipient: String,
        recipient_key: String,
        text: String,
    },
    /// A user joined (or created) a channel. A rejoin with no message of the channel since
    /// the user's last stay ended continues that stay (so that joins cannot make a search
    /// cost more than what it may see).
    Join {
        seq: u64,
        user_key: String,
        channel: String,
    },
    /// A user left a channel (by `/leave`, `/join` elsewhere or disconnecting).
    Leave {
        seq: u64,
        user_key: String,
        channel: String,
    },
    /// A name logged in for the first time.
    User {
        name: String,
        key: String,
        time: i64,
    },
    /// A channel was created; channels are never deleted and survive restarts.
    Channel { name: String, time: i64 },
}

impl Event {
    /// The event's sequence number, if it has one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Event::Chat { seq, .. }
            | Event::Private { seq, .. }
            | Event::Join { seq, .. }
            | Event::Leave { seq, .. } => Some(*seq),
            Event::User { .. } | Event::Channel { .. } => None,
        }
    }

    /// True for a change of membership, which must never be lost silently: who may see what
    /// depends on it.
    pub fn is_membership(&self) -> bool {
        matches!(self, Event::Join { .. } | Event::Leave { .. })
    }
}

/// What the event loop asks of storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A plain write; no reply.
    Event(Event),
    /// Stores a private message for an offline user; replies [`Reply::OfflineStored`] after
    /// commit to `notify`, when there is someone to tell. With `max`, not when the mailbox
    /// holds that many already (counted in the database, which a cluster's nodes share):
    /// [`Reply::OfflineFull`] then.
    StoreOffline {
        notify: Option<ConnId>,
        sender: String,
        recipient: String,
        recipient_key: String,
        time: i64,
        text: String,
        max: Option<usize>,
    },
    /// Fetches up to `limit` of a user's stored messages after id `after`, oldest first;
    /// replies [`Reply::Offline`].
    FetchOffline {
        conn: ConnId,
        key: String,
        after: i64,
        limit: usize,
    },
    /// Removes offline messages once they were written to the recipient's socket; no reply.
    DeleteOffline { ids: Vec<i64> },
    /// Searches the messages `user_key` may see; replies [`Reply::Search`].
    Search {
        conn: ConnId,
        user_key: String,
        /// Only messages with a greater seq (for an unregistered name: since its connection
        /// began; for a registered one, since it was registered).
        since_seq: u64,
        /// In a cluster: the hub's clock, so that what other nodes stored before the search
        /// counts too (otherwise the writer's last seq at the search's place in the queue).
        upto_seq: Option<u64>,
        term: String,
    },
}

impl Request {
    /// The connection waiting for a reply, if any.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Request::Event(_) | Request::DeleteOffline { .. } => None,
            Request::StoreOffline { notify, .. } => *notify,
            Request::FetchOffline { conn, .. } | Request::Search { conn, .. } => Some(*conn),
        }
    }

    /// What kind of request this is, for logs and [`Reply::Failed`].
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Event(_) => RequestKind::Event,
            Request::StoreOffline { .. } => RequestKind::StoreOffline,
            Request::FetchOffline { .. } => RequestKind::FetchOffline,
            Request::DeleteOffline { .. } => RequestKind::DeleteOffline,
            Request::Search { .. } => RequestKind::Search,
        }
    }

    /// The name key a failure must be counted against (a mailbox), if any.
    fn failure_key(&self) -> Option<String> {
        match self {
            Request::StoreOffline { recipient_key, .. } => Some(recipient_key.clone()),
            _ => None,
        }
    }
}

/// Work for the hashers: password hashing and checking (slow by design), off the event loop
/// and off the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashJob {
    /// Hash a new registration's password, then store it; replies [`Reply::Registered`] once
    /// committed.
    Hash {
        conn: ConnId,
        name: String,
        key: String,
        password: String,
        /// The registered name's history starts after this seq (its registering connection's
        /// start), so that it never inherits what earlier holders of the name said or saw.
        history_from: u64,
    },
    /// Check a password against the stored hash; replies [`Reply::Identified`].
    Verify {
        conn: ConnId,
        key: String,
        password: String,
        hash: String,
    },
}

/// The kinds of requests and jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Event,
    StoreOffline,
    FetchOffline,
    DeleteOffline,
    Register,
    Identify,
    Search,
}

/// A stored offline message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Pass it back in [`Request::DeleteOffline`] once delivered.
    pub id: i64,
    pub time: i64,
    pub sender: String,
    pub text: String,
}

/// One message found by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub seq: u64,
    pub time: i64,
    /// The channel of a channel message; `None` for a private message.
    pub channel: Option<String>,
    pub sender: String,
    /// The recipient of a private message; `None` for a channel message.
    pub recipient: Option<String>,
    pub text: String,
}

/// The outcome of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Registered,
    AlreadyRegistered,
}

/// A registered name, as the hub keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredName {
    /// The name exactly as registered.
    pub name: String,
    /// Its history starts after this seq.
    pub history_from: u64,
    /// The salted argon2 hash, as a PHC string.
    pub hash: String,
}

/// What storage and the hashers send back to the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The offline message is committed.
    OfflineStored { conn: ConnId, recipient: String },
    /// The offline message was not stored: the mailbox holds its `max` already.
    OfflineFull {
        conn: Option<ConnId>,
        recipient: String,
        key: String,
    },
    /// Some of a user's offline messages, oldest first (none: there are no more); `total` is
    /// how many are stored for the user in all.
    Offline {
        conn: ConnId,
        key: String,
        total: usize,
        messages: Vec<OfflineMessage>,
    },
    /// The registration's outcome, committed.
    Registered {
        conn: ConnId,
        name: String,
        key: String,
        history_from: u64,
        hash: String,
        result: Registration,
    },
    /// Whether the password was right.
    Identified { conn: ConnId, key: String, ok: bool },
    /// Search results: `total` matches, of which `results` holds the newest
    /// [`MAX_SEARCH_RESULTS`], oldest first.
    Search {
        conn: ConnId,
        term: String,
        total: usize,
        results: Vec<SearchHit>,
    },
    /// Storage could not carry out the request (the cause is in the log); `key` is the
    /// mailbox of a failed offline store.
    Failed {
        conn: Option<ConnId>,
        request: RequestKind,
        key: Option<String>,
    },
}

/// What the hub needs before the event loop starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Startup {
    /// The last sequence number used; the hub continues after it.
    pub last_seq: u64,
    /// The key of every name that ever logged in.
    pub known: HashSet<String>,
    /// The registered names, by key.
    pub registered: HashMap<String, RegisteredName>,
    /// How many offline messages wait for each name key (only those with some).
    pub offline: HashMap<String, usize>,
    /// The channels, in creation order.
    pub channels: Vec<String>,
}

/// What can go wrong when opening or closing storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create the storage directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", crate::utils_errors::data_dir_in_use(&dir.display().to_string()))]
    Locked { dir: PathBuf },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database has schema version {found}; this program knows versions up to {supported}"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("invalid PostgreSQL URL: {0}")]
    PostgresUrl(String),
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    PostgresConnect {
        target: String,
        source: ::postgres::Error,
    },
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("PostgreSQL is not available: {0}")]
    PostgresUnavailable(String),
    #[error("cannot start a storage thread: {0}")]
    Spawn(std::io::Error),
    #[error("the storage threads did not stop within {0:?}; the last batch may not be committed")]
    ShutdownTimeout(Duration),
    #[error("a storage thread panicked")]
    ThreadPanicked,
}

/// How many search threads run: two, so that one slow search never holds up another.
const READER_THREADS: usize = 2;

/// Opens storage; see [`Storage::open`] and [`Storage::ephemeral`].
pub struct Storage;

impl Storage {
    /// Opens (creating if needed) `dir/chat.db` and starts the storage threads.
    ///
    /// The database runs in WAL mode with `synchronous=NORMAL`: a commit survives a `kill -9`
    /// of the process (not necessarily a power cut). Memberships left open by a crash are
    /// closed here.
    pub fn open(
        dir: &Path,
        waker: Arc<mio::Waker>,
    ) -> Result<(StorageHandle, Startup), StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let path = dir.join(DB_FILE);
        let write = sqlite::Sqlite::open(&path)?;
        let readers = (0..READER_THREADS)
            .map(|_| sqlite::SqliteReader::open(&path))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut handle, startup) = start(write, readers, waker)?;
        handle.lock = Some(lock);
        Ok((handle, startup))
    }

    /// Storage in memory, gone when the handle shuts down: the same threads and SQL as
    /// [`Storage::open`].
    ///
    /// A plain `:memory:` database belongs to one connection, and the readers need their own,
    /// so this is a uniquely named in-memory database (SQLite's `memdb` VFS) that all share.
    pub fn ephemeral(waker: Arc<mio::Waker>) -> Result<(StorageHandle, Startup), StorageError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let uri = format!("file:/chat-ephemeral-{}-{n}?vfs=memdb", std::process::id());
        let write = sqlite::Sqlite::open(Path::new(&uri))?;
        let readers = (0..READER_THREADS)
            .map(|_| sqlite::SqliteReader::open(Path::new(&uri)))
            .collect::<Result<Vec<_>, _>>()?;
        start(write, readers, waker)
    }
}

impl Storage {
    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/db`,
    /// or libpq's `key=value` form), brings its schema up to date and starts the storage
    /// threads: the same threads, queue and replies as [`Storage::open`], on a database that
    /// several servers may share. The writer and each search thread hold a connection of
    /// their own; a lost one is connected again by itself (see `postgres/mod.rs`).
    ///
    /// Errors: [`StorageError::PostgresUrl`] for a URL that does not parse,
    /// [`StorageError::PostgresConnect`] when the server cannot be reached or refuses us,
    /// [`StorageError::SchemaTooNew`] for a database of a newer program.
    ///
    /// `first`: no other node of the cluster is running, so stays left open by a crash are
    /// closed (as SQLite does at start); otherwise they are other nodes' live users' (and a
    /// node that dies has its users' stays closed by the survivors).
    pub fn postgres(
        url: &str,
        waker: Arc<mio::Waker>,
        first: bool,
    ) -> Result<(StorageHandle, Startup), StorageError> {
        let config = postgres::config(url)?;
        log::info!("storage: PostgreSQL at {}", postgres::target(&config));
        let write = postgres::Postgres::connect(&config, first)?;
        let readers = (0..READER_THREADS)
            .map(|i| postgres::PgReader::connect(&config, i))
            .collect::<Result<Vec<_>, _>>()?;
        start(write, readers, waker)
    }
}

/// A new node number for a cluster whose storage is the PostgreSQL at `url` (its schema
/// brought up to date first): numbers never repeat, whatever happens to Redis.
pub fn cluster_node_number(url: &str) -> Result<u64, StorageError> {
    let config = postgres::config(url)?;
    postgres::node_number(&config)
}

/// The lock file inside the storage directory.
pub const LOCK_FILE: &str = "lock";

/// Takes the directory's lock for as long as the returned file is open: a second server on
/// the same directory would lose every message it relays.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StorageError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StorageError::CreateDir {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a descriptor this function owns; no pointers.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            StorageError::Locked {
                dir: dir.to_path_buf(),
            }
        } else {
            StorageError::CreateDir { path, source: e }
        });
    }
    Ok(file)
}

/// Prepares the database and starts the threads.
fn start<B: Backend, R: Reader>(
    mut write: B,
    readers: Vec<R>,
    waker: Arc<mio::Waker>,
) -> Result<(StorageHandle, Startup), StorageError> {
    let startup = write.startup()?;
    let (reply_tx, reply_rx) = mpsc::channel();
    let shared = Arc::new(Shared::new(waker, reply_tx));
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();
    // The writer and the readers are waited for at shutdown; the hashers are not (a password
    // check in progress has nobody left to answer).
    let mut detached = |name: String, f: Box<dyn FnOnce() + Send>| -> Result<(), StorageError> {
        spawn(&name, f).map(drop)
    };
    let hashers = HashPool::start(hasher::thread_count(), &shared, &mut detached)?;

    let (read_tx, read_rx) = mpsc::channel();
    let read_rx = Arc::new(std::sync::Mutex::new(read_rx));
    for (i, read) in readers.into_iter().enumerate() {
        let (shared, read_rx, done) = (shared.clone(), read_rx.clone(), done_tx.clone());
        threads.push(spawn(&format!("storage-read-{i}"), move || {
            let _done = DoneGuard(done);
            search::run(read, &shared, &read_rx);
        })?);
    }

    {
        let (shared, done) = (shared.clone(), done_tx);
        let writer = writer::Writer::new(write, shared, startup.last_seq, read_tx);
        threads.push(spawn("storage-write", move || {
            let _done = DoneGuard(done);
            writer.run();
        })?);
    }

    let handle = StorageHandle {
        shared,
        lock: None,
        hashers,
        replies: reply_rx,
        threads,
        done: done_rx,
    };
    Ok((handle, startup))
}

/// Starts a storage thread, below the event loop's priority ([`crate::os::BACKGROUND_NICE`]).
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StorageError> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(|| {
            if let Err(e) = crate::os::lower_thread_priority(crate::os::BACKGROUND_NICE) {
                log::warn!("storage: cannot lower this thread's priority: {e}");
            }
            f()
        })
        .map_err(StorageError::Spawn)
}

/// Tells [`StorageHandle::shutdown`] that a thread ended, even by a panic.
struct DoneGuard(mpsc::Sender<()>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        // The handle may be gone already; then nobody is waiting.
        let _ = self.0.send(());
    }
}

/// The event loop's end of storage.
pub struct StorageHandle {
    shared: Arc<Shared>,
    /// The data directory's lock, held until the handle is dropped.
    #[allow(dead_code)]
    lock: Option<std::fs::File>,
    hashers: HashPool,
    replies: Receiver<Reply>,
    threads: Vec<JoinHandle<()>>,
    done: Receiver<()>,
}

impl StorageHandle {
    /// Queues a request; never blocks, never drops it.
    pub fn submit(&self, request: Request) {
        self.shared.submit(request);
    }

    /// Queues every request of `requests`, in order, leaving it empty (its capacity is kept);
    /// wakes the writer once. Never blocks, never drops one.
    pub fn submit_all(&self, requests: &mut Vec<Request>) {
        self.shared.submit_all(requests);
    }

    /// Hands a password job to the hashers; false when their bounded queue is full. Never
    /// blocks.
    pub fn try_hash(&self, job: HashJob) -> bool {
        self.hashers.try_submit(job)
    }

    /// How many submitted requests the writer has not finished yet; the loop stops reading
    /// clients while this is high (the disk is behind the chat).
    pub fn backlog(&self) -> usize {
        self.shared.pending()
    }

    /// The replies that have arrived so far; never blocks.
    pub fn replies(&self) -> impl Iterator<Item = Reply> + '_ {
        self.replies.try_iter()
    }

    /// Commits everything queued and stops the threads, waiting at most [`SHUTDOWN_TIMEOUT`].
    ///
    /// Searches and password jobs still queued are dropped (nobody is left to read their
    /// replies; nothing was confirmed for them); every write, and a registration whose hash is
    /// being computed, is committed. Past the timeout the threads are left running detached
    /// and an error is returned.
    pub fn shutdown(mut self) -> Result<(), StorageError> {
        self.shared.close();
        let threads = std::mem::take(&mut self.threads);
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        for _ in 0..threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                log::error!("storage: threads still busy after {SHUTDOWN_TIMEOUT:?}; leaving them");
                return Err(StorageError::ShutdownTimeout(SHUTDOWN_TIMEOUT));
            }
        }
        let mut result = Ok(());
        for thread in threads {
            if thread.join().is_err() {
                result = Err(StorageError::ThreadPanicked);
            }
        }
        result
    }
}

impl Drop for StorageHandle {
    /// Without [`StorageHandle::shutdown`], the threads still commit what is queued and stop,
    /// but nobody waits for them.
    fn drop(&mut self) {
        self.shared.close();
    }
}
