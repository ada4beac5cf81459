//! The hashers: argon2 password hashing and checking, off the loop and off the writer.
//!
//! A hash takes tens of milliseconds and ~19 MiB by design. The hashers take jobs from a
//! bounded queue that the event loop fills without ever waiting ([`HashPool::try_submit`]):
//! when it is full, the command gets the busy text and nothing else is held up. Like every
//! storage thread they run below the loop's priority, so that a flood of `/register` takes
//! spare cores, not the event loop's.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use super::queue::{Job, Shared};
use super::{HashJob, Reply, RequestKind, StorageError};

/// Jobs that may wait in the queue per hasher thread.
const QUEUE_PER_THREAD: usize = 16;

/// How many hasher threads run: every core but one (the event loop's), at least one.
pub(super) fn thread_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .clamp(1, 8)
}

/// Hashes a password with a fresh random salt: a PHC string (`$argon2id$v=19$...`).
pub(super) fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

/// Whether the password matches a stored PHC string; a corrupt hash is logged and fails.
pub(super) fn verify_password(key: &str, password: &str, hash: &str) -> bool {
    match Argon2::default().verify_password(password.as_bytes(), hash) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::PasswordInvalid) => false,
        Err(e) => {
            log::error!("storage: the stored password hash of {key:?} is unusable: {e}");
            false
        }
    }
}

/// The loop's end of the hashers' queue.
pub(super) struct HashPool {
    jobs: SyncSender<HashJob>,
}

impl HashPool {
    /// Starts `threads` hashers.
    pub(super) fn start(
        threads: usize,
        shared: &Arc<Shared>,
        spawn: &mut impl FnMut(String, Box<dyn FnOnce() + Send>) -> Result<(), StorageError>,
    ) -> Result<HashPool, StorageError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_PER_THREAD * threads.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (shared, rx) = (shared.clone(), rx.clone());
            spawn(
                format!("storage-hash-{i}"),
                Box::new(move || run(&shared, &rx)),
            )?;
        }
        Ok(HashPool { jobs: tx })
    }

    /// Queues a job; false when the queue is full (or the hashers are gone).
    pub(super) fn try_submit(&self, job: HashJob) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                log::error!("storage: the hashers have stopped");
                false
            }
        }
    }
}

/// A hasher thread: runs jobs until every sender is gone. Once storage is closing, queued
/// jobs are dropped (their connections are being closed; nothing was confirmed to them).
fn run(shared: &Shared, jobs: &Mutex<Receiver<HashJob>>) {
    loop {
        // Hold the lock only to take one job, so several hashers can work at once.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        if shared.is_closing() {
            continue;
        }
        match job {
            HashJob::Hash {
                conn,
                name,
                key,
                password,
                history_from,
            } => {
                shared.hashing_started();
                match hash_password(&password) {
                    // The writer replies once the hash is committed.
                    Ok(hash) => shared.push(Job::StoreHash {
                        conn,
                        name,
                        key,
                        hash,
                        history_from,
                    }),
                    Err(e) => {
                        log::error!("storage: cannot hash the password of {name:?}: {e}");
                        shared.reply([Reply::Failed {
                            conn: Some(conn),
                            request: RequestKind::Register,
                            key: None,
                        }]);
                    }
                }
                shared.hashing_done();
            }
            HashJob::Verify {
                conn,
                key,
                password,
                hash,
            } => {
                let ok = verify_password(&key, &password, &hash);
                shared.reply([Reply::Identified { conn, key, ok }]);
            }
        }
    }
}
