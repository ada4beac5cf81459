//! The hub's events as IRC lines, and how people appear on IRC.
//!
//! An event is rendered once for every IRC client it goes to, so the lines depend on the event
//! alone. Nothing is ever cut off: a relayed message that does not fit in one 512-byte line
//! (a frame user's with a long name in a long channel name, a long search result) is sent as
//! several lines, each a whole message.
//!
//! **Aliases.** A chat name IRC cannot carry as a nick (`@kay`, `a,b`, `who?`, or the name of
//! a service) appears as [`irc_nick`]: each character that breaks a nick becomes `_`, then `|`
//! and four hex digits computed from the name (`_kay|3f0a`). The alias is a pure function of
//! the name, so every IRC client sees the same one without any table; no name shown as it is
//! can take the shape of an alias (such a name is aliased itself, and IRC clients cannot pick
//! such a nick), so an alias never stands for two people but by a 16-bit hash collision of two
//! names that also give the same `_` form. `PRIVMSG`, `WHO` and `WHOIS` of an alias reach the
//! user; `WHO`/`WHOIS` show the real name as the real name.

use std::borrow::Cow;

use super::message::{self, nick_alias, nick_carriable, username_carriable, NICKLEN};
use super::numerics;
use super::IrcConfig;
use crate::hub::{MsgKind, Out, Person, ReplyKind};
use crate::utils_errors as text;

/// The pseudo-user that identifies and registers names.
pub const NICKSERV: &str = "NickServ";
/// The pseudo-user that runs the chat's commands for IRC users.
pub const CHATSERV: &str = "ChatServ";
/// The host of the pseudo-users.
pub const SERVICES_HOST: &str = "services";
/// NickServ's prefix.
pub const NICKSERV_PREFIX: &str = "NickServ!NickServ@services";
/// ChatServ's prefix.
pub const CHATSERV_PREFIX: &str = "ChatServ!ChatServ@services";

/// True for the name of a pseudo-user (compared as IRC compares nicks).
pub fn is_service(name: &str) -> bool {
    name.eq_ignore_ascii_case(NICKSERV) || name.eq_ignore_ascii_case(CHATSERV)
}

/// True when `nick` has the shape of an alias: it ends in `|` and four hex digits.
pub fn is_alias(nick: &str) -> bool {
    let b = nick.as_bytes();
    b.len() >= 5 && b[b.len() - 5] == b'|' && b[b.len() - 4..].iter().all(u8::is_ascii_hexdigit)
}

/// True when IRC shows the chat name `name` as it is: a nick IRC can carry, not a service's
/// name, not an alias's shape.
pub fn shown_as_is(name: &str) -> bool {
    nick_carriable(name) && !is_service(name) && !is_alias(name)
}

/// FNV-1a over the name's bytes, folded to 16 bits: the alias's suffix.
fn tag(name: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // The fold keeps 16 bits; the cast cannot lose any.
    ((h >> 16) ^ (h & 0xffff)) as u16
}

/// The nick under which IRC shows the chat name `name`: the name itself, or its alias.
pub fn irc_nick(name: &str) -> Cow<'_, str> {
    if shown_as_is(name) {
        return Cow::Borrowed(name);
    }
    let base: String = nick_alias(name).chars().take(NICKLEN - 5).collect();
    Cow::Owned(format!("{base}|{:04x}", tag(name)))
}

/// The `user` of a person's prefix: its `USER` username, or the nick when that cannot be one.
pub fn user_of(p: &Person) -> Cow<'_, str> {
    if username_carriable(&p.user) && p.user.chars().count() <= super::USERLEN {
        Cow::Borrowed(&p.user)
    } else {
        Cow::Owned(irc_nick(&p.name).into_owned())
    }
}

/// `nick!user@host` of a person.
pub fn prefix(p: &Person) -> String {
    format!("{}!{}@{}", irc_nick(&p.name), user_of(p), p.host)
}

/// Appends `:prefix COMMAND target :text`, as several such lines when it does not fit in one
/// (each an ACTION again when `action`). Never writes a broken line.
pub(super) fn write_split(
    buf: &mut Vec<u8>,
    prefix: &str,
    command: &str,
    target: &str,
    text: &str,
    action: bool,
) {
    let wrap = if action { "\x01ACTION \x01".len() } else { 0 };
    let overhead = message::line_len(Some(prefix), command, &[target], Some("")) + wrap;
    let Some(room) = message::MAX_LINE.checked_sub(overhead).filter(|&r| r >= 4) else {
        return;
    };
    if text.is_empty() {
        let body = if action {
            message::make_action("")
        } else {
            String::new()
        };
        let _ = message::write_message(buf, Some(prefix), command, &[target], Some(&body));
        return;
    }
    for piece in crate::frame::split_text(text, room, false) {
        if action {
            let body = message::make_action(piece);
            let _ = message::write_message(buf, Some(prefix), command, &[target], Some(&body));
        } else {
            let _ = message::write_message(buf, Some(prefix), command, &[target], Some(piece));
        }
    }
}

