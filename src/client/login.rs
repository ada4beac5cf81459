//! Knowing whether the server took NAME, though it says nothing when it does (section 2).
//!
//! Right after NAME the client sends [`text::LOGIN_PROBE`], a frame that is an invalid name
//! (it holds a space) but a harmless command (`/time` ignores its argument). The server handles
//! frames in order, so the probe's answer tells what became of NAME:
//! - NAME was refused: the refusal comes first, then the probe, taken as the next name
//!   attempt, gets the invalid-name text;
//! - NAME was taken: the probe is a command and gets `Time is: …`, or `Send /identify PASSWORD
//!   first.` for a registered name, or (a course server without `/time`) the invalid-command
//!   text.
//!
//! Frames before that answer (offline messages, the registered-name prompt, private messages)
//! are shown as usual; the answer itself never is. Typed lines wait for it, so that no line is
//! ever taken for a name.

use std::collections::VecDeque;

use crate::frame;
use crate::utils_errors as text;

/// What to do with a frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Show it.
    Show,
    /// The answer to a probe that needs no action: do not show it.
    Hide,
    /// The server took the name: do not show this frame; typed lines may go now.
    LoggedIn,
    /// The server refused the name, with this text (show it; the client stops or asks again).
    Refused(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// NAME and a probe were sent; no answer yet.
    Waiting,
    /// NAME was refused; waiting for a new name.
    Refused,
    /// Logged in.
    Ready,
}

/// The login of one connection.
#[derive(Debug)]
pub struct Login {
    name: String,
    state: State,
    /// One entry per probe whose answer has not come, oldest first: whether the refusal of
    /// the name sent before it was seen.
    probes: VecDeque<bool>,
}

/// The name as the server sees it: the frame's padding is stripped.
pub fn server_name(name: &str) -> &str {
    name.trim_end_matches([' ', '\t', '\r', '\n', '\0'])
}

impl Login {
    /// A login that has sent `name` and one probe.
    pub fn new(name: &str) -> Login {
        Login {
            name: server_name(name).to_owned(),
            state: State::Waiting,
            probes: VecDeque::from([false]),
        }
    }

    /// The name being logged in with (as the server sees it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the server has taken the name.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// A new name was sent, with a probe, after a refusal.
    pub fn retry(&mut self, name: &str) {
        self.name = server_name(name).to_owned();
        self.state = State::Waiting;
        self.probes.push_back(false);
    }

    /// Classifies one frame from the server.
    pub fn on_frame(&mut self, frame_text: &str) -> Seen {
        if !self.probes.is_empty() && frame_text == text::invalid_name(text::LOGIN_PROBE) {
            // A probe was taken as a name: the name sent before it did not log in.
            let refusal_seen = self.probes.pop_front().unwrap_or(true);
            if !refusal_seen && self.probes.is_empty() && self.state == State::Waiting {
                // No refusal text we know came first (an empty NAME, which the server ignores,
                // or a server whose texts differ): the name did not log in all the same.
                self.state = State::Refused;
                return Seen::Refused(text::invalid_name(&frame::clean(&self.name)));
            }
            return Seen::Hide;
        }
        if self.state != State::Waiting {
            return Seen::Show;
        }
        if self.is_refusal(frame_text) {
            self.state = State::Refused;
            if let Some(current) = self.probes.back_mut() {
                *current = true;
            }
            return Seen::Refused(frame_text.to_owned());
        }
        if !self.probes.is_empty() && is_probe_answer(frame_text) {
            self.probes.pop_front();
            self.state = State::Ready;
            return Seen::LoggedIn;
        }
        Seen::Show
    }

    fn is_refusal(&self, frame_text: &str) -> bool {
        let name = &self.name;
        frame_text == text::invalid_name(&frame::clean(name))
            || frame_text == text::name_in_use(name)
            || frame_text == text::name_too_close(name)
    }
}

/// The `/identify` command to send in answer to `frame_text`, if it is the server asking this
/// client's name to identify and a password is set.
pub fn auto_identify(name: &str, password: Option<&str>, frame_text: &str) -> Option<String> {
    let password = password?;
    let asked = frame_text.starts_with(&text::registered_name_prompt_start(name))
        && frame_text.ends_with(" seconds.");
    asked.then(|| format!("/identify {password}"))
}

