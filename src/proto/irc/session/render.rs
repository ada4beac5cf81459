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

/// The length in bytes of [`prefix`]'s answer, without making it (when the nick and user are
/// shown as they are, nothing is allocated).
pub fn prefix_len(p: &Person) -> usize {
    irc_nick(&p.name).len() + 1 + user_of(p).len() + 1 + p.host.len()
}

/// True when `part` can be written in a prefix or a middle parameter as it is: not empty, no
/// space, CR, LF or NUL.
fn plain_word(part: &str) -> bool {
    !part.is_empty() && !part.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0))
}

/// The relay of a chat or private message in the common case, written straight into `buf`:
/// `:nick!user@host COMMAND sigil+target :text`, when the nick and user are shown as they are
/// and the whole line fits. Nothing is built first, as this runs for every relayed message.
/// Writes nothing and returns false when the general path ([`write_split`]) must do it; when
/// it writes, the bytes are exactly that path's (a test holds the two together).
fn relay_line(
    buf: &mut Vec<u8>,
    from: &Person,
    command: &str,
    (sigil, target): (&str, &str),
    text: &str,
) -> bool {
    let (Cow::Borrowed(nick), Cow::Borrowed(user)) = (irc_nick(&from.name), user_of(from)) else {
        return false;
    };
    let host = &*from.host;
    let prefix = nick.len() + 1 + user.len() + 1 + host.len();
    let middle = sigil.len() + target.len();
    let overhead = message::line_len_of(Some(prefix), command.len(), [middle], Some(0));
    let fits = message::MAX_LINE
        .checked_sub(overhead)
        .is_some_and(|room| room >= 4 && text.len() <= room);
    // The middle parameter `sigil+target`: a plain word that does not start with `:`.
    let first = if sigil.is_empty() { target } else { sigil };
    let target_ok =
        plain_word(target) && (sigil.is_empty() || plain_word(sigil)) && !first.starts_with(':');
    if !fits
        || !target_ok
        || ![nick, user, host].into_iter().all(plain_word)
        || !message::is_command(command)
        || text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
    {
        return false;
    }
    buf.reserve(overhead + text.len());
    for part in [
        ":", nick, "!", user, "@", host, " ", command, " ", sigil, target, " :", text,
    ] {
        buf.extend_from_slice(part.as_bytes());
    }
    buf.extend_from_slice(b"\r\n");
    true
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
    let wrap = if action { message::ACTION_WRAP } else { 0 };
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
            if !message::channel_carriable(chan) {
                return;
            }
            let action = kind == MsgKind::Action;
            let mut sigil = [0u8; 4];
            let target = (&*message::CHANNEL_PREFIX.encode_utf8(&mut sigil), chan);
            if action || !relay_line(buf, from, command(kind), target, text) {
                if let Some(channel) = message::irc_channel(chan) {
                    write_split(buf, &prefix(from), command(kind), &channel, text, action);
                }
            }
        }
        Out::Private {
            from,
            to,
            text,
            kind,
        } => {
            let action = kind == MsgKind::Action;
            let to = irc_nick(to);
            if action || !relay_line(buf, from, command(kind), ("", &to), text) {
                write_split(buf, &prefix(from), command(kind), &to, text, action);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str, user: &str, host: &str) -> Person {
        Person {
            name: name.into(),
            user: user.into(),
            host: host.into(),
        }
    }

    fn people() -> Vec<Person> {
        let long = "n".repeat(NICKLEN);
        vec![
            person("Kay", "Kay", "irc"),
            person("s0000-000001", "s0000-000001", "irc"),
            person("Kay", "~kay", "host.example"),
            person(&long, &long, &"h".repeat(60)),
            person("@kay", "@kay", "irc"),
            person("Kay", "bad user", "irc"),
            person("NickServ", "x", "irc"),
            person("Kay", "Kay", ""),
            person("Zoë", "Zoë", "irc"),
        ]
    }

    #[test]
    fn prefix_len_is_the_prefix_s_length() {
        for p in people() {
            assert_eq!(prefix_len(&p), prefix(&p).len(), "{p:?}");
        }
    }

    /// Every relay the fast path writes is byte for byte the general path's, and the common
    /// cases do take it.
    #[test]
    fn the_one_line_relay_writes_what_the_general_path_writes() {
        let mut texts: Vec<String> = ["", "hi", " padded ", ":colon", "a\rb", "nul\0", "é"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        for n in 380..=470 {
            texts.push("x".repeat(n));
            texts.push(format!("{}é", "x".repeat(n)));
        }
        let targets = [
            ("#", "tas".to_string()),
            ("", "Kay".to_string()),
            ("#", "c".repeat(64)),
            ("", ":odd".to_string()),
            ("", String::new()),
        ];
        let (mut fast_lines, mut general_only) = (0, 0);
        for p in people() {
            for command in ["PRIVMSG", "NOTICE"] {
                for (sigil, target) in &targets {
                    for text in &texts {
                        let mut general = Vec::new();
                        let middle = format!("{sigil}{target}");
                        write_split(&mut general, &prefix(&p), command, &middle, text, false);
                        let mut fast = Vec::new();
                        if relay_line(&mut fast, &p, command, (sigil, target), text) {
                            assert_eq!(
                                String::from_utf8_lossy(&fast),
                                String::from_utf8_lossy(&general),
                                "{p:?} {command} {middle:?} {text:?}"
                            );
                            fast_lines += 1;
                        } else {
                            assert!(fast.is_empty(), "wrote and then declined");
                            general_only += 1;
                        }
                    }
                }
            }
        }
        assert!(
            fast_lines > 1000 && general_only > 1000,
            "{fast_lines} {general_only}"
        );
        let mut out = Vec::new();
        assert!(relay_line(
            &mut out,
            &person("Kay", "Kay", "irc"),
            "PRIVMSG",
            ("#", "tas"),
            "hello"
        ));
        assert_eq!(out, b":Kay!Kay@irc PRIVMSG #tas :hello\r\n");
    }
}
