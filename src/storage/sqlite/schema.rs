//! The tables, their migrations, and what happens when the database is opened.
//!
//! The schema version lives in `PRAGMA user_version`: version N means the first N entries of
//! [`MIGRATIONS`] are applied. Opening applies the missing ones, in order, in one transaction.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::names::{channel_key, name_key};
use crate::storage::{RegisteredName, Startup, StorageError};

/// How long a statement waits for a lock another connection holds before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The tokenizer of `messages_fts` (written out in the migrations, which never change): what a
/// word is and when two words are the same. The PostgreSQL engine runs the very same one to
/// make its lexemes, so that both find the same messages (see `postgres/lexemes.rs`).
pub(in crate::storage) const TOKENIZER: &str = "unicode61 remove_diacritics 2";

/// Version 1: the first schema (names as keys, no channels table).
pub(in crate::storage) const V1: &str = "
CREATE TABLE users (
    name TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT,
    created INTEGER NOT NULL
);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    channel TEXT,
    sender TEXT NOT NULL,
    recipient TEXT,
    text TEXT NOT NULL
);
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text,
    content = 'messages',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE memberships (
    user TEXT NOT NULL,
    channel TEXT NOT NULL,
    join_seq INTEGER NOT NULL,
    leave_seq INTEGER
);
CREATE INDEX memberships_by_user ON memberships (user, channel, join_seq);
CREATE TABLE offline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX offline_by_recipient ON offline (recipient, id);
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    last_seq INTEGER NOT NULL
);
INSERT INTO state (id, last_seq) VALUES (0, 0);
";

/// Version 2: `users.history_from`, the seq a registered name's history starts after.
pub(in crate::storage) const V2: &str = "
ALTER TABLE users ADD COLUMN history_from INTEGER NOT NULL DEFAULT 0;
";

/// Version 3: names and channels get keys and ids, channels persist, and the search index
/// knows whose each message is.
///
/// - `users`: every name that ever logged in, by `key` (case folded, confusable skeleton:
///   look-alike names are one name) with the name as first seen (or as registered);
///   `password_hash` (a PHC argon2 string) once registered; `history_from`: the seq its
///   history starts after.
/// - `channels`: every channel ever created, in creation order (`id`), by ASCII-folded `key`.
/// - `messages`: the history, ordered by `seq`; a channel message has `channel_id` and no
///   recipient, a private message the reverse. Names are stored as shown.
/// - `messages_fts`: the full-text index (contentless, rowid = seq) over `text`, plus `scope`:
///   the tokens `c{channel id}` and `u{sender id}` (and `u{recipient id}` for a private
///   message), so that a search asks only for what the user may see: each of its stays in a
///   channel (`c…` within a seq range) and its own and private messages (`u…`), and costs in
///   proportion to those. Filled by the writer right after each message, not by a trigger (a
///   trigger's savepoint made FTS5 write an index segment per message, 3.5 times slower).
///   unicode61 makes search case-insensitive, punctuation-blind and whole-word;
///   `remove_diacritics 2` makes `cafe` find `café`.
/// - `memberships`: one row per stay of a user in a channel, `to_seq` NULL while it lasts.
/// - `offline`: private messages waiting for their recipient (by key); AUTOINCREMENT so that
///   an id is never reused and a late delete only removes the message it was meant for.
/// - `state`: the last seq used, and `members_ok_seq`: every membership change up to it is
///   stored (a change lost to a failing disk holds it back, so that a restart never widens
///   what a search shows).
const V3: &str = "
CREATE TABLE users3 (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT,
    created INTEGER NOT NULL,
    history_from INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE channels (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE messages3 (
    seq INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    channel_id INTEGER,
    sender TEXT NOT NULL,
    sender_id INTEGER NOT NULL,
    recipient TEXT,
    recipient_id INTEGER,
    text TEXT NOT NULL
);
CREATE INDEX messages_by_channel ON messages3 (channel_id, seq);
CREATE TABLE memberships3 (
    user_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    from_seq INTEGER NOT NULL,
    to_seq INTEGER
);
CREATE INDEX stays_by_user ON memberships3 (user_id, channel_id, from_seq);
CREATE TABLE offline3 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    recipient_key TEXT NOT NULL,
    text TEXT NOT NULL
);
ALTER TABLE state ADD COLUMN members_ok_seq INTEGER NOT NULL DEFAULT 0;
";

/// The statements that finish version 3 once the data is copied.
const V3_END: &str = "
DROP TABLE messages_fts;
DROP TABLE users;
DROP TABLE messages;
DROP TABLE memberships;
DROP TABLE offline;
ALTER TABLE users3 RENAME TO users;
ALTER TABLE messages3 RENAME TO messages;
ALTER TABLE memberships3 RENAME TO memberships;
ALTER TABLE offline3 RENAME TO offline;
CREATE INDEX offline_by_recipient ON offline (recipient_key, id);
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text,
    scope,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2'
);
UPDATE state SET members_ok_seq = last_seq;
";

