//! What the client's end-to-end tests share: the `client` binary run with piped stdin and
//! stdout, and a fake server written here (std sockets, every read with a timeout).
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long any expected event may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// A frame as the client must send it: the text right-padded with spaces to 200 bytes.
pub fn padded(text: &str) -> Vec<u8> {
    assert!(text.len() <= 200, "test frame too long");
    format!("{text:<200}").into_bytes()
}

/// A listening fake server on an ephemeral port.
pub fn fake_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    (listener, port)
}

/// Accepts the client's connection, failing after [`TIMEOUT`].
pub fn accept(listener: &TcpListener) -> TcpStream {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("the client did not connect: {e}"),
        }
    }
}

/// Reads one whole frame from the client and checks it is exactly `text` padded.
pub fn expect_frame(stream: &mut TcpStream, text: &str) {
    let mut frame = [0u8; 200];
    stream
        .read_exact(&mut frame)
        .expect("a frame from the client");
    assert_eq!(
        String::from_utf8_lossy(&frame),
        String::from_utf8_lossy(&padded(text))
    );
}

/// What the fake server answers to the client's login probe: the answer a logged-in client
/// gets for `/time now`.
pub const PROBE_ANSWER: &str = "Time is: 21.11.26,22:43";

/// Reads the client's login: NAME, then the probe `/time now`; answers the probe as a server
/// that took the name would. The answer is never shown.
pub fn expect_login(stream: &mut TcpStream, name: &str) {
    expect_frame(stream, name);
    expect_frame(stream, "/time now");
    stream.write_all(&padded(PROBE_ANSWER)).unwrap();
}

/// Checks that the client closed its side (a read returns 0) with nothing more sent.
pub fn expect_eof(stream: &mut TcpStream) {
    let mut buf = [0u8; 200];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "unexpected bytes instead of EOF: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("no EOF from the client: {e}"),
    }
}

/// A running `client` process with piped stdin and stdout.
pub struct Client {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Receiver<Vec<u8>>,
    pub seen: Vec<u8>,
    pub stdout_closed: bool,
    /// Where the grader-style reads ([`Client::expect_step`]) start.
    pub mark: usize,
    pub stderr: Option<thread::JoinHandle<String>>,
}

impl Client {
    pub fn spawn(name: &str, port: u16, password: Option<&str>) -> Client {
        Client::spawn_args(&[name, "127.0.0.1", &port.to_string()], password)
    }

    pub fn spawn_args(args: &[&str], password: Option<&str>) -> Client {
        let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("CHAT_PASSWORD");
        if let Some(password) = password {
            command.env("CHAT_PASSWORD", password);
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Client {
            child,
            stdin,
            stdout: rx,
            seen: Vec::new(),
            stdout_closed: false,
            mark: 0,
            stderr: Some(stderr),
        }
    }

    /// Everything the client wrote on stderr (call after [`Client::wait`]).
    pub fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .expect("stderr read once")
            .join()
            .unwrap()
    }

    /// The client's peak resident memory so far, in kB (VmHWM).
    pub fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    pub fn type_text(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Types `text` into a client that may already have exited (a refused name ends it at
    /// once): a closed pipe then means the text went nowhere, which is what such tests check.
    pub fn type_text_unless_gone(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        let written = stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush());
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("typing into the client: {e}"),
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (bounded) until stdout holds at least `expected`'s length, then compares exactly.
    /// `expected` is everything the client has written since it started.
    pub fn expect_stdout(&mut self, expected: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while self.seen.len() < expected.len() && !self.stdout_closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.stdout_closed = true,
            }
        }
        assert_eq!(String::from_utf8_lossy(&self.seen), expected);
    }

    /// Reads stdout the way the course grader does: what arrived since the last step, through
    /// the pipe with a 1 s timeout, compared after dropping the prompts and wipes and trimming.
    pub fn expect_step(&mut self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let new = grader_view(&self.seen[self.mark..]);
            let left = deadline.saturating_duration_since(Instant::now());
            if new == expected || left.is_zero() || self.stdout_closed {
                assert_eq!(new, expected);
                break;
            }
            match self.stdout.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stdout_closed = true,
            }
        }
        self.mark = self.seen.len();
    }

    /// Checks that nothing more arrives on stdout for `quiet`.
    pub fn expect_no_more_stdout(&mut self, quiet: Duration) {
        if let Ok(chunk) = self.stdout.recv_timeout(quiet) {
            panic!("unexpected output: {:?}", String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits (bounded) for the process to exit and collects all its stdout.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the client did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        // Collect the rest of stdout: the pipe must close now that the process is gone.
        let deadline = Instant::now() + TIMEOUT;
        while !self.stdout_closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Disconnected) => self.stdout_closed = true,
                Err(RecvTimeoutError::Timeout) => panic!("stdout still open after exit"),
            }
        }
        status
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A failed test must not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `output.replace('[Me]', '').strip()`, after removing the `\r    \r` wipes.
pub fn grader_view(output: &[u8]) -> String {
    String::from_utf8_lossy(output)
        .replace("\r    \r", "")
        .replace("[Me]", "")
        .trim()
        .to_string()
}
