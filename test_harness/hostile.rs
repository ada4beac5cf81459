//! End to end: hostile and careless clients against the real server binary. Nothing a client
//! sent is lost, no client can lock another out or stall everyone, and bad flags are refused
//! at start (PROTOCOL.md sections 2, 3, 6 and 7).

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chat::utils_errors as text;
use common::{frame, unstamp, Peer, ServerProc, TempDir};

/// Logs in, sends `/quit` and waits until the server has closed: the name is then known and
/// offline.
fn known_offline(server: &ServerProc, name: &str) {
    let mut p = server.login(name);
    p.send("/quit");
    assert_eq!(p.expect_closed(), Vec::<String>::new());
}

/// A round trip that proves everything this peer sent before was handled.
fn round_trip(p: &mut Peer) {
    p.send("/time");
    let t = p.recv();
    assert!(t.starts_with("Time is: "), "{t:?}");
}

#[test]
fn commands_sent_before_a_half_close_are_all_answered_in_order() {
    let server = ServerProc::start(&[]);
    known_offline(&server, "Bob");
    for i in 0..10 {
        let name = format!("user{i}");
        let mut p = server.connect();
        p.send(&name);
        p.send("/register secretpassword");
        p.send("/msg Bob hello from the pipe");
        p.send("/search pipe");
        p.stream.shutdown(Shutdown::Write).unwrap();
        let got: Vec<String> = p.expect_closed().iter().map(|t| unstamp(t)).collect();
        assert_eq!(
            got,
            [
                text::now_registered(&name),
                text::user_offline("Bob"),
                format!("(T) {name} -> Bob: hello from the pipe"),
            ],
            "run {i}"
        );
        let mut again = server.connect();
        again.send(&name);
        again.expect(&text::registered_name_prompt(&name, 60));
    }
}

#[test]
fn a_piped_client_registers_every_time() {
    let server = ServerProc::start(&[]);
    let port = server.addr.port().to_string();
    for i in 0..10 {
        let name = format!("piped{i}");
        let mut client = Command::new(env!("CARGO_BIN_EXE_client"))
            .args([&name, "127.0.0.1", &port])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the client");
        client
            .stdin
            .take()
            .unwrap()
            .write_all(b"/register secretpassword\n")
            .unwrap();
        let mut out = String::new();
        client
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = client.wait();
        assert!(
            out.contains(&text::now_registered(&name)),
            "run {i}: {out:?}"
        );
        let mut check = server.connect();
        check.send(&name);
        check.expect(&text::registered_name_prompt(&name, 60));
    }
}

#[test]
fn a_registration_committed_after_its_connection_closed_is_enforced_at_once() {
    let server = ServerProc::start(&[]);
    let mut first = server.login("Reggie");
    first.send("/register secretpassword");
    drop(first);
    // Whoever takes the name now, before or after the commit, is asked to identify.
    let started = Instant::now();
    let mut next = loop {
        let mut p = server.login("Reggie");
        let t = p.recv();
        if t == text::registered_name_prompt("Reggie", 60) {
            break p;
        }
        assert_eq!(t, text::name_in_use("Reggie"));
        assert!(started.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(10));
    };
    next.send("/identify secretpassword");
    next.expect(&text::identified("Reggie"));
    next.send("/register anotherpassword");
    next.expect(&text::already_registered("Reggie"));
}

#[test]
fn nothing_is_dropped_whatever_the_read_budget() {
    let server = ServerProc::start(&["--read-budget", "4000000", "--flood-rate", "0"]);
    known_offline(&server, "Bob");
    let mut alice = server.login("Alice");
    alice.send("/create room");
    alice.sync("room");
    let mut kay = server.login("Kay");
    kay.send("/join room");
    alice.expect("Kay has joined");
    const N: usize = 8000;
    let mut burst = frame("/msg Bob waiting for storage");
    for i in 0..N {
        burst.extend_from_slice(&frame(&format!("m{i}")));
    }
    let mut writer = kay.stream.try_clone().unwrap();
    let sender = thread::spawn(move || writer.write_all(&burst).unwrap());
    for i in 0..N {
        assert_eq!(alice.recv(), format!("[Kay] m{i}"));
    }
    sender.join().unwrap();
    kay.expect(&text::user_offline("Bob"));
}

#[test]
fn a_second_server_on_the_same_data_directory_exits_at_once() {
    let dir = TempDir::new("two-servers");
    let first = ServerProc::start(&["--data-dir", dir.arg()]);
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["0", "--bind", "127.0.0.1", "--data-dir", dir.arg()])
        .stdin(Stdio::null())
        .output()
        .expect("run a second server");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&text::data_dir_in_use(dir.arg())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it never listened");
    // The first one is unharmed.
    let mut p = first.login("Alice");
    round_trip(&mut p);
}

