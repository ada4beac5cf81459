//! `split_client floor`: the kernel's part of a fan-out, measured alone.
//!
//! Opens `sockets` loopback connections to itself. A sender thread plays a server that does
//! nothing but write: `rate` times a second (a "round", one incoming message) it writes one
//! 200-byte frame to every member of a group but one (the message's sender), the groups taken
//! in turn; a reader thread, in one mio loop like `split_client stress`, reads every frame.
//! No login, no parsing, no channel state, no storage: whatever latency and CPU time this
//! takes, a real server on the same machine can only add to. The benchmark runs it with the
//! layouts of its fixed-load and many-channels scenarios to show what the machine's TCP path
//! alone allows (see docs/BENCHMARKS.md).
//!
//! Each frame carries the time its round started and its connection's sequence number; the
//! reader checks the sequence (nothing lost, nothing reordered) and records the latency from
//! the round's start to the read.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::frame::FRAME_LEN;
use crate::split::histogram::Histogram;
use crate::split::stress::report::Latency;
use crate::split::SplitError;

/// How long the reader waits for frames still on the way once the sender is done.
const DRAIN: Duration = Duration::from_secs(2);
/// A write that blocks this long means the reader is gone: the run fails instead of hanging.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to measure.
#[derive(Debug, Clone)]
pub struct FloorConfig {
    /// Loopback connections.
    pub sockets: usize,
    /// Members of a group (a channel); a round writes to all of them but one.
    pub group: usize,
    /// Rounds per second.
    pub rate: f64,
    /// Rounds in all.
    pub rounds: u64,
    /// The core the sender thread runs on (the server's core in the benchmark).
    pub send_cpu: Option<usize>,
    /// The core the reader thread runs on (the load tool's core).
    pub read_cpu: Option<usize>,
    /// Hard limit of the whole run.
    pub duration: Duration,
}

impl FloorConfig {
    fn check(&self) -> Result<(), SplitError> {
        let bad = |m: &str| Err(SplitError::Config(m.to_string()));
        if self.group < 2 {
            return bad("a group needs at least 2 members");
        }
        if self.sockets < self.group {
            return bad("sockets must be at least the group size");
        }
        if !self.rate.is_finite() || self.rate <= 0.0 {
            return bad("rate must be a positive number of rounds a second");
        }
        if self.rounds == 0 {
            return bad("rounds must be at least 1");
        }
        let fds = crate::os::raise_nofile_limit();
        if (self.sockets as u64).saturating_mul(2) + 16 > fds {
            return Err(SplitError::Config(format!(
                "{} sockets need {} open files; the limit is {fds}",
                self.sockets,
                self.sockets * 2 + 16
            )));
        }
        Ok(())
    }

    /// Frames the reader should get.
    pub fn expected(&self) -> u64 {
        self.rounds * (self.group as u64 - 1)
    }
}

/// What a floor run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloorReport {
    /// Loopback connections.
    pub sockets: usize,
    /// Members of a group.
    pub group: usize,
    /// Rounds per second asked for.
    pub rate: f64,
    /// Rounds written.
    pub rounds: u64,
    /// Frames written (rounds × (group − 1)).
    pub writes: u64,
    /// Frames read, checked in order.
    pub received: u64,
    /// Frames out of sequence or malformed.
    pub faults: u64,
    /// Time spent inside the writes, summed over the rounds.
    pub write_secs: f64,
    /// CPU time of the sender thread (user + system) over the rounds.
    pub sender_cpu_secs: f64,
    /// From the first round's start to the last round's end.
    pub wall_secs: f64,
    /// Latency from a round's start to the read of each of its frames.
    pub latency: Latency,
    /// Whether both threads were pinned to the cores asked for.
    pub pinned: bool,
    /// Every frame arrived, in order, before the limits.
    pub complete: bool,
}

