//! Channels and people: `JOIN`, `PART`, `NAMES`, `LIST`, `TOPIC`, `WHO`, `WHOIS`, `MODE`.
//!
//! Only channels IRC can carry exist for IRC clients: a channel name with a space, a comma, a
//! control character or a leading colon is never listed and never reached (`403`).

use super::message::{self, Message};
use super::numerics;
use super::register::need_more;
use super::render::{self, irc_nick, is_service, prefix, user_of};
use super::{numeric, Ctx, Job, Lines, Session, MAX_JOINED, WHO_MASK_MAX};
use super::{CHATSERV, NICKSERV};
use crate::hub::{ChanId, ChannelError, ConnId, Hub, Person, Sink};
use crate::utils_errors as text;

/// The chat channel an IRC channel parameter reaches, if it exists and IRC can carry it.
pub(super) fn reach(hub: &Hub, param: &str) -> Option<ChanId> {
    let name = message::chat_channel(param)?;
    if crate::frame::clean(name) != name {
        return None;
    }
    hub.channel_id(name)
}

/// A channel's IRC name (`#` and its name as created), if IRC can carry it.
pub(super) fn irc_name(hub: &Hub, ch: ChanId) -> Option<String> {
    message::irc_channel(hub.channel_name(ch))
}

impl Session {
    /// `JOIN #a,#b` (keys ignored), `JOIN 0` (part every channel). A missing channel is created
    /// as `/create` would, within `--max-channels`.
    pub(super) fn join<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let Some(list) = msg.param(0).filter(|l| !l.is_empty()) else {
            need_more(ctx, &me, "JOIN");
            return;
        };
        if list == "0" {
            let chans: Vec<ChanId> = ctx.hub.channels_of(ctx.conn).collect();
            for ch in chans {
                self.part_one(ch, None, ctx);
            }
            return;
        }
        for name in list.split(',').filter(|n| !n.is_empty()) {
            if self.has_pending() {
                // A channel before this one waits for the cluster: this one goes after it.
                self.deferred_joins.push_back(name.to_string());
            } else {
                self.join_one(name, &me, ctx);
            }
        }
    }

    /// Completes a `JOIN` that waited for the cluster to create its channel (the client gets
    /// its `JOIN` and `NAMES`, or `403` when the hub refused and said why), then the rest of
    /// its list.
    pub(super) fn settle_joins<S: Sink>(&mut self, ctx: &mut Ctx<'_, S>) {
        while self.has_pending() && !ctx.hub.is_waiting(ctx.conn) {
            let me = self.target().to_string();
            if let Some((chat, asked)) = self.pending_join.take() {
                let joined = ctx
                    .hub
                    .channel_id(&chat)
                    .filter(|&ch| ctx.hub.is_member(ctx.conn, ch));
                match joined {
                    Some(ch) => self.joined(ch, ctx),
                    None => numeric(
                        ctx,
                        numerics::ERR_NOSUCHCHANNEL,
                        &me,
                        &[&asked],
                        text::IRC_NO_SUCH_CHANNEL,
                    ),
                }
            } else if let Some(next) = self.deferred_joins.pop_front() {
                self.join_one(&next, &me, ctx);
            }
        }
    }

    /// The joiner's own `JOIN` line and the channel's `NAMES`.
    fn joined<S: Sink>(&mut self, ch: ChanId, ctx: &mut Ctx<'_, S>) {
        let (Some(channel), Some(own)) = (irc_name(ctx.hub, ch), ctx.hub.person(ctx.conn)) else {
            return;
        };
        let mut lines = Lines::default();
        lines.message(&prefix(own), "JOIN", &[&channel], None);
        lines.send(ctx);
        self.push_job(Job::Names { ch, next: 0 }, "NAMES", ctx);
    }

    fn join_one<S: Sink>(&mut self, name: &str, me: &str, ctx: &mut Ctx<'_, S>) {
        let no_such = |ctx: &mut Ctx<'_, S>| {
            numeric(
                ctx,
                numerics::ERR_NOSUCHCHANNEL,
                me,
                &[name],
                text::IRC_NO_SUCH_CHANNEL,
            )
        };
        let Some(chat) = message::chat_channel(name) else {
            no_such(ctx);
            return;
        };
        if crate::frame::clean(chat) != chat {
            no_such(ctx);
            return;
        }
        let existing = ctx.hub.channel_id(chat);
        if existing.is_some_and(|ch| ctx.hub.is_member(ctx.conn, ch)) {
            return;
        }
        if ctx.hub.channels_of(ctx.conn).count() >= MAX_JOINED {
            numeric(
                ctx,
                numerics::ERR_TOOMANYCHANNELS,
                me,
                &[name],
                text::IRC_TOO_MANY_JOINED,
            );
            return;
        }
        let joined = match existing {
            Some(_) => ctx.hub.join(ctx.conn, chat, ctx.sink),
            None => {
                let max = ctx.hub.limits().max_channels;
                if ctx.hub.channel_count() >= max {
                    let why = text::too_many_channels(chat, max);
                    numeric(ctx, numerics::ERR_NOSUCHCHANNEL, me, &[name], &why);
                    return;
                }
                ctx.hub.create(ctx.conn, chat, ctx.sink)
            }
        };
        match joined {
            Ok(ch) => self.joined(ch, ctx),
            // In a cluster: settled when the cluster has answered (see `settle_joins`).
            Err(ChannelError::Pending) => {
                self.pending_join = Some((chat.to_string(), name.to_string()));
            }
            Err(_) => no_such(ctx),
        }
    }

    /// `PART #a,#b [:reason]`.
    pub(super) fn part<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let Some(list) = msg.param(0).filter(|l| !l.is_empty()) else {
            need_more(ctx, &me, "PART");
            return;
        };
        let cleaned = msg.param(1).map(crate::frame::clean);
        let reason = cleaned
            .as_deref()
            .map(|r| super::fit(r.trim(), super::REASON_BYTES))
            .filter(|r| !r.is_empty());
        for name in list.split(',').filter(|n| !n.is_empty()) {
            match reach(ctx.hub, name) {
                None => numeric(
                    ctx,
                    numerics::ERR_NOSUCHCHANNEL,
                    &me,
                    &[name],
                    text::IRC_NO_SUCH_CHANNEL,
                ),
                Some(ch) if !ctx.hub.is_member(ctx.conn, ch) => numeric(
                    ctx,
                    numerics::ERR_NOTONCHANNEL,
                    &me,
                    &[name],
                    text::IRC_NOT_ON_CHANNEL,
                ),
                Some(ch) => self.part_one(ch, reason, ctx),
            }
        }
    }

    /// Leaves one channel: the others hear it from the hub, the client gets its `PART` line.
    fn part_one<S: Sink>(&mut self, ch: ChanId, reason: Option<&str>, ctx: &mut Ctx<'_, S>) {
        let Some(own) = ctx.hub.person(ctx.conn).map(prefix) else {
            return;
        };
        if ctx.hub.part(ctx.conn, ch, reason, ctx.sink).is_err() {
            return;
        }
        if let Some(channel) = irc_name(ctx.hub, ch) {
            let mut lines = Lines::default();
            lines.message(&own, "PART", &[&channel], reason);
            lines.send(ctx);
        }
    }

    /// `NAMES #a,#b`: `353`s and `366` for each channel; `366` alone for one that IRC cannot
    /// reach; `366 *` without a parameter.
    pub(super) fn names<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let list = msg.param(0).unwrap_or("");
        let mut any = false;
        for name in list.split(',').filter(|n| !n.is_empty()) {
            any = true;
            match reach(ctx.hub, name) {
                Some(ch) => self.push_job(Job::Names { ch, next: 0 }, "NAMES", ctx),
                None => numeric(
                    ctx,
                    numerics::RPL_ENDOFNAMES,
                    &me,
                    &[name],
                    text::IRC_END_OF_NAMES,
                ),
            }
        }
        if !any {
            numeric(
                ctx,
                numerics::RPL_ENDOFNAMES,
                &me,
                &["*"],
                text::IRC_END_OF_NAMES,
            );
        }
    }

    /// `LIST` (every channel IRC can carry, in creation order) or `LIST #a,#b`.
    pub(super) fn list<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let server = ctx.cfg.server_name.clone();
        let mut lines = Lines::default();
        lines.numeric(
            &server,
            numerics::RPL_LISTSTART,
            &me,
            &["Channel"],
            Some(text::IRC_LIST_START),
        );
        match msg.param(0).filter(|p| p.starts_with('#')) {
            Some(wanted) => {
                for name in wanted.split(',') {
                    if let Some(ch) = reach(ctx.hub, name) {
                        list_line(&mut lines, &server, &me, ctx.hub, ch);
                    }
                }
                lines.numeric(
                    &server,
                    numerics::RPL_LISTEND,
                    &me,
                    &[],
                    Some(text::IRC_LIST_END),
                );
                lines.send(ctx);
            }
            None => {
                lines.send(ctx);
                self.push_job(Job::List { next: 0 }, "LIST", ctx);
            }
        }
    }

    /// `WHO #channel`, `WHO nick`, `WHO mask`: `352`s then `315` with the mask as sent.
    pub(super) fn who<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let server = ctx.cfg.server_name.clone();
        let mask = msg.param(0).filter(|m| !m.is_empty()).unwrap_or("*");
        if mask.starts_with('#') {
            match reach(ctx.hub, mask) {
                Some(ch) => {
                    let job = Job::Who {
                        ch,
                        next: 0,
                        mask: mask.to_string(),
                    };
                    self.push_job(job, "WHO", ctx);
                }
                None => numeric(
                    ctx,
                    numerics::RPL_ENDOFWHO,
                    &me,
                    &[mask],
                    text::IRC_END_OF_WHO,
                ),
            }
            return;
        }
        let mut lines = Lines::default();
        if mask.contains(['*', '?']) || mask == "0" {
            let pattern = if mask == "0" { "*" } else { mask };
            let mut found: Vec<(Option<ConnId>, &Person, String)> = ctx
                .hub
                .everyone()
                .filter_map(|(id, p)| {
                    let nick = irc_nick(&p.name);
                    glob(pattern, &nick).then(|| (id, p, nick.into_owned()))
                })
                .collect();
            found.sort_by(|a, b| a.2.cmp(&b.2));
            for (id, p, _) in found.into_iter().take(WHO_MASK_MAX) {
                who_line(&mut lines, &server, &me, "*", ctx.hub, id, p);
            }
        } else if let Some((id, p)) = find_person(ctx.hub, mask) {
            who_line(&mut lines, &server, &me, "*", ctx.hub, id, p);
        }
        lines.numeric(
            &server,
            numerics::RPL_ENDOFWHO,
            &me,
            &[mask],
            Some(text::IRC_END_OF_WHO),
        );
        lines.send(ctx);
    }

    /// `MODE nick [+i|-i]` and `MODE #channel [b]`: answered as clients expect after
    /// registering and joining; nothing can really be set.
    pub(super) fn mode<S: Sink>(&mut self, msg: &Message<'_>, ctx: &mut Ctx<'_, S>) {
        let me = self.target().to_string();
        let server = ctx.cfg.server_name.clone();
        let Some(target) = msg.param(0).filter(|t| !t.is_empty()) else {
            need_more(ctx, &me, "MODE");
            return;
        };
        let mut lines = Lines::default();
        if target.starts_with('#') {
            let Some(ch) = reach(ctx.hub, target) else {
                numeric(
                    ctx,
                    numerics::ERR_NOSUCHCHANNEL,
                    &me,
                    &[target],
                    text::IRC_NO_SUCH_CHANNEL,
                );
                return;
            };
            let channel = irc_name(ctx.hub, ch).unwrap_or_else(|| target.to_string());
            match (msg.param(1), msg.params().len()) {
                (None, _) => lines.numeric(
                    &server,
                    numerics::RPL_CHANNELMODEIS,
                    &me,
                    &[&channel, "+nt"],
                    None,
                ),
                (Some("b" | "+b"), 2) => lines.numeric(
                    &server,
                    numerics::RPL_ENDOFBANLIST,
                    &me,
                    &[&channel],
                    Some(text::IRC_END_OF_BANS),
                ),
                _ => lines.numeric(
                    &server,
                    numerics::ERR_CHANOPRIVSNEEDED,
                    &me,
                    &[&channel],
                    Some(text::IRC_NOT_CHANOP),
                ),
            }
        } else if message::same_casefold(target, &me) {
            match msg.param(1) {
                None => {
                    let modes = if self.invisible { "+i" } else { "+" };
                    lines.numeric(&server, numerics::RPL_UMODEIS, &me, &[modes], None);
                }
                Some(changes) => {
                    let mut adding = true;
                    let mut unknown = false;
                    let was = self.invisible;
                    for c in changes.chars() {
                        match c {
                            '+' => adding = true,
                            '-' => adding = false,
                            'i' => self.invisible = adding,
                            _ => unknown = true,
                        }
                    }
                    if self.invisible != was {
                        let change = if self.invisible { "+i" } else { "-i" };
                        if let Some(own) = ctx.hub.person(ctx.conn).map(prefix) {
                            lines.message(&own, "MODE", &[&me], Some(change));
                        }
                    }
                    if unknown {
                        lines.numeric(
                            &server,
                            numerics::ERR_UMODEUNKNOWNFLAG,
                            &me,
                            &[],
                            Some(text::IRC_UNKNOWN_MODE),
                        );
                    }
                }
            }
        } else if find(ctx.hub, target).is_some() || is_service(target) {
            lines.numeric(
                &server,
                numerics::ERR_USERSDONTMATCH,
                &me,
                &[],
                Some(text::IRC_USERS_DONT_MATCH),
            );
        } else {
            lines.numeric(
                &server,
                numerics::ERR_NOSUCHNICK,
                &me,
                &[target],
                Some(text::IRC_NO_SUCH_NICK),
            );
        }
        lines.send(ctx);
    }
}

