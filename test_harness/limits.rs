//! The open-file limit, end to end: the server raises its soft limit to the hard one, tells the
//! operator when that is too low for `--max-clients`, and answers connections past it with the
//! server-full text instead of failing (the benchmark holds 19,000 clients under a hard limit of
//! 20,000 this way).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use chat::utils_errors as text;
use common::Peer;

/// The server under a hard limit of `nofile` open files, with its stderr collected.
struct Limited {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Limited {
    fn start(nofile: u32, max_clients: u32) -> Limited {
        let script = format!("ulimit -n {nofile} && exec \"$0\" \"$@\"");
        let mut child = Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_server")])
            .args(["0", "--bind", "127.0.0.1", "--ephemeral", "--max-clients"])
            .arg(max_clients.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server under sh");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server printed its address");
        let addr = line
            .split_whitespace()
            .last()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let mut err = child.stderr.take().expect("stderr");
        let (etx, erx) = mpsc::channel();
        thread::spawn(move || {
            let mut all = String::new();
            let _ = err.read_to_string(&mut all);
            let _ = etx.send(all);
        });
        Limited {
            child,
            addr,
            stderr: erx,
        }
    }

    /// Stops the server and returns what it logged.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .recv_timeout(Duration::from_secs(10))
            .expect("the server's stderr")
    }
}

impl Drop for Limited {
    /// A failing test must not leave the server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server made of a connection that has sent nothing yet: a refused one has the
/// server-full text and the end of the stream waiting; an admitted one has nothing.
fn refused(p: &mut Peer) -> bool {
    p.stream.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let waiting = matches!(p.stream.peek(&mut byte), Ok(n) if n > 0);
    p.stream.set_nonblocking(false).expect("blocking");
    if waiting {
        assert_eq!(p.expect_closed(), [text::SERVER_FULL]);
    }
    waiting
}

/// Logs in and proves membership: an unknown command gets its error reply.
fn probe(p: &mut Peer, name: &str) {
    let mut both = common::frame(name);
    both.extend(common::frame("/probe"));
    p.send_raw(&both);
    assert_eq!(p.recv(), text::invalid_control_message("/probe"), "{name}");
}

#[test]
fn past_the_open_file_limit_new_connections_get_the_server_full_text() {
    // 64 descriptors: the server's own (listener, poll, signals, waker, spare, stdio) leave
    // room for about 50 clients, far below --max-clients 1000.
    let server = Limited::start(64, 1000);
    // Connect without writing (so a refusal is a clean close, never a reset), then look.
    let mut peers: Vec<Peer> = (0..80).map(|_| Peer::connect(server.addr)).collect();
    thread::sleep(Duration::from_millis(500));
    let mut admitted = Vec::new();
    for (i, mut p) in peers.drain(..).enumerate() {
        if refused(&mut p) {
            continue;
        }
        assert_eq!(admitted.len(), i, "client {i} admitted after a refusal");
        probe(&mut p, &format!("user{i}"));
        admitted.push(p);
    }
    assert!(
        (30..64).contains(&admitted.len()),
        "{} admitted",
        admitted.len()
    );

    // The members still talk, and a freed descriptor admits a new client.
    admitted[0].send("/create room");
    admitted[1].send("/join room");
    admitted[0].expect("user1 has joined");
    admitted[1].send("still here");
    admitted[0].expect("[user1] still here");
    drop(admitted.pop());
    let mut late_admitted = false;
    for attempt in 0..50 {
        // The server notices the close on its own time: retry a few times.
        let mut late = Peer::connect(server.addr);
        thread::sleep(Duration::from_millis(50));
        if !refused(&mut late) {
            probe(&mut late, &format!("late{attempt}"));
            late_admitted = true;
            break;
        }
    }
    assert!(late_admitted, "no descriptor came back after a client left");

    let log = server.stop();
    assert!(
        log.contains("the open-file limit (64) is too low for --max-clients 1000"),
        "{log}"
    );
}
