//! `split_client regflood HOST PORT`: does a flood of registrations stall the chat?
//!
//! Two bystander clients in one channel measure chat round trips (one sends, the tool waits
//! until the other has received it, then the other way), first `--rounds` of them with nothing
//! else going on (the baseline), then all through the flood: `--flooders` connections, each
//! logged in with a new name, send `/register PASSWORD` at once. Password hashing is slow on
//! purpose; the server must do it off its event loop with a bounded queue, confirming what it
//! can (`Name … is now registered.`) and refusing the rest with the busy text, while the
//! bystanders' messages go on as before. The report gives both round-trip distributions and
//! the count of each answer; any lost or wrong bystander message, any other answer, or a
//! flooder left without one fails the run.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::conn::{Conn, Phase, ReadOutcome, Target, Transport};
use super::procfs;
use super::report::{human_ns, Latency};
use crate::frame::{self, Frame};
use crate::split::histogram::Histogram;
use crate::split::SplitError;
use crate::utils_errors as text;

/// Connections started but not yet logged in, at most (below the smallest listen backlog).
const MAX_IN_FLIGHT: usize = 96;
/// The command whose error reply tells that the server has handled what came before it.
const SYNC_COMMAND: &str = "/stress-sync";
/// The longest poll wait.
const TICK: Duration = Duration::from_millis(50);
/// Runs longer than this show progress on stderr, once a second.
const QUIET: Duration = Duration::from_secs(2);

/// A registration flood's options.
#[derive(Debug, Clone)]
pub struct RegfloodConfig {
    /// The server.
    pub target: Target,
    /// TLS or not (the protocol is always frames).
    pub transport: Transport,
    /// Connections that register.
    pub flooders: usize,
    /// Bystander round trips before the flood (the baseline).
    pub rounds: u32,
    /// The pause between one round trip's arrival and the next one's sending: a chat, not a
    /// flood of its own.
    pub pause: Duration,
    /// The hard limit of the whole run.
    pub duration: Duration,
    /// The password every flooder registers with (8 to 64 characters).
    pub password: String,
    /// Print progress on stderr on long runs.
    pub progress: bool,
    /// The server's process id: report its CPU time over the flood.
    pub server_pid: Option<u32>,
}

impl RegfloodConfig {
    /// The defaults: 4,000 flooders, 200 baseline round trips, 120 s limit.
    pub fn new(target: Target) -> RegfloodConfig {
        RegfloodConfig {
            target,
            transport: Transport::default(),
            flooders: 4000,
            rounds: 200,
            pause: Duration::from_millis(1),
            duration: Duration::from_secs(120),
            password: "flood-password".into(),
            progress: false,
            server_pid: None,
        }
    }

    fn validate(&self) -> Result<(), SplitError> {
        let bad = |m: &str| Err(SplitError::Config(m.into()));
        if self.flooders == 0 || self.flooders > 999_999 {
            return bad("flooders must be 1 to 999999");
        }
        if self.rounds == 0 {
            return bad("rounds must be at least 1");
        }
        if !(8..=64).contains(&self.password.chars().count()) || self.password.contains(' ') {
            return bad("the password must be 8 to 64 characters without spaces");
        }
        if self.transport.proto != super::Proto::Frames {
            return bad("regflood speaks frames only");
        }
        Ok(())
    }
}

/// What a flooder's answer to `/register` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `Name {name} is now registered.`
    Registered,
    /// `The server is busy. Try again in a moment.`
    Busy,
    /// Anything else.
    Other,
}

/// Sorts a flooder's answer.
pub fn classify(frame: &Frame, name: &str) -> Answer {
    let got = frame::decode(frame);
    if got == text::now_registered(name) {
        Answer::Registered
    } else if got == text::BUSY {
        Answer::Busy
    } else {
        Answer::Other
    }
}

/// What a registration flood did and found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegfloodReport {
    /// Connections that were to register.
    pub flooders: usize,
    /// Registrations confirmed.
    pub registered: u64,
    /// Registrations refused with the busy text.
    pub busy: u64,
    /// Other answers.
    pub other: u64,
    /// Flooders with no answer at the end (closed, or out of time).
    pub unanswered: u64,
    /// Connecting and logging in every client, in seconds.
    pub setup_secs: f64,
    /// From the first `/register` to the last answer, in seconds.
    pub flood_secs: f64,
    /// Bystander round trips with nothing else going on.
    pub baseline: Latency,
    /// Bystander round trips started while the flood was under way.
    pub rtt: Latency,
    /// Bystander messages that did not arrive as sent, and anything else a bystander got.
    pub bystander_faults: u64,
    /// Connections the server closed.
    pub disconnects: u64,
    /// The run hit its duration limit.
    pub timed_out: bool,
    /// The server's CPU time over the flood, when its pid was given.
    pub server_cpu_secs: Option<f64>,
}

