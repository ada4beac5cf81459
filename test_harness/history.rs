//! End to end: private and offline messages, history and /search, registered names, and what
//! survives a restart or a `kill -9`, through the real server binary.

mod common;

use std::time::{Duration, Instant};

use chat::utils_errors as text;
use common::{unstamp, Peer, ServerProc, TempDir};

const QUIET: Duration = Duration::from_millis(300);

fn on_disk(dir: &TempDir, extra: &[&str]) -> ServerProc {
    let mut args = vec!["--data-dir", dir.arg()];
    args.extend_from_slice(extra);
    ServerProc::start(&args)
}

/// Logs in a registered name and identifies it; returns what followed the identification.
fn identify(server: &ServerProc, name: &str, password: &str) -> Peer {
    let mut p = server.login(name);
    p.expect(&text::registered_name_prompt(name, 60));
    p.send(&format!("/identify {password}"));
    p.expect(&text::identified(name));
    p
}

/// A round trip that proves the server handled everything this peer sent before.
fn settle(p: &mut Peer) {
    p.send("/time");
    assert!(p.recv().starts_with("Time is: "));
}

#[test]
fn private_and_offline_messages() {
    let server = ServerProc::start(&[]);
    let mut alice = server.login("Alice");
    let mut bob = server.login("Bob");
    settle(&mut bob);
    alice.send("/msg Bob hi Bob");
    bob.expect("[Alice -> Bob] hi Bob");
    alice.send("/msg Alice note to self");
    alice.expect("[Alice -> Alice] note to self");
    alice.send("/msg Nobody hello");
    alice.expect("No user named Nobody exists.");
    for bad in ["/msg", "/msg Bob"] {
        alice.send(bad);
        alice.expect("/msg command must be followed by a user name and a message.");
    }
    drop(bob);
    settle(&mut alice);
    alice.send("/msg Bob first while away");
    alice.expect("Bob is offline; the message will be delivered when Bob connects.");
    alice.send("/msg Bob second while away");
    alice.expect(&text::user_offline("Bob"));
    let mut bob = server.login("Bob");
    assert_eq!(
        unstamp(&bob.recv()),
        "You have 2 offline messages:\n(T) [Alice -> Bob] first while away\n(T) [Alice -> Bob] second while away"
    );
    // Delivered once: the next login finds nothing.
    settle(&mut bob);
    drop(bob);
    let mut bob = server.login("Bob");
    settle(&mut bob);
    bob.expect_silence(QUIET);
}

#[test]
fn search_finds_what_the_user_may_see() {
    let server = ServerProc::start(&[]);
    let mut alice = server.login("Alice");
    alice.send("/create room");
    alice.send("before Bob joined, the quick fox");
    let mut bob = server.login("Bob");
    bob.send("/join room");
    alice.expect("Bob has joined");
    alice.send("The QUICK brown fox!");
    bob.expect("[Alice] The QUICK brown fox!");
    bob.send("/search quick   FOX");
    assert_eq!(
        unstamp(&bob.recv()),
        "(T) [room] Alice: The QUICK brown fox!"
    );
    bob.send("/search quick cat");
    bob.expect("'quick cat' not found");
    bob.send("/search qui");
    bob.expect("'qui' not found");
    bob.send("/search");
    bob.expect("/search command must be followed by a term to search for.");
    alice.send("/search quick");
    assert_eq!(
        unstamp(&alice.recv()),
        "(T) [room] Alice: before Bob joined, the quick fox\n(T) [room] Alice: The QUICK brown fox!"
    );
    // Private messages: both ends see them, nobody else.
    let mut carol = server.login("Carol");
    alice.send("/msg Bob secret plans");
    bob.expect("[Alice -> Bob] secret plans");
    bob.send("/search plans");
    assert_eq!(unstamp(&bob.recv()), "(T) Alice -> Bob: secret plans");
    alice.send("/search secret");
    assert_eq!(unstamp(&alice.recv()), "(T) Alice -> Bob: secret plans");
    carol.send("/search secret plans");
    carol.expect("'secret plans' not found");
    // More than 20 matches: the 20 newest, oldest first, after a count.
    for i in 0..25 {
        alice.send(&format!("spam number {i}"));
    }
    for _ in 0..25 {
        bob.recv();
    }
    bob.send("/search spam");
    let mut lines: Vec<String> = Vec::new();
    while lines.len() < 21 {
        lines.extend(bob.recv().split('\n').map(unstamp));
    }
    assert_eq!(lines[0], "20 of 25 matches for 'spam':");
    assert_eq!(lines[1], "(T) [room] Alice: spam number 5");
    assert_eq!(lines[20], "(T) [room] Alice: spam number 24");
}

