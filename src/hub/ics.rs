//! The ICS commands: /time, /who, /sonnet and /help.

use super::{ConnId, Hub, Sink};
use crate::sonnets;
use crate::utils_errors as text;

/// `/who` lists at most this many users, then says how many more there are.
pub const WHO_MAX_USERS: usize = 200;

impl Hub {
    /// `/time`: the server's local time.
    pub(super) fn time(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let stamp = self.clock.stamp(self.clock.now());
        self.reply(sink, conn, &text::time_is(&stamp));
    }

    /// `/who`: every user and its channel, then every non-empty channel and its members.
    pub(super) fn who(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let mut users: Vec<(&str, &str)> = self
            .clients
            .values()
            .filter_map(|c| {
                let name = c.name.as_deref()?;
                let channel = c
                    .channel
                    .map_or(text::WHO_NO_CHANNEL, |ch| &*self.channels[ch].name);
                Some((name, channel))
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
        for (ch, channel) in self.channels.iter().enumerate() {
            if channel.members.is_empty() {
                continue;
            }
            let mut names = self.member_names(ch);
            names.sort_unstable();
            lines.push(text::who_group(&channel.name, &names));
        }
        self.reply_lines(sink, conn, lines.iter().map(String::as_str));
    }

    /// `/sonnet N` (or `/poem N`): the sonnet, its numeral first, packed into frames.
    pub(super) fn sonnet(&mut self, conn: ConnId, arg: &str, sink: &mut impl Sink) {
        let lines = sonnets::reply(self.sonnets.as_ref(), arg);
        self.reply_lines(sink, conn, lines.iter().map(String::as_str));
    }

    /// `/help`: one line per command.
    pub(super) fn help(&mut self, conn: ConnId, sink: &mut impl Sink) {
        self.reply_lines(sink, conn, text::HELP_LINES.iter().copied());
    }
}
