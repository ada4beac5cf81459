//! The writer's statements in PostgreSQL: one batch in one transaction, in a handful of round
//! trips, with the same outcome as SQLite's for a job whose statement fails.
//!
//! A round trip per message would hold a busy chat to a few thousand messages a second, so a
//! batch's messages are inserted in one statement (arrays, `unnest`), and its joins and leaves
//! in one call of `chat_memberships` (`schema.rs`), which applies them in order. Both come
//! after the batch's other jobs, which touch neither table; a join looks only at messages sent
//! before it, which are all in by then.
//!
//! SQLite undoes just a failing statement and goes on; PostgreSQL aborts the whole
//! transaction. So when one of these statements fails, the transaction is rolled back and the
//! batch replayed with a savepoint around each job (its messages and memberships written at
//! once), which isolates the failing jobs (logged and answered as failed) and commits the
//! rest. A failure that is not a statement's (see `is_statement_error`) fails the batch.

use postgres::{Client, Statement, Transaction};

use super::lexemes::Lexer;
use super::{is_statement_error, PgError};
use crate::names::channel_key;
use crate::storage::backend::{now, Applied, Ids};
use crate::storage::queue::Job;
use crate::storage::writer::describe;
use crate::storage::{Event, OfflineMessage, Reply, Request};

/// The writer's statements, prepared once per connection.
pub(super) struct Statements {
    user: Statement,
    user_lookup: Statement,
    channel: Statement,
    channel_lookup: Statement,
    register: Statement,
    memberships: Statement,
    store_offline: Statement,
    fetch_offline: Statement,
    count_offline: Statement,
    lock_mailbox: Statement,
    delete_offline: Statement,
    state: Statement,
    messages: Statement,
}

impl Statements {
    pub(super) fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            // One round trip for a user new to this writer: inserted, or found (an existing
            // row is not in the insert's result; one another server is inserting right now
            // is in neither, and is looked up again).
            user: client.prepare(
                "WITH added AS (
                     INSERT INTO users (key, name, created) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO NOTHING RETURNING id)
                 SELECT id FROM added UNION ALL SELECT id FROM users WHERE key = $1",
            )?,
            user_lookup: client.prepare("SELECT id FROM users WHERE key = $1")?,
            channel: client.prepare(
                "WITH added AS (
                     INSERT INTO channels (key, name, created) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO NOTHING RETURNING id)
                 SELECT id FROM added UNION ALL SELECT id FROM channels WHERE key = $1",
            )?,
            channel_lookup: client.prepare("SELECT id FROM channels WHERE key = $1")?,
            // Two registrations of one name may both have been hashed; the first one wins.
            register: client.prepare(
                "INSERT INTO users (key, name, password_hash, created, history_from)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO UPDATE SET password_hash = excluded.password_hash,
                     history_from = excluded.history_from, name = excluded.name
                 WHERE users.password_hash IS NULL",
            )?,
            memberships: client.prepare(
                "SELECT chat_memberships($1::bool[], $2::int8[], $3::int8[], $4::int8[])",
            )?,
            store_offline: client.prepare(
                "INSERT INTO offline (time, sender, recipient, recipient_key, text)
                 VALUES ($1, $2, $3, $4, $5)",
            )?,
            fetch_offline: client.prepare(
                "SELECT id, time, sender, text FROM offline
                 WHERE recipient_key = $1 AND id > $2 ORDER BY id LIMIT $3",
            )?,
            count_offline: client
                .prepare("SELECT count(*) FROM offline WHERE recipient_key = $1")?,
            // Nodes storing for one mailbox at once take turns, so that the count they check
            // is the one they add to (held to the end of the transaction).
            lock_mailbox: client
                .prepare("SELECT pg_advisory_xact_lock(1667785076, hashtext($1))")?,
            delete_offline: client.prepare("DELETE FROM offline WHERE id = ANY($1)")?,
            messages: client.prepare(
                "INSERT INTO messages (seq, time, channel_id, sender, sender_id, recipient,
                     recipient_id, text, words)
                 SELECT seq, time, channel_id, sender, sender_id, recipient, recipient_id,
                     text, words::tsvector
                 FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
                     $6::text[], $7::int8[], $8::text[], $9::text[])
                     AS m (seq, time, channel_id, sender, sender_id, recipient, recipient_id,
                         text, words)",
            )?,
            // Never backwards: another server sharing the database may be further on.
            state: client.prepare(
                "UPDATE state SET last_seq = GREATEST(last_seq, $1),
                     members_ok_seq = GREATEST(members_ok_seq, $1) WHERE id = 0",
            )?,
        })
    }
}