#[test]
fn privacy_of_history() {
    let server = ServerProc::start(&[]);
    let mut alice = server.login("Alice");
    alice.send("/create room");
    alice.send("early words");
    let mut bob = server.login("Bob");
    bob.send("/join room");
    alice.expect("Bob has joined");
    alice.send("middle words");
    bob.expect("[Alice] middle words");
    bob.send("/leave");
    alice.expect("Bob has left");
    alice.send("late words");
    alice.send("/msg Carol private words");
    alice.expect("No user named Carol exists.");
    settle(&mut alice);
    bob.send("/search words");
    assert_eq!(unstamp(&bob.recv()), "(T) [room] Alice: middle words");
    // A new connection under the unregistered name inherits nothing.
    drop(bob);
    settle(&mut alice);
    let mut bob = server.login("Bob");
    bob.send("/search words");
    bob.expect("'words' not found");
    // Someone else's private messages are never found.
    let mut carol = server.login("Carol");
    settle(&mut carol);
    alice.send("/msg Carol for carol only");
    carol.expect("[Alice -> Carol] for carol only");
    bob.send("/search carol");
    bob.expect("'carol' not found");
}

#[test]
fn registered_names() {
    let server = ServerProc::start(&["--identify-timeout", "1"]);
    let mut alice = server.login("Alice");
    alice.send("/register short");
    alice.expect("A password is 8 to 64 characters.");
    alice.send("/register correct horse");
    alice.expect("Name Alice is now registered.");
    alice.send("/register again please");
    alice.expect("Name Alice is already registered.");
    drop(alice);
    let mut sleepy = server.connect();
    sleepy.send("Alice");
    // Wait until the first connection is gone (its name is free again).
    let started = Instant::now();
    loop {
        let t = sleepy.recv();
        if t == text::registered_name_prompt("Alice", 1) {
            break;
        }
        assert_eq!(t, text::name_in_use("Alice"));
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
        sleepy.send("Alice");
    }
    for other in ["hello", "/join room", "/search x", "/msg Alice hi"] {
        sleepy.send(other);
        sleepy.expect("Send /identify PASSWORD first.");
    }
    // It does not identify in time: told why, then closed.
    assert_eq!(sleepy.expect_closed(), ["Alice did not identify in time."]);
    // Two wrong passwords, then the right one: identified, and the count starts again.
    let mut right = server.login("Alice");
    right.expect(&text::registered_name_prompt("Alice", 1));
    for _ in 0..2 {
        right.send("/identify wrong password");
        right.expect("Wrong password for Alice.");
    }
    right.send("/identify correct horse");
    right.expect("You are now identified as Alice.");
    std::thread::sleep(Duration::from_millis(1500));
    right.send("/identify correct horse");
    right.expect(&text::already_identified("Alice"));
    drop(right);
    // Three wrong in a row: the third closes the connection...
    let mut wrong = login_when_free(&server, "Alice", 1);
    for _ in 0..2 {
        wrong.send("/identify wrong password");
        wrong.expect("Wrong password for Alice.");
    }
    wrong.send("/identify wrong password");
    assert_eq!(wrong.expect_closed(), ["Wrong password for Alice."]);
    // ...and the name is locked out for 10 seconds, whatever connection asks: the password
    // is not even checked.
    let mut next = login_when_free(&server, "Alice", 1);
    next.send("/identify correct horse");
    let t = next.recv();
    assert!(
        t == text::locked_out("Alice", 10) || t == text::locked_out("Alice", 9),
        "{t:?}"
    );
}

