//! End-to-end tests of the `client` binary in pipe mode: its exact stdout and the exact frames
//! it sends, against a fake server written here (std sockets, every read with a timeout), and
//! course-grader-style sessions on the real server.

mod common;
#[path = "client_support.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn prompt_first_then_each_frame_wipes_the_prompt() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Alice", port, None);
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Alice");
    let mut out = String::from("[Me] ");
    client.expect_stdout(&out);

    // Half a frame shows nothing; the rest completes it.
    let frame = padded("hello there");
    conn.write_all(&frame[..100]).unwrap();
    client.expect_no_more_stdout(Duration::from_millis(200));
    conn.write_all(&frame[100..]).unwrap();
    out.push_str("\r    \rhello there\n[Me] ");
    client.expect_stdout(&out);

    // Two frames in one write: two lines, each followed by the prompt.
    let mut two = padded("[Kay] one");
    two.extend_from_slice(&padded("Kay has left"));
    conn.write_all(&two).unwrap();
    out.push_str("\r    \r[Kay] one\n[Me] \r    \rKay has left\n[Me] ");
    client.expect_stdout(&out);

    // A typed line is sent padded, and prompted again.
    client.type_text("hi all\n");
    expect_frame(&mut conn, "hi all");
    out.push_str("[Me] ");
    client.expect_stdout(&out);

    // End of input: the client shuts down its side; the server closing then is no error.
    client.close_stdin();
    expect_eof(&mut conn);
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
    client.expect_stdout(&out);
}

#[test]
fn end_of_input_delivers_every_typed_line() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    // Like `printf '/create x\nhi\n' | client ...`: input is complete before the server reads.
    client.type_text("/create x\nhi\n");
    client.close_stdin();
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Scott");
    expect_frame(&mut conn, "/create x");
    expect_frame(&mut conn, "hi");
    expect_eof(&mut conn);
    // The server keeps the connection open: the client still ends, after its grace time.
    assert_eq!(client.wait().code(), Some(0));
    client.expect_stdout("[Me] [Me] [Me] ");
    drop(conn);
}

#[test]
fn crlf_is_removed_and_empty_lines_are_not_sent() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    client.type_text("/create x\r\n\n   \nhi\r\nlast line without newline");
    client.close_stdin();
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Scott");
    expect_frame(&mut conn, "/create x");
    expect_frame(&mut conn, "hi");
    expect_frame(&mut conn, "last line without newline");
    expect_eof(&mut conn);
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
    client.expect_stdout(&"[Me] ".repeat(6));
}

#[test]
fn replies_after_end_of_input_are_shown() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    client.type_text("/join nowhere\n");
    client.close_stdin();
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Scott");
    expect_frame(&mut conn, "/join nowhere");
    expect_eof(&mut conn);
    conn.write_all(&padded(
        "No channel named nowhere exists. Try '/create nowhere'?",
    ))
    .unwrap();
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
    client.expect_stdout(
        "[Me] [Me] \r    \rNo channel named nowhere exists. Try '/create nowhere'?\n[Me] ",
    );
}

#[test]
fn server_gone_prints_the_disconnect_text_and_fails() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    let mut conn = accept(&listener);
    expect_frame(&mut conn, "Scott");
    client.expect_stdout("[Me] ");
    drop(conn);
    let status = client.wait();
    assert_eq!(status.code(), Some(1));
    client.expect_stdout(&format!(
        "[Me] \r    \rServer at 127.0.0.1:{port} has disconnected\n"
    ));
}

#[test]
fn cannot_connect_prints_the_address_as_given_and_fails() {
    let (listener, port) = fake_server();
    drop(listener);
    let mut client = Client::spawn("Scott", port, None);
    let status = client.wait();
    assert!(!status.success());
    client.expect_stdout(&format!("Unable to connect to 127.0.0.1:{port}\n"));
}