/// The `tsvector` of each job that stores a message (`None` for the others), made before the
/// transaction.
pub(super) fn words(lexer: &mut Lexer, jobs: &[&Job]) -> Result<Vec<Option<String>>, PgError> {
    let texts: Vec<&str> = jobs.iter().filter_map(|job| message_text(job)).collect();
    let mut vectors = lexer.tsvectors(&texts)?.into_iter();
    Ok(jobs
        .iter()
        .map(|job| message_text(job).and_then(|_| vectors.next()))
        .collect())
}

/// The `tsvector` text of each kept event that is a message (see [`words`]).
pub(super) fn event_words(
    lexer: &mut Lexer,
    events: &[Event],
) -> Result<Vec<Option<String>>, PgError> {
    fn text(e: &Event) -> Option<&str> {
        match e {
            Event::Chat { text, .. } | Event::Private { text, .. } => Some(text),
            _ => None,
        }
    }
    let texts: Vec<&str> = events.iter().filter_map(text).collect();
    let mut vectors = lexer.tsvectors(&texts)?.into_iter();
    Ok(events
        .iter()
        .map(|e| text(e).and_then(|_| vectors.next()))
        .collect())
}

fn message_text<'a>(job: &&'a Job) -> Option<&'a str> {
    match job {
        Job::Request(Request::Event(Event::Chat { text, .. } | Event::Private { text, .. })) => {
            Some(text)
        }
        _ => None,
    }
}

/// Messages and membership changes waiting to be written together; the texts borrowed from the
/// batch (nothing is copied before the driver encodes them).
#[derive(Default)]
struct Pending<'a> {
    // The messages, column by column.
    seq: Vec<i64>,
    time: Vec<i64>,
    channel_id: Vec<Option<i64>>,
    sender: Vec<&'a str>,
    sender_id: Vec<i64>,
    recipient: Vec<Option<&'a str>>,
    recipient_id: Vec<Option<i64>>,
    text: Vec<&'a str>,
    words: Vec<&'a str>,
    // The joins (true) and leaves, in order.
    joins: Vec<bool>,
    user_ids: Vec<i64>,
    channel_ids: Vec<i64>,
    seqs: Vec<i64>,
}

