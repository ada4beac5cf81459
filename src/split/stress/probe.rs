//! The responsiveness probe: one spare connection, in no channel, that asks the server a
//! command now and then while the senders send, and times the answer.
//!
//! It tells a server that is busy from one that holds the senders back. A busy server answers
//! the probe as late as it delivers the messages: both wait for the same turns of its event
//! loop (and of ours). A server whose flood limit throttles the senders stops reading their
//! connections only: the probe, far under any limit, is answered at once while the messages
//! wait in the senders' sockets. So messages that take many times the probe's round trip mean
//! that the run measured the flood limit, not the server (see [`held_back`]).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::report::Latency;
use crate::frame::{self, Frame, FrameDecoder, FRAME_LEN};
use crate::split::histogram::Histogram;
use crate::split::SplitError;
use crate::utils_errors as text;

/// The command the probe sends; its reply is the server's unknown-command text.
pub const PROBE_COMMAND: &str = "/stress-probe";
/// The pause between an answer and the next question: 20 a second, far under any flood limit.
pub const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How long the probe's blocking connect and login may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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

/// The probe connection.
#[derive(Debug)]
pub struct Probe {
    stream: TcpStream,
    decoder: FrameDecoder,
    question: Frame,
    answer: Frame,
    buf: [u8; 4 * FRAME_LEN],
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
    /// Connects, logs in as `name` (both blocking, at most a few seconds; on loopback, at
    /// once), then registers the connection, non-blocking, for reading with `token`.
    pub fn connect(
        addr: SocketAddr,
        name: &str,
        registry: &Registry,
        token: Token,
    ) -> Result<Probe, SplitError> {
        let failed = |e: io::Error| SplitError::Setup(format!("probe connecting to {addr}: {e}"));
        let frame_of = |t: &str| frame::pad(t).map_err(|e| SplitError::Config(e.to_string()));
        let mut std_stream =
            std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(failed)?;
        std_stream.set_nodelay(true).map_err(failed)?;
        std_stream
            .set_write_timeout(Some(CONNECT_TIMEOUT))
            .map_err(failed)?;
        std_stream.write_all(&frame_of(name)?).map_err(failed)?;
        std_stream.set_nonblocking(true).map_err(failed)?;
        let mut stream = TcpStream::from_std(std_stream);
        registry.register(&mut stream, token, Interest::READABLE)?;
        Ok(Probe {
            stream,
            decoder: FrameDecoder::new(),
            question: frame_of(PROBE_COMMAND)?,
            answer: frame_of(&text::invalid_control_message(PROBE_COMMAND))?,
            buf: [0; 4 * FRAME_LEN],
            asked: None,
            next: Instant::now(),
            rtt: Histogram::new(),
            broken: false,
        })
    }

    /// Asks the next question when it is due and none is outstanding; returns how long the
    /// caller may wait before calling again.
    pub fn tick(&mut self, now: Instant) -> Duration {
        if self.broken || self.asked.is_some() {
            return PROBE_EVERY;
        }
        if now < self.next {
            return self.next - now;
        }
        // One frame on an idle connection: the socket buffer always has room for it, so a
        // short or refused write means the connection is unusable.
        match self.stream.write(&self.question) {
            Ok(n) if n == self.question.len() => self.asked = Some(now),
            Ok(_) | Err(_) => self.broken = true,
        }
        PROBE_EVERY
    }

    /// Reads what the server sent; an answer to the outstanding question is a round trip.
    pub fn read(&mut self, now: Instant) {
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => {
                    self.broken = true;
                    return;
                }
                Ok(n) => {
                    let (answer, asked, rtt) = (&self.answer, &mut self.asked, &mut self.rtt);
                    let mut answered = false;
                    self.decoder.feed(&self.buf[..n], |f| {
                        if f == answer {
                            if let Some(at) = asked.take() {
                                rtt.record(now.saturating_duration_since(at).as_nanos() as u64);
                                answered = true;
                            }
                        }
                    });
                    if answered {
                        self.next = now + PROBE_EVERY;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    /// Deregisters and closes the connection.
    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
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
