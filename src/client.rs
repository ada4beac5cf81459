//! The interactive client: `client NAME HOST PORT` (PROTOCOL.md section 4).
//!
//! The pure parts come first: [`plan_line`] turns a typed line into the frames to send,
//! [`render_frame`] turns a received frame into the exact bytes for the terminal. The I/O part
//! ([`run`]) waits on the socket (mio) and on stdin at once; stdin may be a file, a pipe or a tty,
//! and epoll cannot watch regular files, so a thread reads it and wakes the loop with a
//! [`mio::Waker`].

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::frame::{self, FrameDecoder, FRAME_LEN};
use crate::utils_errors as text;

/// The environment variable the client takes its password from.
pub const PASSWORD_ENV: &str = "CHAT_PASSWORD";

const SOCKET: Token = Token(0);
const STDIN: Token = Token(1);
/// Lines the stdin thread may read ahead of the loop.
const LINE_QUEUE: usize = 64;
/// Socket output the client buffers before it stops taking lines from stdin.
const MAX_PENDING: usize = 64 * 1024;
/// How long the client keeps reading the server's replies after end of input.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The name sent as the first frame.
    pub name: String,
    /// The host, exactly as given (it is printed back as given).
    pub host: String,
    /// The port, exactly as given.
    pub port: String,
    /// The password sent by `/identify` when the server asks for it.
    pub password: Option<String>,
}

/// How a client run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// End of input: everything typed was sent.
    InputEnded,
    /// The server closed the connection while input was still open.
    ServerClosed,
    /// The connection could not be made.
    Unreachable,
    /// The terminal went away (a broken stdout pipe).
    OutputClosed,
}

impl Outcome {
    /// The process exit status for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::InputEnded | Outcome::OutputClosed => 0,
            Outcome::ServerClosed | Outcome::Unreachable => 1,
        }
    }
}

/// What can stop the client other than an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// NAME does not fit in one frame.
    #[error("the name is {0} bytes long; a frame holds at most {FRAME_LEN}")]
    NameTooLong(usize),
    /// Writing to the terminal failed (other than a broken pipe).
    #[error("cannot write to the terminal: {0}")]
    Output(#[source] io::Error),
    /// The poll, the waker or the stdin thread could not be set up or failed.
    #[error("event loop failure: {0}")]
    Poll(#[source] io::Error),
}

// ---- Pure parts: typed line -> frames, frame -> terminal bytes -------------------------------

/// What the client does with one typed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinePlan {
    /// Nothing to send (an empty line).
    Skip,
    /// Send these texts, one frame each (each at most [`FRAME_LEN`] bytes).
    Send(Vec<String>),
    /// An over-long command that cannot be split: print [`text::COMMAND_TOO_LONG`].
    TooLong,
}

/// Removes the line ending: a trailing `\n` and a `\r` before it.
pub fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// What the receiver strips from the end of a frame (see [`frame::decode`]).
fn strip_padding(text: &str) -> &str {
    text.trim_end_matches([' ', '\t', '\r', '\n', '\0'])
}

/// Decides what to send for a typed line (line ending already removed).
///
/// A line that fits is sent as typed. A line that is empty once the receiver strips its padding
/// is not sent. A longer chat line becomes several chat frames, none starting with `/`; a longer
/// `/msg NAME TEXT` becomes several `/msg NAME piece` frames; any other long command is refused.
pub fn plan_line(line: &str) -> LinePlan {
    let text = strip_padding(line);
    if text.is_empty() {
        return LinePlan::Skip;
    }
    if line.len() <= FRAME_LEN {
        return LinePlan::Send(vec![line.to_owned()]);
    }
    if text.len() <= FRAME_LEN {
        return LinePlan::Send(vec![text.to_owned()]);
    }
    if !text.starts_with('/') {
        return LinePlan::Send(split_chat(text));
    }
    match split_msg(text) {
        Some(frames) => LinePlan::Send(frames),
        None => LinePlan::TooLong,
    }
}

