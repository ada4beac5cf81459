//! Sequence numbers for a cluster: a hybrid logical clock, so that every node numbers its
//! events uniquely and in an order that agrees with time and with what it has seen.
//!
//! History's visibility rules compare seqs across nodes (a message is visible inside a stay
//! in its channel), so the seqs of different nodes must be comparable: each is the time in
//! milliseconds since [`EPOCH_MS`] (41 bits), a counter (12 bits) and the node (10 bits), and a
//! node that sees another's seq never numbers an event below it afterwards. The node is the
//! lowest part, so that within one millisecond the counter orders events across nodes and the
//! node only tells apart two events that would otherwise be equal.

use std::time::{SystemTime, UNIX_EPOCH};

/// 2025-01-01 00:00:00 UTC: 41 bits of milliseconds from then last until 2094.
pub const EPOCH_MS: u64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const COUNTER_BITS: u32 = 12;
const COUNTER_MAX: u64 = (1 << COUNTER_BITS) - 1;

/// A hybrid logical clock for one node.
#[derive(Debug, Clone)]
pub struct Hlc {
    node: u64,
    /// The last time part used, in ms since the epoch, and the counter within it.
    ms: u64,
    counter: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .saturating_sub(EPOCH_MS)
}

impl Hlc {
    /// A clock for node `node` (only its low 10 bits are used), starting after `last`.
    pub fn new(node: u16, last: u64) -> Hlc {
        let mut hlc = Hlc {
            node: u64::from(node) & ((1 << NODE_BITS) - 1),
            ms: 0,
            counter: 0,
        };
        hlc.observe(last);
        hlc
    }

    /// The next seq: later than every seq this clock gave or saw.
    pub fn tick(&mut self) -> u64 {
        self.next_at(now_ms())
    }

    fn next_at(&mut self, now: u64) -> u64 {
        if now > self.ms {
            self.ms = now;
            self.counter = 0;
        } else {
            self.counter += 1;
            if self.counter > COUNTER_MAX {
                self.ms += 1;
                self.counter = 0;
            }
        }
        (self.ms << (NODE_BITS + COUNTER_BITS)) | (self.counter << NODE_BITS) | self.node
    }

    /// Another node's seq was seen: never number below it again.
    pub fn observe(&mut self, seq: u64) {
        let ms = seq >> (NODE_BITS + COUNTER_BITS);
        let counter = (seq >> NODE_BITS) & COUNTER_MAX;
        if ms > self.ms || (ms == self.ms && counter > self.counter) {
            self.ms = ms;
            self.counter = counter;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqs_grow_are_unique_per_node_and_follow_what_was_seen() {
        let mut a = Hlc::new(1, 0);
        let mut b = Hlc::new(2, 0);
        let x = a.next_at(1000);
        let y = a.next_at(1000);
        assert!(y > x);
        let z = b.next_at(1000);
        assert_ne!(z, x);
        assert_ne!(z, y);
        // b saw a seq from the future: its next is after it.
        b.observe(a.next_at(5000));
        assert!(b.next_at(1001) > a.next_at(4999));
        // The counter overflows into the next millisecond, never into the node bits.
        let mut c = Hlc::new(3, 0);
        let first = c.next_at(7);
        for _ in 0..5000 {
            c.next_at(7);
        }
        let later = c.next_at(7);
        assert!(later > first);
        assert_eq!(later & ((1 << NODE_BITS) - 1), 3);
        assert!(later < i64::MAX as u64);
    }

    #[test]
    fn a_seq_seen_within_the_same_millisecond_is_passed_whatever_the_nodes() {
        // A low node sees a high node's seq from the same millisecond: its next is later.
        let mut low = Hlc::new(1, 0);
        let mut high = Hlc::new(1000, 0);
        low.next_at(50);
        let theirs = high.next_at(50);
        low.observe(theirs);
        assert!(low.next_at(50) > theirs);
        // And the other way round.
        let mine = low.next_at(50);
        high.observe(mine);
        assert!(high.next_at(50) > mine);
    }
}