impl<'a> Pending<'a> {
    #[allow(clippy::too_many_arguments)]
    fn message(
        &mut self,
        seq: i64,
        time: i64,
        channel_id: Option<i64>,
        sender: &'a str,
        sender_id: i64,
        recipient: Option<(&'a str, i64)>,
        text: &'a str,
        words: Option<&'a str>,
    ) {
        self.seq.push(seq);
        self.time.push(time);
        self.channel_id.push(channel_id);
        self.sender.push(sender);
        self.sender_id.push(sender_id);
        self.recipient.push(recipient.map(|r| r.0));
        self.recipient_id.push(recipient.map(|r| r.1));
        self.text.push(text);
        self.words.push(words.unwrap_or(""));
    }

    fn membership(&mut self, join: bool, user_id: i64, channel_id: i64, seq: i64) {
        self.joins.push(join);
        self.user_ids.push(user_id);
        self.channel_ids.push(channel_id);
        self.seqs.push(seq);
    }

    /// Writes what is waiting: the messages first (a join looks at those before it).
    fn flush(&mut self, tx: &mut Transaction<'_>, st: &Statements) -> Result<(), postgres::Error> {
        if !self.seq.is_empty() {
            tx.execute(
                &st.messages,
                &[
                    &self.seq,
                    &self.time,
                    &self.channel_id,
                    &self.sender,
                    &self.sender_id,
                    &self.recipient,
                    &self.recipient_id,
                    &self.text,
                    &self.words,
                ],
            )?;
        }
        if !self.seqs.is_empty() {
            tx.execute(
                &st.memberships,
                &[&self.joins, &self.user_ids, &self.channel_ids, &self.seqs],
            )?;
        }
        *self = Pending::default();
        Ok(())
    }
}

/// Why a pass over the batch stopped.
enum Stop {
    /// A job's own statement failed: the transaction is rolled back; replay with savepoints.
    Job(postgres::Error),
    /// The batch failed.
    Batch(PgError),
}

impl From<postgres::Error> for Stop {
    fn from(e: postgres::Error) -> Stop {
        if is_statement_error(&e) {
            Stop::Job(e)
        } else {
            Stop::Batch(PgError::Db(e))
        }
    }
}

/// One transaction over the kept membership changes and the batch (see
/// [`crate::storage::backend::Backend::apply`]); `words` as made by [`words`].
pub(super) fn apply(
    client: &mut Client,
    st: &Statements,
    ids: &mut Ids,
    unstored: (&[Event], &[Option<String>]),
    jobs: &[&Job],
    words: &[Option<String>],
    last_seq: u64,
) -> Result<Vec<Applied>, PgError> {
    match pass(client, st, ids, unstored, jobs, words, last_seq, false) {
        Ok(applied) => Ok(applied),
        Err(Stop::Batch(e)) => Err(e),
        Err(Stop::Job(e)) => {
            log::debug!("storage: a statement failed ({e}); replaying the batch job by job");
            ids.rollback();
            match pass(client, st, ids, unstored, jobs, words, last_seq, true) {
                Ok(applied) => Ok(applied),
                Err(Stop::Batch(e)) => Err(e),
                Err(Stop::Job(e)) => Err(PgError::Db(e)),
            }
        }
    }
}

/// One pass: the whole batch at once, or (`careful`) each job inside a savepoint of its own.
#[allow(clippy::too_many_arguments)]
fn pass(
    client: &mut Client,
    st: &Statements,
    ids: &mut Ids,
    unstored: (&[Event], &[Option<String>]),
    jobs: &[&Job],
    words: &[Option<String>],
    last_seq: u64,
    careful: bool,
) -> Result<Vec<Applied>, Stop> {
    let batch = |e: postgres::Error| Stop::Batch(PgError::Db(e));
    let mut tx = client.transaction().map_err(batch)?;
    let mut pending = Pending::default();
    // The kept changes must all be stored, or nothing: any failure is the batch's.
    let unstored_result = (|| {
        let (events, event_words) = unstored;
        for (i, event) in events.iter().enumerate() {
            let words = event_words.get(i).and_then(Option::as_deref);
            write_event(&mut tx, st, ids, event, words, &mut pending)?;
        }
        pending.flush(&mut tx, st)
    })();
    unstored_result.map_err(batch)?;
    let mut applied = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let words = words.get(i).and_then(Option::as_deref);
        if !careful {
            applied.push(apply_job(&mut tx, st, ids, job, words, &mut pending)?);
            continue;
        }
        let mark = ids.mark();
        let mut savepoint = tx.savepoint("job").map_err(batch)?;
        let result = apply_job(&mut savepoint, st, ids, job, words, &mut pending)
            .and_then(|outcome| pending.flush(&mut savepoint, st).map(|()| outcome));
        match result {
            Ok(outcome) => {
                savepoint.commit().map_err(batch)?;
                applied.push(outcome);
            }
            Err(e) if is_statement_error(&e) => {
                savepoint.rollback().map_err(batch)?;
                pending = Pending::default();
                ids.rollback_to(mark);
                log::error!("storage: {} failed: {e}", describe(job));
                applied.push(Applied::Failed);
            }
            Err(e) => return Err(batch(e)),
        }
    }
    pending.flush(&mut tx, st)?;
    let seq = i64::try_from(last_seq).unwrap_or(i64::MAX);
    // Every membership change up to here is stored (the kept ones were applied first).
    tx.execute(&st.state, &[&seq]).map_err(batch)?;
    tx.commit().map_err(batch)?;
    Ok(applied)
}

/// The id of a user key, creating the user (shown as `name`) if storage never saw it.
fn user_id(
    tx: &mut Transaction<'_>,
    st: &Statements,
    ids: &mut Ids,
    key: &str,
    name: &str,
) -> Result<i64, postgres::Error> {
    if let Some(id) = ids.user(key) {
        return Ok(id);
    }
    let id = match tx.query_opt(&st.user, &[&key, &name, &now()])? {
        Some(row) => row.try_get(0)?,
        None => tx.query_one(&st.user_lookup, &[&key])?.try_get(0)?,
    };
    ids.add_user(key, id);
    Ok(id)
}

/// The id of a channel, creating it if storage never saw it.
fn channel_id(
    tx: &mut Transaction<'_>,
    st: &Statements,
    ids: &mut Ids,
    name: &str,
) -> Result<i64, postgres::Error> {
    let key = channel_key(name);
    if let Some(id) = ids.channel(&key) {
        return Ok(id);
    }
    let id = match tx.query_opt(&st.channel, &[&&*key, &name, &now()])? {
        Some(row) => row.try_get(0)?,
        None => tx.query_one(&st.channel_lookup, &[&&*key])?.try_get(0)?,
    };
    ids.add_channel(&key, id);
    Ok(id)
}

