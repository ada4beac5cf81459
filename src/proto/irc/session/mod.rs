//! One IRC client's session: registration, then its commands as calls of the hub; and the
//! hub's events rendered as IRC lines.
//!
//! Sans-I/O: the event loop cuts the client's bytes into lines ([`super::message`]) and hands
//! each to [`Session::line`]; what the session answers itself goes out as [`Out::Raw`], what
//! the hub emits is rendered by [`render`] (once for every IRC client it concerns, so the
//! rendering depends on the event alone, never on the session).
//!
//! - [`register`]: `CAP`, `PASS`, `NICK`, `USER`, SASL `AUTHENTICATE`, the welcome burst.
//! - [`channels`]: `JOIN`, `PART`, `NAMES`, `LIST`, `TOPIC`, `WHO`, `WHOIS`, `MODE`, and the
//!   long replies sent a part at a time.
//! - [`messages`]: `PRIVMSG`/`NOTICE`, `AWAY`, and the NickServ and ChatServ pseudo-users that
//!   carry the chat's commands.
//! - [`render`]: the hub's events as lines; how frame users whose names IRC cannot carry are
//!   shown (aliases).
//!
//! docs/IRC.md has the research behind the shapes; docs/PROTOCOL.md ("IRC") says what users see.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::message::{self, Message, ParseError};
use super::numerics::{self, Numeric};
use crate::hub::{ConnId, Hub, Out, Sink};
use crate::utils_errors as text;

mod channels;
mod messages;
mod register;
mod render;

pub use render::{irc_nick, is_alias, prefix, render, render_reason, CHATSERV, NICKSERV};

#[cfg(test)]
mod tests;

/// What every IRC session of a server shares.
#[derive(Debug, Clone)]
pub struct IrcConfig {
    /// The server's name in numerics, `004` and `PONG` (`--server-name`).
    pub server_name: Box<str>,
    /// The network name in `001` and `005`.
    pub network: Box<str>,
    /// The message of the day (`--motd FILE`), its lines.
    pub motd: Option<Arc<[String]>>,
    /// When the server started, for `003`.
    pub created: Box<str>,
}

/// The version shown in `002` and `004`.
pub const VERSION: &str = concat!("chat-", env!("CARGO_PKG_VERSION"));

/// A client silent this long is pinged.
pub const PING_AFTER: Duration = Duration::from_secs(60);
/// A pinged client that answers nothing within this long is closed.
pub const PING_TIMEOUT: Duration = Duration::from_secs(60);

/// Channels one IRC client may be in at once (`CHANLIMIT=#:100`): bounds `WHOIS` and
/// `JOIN 0`, and what one client costs the hub.
pub const MAX_JOINED: usize = 100;
/// The longest away message, in characters (`AWAYLEN`); a longer one is cut, as the token says.
pub const AWAYLEN: usize = 200;
/// The longest `user` of `nick!user@host`, in characters (`USERLEN`); a longer one is cut.
pub const USERLEN: usize = 32;
/// The longest real name kept from `USER`, in bytes (so that a `352` line always fits).
pub const REALNAME_BYTES: usize = 100;
/// The longest `QUIT` or `PART` message relayed, in bytes (so that the line always fits).
pub const REASON_BYTES: usize = 300;
/// A long reply (`LIST`, `NAMES`, `WHO #channel`) goes out this many bytes at a time: one part
/// at once, then one a second, so that no reply can fill a reader's queue.
pub const STEP_BYTES: usize = 16 * 1024;
/// Long replies waiting for one client at most; past it a command gets `263` (try again).
pub const MAX_JOBS: usize = 8;
/// `WHO` with a mask lists at most this many users.
pub const WHO_MASK_MAX: usize = 200;

/// Everything a session's handling of one line needs.
pub struct Ctx<'a, S: Sink> {
    pub hub: &'a mut Hub,
    pub conn: ConnId,
    pub cfg: &'a IrcConfig,
    pub sink: &'a mut S,
    pub now: Instant,
}

