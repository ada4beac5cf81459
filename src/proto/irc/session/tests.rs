//! The IRC session through a real hub, as the event loop drives it: IRC clients' lines in,
//! exact IRC bytes (and the frame clients' exact frames) out.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::clock::ManualClock;
use crate::frame::{self, FRAME_LEN};
use crate::hub::{ConnId, Hub, HubConfig, Limits, Out, Proto, Sink};
use crate::names::name_key;
use crate::proto;
use crate::sonnets::Sonnets;
use crate::storage::{HashJob, RegisteredName, Reply, Request, RequestKind, Startup};
use crate::utils_errors as text;

const NOW: i64 = 1_772_600_767;

fn config() -> IrcConfig {
    IrcConfig {
        server_name: "irc.test".into(),
        network: "chat".into(),
        motd: None,
        created: "01.12.26,10:17".into(),
    }
}

/// A sink that renders every event in its recipient's protocol and keeps the bytes.
struct Rec {
    cfg: IrcConfig,
    protos: HashMap<ConnId, Proto>,
    bytes: HashMap<ConnId, Vec<u8>>,
    closed: Vec<(ConnId, Option<String>)>,
    stored: Vec<Request>,
    hashed: Vec<HashJob>,
}

impl Sink for Rec {
    fn emit(&mut self, to: ConnId, out: &Out<'_>) {
        let proto = self.protos.get(&to).copied().unwrap_or(Proto::Frame);
        let ctx = proto::RenderCtx { irc: &self.cfg };
        let buf = self.bytes.entry(to).or_default();
        proto::render(proto, out, &ctx, buf);
    }
    fn close(&mut self, conn: ConnId, reason: Option<&str>) {
        if let Some(reason) = reason {
            let proto = self.protos.get(&conn).copied().unwrap_or(Proto::Frame);
            let ctx = proto::RenderCtx { irc: &self.cfg };
            let buf = self.bytes.entry(conn).or_default();
            proto::render_reason(proto, reason, &ctx, buf);
        }
        self.closed.push((conn, reason.map(str::to_string)));
    }
    fn store(&mut self, request: Request) {
        self.stored.push(request);
    }
    fn cluster(&mut self, _op: crate::cluster::ClusterOp) -> bool {
        false
    }
    fn hash(&mut self, job: HashJob) -> bool {
        self.hashed.push(job);
        true
    }
    fn report_flush(&mut self, _conn: ConnId) {}
    fn resume(&mut self, _conn: ConnId) {}
}

/// A hub with IRC sessions and frame clients, driven as the loop drives them: the lines of a
/// waiting connection are held until the hub no longer makes it wait; a closed connection is
/// reported to the hub.
struct F {
    hub: Hub,
    out: Rec,
    clock: ManualClock,
    sessions: HashMap<ConnId, Session>,
    held: HashMap<ConnId, VecDeque<Vec<u8>>>,
    now: Instant,
    gone: usize,
}

impl F {
    fn new() -> F {
        F::with(Startup::default(), Limits::default(), None)
    }

    fn with(startup: Startup, limits: Limits, sonnets: Option<Sonnets>) -> F {
        let clock = ManualClock::new(NOW);
        F {
            hub: Hub::new(HubConfig {
                clock: Box::new(clock.clone()),
                sonnets,
                startup,
                limits,
            }),
            out: Rec {
                cfg: config(),
                protos: HashMap::new(),
                bytes: HashMap::new(),
                closed: Vec::new(),
                stored: Vec::new(),
                hashed: Vec::new(),
            },
            clock,
            sessions: HashMap::new(),
            held: HashMap::new(),
            now: Instant::now(),
            gone: 0,
        }
    }

    /// A hub that knows `names` as registered (each password is `pw-NAME-123`).
    fn registered(names: &[&str]) -> F {
        let startup = Startup {
            known: names.iter().map(|n| name_key(n).to_string()).collect(),
            registered: names
                .iter()
                .map(|n| {
                    let entry = RegisteredName {
                        name: n.to_string(),
                        history_from: 0,
                        hash: format!("hash-of-{n}"),
                    };
                    (name_key(n).to_string(), entry)
                })
                .collect(),
            ..Startup::default()
        };
        F::with(startup, Limits::default(), None)
    }

    /// A new IRC connection.
    fn irc(&mut self, conn: ConnId) {
        self.hub
            .connect(conn, Proto::Irc, Some("127.0.0.1".parse().unwrap()));
        self.out.protos.insert(conn, Proto::Irc);
        self.sessions.insert(conn, Session::new(self.now));
    }

    /// A frame client logged in as `name`.
    fn frame(&mut self, conn: ConnId, name: &str) {
        self.hub.connect(conn, Proto::Frame, None);
        self.out.protos.insert(conn, Proto::Frame);
        self.say(conn, name);
        assert_eq!(self.frames(conn), Vec::<String>::new());
    }

    /// A frame from a frame client.
    fn say(&mut self, conn: ConnId, text: &str) {
        let f = frame::pad(text).unwrap();
        proto::frame::handle(&mut self.hub, conn, &f, &mut self.out);
        self.settle();
    }

    /// A line from an IRC client (without its CR LF).
    fn line(&mut self, conn: ConnId, line: &str) {
        self.raw(conn, line.as_bytes());
    }

    fn raw(&mut self, conn: ConnId, bytes: &[u8]) {
        let queue = self.held.entry(conn).or_default();
        if self.hub.is_waiting(conn) || !queue.is_empty() {
            queue.push_back(bytes.to_vec());
        } else {
            self.handle(conn, bytes);
        }
        self.settle();
    }

    fn handle(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(mut session) = self.sessions.remove(&conn) else {
            return;
        };
        let mut ctx = Ctx {
            hub: &mut self.hub,
            conn,
            cfg: &self.out.cfg.clone(),
            sink: &mut self.out,
            now: self.now,
        };
        session.line(bytes, &mut ctx);
        self.sessions.insert(conn, session);
    }

    /// What the loop does after each turn: held lines of connections that no longer wait, and
    /// closed connections reported to the hub.
    fn settle(&mut self) {
        loop {
            while self.gone < self.out.closed.len() {
                let conn = self.out.closed[self.gone].0;
                self.gone += 1;
                self.sessions.remove(&conn);
                self.held.remove(&conn);
                self.hub.disconnect(conn, None, &mut self.out);
            }
            let ready = self
                .held
                .iter()
                .find(|(c, q)| !q.is_empty() && !self.hub.is_waiting(**c))
                .map(|(c, _)| *c);
            let Some(conn) = ready else { return };
            if let Some(line) = self.held.get_mut(&conn).and_then(VecDeque::pop_front) {
                self.handle(conn, &line);
            }
        }
    }

    /// Time passes for every IRC session.
    fn tick(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.clock.advance(secs as i64);
        let conns: Vec<ConnId> = self.sessions.keys().copied().collect();
        for conn in conns {
            let Some(mut session) = self.sessions.remove(&conn) else {
                continue;
            };
            let mut ctx = Ctx {
                hub: &mut self.hub,
                conn,
                cfg: &self.out.cfg.clone(),
                sink: &mut self.out,
                now: self.now,
            };
            session.tick(&mut ctx);
            self.sessions.insert(conn, session);
        }
        self.settle();
    }

    /// A storage or hasher answer.
    fn answer(&mut self, reply: Reply) {
        self.hub.storage_reply(reply, &mut self.out);
        self.settle();
    }

    /// Everything sent to an IRC connection since the last call, as text.
    fn take(&mut self, conn: ConnId) -> String {
        let bytes = self.out.bytes.remove(&conn).unwrap_or_default();
        String::from_utf8(bytes).expect("IRC output is UTF-8")
    }

    /// The lines sent to an IRC connection since the last call.
    fn lines(&mut self, conn: ConnId) -> Vec<String> {
        let all = self.take(conn);
        assert!(all.is_empty() || all.ends_with("\r\n"), "{all:?}");
        all.split_terminator("\r\n").map(str::to_string).collect()
    }

    /// The frames sent to a frame connection since the last call, as texts.
    fn frames(&mut self, conn: ConnId) -> Vec<String> {
        let bytes = self.out.bytes.remove(&conn).unwrap_or_default();
        assert_eq!(bytes.len() % FRAME_LEN, 0);
        bytes
            .chunks(FRAME_LEN)
            .map(|f| frame::decode(f).into_owned())
            .collect()
    }

    /// Registers an IRC client as `nick` (user `NICKu`) and drops the welcome burst.
    fn register(&mut self, conn: ConnId, nick: &str) {
        self.irc(conn);
        self.line(conn, &format!("NICK {nick}"));
        self.line(conn, &format!("USER {nick}u 0 * :{nick} Real"));
        let got = self.take(conn);
        assert!(got.contains(" 001 "), "{got}");
        self.out.stored.clear();
    }

    /// The password check the hub asked for: its connection and password.
    fn verify_job(&mut self) -> (ConnId, String) {
        match &std::mem::take(&mut self.out.hashed)[..] {
            [HashJob::Verify { conn, password, .. }] => (*conn, password.clone()),
            other => panic!("expected one password check, got {other:?}"),
        }
    }
}