/// A seq as PostgreSQL stores it (the hub never gets near `i64::MAX`).
fn seq_of(event: &Event) -> Option<i64> {
    event.seq().map(|s| i64::try_from(s).unwrap_or(i64::MAX))
}

/// Applies one job inside the batch's transaction.
fn apply_job<'a>(
    tx: &mut Transaction<'_>,
    st: &Statements,
    ids: &mut Ids,
    job: &'a Job,
    words: Option<&'a str>,
    pending: &mut Pending<'a>,
) -> Result<Applied, postgres::Error> {
    let request = match job {
        Job::Request(request) => request,
        Job::StoreHash {
            conn,
            name,
            key,
            hash,
            history_from,
        } => {
            let from = i64::try_from(*history_from).unwrap_or(i64::MAX);
            let changed = tx.execute(&st.register, &[key, name, hash, &now(), &from])?;
            return Ok(Applied::hash_stored(
                *conn,
                name,
                key,
                hash,
                *history_from,
                changed > 0,
            ));
        }
    };
    Ok(match request {
        Request::Event(event) => {
            write_event(tx, st, ids, event, words, pending)?;
            Applied::Done
        }
        Request::StoreOffline {
            notify,
            sender,
            recipient,
            recipient_key,
            time,
            text,
            max,
        } => {
            if let Some(max) = max {
                tx.execute(&st.lock_mailbox, &[recipient_key])?;
                let held: i64 = tx
                    .query_one(&st.count_offline, &[recipient_key])?
                    .try_get(0)?;
                if usize::try_from(held).unwrap_or(usize::MAX) >= *max {
                    return Ok(Applied::Reply(Reply::OfflineFull {
                        conn: *notify,
                        recipient: recipient.clone(),
                        key: recipient_key.clone(),
                    }));
                }
            }
            tx.execute(
                &st.store_offline,
                &[time, sender, recipient, recipient_key, text],
            )?;
            match notify {
                Some(conn) => Applied::Reply(Reply::OfflineStored {
                    conn: *conn,
                    recipient: recipient.clone(),
                }),
                None => Applied::Done,
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
                .query(&st.fetch_offline, &[key, after, &limit])?
                .iter()
                .map(|row| {
                    Ok(OfflineMessage {
                        id: row.try_get(0)?,
                        time: row.try_get(1)?,
                        sender: row.try_get(2)?,
                        text: row.try_get(3)?,
                    })
                })
                .collect::<Result<Vec<_>, postgres::Error>>()?;
            let total: i64 = tx.query_one(&st.count_offline, &[key])?.try_get(0)?;
            Applied::Reply(Reply::Offline {
                conn: *conn,
                key: key.clone(),
                total: usize::try_from(total).unwrap_or(0),
                messages,
            })
        }
        Request::DeleteOffline { ids } => {
            tx.execute(&st.delete_offline, &[ids])?;
            Applied::Done
        }
        // The writer hands searches to the readers itself; none reaches here.
        Request::Search { .. } => Applied::Done,
    })
}

/// Writes one event: users and channels at once, messages and memberships into `pending`;
/// `words` is a message's `tsvector`.
fn write_event<'a>(
    tx: &mut Transaction<'_>,
    st: &Statements,
    ids: &mut Ids,
    event: &'a Event,
    words: Option<&'a str>,
    pending: &mut Pending<'a>,
) -> Result<(), postgres::Error> {
    let seq = seq_of(event).unwrap_or(0);
    match event {
        Event::Chat {
            time,
            channel,
            sender,
            sender_key,
            text,
            ..
        } => {
            let channel = channel_id(tx, st, ids, channel)?;
            let sender_id = user_id(tx, st, ids, sender_key, sender)?;
            pending.message(
                seq,
                *time,
                Some(channel),
                sender,
                sender_id,
                None,
                text,
                words,
            );
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
            let sender_id = user_id(tx, st, ids, sender_key, sender)?;
            let recipient_id = user_id(tx, st, ids, recipient_key, recipient)?;
            let to = Some((recipient.as_str(), recipient_id));
            pending.message(seq, *time, None, sender, sender_id, to, text, words);
        }
        Event::Join {
            user_key, channel, ..
        }
        | Event::Leave {
            user_key, channel, ..
        } => {
            let channel = channel_id(tx, st, ids, channel)?;
            let user = user_id(tx, st, ids, user_key, user_key)?;
            pending.membership(matches!(event, Event::Join { .. }), user, channel, seq);
        }
        Event::User { name, key, .. } => {
            user_id(tx, st, ids, key, name)?;
        }
        Event::Channel { name, .. } => {
            channel_id(tx, st, ids, name)?;
        }
    }
    Ok(())
}
