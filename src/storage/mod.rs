//! Persistent storage: history, offline messages and registered names, in SQLite.
//!
//! The event loop must never wait on disk or on password hashing, so storage runs on its own
//! threads and talks to the loop through a queue:
//!
//! - the loop owns a [`StorageHandle`]; [`StorageHandle::submit`] queues a [`Request`] and never
//!   blocks, [`StorageHandle::replies`] drains the finished [`Reply`]s, and every batch of replies
//!   wakes the loop through the `mio::Waker` it handed to [`Storage::open`];
//! - the **writer** thread (`writer.rs`) takes every queued request at once, applies them in one
//!   transaction, commits, and only then sends the replies that depend on the commit;
//! - the **hasher** thread (`hasher.rs`) computes and verifies argon2 password hashes, so neither
//!   the loop nor the commits wait for them;
//! - the **reader** thread (`search.rs`) runs `/search` queries on its own connection, so a
//!   search through a long history never delays a commit.
//!
//! Sequence numbers, assigned by the hub, order everything: a channel message is visible to a
//! user when its seq lies strictly inside one of the user's membership intervals of that channel.
//! The tables are described in `schema.rs`.

mod hasher;
mod queue;
mod schema;
mod search;
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

use rusqlite::Connection;

pub use crate::hub::ConnId;
use queue::Shared;

pub use search::MAX_SEARCH_RESULTS;

/// The database file inside the storage directory.
pub const DB_FILE: &str = "chat.db";

/// How long [`StorageHandle::shutdown`] waits for the storage threads before giving up on them.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Something that happened in the chat, stored without a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A chat message sent in a channel.
    Chat {
        seq: u64,
        time: i64,
        channel: String,
        sender: String,
        text: String,
    },
    /// A private message (`/msg`), delivered or not.
    Private {
        seq: u64,
        time: i64,
        sender: String,
        recipient: String,
        text: String,
    },
    /// A user joined (or created) a channel.
    Join {
        seq: u64,
        user: String,
        channel: String,
    },
    /// A user left a channel (by `/leave`, `/join` elsewhere or disconnecting).
    Leave {
        seq: u64,
        user: String,
        channel: String,
    },
    /// A name logged in for the first time.
    User { name: String, time: i64 },
}

impl Event {
    /// The event's sequence number, if it has one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Event::Chat { seq, .. }
            | Event::Private { seq, .. }
            | Event::Join { seq, .. }
            | Event::Leave { seq, .. } => Some(*seq),
            Event::User { .. } => None,
        }
    }
}

/// What the event loop asks of storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A plain write; no reply.
    Event(Event),
    /// Stores a private message for an offline user; replies [`Reply::OfflineStored`] after commit.
    StoreOffline {
        conn: ConnId,
        sender: String,
        recipient: String,
        time: i64,
        text: String,
    },
    /// Fetches a user's stored messages, oldest first; replies [`Reply::Offline`].
    FetchOffline { conn: ConnId, name: String },
    /// Removes offline messages once they were written to the recipient's socket; no reply.
    DeleteOffline { ids: Vec<i64> },
    /// Registers a name with a password; replies [`Reply::Registered`] after commit.
    Register {
        conn: ConnId,
        name: String,
        password: String,
        /// The registered name's history starts after this seq (its registering connection's
        /// start), so that it never inherits what earlier holders of the name said or saw.
        history_from: u64,
    },
    /// Checks a password; replies [`Reply::Identified`].
    Identify {
        conn: ConnId,
        name: String,
        password: String,
    },
    /// Searches the messages `user` may see; replies [`Reply::Search`].
    Search {
        conn: ConnId,
        user: String,
        /// Only messages with a greater seq (for an unregistered name: since its connection began).
        since_seq: Option<u64>,
        term: String,
    },
}

impl Request {
    /// The connection waiting for a reply, if any.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Request::Event(_) | Request::DeleteOffline { .. } => None,
            Request::StoreOffline { conn, .. }
            | Request::FetchOffline { conn, .. }
            | Request::Register { conn, .. }
            | Request::Identify { conn, .. }
            | Request::Search { conn, .. } => Some(*conn),
        }
    }

    /// What kind of request this is, for logs and [`Reply::Failed`].
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Event(_) => RequestKind::Event,
            Request::StoreOffline { .. } => RequestKind::StoreOffline,
            Request::FetchOffline { .. } => RequestKind::FetchOffline,
            Request::DeleteOffline { .. } => RequestKind::DeleteOffline,
            Request::Register { .. } => RequestKind::Register,
            Request::Identify { .. } => RequestKind::Identify,
            Request::Search { .. } => RequestKind::Search,
        }
    }
}

/// The kinds of [`Request`].
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

