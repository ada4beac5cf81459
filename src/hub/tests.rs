//! The hub's rules, tested without sockets: through the frame protocol's command handling,
//! with every event rendered as the course's frames.
use std::collections::{HashMap, VecDeque};

use super::*;
use crate::clock::ManualClock;
use crate::frame::{self, Frame, FRAME_LEN};
use crate::proto;
use crate::sonnets::Sonnets;
use crate::storage::{HashJob, Reply, Request, Startup};

/// 2026-03-04 05:06:07 UTC: the fixed time of every hub test.
pub(crate) const NOW: i64 = 1_772_600_767;

/// A sink that records everything, for tests; events are rendered as frames.
#[derive(Default)]
pub(crate) struct Recorder {
    pub sent: Vec<(ConnId, String)>,
    pub closed: Vec<ConnId>,
    pub reasons: Vec<(ConnId, String)>,
    pub stored: Vec<Request>,
    pub hashed: Vec<HashJob>,
    /// The hashers' queue is full: refuse every job.
    pub hash_full: bool,
    pub flush_reports: Vec<ConnId>,
    pub resumed: Vec<ConnId>,
    /// When set, the cluster link takes every operation (kept here); otherwise it refuses.
    pub cluster_ops: Option<Vec<crate::cluster::ClusterOp>>,
}

impl Sink for Recorder {
    fn emit(&mut self, to: ConnId, out: &Out<'_>) {
        let mut buf = Vec::new();
        proto::frame::render(out, &mut buf);
        for f in buf.chunks(FRAME_LEN) {
            self.sent.push((to, frame::decode(f).into_owned()));
        }
    }
    fn close(&mut self, conn: ConnId, reason: Option<&str>) {
        self.closed.push(conn);
        if let Some(reason) = reason {
            self.reasons.push((conn, reason.to_string()));
        }
    }
    fn store(&mut self, request: Request) {
        self.stored.push(request);
    }
    fn cluster(&mut self, op: crate::cluster::ClusterOp) -> bool {
        match self.cluster_ops.as_mut() {
            Some(ops) => {
                ops.push(op);
                true
            }
            None => false,
        }
    }
    fn hash(&mut self, job: HashJob) -> bool {
        if self.hash_full {
            return false;
        }
        self.hashed.push(job);
        true
    }
    fn report_flush(&mut self, conn: ConnId) {
        self.flush_reports.push(conn);
    }
    fn resume(&mut self, conn: ConnId) {
        self.resumed.push(conn);
    }
}

impl Recorder {
    pub fn take(&mut self) -> Vec<(ConnId, String)> {
        std::mem::take(&mut self.sent)
    }
}

/// The hub as the event loop drives it: frames of a waiting connection are held (as the loop
/// holds its input) and handed over once the hub resumes it.
pub(crate) struct Fixture {
    pub hub: Hub,
    pub out: Recorder,
    pub clock: ManualClock,
    held: HashMap<ConnId, VecDeque<Frame>>,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with(None, Startup::default())
    }

    /// A hub remembering `startup`, as if storage had held it.
    pub fn with(sonnets: Option<Sonnets>, startup: Startup) -> Self {
        Self::with_limits(sonnets, startup, Limits::default())
    }

    pub fn with_limits(sonnets: Option<Sonnets>, startup: Startup, limits: Limits) -> Self {
        let clock = ManualClock::new(NOW);
        Fixture {
            hub: Hub::new(HubConfig {
                clock: Box::new(clock.clone()),
                sonnets,
                startup,
                limits,
            }),
            out: Recorder::default(),
            clock,
            held: HashMap::new(),
        }
    }

    /// A new frame connection.
    pub fn connect(&mut self, conn: ConnId) {
        self.hub.connect(conn, Proto::Frame, None);
    }

    /// A frame connection from `addr`.
    pub fn connect_from(&mut self, conn: ConnId, addr: &str) {
        self.hub
            .connect(conn, Proto::Frame, Some(addr.parse().unwrap()));
    }

    /// Hands over held frames of connections that no longer wait, as the loop does.
    fn drain_held(&mut self) {
        loop {
            let ready = self
                .held
                .iter()
                .find(|(c, q)| !q.is_empty() && !self.hub.is_waiting(**c))
                .map(|(c, _)| *c);
            let Some(conn) = ready else { return };
            let raw = self.held.get_mut(&conn).and_then(VecDeque::pop_front);
            if let Some(raw) = raw {
                proto::frame::handle(&mut self.hub, conn, &raw, &mut self.out);
            }
        }
    }

    /// A raw frame from a connection, handled now or held while it waits.
    pub fn raw(&mut self, conn: ConnId, raw: &Frame) -> Vec<(ConnId, String)> {
        let queue = self.held.entry(conn).or_default();
        if self.hub.is_waiting(conn) || !queue.is_empty() {
            queue.push_back(*raw);
        } else {
            proto::frame::handle(&mut self.hub, conn, raw, &mut self.out);
        }
        self.drain_held();
        self.out.take()
    }

    pub fn send(&mut self, conn: ConnId, line: &str) -> Vec<(ConnId, String)> {
        let f = frame::pad(line).unwrap();
        self.raw(conn, &f)
    }

    /// Logs in an unregistered name that has no offline messages: no storage round trip.
    pub fn login(&mut self, conn: ConnId, name: &str) {
        self.connect(conn);
        assert_eq!(self.send(conn, name), vec![]);
        assert!(!self.hub.is_waiting(conn));
    }

    /// The offline fetch the hub just asked for: the connection and the key.
    pub fn fetched(&mut self) -> (ConnId, String) {
        match self.out.stored.pop() {
            Some(Request::FetchOffline { conn, key, .. }) => (conn, key),
            other => panic!("expected an offline fetch, got {other:?}"),
        }
    }

    /// Hands the hub a storage reply; returns the frames it sent.
    pub fn answer(&mut self, reply: Reply) -> Vec<(ConnId, String)> {
        self.hub.storage_reply(reply, &mut self.out);
        self.drain_held();
        self.out.take()
    }

    /// The loop wrote what was queued for `conn`; returns the frames sent then.
    pub fn flushed(&mut self, conn: ConnId) -> Vec<(ConnId, String)> {
        self.hub.flushed(conn, &mut self.out);
        self.drain_held();
        self.out.take()
    }

    /// The requests sent to storage since the last call.
    pub fn stored(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.out.stored)
    }

    /// The password jobs sent to the hashers since the last call.
    pub fn hashed(&mut self) -> Vec<HashJob> {
        std::mem::take(&mut self.out.hashed)
    }
}

/// The key of a name.
pub(crate) fn key(name: &str) -> String {
    crate::names::name_key(name).to_string()
}

fn one(conn: ConnId, s: &str) -> Vec<(ConnId, String)> {
    vec![(conn, s.to_string())]
}

#[test]
fn login_is_silent_and_names_are_checked() {
    let mut f = Fixture::new();
    f.connect(1);
    assert_eq!(f.send(1, "   "), vec![]);
    assert_eq!(
        f.send(1, "two words"),
        one(
            1,
            "Invalid name two words: a name is 1 to 32 characters without spaces."
        )
    );
    let long = "x".repeat(33);
    assert_eq!(f.send(1, &long), one(1, &text::invalid_name(&long)));
    assert_eq!(
        f.send(1, "a\x1bb"),
        one(
            1,
            "Invalid name ab: a name is 1 to 32 characters without spaces."
        )
    );
    assert_eq!(f.send(1, &"é".repeat(32)), vec![]);
    assert_eq!(f.hub.name_of(1), Some("é".repeat(32).as_str()));
    f.connect(2);
    assert_eq!(
        f.send(2, &"é".repeat(32)),
        one(2, &text::name_in_use(&"é".repeat(32)))
    );
    assert_eq!(f.send(2, "Bob"), vec![]);
}

