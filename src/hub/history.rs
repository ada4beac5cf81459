//! Commands that need storage: /msg, offline delivery, /search, /register and /identify, and
//! the handling of storage's replies.

use super::{Auth, ConnId, Hub, Sink, MAX_PASSWORD_TRIES};
use crate::storage::{Event, OfflineMessage, Registration, Reply, Request, RequestKind, SearchHit};
use crate::utils_errors as text;

/// A password's length, in characters.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=64;

impl Hub {
    /// `/msg NAME TEXT`: delivered now, kept for later, or refused.
    pub(super) fn msg(&mut self, conn: ConnId, arg: &str, sink: &mut impl Sink) {
        let (target, body) = match arg.split_once(' ') {
            Some((target, body)) => (target, body.trim()),
            None => (arg, ""),
        };
        if target.is_empty() || body.is_empty() {
            self.reply(sink, conn, text::MSG_USAGE);
            return;
        }
        let Some(sender) = self.name_of(conn).map(str::to_string) else {
            return;
        };
        let online = self
            .names
            .get(target)
            .copied()
            .filter(|to| self.clients.get(to).is_some_and(|c| c.auth == Auth::Open));
        if online.is_none() && !self.known.contains(target) {
            self.reply(sink, conn, &text::no_such_user(target));
            return;
        }
        let time = self.clock.now();
        let event = Event::Private {
            seq: 0,
            time,
            sender: sender.clone(),
            recipient: target.to_string(),
            text: body.to_string(),
        };
        self.record(sink, event);
        match online {
            Some(to) => {
                self.send_prefixed(sink, to, &text::private_prefix(&sender, target), body);
            }
            None => {
                self.has_offline.insert(target.into());
                let request = Request::StoreOffline {
                    conn,
                    sender,
                    recipient: target.to_string(),
                    time,
                    text: body.to_string(),
                };
                self.ask(conn, request, sink);
            }
        }
    }

    /// Asks storage for the messages kept for `name`, if there are any; they arrive before
    /// anything else.
    pub(super) fn fetch_offline(&mut self, conn: ConnId, name: &str, sink: &mut impl Sink) {
        if !self.has_offline.contains(name) {
            return;
        }
        let request = Request::FetchOffline {
            conn,
            name: name.to_string(),
        };
        self.ask(conn, request, sink);
    }

    /// `/search TERM`: the messages this connection may see.
    pub(super) fn search(&mut self, conn: ConnId, term: &str, sink: &mut impl Sink) {
        if term.is_empty() {
            self.reply(sink, conn, text::SEARCH_USAGE);
            return;
        }
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        let Some(user) = client.name.as_deref() else {
            return;
        };
        // A registered name sees its history since it was registered; any other name only
        // since this connection logged in.
        let since = self
            .registered
            .get(user)
            .copied()
            .unwrap_or(client.login_seq);
        let request = Request::Search {
            conn,
            user: user.to_string(),
            since_seq: Some(since),
            term: term.to_string(),
        };
        self.ask(conn, request, sink);
    }