/// One step of the schema's history.
enum Migration {
    Sql(&'static str),
    /// A step that needs code (keys are computed in Rust).
    Code(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

/// The migrations, oldest first; never edit one that has shipped, append a new one.
const MIGRATIONS: &[Migration] = &[Migration::Sql(V1), Migration::Sql(V2), Migration::Code(v3)];

/// The schema version this program writes.
pub(in crate::storage) fn current_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The scope tokens of a message (see `messages_fts` in [`V3`]).
pub(super) fn scope(channel_id: Option<i64>, sender_id: i64, recipient_id: Option<i64>) -> String {
    let mut s = String::new();
    if let Some(c) = channel_id {
        s.push_str(&format!("c{c} "));
    }
    s.push_str(&format!("u{sender_id}"));
    if let Some(r) = recipient_id {
        if r != sender_id {
            s.push_str(&format!(" u{r}"));
        }
    }
    s
}

/// Version 3: copies the data of version 2 into the new tables, computing keys and ids.
fn v3(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(V3)?;
    // Users: look-alike names become one; a registered one wins, else the oldest.
    let mut users: HashMap<String, i64> = HashMap::new();
    {
        let mut rows = tx.prepare(
            "SELECT name, password_hash, created, history_from FROM users
             ORDER BY password_hash IS NULL, created, name",
        )?;
        let mut insert = tx.prepare(
            "INSERT INTO users3 (key, name, password_hash, created, history_from)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let key = name_key(&name).to_string();
            if users.contains_key(&key) {
                log::warn!("storage: migrating: {name:?} is the same name as an earlier one");
                continue;
            }
            let hash: Option<String> = row.get(1)?;
            insert.execute(params![
                key,
                name,
                hash,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?
            ])?;
            users.insert(key, tx.last_insert_rowid());
        }
    }
    let mut user_id = |tx: &Transaction<'_>, name: &str| -> rusqlite::Result<i64> {
        let key = name_key(name).to_string();
        if let Some(&id) = users.get(&key) {
            return Ok(id);
        }
        tx.execute(
            "INSERT INTO users3 (key, name, created) VALUES (?1, ?2, 0)",
            params![key, name],
        )?;
        let id = tx.last_insert_rowid();
        users.insert(key, id);
        Ok(id)
    };
    // Channels, in the order history first mentions them.
    let mut channels: HashMap<String, i64> = HashMap::new();
    {
        let mut rows = tx.prepare(
            "SELECT channel, min(seq) AS first FROM (
                 SELECT channel, seq FROM messages WHERE channel IS NOT NULL
                 UNION ALL SELECT channel, join_seq FROM memberships)
             GROUP BY channel ORDER BY first",
        )?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let key = channel_key(&name).to_string();
            if channels.contains_key(&key) {
                continue;
            }
            tx.execute(
                "INSERT INTO channels (key, name, created) VALUES (?1, ?2, 0)",
                params![key, name],
            )?;
            channels.insert(key, tx.last_insert_rowid());
        }
    }
    {
        let mut rows =
            tx.prepare("SELECT seq, time, channel, sender, recipient, text FROM messages")?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let channel: Option<String> = row.get(2)?;
            let sender: String = row.get(3)?;
            let recipient: Option<String> = row.get(4)?;
            let text: String = row.get(5)?;
            let channel_id = channel
                .as_deref()
                .and_then(|c| channels.get(&*channel_key(c)).copied());
            let sender_id = user_id(tx, &sender)?;
            let recipient_id = recipient.as_deref().map(|r| user_id(tx, r)).transpose()?;
            tx.execute(
                "INSERT INTO messages3 (seq, time, channel_id, sender, sender_id, recipient,
                     recipient_id, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    seq,
                    row.get::<_, i64>(1)?,
                    channel_id,
                    sender,
                    sender_id,
                    recipient,
                    recipient_id,
                    text
                ],
            )?;
        }
    }
    {
        let mut rows = tx.prepare("SELECT user, channel, join_seq, leave_seq FROM memberships")?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let user: String = row.get(0)?;
            let channel: String = row.get(1)?;
            let Some(&channel_id) = channels.get(&*channel_key(&channel)) else {
                continue;
            };
            let uid = user_id(tx, &user)?;
            tx.execute(
                "INSERT INTO memberships3 (user_id, channel_id, from_seq, to_seq)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    uid,
                    channel_id,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?
                ],
            )?;
        }
    }
    {
        let mut rows = tx.prepare("SELECT id, time, sender, recipient, text FROM offline")?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let recipient: String = row.get(3)?;
            tx.execute(
                "INSERT INTO offline3 (id, time, sender, recipient, recipient_key, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    recipient,
                    name_key(&recipient).to_string(),
                    row.get::<_, String>(4)?
                ],
            )?;
        }
    }
    tx.execute_batch(V3_END)?;
    // The index, with each message's scope.
    let mut rows = tx.prepare(
        "SELECT seq, channel_id, sender_id, recipient_id, text FROM messages ORDER BY seq",
    )?;
    let mut insert =
        tx.prepare("INSERT INTO messages_fts (rowid, text, scope) VALUES (?1, ?2, ?3)")?;
    let mut rows = rows.query([])?;
    while let Some(row) = rows.next()? {
        let scope = scope(row.get(1)?, row.get(2)?, row.get(3)?);
        insert.execute(params![
            row.get::<_, i64>(0)?,
            row.get::<_, String>(4)?,
            scope
        ])?;
    }
    Ok(())
}

