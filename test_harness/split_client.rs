//! End-to-end tests of `split_client` against the real server: the course replay, the
//! interactive mode with piped stdin, the stress mode (over several servers; inside TLS, over
//! WebSocket and WSS and over IRC through the server's own ports, with a CA and certificates
//! made at run time; over IRC against a real InspIRCd) and the registration flood.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::certs::Ca;
use common::{frame, ServerProc};

/// How long any split_client run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(20);

const REPLAY_NAME: &str = "SplitMessagesChatClient";
const REPLAY_MESSAGE: &str = "I think that I shall never see a structure more wasteful than a tree. Most links remain idle and unused while others are overloaded and abused.";

/// A running split_client whose stdout and stderr are collected by threads.
struct Run {
    child: Child,
    stdout: Receiver<Vec<u8>>,
    stderr: Receiver<Vec<u8>>,
}

fn collect(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

impl Run {
    fn start(args: &[&str], stdin: Option<&str>) -> Run {
        Run::start_bin(env!("CARGO_BIN_EXE_split_client"), args, stdin)
    }

    fn start_bin(bin: &str, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "off")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start split_client");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
            // Dropping the pipe ends the client's stdin.
        }
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Run {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits (bounded) for the exit; returns the status, stdout and stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "split_client did not exit in time"
            );
            thread::sleep(Duration::from_millis(10));
        };
        let out = self.stdout.recv_timeout(RUN_LIMIT).unwrap();
        let err = self.stderr.recv_timeout(RUN_LIMIT).unwrap();
        (
            status,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pieces logged as `Sending N characters: PIECE`, checked to be N bytes each.
fn logged_pieces(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("Sending "))
        .map(|rest| {
            let (n, piece) = rest.split_once(" characters: ").expect("log line format");
            let n: usize = n.parse().expect("piece length");
            assert_eq!(piece.len(), n, "logged length of {piece:?}");
            assert!((1..=200).contains(&n));
            piece.to_string()
        })
        .collect()
}

#[test]
fn replay_sends_the_course_message_ten_times_in_pieces() {
    let server = ServerProc::start(&[]);
    let mut watcher = server.login("watcher");
    watcher.send("/create split_messages");
    watcher.sync("split_messages");
    let port = server.addr.port().to_string();
    let run = Run::start(
        &[
            "replay",
            "127.0.0.1",
            &port,
            "--interval-ms",
            "50",
            "--seed",
            "1",
        ],
        None,
    );
    watcher.expect(&format!("{REPLAY_NAME} has joined"));
    let expected = frame(&format!("[{REPLAY_NAME}] {REPLAY_MESSAGE}"));
    for i in 0..10 {
        let raw = watcher
            .recv_raw_within(Duration::from_secs(5))
            .expect("the server closed the watcher");
        assert_eq!(raw, expected, "message {i}, byte for byte");
        if i == 0 {
            // The replay prints what the server sends it.
            watcher.send("hello replay");
        }
    }
    watcher.expect(&format!("{REPLAY_NAME} has left"));
    let (status, out, err) = run.finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    assert_eq!(out, "[watcher] hello replay\n");
    // Name, /join and ten messages: twelve frames, every byte logged once, in order.
    let pieces = logged_pieces(&err);
    assert!(
        pieces.len() > 12,
        "frames were not cut: {} pieces",
        pieces.len()
    );
    let mut sent = frame(REPLAY_NAME);
    sent.extend(frame("/join split_messages"));
    for _ in 0..10 {
        sent.extend(frame(REPLAY_MESSAGE));
    }
    assert_eq!(pieces.concat().into_bytes(), sent);
}

#[test]
fn replay_fails_at_once_when_its_channel_does_not_exist() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let started = Instant::now();
    let run = Run::start(
        &["replay", "127.0.0.1", &port, "--interval-ms", "500"],
        None,
    );
    let (status, out, err) = run.finish();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "stderr {err}");
    // It stops at the first refusal instead of sending ten messages into nowhere (4.5 s).
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(
        out.starts_with("No channel named split_messages exists. Try '/create split_messages'?\n"),
        "{out}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "split_client: the server at 127.0.0.1:{port} has no channel split_messages, so the \
             replay stopped: create it first (for example `client NAME 127.0.0.1 {port}`, then \
             `/create split_messages`)"
        )
    );
    let mut sent = frame(REPLAY_NAME);
    sent.extend(frame("/join split_messages"));
    sent.extend(frame(REPLAY_MESSAGE));
    assert_eq!(logged_pieces(&err).concat().into_bytes(), sent);
}

#[test]
fn the_install_names_run_the_same_programs() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    for (bin, args) in [
        (
            env!("CARGO_BIN_EXE_chat-client"),
            vec!["x", "127.0.0.1", &port],
        ),
        (
            env!("CARGO_BIN_EXE_chat-split-client"),
            vec!["replay", "127.0.0.1", &port],
        ),
    ] {
        let (status, out, _) = Run::start_bin(bin, &args, Some("")).finish();
        assert_eq!(status.code(), Some(1), "{bin}");
        assert_eq!(
            out,
            format!("Unable to connect to 127.0.0.1:{port}\n"),
            "{bin}"
        );
    }
    let (status, out, _) =
        Run::start_bin(env!("CARGO_BIN_EXE_chat-split-client"), &["--help"], None).finish();
    assert!(status.success());
    assert!(
        out.contains("Usage: chat-split-client [OPTIONS] <NAME> <HOST> <PORT>"),
        "{out}"
    );
}

