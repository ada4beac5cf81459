//! End to end: the real server binary, driven with raw sockets.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use chat::utils_errors as text;
use common::{frame, Peer, ServerProc, TempDir};

const QUIET: Duration = Duration::from_millis(300);

/// Alice creates `tas` and Kay joins it.
fn pair(server: &ServerProc) -> (Peer, Peer) {
    let mut alice = server.login("Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = server.login("Kay");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    (alice, kay)
}

#[test]
fn section_3_table_end_to_end() {
    let server = ServerProc::start(&[]);
    let mut alice = server.login("Alice");
    // Chat in no channel; /list with no channels sends nothing.
    alice.send("hello");
    alice.expect(text::NOT_IN_CHANNEL);
    alice.send("/list");
    alice.expect_silence(QUIET);
    alice.send("/join");
    alice.expect("/join command must be followed by the name of a channel to join.");
    alice.send("/join tas");
    alice.expect("No channel named tas exists. Try '/create tas'?");
    alice.send("/create");
    alice.expect("/create command must be followed by the name of a channel to create");
    alice.send("/create tas");
    alice.send("/create tas");
    alice.expect("Room tas already exists, so cannot be created.");
    alice.send(&format!("/create {}", "x".repeat(65)));
    alice.expect("Channel names are at most 64 characters.");
    alice.send("/joinx tas");
    alice.expect(
        "/joinx is not a valid control message. Valid messages are /create, /list, and /join.",
    );
    alice.send("/create b-room");
    alice.send("/list");
    alice.expect("tas\nb-room");

    let mut kay = server.login("Kay");
    kay.send("/join tas");
    // Alice is in b-room now: nothing for her; Kay is silent too.
    kay.send("Hi!");
    kay.send("/join b-room");
    alice.expect("Kay has joined");
    kay.send("Hi!");
    alice.expect("[Kay] Hi!");
    alice.send("Hello!");
    kay.expect("[Alice] Hello!");
    // Joining the channel one is in: nothing at all.
    kay.send("/join b-room");
    kay.send("/create third");
    alice.expect("Kay has left");
    kay.sync("third");
    alice.expect_silence(QUIET);
}

#[test]
fn names_are_checked_and_login_is_silent() {
    let server = ServerProc::start(&[]);
    let mut a = server.connect();
    a.send("has space");
    a.expect("Invalid name has space: a name is 1 to 32 characters without spaces.");
    a.send(&"n".repeat(33));
    a.expect(&text::invalid_name(&"n".repeat(33)));
    a.send("Alice");
    a.expect_silence(QUIET);
    let mut b = server.connect();
    b.send("Alice");
    b.expect("Name Alice is already in use. Send another name.");
    b.send("Bob");
    b.expect_silence(QUIET);
    // The name is free again once its owner is gone.
    drop(a);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = server.connect();
    c.send("Alice");
    c.send("/create x");
    c.sync("x");
}

#[test]
fn leaving_by_disconnect_is_announced() {
    let server = ServerProc::start(&[]);
    let (mut alice, kay) = pair(&server);
    drop(kay);
    alice.expect("Kay has left");
}

#[test]
fn partial_frames_one_byte_at_a_time_and_a_pause() {
    let server = ServerProc::start(&[]);
    let (mut alice, mut kay) = pair(&server);
    let f = frame("byte by byte");
    for b in &f {
        kay.send_raw(std::slice::from_ref(b));
    }
    alice.expect("[Kay] byte by byte");
    let f = frame("paused in the middle");
    kay.send_raw(&f[..77]);
    alice.expect_silence(QUIET);
    kay.send_raw(&f[77..]);
    alice.expect("[Kay] paused in the middle");
}

#[test]
fn coalesced_frames_and_a_part_in_one_write() {
    let server = ServerProc::start(&[]);
    let (mut alice, mut kay) = pair(&server);
    let mut bytes = Vec::new();
    for t in ["one", "two", "three", "four"] {
        bytes.extend_from_slice(&frame(t));
    }
    let last = frame("five");
    bytes.extend_from_slice(&last[..120]);
    kay.send_raw(&bytes);
    assert_eq!(
        alice.recv_n(4),
        ["[Kay] one", "[Kay] two", "[Kay] three", "[Kay] four"]
    );
    alice.expect_silence(QUIET);
    kay.send_raw(&last[120..]);
    alice.expect("[Kay] five");
}

#[test]
fn invalid_utf8_nul_and_control_characters() {
    let server = ServerProc::start(&[]);
    let (mut alice, mut kay) = pair(&server);
    let mut f = frame("");
    f[..7].copy_from_slice(b"bad\xff\xfeok");
    kay.send_raw(&f);
    alice.expect("[Kay] bad\u{fffd}\u{fffd}ok");
    let mut f = frame("");
    f[..9].copy_from_slice(b"nul\0in\0it");
    kay.send_raw(&f);
    alice.expect("[Kay] nulinit");
    kay.send("\x1b[2J\x1b[31mred\r\nfake line\x07");
    alice.expect("[Kay] [2J[31mredfake line");
    // All NUL: an empty frame, ignored; the connection stays up.
    kay.send_raw(&[0u8; 200]);
    alice.expect_silence(QUIET);
    kay.send("still here");
    alice.expect("[Kay] still here");
}

#[test]
fn over_long_relays_are_split_with_the_prefix_on_every_piece() {
    let server = ServerProc::start(&[]);
    let (mut alice, mut kay) = pair(&server);
    // 100 two-byte characters: 200 bytes of text, 206 with the prefix.
    let body = "é".repeat(100);
    kay.send(&body);
    let first = alice.recv();
    let second = alice.recv();
    assert!(first.starts_with("[Kay] ") && second.starts_with("[Kay] "));
    assert!(first.len() <= 200);
    assert_eq!(format!("{}{}", &first[6..], &second[6..]), body);
    // 200 invalid bytes: 600 bytes of U+FFFD, four frames.
    kay.send_raw(&[0xff; 200]);
    let pieces = alice.recv_n(4);
    let joined: String = pieces
        .iter()
        .map(|p| p.strip_prefix("[Kay] ").expect("prefix on every piece"))
        .collect();
    assert_eq!(joined, "\u{fffd}".repeat(200));
    alice.expect_silence(QUIET);
}

#[test]
fn a_client_that_never_reads_is_disconnected_and_others_keep_receiving() {
    let server = ServerProc::start(&["--max-queue", "65536", "--flood-rate", "0"]);
    let (mut alice, mut kay) = pair(&server);
    let mut sloth = server.login("Sloth");
    sloth.send("/join tas");
    alice.expect("Sloth has joined");
    kay.expect("Sloth has joined");
    // Sloth never reads. Kay sends far more than its socket buffers and queue can hold,
    // while Alice reads everything.
    let total = 40_000;
    let mut burst = Vec::with_capacity(200 * 100);
    let mut got = 0;
    let mut sloth_left = false;
    for i in 0..total {
        burst.extend_from_slice(&frame(&format!("m{i}")));
        if burst.len() == 200 * 100 {
            kay.send_raw(&burst);
            burst.clear();
            // Alice keeps up so that only Sloth falls behind.
            while got < i + 1 - 100 {
                let t = alice.recv();
                if t == "Sloth has left" {
                    sloth_left = true;
                    continue;
                }
                assert_eq!(t, format!("[Kay] m{got}"));
                got += 1;
            }
        }
    }
    while got < total {
        let t = alice.recv();
        if t == "Sloth has left" {
            sloth_left = true;
            continue;
        }
        assert_eq!(t, format!("[Kay] m{got}"));
        got += 1;
    }
    if !sloth_left {
        alice.expect("Sloth has left");
    }
    // Sloth's socket was closed by the server: after what was buffered, EOF.
    sloth
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sloth.stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(Instant::now() < deadline, "Sloth was never disconnected"),
        }
    }
}