#[test]
fn sigterm_with_password_hashes_pending_exits_zero_at_once() {
    let server = ServerProc::start(&[]);
    let mut peers: Vec<Peer> = (0..200)
        .map(|i| {
            let mut p = server.connect();
            p.send(&format!("reg{i}"));
            p.send("/register secretpassword");
            p
        })
        .collect();
    let mut alice = server.login("Alice");
    round_trip(&mut alice);
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(alice.expect_closed(), [text::SHUTTING_DOWN]);
    let last = peers.pop().unwrap();
    drop(last);
}

#[test]
fn sighup_stops_gracefully_and_keeps_every_message() {
    let dir = TempDir::new("sighup");
    let server = ServerProc::start(&["--data-dir", dir.arg(), "--flood-rate", "0"]);
    let mut alice = server.login("Alice");
    alice.send("/create room");
    alice.sync("room");
    let mut kay = server.login("Kay");
    kay.send("/register secretpassword");
    kay.expect(&text::now_registered("Kay"));
    kay.send("/join room");
    alice.expect("Kay has joined");
    let mut burst = Vec::new();
    for i in 0..1000 {
        burst.extend_from_slice(&frame(&format!("marker {i}")));
    }
    kay.send_raw(&burst);
    for i in 0..1000 {
        assert_eq!(alice.recv(), format!("[Kay] marker {i}"));
    }
    server.signal(libc::SIGHUP);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(alice.expect_closed(), [text::SHUTTING_DOWN]);
    let server = ServerProc::start(&["--data-dir", dir.arg()]);
    let mut kay = server.login("Kay");
    kay.expect(&text::registered_name_prompt("Kay", 60));
    kay.send("/identify secretpassword");
    kay.expect(&text::identified("Kay"));
    kay.send("/search marker");
    let t = kay.recv();
    assert!(t.starts_with("20 of 1000 matches for 'marker':"), "{t:?}");
}

#[test]
fn an_offline_flood_cannot_lock_a_user_out() {
    let server = ServerProc::start(&["--flood-rate", "0", "--max-queue", "65536"]);
    known_offline(&server, "victim");
    let senders: Vec<thread::JoinHandle<(usize, usize)>> = (0..20)
        .map(|s| {
            let mut p = server.login(&format!("flooder{s}"));
            thread::spawn(move || {
                let mut burst = Vec::new();
                for i in 0..500 {
                    burst.extend_from_slice(&frame(&format!("/msg victim spam {s}-{i}")));
                }
                p.send_raw(&burst);
                let (mut stored, mut refused) = (0, 0);
                for _ in 0..500 {
                    let t = p.recv();
                    if t == text::user_offline("victim") {
                        stored += 1;
                    } else {
                        assert_eq!(t, text::mailbox_full("victim"));
                        refused += 1;
                    }
                }
                (stored, refused)
            })
        })
        .collect();
    let (mut stored, mut refused) = (0, 0);
    for s in senders {
        let (a, b) = s.join().unwrap();
        stored += a;
        refused += b;
    }
    assert_eq!((stored, refused), (1000, 9000));
    let rss_before = server.rss_kib();
    // The victim logs in, reads everything (a small queue: the delivery must be paced), and
    // is never disconnected.
    let mut victim = server.login("victim");
    let mut lines = Vec::new();
    while lines.len() < 1001 {
        lines.extend(victim.recv().lines().map(String::from));
    }
    assert_eq!(lines[0], "You have 1000 offline messages:");
    assert!(lines[1..]
        .iter()
        .all(|l| l.contains("[flooder") && l.contains("-> victim] spam")));
    round_trip(&mut victim);
    let grown = server.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 32 * 1024,
        "the delivery grew the server by {grown} KiB"
    );
    // Delivered means deleted: the next login is quiet.
    drop(victim);
    thread::sleep(Duration::from_millis(200));
    let mut victim = server.login("victim");
    round_trip(&mut victim);
}

/// Raises this process's open-file limit to its hard limit (the test opens thousands).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

#[test]
fn a_registration_flood_never_stalls_chat() {
    let limit = raise_nofile();
    let flooders = 4500.min(limit.saturating_sub(200) as usize / 2);
    assert!(
        flooders >= 4300,
        "open-file limit {limit} too low for the test"
    );
    let server = ServerProc::start(&["--max-clients", "20000"]);
    let mut alice = server.login("Alice");
    alice.send("/create room");
    alice.sync("room");
    let mut kay = server.login("Kay");
    kay.send("/join room");
    alice.expect("Kay has joined");
    let mut flood = Vec::with_capacity(flooders);
    for i in 0..flooders {
        let mut p = server.connect();
        let mut bytes = frame(&format!("flood{i}"));
        bytes.extend_from_slice(&frame("/register secretpassword"));
        p.send_raw(&bytes);
        flood.push(p);
    }
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let sent = Instant::now();
        kay.send(&format!("ping {i}"));
        assert_eq!(alice.recv(), format!("[Kay] ping {i}"));
        worst = worst.max(sent.elapsed());
    }
    assert!(
        worst < Duration::from_secs(1),
        "a bystander waited {worst:?}"
    );
    // Every flooder got an answer: registered, or the busy text.
    let mut busy = 0;
    for (i, p) in flood.iter_mut().enumerate() {
        let t = p.recv();
        if t == text::BUSY {
            busy += 1;
        } else {
            assert_eq!(t, text::now_registered(&format!("flood{i}")));
        }
    }
    assert!(busy > 0, "the hashers' queue is bounded");
}