#[test]
fn interactive_mode_delivers_whole_frames_sent_in_logged_pieces() {
    let server = ServerProc::start(&[]);
    let mut watcher = server.login("watcher");
    watcher.send("/create room");
    watcher.sync("room");
    let port = server.addr.port().to_string();
    let input = "/join room\nhello there\n\nsecond line\n";
    let run = Run::start(
        &[
            "alice",
            "127.0.0.1",
            &port,
            "--seed",
            "3",
            "--max-piece",
            "50",
            "--max-delay-ms",
            "2",
        ],
        Some(input),
    );
    watcher.expect("alice has joined");
    watcher.expect("[alice] hello there");
    watcher.expect("[alice] second line");
    watcher.send("hi alice");
    let (status, out, err) = run.finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    assert!(out.starts_with("[Me] "), "stdout {out:?}");
    let pieces = logged_pieces(&err);
    assert!(
        pieces.len() >= 4 * 4,
        "50-byte pieces: {} pieces",
        pieces.len()
    );
    let mut sent = frame("alice");
    for line in ["/join room", "hello there", "second line"] {
        sent.extend(frame(line));
    }
    assert_eq!(pieces.concat().into_bytes(), sent);
    // The N of the log lines sum to 200 per frame.
    let total: usize = pieces.iter().map(String::len).sum();
    assert_eq!(total, 4 * 200);
}

#[test]
fn interactive_mode_shows_server_frames_like_the_client() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let run = Run::start(&["bob", "127.0.0.1", &port], Some("/join nowhere\n"));
    let (status, out, _) = run.finish();
    assert!(status.success());
    assert_eq!(
        out,
        "[Me] [Me] \r    \rNo channel named nowhere exists. Try '/create nowhere'?\n[Me] "
    );
}

#[test]
fn unreachable_server_prints_the_address_and_fails() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    for args in [
        vec!["x", "127.0.0.1", &port],
        vec!["replay", "127.0.0.1", &port],
    ] {
        let (status, out, _) = Run::start(&args, Some("")).finish();
        assert!(!status.success());
        assert_eq!(out, format!("Unable to connect to 127.0.0.1:{port}\n"));
    }
}

/// The JSON summary's value of `key` (numbers and booleans).
/// Runs split_client with `--json`; it must succeed and print exactly one JSON line. Returns
/// that line and stderr.
fn run_json(args: &[&str]) -> (String, String) {
    let (status, out, err) = Run::start(args, None).finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    let json = out.trim_end();
    assert_eq!(json.lines().count(), 1, "one JSON line: {out:?}");
    (json.to_owned(), err)
}

fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap();
    &rest[..end]
}

#[test]
fn stress_small_run_delivers_everything_and_passes() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let args = [
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "20",
        "--messages",
        "50",
        "--channels",
        "2",
        "--seed",
        "5",
        "--json",
        "--duration-secs",
        "15",
    ];
    let (json, err) = run_json(&args);
    let json = json.as_str();
    // Two channels of ten: each message reaches the nine other members.
    assert_eq!(json_field(json, "deliveries_expected"), "9000");
    assert_eq!(json_field(json, "deliveries_received"), "9000");
    assert_eq!(json_field(json, "messages_sent"), "1000");
    for key in ["lost", "duplicates", "reordered", "corrupt", "disconnects"] {
        assert_eq!(json_field(json, key), "0", "{key}");
    }
    assert_eq!(json_field(json, "passed"), "true");
    assert!(err.contains("deliveries: 9000 of 9000 expected"), "{err}");
    assert!(err.trim_end().ends_with("result:     PASS"), "{err}");
}

#[test]
fn stress_with_a_client_that_never_reads_still_passes() {
    // A small outbound queue (but room for every reader's window) makes the server drop the
    // silent client early.
    let server = ServerProc::start(&["--max-queue", "100000"]);
    let port = server.addr.port().to_string();
    let args = [
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "10",
        "--messages",
        "3000",
        "--no-read",
        "1",
        "--json",
        "--duration-secs",
        "15",
    ];
    let (status, out, err) = Run::start(&args, None).finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    assert_eq!(json_field(&out, "no_read"), "1");
    assert_eq!(json_field(&out, "deliveries_received"), "270000");
    // 27,000 frames (5.4 MB) for the silent client exceed its queue plus the kernel's socket
    // buffers on common settings, so the server drops it; larger buffers may absorb them all.
    let dropped = json_field(&out, "no_read_dropped");
    assert!(dropped == "0" || dropped == "1", "{dropped}");
    assert_eq!(json_field(&out, "passed"), "true");
}

#[test]
fn stress_idle_run_holds_connections_and_passes() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let args = [
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "30",
        "--channels",
        "3",
        "--idle-secs",
        "0",
        "--json",
    ];
    let (status, out, err) = Run::start(&args, None).finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    assert_eq!(json_field(&out, "idle"), "true");
    assert_eq!(json_field(&out, "messages_sent"), "0");
}

#[test]
fn stress_fails_when_the_server_drops_its_clients() {
    // A "server" that accepts and hangs up at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let acceptor = thread::spawn(move || {
        let deadline = Instant::now() + RUN_LIMIT;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((s, _)) => drop(s),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let args = [
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "5",
        "--duration-secs",
        "5",
    ];
    let (status, _, err) = Run::start(&args, None).finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    acceptor.join().unwrap();
    assert!(!status.success());
    assert!(err.contains("stress setup failed"), "{err}");
}

