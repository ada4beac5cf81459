//! `/search`: turning a user's term into a safe full-text query, the visibility rules, and the
//! reader threads that run searches on their own connections.

use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::queue::Shared;
use super::{ConnId, Reply, RequestKind, SearchHit};

/// At most this many results are returned: the newest matches, oldest first.
pub const MAX_SEARCH_RESULTS: usize = 20;

/// A search the writer hands to the readers once everything before it is committed.
#[derive(Debug)]
pub(super) struct SearchJob {
    pub conn: ConnId,
    pub user_key: String,
    /// Only messages with a greater seq.
    pub since_seq: u64,
    /// Only messages with this seq or less: the last one submitted before the search, so that
    /// the result is the same as if the search ran at its place in the queue.
    pub upto_seq: u64,
    pub term: String,
    /// Stays of this user whose end the writer could not store yet (a failing disk): each
    /// channel (by key) with the seq it was left at. The stored row still looks open; this
    /// closes it, so that a lost `/leave` never widens what the search shows.
    pub unstored_leaves: Vec<(String, u64)>,
    /// Membership changes were lost for good: who may see what is not known, so the search
    /// finds nothing rather than too much.
    pub blind: bool,
}

/// Splits a search term into words as SQLite's unicode61 tokenizer does: letters, digits and
/// private-use characters make words (combining marks continue one); anything else separates.
///
/// The tokenizer folds case and diacritics itself, so the words keep them.
pub(super) fn term_tokens(term: &str) -> Vec<&str> {
    term.split(|c: char| !is_token_char(c))
        .filter(|word| word.chars().any(|c| !is_combining_mark(c)))
        .collect()
}

fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || is_private_use(c) || is_combining_mark(c)
}

fn is_private_use(c: char) -> bool {
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}')
}

/// The blocks of combining diacritical marks.
fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// The FTS5 query for a term's words, each limited to the message text: every word quoted (so
/// no user input is ever query syntax), all required. `None` when the term has no word at all:
/// it finds nothing.
pub(super) fn fts_query(term: &str) -> Option<String> {
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

/// A seq as SQLite stores it.
fn sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The seqs of the matches within one scope token and seq range (exclusive at both ends).
fn matches_in(
    tx: &rusqlite::Transaction<'_>,
    words: &str,
    scope: &str,
    after: i64,
    before: i64,
    out: &mut Vec<i64>,
) -> rusqlite::Result<()> {
    if before <= after.saturating_add(1) {
        return Ok(());
    }
    let query = format!("scope : \"{scope}\" AND {words}");
    let mut stmt = tx.prepare_cached(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 AND rowid > ?2 AND rowid < ?3",
    )?;
    let mut rows = stmt.query(rusqlite::params![query, after, before])?;
    while let Some(row) = rows.next()? {
        out.push(row.get(0)?);
    }
    Ok(())
}

/// Runs a search: the total number of visible matches and the newest
/// [`MAX_SEARCH_RESULTS`] of them, oldest first.
///
/// Visible: what the user sent and its private messages (scope `u…`), and the channel
/// messages sent strictly inside one of its stays in that channel (scope `c…` within the
/// stay's seq range). Each of those is one index query, so a search costs in proportion to
/// what the user may see, however many others' messages match.
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
    let since = sql(job.since_seq);
    let upto_excl = sql(job.upto_seq).saturating_add(1);
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
    matches_in(
        &tx,
        &words,
        &format!("u{user}"),
        since,
        upto_excl,
        &mut seqs,
    )?;
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
    let stays: Vec<(i64, i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT channel_id, from_seq, to_seq FROM memberships
             WHERE user_id = ?1 AND (to_seq IS NULL OR to_seq > ?2)",
        )?
        .query_map(rusqlite::params![user, since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (channel, from, to) in stays {
        let end = match to {
            Some(to) => to,
            None => cut
                .iter()
                .filter(|&&(c, at)| c == channel && at > from)
                .map(|&(_, at)| at)
                .min()
                .unwrap_or(upto_excl),
        };
        let after = from.max(since);
        let before = end.min(upto_excl);
        matches_in(
            &tx,
            &words,
            &format!("c{channel}"),
            after,
            before,
            &mut seqs,
        )?;
    }
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs.dedup();
    let total = seqs.len();
    let mut hits = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT m.time, c.name, m.sender, m.recipient, m.text
             FROM messages AS m LEFT JOIN channels AS c ON c.id = m.channel_id
             WHERE m.seq = ?1",
        )?;
        for &seq in seqs.iter().take(MAX_SEARCH_RESULTS) {
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

/// A reader thread: runs searches as the writer hands them over, until the writer drops its
/// end. Once storage is closing, searches are skipped: nobody will read them.
pub(super) fn run(mut conn: Connection, shared: &Shared, jobs: &Mutex<Receiver<SearchJob>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        if shared.is_closing() {
            continue;
        }
        let reply = match search(&mut conn, &job) {
            Ok((total, results)) => Reply::Search {
                conn: job.conn,
                term: job.term,
                total,
                results,
            },
            Err(e) => {
                log::error!("storage: search for {:?} failed: {e}", job.term);
                Reply::Failed {
                    conn: Some(job.conn),
                    request: RequestKind::Search,
                    key: None,
                }
            }
        };
        shared.reply([reply]);
    }
}
