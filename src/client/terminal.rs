//! Terminal mode (stdin and stdout are terminals): the line editor of [`super::editor`] in raw
//! mode, keys read by crossterm on their own thread and handed to the event loop.

use std::io::{self, ErrorKind, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal;
use log::warn;
use mio::Waker;

use super::editor::{masked, Edit, Editor, Key};
use super::net::Stream;
use super::plan::Step;
use super::session::{Action, Flow, Frontend, Halt, Input, Session};
use super::{ClientConfig, ClientError, Outcome};
use crate::frame::FRAME_LEN;
use crate::utils_errors as text;

/// Columns assumed when the terminal does not say.
const DEFAULT_WIDTH: usize = 80;

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A name was sent; the server has not said whether it took it.
    LoggingIn,
    /// The server refused the name: the editor asks for another.
    AskingName,
    /// Logged in.
    Chatting,
}

/// The frontend of terminal mode. Dropping it clears the prompt line and leaves raw mode, so
/// that the shell's prompt starts on a line of its own.
pub struct TerminalFrontend {
    out: io::Stdout,
    editor: Editor,
    width: usize,
    host: String,
    port: String,
    stage: Stage,
    /// Frames that came before the login finished: shown after the connected line.
    early: Vec<String>,
    /// The chat line being typed while the editor asks for a name.
    stash: String,
}

/// Maps a crossterm key to the editor's keys.
pub fn map_key(key: &KeyEvent) -> Option<Key> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let mapped = match key.code {
        KeyCode::Char(c) if ctrl => match c.to_ascii_lowercase() {
            'a' => Key::Home,
            'e' => Key::End,
            'b' => Key::Left,
            'f' => Key::Right,
            'd' => Key::CtrlD,
            'c' => Key::CtrlC,
            'u' => Key::KillToStart,
            'k' => Key::KillToEnd,
            'w' => Key::KillWord,
            'h' => Key::Backspace,
            'l' => Key::Redraw,
            'p' => Key::Up,
            'n' => Key::Down,
            'j' | 'm' => Key::Enter,
            _ => return None,
        },
        KeyCode::Char(c) if alt => match c {
            'b' => Key::WordLeft,
            'f' => Key::WordRight,
            _ => return None,
        },
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Left if ctrl || alt => Key::WordLeft,
        KeyCode::Right if ctrl || alt => Key::WordRight,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        _ => return None,
    };
    Some(mapped)
}

fn width_now() -> usize {
    match terminal::size() {
        Ok((cols, _)) if cols > 0 => usize::from(cols),
        _ => DEFAULT_WIDTH,
    }
}

impl TerminalFrontend {
    /// Enters raw mode; HOST and PORT are printed as given.
    pub fn new(host: &str, port: &str) -> io::Result<Self> {
        terminal::enable_raw_mode()?;
        Ok(TerminalFrontend {
            out: io::stdout(),
            editor: Editor::new(text::CLIENT_PROMPT),
            width: width_now(),
            host: host.to_owned(),
            port: port.to_owned(),
            stage: Stage::LoggingIn,
            early: Vec::new(),
            stash: String::new(),
        })
    }

    fn write(&mut self, bytes: &str) -> Flow {
        let result = self
            .out
            .write_all(bytes.as_bytes())
            .and_then(|()| self.out.flush());
        match result {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::BrokenPipe => {
                Err(Halt::Done(Outcome::OutputClosed))
            }
            Err(error) => Err(Halt::Fail(ClientError::Output(error))),
        }
    }

    fn redraw(&mut self) -> Flow {
        let bytes = self.editor.render(self.width);
        self.write(&bytes)
    }

    fn print(&mut self, line: &str) -> Flow {
        let bytes = self.editor.print_above(line, self.width);
        self.write(&bytes)
    }

    fn print_early(&mut self) -> Flow {
        for frame_text in std::mem::take(&mut self.early) {
            self.print(&frame_text)?;
        }
        Ok(())
    }

    fn key(&mut self, key: Key, actions: &mut Vec<Action>) -> Flow {
        match self.editor.key(key) {
            Edit::Nothing => Ok(()),
            Edit::Changed => self.redraw(),
            Edit::Eof => {
                actions.push(Action::EndOfInput);
                Ok(())
            }
            Edit::Submit(line) => {
                // The typed line stays on screen, as a terminal's echo would leave it.
                let echo = format!("{}{}", self.editor.prompt(), masked(&line));
                if self.stage == Stage::AskingName {
                    self.submit_name(line, &echo, actions)
                } else {
                    if !line.trim().is_empty() {
                        self.print(&echo)?;
                    }
                    let mut bytes = line.into_bytes();
                    bytes.push(b'\n');
                    actions.push(Action::Typed(bytes));
                    Ok(())
                }
            }
        }
    }