    /// `/register PASSWORD`: reserves the name once storage has committed it.
    pub(super) fn register(&mut self, conn: ConnId, password: &str, sink: &mut impl Sink) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        let Some(name) = client.name.as_deref() else {
            return;
        };
        if !PASSWORD_CHARS.contains(&password.chars().count()) {
            self.reply(sink, conn, text::PASSWORD_LENGTH);
        } else if self.registered.contains_key(name) {
            self.reply(sink, conn, &text::already_registered(name));
        } else {
            let request = Request::Register {
                conn,
                name: name.to_string(),
                password: password.to_string(),
                history_from: client.login_seq,
            };
            self.ask(conn, request, sink);
        }
    }

    /// `/identify PASSWORD`: checked off the loop; the answer comes in [`Hub::storage_reply`].
    pub(super) fn identify(&mut self, conn: ConnId, password: &str, sink: &mut impl Sink) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        let Some(name) = client.name.as_deref() else {
            return;
        };
        if client.auth == Auth::Open {
            let reply = if self.registered.contains_key(name) {
                text::already_identified(name)
            } else {
                text::not_registered(name)
            };
            self.reply(sink, conn, &reply);
        } else if !PASSWORD_CHARS.contains(&password.chars().count()) {
            self.reply(sink, conn, text::PASSWORD_LENGTH);
        } else {
            let request = Request::Identify {
                conn,
                name: name.to_string(),
                password: password.to_string(),
            };
            self.ask(conn, request, sink);
        }
    }

    /// The loop wrote everything queued for `conn` when it asked: delivered offline messages
    /// can go.
    pub fn flushed(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        if !client.unacked.is_empty() {
            let ids = std::mem::take(&mut client.unacked);
            sink.store(Request::DeleteOffline { ids });
            if let Some(name) = &client.name {
                self.has_offline.remove(name);
            }
        }
    }

    /// An answer from storage.
    pub fn storage_reply(&mut self, reply: Reply, sink: &mut impl Sink) {
        let conn = reply.conn();
        let Some(client) = self.clients.get(&conn) else {
            return; // The connection is gone; ids are never reused.
        };
        if !client.waiting {
            log::warn!(
                "conn {conn}: a storage reply nobody waits for: {:?}",
                reply_kind(&reply)
            );
            return;
        }
        match reply {
            Reply::Offline { name, messages, .. } => {
                self.deliver_offline(conn, &name, &messages, sink)
            }
            Reply::OfflineStored { recipient, .. } => {
                self.reply(sink, conn, &text::user_offline(&recipient));
            }
            Reply::Registered { name, result, .. } => match result {
                Registration::Registered => {
                    let from = client.login_seq;
                    log::info!("conn {conn}: registered {name}");
                    self.registered.insert(name.as_str().into(), from);
                    self.reply(sink, conn, &text::now_registered(&name));
                }
                Registration::AlreadyRegistered => {
                    self.reply(sink, conn, &text::already_registered(&name));
                }
            },
            Reply::Identified { name, ok, .. } => {
                if self.identified(conn, &name, ok, sink) {
                    return; // Still waiting: for its offline messages, or to be closed.
                }
            }
            Reply::Search {
                term,
                total,
                results,
                ..
            } => {
                self.search_results(conn, &term, total, &results, sink);
            }
            Reply::Failed { request, .. } => {
                log::warn!("conn {conn}: storage failed a {request:?} request");
                self.reply(sink, conn, text::STORAGE_FAILED);
            }
        }
        self.done_waiting(conn, sink);
    }

    /// Handles a password check; returns true when the connection must keep waiting.
    fn identified(&mut self, conn: ConnId, name: &str, ok: bool, sink: &mut impl Sink) -> bool {
        let Some(client) = self.clients.get_mut(&conn) else {
            return true;
        };
        let Auth::MustIdentify { tries } = client.auth else {
            return false;
        };
        if ok {
            client.auth = Auth::Open;
            client.waiting = false;
            log::info!("conn {conn}: identified as {name}");
            self.reply(sink, conn, &text::identified(name));
            self.fetch_offline(conn, name, sink);
            return self.is_waiting(conn);
        }
        let tries = tries + 1;
        client.auth = Auth::MustIdentify { tries };
        log::info!("conn {conn}: wrong password for {name} ({tries} of {MAX_PASSWORD_TRIES})");
        self.reply(sink, conn, &text::wrong_password(name));
        if tries >= MAX_PASSWORD_TRIES {
            sink.close(conn);
            return true;
        }
        false
    }

    fn deliver_offline(
        &mut self,
        conn: ConnId,
        name: &str,
        messages: &[OfflineMessage],
        sink: &mut impl Sink,
    ) {
        if messages.is_empty() {
            self.has_offline.remove(name);
            return;
        }
        let mut lines = vec![text::offline_header(messages.len())];
        lines.extend(
            messages
                .iter()
                .map(|m| text::offline_line(&self.clock.stamp(m.time), &m.sender, name, &m.text)),
        );
        self.reply_lines(sink, conn, lines.iter().map(String::as_str));
        if let Some(client) = self.clients.get_mut(&conn) {
            client.unacked.extend(messages.iter().map(|m| m.id));
        }
        sink.report_flush(conn);
    }

    fn search_results(
        &mut self,
        conn: ConnId,
        term: &str,
        total: usize,
        hits: &[SearchHit],
        sink: &mut impl Sink,
    ) {
        if hits.is_empty() {
            self.reply(sink, conn, &text::search_not_found(term));
            return;
        }
        let mut lines = Vec::with_capacity(hits.len() + 1);
        if total > hits.len() {
            lines.push(text::search_header(hits.len(), total, term));
        }
        for hit in hits {
            let stamp = self.clock.stamp(hit.time);
            lines.push(match (&hit.channel, &hit.recipient) {
                (Some(channel), _) => {
                    text::search_channel_line(&stamp, channel, &hit.sender, &hit.text)
                }
                (None, recipient) => text::search_private_line(
                    &stamp,
                    &hit.sender,
                    recipient.as_deref().unwrap_or(""),
                    &hit.text,
                ),
            });
        }
        self.reply_lines(sink, conn, lines.iter().map(String::as_str));
    }
}

fn reply_kind(reply: &Reply) -> RequestKind {
    match reply {
        Reply::OfflineStored { .. } => RequestKind::StoreOffline,
        Reply::Offline { .. } => RequestKind::FetchOffline,
        Reply::Registered { .. } => RequestKind::Register,
        Reply::Identified { .. } => RequestKind::Identify,
        Reply::Search { .. } => RequestKind::Search,
        Reply::Failed { request, .. } => *request,
    }
}
