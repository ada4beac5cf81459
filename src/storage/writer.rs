//! The writer thread: takes every queued job, applies them in one transaction, commits, then
//! sends the replies (so a confirmation never goes out before its commit).
//!
//! Failures: a request whose statement fails (the transaction survives it, as SQLite undoes
//! just that statement) is logged and answered with [`Reply::Failed`]; the rest of the batch
//! commits. When the transaction itself fails (at BEGIN or COMMIT, or a statement error that
//! rolls it back, such as a full disk), the batch is retried a few times within a fraction of
//! a second, then given up, so that chat goes on while the disk is full: its messages are lost
//! (said once per episode in the log, with a count when it ends), the requests someone waits
//! for are answered with [`Reply::Failed`], and the **membership changes** are kept and
//! applied before every later batch until they are stored: who may see what must never be
//! widened by a lost `/leave` (searches meanwhile know of it, see [`SearchJob`]).

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::queue::{Job, Shared, COMMIT_GAP};
use super::schema::scope;
use super::search::SearchJob;
use super::{Event, OfflineMessage, Registration, Reply, Request, RequestKind};
use crate::names::channel_key;

/// How many times a batch whose transaction fails is tried before it is given up, while the
/// disk is not known to be failing.
const MAX_ATTEMPTS: u32 = 3;
/// The pause after the first failed attempt; it doubles after each (20 + 40 ms).
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Membership changes kept for retrying at most; past it they are dropped and searches find
/// nothing (rather than too much) until the next start.
const MAX_UNSTORED: usize = 100_000;

/// What a job leads to once its transaction is committed.
enum Outcome {
    /// Finished, with no reply.
    Done,
    /// Finished; send this reply.
    Reply(Reply),
    /// Hand over to the readers.
    Search(SearchJob),
}

/// Name and channel ids, cached; what a transaction adds is kept only once it commits.
#[derive(Default)]
struct Ids {
    users: HashMap<String, i64>,
    channels: HashMap<String, i64>,
    new_users: Vec<(String, i64)>,
    new_channels: Vec<(String, i64)>,
}

impl Ids {
    fn commit(&mut self) {
        self.users.extend(self.new_users.drain(..));
        self.channels.extend(self.new_channels.drain(..));
    }

    fn rollback(&mut self) {
        self.new_users.clear();
        self.new_channels.clear();
    }

    /// The id of a user key, creating the user (shown as `name`) if storage never saw it.
    fn user(&mut self, tx: &Transaction<'_>, key: &str, name: &str) -> rusqlite::Result<i64> {
        if let Some(&id) = self.users.get(key) {
            return Ok(id);
        }
        if let Some(&(_, id)) = self.new_users.iter().find(|(k, _)| k == key) {
            return Ok(id);
        }
        tx.prepare_cached(
            "INSERT INTO users (key, name, created) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO NOTHING",
        )?
        .execute(params![key, name, now()])?;
        let id: i64 = tx
            .prepare_cached("SELECT id FROM users WHERE key = ?1")?
            .query_row([key], |r| r.get(0))?;
        self.new_users.push((key.to_string(), id));
        Ok(id)
    }

    /// The id of a channel, creating it if storage never saw it.
    fn channel(&mut self, tx: &Transaction<'_>, name: &str) -> rusqlite::Result<i64> {
        let key = channel_key(name);
        if let Some(&id) = self.channels.get(&*key) {
            return Ok(id);
        }
        if let Some(&(_, id)) = self.new_channels.iter().find(|(k, _)| **k == *key) {
            return Ok(id);
        }
        tx.prepare_cached(
            "INSERT INTO channels (key, name, created) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO NOTHING",
        )?
        .execute(params![&*key, name, now()])?;
        let id: i64 = tx
            .prepare_cached("SELECT id FROM channels WHERE key = ?1")?
            .query_row([&*key], |r| r.get(0))?;
        self.new_channels.push((key.to_string(), id));
        Ok(id)
    }
}