#[test]
fn a_thousand_clients_in_one_channel_each_receive_a_broadcast() {
    let server = ServerProc::start(&[]);
    let mut host = server.login("host");
    host.send("/create big");
    host.sync("big");
    let mut peers = Vec::new();
    for i in 0..1000 {
        let mut p = server.login(&format!("c{i}"));
        p.send("/join big");
        peers.push(p);
    }
    for _ in 0..1000 {
        assert!(host.recv().ends_with(" has joined"));
    }
    host.send("to everyone");
    for p in &mut peers {
        // Each peer saw the joins of everyone after it, then the broadcast.
        let mut t = p.recv();
        while t.ends_with(" has joined") {
            t = p.recv();
        }
        assert_eq!(t, "[host] to everyone");
    }
}

#[test]
fn the_server_full_text_past_max_clients() {
    let server = ServerProc::start(&["--max-clients", "2"]);
    let mut a = server.login("a");
    let _b = server.login("b");
    a.send("/create x");
    a.sync("x");
    let mut c = server.connect();
    assert_eq!(c.expect_closed(), ["The server is full. Try again later."]);
    // A client that sends its name at once still reads the text (the server reads what it
    // sent before closing, so the close is not a reset that destroys the text).
    for i in 0..20 {
        let mut c = server.connect();
        c.send(&format!("late{i}"));
        assert_eq!(
            c.expect_closed(),
            ["The server is full. Try again later."],
            "connection {i}"
        );
    }
}

