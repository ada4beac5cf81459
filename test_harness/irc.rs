//! End to end: IRC (`--irc-port`, PROTOCOL.md section 9) through the real server binary, with
//! real IRC software beside frame clients: irssi driven in a private tmux server, WeeChat
//! headless (FIFO in, log files out), the Python `irc` library (test_harness/irc/client.py in
//! the project venv), and raw sockets for exact bytes.
//!
//! Every wait is bounded; a missing program fails its test with the command that installs it
//! (`scripts/setup.sh`), never skips.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use chat::utils_errors as text;
use common::{tools, unstamp, Peer, ServerProc, TempDir};

/// How long a test waits for something it expects.
const WAIT: Duration = Duration::from_secs(10);

/// The server with an IRC port, named `irc.test`.
fn server(extra: &[&str]) -> ServerProc {
    let mut args = vec!["--irc-port", "0", "--server-name", "irc.test"];
    args.extend_from_slice(extra);
    ServerProc::start(&args)
}

/// Registers `name` with `password` from a frame client, then quits it (so that the name is
/// free for an IRC client to take).
fn register_name(server: &ServerProc, name: &str, password: &str) {
    let mut p = server.login(name);
    p.send(&format!("/register {password}"));
    p.expect(&text::now_registered(name));
    p.send("/quit");
    assert_eq!(p.expect_closed(), Vec::<String>::new());
}

// ---- Raw IRC lines ----------------------------------------------------------------------------

/// A raw IRC connection: lines out, lines in, every read bounded.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect to the IRC port");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and registers as `nick` (user `NICKu`); returns the burst's lines.
    fn register(addr: SocketAddr, nick: &str) -> (Raw, Vec<String>) {
        let mut raw = Raw::connect(addr);
        raw.send(&format!("NICK {nick}"));
        raw.send(&format!("USER {nick}u 0 * :{nick} Real"));
        let burst = raw.until(|l| l.contains(" 422 "), "the end of the welcome burst");
        (raw, burst)
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write to the IRC port");
    }

    /// The next line (without CR LF), or None once the server has closed.
    fn line(&mut self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                assert!(line.len() + 2 <= 512, "a line over 512 bytes: {line:?}");
                return Some(String::from_utf8(line).expect("UTF-8 from the server"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line within {WAIT:?} (have {:?})",
                String::from_utf8_lossy(&self.buf)
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "closed in mid-line: {:?}", self.buf);
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no line within {WAIT:?}: {e}"),
            }
        }
    }

    /// Asserts the next line is exactly `want`.
    fn expect(&mut self, want: &str) {
        assert_eq!(self.line().as_deref(), Some(want));
    }

    /// Lines up to and including the first that `done` accepts.
    fn until(&mut self, done: impl Fn(&str) -> bool, what: &str) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            match self.line() {
                Some(l) => {
                    let stop = done(&l);
                    got.push(l);
                    if stop {
                        return got;
                    }
                }
                None => panic!("closed before {what}; got {got:?}"),
            }
        }
    }

    /// Proves that everything sent before was handled and answered: the lines up to the PONG.
    fn sync(&mut self, token: &str) -> Vec<String> {
        self.send(&format!("PING {token}"));
        let pong = format!(":irc.test PONG irc.test :{token}");
        let mut got = self.until(|l| l == pong, "the PONG");
        got.pop();
        got
    }
}

// ---- The Python `irc` library -----------------------------------------------------------------

/// test_harness/irc/client.py under the venv's Python: commands on its stdin, one event a line
/// (tab-separated fields) on its stdout.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<String>,
    seen: Vec<String>,
}

