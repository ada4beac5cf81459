//! What the storage threads share: the writer's job queue, the counters and the reply channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{ConnId, Reply, Request};

/// The most jobs in one transaction. Without a cap, a long queue would be committed all at
/// once, and its first message only when its last is written; with it, a message is durable
/// about as soon as the jobs ahead of it are written (a 1,000-job commit takes ~10 ms).
pub(super) const MAX_BATCH: usize = 1000;

/// Jobs nobody waits for (history events) are committed at most this often. Under a steady
/// load the event loop hands over a few messages per turn, and a commit of a few messages costs
/// many times more per message than one of hundreds (FTS5 writes an index segment per commit):
/// at 10,000 messages a second, per-turn commits took a fifth of the server's core. A job that
/// someone waits for is committed at once, and so is the first job after a quiet spell; the gap
/// is far inside the promise that a relayed message is committed within 100 ms.
pub(super) const COMMIT_GAP: Duration = Duration::from_millis(10);

/// A job for the writer thread.
#[derive(Debug)]
pub(super) enum Job {
    /// A request from the event loop.
    Request(Request),
    /// A registration whose password the hasher has hashed: store it.
    StoreHash {
        conn: ConnId,
        name: String,
        key: String,
        hash: String,
        history_from: u64,
    },
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// How many of `jobs` someone waits for (see [`COMMIT_GAP`]).
    urgent: usize,
    closing: bool,
}

impl Job {
    /// True when a connection waits for this job's reply.
    fn is_urgent(&self) -> bool {
        match self {
            Job::Request(request) => request.conn().is_some(),
            Job::StoreHash { .. } => true,
        }
    }
}

/// The state shared by the handle and the storage threads.
pub(super) struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Requests submitted and not finished; see [`super::StorageHandle::backlog`].
    pending: AtomicUsize,
    /// Password hashes being computed for a registration; the writer stops only once this is
    /// 0, so that a registration almost done at shutdown is still stored.
    hashing: AtomicUsize,
    /// Set once by `close`; lets the reader and hasher drop work whose reply nobody will read.
    closing: AtomicBool,
    waker: Arc<mio::Waker>,
    replies: Sender<Reply>,
}

impl Shared {
    pub(super) fn new(waker: Arc<mio::Waker>, replies: Sender<Reply>) -> Self {
        Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            pending: AtomicUsize::new(0),
            hashing: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            waker,
            replies,
        }
    }

    /// A panicking storage thread must not take the queue down with it.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a request from the event loop.
    pub(super) fn submit(&self, request: Request) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.push(Job::Request(request));
    }

    /// Queues requests from the event loop, under one lock and with one wake-up.
    pub(super) fn submit_all(&self, requests: &mut Vec<Request>) {
        if requests.is_empty() {
            return;
        }
        self.pending.fetch_add(requests.len(), Ordering::SeqCst);
        let urgent = requests.iter().filter(|r| r.conn().is_some()).count();
        let mut queue = self.lock();
        let was_empty = queue.jobs.is_empty();
        queue.urgent += urgent;
        queue.jobs.extend(requests.drain(..).map(Job::Request));
        drop(queue);
        // As in `push`: only a first or an urgent job can be waited for.
        if was_empty || urgent > 0 {
            self.ready.notify_one();
        }
    }

    /// Queues a job for the writer.
    pub(super) fn push(&self, job: Job) {
        let urgent = job.is_urgent();
        let mut queue = self.lock();
        let was_empty = queue.jobs.is_empty();
        queue.urgent += usize::from(urgent);
        queue.jobs.push_back(job);
        drop(queue);
        // A writer waits only for a first job or, holding back a commit, for an urgent one.
        if was_empty || urgent {
            self.ready.notify_one();
        }
    }

    pub(super) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Marks `n` requests as finished.
    pub(super) fn finished(&self, n: usize) {
        // Never below zero, even if a bug counted twice.
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(n))
            });
    }

    /// Counts a registration's hash being computed.
    pub(super) fn hashing_started(&self) {
        self.hashing.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a hasher job as done and wakes the writer, which may be waiting for it to stop.
    pub(super) fn hashing_done(&self) {
        // Under the lock, so the writer cannot miss the change between its check and its wait.
        let _queue = self.lock();
        let _ = self
            .hashing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
                Some(h.saturating_sub(1))
            });
        self.ready.notify_all();
    }

    /// Asks the threads to finish what is queued and stop.
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.lock().closing = true;
        self.ready.notify_all();
    }

    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Waits for jobs and takes them all, up to [`MAX_BATCH`]; an empty batch means: stop.
    ///
    /// When every queued job is one nobody waits for, waits until `due` (the last commit plus
    /// [`COMMIT_GAP`]), or until an urgent job, a full batch or the close arrives, so that a
    /// steady load is committed in large batches.
    ///
    /// The writer stops once storage is closing, the queue is empty and no registration is
    /// still being hashed (its result comes back as a job).
    pub(super) fn take_all(&self, due: Instant) -> VecDeque<Job> {
        let mut queue = self.lock();
        loop {
            if queue.jobs.len() > MAX_BATCH {
                let batch: VecDeque<Job> = queue.jobs.drain(..MAX_BATCH).collect();
                let taken = batch.iter().filter(|j| j.is_urgent()).count();
                queue.urgent = queue.urgent.saturating_sub(taken);
                return batch;
            }
            let wait = if queue.jobs.is_empty() {
                if queue.closing && self.hashing.load(Ordering::SeqCst) == 0 {
                    return VecDeque::new();
                }
                // The timeout only guards against a missed notification.
                Duration::from_secs(1)
            } else {
                let now = Instant::now();
                if queue.urgent > 0 || queue.closing || now >= due {
                    queue.urgent = 0;
                    return std::mem::take(&mut queue.jobs);
                }
                due - now
            };
            queue = match self.ready.wait_timeout(queue, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Sends replies to the event loop and wakes it once.
    pub(super) fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        let mut any = false;
        for reply in replies {
            // The receiver lives in the handle; once it is gone, nobody wants replies.
            let _ = self.replies.send(reply);
            any = true;
        }
        if any {
            if let Err(e) = self.waker.wake() {
                log::error!("storage: cannot wake the event loop: {e}");
            }
        }
    }
}
