//! The hasher: argon2 password hashing and checking, off the loop and off the writer.
//!
//! A hash takes tens of milliseconds and ~19 MiB by design; on the writer thread it would hold
//! up every commit behind it.

use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use super::queue::{Job, Shared};
use super::{ConnId, Reply, RequestKind};

/// How many hasher threads run. One leaves the other core of a small machine to the event loop
/// and the writer; a flood of `/register` shows as backlog, which the loop bounds.
pub(super) const HASHER_THREADS: usize = 1;

/// Work for the hasher.
#[derive(Debug)]
pub(super) enum HashJob {
    /// Hash a new registration's password, then hand it to the writer.
    Hash {
        conn: ConnId,
        name: String,
        password: String,
        history_from: u64,
    },
    /// Check a password against the stored hash.
    Verify {
        conn: ConnId,
        name: String,
        password: String,
        hash: String,
    },
}

/// Hashes a password with a fresh random salt: a PHC string (`$argon2id$v=19$...`).
pub(super) fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

/// Whether the password matches a stored PHC string; a corrupt hash is logged and fails.
pub(super) fn verify_password(name: &str, password: &str, hash: &str) -> bool {
    match Argon2::default().verify_password(password.as_bytes(), hash) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::PasswordInvalid) => false,
        Err(e) => {
            log::error!("storage: the stored password hash of {name:?} is unusable: {e}");
            false
        }
    }
}

/// A hasher thread: runs jobs until the writer drops its end of the channel.
///
/// Once storage is closing, password checks are skipped (nobody will read the reply), but
/// registrations are still hashed and stored.
pub(super) fn run(shared: &Shared, jobs: &Mutex<Receiver<HashJob>>) {
    loop {
        // Hold the lock only to take one job, so several hashers can work at once.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        match job {
            HashJob::Hash {
                conn,
                name,
                password,
                history_from,
            } => match hash_password(&password) {
                // The request stays pending until the writer has committed the hash.
                Ok(hash) => shared.push(Job::StoreHash {
                    conn,
                    name,
                    hash,
                    history_from,
                }),
                Err(e) => {
                    log::error!("storage: cannot hash the password of {name:?}: {e}");
                    shared.finished(1);
                    shared.reply([Reply::Failed {
                        conn,
                        request: RequestKind::Register,
                    }]);
                }
            },
            HashJob::Verify {
                conn,
                name,
                password,
                hash,
            } => {
                if shared.is_closing() {
                    shared.finished(1);
                } else {
                    let ok = verify_password(&name, &password, &hash);
                    shared.finished(1);
                    shared.reply([Reply::Identified { conn, name, ok }]);
                }
            }
        }
        shared.hashing_done();
    }
}
