//! End-to-end tests of the `client` binary in terminal mode: it runs on a pseudo-terminal made
//! here (openpty), keys are typed into it, and what a person would see is read from an
//! in-memory terminal (vt100) fed with everything the client wrote.

mod common;
#[path = "client_support.rs"]
mod support;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use support::{accept, expect_login, fake_server, padded};

const ROWS: u16 = 24;
const COLS: u16 = 80;
/// How long anything expected may take to show.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The keys a terminal sends.
const ENTER: &str = "\r";
const LEFT: &str = "\x1b[D";
const RIGHT: &str = "\x1b[C";
const UP: &str = "\x1b[A";
const HOME: &str = "\x1b[H";
const END: &str = "\x1b[F";
const BACKSPACE: &str = "\x7f";
const DELETE: &str = "\x1b[3~";
const CTRL_D: &str = "\x04";

/// A `client` on a pseudo-terminal, and the screen it drew.
struct Tty {
    child: Child,
    master: File,
    output: Receiver<Vec<u8>>,
    screen: vt100::Parser,
    /// Everything the client wrote, as bytes.
    raw: Vec<u8>,
    stderr: Option<thread::JoinHandle<String>>,
}

fn set_cloexec(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    assert_eq!(rc, 0, "fcntl: {}", io::Error::last_os_error());
}

impl Tty {
    fn spawn(args: &[&str]) -> Tty {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let size = libc::winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills two descriptors; the name and termios pointers may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: openpty returned two new descriptors that nothing else owns.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        set_cloexec(&master);
        set_cloexec(&slave);
        let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
        command
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave))
            .stderr(Stdio::piped())
            .env_remove("CHAT_PASSWORD")
            .env("TERM", "xterm");
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // A session of its own, with the pseudo-terminal (its stdin) as controlling tty.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let master = File::from(master);
        let mut reader = master.try_clone().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Once the client is gone, reading the master fails (EIO): the thread ends.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Tty {
            child,
            master,
            output: rx,
            screen: vt100::Parser::new(ROWS, COLS, 0),
            raw: Vec::new(),
            stderr: Some(stderr),
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// The screen's rows, trailing blanks removed.
    fn rows(&self) -> Vec<String> {
        self.screen
            .screen()
            .rows(0, COLS)
            .map(|r| r.trim_end().to_string())
            .collect()
    }

    fn cursor(&self) -> (u16, u16) {
        self.screen.screen().cursor_position()
    }

    /// The row the cursor is on.
    fn cursor_row(&self) -> String {
        self.rows()[usize::from(self.cursor().0)].clone()
    }

    /// Reads the client's output until `done` holds for the screen, failing after [`TIMEOUT`].
    fn wait_for(&mut self, what: &str, done: impl Fn(&Tty) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => {
                    self.screen.process(&bytes);
                    self.raw.extend_from_slice(&bytes);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "never saw {what}; the screen:\n{}\ncursor {:?}",
                        self.rows().join("\n"),
                        self.cursor()
                    );
                }
            }
        }
    }

    /// Waits until a row reads exactly `text`.
    fn wait_for_row(&mut self, text: &str) {
        self.wait_for(&format!("a row {text:?}"), |t| {
            t.rows().iter().any(|r| r == text)
        });
    }

    /// Waits until the cursor's row reads exactly `text`, with the cursor at `col`.
    fn wait_for_prompt(&mut self, text: &str, col: usize) {
        self.wait_for(&format!("the prompt row {text:?}, cursor at {col}"), |t| {
            t.cursor_row() == text && usize::from(t.cursor().1) == col
        });
    }

    /// Waits (bounded) for the process to exit, reading the rest of its output.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the client did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        while let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(200)) {
            self.screen.process(&bytes);
            self.raw.extend_from_slice(&bytes);
        }
        status
    }

    fn stderr(&mut self) -> String {
        self.stderr.take().unwrap().join().unwrap()
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        // A failed test must not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connected(port: u16, name: &str) -> String {
    format!("Connected to 127.0.0.1:{port} as {name}. Type /help for commands.")
}

/// A server with `bob` (a raw connection) in channel `room`, and `alice` on a terminal in it.
fn alice_and_bob() -> (common::ServerProc, common::Peer, Tty) {
    let server = common::ServerProc::start(&[]);
    let port = server.addr.port();
    let mut bob = server.login("bob");
    bob.send("/create room");
    bob.sync("room");
    let mut alice = Tty::spawn(&["alice", "127.0.0.1", &port.to_string()]);
    alice.wait_for_row(&connected(port, "alice"));
    alice.type_keys(&format!("/join room{ENTER}"));
    bob.expect("alice has joined");
    (server, bob, alice)
}

/// The course client's `\r    \r` wipe left `[bob] oks is a fairly long line…` on screen: here
/// a frame is printed above the line being typed, which stays whole, cursor where it was.
#[test]
fn a_half_typed_line_survives_incoming_messages() {
    let (_server, mut bob, mut alice) = alice_and_bob();
    let typed = "oks is a fairly long line I have not finished";
    alice.type_keys(typed);
    let prompt = format!("[Me] {typed}");
    alice.wait_for_prompt(&prompt, prompt.len());
    // The cursor in the middle of the line: it must stay there too.
    alice.type_keys(&LEFT.repeat(9));
    let col = prompt.len() - 9;
    alice.wait_for_prompt(&prompt, col);

    bob.send("hi alice, how are the books?");
    bob.send("still there?");
    alice.wait_for_row("[bob] still there?");
    alice.wait_for_prompt(&prompt, col);
    let rows = alice.rows();
    let at = rows
        .iter()
        .position(|r| r == "[bob] hi alice, how are the books?")
        .expect("bob's first message on its own row");
    assert_eq!(rows[at + 1], "[bob] still there?");
    assert_eq!(rows[at + 2], prompt);
    assert!(
        rows.iter()
            .all(|r| !r.contains("[bob] oks") && !r.contains("finished[bob]")),
        "{rows:#?}"
    );

    alice.type_keys(&format!("{END} yet{ENTER}"));
    bob.expect(&format!("[alice] {typed} yet"));
    // The sent line stays on screen, and the prompt is empty again.
    alice.wait_for_row(&format!("[Me] {typed} yet"));
    alice.wait_for_prompt("[Me]", 5);
}