#[test]
fn chat_outside_a_channel() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(f.send(1, "hello"), one(1, text::NOT_IN_CHANNEL));
}

#[test]
fn create_join_chat_leave_flow() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Kay");
    f.login(3, "Bob");
    assert_eq!(f.send(1, "/create tas"), vec![]);
    assert_eq!(f.send(2, "/join tas"), one(1, "Kay has joined"));
    assert_eq!(f.send(2, "Hi!"), one(1, "[Kay] Hi!"));
    assert_eq!(f.send(1, "Hello!"), one(2, "[Alice] Hello!"));
    assert_eq!(
        f.send(3, "/join tas"),
        vec![(1, "Bob has joined".into()), (2, "Bob has joined".into())]
    );
    assert_eq!(f.send(2, "/join tas"), vec![]);
    assert_eq!(
        f.send(2, "/create other"),
        vec![(1, "Kay has left".into()), (3, "Kay has left".into())]
    );
    assert_eq!(
        f.send(1, "/join other"),
        vec![(3, "Alice has left".into()), (2, "Alice has joined".into())]
    );
    f.hub.disconnect(1, None, &mut f.out);
    assert_eq!(f.out.take(), one(2, "Alice has left"));
    // The name is free again.
    f.login(4, "Alice");
}

#[test]
fn join_errors_change_nothing() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Kay");
    f.send(1, "/create a");
    f.send(2, "/join a");
    assert_eq!(
        f.send(2, "/join nowhere"),
        one(2, "No channel named nowhere exists. Try '/create nowhere'?")
    );
    assert_eq!(
        f.send(2, "/join"),
        one(
            2,
            "/join command must be followed by the name of a channel to join."
        )
    );
    assert_eq!(f.send(2, "/join    "), one(2, text::JOIN_REQUIRES_ARGUMENT));
    assert_eq!(
        f.send(2, "/create a"),
        one(2, "Room a already exists, so cannot be created.")
    );
    assert_eq!(
        f.send(2, "/create"),
        one(
            2,
            "/create command must be followed by the name of a channel to create"
        )
    );
    assert_eq!(
        f.send(2, &format!("/create {}", "c".repeat(65))),
        one(2, "Channel names are at most 64 characters.")
    );
    assert_eq!(
        f.send(2, &format!("/join {}", "c".repeat(65))),
        one(2, text::CHANNEL_NAME_TOO_LONG)
    );
    assert_eq!(f.send(2, "/list"), one(2, "a"));
    // Kay is still in a: its messages still reach Alice.
    assert_eq!(f.send(2, "still here"), one(1, "[Kay] still here"));
}

#[test]
fn control_only_argument_counts_as_missing() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(
        f.send(1, "/create \x01\x02"),
        one(1, text::CREATE_REQUIRES_ARGUMENT)
    );
    assert_eq!(f.send(1, "/create a\x1b[2Jb"), vec![]);
    assert_eq!(f.send(1, "/list"), one(1, "a[2Jb"));
}

#[test]
fn channel_names_may_hold_spaces() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Kay");
    assert_eq!(f.send(1, "/create  the lounge  "), vec![]);
    assert_eq!(f.send(2, "/join the lounge"), one(1, "Kay has joined"));
    let sixty_four = "é".repeat(64);
    assert_eq!(
        f.send(1, &format!("/create {sixty_four}")),
        one(2, "Alice has left")
    );
}

#[test]
fn list_in_creation_order_and_nothing_when_empty() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(f.send(1, "/list"), vec![]);
    for c in ["zeta", "alpha", "mid"] {
        f.send(1, &format!("/create {c}"));
    }
    assert_eq!(f.send(1, "/list"), one(1, "zeta\nalpha\nmid"));
}

#[test]
fn list_packs_many_channels_into_frames() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    let names: Vec<String> = (0..100).map(|i| format!("channel-{i:03}")).collect();
    for c in &names {
        f.send(1, &format!("/create {c}"));
    }
    let out = f.send(1, "/list");
    assert!(out.len() > 1);
    assert!(out.iter().all(|(c, t)| *c == 1 && t.len() <= FRAME_LEN));
    let got: Vec<&str> = out.iter().flat_map(|(_, t)| t.lines()).collect();
    assert_eq!(got, names);
}

#[test]
fn unknown_commands_name_only_the_word() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(
        f.send(1, "/joinx a b c"),
        one(
            1,
            "/joinx is not a valid control message. Valid messages are /create, /list, and /join."
        )
    );
}

#[test]
fn empty_frames_are_ignored() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(f.send(1, ""), vec![]);
    assert_eq!(f.send(1, "\x01\x02  "), vec![]);
}

#[test]
fn control_characters_are_removed_from_chat() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Kay");
    f.send(1, "/create a");
    f.send(2, "/join a");
    assert_eq!(
        f.send(2, "\x1b[31mred\x1b[0m\r\nfake"),
        one(1, "[Kay] [31mred[0mfake")
    );
}

#[test]
fn over_long_relays_keep_the_prefix_on_every_piece() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    let name = "N".repeat(32);
    f.login(2, &name);
    f.send(1, "/create a");
    f.send(2, "/join a");
    let mut raw = [0xffu8; FRAME_LEN]; // 200 invalid bytes: 600 bytes of U+FFFD
    raw[0] = b'x';
    let out = f.raw(2, &raw);
    let prefix = format!("[{name}] ");
    assert!(out.len() > 1);
    let mut body = String::new();
    for (to, t) in &out {
        assert_eq!(*to, 1);
        assert!(t.len() <= FRAME_LEN);
        assert!(t.starts_with(&prefix), "{t}");
        body.push_str(&t[prefix.len()..]);
    }
    assert_eq!(body, frame::decode(&raw));
}

#[test]
fn long_replies_are_cut_not_truncated() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    let channel = "€".repeat(64); // 192 bytes: the reply is longer than a frame
    let out = f.send(1, &format!("/join {channel}"));
    assert_eq!(out.len(), 3); // 425 bytes
    let joined: String = out.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(joined, text::no_such_channel(&channel));
}

#[test]
fn frames_from_unnamed_connections_are_never_broadcast() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.send(1, "/create a");
    f.connect(2);
    f.hub.disconnect(2, None, &mut f.out);
    assert_eq!(f.out.take(), vec![]);
}

#[test]
fn time_uses_the_injected_clock() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(f.send(1, "/time"), one(1, "Time is: 04.03.26,05:06"));
}

#[test]
fn who_lists_users_sorted_then_non_empty_groups() {
    let mut f = Fixture::new();
    f.login(1, "zed");
    f.login(2, "Amy");
    f.login(3, "bob");
    f.connect(4); // no name yet: not listed
    f.send(1, "/create room");
    f.send(2, "/create empty");
    f.send(2, "/create lounge");
    f.send(1, "/join lounge");
    f.send(3, "/create solo");
    f.out.take();
    assert_eq!(
        f.send(3, "/who"),
        one(
            3,
            "Users: ------------\nAmy: lounge\nbob: solo\nzed: lounge\nGroups: -----------\nlounge: Amy, zed\nsolo: bob"
        )
    );
    f.send(3, "/leave");
    let who = f.send(3, "/who");
    assert!(who[0].1.contains("bob: -\n"), "{who:?}");
}