#[test]
fn long_lines_are_split_or_refused() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Scott");

    // A chat line of one long word: cut inside it, leaving room for `[Scott] ` (8 bytes), and
    // so that no piece starts with '/'.
    let chat = format!("{}/{}", "x".repeat(200), "y".repeat(100));
    client.type_text(&format!("{chat}\n"));
    expect_frame(&mut conn, &"x".repeat(192));
    expect_frame(&mut conn, &format!("{}/{}", "x".repeat(8), "y".repeat(100)));

    // A chat line of words: cut at the last word boundary that fits; the space begins the
    // next piece.
    let words = format!("{} {} {}", "a".repeat(100), "b".repeat(91), "c".repeat(10));
    client.type_text(&format!("{words}\n"));
    expect_frame(
        &mut conn,
        &format!("{} {}", "a".repeat(100), "b".repeat(91)),
    );
    expect_frame(&mut conn, &format!(" {}", "c".repeat(10)));

    // A private message: several /msg commands, each with part of the text, leaving room for
    // `[Scott -> Bob] ` (15 bytes).
    client.type_text(&format!("/msg Bob {}\n", "z".repeat(400)));
    let full = format!("/msg Bob {}", "z".repeat(185));
    expect_frame(&mut conn, &full);
    expect_frame(&mut conn, &full);
    expect_frame(&mut conn, &format!("/msg Bob {}", "z".repeat(30)));

    // Any other command: not sent, the client says why.
    client.type_text(&format!("/join {}\nafter\n", "c".repeat(300)));
    expect_frame(&mut conn, "after");
    client.expect_stdout(
        "[Me] [Me] [Me] [Me] \r    \rCommand too long: at most 200 bytes.\n[Me] [Me] ",
    );
    client.close_stdin();
    expect_eof(&mut conn);
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
}

#[test]
fn control_characters_are_not_written() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Scott");
    let mut frame = vec![b' '; 200];
    let raw: &[u8] = b"a\x1b[31mb\x07c\nd\xc2\x85e\x7f\x00f\xffg";
    frame[..raw.len()].copy_from_slice(raw);
    conn.write_all(&frame).unwrap();
    client.expect_stdout("[Me] \r    \ra[31mbc\ndef\u{fffd}g\n[Me] ");
    client.close_stdin();
    expect_eof(&mut conn);
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
}

#[test]
fn registered_name_is_identified_from_the_environment() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, Some("hunter22x"));
    client.type_text("hi\n");
    let mut conn = accept(&listener);
    expect_frame(&mut conn, "Scott");
    expect_frame(&mut conn, "/time now");
    // As the server answers: the prompt for NAME, then the probe is refused until /identify.
    let prompt = "Scott is a registered name. Send /identify PASSWORD within 60 seconds.";
    let mut answer = padded(prompt);
    answer.extend_from_slice(&padded("Send /identify PASSWORD first."));
    conn.write_all(&answer).unwrap();
    expect_frame(&mut conn, "/identify hunter22x");
    // Typed lines wait for the login, then come after the /identify.
    expect_frame(&mut conn, "hi");
    conn.write_all(&padded("You are now identified as Scott."))
        .unwrap();
    client.expect_stdout(&format!(
        "[Me] \r    \r{prompt}\n[Me] [Me] \r    \rYou are now identified as Scott.\n[Me] "
    ));
    client.close_stdin();
    expect_eof(&mut conn);
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
}

