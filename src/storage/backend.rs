//! What the storage threads need from a database, whichever it is: the writer's batches and the
//! readers' searches. SQLite (`sqlite/`) and PostgreSQL (`postgres/`) implement it; the
//! threads, the queue and everything the event loop sees are the same for both.
//!
//! Opening (and migrating) is each engine's own constructor, since what it takes differs (a
//! directory, a URL); what it returns is a [`Backend`] plus one [`Reader`] per search thread.

use std::collections::HashMap;
use std::fmt::Display;

use super::queue::Job;
use super::search::SearchJob;
use super::{ConnId, Event, Registration, Reply, SearchHit, Startup, StorageError};

/// What became of one job of a committed batch.
#[derive(Debug)]
pub(super) enum Applied {
    /// Stored; nobody waits for a reply.
    Done,
    /// Stored; send this reply.
    Reply(Reply),
    /// Just this job's statements failed (the engine logged why); the rest of the batch is
    /// committed. The writer answers it as a failure.
    Failed,
}

impl Applied {
    /// The reply to a stored password hash (`Job::StoreHash`): registered if the statement
    /// changed a row (nobody had registered the name: the first hash wins), else already
    /// registered.
    pub(super) fn hash_stored(
        conn: ConnId,
        name: &str,
        key: &str,
        hash: &str,
        history_from: u64,
        changed: bool,
    ) -> Applied {
        Applied::Reply(Reply::Registered {
            conn,
            name: name.to_string(),
            key: key.to_string(),
            history_from,
            hash: hash.to_string(),
            result: if changed {
                Registration::Registered
            } else {
                Registration::AlreadyRegistered
            },
        })
    }
}

/// The writer's end of a database.
pub(super) trait Backend: Send + 'static {
    /// Why a batch could not be stored at all.
    type Error: Display;

    /// Reads what the hub needs, and closes the stays a crash (or a shutdown) left open (see
    /// `sqlite/schema.rs`). Runs once, before the threads start.
    fn startup(&mut self) -> Result<Startup, StorageError>;

    /// One transaction: the kept membership changes of failed batches (`unstored`, in order),
    /// then every job of `jobs`, then `last_seq` as the last seq used and as the seq up to
    /// which every membership change is stored; then commits.
    ///
    /// `Ok` holds one [`Applied`] per job, in order: a job whose own statements fail is
    /// [`Applied::Failed`] and the others are still committed, as SQLite does when a
    /// statement fails inside a transaction. `Err` means that nothing of the batch is stored
    /// (the transaction failed: a full disk, a lost connection, or one of `unstored` failed);
    /// the writer then retries or gives up.
    fn apply(
        &mut self,
        unstored: &[Event],
        jobs: &[&Job],
        last_seq: u64,
    ) -> Result<Vec<Applied>, Self::Error>;
}

/// A search thread's end of a database (its own connection).
pub(super) trait Reader: Send + 'static {
    /// Why a search failed.
    type Error: Display;

    /// Runs a search: the total number of visible matches and the newest
    /// [`super::MAX_SEARCH_RESULTS`] of them, oldest first (see `search.rs` for what is
    /// visible).
    fn search(&mut self, job: &SearchJob) -> Result<(usize, Vec<SearchHit>), Self::Error>;
}

/// Name and channel ids, cached by the writer; what a transaction adds is kept only once it
/// commits (ids never change once stored, so the cache never goes stale).
///
/// Keys are `Box<str>`, not `String`: the cache holds every name that wrote since start, and a
/// capacity word per entry (more with the map's spare room) is worth saving.
#[derive(Default)]
pub(super) struct Ids {
    users: HashMap<Box<str>, i64>,
    channels: HashMap<Box<str>, i64>,
    new_users: Vec<(Box<str>, i64)>,
    new_channels: Vec<(Box<str>, i64)>,
}

impl Ids {
    /// The transaction committed: what it added is known for good.
    pub(super) fn commit(&mut self) {
        self.users.extend(self.new_users.drain(..));
        self.channels.extend(self.new_channels.drain(..));
    }

    /// The transaction was rolled back: forget what it added.
    pub(super) fn rollback(&mut self) {
        self.new_users.clear();
        self.new_channels.clear();
    }

    /// Where this transaction's additions stand, for [`Ids::rollback_to`].
    pub(super) fn mark(&self) -> (usize, usize) {
        (self.new_users.len(), self.new_channels.len())
    }

    /// A savepoint was rolled back: forget what was added since `mark`.
    pub(super) fn rollback_to(&mut self, (users, channels): (usize, usize)) {
        self.new_users.truncate(users);
        self.new_channels.truncate(channels);
    }

    /// The id of a user key, if known (committed or added by this transaction).
    pub(super) fn user(&self, key: &str) -> Option<i64> {
        self.users.get(key).copied().or_else(|| {
            self.new_users
                .iter()
                .find(|(k, _)| **k == *key)
                .map(|&(_, id)| id)
        })
    }

    /// The id of a channel key, if known.
    pub(super) fn channel(&self, key: &str) -> Option<i64> {
        self.channels.get(key).copied().or_else(|| {
            self.new_channels
                .iter()
                .find(|(k, _)| **k == *key)
                .map(|&(_, id)| id)
        })
    }

    /// A user id this transaction looked up or created.
    pub(super) fn add_user(&mut self, key: &str, id: i64) {
        self.new_users.push((key.into(), id));
    }

    /// A channel id this transaction looked up or created.
    pub(super) fn add_channel(&mut self, key: &str, id: i64) {
        self.new_channels.push((key.into(), id));
    }
}

/// The current time in seconds, for the `created` columns.
pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