#[test]
fn who_past_200_users_says_how_many_more() {
    let mut f = Fixture::new();
    for i in 0..250 {
        f.login(i, &format!("u{i:03}"));
    }
    let out = f.send(0, "/who");
    assert!(out.iter().all(|(c, t)| *c == 0 && t.len() <= FRAME_LEN));
    let lines: Vec<&str> = out.iter().flat_map(|(_, t)| t.split('\n')).collect();
    assert_eq!(lines[0], "Users: ------------");
    assert_eq!(lines[1], "u000: -");
    assert_eq!(lines[200], "u199: -");
    assert_eq!(lines[201], "… and 50 more");
    assert_eq!(lines[202], "Groups: -----------");
    assert_eq!(lines.len(), 203);
}

#[test]
fn members_sorted_and_packed() {
    let mut f = Fixture::new();
    f.login(1, "zed");
    f.login(2, "Amy");
    assert_eq!(f.send(1, "/members"), one(1, text::NOT_IN_CHANNEL));
    f.send(1, "/create room");
    f.send(2, "/join room");
    f.out.take();
    assert_eq!(f.send(1, "/members"), one(1, "Members of room: Amy, zed"));
}

#[test]
fn leave_tells_the_others_and_replies_nothing() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Kay");
    assert_eq!(f.send(1, "/leave"), one(1, text::NOT_IN_CHANNEL));
    f.send(1, "/create room");
    f.send(2, "/join room");
    f.out.take();
    assert_eq!(f.send(2, "/leave"), one(1, "Kay has left"));
    assert_eq!(f.send(2, "hello?"), one(2, text::NOT_IN_CHANNEL));
    assert_eq!(f.send(1, "alone"), vec![]);
    // The channel stays; Kay can come back.
    assert_eq!(f.send(2, "/join room"), one(1, "Kay has joined"));
}

#[test]
fn help_lists_every_command() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    let out = f.send(1, "/help");
    let text: String = out
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for cmd in [
        "/create", "/join", "/list", "/leave", "/members", "/who", "/time", "/sonnet", "/help",
    ] {
        assert!(
            text.contains(&format!("\n{cmd} ")),
            "{cmd} missing from {text}"
        );
    }
}

#[test]
fn the_unknown_command_text_still_lists_only_the_course_commands() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(
        f.send(1, "/whois x"),
        one(1, &text::invalid_control_message("/whois"))
    );
    assert!(text::invalid_control_message("/x")
        .ends_with("Valid messages are /create, /list, and /join."));
}

/// The sonnets in the course's ICS layout (`AllSonnets.txt`, generated from
/// `data/sonnets.txt`) or in the plain format (`en.shakespeare.txt`: `data/sonnets.txt` itself).
fn shared_sonnets(file: &str) -> Sonnets {
    use crate::sonnets::test_files;
    let text = match file {
        "AllSonnets.txt" => test_files::ics_text(),
        "en.shakespeare.txt" => test_files::plain_text(),
        other => panic!("no test sonnets named {other}"),
    };
    Sonnets::parse(&text).unwrap()
}

fn sonnet_fixture(sonnets: Option<Sonnets>) -> Fixture {
    let mut f = Fixture::with(sonnets, Startup::default());
    f.login(1, "Alice");
    f
}

/// The lines of a multi-frame reply, frames checked for size.
fn reply_lines(out: &[(ConnId, String)]) -> Vec<String> {
    assert!(out.iter().all(|(c, t)| *c == 1 && t.len() <= FRAME_LEN));
    out.iter()
        .flat_map(|(_, t)| t.split('\n'))
        .map(String::from)
        .collect()
}

#[test]
fn sonnets_by_number_in_both_formats() {
    for file in ["AllSonnets.txt", "en.shakespeare.txt"] {
        let sonnets = shared_sonnets(file);
        let mut f = sonnet_fixture(Some(sonnets.clone()));
        for (n, numeral, count) in [
            (1, "I.", 14),
            (99, "XCIX.", 15),
            (126, "CXXVI.", 12),
            (154, "CLIV.", 14),
        ] {
            let lines = reply_lines(&f.send(1, &format!("/sonnet {n}")));
            assert_eq!(lines[0], numeral, "{file} {n}");
            assert_eq!(lines.len(), count + 1, "{file} {n}");
            assert_eq!(&lines[1..], sonnets.get(n).unwrap(), "{file} {n}");
        }
        assert_eq!(f.send(1, "/poem 7"), f.send(1, "/sonnet 007"));
    }
}

#[test]
fn sonnet_argument_errors() {
    let mut f = sonnet_fixture(Some(shared_sonnets("AllSonnets.txt")));
    let must = "/sonnet command must be followed by a sonnet number from 1 to 154.";
    assert_eq!(f.send(1, "/sonnet"), one(1, must));
    assert_eq!(f.send(1, "/sonnet abc"), one(1, must));
    assert_eq!(f.send(1, "/poem"), one(1, must));
    for n in ["0", "155", "-1", "99999999999999999999999999"] {
        assert_eq!(
            f.send(1, &format!("/sonnet {n}")),
            one(
                1,
                &format!("Sonnet {n} not found. Sonnets are numbered 1 to 154.")
            )
        );
    }
}

#[test]
fn sonnet_without_a_sonnets_file() {
    let mut f = sonnet_fixture(None);
    for cmd in ["/sonnet 1", "/sonnet", "/poem 200"] {
        assert_eq!(
            f.send(1, cmd),
            one(1, "No sonnets are available on this server.")
        );
    }
}

// ---- Section 6: private and offline messages, history, registered names ----------------------

use crate::storage::{Event, OfflineMessage, RegisteredName, Registration, RequestKind, SearchHit};

/// Storage remembers these registered names (with where their history starts).
fn registered(names: &[(&str, u64)]) -> Startup {
    Startup {
        last_seq: 100,
        known: names.iter().map(|(n, _)| key(n)).collect(),
        registered: names
            .iter()
            .map(|(n, s)| {
                let entry = RegisteredName {
                    name: n.to_string(),
                    history_from: *s,
                    hash: format!("hash-of-{n}"),
                };
                (key(n), entry)
            })
            .collect(),
        ..Startup::default()
    }
}

/// Storage holds `n` offline messages for each of these names.
fn with_mail(names: &[(&str, usize)]) -> Startup {
    Startup {
        known: names.iter().map(|(n, _)| key(n)).collect(),
        offline: names.iter().map(|(n, c)| (key(n), *c)).collect(),
        ..Startup::default()
    }
}

fn mail(id: i64, time: i64, sender: &str, text: &str) -> OfflineMessage {
    OfflineMessage {
        id,
        time,
        sender: sender.into(),
        text: text.into(),
    }
}

/// The password check the hub just asked the hashers for: its connection and password.
fn verify_job(f: &mut Fixture) -> (ConnId, String) {
    match &f.hashed()[..] {
        [HashJob::Verify { conn, password, .. }] => (*conn, password.clone()),
        other => panic!("expected one password check, got {other:?}"),
    }
}

/// Logs in a registered name and identifies it (no offline messages).
fn login_identified(f: &mut Fixture, conn: ConnId, name: &str) {
    f.connect(conn);
    assert_eq!(
        f.send(conn, name),
        one(conn, &text::registered_name_prompt(name, 60))
    );
    assert_eq!(f.send(conn, "/identify right password"), vec![]);
    assert_eq!(verify_job(f), (conn, "right password".into()));
    assert_eq!(
        f.answer(Reply::Identified {
            conn,
            key: key(name),
            ok: true
        }),
        one(conn, &text::identified(name))
    );
    assert!(!f.hub.is_waiting(conn));
}