/// The `"server":{…}` object of the JSON summary.
fn server_usage(json: &str) -> &str {
    let start = json
        .find("\"server\":{")
        .unwrap_or_else(|| panic!("server usage in {json}"));
    let rest = &json[start + "\"server\":".len()..];
    &rest[..=rest.find('}').unwrap()]
}

#[test]
fn stress_with_the_server_pid_reports_its_cpu_and_memory() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let pid = server.pid().to_string();
    let args = [
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "10",
        "--messages",
        "200",
        "--server-pid",
        &pid,
        "--json",
        "--duration-secs",
        "15",
    ];
    let (status, out, err) = Run::start(&args, None).finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    let usage = server_usage(out.trim_end());
    let cpu: f64 = json_field(usage, "cpu_secs").parse().unwrap();
    let per: f64 = json_field(usage, "cpu_ns_per_delivery").parse().unwrap();
    let base: u64 = json_field(usage, "rss_base_kib").parse().unwrap();
    let rss: u64 = json_field(usage, "rss_kib").parse().unwrap();
    assert!(cpu >= 0.0 && per >= 0.0, "{usage}");
    // 18,000 deliveries: the per-delivery figure is the total divided by them.
    assert!(
        (per - cpu * 1e9 / 18_000.0).abs() <= per * 0.01 + 1.0,
        "{usage}"
    );
    assert!(base > 0 && rss > 0, "{usage}");
    assert!(err.contains("ns per delivery); RSS"), "{err}");
    assert_eq!(json_field(&out, "passed"), "true");

    // Without the pid there is no usage, and the run is the same.
    let args = [
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "10",
        "--messages",
        "10",
        "--json",
        "--duration-secs",
        "15",
    ];
    let (status, out, _) = Run::start(&args, None).finish();
    assert!(status.success());
    assert!(out.contains("\"server\":null"), "{out}");
}

/// The same rated run (two clients, 1,000 messages a second each) against a server whose flood
/// limit is far below that, and against one without a limit.
fn rated_run_against(server_flags: &[&str]) -> (String, String) {
    let server = ServerProc::start(server_flags);
    let port = server.addr.port().to_string();
    run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "2",
        "--messages",
        "300",
        "--rate",
        "1000",
        "--json",
        "--duration-secs",
        "15",
    ])
}

#[test]
fn stress_says_when_the_servers_flood_limit_held_the_senders_back() {
    // 200 frames a second after a burst of 10: 300 messages take about 1.5 s, each waiting in
    // its sender's socket while the server answers the probe at once.
    let (json, err) = rated_run_against(&["--flood-rate", "200", "--flood-burst", "10"]);
    assert_eq!(json_field(&json, "throttled"), "true", "{json}");
    assert_eq!(json_field(&json, "passed"), "true", "{json}");
    assert!(json.contains("\"probe_ns\":{\"samples\":"), "{json}");
    let line = err
        .lines()
        .find(|l| l.starts_with("  THROTTLED:  a message took "))
        .unwrap_or_else(|| panic!("no THROTTLED line in {err}"));
    assert!(
        line.contains(
            "while the server answered a spare connection in ",
        ) && line.ends_with(
            ": the server's flood limit (--flood-rate, --flood-burst) held the senders back, so \
             these figures measure that limit, not the server. Load-test a server of its own, \
             started with --ephemeral --flood-rate 0."
        ),
        "{line}"
    );
    assert!(err.ends_with("result:     PASS\n"), "{err}");
}

#[test]
fn stress_says_when_the_senders_were_not_held_back() {
    let (json, err) = rated_run_against(&["--flood-rate", "0"]);
    assert_eq!(json_field(&json, "throttled"), "false", "{json}");
    assert!(!err.contains("THROTTLED"), "{err}");
    assert!(
        err.lines().any(
            |l| l.starts_with("  probe:      a spare connection's round trip p50 ")
                && l.ends_with("samples): the senders were not held back")
        ),
        "{err}"
    );
}

#[test]
fn stress_at_a_fixed_rate_reports_how_well_it_kept_the_schedule() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let base = [
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "6",
        "--messages",
        "40",
    ];
    let rated = [
        &base[..],
        &["--rate", "200", "--json", "--duration-secs", "15"],
    ]
    .concat();
    let (status, out, err) = Run::start(&rated, None).finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    let json = out.trim_end();
    assert_eq!(json_field(json, "deliveries_received"), "1200");
    // 40 messages at 200 a second: at least 195 ms of sending.
    let secs: f64 = json_field(json, "duration_secs").parse().unwrap();
    assert!(secs >= 0.195, "the rate was kept: {secs} s");
    let lag = &json[json
        .find("\"send_lag_ns\":{")
        .expect("send lag in a rated run")..];
    let p50: u64 = json_field(lag, "p50").parse().unwrap();
    let max: u64 = json_field(lag, "max").parse().unwrap();
    assert!(p50 <= max, "{lag}");
    assert!(err.contains("  send lag:   p50 "), "{err}");

    let unrated = [&base[..], &["--json", "--duration-secs", "15"]].concat();
    let (status, out, err) = Run::start(&unrated, None).finish();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    assert!(out.contains("\"send_lag_ns\":null,"), "{out}");
    assert!(!err.contains("send lag"), "{err}");
}