/// Where an SASL exchange is.
#[derive(Debug, Default)]
enum Sasl {
    #[default]
    Idle,
    /// `AUTHENTICATE PLAIN` was answered; the response comes in chunks.
    Plain(super::sasl::Response),
    /// The hub checks the password for this account (its key); its answer is rendered as
    /// 900/903 or 904, and the next line finds out which.
    Checking(Box<str>),
    /// The password was right.
    Done,
}

/// A long reply being sent a part at a time.
#[derive(Debug)]
enum Job {
    List {
        next: usize,
    },
    Names {
        ch: usize,
        next: usize,
    },
    Who {
        ch: usize,
        next: usize,
        mask: String,
    },
}

/// One IRC client's state.
#[derive(Debug)]
pub struct Session {
    /// Before registration, the last nick accepted; after, the nick (the hub's name).
    nick: Option<String>,
    /// The `USER` username, once given (checked when registration completes).
    user: Option<String>,
    realname: String,
    /// A `PASS` given before registration: used as `/identify` if the nick is registered.
    pass: Option<String>,
    /// `CAP LS` or `CAP REQ` came before registration: it waits for `CAP END`.
    cap_open: bool,
    /// The client sent `CAP LS 302` (capability values allowed).
    cap_302: bool,
    /// The `sasl` capability is enabled.
    cap_sasl: bool,
    sasl: Sasl,
    registered: bool,
    /// User mode `+i` (accepted and shown; it changes nothing).
    invisible: bool,
    last_heard: Instant,
    pinged: Option<Instant>,
    jobs: VecDeque<Job>,
    /// In a cluster, a `JOIN` of a new channel waits for the cluster to create it: the chat
    /// name and the parameter as the client sent it. Settled once the hub stops waiting.
    pending_join: Option<(String, String)>,
    /// The rest of a `JOIN #a,#b` list behind a pending one, joined in order after it.
    deferred_joins: VecDeque<String>,
}

impl Session {
    /// A session for a new connection.
    pub fn new(now: Instant) -> Session {
        Session {
            nick: None,
            user: None,
            realname: String::new(),
            pass: None,
            cap_open: false,
            cap_302: false,
            cap_sasl: false,
            sasl: Sasl::Idle,
            registered: false,
            invisible: false,
            last_heard: now,
            pinged: None,
            jobs: VecDeque::new(),
            pending_join: None,
            deferred_joins: VecDeque::new(),
        }
    }

    /// The nick, once the client has one.
    pub fn nick(&self) -> Option<&str> {
        self.nick.as_deref()
    }

    /// True once the client has registered (had its `001`).
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Handles one complete line from the client (without its line ending).
    pub fn line<S: Sink>(&mut self, bytes: &[u8], ctx: &mut Ctx<'_, S>) {
        self.last_heard = ctx.now;
        self.pinged = None;
        self.settle_sasl(ctx);
        self.settle_joins(ctx);
        let text = message::decode(bytes);
        let msg = match message::parse(&text) {
            Ok(msg) => msg,
            Err(ParseError::BadCommand) if self.registered => {
                let me = self.target().to_string();
                numeric(
                    ctx,
                    numerics::ERR_UNKNOWNCOMMAND,
                    &me,
                    &["*"],
                    text::IRC_UNKNOWN_COMMAND,
                );
                return;
            }
            Err(_) => return,
        };
        let mut upper = [0u8; COMMAND_ON_STACK];
        let word = upper_command(msg.command, &mut upper);
        if !self.registered {
            self.before_registration(&word, &msg, ctx);
        } else if ctx.hub.is_open(ctx.conn) {
            self.command(&word, &msg, ctx);
        } else {
            self.unidentified(&word, &msg, ctx);
        }
    }

    /// The client sent a line longer than IRC allows.
    /// True while a `JOIN` waits for the cluster: the loop calls [`Session::settle`] once the
    /// hub no longer makes the connection wait, before its next line.
    pub fn has_pending(&self) -> bool {
        self.pending_join.is_some() || !self.deferred_joins.is_empty()
    }

