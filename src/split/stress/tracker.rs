//! What every receiver has seen of every sender: the verification and flow-control state of a
//! stress run, in flat arrays indexed by client (no map, no allocation on the hot path).

use std::collections::BTreeSet;

use crate::split::histogram::Histogram;
use crate::split::message::Message;
use crate::split::SplitError;

/// The largest (receiver, sender) table, in entries (4 bytes each).
const MAX_PAIRS: usize = 1 << 27;

/// Who is where: client `i` is in channel `i % channels`; clients `0..senders` send.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Clients that read (and may send).
    pub clients: usize,
    /// The first `senders` clients send.
    pub senders: usize,
    /// Channels, filled round-robin.
    pub channels: usize,
}

impl Layout {
    /// The channel of client `i`.
    pub fn channel(&self, i: usize) -> usize {
        i % self.channels
    }

    /// How many of the first `n` clients are in channel `c`.
    fn count_in(&self, n: usize, c: usize) -> usize {
        if c >= n {
            0
        } else {
            (n - c).div_ceil(self.channels)
        }
    }

    /// How many clients channel `c` has.
    pub fn members(&self, c: usize) -> usize {
        self.count_in(self.clients, c)
    }

    /// How many senders channel `c` has.
    pub fn senders_in(&self, c: usize) -> usize {
        self.count_in(self.senders, c)
    }

    /// How many clients receive each message of sender `s`.
    pub fn receivers(&self, s: usize) -> u32 {
        self.members(self.channel(s)).saturating_sub(1) as u32
    }
}

/// Which clients of a layout this process runs: all of them, or one share of a layout split
/// over several processes (client `i` belongs to process `i % of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Local {
    /// Every client.
    #[default]
    All,
    /// The clients `i` with `i % of == index`.
    Share {
        /// This process's share, from 0.
        index: usize,
        /// How many processes share the layout.
        of: usize,
    },
}

impl Local {
    /// True when client `i` is run here.
    #[inline]
    pub fn has(&self, i: usize) -> bool {
        match *self {
            Local::All => true,
            Local::Share { index, of } => i % of.max(1) == index,
        }
    }
}

/// The counts a run reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages sent, over all senders.
    pub sent: u64,
    /// First arrivals of a message at a receiver.
    pub delivered: u64,
    /// Second and later arrivals.
    pub duplicates: u64,
    /// Arrivals after a later message of the same sender.
    pub reordered: u64,
    /// Frames that claim to be this run's messages but are wrong somewhere (bytes, time,
    /// a sender that never sent that number, a receiver outside the sender's channel).
    pub corrupt: u64,
}

/// Verification and window state.
#[derive(Debug)]
pub struct Tracker {
    layout: Layout,
    messages: u32,
    window: u32,
    /// Per receiver, where its row starts in `next`.
    base: Vec<usize>,
    /// Per (receiver, sender of its channel): the next sequence number expected.
    next: Vec<u32>,
    /// Per sender: messages sent.
    sent: Vec<u32>,
    /// Per sender: messages every receiver has.
    acked: Vec<u32>,
    /// Per sender, a ring of `window` slots: receivers still missing that message.
    remaining: Vec<u32>,
    /// Per sender, a ring of `window` slots: when that message was encoded.
    sent_at: Vec<u64>,
    /// (receiver, sender, seq) passed over by a later message: only filled when something is
    /// already wrong.
    skipped: BTreeSet<(u32, u32, u32)>,
    woken: Vec<bool>,
    wake: Vec<u32>,
    expected: u64,
    /// With shards: which clients this process runs (the others are another's).
    local: Local,
    /// Per channel, how many of its members this process runs.
    local_members: Vec<u32>,
    /// Per client, the server it is on (only with several servers).
    sites: Option<Vec<u16>>,
    /// Latency of every first arrival, in ns.
    pub latency: Histogram,
    /// Latency of the first arrivals at a receiver on another server than the sender's.
    pub cross_latency: Histogram,
    /// The counts so far.
    pub counts: Counts,
}

impl Tracker {
    /// A tracker for `messages` per sender and at most `window` in flight per sender.
    pub fn new(layout: Layout, messages: u32, window: u32) -> Result<Tracker, SplitError> {
        Tracker::new_local(layout, messages, window, Local::All)
    }