#[test]
fn msg_to_a_connected_user_and_to_oneself() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Bob");
    f.stored();
    assert_eq!(
        f.send(1, "/msg Bob  hello there "),
        one(2, "[Alice -> Bob] hello there")
    );
    assert!(matches!(
        &f.stored()[..],
        [Request::Event(Event::Private { sender, recipient, text, .. })]
            if sender == "Alice" && recipient == "Bob" && text == "hello there"
    ));
    assert_eq!(
        f.send(1, "/msg Alice note to self"),
        one(1, "[Alice -> Alice] note to self")
    );
    // Names compare as names do: BOB is Bob, and the delivery shows Bob's own spelling.
    assert_eq!(f.send(1, "/msg BOB hi"), one(2, "[Alice -> Bob] hi"));
}

#[test]
fn msg_errors() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    for bad in ["/msg", "/msg Bob", "/msg Bob    "] {
        assert_eq!(
            f.send(1, bad),
            one(
                1,
                "/msg command must be followed by a user name and a message."
            )
        );
    }
    assert_eq!(
        f.send(1, "/msg Nobody hi"),
        one(1, "No user named Nobody exists.")
    );
    f.stored();
    assert_eq!(
        f.send(1, "/msg Nobody hi"),
        one(1, &text::no_such_user("Nobody"))
    );
    assert!(f.stored().is_empty(), "a refused message is not stored");
}

#[test]
fn long_private_messages_keep_the_prefix() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Bob");
    // 191 invalid bytes decode to 573 bytes of U+FFFD: the delivery needs several frames.
    let mut raw = [0xffu8; FRAME_LEN];
    raw[..9].copy_from_slice(b"/msg Bob ");
    let out = f.raw(1, &raw);
    assert!(out.len() > 1);
    let mut rebuilt = String::new();
    for (to, t) in &out {
        assert_eq!(*to, 2);
        assert!(t.len() <= FRAME_LEN);
        rebuilt.push_str(
            t.strip_prefix("[Alice -> Bob] ")
                .expect("prefix on every piece"),
        );
    }
    assert_eq!(rebuilt, "\u{fffd}".repeat(191));
}

#[test]
fn msg_to_a_known_offline_user_is_confirmed_after_the_store() {
    let mut f = Fixture::with(None, registered(&[]));
    f.login(1, "Bob");
    f.hub.disconnect(1, None, &mut f.out);
    f.login(2, "Alice");
    f.stored();
    assert_eq!(f.send(2, "/msg Bob see you"), vec![]);
    let stored = f.stored();
    assert!(
        matches!(&stored[0], Request::Event(Event::Private { recipient, .. }) if recipient == "Bob")
    );
    assert!(matches!(
        &stored[1],
        Request::StoreOffline { notify: Some(2), sender, recipient, text, .. }
            if sender == "Alice" && recipient == "Bob" && text == "see you"
    ));
    // Alice waits for the commit: her next commands are held, then run in order.
    assert_eq!(f.send(2, "/create after"), vec![]);
    assert_eq!(f.send(2, "/list"), vec![]);
    assert_eq!(
        f.answer(Reply::OfflineStored {
            conn: 2,
            recipient: "Bob".into()
        }),
        vec![
            (
                2,
                "Bob is offline; the message will be delivered when Bob connects.".into()
            ),
            (2, "after".into()),
        ]
    );
}

#[test]
fn offline_messages_arrive_first_and_are_deleted_once_written() {
    let mut f = Fixture::with(None, with_mail(&[("Bob", 2)]));
    f.connect(1);
    assert_eq!(f.send(1, "Bob"), vec![]);
    assert_eq!(f.fetched(), (1, key("Bob")));
    // Frames sent before the messages arrive wait for them.
    f.send(1, "/create room");
    f.send(1, "/list");
    let out = f.answer(Reply::Offline {
        conn: 1,
        key: key("Bob"),
        total: 2,
        messages: vec![
            mail(7, NOW - 3600, "Alice", "first"),
            mail(9, NOW, "Kay", "second"),
        ],
    });
    assert_eq!(
        out,
        one(
            1,
            "You have 2 offline messages:\n(04.03.26,04:06) [Alice -> Bob] first\n(04.03.26,05:06) [Kay -> Bob] second"
        )
    );
    assert_eq!(f.out.flush_reports, vec![1]);
    // Not deleted until the loop says the frames were written; the held frames wait too.
    assert!(!f
        .stored()
        .iter()
        .any(|r| matches!(r, Request::DeleteOffline { .. })));
    assert_eq!(f.flushed(1), one(1, "room"));
    assert!(f
        .stored()
        .contains(&Request::DeleteOffline { ids: vec![7, 9] }));
    // Nothing waits for Bob any more: the next login is immediate.
    f.hub.disconnect(1, None, &mut f.out);
    f.stored();
    f.login(2, "Bob");
    assert!(f
        .stored()
        .iter()
        .all(|r| !matches!(r, Request::FetchOffline { .. })));
}

#[test]
fn a_large_mailbox_is_paced_by_the_reader_a_batch_at_a_time() {
    let n = MAIL_BATCH * 2 + 3;
    let mut f = Fixture::with(None, with_mail(&[("Bob", n)]));
    f.connect(1);
    f.send(1, "Bob");
    let mut next_id = 1;
    let mut lines = Vec::new();
    let mut first = true;
    loop {
        let request = f.stored().pop();
        let Some(Request::FetchOffline {
            conn: 1,
            after,
            limit,
            ..
        }) = request
        else {
            panic!("expected a fetch, got {request:?}");
        };
        assert_eq!(after, next_id - 1);
        assert_eq!(limit, MAIL_BATCH);
        let batch: Vec<OfflineMessage> = (next_id..(next_id + limit as i64).min(n as i64 + 1))
            .map(|id| mail(id, NOW, "Al", &format!("m{id}")))
            .collect();
        next_id += batch.len() as i64;
        let out = f.answer(Reply::Offline {
            conn: 1,
            key: key("Bob"),
            total: n + 1 - (next_id - batch.len() as i64) as usize,
            messages: batch,
        });
        lines.extend(out.iter().flat_map(|(_, t)| t.lines().map(String::from)));
        if first {
            assert_eq!(lines[0], format!("You have {n} offline messages:"));
            first = false;
        }
        // Nothing more until the socket took this batch.
        assert!(f.stored().is_empty());
        assert!(f.hub.is_waiting(1));
        f.flushed(1);
        let deleted = f.out.stored.remove(0);
        assert!(
            matches!(deleted, Request::DeleteOffline { .. }),
            "{deleted:?}"
        );
        if next_id as usize > n {
            break;
        }
    }
    assert_eq!(lines.len(), n + 1);
    assert!(!f.hub.is_waiting(1));
    assert!(f.stored().is_empty());
}

#[test]
fn a_message_sent_during_a_delivery_arrives_after_it() {
    let mut f = Fixture::with(None, with_mail(&[("Bob", 1)]));
    f.login(2, "Alice");
    f.connect(1);
    f.send(1, "Bob");
    f.fetched();
    f.stored();
    // Bob is still being delivered his stored messages: a new one joins them.
    assert_eq!(f.send(2, "/msg Bob late"), vec![]);
    assert!(matches!(
        &f.stored()[..],
        [
            Request::Event(Event::Private { .. }),
            Request::StoreOffline { notify: None, .. }
        ]
    ));
    f.answer(Reply::Offline {
        conn: 1,
        key: key("Bob"),
        total: 2,
        messages: vec![mail(1, NOW, "Kay", "early")],
    });
    f.flushed(1);
    // The hub counts the new one: it fetches again and delivers it last.
    let fetch = f.stored().pop();
    assert!(
        matches!(fetch, Some(Request::FetchOffline { after: 1, .. })),
        "{fetch:?}"
    );
    let out = f.answer(Reply::Offline {
        conn: 1,
        key: key("Bob"),
        total: 1,
        messages: vec![mail(2, NOW, "Alice", "late")],
    });
    assert_eq!(out, one(1, "(04.03.26,05:06) [Alice -> Bob] late"));
}