/// What storage sends back to the event loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The offline message is committed.
    OfflineStored { conn: ConnId, recipient: String },
    /// A user's offline messages, oldest first (possibly none).
    Offline {
        conn: ConnId,
        name: String,
        messages: Vec<OfflineMessage>,
    },
    /// The registration's outcome, committed.
    Registered {
        conn: ConnId,
        name: String,
        result: Registration,
    },
    /// Whether the password was right (`false` too for a name that is not registered).
    Identified {
        conn: ConnId,
        name: String,
        ok: bool,
    },
    /// Search results: `total` matches, of which `results` holds the newest
    /// [`MAX_SEARCH_RESULTS`], oldest first.
    Search {
        conn: ConnId,
        term: String,
        total: usize,
        results: Vec<SearchHit>,
    },
    /// Storage could not carry out the request (the cause is in the log).
    Failed { conn: ConnId, request: RequestKind },
}

impl Reply {
    /// The connection the reply is for.
    pub fn conn(&self) -> ConnId {
        match self {
            Reply::OfflineStored { conn, .. }
            | Reply::Offline { conn, .. }
            | Reply::Registered { conn, .. }
            | Reply::Identified { conn, .. }
            | Reply::Search { conn, .. }
            | Reply::Failed { conn, .. } => *conn,
        }
    }
}

/// What the hub needs before the event loop starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Startup {
    /// The last sequence number used; the hub continues after it.
    pub last_seq: u64,
    /// Every name that ever logged in.
    pub known_names: HashSet<String>,
    /// The names registered with a password, each with the seq its history starts after.
    pub registered: HashMap<String, u64>,
    /// The names that have offline messages waiting.
    pub offline_recipients: HashSet<String>,
}

/// What can go wrong when opening or closing storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create the storage directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database has schema version {found}; this program knows versions up to {supported}"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("cannot start a storage thread: {0}")]
    Spawn(std::io::Error),
    #[error("the storage threads did not stop within {0:?}; the last batch may not be committed")]
    ShutdownTimeout(Duration),
    #[error("a storage thread panicked")]
    ThreadPanicked,
}

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
        let path = dir.join(DB_FILE);
        let write = schema::open_writer(&path)?;
        let read = schema::open_reader(&path)?;
        start(write, read, waker)
    }

    /// Storage in memory, gone when the handle shuts down: the same threads and SQL as
    /// [`Storage::open`].
    ///
    /// A plain `:memory:` database belongs to one connection, and the reader needs its own, so
    /// this is a uniquely named in-memory database (SQLite's `memdb` VFS) that both share.
    pub fn ephemeral(waker: Arc<mio::Waker>) -> Result<(StorageHandle, Startup), StorageError> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let uri = format!("file:/chat-ephemeral-{}-{n}?vfs=memdb", std::process::id());
        let write = schema::open_writer(Path::new(&uri))?;
        let read = schema::open_reader(Path::new(&uri))?;
        start(write, read, waker)
    }
}

/// Prepares the database and starts the threads.
fn start(
    mut write: Connection,
    read: Connection,
    waker: Arc<mio::Waker>,
) -> Result<(StorageHandle, Startup), StorageError> {
    let startup = schema::startup(&mut write)?;
    let (reply_tx, reply_rx) = mpsc::channel();
    let shared = Arc::new(Shared::new(waker, reply_tx));
    let (done_tx, done_rx) = mpsc::channel();
    let mut threads = Vec::new();

    let (hash_tx, hash_rx) = mpsc::channel();
    let hash_rx = Arc::new(std::sync::Mutex::new(hash_rx));
    for i in 0..hasher::HASHER_THREADS {
        let (shared, hash_rx, done) = (shared.clone(), hash_rx.clone(), done_tx.clone());
        threads.push(spawn(&format!("storage-hash-{i}"), move || {
            let _done = DoneGuard(done);
            hasher::run(&shared, &hash_rx);
        })?);
    }

    let (read_tx, read_rx) = mpsc::channel();
    {
        let (shared, done) = (shared.clone(), done_tx.clone());
        threads.push(spawn("storage-read", move || {
            let _done = DoneGuard(done);
            search::run(read, &shared, &read_rx);
        })?);
    }

    {
        let (shared, done) = (shared.clone(), done_tx);
        let writer = writer::Writer::new(write, shared, startup.last_seq, hash_tx, read_tx);
        threads.push(spawn("storage-write", move || {
            let _done = DoneGuard(done);
            writer.run();
        })?);
    }

    let handle = StorageHandle {
        shared,
        replies: reply_rx,
        threads,
        done: done_rx,
    };
    Ok((handle, startup))
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StorageError> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
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

    /// How many submitted requests are not finished yet; the loop stops reading clients while
    /// this is high.
    pub fn backlog(&self) -> usize {
        self.shared.pending()
    }

    /// The replies that have arrived so far; never blocks.
    pub fn replies(&self) -> impl Iterator<Item = Reply> + '_ {
        self.replies.try_iter()
    }

    /// Commits everything queued and stops the threads, waiting at most [`SHUTDOWN_TIMEOUT`].
    ///
    /// Searches and password checks still queued are dropped (nobody is left to read their
    /// replies); every write, including registrations being hashed, is committed. Past the
    /// timeout the threads are left running detached and an error is returned.
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
