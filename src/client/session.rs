//! The client's event loop: the socket (mio) and the user's input (a thread per source, which
//! wakes the loop through a [`mio::Waker`]: epoll cannot watch regular files, and the terminal's
//! keys come from crossterm). What the user sees is up to a [`Frontend`]: the exact bytes of
//! pipe mode, or the line editor of terminal mode.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::{Events, Interest, Poll, Token, Waker};

use super::login::{auto_identify, Login, Seen};
use super::net::Stream;
use super::plan::{LineEnd, LinePlanner, Step};
use super::{ClientError, Outcome};
use crate::frame::{self, FrameDecoder};
use crate::utils_errors as text;

const SOCKET: Token = Token(0);
const INPUT: Token = Token(1);
/// Socket output the client buffers before it stops taking input.
const MAX_PENDING: usize = 64 * 1024;
/// How long the client keeps reading the server's replies after end of input.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long the client waits for the server to close the connection after `/quit`.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// What an input thread hands over.
#[derive(Debug)]
pub enum Input {
    /// Bytes read from stdin (pipe mode).
    Chunk(Vec<u8>),
    /// End of input.
    End,
    /// A terminal event (terminal mode).
    Event(crossterm::event::Event),
}

/// What the frontend makes of the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Typed bytes, for the line planner (any part of any number of lines).
    Typed(Vec<u8>),
    /// The user is done.
    EndOfInput,
    /// Another name to log in with, after a refusal.
    Name(String),
}

/// Why the loop stops.
#[derive(Debug)]
pub enum Halt {
    Done(Outcome),
    Fail(ClientError),
}

/// The loop goes on, or stops for a reason.
pub type Flow = Result<(), Halt>;

/// What the user sees and types.
pub trait Frontend {
    /// True when input is taken (and held) before the server has taken the name: a terminal
    /// must go on echoing keys; a pipe may simply wait.
    fn interactive(&self) -> bool;
    /// NAME was sent.
    fn start(&mut self) -> Flow;
    /// A frame from the server.
    fn show(&mut self, text: &str) -> Flow;
    /// The server took the name.
    fn logged_in(&mut self, name: &str) -> Flow;
    /// The server refused the name with `text`.
    fn refused(&mut self, text: &str) -> Flow;
    /// A step of a typed line other than a frame to send.
    fn step(&mut self, step: &Step) -> Flow;
    /// An input event; appends what to do.
    fn input(&mut self, input: Input, actions: &mut Vec<Action>) -> Flow;
    /// The server closed the connection while the client did not expect it.
    fn server_closed(&mut self) -> Flow;
}

fn poll_error(error: io::Error) -> Halt {
    Halt::Fail(ClientError::Poll(error))
}

/// One connection, its login and the frontend.
pub struct Session<F> {
    poll: Poll,
    waker: Arc<Waker>,
    stream: Stream,
    frontend: F,
    password: Option<String>,
    /// Socket output not yet written (a partial write keeps the rest here).
    pending: Vec<u8>,
    decoder: FrameDecoder,
    interest: Interest,
    login: Login,
    /// Set once logged in: the name it knows sets the room for prefixes.
    planner: Option<LinePlanner>,
    /// Input taken before the login finished (terminal mode).
    held: VecDeque<Action>,
    /// The user's input ended and was all planned.
    input_done: bool,
    /// Everything was sent and the write half is shut down; waiting for the server to close.
    closing_since: Option<Instant>,
    /// `/quit` was sent; waiting for the server to close.
    quit_since: Option<Instant>,
}