#[test]
fn broken_stdout_ends_the_client_quietly() {
    let (listener, port) = fake_server();
    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["Scott", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut conn = accept(&listener);
    expect_frame(&mut conn, "Scott");
    // Nobody reads stdout any more: the next write breaks the pipe.
    drop(child.stdout.take());
    // The client may already be gone (its prompt broke the pipe): a failed write is fine.
    let _ = conn.write_all(&padded("hello"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the client did not exit on a broken stdout");
        }
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(stderr, "");
}

/// The course grader's session on the real server: Alice creates `tas`, Kay joins it, they
/// greet each other; each client's stdout is read through its pipe and compared exactly.
#[test]
fn two_clients_on_the_real_server_like_the_course_grader() {
    let server = common::ServerProc::start(&[]);
    let port = server.addr.port();
    let mut alice = Client::spawn("Alice", port, None);
    let mut kay = Client::spawn("Kay", port, None);
    alice.expect_stdout("[Me] ");
    kay.expect_stdout("[Me] ");

    alice.type_text("/create tas\n");
    alice.expect_step("");
    // No reply confirms a /create: a third connection waits (bounded) until `tas` is listed,
    // so that Kay's /join cannot overtake it. It sits in its own channel, seen by nobody.
    let mut probe = server.login("probe");
    probe.send("/create probe-room");
    let mut listed = false;
    for _ in 0..100 {
        probe.send("/list");
        if probe.recv().lines().any(|l| l == "tas") {
            listed = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(listed, "the server never listed Alice's channel");

    kay.type_text("/join tas\n");
    alice.expect_step("Kay has joined");
    kay.expect_step("");

    kay.type_text("Hi!\n");
    alice.expect_step("[Kay] Hi!");
    kay.expect_step("");

    alice.type_text("Hello!\n");
    kay.expect_step("[Alice] Hello!");
    alice.expect_step("");

    kay.close_stdin();
    assert_eq!(kay.wait().code(), Some(0));
    alice.expect_step("Kay has left");
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0));

    // And the exact bytes each terminal got, prompts and wipes included.
    alice.expect_stdout(concat!(
        "[Me] [Me] \r    \rKay has joined\n[Me] \r    \r[Kay] Hi!\n[Me] [Me] ",
        "\r    \rKay has left\n[Me] "
    ));
    kay.expect_stdout("[Me] [Me] [Me] \r    \r[Alice] Hello!\n[Me] ");
}

/// `printf '/join room\nhi\n' | client ...` on the real server: both frames arrive, then the
/// client leaves and exits 0.
#[test]
fn piped_input_reaches_the_real_server_before_exit() {
    let server = common::ServerProc::start(&[]);
    let mut member = server.login("member");
    member.send("/create room");
    member.sync("room");
    let mut client = Client::spawn("Scott", server.addr.port(), None);
    client.type_text("/join room\nhi\n");
    client.close_stdin();
    member.expect("Scott has joined");
    member.expect("[Scott] hi");
    member.expect("Scott has left");
    assert_eq!(client.wait().code(), Some(0));
    client.expect_stdout("[Me] [Me] [Me] ");
}

#[test]
fn a_bad_port_or_address_says_why_on_stderr() {
    let (listener, port) = fake_server();
    drop(listener);
    let closed = port.to_string();
    for (host, port, cause) in [
        ("127.0.0.1", "abc", "\"abc\" is not a port"),
        ("127.0.0.1", "70000", "\"70000\" is not a port"),
        ("127.0.0.1", "0", "\"0\" is not a port"),
        ("127.0.0.1", closed.as_str(), "Connection refused"),
        (
            "no-such-host.invalid",
            "5555",
            "cannot resolve no-such-host.invalid",
        ),
    ] {
        let mut client = Client::spawn_args(&["Scott", host, port], None);
        assert_eq!(client.wait().code(), Some(1), "{host}:{port}");
        client.expect_stdout(&format!("Unable to connect to {host}:{port}\n"));
        let stderr = client.stderr();
        assert!(
            stderr.starts_with(&format!("client: cannot connect to {host}:{port}: "))
                && stderr.contains(cause)
                && stderr.ends_with('\n')
                && stderr.lines().count() == 1,
            "{stderr:?}"
        );
    }
}

#[test]
fn a_refused_name_is_printed_and_no_typed_line_is_sent() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    // A line typed before the answer: it must not be taken for a name.
    client.type_text("hello\n");
    let mut conn = accept(&listener);
    expect_frame(&mut conn, "Scott");
    expect_frame(&mut conn, "/time now");
    let mut answer = padded("Name Scott is already in use. Send another name.");
    answer.extend_from_slice(&padded(
        "Invalid name /time now: a name is 1 to 32 characters without spaces.",
    ));
    conn.write_all(&answer).unwrap();
    assert_eq!(client.wait().code(), Some(3));
    client.expect_stdout("[Me] \r    \rName Scott is already in use. Send another name.\n");
    expect_eof(&mut conn);
}

#[test]
fn names_refused_by_the_real_server_exit_3() {
    let server = common::ServerProc::start(&[]);
    let port = server.addr.port();
    let mut kay = server.login("Kay");
    kay.send("/create room");
    kay.sync("room");

    let mut client = Client::spawn("Kay", port, None);
    client.type_text_unless_gone("/join room\nhello\n");
    assert_eq!(client.wait().code(), Some(3));
    client.expect_stdout("[Me] \r    \rName Kay is already in use. Send another name.\n");

    let mut client = Client::spawn("bad name", port, None);
    client.type_text_unless_gone("/join room\n");
    assert_eq!(client.wait().code(), Some(3));
    client.expect_stdout(
        "[Me] \r    \rInvalid name bad name: a name is 1 to 32 characters without spaces.\n",
    );
    // Nobody joined Kay's channel, under any name.
    kay.expect_silence(Duration::from_millis(300));
}

#[test]
fn quit_is_sent_and_the_client_exits_quietly_when_the_server_closes() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Scott", port, None);
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Scott");
    // stdin stays open: /quit alone ends the client; what follows it is not sent.
    client.type_text("hi\n/quit\nafter\n");
    expect_frame(&mut conn, "hi");
    expect_frame(&mut conn, "/quit");
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    match conn.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected nothing after /quit, got {other:?}"),
    }
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
    client.expect_stdout("[Me] [Me] [Me] ");
}