#[test]
fn editing_keys_and_history_work() {
    let (_server, mut bob, mut alice) = alice_and_bob();
    alice.type_keys("wrld");
    alice.type_keys(HOME);
    alice.type_keys("hello ");
    alice.wait_for_prompt("[Me] hello wrld", 11);
    alice.type_keys(RIGHT);
    alice.type_keys("o");
    alice.type_keys(END);
    alice.type_keys("!");
    alice.wait_for_prompt("[Me] hello world!", 17);
    alice.type_keys(ENTER);
    bob.expect("[alice] hello world!");

    // Up brings the line back; Backspace, Home and Delete edit it.
    alice.type_keys(UP);
    alice.wait_for_prompt("[Me] hello world!", 17);
    alice.type_keys(BACKSPACE);
    alice.type_keys(HOME);
    alice.type_keys(DELETE);
    alice.wait_for_prompt("[Me] ello world", 5);
    alice.type_keys(ENTER);
    bob.expect("[alice] ello world");
}

#[test]
fn a_password_is_masked_and_not_kept_in_history() {
    let (_server, _bob, mut alice) = alice_and_bob();
    alice.type_keys("/register hunter22x");
    alice.wait_for_prompt("[Me] /register *********", 24);
    alice.type_keys(ENTER);
    alice.wait_for_row("Name alice is now registered.");
    alice.wait_for_row("[Me] /register *********");
    // Up skips the password line: the line before it comes back.
    alice.type_keys(UP);
    alice.wait_for_prompt("[Me] /join room", 15);
    let seen = String::from_utf8_lossy(&alice.raw);
    assert!(
        !seen.contains("hunter22x"),
        "the password was written: {seen:?}"
    );
}

#[test]
fn ctrl_d_exits_0_and_leaves_the_shell_a_line_of_its_own() {
    let (_server, mut bob, mut alice) = alice_and_bob();
    alice.type_keys("abc");
    alice.wait_for_prompt("[Me] abc", 8);
    // Ctrl-D on a line with text deletes under the cursor; on an empty line it ends.
    alice.type_keys(&format!("{HOME}{CTRL_D}"));
    alice.wait_for_prompt("[Me] bc", 5);
    alice.type_keys(&format!("{END}{BACKSPACE}{BACKSPACE}{CTRL_D}"));
    assert_eq!(alice.wait().code(), Some(0));
    bob.expect("alice has left");
    // The prompt line is cleared: the shell's prompt starts on an empty line, at column 0.
    assert_eq!(alice.cursor().1, 0);
    assert_eq!(alice.cursor_row(), "");
    assert_eq!(alice.stderr(), "");
}

#[test]
fn quit_exits_0() {
    let (_server, mut bob, mut alice) = alice_and_bob();
    alice.type_keys(&format!("/quit{ENTER}"));
    assert_eq!(alice.wait().code(), Some(0));
    bob.expect("alice has left");
    assert_eq!(alice.cursor().1, 0);
    assert_eq!(alice.cursor_row(), "");
}

/// The server's last frame says why it ends, then the client says the server is gone.
#[test]
fn the_client_says_why_it_ends() {
    let (listener, port) = fake_server();
    let mut alice = Tty::spawn(&["alice", "127.0.0.1", &port.to_string()]);
    let mut conn = accept(&listener);
    expect_login(&mut conn, "alice");
    alice.wait_for_row(&connected(port, "alice"));
    alice.type_keys("half");
    alice.wait_for_prompt("[Me] half", 9);
    conn.write_all(&padded("The server is shutting down."))
        .unwrap();
    drop(conn);
    assert_eq!(alice.wait().code(), Some(1));
    let rows = alice.rows();
    let at = rows
        .iter()
        .position(|r| r == "The server is shutting down.")
        .expect("the reason on screen");
    assert_eq!(
        rows[at + 1],
        format!("Server at 127.0.0.1:{port} has disconnected")
    );
    assert_eq!(alice.cursor_row(), "");
    assert_eq!(alice.cursor().1, 0);
}

/// A refused name: the refusal is shown and the client asks for another; frames that came
/// before the answer are shown after the connected line.
#[test]
fn a_refused_name_asks_for_another() {
    let server = common::ServerProc::start(&[]);
    let port = server.addr.port();
    let mut first = server.login("alice");
    first.send("/create room");
    first.sync("room");
    let mut alice = Tty::spawn(&["alice", "127.0.0.1", &port.to_string()]);
    alice.wait_for_row("Name alice is already in use. Send another name.");
    alice.wait_for_prompt("Name:", 6);
    alice.type_keys(&format!("alice2{ENTER}"));
    alice.wait_for_row(&connected(port, "alice2"));
    alice.wait_for_prompt("[Me]", 5);
    alice.type_keys(&format!("/join room{ENTER}"));
    first.expect("alice2 has joined");
    alice.type_keys(&format!("hi{ENTER}"));
    first.expect("[alice2] hi");
}