impl<F: Frontend> Session<F> {
    /// Sets up the loop for a connected stream.
    pub fn new(
        mut stream: Stream,
        name: &str,
        password: Option<String>,
        frontend: F,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let interest = Interest::READABLE;
        poll.registry()
            .register(stream.socket(), SOCKET, interest)?;
        // The loop keeps its own handle: closing the waker's descriptor (when an input thread
        // ends) would drop a wake-up not yet polled.
        let waker = Arc::new(Waker::new(poll.registry(), INPUT)?);
        Ok(Session {
            poll,
            waker,
            stream,
            frontend,
            password,
            pending: Vec::new(),
            decoder: FrameDecoder::new(),
            interest,
            login: Login::new(name),
            planner: None,
            held: VecDeque::new(),
            input_done: false,
            closing_since: None,
            quit_since: None,
        })
    }

    /// Wakes the loop: input threads call it after each hand-over.
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Runs until the conversation ends.
    pub fn run(&mut self, name: &str, inputs: &Receiver<Input>) -> Result<Outcome, ClientError> {
        match self.run_loop(name, inputs) {
            Ok(()) => Ok(Outcome::InputEnded),
            Err(Halt::Done(outcome)) => Ok(outcome),
            Err(Halt::Fail(error)) => Err(error),
        }
    }