#[test]
fn channels_are_capped_and_every_reply_fits_its_reader() {
    let server = ServerProc::start(&["--flood-rate", "0", "--max-queue", "65536"]);
    let mut mallory = server.login("Mallory");
    let mut burst = Vec::new();
    let name = |i: usize| format!("{i:04}{}", "é".repeat(60));
    for i in 0..1100 {
        burst.extend_from_slice(&frame(&format!("/create {}", name(i))));
    }
    mallory.send_raw(&burst);
    let mut refusals = 0;
    while refusals < 100 {
        let t = mallory.recv();
        if t.ends_with("has left") {
            continue;
        }
        let i = 1000 + refusals;
        assert_eq!(t, text::too_many_channels(&name(i), 1000));
        refusals += 1;
    }
    let mut reader = server.login("Reader");
    reader.send("/list");
    let mut names = Vec::new();
    while names.len() < 1000 {
        names.extend(reader.recv().lines().map(String::from));
    }
    assert_eq!(names, (0..1000).map(name).collect::<Vec<_>>());
    reader.send("/who");
    let mut who = reader.recv();
    assert!(who.starts_with(text::WHO_USERS_HEADER), "{who:?}");
    while !who.contains(&format!("{}: Mallory", name(999))) {
        who = reader.recv();
    }
    // Still connected.
    round_trip(&mut reader);
}

#[test]
fn an_unidentified_squatter_cannot_keep_the_owner_out() {
    let server = ServerProc::start(&[]);
    let mut owner = server.login("owner");
    owner.send("/register secretpassword");
    owner.expect(&text::now_registered("owner"));
    owner.send("/quit");
    owner.expect_closed();
    let mut squatter = server.login("owner");
    squatter.expect(&text::registered_name_prompt("owner", 60));
    let mut owner = server.login("owner");
    owner.expect(&text::registered_name_prompt("owner", 60));
    owner.send("/identify secretpassword");
    owner.expect(&text::identified("owner"));
    assert_eq!(
        squatter.expect_closed(),
        [text::identified_elsewhere("owner")]
    );
    let mut late = server.login("owner");
    late.expect(&text::name_in_use("owner"));
}

#[test]
fn password_guessing_is_slowed_across_reconnects() {
    let server = ServerProc::start(&[]);
    let mut owner = server.login("vault");
    owner.send("/register the real password");
    owner.expect(&text::now_registered("vault"));
    owner.send("/quit");
    owner.expect_closed();
    let started = Instant::now();
    let mut checked = 0;
    let mut refused = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let mut p = server.login("vault");
        p.expect(&text::registered_name_prompt("vault", 60));
        p.send(&format!("/identify guess number {checked}"));
        let t = p.recv();
        if t == text::wrong_password("vault") {
            checked += 1;
        } else {
            assert!(
                t.starts_with("Too many wrong passwords for vault."),
                "{t:?}"
            );
            refused += 1;
        }
        p.send("/quit");
        p.expect_closed();
    }
    assert_eq!(checked, 3, "after three wrong guesses the name is locked");
    assert!(refused > 0);
}

#[test]
fn joins_cannot_make_searches_slow() {
    let server = ServerProc::start(&["--flood-rate", "0"]);
    let mut talker = server.login("Talker");
    talker.send("/create a");
    talker.sync("a");
    talker.send("needle in a");
    let mut mallory = server.login("Mallory");
    mallory.send("/create b");
    mallory.sync("b");
    let mut burst = Vec::new();
    for _ in 0..10_000 {
        burst.extend_from_slice(&frame("/join a"));
        burst.extend_from_slice(&frame("/join b"));
    }
    mallory.send_raw(&burst);
    round_trip(&mut mallory);
    // Talker sees 20,000 joins and leaves; drain them.
    let mut seen = 0;
    while seen < 20_000 {
        let t = talker.recv();
        assert!(
            t == "Mallory has joined" || t == "Mallory has left",
            "{t:?}"
        );
        seen += 1;
    }
    mallory.send("/join a");
    talker.expect("Mallory has joined");
    talker.send("needle again");
    mallory.expect("[Talker] needle again");
    let mut bystander = server.login("Bystander");
    let started = Instant::now();
    mallory.send("/search needle");
    bystander.send("/search needle");
    assert_eq!(unstamp(&mallory.recv()), "(T) [a] Talker: needle again");
    bystander.expect("'needle' not found");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "searches took {took:?}");
}