pub(super) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The highest seq of any event committed (or given up) so far.
    last_seq: u64,
    reader: Sender<SearchJob>,
    ids: Ids,
    /// Membership changes of failed batches, applied before every batch until stored.
    unstored: Vec<Event>,
    /// Membership changes were dropped: searches find nothing until the next start.
    blind: bool,
    /// Since when the disk has failed every batch, and how many requests were lost.
    failing: Option<(Instant, usize)>,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        shared: Arc<Shared>,
        last_seq: u64,
        reader: Sender<SearchJob>,
    ) -> Self {
        Writer {
            conn,
            shared,
            last_seq,
            reader,
            ids: Ids::default(),
            unstored: Vec::new(),
            blind: false,
            failing: None,
        }
    }

    /// Runs until storage is closing and nothing is left to write. Dropping `self` at the end
    /// closes the readers' channel, which stops them.
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
        if !self.unstored.is_empty() {
            log::error!(
                "storage: {} membership changes could not be stored; the next start closes \
                 the stays they concern where storage last knew them",
                self.unstored.len()
            );
        }
        log::debug!("storage: writer stopped at seq {}", self.last_seq);
    }

    /// Applies a batch, retrying a failed transaction, and dispatches the outcomes.
    fn process(&mut self, batch: &VecDeque<Job>) {
        let from_loop = batch
            .iter()
            .filter(|j| matches!(j, Job::Request(_)))
            .count();
        let attempts = if self.failing.is_some() {
            1
        } else {
            MAX_ATTEMPTS
        };
        let mut pause = FIRST_RETRY_PAUSE;
        let mut last_error = None;
        for attempt in 1..=attempts {
            match self.apply(batch) {
                Ok((outcomes, last_seq)) => {
                    self.ids.commit();
                    self.last_seq = last_seq;
                    self.unstored.clear();
                    if let Some((since, lost)) = self.failing.take() {
                        log::warn!(
                            "storage: history is being stored again, after {:.1} s in which \
                             {lost} requests were lost",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    self.dispatch(outcomes, from_loop);
                    return;
                }
                Err(e) => {
                    self.ids.rollback();
                    if attempt < attempts {
                        log::warn!(
                            "storage: a batch of {} requests failed (attempt {attempt} of \
                             {attempts}), retrying in {pause:?}: {e}",
                            batch.len()
                        );
                        std::thread::sleep(pause);
                        pause *= 2;
                    }
                    last_error = Some(e);
                }
            }
        }
        self.give_up(batch, from_loop, last_error);
    }

    /// A batch could not be stored: chat goes on without it; membership changes are kept.
    fn give_up(&mut self, batch: &VecDeque<Job>, from_loop: usize, error: Option<rusqlite::Error>) {
        let error = error.map_or_else(|| "unknown error".to_string(), |e| e.to_string());
        match &mut self.failing {
            None => {
                log::error!(
                    "storage: history is not being stored: {error}; chat goes on, and \
                     membership changes are kept until they can be stored"
                );
                self.failing = Some((Instant::now(), batch.len()));
            }
            Some((_, lost)) => *lost += batch.len(),
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            log::debug!("storage: lost {}", describe(job));
            if let Job::Request(Request::Event(event)) = job {
                if let Some(seq) = event.seq() {
                    self.last_seq = self.last_seq.max(seq);
                }
                if event.is_membership() {
                    if self.unstored.len() < MAX_UNSTORED {
                        self.unstored.push(event.clone());
                    } else if !self.blind {
                        log::error!(
                            "storage: more than {MAX_UNSTORED} membership changes could not \
                             be stored; searches find nothing until the server restarts"
                        );
                        self.blind = true;
                    }
                }
            }
            outcomes.push(match job {
                // A search only reads: it runs even while writes fail.
                Job::Request(Request::Search {
                    conn,
                    user_key,
                    since_seq,
                    term,
                }) => Outcome::Search(search_job(
                    &self.unstored,
                    self.blind,
                    self.last_seq,
                    *conn,
                    user_key,
                    *since_seq,
                    term,
                )),
                _ => failed(job),
            });
        }
        self.dispatch(outcomes, from_loop);
    }

    /// One transaction over the kept membership changes and the batch: the outcomes and the
    /// new last seq, once committed.
    fn apply(&mut self, batch: &VecDeque<Job>) -> rusqlite::Result<(Vec<Outcome>, u64)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for event in &self.unstored {
            write_event(&tx, &mut self.ids, event)?;
        }
        let mut last_seq = self.last_seq;
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            if let Job::Request(Request::Event(event)) = job {
                if let Some(seq) = event.seq() {
                    last_seq = last_seq.max(seq);
                }
            }
            let outcome = match job {
                Job::Request(Request::Search {
                    conn,
                    user_key,
                    since_seq,
                    term,
                }) => Ok(Outcome::Search(search_job(
                    &self.unstored,
                    self.blind,
                    last_seq,
                    *conn,
                    user_key,
                    *since_seq,
                    term,
                ))),
                _ => apply_job(&tx, &mut self.ids, job),
            };
            match outcome {
                Ok(outcome) => outcomes.push(outcome),
                // The statement failed and SQLite rolled back the whole transaction.
                Err(e) if tx.is_autocommit() => return Err(e),
                Err(e) => {
                    log::error!("storage: {} failed: {e}", describe(job));
                    outcomes.push(failed(job));
                }
            }
        }
        let seq = sql_seq(last_seq)?;
        // Every membership change up to here is stored (the kept ones were applied first).
        tx.prepare_cached("UPDATE state SET last_seq = ?1, members_ok_seq = ?1 WHERE id = 0")?
            .execute([seq])?;
        tx.commit()?;
        Ok((outcomes, last_seq))
    }

    /// Sends the replies and hands searches to the readers, in batch order.
    fn dispatch(&mut self, outcomes: Vec<Outcome>, from_loop: usize) {
        let mut replies = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Done => {}
                Outcome::Reply(reply) => replies.push(reply),
                Outcome::Search(job) => {
                    if let Err(lost) = self.reader.send(job) {
                        log::error!("storage: the search threads have stopped");
                        replies.push(Reply::Failed {
                            conn: Some(lost.0.conn),
                            request: RequestKind::Search,
                            key: None,
                        });
                    }
                }
            }
        }
        // Finished first: once a reply is visible, its request no longer counts as backlog.
        self.shared.finished(from_loop);
        self.shared.reply(replies);
    }
}