    fn run_loop(&mut self, name: &str, inputs: &Receiver<Input>) -> Flow {
        self.queue(name);
        self.queue(text::LOGIN_PROBE);
        self.flush_socket()?;
        self.frontend.start()?;
        // The TLS handshake may have brought application data along (or the server answered
        // already): whatever that made us queue (an /identify) goes out before the first wait.
        self.read_socket()?;
        self.flush_socket()?;
        self.update_interest()?;
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = match self.deadline() {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return self.grace_over(),
                },
                None => None,
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(poll_error(error)),
            }
            for event in events.iter() {
                if event.token() == SOCKET {
                    if event.is_writable() {
                        self.flush_socket()?;
                    }
                    self.read_socket()?;
                }
            }
            self.take_inputs(inputs)?;
            self.flush_socket()?;
            if self.input_done
                && self.pending.is_empty()
                && !self.stream.wants_write()
                && self.closing_since.is_none()
                && self.quit_since.is_none()
            {
                // Everything typed is out: tell the server, and keep showing its replies a while.
                self.stream.shutdown_write();
                self.closing_since = Some(Instant::now());
            }
            self.update_interest()?;
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let closing = self.closing_since.map(|since| since + CLOSE_GRACE);
        let quit = self.quit_since.map(|since| since + QUIT_GRACE);
        closing.into_iter().chain(quit).min()
    }

    fn grace_over(&mut self) -> Flow {
        if self.quit_since.is_some() {
            debug!("the server did not close the connection after /quit");
            Err(Halt::Done(Outcome::Quit))
        } else {
            Ok(())
        }
    }

    /// Takes the user's input while socket output is not backed up.
    fn take_inputs(&mut self, inputs: &Receiver<Input>) -> Flow {
        loop {
            if self.input_done || self.quit_since.is_some() || self.pending.len() >= MAX_PENDING {
                return Ok(());
            }
            if !self.login.is_ready() && !self.frontend.interactive() {
                return Ok(());
            }
            let input = match inputs.try_recv() {
                Ok(input) => input,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => Input::End,
            };
            let mut actions = Vec::new();
            self.frontend.input(input, &mut actions)?;
            for action in actions {
                self.act(action)?;
            }
        }
    }

    fn act(&mut self, action: Action) -> Flow {
        if self.input_done || self.quit_since.is_some() {
            return Ok(());
        }
        match action {
            Action::Name(name) => {
                self.queue(&name);
                self.queue(text::LOGIN_PROBE);
                self.login.retry(&name);
                Ok(())
            }
            Action::EndOfInput if !self.login.is_ready() => {
                // Only a terminal's input is taken before the login: the user gave up.
                Err(Halt::Done(Outcome::InputEnded))
            }
            action if !self.login.is_ready() => {
                self.held.push_back(action);
                Ok(())
            }
            Action::Typed(bytes) => {
                let mut steps = Vec::new();
                if let Some(planner) = self.planner.as_mut() {
                    planner.feed(&bytes, &mut steps);
                }
                self.steps(steps)
            }
            Action::EndOfInput => {
                let mut steps = Vec::new();
                if let Some(planner) = self.planner.as_mut() {
                    planner.finish(&mut steps);
                }
                self.steps(steps)?;
                self.input_done = true;
                Ok(())
            }
        }
    }

    fn steps(&mut self, steps: Vec<Step>) -> Flow {
        for step in steps {
            match step {
                Step::Send(piece) => self.queue(&piece),
                other => {
                    self.frontend.step(&other)?;
                    if other == Step::LineEnd(LineEnd::Quit) {
                        self.quit_since = Some(Instant::now());
                    }
                }
            }
        }
        Ok(())
    }

    fn queue(&mut self, piece: &str) {
        if self.closing_since.is_some() {
            // The write half is shut down: nothing more can be sent.
            debug!("not sent after end of input: {piece}");
            return;
        }
        match frame::pad(piece) {
            Ok(frame) => self.pending.extend_from_slice(&frame),
            Err(error) => warn!("not sent: {error}"),
        }
    }

    /// Writes queued output until it is all out or the socket would block.
    fn flush_socket(&mut self) -> Flow {
        let mut written = 0;
        let result = loop {
            if written == self.pending.len() {
                break self.stream.flush().map(|_| ());
            }
            match self.stream.write(&self.pending[written..]) {
                Ok(0) => break Err(io::Error::from(ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(error) if error.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => break Err(error),
            }
        };
        self.pending.drain(..written);
        match result {
            Ok(()) => Ok(()),
            Err(error) => {
                debug!("write to server: {error}");
                // Show whatever the server sent before it went away, then report it gone.
                self.read_socket()?;
                self.server_gone()
            }
        }
    }

    /// Reads everything available, handling each complete frame; notices the server closing.
    fn read_socket(&mut self) -> Flow {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return self.server_gone(),
                Ok(n) => self.received(&buf[..n])?,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    debug!("read from server: {error}");
                    return self.server_gone();
                }
            }
        }
    }

    fn received(&mut self, bytes: &[u8]) -> Flow {
        let mut texts = Vec::new();
        self.decoder
            .feed(bytes, |f| texts.push(frame::decode(f).into_owned()));
        for frame_text in texts {
            self.frame(&frame_text)?;
        }
        Ok(())
    }

    fn frame(&mut self, frame_text: &str) -> Flow {
        match self.login.on_frame(frame_text) {
            Seen::Show => {
                self.frontend.show(frame_text)?;
                let name = self.login.name();
                if let Some(reply) = auto_identify(name, self.password.as_deref(), frame_text) {
                    self.queue(&reply);
                }
                Ok(())
            }
            Seen::Hide => Ok(()),
            Seen::Refused(refusal) => self.frontend.refused(&refusal),
            Seen::LoggedIn => {
                let name = self.login.name().to_owned();
                self.planner = Some(LinePlanner::new(&name));
                self.frontend.logged_in(&name)?;
                while let Some(action) = self.held.pop_front() {
                    self.act(action)?;
                }
                Ok(())
            }
        }
    }

    /// The server closed the connection: quietly after the user ended, else say so.
    fn server_gone(&mut self) -> Flow {
        if self.closing_since.is_some() {
            return Err(Halt::Done(Outcome::InputEnded));
        }
        if self.quit_since.is_some() {
            return Err(Halt::Done(Outcome::Quit));
        }
        self.frontend.server_closed()?;
        Err(Halt::Done(Outcome::ServerClosed))
    }

    /// WRITABLE interest only while output is pending.
    fn update_interest(&mut self) -> Flow {
        let wants = !self.pending.is_empty() || self.stream.wants_write();
        let wanted = if wants && self.closing_since.is_none() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if wanted != self.interest {
            self.poll
                .registry()
                .reregister(self.stream.socket(), SOCKET, wanted)
                .map_err(poll_error)?;
            self.interest = wanted;
        }
        Ok(())
    }
}