#[test]
fn floor_reads_every_frame_written_in_order() {
    let args = [
        "floor",
        "--sockets",
        "30",
        "--group",
        "10",
        "--rate",
        "2000",
        "--rounds",
        "300",
        "--json",
        "--duration-secs",
        "15",
    ];
    let (json, err) = run_json(&args);
    let json = json.as_str();
    // 300 rounds, each written to 9 of a group of 10.
    assert_eq!(json_field(json, "writes"), "2700");
    assert_eq!(json_field(json, "received"), "2700");
    assert_eq!(json_field(json, "faults"), "0");
    assert_eq!(json_field(json, "complete"), "true");
    let wall: f64 = json_field(json, "wall_secs").parse().unwrap();
    assert!(
        wall >= 0.149,
        "300 rounds at 2,000 a second take 150 ms: {wall}"
    );
    let write_ns: f64 = json_field(json, "write_ns").parse().unwrap();
    assert!(write_ns > 0.0, "{json}");
    assert!(
        err.contains("2700 of 2700 frames read, 0 out of order or malformed: PASS"),
        "{err}"
    );
}

#[test]
fn floor_refuses_a_layout_it_cannot_run() {
    let bad_layouts: [&[&str]; 4] = [
        &["floor", "--sockets", "10", "--group", "1"],
        &["floor", "--sockets", "5", "--group", "10"],
        &["floor", "--sockets", "10", "--group", "5", "--rate", "0"],
        &["floor", "--sockets", "10", "--group", "5", "--rounds", "0"],
    ];
    for bad in bad_layouts {
        let (status, out, err) = Run::start(bad, None).finish();
        assert!(!status.success(), "{bad:?} must fail");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("invalid configuration: "), "{bad:?}: {err}");
    }
}

// ---- Several servers, TLS, WebSocket, IRC, the registration flood ----------------------------

/// The deliveries of a stress run, checked to be complete and clean.
fn assert_clean_pass(json: &str, expected: u64) {
    assert_eq!(
        json_field(json, "deliveries_expected"),
        expected.to_string(),
        "{json}"
    );
    assert_eq!(
        json_field(json, "deliveries_received"),
        expected.to_string(),
        "{json}"
    );
    for key in [
        "lost",
        "duplicates",
        "reordered",
        "corrupt",
        "disconnects",
        "other_frames",
    ] {
        assert_eq!(json_field(json, key), "0", "{key} in {json}");
    }
    assert_eq!(json_field(json, "passed"), "true", "{json}");
}

#[test]
fn stress_spreads_clients_over_several_servers_and_checks_every_delivery() {
    let server = ServerProc::start(&[]);
    let a = format!("127.0.0.1:{}", server.addr.port());
    let b = a.clone();
    // One server given twice stands for two nodes sharing channels.
    let (json, err) = run_json(&[
        "stress",
        "--server",
        &a,
        "--server",
        &b,
        "--clients",
        "12",
        "--senders",
        "4",
        "--messages",
        "40",
        "--seed",
        "9",
        "--json",
        "--duration-secs",
        "15",
    ]);
    // One channel of 12, 4 senders: 4 × 40 × 11.
    assert_clean_pass(&json, 1760);
    assert_eq!(json_field(&json, "servers"), "2");
    assert_eq!(json_field(&json, "placement"), "\"round-robin\"");
    // Client i is on server i mod 2: each sender has 6 receivers on the other server.
    assert!(
        json.contains("\"cross_server_latency_ns\":{\"samples\":960,"),
        "{json}"
    );
    assert!(
        err.contains("  over:       frames, 2 server(s), clients spread round-robin\n"),
        "{err}"
    );

    // Senders on the first, readers on the second: every delivery to a reader crosses.
    let (json, err) = run_json(&[
        "stress",
        "--server",
        &a,
        "--server",
        &a,
        "--placement",
        "split",
        "--clients",
        "10",
        "--senders",
        "2",
        "--messages",
        "30",
        "--json",
        "--duration-secs",
        "15",
    ]);
    assert_clean_pass(&json, 2 * 30 * 9);
    assert_eq!(json_field(&json, "placement"), "\"split\"");
    // 8 readers get 2 × 30 each across; the two senders get each other's at home.
    assert!(
        json.contains("\"cross_server_latency_ns\":{\"samples\":480,"),
        "{json}"
    );
    assert!(
        err.contains("senders on the first, every other client on the second"),
        "{err}"
    );
}

#[test]
fn stress_over_two_unrelated_servers_finds_the_missing_deliveries() {
    // Two servers that share nothing: what crosses between them is lost, and the run says so.
    let one = ServerProc::start(&[]);
    let two = ServerProc::start(&[]);
    let a = format!("127.0.0.1:{}", one.addr.port());
    let b = format!("127.0.0.1:{}", two.addr.port());
    let (status, out, err) = Run::start(
        &[
            "stress",
            "--server",
            &a,
            "--server",
            &b,
            "--placement",
            "split",
            "--clients",
            "6",
            "--senders",
            "2",
            "--messages",
            "20",
            "--json",
            "--duration-secs",
            "15",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1), "{err}");
    // Only the two senders (both on the first server) hear each other.
    assert_eq!(json_field(&out, "deliveries_received"), "40", "{out}");
    assert_eq!(json_field(&out, "deliveries_expected"), "200", "{out}");
    assert_eq!(json_field(&out, "lost"), "160", "{out}");
    assert_eq!(json_field(&out, "passed"), "false");
    assert!(err.trim_end().ends_with("result:     FAIL"), "{err}");
    // Round-robin over the same two: each sender reaches only its own server's half.
    let (status, out, _) = Run::start(
        &[
            "stress",
            "--server",
            &a,
            "--server",
            &b,
            "--clients",
            "4",
            "--messages",
            "20",
            "--json",
            "--duration-secs",
            "15",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1));
    assert_eq!(json_field(&out, "deliveries_received"), "80", "{out}");
    assert_eq!(json_field(&out, "deliveries_expected"), "240", "{out}");
}