impl Py {
    fn start(addr: SocketAddr, nick: &str, extra: &[&str]) -> Py {
        let python = tools::python();
        let check = Command::new(&python)
            .args(["-c", "import irc.client"])
            .status()
            .expect("run the venv's python");
        assert!(
            check.success(),
            "{}",
            tools::missing_message("the PyPI package irc (in the venv)")
        );
        let script = tools::repo().join("test_harness/irc/client.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([&addr.ip().to_string(), &addr.port().to_string(), nick])
            .args(extra)
            .args(["--seconds", "30"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Python IRC client");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Py {
            stdin: child.stdin.take(),
            child,
            events: rx,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("the client's stdin");
        writeln!(stdin, "{command}").expect("write to the Python client");
        stdin.flush().unwrap();
    }

    /// Waits for an event whose first fields are `fields` (an empty field matches anything);
    /// returns all its fields.
    fn expect(&mut self, fields: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.events.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!(
                    "no event {fields:?} from the Python client within {WAIT:?}; it said:\n{}",
                    self.seen.join("\n")
                ),
            };
            self.seen.push(line.clone());
            let got: Vec<String> = line.split('\t').map(str::to_string).collect();
            let matches = fields.len() <= got.len()
                && fields
                    .iter()
                    .zip(&got)
                    .all(|(want, have)| want.is_empty() || want == have);
            if matches {
                return got;
            }
        }
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- irssi in tmux ------------------------------------------------------------------------------

/// irssi in a tmux server of its own (`-S`, a private socket), its `--home` a temporary
/// directory; the screen read with `capture-pane`.
struct Irssi {
    tmux: PathBuf,
    socket: String,
    _home: TempDir,
}

impl Irssi {
    /// Starts irssi, connects it as `nick` (with SASL when `sasl` holds a password) and waits
    /// for the welcome.
    fn start(addr: SocketAddr, nick: &str, sasl: Option<&str>) -> Irssi {
        let irssi = tools::require("irssi");
        let tmux = tools::require("tmux");
        let home = TempDir::new("irssi");
        std::fs::create_dir_all(&home.0).unwrap();
        let sasl = sasl.map_or(String::new(), |pw| {
            format!(
                r#"sasl_mechanism = "PLAIN"; sasl_username = "{nick}"; sasl_password = "{pw}";"#
            )
        });
        let config = format!(
            r#"servers = ( {{ address = "{ip}"; chatnet = "chat"; port = "{port}"; use_tls = "no"; autoconnect = "no"; }} );
chatnets = {{ chat = {{ type = "IRC"; {sasl} }}; }};
settings = {{
  core = {{ real_name = "{nick} Real"; user_name = "{nick}u"; nick = "{nick}"; }};
  "irc/core" = {{ cmd_queue_speed = "0msec"; }};
  "fe-common/core" = {{ timestamps = "no"; autolog = "no"; }};
}};
"#,
            ip = addr.ip(),
            port = addr.port(),
        );
        std::fs::write(home.0.join("config"), config).unwrap();
        // A socket of its own (`-S`) inside the temporary home: no other tmux is touched and
        // nothing is left behind.
        let socket = home.0.join("tmux.sock").display().to_string();
        let status = Command::new(&tmux)
            .args([
                "-S",
                &socket,
                "new-session",
                "-d",
                "-s",
                "irssi",
                "-x",
                "200",
                "-y",
                "50",
            ])
            .arg(format!("{} --home={}", irssi.display(), home.arg()))
            .status()
            .expect("start tmux");
        assert!(status.success(), "tmux new-session failed");
        let irssi = Irssi {
            tmux,
            socket,
            _home: home,
        };
        irssi.wait_for("Irssi v");
        irssi.keys("/connect chat");
        irssi.wait_for(&format!("Welcome to the chat IRC Network, {nick}"));
        irssi
    }

    /// Types `text` and Enter.
    fn keys(&self, text: &str) {
        for args in [vec!["-l", text], vec!["Enter"]] {
            let status = Command::new(&self.tmux)
                .args(["-S", &self.socket, "send-keys", "-t", "irssi"])
                .args(args)
                .status()
                .expect("tmux send-keys");
            assert!(status.success());
        }
    }

    /// The current window's text (wrapped lines joined), with some scrollback.
    fn screen(&self) -> String {
        let out = Command::new(&self.tmux)
            .args([
                "-S",
                &self.socket,
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-300",
                "-t",
                "irssi",
            ])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the current window shows `what`.
    fn wait_for(&self, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "irssi did not show {what:?} within {WAIT:?}; its screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Irssi {
    fn drop(&mut self) {
        // Ends this tmux server (and irssi in it) by its own socket, nothing else.
        let _ = Command::new(&self.tmux)
            .args(["-S", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

// ---- WeeChat headless -------------------------------------------------------------------------

/// weechat-headless with its FIFO for commands and its logger's files to read.
struct Wee {
    child: Child,
    dir: TempDir,
    fifo: PathBuf,
}

impl Wee {
    fn start(addr: SocketAddr, nick: &str) -> Wee {
        let weechat = tools::require("weechat-headless");
        let dir = TempDir::new("weechat");
        std::fs::create_dir_all(&dir.0).unwrap();
        let setup = format!(
            "/set logger.file.flush_delay 0;/set irc.server_default.anti_flood_prio_high 0;\
             /set irc.server_default.anti_flood_prio_low 0;\
             /server add chat {}/{} -notls -nicks={nick} -username={nick}u -realname={nick};/connect chat",
            addr.ip(),
            addr.port()
        );
        let child = Command::new(weechat)
            .args([
                "--dir",
                dir.arg(),
                "-P",
                "irc,logger,fifo",
                "-s",
                "-r",
                &setup,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start weechat-headless");
        let deadline = Instant::now() + WAIT;
        let fifo = loop {
            let found = std::fs::read_dir(&dir.0).ok().and_then(|entries| {
                entries.flatten().map(|e| e.path()).find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("weechat_fifo"))
                })
            });
            if let Some(fifo) = found {
                break fifo;
            }
            assert!(
                Instant::now() < deadline,
                "WeeChat made no FIFO within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Wee { child, dir, fifo }
    }

    /// A command or text for one of WeeChat's buffers (`irc.server.chat`, `irc.chat.#tas`).
    fn input(&self, buffer: &str, text: &str) {
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.fifo)
            .expect("open WeeChat's FIFO");
        writeln!(fifo, "{buffer} *{text}").expect("write to WeeChat's FIFO");
    }

    fn log(&self, buffer: &str) -> String {
        std::fs::read_to_string(self.dir.0.join("logs").join(format!("{buffer}.weechatlog")))
            .unwrap_or_default()
    }

    /// Waits until a buffer's log holds `what`.
    fn wait_log(&self, buffer: &str, what: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log(buffer);
            if log.contains(what) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "WeeChat's {buffer} log did not show {what:?} within {WAIT:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Wee {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads frames until their texts, `[prefix]`s removed, make up `want`.
fn recv_pieces(peer: &mut Peer, prefix: &str, want: &str) -> Vec<String> {
    let mut frames = Vec::new();
    let mut got = String::new();
    while got.len() < want.len() {
        let f = peer.recv();
        let body = f
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("a frame without {prefix:?}: {f:?}"));
        got.push_str(body);
        frames.push(f);
        // A cut moves the blank to the start of the next piece; padding strips none here.
        assert!(frames.len() < 10, "{frames:?}");
    }
    assert_eq!(got, want);
    frames
}

// ---- The tests ------------------------------------------------------------------------------

#[test]
fn the_course_scenario_with_irssi_as_kay() {
    let server = server(&[]);
    let mut alice = server.login("Alice");
    alice.send("/create tas");
    let kay = Irssi::start(server.addr_of("IRC"), "Kay", None);
    kay.keys("/join #tas");
    kay.wait_for("Kay [Kayu@irc] has joined #tas");
    alice.expect("Kay has joined");
    alice.send("Hi!");
    kay.wait_for("Alice> Hi!");
    kay.keys("Hello!");
    alice.expect("[Kay] Hello!");
    kay.keys("/me waves");
    alice.expect("* Kay waves");
    // A line longer than a frame reaches the frame client as several frames, each with the
    // prefix.
    let long: Vec<String> = (0..80).map(|i| format!("w{i:02}")).collect();
    let long = long.join(" ");
    kay.keys(&long);
    let frames = recv_pieces(&mut alice, "[Kay] ", &long);
    assert_eq!(frames.len(), 2, "{frames:?}");
    kay.keys("/msg Alice a word in private");
    alice.expect("[Kay -> Alice] a word in private");
    kay.keys("/nick Kai");
    alice.expect("Kay is now known as Kai");
    kay.wait_for("You're now known as Kai");
    alice.send("still here?");
    kay.wait_for("Alice> still here?");
    kay.keys("/part #tas");
    alice.expect("Kai has left");
    // Nothing else reached the frame client (no stray numerics, no CTCP junk).
    alice.expect_silence(Duration::from_millis(200));
}

#[test]
fn irssi_identifies_a_registered_name_with_sasl() {
    let server = server(&[]);
    register_name(&server, "kay", "sesame123");
    let mut alice = server.login("Alice");
    alice.send("/create tas");
    let kay = Irssi::start(server.addr_of("IRC"), "kay", Some("sesame123"));
    // Identified before the welcome: no prompt from NickServ, and channels are open.
    kay.keys("/join #tas");
    alice.expect("kay has joined");
    kay.keys("/window 1");
    kay.wait_for("SASL authentication succeeded");
    assert!(
        !kay.screen().contains("is a registered name"),
        "{}",
        kay.screen()
    );
}

#[test]
fn the_python_library_and_frame_clients_share_the_chat() {
    let server = server(&[]);
    let irc = server.addr_of("IRC");
    let mut alice = Py::start(irc, "Alice", &[]);
    alice.expect(&["welcome", "irc.test", "Alice"]);
    alice.send("join #tas");
    alice.expect(&["join", "Alice!Alice@irc", "#tas"]);
    alice.expect(&["endofnames", "irc.test", "Alice", "#tas"]);
    let mut kay = server.login("Kay");
    kay.send("/join tas");
    alice.expect(&["join", "Kay!Kay@frame", "#tas"]);
    // The grader's exchange, one side on IRC.
    alice.send("msg #tas Hi!");
    kay.expect("[Alice] Hi!");
    kay.send("Hello!");
    alice.expect(&["pubmsg", "Kay!Kay@frame", "#tas", "Hello!"]);
    alice.send("action #tas waves");
    kay.expect("* Alice waves");
    // Private messages both ways.
    alice.send("msg kay psst");
    kay.expect("[Alice -> Kay] psst");
    kay.send("/msg Alice back at you");
    alice.expect(&["privmsg", "Kay!Kay@frame", "Alice", "back at you"]);
    // /search across the protocols: the frame client finds the IRC message and the other way.
    kay.send("/search hi");
    assert_eq!(unstamp(&kay.recv()), "(T) [tas] Alice: Hi!");
    alice.send("msg ChatServ search hello");
    let found = alice.expect(&["privnotice", "ChatServ!ChatServ@services", "Alice"]);
    assert_eq!(unstamp(&found[3]), "(T) [tas] Kay: Hello!");
    // Nick changes, parts and joins.
    alice.send("nick Alicia");
    alice.expect(&["nick", "Alice!Alice@irc", "Alicia"]);
    kay.expect("Alice is now known as Alicia");
    alice.send("part #tas see you");
    kay.expect("Alicia has left");
    alice.send("join #tas");
    kay.expect("Alicia has joined");
    kay.send("/leave");
    alice.expect(&["part", "Kay!Kay@frame", "#tas"]);
    kay.send("/join tas");
    alice.expect(&["join", "Kay!Kay@frame", "#tas"]);
    kay.send("/quit");
    kay.expect_closed();
    alice.expect(&["quit", "Kay!Kay@frame", "", "Connection closed"]);
    // Kay is offline: the message is kept, with the chat's text.
    alice.send("msg Kay see this later");
    alice.expect(&[
        "privnotice",
        "ChatServ!ChatServ@services",
        "Alicia",
        &text::user_offline("Kay"),
    ]);
    let mut kay = server.login("Kay");
    assert_eq!(
        unstamp(&kay.recv()),
        "You have 1 offline message:\n(T) [Alicia -> Kay] see this later"
    );
    kay.send("/join tas");
    alice.expect(&["join", "Kay!Kay@frame", "#tas"]);
    // QUIT with a message: the frame client hears the course text, the quitter gets ERROR.
    alice.send("quit time to go");
    kay.expect("Alicia has left");
    alice.expect(&["error", "None", "Closing Link: irc (Quit: time to go)"]);
}

#[test]
fn two_irc_clients_see_quit_messages_once_and_join_creates() {
    let server = server(&["--max-channels", "3"]);
    let irc = server.addr_of("IRC");
    let (mut kay, _) = Raw::register(irc, "kay");
    let (mut bob, _) = Raw::register(irc, "bob");
    kay.send("JOIN #a,#b");
    kay.until(
        |l| l == ":irc.test 366 kay #b :End of /NAMES list",
        "the second JOIN",
    );
    bob.send("JOIN #a,#b");
    bob.until(
        |l| l == ":irc.test 366 bob #b :End of /NAMES list",
        "the second JOIN",
    );
    kay.expect(":bob!bobu@irc JOIN #a");
    kay.expect(":bob!bobu@irc JOIN #b");
    // Past --max-channels, the course's limit text.
    kay.send("JOIN #c,#d");
    kay.until(|l| l == ":irc.test 366 kay #c :End of /NAMES list", "#c");
    kay.expect(":irc.test 403 kay #d :Cannot create d: the server already has 3 channels.");
    // Bob shares two channels with kay: one QUIT.
    kay.send("QUIT :bye both");
    kay.expect("ERROR :Closing Link: irc (Quit: bye both)");
    assert_eq!(kay.line(), None);
    bob.expect(":kay!kayu@irc QUIT :Quit: bye both");
    assert_eq!(bob.sync("after"), Vec::<String>::new());
}

#[test]
fn channels_irc_cannot_carry_are_kept_from_irc_clients() {
    let server = server(&[]);
    let mut alice = server.login("Alice");
    for name in ["a b", ":colon", "x,y", "tas"] {
        alice.send(&format!("/create {name}"));
    }
    alice.send("/list");
    assert_eq!(alice.recv(), "a b\n:colon\nx,y\ntas");
    let (mut kay, burst) = Raw::register(server.addr_of("IRC"), "kay");
    assert!(burst.contains(&":irc.test 254 kay 1 :channels formed".to_string()));
    kay.send("LIST");
    kay.expect(":irc.test 321 kay Channel :Users  Name");
    kay.expect(":irc.test 322 kay #tas 1 :");
    kay.expect(":irc.test 323 kay :End of /LIST");
    kay.send("JOIN :#a b");
    kay.expect(":irc.test 403 kay * :No such channel");
    kay.send("JOIN #:colon");
    kay.expect(":irc.test 403 kay #:colon :No such channel");
    kay.send("NAMES #:colon");
    kay.expect(":irc.test 366 kay #:colon :End of /NAMES list");
    // `#x,y` is two channels for IRC: #x (made now) and `y` (not a channel name).
    kay.send("JOIN #x,y");
    kay.expect(":kay!kayu@irc JOIN #x");
    kay.until(|l| l.contains(" 366 "), "NAMES #x");
    kay.expect(":irc.test 403 kay y :No such channel");
    // A frame user speaking in such a channel reaches no IRC client; nothing broke.
    alice.send("/join a b");
    alice.send("hello in a b");
    assert_eq!(kay.sync("ok"), Vec::<String>::new());
    alice.send("/list");
    assert_eq!(alice.recv(), "a b\n:colon\nx,y\ntas\nx");
}

#[test]
fn sasl_and_nickserv_identify_and_wrong_passwords_lock_the_name() {
    let server = server(&[]);
    let irc = server.addr_of("IRC");
    register_name(&server, "kay", "sesame123");
    // SASL PLAIN with the Python library (its authzid is empty).
    let mut py = Py::start(irc, "kay", &["--sasl", "sesame123"]);
    py.expect(&["loggedin", "irc.test", "*", "*!*@irc", "kay"]);
    py.expect(&["saslsuccess", "irc.test", "*"]);
    py.expect(&["welcome", "irc.test", "kay"]);
    py.send("join #tas");
    py.expect(&["join", "kay!kay@irc", "#tas"]);
    py.send("quit done");
    py.expect(&["error"]);
    drop(py);
    // NickServ: a raw client without SASL must identify; three wrong passwords close it.
    let (mut raw, burst) = Raw::register(irc, "kay");
    assert!(burst
        .last()
        .unwrap()
        .ends_with(" 422 kay :MOTD File is missing"));
    raw.expect(&format!(
        ":NickServ!NickServ@services NOTICE kay :{}",
        text::irc_identify_prompt("kay", 60)
    ));
    raw.send("JOIN #tas");
    raw.expect(
        ":NickServ!NickServ@services NOTICE kay :Send /msg NickServ IDENTIFY password first.",
    );
    for _ in 0..3 {
        raw.send("PRIVMSG NickServ :IDENTIFY wrong-password");
        raw.expect(":NickServ!NickServ@services NOTICE kay :Wrong password for kay.");
    }
    assert_eq!(raw.line(), None, "closed after the third wrong password");
    // The name is locked now: even the right password is refused, by SASL as by NickServ.
    let mut py = Py::start(irc, "kay", &["--sasl", "sesame123"]);
    let why = py.expect(&["privnotice", "irc.test", "*"]);
    assert!(
        why[3].starts_with("Too many wrong passwords for kay. Try again in ")
            && why[3].ends_with(" seconds."),
        "{why:?}"
    );
    py.expect(&["login_failed"]);
    py.expect(&["welcome", "irc.test", "kay"]);
    let prompt = py.expect(&["privnotice", "NickServ!NickServ@services", "kay"]);
    assert_eq!(prompt[3], text::irc_identify_prompt("kay", 60));
    py.send("msg NickServ IDENTIFY sesame123");
    let locked = py.expect(&["privnotice", "NickServ!NickServ@services", "kay"]);
    assert!(
        locked[3].starts_with("Too many wrong passwords for kay."),
        "{locked:?}"
    );
}

#[test]
fn weechat_identifies_with_nickserv_and_chats_with_a_frame_client() {
    let server = server(&[]);
    register_name(&server, "wee", "wee-password");
    let mut alice = server.login("Alice");
    alice.send("/create tas");
    let wee = Wee::start(server.addr_of("IRC"), "wee");
    wee.wait_log("irc.server.chat", "Welcome to the chat IRC Network, wee");
    wee.wait_log("irc.server.chat", "wee is a registered name.");
    // WeeChat sends the target as typed.
    wee.input("irc.server.chat", "/msg nickserv identify wee-password");
    wee.wait_log("irc.server.chat", "You are now identified as wee.");
    wee.input("irc.server.chat", "/join #tas");
    alice.expect("wee has joined");
    // The channel's buffer exists once WeeChat has seen its JOIN come back.
    wee.wait_log("irc.chat.#tas", "wee (weeu@irc) has joined #tas");
    wee.input("irc.chat.#tas", "hello from wee");
    alice.expect("[wee] hello from wee");
    alice.send("Hi wee!");
    wee.wait_log("irc.chat.#tas", "Alice\tHi wee!");
    wee.input("irc.chat.#tas", "/me waves");
    alice.expect("* wee waves");
}

#[test]
fn chatserv_carries_the_ics_commands() {
    let server = server(&[]);
    let irc = server.addr_of("IRC");
    let (mut kay, _) = Raw::register(irc, "kay");
    let cs = ":ChatServ!ChatServ@services NOTICE kay :";
    let sonnets =
        chat::sonnets::Sonnets::load(&common::sonnet_files::plain_path_checked()).unwrap();
    let want: Vec<String> = chat::sonnets::reply(Some(&sonnets), "18")
        .iter()
        .map(|l| format!("{cs}{l}"))
        .collect();
    assert_eq!(want[0], format!("{cs}XVIII."));
    kay.send("PRIVMSG ChatServ :sonnet 18");
    assert_eq!(kay.sync("s1"), want);
    kay.send("SONNET 18");
    assert_eq!(kay.sync("s2"), want);
    kay.send("PRIVMSG ChatServ :sonnet 155");
    assert_eq!(
        kay.sync("s3"),
        [format!("{cs}{}", text::sonnet_not_found("155"))]
    );
    kay.send("PRIVMSG ChatServ :time");
    let time = kay.sync("t1");
    assert_eq!(time.len(), 1);
    assert!(time[0].starts_with(&format!("{cs}Time is: ")), "{time:?}");
    kay.send("TIME");
    let time = kay.sync("t2");
    assert!(
        time[0].starts_with(":irc.test 391 kay irc.test :Time is: "),
        "{time:?}"
    );
    let mut bob = server.login("Bob");
    bob.send("/create tas");
    kay.send("JOIN #tas");
    kay.until(|l| l.contains(" 366 "), "the JOIN");
    bob.expect("kay has joined");
    bob.send("the needle is here");
    kay.expect(":Bob!Bob@frame PRIVMSG #tas :the needle is here");
    kay.send("PRIVMSG ChatServ :who");
    assert_eq!(
        kay.sync("w"),
        [
            format!("{cs}Users: ------------"),
            format!("{cs}Bob: #tas"),
            format!("{cs}kay: #tas"),
            format!("{cs}Groups: -----------"),
            format!("{cs}#tas: Bob, kay"),
        ]
    );
    kay.send("CS members");
    assert_eq!(kay.sync("m"), [format!("{cs}Members of #tas: Bob, kay")]);
    kay.send("SEARCH needle");
    let found = kay.sync("f");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        unstamp(&found[0]),
        format!("{cs}(T) [tas] Bob: the needle is here")
    );
    kay.send("PRIVMSG ChatServ :help");
    let help: Vec<String> = text::CHATSERV_HELP
        .iter()
        .map(|l| format!("{cs}{l}"))
        .collect();
    assert_eq!(kay.sync("h"), help);
    kay.send("PRIVMSG ChatServ :register kays-password");
    kay.expect(":NickServ!NickServ@services NOTICE kay :Name kay is now registered.");
    bob.expect_silence(Duration::from_millis(100));
}

#[test]
fn away_ping_and_the_errors_of_everything_else() {
    let server = server(&[]);
    let irc = server.addr_of("IRC");
    // Before registration: irssi's probe, and a PING.
    let mut raw = Raw::connect(irc);
    raw.send("CAP LS 302");
    raw.expect(":irc.test CAP * LS :sasl=PLAIN");
    raw.send("JOIN :");
    raw.expect(":irc.test 451 * JOIN :You have not registered");
    raw.send("PING :early");
    raw.expect(":irc.test PONG irc.test :early");
    raw.send("NICK kay");
    raw.send("USER kayu 0 * :Kay");
    raw.send("CAP END");
    raw.until(|l| l.contains(" 422 "), "the welcome burst");
    let (mut bob, _) = Raw::register(irc, "bob");
    bob.send("AWAY :out to lunch");
    bob.expect(":irc.test 306 bob :You have been marked as being away");
    raw.send("PRIVMSG bob :are you there?");
    bob.expect(":kay!kayu@irc PRIVMSG bob :are you there?");
    raw.expect(":irc.test 301 kay bob :out to lunch");
    raw.send("WHO bob");
    raw.expect(":irc.test 352 kay * bobu irc irc.test bob G :0 bob Real");
    raw.expect(":irc.test 315 kay bob :End of WHO list");
    bob.send("AWAY");
    bob.expect(":irc.test 305 bob :You are no longer marked as being away");
    // The errors.
    for (line, want) in [
        (
            "FROBNICATE x",
            ":irc.test 421 kay FROBNICATE :Unknown command",
        ),
        (
            "NICK bob",
            ":irc.test 433 kay bob :Nickname is already in use",
        ),
        ("NICK @bad", ":irc.test 432 kay @bad :Erroneous nickname"),
        ("JOIN", ":irc.test 461 kay JOIN :Not enough parameters"),
        ("JOIN tas", ":irc.test 403 kay tas :No such channel"),
        ("PART #nope", ":irc.test 403 kay #nope :No such channel"),
        ("USER a b c :d", ":irc.test 462 kay :You may not reregister"),
        (
            "PRIVMSG ghost :hi",
            ":irc.test 401 kay ghost :No user named ghost exists.",
        ),
        ("PRIVMSG", ":irc.test 411 kay :No recipient given (PRIVMSG)"),
        ("PRIVMSG bob", ":irc.test 412 kay :No text to send"),
        ("PING", ":irc.test 409 kay :No origin specified"),
        ("TOPIC #nope", ":irc.test 403 kay #nope :No such channel"),
        (
            "MODE bob +i",
            ":irc.test 502 kay :Cant change mode for other users",
        ),
    ] {
        raw.send(line);
        raw.expect(want);
    }
    raw.send("WHOIS ghost");
    raw.expect(":irc.test 401 kay ghost :No such nick/channel");
    raw.expect(":irc.test 318 kay ghost :End of /WHOIS list");
    // A NOTICE never gets an error.
    raw.send("NOTICE ghost :hi");
    raw.send("NOTICE #nope :hi");
    assert_eq!(raw.sync("quiet"), Vec::<String>::new());
    // A PRIVMSG whose relayed line would pass 512 bytes: 417, not cut.
    raw.send("JOIN #tas");
    raw.until(|l| l.contains(" 366 "), "the JOIN");
    bob.send("JOIN #tas");
    bob.until(|l| l.contains(" 366 "), "the JOIN");
    raw.expect(":bob!bobu@irc JOIN #tas");
    raw.send(&format!("PRIVMSG #tas :{}", "x".repeat(483)));
    raw.expect(":irc.test 417 kay :Input line was too long");
    raw.send(&format!("PRIVMSG #tas :{}", "x".repeat(482)));
    let relayed = bob.line().unwrap();
    assert_eq!(relayed.len() + 2, 512);
    // A line over 512 bytes itself.
    raw.send(&format!("PRIVMSG #tas :{}", "x".repeat(600)));
    raw.expect(":irc.test 417 kay :Input line was too long");
    assert_eq!(bob.sync("nothing"), Vec::<String>::new());
}

#[test]
fn a_line_cut_across_reads_is_handled_and_reading_goes_on() {
    let server = server(&["--flood-rate", "0"]);
    let irc = server.addr_of("IRC");
    let (mut kay, _) = Raw::register(irc, "kay");
    let (mut bob, _) = Raw::register(irc, "bob");
    for raw in [&mut kay, &mut bob] {
        raw.send("JOIN #tas");
        raw.until(|l| l.contains(" 366 "), "the JOIN");
    }
    kay.expect(":bob!bobu@irc JOIN #tas");
    // One whole line and the start of the next in one write, the rest in another: the server
    // reads the first write, keeps the partial line, and must read on for its end.
    for (first, second) in [
        ("PRIVMSG #tas :one\r\nPRIV", "MSG #tas :two\r\n"),
        ("PRIVMSG #tas :thr", "ee\r\n"),
        ("PRIVMSG #tas :four\r", "\nPRIVMSG #tas :five\r\n"),
    ] {
        kay.stream.write_all(first.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        kay.stream.write_all(second.as_bytes()).unwrap();
    }
    for text in ["one", "two", "three", "four", "five"] {
        bob.expect(&format!(":kay!kayu@irc PRIVMSG #tas :{text}"));
    }
    kay.send("PING :still-read");
    kay.expect(":irc.test PONG irc.test :still-read");
}
