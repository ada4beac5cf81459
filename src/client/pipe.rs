//! Pipe mode (stdout is not a terminal): the exact bytes of PROTOCOL.md section 4, which
//! course graders read through a pipe. Stdin is read in bounded chunks and planned as a stream,
//! so a line of any length costs bounded memory.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;

use log::warn;
use mio::Waker;

use super::plan::{LineEnd, Step};
use super::session::{Action, Flow, Frontend, Halt, Input};
use super::{ClientError, Outcome};
use crate::frame;
use crate::utils_errors as text;

/// Bytes read from stdin at a time.
const CHUNK: usize = 4 * 1024;
/// Chunks the stdin thread may read ahead of the loop.
const CHUNK_QUEUE: usize = 8;

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

/// The bytes written for a last line (the server went away, or refused the name): wipe the
/// prompt, the text, a newline, and no prompt after it.
pub fn render_last(line: &str) -> String {
    let line: String = line.chars().filter(|&c| !frame::is_control(c)).collect();
    format!("{}{line}\n", text::CLIENT_WIPE)
}

/// The bytes written when the server closes the connection.
pub fn render_disconnect(host: &str, port: &str) -> String {
    render_last(&text::server_disconnected(host, port))
}

/// Writes `bytes` to the terminal and flushes: graders read stdout through a pipe.
pub fn show(term: &mut impl Write, bytes: &str) -> Flow {
    let result = term.write_all(bytes.as_bytes()).and_then(|()| term.flush());
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::BrokenPipe => {
            Err(Halt::Done(Outcome::OutputClosed))
        }
        Err(error) => Err(Halt::Fail(ClientError::Output(error))),
    }
}

/// The frontend of pipe mode.
pub struct PipeFrontend<W> {
    term: W,
    host: String,
    port: String,
}

impl<W: Write> PipeFrontend<W> {
    /// Writes to `term`; HOST and PORT are printed as given.
    pub fn new(term: W, host: &str, port: &str) -> Self {
        PipeFrontend {
            term,
            host: host.to_owned(),
            port: port.to_owned(),
        }
    }
}

impl<W: Write> Frontend for PipeFrontend<W> {
    fn interactive(&self) -> bool {
        false
    }

    fn start(&mut self) -> Flow {
        show(&mut self.term, text::CLIENT_PROMPT)
    }

    fn show(&mut self, frame_text: &str) -> Flow {
        show(&mut self.term, &render_frame(frame_text))
    }

    fn logged_in(&mut self, _name: &str) -> Flow {
        Ok(())
    }

    fn refused(&mut self, refusal: &str) -> Flow {
        show(&mut self.term, &render_last(refusal))?;
        Err(Halt::Done(Outcome::NameRefused))
    }

    fn step(&mut self, step: &Step) -> Flow {
        match step {
            Step::TooLong => show(&mut self.term, &render_frame(text::COMMAND_TOO_LONG)),
            Step::LineEnd(LineEnd::TooLong) | Step::Send(_) => Ok(()),
            Step::LineEnd(_) => show(&mut self.term, text::CLIENT_PROMPT),
        }
    }

    fn input(&mut self, input: Input, actions: &mut Vec<Action>) -> Flow {
        match input {
            Input::Chunk(bytes) => actions.push(Action::Typed(bytes)),
            Input::End => actions.push(Action::EndOfInput),
            Input::Event(_) => {}
        }
        Ok(())
    }

    fn server_closed(&mut self) -> Flow {
        show(&mut self.term, &render_disconnect(&self.host, &self.port))
    }
}

/// Reads `input` in chunks on its own thread; each goes to the loop, which is woken.
pub fn spawn_reader<R: Read + Send + 'static>(
    mut input: R,
    chunks: SyncSender<Input>,
    waker: Arc<Waker>,
) -> io::Result<()> {
    let hand_over = move |event: Input| -> bool {
        // A closed channel means the loop is gone: stop reading.
        let delivered = chunks.send(event).is_ok();
        if let Err(error) = waker.wake() {
            warn!("cannot wake the client loop: {error}");
        }
        delivered
    };
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if !hand_over(Input::Chunk(buf[..n].to_vec())) {
                            return;
                        }
                    }
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) => {
                        warn!("cannot read stdin: {error}");
                        break;
                    }
                }
            }
            hand_over(Input::End);
        })
        .map(|_| ())
}

/// A bounded channel for the stdin thread.
pub fn channel() -> (SyncSender<Input>, mpsc::Receiver<Input>) {
    mpsc::sync_channel(CHUNK_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn render_last_of_a_refusal() {
        assert_eq!(
            render_last(&text::name_in_use("Kay")),
            "\r    \rName Kay is already in use. Send another name.\n"
        );
    }

    #[test]
    fn steps_print_the_course_bytes() {
        let mut out = Vec::new();
        let mut ui = PipeFrontend::new(&mut out, "h", "1");
        ui.step(&Step::LineEnd(LineEnd::Sent)).unwrap();
        ui.step(&Step::LineEnd(LineEnd::Skipped)).unwrap();
        ui.step(&Step::TooLong).unwrap();
        ui.step(&Step::LineEnd(LineEnd::TooLong)).unwrap();
        ui.step(&Step::LineEnd(LineEnd::Quit)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[Me] [Me] \r    \rCommand too long: at most 200 bytes.\n[Me] [Me] "
        );
    }
}
