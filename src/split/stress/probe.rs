//! The responsiveness probe: one spare connection, in no channel, that asks the server a
//! command now and then while the senders send, and times the answer.
//!
//! It tells a server that is busy from one that holds the senders back. A busy server answers
//! the probe as late as it delivers the messages: both wait for the same turns of its event
//! loop (and of ours). A server whose flood limit throttles the senders stops reading their
//! connections only: the probe, far under any limit, is answered at once while the messages
//! wait in the senders' sockets. So messages that take many times the probe's round trip mean
//! that the run measured the flood limit, not the server (see [`held_back`]).

use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Registry, Token};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::conn::{Conn, Phase, ReadOutcome, Target, Transport};
use super::report::Latency;
use crate::frame::{self, Frame, FRAME_LEN};
use crate::split::histogram::Histogram;
use crate::split::SplitError;
use crate::utils_errors as text;

/// The command the probe sends; its reply is the server's unknown-command text.
pub const PROBE_COMMAND: &str = "/stress-probe";
/// The pause between an answer and the next question: 20 a second, far under any flood limit.
pub const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Fewer round trips than this give no verdict.
pub const MIN_SAMPLES: u64 = 3;
/// Messages are held back when their median latency is this many times the probe's…
pub const FACTOR: u64 = 4;
/// …and at least this much longer (below it, both are too quick to tell anything apart).
pub const MARGIN_NS: u64 = 2_000_000;

/// True when the messages' latency shows that the server held the senders back while it was
/// free to answer the probe: the median delivery took at least [`FACTOR`] times the probe's
/// median round trip and [`MARGIN_NS`] more, over at least [`MIN_SAMPLES`] round trips.
pub fn held_back(messages: &Latency, probe: &Latency) -> bool {
    probe.samples >= MIN_SAMPLES
        && messages.samples > 0
        && messages.p50 >= probe.p50.saturating_mul(FACTOR)
        && messages.p50 >= probe.p50.saturating_add(MARGIN_NS)
}

/// The probe connection: a stress connection of its own (same transport and protocol as the
/// clients), in no channel.
#[derive(Debug)]
pub struct Probe {
    conn: Conn,
    target: Target,
    transport: Transport,
    token: Token,
    name: Frame,
    question: Frame,
    answer: Frame,
    rng: SmallRng,
    buf: Vec<u8>,
    t0: Instant,
    /// When the outstanding question was sent.
    asked: Option<Instant>,
    /// When to ask next.
    next: Instant,
    /// Round trips, in ns.
    pub rtt: Histogram,
    /// The connection failed or closed: no more questions.
    pub broken: bool,
}

impl Probe {
    /// Starts connecting to `target` (non-blocking), registered with `token`; it logs in as
    /// `name` once connected and asks once its handshakes are over.
    pub fn connect(
        target: &Target,
        transport: &Transport,
        name: &str,
        registry: &Registry,
        token: Token,
    ) -> Result<Probe, SplitError> {
        let frame_of = |t: &str| frame::pad(t).map_err(|e| SplitError::Config(e.to_string()));
        let mut conn = Conn::new(true);
        conn.connect(target, registry, token).map_err(|e| {
            SplitError::Setup(format!("probe connecting to {}: {e}", target.label()))
        })?;
        let now = Instant::now();
        Ok(Probe {
            conn,
            target: target.clone(),
            transport: transport.clone(),
            token,
            name: frame_of(name)?,
            question: frame_of(PROBE_COMMAND)?,
            answer: frame_of(&text::invalid_control_message(PROBE_COMMAND))?,
            rng: SmallRng::seed_from_u64(0x9E0B_E5EE),
            buf: vec![0; 16 * FRAME_LEN],
            t0: now,
            asked: None,
            next: now,
            rtt: Histogram::new(),
            broken: false,
        })
    }

