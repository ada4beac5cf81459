//! One client connection as the event loop sees it: its socket, the partial frame it is
//! receiving, the bytes queued for it, and its flood budget.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::frame::{Frame, FrameDecoder, FRAME_LEN};

/// An output buffer keeps at most this much capacity once it has been emptied, so that a burst
/// does not leave an idle connection holding memory.
const IDLE_OUT_CAPACITY: usize = 4 * FRAME_LEN;

/// What a read turn produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The socket has no more data for now.
    Drained,
    /// The budget ran out before the socket did: read again next turn.
    BudgetSpent,
    /// The peer closed its side, or the connection failed.
    Closed,
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    decoder: FrameDecoder,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    out_pos: usize,
    writable_registered: bool,
    /// Distinguishes this connection from an earlier one in the same slot.
    pub serial: u64,
    /// Flood budget in frames; refilled over time.
    tokens: f64,
    refilled: Instant,
    /// Set when the connection is to be closed at the end of the turn.
    pub closing: bool,
    /// Queued in the loop's dirty list (has output to write this turn).
    pub dirty: bool,
    /// Queued in the loop's read list (has input to read).
    pub pending_read: bool,
    /// Throttled by the flood limit until the budget refills.
    pub throttled: bool,
    /// Still known to the hub (disconnect not yet reported).
    pub in_hub: bool,
}

impl Conn {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream, serial: u64, burst: f64, now: Instant) -> Self {
        Conn {
            stream,
            decoder: FrameDecoder::new(),
            out: Vec::new(),
            out_pos: 0,
            writable_registered: false,
            serial,
            tokens: burst,
            refilled: now,
            closing: false,
            dirty: false,
            pending_read: false,
            throttled: false,
            in_hub: true,
        }
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Queues one frame.
    pub fn queue(&mut self, frame: &Frame) {
        self.out.extend_from_slice(frame);
    }

    /// Refills the flood budget and returns how many whole frames may be read now
    /// (`usize::MAX` when there is no limit).
    pub fn allowance(&mut self, rate: f64, burst: f64, now: Instant) -> usize {
        if rate <= 0.0 {
            return usize::MAX;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.tokens.max(0.0) as usize
    }

    /// Reads at most `max_bytes` into `buf`, handing every completed frame to `frames`.
    /// Charges the flood budget for the frames read.
    pub fn read_frames(
        &mut self,
        buf: &mut [u8],
        max_bytes: usize,
        frames: &mut Vec<Frame>,
    ) -> ReadOutcome {
        let mut left = max_bytes;
        while left > 0 {
            let want = left.min(buf.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    left -= n;
                    let before = frames.len();
                    self.decoder.feed(&buf[..n], |f| frames.push(*f));
                    self.tokens -= (frames.len() - before) as f64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("read error: {e}");
                    return ReadOutcome::Closed;
                }
            }
        }
        ReadOutcome::BudgetSpent
    }

    /// Writes as much queued output as the socket takes. Returns Err when the connection failed.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > IDLE_OUT_CAPACITY {
                self.out.shrink_to(IDLE_OUT_CAPACITY);
            }
        } else if self.out_pos >= self.out.len() / 2 {
            // Keep the buffer from growing without end under a steady partial-write load.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Asks for WRITABLE events only while output is pending.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.queued() > 0;
        if want != self.writable_registered {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.writable_registered = want;
        }
        Ok(())
    }
}
