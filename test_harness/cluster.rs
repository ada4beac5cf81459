//! End to end: several real server binaries as one chat (PROTOCOL.md section 10), on a Redis
//! and a PostgreSQL the tests start themselves. The course's scenario across nodes, the
//! channel and name rules cluster-wide, private and offline messages, registration, search,
//! and the faults: a node's kill -9, Redis restarting or pausing, PostgreSQL restarting.

mod common;

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use chat::utils_errors as text;
use common::postgres::{PgCluster, PgDatabase};
use common::redis::Redis;
use common::{unstamp, Peer, ServerProc};

const QUIET: Duration = Duration::from_millis(300);

struct Cluster {
    nodes: Vec<ServerProc>,
    redis: Redis,
    _db: PgDatabase<'static>,
}

fn node(redis: &Redis, db: &PgDatabase<'_>) -> ServerProc {
    node_with(redis, db, &[])
}

fn node_with(redis: &Redis, db: &PgDatabase<'_>, extra: &[&str]) -> ServerProc {
    let (redis, db) = (redis.url(), db.url());
    let mut args = vec!["--cluster", &redis, "--db", &db];
    args.extend_from_slice(extra);
    ServerProc::start(&args)
}

/// The next IRC line from `r` that `want` accepts (every read bounded by the stream's timeout).
fn irc_until(r: &mut impl BufRead, want: impl Fn(&str) -> bool) -> String {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).unwrap_or(0);
        assert!(n > 0, "the IRC connection ended; saw {seen:?}");
        let line = line.trim_end_matches("\r\n").to_string();
        if want(&line) {
            return line;
        }
        seen.push(line);
    }
}

fn cluster(n: usize) -> Cluster {
    let redis = Redis::start();
    let db = PgCluster::shared().database();
    let nodes = (0..n).map(|_| node(&redis, &db)).collect();
    Cluster {
        nodes,
        redis,
        _db: db,
    }
}

/// Logs in and proves the login is done (the `/time now` probe the client uses: a refused
/// name would answer the invalid-name text for it).
fn login(server: &ServerProc, name: &str) -> Peer {
    let mut p = server.login(name);
    p.send("/time now");
    let t = p.recv();
    assert!(t.starts_with("Time is: "), "{name}: {t:?}");
    p
}

fn round_trip(p: &mut Peer) {
    p.send("/time");
    assert!(p.recv().starts_with("Time is: "));
}

/// Waits until `check` holds, polling; panics past `within`.
fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of one reply that ends with a line `last` starts (for /who and the like).
/// The suite's tests run one at a time: each starts two or three nodes, a redis-server and
/// clients, and a dozen such clusters at once on two cores made a node now and then answer
/// after more than the tests' 5 s.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn reply_of(p: &mut Peer, command: &str) -> String {
    p.send(command);
    p.recv()
}

/// Waits until `p`'s node lists `channel`: a channel created on another node reaches this one
/// through the stream a moment later (under load, up to seconds), and a `/join` sent before
/// that is answered as for a channel that does not exist.
fn until_listed(p: &mut Peer, channel: &str) {
    eventually(
        &format!("{channel} to be known here"),
        Duration::from_secs(5),
        || reply_of(p, "/list").lines().any(|l| l == channel),
    );
}

/// Waits until `p`'s node knows that `name` is online (a login on another node reaches this
/// one through the stream a moment later).
fn until_present(p: &mut Peer, name: &str) {
    eventually(
        &format!("{name} to be known here"),
        Duration::from_secs(5),
        || reply_of(p, "/who").contains(&format!("\n{name}: ")),
    );
}