impl RegfloodReport {
    /// True when every flooder got one of the two expected answers, every bystander message
    /// arrived intact, and nothing was closed or left waiting.
    pub fn passed(&self) -> bool {
        self.other == 0
            && self.unanswered == 0
            && self.bystander_faults == 0
            && self.disconnects == 0
            && !self.timed_out
            && self.registered + self.busy == self.flooders as u64
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"flooders\":{},\"registered\":{},\"busy\":{},\"other\":{},",
                "\"unanswered\":{},\"setup_secs\":{:.3},\"flood_secs\":{:.3},",
                "\"baseline_rtt_ns\":{},\"rtt_ns\":{},\"bystander_faults\":{},",
                "\"disconnects\":{},\"timed_out\":{},\"server_cpu_secs\":{},\"passed\":{}}}"
            ),
            self.flooders,
            self.registered,
            self.busy,
            self.other,
            self.unanswered,
            self.setup_secs,
            self.flood_secs,
            self.baseline.to_json(),
            self.rtt.to_json(),
            self.bystander_faults,
            self.disconnects,
            self.timed_out,
            self.server_cpu_secs
                .map_or_else(|| "null".into(), |c| format!("{c:.3}")),
            self.passed(),
        )
    }
}

impl fmt::Display for RegfloodReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lat = |l: &Latency| {
            format!(
                "p50 {}, p99 {}, max {} ({} round trips)",
                human_ns(l.p50),
                human_ns(l.p99),
                human_ns(l.max),
                l.samples
            )
        };
        writeln!(
            f,
            "regflood: {} connections sending /register at once, 2 bystanders chatting",
            self.flooders
        )?;
        writeln!(f, "  setup:      {:.3} s", self.setup_secs)?;
        writeln!(f, "  baseline:   {}", lat(&self.baseline))?;
        writeln!(f, "  flood:      {}", lat(&self.rtt))?;
        writeln!(
            f,
            "  answers:    {} registered, {} busy, {} other, {} unanswered, in {:.3} s",
            self.registered, self.busy, self.other, self.unanswered, self.flood_secs
        )?;
        if let Some(cpu) = self.server_cpu_secs {
            writeln!(f, "  server:     {cpu:.3} s CPU over the flood")?;
        }
        writeln!(
            f,
            "  errors:     bystander faults {}, disconnects {}",
            self.bystander_faults, self.disconnects
        )?;
        if self.timed_out {
            writeln!(f, "  stopped:    the duration limit was reached")?;
        }
        write!(
            f,
            "  result:     {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// One bystander round trip under way.
#[derive(Debug, Clone, Copy)]
struct Trip {
    /// The bystander that sent.
    from: usize,
    /// What the other one must receive.
    expect: Frame,
    sent: Instant,
    /// Started while the flood was under way.
    during: bool,
}

/// Where the run is, shared by the two threads: the bystanders' thread moves it from
/// [`SETUP`] to [`BASELINE_DONE`], the flooders' thread from there to [`FLOOD`] and [`OVER`].
#[derive(Debug, Default)]
struct Shared {
    stage: AtomicU8,
}

const SETUP: u8 = 0;
const BASELINE_DONE: u8 = 1;
const FLOOD: u8 = 2;
const OVER: u8 = 3;

impl Shared {
    fn get(&self) -> u8 {
        self.stage.load(Ordering::Acquire)
    }

    fn set(&self, stage: u8) {
        self.stage.store(stage, Ordering::Release);
    }
}

/// Which connections a [`Group`] drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The two bystanders: setup, baseline, round trips through the flood.
    Bystanders,
    /// The flooders: log in, then `/register` at once.
    Flooders,
}

