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

/// True when the peer is a member of the server: an unknown command gets its error reply. A
/// refused peer gets the server-full text and the end of the connection instead.
fn admitted(p: &mut Peer, name: &str) -> bool {
    p.send(name);
    p.send("/probe");
    match p.recv_raw_within(common::REPLY_TIMEOUT) {
        Some(raw) => {
            let got = common::strip(&raw);
            if got == text::SERVER_FULL {
                assert_eq!(p.expect_closed(), Vec::<String>::new());
                false
            } else {
                assert_eq!(got, text::invalid_control_message("/probe"));
                true
            }
        }
        None => panic!("{name}: closed without the server-full text"),
    }
}

#[test]
fn past_the_open_file_limit_new_connections_get_the_server_full_text() {
    // 64 descriptors: the server's own (listener, poll, signals, waker, spare, stdio) leave
    // room for about 50 clients, far below --max-clients 1000.
    let server = Limited::start(64, 1000);
    let mut peers = Vec::new();
    let mut admitted_count = 0;
    let mut refused = 0;
    for i in 0..80 {
        let mut p = Peer::connect(server.addr);
        if admitted(&mut p, &format!("user{i}")) {
            assert_eq!(refused, 0, "user{i} admitted after a refusal");
            admitted_count += 1;
            peers.push(p);
        } else {
            refused += 1;
        }
    }
    assert!(
        (30..64).contains(&admitted_count),
        "{admitted_count} admitted"
    );
    assert_eq!(admitted_count + refused, 80);

    // The members still talk, and a freed descriptor admits a new client.
    peers[0].send("/create room");
    peers[1].send("/join room");
    peers[0].expect("user1 has joined");
    peers[1].send("still here");
    peers[0].expect("[user1] still here");
    drop(peers.pop());
    let mut late_admitted = false;
    for attempt in 0..50 {
        // The server notices the close on its own time: retry a few times.
        let mut late = Peer::connect(server.addr);
        if admitted(&mut late, &format!("late{attempt}")) {
            late_admitted = true;
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(late_admitted, "no descriptor came back after a client left");

    let log = server.stop();
    assert!(
        log.contains("the open-file limit (64) is too low for --max-clients 1000"),
        "{log}"
    );
}