/// The first piece [`frame::split_text`] would cut from `text`, in O(`max`): the cut looks at
/// most one character past `max`, so a window ending there gives the same first piece.
fn first_piece(text: &str, max: usize, no_slash: bool) -> &str {
    let mut end = max.saturating_add(1).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    frame::split_text(&text[..end], max, no_slash)
        .first()
        .copied()
        .unwrap_or("")
}

/// Splits a long chat text into frames of at most [`FRAME_LEN`] bytes, none starting with `/`.
///
/// [`frame::split_text`] moves a cut so that the next piece does not start with `/`; only when
/// it cannot (a window of nothing but slashes and whitespace) does a piece start with `/`, and
/// then it gets a leading space so that it stays a chat message.
fn split_chat(text: &str) -> Vec<String> {
    let mut frames = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let guard = if rest.starts_with('/') { " " } else { "" };
        let piece = first_piece(rest, FRAME_LEN - guard.len(), true);
        if piece.is_empty() {
            break;
        }
        rest = &rest[piece.len()..];
        // A piece of nothing but padding would be an empty frame, which the server ignores.
        if !strip_padding(piece).is_empty() {
            frames.push(format!("{guard}{piece}"));
        }
    }
    frames
}

/// Splits a long `/msg NAME TEXT` into several `/msg NAME piece` frames; `None` when the line is
/// not such a command or leaves no room for text.
fn split_msg(line: &str) -> Option<Vec<String>> {
    let arg = line.strip_prefix("/msg ")?.trim();
    let (name, message) = arg.split_once(' ')?;
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    let prefix = format!("/msg {name} ");
    let room = FRAME_LEN.checked_sub(prefix.len())?;
    // At least one character of any size must fit, or the pieces could overflow.
    if room < 4 {
        return None;
    }
    let frames = frame::split_text(message, room, false)
        .into_iter()
        .filter(|piece| !piece.trim().is_empty())
        .map(|piece| format!("{prefix}{piece}"))
        .collect();
    Some(frames)
}

/// The bytes written for a received frame: wipe the prompt, the text without control
/// characters (except `\n`), a newline and the prompt again.
pub fn render_frame(frame_text: &str) -> String {
    let mut out = String::with_capacity(
        text::CLIENT_WIPE.len() + frame_text.len() + 1 + text::CLIENT_PROMPT.len(),
    );
    out.push_str(text::CLIENT_WIPE);
    out.extend(
        frame_text
            .chars()
            .filter(|&c| c == '\n' || !frame::is_control(c)),
    );
    out.push('\n');
    out.push_str(text::CLIENT_PROMPT);
    out
}

/// The bytes written when the server closes the connection.
pub fn render_disconnect(host: &str, port: &str) -> String {
    format!(
        "{}{}\n",
        text::CLIENT_WIPE,
        text::server_disconnected(host, port)
    )
}

/// The `/identify` command to send in answer to `frame_text`, if it is the server asking this
/// client's name to identify and a password is set.
pub fn auto_identify(name: &str, password: Option<&str>, frame_text: &str) -> Option<String> {
    let password = password?;
    let asked = frame_text.starts_with(&text::registered_name_prompt_start(name))
        && frame_text.ends_with(" seconds.");
    asked.then(|| format!("/identify {password}"))
}

// ---- I/O: the event loop --------------------------------------------------------------------

/// What the stdin thread hands over.
enum StdinEvent {
    /// One line, with its line ending if it had one.
    Line(Vec<u8>),
    /// End of input (or a read error, logged).
    End,
}

/// Why the loop stops.
enum Halt {
    Done(Outcome),
    Fail(ClientError),
}

type Flow = Result<(), Halt>;

fn terminal_error(error: io::Error) -> Halt {
    if error.kind() == ErrorKind::BrokenPipe {
        Halt::Done(Outcome::OutputClosed)
    } else {
        Halt::Fail(ClientError::Output(error))
    }
}

fn poll_error(error: io::Error) -> Halt {
    Halt::Fail(ClientError::Poll(error))
}