/// One event loop's connections. The bystanders and the flooders each have their own loop,
/// on their own thread: a bystander's message is read when it arrives, not after the
/// thousands of answers the flooders get in the same instant (which would time the tool).
struct Group<'a> {
    cfg: &'a RegfloodConfig,
    part: Part,
    shared: &'a Shared,
    poll: Poll,
    conns: Vec<Conn>,
    names: Vec<String>,
    /// Per flooder: its answer, once it has one.
    answers: Vec<Option<Answer>>,
    rng: SmallRng,
    buf: Vec<u8>,
    sync_reply: Frame,
    exists_reply: Frame,
    channel: String,
    next_connect: usize,
    logged_in: usize,
    answered: usize,
    /// Flooders closed before their answer.
    gone: usize,
    trip: Option<Trip>,
    /// When the next round trip is due.
    next_trip: Option<Instant>,
    trips: u64,
    baseline: Histogram,
    rtt: Histogram,
    report: RegfloodReport,
    other_logged: u64,
    t0: Instant,
    deadline: Instant,
    next_progress: Instant,
}

fn frame_of(text: &str) -> Result<Frame, SplitError> {
    frame::pad(text).map_err(|e| SplitError::Config(e.to_string()))
}

/// Runs a registration flood and reports what it found. An `Err` means the run could not be
/// set up; faults of the server during the flood are in the report.
pub fn run_regflood(cfg: &RegfloodConfig) -> Result<RegfloodReport, SplitError> {
    cfg.validate()?;
    let limit = crate::os::raise_nofile_limit();
    let needed = (cfg.flooders + 2 + 32) as u64;
    if needed > limit {
        return Err(SplitError::Config(format!(
            "{needed} file descriptors needed, the limit is {limit}"
        )));
    }
    let run = (std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()))
        % 10_000;
    let shared = Shared::default();
    let t0 = Instant::now();
    let mut bystanders = Group::new(cfg, Part::Bystanders, &shared, run, t0)?;
    let mut flooders = Group::new(cfg, Part::Flooders, &shared, run, t0)?;
    let (by, fl) = std::thread::scope(|scope| {
        let by = scope.spawn(|| {
            let result = bystanders.run_bystanders();
            // Whatever happened, the flooders' thread must not wait for a baseline.
            if result.is_err() {
                shared.set(OVER);
            }
            result
        });
        let fl = flooders.run_flooders();
        // Whatever happened, the bystanders stop once their round trip is done.
        shared.set(OVER);
        let by = by
            .join()
            .unwrap_or_else(|_| Err(SplitError::Setup("the bystanders' thread failed".into())));
        (by, fl)
    });
    by?;
    fl?;
    let by = bystanders.finish();
    let mut report = flooders.finish();
    report.baseline = by.baseline;
    report.rtt = by.rtt;
    report.bystander_faults = by.bystander_faults;
    report.disconnects += by.disconnects;
    report.timed_out |= by.timed_out;
    Ok(report)
}

