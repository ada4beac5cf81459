//! Messages: `PRIVMSG` and `NOTICE` to channels, nicks and the two pseudo-users; `AWAY`.
//!
//! NickServ (`NickServ!NickServ@services`) identifies and registers names; ChatServ
//! (`ChatServ!ChatServ@services`) runs the chat's commands (`time`, `who`, `members`,
//! `sonnet`, `search`…). Both answer with NOTICEs. A NOTICE never gets an automatic reply, an
//! error included, as the protocol requires.

use super::channels::{find, irc_name, reach};
use super::message::{self, Message};
use super::numerics;
use super::render::{irc_nick, prefix_len, write_split, CHATSERV_PREFIX, NICKSERV_PREFIX};
use super::{fit, numeric, Ctx, Session, AWAYLEN, CHATSERV, NICKSERV};
use crate::hub::{Hub, MsgKind, Private, PrivateError, Sink};
use crate::proto::frame::commands::{capped_names, who_lines, MEMBERS_MAX_BYTES};
use crate::utils_errors as text;

impl Session {
    /// `PRIVMSG target :text` or `NOTICE target :text`; CTCP ACTION (`/me`) is kept as such.
    pub(super) fn privmsg<S: Sink>(
        &mut self,
        notice: bool,
        msg: &Message<'_>,
        ctx: &mut Ctx<'_, S>,
    ) {
        // Nothing is allocated on the way to the hub: this runs for every relayed message.
        let command = if notice { "NOTICE" } else { "PRIVMSG" };
        let Some(target) = msg.param(0).filter(|t| !t.is_empty()) else {
            let why = text::irc_no_recipient(command);
            refuse(
                ctx,
                notice,
                self.target(),
                numerics::ERR_NORECIPIENT,
                &[],
                &why,
            );
            return;
        };
        let raw = msg.param(1).unwrap_or("");
        let (kind, body) = match message::action(raw) {
            Some(body) => (MsgKind::Action, body),
            None if notice => (MsgKind::Notice, raw),
            None => (MsgKind::Chat, raw),
        };
        // `\x01` is a control character like the others: removed, except around an ACTION.
        let body = crate::frame::clean(body);
        if body.trim().is_empty() {
            let me = self.target();
            refuse(
                ctx,
                notice,
                me,
                numerics::ERR_NOTEXTTOSEND,
                &[],
                text::IRC_NO_TEXT,
            );
            return;
        }
        if let Some(service) = [NICKSERV, CHATSERV]
            .into_iter()
            .find(|s| s.eq_ignore_ascii_case(target))
        {
            if !notice && kind == MsgKind::Chat {
                self.service(service, &body, ctx);
            }
            return;
        }
        let Some(own) = ctx.hub.person(ctx.conn).map(prefix_len) else {
            return;
        };
        // The line IRC clients would get: `:own COMMAND to :relayed` (an ACTION wrapped).
        let wrap = if kind == MsgKind::Action {
            message::ACTION_WRAP
        } else {
            0
        };
        let relayed = Some(body.len() + wrap);
        let too_long = |to: usize| {
            message::line_len_of(Some(own), command.len(), [to], relayed) > message::MAX_LINE
        };
        if target.starts_with('#') {
            let me = self.target();
            let Some(ch) = reach(ctx.hub, target) else {
                let n = numerics::ERR_NOSUCHCHANNEL;
                refuse(ctx, notice, me, n, &[target], text::IRC_NO_SUCH_CHANNEL);
                return;
            };
            if !ctx.hub.is_member(ctx.conn, ch) {
                let n = numerics::ERR_CANNOTSENDTOCHAN;
                refuse(ctx, notice, me, n, &[target], text::IRC_CANNOT_SEND);
                return;
            }
            let channel = message::irc_channel_len(ctx.hub.channel_name(ch)).unwrap_or(0);
            if too_long(channel) {
                let n = numerics::ERR_INPUTTOOLONG;
                refuse(ctx, notice, me, n, &[], text::IRC_INPUT_TOO_LONG);
                return;
            }
            let _ = ctx.hub.say(ctx.conn, ch, &body, kind, ctx.sink);
            return;
        }
        let found = find(ctx.hub, target);
        let name = match found.and_then(|id| ctx.hub.name_of(id)) {
            Some(name) => name.to_string(),
            None => target.to_string(),
        };
        let me = self.target();
        if too_long(irc_nick(&name).len()) {
            let n = numerics::ERR_INPUTTOOLONG;
            refuse(ctx, notice, me, n, &[], text::IRC_INPUT_TOO_LONG);
            return;
        }
        match ctx.hub.private(ctx.conn, &name, &body, kind, ctx.sink) {
            Ok(Private::Delivered) => {
                let away = found.and_then(|id| ctx.hub.away_of(id)).map(str::to_string);
                if let Some(away) = away {
                    refuse(
                        ctx,
                        notice,
                        me,
                        numerics::RPL_AWAY,
                        &[&irc_nick(&name)],
                        &away,
                    );
                }
            }
            // The hub confirms it with the chat's offline text once it is stored.
            Ok(Private::Stored) => {}
            Err(PrivateError::NoSuchUser) => refuse(
                ctx,
                notice,
                me,
                numerics::ERR_NOSUCHNICK,
                &[target],
                &text::no_such_user(target),
            ),
            Err(PrivateError::MailboxFull) => {
                if !notice {
                    notice_to(ctx, CHATSERV, me, &[&text::mailbox_full(&name)]);
                }
            }
            Err(PrivateError::NotLoggedIn) => {}
        }
    }