#[test]
fn mailboxes_are_bounded() {
    let limits = Limits {
        max_offline: 2,
        ..Limits::default()
    };
    let mut f = Fixture::with_limits(None, with_mail(&[("Bob", 1)]), limits);
    f.login(2, "Alice");
    f.stored();
    f.send(2, "/msg Bob two");
    f.answer(Reply::OfflineStored {
        conn: 2,
        recipient: "Bob".into(),
    });
    f.stored();
    assert_eq!(
        f.send(2, "/msg Bob three"),
        one(
            2,
            "Bob has too many offline messages; yours was not stored."
        )
    );
    assert!(f.stored().is_empty(), "nothing stored past the bound");
}

#[test]
fn one_offline_message_is_singular() {
    let mut f = Fixture::with(None, with_mail(&[("Bob", 1)]));
    f.connect(1);
    f.send(1, "Bob");
    f.fetched();
    assert_eq!(
        f.answer(Reply::Offline {
            conn: 1,
            key: key("Bob"),
            total: 1,
            messages: vec![mail(1, NOW, "Al", "hi")]
        }),
        one(
            1,
            "You have 1 offline message:\n(04.03.26,05:06) [Al -> Bob] hi"
        )
    );
}

#[test]
fn offline_messages_lost_with_the_connection_are_not_deleted() {
    let mut f = Fixture::with(None, with_mail(&[("Bob", 1)]));
    f.connect(1);
    f.send(1, "Bob");
    f.fetched();
    f.answer(Reply::Offline {
        conn: 1,
        key: key("Bob"),
        total: 1,
        messages: vec![mail(3, NOW, "Al", "hi")],
    });
    f.hub.disconnect(1, None, &mut f.out);
    f.flushed(1);
    assert!(!f
        .stored()
        .iter()
        .any(|r| matches!(r, Request::DeleteOffline { .. })));
    // The next login fetches them again.
    f.connect(2);
    f.send(2, "Bob");
    assert_eq!(f.fetched(), (2, key("Bob")));
}

#[test]
fn history_records_channel_messages_joins_and_leaves_in_order() {
    let mut f = Fixture::with(None, registered(&[]));
    f.login(1, "Alice");
    f.stored();
    f.send(1, "/create room");
    f.send(1, "alone but kept");
    f.send(1, "/leave");
    let stored = f.stored();
    assert!(matches!(&stored[0], Request::Event(Event::Channel { name, .. }) if name == "room"));
    let seqs: Vec<u64> = stored
        .iter()
        .filter_map(|r| match r {
            Request::Event(e) => e.seq(),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![101, 102, 103]);
    assert!(matches!(&stored[1], Request::Event(Event::Join { channel, .. }) if channel == "room"));
    assert!(
        matches!(&stored[2], Request::Event(Event::Chat { text, channel, sender, .. })
        if text == "alone but kept" && channel == "room" && sender == "Alice")
    );
    assert!(matches!(&stored[3], Request::Event(Event::Leave { .. })));
}

#[test]
fn a_new_name_is_remembered_once() {
    let mut f = Fixture::new();
    f.connect(1);
    f.send(1, "Newbie");
    assert!(
        matches!(&f.out.stored[0], Request::Event(Event::User { name, .. }) if name == "Newbie")
    );
    f.hub.disconnect(1, None, &mut f.out);
    f.stored();
    f.connect(2);
    f.send(2, "NEWBIE");
    assert_eq!(f.stored(), vec![], "a known name is not stored again");
}

#[test]
fn search_asks_storage_within_the_visibility_window() {
    let mut f = Fixture::with(None, registered(&[("Reg", 40)]));
    f.login(1, "Alice");
    assert_eq!(
        f.send(1, "/search"),
        one(
            1,
            "/search command must be followed by a term to search for."
        )
    );
    f.stored();
    f.send(1, "/search  Hello World ");
    assert_eq!(
        f.stored(),
        vec![Request::Search {
            conn: 1,
            user_key: key("Alice"),
            since_seq: 100,
            term: "Hello World".into(),
            upto_seq: None,
        }]
    );
    login_identified(&mut f, 2, "Reg");
    f.send(2, "/search x");
    assert_eq!(
        f.stored(),
        vec![Request::Search {
            conn: 2,
            user_key: key("Reg"),
            since_seq: 40,
            term: "x".into(),
            upto_seq: None,
        }]
    );
}

#[test]
fn searches_in_flight_are_bounded() {
    let limits = Limits {
        max_searches: 2,
        ..Limits::default()
    };
    let mut f = Fixture::with_limits(None, Startup::default(), limits);
    for c in 1..=3 {
        f.login(c, &format!("u{c}"));
    }
    f.send(1, "/search a");
    f.send(2, "/search b");
    assert_eq!(f.send(3, "/search c"), one(3, text::BUSY));
    assert!(!f.hub.is_waiting(3), "a refused search holds nothing up");
    f.answer(Reply::Search {
        conn: 1,
        term: "a".into(),
        total: 0,
        results: vec![],
    });
    f.stored();
    f.send(3, "/search c");
    assert_eq!(f.stored().len(), 1, "a slot is free again");
}

#[test]
fn search_results_are_formatted() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.send(1, "/search cats");
    let hits = vec![
        SearchHit {
            seq: 1,
            time: NOW,
            channel: Some("pets".into()),
            sender: "Bob".into(),
            recipient: None,
            text: "cats rule".into(),
        },
        SearchHit {
            seq: 2,
            time: NOW,
            channel: None,
            sender: "Alice".into(),
            recipient: Some("Bob".into()),
            text: "Cats!".into(),
        },
    ];
    assert_eq!(
        f.answer(Reply::Search {
            conn: 1,
            term: "cats".into(),
            total: 2,
            results: hits.clone()
        }),
        one(
            1,
            "(04.03.26,05:06) [pets] Bob: cats rule\n(04.03.26,05:06) Alice -> Bob: Cats!"
        )
    );
    f.send(1, "/search cats");
    let out = f.answer(Reply::Search {
        conn: 1,
        term: "cats".into(),
        total: 25,
        results: hits,
    });
    assert!(
        out[0]
            .1
            .starts_with("2 of 25 matches for 'cats':\n(04.03.26,05:06) [pets]"),
        "{out:?}"
    );
    f.send(1, "/search dogs");
    assert_eq!(
        f.answer(Reply::Search {
            conn: 1,
            term: "dogs".into(),
            total: 0,
            results: vec![]
        }),
        one(1, "'dogs' not found")
    );
}

/// The answer the writer sends once a registration's hash is committed.
fn registered_reply(conn: ConnId, name: &str, from: u64) -> Reply {
    Reply::Registered {
        conn,
        name: name.into(),
        key: key(name),
        history_from: from,
        hash: format!("hash-of-{name}"),
        result: Registration::Registered,
    }
}

#[test]
fn register_is_confirmed_after_the_commit() {
    let mut f = Fixture::with(None, registered(&[]));
    f.login(1, "Alice");
    f.stored();
    for bad in [
        "/register short",
        &format!("/register {}", "x".repeat(65)),
        "/register",
    ] {
        assert_eq!(f.send(1, bad), one(1, "A password is 8 to 64 characters."));
    }
    assert_eq!(f.send(1, "/register  good password "), vec![]);
    assert_eq!(
        f.hashed(),
        vec![HashJob::Hash {
            conn: 1,
            name: "Alice".into(),
            key: key("Alice"),
            password: "good password".into(),
            history_from: 100
        }]
    );
    assert_eq!(
        f.answer(registered_reply(1, "Alice", 100)),
        one(1, "Name Alice is now registered.")
    );
    assert_eq!(
        f.send(1, "/register another password"),
        one(1, "Name Alice is already registered.")
    );
    assert_eq!(
        f.send(1, "/identify good password"),
        one(1, &text::already_identified("Alice"))
    );
}