impl<'a> Group<'a> {
    fn new(
        cfg: &'a RegfloodConfig,
        part: Part,
        shared: &'a Shared,
        run: u32,
        t0: Instant,
    ) -> Result<Group<'a>, SplitError> {
        let names: Vec<String> = match part {
            Part::Bystanders => vec![format!("f{run:04}-a"), format!("f{run:04}-b")],
            Part::Flooders => (0..cfg.flooders)
                .map(|k| format!("r{run:04}-{k:06}"))
                .collect(),
        };
        let channel = format!("regflood-{run:04}");
        Ok(Group {
            cfg,
            part,
            shared,
            poll: Poll::new()?,
            conns: names.iter().map(|_| Conn::new(true)).collect(),
            answers: vec![
                None;
                if part == Part::Flooders {
                    names.len()
                } else {
                    0
                }
            ],
            names,
            rng: SmallRng::seed_from_u64(u64::from(run) ^ part as u64),
            buf: vec![0; 64 * 1024],
            sync_reply: frame_of(&text::invalid_control_message(SYNC_COMMAND))?,
            exists_reply: frame_of(&text::channel_exists(&channel))?,
            channel,
            next_connect: 0,
            logged_in: 0,
            answered: 0,
            gone: 0,
            trip: None,
            next_trip: None,
            trips: 0,
            baseline: Histogram::new(),
            rtt: Histogram::new(),
            report: RegfloodReport {
                flooders: cfg.flooders,
                ..RegfloodReport::default()
            },
            other_logged: 0,
            t0,
            deadline: t0 + cfg.duration,
            next_progress: t0 + QUIET,
        })
    }

    /// The bystanders' thread: join, the baseline, then round trips until the flood is over.
    fn run_bystanders(&mut self) -> Result<(), SplitError> {
        let mut events = Events::with_capacity(64);
        self.connect_upto(self.conns.len())?;
        while self.logged_in < self.conns.len() {
            self.check("the bystanders join")?;
            self.poll_once(&mut events)?;
        }
        self.start_trip();
        while self.trips < u64::from(self.cfg.rounds) {
            self.check("the bystanders measure the baseline")?;
            self.poll_once(&mut events)?;
        }
        self.shared.set(BASELINE_DONE);
        // Quiet while the flooders log in; round trips from the flood's start to its end,
        // and the last one begun during it.
        loop {
            if Instant::now() >= self.deadline {
                self.report.timed_out = true;
                break;
            }
            let stage = self.shared.get();
            if stage == OVER && self.trip.is_none_or(|t| !t.during) {
                break;
            }
            if stage == FLOOD && self.trip.is_none() && self.next_trip.is_none() {
                self.start_trip();
            }
            self.poll_once(&mut events)?;
        }
        Ok(())
    }

    /// The flooders' thread: log in once the baseline is done, then every `/register` at once,
    /// and wait for every answer.
    fn run_flooders(&mut self) -> Result<(), SplitError> {
        let mut events = Events::with_capacity(4096);
        while self.shared.get() == SETUP {
            if Instant::now() >= self.deadline {
                return Err(SplitError::Setup("timed out before the flood".into()));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.shared.get() == OVER {
            // The bystanders failed; their error is the one to report.
            return Ok(());
        }
        while self.logged_in < self.conns.len() {
            self.check("the flooders log in")?;
            self.connect_upto(self.conns.len())?;
            self.poll_once(&mut events)?;
            let (n, total) = (self.logged_in, self.cfg.flooders);
            self.progress(|| format!("setup: {n} of {total} flooders logged in"));
        }
        self.report.setup_secs = self.t0.elapsed().as_secs_f64();
        let cpu_before = self.cfg.server_pid.and_then(procfs::cpu_secs);
        let register = frame_of(&format!("/register {}", self.cfg.password))?;
        let start = Instant::now();
        log::debug!(
            "the flood starts at {:.1} ms",
            start.saturating_duration_since(self.t0).as_secs_f64() * 1e3
        );
        self.shared.set(FLOOD);
        for i in 0..self.conns.len() {
            if let Err(e) = self.conns[i].send(&register) {
                self.lost(i, &e.to_string());
            }
        }
        for i in 0..self.conns.len() {
            self.flush(i);
        }
        while self.flood_on() {
            if Instant::now() >= self.deadline {
                self.report.timed_out = true;
                break;
            }
            self.poll_once(&mut events)?;
            let (got, total) = (self.answered, self.cfg.flooders);
            self.progress(|| format!("flood: {got} of {total} registrations answered"));
        }
        self.report.flood_secs = start.elapsed().as_secs_f64();
        self.shared.set(OVER);
        if let (Some(pid), Some(before)) = (self.cfg.server_pid, cpu_before) {
            self.report.server_cpu_secs =
                procfs::cpu_secs(pid).map(|after| (after - before).max(0.0));
        }
        Ok(())
    }

    /// True while some flooder waits for its answer.
    fn flood_on(&self) -> bool {
        self.answered + self.gone < self.cfg.flooders
    }

    fn finish(&mut self) -> RegfloodReport {
        let registry = self.poll.registry();
        for conn in &mut self.conns {
            conn.close(registry);
        }
        let mut report = self.report.clone();
        report.unanswered = self.answers.iter().filter(|a| a.is_none()).count() as u64;
        report.baseline = Latency::of(&self.baseline);
        report.rtt = Latency::of(&self.rtt);
        report
    }

    fn check(&self, what: &str) -> Result<(), SplitError> {
        if self.report.disconnects > 0 {
            return Err(SplitError::Setup(format!(
                "the server closed {} connection(s) while {what}",
                self.report.disconnects
            )));
        }
        if self.report.bystander_faults > 0 {
            return Err(SplitError::Setup(format!(
                "a bystander got an unexpected frame while {what}"
            )));
        }
        if self.part == Part::Flooders && self.report.other > 0 {
            return Err(SplitError::Setup(format!(
                "a flooder got an unexpected frame while {what}"
            )));
        }
        if Instant::now() >= self.deadline {
            return Err(SplitError::Setup(format!("timed out while {what}")));
        }
        if self.part == Part::Flooders && self.shared.get() == OVER {
            return Err(SplitError::Setup(format!(
                "the bystanders stopped while {what}"
            )));
        }
        Ok(())
    }

    fn progress(&mut self, what: impl FnOnce() -> String) {
        let now = Instant::now();
        if self.cfg.progress && now >= self.next_progress {
            eprintln!("[{:6.1} s] {}", (now - self.t0).as_secs_f64(), what());
            self.next_progress = now + Duration::from_secs(1);
        }
    }

    /// Connections started but not yet logged in.
    fn in_flight(&self) -> usize {
        self.next_connect - self.logged_in
    }

    fn connect_upto(&mut self, upto: usize) -> Result<(), SplitError> {
        while self.next_connect < upto && self.in_flight() < MAX_IN_FLIGHT {
            let i = self.next_connect;
            self.conns[i]
                .connect(&self.cfg.target, self.poll.registry(), Token(i))
                .map_err(|e| {
                    SplitError::Setup(format!("connecting to {}: {e}", self.cfg.target.label()))
                })?;
            self.next_connect += 1;
        }
        Ok(())
    }

    fn poll_once(&mut self, events: &mut Events) -> Result<(), SplitError> {
        if let Some(at) = self.next_trip {
            if Instant::now() >= at {
                self.next_trip = None;
                self.start_trip();
            }
        }
        let wait = self.next_trip.map_or(TICK, |at| {
            at.saturating_duration_since(Instant::now()).min(TICK)
        });
        match self.poll.poll(events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        for event in events.iter() {
            let i = event.token().0;
            let Some(conn) = self.conns.get(i) else {
                continue;
            };
            match conn.phase {
                Phase::Connecting => self.finish_connect(i)?,
                Phase::Waiting | Phase::Closed => {}
                Phase::Setup | Phase::Ready => {
                    if event.is_readable() {
                        self.read(i);
                    }
                    if event.is_writable() {
                        self.flush(i);
                    }
                }
            }
        }
        Ok(())
    }

    fn finish_connect(&mut self, i: usize) -> Result<(), SplitError> {
        match self.conns[i].finish_connect(&self.cfg.target, &self.cfg.transport) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                return Err(SplitError::Setup(format!(
                    "connecting to {}: {e}",
                    self.cfg.target.label()
                )))
            }
        }
        let mut frames = vec![frame_of(&self.names[i])?];
        if self.part == Part::Bystanders {
            frames.push(frame_of(&format!("/create {}", self.channel))?);
            frames.push(frame_of(&format!("/join {}", self.channel))?);
        }
        frames.push(frame_of(SYNC_COMMAND)?);
        self.conns[i].phase = Phase::Setup;
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
        let registry = self.poll.registry();
        if let Err(e) = self.conns[i].flush(&mut self.rng, 1024, registry, Token(i)) {
            self.lost(i, &e.to_string());
        }
    }

    fn lost(&mut self, i: usize, why: &str) {
        if self.conns[i].phase == Phase::Closed {
            return;
        }
        log::warn!("{} lost: {why}", self.names[i]);
        self.report.disconnects += 1;
        if self.part == Part::Flooders && self.answers[i].is_none() {
            self.gone += 1;
        }
        self.conns[i].close(self.poll.registry());
    }

    fn read(&mut self, i: usize) {
        let mut got: Vec<Frame> = Vec::new();
        let outcome = self.conns[i].read(&mut self.buf, self.t0, |_, incoming, _| {
            incoming.frames(|f| got.push(*f))
        });
        let now = Instant::now();
        match outcome {
            ReadOutcome::Open => {}
            ReadOutcome::Closed => self.lost(i, "closed by the server"),
            ReadOutcome::Failed(why) => self.lost(i, &why),
        }
        for f in got {
            self.on_frame(i, &f, now);
        }
    }

    fn on_frame(&mut self, i: usize, f: &Frame, now: Instant) {
        let bystander = self.part == Part::Bystanders;
        if bystander && frame::decode(f) == text::has_joined(&self.names[1 - i]) {
            // The other bystander joined after this one (whenever that was seen).
            return;
        }
        if self.conns[i].phase == Phase::Setup {
            if *f == self.sync_reply {
                self.conns[i].phase = Phase::Ready;
                self.logged_in += 1;
            } else if bystander && *f == self.exists_reply {
                // The other bystander created the channel first.
            } else {
                self.unexpected(i, f);
            }
            return;
        }
        if !bystander {
            if self.answers[i].is_some() || self.shared.get() < FLOOD {
                self.unexpected(i, f);
                return;
            }
            let answer = classify(f, &self.names[i]);
            match answer {
                Answer::Registered => self.report.registered += 1,
                Answer::Busy => self.report.busy += 1,
                Answer::Other => self.unexpected(i, f),
            }
            self.answers[i] = Some(answer);
            self.answered += 1;
            return;
        }
        match self.trip {
            Some(trip) if trip.from != i && trip.expect == *f => {
                let ns = now.saturating_duration_since(trip.sent).as_nanos() as u64;
                if self.trips < u64::from(self.cfg.rounds) {
                    self.baseline.record(ns);
                } else if trip.during {
                    self.rtt.record(ns);
                    log::debug!(
                        "round trip {} during the flood: {ns} ns, sent at {:.1} ms",
                        self.trips,
                        trip.sent.saturating_duration_since(self.t0).as_secs_f64() * 1e3
                    );
                }
                self.trips += 1;
                self.trip = None;
                if self.cfg.pause.is_zero() {
                    self.start_trip();
                } else {
                    self.next_trip = Some(now + self.cfg.pause);
                }
            }
            _ => self.unexpected(i, f),
        }
    }

    fn unexpected(&mut self, i: usize, f: &Frame) {
        if self.other_logged < 5 {
            self.other_logged += 1;
            log::warn!(
                "unexpected frame at {}: {:?}",
                self.names[i],
                frame::decode(f)
            );
        }
        match self.part {
            Part::Bystanders => self.report.bystander_faults += 1,
            Part::Flooders => self.report.other += 1,
        }
    }

    /// The next round trip, from the bystander that received the last one: during the
    /// baseline until `rounds` are done, then only while the flood is under way.
    fn start_trip(&mut self) {
        let stage = self.shared.get();
        let during = stage == FLOOD;
        let wanted =
            self.part == Part::Bystanders && (self.trips < u64::from(self.cfg.rounds) || during);
        if !wanted || self.trip.is_some() {
            return;
        }
        let from = (self.trips % 2) as usize;
        let body = format!("rtt {}", self.trips);
        let (Ok(sent), Ok(expect)) = (
            frame::pad(&body),
            frame::pad(&format!("[{}] {body}", self.names[from])),
        ) else {
            return;
        };
        self.trip = Some(Trip {
            from,
            expect,
            sent: Instant::now(),
            during,
        });
        if let Err(e) = self.conns[from].send(&sent) {
            self.lost(from, &e.to_string());
            return;
        }
        self.flush(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_their_exact_text() {
        let name = "r0001-000007";
        let frame = |t: &str| frame::pad(t).unwrap();
        assert_eq!(
            classify(&frame("Name r0001-000007 is now registered."), name),
            Answer::Registered
        );
        assert_eq!(
            classify(&frame("The server is busy. Try again in a moment."), name),
            Answer::Busy
        );
        assert_eq!(
            classify(&frame("Name r0001-000008 is now registered."), name),
            Answer::Other
        );
        assert_eq!(
            classify(&frame("Name r0001-000007 is already registered."), name),
            Answer::Other
        );
    }

    #[test]
    fn a_run_passes_only_when_every_flooder_got_an_expected_answer() {
        let ok = RegfloodReport {
            flooders: 10,
            registered: 3,
            busy: 7,
            ..Default::default()
        };
        assert!(ok.passed());
        let json = ok.to_json();
        assert!(json.starts_with("{\"flooders\":10,\"registered\":3,\"busy\":7,\"other\":0,"));
        assert!(
            json.ends_with(",\"server_cpu_secs\":null,\"passed\":true}"),
            "{json}"
        );
        assert!(json.contains("\"rtt_ns\":{\"samples\":0,"), "{json}");
        assert!(ok.to_string().ends_with("result:     PASS"));
        for bad in [
            RegfloodReport {
                other: 1,
                ..ok.clone()
            },
            RegfloodReport {
                unanswered: 1,
                busy: 6,
                ..ok.clone()
            },
            RegfloodReport {
                bystander_faults: 1,
                ..ok.clone()
            },
            RegfloodReport {
                disconnects: 1,
                ..ok.clone()
            },
            RegfloodReport {
                timed_out: true,
                ..ok.clone()
            },
            RegfloodReport {
                busy: 6,
                ..ok.clone()
            },
        ] {
            assert!(!bad.passed(), "{bad:?}");
            assert!(bad.to_json().ends_with("\"passed\":false}"));
        }
    }
}