impl FloorReport {
    /// Wall time per write, in ns.
    pub fn write_ns(&self) -> f64 {
        self.write_secs * 1e9 / (self.writes.max(1) as f64)
    }

    /// The share of one core the sender's CPU time was.
    pub fn sender_share(&self) -> f64 {
        if self.wall_secs > 0.0 {
            self.sender_cpu_secs / self.wall_secs
        } else {
            0.0
        }
    }

    /// The report as one JSON line.
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"mode\":\"floor\",\"sockets\":{},\"group\":{},\"rate\":{:?},\"rounds\":{},",
                "\"writes\":{},\"received\":{},\"faults\":{},\"write_secs\":{:.6},",
                "\"write_ns\":{:.1},\"sender_cpu_secs\":{:.3},\"sender_share\":{:.4},",
                "\"wall_secs\":{:.3},\"latency_ns\":{},\"pinned\":{},\"complete\":{}}}"
            ),
            self.sockets,
            self.group,
            self.rate,
            self.rounds,
            self.writes,
            self.received,
            self.faults,
            self.write_secs,
            self.write_ns(),
            self.sender_cpu_secs,
            self.sender_share(),
            self.wall_secs,
            self.latency.to_json(),
            self.pinned,
            self.complete
        )
    }
}

impl std::fmt::Display for FloorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::split::stress::report::human_ns;
        let l = &self.latency;
        writeln!(
            f,
            "floor: {} sockets in groups of {}, {} rounds at {:?}/s: {} writes of {} bytes",
            self.sockets, self.group, self.rounds, self.rate, self.writes, FRAME_LEN
        )?;
        writeln!(
            f,
            "  writes:   {:.0} ns each; the sender thread used {:.1}% of a core{}",
            self.write_ns(),
            self.sender_share() * 100.0,
            if self.pinned { "" } else { " (not pinned)" }
        )?;
        writeln!(
            f,
            "  latency:  p50 {}, p90 {}, p99 {}, max {} (round start to read)",
            human_ns(l.p50),
            human_ns(l.p90),
            human_ns(l.p99),
            human_ns(l.max)
        )?;
        write!(
            f,
            "  result:   {} of {} frames read, {} out of order or malformed: {}",
            self.received,
            self.writes,
            self.faults,
            if self.complete { "PASS" } else { "FAIL" }
        )
    }
}

/// Runs the measurement.
pub fn run_floor(cfg: &FloorConfig) -> Result<FloorReport, SplitError> {
    cfg.check()?;
    let (senders, readers) = connect_pairs(cfg.sockets)?;
    let epoch = Instant::now();
    let deadline = epoch + cfg.duration;
    let sending_done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (done, expected, cpu) = (sending_done.clone(), cfg.expected(), cfg.read_cpu);
        thread::Builder::new().name("floor-read".into()).spawn(
            move || -> Result<ReadOutcome, SplitError> {
                let pinned = cpu.is_none_or(pin);
                let mut outcome = read_all(readers, epoch, deadline, expected, &done)?;
                outcome.pinned = pinned;
                Ok(outcome)
            },
        )?
    };

    let pinned = cfg.send_cpu.is_none_or(pin);
    let sent = send_rounds(cfg, &senders, epoch, deadline);
    sending_done.store(true, Ordering::SeqCst);
    let read = match reader.join() {
        Ok(r) => r?,
        Err(_) => return Err(SplitError::Setup("the floor reader thread panicked".into())),
    };
    let sent = sent?;
    let latency = Latency::of(&read.latency);
    let complete = sent.rounds == cfg.rounds && read.received == sent.writes && read.faults == 0;
    Ok(FloorReport {
        sockets: cfg.sockets,
        group: cfg.group,
        rate: cfg.rate,
        rounds: sent.rounds,
        writes: sent.writes,
        received: read.received,
        faults: read.faults,
        write_secs: sent.write_secs,
        sender_cpu_secs: sent.cpu_secs,
        wall_secs: sent.wall_secs,
        latency,
        pinned: pinned && read.pinned,
        complete,
    })
}

