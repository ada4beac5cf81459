//! Shared end-to-end helpers: start the real server binary on an ephemeral port and talk to it
//! with raw sockets. Every read has a timeout, so a missing reply fails fast.
#![allow(dead_code)]

pub mod certs;
pub mod postgres;
pub mod redis;
pub mod sonnet_files;
pub mod tools;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const FRAME: usize = 200;
/// How long a test waits for a frame it expects.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pads a text into one frame.
pub fn frame(text: &str) -> Vec<u8> {
    let mut f = text.as_bytes().to_vec();
    assert!(f.len() <= FRAME, "test text longer than a frame");
    f.resize(FRAME, b' ');
    f
}

/// The real server binary, running on 127.0.0.1 and a free port.
pub struct ServerProc {
    child: Child,
    pub addr: SocketAddr,
    /// What the server logged, when started with [`ServerProc::start_logged`].
    log: Option<std::sync::Arc<std::sync::Mutex<String>>>,
    /// Every `Listening …` line: its label (`""` for the plain frame port, `TLS`, `web`,
    /// `IRC`…) and address.
    pub listening: Vec<(String, SocketAddr)>,
}

/// How many `Listening` lines a server started with these arguments prints.
fn listeners_in(args: &[&str]) -> usize {
    let ports = ["--tls-port", "--web-port", "--irc-port", "--irc-tls-port"];
    let extra = args
        .iter()
        .filter(|a| {
            ports
                .iter()
                .any(|p| a == &p || a.starts_with(&format!("{p}=")))
        })
        .count();
    extra + usize::from(!args.contains(&"--no-plain"))
}