#[test]
fn look_alike_names_cannot_pass_for_a_registered_one() {
    let server = ServerProc::start(&[]);
    let mut alice = server.login("alice");
    alice.send("/register secretpassword");
    alice.expect(&text::now_registered("alice"));
    for name in ["Alice", "ALICE", "\u{0430}lice"] {
        let mut p = server.login(name);
        p.expect(&text::name_too_close(name));
    }
    let mut p = server.login("ali\u{200B}ce");
    p.expect(&text::invalid_name("ali\u{200B}ce"));
    let mut q = server.login("bob\u{202E}");
    q.expect(&text::invalid_name("bob"));
    // Bidi controls never reach others.
    alice.send("/create room");
    alice.sync("room");
    let mut kay = server.login("Kay");
    kay.send("/join room");
    alice.expect("Kay has joined");
    kay.send("evil\u{202E}txet\u{2066}");
    alice.expect("[Kay] eviltxet");
}

#[test]
fn flags_that_cannot_work_are_refused_at_start() {
    for args in [
        &["--name-timeout", "inf"][..],
        &["--name-timeout", "1e300"],
        &["--name-timeout", "0"],
        &["--shutdown-grace", "inf"],
        &["--shutdown-grace=-1"],
        &["--flood-burst", "nan"],
        &["--flood-rate", "nan"],
        &["--max-queue", "0"],
        &["--max-clients", "0"],
        &["--read-budget", "0"],
        &["--max-channels", "0"],
        &["--max-offline", "0"],
        &["--identify-timeout", "0"],
    ] {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["0", "--bind", "127.0.0.1", "--ephemeral"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the server");
        assert!(started.elapsed() < Duration::from_secs(5));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        let flag = args[0].split('=').next().unwrap_or_default();
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} listened");
    }
}

/// A small filesystem of its own (a tmpfs), to fill up for real.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn new(tag: &str, size: &str) -> SmallDisk {
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(&dir.0).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.arg(),
            ])
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill the disk for real: it needs root \
             (as CI and scripts/setup.sh run)"
        );
        SmallDisk { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.0.join(name)
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let one = [0u8; 1];
        while f.write_all(&one).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.arg()).status();
    }
}

#[test]
fn a_full_disk_never_widens_what_search_shows() {
    let disk = SmallDisk::new("full-disk", "4m");
    let data = disk.path("data");
    let data = data.to_str().unwrap();
    let server = ServerProc::start_logged(&["--data-dir", data]);
    let mut alice = server.login("Alice");
    alice.send("/register secretpassword");
    alice.expect(&text::now_registered("Alice"));
    alice.send("/create room");
    alice.sync("room");
    let mut bob = server.login("Bob");
    bob.send("/register secretpassword");
    bob.expect(&text::now_registered("Bob"));
    bob.send("/join room");
    alice.expect("Bob has joined");
    alice.send("visible before");
    bob.expect("[Alice] visible before");
    thread::sleep(Duration::from_millis(100));
    disk.fill();
    // Bob leaves while nothing can be stored; chat goes on.
    bob.send("/leave");
    alice.expect("Bob has left");
    alice.send("secret while full");
    round_trip(&mut alice);
    thread::sleep(Duration::from_millis(300));
    disk.free();
    alice.send("secret after");
    round_trip(&mut alice);
    thread::sleep(Duration::from_millis(300));
    bob.send("/search secret");
    bob.expect("'secret' not found");
    bob.send("/search visible");
    assert_eq!(unstamp(&bob.recv()), "(T) [room] Alice: visible before");
    // Nothing said while the disk was full was lost: it was kept, and stored once it could be.
    alice.send("/search secret");
    let found: Vec<String> = alice.recv().lines().map(unstamp).collect();
    assert_eq!(
        found,
        [
            "(T) [room] Alice: secret while full",
            "(T) [room] Alice: secret after"
        ]
    );
    let log = server.log();
    assert_eq!(
        log.matches("history is not being stored").count(),
        1,
        "said once per episode:\n{log}"
    );
    assert!(log.contains("history is being stored again"), "{log}");
    // A restart does not widen it either.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    let server = ServerProc::start(&["--data-dir", data]);
    let mut bob = server.login("Bob");
    bob.expect(&text::registered_name_prompt("Bob", 60));
    bob.send("/identify secretpassword");
    bob.expect(&text::identified("Bob"));
    bob.send("/search secret");
    bob.expect("'secret' not found");
}
