//! The tables, their migrations, and what happens when the database is opened.
//!
//! The schema version lives in `PRAGMA user_version`: version N means the first N entries of
//! [`MIGRATIONS`] are applied. Opening applies the missing ones, in order, in one transaction.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{Startup, StorageError};

/// How long a statement waits for a lock another connection holds before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1: the initial schema.
///
/// - `users`: every name that ever logged in; `password_hash` (a PHC argon2 string) is set
///   once the name is registered.
/// - `messages`: the history, ordered by `seq`; a channel message has `channel` and no
///   `recipient`, a private message the reverse.
/// - `messages_fts`: the full-text index over `messages.text` (external content, rowid = seq),
///   filled by the writer right after each message. Not by a trigger: a statement that fires
///   a trigger opens a savepoint, and FTS5 flushes its in-memory index at every savepoint,
///   which made each message write its own index segment (3.5 times slower). The unicode61 tokenizer makes search case-insensitive, ignores
///   punctuation and matches whole words; `remove_diacritics 2` also makes `cafe` find `café`,
///   whether the client sent the accent composed or as a combining mark.
/// - `memberships`: one row per stay of a user in a channel; `leave_seq` is NULL while it lasts.
/// - `offline`: private messages waiting for their recipient; AUTOINCREMENT so that an id is
///   never reused, and a late delete can only remove the message it was meant for.
/// - `state`: one row holding the last sequence number used.
pub(super) const V1: &str = "
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

/// Version 2: `users.history_from`, the seq a registered name's history starts after (its
/// registering connection's start), so that registering a name never reveals what earlier,
/// unregistered holders of that name said or saw.
const V2: &str = "
ALTER TABLE users ADD COLUMN history_from INTEGER NOT NULL DEFAULT 0;
";

/// The migrations, oldest first; never edit one that has shipped, append a new one.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this program writes.
pub(super) fn current_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
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
        tx.execute_batch(step)?;
    }
    if found != supported {
        tx.pragma_update(None, "user_version", supported)?;
    }
    tx.commit()?;
    Ok(())
}

/// Reads what the hub needs, and closes the memberships a crash (or a shutdown) left open.
///
/// An open membership is closed as if its user had left at a new seq, one past the last one
/// used: the messages up to the last one stay visible to it, the next ones (which the hub
/// numbers after [`Startup::last_seq`]) do not.
pub(super) fn startup(conn: &mut Connection) -> Result<Startup, StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored: i64 = tx.query_row("SELECT last_seq FROM state WHERE id = 0", [], |r| r.get(0))?;
    let newest: Option<i64> = tx
        .query_row("SELECT max(seq) FROM messages", [], |r| r.get(0))
        .optional()?
        .flatten();
    let mut last = stored.max(newest.unwrap_or(0)).max(0);

    let open: i64 = tx.query_row(
        "SELECT count(*) FROM memberships WHERE leave_seq IS NULL",
        [],
        |r| r.get(0),
    )?;
    if open > 0 {
        last = last.saturating_add(1);
        tx.execute(
            "UPDATE memberships SET leave_seq = ?1 WHERE leave_seq IS NULL",
            [last],
        )?;
        log::info!("storage: closed {open} memberships left open, at seq {last}");
    }
    tx.execute("UPDATE state SET last_seq = ?1 WHERE id = 0", [last])?;

    let mut known_names = std::collections::HashSet::new();
    let mut registered = std::collections::HashMap::new();
    {
        let mut stmt =
            tx.prepare("SELECT name, password_hash IS NOT NULL, history_from FROM users")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            if row.get::<_, bool>(1)? {
                let from: i64 = row.get(2)?;
                registered.insert(name.clone(), u64::try_from(from).unwrap_or(0));
            }
            known_names.insert(name);
        }
    }
    let mut offline_recipients = std::collections::HashSet::new();
    {
        let mut stmt = tx.prepare("SELECT DISTINCT recipient FROM offline")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            offline_recipients.insert(row.get(0)?);
        }
    }
    tx.commit()?;
    Ok(Startup {
        last_seq: u64::try_from(last).unwrap_or(0),
        known_names,
        registered,
        offline_recipients,
    })
}
