//! The course protocol's command handling: one decoded frame into calls of the hub, and the
//! course's exact texts for what it refuses.
//!
//! The course's rule that a client is in one channel at a time lives here, not in the hub:
//! `/join` and `/create` leave the current channel first, and only once nothing can fail.

use crate::command::Command;
use crate::frame::{self, Frame};
use crate::hub::{
    check_channel_name, ChanId, ChannelError, ConnId, Hub, MsgKind, NameError, PrivateError, Sink,
};
use crate::sonnets;
use crate::utils_errors as text;

/// `/who` lists at most this many users, then says how many more there are.
pub const WHO_MAX_USERS: usize = 200;
/// `/who` lists at most this many channels, then says how many more there are.
pub const WHO_MAX_CHANNELS: usize = 200;
/// The channel lines of `/who` stop (saying how many more) past this many bytes, so that no
/// reply can fill a reader's queue.
pub const WHO_MAX_BYTES: usize = 32 * 1024;
/// A line of members (in `/who` or `/members`) stops past this many bytes, saying how many
/// more there are.
pub const MEMBERS_MAX_BYTES: usize = 8 * 1024;

/// Handles one complete frame from a connection.
pub fn handle(hub: &mut Hub, conn: ConnId, raw: &Frame, sink: &mut impl Sink) {
    let decoded = frame::decode(raw);
    if decoded.is_empty() {
        return;
    }
    if hub.name_of(conn).is_none() {
        login(hub, conn, &decoded, sink);
        return;
    }
    let cleaned = frame::clean(&decoded);
    let line = cleaned.trim_end();
    if line.is_empty() {
        return;
    }
    command(hub, conn, line, sink);
}

/// The first non-empty frame: the name.
fn login(hub: &mut Hub, conn: ConnId, name: &str, sink: &mut impl Sink) {
    let refusal = match hub.login(conn, name, None, sink) {
        Ok(_) => return,
        Err(NameError::Invalid) => text::invalid_name(&frame::clean(name)),
        Err(NameError::InUse) => text::name_in_use(name),
        Err(NameError::TooClose) => text::name_too_close(name),
        Err(NameError::Unavailable) => text::STORAGE_FAILED.to_string(),
    };
    hub.reply(sink, conn, &[&refusal]);
}

/// The channel a frame client is in (it is in one at most).
fn current(hub: &Hub, conn: ConnId) -> Option<ChanId> {
    hub.channels_of(conn).next()
}

/// A cleaned, non-empty line from a logged-in connection.
pub fn command(hub: &mut Hub, conn: ConnId, line: &str, sink: &mut impl Sink) {
    let command = Command::parse(line);
    if log::log_enabled!(log::Level::Debug) {
        // The command word only: never a password or a message's text.
        let what = match command {
            Command::Chat(msg) => format!("a chat message of {} bytes", msg.len()),
            _ => line.split(' ').next().unwrap_or_default().to_string(),
        };
        log::debug!("{}: {what}", crate::hub::conn_label(conn));
    }
    if !hub.is_open(conn) {
        match command {
            Command::Identify(password) => hub.identify(conn, password, sink),
            Command::Quit => sink.close(conn, None),
            _ => hub.reply(sink, conn, &[text::IDENTIFY_FIRST]),
        }
        return;
    }
    match command {
        Command::Chat(msg) => match current(hub, conn) {
            Some(ch) => {
                let _ = hub.say(conn, ch, msg, MsgKind::Chat, sink);
            }
            None => hub.reply(sink, conn, &[text::NOT_IN_CHANNEL]),
        },
        Command::Join(arg) => join(hub, conn, arg, sink),
        Command::Create(arg) => create(hub, conn, arg, sink),
        Command::List => hub.list(conn, sink),
        Command::Members => members(hub, conn, sink),
        Command::Leave => match current(hub, conn) {
            Some(ch) => {
                let _ = hub.part(conn, ch, None, sink);
            }
            None => hub.reply(sink, conn, &[text::NOT_IN_CHANNEL]),
        },
        Command::Time => hub.reply(sink, conn, &[&text::time_is(&hub.now_stamp())]),
        Command::Who => who(hub, conn, sink),
        Command::Help => hub.reply(sink, conn, text::HELP_LINES),
        Command::Sonnet(arg) => {
            let lines = sonnets::reply(hub.sonnets(), arg);
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            hub.reply(sink, conn, &refs);
        }
        Command::Msg(arg) => msg(hub, conn, arg, sink),
        Command::Search(term) => {
            if hub.search(conn, term, sink).is_err() {
                hub.reply(sink, conn, &[text::SEARCH_USAGE]);
            }
        }
        Command::Register(password) => hub.register(conn, password, sink),
        Command::Identify(password) => hub.identify(conn, password, sink),
        Command::Quit => sink.close(conn, None),
        Command::Unknown(word) => hub.reply(sink, conn, &[&text::invalid_control_message(word)]),
    }
}

/// The course text for a refused channel argument, if the refusal has one.
fn channel_refusal(error: ChannelError, missing: &str) -> Option<String> {
    match error {
        ChannelError::Missing => Some(missing.to_string()),
        ChannelError::TooLong => Some(text::CHANNEL_NAME_TOO_LONG.to_string()),
        _ => None,
    }
}