#[test]
fn a_full_hash_queue_refuses_at_once() {
    let mut f = Fixture::with(None, registered(&[("Reg", 0)]));
    f.login(1, "Alice");
    f.out.hash_full = true;
    assert_eq!(f.send(1, "/register good password"), one(1, text::BUSY));
    assert!(!f.hub.is_waiting(1));
    f.connect(2);
    f.send(2, "Reg");
    assert_eq!(f.send(2, "/identify good password"), one(2, text::BUSY));
    assert!(!f.hub.is_waiting(2));
}

#[test]
fn a_registration_committed_after_its_connection_closed_is_enforced() {
    let mut f = Fixture::with(None, registered(&[]));
    f.login(1, "Alice");
    f.send(1, "/register good password");
    f.hashed();
    f.hub.disconnect(1, None, &mut f.out);
    // Meanwhile someone else took the name, unregistered as it still was.
    f.login(2, "Alice");
    f.send(2, "/create room");
    f.login(3, "Kay");
    f.send(3, "/join room");
    f.out.take();
    // The commit arrives: the registration holds from now on.
    let out = f.answer(registered_reply(1, "Alice", 100));
    assert!(out.contains(&(3, "Alice has left".to_string())), "{out:?}");
    assert!(
        out.contains(&(2, text::registered_name_prompt("Alice", 60))),
        "{out:?}"
    );
    assert_eq!(f.send(2, "hello"), one(2, text::IDENTIFY_FIRST));
    // A new login with the name must identify; /register says so too.
    f.connect(4);
    assert_eq!(
        f.send(4, "Alice"),
        one(4, &text::registered_name_prompt("Alice", 60))
    );
    f.login(5, "Bob");
    assert_eq!(
        f.send(5, "/identify whatever1"),
        one(5, &text::not_registered("Bob"))
    );
}

/// Found by the hub fuzz test: a registration committed while the name's unregistered holder is
/// being delivered its offline messages must stop that delivery (section 6: an unidentified
/// connection sees no offline messages); they stay stored for whoever identifies.
#[test]
fn a_registration_committed_during_a_delivery_stops_it() {
    let mut f = Fixture::new();
    // Alice registers, and leaves before the registration is committed.
    f.login(1, "Alice");
    f.send(1, "/register good password");
    assert_eq!(f.hashed().len(), 1);
    f.hub.disconnect(1, None, &mut f.out);
    // A message for her is stored while she is away.
    f.login(3, "Bob");
    f.send(3, "/msg Alice hi there");
    let stored = f.stored();
    assert!(
        matches!(stored.last(), Some(Request::StoreOffline { .. })),
        "{stored:?}"
    );
    f.answer(Reply::OfflineStored {
        conn: 3,
        recipient: "Alice".into(),
    });
    // Someone else takes the name, still unregistered: its delivery starts.
    f.connect(2);
    assert_eq!(f.send(2, "Alice"), vec![]);
    assert!(f.hub.is_waiting(2));
    assert_eq!(f.fetched(), (2, key("Alice")));
    // The registration is committed: the holder must identify, and no longer waits.
    let out = f.answer(registered_reply(1, "Alice", 0));
    assert_eq!(out, vec![(2, text::registered_name_prompt("Alice", 60))]);
    assert!(!f.hub.is_waiting(2));
    // The fetch's answer comes late: nothing of it reaches the unidentified holder.
    let message = OfflineMessage {
        id: 1,
        time: NOW,
        sender: "Bob".into(),
        text: "hi there".into(),
    };
    let offline = Reply::Offline {
        conn: 2,
        key: key("Alice"),
        total: 1,
        messages: vec![message.clone()],
    };
    assert_eq!(f.answer(offline), vec![]);
    assert_eq!(f.flushed(2), vec![]);
    assert!(f.stored().is_empty(), "nothing deleted");
    // Once it identifies, the message is fetched again, from the start.
    f.send(2, "/identify good password");
    assert_eq!(f.hashed().len(), 1);
    let out = f.answer(Reply::Identified {
        conn: 2,
        key: key("Alice"),
        ok: true,
    });
    assert_eq!(out, vec![(2, text::identified("Alice"))]);
    assert!(matches!(
        &f.stored()[..],
        [Request::FetchOffline {
            conn: 2,
            after: 0,
            ..
        }]
    ));
}

#[test]
fn a_registered_name_must_identify_first() {
    let mut f = Fixture::with(None, registered(&[("Reg", 0)]));
    f.login(1, "Alice");
    f.send(1, "/create room");
    f.connect(2);
    assert_eq!(
        f.send(2, "Reg"),
        one(
            2,
            "Reg is a registered name. Send /identify PASSWORD within 60 seconds."
        )
    );
    for other in [
        "hello",
        "/join room",
        "/who",
        "/register password1",
        "/msg Alice hi",
    ] {
        assert_eq!(f.send(2, other), one(2, "Send /identify PASSWORD first."));
    }
    assert_eq!(
        f.send(2, "/identify short"),
        one(2, "A password is 8 to 64 characters.")
    );
    // Not listed by /who, and private messages to it are kept, not delivered.
    assert!(!f.send(1, "/who")[0].1.contains("Reg"));
    f.stored();
    f.send(1, "/msg Reg are you there");
    assert!(f
        .stored()
        .iter()
        .any(|r| matches!(r, Request::StoreOffline { .. })));
    f.answer(Reply::OfflineStored {
        conn: 1,
        recipient: "Reg".into(),
    });
    assert_eq!(
        f.send(1, "/identify whatever1"),
        one(1, &text::not_registered("Alice"))
    );
}

#[test]
fn three_wrong_passwords_close_the_connection() {
    let mut f = Fixture::with(None, registered(&[("Reg", 0)]));
    f.connect(2);
    f.send(2, "Reg");
    for attempt in 1..=3 {
        assert_eq!(f.send(2, "/identify wrong password"), vec![]);
        assert_eq!(verify_job(&mut f), (2, "wrong password".into()));
        assert_eq!(
            f.answer(Reply::Identified {
                conn: 2,
                key: key("Reg"),
                ok: false
            }),
            one(2, "Wrong password for Reg.")
        );
        let expected: Vec<ConnId> = if attempt == 3 { vec![2] } else { vec![] };
        assert_eq!(f.out.closed, expected);
    }
}

#[test]
fn wrong_passwords_lock_the_name_out_across_connections() {
    let mut f = Fixture::with(None, registered(&[("Reg", 0)]));
    let mut conn = 10;
    let wrong = |f: &mut Fixture, conn: ConnId| {
        f.send(conn, "/identify wrong password");
        verify_job(f);
        f.answer(Reply::Identified {
            conn,
            key: key("Reg"),
            ok: false,
        });
    };
    // Three wrong in a row, from two connections.
    f.connect(conn);
    f.send(conn, "Reg");
    wrong(&mut f, conn);
    wrong(&mut f, conn);
    conn += 1;
    f.connect(conn);
    f.send(conn, "Reg");
    wrong(&mut f, conn);
    // Locked: the password is not even checked.
    assert_eq!(
        f.send(conn, "/identify right password"),
        one(conn, &text::locked_out("Reg", LOCK_FIRST_SECS))
    );
    assert!(f.hashed().is_empty());
    f.clock.advance(LOCK_FIRST_SECS as i64);
    // Another wrong one doubles the lock.
    wrong(&mut f, conn);
    assert_eq!(
        f.send(conn, "/identify right password"),
        one(conn, &text::locked_out("Reg", 2 * LOCK_FIRST_SECS))
    );
    // Other names are not affected.
    f.login(30, "Alice");
    assert!(f.hashed().is_empty());
}

