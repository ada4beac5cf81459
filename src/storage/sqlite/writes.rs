//! The writer's statements: one batch in one transaction, each job's statements in turn.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::schema::scope;
use crate::names::channel_key;
use crate::storage::backend::{now, Applied, Ids};
use crate::storage::queue::Job;
use crate::storage::writer::describe;
use crate::storage::{Event, OfflineMessage, Reply, Request};

/// One transaction over the kept membership changes and the batch (see
/// [`crate::storage::backend::Backend::apply`]).
pub(super) fn apply(
    conn: &mut Connection,
    ids: &mut Ids,
    unstored: &[Event],
    jobs: &[&Job],
    last_seq: u64,
) -> rusqlite::Result<Vec<Applied>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for event in unstored {
        write_event(&tx, ids, event)?;
    }
    let mut applied = Vec::with_capacity(jobs.len());
    for job in jobs {
        match apply_job(&tx, ids, job) {
            Ok(outcome) => applied.push(outcome),
            // The statement failed and SQLite rolled back the whole transaction.
            Err(e) if tx.is_autocommit() => return Err(e),
            Err(e) => {
                log::error!("storage: {} failed: {e}", describe(job));
                applied.push(Applied::Failed);
            }
        }
    }
    let seq = sql_seq(last_seq)?;
    // Every membership change up to here is stored (the kept ones were applied first).
    tx.prepare_cached("UPDATE state SET last_seq = ?1, members_ok_seq = ?1 WHERE id = 0")?
        .execute([seq])?;
    tx.commit()?;
    Ok(applied)
}

/// The id of a user key, creating the user (shown as `name`) if storage never saw it.
fn user_id(tx: &Transaction<'_>, ids: &mut Ids, key: &str, name: &str) -> rusqlite::Result<i64> {
    if let Some(id) = ids.user(key) {
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
    ids.add_user(key, id);
    Ok(id)
}

/// The id of a channel, creating it if storage never saw it.
fn channel_id(tx: &Transaction<'_>, ids: &mut Ids, name: &str) -> rusqlite::Result<i64> {
    let key = channel_key(name);
    if let Some(id) = ids.channel(&key) {
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
    ids.add_channel(&key, id);
    Ok(id)
}

/// Applies one job inside the batch's transaction.
fn apply_job(tx: &Transaction<'_>, ids: &mut Ids, job: &Job) -> rusqlite::Result<Applied> {
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
            write_event(tx, ids, event)?;
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
                let held: i64 = tx
                    .prepare_cached("SELECT count(*) FROM offline WHERE recipient_key = ?1")?
                    .query_row([recipient_key], |row| row.get(0))?;
                if usize::try_from(held).unwrap_or(usize::MAX) >= *max {
                    return Ok(Applied::Reply(Reply::OfflineFull {
                        conn: *notify,
                        recipient: recipient.clone(),
                        key: recipient_key.clone(),
                    }));
                }
            }
            tx.prepare_cached(
                "INSERT INTO offline (time, sender, recipient, recipient_key, text)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![time, sender, recipient, recipient_key, text])?;
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
            Applied::Reply(Reply::Offline {
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
            Applied::Done
        }
        // The writer hands searches to the readers itself; none reaches here.
        Request::Search { .. } => Applied::Done,
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

pub(super) fn write_event(
    tx: &Transaction<'_>,
    ids: &mut Ids,
    event: &Event,
) -> rusqlite::Result<()> {
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
            let channel = channel_id(tx, ids, channel)?;
            let sender_id = user_id(tx, ids, sender_key, sender)?;
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
            let sender_id = user_id(tx, ids, sender_key, sender)?;
            let recipient_id = user_id(tx, ids, recipient_key, recipient)?;
            let to = Some((recipient.as_str(), recipient_id));
            write_message(tx, seq, *time, None, sender, sender_id, to, text)?;
        }
        Event::Join {
            user_key, channel, ..
        } => {
            let channel = channel_id(tx, ids, channel)?;
            let user = user_id(tx, ids, user_key, user_key)?;
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
            let channel = channel_id(tx, ids, channel)?;
            let user = user_id(tx, ids, user_key, user_key)?;
            tx.prepare_cached(
                "UPDATE memberships SET to_seq = ?3
                 WHERE user_id = ?1 AND channel_id = ?2 AND to_seq IS NULL",
            )?
            .execute(params![user, channel, seq])?;
        }
        Event::User { name, key, .. } => {
            user_id(tx, ids, key, name)?;
        }
        Event::Channel { name, .. } => {
            channel_id(tx, ids, name)?;
        }
    }
    Ok(())
}
