//! `split_client NAME HOST PORT`: the client's behaviour, every frame sent in random pieces.

use std::io::{BufRead, Write};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use super::session::{Event, PieceOptions, Session};
use super::SplitError;
use crate::frame::{self, FRAME_LEN};
use crate::utils_errors as text;

/// After stdin ends, how long to wait for the server to close the connection (it does once it
/// has read everything we sent).
const DRAIN: Duration = Duration::from_secs(2);

/// What the interactive mode needs.
#[derive(Debug, Clone)]
pub struct InteractiveConfig {
    /// The name to log in with.
    pub name: String,
    /// The server's host, as given (it is printed as given).
    pub host: String,
    /// The server's port, as given.
    pub port: String,
    /// How frames are cut.
    pub pieces: PieceOptions,
}

/// The frame texts a typed line becomes, or `None` for an over-long command that is not sent.
///
/// A chat line that does not fit becomes several messages, none starting with `/`; a long
/// `/msg NAME TEXT` becomes several `/msg NAME …` commands.
pub fn frames_for_line(line: &str) -> Option<Vec<String>> {
    if line.len() <= FRAME_LEN {
        return Some(vec![line.to_string()]);
    }
    if !line.starts_with('/') {
        return Some(
            frame::split_text(line, FRAME_LEN, true)
                .into_iter()
                .map(str::to_string)
                .collect(),
        );
    }
    let rest = line.strip_prefix("/msg ")?.trim_start();
    let (name, body) = rest.split_once(' ')?;
    let body = body.trim();
    let head = format!("/msg {name} ");
    if body.is_empty() || head.len() >= FRAME_LEN {
        return None;
    }
    Some(
        frame::split_text(body, FRAME_LEN - head.len(), false)
            .into_iter()
            .map(|piece| format!("{head}{}", piece.trim_start()))
            .collect(),
    )
}

fn read_lines(mut input: impl BufRead, tx: Sender<Event>) {
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&raw);
                let line = line.trim_end_matches('\n').trim_end_matches('\r');
                if tx.send(Event::Line(line.to_string())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Event::InputEnd);
}

fn disconnected(cfg: &InteractiveConfig, out: &mut impl Write) -> SplitError {
    let msg = text::server_disconnected(&cfg.host, &cfg.port);
    let _ = writeln!(out, "{}{msg}", text::CLIENT_WIPE);
    let _ = out.flush();
    SplitError::Disconnected(msg)
}

/// Runs the interactive client: `input` lines go to the server, its frames to `out`, the piece
/// log to `log`. Returns at the end of `input` once everything is sent; the user-visible texts
/// of a failure (cannot connect, server gone) are written to `out` before the error returns.
pub fn run_interactive(
    cfg: &InteractiveConfig,
    input: impl BufRead + Send + 'static,
    out: &mut impl Write,
    log: &mut impl Write,
) -> Result<(), SplitError> {
    let mut session = Session::connect_or_tell(&cfg.host, &cfg.port, cfg.pieces.clone(), out)?;
    if session.send_text(&cfg.name, log).is_err() {
        return Err(disconnected(cfg, out));
    }
    write!(out, "{}", text::CLIENT_PROMPT)?;
    out.flush()?;
    let tx = session.event_sender();
    thread::Builder::new()
        .name("split-stdin".into())
        .spawn(move || read_lines(input, tx))?;

    let mut input_done = false;
    loop {
        let event = if input_done {
            match session.events().recv_timeout(DRAIN) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return Ok(())
                }
            }
        } else {
            match session.events().recv() {
                Ok(e) => e,
                Err(_) => return Ok(()),
            }
        };
        match event {
            Event::Line(line) => {
                if !line.is_empty() {
                    match frames_for_line(&line) {
                        Some(texts) => {
                            for t in texts {
                                if session.send_text(&t, log).is_err() {
                                    return Err(disconnected(cfg, out));
                                }
                            }
                        }
                        None => writeln!(out, "{}", text::COMMAND_TOO_LONG)?,
                    }
                }
                write!(out, "{}", text::CLIENT_PROMPT)?;
                out.flush()?;
            }
            Event::InputEnd => {
                session.finish();
                input_done = true;
            }
            Event::Frame(t) => {
                write!(out, "{}{t}\n{}", text::CLIENT_WIPE, text::CLIENT_PROMPT)?;
                out.flush()?;
            }
            Event::Closed if input_done => return Ok(()),
            Event::Closed => return Err(disconnected(cfg, out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_fits_is_one_frame() {
        assert_eq!(frames_for_line("hello"), Some(vec!["hello".to_string()]));
        let full = "x".repeat(200);
        assert_eq!(frames_for_line(&full), Some(vec![full.clone()]));
    }

    #[test]
    fn a_long_chat_line_becomes_several_messages_none_a_command() {
        let line = format!("{}/{}", "a".repeat(200), "b".repeat(100));
        let frames = frames_for_line(&line).unwrap();
        assert!(frames.len() >= 2);
        assert!(frames.iter().all(|f| f.len() <= 200 && !f.starts_with('/')));
        assert_eq!(frames.concat(), line);
    }

    #[test]
    fn a_long_msg_becomes_several_msgs_and_other_long_commands_are_refused() {
        let body = "word ".repeat(60);
        let frames = frames_for_line(&format!("/msg bob {body}")).unwrap();
        assert!(frames.len() >= 2);
        assert!(frames
            .iter()
            .all(|f| f.len() <= 200 && f.starts_with("/msg bob ")));
        assert_eq!(
            frames_for_line(&format!("/create {}", "c".repeat(300))),
            None
        );
    }
}