    /// The same for the clients `local` says this process runs: it checks what they receive
    /// from every sender of their channels (here or in another process), and a sender's
    /// window waits for the receivers here only.
    pub fn new_local(
        layout: Layout,
        messages: u32,
        window: u32,
        local: Local,
    ) -> Result<Tracker, SplitError> {
        let mut base = Vec::with_capacity(layout.clients);
        let mut pairs = 0usize;
        let mut local_members = vec![0u32; layout.channels];
        for r in 0..layout.clients {
            base.push(pairs);
            if local.has(r) {
                pairs += layout.senders_in(layout.channel(r));
                local_members[layout.channel(r)] += 1;
            }
        }
        if pairs > MAX_PAIRS {
            return Err(SplitError::Config(format!(
                "{pairs} receiver-sender pairs need more memory than allowed; \
                 use fewer senders or more channels"
            )));
        }
        let receivers = |s: usize| local_members[layout.channel(s)] - u32::from(local.has(s));
        let expected = (0..layout.senders)
            .map(|s| u64::from(messages) * u64::from(receivers(s)))
            .sum();
        let window = window.max(1);
        let slots = layout.senders * window as usize;
        Ok(Tracker {
            layout,
            messages,
            window,
            base,
            next: vec![0; pairs],
            sent: vec![0; layout.senders],
            acked: vec![0; layout.senders],
            remaining: vec![0; slots],
            sent_at: vec![0; slots],
            skipped: BTreeSet::new(),
            woken: vec![false; layout.senders],
            wake: Vec::with_capacity(layout.senders),
            expected,
            local,
            local_members,
            sites: None,
            latency: Histogram::new(),
            cross_latency: Histogram::new(),
            counts: Counts::default(),
        })
    }

    /// Tells which server each client is on (`sites[i]` for client `i`), so that deliveries
    /// from one server to another are also measured apart.
    pub fn set_sites(&mut self, sites: Vec<u16>) {
        self.sites = (sites.len() == self.layout.clients).then_some(sites);
    }

    /// How many clients receive each message of sender `s` here.
    fn receivers(&self, s: usize) -> u32 {
        self.local_members[self.layout.channel(s)] - u32::from(self.local.has(s))
    }

    /// Deliveries the run must see.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// True once every expected delivery has arrived.
    pub fn done(&self) -> bool {
        self.counts.delivered >= self.expected
    }

    /// True when sender `s` has a message left and room in its window.
    #[inline]
    pub fn can_send(&self, s: usize) -> bool {
        self.sent[s] < self.messages && self.sent[s] - self.acked[s] < self.window
    }

    /// Takes sender `s`'s next message, encoded at `now_ns`.
    #[inline]
    pub fn on_sent(&mut self, s: usize, now_ns: u64) -> Message {
        let seq = self.sent[s];
        let slot = self.slot(s, seq);
        self.remaining[slot] = self.receivers(s);
        self.sent_at[slot] = now_ns;
        self.sent[s] += 1;
        self.counts.sent += 1;
        if self.remaining[slot] == 0 {
            self.advance(s);
        }
        Message {
            sender: s as u32,
            seq,
            sent_ns: now_ns,
        }
    }

    /// Wakes sender `s` (it may send again).
    pub fn wake(&mut self, s: usize) {
        if !self.woken[s] {
            self.woken[s] = true;
            self.wake.push(s as u32);
        }
    }

    /// True when some sender was woken since the last [`Tracker::take_woken`].
    pub fn has_woken(&self) -> bool {
        !self.wake.is_empty()
    }

    /// Moves the woken senders into `out` (cleared first).
    pub fn take_woken(&mut self, out: &mut Vec<u32>) {
        out.clear();
        std::mem::swap(out, &mut self.wake);
        for &s in out.iter() {
            self.woken[s as usize] = false;
        }
    }

    /// A frame that claims to be ours but is not intact.
    pub fn on_corrupt(&mut self) {
        self.counts.corrupt += 1;
    }

    /// Receiver `r` got an intact-looking message at `now_ns`.
    #[inline]
    pub fn on_message(&mut self, r: usize, msg: Message, now_ns: u64) {
        let s = msg.sender as usize;
        let seq = msg.seq;
        if s >= self.layout.senders
            || s == r
            || !self.local.has(r)
            || self.layout.channel(s) != self.layout.channel(r)
        {
            self.counts.corrupt += 1;
            return;
        }
        // A sender of another process is known only by the layout: what it may have sent.
        let here = self.local.has(s);
        if seq >= if here { self.sent[s] } else { self.messages } {
            self.counts.corrupt += 1;
            return;
        }
        let idx = self.base[r] + s / self.layout.channels;
        let expected = self.next[idx];
        if here && seq >= self.acked[s] && self.sent_at[self.slot(s, seq)] != msg.sent_ns {
            self.counts.corrupt += 1;
            return;
        }
        if seq == expected {
            self.next[idx] = expected + 1;
        } else if seq > expected {
            // Something passed over earlier messages: remember them to tell a late arrival
            // (reordered) from a message that never comes (lost).
            for missing in expected..seq {
                self.skipped.insert((r as u32, s as u32, missing));
            }
            self.next[idx] = seq + 1;
        } else if self.skipped.remove(&(r as u32, s as u32, seq)) {
            self.counts.reordered += 1;
        } else {
            self.counts.duplicates += 1;
            return;
        }
        self.counts.delivered += 1;
        let latency = now_ns.saturating_sub(msg.sent_ns);
        self.latency.record(latency);
        if let Some(sites) = &self.sites {
            if sites[r] != sites[s] {
                self.cross_latency.record(latency);
            }
        }
        if !here {
            return;
        }
        let slot = self.slot(s, seq);
        self.remaining[slot] = self.remaining[slot].saturating_sub(1);
        if seq == self.acked[s] {
            self.advance(s);
        }
    }