fn burst(nick: &str, users: usize, channels: usize) -> String {
    burst_with(nick, users, 0, channels)
}

/// The welcome burst with `unknown` connections that have not logged in (or identified).
fn burst_with(nick: &str, users: usize, unknown: usize, channels: usize) -> String {
    let unknown = if unknown > 0 {
        format!(":irc.test 253 {nick} {unknown} :unknown connection(s)\r\n")
    } else {
        String::new()
    };
    format!(
        ":irc.test 001 {nick} :Welcome to the chat IRC Network, {nick}\r\n\
         :irc.test 002 {nick} :Your host is irc.test, running version {VERSION}\r\n\
         :irc.test 003 {nick} :This server was created 01.12.26,10:17\r\n\
         :irc.test 004 {nick} irc.test {VERSION} i nt\r\n\
         :irc.test 005 {nick} CASEMAPPING=ascii CHANLIMIT=#:100 CHANMODES=,,,nt CHANNELLEN=65 \
         CHANTYPES=# NETWORK=chat NICKLEN=32 PREFIX=() \
         TARGMAX=JOIN:,PART:,NAMES:1,LIST:,WHOIS:1,PRIVMSG:1,NOTICE:1 :are supported by this server\r\n\
         :irc.test 005 {nick} AWAYLEN=200 SAFELIST USERLEN=32 :are supported by this server\r\n\
         :irc.test 251 {nick} :There are {users} users and 0 invisible on 1 servers\r\n{unknown}\
         :irc.test 254 {nick} {channels} :channels formed\r\n\
         :irc.test 255 {nick} :I have {users} clients and 0 servers\r\n\
         :irc.test 422 {nick} :MOTD File is missing\r\n"
    )
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- Registration ---------------------------------------------------------------------------

#[test]
fn nick_and_user_register_with_the_exact_welcome_burst() {
    let mut f = F::new();
    f.irc(1);
    f.line(1, "NICK kay");
    assert_eq!(f.take(1), "");
    f.line(1, "USER kayu 0 * :Kay Real");
    assert_eq!(f.take(1), burst("kay", 1, 0));
    assert_eq!(f.hub.name_of(1), Some("kay"));
    assert_eq!(f.hub.person(1).unwrap().user.as_ref(), "kayu");
    assert_eq!(f.hub.realname_of(1), Some("Kay Real"));
    // USER first, then NICK, works too; the counts cover every connection.
    f.frame(2, "Bob");
    f.line(2, "x"); // a frame client is not an IRC session: nothing happens
    f.irc(3);
    f.line(3, "USER w 0 * :W");
    f.line(3, "NICK wee");
    assert_eq!(f.take(3), burst("wee", 3, 0));
}

#[test]
fn the_motd_and_lusers_commands_repeat_the_burst_parts() {
    let mut f = F::new();
    f.out.cfg.motd = Some(vec!["Hello".to_string(), String::new(), "x".repeat(600)].into());
    f.irc(1);
    f.line(1, "NICK kay");
    f.line(1, "USER kayu 0 * :Kay");
    let burst = f.lines(1);
    assert_eq!(
        burst[9],
        ":irc.test 375 kay :- irc.test Message of the day - "
    );
    assert_eq!(burst[10], ":irc.test 372 kay :- Hello");
    assert_eq!(burst[11], ":irc.test 372 kay :- ");
    // The 600-character line comes as two 372s, nothing lost.
    let long: String = burst[12..14]
        .iter()
        .map(|l| l.strip_prefix(":irc.test 372 kay :- ").unwrap())
        .collect();
    assert_eq!(long, "x".repeat(600));
    assert_eq!(burst[14], ":irc.test 376 kay :End of /MOTD command.");
    assert_eq!(burst.len(), 15);
    assert!(burst.iter().all(|l| l.len() + 2 <= 512));
    f.line(1, "MOTD");
    assert_eq!(f.lines(1), burst[9..].to_vec());
    f.line(1, "LUSERS");
    assert_eq!(f.lines(1), burst[6..9].to_vec());
}

#[test]
fn cap_negotiation_holds_registration_until_cap_end() {
    let mut f = F::new();
    f.irc(1);
    f.line(1, "CAP LS 302");
    assert_eq!(f.take(1), ":irc.test CAP * LS :sasl=PLAIN\r\n");
    // irssi's probe before registering.
    f.line(1, "JOIN :");
    assert_eq!(
        f.take(1),
        ":irc.test 451 * JOIN :You have not registered\r\n"
    );
    f.line(1, "NICK kay");
    f.line(1, "USER kayu 0 * :Kay");
    assert_eq!(f.take(1), "", "registration waits for CAP END");
    f.line(1, "CAP REQ :sasl");
    assert_eq!(f.take(1), ":irc.test CAP kay ACK :sasl\r\n");
    f.line(1, "CAP LIST");
    assert_eq!(f.take(1), ":irc.test CAP kay LIST :sasl\r\n");
    f.line(1, "CAP REQ :sasl multi-prefix");
    assert_eq!(f.take(1), ":irc.test CAP kay NAK :sasl multi-prefix\r\n");
    f.line(1, "CAP FOO");
    assert_eq!(f.take(1), ":irc.test 410 kay FOO :Invalid CAP command\r\n");
    f.line(1, "CAP END");
    assert_eq!(f.take(1), burst("kay", 1, 0));
    // After registration CAP still answers and END does nothing.
    f.line(1, "CAP LS");
    assert_eq!(f.take(1), ":irc.test CAP kay LS :sasl=PLAIN\r\n");
    f.line(1, "CAP END");
    assert_eq!(f.take(1), "");
    // A pre-302 client gets the bare token (the Python library wants exactly that).
    f.irc(2);
    f.line(2, "CAP LS");
    assert_eq!(f.take(2), ":irc.test CAP * LS :sasl\r\n");
    f.line(2, "CAP REQ sasl");
    assert_eq!(f.take(2), ":irc.test CAP * ACK :sasl\r\n");
    f.line(2, "CAP LIST");
    assert_eq!(f.take(2), ":irc.test CAP * LIST :sasl\r\n");
    f.line(2, "CAP REQ -sasl");
    f.line(2, "CAP LIST");
    assert_eq!(
        f.take(2),
        ":irc.test CAP * ACK :-sasl\r\n:irc.test CAP * LIST :\r\n"
    );
}

#[test]
fn nick_and_user_errors() {
    let mut f = F::new();
    f.register(1, "kay");
    f.irc(2);
    f.line(2, "NICK");
    assert_eq!(f.take(2), ":irc.test 431 * :No nickname given\r\n");
    for bad in [
        "a,b",
        "@kay",
        "#x",
        "who?",
        "NickServ",
        "chatserv",
        "x|1a2B",
        &"n".repeat(33),
    ] {
        f.line(2, &format!("NICK {bad}"));
        assert_eq!(
            f.take(2),
            format!(":irc.test 432 * {bad} :Erroneous nickname\r\n"),
            "{bad}"
        );
    }
    f.line(2, "NICK :a b");
    assert_eq!(f.take(2), ":irc.test 432 * * :Erroneous nickname\r\n");
    f.line(2, "NICK KAY");
    assert_eq!(
        f.take(2),
        ":irc.test 433 * KAY :Nickname is already in use\r\n"
    );
    f.line(2, "USER x");
    assert_eq!(f.take(2), ":irc.test 461 * USER :Not enough parameters\r\n");
    f.line(2, "PRIVMSG kay :hi");
    assert_eq!(
        f.take(2),
        ":irc.test 451 * PRIVMSG :You have not registered\r\n"
    );
    f.line(2, "NICK kay_");
    f.line(2, "USER x 0 * :X");
    assert!(f.take(2).starts_with(":irc.test 001 kay_ :"));
    f.line(2, "USER x 0 * :X");
    assert_eq!(f.take(2), ":irc.test 462 kay_ :You may not reregister\r\n");
    f.line(2, "PASS secret");
    assert_eq!(f.take(2), ":irc.test 462 kay_ :You may not reregister\r\n");
    f.line(2, "FROB x");
    assert_eq!(f.take(2), ":irc.test 421 kay_ FROB :Unknown command\r\n");
    f.line(2, "\u{1}x");
    assert_eq!(f.take(2), ":irc.test 421 kay_ * :Unknown command\r\n");
    // A username IRC cannot carry gives way to the nick.
    f.irc(3);
    f.line(3, "NICK bob");
    f.line(3, "USER a@b 0 * :B");
    assert!(f.take(3).contains(" 001 bob "));
    assert_eq!(super::prefix(f.hub.person(3).unwrap()), "bob!bob@irc");
}

#[test]
fn a_name_too_close_to_a_registered_one_is_refused_at_registration() {
    let mut f = F::registered(&["Kay"]);
    f.irc(1);
    f.line(1, "NICK kay");
    f.line(1, "USER k 0 * :K");
    assert_eq!(
        f.take(1),
        ":irc.test 433 * kay :Nickname is too close to a registered name\r\n"
    );
    assert_eq!(f.hub.name_of(1), None);
    f.line(1, "NICK kai");
    assert!(f.take(1).contains(" 001 kai "));
}

#[test]
fn ping_pong_both_ways_and_a_dead_client_is_closed() {
    let mut f = F::new();
    f.irc(1);
    f.line(1, "PING :tok en");
    assert_eq!(f.take(1), ":irc.test PONG irc.test :tok en\r\n");
    f.register(1, "kay");
    f.register(2, "bob");
    f.line(1, "JOIN #tas");
    f.line(2, "JOIN #tas");
    f.take(1);
    f.take(2);
    f.line(1, "PING irc.test");
    assert_eq!(f.take(1), ":irc.test PONG irc.test :irc.test\r\n");
    f.line(1, "PING");
    assert_eq!(f.take(1), ":irc.test 409 kay :No origin specified\r\n");
    f.line(1, "PONG :x");
    assert_eq!(f.take(1), "");
    // Idle for a minute: one PING, not one a second.
    f.tick(59);
    assert_eq!(f.take(1), "");
    f.tick(1);
    assert_eq!(f.take(1), "PING :irc.test\r\n");
    // bob answers (and speaks again later); kay never answers.
    f.line(2, "PONG :irc.test");
    for i in 0..59 {
        f.tick(1);
        if i == 40 {
            f.line(2, "PONG :x");
        }
    }
    assert_eq!(f.take(1), "");
    f.tick(1);
    assert_eq!(
        f.take(1),
        "ERROR :Closing Link: irc (Ping timeout: 120 seconds)\r\n"
    );
    assert_eq!(
        f.take(2),
        "PING :irc.test\r\n:kay!kayu@irc QUIT :Ping timeout: 120 seconds\r\n"
    );
    assert_eq!(f.hub.find_user("kay"), None);
}

#[test]
fn an_overlong_line_gets_417() {
    let mut f = F::new();
    f.irc(1);
    let mut ctx = Ctx {
        hub: &mut f.hub,
        conn: 1,
        cfg: &config(),
        sink: &mut f.out,
        now: f.now,
    };
    f.sessions.get_mut(&1).unwrap().too_long(&mut ctx);
    assert_eq!(f.take(1), ":irc.test 417 * :Input line was too long\r\n");
}

#[test]
fn quit_before_registration_says_goodbye() {
    let mut f = F::new();
    f.irc(1);
    f.line(1, "QUIT :bye");
    assert_eq!(f.take(1), "ERROR :Closing Link: irc (Quit: bye)\r\n");
    assert_eq!(f.out.closed.len(), 1);
}

// ---- SASL, NickServ, PASS -------------------------------------------------------------------

/// SASL PLAIN for `account` with `password` up to the hub's password check.
fn sasl_exchange(f: &mut F, conn: ConnId, authzid: &str, account: &str, password: &str) {
    f.line(conn, "CAP LS 302");
    f.line(conn, "CAP REQ :sasl");
    f.take(conn);
    f.line(conn, "AUTHENTICATE PLAIN");
    assert_eq!(f.take(conn), "AUTHENTICATE +\r\n");
    let payload = base64(format!("{authzid}\0{account}\0{password}").as_bytes());
    for chunk in payload.as_bytes().chunks(400) {
        f.line(
            conn,
            &format!("AUTHENTICATE {}", std::str::from_utf8(chunk).unwrap()),
        );
    }
    if payload.len().is_multiple_of(400) {
        f.line(conn, "AUTHENTICATE +");
    }
}

#[test]
fn sasl_plain_identifies_a_registered_name_before_registration() {
    let mut f = F::registered(&["kay"]);
    f.irc(1);
    sasl_exchange(&mut f, 1, "kay", "kay", "sesame123");
    assert_eq!(f.take(1), "");
    assert_eq!(f.verify_job(), (1, "sesame123".to_string()));
    // irssi sends CAP END, NICK and USER at once: they wait for the answer.
    f.line(1, "CAP END");
    f.line(1, "NICK kay");
    f.line(1, "USER kayu 0 * :Kay");
    assert_eq!(f.take(1), "");
    f.answer(Reply::Identified {
        conn: 1,
        key: name_key("kay").to_string(),
        ok: true,
    });
    assert_eq!(
        f.take(1),
        format!(
            ":irc.test 900 * *!*@irc kay :You are now logged in as kay\r\n\
             :irc.test 903 * :SASL authentication successful\r\n{}",
            burst("kay", 1, 0)
        )
    );
    assert!(f.hub.is_open(1), "identified: no prompt, no /identify");
    f.line(1, "AUTHENTICATE PLAIN");
    assert_eq!(
        f.take(1),
        ":irc.test 907 kay :You have already authenticated using SASL\r\n"
    );
    f.line(1, "WHOIS kay");
    let whois = f.lines(1);
    assert!(whois.contains(&":irc.test 330 kay kay kay :is logged in as".to_string()));
}

#[test]
fn a_sasl_response_in_two_chunks_is_put_back_together() {
    // 32 four-byte characters of name twice and 64 two-byte ones of password: 516 base64
    // bytes, a chunk of 400 and one of 116.
    let name = "\u{1d11e}".repeat(32);
    let password = "é".repeat(64);
    let mut f = F::registered(&[&name]);
    f.irc(1);
    sasl_exchange(&mut f, 1, &name, &name, &password);
    assert_eq!(f.take(1), "");
    assert_eq!(f.verify_job(), (1, password));
    f.answer(Reply::Identified {
        conn: 1,
        key: name_key(&name).to_string(),
        ok: true,
    });
    assert_eq!(
        f.take(1),
        format!(
            ":irc.test 900 * *!*@irc {name} :You are now logged in as {name}\r\n\
             :irc.test 903 * :SASL authentication successful\r\n"
        )
    );
}

#[test]
fn a_sasl_check_that_storage_fails_still_ends_in_904() {
    let mut f = F::registered(&["kay"]);
    f.irc(1);
    sasl_exchange(&mut f, 1, "kay", "kay", "sesame123");
    assert_eq!(f.verify_job().1, "sesame123");
    f.answer(Reply::Failed {
        conn: Some(1),
        request: RequestKind::Identify,
        key: None,
    });
    assert_eq!(
        f.take(1),
        format!(
            ":irc.test NOTICE * :{}\r\n:irc.test 904 * :SASL authentication failed\r\n",
            text::STORAGE_FAILED
        )
    );
    assert!(!f.hub.is_waiting(1));
}

#[test]
fn sasl_failures_and_the_lockout() {
    let mut f = F::registered(&["kay"]);
    f.irc(1);
    // Python's client: an empty authzid.
    sasl_exchange(&mut f, 1, "", "kay", "wrong-pass");
    assert_eq!(f.verify_job().1, "wrong-pass");
    let key = name_key("kay").to_string();
    let wrong = Reply::Identified {
        conn: 1,
        key: key.clone(),
        ok: false,
    };
    f.answer(wrong.clone());
    assert_eq!(
        f.take(1),
        ":irc.test NOTICE * :Wrong password for kay.\r\n:irc.test 904 * :SASL authentication failed\r\n"
    );
    for _ in 0..2 {
        f.line(1, "AUTHENTICATE PLAIN");
        f.take(1);
        f.line(
            1,
            &format!("AUTHENTICATE {}", base64(b"kay\0kay\0wrong-pass")),
        );
        f.verify_job();
        f.answer(wrong.clone());
        f.take(1);
    }
    // Three wrong in a row: the name is locked, the password not even checked.
    f.line(1, "AUTHENTICATE PLAIN");
    f.take(1);
    f.line(
        1,
        &format!("AUTHENTICATE {}", base64(b"kay\0kay\0sesame123")),
    );
    assert!(f.out.hashed.is_empty());
    assert_eq!(
        f.take(1),
        format!(
            ":irc.test NOTICE * :{}\r\n:irc.test 904 * :SASL authentication failed\r\n",
            text::locked_out("kay", 10)
        )
    );
    // Other failures.
    f.line(1, "AUTHENTICATE SCRAM-SHA-256");
    assert_eq!(
        f.take(1),
        ":irc.test 908 * PLAIN :are available SASL mechanisms\r\n:irc.test 904 * :SASL authentication failed\r\n"
    );
    f.line(1, "AUTHENTICATE PLAIN");
    f.line(1, "AUTHENTICATE *");
    assert_eq!(
        f.take(1),
        "AUTHENTICATE +\r\n:irc.test 906 * :SASL authentication aborted\r\n"
    );
    f.line(1, "AUTHENTICATE PLAIN");
    f.line(1, &format!("AUTHENTICATE {}", "A".repeat(401)));
    assert_eq!(
        f.take(1),
        "AUTHENTICATE +\r\n:irc.test 905 * :SASL message too long\r\n"
    );
    f.line(1, "AUTHENTICATE PLAIN");
    f.line(1, "AUTHENTICATE !!!!");
    assert_eq!(
        f.take(1),
        "AUTHENTICATE +\r\n:irc.test 904 * :SASL authentication failed\r\n"
    );
    // An account that is not registered.
    f.line(1, "AUTHENTICATE PLAIN");
    f.line(
        1,
        &format!("AUTHENTICATE {}", base64(b"\0nobody\0whatever1")),
    );
    assert_eq!(
        f.take(1),
        format!(
            "AUTHENTICATE +\r\n:irc.test NOTICE * :{}\r\n:irc.test 904 * :SASL authentication failed\r\n",
            text::not_registered("nobody")
        )
    );
    // CAP END in the middle of an exchange aborts it; registration goes on, unidentified.
    f.line(1, "AUTHENTICATE PLAIN");
    f.line(1, "NICK kay");
    f.line(1, "USER k 0 * :K");
    f.line(1, "CAP END");
    let got = f.take(1);
    assert!(
        got.starts_with("AUTHENTICATE +\r\n:irc.test 906 kay :SASL authentication aborted\r\n:irc.test 001 kay "),
        "{got}"
    );
    assert!(got.ends_with(&format!(
        ":NickServ!NickServ@services NOTICE kay :{}\r\n",
        text::irc_identify_prompt("kay", 60)
    )));
    assert!(!f.hub.is_open(1));
}

#[test]
fn sasl_for_another_account_than_the_nick_does_not_identify_the_nick() {
    let mut f = F::registered(&["kay", "bob"]);
    f.irc(1);
    sasl_exchange(&mut f, 1, "kay", "kay", "sesame123");
    f.verify_job();
    f.answer(Reply::Identified {
        conn: 1,
        key: name_key("kay").to_string(),
        ok: true,
    });
    f.line(1, "CAP END");
    f.line(1, "NICK bob");
    f.line(1, "USER b 0 * :B");
    assert!(f.take(1).contains("bob is a registered name."));
    assert!(!f.hub.is_open(1));
}

#[test]
fn a_registered_nick_identifies_through_nickserv() {
    let mut f = F::registered(&["kay"]);
    f.irc(1);
    f.line(1, "NICK kay");
    f.line(1, "USER kayu 0 * :Kay");
    // The prompt comes after the burst, from NickServ, worded for IRC.
    assert_eq!(
        f.take(1),
        format!(
            "{}:NickServ!NickServ@services NOTICE kay :kay is a registered name. Send /msg NickServ IDENTIFY password within 60 seconds.\r\n",
            burst_with("kay", 0, 1, 0)
        )
    );
    // Until then: only identifying (and what clients send by themselves).
    f.line(1, "JOIN #tas");
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :Send /msg NickServ IDENTIFY password first.\r\n"
    );
    f.line(1, "PRIVMSG ChatServ :who");
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :Send /msg NickServ IDENTIFY password first.\r\n"
    );
    f.line(1, "MODE kay +i");
    assert_eq!(f.take(1), ":kay!kayu@irc MODE kay :+i\r\n");
    f.line(1, "PING x");
    assert_eq!(f.take(1), ":irc.test PONG irc.test :x\r\n");
    // WeeChat sends the target as typed.
    f.line(1, "PRIVMSG nickserv :identify wrong-one");
    assert_eq!(f.verify_job(), (1, "wrong-one".to_string()));
    let key = name_key("kay").to_string();
    f.answer(Reply::Identified {
        conn: 1,
        key: key.clone(),
        ok: false,
    });
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :Wrong password for kay.\r\n"
    );
    // The Atheme form, and the NS command.
    f.line(1, "NS IDENTIFY kay right-one");
    assert_eq!(f.verify_job(), (1, "right-one".to_string()));
    f.answer(Reply::Identified {
        conn: 1,
        key,
        ok: true,
    });
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :You are now identified as kay.\r\n"
    );
    f.line(1, "JOIN #tas");
    assert!(f.take(1).starts_with(":kay!kayu@irc JOIN #tas\r\n"));
    f.line(1, "PRIVMSG NickServ :IDENTIFY again-pw");
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :You are already identified as kay.\r\n"
    );
}

