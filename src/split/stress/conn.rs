//! One stress connection: its socket, its frame decoder and its pending output, written in
//! random pieces. WRITABLE interest is registered only while output is pending.

use std::io::{self, Write};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rand::Rng;

use crate::frame::FrameDecoder;
use crate::split::pieces;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet.
    Waiting,
    /// The TCP handshake is under way.
    Connecting,
    /// Logged in and joining; waiting for the reply to its sync command.
    Setup,
    /// In its channel.
    Ready,
    /// Gone.
    Closed,
}

/// Written output is compacted away once this many bytes of it pile up at the front.
const COMPACT_AT: usize = 64 * 1024;

/// A stress client's connection.
#[derive(Debug)]
pub struct Conn {
    /// The socket, while open.
    pub stream: Option<TcpStream>,
    /// Whole frames out of the byte stream.
    pub decoder: FrameDecoder,
    /// Where it is.
    pub phase: Phase,
    /// False for the no-read clients, which never read a byte.
    pub reads: bool,
    out: Vec<u8>,
    out_pos: usize,
    interest: Option<Interest>,
}

impl Conn {
    /// A connection not yet started.
    pub fn new(reads: bool) -> Conn {
        Conn {
            stream: None,
            decoder: FrameDecoder::new(),
            phase: Phase::Waiting,
            reads,
            out: Vec::new(),
            out_pos: 0,
            interest: None,
        }
    }

    /// Bytes queued but not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Queues bytes to write.
    #[inline]
    pub fn queue(&mut self, bytes: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= COMPACT_AT {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Writes pending output in random pieces of 1 to `max_write` bytes until it is all written
    /// or the socket is full, then sets the interest to match.
    pub fn flush(
        &mut self,
        rng: &mut impl Rng,
        max_write: usize,
        registry: &Registry,
        token: Token,
    ) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.out_pos < self.out.len() {
            let n = pieces::next_len(rng, self.out.len() - self.out_pos, max_write);
            match stream.write(&self.out[self.out_pos..self.out_pos + n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => self.out_pos += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.update_interest(registry, token)
    }

    fn wanted(&self) -> Option<Interest> {
        let write = self.phase == Phase::Connecting || self.pending() > 0;
        match (self.reads, write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// Registers, re-registers or deregisters the socket to match what the connection waits for.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.wanted();
        if want == self.interest {
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        match (self.interest, want) {
            (None, Some(w)) => registry.register(stream, token, w)?,
            (Some(_), Some(w)) => registry.reregister(stream, token, w)?,
            (Some(_), None) => registry.deregister(stream)?,
            (None, None) => {}
        }
        self.interest = want;
        Ok(())
    }

    /// Closes the socket (deregistering it first).
    pub fn close(&mut self, registry: &Registry) {
        if let Some(mut stream) = self.stream.take() {
            if self.interest.is_some() {
                let _ = registry.deregister(&mut stream);
            }
        }
        self.interest = None;
        self.phase = Phase::Closed;
        self.out = Vec::new();
        self.out_pos = 0;
    }
}
