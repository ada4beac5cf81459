//! `/search`: the words of a term, the visibility rules, and the reader threads that run
//! searches on their own connections. Each engine turns the words into its own safe query
//! (`sqlite/search.rs`, `postgres/search.rs`); what is visible is decided here, for both.
//!
//! Visible: what the user sent and its private messages, and the channel messages sent
//! strictly inside one of its stays in that channel. Each of those is one index query (own and
//! private messages; one per stay, within the stay's seq range), so a search costs in
//! proportion to what the user may see, however many others' messages match.

use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};

use super::backend::Reader;
use super::queue::Shared;
use super::{ConnId, Reply, RequestKind};

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

/// A seq as both engines store it.
pub(super) fn sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// One stay of the searching user in a channel, as stored: its channel id, the seq it began
/// at and the seq it ended at (`None` while it lasts, as far as the database knows).
pub(super) type Stay = (i64, i64, Option<i64>);

/// A seq range to look in, exclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub after: i64,
    pub before: i64,
}

impl Range {
    /// True when no seq lies strictly inside.
    pub(super) fn is_empty(&self) -> bool {
        self.before <= self.after.saturating_add(1)
    }
}

impl SearchJob {
    /// The range of the user's own and private messages: after `since_seq`, up to `upto_seq`.
    pub(super) fn own_range(&self) -> Range {
        Range {
            after: sql(self.since_seq),
            before: sql(self.upto_seq).saturating_add(1),
        }
    }

    /// The channel ranges to look in, one per stay (empty ones left out), each as (channel id,
    /// range): the stay's seqs, cut by `since_seq` and `upto_seq`; a stay that still looks
    /// open but whose leave is not stored yet (`cut`: channel id and leave seq, from
    /// [`SearchJob::unstored_leaves`]) ends at that leave.
    pub(super) fn stay_ranges(&self, stays: &[Stay], cut: &[(i64, i64)]) -> Vec<(i64, Range)> {
        let own = self.own_range();
        stays
            .iter()
            .filter_map(|&(channel, from, to)| {
                let end = match to {
                    Some(to) => to,
                    None => cut
                        .iter()
                        .filter(|&&(c, at)| c == channel && at > from)
                        .map(|&(_, at)| at)
                        .min()
                        .unwrap_or(own.before),
                };
                let range = Range {
                    after: from.max(own.after),
                    before: end.min(own.before),
                };
                (!range.is_empty()).then_some((channel, range))
            })
            .collect()
    }
}

/// The matches' seqs (in any order, possibly twice) as a search's answer: how many there are,
/// and the newest [`MAX_SEARCH_RESULTS`] of them, newest first.
pub(super) fn newest(mut seqs: Vec<i64>) -> (usize, Vec<i64>) {
    seqs.sort_unstable_by(|a, b| b.cmp(a));
    seqs.dedup();
    let total = seqs.len();
    seqs.truncate(MAX_SEARCH_RESULTS);
    (total, seqs)
}

/// A reader thread: runs searches as the writer hands them over, until the writer drops its
/// end. Once storage is closing, searches are skipped: nobody will read them.
pub(super) fn run<R: Reader>(mut reader: R, shared: &Shared, jobs: &Mutex<Receiver<SearchJob>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        if shared.is_closing() {
            continue;
        }
        let reply = match reader.search(&job) {
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