/// `n` connected pairs over 127.0.0.1: (the accepted ends, the connecting ends).
fn connect_pairs(n: usize) -> Result<(Vec<TcpStream>, Vec<TcpStream>), SplitError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr: SocketAddr = listener.local_addr()?;
    let mut accepted = Vec::with_capacity(n);
    let mut connecting = Vec::with_capacity(n);
    for _ in 0..n {
        let c = TcpStream::connect(addr)?;
        let (a, _) = listener.accept()?;
        a.set_nodelay(true)?;
        c.set_nodelay(true)?;
        a.set_write_timeout(Some(WRITE_TIMEOUT))?;
        c.set_nonblocking(true)?;
        accepted.push(a);
        connecting.push(c);
    }
    Ok((accepted, connecting))
}

/// Pins the calling thread to `cpu`; false (and a warning) when the system refuses.
fn pin(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        log::warn!("floor: there is no CPU {cpu}; the thread is not pinned");
        return false;
    }
    // SAFETY: cpu_set_t is plain data and `cpu` is within it; sched_setaffinity only reads the
    // set we pass.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        log::warn!(
            "floor: cannot pin a thread to CPU {cpu}: {}",
            io::Error::last_os_error()
        );
    }
    ok
}

/// This thread's CPU time (user + system), in seconds.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

struct Sent {
    rounds: u64,
    writes: u64,
    write_secs: f64,
    cpu_secs: f64,
    wall_secs: f64,
}

/// The sender: round `r` is due `r / rate` seconds after the first; it writes to every member
/// of group `r mod groups` but one, the one left out moving round by round.
fn send_rounds(
    cfg: &FloorConfig,
    streams: &[TcpStream],
    epoch: Instant,
    deadline: Instant,
) -> Result<Sent, SplitError> {
    let groups = cfg.sockets / cfg.group;
    let mut seqs = vec![0u64; streams.len()];
    let mut frame = [b' '; FRAME_LEN];
    let interval = 1.0 / cfg.rate;
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    let mut out = Sent {
        rounds: 0,
        writes: 0,
        write_secs: 0.0,
        cpu_secs: 0.0,
        wall_secs: 0.0,
    };
    let mut in_writes = Duration::ZERO;
    for r in 0..cfg.rounds {
        // A due time past what Instant can hold is past the deadline too.
        let due = Duration::try_from_secs_f64(r as f64 * interval)
            .ok()
            .and_then(|d| start.checked_add(d))
            .unwrap_or(deadline);
        let now = Instant::now();
        if due > now {
            thread::sleep(due.min(deadline) - now);
        }
        if Instant::now() >= deadline {
            break;
        }
        let round_start = Instant::now();
        let stamp = (round_start - epoch).as_nanos() as u64;
        frame[..8].copy_from_slice(&stamp.to_le_bytes());
        let g = (r % groups as u64) as usize;
        let skip = ((r / groups as u64) % cfg.group as u64) as usize;
        let first = g * cfg.group;
        for (k, seq) in seqs[first..first + cfg.group].iter_mut().enumerate() {
            if k == skip {
                continue;
            }
            frame[8..16].copy_from_slice(&seq.to_le_bytes());
            *seq += 1;
            (&streams[first + k]).write_all(&frame)?;
        }
        in_writes += round_start.elapsed();
        out.rounds += 1;
        out.writes += cfg.group as u64 - 1;
    }
    out.wall_secs = start.elapsed().as_secs_f64();
    out.write_secs = in_writes.as_secs_f64();
    out.cpu_secs = thread_cpu_secs() - cpu0;
    Ok(out)
}

struct ReadOutcome {
    received: u64,
    faults: u64,
    latency: Histogram,
    pinned: bool,
}