    /// Finishes what waited for the hub (a `JOIN` the cluster had to create the channel for).
    pub fn settle<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        self.settle_joins(ctx);
    }

    pub fn too_long<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        let target = self.target().to_string();
        numeric(
            ctx,
            numerics::ERR_INPUTTOOLONG,
            &target,
            &[],
            text::IRC_INPUT_TOO_LONG,
        );
    }

    /// Time passed (the loop calls it about once a second): pings an idle client, closes a
    /// dead one, and sends the next part of a long reply.
    pub fn tick<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        self.settle_joins(ctx);
        if let Some(sent) = self.pinged {
            if ctx.now.saturating_duration_since(sent) >= PING_TIMEOUT {
                let silent = ctx.now.saturating_duration_since(self.last_heard).as_secs();
                let why = text::irc_ping_timeout(silent);
                self.leave(&why, ctx);
                return;
            }
        } else if ctx.now.saturating_duration_since(self.last_heard) >= PING_AFTER {
            let mut buf = Vec::new();
            let _ = message::write_message(&mut buf, None, "PING", &[], Some(&ctx.cfg.server_name));
            ctx.sink.emit(ctx.conn, &Out::Raw(&buf));
            self.pinged = Some(ctx.now);
        }
        self.run_jobs(ctx);
    }

    /// The nick for numerics: the nick, or `*` before there is one.
    fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    /// A registered client whose name is registered and not identified yet: only what
    /// identifying needs, and what clients send by themselves, is carried out.
    fn unidentified<S: Sink>(&mut self, word: &str, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let allowed = match word {
            "PING" | "PONG" | "QUIT" | "CAP" | "MODE" | "MOTD" | "LUSERS" | "TIME" | "USER"
            | "PASS" | "AUTHENTICATE" | "IDENTIFY" | "NICKSERV" | "NS" | "WHOIS" => true,
            "PRIVMSG" | "NOTICE" => msg
                .param(0)
                .is_some_and(|t| t.eq_ignore_ascii_case(NICKSERV)),
            _ => false,
        };
        if allowed {
            self.command(word, msg, ctx);
        } else {
            let me = self.target().to_string();
            messages::notice(ctx, NICKSERV, &me, &[text::IRC_IDENTIFY_FIRST]);
        }
    }

    /// A command from a registered client.
    fn command<S: Sink>(&mut self, word: &str, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        // The relay path first: it needs nothing below.
        if let "PRIVMSG" | "NOTICE" = word {
            self.privmsg(word == "NOTICE", msg, ctx);
            return;
        }
        let me = self.target().to_string();
        match word {
            "PING" => pong(msg, &me, ctx),
            "PONG" => {}
            "QUIT" => self.quit(msg.param(0), ctx),
            "CAP" => self.cap(msg, ctx),
            "NICK" => self.nick_change(msg, ctx),
            "USER" | "PASS" => numeric(
                ctx,
                numerics::ERR_ALREADYREGISTERED,
                &me,
                &[],
                text::IRC_ALREADY_REGISTERED,
            ),
            "AUTHENTICATE" => {
                let (n, t) = if matches!(self.sasl, Sasl::Done) {
                    (numerics::ERR_SASLALREADY, text::IRC_SASL_ALREADY)
                } else {
                    (
                        numerics::ERR_ALREADYREGISTERED,
                        text::IRC_ALREADY_REGISTERED,
                    )
                };
                numeric(ctx, n, &me, &[], t);
            }
            "MOTD" => {
                let mut lines = Lines::default();
                register::motd(&mut lines, &me, ctx.cfg);
                lines.send(ctx);
            }
            "LUSERS" => {
                let mut lines = Lines::default();
                register::lusers(&mut lines, &me, ctx);
                lines.send(ctx);
            }
            "TIME" => {
                let stamp = ctx.hub.now_stamp();
                let server = ctx.cfg.server_name.clone();
                numeric(
                    ctx,
                    numerics::RPL_TIME,
                    &me,
                    &[&server],
                    &text::irc_time(&stamp),
                );
            }
            "JOIN" => self.join(msg, ctx),
            "PART" => self.part(msg, ctx),
            "NAMES" => self.names(msg, ctx),
            "LIST" => self.list(msg, ctx),
            "TOPIC" => channels::topic(msg, &me, ctx),
            "WHO" => self.who(msg, ctx),
            "WHOIS" => channels::whois(msg, &me, ctx),
            "MODE" => self.mode(msg, ctx),
            "AWAY" => messages::away(msg, &me, ctx),
            "NICKSERV" | "NS" => self.service(NICKSERV, &joined(msg), ctx),
            "CHATSERV" | "CS" => self.service(CHATSERV, &joined(msg), ctx),
            "IDENTIFY" => self.service(NICKSERV, &format!("IDENTIFY {}", joined(msg)), ctx),
            "SEARCH" => self.service(CHATSERV, &format!("SEARCH {}", joined(msg)), ctx),
            "SONNET" | "POEM" => self.service(CHATSERV, &format!("SONNET {}", joined(msg)), ctx),
            "HELP" => self.service(CHATSERV, "HELP", ctx),
            _ => numeric(
                ctx,
                numerics::ERR_UNKNOWNCOMMAND,
                &me,
                &[msg.command],
                text::IRC_UNKNOWN_COMMAND,
            ),
        }
    }

    /// `QUIT [:message]`: the channels hear `Quit: message` (once each), the client gets
    /// `ERROR :Closing Link: …` and is closed.
    fn quit<S: Sink>(&mut self, message: Option<&str>, ctx: &mut Ctx<'_, S>) {
        let cleaned = crate::frame::clean(message.unwrap_or(""));
        let said = fit(cleaned.trim(), REASON_BYTES);
        let why = if said.is_empty() {
            text::IRC_QUIT_NO_MESSAGE.to_string()
        } else {
            text::irc_quit(said)
        };
        self.leave(&why, ctx);
    }

    /// Ends the connection: its channels hear `why` as its quit message; the client gets the
    /// closing link line.
    fn leave<S: Sink>(&mut self, why: &str, ctx: &mut Ctx<'_, S>) {
        let host = ctx
            .hub
            .person(ctx.conn)
            .map_or_else(|| "irc".to_string(), |p| p.host.to_string());
        // The hub is told here rather than by the loop, so that the quit message reaches the
        // channels; the loop's own disconnect later finds the connection gone and does nothing.
        if ctx.hub.name_of(ctx.conn).is_some() {
            ctx.hub.disconnect(ctx.conn, Some(why), ctx.sink);
        }
        ctx.sink
            .close(ctx.conn, Some(&text::irc_closing_link(&host, why)));
        self.jobs.clear();
    }

    /// Queues a long reply and sends its first part; `263` when too many wait already.
    fn push_job<S: Sink>(&mut self, job: Job, command: &str, ctx: &mut Ctx<'_, S>) {
        if self.jobs.len() >= MAX_JOBS {
            let me = self.target().to_string();
            numeric(
                ctx,
                numerics::RPL_TRYAGAIN,
                &me,
                &[command],
                text::IRC_TRY_AGAIN,
            );
            return;
        }
        self.jobs.push_back(job);
        self.run_jobs(ctx);
    }

    /// Sends up to [`STEP_BYTES`] of the waiting long replies.
    fn run_jobs<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        if self.jobs.is_empty() {
            return;
        }
        let me = self.target().to_string();
        let mut lines = Lines::default();
        while let Some(job) = self.jobs.front_mut() {
            let done = channels::step(job, &mut lines, &me, ctx);
            if done {
                self.jobs.pop_front();
            }
            if lines.buf.len() >= STEP_BYTES {
                break;
            }
        }
        lines.send(ctx);
    }
}

