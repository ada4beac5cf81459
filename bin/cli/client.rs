//! The command line of `client [--tls [--ca FILE]] NAME HOST PORT` (the interactive chat
//! client), shared by the binaries `client` and `chat-client`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use chat::client::{self, ClientConfig, TlsTarget};

const AFTER_HELP: &str = "\
Modes:
  On a terminal (stdin and stdout both terminals) the client is a line editor: the line being
  typed stays on the bottom line while messages arrive above it; arrows, Backspace, Delete,
  Home/End (Ctrl-A/Ctrl-E), Ctrl-U/Ctrl-K/Ctrl-W and history (Up/Down) work; a password after
  /register or /identify is shown as *. It says when it is connected and why it ends.
  Ctrl-D on an empty line or /quit ends it; Ctrl-C clears the line, or ends on an empty one.
  Otherwise (a pipe or a file) it writes the course's exact bytes: the prompt `[Me] `, each
  message as `\\r    \\r` TEXT newline `[Me] `; at end of input everything typed is sent and the
  client exits 0 once the server has answered.
  Long lines are cut at word boundaries into messages that fit beside the `[NAME] ` prefix
  (or, for /msg NAME TEXT, the `[NAME -> TO] ` one); any other command longer than 200 bytes
  is not sent: `Command too long: at most 200 bytes.`

Login:
  The server says nothing when it takes a name, so the client sends `/time now` right after
  NAME (an invalid name, a harmless command) and holds typed lines until its answer shows
  whether NAME was taken. A refused NAME (invalid, in use, too close to a registered name):
  in pipe mode the refusal is printed and the client exits 3; on a terminal it asks for
  another name.

TLS:
  --tls speaks the same protocol inside TLS 1.2 or 1.3 and checks that the server's
  certificate leads to a trusted root and names HOST (a name or an IP address). The roots are
  the system's (SSL_CERT_FILE / SSL_CERT_DIR are honoured), or only those in --ca FILE (PEM).

Exit status:
  0  end of input, /quit or Ctrl-D (or stdout closed)
  1  the server closed the connection, or the client could not connect (`Unable to connect
     to HOST:PORT` on stdout, the cause on stderr: bad port, refused, unresolvable, TLS)
  2  bad command line
  3  the server refused NAME (pipe mode)

Environment:
  CHAT_PASSWORD  answers the server's /identify prompt for a registered NAME.
  RUST_LOG       log level on stderr (error by default).";

/// Connects to a chat server as NAME; typed lines are sent, received messages are shown.
#[derive(Parser)]
#[command(version, after_help = AFTER_HELP)]
struct Args {
    /// Speak TLS (1.2 or 1.3) and check the server's certificate and name.
    #[arg(long)]
    tls: bool,
    /// With --tls: trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
    /// The name to log in with.
    name: String,
    /// The server's host name or address.
    host: String,
    /// The server's port.
    port: String,
}

/// Parses the command line and runs the client.
pub fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let config = ClientConfig {
        name: args.name,
        host: args.host,
        port: args.port,
        password: std::env::var(client::PASSWORD_ENV).ok(),
        tls: args.tls.then_some(TlsTarget { ca: args.ca }),
    };
    ExitCode::from(client::run_stdio(&config))
}