#[test]
fn the_course_scenario_with_alice_and_kay_on_different_nodes() {
    let _alone = one_at_a_time();
    let c = cluster(2);
    let mut alice = login(&c.nodes[0], "Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = login(&c.nodes[1], "Kay");
    until_listed(&mut kay, "tas");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    kay.send("Hi!");
    alice.expect("[Kay] Hi!");
    alice.send("Hello!");
    kay.expect("[Alice] Hello!");
    kay.expect_silence(QUIET);
    drop(alice);
    kay.expect("Alice has left");
}

/// A `/join` sent on one node right after another node created the channel, before its
/// announcement can have arrived, joins it: the node asks the cluster rather than answer "no
/// such channel". A channel nobody made still gets that answer.
#[test]
fn a_channel_created_a_moment_ago_on_another_node_can_be_joined_at_once() {
    let _alone = one_at_a_time();
    let c = cluster(2);
    let mut alice = login(&c.nodes[0], "Alice");
    let mut kay = login(&c.nodes[1], "Kay");
    for round in 0..20 {
        let channel = format!("fresh{round}");
        alice.send(&format!("/create {channel}"));
        alice.sync(&channel);
        kay.send(&format!("/join {channel}"));
        alice.expect("Kay has joined");
        kay.send("here");
        alice.expect("[Kay] here");
        if round < 19 {
            // Out again, so that Alice's next /create (which leaves this channel) says nothing
            // to Kay.
            kay.send("/leave");
            alice.expect("Kay has left");
        }
    }
    kay.send("/join nowhere");
    kay.expect(&text::no_such_channel("nowhere"));
    kay.send("/join FRESH19");
    kay.expect_silence(QUIET);
    kay.send("still here");
    alice.expect("[Kay] still here");
}

/// Section 10's order: each sender's messages reach every member on every node in the order
/// sent, however the senders' streams interleave (here two senders on two nodes, at full
/// speed, and a reader on each of three nodes).
#[test]
fn each_senders_messages_arrive_in_order_on_every_node() {
    let _alone = one_at_a_time();
    const EACH: usize = 300;
    let c = cluster(3);
    let mut readers: Vec<Peer> = Vec::new();
    let mut first = login(&c.nodes[0], "Reader0");
    first.send("/create order");
    first.sync("order");
    readers.push(first);
    for (i, node) in c.nodes.iter().enumerate().skip(1) {
        let mut r = login(node, &format!("Reader{i}"));
        until_listed(&mut r, "order");
        r.send("/join order");
        readers[0].expect(&format!("Reader{i} has joined"));
        readers.push(r);
    }
    let mut senders: Vec<Peer> = Vec::new();
    for (i, node) in c.nodes.iter().take(2).enumerate() {
        let mut s = login(node, &format!("Sender{i}"));
        until_listed(&mut s, "order");
        s.send("/join order");
        readers[0].expect(&format!("Sender{i} has joined"));
        senders.push(s);
    }
    for n in 0..EACH {
        for (i, s) in senders.iter_mut().enumerate() {
            s.send(&format!("s{i} m{n}"));
        }
    }
    for (r, reader) in readers.iter_mut().enumerate() {
        let mut next = [0usize; 2];
        while next != [EACH, EACH] {
            let line = reader.recv();
            if line.ends_with(" has joined") {
                continue;
            }
            let (who, text) = line
                .strip_prefix('[')
                .and_then(|l| l.split_once("] "))
                .unwrap_or_else(|| panic!("reader {r}: {line:?}"));
            let i: usize = who.trim_start_matches("Sender").parse().unwrap();
            assert_eq!(
                text,
                format!("s{i} m{}", next[i]),
                "reader {r}: sender {i}'s messages out of order"
            );
            next[i] += 1;
        }
    }
}

/// Events cross nodes, not frames: an IRC client on one node and a frame client on another
/// chat, each in its own protocol.
#[test]
fn an_irc_client_on_one_node_chats_with_a_frame_client_on_another() {
    let _alone = one_at_a_time();
    let redis = Redis::start();
    let db = PgCluster::shared().database();
    let frames = node(&redis, &db);
    let irc = node_with(
        &redis,
        &db,
        &["--irc-port", "0", "--server-name", "irc.test"],
    );
    let mut alice = login(&frames, "Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let stream = std::net::TcpStream::connect(irc.addr_of("IRC")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut lines = std::io::BufReader::new(stream);
    out.write_all(b"NICK kay\r\nUSER kay 0 * :Kay\r\n").unwrap();
    irc_until(&mut lines, |l| l.contains(" 422 ") || l.contains(" 376 "));
    out.write_all(b"JOIN #tas\r\n").unwrap();
    let names = irc_until(&mut lines, |l| l.contains(" 353 "));
    assert!(
        names.ends_with(":Alice kay") || names.ends_with(":kay Alice"),
        "{names}"
    );
    alice.expect("kay has joined");
    alice.send("Hi from the frames");
    let got = irc_until(&mut lines, |l| l.contains(" PRIVMSG "));
    assert!(
        got.starts_with(":Alice!") && got.ends_with(" PRIVMSG #tas :Hi from the frames"),
        "{got}"
    );
    out.write_all(b"PRIVMSG #tas :Hello from IRC\r\n").unwrap();
    alice.expect("[kay] Hello from IRC");
    // The people of other nodes are people on IRC too: WHO, WHOIS, a private message.
    out.write_all(b"WHO #tas\r\n").unwrap();
    let mut who = Vec::new();
    loop {
        let l = irc_until(&mut lines, |l| l.contains(" 352 ") || l.contains(" 315 "));
        if l.contains(" 315 ") {
            break;
        }
        who.push(l);
    }
    assert_eq!(who.len(), 2, "{who:?}");
    assert!(who.iter().any(|l| l.contains(" #tas Alice ")), "{who:?}");
    out.write_all(b"WHOIS Alice\r\n").unwrap();
    let whois = irc_until(&mut lines, |l| l.contains(" 311 ") || l.contains(" 401 "));
    assert!(whois.contains(" 311 kay Alice "), "{whois}");
    let chans = irc_until(&mut lines, |l| l.contains(" 319 ") || l.contains(" 318 "));
    assert!(chans.ends_with(":#tas"), "{chans}");
    out.write_all(b"PRIVMSG Alice :psst\r\n").unwrap();
    alice.expect("[kay -> Alice] psst");
    // JOIN of a new channel: the cluster creates it, then the client has its JOIN and NAMES
    // (and the next channel of the list after it).
    out.write_all(b"JOIN #fresh,#tas2\r\n").unwrap();
    let joined = irc_until(&mut lines, |l| l.contains(" JOIN "));
    assert!(
        joined.starts_with(":kay!") && joined.ends_with(" JOIN #fresh"),
        "{joined}"
    );
    let names = irc_until(&mut lines, |l| l.contains(" 353 "));
    assert!(names.ends_with(" #fresh :kay"), "{names}");
    let second = irc_until(&mut lines, |l| l.contains(" JOIN "));
    assert!(second.ends_with(" JOIN #tas2"), "{second}");
    eventually(
        "the new channels reach the other node",
        Duration::from_secs(5),
        || reply_of(&mut alice, "/list") == "tas\nfresh\ntas2",
    );
    out.write_all(b"QUIT :bye\r\n").unwrap();
    alice.expect("kay has left");
}

#[test]
fn channel_rules_hold_across_nodes_and_every_node_sees_the_same() {
    let _alone = one_at_a_time();
    let c = cluster(3);
    let mut a = login(&c.nodes[0], "Ann");
    a.send("/create first");
    a.sync("first");
    let mut b = login(&c.nodes[1], "Bob");
    b.send("/create first");
    b.expect(&text::channel_exists("first"));
    b.send("/join nowhere");
    b.expect(&text::no_such_channel("nowhere"));
    b.send("/create second");
    b.sync("second");
    let mut d = login(&c.nodes[2], "Dee");
    until_listed(&mut d, "first");
    d.send("/join FIRST");
    a.expect("Dee has joined");
    // /list, /who and /members are the same on every node.
    let mut lists = Vec::new();
    let mut whos = Vec::new();
    for p in [&mut a, &mut b, &mut d] {
        lists.push(reply_of(p, "/list"));
        whos.push(reply_of(p, "/who"));
    }
    assert!(lists.iter().all(|l| l == "first\nsecond"), "{lists:?}");
    assert!(whos.iter().all(|w| w == &whos[0]), "{whos:?}");
    assert_eq!(
        whos[0],
        "Users: ------------\nAnn: first\nBob: second\nDee: first\nGroups: -----------\n\
         first: Ann, Dee\nsecond: Bob"
    );
    assert_eq!(reply_of(&mut a, "/members"), "Members of first: Ann, Dee");
    assert_eq!(reply_of(&mut d, "/members"), "Members of first: Ann, Dee");
    // Two nodes creating one channel at once: one succeeds, the other gets the course text.
    for round in 0..5 {
        let name = format!("race{round}");
        a.send(&format!("/create {name}"));
        b.send(&format!("/create {name}"));
        let exists = text::channel_exists(&name);
        let mut refused = 0;
        for p in [&mut a, &mut b] {
            p.send("/time");
            let mut t = p.recv();
            while t.ends_with("has left") || t.ends_with("has joined") {
                t = p.recv();
            }
            if t == exists {
                refused += 1;
                assert!(p.recv().starts_with("Time is: "));
            } else {
                assert!(t.starts_with("Time is: "), "{t:?}");
            }
        }
        assert_eq!(refused, 1, "round {round}");
    }
    // Channels created at the same moment on three nodes: /list shows them in one order,
    // the same everywhere.
    for round in 0..5 {
        for (p, who) in [(&mut a, "a"), (&mut b, "b"), (&mut d, "d")] {
            p.send(&format!("/create at{round}{who}"));
        }
    }
    for p in [&mut a, &mut b, &mut d] {
        p.send("/time");
        while !p.recv().starts_with("Time is: ") {}
    }
    let mut last = Vec::new();
    eventually(
        "one /list order on every node",
        Duration::from_secs(5),
        || {
            let lists: Vec<String> = [&mut a, &mut b, &mut d]
                .into_iter()
                .map(|p| {
                    p.send("/list");
                    let mut t = p.recv();
                    while t.ends_with("has left") || t.ends_with("has joined") {
                        t = p.recv();
                    }
                    t
                })
                .collect();
            let same = lists.iter().all(|l| l == &lists[0]) && lists[0].lines().count() == 22;
            last = lists;
            same
        },
    );
    assert!(last[0].starts_with("first\nsecond\nrace0"), "{last:?}");
}

#[test]
fn names_are_unique_across_nodes_even_when_two_race_for_one() {
    let _alone = one_at_a_time();
    let c = cluster(2);
    for round in 0..5 {
        let name = format!("Racer{round}");
        let mut p = c.nodes[0].connect();
        let mut q = c.nodes[1].connect();
        p.send(&name);
        q.send(&name);
        p.send("/time now");
        q.send("/time now");
        let mut won = 0;
        for peer in [&mut p, &mut q] {
            let t = peer.recv();
            if t.starts_with("Time is: ") {
                won += 1;
            } else {
                assert_eq!(t, text::name_in_use(&name), "round {round}");
                assert_eq!(peer.recv(), text::invalid_name("/time now"));
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one gets the name");
    }
    // Look-alikes too.
    let _alice = login(&c.nodes[0], "alice");
    let mut other = c.nodes[1].login("ALICE");
    other.expect(&text::name_in_use("ALICE"));
}

#[test]
fn private_and_offline_messages_find_their_recipient_on_any_node() {
    let _alone = one_at_a_time();
    let c = cluster(3);
    let mut alice = login(&c.nodes[0], "Alice");
    let mut kay = login(&c.nodes[1], "Kay");
    until_present(&mut alice, "Kay");
    alice.send("/msg Kay psst");
    kay.expect("[Alice -> Kay] psst");
    kay.send("/msg alice back at you");
    alice.expect("[Kay -> Alice] back at you");
    kay.send("/quit");
    kay.expect_closed();
    eventually("Kay to be gone from node 0", Duration::from_secs(5), || {
        !reply_of(&mut alice, "/who").contains("Kay:")
    });
    alice.send("/msg Kay while you were out");
    alice.expect(&text::user_offline("Kay"));
    // Node 2 hears of Kay's logout a moment later, maybe.
    let mut kay = None;
    eventually(
        "Kay's name to be free on node 2",
        Duration::from_secs(5),
        || {
            let mut p = c.nodes[2].login("Kay");
            let t = p.recv();
            if t == text::name_in_use("Kay") {
                return false;
            }
            kay = Some((p, t));
            true
        },
    );
    let (_kay, first) = kay.unwrap();
    assert!(
        first.starts_with("You have 1 offline message:"),
        "{first:?}"
    );
    assert_eq!(
        unstamp(first.lines().nth(1).unwrap()),
        "(T) [Alice -> Kay] while you were out"
    );
    alice.send("/msg Nobody hi");
    alice.expect(&text::no_such_user("Nobody"));
}

/// A private message sent on one node to a user who logged in on another a moment ago, before
/// the sender's node heard of it, is stored as an offline message (the sender is told so) and
/// delivered on the other node at once, not at the recipient's next login.
#[test]
fn a_message_to_a_user_who_just_logged_in_elsewhere_is_delivered_at_once() {
    let _alone = one_at_a_time();
    let c = cluster(2);
    let mut alice = login(&c.nodes[0], "Alice");
    let kay_gone = |alice: &mut Peer| {
        eventually("Kay to be gone from node 0", Duration::from_secs(5), || {
            !reply_of(alice, "/who").contains("Kay:")
        })
    };
    // Kay has been here before: node 0 knows the name.
    let mut kay = login(&c.nodes[1], "Kay");
    until_present(&mut alice, "Kay");
    kay.send("/quit");
    kay.expect_closed();
    kay_gone(&mut alice);
    for round in 0..10 {
        let mut kay = c.nodes[1].login("Kay");
        let said = format!("hi {round}");
        alice.send(&format!("/msg Kay {said}"));
        // Delivered directly (node 0 knew by then), at login, or stored and delivered now.
        let want = format!("[Alice -> Kay] {said}");
        let mut seen = Vec::new();
        loop {
            let got = kay.recv();
            if got.contains(&want) {
                break;
            }
            seen.push(got);
            assert!(seen.len() < 20, "round {round}: {seen:?}");
        }
        // What Alice was told (nothing, or that Kay was offline) is not the point here; it is
        // read before the next /who, which must get its own answer.
        round_trip_skipping(&mut alice);
        kay.send("/quit");
        kay.expect_closed();
        kay_gone(&mut alice);
    }
}

/// A `/time` round trip that skips whatever arrives before its answer.
fn round_trip_skipping(p: &mut Peer) {
    p.send("/time");
    for _ in 0..20 {
        if p.recv().starts_with("Time is: ") {
            return;
        }
    }
    panic!("no answer to /time among 20 frames");
}

/// A mailbox's bound holds across nodes: the database counts what every node stored.
#[test]
fn the_offline_bound_counts_what_every_node_stored() {
    let _alone = one_at_a_time();
    let redis = Redis::start();
    let db = PgCluster::shared().database();
    let nodes: Vec<ServerProc> = (0..2)
        .map(|_| node_with(&redis, &db, &["--max-offline", "2"]))
        .collect();
    let mut kay = login(&nodes[1], "Kay");
    kay.send("/quit");
    kay.expect_closed();
    let mut alice = login(&nodes[0], "Alice");
    eventually("Kay to be offline", Duration::from_secs(5), || {
        alice.send("/msg Kay one");
        alice.recv() == text::user_offline("Kay")
    });
    alice.send("/msg Kay two");
    alice.expect(&text::user_offline("Kay"));
    // The other node has stored nothing for Kay itself: the database says the box is full.
    let mut bob = login(&nodes[1], "Bob");
    bob.send("/msg Kay three");
    bob.expect(&text::mailbox_full("Kay"));
    let mut kay = nodes[1].login("Kay");
    let got = kay.recv();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 3, "{got:?}");
    assert_eq!(lines[0], "You have 2 offline messages:");
    assert!(lines[1].ends_with(") [Alice -> Kay] one"), "{got:?}");
    assert!(lines[2].ends_with(") [Alice -> Kay] two"), "{got:?}");
    kay.expect_silence(QUIET);
}

#[test]
fn a_name_registered_on_one_node_identifies_on_another() {
    let _alone = one_at_a_time();
    let c = cluster(3);
    let mut reg = login(&c.nodes[0], "Reg");
    reg.send("/register secretpassword");
    reg.expect(&text::now_registered("Reg"));
    reg.send("/quit");
    reg.expect_closed();
    // A squatter on node 2 holds it unidentified; the owner identifies on node 1.
    let mut squatter = None;
    eventually("Reg to be free", Duration::from_secs(5), || {
        let mut p = c.nodes[2].login("Reg");
        let ok = p.recv() == text::registered_name_prompt("Reg", 60);
        if ok {
            squatter = Some(p);
        }
        ok
    });
    let mut squatter = squatter.unwrap();
    let mut owner = c.nodes[1].login("Reg");
    owner.expect(&text::registered_name_prompt("Reg", 60));
    owner.send("/identify wrongpassword");
    owner.expect(&text::wrong_password("Reg"));
    owner.send("/identify secretpassword");
    owner.expect(&text::identified("Reg"));
    assert_eq!(
        squatter.expect_closed(),
        [text::identified_elsewhere("Reg")]
    );
    let mut late = c.nodes[0].login("Reg");
    late.expect(&text::name_in_use("Reg"));
}

#[test]
fn search_on_any_node_finds_what_the_rules_allow_and_nothing_else() {
    let _alone = one_at_a_time();
    let c = cluster(3);
    let mut alice = login(&c.nodes[0], "Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = login(&c.nodes[1], "Kay");
    until_listed(&mut kay, "tas");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    alice.send("the needle one");
    kay.expect("[Alice] the needle one");
    alice.send("/msg Kay a private needle");
    kay.expect("[Alice -> Kay] a private needle");
    let mut carol = login(&c.nodes[2], "Carol");
    until_listed(&mut carol, "tas");
    carol.send("/join tas");
    alice.expect("Carol has joined");
    kay.expect("Carol has joined");
    kay.send("needle after carol");
    alice.expect("[Kay] needle after carol");
    carol.expect("[Kay] needle after carol");
    std::thread::sleep(Duration::from_millis(300));
    kay.send("/search needle");
    let got: Vec<String> = kay.recv().lines().map(unstamp).collect();
    assert_eq!(
        got,
        [
            "(T) [tas] Alice: the needle one",
            "(T) Alice -> Kay: a private needle",
            "(T) [tas] Kay: needle after carol",
        ]
    );
    carol.send("/search needle");
    assert_eq!(unstamp(&carol.recv()), "(T) [tas] Kay: needle after carol");
}

#[test]
fn a_killed_node_is_noticed_within_5_seconds() {
    let _alone = one_at_a_time();
    let mut c = cluster(2);
    let mut alice = login(&c.nodes[0], "Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = login(&c.nodes[1], "Kay");
    until_listed(&mut kay, "tas");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    let dead = c.nodes.remove(0);
    let killed = Instant::now();
    dead.kill9();
    kay.stream
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    assert_eq!(
        kay.recv_raw_within(Duration::from_secs(6))
            .map(|r| common::strip(&r)),
        Some("Alice has left".to_string())
    );
    let noticed = killed.elapsed();
    assert!(
        noticed < Duration::from_secs(5),
        "noticed after {noticed:?}"
    );
    // Its names are free again.
    let _alice = login(&c.nodes[0], "Alice");
    let _ = &c.redis;
}

#[test]
fn redis_restarting_loses_nothing_and_the_cluster_is_whole_again_within_5_seconds() {
    let _alone = one_at_a_time();
    let mut c = cluster(2);
    let mut alice = login(&c.nodes[0], "Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = login(&c.nodes[1], "Kay");
    until_listed(&mut kay, "tas");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    let mut reg = login(&c.nodes[0], "Reg");
    reg.send("/register secretpassword");
    reg.expect(&text::now_registered("Reg"));
    reg.send("/quit");
    reg.expect_closed();
    let mut owner = None;
    eventually(
        "node 1 to know Reg is registered",
        Duration::from_secs(5),
        || {
            let mut p = c.nodes[1].login("Reg");
            let ok = p.recv() == text::registered_name_prompt("Reg", 60);
            if ok {
                owner = Some(p);
            }
            ok
        },
    );
    let mut owner = owner.unwrap();
    c.redis.stop();
    std::thread::sleep(Duration::from_millis(500));
    // Each node goes on serving its own clients.
    round_trip(&mut alice);
    // A right password while the cluster cannot give the name: refused, and it stays as it
    // was (unidentified, free to try again), never told it is identified.
    owner.send("/identify secretpassword");
    owner.expect(text::STORAGE_FAILED);
    // What needs the cluster is refused, and the refusal changes nothing: Alice stays in tas
    // (Kay would see her leave).
    alice.send("/create elsewhere");
    alice.expect(text::STORAGE_FAILED);
    assert!(reply_of(&mut alice, "/members").starts_with("Members of tas: Alice"));
    for i in 0..5 {
        kay.send(&format!("while away {i}"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let back = Instant::now();
    c.redis.resume();
    // What Kay said meanwhile arrives late, in order, nothing lost.
    for i in 0..5 {
        let t = alice
            .recv_raw_within(Duration::from_secs(6))
            .map(|r| common::strip(&r));
        assert_eq!(t, Some(format!("[Kay] while away {i}")));
    }
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "{:?}",
        back.elapsed()
    );
    owner.send("/identify secretpassword");
    owner.expect(&text::identified("Reg"));
    // Whole again: names and presence are back in Redis.
    let mut late = c.nodes[0].login("Kay");
    late.expect(&text::name_in_use("Kay"));
    let mut dee = login(&c.nodes[0], "Dee");
    assert_eq!(
        reply_of(&mut dee, "/who"),
        "Users: ------------\nAlice: tas\nDee: -\nKay: tas\nReg: -\nGroups: -----------\n\
         tas: Alice, Kay"
    );
    kay.send("after");
    alice.expect("[Kay] after");
    // A node started after the restart (Redis forgot every node number) is a node of its
    // own: it hears the others and they hear it.
    let third = node(&c.redis, &c._db);
    let mut carol = login(&third, "Carol");
    eventually("the new node knows tas", Duration::from_secs(5), || {
        reply_of(&mut carol, "/list") == "tas"
    });
    carol.send("/join tas");
    alice.expect("Carol has joined");
    kay.expect("Carol has joined");
    carol.send("hello from the third");
    alice.expect("[Carol] hello from the third");
    kay.expect("[Carol] hello from the third");
    alice.send("welcome");
    carol.expect("[Alice] welcome");
}

#[test]
fn a_paused_redis_is_a_delay_not_a_departure() {
    let _alone = one_at_a_time();
    let c = cluster(2);
    let mut alice = login(&c.nodes[0], "Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = login(&c.nodes[1], "Kay");
    until_listed(&mut kay, "tas");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    c.redis.signal(libc::SIGSTOP);
    kay.send("during the pause");
    std::thread::sleep(Duration::from_secs(3));
    c.redis.signal(libc::SIGCONT);
    let t = alice
        .recv_raw_within(Duration::from_secs(5))
        .map(|r| common::strip(&r));
    assert_eq!(t, Some("[Kay] during the pause".to_string()));
    alice.send("still here?");
    kay.expect("[Alice] still here?");
    alice.expect_silence(Duration::from_secs(2));
}

#[test]
fn postgresql_restarting_stops_only_what_needs_it() {
    let _alone = one_at_a_time();
    let redis = Redis::start();
    let pg = PgCluster::start();
    let db = pg.database();
    let (r, d) = (redis.url(), db.url());
    let a = ServerProc::start(&["--cluster", &r, "--db", &d]);
    let b = ServerProc::start(&["--cluster", &r, "--db", &d]);
    let mut alice = login(&a, "Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = login(&b, "Kay");
    until_listed(&mut kay, "tas");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    pg.stop();
    kay.send("chat goes on");
    alice.expect("[Kay] chat goes on");
    kay.send("/search chat");
    kay.expect(text::STORAGE_FAILED);
    pg.resume();
    eventually("search to work again", Duration::from_secs(10), || {
        kay.send("/search goes");
        let t = kay.recv();
        t != text::STORAGE_FAILED
    });
}