/// Writes `bytes` to the terminal and flushes: graders read stdout through a pipe.
fn show(term: &mut impl Write, bytes: &str) -> Flow {
    term.write_all(bytes.as_bytes()).map_err(terminal_error)?;
    term.flush().map_err(terminal_error)
}

/// Runs the client on the real stdin and stdout; returns the exit status.
pub fn run_stdio(config: &ClientConfig) -> u8 {
    match run(config, io::stdin(), io::stdout()) {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            log::error!("client: {error}");
            1
        }
    }
}

/// Runs the client: connects, then relays `input` lines to the server and the server's frames
/// to `term` until one side ends.
pub fn run<R, W>(config: &ClientConfig, input: R, mut term: W) -> Result<Outcome, ClientError>
where
    R: Read + Send + 'static,
    W: Write,
{
    let name_frame =
        frame::pad(&config.name).map_err(|_| ClientError::NameTooLong(config.name.len()))?;
    let Some(stream) = connect(&config.host, &config.port) else {
        let line = format!("{}\n", text::unable_to_connect(&config.host, &config.port));
        return match show(&mut term, &line) {
            Ok(()) | Err(Halt::Done(_)) => Ok(Outcome::Unreachable),
            Err(Halt::Fail(error)) => Err(error),
        };
    };
    let mut session = Session::new(config, stream, term).map_err(ClientError::Poll)?;
    match session.run(&name_frame, input) {
        Ok(()) => Ok(Outcome::InputEnded),
        Err(Halt::Done(outcome)) => Ok(outcome),
        Err(Halt::Fail(error)) => Err(error),
    }
}

/// Connects to HOST:PORT (trying every address HOST resolves to); `None` when it cannot.
fn connect(host: &str, port: &str) -> Option<std::net::TcpStream> {
    let port: u16 = port.parse().ok()?;
    // `[::1]` as in a URL: the brackets are not part of the address.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs = match (bare, port).to_socket_addrs() {
        Ok(addrs) => addrs,
        Err(error) => {
            debug!("cannot resolve {host}: {error}");
            return None;
        }
    };
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Some(stream),
            Err(error) => debug!("cannot connect to {addr}: {error}"),
        }
    }
    None
}

/// Reads `input` line by line on its own thread; each line goes to the loop, which is woken.
fn spawn_stdin_reader<R: Read + Send + 'static>(
    input: R,
    lines: SyncSender<StdinEvent>,
    waker: Arc<Waker>,
) -> io::Result<()> {
    let hand_over = move |event: StdinEvent| -> bool {
        // A closed channel means the loop is gone: stop reading.
        let delivered = lines.send(event).is_ok();
        if let Err(error) = waker.wake() {
            warn!("cannot wake the client loop: {error}");
        }
        delivered
    };
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut reader = BufReader::new(input);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        if !hand_over(StdinEvent::Line(line)) {
                            return;
                        }
                    }
                    Err(error) => {
                        warn!("cannot read stdin: {error}");
                        if !line.is_empty() {
                            hand_over(StdinEvent::Line(line));
                        }
                        break;
                    }
                }
            }
            hand_over(StdinEvent::End);
        })
        .map(|_| ())
}

struct Session<'a, W> {
    config: &'a ClientConfig,
    poll: Poll,
    socket: TcpStream,
    term: W,
    /// Socket output not yet written (a partial write keeps the rest here).
    pending: Vec<u8>,
    decoder: FrameDecoder,
    interest: Interest,
    /// The stdin thread reported end of input.
    input_done: bool,
    /// Everything was sent and the write half is shut down; waiting for the server to close.
    closing_since: Option<Instant>,
}