/// All the parameters of a line, joined by spaces (`NS IDENTIFY pw` and `NS :IDENTIFY pw`
/// alike).
fn joined(msg: &Message<'_>) -> String {
    msg.params().join(" ")
}

/// The longest start of `s` of at most `max` bytes that ends at a character boundary.
pub(crate) fn fit(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// True when `s` can be a middle parameter as it is.
fn safe_middle(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(':')
        && !s.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0))
}

/// Lines the session writes for its own client, sent together.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Appends a numeric. A parameter that cannot be written as it is (an echo of what the
    /// client sent) becomes `*`; a trailing text that does not fit is cut: the line is never
    /// lost nor broken.
    fn numeric(
        &mut self,
        server: &str,
        n: Numeric,
        target: &str,
        middle: &[&str],
        trailing: Option<&str>,
    ) {
        let target = if safe_middle(target) { target } else { "*" };
        if message::write_numeric(&mut self.buf, server, n, target, middle, trailing).is_ok() {
            return;
        }
        let starred: Vec<&str> = middle
            .iter()
            .map(|m| {
                if safe_middle(m) && m.len() <= 200 {
                    *m
                } else {
                    "*"
                }
            })
            .collect();
        let Some(trailing) = trailing else {
            let _ = message::write_numeric(&mut self.buf, server, n, target, &starred, None);
            return;
        };
        let mut params = vec![target];
        params.extend_from_slice(&starred);
        let overhead = message::line_len(Some(server), "000", &params, Some(""));
        let room = message::MAX_LINE.saturating_sub(overhead);
        let _ = message::write_numeric(
            &mut self.buf,
            server,
            n,
            target,
            &starred,
            Some(fit(trailing, room)),
        );
    }

    /// Appends a line with a source.
    fn message(&mut self, prefix: &str, command: &str, middle: &[&str], trailing: Option<&str>) {
        let _ = message::write_message(&mut self.buf, Some(prefix), command, middle, trailing);
    }

    /// Sends what was written, if anything.
    fn send<S: Sink>(self, ctx: &mut Ctx<'_, S>) {
        if !self.buf.is_empty() {
            ctx.sink.emit(ctx.conn, &Out::Raw(&self.buf));
        }
    }
}

