//! `split_client replay HOST PORT`: the course's split-messages scenario.

use std::io::Write;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::session::{Event, PieceOptions, Session};
use super::SplitError;
use crate::utils_errors as text;

/// How many times the scenario sends its message.
pub const REPLAY_COUNT: usize = 10;

/// After the last message, how long to wait for the server's last frames and its close.
const DRAIN: Duration = Duration::from_millis(500);

/// What the replay mode needs.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The server's host, as given.
    pub host: String,
    /// The server's port, as given.
    pub port: String,
    /// The pause between two messages (the course uses one second).
    pub interval: Duration,
    /// How frames are cut.
    pub pieces: PieceOptions,
}

/// True for the server's refusals of the replay: `/join` of a channel that does not exist, and
/// a chat message from a client in no channel.
fn is_refusal(text: &str) -> bool {
    text == text::no_such_channel(text::SPLIT_REPLAY_CHANNEL) || text == text::NOT_IN_CHANNEL
}

/// Logs in as `SplitMessagesChatClient`, joins `split_messages` and sends the course message
/// ten times, one interval apart, each frame in random pieces (logged to `log`). Frames from the
/// server are printed to `out`, one text per line.
///
/// The channel must exist: the replay does not create it (the course scenario only joins). When
/// the server refuses the join or a message, the replay stops at once with
/// [`SplitError::NoReplayChannel`] rather than send the rest into nowhere.
pub fn run_replay(
    cfg: &ReplayConfig,
    out: &mut impl Write,
    log: &mut impl Write,
) -> Result<(), SplitError> {
    let mut session = Session::connect_or_tell(&cfg.host, &cfg.port, cfg.pieces.clone(), out)?;
    let disconnected = |out: &mut dyn Write| {
        let msg = text::server_disconnected(&cfg.host, &cfg.port);
        let _ = writeln!(out, "{msg}");
        let _ = out.flush();
        SplitError::Disconnected(msg)
    };
    let no_channel =
        || SplitError::NoReplayChannel(text::split_replay_no_channel(&cfg.host, &cfg.port));
    let join = format!("/join {}", text::SPLIT_REPLAY_CHANNEL);
    for t in [text::SPLIT_REPLAY_NAME, join.as_str()] {
        if session.send_text(t, log).is_err() {
            return Err(disconnected(out));
        }
    }
    for i in 0..REPLAY_COUNT {
        if i > 0 {
            // Print what arrives while waiting for the next turn.
            let due = Instant::now() + cfg.interval;
            loop {
                let left = due.saturating_duration_since(Instant::now());
                match session.events().recv_timeout(left) {
                    Ok(Event::Frame(t)) => {
                        writeln!(out, "{t}")?;
                        out.flush()?;
                        if is_refusal(&t) {
                            return Err(no_channel());
                        }
                    }
                    Ok(Event::Closed) => return Err(disconnected(out)),
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return Err(disconnected(out)),
                }
            }
        }
        if session.send_text(text::SPLIT_REPLAY_MESSAGE, log).is_err() {
            return Err(disconnected(out));
        }
    }
    session.finish();
    let deadline = Instant::now() + DRAIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match session.events().recv_timeout(left) {
            Ok(Event::Frame(t)) => {
                writeln!(out, "{t}")?;
                out.flush()?;
                if is_refusal(&t) {
                    return Err(no_channel());
                }
            }
            Ok(Event::Closed) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}