impl<'a, W: Write> Session<'a, W> {
    fn new(config: &'a ClientConfig, stream: std::net::TcpStream, term: W) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        if let Err(error) = stream.set_nodelay(true) {
            debug!("cannot set TCP_NODELAY: {error}");
        }
        let mut socket = TcpStream::from_std(stream);
        let poll = Poll::new()?;
        let interest = Interest::READABLE;
        poll.registry().register(&mut socket, SOCKET, interest)?;
        Ok(Session {
            config,
            poll,
            socket,
            term,
            pending: Vec::new(),
            decoder: FrameDecoder::new(),
            interest,
            input_done: false,
            closing_since: None,
        })
    }

    /// The loop; returns `Ok` when input ended and the server closed or the grace time passed.
    fn run<R: Read + Send + 'static>(&mut self, name_frame: &[u8], input: R) -> Flow {
        self.pending.extend_from_slice(name_frame);
        self.flush_socket()?;
        show(&mut self.term, text::CLIENT_PROMPT)?;

        // The loop keeps its own handle: closing the waker's descriptor (when the thread ends,
        // at end of input) would drop a wake-up not yet polled.
        let waker = Arc::new(Waker::new(self.poll.registry(), STDIN).map_err(poll_error)?);
        let (sender, lines) = mpsc::sync_channel(LINE_QUEUE);
        spawn_stdin_reader(input, sender, Arc::clone(&waker)).map_err(poll_error)?;

        let mut events = Events::with_capacity(16);
        loop {
            let timeout = match self.closing_since {
                Some(since) => match CLOSE_GRACE.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(()),
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
            self.take_lines(&lines)?;
            self.flush_socket()?;
            if self.input_done && self.pending.is_empty() && self.closing_since.is_none() {
                // Everything typed is out: tell the server, and keep showing its replies a while.
                if let Err(error) = self.socket.shutdown(Shutdown::Write) {
                    debug!("shutdown: {error}");
                }
                self.closing_since = Some(Instant::now());
            }
            self.update_interest()?;
        }
    }

    /// Takes typed lines from the stdin thread while socket output is not backed up.
    fn take_lines(&mut self, lines: &Receiver<StdinEvent>) -> Flow {
        while !self.input_done && self.pending.len() < MAX_PENDING {
            match lines.try_recv() {
                Ok(StdinEvent::Line(raw)) => self.typed(&raw)?,
                Ok(StdinEvent::End) | Err(TryRecvError::Disconnected) => self.input_done = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        Ok(())
    }

    /// Handles one typed line: queue its frames (or refuse it), then prompt again.
    fn typed(&mut self, raw: &[u8]) -> Flow {
        let line = String::from_utf8_lossy(strip_line_ending(raw));
        match plan_line(&line) {
            LinePlan::Skip => show(&mut self.term, text::CLIENT_PROMPT),
            LinePlan::Send(texts) => {
                for piece in &texts {
                    self.queue(piece);
                }
                show(&mut self.term, text::CLIENT_PROMPT)
            }
            LinePlan::TooLong => show(&mut self.term, &render_frame(text::COMMAND_TOO_LONG)),
        }
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
                break Ok(());
            }
            match self.socket.write(&self.pending[written..]) {
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

    /// Reads everything available, showing each complete frame; notices the server closing.
    fn read_socket(&mut self) -> Flow {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.socket.read(&mut buf) {
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
            show(&mut self.term, &render_frame(&frame_text))?;
            let name = &self.config.name;
            if let Some(reply) = auto_identify(name, self.config.password.as_deref(), &frame_text) {
                self.queue(&reply);
            }
        }
        Ok(())
    }

    /// The server closed the connection: quietly after a graceful end of input, else say so.
    fn server_gone(&mut self) -> Flow {
        if self.closing_since.is_some() {
            return Err(Halt::Done(Outcome::InputEnded));
        }
        let line = render_disconnect(&self.config.host, &self.config.port);
        show(&mut self.term, &line)?;
        Err(Halt::Done(Outcome::ServerClosed))
    }

    /// WRITABLE interest only while output is pending.
    fn update_interest(&mut self) -> Flow {
        let wanted = if self.pending.is_empty() || self.closing_since.is_some() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if wanted != self.interest {
            self.poll
                .registry()
                .reregister(&mut self.socket, SOCKET, wanted)
                .map_err(poll_error)?;
            self.interest = wanted;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(texts: &[&str]) -> LinePlan {
        LinePlan::Send(texts.iter().map(|t| t.to_string()).collect())
    }

    #[test]
    fn line_endings_are_removed_once() {
        assert_eq!(strip_line_ending(b"hi\n"), b"hi");
        assert_eq!(strip_line_ending(b"hi\r\n"), b"hi");
        assert_eq!(strip_line_ending(b"hi"), b"hi");
        assert_eq!(strip_line_ending(b"hi\n\n"), b"hi\n");
        assert_eq!(strip_line_ending(b"\r\n"), b"");
    }

    #[test]
    fn short_lines_are_sent_as_typed() {
        assert_eq!(plan_line("hi"), send(&["hi"]));
        assert_eq!(plan_line("/create x"), send(&["/create x"]));
        assert_eq!(plan_line("  indented "), send(&["  indented "]));
        let full = "x".repeat(200);
        assert_eq!(plan_line(&full), send(&[&full]));
    }

    #[test]
    fn empty_lines_are_not_sent() {
        assert_eq!(plan_line(""), LinePlan::Skip);
        assert_eq!(plan_line("   \t"), LinePlan::Skip);
        assert_eq!(plan_line(&" ".repeat(300)), LinePlan::Skip);
    }

    #[test]
    fn trailing_padding_does_not_make_a_line_long() {
        let line = format!("/join room{}", " ".repeat(250));
        assert_eq!(plan_line(&line), send(&["/join room"]));
    }

    #[test]
    fn long_chat_line_is_split_without_a_piece_starting_with_slash() {
        let line = format!("{}/{}", "x".repeat(200), "y".repeat(100));
        let expected_tail = format!("x/{}", "y".repeat(100));
        assert_eq!(plan_line(&line), send(&[&"x".repeat(199), &expected_tail]));
    }

    #[test]
    fn long_chat_line_cuts_before_whitespace() {
        let line = format!("{} {}", "a".repeat(199), "b".repeat(50));
        let tail = format!(" {}", "b".repeat(50));
        assert_eq!(plan_line(&line), send(&[&"a".repeat(199), &tail]));
    }

    #[test]
    fn all_slash_chat_line_gets_a_guard_space() {
        let line = format!("a{}", "/".repeat(400));
        let LinePlan::Send(frames) = plan_line(&line) else {
            panic!("not sent");
        };
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], format!("a{}", "/".repeat(199)));
        assert_eq!(frames[1], format!(" {}", "/".repeat(199)));
        assert_eq!(frames[2], " //");
        assert!(frames
            .iter()
            .all(|f| f.len() <= FRAME_LEN && !f.starts_with('/')));
    }

    #[test]
    fn long_multibyte_chat_line_stays_within_frames() {
        let line = "é".repeat(250); // 500 bytes
        let LinePlan::Send(frames) = plan_line(&line) else {
            panic!("not sent");
        };
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.len() <= FRAME_LEN));
        assert_eq!(frames.concat(), line);
    }

    #[test]
    fn whitespace_only_pieces_are_dropped() {
        let line = format!("a{}b", " ".repeat(450));
        let LinePlan::Send(frames) = plan_line(&line) else {
            panic!("not sent");
        };
        assert_eq!(
            frames,
            vec!["a".to_string(), format!("{}b", " ".repeat(50))]
        );
    }

    #[test]
    fn first_piece_matches_split_text() {
        let samples = [
            format!("{}/{}", "x".repeat(200), "y".repeat(500)),
            format!("{} {}", "a".repeat(199), "b".repeat(300)),
            "é".repeat(400),
            "short".to_string(),
        ];
        for text in &samples {
            for no_slash in [false, true] {
                let whole = frame::split_text(text, 200, no_slash);
                assert_eq!(first_piece(text, 200, no_slash), whole[0]);
            }
        }
    }

    #[test]
    fn long_msg_becomes_several_msg_commands() {
        let line = format!("/msg Bob {}", "z".repeat(400));
        let first = format!("/msg Bob {}", "z".repeat(191));
        let last = format!("/msg Bob {}", "z".repeat(18));
        assert_eq!(plan_line(&line), send(&[&first, &first, &last]));
    }

    #[test]
    fn long_msg_pieces_lose_nothing() {
        let words: Vec<String> = (0..60).map(|i| format!("word{i:02}")).collect();
        let message = words.join(" ");
        let line = format!("/msg  Bob   {message} ");
        let LinePlan::Send(frames) = plan_line(&line) else {
            panic!("not sent");
        };
        assert_eq!(frames.len(), 3);
        let mut pieces = String::new();
        for f in &frames {
            assert!(f.len() <= FRAME_LEN);
            let piece = f.strip_prefix("/msg Bob ").unwrap();
            assert!(!piece.ends_with(' '));
            pieces.push_str(piece);
        }
        assert_eq!(pieces, message);
    }

    #[test]
    fn other_long_commands_are_refused() {
        assert_eq!(
            plan_line(&format!("/join {}", "c".repeat(300))),
            LinePlan::TooLong
        );
        assert_eq!(
            plan_line(&format!("/msg {}", "n".repeat(300))),
            LinePlan::TooLong
        );
        assert_eq!(
            plan_line(&format!("/msg {} hi", "n".repeat(300))),
            LinePlan::TooLong
        );
        assert_eq!(
            plan_line(&format!("/msgx Bob {}", "z".repeat(300))),
            LinePlan::TooLong
        );
    }

    #[test]
    fn render_frame_exact_bytes() {
        assert_eq!(render_frame("hello"), "\r    \rhello\n[Me] ");
        assert_eq!(render_frame(""), "\r    \r\n[Me] ");
        assert_eq!(render_frame("a\nb"), "\r    \ra\nb\n[Me] ");
    }

    #[test]
    fn render_frame_drops_control_characters_but_newline() {
        assert_eq!(
            render_frame("a\x1b[31mb\x07c\r\nd\u{85}e\u{7f}\u{0}f\tg"),
            "\r    \ra[31mbc\ndefg\n[Me] "
        );
        assert_eq!(render_frame("ok\u{fffd}é"), "\r    \rok\u{fffd}é\n[Me] ");
    }

    #[test]
    fn render_disconnect_exact_bytes() {
        assert_eq!(
            render_disconnect("localhost", "055555"),
            "\r    \rServer at localhost:055555 has disconnected\n"
        );
    }

    #[test]
    fn auto_identify_answers_only_its_own_prompt() {
        let prompt = "Scott is a registered name. Send /identify PASSWORD within 60 seconds.";
        assert_eq!(
            auto_identify("Scott", Some("hunter22x"), prompt),
            Some("/identify hunter22x".to_string())
        );
        assert_eq!(auto_identify("Scott", None, prompt), None);
        assert_eq!(auto_identify("Kay", Some("hunter22x"), prompt), None);
        assert_eq!(
            auto_identify("Scott", Some("hunter22x"), &format!("[Bob] {prompt}")),
            None
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::InputEnded.exit_code(), 0);
        assert_eq!(Outcome::OutputClosed.exit_code(), 0);
        assert_ne!(Outcome::ServerClosed.exit_code(), 0);
        assert_ne!(Outcome::Unreachable.exit_code(), 0);
    }

    #[test]
    fn unreachable_host_prints_the_text_as_given() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        drop(listener);
        for (host, port) in [("127.0.0.1", port.as_str()), ("127.0.0.1", "notaport")] {
            let config = ClientConfig {
                name: "Scott".into(),
                host: host.into(),
                port: port.into(),
                password: None,
            };
            let mut out = Vec::new();
            let outcome = run(&config, io::empty(), &mut out).unwrap();
            assert_eq!(outcome, Outcome::Unreachable);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("Unable to connect to {host}:{port}\n")
            );
        }
    }

    #[test]
    fn name_too_long_is_an_error() {
        let config = ClientConfig {
            name: "n".repeat(201),
            host: "127.0.0.1".into(),
            port: "1".into(),
            password: None,
        };
        assert!(matches!(
            run(&config, io::empty(), Vec::new()),
            Err(ClientError::NameTooLong(201))
        ));
    }
}
