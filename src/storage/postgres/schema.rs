//! The tables in PostgreSQL, their migrations, and what happens when storage starts.
//!
//! The schema version lives in `schema_version`: version N means the first N entries of
//! [`MIGRATIONS`] are applied. Starting applies the missing ones, in order, in one
//! transaction, under an advisory lock, so that servers starting together on one database
//! migrate it once.

use postgres::Client;

use crate::storage::{RegisteredName, Startup, StorageError};

/// Version 1: the schema of SQLite's version 3, in PostgreSQL's types.
///
/// - `users`: every name that ever logged in, by `key` (see `names::name_key`), with the name
///   as first seen (or as registered); `password_hash` (a PHC argon2 string) once registered;
///   `history_from`: the seq its history starts after.
/// - `channels`: every channel ever created, in creation order (`id`), by ASCII-folded `key`.
/// - `messages`: the history, by `seq`; a channel message has `channel_id` and no recipient, a
///   private message the reverse; names as shown. `words` is the text's `tsvector`, made by
///   the writer with SQLite's tokenizer (`lexemes.rs`), under a GIN index; a search looks in
///   one stay at a time through `messages_by_channel`, and in the user's own and private
///   messages through `messages_by_sender` and `messages_by_recipient`, so that it costs in
///   proportion to what the user may see.
/// - `memberships`: one row per stay of a user in a channel, `to_seq` NULL while it lasts.
///   `chat_memberships` applies joins and leaves in order, in one round trip: a leave ends
///   the user's open stay in the channel; a rejoin with no message of the channel since the
///   last stay ended continues that stay (so that joins cannot make a search cost more than
///   what it may see), any other join begins a new one.
/// - `offline`: private messages waiting for their recipient (by key); an identity column, so
///   that an id is never reused and a late delete only removes the message it was meant for.
/// - `state`: the last seq used, and `members_ok_seq`: every membership change up to it is
///   stored (a change lost while the database was away holds it back, so that a restart never
///   widens what a search shows).
const V1: &str = "
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL UNIQUE,
    name text NOT NULL,
    password_hash text,
    created bigint NOT NULL,
    history_from bigint NOT NULL DEFAULT 0
);
CREATE TABLE channels (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL UNIQUE,
    name text NOT NULL,
    created bigint NOT NULL
);
CREATE TABLE messages (
    seq bigint PRIMARY KEY,
    time bigint NOT NULL,
    channel_id bigint,
    sender text NOT NULL,
    sender_id bigint NOT NULL,
    recipient text,
    recipient_id bigint,
    text text NOT NULL,
    words tsvector NOT NULL
);
CREATE INDEX messages_by_channel ON messages (channel_id, seq);
CREATE INDEX messages_by_sender ON messages (sender_id, seq);
CREATE INDEX messages_by_recipient ON messages (recipient_id, seq) WHERE recipient_id IS NOT NULL;
CREATE INDEX messages_words ON messages USING gin (words);
CREATE TABLE memberships (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL,
    channel_id bigint NOT NULL,
    from_seq bigint NOT NULL,
    to_seq bigint
);
CREATE INDEX stays_by_user ON memberships (user_id, channel_id, from_seq);
CREATE FUNCTION chat_memberships(joins boolean[], user_ids bigint[], channel_ids bigint[],
                                 seqs bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    last_id bigint;
    last_to bigint;
BEGIN
    FOR i IN 1 .. coalesce(array_length(seqs, 1), 0) LOOP
        IF joins[i] THEN
            SELECT id, to_seq INTO last_id, last_to FROM memberships
            WHERE user_id = user_ids[i] AND channel_id = channel_ids[i]
            ORDER BY from_seq DESC LIMIT 1;
            IF last_to IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM messages
                WHERE channel_id = channel_ids[i] AND seq > last_to AND seq < seqs[i]
            ) THEN
                UPDATE memberships SET to_seq = NULL WHERE id = last_id;
            ELSE
                INSERT INTO memberships (user_id, channel_id, from_seq, to_seq)
                VALUES (user_ids[i], channel_ids[i], seqs[i], NULL);
            END IF;
        ELSE
            UPDATE memberships SET to_seq = seqs[i]
            WHERE user_id = user_ids[i] AND channel_id = channel_ids[i] AND to_seq IS NULL;
        END IF;
    END LOOP;
END
$$;
CREATE TABLE offline (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time bigint NOT NULL,
    sender text NOT NULL,
    recipient text NOT NULL,
    recipient_key text NOT NULL,
    text text NOT NULL
);
CREATE INDEX offline_by_recipient ON offline (recipient_key, id);
CREATE TABLE state (
    id integer PRIMARY KEY CHECK (id = 0),
    last_seq bigint NOT NULL,
    members_ok_seq bigint NOT NULL
);
INSERT INTO state (id, last_seq, members_ok_seq) VALUES (0, 0, 0);
";