/// `/quit` on the real server: the server closes the connection right after it (the channel
/// gets `Scott has left`), and the client exits 0 without the disconnect text.
#[test]
fn quit_on_the_real_server() {
    let server = common::ServerProc::start(&[]);
    let mut member = server.login("member");
    member.send("/create room");
    member.sync("room");
    let mut client = Client::spawn("Scott", server.addr.port(), None);
    client.type_text("/join room\n");
    member.expect("Scott has joined");
    let typed = Instant::now();
    client.type_text("/quit\n");
    member.expect("Scott has left");
    assert_eq!(client.wait().code(), Some(0));
    // The server closed the connection: the client did not wait out its own grace time.
    assert!(typed.elapsed() < Duration::from_millis(1500));
    client.expect_stdout("[Me] [Me] [Me] ");
}

/// The words of the regression: 60 words of 7 bytes, 479 bytes in all.
fn sixty_words() -> String {
    (0..60)
        .map(|i| format!("word{i:03}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A 479-byte line of words arrives as 3 whole-word messages: the client cut it leaving room
/// for `[alice] `, so the server never cut it again into one-word fragments.
#[test]
fn a_long_line_of_words_arrives_as_three_messages() {
    let server = common::ServerProc::start(&[]);
    let port = server.addr.port();
    let mut bob = Client::spawn("bob", port, None);
    bob.type_text("/create room\n");
    let mut probe = server.login("probe");
    probe.send("/create probe-room");
    let mut listed = false;
    for _ in 0..100 {
        probe.send("/list");
        if probe.recv().lines().any(|l| l == "room") {
            listed = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(listed, "the server never listed bob's channel");
    let mut alice = Client::spawn("alice", port, None);
    alice.type_text("/join room\n");
    bob.expect_stdout("[Me] [Me] \r    \ralice has joined\n[Me] ");

    let line = sixty_words();
    assert_eq!(line.len(), 479);
    alice.type_text(&format!("{line}\n"));
    let words = |range: std::ops::Range<usize>| {
        range
            .map(|i| format!("word{i:03}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = format!("[alice] {}", words(0..24));
    let second = format!("[alice]  {}", words(24..48));
    let third = format!("[alice]  {}", words(48..60));
    assert_eq!(first.len(), 199);
    assert_eq!(second.len(), 200);
    bob.expect_stdout(&format!(
        "[Me] [Me] \r    \ralice has joined\n[Me] \r    \r{first}\n[Me] \r    \r{second}\n[Me] \r    \r{third}\n[Me] "
    ));
    bob.expect_no_more_stdout(Duration::from_millis(300));
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0));
    bob.close_stdin();
    assert_eq!(bob.wait().code(), Some(0));
}

/// Feeds `head`, then `unit` repeated to at least `total` bytes, then a newline and `hi`, to the
/// client's stdin on a thread; returns how many bytes of `unit` it writes.
fn feed_stdin(client: &mut Client, unit: &'static str, head: &'static str, total: usize) -> usize {
    let mut stdin = client.stdin.take().unwrap();
    let chunk = unit.repeat(64 * 1024 / unit.len());
    let chunks = total.div_ceil(chunk.len());
    let written = chunks * chunk.len();
    thread::spawn(move || {
        let _ = stdin.write_all(head.as_bytes());
        for _ in 0..chunks {
            if stdin.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
        let _ = stdin.write_all(b"\nhi\n");
    });
    written
}

/// A ~50 MB line through a pipe streams out as chat messages as it is read: every piece fits
/// beside `[Kay] `, is cut at a word boundary, and together they are the line; the client's
/// peak memory stays far below the line's size.
#[test]
fn a_50_mb_line_streams_out_with_bounded_memory() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Kay", port, None);
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Kay");
    const UNIT: &str = "lorem ipsum dolor sit amet ";
    let total = feed_stdin(&mut client, UNIT, "", 50 * 1024 * 1024);
    let unit = UNIT.as_bytes();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut frame = [0u8; 200];
    let mut pos = 0usize;
    let mut pieces = 0;
    loop {
        conn.read_exact(&mut frame)
            .expect("a frame from the client");
        let text = common::strip(&frame);
        if text == "hi" {
            break;
        }
        let bytes = text.as_bytes();
        assert!(bytes.len() <= 200 - "[Kay] ".len(), "{text:?}");
        // Only the last piece may be short: every cut is at the last word boundary that fits.
        assert!(
            bytes.len() >= 180 || pos + bytes.len() == total - 1,
            "a short piece: {text:?}"
        );
        for (i, &b) in bytes.iter().enumerate() {
            assert_eq!(b, unit[(pos + i) % unit.len()], "piece {pieces} at {i}");
        }
        // Each piece ends a word: the next one begins with the space after it.
        assert_eq!(unit[(pos + bytes.len()) % unit.len()], b' ');
        pos += bytes.len();
        pieces += 1;
    }
    // Everything was sent, but the line's trailing space.
    assert_eq!(pos, total - 1);
    expect_eof(&mut conn);
    // The client waits for the server to close: its peak memory so far is all it used.
    let peak_kb = client.peak_rss_kb();
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
    assert!(
        peak_kb < 32 * 1024,
        "peak RSS {peak_kb} kB for a 50 MB line"
    );
    eprintln!("peak RSS for a 50 MB line: {peak_kb} kB in {pieces} pieces");
}

/// A ~20 MB command: refused after its first 200 bytes, the rest discarded as it comes.
#[test]
fn a_huge_command_is_refused_with_bounded_memory() {
    let (listener, port) = fake_server();
    let mut client = Client::spawn("Kay", port, None);
    let mut conn = accept(&listener);
    expect_login(&mut conn, "Kay");
    feed_stdin(&mut client, "cccccccc", "/join ", 20 * 1024 * 1024);
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    expect_frame(&mut conn, "hi");
    client.close_stdin();
    expect_eof(&mut conn);
    let peak_kb = client.peak_rss_kb();
    drop(conn);
    assert_eq!(client.wait().code(), Some(0));
    client.expect_stdout("[Me] \r    \rCommand too long: at most 200 bytes.\n[Me] [Me] ");
    assert!(peak_kb < 32 * 1024, "peak RSS {peak_kb} kB");
}
