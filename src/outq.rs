//! Output queues that share frames: a frame relayed to a whole channel is stored once per turn
//! of the event loop, in a [`TurnLog`], and each member's queue holds only byte ranges of it.
//! The loop then writes each connection once with `writev`, straight from the log.
//!
//! Under load this removes the one copy per delivery that a private queue costs (200 bytes into
//! a buffer of each member, which the kernel then copies again), and the kernel copies from a
//! log that stays in the cache because every member reads the same bytes.
//!
//! A connection's queue is its older output first (`own`: bytes left over from earlier turns,
//! in a private buffer) and then this turn's ranges of the log, in the order they were queued.
//! Whatever a turn cannot write is copied into `own` before the log is cleared (see
//! [`OutQueue::materialize`]), so the log only ever holds the current turn.

use std::io::{self, IoSlice, Write};

use crate::conn::BufPool;

/// The log holds at most this many bytes per turn; past it, frames are queued privately.
const LOG_MAX: usize = 64 << 20;
/// A log that grew past this in a burst gives the memory back when cleared.
const LOG_KEEP: usize = 4 << 20;
/// The most ranges handed to one `writev`.
const MAX_IOV: usize = 64;
/// No range: the end of a chain.
const NONE: u32 = u32::MAX;

/// A run of bytes in the log, and the next run of the same queue.
#[derive(Debug, Clone, Copy)]
struct Seg {
    start: u32,
    len: u32,
    next: u32,
}

/// This turn's frames, each stored once however many queues refer to it.
#[derive(Debug, Default)]
pub struct TurnLog {
    bytes: Vec<u8>,
    segs: Vec<Seg>,
    /// Counts the turns, so that a queue can tell a chain of an earlier turn (a bug) from one
    /// of this turn.
    turn: u32,
}

impl TurnLog {
    /// Stores bytes; returns where (start, length), or None when the log is full for this
    /// turn.
    pub fn push(&mut self, bytes: &[u8]) -> Option<(u32, u32)> {
        self.append(|buf| buf.extend_from_slice(bytes))
    }

    /// Stores what `render` appends (an event rendered once for every queue that shares it);
    /// returns where, or None (storing nothing) when the log is full for this turn or the
    /// rendering is empty.
    pub fn append(&mut self, render: impl FnOnce(&mut Vec<u8>)) -> Option<(u32, u32)> {
        let start = self.bytes.len();
        render(&mut self.bytes);
        let len = self.bytes.len() - start;
        if len == 0 || self.bytes.len() > LOG_MAX {
            self.bytes.truncate(start);
            return None;
        }
        Some((start as u32, len as u32))
    }

    /// The bytes stored at `(start, len)` this turn.
    pub fn bytes(&self, start: u32, len: u32) -> &[u8] {
        &self.bytes[start as usize..(start + len) as usize]
    }

    /// Forgets this turn. Every queue with ranges must have been flushed or materialized.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.segs.clear();
        if self.bytes.capacity() > LOG_KEEP {
            self.bytes.shrink_to(LOG_KEEP);
        }
        self.turn = self.turn.wrapping_add(1);
    }

    /// Bytes stored this turn.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when nothing was stored this turn.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn seg_bytes(&self, seg: Seg, skip: u32) -> &[u8] {
        &self.bytes[(seg.start + skip) as usize..(seg.start + seg.len) as usize]
    }
}

/// One connection's output: older bytes of its own, then this turn's ranges of the log.
#[derive(Debug)]
pub struct OutQueue {
    own: Vec<u8>,
    /// Bytes of `own` already written.
    own_pos: usize,
    /// The chain of ranges in the log (`NONE` when empty), and the bytes of the first range
    /// already written.
    head: u32,
    tail: u32,
    head_skip: u32,
    /// Bytes in the chain not yet written.
    shared: u32,
    /// The log's turn the chain belongs to.
    turn: u32,
}

impl Default for OutQueue {
    fn default() -> Self {
        OutQueue {
            own: Vec::new(),
            own_pos: 0,
            head: NONE,
            tail: NONE,
            head_skip: 0,
            shared: 0,
            turn: 0,
        }
    }
}

