//! The writer thread: takes every queued job, applies them in one transaction, commits, then
//! sends the replies (so a confirmation never goes out before its commit).
//!
//! Failures: a request whose statement fails (the transaction survives it, as SQLite undoes
//! just that statement) is logged and answered with [`Reply::Failed`]; the rest of the batch
//! commits. When the transaction itself fails (at BEGIN or COMMIT, or a statement error that
//! rolls it back, such as a full disk), the whole batch is retried with growing pauses; after
//! [`MAX_ATTEMPTS`] it is given up: every request is logged as lost and answered with
//! [`Reply::Failed`], and the server goes on without blocking forever on a broken disk.

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::hasher::HashJob;
use super::queue::{Job, Shared, COMMIT_GAP};
use super::search::SearchJob;
use super::{Event, OfflineMessage, Registration, Reply, Request, RequestKind};

/// How many times a batch whose transaction fails is tried.
const MAX_ATTEMPTS: u32 = 5;
/// The pause after the first failed attempt; it doubles after each (50 + 100 + 200 + 400 ms).
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What a job leads to once its transaction is committed.
enum Outcome {
    /// Finished, with no reply.
    Done,
    /// Finished; send this reply.
    Reply(Reply),
    /// Hand over to the hasher; the request is finished there (or, for a registration, when
    /// its hash is stored).
    Hasher(HashJob),
    /// Hand over to the reader.
    Search(SearchJob),
}

pub(super) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The highest seq of any event committed (or given up) so far.
    last_seq: u64,
    hasher: Sender<HashJob>,
    reader: Sender<SearchJob>,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        shared: Arc<Shared>,
        last_seq: u64,
        hasher: Sender<HashJob>,
        reader: Sender<SearchJob>,
    ) -> Self {
        Writer {
            conn,
            shared,
            last_seq,
            hasher,
            reader,
        }
    }

    /// Runs until storage is closing and nothing is left to write. Dropping `self` at the end
    /// closes the hasher's and the reader's channels, which stops them.
    pub(super) fn run(mut self) {
        // When jobs nobody waits for may next be committed: the first one at once.
        let mut due = Instant::now();
        loop {
            let batch = self.shared.take_all(due);
            if batch.is_empty() {
                break;
            }
            self.process(&batch);
            due = Instant::now() + COMMIT_GAP;
        }
        log::debug!("storage: writer stopped at seq {}", self.last_seq);
    }

    /// Applies a batch, retrying a failed transaction, and dispatches the outcomes.
    fn process(&mut self, batch: &VecDeque<Job>) {
        let mut pause = FIRST_RETRY_PAUSE;
        for attempt in 1..=MAX_ATTEMPTS {
            match self.apply(batch) {
                Ok((outcomes, last_seq)) => {
                    self.last_seq = last_seq;
                    self.dispatch(outcomes);
                    return;
                }
                Err(e) if attempt < MAX_ATTEMPTS => {
                    log::error!(
                        "storage: a batch of {} requests failed (attempt {attempt} of \
                         {MAX_ATTEMPTS}), retrying in {pause:?}: {e}",
                        batch.len()
                    );
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err(e) => {
                    log::error!(
                        "storage: giving up on a batch of {} requests after {MAX_ATTEMPTS} \
                         attempts; they are lost: {e}",
                        batch.len()
                    );
                    for job in batch {
                        log::error!("storage: lost {}", describe(job));
                        if let Some(seq) = job_seq(job) {
                            self.last_seq = self.last_seq.max(seq);
                        }
                    }
                    self.dispatch(batch.iter().map(failed).collect());
                    return;
                }
            }
        }
    }

    /// One transaction over the whole batch: the outcomes and the new last seq, once committed.
    fn apply(&mut self, batch: &VecDeque<Job>) -> rusqlite::Result<(Vec<Outcome>, u64)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut last_seq = self.last_seq;
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            if let Some(seq) = job_seq(job) {
                last_seq = last_seq.max(seq);
            }
            match apply_job(&tx, job, last_seq) {
                Ok(outcome) => outcomes.push(outcome),
                // The statement failed and SQLite rolled back the whole transaction.
                Err(e) if tx.is_autocommit() => return Err(e),
                Err(e) => {
                    log::error!("storage: {} failed: {e}", describe(job));
                    outcomes.push(failed(job));
                }
            }
        }
        if last_seq != self.last_seq {
            tx.execute(
                "UPDATE state SET last_seq = ?1 WHERE id = 0",
                [sql_seq(last_seq)?],
            )?;
        }
        tx.commit()?;
        Ok((outcomes, last_seq))
    }

    /// Sends the replies and hands work to the hasher and the reader, in batch order.
    fn dispatch(&mut self, outcomes: Vec<Outcome>) {
        let mut replies = Vec::new();
        let mut finished = 0;
        for outcome in outcomes {
            match outcome {
                Outcome::Done => finished += 1,
                Outcome::Reply(reply) => {
                    replies.push(reply);
                    finished += 1;
                }
                Outcome::Hasher(job) => {
                    self.shared.hashing_started();
                    if let Err(lost) = self.hasher.send(job) {
                        log::error!("storage: the hasher has stopped");
                        self.shared.hashing_done();
                        let (HashJob::Hash { conn, .. } | HashJob::Verify { conn, .. }) = lost.0;
                        let request = match lost.0 {
                            HashJob::Hash { .. } => RequestKind::Register,
                            HashJob::Verify { .. } => RequestKind::Identify,
                        };
                        replies.push(Reply::Failed { conn, request });
                        finished += 1;
                    }
                }
                Outcome::Search(job) => {
                    if let Err(lost) = self.reader.send(job) {
                        log::error!("storage: the search thread has stopped");
                        replies.push(Reply::Failed {
                            conn: lost.0.conn,
                            request: RequestKind::Search,
                        });
                        finished += 1;
                    }
                }
            }
        }
        // Finished first: once a reply is visible, its request no longer counts as backlog.
        self.shared.finished(finished);
        self.shared.reply(replies);
    }
}