#[test]
fn stress_refuses_a_split_placement_without_two_servers() {
    let (status, out, err) =
        Run::start(&["stress", "127.0.0.1", "1", "--placement", "split"], None).finish();
    assert_eq!(status.code(), Some(1));
    assert!(out.is_empty());
    assert!(
        err.contains(
            "invalid configuration: senders on one server and readers on another needs two servers"
        ),
        "{err}"
    );
}

/// A server with a certificate for `names` from a CA made for the test, started with `args`
/// besides `--tls-cert`/`--tls-key`; its CA's PEM file is in `dir`.
struct TlsSetup {
    server: ServerProc,
    ca_pem: String,
    _dir: common::TempDir,
}

fn tls_server(tag: &str, names: &[&str], args: &[&str]) -> TlsSetup {
    let dir = common::TempDir::new(tag);
    let ca = Ca::new("split_client test CA");
    let ca_pem = ca.write_pem(&dir.0).to_str().unwrap().to_string();
    let cert = ca.issue(&dir.0, "server", names);
    let mut all = vec![
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    TlsSetup {
        server: ServerProc::start(&all),
        ca_pem,
        _dir: dir,
    }
}

/// The port of the server's listener with this label, as an argument.
fn port_of(server: &ServerProc, label: &str) -> String {
    server.addr_of(label).port().to_string()
}

#[test]
fn stress_over_tls_checks_the_certificate_and_delivers_everything() {
    let s = tls_server("split-tls", &["127.0.0.1"], &["--tls-port", "0"]);
    let port = port_of(&s.server, "TLS");
    let (json, err) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--tls",
        "--ca",
        &s.ca_pem,
        "--clients",
        "10",
        "--messages",
        "50",
        "--no-read",
        "1",
        "--json",
        "--duration-secs",
        "15",
    ]);
    assert_clean_pass(&json, 10 * 50 * 9);
    assert_eq!(json_field(&json, "tls"), "true");
    assert!(
        err.contains("  over:       frames inside TLS, 1 server(s)\n"),
        "{err}"
    );
    // The probe answers through TLS too.
    assert!(!json.contains("\"probe_ns\":null"), "{json}");

    // A CA the tool was not told of: the hint names --ca.
    let (status, _, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            &port,
            "--tls",
            "--clients",
            "2",
            "--duration-secs",
            "10",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("(give --ca FILE for a private CA)"), "{err}");

    // A plain port is not TLS: a clear failure, not a hang.
    let plain = s.server.addr.port().to_string();
    let (status, _, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            &plain,
            "--tls",
            "--ca",
            &s.ca_pem,
            "--clients",
            "2",
            "--duration-secs",
            "10",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("(the server did not answer in TLS: is it a TLS port?)"),
        "{err}"
    );
}

#[test]
fn stress_refuses_a_tls_server_whose_certificate_names_another_host() {
    let s = tls_server("split-tls-name", &["other.example"], &["--tls-port", "0"]);
    let port = port_of(&s.server, "TLS");
    let (status, out, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            &port,
            "--tls",
            "--ca",
            &s.ca_pem,
            "--clients",
            "2",
            "--duration-secs",
            "10",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(out.is_empty());
    assert!(err.contains("stress setup failed: "), "{err}");
    assert!(
        err.contains("TLS: invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{err}"
    );
}

#[test]
fn stress_over_websocket_delivers_everything_through_the_web_port() {
    let server = ServerProc::start(&["--web-port", "0", "--web-origin", "https://chat.example"]);
    let port = port_of(&server, "web");
    let (json, err) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--proto",
        "ws",
        "--clients",
        "10",
        "--messages",
        "50",
        "--channels",
        "2",
        "--no-read",
        "1",
        "--json",
        "--duration-secs",
        "15",
    ]);
    assert_clean_pass(&json, 10 * 50 * 4);
    assert_eq!(json_field(&json, "proto"), "\"ws\"");
    assert!(err.contains("  over:       ws, 1 server(s)\n"), "{err}");
    assert!(!json.contains("\"probe_ns\":null"), "{json}");

    // A page of another site: the server refuses the upgrade, and the run stops with the
    // status.
    let (status, out, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            &port,
            "--proto",
            "ws",
            "--origin",
            "https://elsewhere.example",
            "--clients",
            "2",
            "--duration-secs",
            "10",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(out.is_empty());
    assert!(
        err.contains("the WebSocket upgrade failed: the server answered HTTP 403 Forbidden"),
        "{err}"
    );

    // The origin that --web-origin allows is let in.
    let (json, _) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--proto",
        "ws",
        "--origin",
        "https://chat.example",
        "--clients",
        "4",
        "--messages",
        "10",
        "--json",
        "--duration-secs",
        "15",
    ]);
    assert_clean_pass(&json, 4 * 10 * 3);
}