/// The reader: every connection in one mio loop, frames reassembled per connection, checked
/// against the connection's sequence, latency recorded. Ends when every frame is in, or
/// [`DRAIN`] after the sender is done, or at the deadline.
fn read_all(
    streams: Vec<TcpStream>,
    epoch: Instant,
    deadline: Instant,
    expected: u64,
    sending_done: &AtomicBool,
) -> Result<ReadOutcome, SplitError> {
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(streams.len());
    for (i, s) in streams.into_iter().enumerate() {
        let mut s = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        conns.push(s);
    }
    let mut partial = vec![0u8; conns.len() * FRAME_LEN];
    let mut filled = vec![0usize; conns.len()];
    let mut next_seq = vec![0u64; conns.len()];
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    let mut out = ReadOutcome {
        received: 0,
        faults: 0,
        latency: Histogram::new(),
        pinned: true,
    };
    let mut done_since: Option<Instant> = None;
    while out.received < expected {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if sending_done.load(Ordering::SeqCst) {
            let since = *done_since.get_or_insert(now);
            if now >= since + DRAIN {
                break;
            }
        }
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for event in events.iter() {
            let i = event.token().0;
            loop {
                let n = match conns[i].read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                let at = (Instant::now() - epoch).as_nanos() as u64;
                let slot = &mut partial[i * FRAME_LEN..(i + 1) * FRAME_LEN];
                let mut rest = &buf[..n];
                while !rest.is_empty() {
                    let take = (FRAME_LEN - filled[i]).min(rest.len());
                    slot[filled[i]..filled[i] + take].copy_from_slice(&rest[..take]);
                    filled[i] += take;
                    rest = &rest[take..];
                    if filled[i] < FRAME_LEN {
                        break;
                    }
                    filled[i] = 0;
                    let stamp = u64::from_le_bytes(word(slot, 0));
                    let seq = u64::from_le_bytes(word(slot, 8));
                    if seq != next_seq[i] || slot[16..].iter().any(|&b| b != b' ') {
                        out.faults += 1;
                    }
                    next_seq[i] = seq.wrapping_add(1);
                    out.received += 1;
                    out.latency.record(at.saturating_sub(stamp));
                }
            }
        }
    }
    Ok(out)
}

/// Eight bytes of a frame at `at`.
fn word(frame: &[u8], at: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&frame[at..at + 8]);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(sockets: usize, group: usize, rate: f64, rounds: u64) -> FloorConfig {
        FloorConfig {
            sockets,
            group,
            rate,
            rounds,
            send_cpu: None,
            read_cpu: None,
            duration: Duration::from_secs(20),
        }
    }

    #[test]
    fn every_frame_arrives_once_and_in_order() {
        let report = run_floor(&cfg(12, 4, 2000.0, 300)).expect("floor run");
        assert_eq!(report.rounds, 300);
        assert_eq!(report.writes, 300 * 3);
        assert_eq!(report.received, 900);
        assert_eq!(report.faults, 0);
        assert!(report.complete);
        assert_eq!(report.latency.samples, 900);
        assert!(report.latency.p50 > 0 && report.latency.p50 <= report.latency.max);
        assert!(report.write_ns() > 0.0);
        assert!(report.wall_secs >= 299.0 / 2000.0, "the rate is kept");
        let json = report.to_json();
        assert!(json.starts_with("{\"mode\":\"floor\",\"sockets\":12,\"group\":4,\"rate\":2000.0,"));
        assert!(json.contains("\"received\":900,\"faults\":0,"));
        assert!(json.ends_with("\"complete\":true}"));
    }

    #[test]
    fn impossible_layouts_are_refused() {
        for bad in [
            cfg(10, 1, 100.0, 10),
            cfg(3, 4, 100.0, 10),
            cfg(8, 4, 0.0, 10),
            cfg(8, 4, f64::NAN, 10),
            cfg(8, 4, 100.0, 0),
        ] {
            assert!(
                matches!(run_floor(&bad), Err(SplitError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