#[test]
fn an_address_sending_many_wrong_passwords_is_slowed() {
    let names: Vec<(String, u64)> = (0..30).map(|i| (format!("user{i}"), 0)).collect();
    let refs: Vec<(&str, u64)> = names.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let mut f = Fixture::with(None, registered(&refs));
    for (i, (name, _)) in names.iter().enumerate().take(21) {
        let conn = 100 + i;
        f.connect_from(conn, "10.1.2.3");
        f.send(conn, name);
        f.send(conn, "/identify wrong password");
        verify_job(&mut f);
        f.answer(Reply::Identified {
            conn,
            key: key(name),
            ok: false,
        });
    }
    f.connect_from(200, "10.1.2.3");
    f.send(200, "user25");
    assert_eq!(
        f.send(200, "/identify right password"),
        one(200, &text::locked_out("user25", 60))
    );
    // Another address of the same class is not locked out.
    f.connect_from(201, "10.9.9.9");
    f.send(201, "user26");
    assert_eq!(f.send(201, "/identify right password"), vec![]);
    assert_eq!(verify_job(&mut f).0, 201);
}

#[test]
fn an_unidentified_holder_does_not_own_a_registered_name() {
    let mut f = Fixture::with(None, registered(&[("Reg", 0)]));
    // A squatter logs in and never identifies.
    f.connect(1);
    f.send(1, "Reg");
    // The owner may log in with the same name meanwhile, and identify.
    f.connect(2);
    assert_eq!(
        f.send(2, "Reg"),
        one(2, &text::registered_name_prompt("Reg", 60))
    );
    f.send(2, "/identify right password");
    verify_job(&mut f);
    assert_eq!(
        f.answer(Reply::Identified {
            conn: 2,
            key: key("Reg"),
            ok: true
        }),
        one(2, &text::identified("Reg"))
    );
    assert_eq!(f.out.closed, vec![1]);
    assert_eq!(
        f.out.reasons,
        vec![(
            1,
            "Name Reg was identified by another connection.".to_string()
        )]
    );
    // Now the name is in use.
    f.connect(3);
    assert_eq!(f.send(3, "Reg"), one(3, &text::name_in_use("Reg")));
}

#[test]
fn look_alike_names_are_one_name() {
    let mut f = Fixture::with(None, registered(&[("alice", 0)]));
    for (conn, name) in [(1, "Alice"), (2, "ALICE"), (3, "\u{0430}lice")] {
        f.connect(conn);
        assert_eq!(f.send(conn, name), one(conn, &text::name_too_close(name)));
    }
    f.connect(4);
    let zwsp = "ali\u{200B}ce";
    assert_eq!(
        f.send(4, zwsp),
        one(4, &text::invalid_name(&frame::clean(zwsp)))
    );
    f.login(5, "Bob");
    f.connect(6);
    assert_eq!(f.send(6, "BOB"), one(6, &text::name_in_use("BOB")));
    f.connect(7);
    assert_eq!(
        f.send(7, "b\u{043E}b"),
        one(7, &text::name_in_use("b\u{043E}b"))
    );
}

#[test]
fn bidi_controls_never_reach_other_clients() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.login(2, "Kay");
    f.send(1, "/create a");
    f.send(2, "/join a");
    f.out.take();
    assert_eq!(
        f.send(2, "abc\u{202E}fed\u{2066}x\u{2028}y"),
        one(1, "[Kay] abcfedxy")
    );
}

#[test]
fn identified_users_get_their_offline_messages_right_after() {
    let mut f = Fixture::with(
        None,
        Startup {
            offline: [(key("Reg"), 1)].into_iter().collect(),
            ..registered(&[("Reg", 0)])
        },
    );
    f.connect(2);
    f.send(2, "Reg");
    f.send(2, "/identify right password");
    f.send(2, "/list");
    verify_job(&mut f);
    assert_eq!(
        f.answer(Reply::Identified {
            conn: 2,
            key: key("Reg"),
            ok: true
        }),
        one(2, "You are now identified as Reg.")
    );
    assert_eq!(f.fetched(), (2, key("Reg")));
    assert_eq!(
        f.answer(Reply::Offline {
            conn: 2,
            key: key("Reg"),
            total: 1,
            messages: vec![mail(1, NOW, "Al", "hi")]
        }),
        one(
            2,
            "You have 1 offline message:\n(04.03.26,05:06) [Al -> Reg] hi"
        )
    );
}

#[test]
fn an_unidentified_connection_is_closed_after_60_seconds() {
    let mut f = Fixture::with(None, registered(&[("Reg", 0)]));
    f.connect(2);
    f.send(2, "Reg");
    f.clock.advance(59);
    f.hub.tick(&mut f.out);
    assert!(f.out.closed.is_empty());
    f.clock.advance(1);
    f.hub.tick(&mut f.out);
    assert_eq!(f.out.closed, vec![2]);
    assert_eq!(
        f.out.reasons,
        vec![(2, "Reg did not identify in time.".to_string())]
    );
    // One that identified in time stays.
    let mut f = Fixture::with(None, registered(&[("Reg", 0)]));
    login_identified(&mut f, 3, "Reg");
    f.clock.advance(120);
    f.hub.tick(&mut f.out);
    assert!(f.out.closed.is_empty());
}

#[test]
fn storage_failures_are_reported_and_release_the_connection() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.send(1, "/create room");
    f.send(1, "/search x");
    assert_eq!(f.send(1, "/list"), vec![]);
    assert_eq!(
        f.answer(Reply::Failed {
            conn: Some(1),
            request: RequestKind::Search,
            key: None,
        }),
        vec![(1, text::STORAGE_FAILED.into()), (1, "room".into())]
    );
    assert!(!f.hub.is_waiting(1));
}

#[test]
fn replies_for_gone_connections_are_ignored() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    f.send(1, "/search x");
    f.hub.disconnect(1, None, &mut f.out);
    assert_eq!(
        f.answer(Reply::Search {
            conn: 1,
            term: "x".into(),
            total: 0,
            results: vec![]
        }),
        vec![]
    );
}

#[test]
fn quit_closes_the_connection() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    assert_eq!(f.send(1, "/quit"), vec![]);
    assert_eq!(f.out.closed, vec![1]);
}

#[test]
fn channels_are_bounded_and_listed_in_parts() {
    let limits = Limits {
        max_channels: 3,
        ..Limits::default()
    };
    let mut f = Fixture::with_limits(None, Startup::default(), limits);
    f.login(1, "Alice");
    for c in ["a", "b", "c"] {
        f.send(1, &format!("/create {c}"));
    }
    assert_eq!(
        f.send(1, "/create d"),
        one(1, "Cannot create d: the server already has 3 channels.")
    );
    assert_eq!(f.send(1, "/list"), one(1, "a\nb\nc"));
    // Channels remembered by storage come back, in order.
    let startup = Startup {
        channels: vec!["zeta".into(), "alpha".into()],
        ..Startup::default()
    };
    let mut f = Fixture::with(None, startup);
    f.login(1, "Alice");
    assert_eq!(f.send(1, "/list"), one(1, "zeta\nalpha"));
    assert_eq!(f.send(1, "/join ZETA"), vec![]);
    assert_eq!(
        f.send(1, "/create Alpha"),
        one(1, "Room Alpha already exists, so cannot be created.")
    );
}

