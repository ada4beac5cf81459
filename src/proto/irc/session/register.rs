//! Registration: `CAP`, `PASS`, `NICK`, `USER` and SASL PLAIN until the welcome burst; `NICK`
//! changes after it.
//!
//! Registration completes when NICK and USER have both come and no capability negotiation is
//! open (irssi sends NICK and USER only after `CAP END`, WeeChat before it), and not while a
//! password is being checked for SASL.

use super::message::{self, Message};
use super::numerics::{self, Numeric};
use super::render::shown_as_is;
use super::{fit, numeric, pong, Ctx, Lines, Sasl, Session, REALNAME_BYTES, USERLEN, VERSION};
use super::{IrcConfig, MAX_JOINED, NICKSERV};
use crate::hub::{ConnId, Hub, Login, NameError, Out, ReplyKind, Sink};
use crate::names;
use crate::proto::irc::sasl::{self, Chunk, SaslError};
use crate::storage::{HashJob, Request};
use crate::utils_errors as text;

impl Session {
    /// A line before registration: only what registering needs is accepted.
    pub(super) fn before_registration<S: Sink>(
        &mut self,
        word: &str,
        msg: &Message<'_>,
        ctx: &mut Ctx<'_, S>,
    ) {
        match word {
            "CAP" => self.cap(msg, ctx),
            "PASS" => match msg.param(0).filter(|p| !p.is_empty()) {
                Some(password) => self.pass = Some(password.to_string()),
                None => need_more(ctx, "*", "PASS"),
            },
            "NICK" => self.first_nick(msg, ctx),
            "USER" => self.user(msg, ctx),
            "AUTHENTICATE" => self.authenticate(msg, ctx),
            "PING" => pong(msg, "*", ctx),
            "PONG" => {}
            "QUIT" => {
                self.quit(msg.param(0), ctx);
                return;
            }
            _ => {
                // irssi probes with a bare `JOIN :` and hides exactly this answer.
                numeric(
                    ctx,
                    numerics::ERR_NOTREGISTERED,
                    "*",
                    &[msg.command],
                    text::IRC_NOT_REGISTERED,
                );
                return;
            }
        }
        self.try_register(ctx);
    }