/// Opens the writer's connection: WAL, `synchronous=NORMAL`, and the schema brought up to date.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StorageError> {
    let mut conn = Connection::open_with_flags(path, OpenFlags::default())?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers do not block the writer, and a commit needs no fsync, yet survives the
    // process being killed. (An in-memory database answers "memory" and keeps its mode.)
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    log::debug!("storage: journal mode {mode}");
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a read-only connection for searches; the writer must have opened the database first.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Applies the missing migrations in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let supported = current_version();
    if found > supported {
        return Err(StorageError::SchemaTooNew { found, supported });
    }
    let start = usize::try_from(found).unwrap_or(0);
    for (i, step) in MIGRATIONS.iter().enumerate().skip(start) {
        log::info!("storage: migrating the schema to version {}", i + 1);
        match step {
            Migration::Sql(sql) => tx.execute_batch(sql)?,
            Migration::Code(f) => f(&tx)?,
        }
    }
    if found != supported {
        tx.pragma_update(None, "user_version", supported)?;
    }
    tx.commit()?;
    Ok(())
}

/// Reads what the hub needs, and closes the memberships a crash (or a shutdown) left open.
///
/// An open membership is closed at a new seq one past `members_ok_seq` (every membership
/// change up to it is stored): the messages up to it stay visible to its user, the next ones
/// do not. Normally `members_ok_seq` is the last seq; after a membership change was lost to a
/// failing disk it is older, so that a lost `/leave` never widens what a search shows.
pub(super) fn startup(conn: &mut Connection) -> Result<Startup, StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (stored, members_ok): (i64, i64) = tx.query_row(
        "SELECT last_seq, members_ok_seq FROM state WHERE id = 0",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let newest: Option<i64> = tx
        .query_row("SELECT max(seq) FROM messages", [], |r| r.get(0))
        .optional()?
        .flatten();
    let mut last = stored.max(newest.unwrap_or(0)).max(0);

    let open: i64 = tx.query_row(
        "SELECT count(*) FROM memberships WHERE to_seq IS NULL",
        [],
        |r| r.get(0),
    )?;
    if open > 0 {
        let close_at = members_ok.min(last).saturating_add(1);
        last = last.max(close_at);
        tx.execute(
            "UPDATE memberships SET to_seq = max(?1, from_seq) WHERE to_seq IS NULL",
            [close_at],
        )?;
        log::debug!("storage: closed {open} stays left open, at seq {close_at}");
    }
    tx.execute(
        "UPDATE state SET last_seq = ?1, members_ok_seq = ?1 WHERE id = 0",
        [last],
    )?;

    let mut startup = Startup {
        last_seq: u64::try_from(last).unwrap_or(0),
        ..Startup::default()
    };
    {
        let mut stmt = tx.prepare("SELECT key, name, password_hash, history_from FROM users")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            if let Some(hash) = row.get::<_, Option<String>>(2)? {
                let from: i64 = row.get(3)?;
                let entry = RegisteredName {
                    name: row.get(1)?,
                    history_from: u64::try_from(from).unwrap_or(0),
                    hash,
                };
                startup.registered.insert(key.clone(), entry);
            }
            startup.known.insert(key);
        }
    }
    {
        let mut stmt =
            tx.prepare("SELECT recipient_key, count(*) FROM offline GROUP BY recipient_key")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let n: i64 = row.get(1)?;
            startup
                .offline
                .insert(row.get(0)?, usize::try_from(n).unwrap_or(0));
        }
    }
    {
        let mut stmt = tx.prepare("SELECT name FROM channels ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            startup.channels.push(row.get(0)?);
        }
    }
    tx.commit()?;
    Ok(startup)
}