#[test]
fn three_wrong_passwords_close_the_connection() {
    let mut f = F::registered(&["kay"]);
    f.frame(9, "Bob");
    f.irc(1);
    f.line(1, "NICK kay");
    f.line(1, "USER kayu 0 * :Kay");
    f.take(1);
    for i in 0..3 {
        f.line(1, "IDENTIFY wrong-pass");
        f.verify_job();
        f.answer(Reply::Identified {
            conn: 1,
            key: name_key("kay").to_string(),
            ok: false,
        });
        assert_eq!(
            f.take(1),
            ":NickServ!NickServ@services NOTICE kay :Wrong password for kay.\r\n",
            "try {i}"
        );
    }
    assert_eq!(f.out.closed.last().map(|c| c.0), Some(1));
    assert_eq!(f.hub.name_of(1), None);
}

#[test]
fn pass_identifies_a_registered_nick_and_is_ignored_otherwise() {
    let mut f = F::registered(&["kay"]);
    f.irc(1);
    f.line(1, "PASS sesame123");
    f.line(1, "NICK kay");
    f.line(1, "USER kayu 0 * :Kay");
    assert!(f.take(1).contains("kay is a registered name."));
    assert_eq!(f.verify_job(), (1, "sesame123".to_string()));
    f.answer(Reply::Identified {
        conn: 1,
        key: name_key("kay").to_string(),
        ok: true,
    });
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :You are now identified as kay.\r\n"
    );
    f.irc(2);
    f.line(2, "PASS whatever1");
    f.line(2, "NICK bob");
    f.line(2, "USER b 0 * :B");
    assert_eq!(f.take(2), burst("bob", 2, 0));
    assert!(f.out.hashed.is_empty());
}