    /// `CAP LS [302]`, `LIST`, `REQ`, `END`; accepted at any time. Only `sasl` is offered.
    pub(super) fn cap<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let Some(sub) = msg.param(0) else {
            need_more(ctx, &me, "CAP");
            return;
        };
        let server = ctx.cfg.server_name.clone();
        let mut lines = Lines::default();
        match sub.to_ascii_uppercase().as_str() {
            "LS" => {
                if !self.registered {
                    self.cap_open = true;
                }
                if msg
                    .param(1)
                    .and_then(|v| v.parse::<u32>().ok())
                    .is_some_and(|v| v >= 302)
                {
                    self.cap_302 = true;
                }
                // Values only for 302 clients: the Python `irc` library wants the bare token.
                let caps = if self.cap_302 { "sasl=PLAIN" } else { "sasl" };
                lines.message(&server, "CAP", &[&me, "LS"], Some(caps));
            }
            "LIST" => {
                let caps = if self.cap_sasl { "sasl" } else { "" };
                lines.message(&server, "CAP", &[&me, "LIST"], Some(caps));
            }
            "REQ" => {
                if !self.registered {
                    self.cap_open = true;
                }
                let tokens: Vec<&str> = msg
                    .param(1)
                    .unwrap_or("")
                    .split(' ')
                    .filter(|t| !t.is_empty())
                    .collect();
                let known =
                    !tokens.is_empty() && tokens.iter().all(|t| matches!(*t, "sasl" | "-sasl"));
                let list = tokens.join(" ");
                let list = fit(&list, 400);
                if known {
                    for t in &tokens {
                        self.cap_sasl = !t.starts_with('-');
                    }
                    // Exactly the list as requested: the Python library compares it.
                    lines.message(&server, "CAP", &[&me, "ACK"], Some(list));
                } else {
                    lines.message(&server, "CAP", &[&me, "NAK"], Some(list));
                }
            }
            "END" => {
                if !self.registered {
                    self.cap_open = false;
                    if matches!(self.sasl, Sasl::Plain(_)) {
                        self.sasl = Sasl::Idle;
                        lines.numeric(
                            &server,
                            numerics::ERR_SASLABORTED,
                            &me,
                            &[],
                            Some(text::IRC_SASL_ABORTED),
                        );
                    }
                }
            }
            _ => lines.numeric(
                &server,
                numerics::ERR_INVALIDCAPCMD,
                &me,
                &[sub],
                Some(text::IRC_INVALID_CAP),
            ),
        }
        lines.send(ctx);
    }

    /// `NICK` before registration: checked now, so that the client can try another at once.
    fn first_nick<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let Some(nick) = msg.param(0).filter(|n| !n.is_empty()) else {
            numeric(
                ctx,
                numerics::ERR_NONICKNAMEGIVEN,
                "*",
                &[],
                text::IRC_NO_NICK,
            );
            return;
        };
        match check_nick(ctx.hub, nick, None) {
            Ok(()) => self.nick = Some(nick.to_string()),
            Err((n, why)) => numeric(ctx, n, "*", &[nick], why),
        }
    }

    /// `USER username mode unused :realname`.
    fn user<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let username = msg.param(0).unwrap_or("");
        if msg.params().len() < 4 || username.is_empty() {
            need_more(ctx, "*", "USER");
            return;
        }
        let cleaned = crate::frame::clean(username);
        self.user = Some(cleaned.chars().take(USERLEN).collect());
        let realname = crate::frame::clean(msg.param(3).unwrap_or(""));
        self.realname = fit(realname.trim(), REALNAME_BYTES).to_string();
    }

    /// `AUTHENTICATE`: SASL PLAIN, its password checked by the hub with the same lockouts as
    /// `/identify`.
    fn authenticate<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let Some(param) = msg.param(0).filter(|p| !p.is_empty()) else {
            need_more(ctx, &me, "AUTHENTICATE");
            return;
        };
        let fail = |ctx: &mut Ctx<'_, S>, n: Numeric, why: &str| numeric(ctx, n, &me, &[], why);
        match std::mem::take(&mut self.sasl) {
            Sasl::Done => {
                self.sasl = Sasl::Done;
                fail(ctx, numerics::ERR_SASLALREADY, text::IRC_SASL_ALREADY);
            }
            // The loop hands over no line while the hub checks a password.
            Sasl::Checking(key) => self.sasl = Sasl::Checking(key),
            Sasl::Idle if param.eq_ignore_ascii_case("PLAIN") => {
                let mut buf = Vec::new();
                let _ = message::write_message(&mut buf, None, "AUTHENTICATE", &["+"], None);
                ctx.sink.emit(ctx.conn, &Out::Raw(&buf));
                self.sasl = Sasl::Plain(sasl::Response::new());
            }
            Sasl::Idle if param == "*" => {
                fail(ctx, numerics::ERR_SASLABORTED, text::IRC_SASL_ABORTED)
            }
            Sasl::Idle => {
                let mut lines = Lines::default();
                let server = ctx.cfg.server_name.clone();
                lines.numeric(
                    &server,
                    numerics::RPL_SASLMECHS,
                    &me,
                    &["PLAIN"],
                    Some(text::IRC_SASL_MECHS),
                );
                lines.numeric(
                    &server,
                    numerics::ERR_SASLFAIL,
                    &me,
                    &[],
                    Some(text::IRC_SASL_FAIL),
                );
                lines.send(ctx);
            }
            Sasl::Plain(mut response) => match response.push(param) {
                Ok(Chunk::More) => self.sasl = Sasl::Plain(response),
                Ok(Chunk::Done(base64)) => match sasl::decode_plain(&base64) {
                    Ok(plain) if names::valid_name(&plain.account) => {
                        self.sasl = Sasl::Checking(names::name_key(&plain.account));
                        ctx.hub
                            .authenticate(ctx.conn, &plain.account, &plain.password, ctx.sink);
                    }
                    _ => fail(ctx, numerics::ERR_SASLFAIL, text::IRC_SASL_FAIL),
                },
                Ok(Chunk::Aborted) => fail(ctx, numerics::ERR_SASLABORTED, text::IRC_SASL_ABORTED),
                Err(SaslError::TooLong) => {
                    fail(ctx, numerics::ERR_SASLTOOLONG, text::IRC_SASL_TOO_LONG)
                }
                Err(_) => fail(ctx, numerics::ERR_SASLFAIL, text::IRC_SASL_FAIL),
            },
        }
    }

    /// After the hub answered a password check for SASL (rendered as 900/903 or 904), finds
    /// out which answer it was.
    pub(super) fn settle_sasl<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        if let Sasl::Checking(key) = &self.sasl {
            if ctx.hub.is_waiting(ctx.conn) {
                return;
            }
            self.sasl = if ctx.hub.account_of(ctx.conn) == Some(&**key) {
                Sasl::Done
            } else {
                Sasl::Idle
            };
        }
    }

    /// Completes registration once everything it needs has come: logs in, sends the welcome
    /// burst, then NickServ's prompt for a registered name (and checks a `PASS`).
    pub(super) fn try_register<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        if self.registered || self.cap_open || matches!(self.sasl, Sasl::Checking(_)) {
            return;
        }
        let (Some(nick), Some(user)) = (self.nick.clone(), self.user.clone()) else {
            return;
        };
        let user = if message::username_carriable(&user) {
            user
        } else {
            nick.clone()
        };
        if !self.realname.is_empty() {
            ctx.hub.set_realname(ctx.conn, &self.realname);
        }
        // The hub prompts a registered name at once; IRC wants nothing before the welcome
        // burst, and its own wording of the prompt.
        let mut hold = HoldPrompt {
            inner: &mut *ctx.sink,
            conn: ctx.conn,
            prompted: false,
        };
        let result = ctx.hub.login(ctx.conn, &nick, Some(&user), &mut hold);
        let prompted = hold.prompted;
        match result {
            Ok(login) => {
                self.registered = true;
                welcome(&nick, ctx);
                if prompted {
                    let secs = ctx.hub.limits().identify_secs;
                    let prompt = text::irc_identify_prompt(&nick, secs);
                    super::messages::notice(ctx, NICKSERV, &nick, &[&prompt]);
                }
                if let (Login::MustIdentify, Some(password)) = (login, self.pass.take()) {
                    ctx.hub.identify(ctx.conn, &password, ctx.sink);
                }
                self.pass = None;
            }
            Err(e) => {
                let (n, why) = refusal(e);
                numeric(ctx, n, "*", &[&nick], why);
                self.nick = None;
            }
        }
    }

    /// `NICK new` after registration: the hub renames; the client and everyone sharing a
    /// channel get the `NICK` line, frame clients `old is now known as new`.
    pub(super) fn nick_change<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let Some(new) = msg.param(0).filter(|n| !n.is_empty()) else {
            numeric(
                ctx,
                numerics::ERR_NONICKNAMEGIVEN,
                &me,
                &[],
                text::IRC_NO_NICK,
            );
            return;
        };
        if new == me {
            return;
        }
        if let Err((n, why)) = check_nick(ctx.hub, new, Some(ctx.conn)) {
            numeric(ctx, n, &me, &[new], why);
            return;
        }
        let Some(old) = ctx.hub.person(ctx.conn).map(super::prefix) else {
            return;
        };
        match ctx.hub.rename(ctx.conn, new, ctx.sink) {
            Ok(()) => {
                let mut lines = Lines::default();
                lines.message(&old, "NICK", &[], Some(new));
                lines.send(ctx);
                self.nick = Some(new.to_string());
            }
            Err(NameError::TooClose) if ctx.hub.is_registered(new) => numeric(
                ctx,
                numerics::ERR_NICKNAMEINUSE,
                &me,
                &[new],
                text::IRC_NICK_REGISTERED,
            ),
            Err(e) => {
                let (n, why) = refusal(e);
                numeric(ctx, n, &me, &[new], why);
            }
        }
    }
}