/// Appends a line whose trailing text is a reason (PART, QUIT): cut to fit when it is long.
fn write_reason(
    buf: &mut Vec<u8>,
    prefix: &str,
    command: &str,
    middle: &[&str],
    reason: Option<&str>,
) {
    let Some(reason) = reason else {
        let _ = message::write_message(buf, Some(prefix), command, middle, None);
        return;
    };
    let room = message::MAX_LINE.saturating_sub(message::line_len(
        Some(prefix),
        command,
        middle,
        Some(""),
    ));
    let _ = message::write_message(
        buf,
        Some(prefix),
        command,
        middle,
        Some(super::fit(reason, room)),
    );
}

/// NOTICEs from a pseudo-user (or the server) to `to`, one per line.
fn notices(buf: &mut Vec<u8>, from: &str, to: &str, lines: &[&str]) {
    for line in lines.iter().flat_map(|l| l.split('\n')) {
        write_split(buf, from, "NOTICE", to, line, false);
    }
}

/// Renders a hub event as IRC lines, appended to `buf`. Events about a channel IRC cannot
/// carry render as nothing (no IRC client is ever in one).
pub fn render(out: &Out<'_>, cfg: &IrcConfig, buf: &mut Vec<u8>) {
    let command = |kind: MsgKind| {
        if kind == MsgKind::Notice {
            "NOTICE"
        } else {
            "PRIVMSG"
        }
    };
    match *out {
        Out::Chat {
            chan,
            from,
            text,
            kind,
        } => {
            if let Some(channel) = message::irc_channel(chan) {
                let action = kind == MsgKind::Action;
                write_split(buf, &prefix(from), command(kind), &channel, text, action);
            }
        }
        Out::Private {
            from,
            to,
            text,
            kind,
        } => {
            let action = kind == MsgKind::Action;
            write_split(
                buf,
                &prefix(from),
                command(kind),
                &irc_nick(to),
                text,
                action,
            );
        }
        Out::Joined { chan, who } => {
            if let Some(channel) = message::irc_channel(chan) {
                let _ = message::write_message(buf, Some(&prefix(who)), "JOIN", &[&channel], None);
            }
        }
        Out::Parted { chan, who, msg } => {
            if let Some(channel) = message::irc_channel(chan) {
                write_reason(buf, &prefix(who), "PART", &[&channel], msg);
            }
        }
        Out::Quit { who, msg } => {
            let msg = msg.unwrap_or(text::IRC_CONNECTION_CLOSED);
            write_reason(buf, &prefix(who), "QUIT", &[], Some(msg));
        }
        Out::Renamed { old, new } => {
            let _ =
                message::write_message(buf, Some(&prefix(old)), "NICK", &[], Some(&irc_nick(new)));
        }
        Out::Reply { kind, lines, to } => {
            let to = to.map_or(Cow::Borrowed("*"), irc_nick);
            reply(buf, cfg, kind, lines, &to);
        }
        Out::Raw(bytes) => buf.extend_from_slice(bytes),
    }
}

/// A reply of the hub: SASL's answers as numerics, the rest as NOTICEs from NickServ
/// (identification and registration) or ChatServ (everything else: the chat's commands,
/// offline messages, search results).
fn reply(buf: &mut Vec<u8>, cfg: &IrcConfig, kind: ReplyKind, lines: &[&str], to: &str) {
    let s: &str = &cfg.server_name;
    match kind {
        ReplyKind::SaslOk => {
            let account = lines.first().copied().unwrap_or("*");
            let account = if super::safe_middle(account) {
                account
            } else {
                "*"
            };
            let mask = format!("{to}!*@irc");
            let _ = message::write_numeric(
                buf,
                s,
                numerics::RPL_LOGGEDIN,
                to,
                &[&mask, account],
                Some(&text::irc_logged_in(account)),
            );
            let _ = message::write_numeric(
                buf,
                s,
                numerics::RPL_SASLSUCCESS,
                to,
                &[],
                Some(text::IRC_SASL_SUCCESS),
            );
        }
        ReplyKind::SaslFailed => {
            notices(buf, s, to, lines);
            let _ = message::write_numeric(
                buf,
                s,
                numerics::ERR_SASLFAIL,
                to,
                &[],
                Some(text::IRC_SASL_FAIL),
            );
        }
        ReplyKind::IdentifyPrompt => {
            notices(buf, NICKSERV_PREFIX, to, lines);
            notices(buf, NICKSERV_PREFIX, to, &[text::IRC_IDENTIFY_HOW]);
        }
        ReplyKind::Identified | ReplyKind::AuthFailed | ReplyKind::Registered => {
            notices(buf, NICKSERV_PREFIX, to, lines)
        }
        ReplyKind::Plain | ReplyKind::Offline => notices(buf, CHATSERV_PREFIX, to, lines),
    }
}

/// The last words before the server closes a connection: `ERROR :reason`.
pub fn render_reason(reason: &str, _cfg: &IrcConfig, buf: &mut Vec<u8>) {
    let reason = super::fit(reason, message::MAX_LINE - "ERROR :\r\n".len());
    let _ = message::write_message(buf, None, "ERROR", &[], Some(reason));
}
