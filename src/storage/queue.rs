//! What the storage threads share: the writer's job queue, the counters and the reply channel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{ConnId, Reply, Request};

/// The most jobs in one transaction. Without a cap, a long queue would be committed all at
/// once, and its first message only when its last is written; with it, a message is durable
/// about as soon as the jobs ahead of it are written (a 1,000-job commit takes ~10 ms).
pub(super) const MAX_BATCH: usize = 1000;

/// A job for the writer thread.
#[derive(Debug)]
pub(super) enum Job {
    /// A request from the event loop.
    Request(Request),
    /// A registration whose password the hasher has hashed: store it.
    StoreHash {
        conn: ConnId,
        name: String,
        hash: String,
        history_from: u64,
    },
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closing: bool,
}

/// The state shared by the handle and the storage threads.
pub(super) struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Requests submitted and not finished; see [`super::StorageHandle::backlog`].
    pending: AtomicUsize,
    /// Jobs handed to the hasher and not finished; the writer stops only once this is 0.
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
        self.lock()
            .jobs
            .extend(requests.drain(..).map(Job::Request));
        self.ready.notify_one();
    }

    /// Queues a job for the writer.
    pub(super) fn push(&self, job: Job) {
        self.lock().jobs.push_back(job);
        self.ready.notify_one();
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

    /// Counts a job handed to the hasher.
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
    /// The writer stops once storage is closing, the queue is empty and no registration is
    /// still being hashed (its result comes back as a job).
    pub(super) fn take_all(&self) -> VecDeque<Job> {
        let mut queue = self.lock();
        loop {
            if queue.jobs.len() > MAX_BATCH {
                return queue.jobs.drain(..MAX_BATCH).collect();
            }
            if !queue.jobs.is_empty() {
                return std::mem::take(&mut queue.jobs);
            }
            if queue.closing && self.hashing.load(Ordering::SeqCst) == 0 {
                return VecDeque::new();
            }
            // The timeout only guards against a missed notification; the condvar does the work.
            queue = match self.ready.wait_timeout(queue, Duration::from_secs(1)) {
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
