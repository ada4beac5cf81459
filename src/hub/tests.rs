//! The hub's rules, tested without sockets.
use super::*;
use crate::clock::FixedClock;
use crate::frame::FRAME_LEN;
use crate::sonnets::Sonnets;

/// 2026-03-04 05:06:07 UTC: the fixed time of every hub test.
pub(crate) const NOW: i64 = 1_772_600_767;

/// A sink that records everything, for tests.
#[derive(Default)]
pub(crate) struct Recorder {
    pub sent: Vec<(ConnId, String)>,
    pub closed: Vec<ConnId>,
}

impl Sink for Recorder {
    fn send(&mut self, to: ConnId, frame: &Frame) {
        self.sent.push((to, frame::decode(frame).into_owned()));
    }
    fn close(&mut self, conn: ConnId) {
        self.closed.push(conn);
    }
}

impl Recorder {
    pub fn take(&mut self) -> Vec<(ConnId, String)> {
        std::mem::take(&mut self.sent)
    }
}

pub(crate) struct Fixture {
    pub hub: Hub,
    pub out: Recorder,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            hub: Hub::new(HubConfig {
                clock: Box::new(FixedClock(NOW)),
                sonnets: None,
            }),
            out: Recorder::default(),
        }
    }
    pub fn send(&mut self, conn: ConnId, line: &str) -> Vec<(ConnId, String)> {
        let f = frame::pad(line).unwrap();
        self.hub.frame(conn, &f, &mut self.out);
        self.out.take()
    }
    pub fn login(&mut self, conn: ConnId, name: &str) {
        self.hub.connect(conn);
        assert_eq!(self.send(conn, name), vec![]);
    }
}

fn one(conn: ConnId, s: &str) -> Vec<(ConnId, String)> {
    vec![(conn, s.to_string())]
}

#[test]
fn login_is_silent_and_names_are_checked() {
    let mut f = Fixture::new();
    f.hub.connect(1);
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
    f.hub.connect(2);
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
    f.hub.disconnect(1, &mut f.out);
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
    f.hub.frame(2, &raw, &mut f.out);
    let out = f.out.take();
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
    f.hub.connect(2);
    f.hub.disconnect(2, &mut f.out);
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
    f.hub.connect(4); // no name yet: not listed
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

fn shared_sonnets(file: &str) -> Sonnets {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(file);
    Sonnets::load(&path).unwrap()
}

fn sonnet_fixture(sonnets: Option<Sonnets>) -> Fixture {
    let mut f = Fixture {
        hub: Hub::new(HubConfig {
            clock: Box::new(FixedClock(NOW)),
            sonnets,
        }),
        out: Recorder::default(),
    };
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