/// `/join C`: leave the current channel, then join C; nothing changes on an error.
fn join(hub: &mut Hub, conn: ConnId, arg: &str, sink: &mut impl Sink) {
    let name = match check_channel_name(arg) {
        Ok(name) => name,
        Err(e) => {
            if let Some(t) = channel_refusal(e, text::JOIN_REQUIRES_ARGUMENT) {
                hub.reply(sink, conn, &[&t]);
            }
            return;
        }
    };
    let Some(ch) = hub.channel_id(name) else {
        // One node of a cluster asks the others first: the channel may be a moment old.
        if !hub.find_remote(conn, name, sink) {
            hub.reply(sink, conn, &[&text::no_such_channel(name)]);
        }
        return;
    };
    if hub.is_member(conn, ch) {
        return;
    }
    hub.leave_all(conn, sink);
    let _ = hub.join(conn, name, sink);
}

/// `/create C`: leave the current channel, then create C and join it; nothing changes on an
/// error.
fn create(hub: &mut Hub, conn: ConnId, arg: &str, sink: &mut impl Sink) {
    let name = match check_channel_name(arg) {
        Ok(name) => name,
        Err(e) => {
            if let Some(t) = channel_refusal(e, text::CREATE_REQUIRES_ARGUMENT) {
                hub.reply(sink, conn, &[&t]);
            }
            return;
        }
    };
    if hub.channel_id(name).is_some() {
        hub.reply(sink, conn, &[&text::channel_exists(name)]);
        return;
    }
    let max = hub.limits().max_channels;
    if hub.channel_count() >= max {
        hub.reply(sink, conn, &[&text::too_many_channels(name, max)]);
        return;
    }
    // The course's one channel at a time: the hub leaves the others once the channel exists
    // (in a cluster, when the cluster has made it), and not at all when it is refused.
    let _ = hub.create_alone(conn, name, sink);
}

/// `/msg NAME TEXT`.
fn msg(hub: &mut Hub, conn: ConnId, arg: &str, sink: &mut impl Sink) {
    let (target, body) = match arg.split_once(' ') {
        Some((target, body)) => (target, body.trim()),
        None => (arg, ""),
    };
    if target.is_empty() || body.is_empty() {
        hub.reply(sink, conn, &[text::MSG_USAGE]);
        return;
    }
    let refusal = match hub.private(conn, target, body, MsgKind::Chat, sink) {
        Ok(_) => return,
        Err(PrivateError::NoSuchUser) => text::no_such_user(target),
        Err(PrivateError::MailboxFull) => text::mailbox_full(target),
        Err(PrivateError::NotLoggedIn) => return,
    };
    hub.reply(sink, conn, &[&refusal]);
}

/// Names sorted, stopping past `max` bytes (joined) with `… and N more`.
pub(crate) fn capped_names(mut names: Vec<&str>, max: usize) -> Vec<String> {
    names.sort_unstable();
    let mut out = Vec::new();
    let mut bytes = 0;
    for (i, name) in names.iter().enumerate() {
        if i > 0 && bytes + name.len() + 2 > max {
            out.push(text::who_more(names.len() - i));
            break;
        }
        bytes += name.len() + 2;
        out.push(name.to_string());
    }
    out
}

/// `/members`: the members of the current channel, sorted.
fn members(hub: &mut Hub, conn: ConnId, sink: &mut impl Sink) {
    let Some(ch) = current(hub, conn) else {
        hub.reply(sink, conn, &[text::NOT_IN_CHANNEL]);
        return;
    };
    let names = capped_names(
        hub.member_people(ch).map(|p| &*p.name).collect(),
        MEMBERS_MAX_BYTES,
    );
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let line = text::members_of(hub.channel_name(ch), &refs);
    hub.reply(sink, conn, &[&line]);
}

/// `/who`: every user and its channel, then every non-empty channel and its members; bounded.
fn who(hub: &mut Hub, conn: ConnId, sink: &mut impl Sink) {
    let lines = who_lines(hub, |ch| Some(hub.channel_name(ch).to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    hub.reply(sink, conn, &refs);
}

/// The lines of `/who`, every protocol's: each user with its channels, then each non-empty
/// channel with its members, within the bounds above. `name_of` names a channel as the
/// protocol shows it; a channel it cannot show (`None`) is left out.
pub(crate) fn who_lines(hub: &Hub, name_of: impl Fn(ChanId) -> Option<String>) -> Vec<String> {
    let mut users: Vec<(&str, String)> = hub
        .people()
        .into_iter()
        .map(|(p, chans)| {
            let chans: Vec<String> = chans.into_iter().filter_map(&name_of).collect();
            let where_ = if chans.is_empty() {
                text::WHO_NO_CHANNEL.to_string()
            } else {
                chans.join(", ")
            };
            (&*p.name, where_)
        })
        .collect();
    users.sort_unstable();
    let mut lines = vec![text::WHO_USERS_HEADER.to_string()];
    lines.extend(
        users
            .iter()
            .take(WHO_MAX_USERS)
            .map(|(name, channel)| text::who_user(name, channel)),
    );
    if users.len() > WHO_MAX_USERS {
        lines.push(text::who_more(users.len() - WHO_MAX_USERS));
    }
    lines.push(text::WHO_GROUPS_HEADER.to_string());
    let groups: Vec<(ChanId, String)> = hub
        .channels_in_order()
        .iter()
        .copied()
        .filter(|&ch| hub.member_people(ch).next().is_some())
        .filter_map(|ch| Some((ch, name_of(ch)?)))
        .collect();
    let mut bytes = 0;
    for (i, (ch, channel)) in groups.iter().enumerate() {
        if i >= WHO_MAX_CHANNELS || bytes > WHO_MAX_BYTES {
            lines.push(text::who_more(groups.len() - i));
            break;
        }
        let names = capped_names(
            hub.member_people(*ch).map(|p| &*p.name).collect(),
            MEMBERS_MAX_BYTES,
        );
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let line = text::who_group(channel, &refs);
        bytes += line.len() + 1;
        lines.push(line);
    }
    lines
}
