//! `split_client stress HOST PORT`: N clients in one mio event loop, in channels, each sender
//! writing M messages in random pieces (cut and coalesced); every other member of the sender's
//! channel must receive each one exactly once, in order, byte for byte.
//!
//! The run goes through phases: connect in batches (so the server's listen backlog never
//! overflows), log in and join (every client sends `/create C`, `/join C` and a sync command
//! whose error reply tells that the server has handled the rest), let the no-read clients join,
//! then either hold the connections idle or send the messages.
//!
//! The clients may be spread over several servers (nodes of one cluster: every delivery is
//! checked across them as on one server), speak TLS ([`link`]), and speak the chat as frames,
//! over WebSocket or over IRC ([`wire`]); the checks are the same for all.

pub mod conn;
pub mod link;
pub mod probe;
pub mod procfs;
pub mod regflood;
pub mod report;
pub mod tracker;
pub mod wire;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use self::conn::{Conn, Phase, ReadOutcome};
pub use self::conn::{Target, Transport};
use self::probe::Probe;
pub use self::report::{Latency, ServerUsage, StressReport};
use self::tracker::{Layout, Local, Tracker};
use self::wire::Incoming;
pub use self::wire::Proto;
use super::histogram::Histogram;
use super::message::{self, Codec, Verdict};
use super::SplitError;
use crate::frame::{self, Frame, FRAME_LEN};
use crate::utils_errors as text;

/// At most this many connections are started but not yet known to be handled by the server
/// (joined). A connection whose handshake is over may still wait in the server's accept queue,
/// so this stays below the smallest common listen backlog (128).
const MAX_IN_FLIGHT: usize = 96;
/// The read buffer shared by every connection.
const READ_BUF: usize = 256 * 1024;
/// After the last expected delivery, keep reading this long to catch duplicates.
const DRAIN: Duration = Duration::from_millis(100);
/// No delivery for this long (at least) ends an incomplete run as stalled.
const STALL: Duration = Duration::from_secs(5);
/// Runs longer than this show progress on stderr, once a second.
const QUIET: Duration = Duration::from_secs(2);
/// How often joined clients are read during setup. Their notices pile up meanwhile: at most
/// the joins of this long, far below what a server queues for a client.
const SWEEP: Duration = Duration::from_millis(250);
/// The longest poll wait, so that deadlines are checked often enough.
const TICK: Duration = Duration::from_millis(100);
/// The token of the send timer (never a connection's index).
const TIMER: Token = Token(usize::MAX);
/// The token of the responsiveness probe (never a connection's index).
const PROBE: Token = Token(usize::MAX - 1);
/// The command whose error reply marks the end of a client's setup.
const SYNC_COMMAND: &str = "/stress-sync";

/// Which clients go to which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// Client `i` (sender or not) on server `i % servers`.
    #[default]
    RoundRobin,
    /// Every sender on the first server, every other client on the second: each delivery
    /// to a reader crosses from one node to another.
    Split,
}

/// One process's share of a layout run by several processes at once (each process may hold
/// only so many connections): client `i` belongs to process `i % of`. Every process is given
/// the same layout and the same barrier directory. They meet there twice: once all their
/// clients are in their channels (so that no message goes out before every member has
/// joined), and once each has received everything (so that no one's clients leave while
/// others still wait for messages). They share the run id (from the barrier's path, so the
/// names match) and the clock of the message stamps (the machine's monotonic clock, so the
/// latency of a message from another process is measured too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// This process's share, from 0.
    pub index: usize,
    /// How many processes share the layout.
    pub of: usize,
    /// The directory where the processes meet (files `ready-K`, `done-K`, `failed-K`).
    pub barrier: PathBuf,
}

impl Shard {
    fn local(&self) -> Local {
        Local::Share {
            index: self.index,
            of: self.of,
        }
    }

    fn mark(&self, stage: &str) -> PathBuf {
        self.barrier.join(format!("{stage}-{}", self.index))
    }

    /// Says that this process reached `stage`.
    fn arrive(&self, stage: &str) -> Result<(), SplitError> {
        std::fs::write(self.mark(stage), b"").map_err(|e| {
            SplitError::Setup(format!(
                "cannot write to the barrier {}: {e}",
                self.barrier.display()
            ))
        })
    }

    /// The shards that have not reached `stage` yet, or the first one that failed.
    fn missing(&self, stage: &str) -> Result<Vec<usize>, usize> {
        let mut missing = Vec::new();
        for k in 0..self.of {
            if self.barrier.join(format!("failed-{k}")).exists() {
                return Err(k);
            }
            if !self.barrier.join(format!("{stage}-{k}")).exists() {
                missing.push(k);
            }
        }
        Ok(missing)
    }