/// Version 2: the cluster's node numbers. A sequence in the database, which lasts, rather
/// than a counter in Redis, which a restart may empty (two nodes would then share a number
/// and ignore each other's events).
const V2: &str = "
CREATE SEQUENCE node_numbers;
";

/// The migrations, oldest first; never edit one that has shipped, append a new one.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The next node number of the cluster on this database (see [`V2`]).
pub(super) fn next_node_number(client: &mut Client) -> Result<u64, StorageError> {
    let n: i64 = client
        .query_one("SELECT nextval('node_numbers')", &[])?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The advisory lock that migrations hold (any number; this one spells "chat").
const MIGRATION_LOCK: i64 = 0x6368_6174;

/// The schema version this program writes.
pub(in crate::storage) fn current_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Applies the missing migrations in one transaction.
pub(super) fn migrate(client: &mut Client) -> Result<(), StorageError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             id integer PRIMARY KEY CHECK (id = 0),
             version bigint NOT NULL
         );
         INSERT INTO schema_version (id, version) VALUES (0, 0) ON CONFLICT (id) DO NOTHING;",
    )?;
    let found: i64 = tx
        .query_one("SELECT version FROM schema_version WHERE id = 0", &[])?
        .try_get(0)?;
    let supported = current_version();
    if found > supported {
        return Err(StorageError::SchemaTooNew { found, supported });
    }
    let start = usize::try_from(found).unwrap_or(0);
    for (i, step) in MIGRATIONS.iter().enumerate().skip(start) {
        log::info!(
            "storage: migrating the PostgreSQL schema to version {}",
            i + 1
        );
        tx.batch_execute(step)?;
    }
    if found != supported {
        tx.execute(
            "UPDATE schema_version SET version = $1 WHERE id = 0",
            &[&supported],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Reads what the hub needs, and closes the memberships a crash (or a shutdown) left open, as
/// `sqlite/schema.rs` does: at a new seq one past `members_ok_seq`.
pub(super) fn startup(client: &mut Client, close_open: bool) -> Result<Startup, StorageError> {
    let mut tx = client.transaction()?;
    let row = tx.query_one(
        "SELECT last_seq, members_ok_seq FROM state WHERE id = 0 FOR UPDATE",
        &[],
    )?;
    let (stored, members_ok): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let newest: Option<i64> = tx
        .query_one("SELECT max(seq) FROM messages", &[])?
        .try_get(0)?;
    let mut last = stored.max(newest.unwrap_or(0)).max(0);

    let open: i64 = tx
        .query_one(
            "SELECT count(*) FROM memberships WHERE to_seq IS NULL AND $1",
            &[&close_open],
        )?
        .try_get(0)?;
    if open > 0 {
        let close_at = members_ok.min(last).saturating_add(1);
        last = last.max(close_at);
        tx.execute(
            "UPDATE memberships SET to_seq = GREATEST($1, from_seq) WHERE to_seq IS NULL",
            &[&close_at],
        )?;
        log::debug!("storage: closed {open} stays left open, at seq {close_at}");
    }
    tx.execute(
        "UPDATE state SET last_seq = $1, members_ok_seq = $1 WHERE id = 0",
        &[&last],
    )?;

    let mut startup = Startup {
        last_seq: u64::try_from(last).unwrap_or(0),
        ..Startup::default()
    };
    for row in tx.query(
        "SELECT key, name, password_hash, history_from FROM users",
        &[],
    )? {
        let key: String = row.try_get(0)?;
        if let Some(hash) = row.try_get::<_, Option<String>>(2)? {
            let from: i64 = row.try_get(3)?;
            let entry = RegisteredName {
                name: row.try_get(1)?,
                history_from: u64::try_from(from).unwrap_or(0),
                hash,
            };
            startup.registered.insert(key.clone(), entry);
        }
        startup.known.insert(key);
    }
    for row in tx.query(
        "SELECT recipient_key, count(*) FROM offline GROUP BY recipient_key",
        &[],
    )? {
        let n: i64 = row.try_get(1)?;
        startup
            .offline
            .insert(row.try_get(0)?, usize::try_from(n).unwrap_or(0));
    }
    for row in tx.query("SELECT name FROM channels ORDER BY id", &[])? {
        startup.channels.push(row.try_get(0)?);
    }
    tx.commit()?;
    Ok(startup)
}