    /// A command for NickServ or ChatServ (from `PRIVMSG`, or the `NICKSERV`/`NS`,
    /// `CHATSERV`/`CS`, `IDENTIFY`, `SEARCH`, `SONNET`, `HELP` commands).
    pub(super) fn service<S: Sink>(&mut self, service: &str, line: &str, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let line = line.trim();
        let (word, arg) = match line.split_once(' ') {
            Some((w, a)) => (w, a.trim()),
            None => (line, ""),
        };
        let word = word.to_ascii_uppercase();
        let allowed = matches!(word.as_str(), "IDENTIFY" | "HELP");
        if !allowed && !ctx.hub.is_open(ctx.conn) {
            notice_to(ctx, NICKSERV, &me, &[text::IRC_IDENTIFY_FIRST]);
            return;
        }
        match (service, word.as_str()) {
            (_, "IDENTIFY") => self.identify(arg, ctx),
            (_, "REGISTER") => ctx.hub.register(ctx.conn, arg, ctx.sink),
            (NICKSERV, "HELP") => notice_to(ctx, NICKSERV, &me, text::NICKSERV_HELP),
            (NICKSERV, _) => notice_to(
                ctx,
                NICKSERV,
                &me,
                &[&text::irc_service_unknown(NICKSERV, &word)],
            ),
            (_, "HELP") => notice_to(ctx, CHATSERV, &me, text::CHATSERV_HELP),
            (_, "TIME") => {
                let now = text::time_is(&ctx.hub.now_stamp());
                notice_to(ctx, CHATSERV, &me, &[&now]);
            }
            (_, "SONNET" | "POEM") => {
                let lines = crate::sonnets::reply(ctx.hub.sonnets(), arg);
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                notice_to(ctx, CHATSERV, &me, &refs);
            }
            (_, "SEARCH") => {
                // The results come from the hub, rendered as ChatServ's notices.
                if ctx.hub.search(ctx.conn, arg, ctx.sink).is_err() {
                    notice_to(ctx, CHATSERV, &me, &[text::SEARCH_USAGE]);
                }
            }
            (_, "WHO") => {
                let lines = who(ctx.hub);
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                notice_to(ctx, CHATSERV, &me, &refs);
            }
            (_, "MEMBERS") => {
                let line = members(ctx.hub, ctx.conn, arg);
                notice_to(ctx, CHATSERV, &me, &[&line]);
            }
            _ => notice_to(
                ctx,
                CHATSERV,
                &me,
                &[&text::irc_service_unknown(CHATSERV, &word)],
            ),
        }
    }