impl OutQueue {
    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.own.len() - self.own_pos + self.shared as usize
    }

    /// Queues the `len` bytes stored in the log at `start`. Consecutive ranges of the log
    /// extend one range, so a member of a busy channel gets a few ranges per turn, not one per
    /// message.
    #[inline]
    pub fn push_shared(&mut self, log: &mut TurnLog, start: u32, len: u32) {
        if self.head != NONE {
            if self.turn != log.turn {
                // A chain the loop forgot to flush before clearing the log: a bug. Its bytes
                // are gone; say so loudly rather than send someone else's.
                log::error!("output queue: ranges of an earlier turn dropped");
                debug_assert!(false, "a chain outlived its turn");
                self.reset_chain();
            } else {
                let tail = &mut log.segs[self.tail as usize];
                if tail.start + tail.len == start {
                    tail.len += len;
                    self.shared += len;
                    return;
                }
            }
        }
        let index = log.segs.len() as u32;
        log.segs.push(Seg {
            start,
            len,
            next: NONE,
        });
        if self.head == NONE {
            self.head = index;
            self.head_skip = 0;
            self.turn = log.turn;
        } else {
            log.segs[self.tail as usize].next = index;
        }
        self.tail = index;
        self.shared += len;
    }

    /// Queues bytes in the private buffer, after everything queued so far (the fallback when
    /// the log is full).
    pub fn push_own(&mut self, bytes: &[u8], log: &TurnLog, pool: &mut BufPool) {
        self.materialize(log, pool);
        if self.own.capacity() == 0 {
            self.own = pool.take();
        }
        self.own.extend_from_slice(bytes);
    }

    /// Copies the chain's unwritten bytes into the private buffer, so that the log can be
    /// cleared.
    pub fn materialize(&mut self, log: &TurnLog, pool: &mut BufPool) {
        if self.head == NONE {
            return;
        }
        if self.turn != log.turn {
            log::error!("output queue: ranges of an earlier turn dropped");
            debug_assert!(false, "a chain outlived its turn");
            self.reset_chain();
            return;
        }
        if self.own.capacity() == 0 {
            self.own = pool.take();
        }
        let mut s = self.head;
        let mut skip = self.head_skip;
        while s != NONE {
            let seg = log.segs[s as usize];
            self.own.extend_from_slice(log.seg_bytes(seg, skip));
            skip = 0;
            s = seg.next;
        }
        self.reset_chain();
    }

    fn reset_chain(&mut self) {
        self.head = NONE;
        self.tail = NONE;
        self.head_skip = 0;
        self.shared = 0;
    }

    /// Writes as much as `w` takes, with as few calls as it takes; what it does not take is
    /// kept (copied out of the log). An emptied private buffer goes back to `pool`.
    pub fn flush(
        &mut self,
        w: &mut impl Write,
        log: &TurnLog,
        pool: &mut BufPool,
    ) -> io::Result<()> {
        if self.head != NONE && self.turn != log.turn {
            log::error!("output queue: ranges of an earlier turn dropped");
            debug_assert!(false, "a chain outlived its turn");
            self.reset_chain();
        }
        let result = self.write_out(w, log);
        // Whatever is left must survive the log.
        self.materialize(log, pool);
        if self.own_pos == self.own.len() {
            self.own_pos = 0;
            pool.give(std::mem::take(&mut self.own));
        } else if self.own_pos >= self.own.len() / 2 {
            // Keep the buffer from growing without end under a steady partial-write load.
            self.own.drain(..self.own_pos);
            self.own_pos = 0;
        }
        result
    }

    fn write_out(&mut self, w: &mut impl Write, log: &TurnLog) -> io::Result<()> {
        loop {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            if self.own_pos < self.own.len() {
                iov[0] = IoSlice::new(&self.own[self.own_pos..]);
                n = 1;
            }
            let mut s = self.head;
            let mut skip = self.head_skip;
            while s != NONE && n < MAX_IOV {
                let seg = log.segs[s as usize];
                iov[n] = IoSlice::new(log.seg_bytes(seg, skip));
                n += 1;
                skip = 0;
                s = seg.next;
            }
            if n == 0 {
                return Ok(());
            }
            // One range is the common case at low load: a plain send is a little cheaper
            // than writev in the kernel.
            let result = if n == 1 {
                w.write(&iov[0])
            } else {
                w.write_vectored(&iov[..n])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.consume(written, log),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks `n` bytes as written: the private ones first, then the chain's.
    fn consume(&mut self, mut n: usize, log: &TurnLog) {
        let own = (self.own.len() - self.own_pos).min(n);
        self.own_pos += own;
        n -= own;
        while n > 0 && self.head != NONE {
            let seg = log.segs[self.head as usize];
            let left = (seg.len - self.head_skip) as usize;
            if n >= left {
                n -= left;
                self.shared -= left as u32;
                self.head = seg.next;
                self.head_skip = 0;
            } else {
                self.head_skip += n as u32;
                self.shared -= n as u32;
                n = 0;
            }
        }
        if self.head == NONE {
            self.reset_chain();
        }
    }

    /// Gives the private buffer back (the connection is being removed).
    pub fn release(&mut self, pool: &mut BufPool) {
        self.reset_chain();
        self.own_pos = 0;
        pool.give(std::mem::take(&mut self.own));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{pad, Frame, FRAME_LEN};

    /// A socket that takes at most `room` bytes in all (then would block), and at most `per`
    /// bytes per call.
    struct Sink {
        got: Vec<u8>,
        room: usize,
        per: usize,
        calls: usize,
    }

    impl Sink {
        fn new(room: usize, per: usize) -> Sink {
            Sink {
                got: Vec::new(),
                room,
                per,
                calls: 0,
            }
        }

        fn texts(&self) -> Vec<String> {
            self.got
                .chunks(FRAME_LEN)
                .map(|f| crate::frame::decode(f).into_owned())
                .collect()
        }
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let mut budget = self.room.min(self.per);
            if budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(budget);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                budget -= take;
                if budget == 0 {
                    break;
                }
            }
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn f(text: &str) -> Frame {
        pad(text).unwrap()
    }

    #[test]
    fn consecutive_frames_make_one_range_and_one_write() {
        let mut log = TurnLog::default();
        let mut pool = BufPool::default();
        let (mut a, mut b) = (OutQueue::default(), OutQueue::default());
        for t in ["one", "two", "three"] {
            let (at, len) = log.push(&f(t)).unwrap();
            a.push_shared(&mut log, at, len);
            b.push_shared(&mut log, at, len);
        }
        assert_eq!(log.len(), 3 * FRAME_LEN, "each frame stored once");
        assert_eq!(log.segs.len(), 2, "one range per queue");
        assert_eq!(a.queued(), 3 * FRAME_LEN);
        let mut sa = Sink::new(usize::MAX, usize::MAX);
        a.flush(&mut sa, &log, &mut pool).unwrap();
        assert_eq!(sa.texts(), ["one", "two", "three"]);
        assert_eq!(sa.calls, 1);
        assert_eq!(a.queued(), 0);
        let mut sb = Sink::new(usize::MAX, 7);
        b.flush(&mut sb, &log, &mut pool).unwrap();
        assert_eq!(sb.texts(), ["one", "two", "three"]);
    }

    #[test]
    fn a_member_skipped_for_its_own_message_gets_the_rest_in_order() {
        let mut log = TurnLog::default();
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        let (first, len) = log.push(&f("from a")).unwrap();
        q.push_shared(&mut log, first, len);
        let _own_message = log.push(&f("from q itself")).unwrap();
        let (third, len) = log.push(&f("from b")).unwrap();
        q.push_shared(&mut log, third, len);
        let mut s = Sink::new(usize::MAX, usize::MAX);
        q.flush(&mut s, &log, &mut pool).unwrap();
        assert_eq!(s.texts(), ["from a", "from b"]);
    }

    #[test]
    fn what_the_socket_does_not_take_survives_the_log_and_comes_first_next_turn() {
        let mut log = TurnLog::default();
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        for t in ["a", "b", "c"] {
            let (at, len) = log.push(&f(t)).unwrap();
            q.push_shared(&mut log, at, len);
        }
        // The socket takes one frame and a half, then is full.
        let mut s = Sink::new(300, usize::MAX);
        q.flush(&mut s, &log, &mut pool).unwrap();
        assert_eq!(q.queued(), 300);
        log.clear();
        // Next turn: a new frame queues behind the leftover.
        let (at, len) = log.push(&f("d")).unwrap();
        q.push_shared(&mut log, at, len);
        s.room = usize::MAX;
        q.flush(&mut s, &log, &mut pool).unwrap();
        assert_eq!(s.texts(), ["a", "b", "c", "d"]);
        assert_eq!(q.queued(), 0);
        // The emptied private buffer went back to the pool.
        assert!(pool.bytes() > 0);
    }

    #[test]
    fn materialize_keeps_the_order_for_a_queue_not_written_this_turn() {
        let mut log = TurnLog::default();
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        let (at, len) = log.push(&f("x")).unwrap();
        q.push_shared(&mut log, at, len);
        q.push_own(&f("y"), &log, &mut pool);
        let (at, len) = log.push(&f("z")).unwrap();
        q.push_shared(&mut log, at, len);
        q.materialize(&log, &mut pool);
        log.clear();
        let mut s = Sink::new(usize::MAX, 3);
        q.flush(&mut s, &log, &mut pool).unwrap();
        assert_eq!(s.texts(), ["x", "y", "z"]);
    }

    #[test]
    fn more_ranges_than_one_writev_takes_are_written_in_several() {
        let mut log = TurnLog::default();
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        let mut want = Vec::new();
        for i in 0..(MAX_IOV * 2 + 3) {
            let (at, len) = log.push(&f(&format!("m{i}"))).unwrap();
            // Every other frame, so that none of them join up.
            if i % 2 == 0 {
                q.push_shared(&mut log, at, len);
                want.push(format!("m{i}"));
            }
        }
        let mut s = Sink::new(usize::MAX, usize::MAX);
        q.flush(&mut s, &log, &mut pool).unwrap();
        assert_eq!(s.texts(), want);
        assert!(s.calls >= 2);
    }

    #[test]
    fn a_failed_write_is_reported() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut log = TurnLog::default();
        let mut pool = BufPool::default();
        let mut q = OutQueue::default();
        let (at, len) = log.push(&f("x")).unwrap();
        q.push_shared(&mut log, at, len);
        let err = q.flush(&mut Broken, &log, &mut pool).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