/// Sends one numeric to the session's client.
fn numeric<S: Sink>(
    ctx: &mut Ctx<'_, S>,
    n: Numeric,
    target: &str,
    middle: &[&str],
    trailing: &str,
) {
    let mut lines = Lines::default();
    lines.numeric(&ctx.cfg.server_name, n, target, middle, Some(trailing));
    lines.send(ctx);
}

/// Room for a command in capitals on the stack: every command the server knows fits.
const COMMAND_ON_STACK: usize = 16;

/// `command` in ASCII capitals, written into `upper` when it fits (no allocation per line).
fn upper_command<'a>(command: &str, upper: &'a mut [u8; COMMAND_ON_STACK]) -> Cow<'a, str> {
    let Some(room) = upper.get_mut(..command.len()) else {
        return Cow::Owned(command.to_ascii_uppercase());
    };
    room.copy_from_slice(command.as_bytes());
    room.make_ascii_uppercase();
    // ASCII case changes keep UTF-8 valid; the fallback is never taken.
    match std::str::from_utf8(room) {
        Ok(word) => Cow::Borrowed(word),
        Err(_) => Cow::Owned(command.to_ascii_uppercase()),
    }
}

/// `PING token` → `:NAME PONG NAME :token`; `409` without a token.
fn pong<S: Sink>(msg: &Message<'_>, me: &str, ctx: &mut Ctx<'_, S>) {
    let Some(token) = msg.param(0).filter(|t| !t.is_empty()) else {
        numeric(ctx, numerics::ERR_NOORIGIN, me, &[], text::IRC_NO_ORIGIN);
        return;
    };
    let name = ctx.cfg.server_name.clone();
    let room = message::MAX_LINE.saturating_sub(message::line_len(
        Some(&name),
        "PONG",
        &[&name],
        Some(""),
    ));
    let mut lines = Lines::default();
    lines.message(&name, "PONG", &[&name], Some(fit(token, room)));
    lines.send(ctx);
}