impl ServerProc {
    /// Starts `server 0 --bind 127.0.0.1 ARGS…` and waits for its `Listening on` line. Storage
    /// is in memory (`--ephemeral`) unless ARGS name a `--data-dir`.
    pub fn start(args: &[&str]) -> ServerProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
        cmd.args(["0", "--bind", "127.0.0.1"]).args(args);
        if !args.contains(&"--data-dir") {
            cmd.arg("--ephemeral");
        }
        Self::spawn_n(cmd, listeners_in(args))
    }

    /// Like [`ServerProc::start`], with the server's log (info and up) collected; see
    /// [`ServerProc::log`].
    pub fn start_logged(args: &[&str]) -> ServerProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
        cmd.args(["0", "--bind", "127.0.0.1"]).args(args);
        if !args.contains(&"--data-dir") {
            cmd.arg("--ephemeral");
        }
        Self::spawn_logged(cmd, listeners_in(args))
    }

    /// Starts a prepared server command with its stderr collected; it prints `lines`
    /// `Listening` lines.
    pub fn spawn_logged(cmd: Command, lines: usize) -> ServerProc {
        Self::spawn_logged_at(cmd, lines, "info")
    }

    /// [`ServerProc::spawn_logged`] at the log level `level` (`RUST_LOG`'s value).
    pub fn spawn_logged_at(mut cmd: Command, lines: usize, level: &str) -> ServerProc {
        cmd.env("RUST_LOG", level).stderr(Stdio::piped());
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("server stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut server = Self::wait_listening(child, lines);
        server.log = Some(log);
        server
    }

    /// The address of the listener with this label (`""`, `TLS`, `web`, `IRC`…).
    pub fn addr_of(&self, label: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {label:?} listener in {:?}", self.listening))
    }

    /// What the server has logged so far (started with [`ServerProc::start_logged`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|l| l.lock().ok().map(|l| l.clone()))
            .unwrap_or_default()
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill() with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Waits (bounded) for the server to exit.
    pub fn wait_exit(mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) for the server to exit, then returns what it logged (started with
    /// [`ServerProc::start_logged`] or [`ServerProc::spawn_logged_at`]), to its last line.
    pub fn wait_exit_logged(self, within: Duration) -> (ExitStatus, String) {
        let log = self.log.clone();
        let status = self.wait_exit(within);
        // The reader thread sees the end of the pipe just after the exit.
        std::thread::sleep(Duration::from_millis(200));
        let text = log
            .and_then(|l| l.lock().ok().map(|l| l.clone()))
            .unwrap_or_default();
        (status, text)
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// Starts a prepared server command (stdout piped, stderr per TEST_SERVER_LOG) that
    /// listens on its plain frame port only.
    pub fn spawn(cmd: Command) -> ServerProc {
        Self::spawn_n(cmd, 1)
    }

    /// Starts a prepared server command that prints `lines` `Listening` lines.
    pub fn spawn_n(mut cmd: Command, lines: usize) -> ServerProc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        if std::env::var_os("TEST_SERVER_LOG").is_some() {
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.env("RUST_LOG", "off").stderr(Stdio::null());
        }
        let child = cmd.spawn().expect("start the server binary");
        Self::wait_listening(child, lines)
    }

    /// Waits for a started server's `Listening` lines.
    fn wait_listening(mut child: Child, lines: usize) -> ServerProc {
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            for _ in 0..lines {
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
            }
            // Anything more on stdout is a defect: report it through another message.
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            let _ = tx.send(rest);
        });
        let mut listening = Vec::new();
        for _ in 0..lines {
            let line = match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("the server printed no address within 10 s");
                }
            };
            let (label, rest) = if let Some(rest) = line.strip_prefix("Listening on ") {
                ("", rest)
            } else if let Some(rest) = line.strip_prefix("Listening for ") {
                let (label, addr) = rest
                    .split_once(" on ")
                    .unwrap_or_else(|| panic!("stdout line: {line:?}"));
                (label, addr)
            } else {
                let _ = child.kill();
                panic!("stdout line: {line:?}");
            };
            let addr: SocketAddr = rest
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("no address in {line:?}"));
            listening.push((label.to_string(), addr));
        }
        let addr = listening[0].1;
        ServerProc {
            child,
            addr,
            log: None,
            listening,
        }
    }

    /// A raw connection to the server.
    pub fn connect(&self) -> Peer {
        Peer::connect(self.addr)
    }

    /// A raw connection that has logged in as `name`.
    pub fn login(&self, name: &str) -> Peer {
        let mut p = self.connect();
        p.send(name);
        p
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: kill() with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw TCP peer speaking 200-byte frames.
pub struct Peer {
    pub stream: TcpStream,
}

impl Peer {
    pub fn connect(addr: SocketAddr) -> Peer {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream.set_nodelay(true).expect("nodelay");
        Peer { stream }
    }

    /// Sends one padded frame.
    pub fn send(&mut self, text: &str) {
        self.send_raw(&frame(text));
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Reads one whole raw frame, or None if the server closed the connection; panics if
    /// nothing arrives within `timeout`.
    pub fn recv_raw_within(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; FRAME];
        let mut got = 0;
        while got < FRAME {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no frame from the server within {timeout:?} ({got} bytes of one)"
            );
            self.stream
                .set_read_timeout(Some(left))
                .expect("read timeout");
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => {
                    assert_eq!(got, 0, "the server closed the connection in mid-frame");
                    return None;
                }
                Ok(n) => got += n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("no frame from the server within {timeout:?} ({got} bytes of one)")
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from the server: {e}"),
            }
        }
        Some(buf)
    }

    /// Reads one frame's text (padding stripped); panics on timeout or close.
    pub fn recv(&mut self) -> String {
        let raw = self
            .recv_raw_within(REPLY_TIMEOUT)
            .expect("the server closed the connection");
        strip(&raw)
    }

    /// Reads frames until `n` have arrived.
    pub fn recv_n(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.recv()).collect()
    }

    /// Asserts the next frame is exactly `text`.
    pub fn expect(&mut self, text: &str) {
        assert_eq!(self.recv(), text);
    }

    /// Asserts that nothing arrives for `quiet` (the server sends no frame).
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.stream
            .set_read_timeout(Some(quiet))
            .expect("read timeout");
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => {
                let mut rest = vec![0u8; FRAME - 1];
                let _ = self.stream.read(&mut rest);
                panic!(
                    "expected no frame, got {:?}",
                    String::from_utf8_lossy(&[&byte[..], &rest[..]].concat()).trim_end()
                );
            }
            Err(_) => {}
        }
    }

    /// Asserts the server closes the connection (after any frames it sends first, returned).
    pub fn expect_closed(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        for _ in 0..10_000 {
            match self.recv_raw_within(REPLY_TIMEOUT) {
                Some(raw) => frames.push(strip(&raw)),
                None => return frames,
            }
        }
        panic!("the server kept sending and never closed");
    }

    /// A round trip that proves every earlier frame of this peer was handled: `/list` always
    /// answers when at least one channel exists, so callers use it after creating one.
    pub fn sync(&mut self, marker_channel: &str) {
        self.send("/list");
        let text = self.recv();
        assert!(
            text.lines().any(|l| l == marker_channel),
            "sync got {text:?}"
        );
    }
}

/// Strips the padding the way the protocol says: trailing whitespace and NUL bytes.
pub fn strip(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0))
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl ServerProc {
    /// Kills the server with SIGKILL (no chance to flush or close anything) and waits for it.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the server");
        let _ = self.child.wait();
    }
}

/// A directory under the system temp folder, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("chat-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces every `(dd.mm.yy,HH:MM)` stamp with `(T)`, after checking its shape.
pub fn unstamp(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('(') {
        out.push_str(&rest[..i]);
        let candidate = &rest[i..];
        let stamp = candidate.get(..16);
        let is_stamp = stamp.is_some_and(|s| {
            s.bytes().enumerate().all(|(k, b)| match k {
                0 => b == b'(',
                3 | 6 => b == b'.',
                9 => b == b',',
                12 => b == b':',
                15 => b == b')',
                _ => b.is_ascii_digit(),
            })
        });
        if is_stamp {
            out.push_str("(T)");
            rest = &candidate[16..];
        } else {
            out.push('(');
            rest = &candidate[1..];
        }
    }
    out.push_str(rest);
    out
}