#[test]
fn nickserv_register_and_help() {
    let mut f = F::new();
    f.register(1, "kay");
    f.line(1, "PRIVMSG NickServ :REGISTER short");
    assert_eq!(
        f.take(1),
        format!(
            ":NickServ!NickServ@services NOTICE kay :{}\r\n",
            text::PASSWORD_LENGTH
        )
    );
    f.line(1, "PRIVMSG NickServ :REGISTER long-enough-pw");
    assert!(
        matches!(&f.out.hashed[..], [HashJob::Hash { name, password, .. }] if name == "kay" && password == "long-enough-pw")
    );
    f.out.hashed.clear();
    f.answer(Reply::Registered {
        conn: 1,
        name: "kay".into(),
        key: name_key("kay").to_string(),
        history_from: 0,
        hash: "h".into(),
        result: crate::storage::Registration::Registered,
    });
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :Name kay is now registered.\r\n"
    );
    f.line(1, "NICKSERV HELP");
    let help = f.lines(1);
    assert_eq!(help.len(), text::NICKSERV_HELP.len());
    assert_eq!(
        help[0],
        format!(
            ":NickServ!NickServ@services NOTICE kay :{}",
            text::NICKSERV_HELP[0]
        )
    );
    f.line(1, "PRIVMSG NickServ :DROP kay");
    assert_eq!(
        f.take(1),
        ":NickServ!NickServ@services NOTICE kay :Unknown command DROP. /msg NickServ HELP lists the commands.\r\n"
    );
    // A NOTICE to a service is never answered.
    f.line(1, "NOTICE NickServ :HELP");
    assert_eq!(f.take(1), "");
}

// ---- Channels -------------------------------------------------------------------------------

#[test]
fn join_creates_and_joins_across_protocols() {
    let mut f = F::new();
    f.register(1, "kay");
    f.frame(2, "Alice");
    f.say(2, "/create tas");
    f.line(1, "JOIN #TAS");
    assert_eq!(
        f.take(1),
        ":kay!kayu@irc JOIN #tas\r\n\
         :irc.test 353 kay = #tas :Alice kay\r\n\
         :irc.test 366 kay #tas :End of /NAMES list\r\n"
    );
    assert_eq!(f.frames(2), ["kay has joined"]);
    // Already in it: nothing at all.
    f.line(1, "JOIN #tas");
    assert_eq!(f.take(1), "");
    // Several at once; a missing one is created.
    f.register(3, "bob");
    f.line(3, "JOIN #tas,#new");
    assert_eq!(
        f.take(3),
        ":bob!bobu@irc JOIN #tas\r\n\
         :irc.test 353 bob = #tas :Alice kay bob\r\n\
         :irc.test 366 bob #tas :End of /NAMES list\r\n\
         :bob!bobu@irc JOIN #new\r\n\
         :irc.test 353 bob = #new :bob\r\n\
         :irc.test 366 bob #new :End of /NAMES list\r\n"
    );
    assert_eq!(f.take(1), ":bob!bobu@irc JOIN #tas\r\n");
    assert_eq!(f.frames(2), ["bob has joined"]);
    assert_eq!(f.hub.channel_names().collect::<Vec<_>>(), ["tas", "new"]);
    // A frame user moving from #tas to another channel is a PART.
    f.say(2, "/create other");
    assert_eq!(f.take(1), ":Alice!Alice@frame PART #tas\r\n");
    f.say(2, "/join tas");
    assert_eq!(f.take(1), ":Alice!Alice@frame JOIN #tas\r\n");
    f.take(3);
    // JOIN 0 leaves everything.
    f.line(3, "JOIN 0");
    assert_eq!(
        f.take(3),
        ":bob!bobu@irc PART #tas\r\n:bob!bobu@irc PART #new\r\n"
    );
    assert_eq!(f.take(1), ":bob!bobu@irc PART #tas\r\n");
    assert_eq!(f.frames(2), ["bob has left"]);
    f.line(3, "JOIN");
    assert_eq!(
        f.take(3),
        ":irc.test 461 bob JOIN :Not enough parameters\r\n"
    );
    f.line(3, "JOIN tas");
    assert_eq!(f.take(3), ":irc.test 403 bob tas :No such channel\r\n");
}

