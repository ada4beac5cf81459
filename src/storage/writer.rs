//! The writer thread: takes every queued job, applies them in one transaction, commits, then
//! sends the replies (so a confirmation never goes out before its commit). The database is a
//! [`Backend`]; everything here is the same for every engine.
//!
//! Failures: a request whose statements fail while the transaction survives (SQLite undoes
//! just that statement; PostgreSQL replays the batch with a savepoint per job) is logged and
//! answered with [`Reply::Failed`]; the rest of the batch commits. When the transaction itself
//! fails (at BEGIN or COMMIT, or a statement error that rolls it back, such as a full disk or a
//! lost connection), the batch is retried a few times within a fraction of a second, then given
//! up, so that chat goes on while the disk is full or the database away (said once per episode
//! in the log, with counts when it ends): the requests someone waits for are answered with
//! [`Reply::Failed`]; the **events** (messages, joins, leaves, names, channels) are kept, in
//! order, and applied before every later batch until they are stored, so that a database
//! restart loses no history. Membership changes are kept up to [`MAX_UNSTORED`] (who may see
//! what must never be widened by a lost `/leave`; searches meanwhile know of it, see
//! [`SearchJob`]); the other events up to [`MAX_KEPT_MESSAGES`], past which they are lost
//! (and counted).

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::{Applied, Backend};
use super::queue::{Job, Shared, COMMIT_GAP};
use super::search::SearchJob;
use super::{Event, Reply, Request, RequestKind};
use crate::names::channel_key;

/// How many times a batch whose transaction fails is tried before it is given up, while the
/// disk is not known to be failing.
const MAX_ATTEMPTS: u32 = 3;
/// The pause after the first failed attempt; it doubles after each (20 + 40 ms).
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// Membership changes kept for retrying at most; past it they are dropped and searches find
/// nothing (rather than too much) until the next start.
const MAX_UNSTORED: usize = 100_000;
/// Other events (messages above all) kept for retrying at most, while storage fails: about
/// 15 MB, a long database restart's worth of chat on a busy server.
const MAX_KEPT_MESSAGES: usize = 50_000;

/// What a job leads to once its transaction is committed.
enum Outcome {
    /// Finished, with no reply.
    Done,
    /// Finished; send this reply.
    Reply(Reply),
    /// Hand over to the readers.
    Search(SearchJob),
}

pub(super) struct Writer<B: Backend> {
    db: B,
    shared: Arc<Shared>,
    /// The highest seq of any event committed (or given up) so far.
    last_seq: u64,
    reader: Sender<SearchJob>,
    /// Events of failed batches, in order, applied before every batch until stored.
    unstored: Vec<Event>,
    /// How many of `unstored` are not membership changes.
    kept_messages: usize,
    /// Membership changes were dropped: searches find nothing until the next start.
    blind: bool,
    /// Since when the disk has failed every batch, and how many requests were lost.
    failing: Option<(Instant, usize)>,
}

impl<B: Backend> Writer<B> {
    pub(super) fn new(
        db: B,
        shared: Arc<Shared>,
        last_seq: u64,
        reader: Sender<SearchJob>,
    ) -> Self {
        Writer {
            db,
            shared,
            last_seq,
            reader,
            unstored: Vec::new(),
            kept_messages: 0,
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
                "storage: {} events ({} of them membership changes) could not be stored; the \
                 next start closes the stays they concern where storage last knew them",
                self.unstored.len(),
                self.unstored.len() - self.kept_messages
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
                    self.last_seq = last_seq;
                    let late = self.unstored.len();
                    self.unstored.clear();
                    self.kept_messages = 0;
                    if let Some((since, lost)) = self.failing.take() {
                        log::warn!(
                            "storage: history is being stored again, after {:.1} s: {late} \
                             kept events are stored now, {lost} requests were lost",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    self.dispatch(outcomes, from_loop);
                    return;
                }
                Err(e) => {
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
    fn give_up(&mut self, batch: &VecDeque<Job>, from_loop: usize, error: Option<B::Error>) {
        let error = error.map_or_else(|| "unknown error".to_string(), |e| e.to_string());
        if self.failing.is_none() {
            log::error!(
                "storage: history is not being stored: {error}; chat goes on, and its events \
                 are kept until they can be stored"
            );
            self.failing = Some((Instant::now(), 0));
        }
        let mut lost = 0;
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            if let Job::Request(Request::Event(event)) = job {
                if let Some(seq) = event.seq() {
                    self.last_seq = self.last_seq.max(seq);
                }
                if !event.is_membership() {
                    if self.kept_messages < MAX_KEPT_MESSAGES {
                        self.unstored.push(event.clone());
                        self.kept_messages += 1;
                    } else {
                        log::debug!("storage: lost {}", describe(job));
                        lost += 1;
                    }
                } else if self.unstored.len() - self.kept_messages < MAX_UNSTORED {
                    self.unstored.push(event.clone());
                } else if !self.blind {
                    log::error!(
                        "storage: more than {MAX_UNSTORED} membership changes could not \
                             be stored; searches find nothing until the server restarts"
                    );
                    self.blind = true;
                }
            } else if !matches!(job, Job::Request(Request::Search { .. })) {
                // Refused (whoever waits for it is told).
                lost += 1;
            }
            outcomes.push(match job {
                // A search only reads: it runs even while writes fail.
                Job::Request(Request::Search {
                    conn,
                    user_key,
                    since_seq,
                    upto_seq,
                    term,
                }) => Outcome::Search(search_job(
                    &self.unstored,
                    self.blind,
                    self.last_seq.max(upto_seq.unwrap_or(0)),
                    *conn,
                    user_key,
                    *since_seq,
                    term,
                )),
                _ => failed(job),
            });
        }
        if let Some((_, total)) = &mut self.failing {
            *total += lost;
        }
        self.dispatch(outcomes, from_loop);
    }

    /// One transaction over the kept membership changes and the batch: the outcomes and the
    /// new last seq, once committed.
    fn apply(&mut self, batch: &VecDeque<Job>) -> Result<(Vec<Outcome>, u64), B::Error> {
        // Searches are not the database's business until the readers run them: each one sees
        // what was submitted before it, so it is given the last seq at its place in the batch.
        let mut last_seq = self.last_seq;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut jobs = Vec::with_capacity(batch.len());
        for job in batch {
            if let Job::Request(Request::Event(event)) = job {
                if let Some(seq) = event.seq() {
                    last_seq = last_seq.max(seq);
                }
            }
            match job {
                Job::Request(Request::Search {
                    conn,
                    user_key,
                    since_seq,
                    upto_seq,
                    term,
                }) => outcomes.push(Some(Outcome::Search(search_job(
                    &self.unstored,
                    self.blind,
                    last_seq.max(upto_seq.unwrap_or(0)),
                    *conn,
                    user_key,
                    *since_seq,
                    term,
                )))),
                _ => {
                    outcomes.push(None);
                    jobs.push(job);
                }
            }
        }
        let mut applied = self.db.apply(&self.unstored, &jobs, last_seq)?.into_iter();
        let mut jobs = jobs.into_iter();
        let outcomes = outcomes
            .into_iter()
            .filter_map(|outcome| match outcome {
                Some(search) => Some(search),
                None => jobs.next().map(|job| match applied.next() {
                    Some(Applied::Done) => Outcome::Done,
                    Some(Applied::Reply(reply)) => Outcome::Reply(reply),
                    // Failed, or (a bug) not answered for at all: whoever waits is told.
                    Some(Applied::Failed) | None => failed(job),
                }),
            })
            .collect();
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
pub(super) fn describe(job: &Job) -> String {
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