#[test]
fn stress_refuses_an_origin_without_websocket() {
    let (status, out, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            "1",
            "--origin",
            "https://chat.example",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(out.is_empty());
    assert!(
        err.contains("invalid configuration: --origin needs --proto ws"),
        "{err}"
    );
}

#[test]
fn stress_over_websocket_inside_tls_is_wss() {
    let s = tls_server("split-wss", &["127.0.0.1"], &["--web-port", "0"]);
    let port = port_of(&s.server, "web over TLS");
    let (json, err) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--proto",
        "ws",
        "--tls",
        "--ca",
        &s.ca_pem,
        "--clients",
        "8",
        "--messages",
        "40",
        "--json",
        "--duration-secs",
        "15",
    ]);
    assert_clean_pass(&json, 8 * 40 * 7);
    assert_eq!(json_field(&json, "tls"), "true");
    assert!(
        err.contains("  over:       ws inside TLS, 1 server(s)\n"),
        "{err}"
    );
    // The same port without TLS answers no upgrade (its TLS alert is no HTTP): a clear
    // failure, not a hang.
    let (status, _, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            &port,
            "--proto",
            "ws",
            "--clients",
            "2",
            "--duration-secs",
            "4",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("stress setup failed: "), "{err}");
    assert!(err.contains("the WebSocket upgrade failed: "), "{err}");
}

#[test]
fn stress_over_irc_delivers_everything_through_the_irc_port() {
    let server = ServerProc::start(&["--irc-port", "0", "--server-name", "irc.test"]);
    let port = port_of(&server, "IRC");
    let (json, err) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--proto",
        "irc",
        "--clients",
        "12",
        "--senders",
        "6",
        "--messages",
        "60",
        "--channels",
        "2",
        "--no-read",
        "1",
        "--json",
        "--duration-secs",
        "20",
    ]);
    // Two channels of 6 with 3 senders each: 6 × 60 × 5.
    assert_clean_pass(&json, 1800);
    assert_eq!(json_field(&json, "proto"), "\"irc\"");
    assert!(err.contains("  over:       irc, 1 server(s)\n"), "{err}");
    assert_eq!(json_field(&json, "no_read"), "1");
    assert_eq!(json_field(&json, "no_read_dropped"), "0");
    assert!(!json.contains("\"probe_ns\":null"), "{json}");
}

#[test]
fn stress_over_irc_inside_tls_through_the_irc_tls_port() {
    let s = tls_server("split-ircs", &["127.0.0.1"], &["--irc-tls-port", "0"]);
    let port = port_of(&s.server, "IRC over TLS");
    let (json, err) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--proto",
        "irc",
        "--tls",
        "--ca",
        &s.ca_pem,
        "--clients",
        "8",
        "--messages",
        "30",
        "--json",
        "--duration-secs",
        "20",
    ]);
    assert_clean_pass(&json, 8 * 30 * 7);
    assert_eq!(json_field(&json, "tls"), "true");
    assert!(
        err.contains("  over:       irc inside TLS, 1 server(s)\n"),
        "{err}"
    );
}

/// A real InspIRCd (Debian's `inspircd`, installed by `scripts/setup.sh`) on 127.0.0.1 and a
/// free port, configured as the benchmark's reference server: no flood limits, large send
/// queues. It refuses to run as root, so as root it runs as `nobody` (setpriv execs it, so
/// the child is InspIRCd itself and is stopped by its own pid).
struct InspIrcd {
    child: std::process::Child,
    port: u16,
    _dir: common::TempDir,
}

impl InspIrcd {
    fn start() -> InspIrcd {
        let inspircd = common::tools::require("inspircd");
        let dir = common::TempDir::new("inspircd");
        let run = dir.0.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let d = dir.arg();
        let config = format!(
            r#"<config format="xml">
<define name="dir" value="{d}">
<path configdir="&dir;" datadir="&dir;/run" logdir="&dir;/run" runtimedir="&dir;/run">
<server name="inspircd.test" description="split_client test server" network="Test">
<admin name="test" nick="test" email="test@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="test" allow="127.0.0.1" timeout="60" pingfreq="2m" hardsendq="67108864" softsendq="16777216" recvq="1048576" threshold="1000000" commandrate="100000000" fakelag="yes" localmax="100000" globalmax="100000" maxconnwarn="no" limit="100000" maxchans="1000" resolvehostnames="no" useident="no">
<files motd="&dir;/motd.txt">
<channels users="1000" opers="1000">
<limits maxnick="32" maxchan="65" maxident="32" maxreal="130" maxquit="300" maxtopic="300" maxaway="200">
<performance netbuffersize="65534" softlimit="4000" somaxconn="1024" clonesonconnect="no">
<pid file="&dir;/run/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="&dir;/run/ircd.log">
<options casemapping="ascii" prefixquit="Quit: " syntaxhints="no" hostintopic="yes">
<security hideserver="" userstats="Pu" maxtargets="20">
"#
        );
        let conf = dir.0.join("inspircd.conf");
        std::fs::write(&conf, config).unwrap();
        std::fs::write(dir.0.join("motd.txt"), "split_client test server.\n").unwrap();
        let mut cmd;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let nobody = c"nobody";
            // SAFETY: a valid C string; the result is read at once, before any other call.
            let pw = unsafe { libc::getpwnam(nobody.as_ptr()) };
            assert!(!pw.is_null(), "no user nobody to run InspIRCd as");
            // SAFETY: pw is a valid passwd record (checked above).
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            std::os::unix::fs::chown(&run, Some(uid), Some(gid)).unwrap();
            cmd = Command::new(common::tools::require("setpriv"));
            cmd.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ])
            .arg(&inspircd);
        } else {
            cmd = Command::new(&inspircd);
        }
        cmd.arg("--config").arg(&conf).arg("--nofork");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start inspircd");
        let ircd = InspIrcd {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "InspIRCd did not listen on {port} within 15 s"
            );
            thread::sleep(Duration::from_millis(50));
        }
        ircd
    }
}