/// The seq of a job that carries one.
fn job_seq(job: &Job) -> Option<u64> {
    match job {
        Job::Request(Request::Event(event)) => event.seq(),
        _ => None,
    }
}

/// A job, for the log (no message text, no password).
fn describe(job: &Job) -> String {
    match job {
        Job::Request(Request::Event(event)) => match event {
            Event::Chat { seq, .. } => format!("channel message {seq}"),
            Event::Private { seq, .. } => format!("private message {seq}"),
            Event::Join { seq, user, .. } => format!("join {seq} of {user:?}"),
            Event::Leave { seq, user, .. } => format!("leave {seq} of {user:?}"),
            Event::User { name, .. } => format!("new user {name:?}"),
        },
        Job::Request(request) => format!("{:?} request", request.kind()),
        Job::StoreHash { name, .. } => format!("registration of {name:?}"),
    }
}

/// The outcome of a job that could not be done: a failure reply when someone waits for one.
fn failed(job: &Job) -> Outcome {
    match job {
        Job::Request(request) => match request.conn() {
            Some(conn) => Outcome::Reply(Reply::Failed {
                conn,
                request: request.kind(),
            }),
            None => Outcome::Done,
        },
        Job::StoreHash { conn, .. } => Outcome::Reply(Reply::Failed {
            conn: *conn,
            request: RequestKind::Register,
        }),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Applies one job inside the batch's transaction. `last_seq` is the newest event before it.
fn apply_job(tx: &Transaction<'_>, job: &Job, last_seq: u64) -> rusqlite::Result<Outcome> {
    let request = match job {
        Job::Request(request) => request,
        Job::StoreHash {
            conn,
            name,
            hash,
            history_from,
        } => {
            // Two registrations of one name may both have been hashed; the first one wins.
            let from = i64::try_from(*history_from).unwrap_or(i64::MAX);
            let changed = tx
                .prepare_cached(
                    "INSERT INTO users (name, password_hash, created, history_from)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
                         history_from = excluded.history_from
                     WHERE users.password_hash IS NULL",
                )?
                .execute(params![name, hash, now(), from])?;
            let result = if changed > 0 {
                Registration::Registered
            } else {
                Registration::AlreadyRegistered
            };
            return Ok(Outcome::Reply(Reply::Registered {
                conn: *conn,
                name: name.clone(),
                result,
            }));
        }
    };
    Ok(match request {
        Request::Event(event) => {
            write_event(tx, event)?;
            Outcome::Done
        }
        Request::StoreOffline {
            conn,
            sender,
            recipient,
            time,
            text,
        } => {
            tx.prepare_cached(
                "INSERT INTO offline (time, sender, recipient, text) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![time, sender, recipient, text])?;
            Outcome::Reply(Reply::OfflineStored {
                conn: *conn,
                recipient: recipient.clone(),
            })
        }
        Request::FetchOffline { conn, name } => {
            let mut stmt = tx.prepare_cached(
                "SELECT id, time, sender, text FROM offline WHERE recipient = ?1 ORDER BY id",
            )?;
            let messages = stmt
                .query_map([name], |row| {
                    Ok(OfflineMessage {
                        id: row.get(0)?,
                        time: row.get(1)?,
                        sender: row.get(2)?,
                        text: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Outcome::Reply(Reply::Offline {
                conn: *conn,
                name: name.clone(),
                messages,
            })
        }
        Request::DeleteOffline { ids } => {
            let mut stmt = tx.prepare_cached("DELETE FROM offline WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
            Outcome::Done
        }
        Request::Register {
            conn,
            name,
            password,
            history_from,
        } => {
            // Checked here so that a taken name costs no hash; checked again when storing.
            if stored_hash(tx, name)?.is_some() {
                Outcome::Reply(Reply::Registered {
                    conn: *conn,
                    name: name.clone(),
                    result: Registration::AlreadyRegistered,
                })
            } else {
                Outcome::Hasher(HashJob::Hash {
                    conn: *conn,
                    name: name.clone(),
                    password: password.clone(),
                    history_from: *history_from,
                })
            }
        }
        Request::Identify {
            conn,
            name,
            password,
        } => match stored_hash(tx, name)? {
            Some(hash) => Outcome::Hasher(HashJob::Verify {
                conn: *conn,
                name: name.clone(),
                password: password.clone(),
                hash,
            }),
            None => Outcome::Reply(Reply::Identified {
                conn: *conn,
                name: name.clone(),
                ok: false,
            }),
        },
        Request::Search {
            conn,
            user,
            since_seq,
            term,
        } => Outcome::Search(SearchJob {
            conn: *conn,
            user: user.clone(),
            since_seq: since_seq.unwrap_or(0),
            upto_seq: last_seq,
            term: term.clone(),
        }),
    })
}

/// The password hash of a registered name.
fn stored_hash(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT password_hash FROM users WHERE name = ?1")?
        .query_row([name], |row| row.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Adds a message to the search index (see `schema.rs` for why this is not a trigger). Should
/// that fail, the message is taken out of the history again, so the two never disagree, and
/// the error fails the request.
fn index_text(tx: &Transaction<'_>, seq: Option<i64>, text: &str) -> rusqlite::Result<()> {
    let indexed = tx
        .prepare_cached("INSERT INTO messages_fts (rowid, text) VALUES (?1, ?2)")
        .and_then(|mut stmt| stmt.execute(params![seq, text]));
    if let Err(e) = indexed {
        tx.prepare_cached("DELETE FROM messages WHERE seq = ?1")?
            .execute([seq])?;
        return Err(e);
    }
    Ok(())
}

/// A seq as SQLite stores it (a signed 64-bit integer).
fn sql_seq(seq: u64) -> rusqlite::Result<i64> {
    i64::try_from(seq).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn write_event(tx: &Transaction<'_>, event: &Event) -> rusqlite::Result<()> {
    let seq = event.seq().map(sql_seq).transpose()?;
    match event {
        Event::Chat {
            time,
            channel,
            sender,
            text,
            ..
        } => {
            tx.prepare_cached(
                "INSERT INTO messages (seq, time, channel, sender, recipient, text)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
            )?
            .execute(params![seq, time, channel, sender, text])?;
            index_text(tx, seq, text)?;
        }
        Event::Private {
            time,
            sender,
            recipient,
            text,
            ..
        } => {
            tx.prepare_cached(
                "INSERT INTO messages (seq, time, channel, sender, recipient, text)
                 VALUES (?1, ?2, NULL, ?3, ?4, ?5)",
            )?
            .execute(params![seq, time, sender, recipient, text])?;
            index_text(tx, seq, text)?;
        }
        Event::Join { user, channel, .. } => {
            tx.prepare_cached(
                "INSERT INTO memberships (user, channel, join_seq, leave_seq)
                 VALUES (?1, ?2, ?3, NULL)",
            )?
            .execute(params![user, channel, seq])?;
        }
        Event::Leave { user, channel, .. } => {
            tx.prepare_cached(
                "UPDATE memberships SET leave_seq = ?3
                 WHERE user = ?1 AND channel = ?2 AND leave_seq IS NULL",
            )?
            .execute(params![user, channel, seq])?;
        }
        Event::User { name, time } => {
            tx.prepare_cached(
                "INSERT INTO users (name, password_hash, created) VALUES (?1, NULL, ?2)
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, time])?;
        }
    }
    Ok(())
}