/// `461 <client> <command> :Not enough parameters`.
pub(super) fn need_more<S: Sink>(ctx: &mut Ctx<'_, S>, me: &str, command: &str) {
    numeric(
        ctx,
        numerics::ERR_NEEDMOREPARAMS,
        me,
        &[command],
        text::IRC_NEED_MORE_PARAMS,
    );
}

/// The numeric and text for a nick the hub refused.
fn refusal(e: NameError) -> (Numeric, &'static str) {
    match e {
        NameError::Invalid => (numerics::ERR_ERRONEUSNICKNAME, text::IRC_ERRONEOUS_NICK),
        NameError::InUse => (numerics::ERR_NICKNAMEINUSE, text::IRC_NICK_IN_USE),
        NameError::TooClose => (numerics::ERR_NICKNAMEINUSE, text::IRC_NICK_TOO_CLOSE),
        NameError::Unavailable => (numerics::ERR_UNAVAILRESOURCE, text::IRC_NICK_UNAVAILABLE),
    }
}

/// Checks a nick an IRC client asks for: a chat name that IRC shows as it is (not a service's
/// name, not an alias's shape), and not the name of someone else connected.
fn check_nick(hub: &Hub, nick: &str, own: Option<ConnId>) -> Result<(), (Numeric, &'static str)> {
    if !names::valid_name(nick) || !shown_as_is(nick) {
        return Err((numerics::ERR_ERRONEUSNICKNAME, text::IRC_ERRONEOUS_NICK));
    }
    match hub.find_user(nick) {
        Some(holder) if Some(holder) != own => {
            Err((numerics::ERR_NICKNAMEINUSE, text::IRC_NICK_IN_USE))
        }
        _ => Ok(()),
    }
}

