//! One blocking connection for the interactive and replay modes: frames go out in random
//! pieces from the caller's thread; a reader thread turns what the server sends into events.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{pieces, SplitError};
use crate::frame::{self, Frame, FrameDecoder};
use crate::utils_errors as text;

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the session's threads report to the main loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A line typed on stdin, without its line ending.
    Line(String),
    /// stdin is at its end.
    InputEnd,
    /// A frame from the server, as text fit for a terminal.
    Frame(String),
    /// The server closed the connection (or it failed).
    Closed,
}

/// How frames are cut into pieces.
#[derive(Debug, Clone)]
pub struct PieceOptions {
    /// Seed of the piece sizes and delays; random when absent.
    pub seed: Option<u64>,
    /// The largest piece, in bytes.
    pub max_piece: usize,
    /// The longest random pause between two pieces (zero: none).
    pub max_delay: Duration,
}

/// A connection to the server whose frames are sent in random pieces.
#[derive(Debug)]
pub struct Session {
    stream: TcpStream,
    rng: SmallRng,
    opts: PieceOptions,
    tx: Sender<Event>,
    rx: Receiver<Event>,
}

/// The text of a frame as a terminal should show it: padding removed, control characters other
/// than `\n` dropped.
pub fn screen_text(frame: &Frame) -> String {
    frame::decode(frame)
        .chars()
        .filter(|&c| c == '\n' || !frame::is_control(c))
        .collect()
}

fn open(host: &str, port: &str) -> Option<TcpStream> {
    let port: u16 = port.parse().ok()?;
    let addrs = (host, port).to_socket_addrs().ok()?;
    addrs
        .into_iter()
        .find_map(|addr| TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).ok())
}

impl Session {
    /// [`Session::connect`], writing the user's text to `out` first when the server cannot be
    /// reached.
    pub fn connect_or_tell(
        host: &str,
        port: &str,
        opts: PieceOptions,
        out: &mut impl Write,
    ) -> Result<Session, SplitError> {
        match Session::connect(host, port, opts) {
            Err(SplitError::Unreachable(msg)) => {
                writeln!(out, "{msg}")?;
                out.flush()?;
                Err(SplitError::Unreachable(msg))
            }
            other => other,
        }
    }

    /// Connects and starts the reader thread. On failure the error carries the user's text,
    /// `Unable to connect to HOST:PORT`.
    pub fn connect(host: &str, port: &str, opts: PieceOptions) -> Result<Session, SplitError> {
        let stream = open(host, port)
            .ok_or_else(|| SplitError::Unreachable(text::unable_to_connect(host, port)))?;
        let _ = stream.set_nodelay(true);
        let seed = opts.seed.unwrap_or_else(rand::random);
        log::info!("piece seed {seed}");
        let (tx, rx) = mpsc::channel();
        let reader = stream.try_clone()?;
        let reader_tx = tx.clone();
        thread::Builder::new()
            .name("split-reader".into())
            .spawn(move || read_frames(reader, reader_tx))?;
        Ok(Session {
            stream,
            rng: SmallRng::seed_from_u64(seed),
            opts,
            tx,
            rx,
        })
    }

    /// The events of this session, in arrival order.
    pub fn events(&self) -> &Receiver<Event> {
        &self.rx
    }

    /// A handle another thread (stdin) can report through.
    pub fn event_sender(&self) -> Sender<Event> {
        self.tx.clone()
    }

    /// Pads `text` into a frame and sends it in random pieces, logging each piece to `log` as
    /// `Sending N characters: …`.
    pub fn send_text(&mut self, text: &str, log: &mut impl Write) -> Result<(), SplitError> {
        let frame = frame::pad(text).map_err(|e| SplitError::Config(e.to_string()))?;
        self.send_frame(&frame, log)
    }

    /// Sends one frame in random pieces, logging each one.
    pub fn send_frame(&mut self, frame: &Frame, log: &mut impl Write) -> Result<(), SplitError> {
        let ranges: Vec<_> = pieces::cut(&mut self.rng, frame.len(), self.opts.max_piece).collect();
        let last = ranges.len().saturating_sub(1);
        for (i, range) in ranges.into_iter().enumerate() {
            let piece = &frame[range];
            self.stream.write_all(piece)?;
            writeln!(
                log,
                "{}",
                text::sending_piece(piece.len(), &String::from_utf8_lossy(piece))
            )?;
            log.flush()?;
            if i < last && !self.opts.max_delay.is_zero() {
                let delay = self.rng.random_range(Duration::ZERO..=self.opts.max_delay);
                thread::sleep(delay);
            }
        }
        Ok(())
    }

    /// Says that nothing more will be sent; the server answers by closing the connection.
    pub fn finish(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

fn read_frames(mut stream: TcpStream, tx: Sender<Event>) {
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut gone = false;
                decoder.feed(&buf[..n], |f| {
                    gone |= tx.send(Event::Frame(screen_text(f))).is_err();
                });
                if gone {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("read from server: {e}");
                break;
            }
        }
    }
    let _ = tx.send(Event::Closed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_text_drops_control_characters_but_keeps_newlines() {
        let f = frame::pad("a\x1b[2Jb\nc\u{9b}d\r").unwrap();
        assert_eq!(screen_text(&f), "a[2Jb\ncd");
    }

    #[test]
    fn an_unreachable_server_gets_the_users_text() {
        let opts = PieceOptions {
            seed: Some(1),
            max_piece: 10,
            max_delay: Duration::ZERO,
        };
        let err = Session::connect("127.0.0.1", "notaport", opts).unwrap_err();
        assert_eq!(err.to_string(), "Unable to connect to 127.0.0.1:notaport");
    }
}
