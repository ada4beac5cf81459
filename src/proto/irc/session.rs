//! One IRC client's session: registration, then its commands as calls of the hub; and the
//! hub's events rendered as IRC lines.
//!
//! Sans-I/O: the event loop cuts the client's bytes into lines ([`super::message`]) and hands
//! each to [`Session::line`]; what the session answers itself goes out as [`Out::Raw`], what
//! the hub emits is rendered by [`render`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::message::{self, Message};
use super::numerics::{self, Numeric};
use crate::hub::{ConnId, Hub, MsgKind, Out, Sink};

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

/// Everything a session's handling of one line needs.
pub struct Ctx<'a, S: Sink> {
    pub hub: &'a mut Hub,
    pub conn: ConnId,
    pub cfg: &'a IrcConfig,
    pub sink: &'a mut S,
    pub now: Instant,
}

/// One IRC client's state.
#[derive(Debug)]
pub struct Session {
    nick: Option<String>,
    user: Option<String>,
    /// CAP negotiation holds registration until `CAP END`.
    cap_open: bool,
    registered: bool,
    last_heard: Instant,
    pinged: Option<Instant>,
}

impl Session {
    /// A session for a new connection.
    pub fn new(now: Instant) -> Session {
        Session {
            nick: None,
            user: None,
            cap_open: false,
            registered: false,
            last_heard: now,
            pinged: None,
        }
    }

    /// The nick, once the client has one.
    pub fn nick(&self) -> Option<&str> {
        self.nick.as_deref()
    }

    /// Handles one complete line from the client (without its line ending).
    pub fn line<S: Sink>(&mut self, bytes: &[u8], ctx: &mut Ctx<'_, S>) {
        self.last_heard = ctx.now;
        self.pinged = None;
        let text = message::decode(bytes);
        let Ok(msg) = message::parse(&text) else {
            return;
        };
        if !self.registered {
            self.before_registration(&msg, ctx);
        } else {
            self.command(&msg, ctx);
        }
    }

    /// The client sent a line longer than IRC allows.
    pub fn too_long<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        let target = self.target().to_string();
        numeric(
            ctx,
            numerics::ERR_INPUTTOOLONG,
            &target,
            &[],
            "Input line was too long",
        );
    }

    /// Time passed: pings an idle client, closes a dead one.
    pub fn tick<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        if let Some(sent) = self.pinged {
            if ctx.now.saturating_duration_since(sent) >= PING_TIMEOUT {
                let reason = format!("Ping timeout: {} seconds", PING_TIMEOUT.as_secs());
                ctx.sink.close(ctx.conn, Some(&reason));
            }
        } else if ctx.now.saturating_duration_since(self.last_heard) >= PING_AFTER {
            let mut buf = Vec::new();
            let _ = message::write_message(&mut buf, None, "PING", &[], Some(&ctx.cfg.server_name));
            ctx.sink.emit(ctx.conn, &Out::Raw(&buf));
            self.pinged = Some(ctx.now);
        }
    }

    fn target(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    fn before_registration<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        if msg.is("CAP") {
            match msg.param(0).map(str::to_ascii_uppercase).as_deref() {
                Some("LS") | Some("REQ") => self.cap_open = true,
                Some("END") => self.cap_open = false,
                _ => {}
            }
        } else if msg.is("NICK") {
            self.nick = msg.param(0).map(str::to_string);
        } else if msg.is("USER") {
            self.user = msg.param(0).map(str::to_string);
        } else if msg.is("PING") {
            pong(msg, ctx);
            return;
        } else if msg.is("QUIT") {
            ctx.sink.close(ctx.conn, None);
            return;
        } else if !msg.is("PASS") {
            numeric(
                ctx,
                numerics::ERR_NOTREGISTERED,
                "*",
                &[msg.command],
                "You have not registered",
            );
            return;
        }
        self.try_register(ctx);
    }

    fn try_register<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        if self.cap_open || self.user.is_none() {
            return;
        }
        let Some(nick) = self.nick.clone() else {
            return;
        };
        match ctx
            .hub
            .login(ctx.conn, &nick, self.user.as_deref(), ctx.sink)
        {
            Ok(_) => {
                self.registered = true;
                welcome(&nick, ctx);
            }
            Err(_) => {
                numeric(
                    ctx,
                    numerics::ERR_NICKNAMEINUSE,
                    "*",
                    &[&nick],
                    "Nickname is already in use",
                );
                self.nick = None;
            }
        }
    }

    fn command<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let nick = self.target().to_string();
        if msg.is("PING") {
            pong(msg, ctx);
        } else if msg.is("PONG") {
        } else if msg.is("QUIT") {
            ctx.sink.close(ctx.conn, None);
        } else if msg.is("JOIN") {
            for name in msg.param(0).unwrap_or("").split(',') {
                let Some(chat) = message::chat_channel(name) else {
                    numeric(
                        ctx,
                        numerics::ERR_NOSUCHCHANNEL,
                        &nick,
                        &[name],
                        "No such channel",
                    );
                    continue;
                };
                let joined = match ctx.hub.channel_id(chat) {
                    Some(_) => ctx.hub.join(ctx.conn, chat, ctx.sink),
                    None => ctx.hub.create(ctx.conn, chat, ctx.sink),
                };
                if joined.is_ok() {
                    let prefix = prefix_of(ctx.hub, ctx.conn);
                    let mut buf = Vec::new();
                    let _ = message::write_message(&mut buf, Some(&prefix), "JOIN", &[name], None);
                    ctx.sink.emit(ctx.conn, &Out::Raw(&buf));
                }
            }
        } else if msg.is("PRIVMSG") || msg.is("NOTICE") {
            let (Some(target), Some(text)) = (msg.param(0), msg.param(1)) else {
                return;
            };
            let kind = if msg.is("NOTICE") {
                MsgKind::Notice
            } else {
                MsgKind::Chat
            };
            let (kind, text) = match message::action(text) {
                Some(body) => (MsgKind::Action, body),
                None => (kind, text),
            };
            let text = crate::frame::clean(text);
            if let Some(chat) = message::chat_channel(target) {
                if let Some(ch) = ctx.hub.channel_id(chat) {
                    let _ = ctx.hub.say(ctx.conn, ch, &text, kind, ctx.sink);
                }
            } else {
                let _ = ctx.hub.private(ctx.conn, target, &text, kind, ctx.sink);
            }
        } else {
            numeric(
                ctx,
                numerics::ERR_UNKNOWNCOMMAND,
                &nick,
                &[msg.command],
                "Unknown command",
            );
        }
    }
}