/// The answers a logged-in connection can get for the probe.
fn is_probe_answer(frame_text: &str) -> bool {
    let command = text::LOGIN_PROBE
        .split(' ')
        .next()
        .unwrap_or(text::LOGIN_PROBE);
    frame_text.starts_with(&text::time_is(""))
        || frame_text == text::IDENTIFY_FIRST
        || frame_text == text::invalid_control_message(command)
        || frame_text == text::invalid_control_message(text::LOGIN_PROBE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_answer_logs_in_and_is_hidden() {
        let mut login = Login::new("Kay");
        assert!(!login.is_ready());
        assert_eq!(login.on_frame("You have 1 offline message:"), Seen::Show);
        assert_eq!(login.on_frame("[Bob -> Kay] hi"), Seen::Show);
        assert_eq!(login.on_frame("Time is: 21.11.26,22:43"), Seen::LoggedIn);
        assert!(login.is_ready());
        // The user's own /time later is shown.
        assert_eq!(login.on_frame("Time is: 21.11.26,22:44"), Seen::Show);
    }

    #[test]
    fn a_registered_name_is_logged_in_by_its_identify_first_answer() {
        let mut login = Login::new("Scott");
        let prompt = text::registered_name_prompt("Scott", 60);
        assert_eq!(login.on_frame(&prompt), Seen::Show);
        assert_eq!(login.on_frame(text::IDENTIFY_FIRST), Seen::LoggedIn);
        assert_eq!(login.on_frame(&text::identified("Scott")), Seen::Show);
        assert_eq!(login.on_frame(text::IDENTIFY_FIRST), Seen::Show);
    }

    #[test]
    fn a_course_server_without_time_logs_in_too() {
        let mut login = Login::new("Kay");
        let answer = text::invalid_control_message("/time");
        assert_eq!(login.on_frame(&answer), Seen::LoggedIn);
    }

    #[test]
    fn refusals_are_recognised_and_the_probe_answer_hidden() {
        for refusal in [
            text::name_in_use("Kay"),
            text::name_too_close("Kay"),
            text::invalid_name("Kay"),
        ] {
            let mut login = Login::new("Kay");
            assert_eq!(login.on_frame(&refusal), Seen::Refused(refusal.clone()));
            let probe_answer = text::invalid_name(text::LOGIN_PROBE);
            assert_eq!(login.on_frame(&probe_answer), Seen::Hide);
            // Another try.
            login.retry("Kai");
            assert_eq!(
                login.on_frame(&text::time_is("01.01.26,00:00")),
                Seen::LoggedIn
            );
            assert_eq!(login.name(), "Kai");
        }
    }

    #[test]
    fn a_refusal_of_a_retry_before_the_first_probe_answer() {
        let mut login = Login::new("Kay");
        let probe_answer = text::invalid_name(text::LOGIN_PROBE);
        assert!(matches!(
            login.on_frame(&text::name_in_use("Kay")),
            Seen::Refused(_)
        ));
        login.retry("Bob");
        assert_eq!(login.on_frame(&probe_answer), Seen::Hide);
        assert!(matches!(
            login.on_frame(&text::name_in_use("Bob")),
            Seen::Refused(_)
        ));
        assert_eq!(login.on_frame(&probe_answer), Seen::Hide);
        login.retry("Bo");
        assert_eq!(login.on_frame("Time is: x"), Seen::LoggedIn);
    }

    #[test]
    fn an_unknown_refusal_is_still_a_refusal() {
        // An empty name is ignored by the server: the probe is taken as the name.
        let mut login = Login::new("  ");
        let probe_answer = text::invalid_name(text::LOGIN_PROBE);
        assert_eq!(
            login.on_frame(&probe_answer),
            Seen::Refused(text::invalid_name(""))
        );
    }

    #[test]
    fn another_clients_text_is_not_taken_for_an_answer() {
        let mut login = Login::new("Kay");
        assert_eq!(login.on_frame("[Bob -> Kay] Time is: now"), Seen::Show);
        assert_eq!(
            login.on_frame(&format!("[Bob -> Kay] {}", text::name_in_use("Kay"))),
            Seen::Show
        );
        assert!(!login.is_ready());
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
    fn the_probe_is_an_invalid_name_and_a_harmless_command() {
        assert!(text::LOGIN_PROBE.contains(' '));
        assert_eq!(
            crate::command::Command::parse(text::LOGIN_PROBE),
            crate::command::Command::Time
        );
    }
}
