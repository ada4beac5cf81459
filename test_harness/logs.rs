//! End to end: what the server tells its operator on stderr (issue 10). One connection id
//! from `accepted` to `closed`; `logged in` only once a registered name has identified; signals
//! by name; a clean stop leaves nothing for the next start to repair; a debug line per command
//! at `RUST_LOG=debug`; a port in use said once, with the way out.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use chat::utils_errors as text;
use common::{Peer, ServerProc, TempDir};

fn on_disk(dir: &TempDir, level: &str) -> ServerProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.args(["0", "--bind", "127.0.0.1", "--data-dir"])
        .arg(dir.arg());
    ServerProc::spawn_logged_at(cmd, 1, level)
}

/// The connection id a line about `what` names (`conn 7: …what…`).
fn conn_of<'l>(log: &'l str, what: &str) -> &'l str {
    let line = log
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in the log:\n{log}"));
    let at = line.find("conn ").expect("a conn label");
    let rest = &line[at..];
    &rest[..rest.find(':').expect("conn N:")]
}

/// The log once it says `what` (the server writes it as it goes; the test reads it from a
/// pipe a moment later).
fn log_saying(server: &ServerProc, what: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.log();
        if log.contains(what) || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn round_trip(p: &mut Peer) {
    p.send("/time");
    assert!(p.recv().starts_with("Time is: "));
}

#[test]
fn one_connection_one_id_and_logged_in_only_once_identified() {
    let dir = TempDir::new("logs");
    let server = on_disk(&dir, "debug");
    let mut alice = server.login("Alice");
    alice.send("/register secretpassword");
    assert_eq!(alice.recv(), text::now_registered("Alice"));
    drop(alice);
    let mut again = server.connect();
    again.send("Alice");
    assert!(again
        .recv()
        .starts_with(&text::registered_name_prompt_start("Alice")));
    let log = log_saying(&server, "must identify");
    // The second connection has logged in under a registered name, and not identified.
    let second = conn_of(&log, "must identify");
    assert!(
        !log.lines()
            .any(|l| l.contains(&format!("{second}: logged in"))),
        "{second} is said to be logged in before identifying:\n{log}"
    );
    again.send("/identify secretpassword");
    assert_eq!(again.recv(), text::identified("Alice"));
    round_trip(&mut again);
    let log = log_saying(&server, ": /time");
    assert!(
        log.contains(&format!("{second}: logged in as Alice (identified)")),
        "{log}"
    );
    // The first connection: the same id from its accept to its close.
    let first = conn_of(&log, "logged in as Alice");
    for what in [
        "accepted from",
        "registered Alice",
        "Alice disconnected",
        "closed",
    ] {
        assert!(
            log.lines().any(|l| l.contains(&format!("{first}: {what}"))),
            "no `{first}: {what}` in the log:\n{log}"
        );
    }
    assert_ne!(first, second);
    // A debug line per command, with the connection's id and the command word only (never a
    // password).
    for command in ["/register", "/identify", "/time"] {
        assert!(
            log.lines()
                .any(|l| l.contains(" DEBUG ") && l.ends_with(&format!(": {command}"))),
            "no debug line for {command}:\n{log}"
        );
    }
    assert!(
        !log.contains("secretpassword"),
        "a password in the log:\n{log}"
    );
}

#[test]
fn signals_by_name_and_a_clean_stop_leaves_nothing_to_repair() {
    let dir = TempDir::new("logs-stop");
    let server = on_disk(&dir, "debug");
    let mut alice = server.login("Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = server.login("Kay");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    kay.send("hello");
    alice.expect("[Kay] hello");
    server.signal(libc::SIGTERM);
    let (status, log) = server.wait_exit_logged(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(log.contains("SIGTERM: no longer accepting"), "{log}");
    assert!(!log.contains("signal 15"), "{log}");
    // The next start finds every membership closed by the stop itself.
    let server = on_disk(&dir, "debug");
    let mut bob = server.login("Bob");
    round_trip(&mut bob);
    server.signal(libc::SIGINT);
    let (status, log) = server.wait_exit_logged(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(!log.contains("left open"), "{log}");
    assert!(log.contains("SIGINT: no longer accepting"), "{log}");
}

#[test]
fn a_port_in_use_is_said_once_with_the_way_out() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args([&port, "--bind", "127.0.0.1", "--ephemeral"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("Address already in use"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && said[0].contains("`server 0` takes a free one"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}