    /// Asks the next question when it is due, none is outstanding and the connection is up;
    /// returns how long the caller may wait before calling again.
    pub fn tick(&mut self, now: Instant, registry: &Registry) -> Duration {
        if self.broken || self.asked.is_some() {
            return PROBE_EVERY;
        }
        if self.conn.phase != Phase::Ready || !self.conn.established() {
            return PROBE_EVERY.min(Duration::from_millis(5));
        }
        if now < self.next {
            return self.next - now;
        }
        if self.conn.send(&self.question).is_err() {
            self.broken = true;
            return PROBE_EVERY;
        }
        self.asked = Some(now);
        self.flush(registry);
        PROBE_EVERY
    }

    fn flush(&mut self, registry: &Registry) {
        if self
            .conn
            .flush(&mut self.rng, FRAME_LEN, registry, self.token)
            .is_err()
        {
            self.broken = true;
        }
    }

    /// Handles an event of the probe's socket: the end of its connect, output, answers.
    pub fn on_event(&mut self, event: &Event, registry: &Registry) {
        if self.broken {
            return;
        }
        if self.conn.phase == Phase::Connecting {
            match self.conn.finish_connect(&self.target, &self.transport) {
                Ok(true) => {
                    self.conn.phase = Phase::Ready;
                    if self.conn.send(&self.name).is_err() {
                        self.broken = true;
                        return;
                    }
                    self.flush(registry);
                }
                Ok(false) => {}
                Err(e) => {
                    log::warn!("probe: {e}");
                    self.broken = true;
                }
            }
            return;
        }
        if event.is_readable() {
            self.read(registry);
        }
        if !self.broken {
            self.flush(registry);
        }
    }

    /// Reads what the server sent; an answer to the outstanding question is a round trip.
    fn read(&mut self, registry: &Registry) {
        let now = Instant::now();
        let (answer, asked, rtt) = (&self.answer, &mut self.asked, &mut self.rtt);
        let mut answered = false;
        let outcome = self.conn.read(&mut self.buf, self.t0, |_, incoming, _| {
            incoming.frames(|f| {
                if f == answer {
                    if let Some(at) = asked.take() {
                        rtt.record(now.saturating_duration_since(at).as_nanos() as u64);
                        answered = true;
                    }
                }
            })
        });
        if answered {
            self.next = now + PROBE_EVERY;
        }
        match outcome {
            ReadOutcome::Open => {}
            ReadOutcome::Closed | ReadOutcome::Failed(_) => {
                self.broken = true;
                self.conn.close(registry);
            }
        }
    }

    /// Deregisters and closes the connection.
    pub fn close(mut self, registry: &Registry) {
        self.conn.close(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(samples: u64, p50_us: u64) -> Latency {
        Latency {
            samples,
            p50: p50_us * 1000,
            ..Latency::default()
        }
    }

    #[test]
    fn held_back_needs_many_times_the_probe_and_a_margin() {
        // Throttled: 16 ms messages, the probe answered in 0.1 ms.
        assert!(held_back(&latency(1000, 16_000), &latency(20, 100)));
        // A busy server: messages and probe both wait for its turns.
        assert!(!held_back(&latency(1000, 15_000), &latency(20, 8_000)));
        // Both quick: 0.5 ms is five times 0.1 ms but within the margin.
        assert!(!held_back(&latency(1000, 500), &latency(20, 100)));
        // Too few round trips, or no messages, give no verdict.
        assert!(!held_back(&latency(1000, 16_000), &latency(2, 100)));
        assert!(!held_back(&latency(0, 0), &latency(20, 100)));
        // The boundaries: the margin binds below 2/3 ms, the factor above.
        assert!(held_back(&latency(10, 2_500), &latency(3, 500)));
        assert!(!held_back(&latency(10, 2_499), &latency(3, 500)));
        assert!(held_back(&latency(10, 4_000), &latency(3, 1_000)));
        assert!(!held_back(&latency(10, 3_999), &latency(3, 1_000)));
    }
}