    fn submit_name(&mut self, name: String, echo: &str, actions: &mut Vec<Action>) -> Flow {
        self.print(echo)?;
        let name = name.trim().to_owned();
        if name.is_empty() || name.len() > FRAME_LEN {
            return self.print(&text::invalid_name(&name));
        }
        self.stage = Stage::LoggingIn;
        self.editor.set_prompt(text::CLIENT_PROMPT);
        let stash = std::mem::take(&mut self.stash);
        self.editor.replace_line(stash);
        actions.push(Action::Name(name));
        self.redraw()
    }
}

impl Drop for TerminalFrontend {
    fn drop(&mut self) {
        // Clear the prompt line; the cursor is left at its start for the shell.
        let _ = self.out.write_all(b"\r\x1b[2K");
        let _ = self.out.flush();
        if let Err(error) = terminal::disable_raw_mode() {
            warn!("cannot leave raw mode: {error}");
        }
    }
}

impl Frontend for TerminalFrontend {
    fn interactive(&self) -> bool {
        true
    }

    fn start(&mut self) -> Flow {
        self.redraw()
    }

    fn show(&mut self, frame_text: &str) -> Flow {
        if self.stage == Stage::Chatting {
            self.print(frame_text)
        } else {
            self.early.push(frame_text.to_owned());
            Ok(())
        }
    }

    fn logged_in(&mut self, name: &str) -> Flow {
        self.stage = Stage::Chatting;
        let connected = text::client_connected(&self.host, &self.port, name);
        self.print(&connected)?;
        self.print_early()
    }

    fn refused(&mut self, refusal: &str) -> Flow {
        self.print_early()?;
        self.print(refusal)?;
        self.stage = Stage::AskingName;
        self.stash = self.editor.replace_line(String::new());
        self.editor.set_prompt(text::CLIENT_NAME_PROMPT);
        self.redraw()
    }

    fn step(&mut self, step: &Step) -> Flow {
        match step {
            Step::TooLong => self.print(text::COMMAND_TOO_LONG),
            _ => Ok(()),
        }
    }

    fn input(&mut self, input: Input, actions: &mut Vec<Action>) -> Flow {
        match input {
            Input::Event(Event::Key(key)) => match map_key(&key) {
                Some(key) => self.key(key, actions),
                None => Ok(()),
            },
            Input::Event(Event::Resize(cols, _)) => {
                self.width = usize::from(cols).max(1);
                self.redraw()
            }
            Input::Event(_) | Input::Chunk(_) => Ok(()),
            Input::End => {
                actions.push(Action::EndOfInput);
                Ok(())
            }
        }
    }

    fn server_closed(&mut self) -> Flow {
        self.print_early()?;
        let line = text::server_disconnected(&self.host, &self.port);
        self.print(&line)
    }
}

/// Reads terminal events on their own thread; each goes to the loop, which is woken.
fn spawn_key_reader(events: Sender<Input>, waker: Arc<Waker>) -> io::Result<()> {
    thread::Builder::new()
        .name("keys".into())
        .spawn(move || loop {
            let input = match crossterm::event::read() {
                Ok(event) => Input::Event(event),
                Err(error) => {
                    warn!("cannot read the terminal: {error}");
                    Input::End
                }
            };
            let last = matches!(input, Input::End);
            let delivered = events.send(input).is_ok();
            if let Err(error) = waker.wake() {
                warn!("cannot wake the client loop: {error}");
            }
            if last || !delivered {
                return;
            }
        })
        .map(|_| ())
}

/// Runs terminal mode on a connected stream.
pub fn run(config: &ClientConfig, stream: Stream) -> Result<Outcome, ClientError> {
    let frontend = TerminalFrontend::new(&config.host, &config.port).map_err(ClientError::Poll)?;
    let mut session = Session::new(stream, &config.name, config.password.clone(), frontend)
        .map_err(ClientError::Poll)?;
    let (sender, events) = mpsc::channel();
    spawn_key_reader(sender, session.waker()).map_err(ClientError::Poll)?;
    session.run(&config.name, &events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
        map_key(&KeyEvent::new(code, modifiers))
    }

    #[test]
    fn keys_map_to_the_editor() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        assert_eq!(key(KeyCode::Char('x'), none), Some(Key::Char('x')));
        assert_eq!(
            key(KeyCode::Char('X'), KeyModifiers::SHIFT),
            Some(Key::Char('X'))
        );
        assert_eq!(key(KeyCode::Char('d'), ctrl), Some(Key::CtrlD));
        assert_eq!(key(KeyCode::Char('a'), ctrl), Some(Key::Home));
        assert_eq!(key(KeyCode::Left, ctrl), Some(Key::WordLeft));
        assert_eq!(key(KeyCode::Home, none), Some(Key::Home));
        assert_eq!(key(KeyCode::Tab, none), None);
        assert_eq!(key(KeyCode::Char('z'), ctrl), None);
    }
}
