//! The interactive client: `client [--tls [--ca FILE]] NAME HOST PORT` (PROTOCOL.md section 4).
//!
//! Two modes, one loop ([`session`]):
//! - **pipe mode** (stdout or stdin is not a terminal): the exact bytes of section 4, which
//!   course graders read ([`pipe`]);
//! - **terminal mode** (both are terminals): a line editor that keeps the line being typed on
//!   the bottom line while frames arrive ([`editor`], [`terminal`]).
//!
//! The pure parts: [`plan`] turns typed bytes into frames as a stream, [`login`] tells from the
//! server's frames whether it took the name, [`editor`] is the line editor. The connection,
//! plain or TLS, is [`net`] and [`tls`].

pub mod editor;
pub mod login;
pub mod net;
pub mod pipe;
pub mod plan;
pub mod session;
pub mod terminal;
pub mod tls;

use std::io::{self, IsTerminal, Read, Write};

pub use net::{ConnectError, Target, TlsTarget};

use crate::frame::FRAME_LEN;
use crate::utils_errors as text;
use session::Session;

/// The environment variable the client takes its password from.
pub const PASSWORD_ENV: &str = "CHAT_PASSWORD";

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
    /// Speak TLS.
    pub tls: Option<TlsTarget>,
}

impl ClientConfig {
    fn target(&self) -> Target {
        Target {
            host: self.host.clone(),
            port: self.port.clone(),
            tls: self.tls.clone(),
        }
    }
}

/// How a client run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// End of input (or Ctrl-D): everything typed was sent.
    InputEnded,
    /// `/quit`: the server closed the connection.
    Quit,
    /// The server closed the connection while input was still open.
    ServerClosed,
    /// The connection could not be made.
    Unreachable,
    /// The terminal went away (a broken stdout pipe).
    OutputClosed,
    /// The server refused NAME (pipe mode).
    NameRefused,
}

/// The exit status when the server refused NAME.
pub const EXIT_NAME_REFUSED: u8 = 3;

impl Outcome {
    /// The process exit status for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::InputEnded | Outcome::Quit | Outcome::OutputClosed => 0,
            Outcome::ServerClosed | Outcome::Unreachable => 1,
            Outcome::NameRefused => EXIT_NAME_REFUSED,
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
    /// The poll, the waker, the terminal or an input thread could not be set up or failed.
    #[error("event loop failure: {0}")]
    Poll(#[source] io::Error),
}

/// Runs the client on the real stdin and stdout; returns the exit status.
pub fn run_stdio(config: &ClientConfig) -> u8 {
    let terminal = io::stdout().is_terminal() && io::stdin().is_terminal();
    let result = if terminal {
        connect_or_say(config, io::stdout()).and_then(|stream| match stream {
            Some(stream) => terminal::run(config, stream),
            None => Ok(Outcome::Unreachable),
        })
    } else {
        run(config, io::stdin(), io::stdout())
    };
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("client: {error}");
            1
        }
    }
}

/// Connects; when it cannot, prints the course text on `term` and the cause on stderr.
fn connect_or_say(
    config: &ClientConfig,
    mut term: impl Write,
) -> Result<Option<net::Stream>, ClientError> {
    if config.name.len() > FRAME_LEN {
        return Err(ClientError::NameTooLong(config.name.len()));
    }
    match net::connect(&config.target()) {
        Ok(stream) => Ok(Some(stream)),
        Err(error) => {
            eprintln!(
                "client: cannot connect to {}:{}: {error}",
                config.host, config.port
            );
            let line = format!("{}\n", text::unable_to_connect(&config.host, &config.port));
            match pipe::show(&mut term, &line) {
                Ok(()) | Err(session::Halt::Done(_)) => Ok(None),
                Err(session::Halt::Fail(error)) => Err(error),
            }
        }
    }
}

/// Runs the client in pipe mode: connects, then relays `input` to the server and the server's
/// frames to `term` until one side ends.
pub fn run<R, W>(config: &ClientConfig, input: R, mut term: W) -> Result<Outcome, ClientError>
where
    R: Read + Send + 'static,
    W: Write,
{
    let Some(stream) = connect_or_say(config, &mut term)? else {
        return Ok(Outcome::Unreachable);
    };
    let frontend = pipe::PipeFrontend::new(term, &config.host, &config.port);
    let mut session = Session::new(stream, &config.name, config.password.clone(), frontend)
        .map_err(ClientError::Poll)?;
    let (sender, chunks) = pipe::channel();
    pipe::spawn_reader(input, sender, session.waker()).map_err(ClientError::Poll)?;
    session.run(&config.name, &chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, host: &str, port: &str) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            host: host.into(),
            port: port.into(),
            password: None,
            tls: None,
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::InputEnded.exit_code(), 0);
        assert_eq!(Outcome::Quit.exit_code(), 0);
        assert_eq!(Outcome::OutputClosed.exit_code(), 0);
        assert_eq!(Outcome::ServerClosed.exit_code(), 1);
        assert_eq!(Outcome::Unreachable.exit_code(), 1);
        assert_eq!(Outcome::NameRefused.exit_code(), 3);
    }

    #[test]
    fn unreachable_host_prints_the_text_as_given() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        drop(listener);
        for (host, port) in [
            ("127.0.0.1", port.as_str()),
            ("127.0.0.1", "notaport"),
            ("127.0.0.1", "70000"),
        ] {
            let mut out = Vec::new();
            let outcome = run(&config("Scott", host, port), io::empty(), &mut out).unwrap();
            assert_eq!(outcome, Outcome::Unreachable);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("Unable to connect to {host}:{port}\n")
            );
        }
    }

    #[test]
    fn name_too_long_is_an_error() {
        assert!(matches!(
            run(
                &config(&"n".repeat(201), "127.0.0.1", "1"),
                io::empty(),
                Vec::new()
            ),
            Err(ClientError::NameTooLong(201))
        ));
    }
}