/// Each listener refuses in its own protocol: an IRC client gets an `ERROR` line, a browser a
/// `503`, never a 200-byte frame it cannot read.
#[test]
fn the_server_full_answer_speaks_each_listeners_protocol() {
    let server = ServerProc::start(&[
        "--max-clients",
        "1",
        "--irc-port",
        "0",
        "--web-port",
        "0",
        "--server-name",
        "irc.test",
    ]);
    let _a = server.login("a");
    let answer = |label: &str, send: &[u8]| {
        let mut s = std::net::TcpStream::connect(server.addr_of(label)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(send);
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    let irc = answer("IRC", b"NICK kay\r\nUSER kay 0 * :Kay\r\n");
    assert_eq!(irc, "ERROR :The server is full. Try again later.\r\n");
    let web = answer("web", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        web.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{web:?}"
    );
    assert!(web.contains("\r\nRetry-After: 10\r\n"), "{web:?}");
    assert!(
        web.ends_with("\r\n\r\nThe server is full. Try again later.\n"),
        "{web:?}"
    );
}

#[test]
fn a_connection_without_a_name_is_closed_after_the_timeout() {
    let server = ServerProc::start(&["--name-timeout", "0.3"]);
    let mut silent = server.connect();
    let started = Instant::now();
    assert_eq!(silent.expect_closed(), [text::NAME_TIMEOUT]);
    assert!(started.elapsed() >= Duration::from_millis(250));
    // One with a bad name only is closed too; one that logs in stays.
    let mut bad = server.connect();
    bad.send("bad name");
    assert_eq!(
        bad.expect_closed(),
        [
            text::invalid_name("bad name"),
            text::NAME_TIMEOUT.to_string()
        ]
    );
    let mut good = server.login("good");
    std::thread::sleep(Duration::from_millis(500));
    good.send("/create x");
    good.sync("x");
}

#[test]
fn a_flooding_client_is_slowed_not_cut() {
    // 200 frames a second with a burst of 50: 400 frames take about 1.75 s, all delivered.
    let server = ServerProc::start(&["--flood-rate", "200", "--flood-burst", "50"]);
    let (mut alice, mut kay) = pair(&server);
    let mut burst = Vec::new();
    for i in 0..400 {
        burst.extend_from_slice(&frame(&format!("f{i}")));
    }
    let started = Instant::now();
    kay.send_raw(&burst);
    for i in 0..400 {
        assert_eq!(alice.recv(), format!("[Kay] f{i}"));
    }
    // Nothing was dropped, and the rate limit held: well over a second for 350 frames past
    // the burst (a generous bound, not a timing test).
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sigterm_flushes_and_exits_zero() {
    let server = ServerProc::start(&[]);
    let (mut alice, mut kay) = pair(&server);
    kay.send("last words");
    alice.expect("[Kay] last words");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(alice.expect_closed(), [text::SHUTTING_DOWN]);
    assert_eq!(kay.expect_closed(), [text::SHUTTING_DOWN]);
}

#[test]
fn garbage_and_churn_never_bring_the_server_down() {
    let server = ServerProc::start(&[]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut p = server.connect();
        let len = (next() % 2000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        p.send_raw(&bytes);
        if round % 3 == 0 {
            drop(p);
        } else {
            let _ = p.stream.shutdown(std::net::Shutdown::Both);
        }
    }
    let (mut alice, mut kay) = pair(&server);
    kay.send("alive");
    alice.expect("[Kay] alive");
}

#[test]
fn the_course_sequence_keeps_its_order_without_pauses() {
    // Graders may fire the steps back to back: each login must be handled at once, in order
    // with everyone else's frames, or Kay's /join could overtake Alice's /create.
    let server = ServerProc::start(&[]);
    for round in 0..20 {
        let mut alice = server.connect();
        let mut kay = server.connect();
        let channel = format!("tas{round}");
        alice.send_raw(
            &[
                frame(&format!("Alice{round}")),
                frame(&format!("/create {channel}")),
            ]
            .concat(),
        );
        // Alice's frames are in the server before Kay's: wait for them to be read, not handled.
        std::thread::sleep(Duration::from_millis(5));
        kay.send_raw(
            &[
                frame(&format!("Kay{round}")),
                frame(&format!("/join {channel}")),
            ]
            .concat(),
        );
        alice.expect(&format!("Kay{round} has joined"));
        kay.send("Hi!");
        alice.expect(&format!("[Kay{round}] Hi!"));
    }
}

/// Every thread of process `pid`: its name and nice value, from `/proc/PID/task/*/stat`.
fn threads_of(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the server's threads");
    for task in tasks {
        let stat = std::fs::read_to_string(task.expect("a thread").path().join("stat"))
            .expect("read a thread's stat");
        // `tid (comm) state …`: the name may hold spaces; nice is field 19 of the line.
        let open = stat.find('(').expect("the name's opening parenthesis");
        let close = stat.rfind(')').expect("the name's closing parenthesis");
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let nice = fields[16].parse().expect("the nice value");
        out.push((stat[open + 1..close].to_string(), nice));
    }
    out
}

#[test]
fn storage_threads_run_below_the_event_loop() {
    let dir = TempDir::new("nice");
    let server = ServerProc::start(&["--data-dir", dir.arg()]);
    // The threads lower themselves as they start: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let threads = loop {
        let threads = threads_of(server.pid());
        let storage: Vec<_> = threads
            .iter()
            .filter(|(n, _)| n.starts_with("storage"))
            .collect();
        let main = threads.iter().find(|(n, _)| n == "server").map(|t| t.1);
        let lowered = main.is_some_and(|m| storage.iter().all(|t| t.1 >= (m + 1).max(10)));
        if (lowered && storage.len() >= 3) || Instant::now() > deadline {
            break threads;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let main = threads
        .iter()
        .find(|(n, _)| n == "server")
        .map(|t| t.1)
        .expect("the event loop's thread");
    for prefix in ["storage-write", "storage-read-", "storage-hash-"] {
        let found: Vec<_> = threads
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .collect();
        assert!(!found.is_empty(), "no {prefix} thread in {threads:?}");
        for (name, nice) in found {
            assert_eq!(
                *nice,
                main.max(chat::os::BACKGROUND_NICE),
                "{name} runs at nice {nice}, the loop at {main}: {threads:?}"
            );
        }
    }
    // And the server still works, history included.
    let (mut alice, mut kay) = pair(&server);
    kay.send("kept");
    alice.expect("[Kay] kept");
    alice.send("/search kept");
    let found = alice.recv();
    assert!(found.ends_with("[tas] Kay: kept"), "{found:?}");
}