/// Logs in with a registered name once its last connection is gone (name in use until then).
fn login_when_free(server: &ServerProc, name: &str, secs: u64) -> common::Peer {
    let started = Instant::now();
    loop {
        let mut p = server.login(name);
        let t = p.recv();
        if t == text::registered_name_prompt(name, secs) {
            return p;
        }
        assert_eq!(t, text::name_in_use(name));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} never free"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn offline_messages_for_a_registered_name_wait_for_identification() {
    let server = ServerProc::start(&[]);
    let mut reg = server.login("Reg");
    reg.send("/register long enough");
    reg.expect(&text::now_registered("Reg"));
    drop(reg);
    let mut alice = server.login("Alice");
    settle(&mut alice);
    std::thread::sleep(Duration::from_millis(100));
    alice.send("/msg Reg while you were out");
    alice.expect(&text::user_offline("Reg"));
    let mut reg = server.login("Reg");
    reg.expect(&text::registered_name_prompt("Reg", 60));
    reg.expect_silence(QUIET);
    reg.send("/identify long enough");
    reg.expect("You are now identified as Reg.");
    assert_eq!(
        unstamp(&reg.recv()),
        "You have 1 offline message:\n(T) [Alice -> Reg] while you were out"
    );
}

#[test]
fn the_client_identifies_itself_with_chat_password() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let server = ServerProc::start(&[]);
    let mut reg = server.login("Scott");
    reg.send("/register tiger tiger");
    reg.expect(&text::now_registered("Scott"));
    drop(reg);
    std::thread::sleep(Duration::from_millis(200));
    let mut client = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["Scott", "127.0.0.1", &server.addr.port().to_string()])
        .env("CHAT_PASSWORD", "tiger tiger")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the client");
    let stdout = client.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
            line.clear();
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen
        .iter()
        .any(|l: &String| l.contains("You are now identified as Scott."))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line.replace("[Me]", "").trim().to_string()),
            Err(_) => panic!("the client did not identify; it printed {seen:?}"),
        }
    }
    assert_eq!(seen[0], text::registered_name_prompt("Scott", 60));
    let stdin = client.stdin.as_mut().unwrap();
    writeln!(stdin, "/create ok").unwrap();
    drop(client.stdin.take());
    assert!(client.wait().unwrap().success());
}

#[test]
fn everything_survives_a_clean_restart() {
    let dir = TempDir::new("restart");
    let server = on_disk(&dir, &[]);
    let mut alice = server.login("Alice");
    alice.send("/register remember me");
    alice.expect(&text::now_registered("Alice"));
    alice.send("/create room");
    alice.send("a message worth keeping");
    let mut bob = server.login("Bob");
    settle(&mut bob);
    drop(bob);
    settle(&mut alice);
    alice.send("/msg Bob kept for Bob");
    alice.expect(&text::user_offline("Bob"));
    assert!(server.terminate().success());

    let server = on_disk(&dir, &[]);
    let mut alice = identify(&server, "Alice", "remember me");
    alice.send("/search worth keeping");
    assert_eq!(
        unstamp(&alice.recv()),
        "(T) [room] Alice: a message worth keeping"
    );
    let mut bob = server.login("Bob");
    assert_eq!(
        unstamp(&bob.recv()),
        "You have 1 offline message:\n(T) [Alice -> Bob] kept for Bob"
    );
    // Channels survive a restart, in creation order (nobody is in them).
    bob.send("/list");
    bob.expect("room");
}