/// `TOPIC #channel`: `331` (there are no topics); setting one gets `482`.
pub(super) fn topic<S: Sink>(msg: &Message<'_>, me: &str, ctx: &mut Ctx<'_, S>) {
    let Some(name) = msg.param(0).filter(|n| !n.is_empty()) else {
        need_more(ctx, me, "TOPIC");
        return;
    };
    let Some(ch) = reach(ctx.hub, name) else {
        numeric(
            ctx,
            numerics::ERR_NOSUCHCHANNEL,
            me,
            &[name],
            text::IRC_NO_SUCH_CHANNEL,
        );
        return;
    };
    let channel = irc_name(ctx.hub, ch).unwrap_or_else(|| name.to_string());
    if msg.param(1).is_some() {
        numeric(
            ctx,
            numerics::ERR_CHANOPRIVSNEEDED,
            me,
            &[&channel],
            text::IRC_NOT_CHANOP,
        );
    } else {
        numeric(
            ctx,
            numerics::RPL_NOTOPIC,
            me,
            &[&channel],
            text::IRC_NO_TOPIC,
        );
    }
}

/// `WHOIS [server] nick`: 311, 319, 312, 301, 330, and always 318 with the nick as asked.
pub(super) fn whois<S: Sink>(msg: &Message<'_>, me: &str, ctx: &mut Ctx<'_, S>) {
    let asked = if msg.params().len() >= 2 {
        msg.param(1)
    } else {
        msg.param(0)
    };
    let Some(asked) = asked.filter(|a| !a.is_empty()) else {
        numeric(
            ctx,
            numerics::ERR_NONICKNAMEGIVEN,
            me,
            &[],
            text::IRC_NO_NICK,
        );
        return;
    };
    let server = ctx.cfg.server_name.clone();
    let s: &str = &server;
    let mut lines = Lines::default();
    if let Some(service) = [NICKSERV, CHATSERV]
        .into_iter()
        .find(|n| n.eq_ignore_ascii_case(asked))
    {
        let realname = if service == NICKSERV {
            text::NICKSERV_REALNAME
        } else {
            text::CHATSERV_REALNAME
        };
        lines.numeric(
            s,
            numerics::RPL_WHOISUSER,
            me,
            &[service, service, render::SERVICES_HOST, "*"],
            Some(realname),
        );
        lines.numeric(
            s,
            numerics::RPL_WHOISSERVER,
            me,
            &[service, s],
            Some(text::IRC_SERVER_INFO),
        );
    } else if let Some((id, p)) = find_person(ctx.hub, asked) {
        let nick = irc_nick(&p.name);
        let user = user_of(p);
        let realname = id.and_then(|id| ctx.hub.realname_of(id)).unwrap_or(&p.name);
        lines.numeric(
            s,
            numerics::RPL_WHOISUSER,
            me,
            &[&nick, &user, &p.host, "*"],
            Some(realname),
        );
        let chans: Vec<String> = ctx
            .hub
            .channels_of_name(&p.name)
            .into_iter()
            .filter_map(|ch| irc_name(ctx.hub, ch))
            .collect();
        pack(
            &mut lines,
            s,
            numerics::RPL_WHOISCHANNELS,
            me,
            &[&nick],
            &chans,
        );
        lines.numeric(
            s,
            numerics::RPL_WHOISSERVER,
            me,
            &[&nick, s],
            Some(text::IRC_SERVER_INFO),
        );
        if let Some(away) = id.and_then(|id| ctx.hub.away_of(id)) {
            lines.numeric(s, numerics::RPL_AWAY, me, &[&nick], Some(away));
        }
        // Whoever holds a registered name as an open user (here or on another node) has
        // identified it.
        if ctx.hub.is_registered(&p.name) {
            lines.numeric(
                s,
                numerics::RPL_WHOISACCOUNT,
                me,
                &[&nick, &p.name],
                Some(text::IRC_LOGGED_IN_AS),
            );
        }
    } else {
        lines.numeric(
            s,
            numerics::ERR_NOSUCHNICK,
            me,
            &[asked],
            Some(text::IRC_NO_SUCH_NICK),
        );
    }
    lines.numeric(
        s,
        numerics::RPL_ENDOFWHOIS,
        me,
        &[asked],
        Some(text::IRC_END_OF_WHOIS),
    );
    lines.send(ctx);
}