/// 001–005, LUSERS, then the MOTD or 422: nothing else comes between them.
fn welcome<S: Sink>(nick: &str, ctx: &mut Ctx<'_, S>) {
    let cfg = ctx.cfg;
    let s: &str = &cfg.server_name;
    let mut lines = Lines::default();
    let welcome = text::irc_welcome(&cfg.network, nick);
    lines.numeric(s, numerics::RPL_WELCOME, nick, &[], Some(&welcome));
    let host = text::irc_your_host(s, VERSION);
    lines.numeric(s, numerics::RPL_YOURHOST, nick, &[], Some(&host));
    let created = text::irc_created(&cfg.created);
    lines.numeric(s, numerics::RPL_CREATED, nick, &[], Some(&created));
    // One user mode (i) and channel modes n and t: the spec wants at least one of each.
    lines.numeric(
        s,
        numerics::RPL_MYINFO,
        nick,
        &[s, VERSION, "i", "nt"],
        None,
    );
    for tokens in isupport(&cfg.network) {
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        lines.numeric(
            s,
            numerics::RPL_ISUPPORT,
            nick,
            &refs,
            Some(text::IRC_ISUPPORT),
        );
    }
    lusers(&mut lines, nick, ctx);
    motd(&mut lines, nick, ctx.cfg);
    lines.send(ctx);
}

/// The `005` tokens, at most 13 a line. `PREFIX=()`: no channel operators, written as the
/// empty prefix list, which every client checked survives (docs/IRC.md, finding 3).
pub fn isupport(network: &str) -> [Vec<String>; 2] {
    let network: String = network
        .chars()
        .map(|c| if c == ' ' || c.is_control() { '_' } else { c })
        .collect();
    [
        vec![
            format!("CASEMAPPING={}", message::CASEMAPPING),
            format!("CHANLIMIT=#:{MAX_JOINED}"),
            "CHANMODES=,,,nt".to_string(),
            format!("CHANNELLEN={}", message::CHANNELLEN),
            "CHANTYPES=#".to_string(),
            format!("NETWORK={network}"),
            format!("NICKLEN={}", message::NICKLEN),
            "PREFIX=()".to_string(),
            "TARGMAX=JOIN:,PART:,NAMES:1,LIST:,WHOIS:1,PRIVMSG:1,NOTICE:1".to_string(),
        ],
        vec![
            format!("AWAYLEN={}", super::AWAYLEN),
            "SAFELIST".to_string(),
            format!("USERLEN={USERLEN}"),
        ],
    ]
}