/// `nick!user@host` of a connection's user.
fn prefix_of(hub: &Hub, conn: ConnId) -> String {
    hub.person(conn)
        .map(|p| format!("{}!{}@{}", p.name, p.user, p.host))
        .unwrap_or_else(|| "*".to_string())
}

fn numeric<S: Sink>(
    ctx: &mut Ctx<'_, S>,
    n: Numeric,
    target: &str,
    middle: &[&str],
    trailing: &str,
) {
    let mut buf = Vec::new();
    let _ = message::write_numeric(
        &mut buf,
        &ctx.cfg.server_name,
        n,
        target,
        middle,
        Some(trailing),
    );
    ctx.sink.emit(ctx.conn, &Out::Raw(&buf));
}

fn pong<S: Sink>(msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
    let token = msg.param(0).unwrap_or("");
    let mut buf = Vec::new();
    let name = ctx.cfg.server_name.clone();
    let _ = message::write_message(&mut buf, Some(&name), "PONG", &[&name], Some(token));
    ctx.sink.emit(ctx.conn, &Out::Raw(&buf));
}

fn welcome<S: Sink>(nick: &str, ctx: &mut Ctx<'_, S>) {
    let network = ctx.cfg.network.clone();
    numeric(
        ctx,
        numerics::RPL_WELCOME,
        nick,
        &[],
        &format!("Welcome to the {network} IRC Network, {nick}"),
    );
    numeric(ctx, numerics::ERR_NOMOTD, nick, &[], "MOTD File is missing");
}

/// Renders a hub event as IRC lines, appended to `buf`.
pub fn render(out: &Out<'_>, cfg: &IrcConfig, buf: &mut Vec<u8>) {
    let prefix = |p: &crate::hub::Person| format!("{}!{}@{}", p.name, p.user, p.host);
    match *out {
        Out::Chat {
            chan,
            from,
            text,
            kind,
        } => {
            let channel = format!("#{chan}");
            let command = if kind == MsgKind::Notice {
                "NOTICE"
            } else {
                "PRIVMSG"
            };
            let body = if kind == MsgKind::Action {
                message::make_action(text)
            } else {
                text.to_string()
            };
            let _ =
                message::write_message(buf, Some(&prefix(from)), command, &[&channel], Some(&body));
        }
        Out::Private {
            from,
            to,
            text,
            kind,
        } => {
            let command = if kind == MsgKind::Notice {
                "NOTICE"
            } else {
                "PRIVMSG"
            };
            let _ = message::write_message(buf, Some(&prefix(from)), command, &[to], Some(text));
        }
        Out::Joined { chan, who } => {
            let _ = message::write_message(
                buf,
                Some(&prefix(who)),
                "JOIN",
                &[&format!("#{chan}")],
                None,
            );
        }
        Out::Parted { chan, who, msg } => {
            let _ = message::write_message(
                buf,
                Some(&prefix(who)),
                "PART",
                &[&format!("#{chan}")],
                msg,
            );
        }
        Out::Quit { who, msg } => {
            let _ = message::write_message(
                buf,
                Some(&prefix(who)),
                "QUIT",
                &[],
                Some(msg.unwrap_or("Connection closed")),
            );
        }
        Out::Renamed { old, new } => {
            let _ = message::write_message(buf, Some(&prefix(old)), "NICK", &[], Some(new));
        }
        Out::Reply { lines, to, .. } => {
            for line in lines.iter().flat_map(|l| l.split('\n')) {
                let _ = message::write_message(
                    buf,
                    Some(&cfg.server_name),
                    "NOTICE",
                    &[to.unwrap_or("*")],
                    Some(line),
                );
            }
        }
        Out::Raw(bytes) => buf.extend_from_slice(bytes),
    }
}

/// The last words before the server closes a connection: `ERROR :reason`.
pub fn render_reason(reason: &str, _cfg: &IrcConfig, buf: &mut Vec<u8>) {
    let _ = message::write_message(buf, None, "ERROR", &[], Some(reason));
}