#[test]
fn join_creates_within_the_channel_limit() {
    let limits = Limits {
        max_channels: 1,
        ..Limits::default()
    };
    let mut f = F::with(Startup::default(), limits, None);
    f.register(1, "kay");
    f.line(1, "JOIN #a");
    f.take(1);
    f.line(1, "JOIN #b");
    assert_eq!(
        f.take(1),
        ":irc.test 403 kay #b :Cannot create b: the server already has 1 channels.\r\n"
    );
}

#[test]
fn channels_irc_cannot_carry_are_never_offered_nor_reached() {
    let mut f = F::new();
    f.frame(2, "Alice");
    f.say(2, "/create a b");
    f.say(2, "/create :colon");
    f.say(2, "/create x,y");
    f.say(2, "/create tas");
    f.register(1, "kay");
    assert_eq!(f.hub.channel_count(), 4);
    f.line(1, "LIST");
    assert_eq!(
        f.take(1),
        ":irc.test 321 kay Channel :Users  Name\r\n\
         :irc.test 322 kay #tas 1 :\r\n\
         :irc.test 323 kay :End of /LIST\r\n"
    );
    for attempt in ["JOIN #:colon", "JOIN :#a b", "JOIN #x,y"] {
        f.line(1, attempt);
    }
    let got = f.take(1);
    assert!(
        !got.contains("JOIN #:colon") && !got.contains(" JOIN #a"),
        "{got}"
    );
    assert!(
        got.contains(":irc.test 403 kay #:colon :No such channel\r\n"),
        "{got}"
    );
    assert!(
        got.contains(":irc.test 403 kay * :No such channel\r\n"),
        "{got}"
    );
    assert!(
        got.contains(":irc.test 403 kay y :No such channel\r\n"),
        "{got}"
    );
    // #x joined a new channel x: not the frame channel "x,y".
    assert_eq!(f.hub.channel_count(), 5);
    // Frame events in such a channel render as nothing for IRC.
    f.say(2, "/join a b");
    f.say(2, "hello");
    assert_eq!(f.take(1), "");
    f.line(1, "LUSERS");
    assert!(f
        .take(1)
        .contains(":irc.test 254 kay 2 :channels formed\r\n"));
}

#[test]
fn part_with_and_without_a_reason() {
    let mut f = F::new();
    f.register(1, "kay");
    f.register(2, "bob");
    f.frame(3, "Alice");
    f.line(1, "JOIN #tas");
    f.line(2, "JOIN #tas");
    f.say(3, "/join tas");
    f.take(1);
    f.take(2);
    f.frames(3);
    f.line(1, "PART #tas :see you");
    assert_eq!(f.take(1), ":kay!kayu@irc PART #tas :see you\r\n");
    assert_eq!(f.take(2), ":kay!kayu@irc PART #tas :see you\r\n");
    assert_eq!(f.frames(3), ["kay has left"]);
    f.line(1, "PART #tas");
    assert_eq!(
        f.take(1),
        ":irc.test 442 kay #tas :You're not on that channel\r\n"
    );
    f.line(1, "PART #nope");
    assert_eq!(f.take(1), ":irc.test 403 kay #nope :No such channel\r\n");
    f.line(1, "PART");
    assert_eq!(
        f.take(1),
        ":irc.test 461 kay PART :Not enough parameters\r\n"
    );
    f.line(2, "PART #TAS");
    assert_eq!(f.take(2), ":bob!bobu@irc PART #tas\r\n");
    assert_eq!(f.frames(3), ["bob has left"]);
}

#[test]
fn names_list_topic_and_mode_answers() {
    let mut f = F::new();
    f.register(1, "kay");
    f.frame(2, "Alice");
    f.say(2, "/create tas");
    f.line(1, "JOIN #tas");
    f.take(1);
    f.line(1, "NAMES #tas,#nope");
    assert_eq!(
        f.take(1),
        ":irc.test 353 kay = #tas :Alice kay\r\n\
         :irc.test 366 kay #tas :End of /NAMES list\r\n\
         :irc.test 366 kay #nope :End of /NAMES list\r\n"
    );
    f.line(1, "NAMES");
    assert_eq!(f.take(1), ":irc.test 366 kay * :End of /NAMES list\r\n");
    f.line(1, "LIST #tas,#nope");
    assert_eq!(
        f.take(1),
        ":irc.test 321 kay Channel :Users  Name\r\n\
         :irc.test 322 kay #tas 2 :\r\n\
         :irc.test 323 kay :End of /LIST\r\n"
    );
    f.line(1, "TOPIC #tas");
    assert_eq!(f.take(1), ":irc.test 331 kay #tas :No topic is set\r\n");
    f.line(1, "TOPIC #tas :new topic");
    assert_eq!(
        f.take(1),
        ":irc.test 482 kay #tas :You're not channel operator\r\n"
    );
    f.line(1, "TOPIC #nope");
    assert_eq!(f.take(1), ":irc.test 403 kay #nope :No such channel\r\n");
    f.line(1, "MODE kay");
    assert_eq!(f.take(1), ":irc.test 221 kay +\r\n");
    f.line(1, "MODE kay +i");
    assert_eq!(f.take(1), ":kay!kayu@irc MODE kay :+i\r\n");
    f.line(1, "MODE kay");
    assert_eq!(f.take(1), ":irc.test 221 kay +i\r\n");
    f.line(1, "MODE kay +iw");
    assert_eq!(f.take(1), ":irc.test 501 kay :Unknown MODE flag\r\n");
    f.line(1, "MODE kay -i");
    assert_eq!(f.take(1), ":kay!kayu@irc MODE kay :-i\r\n");
    f.line(1, "MODE Alice");
    assert_eq!(
        f.take(1),
        ":irc.test 502 kay :Cant change mode for other users\r\n"
    );
    f.line(1, "MODE nobody");
    assert_eq!(
        f.take(1),
        ":irc.test 401 kay nobody :No such nick/channel\r\n"
    );
    f.line(1, "MODE #tas");
    assert_eq!(f.take(1), ":irc.test 324 kay #tas +nt\r\n");
    f.line(1, "MODE #tas b");
    assert_eq!(
        f.take(1),
        ":irc.test 368 kay #tas :End of channel ban list\r\n"
    );
    f.line(1, "MODE #tas +o kay");
    assert_eq!(
        f.take(1),
        ":irc.test 482 kay #tas :You're not channel operator\r\n"
    );
    f.line(1, "MODE #nope");
    assert_eq!(f.take(1), ":irc.test 403 kay #nope :No such channel\r\n");
    f.line(1, "MODE");
    assert_eq!(
        f.take(1),
        ":irc.test 461 kay MODE :Not enough parameters\r\n"
    );
}

#[test]
fn who_and_whois() {
    let mut f = F::new();
    f.register(1, "kay");
    f.frame(2, "Alice");
    f.say(2, "/create tas");
    f.line(1, "JOIN #tas");
    f.line(1, "AWAY :lunch");
    f.take(1);
    f.line(1, "WHO #tas");
    assert_eq!(
        f.take(1),
        ":irc.test 352 kay #tas Alice frame irc.test Alice H :0 Alice\r\n\
         :irc.test 352 kay #tas kayu irc irc.test kay G :0 kay Real\r\n\
         :irc.test 315 kay #tas :End of WHO list\r\n"
    );
    f.line(1, "WHO alice");
    assert_eq!(
        f.take(1),
        ":irc.test 352 kay * Alice frame irc.test Alice H :0 Alice\r\n\
         :irc.test 315 kay alice :End of WHO list\r\n"
    );
    f.line(1, "WHO a*");
    assert_eq!(
        f.take(1),
        ":irc.test 352 kay * Alice frame irc.test Alice H :0 Alice\r\n\
         :irc.test 315 kay a* :End of WHO list\r\n"
    );
    f.line(1, "WHO nobody");
    assert_eq!(f.take(1), ":irc.test 315 kay nobody :End of WHO list\r\n");
    f.line(1, "WHOIS Alice");
    assert_eq!(
        f.take(1),
        ":irc.test 311 kay Alice Alice frame * :Alice\r\n\
         :irc.test 319 kay Alice :#tas\r\n\
         :irc.test 312 kay Alice irc.test :The chat server\r\n\
         :irc.test 318 kay Alice :End of /WHOIS list\r\n"
    );
    f.line(1, "WHOIS irc.test KAY");
    assert_eq!(
        f.take(1),
        ":irc.test 311 kay kay kayu irc * :kay Real\r\n\
         :irc.test 319 kay kay :#tas\r\n\
         :irc.test 312 kay kay irc.test :The chat server\r\n\
         :irc.test 301 kay kay :lunch\r\n\
         :irc.test 318 kay KAY :End of /WHOIS list\r\n"
    );
    f.line(1, "WHOIS ghost");
    assert_eq!(
        f.take(1),
        ":irc.test 401 kay ghost :No such nick/channel\r\n\
         :irc.test 318 kay ghost :End of /WHOIS list\r\n"
    );
    f.line(1, "WHOIS nickserv");
    assert_eq!(
        f.take(1),
        ":irc.test 311 kay NickServ NickServ services * :Nickname services\r\n\
         :irc.test 312 kay NickServ irc.test :The chat server\r\n\
         :irc.test 318 kay nickserv :End of /WHOIS list\r\n"
    );
    f.line(1, "WHOIS");
    assert_eq!(f.take(1), ":irc.test 431 kay :No nickname given\r\n");
}