/// The LUSERS numerics: users on every transport, connections not logged in yet, channels IRC
/// can carry.
pub(super) fn lusers<S: Sink>(lines: &mut Lines, me: &str, ctx: &Ctx<'_, S>) {
    let s: &str = &ctx.cfg.server_name;
    let users = ctx.hub.everyone().count();
    let unknown = ctx.hub.connections().saturating_sub(users);
    let channels = ctx
        .hub
        .channel_names()
        .filter(|c| message::channel_carriable(c))
        .count();
    lines.numeric(
        s,
        numerics::RPL_LUSERCLIENT,
        me,
        &[],
        Some(&text::irc_luser_client(users)),
    );
    if unknown > 0 {
        let n = unknown.to_string();
        lines.numeric(
            s,
            numerics::RPL_LUSERUNKNOWN,
            me,
            &[&n],
            Some(text::IRC_LUSER_UNKNOWN),
        );
    }
    let n = channels.to_string();
    lines.numeric(
        s,
        numerics::RPL_LUSERCHANNELS,
        me,
        &[&n],
        Some(text::IRC_LUSER_CHANNELS),
    );
    lines.numeric(
        s,
        numerics::RPL_LUSERME,
        me,
        &[],
        Some(&text::irc_luser_me(users)),
    );
}

/// The message of the day (`--motd`) as 375/372/376, or 422 without one. A line too long for
/// one `372` is sent as several.
pub(super) fn motd(lines: &mut Lines, me: &str, cfg: &IrcConfig) {
    let s: &str = &cfg.server_name;
    let Some(motd) = &cfg.motd else {
        lines.numeric(s, numerics::ERR_NOMOTD, me, &[], Some(text::IRC_NO_MOTD));
        return;
    };
    lines.numeric(
        s,
        numerics::RPL_MOTDSTART,
        me,
        &[],
        Some(&text::irc_motd_start(s)),
    );
    let room = message::MAX_LINE
        .saturating_sub(message::line_len(
            Some(s),
            "372",
            &[me],
            Some(&text::irc_motd_line("")),
        ))
        .max(4);
    for line in motd.iter() {
        let pieces = crate::frame::split_text(line, room, false);
        if pieces.is_empty() {
            lines.numeric(
                s,
                numerics::RPL_MOTD,
                me,
                &[],
                Some(&text::irc_motd_line("")),
            );
        }
        for piece in pieces {
            lines.numeric(
                s,
                numerics::RPL_MOTD,
                me,
                &[],
                Some(&text::irc_motd_line(piece)),
            );
        }
    }
    lines.numeric(
        s,
        numerics::RPL_ENDOFMOTD,
        me,
        &[],
        Some(text::IRC_MOTD_END),
    );
}

/// A sink that keeps back the hub's prompt to identify (sent during login, before the
/// welcome burst may go out) and passes everything else on.
struct HoldPrompt<'s, S: Sink> {
    inner: &'s mut S,
    conn: ConnId,
    prompted: bool,
}

impl<S: Sink> Sink for HoldPrompt<'_, S> {
    fn emit(&mut self, to: ConnId, out: &Out<'_>) {
        if to == self.conn
            && matches!(
                out,
                Out::Reply {
                    kind: ReplyKind::IdentifyPrompt,
                    ..
                }
            )
        {
            self.prompted = true;
        } else {
            self.inner.emit(to, out);
        }
    }
    fn close(&mut self, conn: ConnId, reason: Option<&str>) {
        self.inner.close(conn, reason);
    }
    fn store(&mut self, request: Request) {
        self.inner.store(request);
    }
    fn hash(&mut self, job: HashJob) -> bool {
        self.inner.hash(job)
    }
    fn cluster(&mut self, op: crate::cluster::ClusterOp) -> bool {
        self.inner.cluster(op)
    }
    fn report_flush(&mut self, conn: ConnId) {
        self.inner.report_flush(conn);
    }
    fn resume(&mut self, conn: ConnId) {
        self.inner.resume(conn);
    }
}