impl Drop for InspIrcd {
    fn drop(&mut self) {
        // SAFETY: kill() with the pid of our own child and a valid signal.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stress_over_irc_against_inspircd_delivers_everything() {
    let ircd = InspIrcd::start();
    let port = ircd.port.to_string();
    let (json, err) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--proto",
        "irc",
        "--clients",
        "12",
        "--senders",
        "6",
        "--messages",
        "60",
        "--channels",
        "2",
        "--no-read",
        "1",
        "--json",
        "--duration-secs",
        "20",
    ]);
    // Two channels of 6 with 3 senders each: 6 × 60 × 5.
    assert_clean_pass(&json, 1800);
    assert_eq!(json_field(&json, "proto"), "\"irc\"");
    assert!(err.contains("  over:       irc, 1 server(s)\n"), "{err}");
    // The client that never reads registered and joined (client 0 saw its JOIN) before it
    // stopped reading; InspIRCd's large send queue keeps it connected.
    assert_eq!(json_field(&json, "no_read"), "1");
    assert_eq!(json_field(&json, "no_read_dropped"), "0");
}

#[test]
fn stress_over_irc_fails_when_the_server_is_not_irc() {
    // A frame server is no IRC server: the registration never completes, and the run says so
    // rather than hanging.
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let (status, out, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            &port,
            "--proto",
            "irc",
            "--clients",
            "2",
            "--duration-secs",
            "4",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(
            "stress setup failed: timed out while joining: 0 of 2 clients ready, 0 of 0 no-read \
             clients joined; 2 still in their irc handshake (does the server speak it on that \
             port?)"
        ),
        "{err}"
    );
}

#[test]
fn regflood_measures_the_bystanders_through_a_flood_of_registrations() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    // The server queues 16 hash jobs per hasher thread (one per core but one): more flooders
    // than that get the busy text, whatever the machine.
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    let flooders = (16 * cores + 60).to_string();
    let (json, err) = run_json(&[
        "regflood",
        "127.0.0.1",
        &port,
        "--flooders",
        &flooders,
        "--rounds",
        "30",
        "--json",
        "--duration-secs",
        "60",
    ]);
    let count = |key: &str| -> u64 { json_field(&json, key).parse().unwrap() };
    assert_eq!(json_field(&json, "flooders"), flooders);
    assert_eq!(
        count("registered") + count("busy"),
        flooders.parse::<u64>().unwrap(),
        "{json}"
    );
    assert!(count("registered") >= 1, "{json}");
    assert!(count("busy") >= 1, "{json}");
    for key in ["other", "unanswered", "bystander_faults", "disconnects"] {
        assert_eq!(count(key), 0, "{key} in {json}");
    }
    assert_eq!(json_field(&json, "passed"), "true");
    let baseline = &json[json.find("\"baseline_rtt_ns\":").unwrap()..];
    assert_eq!(json_field(baseline, "samples"), "30", "{json}");
    let rtt = &json[json.find("\"rtt_ns\":").unwrap()..];
    assert!(
        json_field(rtt, "samples").parse::<u64>().unwrap() >= 1,
        "{json}"
    );
    assert!(err.contains("  answers:    "), "{err}");
    assert!(err.trim_end().ends_with("result:     PASS"), "{err}");
}

// ---- Several processes, several server processes --------------------------------------------

#[test]
fn stress_adds_up_several_server_pids_and_lists_each() {
    let server = ServerProc::start(&[]);
    let idle = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let (pid, other) = (server.pid().to_string(), idle.pid().to_string());
    let (json, err) = run_json(&[
        "stress",
        "127.0.0.1",
        &port,
        "--clients",
        "6",
        "--messages",
        "100",
        "--server-pid",
        &pid,
        "--server-pid",
        &other,
        "--json",
        "--duration-secs",
        "15",
    ]);
    assert_clean_pass(&json, 6 * 100 * 5);
    let by_pid = &json[json.find("\"cpu_secs_by_pid\":{").unwrap()..];
    let total: f64 = json_field(&json, "cpu_secs").parse().unwrap();
    let each: f64 = json_field(by_pid, &pid).parse::<f64>().unwrap()
        + json_field(by_pid, &other).parse::<f64>().unwrap();
    assert!((total - each).abs() < 0.0021, "{json}");
    assert!(
        err.contains(&format!("  by process: {pid} ")) && err.contains(&format!(", {other} ")),
        "{err}"
    );
}

/// `split_client stress` options of one shard of the 12-client layout of the shard tests.
fn shard_args<'a>(port: &'a str, shard: &'a str, barrier: &'a str) -> Vec<&'a str> {
    vec![
        "stress",
        "127.0.0.1",
        port,
        "--clients",
        "12",
        "--senders",
        "6",
        "--channels",
        "3",
        "--messages",
        "20",
        "--shard",
        shard,
        "--barrier",
        barrier,
        "--json",
        "--duration-secs",
        "15",
    ]
}