#[test]
fn a_long_list_is_sent_a_part_at_a_time() {
    let mut f = F::new();
    f.frame(2, "Alice");
    for i in 0..1000 {
        f.say(2, &format!("/create {i:0>60}"));
    }
    f.frames(2);
    f.register(1, "kay");
    f.line(1, "LIST");
    let first = f.take(1);
    assert!(first.len() <= STEP_BYTES + 600, "{}", first.len());
    assert!(!first.contains(" 323 "));
    let mut all = first;
    for _ in 0..10 {
        f.tick(1);
        all.push_str(&f.take(1));
    }
    let lines: Vec<&str> = all.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 1002);
    assert_eq!(lines[1], format!(":irc.test 322 kay #{:0>60} 0 :", 0));
    assert_eq!(lines[1000], format!(":irc.test 322 kay #{:0>60} 1 :", 999));
    assert_eq!(lines[1001], ":irc.test 323 kay :End of /LIST");
    // Too many long replies waiting: try again.
    let mut refused = false;
    for _ in 0..3 * MAX_JOBS {
        f.line(1, "LIST");
        if f.take(1)
            .ends_with(":irc.test 263 kay LIST :Please wait a while and try again.\r\n")
        {
            refused = true;
            break;
        }
    }
    assert!(refused);
}

// ---- Messages -------------------------------------------------------------------------------

#[test]
fn the_course_scenario_with_one_side_on_irc() {
    let mut f = F::new();
    f.frame(1, "Alice");
    f.say(1, "/create tas");
    f.register(2, "Kay");
    f.line(2, "JOIN #tas");
    f.take(2);
    assert_eq!(f.frames(1), ["Kay has joined"]);
    f.say(1, "Hi!");
    assert_eq!(f.take(2), ":Alice!Alice@frame PRIVMSG #tas :Hi!\r\n");
    f.line(2, "PRIVMSG #tas :Hello!");
    assert_eq!(f.frames(1), ["[Kay] Hello!"]);
    assert_eq!(f.take(2), "", "no echo to the sender");
}

#[test]
fn channel_messages_and_their_errors() {
    let mut f = F::new();
    f.register(1, "kay");
    f.register(2, "bob");
    f.frame(3, "Alice");
    f.say(3, "/create tas");
    f.line(1, "JOIN #tas");
    f.line(2, "JOIN #tas");
    f.take(1);
    f.take(2);
    f.frames(3);
    f.line(1, "PRIVMSG #TAS :hello \u{7}there");
    assert_eq!(f.take(2), ":kay!kayu@irc PRIVMSG #tas :hello there\r\n");
    assert_eq!(f.frames(3), ["[kay] hello there"]);
    f.line(1, "NOTICE #tas :a notice");
    assert_eq!(f.take(2), ":kay!kayu@irc NOTICE #tas :a notice\r\n");
    assert_eq!(f.frames(3), ["[kay] a notice"]);
    f.line(1, "PRIVMSG #tas :\u{1}ACTION waves\u{1}");
    assert_eq!(
        f.take(2),
        ":kay!kayu@irc PRIVMSG #tas :\u{1}ACTION waves\u{1}\r\n"
    );
    assert_eq!(f.frames(3), ["* kay waves"]);
    // Any other \x01 is removed like any control character.
    f.line(1, "PRIVMSG #tas :\u{1}VERSION\u{1}");
    assert_eq!(f.take(2), ":kay!kayu@irc PRIVMSG #tas :VERSION\r\n");
    assert_eq!(f.frames(3), ["[kay] VERSION"]);
    f.register(4, "eve");
    f.line(4, "PRIVMSG #tas :let me in");
    assert_eq!(
        f.take(4),
        ":irc.test 404 eve #tas :Cannot send to channel\r\n"
    );
    f.line(4, "PRIVMSG #nope :x");
    assert_eq!(f.take(4), ":irc.test 403 eve #nope :No such channel\r\n");
    f.line(4, "PRIVMSG");
    assert_eq!(
        f.take(4),
        ":irc.test 411 eve :No recipient given (PRIVMSG)\r\n"
    );
    f.line(4, "PRIVMSG #tas");
    assert_eq!(f.take(4), ":irc.test 412 eve :No text to send\r\n");
    f.line(4, "PRIVMSG #tas :\u{2}\u{3}");
    assert_eq!(f.take(4), ":irc.test 412 eve :No text to send\r\n");
    // A NOTICE never gets an error.
    for line in [
        "NOTICE #tas :x",
        "NOTICE #nope :x",
        "NOTICE",
        "NOTICE ghost :x",
        "NOTICE #tas",
    ] {
        f.line(4, line);
        assert_eq!(f.take(4), "", "{line}");
    }
    assert_eq!(f.take(1), "");
    assert_eq!(f.take(2), "");
}

#[test]
fn a_privmsg_that_would_relay_over_512_bytes_gets_417_and_a_long_one_reaches_frames_whole() {
    let mut f = F::new();
    f.register(1, "kay");
    f.register(2, "bob");
    f.frame(3, "Alice");
    f.say(3, "/create tas");
    f.line(1, "JOIN #tas");
    f.line(2, "JOIN #tas");
    f.take(1);
    f.take(2);
    f.frames(3);
    // ":kay!kayu@irc PRIVMSG #tas :" is 28 bytes, CR LF 2: 482 bytes of text fit.
    let fits = "w ".repeat(241);
    f.line(1, &format!("PRIVMSG #tas :{fits}"));
    let relayed = f.take(2);
    assert_eq!(relayed.len(), 512);
    let frames = f.frames(3);
    assert!(frames.len() >= 3);
    assert!(frames.iter().all(|x| x.starts_with("[kay] ")));
    let rejoined: String = frames
        .iter()
        .map(|x| &x["[kay] ".len()..])
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(rejoined.split_whitespace().count(), 241);
    let over = format!("{fits}xx");
    f.line(1, &format!("PRIVMSG #tas :{over}"));
    assert_eq!(f.take(1), ":irc.test 417 kay :Input line was too long\r\n");
    assert_eq!(f.take(2), "");
    assert!(f.frames(3).is_empty());
    f.line(1, &format!("NOTICE #tas :{over}"));
    assert_eq!(f.take(1), "");
}

#[test]
fn a_long_frame_message_reaches_irc_as_several_whole_lines() {
    let mut f = F::new();
    // 128 bytes of name, 192 of channel: 42 bytes of text fit in one IRC line.
    let name = "\u{1d11e}".repeat(32);
    let chan = "\u{1d11e}".repeat(48);
    f.frame(3, &name);
    f.say(3, &format!("/create {chan}"));
    f.register(1, "kay");
    f.line(1, &format!("JOIN #{chan}"));
    f.take(1);
    let body = "ß".repeat(90);
    f.say(3, &body);
    let lines = f.lines(1);
    assert!(lines.len() >= 4, "{lines:?}");
    let head = format!(":{name}!{name}@frame PRIVMSG #{chan} :");
    let mut got = String::new();
    for l in &lines {
        assert!(l.len() + 2 <= 512);
        got.push_str(l.strip_prefix(&head).unwrap());
    }
    assert_eq!(got, body);
}