    /// The run id every shard of this barrier uses (FNV-1a of its path).
    fn run_id(&self) -> u16 {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.barrier.as_os_str().as_encoded_bytes() {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
        (h % (u32::from(message::MAX_RUN) + 1)) as u16
    }
}

/// The machine's monotonic clock (the one `Instant` reads), in ns: the shards' shared clock.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// A stress run's options.
#[derive(Debug, Clone)]
pub struct StressConfig {
    /// The servers (at least one); see `placement`.
    pub servers: Vec<Target>,
    /// Which clients go to which server.
    pub placement: Placement,
    /// TLS or not, and the protocol.
    pub transport: Transport,
    /// Reading clients.
    pub clients: usize,
    /// How many of them send (all when `None`).
    pub senders: Option<usize>,
    /// Messages per sender.
    pub messages: u32,
    /// Channels (`stress-0`, `stress-1`, …), filled round-robin.
    pub channels: usize,
    /// Messages per second per sender; 0 sends as fast as the window allows.
    pub rate: f64,
    /// The most messages per sender in flight (sent, not yet received by every member).
    pub window: u32,
    /// The hard limit of the whole run (idle time comes on top).
    pub duration: Duration,
    /// Seed of the write sizes; random when absent.
    pub seed: Option<u64>,
    /// Hold the connections this long after joining, send nothing, then stop.
    pub idle: Option<Duration>,
    /// Extra clients that join `stress-0` and never read.
    pub no_read: usize,
    /// The largest single write, in bytes (several frames and a part).
    pub max_write: usize,
    /// Print progress on stderr on long runs.
    pub progress: bool,
    /// The server's process id (on this machine): report its CPU time over the measured phase
    /// and its memory before and after (see [`ServerUsage`]); several (the nodes of a cluster,
    /// its Redis…) are added up, and each one's CPU time is reported too.
    pub server_pids: Vec<u32>,
    /// This process runs one share of the layout (see [`Shard`]).
    pub shard: Option<Shard>,
}

impl StressConfig {
    /// The defaults: 100 clients, all sending 100 messages, 1 channel, window 32, 60 s limit.
    pub fn new(addr: SocketAddr) -> StressConfig {
        StressConfig {
            servers: vec![Target::of_addr(addr)],
            placement: Placement::RoundRobin,
            transport: Transport::default(),
            clients: 100,
            senders: None,
            messages: 100,
            channels: 1,
            rate: 0.0,
            window: 32,
            duration: Duration::from_secs(60),
            seed: None,
            idle: None,
            no_read: 0,
            max_write: 1024,
            progress: false,
            server_pids: Vec::new(),
            shard: None,
        }
    }

    fn senders(&self) -> usize {
        self.senders.unwrap_or(self.clients)
    }

    fn validate(&self) -> Result<(), SplitError> {
        let bad = |m: String| Err(SplitError::Config(m));
        if self.clients == 0 || self.clients > message::MAX_CLIENTS {
            return bad(format!("clients must be 1 to {}", message::MAX_CLIENTS));
        }
        if self.senders() > self.clients {
            return bad("there cannot be more senders than clients".into());
        }
        if self.channels == 0 || self.channels > self.clients {
            return bad("channels must be 1 to the number of clients".into());
        }
        if self.no_read > message::MAX_NO_READ {
            return bad(format!(
                "no-read clients must be at most {}",
                message::MAX_NO_READ
            ));
        }
        if self.window == 0 || self.max_write == 0 || self.messages == u32::MAX {
            return bad("window, max write and messages must be positive and in range".into());
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return bad("rate must be 0 (unlimited) or a positive number".into());
        }
        if self.servers.is_empty() || self.servers.len() > usize::from(u16::MAX) {
            return bad("give at least one server".into());
        }
        if self.placement == Placement::Split && self.servers.len() != 2 {
            return bad("senders on one server and readers on another needs two servers".into());
        }
        if self.transport.tls.is_some() && self.servers.iter().any(|t| t.tls_name.is_none()) {
            return bad("TLS needs the name of every server".into());
        }
        if let Some(shard) = &self.shard {
            if shard.of == 0 || shard.index >= shard.of || shard.of > self.clients {
                return bad("a shard is K/N with K below N and N at most the clients".into());
            }
            if self.no_read > 0 || self.servers.len() != 1 {
                return bad("a shard runs against one server and has no no-read clients".into());
            }
        }
        Ok(())
    }

    /// True when client `i` is run by this process.
    fn runs(&self, i: usize) -> bool {
        i >= self.clients || self.shard.as_ref().is_none_or(|s| s.local().has(i))
    }

    /// How many of the reading clients this process runs.
    fn local_clients(&self) -> usize {
        match &self.shard {
            None => self.clients,
            Some(s) => (0..self.clients).filter(|&i| s.local().has(i)).count(),
        }
    }

    /// The server of client `i` (no-read clients count after the reading ones).
    fn site(&self, i: usize) -> usize {
        match self.placement {
            Placement::RoundRobin => i % self.servers.len(),
            Placement::Split => usize::from(i >= self.senders()),
        }
    }
}

/// Runs a stress test and reports what it found. An `Err` means the run could not be set up
/// (the server is unreachable, refused a login, or the options are impossible); faults of the
/// server during the run are in the report (see [`StressReport::passed`]).
pub fn run_stress(cfg: &StressConfig) -> Result<StressReport, SplitError> {
    cfg.validate()?;
    let limit = crate::os::raise_nofile_limit();
    let needed = (cfg.local_clients() + cfg.no_read + 32) as u64;
    if needed > limit {
        return Err(SplitError::Config(format!(
            "{needed} file descriptors needed, the limit is {limit}"
        )));
    }
    let result = run_stages(cfg);
    if let (Err(_), Some(shard)) = (&result, &cfg.shard) {
        // The other shards stop waiting for this one.
        let _ = shard.arrive("failed");
    }
    result
}

/// The memory of every process in `pids` added up, in KiB; None when one cannot be read.
fn rss_sum(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&pid| procfs::rss_kib(pid)).sum()
}