/// Runs the two shards of that layout, one against each port, at once; returns each one's
/// JSON and stderr.
fn run_two_shards(ports: [&str; 2]) -> Vec<(String, String)> {
    let barrier = common::TempDir::new("shards");
    std::fs::create_dir_all(&barrier.0).unwrap();
    let runs: Vec<Run> = ["0/2", "1/2"]
        .iter()
        .zip(ports)
        .map(|(shard, port)| Run::start(&shard_args(port, shard, barrier.arg()), None))
        .collect();
    runs.into_iter()
        .map(|run| {
            let (status, out, err) = run.finish();
            assert!(status.success(), "exit {status:?}, stderr {err}");
            (out.trim_end().to_string(), err)
        })
        .collect()
}

/// Each shard of the layout: clients 0, 2, 4… or 1, 3, 5…; channel c holds clients c, c+3,
/// c+6, c+9, two of them in each shard; senders 0 to 5, two per channel, one per shard. A
/// shard's sender reaches 1 member here, the other shard's sender 2: 3 × (1 + 2) × 20.
fn assert_shard_pass(json: &str, shard: &str, err: &str) {
    assert_clean_pass(json, 180);
    assert_eq!(json_field(json, "shard"), format!("\"{shard}\""));
    assert_eq!(json_field(json, "local_clients"), "6");
    assert_eq!(json_field(json, "clients"), "12");
    // From the other shard's three senders: 3 × 2 members × 20 messages.
    assert!(
        json.contains("\"cross_server_latency_ns\":{\"samples\":120,"),
        "{json}"
    );
    let index = &shard[..1];
    assert!(
        err.contains(&format!(
            "  shard:      {index} of 2: 6 of the 12 clients here, the others in the other \
             processes; deliveries counted to these\n"
        )),
        "{err}"
    );
}

#[test]
fn stress_shards_run_one_layout_from_several_processes_and_check_every_delivery() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    let results = run_two_shards([&port, &port]);
    for ((json, err), shard) in results.iter().zip(["0/2", "1/2"]) {
        assert_shard_pass(json, shard, err);
    }
}

#[test]
fn stress_shards_over_two_cluster_nodes_see_each_others_messages() {
    let redis = common::redis::Redis::start();
    let db = common::postgres::PgCluster::shared().database();
    let (redis_url, db_url) = (redis.url(), db.url());
    let nodes: Vec<ServerProc> = (0..2)
        .map(|_| ServerProc::start(&["--cluster", &redis_url, "--db", &db_url]))
        .collect();
    let ports: Vec<String> = nodes.iter().map(|n| n.addr.port().to_string()).collect();
    let results = run_two_shards([&ports[0], &ports[1]]);
    for ((json, err), shard) in results.iter().zip(["0/2", "1/2"]) {
        assert_shard_pass(json, shard, err);
    }
}

#[test]
fn a_shard_waits_for_the_others_within_its_time_and_stops_when_one_fails() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    // Alone: the other shard never comes.
    let barrier = common::TempDir::new("lonely-shard");
    std::fs::create_dir_all(&barrier.0).unwrap();
    let mut args = shard_args(&port, "0/2", barrier.arg());
    let limit = args.iter().position(|a| *a == "15").unwrap();
    args[limit] = "3";
    let (status, out, err) = Run::start(&args, None).finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(&format!(
            "stress setup failed: timed out at the ready barrier in {}: shard(s) [1] of 2 not \
             there",
            barrier.arg()
        )),
        "{err}"
    );
    assert!(barrier.0.join("failed-0").exists());

    // The other shard cannot reach its server: it says so at the barrier, and this one stops.
    let barrier = common::TempDir::new("failed-shard");
    std::fs::create_dir_all(&barrier.0).unwrap();
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let waiting = Run::start(&shard_args(&port, "0/2", barrier.arg()), None);
    let (status, _, err) = Run::start(&shard_args(&dead, "1/2", barrier.arg()), None).finish();
    assert_eq!(status.code(), Some(1), "{err}");
    let (status, _, err) = waiting.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("stress setup failed: shard 1 of 2 failed (see its own output)"),
        "{err}"
    );
}

#[test]
fn stress_refuses_shards_it_cannot_run() {
    let dir = common::TempDir::new("bad-shard");
    std::fs::create_dir_all(&dir.0).unwrap();
    for (shard, barrier, want) in [
        ("2/2", dir.arg(), "--shard 2/2: expected K/N, K below N"),
        ("x", dir.arg(), "--shard x: expected K/N, K below N"),
        (
            "0/2",
            "/nonexistent/barrier",
            "--barrier /nonexistent/barrier: not a directory",
        ),
    ] {
        let (status, out, err) = Run::start(
            &[
                "stress",
                "127.0.0.1",
                "1",
                "--shard",
                shard,
                "--barrier",
                barrier,
            ],
            None,
        )
        .finish();
        assert_eq!(status.code(), Some(1));
        assert!(out.is_empty());
        assert!(
            err.contains(&format!("invalid configuration: {want}")),
            "{err}"
        );
    }
    let (status, _, err) = Run::start(
        &[
            "stress",
            "127.0.0.1",
            "1",
            "--shard",
            "0/2",
            "--barrier",
            dir.arg(),
            "--no-read",
            "1",
        ],
        None,
    )
    .finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains(
            "invalid configuration: a shard runs against one server and has no no-read clients"
        ),
        "{err}"
    );
}