#[test]
fn private_messages_across_protocols() {
    let mut f = F::new();
    f.register(1, "kay");
    f.register(2, "bob");
    f.frame(3, "Alice");
    f.line(1, "PRIVMSG BOB :psst");
    assert_eq!(f.take(2), ":kay!kayu@irc PRIVMSG bob :psst\r\n");
    f.line(1, "PRIVMSG alice :hi alice");
    assert_eq!(f.frames(3), ["[kay -> Alice] hi alice"]);
    f.say(3, "/msg kay hi kay");
    assert_eq!(f.take(1), ":Alice!Alice@frame PRIVMSG kay :hi kay\r\n");
    f.line(1, "PRIVMSG kay :note to self");
    assert_eq!(f.take(1), ":kay!kayu@irc PRIVMSG kay :note to self\r\n");
    f.line(1, "PRIVMSG bob :\u{1}ACTION nods\u{1}");
    assert_eq!(
        f.take(2),
        ":kay!kayu@irc PRIVMSG bob :\u{1}ACTION nods\u{1}\r\n"
    );
    f.line(1, "PRIVMSG alice :\u{1}ACTION nods\u{1}");
    assert_eq!(f.frames(3), ["[kay -> Alice] * kay nods"]);
    f.line(1, "PRIVMSG ghost :anyone?");
    assert_eq!(
        f.take(1),
        ":irc.test 401 kay ghost :No user named ghost exists.\r\n"
    );
    // Away: delivered, and the sender is told.
    f.line(2, "AWAY :gone fishing");
    assert_eq!(
        f.take(2),
        ":irc.test 306 bob :You have been marked as being away\r\n"
    );
    f.line(1, "PRIVMSG bob :there?");
    assert_eq!(f.take(2), ":kay!kayu@irc PRIVMSG bob :there?\r\n");
    assert_eq!(f.take(1), ":irc.test 301 kay bob :gone fishing\r\n");
    f.line(1, "NOTICE bob :quiet");
    assert_eq!(f.take(1), "");
    f.line(2, "AWAY");
    assert_eq!(f.take(2), ":kay!kayu@irc NOTICE bob :quiet\r\n:irc.test 305 bob :You are no longer marked as being away\r\n");
    f.line(1, "PRIVMSG bob :back?");
    f.take(2);
    assert_eq!(f.take(1), "");
}

#[test]
fn a_message_to_an_offline_nick_is_stored_with_the_chats_text() {
    let mut f = F::new();
    f.register(1, "kay");
    f.frame(2, "Alice");
    f.say(2, "/quit");
    f.line(1, "PRIVMSG Alice :see this later");
    assert_eq!(f.take(1), "");
    let stored = std::mem::take(&mut f.out.stored);
    assert!(stored.iter().any(|r| matches!(r, Request::StoreOffline { recipient, text, .. } if recipient == "Alice" && text == "see this later")));
    // Lines wait for the store.
    f.line(1, "PING x");
    assert_eq!(f.take(1), "");
    f.answer(Reply::OfflineStored {
        conn: 1,
        recipient: "Alice".into(),
    });
    assert_eq!(
        f.take(1),
        format!(
            ":ChatServ!ChatServ@services NOTICE kay :{}\r\n:irc.test PONG irc.test :x\r\n",
            text::user_offline("Alice")
        )
    );
}

#[test]
fn offline_messages_reach_an_irc_user_after_its_welcome() {
    let startup = Startup {
        known: [name_key("kay").to_string()].into(),
        offline: [(name_key("kay").to_string(), 1)].into(),
        ..Startup::default()
    };
    let mut f = F::with(startup, Limits::default(), None);
    f.irc(1);
    f.line(1, "NICK kay");
    f.line(1, "USER kayu 0 * :K");
    assert_eq!(f.take(1), burst("kay", 1, 0));
    f.answer(Reply::Offline {
        conn: 1,
        key: name_key("kay").to_string(),
        total: 1,
        messages: vec![crate::storage::OfflineMessage {
            id: 7,
            time: NOW,
            sender: "Alice".into(),
            text: "welcome back".into(),
        }],
    });
    assert_eq!(
        f.take(1),
        ":ChatServ!ChatServ@services NOTICE kay :You have 1 offline message:\r\n\
         :ChatServ!ChatServ@services NOTICE kay :(04.03.26,05:06) [Alice -> kay] welcome back\r\n"
    );
}

#[test]
fn quit_tells_each_channel_once_and_closes_with_error() {
    let mut f = F::new();
    f.register(1, "kay");
    f.register(2, "bob");
    f.frame(3, "Alice");
    f.say(3, "/create tas");
    f.line(1, "JOIN #tas,#two");
    f.line(2, "JOIN #tas,#two");
    f.take(1);
    f.take(2);
    f.frames(3);
    f.line(1, "QUIT :bye now");
    assert_eq!(f.take(1), "ERROR :Closing Link: irc (Quit: bye now)\r\n");
    assert_eq!(f.take(2), ":kay!kayu@irc QUIT :Quit: bye now\r\n");
    assert_eq!(f.frames(3), ["kay has left"]);
    f.line(2, "QUIT");
    assert_eq!(f.take(2), "ERROR :Closing Link: irc (Client Quit)\r\n");
    // A frame user leaving: IRC sees a QUIT.
    f.register(4, "eve");
    f.line(4, "JOIN #tas");
    f.take(4);
    f.say(3, "/quit");
    assert_eq!(f.take(4), ":Alice!Alice@frame QUIT :Connection closed\r\n");
}

#[test]
fn nick_changes_reach_both_protocols() {
    let mut f = F::new();
    f.register(1, "kay");
    f.register(2, "bob");
    f.frame(3, "Alice");
    f.say(3, "/create tas");
    f.line(1, "JOIN #tas");
    f.line(2, "JOIN #tas");
    f.take(1);
    f.take(2);
    f.frames(3);
    f.line(1, "NICK kai");
    assert_eq!(f.take(1), ":kay!kayu@irc NICK :kai\r\n");
    assert_eq!(f.take(2), ":kay!kayu@irc NICK :kai\r\n");
    assert_eq!(f.frames(3), ["kay is now known as kai"]);
    assert_eq!(f.hub.name_of(1), Some("kai"));
    f.line(1, "PRIVMSG #tas :renamed");
    assert_eq!(f.take(2), ":kai!kayu@irc PRIVMSG #tas :renamed\r\n");
    assert_eq!(f.frames(3), ["[kai] renamed"]);
    f.line(1, "NICK Alice");
    assert_eq!(
        f.take(1),
        ":irc.test 433 kai Alice :Nickname is already in use\r\n"
    );
    f.line(1, "NICK @x");
    assert_eq!(f.take(1), ":irc.test 432 kai @x :Erroneous nickname\r\n");
    f.line(1, "NICK KAI");
    assert_eq!(f.take(1), ":kai!kayu@irc NICK :KAI\r\n");
    f.line(1, "NICK");
    assert_eq!(f.take(1), ":irc.test 431 KAI :No nickname given\r\n");
    // A registered name is taken by connecting with it (and identifying), not by NICK.
    let mut f = F::registered(&["Zed"]);
    f.register(1, "kay");
    f.line(1, "NICK Zed");
    assert_eq!(
        f.take(1),
        ":irc.test 433 kay Zed :Nickname is registered: connect with it to identify\r\n"
    );
    f.line(1, "NICK zed");
    assert_eq!(
        f.take(1),
        ":irc.test 433 kay zed :Nickname is registered: connect with it to identify\r\n"
    );
}

#[test]
fn frame_users_irc_cannot_name_appear_under_an_alias() {
    let mut f = F::new();
    f.register(1, "kay");
    f.line(1, "JOIN #tas");
    f.take(1);
    f.frame(2, "@kay");
    f.frame(3, "NickServ");
    let alias = irc_nick("@kay").into_owned();
    let fake = irc_nick("NickServ").into_owned();
    assert!(alias.starts_with("_kay|") && is_alias(&alias), "{alias}");
    assert!(fake.starts_with("NickServ|"), "{fake}");
    f.say(2, "/join tas");
    assert_eq!(f.take(1), format!(":{alias}!{alias}@frame JOIN #tas\r\n"));
    f.say(2, "hello");
    assert_eq!(
        f.take(1),
        format!(":{alias}!{alias}@frame PRIVMSG #tas :hello\r\n")
    );
    f.line(1, &format!("PRIVMSG {} :hi there", alias.to_uppercase()));
    assert_eq!(f.frames(2), ["[kay -> @kay] hi there"]);
    f.line(1, &format!("WHOIS {alias}"));
    let whois = f.lines(1);
    assert_eq!(
        whois[0],
        format!(":irc.test 311 kay {alias} {alias} frame * :@kay")
    );
    f.line(1, "NAMES #tas");
    assert_eq!(
        f.lines(1)[0],
        format!(":irc.test 353 kay = #tas :kay {alias}")
    );
    // The real services are not the frame user called NickServ.
    f.say(3, "/join tas");
    assert_eq!(f.take(1), format!(":{fake}!NickServ@frame JOIN #tas\r\n"));
    f.line(1, "PRIVMSG NickServ :HELP");
    assert!(f
        .take(1)
        .starts_with(":NickServ!NickServ@services NOTICE kay :"));
    assert!(f.frames(3).is_empty());
    f.line(1, &format!("PRIVMSG {fake} :hi"));
    assert_eq!(f.frames(3), ["[kay -> NickServ] hi"]);
}

// ---- ChatServ and the chat's commands ---------------------------------------------------------