/// The connected user an IRC client means by `nick`: by name (as names compare), or by the
/// alias under which IRC shows a frame user whose name it cannot carry.
pub(super) fn find(hub: &Hub, nick: &str) -> Option<ConnId> {
    if is_service(nick) {
        return None;
    }
    if let Some(id) = hub.find_user(nick).filter(|&id| hub.is_open(id)) {
        return Some(id);
    }
    if render::is_alias(nick) {
        return hub
            .users()
            .find(|(_, p)| message::same_casefold(&irc_nick(&p.name), nick))
            .map(|(id, _)| id);
    }
    None
}

/// The user an IRC client means by `nick`, here or on another node, with its connection when
/// it is here: by name, or by the alias under which IRC shows a name it cannot carry.
pub(super) fn find_person<'h>(hub: &'h Hub, nick: &str) -> Option<(Option<ConnId>, &'h Person)> {
    if is_service(nick) {
        return None;
    }
    if let Some(found) = hub.person_named(nick) {
        return Some(found);
    }
    if render::is_alias(nick) {
        return hub
            .everyone()
            .find(|(_, p)| message::same_casefold(&irc_nick(&p.name), nick));
    }
    None
}

/// Packs `items` into numerics `<client> <middle…> :item item…`, each line within 512 bytes.
fn pack(
    lines: &mut Lines,
    server: &str,
    n: numerics::Numeric,
    me: &str,
    middle: &[&str],
    items: &[String],
) {
    let mut params = vec![me];
    params.extend_from_slice(middle);
    let mut current = String::new();
    for item in items {
        let candidate_len = if current.is_empty() {
            item.len()
        } else {
            current.len() + 1 + item.len()
        };
        let len = message::line_len(Some(server), "000", &params, Some("")) + candidate_len;
        if len > message::MAX_LINE && !current.is_empty() {
            lines.numeric(server, n, me, middle, Some(&current));
            current.clear();
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        lines.numeric(server, n, me, middle, Some(&current));
    }
}

/// One `322`: a channel, its members on every transport, no topic.
fn list_line(lines: &mut Lines, server: &str, me: &str, hub: &Hub, ch: ChanId) {
    if let Some(channel) = irc_name(hub, ch) {
        let count = hub.member_count(ch).to_string();
        lines.numeric(
            server,
            numerics::RPL_LIST,
            me,
            &[&channel, &count],
            Some(""),
        );
    }
}

/// One `352`: `<client> <channel> <user> <host> <server> <nick> <H|G> :0 <realname>`.
fn who_line(
    lines: &mut Lines,
    server: &str,
    me: &str,
    channel: &str,
    hub: &Hub,
    id: Option<ConnId>,
    p: &Person,
) {
    let nick = irc_nick(&p.name);
    let user = user_of(p);
    // Away messages and real names are known for this node's users only.
    let away = id.and_then(|id| hub.away_of(id)).is_some();
    let flags = if away { "G" } else { "H" };
    let realname = id.and_then(|id| hub.realname_of(id)).unwrap_or(&p.name);
    let trailing = format!("0 {realname}");
    lines.numeric(
        server,
        numerics::RPL_WHOREPLY,
        me,
        &[channel, &user, &p.host, server, &nick, flags],
        Some(&trailing),
    );
}

/// One step of a long reply: appends lines until [`super::STEP_BYTES`] are written or the
/// reply is done (true).
pub(super) fn step<S: Sink>(job: &mut Job, lines: &mut Lines, me: &str, ctx: &Ctx<'_, S>) -> bool {
    let server: &str = &ctx.cfg.server_name;
    let hub: &Hub = ctx.hub;
    let full = |lines: &Lines| lines.buf.len() >= super::STEP_BYTES;
    match job {
        Job::List { next } => {
            // `next` is a place in the /list order.
            while let Some(&ch) = hub.channels_in_order().get(*next) {
                if full(lines) {
                    return false;
                }
                list_line(lines, server, me, hub, ch);
                *next += 1;
            }
            lines.numeric(
                server,
                numerics::RPL_LISTEND,
                me,
                &[],
                Some(text::IRC_LIST_END),
            );
            true
        }
        Job::Names { ch, next } => {
            let Some(channel) = irc_name(hub, *ch) else {
                return true;
            };
            let mut nicks = Vec::new();
            let mut bytes = 0;
            let mut rest = hub.member_entries(*ch).skip(*next).peekable();
            while bytes < super::STEP_BYTES {
                let Some((_, p)) = rest.next() else { break };
                let nick = irc_nick(&p.name).into_owned();
                bytes += nick.len() + 1;
                nicks.push(nick);
                *next += 1;
            }
            let more = rest.peek().is_some();
            pack(
                lines,
                server,
                numerics::RPL_NAMREPLY,
                me,
                &["=", &channel],
                &nicks,
            );
            if more {
                return false;
            }
            lines.numeric(
                server,
                numerics::RPL_ENDOFNAMES,
                me,
                &[&channel],
                Some(text::IRC_END_OF_NAMES),
            );
            true
        }
        Job::Who { ch, next, mask } => {
            let channel = irc_name(hub, *ch).unwrap_or_else(|| mask.clone());
            for (id, p) in hub.member_entries(*ch).skip(*next) {
                if full(lines) {
                    return false;
                }
                who_line(lines, server, me, &channel, hub, id, p);
                *next += 1;
            }
            lines.numeric(
                server,
                numerics::RPL_ENDOFWHO,
                me,
                &[mask.as_str()],
                Some(text::IRC_END_OF_WHO),
            );
            true
        }
    }
}

/// `*` and `?` wildcards, ASCII case-insensitive (`CASEMAPPING=ascii`).
pub(super) fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = s.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative matching with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}