#[test]
fn kill_9_loses_nothing_relayed_more_than_100_ms_before() {
    let dir = TempDir::new("kill9");
    let server = on_disk(&dir, &[]);
    let mut alice = server.login("Alice");
    alice.send("/register survive the kill");
    alice.expect(&text::now_registered("Alice"));
    alice.send("/create room");
    let mut bob = server.login("Bob");
    bob.send("/join room");
    alice.expect("Bob has joined");
    // An offline message for Carol, confirmed before the kill.
    let mut carol = server.login("Carol");
    settle(&mut carol);
    drop(carol);
    settle(&mut alice);
    alice.send("/msg Carol confirmed before the kill");
    alice.expect(&text::user_offline("Carol"));
    let confirmed_at = Instant::now();
    // A stream of messages; note when each was relayed, and kill in the middle.
    let mut relayed = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(600) {
        alice.send(&format!("stream word{i:04} payload"));
        assert_eq!(bob.recv(), format!("[Alice] stream word{i:04} payload"));
        relayed.push((i, Instant::now()));
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed_at = Instant::now();
    server.kill9();
    assert!(killed_at.duration_since(confirmed_at) > Duration::from_millis(100));
    let old_enough: Vec<usize> = relayed
        .iter()
        .filter(|(_, t)| killed_at.duration_since(*t) > Duration::from_millis(100))
        .map(|(i, _)| *i)
        .collect();
    assert!(
        old_enough.len() > 20,
        "only {} messages in the stream",
        old_enough.len()
    );

    let server = on_disk(&dir, &[]);
    let mut alice = identify(&server, "Alice", "survive the kill");
    for i in old_enough {
        alice.send(&format!("/search word{i:04}"));
        assert_eq!(
            unstamp(&alice.recv()),
            format!("(T) [room] Alice: stream word{i:04} payload"),
            "message {i} was lost"
        );
    }
    let mut carol = server.login("Carol");
    assert_eq!(
        unstamp(&carol.recv()),
        "You have 1 offline message:\n(T) [Alice -> Carol] confirmed before the kill"
    );
}

#[test]
fn password_hashing_does_not_stall_other_clients() {
    let server = ServerProc::start(&[]);
    let mut alice = server.login("Alice");
    alice.send("/create room");
    let mut bob = server.login("Bob");
    bob.send("/join room");
    alice.expect("Bob has joined");
    // Twelve registrations: a dozen slow hashes queued on the storage side.
    let mut hashers: Vec<Peer> = (0..12).map(|i| server.login(&format!("h{i}"))).collect();
    for h in &mut hashers {
        settle(h);
    }
    let started = Instant::now();
    for h in &mut hashers {
        h.send("/register a long password");
    }
    // Meanwhile Alice and Bob chat; each round trip is timed. A registration is done when its
    // 200-byte reply has arrived.
    let mut worst = Duration::ZERO;
    let mut rounds = 0;
    let mut got = vec![0usize; hashers.len()];
    for h in &mut hashers {
        h.stream.set_nonblocking(true).unwrap();
    }
    while got.iter().any(|&n| n < 200) {
        let sent = Instant::now();
        alice.send(&format!("ping {rounds}"));
        assert_eq!(bob.recv(), format!("[Alice] ping {rounds}"));
        worst = worst.max(sent.elapsed());
        rounds += 1;
        for (h, n) in hashers.iter_mut().zip(got.iter_mut()) {
            let mut buf = [0u8; 200];
            if *n < 200 {
                if let Ok(k) = std::io::Read::read(&mut h.stream, &mut buf[..200 - *n]) {
                    *n += k;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "registrations never finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let hashing = started.elapsed();
    eprintln!("{rounds} round trips during {hashing:?} of hashing; the slowest took {worst:?}");
    // The hashes took a while; no chat round trip waited for them (a generous bound).
    assert!(rounds > 3, "only {rounds} round trips during {hashing:?}");
    assert!(
        worst < hashing / 2,
        "a round trip took {worst:?} while hashing took {hashing:?}"
    );
}