#[test]
fn chatserv_runs_the_chats_commands() {
    let sonnets = Sonnets::parse(&crate::sonnets::test_files::plain_text()).unwrap();
    let mut f = F::with(Startup::default(), Limits::default(), Some(sonnets));
    f.register(1, "kay");
    f.frame(2, "Alice");
    f.say(2, "/create tas");
    f.say(2, "/create a b");
    f.line(1, "JOIN #tas");
    f.take(1);
    let cs = ":ChatServ!ChatServ@services NOTICE kay :";
    f.line(1, "PRIVMSG ChatServ :time");
    assert_eq!(f.take(1), format!("{cs}Time is: 04.03.26,05:06\r\n"));
    f.line(1, "TIME");
    assert_eq!(
        f.take(1),
        ":irc.test 391 kay irc.test :Time is: 04.03.26,05:06\r\n"
    );
    f.line(1, "PRIVMSG ChatServ :sonnet 18");
    let want: String = crate::sonnets::reply(f.hub.sonnets(), "18")
        .iter()
        .map(|l| format!("{cs}{l}\r\n"))
        .collect();
    assert!(want.starts_with(&format!("{cs}XVIII.\r\n")));
    assert_eq!(f.take(1), want);
    f.line(1, "SONNET 18");
    assert_eq!(f.take(1), want);
    f.line(1, "CS poem 999");
    assert_eq!(
        f.take(1),
        format!("{cs}{}\r\n", text::sonnet_not_found("999"))
    );
    f.line(1, "PRIVMSG ChatServ :who");
    assert_eq!(
        f.take(1),
        format!(
            "{cs}Users: ------------\r\n{cs}Alice: -\r\n{cs}kay: #tas\r\n{cs}Groups: -----------\r\n{cs}#tas: kay\r\n"
        )
    );
    f.say(2, "/join tas");
    f.take(1);
    f.line(1, "PRIVMSG ChatServ :members");
    assert_eq!(f.take(1), format!("{cs}Members of #tas: Alice, kay\r\n"));
    f.line(1, "PRIVMSG ChatServ :members #nope");
    assert_eq!(f.take(1), format!("{cs}No channel named #nope exists.\r\n"));
    f.line(1, "PRIVMSG ChatServ :help");
    assert_eq!(f.lines(1).len(), text::CHATSERV_HELP.len());
    f.line(1, "HELP");
    assert_eq!(f.lines(1).len(), text::CHATSERV_HELP.len());
    f.line(1, "PRIVMSG ChatServ :frobnicate");
    assert_eq!(
        f.take(1),
        format!("{cs}Unknown command FROBNICATE. /msg ChatServ HELP lists the commands.\r\n")
    );
    f.line(1, "PRIVMSG ChatServ :search");
    assert_eq!(f.take(1), format!("{cs}{}\r\n", text::SEARCH_USAGE));
    f.line(1, "SEARCH hello world");
    assert!(
        matches!(f.out.stored.last(), Some(Request::Search { conn: 1, term, .. }) if term == "hello world")
    );
    f.answer(Reply::Search {
        conn: 1,
        term: "hello world".into(),
        total: 1,
        results: vec![crate::storage::SearchHit {
            seq: 1,
            time: NOW,
            channel: Some("tas".into()),
            sender: "Alice".into(),
            recipient: None,
            text: "hello world".into(),
        }],
    });
    assert_eq!(
        f.take(1),
        format!("{cs}(04.03.26,05:06) [tas] Alice: hello world\r\n")
    );
    f.line(1, "PRIVMSG ChatServ :register pw");
    assert_eq!(
        f.take(1),
        format!(
            ":NickServ!NickServ@services NOTICE kay :{}\r\n",
            text::PASSWORD_LENGTH
        )
    );
}

// ---- No panic, whatever comes --------------------------------------------------------------

/// Lines that exercise the commands: real command words, separators, control characters,
/// invalid UTF-8.
fn random_line(rng: &mut SmallRng) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "NICK",
        "USER",
        "CAP",
        "LS",
        "302",
        "REQ",
        "END",
        "LIST",
        "PASS",
        "AUTHENTICATE",
        "PLAIN",
        "+",
        "*",
        "PING",
        "PONG",
        "QUIT",
        "JOIN",
        "PART",
        "PRIVMSG",
        "NOTICE",
        "NAMES",
        "WHO",
        "WHOIS",
        "TOPIC",
        "MODE",
        "MOTD",
        "LUSERS",
        "AWAY",
        "TIME",
        "NS",
        "CS",
        "NickServ",
        "ChatServ",
        "IDENTIFY",
        "REGISTER",
        "SEARCH",
        "SONNET",
        "HELP",
        "members",
        "who",
        "0",
        "#tas",
        "#a,#b",
        "#",
        "kay",
        "bob",
        "Alice",
        "@x",
        "+i",
        "-i",
        "b",
        "sasl",
        ":",
        "::",
        "\u{1}ACTION",
        "\u{1}",
        "a2F5AGtheQBzZXNhbWUxMjM=",
        "é",
        "\u{202e}",
    ];
    // Whole plausible lines half the time, so that clients register and go on.
    const LINES: &[&str] = &[
        "NICK bob",
        "NICK eve",
        "NICK kay",
        "USER u 0 * :Real",
        "CAP LS 302",
        "CAP END",
        "JOIN #tas",
        "JOIN #tas,#new",
        "JOIN 0",
        "PART #tas :bye",
        "PRIVMSG #tas :hello",
        "PRIVMSG bob :hi",
        "PRIVMSG Alice :\u{1}ACTION waves\u{1}",
        "NAMES #tas",
        "WHO #tas",
        "WHOIS bob",
        "LIST",
        "MODE #tas",
        "AWAY :away",
        "PRIVMSG ChatServ :who",
        "PRIVMSG NickServ :IDENTIFY sesame123",
        "AUTHENTICATE PLAIN",
        "AUTHENTICATE a2F5AGtheQBzZXNhbWUxMjM=",
        "SEARCH hello",
        "QUIT :gone",
        "NICK bob2",
    ];
    if rng.random_bool(0.5) {
        return LINES[rng.random_range(0..LINES.len())].as_bytes().to_vec();
    }
    let mut line = Vec::new();
    for i in 0..rng.random_range(1..8) {
        if i > 0 {
            line.push(b' ');
        }
        if rng.random_bool(0.85) {
            line.extend_from_slice(WORDS[rng.random_range(0..WORDS.len())].as_bytes());
        } else {
            for _ in 0..rng.random_range(0..40) {
                line.push(rng.random());
            }
        }
    }
    line.retain(|&b| b != b'\r' && b != b'\n');
    line
}

#[test]
fn random_lines_never_panic_and_every_line_sent_is_sound() {
    let iterations: usize = std::env::var("IRC_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = SmallRng::seed_from_u64(0x5e55_1011);
    let mut f = F::registered(&["kay"]);
    f.frame(100, "Alice");
    f.say(100, "/create tas");
    f.say(100, "/create a b");
    let conns: Vec<ConnId> = (1..=4).collect();
    for &c in &conns {
        f.irc(c);
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for i in 0..iterations {
        let conn = conns[rng.random_range(0..conns.len())];
        if !f.sessions.contains_key(&conn) {
            // Closed: a new connection takes its place.
            f.irc(conn);
        }
        let line = random_line(&mut rng);
        f.raw(conn, &line);
        // The hashers and storage answer now and then.
        if rng.random_bool(0.2) {
            for job in std::mem::take(&mut f.out.hashed) {
                if let HashJob::Verify { conn, key, .. } = job {
                    f.answer(Reply::Identified {
                        conn,
                        key,
                        ok: rng.random_bool(0.5),
                    });
                }
            }
            for request in std::mem::take(&mut f.out.stored) {
                match request {
                    Request::StoreOffline {
                        notify: Some(conn),
                        recipient,
                        ..
                    } => f.answer(Reply::OfflineStored { conn, recipient }),
                    Request::Search { conn, term, .. } => f.answer(Reply::Search {
                        conn,
                        term,
                        total: 0,
                        results: Vec::new(),
                    }),
                    _ => {}
                }
            }
        }
        if i % 500 == 0 {
            f.tick(61);
        }
        for &c in &conns {
            let out = f.take(c);
            assert!(out.is_empty() || out.ends_with("\r\n"), "{out:?}");
            for l in out.split_terminator("\r\n") {
                for what in [
                    " 001 ",
                    " PRIVMSG ",
                    " JOIN ",
                    " 353 ",
                    " 900 ",
                    " 904 ",
                    "ERROR ",
                ] {
                    if l.contains(what) {
                        *seen.entry(what).or_default() += 1;
                    }
                }
                assert!(l.len() + 2 <= 512, "{l:?}");
                assert!(!l.contains(['\r', '\n', '\0']), "{l:?}");
                assert!(message::parse(l).is_ok(), "{l:?}");
            }
        }
        f.frames(100);
    }
    // The random lines reach far into the commands, not just their errors.
    for what in [
        " 001 ",
        " JOIN ",
        " 353 ",
        " PRIVMSG ",
        " 900 ",
        " 904 ",
        "ERROR ",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "{what} never seen: {seen:?}"
        );
    }
}