    #[inline]
    fn slot(&self, s: usize, seq: u32) -> usize {
        s * self.window as usize + (seq % self.window) as usize
    }

    fn advance(&mut self, s: usize) {
        let before = self.acked[s];
        while self.acked[s] < self.sent[s] && self.remaining[self.slot(s, self.acked[s])] == 0 {
            self.acked[s] += 1;
        }
        if self.acked[s] != before && self.sent[s] < self.messages {
            self.wake(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(clients: usize, senders: usize, channels: usize, messages: u32) -> Tracker {
        let layout = Layout {
            clients,
            senders,
            channels,
        };
        Tracker::new(layout, messages, 4).unwrap()
    }

    fn send(t: &mut Tracker, s: usize, now: u64) -> Message {
        assert!(t.can_send(s));
        t.on_sent(s, now)
    }

    #[test]
    fn layout_counts_members_and_senders_round_robin() {
        let l = Layout {
            clients: 7,
            senders: 4,
            channels: 3,
        };
        assert_eq!((l.members(0), l.members(1), l.members(2)), (3, 2, 2));
        assert_eq!(
            (l.senders_in(0), l.senders_in(1), l.senders_in(2)),
            (2, 1, 1)
        );
        assert_eq!(l.receivers(0), 2);
        assert_eq!(l.receivers(2), 1);
        let t = Tracker::new(l, 10, 4).unwrap();
        // Sender 0 and 3 reach 2 clients each, 1 and 2 reach 1 each: 6 deliveries a round.
        assert_eq!(t.expected(), 60);
    }

    #[test]
    fn in_order_deliveries_complete_the_run() {
        let mut t = tracker(3, 3, 1, 2);
        for seq in 0..2 {
            let msgs: Vec<_> = (0..3).map(|s| send(&mut t, s, seq as u64)).collect();
            for m in msgs {
                for r in 0..3 {
                    if r != m.sender as usize {
                        t.on_message(r, m, 100);
                    }
                }
            }
        }
        assert!(t.done());
        assert_eq!(t.counts.delivered, 12);
        assert_eq!(t.latency.count(), 12);
        assert_eq!(
            (t.counts.duplicates, t.counts.reordered, t.counts.corrupt),
            (0, 0, 0)
        );
    }

    #[test]
    fn the_window_closes_until_every_receiver_has_the_message() {
        let mut t = tracker(3, 1, 1, 100);
        let msgs: Vec<_> = (0..4).map(|i| send(&mut t, 0, i)).collect();
        assert!(!t.can_send(0));
        t.on_message(1, msgs[0], 10);
        assert!(!t.can_send(0), "client 2 still misses message 0");
        t.on_message(2, msgs[0], 10);
        assert!(t.can_send(0));
        let mut woken = Vec::new();
        t.take_woken(&mut woken);
        assert_eq!(woken, vec![0]);
    }

    #[test]
    fn a_duplicate_is_counted_and_not_delivered_twice() {
        let mut t = tracker(2, 1, 1, 3);
        let m = send(&mut t, 0, 5);
        t.on_message(1, m, 9);
        t.on_message(1, m, 9);
        assert_eq!(t.counts.delivered, 1);
        assert_eq!(t.counts.duplicates, 1);
    }

    #[test]
    fn a_reordering_is_counted_and_a_gap_that_never_fills_is_loss() {
        let mut t = tracker(2, 1, 1, 3);
        let m0 = send(&mut t, 0, 1);
        let m1 = send(&mut t, 0, 2);
        let m2 = send(&mut t, 0, 3);
        t.on_message(1, m1, 9);
        t.on_message(1, m0, 9);
        assert_eq!(t.counts.reordered, 1);
        assert_eq!(t.counts.delivered, 2);
        // m2 never arrives: the run is not done and one delivery is missing.
        assert!(!t.done());
        assert_eq!(t.expected() - t.counts.delivered, 1);
        t.on_message(1, m2, 9);
        assert!(t.done());
        assert_eq!(t.counts.duplicates, 0);
    }

    #[test]
    fn wrong_time_unsent_number_or_wrong_channel_is_corrupt() {
        let mut t = tracker(4, 4, 2, 3);
        let m = send(&mut t, 0, 7);
        t.on_message(2, Message { sent_ns: 8, ..m }, 9);
        t.on_message(2, Message { seq: 1, ..m }, 9);
        t.on_message(1, m, 9); // client 1 is in channel 1, sender 0 in channel 0
        t.on_message(0, m, 9); // a sender never gets its own message
        assert_eq!(t.counts.corrupt, 4);
        assert_eq!(t.counts.delivered, 0);
        t.on_message(2, m, 9);
        assert_eq!(t.counts.delivered, 1);
    }

    #[test]
    fn deliveries_between_servers_are_measured_apart() {
        let mut t = tracker(4, 2, 1, 1);
        // Clients 0 and 1 send; 0 and 2 are on server 0, 1 and 3 on server 1.
        t.set_sites(vec![0, 1, 0, 1]);
        let m0 = send(&mut t, 0, 0);
        let m1 = send(&mut t, 1, 0);
        for (r, m, at) in [
            (1, m0, 10),
            (2, m0, 20),
            (3, m0, 30),
            (0, m1, 40),
            (2, m1, 50),
        ] {
            t.on_message(r, m, at);
        }
        assert_eq!(t.latency.count(), 5);
        // 0 -> 1, 0 -> 3, 1 -> 0, 1 -> 2 cross; 0 -> 2 does not.
        assert_eq!(t.cross_latency.count(), 4);
        assert_eq!(t.cross_latency.max(), 50);
    }

    #[test]
    fn a_share_checks_its_own_receivers_against_every_sender() {
        // 6 clients in 2 channels, 4 senders, shared by 2 processes; this is share 1: clients
        // 1, 3, 5 (all in channel 1). Channel 1 has members 1, 3, 5 and senders 1, 3.
        let layout = Layout {
            clients: 6,
            senders: 4,
            channels: 2,
        };
        let mut t = Tracker::new_local(layout, 2, 4, Local::Share { index: 1, of: 2 }).unwrap();
        // Senders 1 and 3 are here (2 receivers here each); 0 and 2 are in channel 0, which
        // has no member here.
        assert_eq!(t.expected(), 2 * 2 + 2 * 2);
        let m1 = send(&mut t, 1, 10);
        t.on_message(3, m1, 20);
        t.on_message(5, m1, 20);
        let m3 = send(&mut t, 3, 10);
        t.on_message(1, m3, 30);
        t.on_message(5, m3, 30);
        // Message 1 of sender 1 again, as another process could not have known: a duplicate.
        t.on_message(3, m1, 40);
        assert_eq!(t.counts.duplicates, 1);
        // A receiver of the other share is not ours to check.
        t.on_message(0, m1, 40);
        assert_eq!(t.counts.corrupt, 1);
        assert_eq!(t.counts.delivered, 4);
        for seq in 1..2 {
            let a = send(&mut t, 1, 50);
            let b = send(&mut t, 3, 50);
            assert_eq!((a.seq, b.seq), (seq, seq));
            t.on_message(3, a, 60);
            t.on_message(5, a, 60);
            t.on_message(1, b, 60);
            t.on_message(5, b, 60);
        }
        assert!(t.done());
    }

    #[test]
    fn messages_of_a_sender_elsewhere_are_checked_by_number_and_order() {
        // Share 0 of 2: clients 0 and 2 in one channel, senders 0 and 1 (1 is elsewhere).
        let layout = Layout {
            clients: 4,
            senders: 2,
            channels: 1,
        };
        let mut t = Tracker::new_local(layout, 3, 4, Local::Share { index: 0, of: 2 }).unwrap();
        // Sender 0 reaches client 2; sender 1 reaches clients 0 and 2.
        assert_eq!(t.expected(), 3 + 2 * 3);
        let from = |seq| Message {
            sender: 1,
            seq,
            sent_ns: 99,
        };
        t.on_message(0, from(0), 100);
        t.on_message(0, from(2), 100);
        t.on_message(0, from(1), 100);
        assert_eq!(t.counts.reordered, 1);
        // Sender 1 has 3 messages: a fourth cannot be.
        t.on_message(2, from(3), 100);
        assert_eq!(t.counts.corrupt, 1);
        for seq in 0..3 {
            t.on_message(2, from(seq), 100 + u64::from(seq));
        }
        assert_eq!(t.counts.delivered, 6);
        assert!(!t.done(), "sender 0's messages are still to come");
        for _ in 0..3 {
            let m = send(&mut t, 0, 1);
            t.on_message(2, m, 2);
        }
        assert!(t.done());
        assert_eq!(t.counts.duplicates, 0);
    }

    #[test]
    fn a_lonely_sender_needs_no_receiver() {
        let mut t = tracker(1, 1, 1, 5);
        for i in 0..5 {
            send(&mut t, 0, i);
        }
        assert!(!t.can_send(0));
        assert_eq!(t.expected(), 0);
        assert!(t.done());
    }
}