#[test]
fn a_long_list_waits_for_the_reader_between_parts() {
    let mut f = Fixture::new();
    f.login(1, "Alice");
    let names: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}-{}", "c".repeat(50)))
        .collect();
    for c in &names {
        f.send(1, &format!("/create {c}"));
    }
    f.out.take();
    let mut got: Vec<String> = Vec::new();
    let mut out = f.send(1, "/list");
    let mut parts = 1;
    while f.hub.is_waiting(1) {
        let bytes: usize = out.len() * FRAME_LEN;
        assert!(bytes <= 2 * LIST_CHUNK, "a part of {bytes} bytes");
        got.extend(out.iter().flat_map(|(_, t)| t.lines().map(String::from)));
        out = f.flushed(1);
        parts += 1;
    }
    got.extend(out.iter().flat_map(|(_, t)| t.lines().map(String::from)));
    assert_eq!(got, names);
    assert!(parts > 3, "{parts} parts");
}

#[test]
fn who_and_members_are_bounded() {
    let mut f = Fixture::new();
    for i in 0..2000 {
        f.login(i, &format!("{}{i:04}", "u".repeat(27)));
        if i == 0 {
            f.send(0, "/create big");
        } else {
            f.send(i, "/join big");
        }
    }
    f.out.take();
    let members: usize = f.send(0, "/members").len() * FRAME_LEN;
    assert!(
        members <= 2 * proto::frame::commands::MEMBERS_MAX_BYTES,
        "{members}"
    );
    let who = f.send(0, "/who");
    let text: String = who.iter().map(|(_, t)| t.as_str()).collect();
    assert!(text.contains("… and 1800 more"), "users are capped");
    assert!(who.len() * FRAME_LEN < crate::server::MIN_QUEUE);
}

/// A node of a cluster with Kay logged in (her name claimed), the link taking every operation.
fn cluster_node_with_kay() -> Fixture {
    use crate::cluster::ClusterMsg;
    let mut f = Fixture::new();
    f.hub.join_cluster(1);
    f.out.cluster_ops = Some(Vec::new());
    f.connect(1);
    f.send(1, "Kay");
    assert!(f.hub.is_waiting(1), "the name is claimed first");
    let claimed = ClusterMsg::Claimed {
        conn: 1,
        key: key("Kay"),
        ok: Some(true),
    };
    f.hub.cluster_msg(claimed, &mut f.out);
    // In a cluster the mailbox is the shared database's: it is always asked.
    assert_eq!(f.fetched(), (1, key("Kay")));
    empty_mailbox(&mut f);
    assert!(!f.hub.is_waiting(1));
    f.out.take();
    f
}

/// Storage's answer to a fetch of Kay's (connection 1's) mailbox: nothing in it.
fn empty_mailbox(f: &mut Fixture) {
    f.answer(Reply::Offline {
        conn: 1,
        key: key("Kay"),
        total: 0,
        messages: vec![],
    });
}

/// The `/join` question the link was asked last: its connection and name as typed.
fn asked_to_find(f: &mut Fixture) -> (u64, String) {
    let ops = f.out.cluster_ops.as_mut().unwrap();
    match ops
        .iter()
        .rev()
        .find(|op| matches!(op, crate::cluster::ClusterOp::FindChannel { .. }))
    {
        Some(crate::cluster::ClusterOp::FindChannel { conn, asked, .. }) => (*conn, asked.clone()),
        _ => panic!("no FindChannel in {ops:?}"),
    }
}

#[test]
fn a_cluster_join_of_an_unknown_channel_asks_the_cluster_and_waits() {
    use crate::cluster::{ClusterMsg, NodeId, Wire};
    let mut f = cluster_node_with_kay();
    // Nobody made it: the cluster says so, and so does the hub.
    assert_eq!(f.send(1, "/join nowhere"), vec![]);
    assert!(f.hub.is_waiting(1));
    assert_eq!(asked_to_find(&mut f), (1, "nowhere".to_string()));
    let none = ClusterMsg::ChannelFound {
        conn: 1,
        asked: "nowhere".into(),
        name: None,
    };
    f.hub.cluster_msg(none, &mut f.out);
    assert_eq!(f.out.take(), vec![(1, text::no_such_channel("nowhere"))]);
    assert!(!f.hub.is_waiting(1));

    // Another node made `Fresh`: Kay waits for its announcement, then joins after it.
    f.send(1, "/join fresh");
    let found = ClusterMsg::ChannelFound {
        conn: 1,
        asked: "fresh".into(),
        name: Some("Fresh".into()),
    };
    f.hub.cluster_msg(found, &mut f.out);
    f.hub.settle_found(false, &mut f.out);
    assert!(f.hub.is_waiting(1), "not before the announcement");
    assert!(f.hub.channel_id("Fresh").is_none());
    let other: NodeId = 2;
    let announced = ClusterMsg::Remote(Wire::Channel {
        node: other,
        name: "Fresh".into(),
        pos: Some(0),
    });
    f.hub.cluster_msg(announced, &mut f.out);
    f.hub.settle_found(false, &mut f.out);
    assert!(!f.hub.is_waiting(1));
    let ch = f.hub.channel_id("Fresh").expect("announced");
    assert!(f.hub.is_member(1, ch));
    assert!(f.out.take().is_empty(), "a join says nothing to the joiner");
}

#[test]
fn a_channel_the_cluster_has_is_joined_even_if_its_announcement_never_comes() {
    use crate::cluster::ClusterMsg;
    let mut f = cluster_node_with_kay();
    f.send(1, "/join late");
    let found = ClusterMsg::ChannelFound {
        conn: 1,
        asked: "late".into(),
        name: Some("late".into()),
    };
    f.hub.cluster_msg(found, &mut f.out);
    assert!(
        f.hub.has_deadlines(),
        "the loop must tick the hub meanwhile"
    );
    f.hub.tick(&mut f.out);
    assert!(f.hub.is_waiting(1), "within the bound it still waits");
    f.clock.advance(2);
    f.hub.tick(&mut f.out);
    assert!(!f.hub.is_waiting(1));
    let ch = f
        .hub
        .channel_id("late")
        .expect("made here from the cluster's answer");
    assert!(f.hub.is_member(1, ch));
    assert!(!f.hub.has_deadlines());
}

#[test]
fn a_message_stored_on_another_node_for_a_user_online_here_is_fetched_at_once() {
    use crate::cluster::{ClusterMsg, Wire};
    let mut f = cluster_node_with_kay();
    let nudge = |f: &mut Fixture| {
        let mail = ClusterMsg::Remote(Wire::Mail {
            node: 2,
            key: key("Kay"),
        });
        f.hub.cluster_msg(mail, &mut f.out);
    };
    f.out.stored.clear();
    nudge(&mut f);
    assert_eq!(f.fetched(), (1, key("Kay")));
    assert!(f.hub.is_waiting(1), "delivered before Kay's next command");
    // Another one stored while that delivery is under way: fetched once it ends.
    nudge(&mut f);
    let fetches = |f: &Fixture| {
        f.out
            .stored
            .iter()
            .filter(|r| matches!(r, Request::FetchOffline { .. }))
            .count()
    };
    assert_eq!(fetches(&f), 0, "not twice at once");
    empty_mailbox(&mut f);
    assert_eq!(fetches(&f), 1, "the second nudge's round");
    f.out.stored.clear();
    empty_mailbox(&mut f);
    assert!(!f.hub.is_waiting(1));
    // A name nobody here holds: nothing to do.
    let other = ClusterMsg::Remote(Wire::Mail {
        node: 2,
        key: key("Nobody"),
    });
    f.hub.cluster_msg(other, &mut f.out);
    assert_eq!(fetches(&f), 0);
}
