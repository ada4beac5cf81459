//! `/search` in SQLite: the FTS5 query for a term, and the index queries of one search.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::storage::search::{newest, sql, term_tokens, Range, SearchJob, Stay};
use crate::storage::SearchHit;

/// The FTS5 query for a term's words, each limited to the message text: every word quoted (so
/// no user input is ever query syntax), all required. `None` when the term has no word at all:
/// it finds nothing.
pub(in crate::storage) fn fts_query(term: &str) -> Option<String> {
    let words: Vec<String> = term_tokens(term)
        .into_iter()
        .map(|word| format!("text : \"{}\"", word.replace('"', "\"\"")))
        .collect();
    if words.is_empty() {
        None
    } else {
        Some(words.join(" AND "))
    }
}

/// The seqs of the matches within one scope token and seq range.
fn matches_in(
    tx: &rusqlite::Transaction<'_>,
    words: &str,
    scope: &str,
    range: Range,
    out: &mut Vec<i64>,
) -> rusqlite::Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let query = format!("scope : \"{scope}\" AND {words}");
    let mut stmt = tx.prepare_cached(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 AND rowid > ?2 AND rowid < ?3",
    )?;
    let mut rows = stmt.query(rusqlite::params![query, range.after, range.before])?;
    while let Some(row) = rows.next()? {
        out.push(row.get(0)?);
    }
    Ok(())
}

/// Runs a search (see `storage/search.rs` for what is visible): the user's own and private
/// messages are scope `u…`, each stay is scope `c…` within the stay's seq range.
pub(super) fn search(
    conn: &mut Connection,
    job: &SearchJob,
) -> rusqlite::Result<(usize, Vec<SearchHit>)> {
    let Some(words) = fts_query(&job.term) else {
        return Ok((0, Vec::new()));
    };
    if job.blind {
        return Ok((0, Vec::new()));
    }
    // One read transaction: a consistent snapshot while the writer goes on committing.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let user: Option<i64> = tx
        .prepare_cached("SELECT id FROM users WHERE key = ?1")?
        .query_row([&job.user_key], |r| r.get(0))
        .optional()?;
    let Some(user) = user else {
        return Ok((0, Vec::new()));
    };
    let mut seqs = Vec::new();
    matches_in(&tx, &words, &format!("u{user}"), job.own_range(), &mut seqs)?;
    let mut cut: Vec<(i64, i64)> = Vec::new();
    for (channel, seq) in &job.unstored_leaves {
        let id: Option<i64> = tx
            .prepare_cached("SELECT id FROM channels WHERE key = ?1")?
            .query_row([channel], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            cut.push((id, sql(*seq)));
        }
    }
    let stays: Vec<Stay> = tx
        .prepare_cached(
            "SELECT channel_id, from_seq, to_seq FROM memberships
             WHERE user_id = ?1 AND (to_seq IS NULL OR to_seq > ?2)",
        )?
        .query_map(rusqlite::params![user, sql(job.since_seq)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (channel, range) in job.stay_ranges(&stays, &cut) {
        matches_in(&tx, &words, &format!("c{channel}"), range, &mut seqs)?;
    }
    let (total, seqs) = newest(seqs);
    let mut hits = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT m.time, c.name, m.sender, m.recipient, m.text
             FROM messages AS m LEFT JOIN channels AS c ON c.id = m.channel_id
             WHERE m.seq = ?1",
        )?;
        for &seq in &seqs {
            let hit = stmt
                .query_row([seq], |row| {
                    Ok(SearchHit {
                        seq: u64::try_from(seq).unwrap_or(0),
                        time: row.get(0)?,
                        channel: row.get(1)?,
                        sender: row.get(2)?,
                        recipient: row.get(3)?,
                        text: row.get(4)?,
                    })
                })
                .optional()?;
            hits.extend(hit);
        }
    }
    tx.finish()?;
    hits.reverse();
    Ok((total, hits))
}