/// A search as the readers run it: what the user may see up to `upto_seq`, knowing the stays
/// whose end could not be stored yet.
fn search_job(
    unstored: &[Event],
    blind: bool,
    upto_seq: u64,
    conn: usize,
    user_key: &str,
    since_seq: u64,
    term: &str,
) -> SearchJob {
    let unstored_leaves = unstored
        .iter()
        .filter_map(|e| match e {
            Event::Leave {
                seq,
                user_key: u,
                channel,
            } if u == user_key => Some((channel_key(channel).to_string(), *seq)),
            _ => None,
        })
        .collect();
    SearchJob {
        conn,
        user_key: user_key.to_string(),
        since_seq,
        upto_seq,
        term: term.to_string(),
        unstored_leaves,
        blind,
    }
}

/// A job, for the log (no message text, no password).
fn describe(job: &Job) -> String {
    match job {
        Job::Request(Request::Event(event)) => match event {
            Event::Chat { seq, .. } => format!("channel message {seq}"),
            Event::Private { seq, .. } => format!("private message {seq}"),
            Event::Join { seq, user_key, .. } => format!("join {seq} of {user_key:?}"),
            Event::Leave { seq, user_key, .. } => format!("leave {seq} of {user_key:?}"),
            Event::User { key, .. } => format!("new user {key:?}"),
            Event::Channel { name, .. } => format!("new channel {name:?}"),
        },
        Job::Request(request) => format!("{:?} request", request.kind()),
        Job::StoreHash { key, .. } => format!("registration of {key:?}"),
    }
}