fn run_stages(cfg: &StressConfig) -> Result<StressReport, SplitError> {
    let pids = &cfg.server_pids;
    let rss_base = rss_sum(pids);
    let mut run = Run::new(cfg)?;
    let mut events = Events::with_capacity(4096);
    run.setup(&mut events)?;
    run.meet(&mut events, "ready")?;
    let cpu_before: Vec<Option<f64>> = pids.iter().map(|&pid| procfs::cpu_secs(pid)).collect();
    match cfg.idle {
        Some(idle) => run.hold(&mut events, idle)?,
        None => run.send_all(&mut events)?,
    }
    let mut report = run.report();
    if !pids.is_empty() {
        // Sampled before the connections close: the memory they hold, the CPU they cost.
        let by_pid: Option<Vec<(u32, f64)>> = pids
            .iter()
            .zip(&cpu_before)
            .map(|(&pid, before)| {
                let after = procfs::cpu_secs(pid)?;
                Some((pid, (after - (*before)?).max(0.0)))
            })
            .collect();
        report.server = match (rss_base, rss_sum(pids), by_pid) {
            (Some(rss_base_kib), Some(rss_kib), Some(by_pid)) => Some(ServerUsage {
                cpu_secs: by_pid.iter().map(|(_, secs)| secs).sum(),
                rss_base_kib,
                rss_kib,
                by_pid,
            }),
            _ => {
                log::warn!("cannot read /proc of {pids:?}: no server usage in the report");
                None
            }
        };
    }
    // Stay (reading) until every shard has received everything: a client leaving now would
    // be news to the members elsewhere, not a fault; waiting keeps the runs apart.
    run.meet(&mut events, "done")?;
    run.close_all();
    Ok(report)
}

/// Sends per sender at a fixed rate: a FIFO of due times works as a timer wheel because every
/// sender has the same interval.
#[derive(Debug)]
struct Rate {
    interval_ns: u64,
    due: VecDeque<(u64, u32)>,
    granted: Vec<u32>,
    credits: Vec<u32>,
    /// How late each credit was granted against its due time.
    lag: Histogram,
}

/// A timerfd: a one-shot wake-up with nanosecond precision, registered with the poll.
#[derive(Debug)]
struct SendTimer {
    fd: OwnedFd,
}