    /// `IDENTIFY password` or `IDENTIFY nick password` (the Atheme form).
    fn identify<S: Sink>(&mut self, arg: &str, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let Some(name) = ctx.hub.name_of(ctx.conn).map(str::to_string) else {
            return;
        };
        if ctx.hub.is_open(ctx.conn) {
            let why = if ctx.hub.is_registered(&name) {
                text::already_identified(&name)
            } else {
                text::irc_not_registered(&name)
            };
            notice_to(ctx, NICKSERV, &me, &[&why]);
            return;
        }
        let password = match arg.split_once(' ') {
            Some((first, rest))
                if crate::names::name_key(first) == crate::names::name_key(&name) =>
            {
                rest.trim()
            }
            _ => arg,
        };
        ctx.hub.identify(ctx.conn, password, ctx.sink);
    }
}

/// A numeric answer to a `PRIVMSG` (an error, or `301` away): never to a NOTICE, which must
/// get no automatic reply.
fn refuse<S: Sink>(
    ctx: &mut Ctx<'_, S>,
    notice: bool,
    me: &str,
    n: numerics::Numeric,
    middle: &[&str],
    why: &str,
) {
    if !notice {
        numeric(ctx, n, me, middle, why);
    }
}

/// `AWAY :message` (`306`) or `AWAY` (`305`); senders of a `PRIVMSG` to an away user get
/// `301`.
pub(super) fn away<S: Sink>(msg: &Message<'_>, me: &str, ctx: &mut Ctx<'_, S>) {
    let cleaned = crate::frame::clean(msg.param(0).unwrap_or(""));
    let said = cleaned.trim();
    if said.is_empty() {
        ctx.hub.set_away(ctx.conn, None);
        numeric(ctx, numerics::RPL_UNAWAY, me, &[], text::IRC_UNAWAY);
    } else {
        let cut: String = said.chars().take(AWAYLEN).collect();
        ctx.hub.set_away(ctx.conn, Some(&cut));
        numeric(ctx, numerics::RPL_NOWAWAY, me, &[], text::IRC_NOWAWAY);
    }
}

/// NOTICEs from a pseudo-user to the session's client, a long line cut into several.
pub(super) fn notice_to<S: Sink>(ctx: &mut Ctx<'_, S>, service: &str, to: &str, lines: &[&str]) {
    notice(ctx, service, to, lines);
}

/// NOTICEs from NickServ or ChatServ (`service`) to `to`.
pub(super) fn notice<S: Sink>(ctx: &mut Ctx<'_, S>, service: &str, to: &str, lines: &[&str]) {
    let from = if service == NICKSERV {
        NICKSERV_PREFIX
    } else {
        CHATSERV_PREFIX
    };
    let to = if to.is_empty() { "*" } else { to };
    let mut buf = Vec::new();
    for line in lines.iter().flat_map(|l| l.split('\n')) {
        write_split(&mut buf, from, "NOTICE", to, line, false);
    }
    if !buf.is_empty() {
        ctx.sink.emit(ctx.conn, &crate::hub::Out::Raw(&buf));
    }
}

/// ChatServ's `who`: the chat's `/who`, with channels as IRC names them (channels IRC cannot
/// carry left out).
fn who(hub: &Hub) -> Vec<String> {
    who_lines(hub, |ch| irc_name(hub, ch))
}

/// ChatServ's `members [#channel]`: the channel named, or the first one the user joined.
fn members(hub: &Hub, conn: crate::hub::ConnId, arg: &str) -> String {
    let ch = if arg.is_empty() {
        hub.channels_of(conn)
            .find(|&ch| irc_name(hub, ch).is_some())
    } else {
        match reach(hub, arg) {
            Some(ch) => Some(ch),
            None => return text::irc_no_channel(fit(arg, 100)),
        }
    };
    let Some(ch) = ch else {
        return text::NOT_IN_CHANNEL.to_string();
    };
    let names = capped_names(
        hub.member_people(ch).map(|p| &*p.name).collect(),
        MEMBERS_MAX_BYTES,
    );
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    text::members_of(&irc_name(hub, ch).unwrap_or_default(), &refs)
}