/// The outcome of a job that could not be done: a failure reply when someone waits for one
/// (or a mailbox count must be corrected).
fn failed(job: &Job) -> Outcome {
    match job {
        Job::Request(request) => {
            let key = request.failure_key();
            match (request.conn(), &key) {
                (None, None) => Outcome::Done,
                (conn, _) => Outcome::Reply(Reply::Failed {
                    conn,
                    request: request.kind(),
                    key,
                }),
            }
        }
        Job::StoreHash { conn, .. } => Outcome::Reply(Reply::Failed {
            conn: Some(*conn),
            request: RequestKind::Register,
            key: None,
        }),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Applies one job inside the batch's transaction.
fn apply_job(tx: &Transaction<'_>, ids: &mut Ids, job: &Job) -> rusqlite::Result<Outcome> {
    let request = match job {
        Job::Request(request) => request,
        Job::StoreHash {
            conn,
            name,
            key,
            hash,
            history_from,
        } => {
            // Two registrations of one name may both have been hashed; the first one wins.
            let from = i64::try_from(*history_from).unwrap_or(i64::MAX);
            let changed = tx
                .prepare_cached(
                    "INSERT INTO users (key, name, password_hash, created, history_from)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (key) DO UPDATE SET password_hash = excluded.password_hash,
                         history_from = excluded.history_from, name = excluded.name
                     WHERE users.password_hash IS NULL",
                )?
                .execute(params![key, name, hash, now(), from])?;
            let result = if changed > 0 {
                Registration::Registered
            } else {
                Registration::AlreadyRegistered
            };
            return Ok(Outcome::Reply(Reply::Registered {
                conn: *conn,
                name: name.clone(),
                key: key.clone(),
                history_from: *history_from,
                hash: hash.clone(),
                result,
            }));
        }
    };
    Ok(match request {
        Request::Event(event) => {
            write_event(tx, ids, event)?;
            Outcome::Done
        }
        Request::StoreOffline {
            notify,
            sender,
            recipient,
            recipient_key,
            time,
            text,
        } => {
            tx.prepare_cached(
                "INSERT INTO offline (time, sender, recipient, recipient_key, text)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![time, sender, recipient, recipient_key, text])?;
            match notify {
                Some(conn) => Outcome::Reply(Reply::OfflineStored {
                    conn: *conn,
                    recipient: recipient.clone(),
                }),
                None => Outcome::Done,
            }
        }
        Request::FetchOffline {
            conn,
            key,
            after,
            limit,
        } => {
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let messages = tx
                .prepare_cached(
                    "SELECT id, time, sender, text FROM offline
                     WHERE recipient_key = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?
                .query_map(params![key, after, limit], |row| {
                    Ok(OfflineMessage {
                        id: row.get(0)?,
                        time: row.get(1)?,
                        sender: row.get(2)?,
                        text: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let total: i64 = tx
                .prepare_cached("SELECT count(*) FROM offline WHERE recipient_key = ?1")?
                .query_row([key], |r| r.get(0))?;
            Outcome::Reply(Reply::Offline {
                conn: *conn,
                key: key.clone(),
                total: usize::try_from(total).unwrap_or(0),
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
        // Handled by the writer itself (it needs the batch's last seq).
        Request::Search { .. } => Outcome::Done,
    })
}

/// A seq as SQLite stores it (a signed 64-bit integer).
fn sql_seq(seq: u64) -> rusqlite::Result<i64> {
    i64::try_from(seq).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Stores a message and indexes it with its scope (see `schema.rs`).
#[allow(clippy::too_many_arguments)]
fn write_message(
    tx: &Transaction<'_>,
    seq: i64,
    time: i64,
    channel: Option<i64>,
    sender: &str,
    sender_id: i64,
    recipient: Option<(&str, i64)>,
    text: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO messages (seq, time, channel_id, sender, sender_id, recipient,
             recipient_id, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        seq,
        time,
        channel,
        sender,
        sender_id,
        recipient.map(|r| r.0),
        recipient.map(|r| r.1),
        text
    ])?;
    let scope = scope(channel, sender_id, recipient.map(|r| r.1));
    tx.prepare_cached("INSERT INTO messages_fts (rowid, text, scope) VALUES (?1, ?2, ?3)")?
        .execute(params![seq, text, scope])?;
    Ok(())
}

fn write_event(tx: &Transaction<'_>, ids: &mut Ids, event: &Event) -> rusqlite::Result<()> {
    let seq = event.seq().map(sql_seq).transpose()?.unwrap_or(0);
    match event {
        Event::Chat {
            time,
            channel,
            sender,
            sender_key,
            text,
            ..
        } => {
            let channel = ids.channel(tx, channel)?;
            let sender_id = ids.user(tx, sender_key, sender)?;
            write_message(tx, seq, *time, Some(channel), sender, sender_id, None, text)?;
        }
        Event::Private {
            time,
            sender,
            sender_key,
            recipient,
            recipient_key,
            text,
            ..
        } => {
            let sender_id = ids.user(tx, sender_key, sender)?;
            let recipient_id = ids.user(tx, recipient_key, recipient)?;
            let to = Some((recipient.as_str(), recipient_id));
            write_message(tx, seq, *time, None, sender, sender_id, to, text)?;
        }
        Event::Join {
            user_key, channel, ..
        } => {
            let channel = ids.channel(tx, channel)?;
            let user = ids.user(tx, user_key, user_key)?;
            // A rejoin with no message of the channel since the last stay ended continues it.
            let last: Option<(i64, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT rowid, to_seq FROM memberships WHERE user_id = ?1 AND channel_id = ?2
                     ORDER BY from_seq DESC LIMIT 1",
                )?
                .query_row(params![user, channel], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let quiet = match last {
                Some((_, Some(to))) => tx
                    .prepare_cached(
                        "SELECT NOT EXISTS (SELECT 1 FROM messages
                         WHERE channel_id = ?1 AND seq > ?2 AND seq < ?3)",
                    )?
                    .query_row(params![channel, to, seq], |r| r.get::<_, bool>(0))?,
                _ => false,
            };
            match last {
                Some((rowid, Some(_))) if quiet => {
                    tx.prepare_cached("UPDATE memberships SET to_seq = NULL WHERE rowid = ?1")?
                        .execute([rowid])?;
                }
                _ => {
                    tx.prepare_cached(
                        "INSERT INTO memberships (user_id, channel_id, from_seq, to_seq)
                         VALUES (?1, ?2, ?3, NULL)",
                    )?
                    .execute(params![user, channel, seq])?;
                }
            }
        }
        Event::Leave {
            user_key, channel, ..
        } => {
            let channel = ids.channel(tx, channel)?;
            let user = ids.user(tx, user_key, user_key)?;
            tx.prepare_cached(
                "UPDATE memberships SET to_seq = ?3
                 WHERE user_id = ?1 AND channel_id = ?2 AND to_seq IS NULL",
            )?
            .execute(params![user, channel, seq])?;
        }
        Event::User { name, key, .. } => {
            ids.user(tx, key, name)?;
        }
        Event::Channel { name, .. } => {
            ids.channel(tx, name)?;
        }
    }
    Ok(())
}