impl SendTimer {
    fn new() -> io::Result<SendTimer> {
        // SAFETY: timerfd_create takes no pointers; a valid descriptor it returns is ours.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SendTimer { fd })
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Fires once, `after` from now (a zero wait fires at once).
    fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the descriptor is open; the kernel only reads `spec`.
        if unsafe { libc::timerfd_settime(self.fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads the expirations, so that the next one wakes the poll again.
    fn clear(&self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`; EAGAIN (not expired) is fine.
        let _ = unsafe { libc::read(self.fd(), count.as_mut_ptr().cast(), count.len()) };
    }
}

/// What the setup phase has seen.
#[derive(Debug, Default)]
struct SetupState {
    ready: usize,
    no_read_joined: usize,
    no_read_dropped: u64,
    other_frames: u64,
    error: Option<String>,
}

struct Run<'a> {
    cfg: &'a StressConfig,
    layout: Layout,
    poll: Poll,
    conns: Vec<Conn>,
    codec: Codec,
    tracker: Tracker,
    rng: SmallRng,
    buf: Vec<u8>,
    sync_reply: Frame,
    /// Per channel, the reply to `/create` of a channel that exists.
    exists_replies: Vec<Frame>,
    setup: SetupState,
    /// The epoch of the message stamps: the run's start, or with shards the monotonic clock's
    /// zero (shared by every process on the machine).
    t0: Instant,
    /// When the run started.
    started: Instant,
    deadline: Instant,
    next_connect: usize,
    /// Reading clients and no-read clients started so far (by this process).
    started_clients: usize,
    started_no_read: usize,
    /// How many reading clients this process runs.
    local_clients: usize,
    connecting: usize,
    disconnects: u64,
    /// Why the first reading client was lost (for the setup's error).
    first_loss: Option<String>,
    rate: Option<Rate>,
    /// Wakes the loop when the next rated send is due: epoll's timeout counts whole
    /// milliseconds, which would send a millisecond's messages in one clump.
    timer: Option<SendTimer>,
    /// The spare connection that tells a busy server from a throttling one (see [`probe`]).
    probe: Option<Probe>,
    woken: Vec<u32>,
    /// During setup, joined clients are read in sweeps rather than on every event: each join
    /// sends a notice to every member of the channel, and reading them one at a time costs a
    /// read and an ACK each (most of the setup time with thousands of clients).
    defer_reads: bool,
    deferred: Vec<u32>,
    deferred_flag: Vec<bool>,
    setup_secs: f64,
    duration_secs: f64,
    timed_out: bool,
    stalled: bool,
    next_progress: Instant,
}

fn frame_of(text: &str) -> Result<Frame, SplitError> {
    frame::pad(text).map_err(|e| SplitError::Config(e.to_string()))
}

fn channel_name(c: usize) -> String {
    format!("stress-{c}")
}

/// The bytes of a frame without its trailing spaces.
fn trimmed(f: &Frame) -> &[u8] {
    let end = f.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &f[..end]
}

/// A `NAME has joined` / `NAME has left` notice: (name, joined).
fn notice(f: &Frame) -> Option<(&[u8], bool)> {
    let t = trimmed(f);
    if let Some(name) = t.strip_suffix(b" has joined") {
        Some((name, true))
    } else {
        t.strip_suffix(b" has left").map(|name| (name, false))
    }
}

impl<'a> Run<'a> {
    fn new(cfg: &'a StressConfig) -> Result<Run<'a>, SplitError> {
        let layout = Layout {
            clients: cfg.clients,
            senders: cfg.senders(),
            channels: cfg.channels,
        };
        let local = cfg.shard.as_ref().map_or(Local::All, Shard::local);
        let mut tracker = Tracker::new_local(layout, cfg.messages, cfg.window, local)?;
        if let Some(shard) = &cfg.shard {
            // Each shard is a site of its own: a delivery from another process crossed nodes.
            tracker.set_sites((0..cfg.clients).map(|i| (i % shard.of) as u16).collect());
        } else if cfg.servers.len() > 1 {
            tracker.set_sites((0..cfg.clients).map(|i| cfg.site(i) as u16).collect());
        }
        let seed = cfg.seed.unwrap_or_else(rand::random);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let run_id = match &cfg.shard {
            Some(shard) => shard.run_id(),
            None => ((std::process::id() ^ now) % (u32::from(message::MAX_RUN) + 1)) as u16,
        };
        log::info!("stress run {run_id:04}, seed {seed}");
        let mut conns = Vec::with_capacity(cfg.clients + cfg.no_read);
        conns.extend((0..cfg.clients).map(|_| Conn::new(true)));
        conns.extend((0..cfg.no_read).map(|_| Conn::new(false)));
        let started = Instant::now();
        let t0 = match &cfg.shard {
            Some(_) => started
                .checked_sub(Duration::from_nanos(monotonic_ns()))
                .ok_or_else(|| SplitError::Config("the monotonic clock is out of range".into()))?,
            None => started,
        };
        Ok(Run {
            cfg,
            layout,
            poll: Poll::new()?,
            conns,
            codec: Codec::new(run_id),
            tracker,
            rng: SmallRng::seed_from_u64(seed),
            buf: vec![0; READ_BUF],
            sync_reply: frame_of(&text::invalid_control_message(SYNC_COMMAND))?,
            exists_replies: (0..cfg.channels)
                .map(|c| frame_of(&text::channel_exists(&channel_name(c))))
                .collect::<Result<_, _>>()?,
            setup: SetupState::default(),
            t0,
            started,
            deadline: started + cfg.duration,
            next_connect: 0,
            started_clients: 0,
            started_no_read: 0,
            local_clients: cfg.local_clients(),
            connecting: 0,
            disconnects: 0,
            first_loss: None,
            rate: None,
            timer: None,
            probe: None,
            woken: Vec::new(),
            defer_reads: false,
            deferred: Vec::new(),
            deferred_flag: vec![false; cfg.clients + cfg.no_read],
            setup_secs: 0.0,
            duration_secs: 0.0,
            timed_out: false,
            stalled: false,
            next_progress: started + QUIET,
        })
    }

    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn name_of(&self, i: usize) -> String {
        let name = if i < self.cfg.clients {
            self.codec.name(i)
        } else {
            self.codec.no_read_name(i - self.cfg.clients)
        };
        String::from_utf8_lossy(&name).into_owned()
    }

    /// Connections started but not yet seen in their channel.
    fn in_flight(&self) -> usize {
        let real = self.started_clients - self.setup.ready;
        real + self
            .started_no_read
            .saturating_sub(self.setup.no_read_joined)
    }

    /// Starts connections up to index `upto` (those this process runs), keeping at most
    /// MAX_IN_FLIGHT in flight.
    fn start_connects(&mut self, upto: usize) -> Result<(), SplitError> {
        while self.in_flight() < MAX_IN_FLIGHT && self.next_connect < upto {
            let i = self.next_connect;
            self.next_connect += 1;
            if !self.cfg.runs(i) {
                continue;
            }
            let target = &self.cfg.servers[self.cfg.site(i)];
            self.conns[i]
                .connect(target, self.poll.registry(), Token(i))
                .map_err(|e| SplitError::Setup(format!("connecting to {}: {e}", target.label())))?;
            if i < self.cfg.clients {
                self.started_clients += 1;
            } else {
                self.started_no_read += 1;
            }
            self.connecting += 1;
        }
        Ok(())
    }

    /// The handshake of connection `i` may be over: check it, then queue the login.
    fn finish_connect(&mut self, i: usize) -> Result<(), SplitError> {
        let target = &self.cfg.servers[self.cfg.site(i)];
        match self.conns[i].finish_connect(target, &self.cfg.transport) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                return Err(SplitError::Setup(format!(
                    "connecting to {}: {e}",
                    target.label()
                )))
            }
        }
        self.connecting -= 1;
        let mut frames = vec![frame_of(&self.name_of(i))?];
        if i < self.cfg.clients {
            let ch = channel_name(self.layout.channel(i));
            frames.push(frame_of(&format!("/create {ch}"))?);
            frames.push(frame_of(&format!("/join {ch}"))?);
            frames.push(frame_of(SYNC_COMMAND)?);
            self.conns[i].phase = Phase::Setup;
        } else {
            frames.push(frame_of(&format!("/join {}", channel_name(0)))?);
            self.conns[i].phase = Phase::Ready;
        }
        for f in &frames {
            if let Err(e) = self.conns[i].send(f) {
                self.lost(i, &e.to_string());
                return Ok(());
            }
        }
        self.flush(i);
        Ok(())
    }

    fn flush(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let result = conn.flush(
            &mut self.rng,
            self.cfg.max_write,
            self.poll.registry(),
            Token(i),
        );
        if let Err(e) = result {
            self.lost(i, &e.to_string());
        }
    }

    /// Connection `i` is gone. For a reading client that is a fault of the run.
    fn lost(&mut self, i: usize, why: &str) {
        let conn = &mut self.conns[i];
        if conn.phase == Phase::Closed {
            return;
        }
        if conn.reads {
            log::warn!("client {} lost: {why}", self.name_of(i));
            self.disconnects += 1;
            if self.first_loss.is_none() {
                self.first_loss = Some(format!("client {} lost: {why}", self.name_of(i)));
            }
        } else {
            log::debug!("no-read client {} closed: {why}", self.name_of(i));
        }
        let conn = &mut self.conns[i];
        if conn.phase == Phase::Connecting {
            self.connecting -= 1;
        }
        conn.close(self.poll.registry());
    }

    /// Polls once and handles every event.
    fn poll_once(&mut self, events: &mut Events, timeout: Duration) -> Result<(), SplitError> {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        for event in events.iter() {
            if event.token() == TIMER {
                if let Some(timer) = &self.timer {
                    timer.clear();
                }
                continue;
            }
            if event.token() == PROBE {
                if let Some(probe) = self.probe.as_mut() {
                    probe.on_event(event, self.poll.registry());
                }
                continue;
            }
            let i = event.token().0;
            let Some(conn) = self.conns.get(i) else {
                continue;
            };
            let phase = conn.phase;
            match phase {
                Phase::Connecting => self.finish_connect(i)?,
                Phase::Waiting | Phase::Closed => {}
                Phase::Setup | Phase::Ready => {
                    if event.is_writable() {
                        self.flush(i);
                    }
                    let conn = &self.conns[i];
                    if event.is_readable() && (conn.reads || !conn.established()) {
                        // A no-read client reads only its handshakes: at once.
                        if self.defer_reads && phase == Phase::Ready && conn.reads {
                            if !self.deferred_flag[i] {
                                self.deferred_flag[i] = true;
                                self.deferred.push(i as u32);
                            }
                        } else {
                            self.read(i);
                            if self.tracker.has_woken() {
                                // A window opened: send now, so that the server has work
                                // while the rest of this poll's connections are read.
                                self.pump();
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads the joined connections whose reading was put off.
    fn read_deferred(&mut self) {
        let mut deferred = std::mem::take(&mut self.deferred);
        for &i in &deferred {
            if self.deferred_flag[i as usize] {
                self.deferred_flag[i as usize] = false;
                self.read(i as usize);
            }
        }
        deferred.clear();
        self.deferred = deferred;
    }

    /// Reads connection `i` until the socket is empty, handling every complete frame in place.
    fn read(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let mut frames = Frames {
            codec: &self.codec,
            tracker: &mut self.tracker,
            setup: &mut self.setup,
            sync_reply: &self.sync_reply,
            exists_reply: &self.exists_replies[self.layout.channel(i % self.cfg.clients)],
            r: i,
        };
        let outcome = conn.read(&mut self.buf, self.t0, |phase, incoming, now_ns| {
            frames.on_incoming(phase, incoming, now_ns)
        });
        match outcome {
            ReadOutcome::Open => {
                // What the protocol owes (a PONG, output held until a handshake) and the
                // interest of a client whose handshakes just ended.
                if conn.pending() > 0 || !conn.reads {
                    self.flush(i);
                }
            }
            ReadOutcome::Closed => self.lost(i, "closed by the server"),
            ReadOutcome::Failed(why) => self.lost(i, &why),
        }
    }

    fn progress(&mut self, what: impl FnOnce(&Self) -> String) {
        let now = Instant::now();
        if self.cfg.progress && now >= self.next_progress {
            eprintln!(
                "[{:6.1} s] {}",
                (now - self.started).as_secs_f64(),
                what(self)
            );
            self.next_progress = now + Duration::from_secs(1);
        }
    }

    fn check_setup(&self, what: &str) -> Result<(), SplitError> {
        if let Some(e) = &self.setup.error {
            return Err(SplitError::Setup(e.clone()));
        }
        if self.disconnects > 0 {
            return Err(SplitError::Setup(format!(
                "the server closed {} connection(s) while {what}{}",
                self.disconnects,
                self.first_loss
                    .as_ref()
                    .map_or(String::new(), |why| format!(" (first: {why})"))
            )));
        }
        if Instant::now() >= self.deadline {
            let handshaking = self
                .conns
                .iter()
                .filter(|c| c.link.is_some() && !c.established())
                .count();
            let hint = if handshaking > 0 {
                format!(
                    "; {handshaking} still in their {} handshake (does the server speak it on \
                     that port?)",
                    match (self.cfg.transport.tls.is_some(), self.cfg.transport.proto) {
                        (true, Proto::Frames) => "TLS".to_string(),
                        (true, p) => format!("TLS or {p}"),
                        (false, p) => p.to_string(),
                    }
                )
            } else {
                String::new()
            };
            return Err(SplitError::Setup(format!(
                "timed out while {what}: {} of {} clients ready, {} of {} no-read clients \
                 joined{hint}",
                self.setup.ready, self.local_clients, self.setup.no_read_joined, self.cfg.no_read
            )));
        }
        Ok(())
    }

    /// Connects everyone, logs in and joins; returns when every client is in its channel.
    fn setup(&mut self, events: &mut Events) -> Result<(), SplitError> {
        let clients = self.cfg.clients;
        self.defer_reads = true;
        let mut next_sweep = Instant::now() + SWEEP;
        while self.setup.ready < self.local_clients {
            self.check_setup("joining")?;
            self.start_connects(clients)?;
            self.poll_once(events, TICK)?;
            if Instant::now() >= next_sweep {
                self.read_deferred();
                next_sweep = Instant::now() + SWEEP;
            }
            self.progress(|r| {
                format!(
                    "setup: {} connected, {} of {} clients ready",
                    r.started_clients + r.started_no_read - r.connecting,
                    r.setup.ready,
                    r.local_clients
                )
            });
        }
        // The no-read clients join once the channel exists; client 0 (in stress-0) sees each
        // of them arrive.
        let total = clients + self.cfg.no_read;
        while self.setup.no_read_joined < self.cfg.no_read {
            self.check_setup("no-read clients join")?;
            self.start_connects(total)?;
            self.poll_once(events, TICK)?;
            // Client 0 reports the no-read joins: read it at once.
            if self.deferred_flag[0] {
                self.read(0);
            }
        }
        self.defer_reads = false;
        self.read_deferred();
        self.setup_secs = self.started.elapsed().as_secs_f64();
        log::info!("setup done in {:.3} s", self.setup_secs);
        Ok(())
    }

    /// With shards: says that this process reached `stage` and waits (reading whatever comes)
    /// until every other one has too; an error when one failed or the run's time is up.
    fn meet(&mut self, events: &mut Events, stage: &str) -> Result<(), SplitError> {
        let Some(shard) = self.cfg.shard.clone() else {
            return Ok(());
        };
        shard.arrive(stage)?;
        loop {
            match shard.missing(stage) {
                Ok(missing) if missing.is_empty() => return Ok(()),
                Ok(missing) if Instant::now() >= self.deadline => {
                    return Err(SplitError::Setup(format!(
                        "timed out at the {stage} barrier in {}: shard(s) {missing:?} of {} \
                         not there",
                        shard.barrier.display(),
                        shard.of
                    )))
                }
                Ok(_) => {}
                Err(k) => {
                    return Err(SplitError::Setup(format!(
                        "shard {k} of {} failed (see its own output)",
                        shard.of
                    )))
                }
            }
            self.poll_once(events, Duration::from_millis(10))?;
            self.progress(|r| {
                format!(
                    "waiting for the other shards ({stage}), {} here",
                    r.local_clients
                )
            });
        }
    }

    /// Holds every connection for `idle`, reading whatever comes.
    fn hold(&mut self, events: &mut Events, idle: Duration) -> Result<(), SplitError> {
        let until = Instant::now() + idle;
        while Instant::now() < until && self.disconnects == 0 {
            let left = until.saturating_duration_since(Instant::now());
            self.poll_once(events, left.min(TICK))?;
            self.progress(|r| {
                format!(
                    "idle: {} connections held, {:.0} s left",
                    r.cfg.clients + r.cfg.no_read,
                    until
                        .saturating_duration_since(Instant::now())
                        .as_secs_f64()
                )
            });
        }
        Ok(())
    }

    /// Sends every message and waits for every delivery (or the limit).
    fn send_all(&mut self, events: &mut Events) -> Result<(), SplitError> {
        let mut probe_name = self.codec.probe_name();
        if let Some(shard) = &self.cfg.shard {
            probe_name.push_str(&shard.index.to_string());
        }
        match Probe::connect(
            &self.cfg.servers[0],
            &self.cfg.transport,
            &probe_name,
            self.poll.registry(),
            PROBE,
        ) {
            Ok(probe) => self.probe = Some(probe),
            // Without it the report only lacks the throttling verdict.
            Err(e) => log::warn!("no responsiveness probe: {e}"),
        }
        let start = Instant::now();
        let start_ns = self.now_ns();
        let senders = self.layout.senders;
        if self.cfg.rate > 0.0 {
            let interval_ns = (1e9 / self.cfg.rate).max(1.0) as u64;
            let due = (0..senders)
                .map(|s| {
                    // Below interval_ns, so it fits; u128 so that the product cannot overflow.
                    let phase = (u128::from(interval_ns) * s as u128 / senders as u128) as u64;
                    (start_ns.saturating_add(phase), s as u32)
                })
                .collect();
            self.rate = Some(Rate {
                interval_ns,
                due,
                granted: vec![0; senders],
                credits: vec![0; senders],
                lag: Histogram::new(),
            });
            let timer = SendTimer::new()?;
            self.poll
                .registry()
                .register(&mut SourceFd(&timer.fd()), TIMER, Interest::READABLE)?;
            self.timer = Some(timer);
        } else {
            for s in 0..senders {
                self.tracker.wake(s);
            }
        }
        let stall_limit = match &self.rate {
            Some(r) => STALL.max(Duration::from_nanos(r.interval_ns.saturating_mul(3))),
            None => STALL,
        };
        let mut last_count = 0;
        let mut last_change = start;
        let mut done_at = None;
        loop {
            let now = Instant::now();
            if self.tracker.done() {
                let at = *done_at.get_or_insert(now);
                if now >= at + DRAIN {
                    break;
                }
            }
            if self.disconnects > 0 {
                break;
            }
            if now >= self.deadline {
                self.timed_out = !self.tracker.done();
                break;
            }
            let count = self.tracker.counts.delivered + self.tracker.counts.sent;
            if count != last_count {
                last_count = count;
                last_change = now;
            } else if now - last_change > stall_limit && !self.tracker.done() {
                self.stalled = true;
                break;
            }
            let mut wait = self.grant_credits();
            self.pump();
            if let Some(timer) = &self.timer {
                if wait < TICK {
                    timer.arm(wait)?;
                    wait = TICK;
                }
            }
            if let Some(probe) = self.probe.as_mut() {
                wait = wait.min(probe.tick(Instant::now(), self.poll.registry()));
            }
            self.poll_once(events, wait)?;
            self.progress(|r| {
                let secs = start.elapsed().as_secs_f64();
                let got = r.tracker.counts.delivered;
                format!(
                    "{got} of {} deliveries ({:.0}/s), {} messages sent",
                    r.tracker.expected(),
                    got as f64 / secs.max(1e-9),
                    r.tracker.counts.sent
                )
            });
        }
        let end = done_at.unwrap_or_else(Instant::now);
        self.duration_secs = (end - start).as_secs_f64();
        Ok(())
    }

    /// Gives due senders a credit; returns how long the loop may wait for the next one.
    fn grant_credits(&mut self) -> Duration {
        let now_ns = self.now_ns();
        let Some(rate) = self.rate.as_mut() else {
            return TICK;
        };
        while let Some(&(due, s)) = rate.due.front() {
            if due > now_ns {
                return Duration::from_nanos(due - now_ns).min(TICK);
            }
            rate.due.pop_front();
            rate.lag.record(now_ns - due);
            let si = s as usize;
            rate.credits[si] += 1;
            rate.granted[si] += 1;
            if rate.granted[si] < self.cfg.messages {
                rate.due
                    .push_back((due.saturating_add(rate.interval_ns), s));
            }
            self.tracker.wake(si);
        }
        TICK
    }

    /// Lets every woken sender write what its window (and rate) allows.
    fn pump(&mut self) {
        let mut woken = std::mem::take(&mut self.woken);
        self.tracker.take_woken(&mut woken);
        let mut frame = [b' '; FRAME_LEN];
        for &s in &woken {
            let s = s as usize;
            if self.conns[s].phase != Phase::Ready {
                continue;
            }
            let now_ns = self.now_ns();
            let mut wrote = false;
            let mut failed = None;
            while self.tracker.can_send(s) {
                if let Some(rate) = self.rate.as_mut() {
                    if rate.credits[s] == 0 {
                        break;
                    }
                    rate.credits[s] -= 1;
                }
                let msg = self.tracker.on_sent(s, now_ns);
                self.codec.encode(msg, &mut frame);
                if let Err(e) = self.conns[s].send(&frame) {
                    failed = Some(e.to_string());
                    break;
                }
                wrote = true;
            }
            if let Some(why) = failed {
                self.lost(s, &why);
            } else if wrote {
                self.flush(s);
            }
        }
        self.woken = woken;
    }

    fn report(&self) -> StressReport {
        let c = self.tracker.counts;
        let expected = if self.cfg.idle.is_some() {
            0
        } else {
            self.tracker.expected()
        };
        let latency = Latency::of(&self.tracker.latency);
        let cross = &self.tracker.cross_latency;
        let probe = self.probe.as_ref().map(|p| Latency::of(&p.rtt));
        StressReport {
            clients: self.cfg.clients,
            senders: self.layout.senders,
            no_read: self.cfg.no_read,
            channels: self.cfg.channels,
            messages_per_sender: self.cfg.messages,
            idle: self.cfg.idle.is_some(),
            messages_sent: c.sent,
            deliveries_expected: expected,
            deliveries_received: c.delivered,
            setup_secs: self.setup_secs,
            duration_secs: self.duration_secs,
            deliveries_per_sec: if self.duration_secs > 0.0 {
                c.delivered as f64 / self.duration_secs
            } else {
                0.0
            },
            latency,
            probe,
            throttled: probe.is_some_and(|p| probe::held_back(&latency, &p)),
            send_lag: self.rate.as_ref().map(|r| Latency::of(&r.lag)),
            lost: expected.saturating_sub(c.delivered),
            duplicates: c.duplicates,
            reordered: c.reordered,
            corrupt: c.corrupt,
            disconnects: self.disconnects,
            no_read_dropped: self.setup.no_read_dropped,
            other_frames: self.setup.other_frames,
            timed_out: self.timed_out,
            stalled: self.stalled,
            server: None,
            servers: self.cfg.servers.len(),
            placement: match self.cfg.placement {
                Placement::RoundRobin => "round-robin",
                Placement::Split => "split",
            },
            proto: self.cfg.transport.proto.name(),
            tls: self.cfg.transport.tls.is_some(),
            cross_server_latency: (self.cfg.servers.len() > 1 || self.cfg.shard.is_some())
                .then(|| Latency::of(cross)),
            shard: self.cfg.shard.as_ref().map(|s| (s.index, s.of)),
            local_clients: self.local_clients,
        }
    }

    fn close_all(&mut self) {
        for conn in &mut self.conns {
            conn.close(self.poll.registry());
        }
        if let Some(probe) = self.probe.take() {
            probe.close(self.poll.registry());
        }
    }
}

/// Handles the frames of one read: everything it needs, borrowed apart from the connection's
/// decoder.
struct Frames<'b> {
    codec: &'b Codec,
    tracker: &'b mut Tracker,
    setup: &'b mut SetupState,
    sync_reply: &'b Frame,
    exists_reply: &'b Frame,
    r: usize,
}

impl Frames<'_> {
    #[inline]
    fn on_incoming(&mut self, phase: &mut Phase, incoming: Incoming<'_>, now_ns: u64) {
        if let Incoming::Said { name, text } = incoming {
            if *phase != Phase::Setup {
                if let Some(Verdict::Ours(msg)) = self.codec.verify_said(name, text) {
                    self.tracker.on_message(self.r, msg, now_ns);
                    return;
                }
            }
        }
        incoming.frames(|f| self.on_frame(phase, f, now_ns));
    }

    fn on_frame(&mut self, phase: &mut Phase, f: &Frame, now_ns: u64) {
        if *phase == Phase::Setup {
            self.on_setup_frame(phase, f);
            return;
        }
        match self.codec.verify(f) {
            Verdict::Ours(msg) => self.tracker.on_message(self.r, msg, now_ns),
            Verdict::Corrupt => {
                if self.tracker.counts.corrupt < 5 {
                    log::warn!("corrupt frame at client {}: {:?}", self.r, frame::decode(f));
                }
                self.tracker.on_corrupt();
            }
            Verdict::Foreign => self.on_other_frame(f),
        }
    }

    fn on_other_frame(&mut self, f: &Frame) {
        match notice(f) {
            Some((name, joined)) => {
                if self.r == 0 && self.codec.is_no_read_name(name) {
                    if joined {
                        self.setup.no_read_joined += 1;
                    } else {
                        self.setup.no_read_dropped += 1;
                    }
                }
            }
            None => {
                if self.setup.other_frames < 5 {
                    log::warn!(
                        "unexpected frame at client {}: {:?}",
                        self.r,
                        frame::decode(f)
                    );
                }
                self.setup.other_frames += 1;
            }
        }
    }

    fn on_setup_frame(&mut self, phase: &mut Phase, f: &Frame) {
        if f == self.sync_reply {
            *phase = Phase::Ready;
            self.setup.ready += 1;
            return;
        }
        let exists = self.exists_reply == f;
        if exists || notice(f).is_some() || f[0] == b'[' {
            return;
        }
        if self.setup.error.is_none() {
            self.setup.error = Some(format!(
                "client {} got an unexpected reply while joining: {}",
                self.r,
                frame::decode(f)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The send timer wakes a poll at its time (well before the poll's own timeout), and
    /// again after it is cleared and re-armed.
    #[test]
    fn send_timer_wakes_the_poll_on_time_and_again_after_a_clear() {
        let mut poll = Poll::new().expect("poll");
        let timer = SendTimer::new().expect("timerfd");
        poll.registry()
            .register(&mut SourceFd(&timer.fd()), TIMER, Interest::READABLE)
            .expect("register");
        let mut events = Events::with_capacity(4);
        for _ in 0..3 {
            let start = Instant::now();
            timer.arm(Duration::from_micros(300)).expect("arm");
            poll.poll(&mut events, Some(Duration::from_secs(2)))
                .expect("poll");
            let took = start.elapsed();
            assert!(
                events.iter().any(|e| e.token() == TIMER),
                "woken by the timer"
            );
            assert!(
                took >= Duration::from_micros(300),
                "not before its time: {took:?}"
            );
            assert!(
                took < Duration::from_secs(1),
                "long before the poll's timeout: {took:?}"
            );
            timer.clear();
        }
    }
}
