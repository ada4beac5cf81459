//! `/search`: turning a user's term into a safe full-text query, the visibility rules, and the
//! reader thread that runs searches on its own connection.

use std::sync::mpsc::Receiver;

use rusqlite::{Connection, TransactionBehavior};

use super::queue::Shared;
use super::{ConnId, Reply, RequestKind, SearchHit};

/// At most this many results are returned: the newest matches, oldest first.
pub const MAX_SEARCH_RESULTS: usize = 20;

/// A search the writer hands to the reader once everything before it is committed.
#[derive(Debug)]
pub(super) struct SearchJob {
    pub conn: ConnId,
    pub user: String,
    /// Only messages with a greater seq.
    pub since_seq: u64,
    /// Only messages with this seq or less: the last one submitted before the search, so that
    /// the result is the same as if the search ran at its place in the queue.
    pub upto_seq: u64,
    pub term: String,
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

/// The FTS5 query for a term: every word quoted (so no user input is ever query syntax), all
/// required. `None` when the term has no word at all: it finds nothing.
pub(super) fn fts_query(term: &str) -> Option<String> {
    let words: Vec<String> = term_tokens(term)
        .into_iter()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    if words.is_empty() {
        None
    } else {
        Some(words.join(" AND "))
    }
}

/// Every match the user may see, newest first; the caller counts them and keeps the first few.
///
/// Visible: what the user sent; private messages to it; channel messages sent strictly inside
/// one of its stays in that channel (`join_seq < seq < leave_seq`, or the stay is not over).
const SEARCH_SQL: &str = "
SELECT m.seq, m.time, m.channel, m.sender, m.recipient, m.text
FROM messages_fts
JOIN messages AS m ON m.seq = messages_fts.rowid
WHERE messages_fts MATCH ?1
  AND messages_fts.rowid > ?2
  AND messages_fts.rowid <= ?3
  AND (
    m.sender = ?4
    OR (m.channel IS NULL AND m.recipient = ?4)
    OR (m.channel IS NOT NULL AND EXISTS (
      SELECT 1 FROM memberships AS ms
      WHERE ms.user = ?4 AND ms.channel = m.channel
        AND ms.join_seq < m.seq
        AND (ms.leave_seq IS NULL OR m.seq < ms.leave_seq)
    ))
  )
ORDER BY messages_fts.rowid DESC
";

/// Runs a search: the total number of visible matches and the newest
/// [`MAX_SEARCH_RESULTS`] of them, oldest first.
pub(super) fn search(
    conn: &mut Connection,
    user: &str,
    since_seq: u64,
    upto_seq: u64,
    term: &str,
) -> rusqlite::Result<(usize, Vec<SearchHit>)> {
    let Some(query) = fts_query(term) else {
        return Ok((0, Vec::new()));
    };
    let since = i64::try_from(since_seq).unwrap_or(i64::MAX);
    let upto = i64::try_from(upto_seq).unwrap_or(i64::MAX);
    // One read transaction: a consistent snapshot while the writer goes on committing.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let mut total = 0;
    let mut hits = Vec::new();
    {
        let mut stmt = tx.prepare_cached(SEARCH_SQL)?;
        let mut rows = stmt.query(rusqlite::params![query, since, upto, user])?;
        while let Some(row) = rows.next()? {
            total += 1;
            if hits.len() < MAX_SEARCH_RESULTS {
                hits.push(SearchHit {
                    seq: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                    time: row.get(1)?,
                    channel: row.get(2)?,
                    sender: row.get(3)?,
                    recipient: row.get(4)?,
                    text: row.get(5)?,
                });
            }
        }
    }
    tx.finish()?;
    hits.reverse();
    Ok((total, hits))
}

/// The reader thread: runs searches in the order the writer hands them over, until the
/// writer drops its end. Once storage is closing, searches are skipped: nobody will read them.
pub(super) fn run(mut conn: Connection, shared: &Shared, jobs: &Receiver<SearchJob>) {
    while let Ok(job) = jobs.recv() {
        if !shared.is_closing() {
            let reply = match search(&mut conn, &job.user, job.since_seq, job.upto_seq, &job.term) {
                Ok((total, results)) => Reply::Search {
                    conn: job.conn,
                    term: job.term,
                    total,
                    results,
                },
                Err(e) => {
                    log::error!("storage: search for {:?} failed: {e}", job.term);
                    Reply::Failed {
                        conn: job.conn,
                        request: RequestKind::Search,
                    }
                }
            };
            shared.finished(1);
            shared.reply([reply]);
        } else {
            shared.finished(1);
        }
    }
}
