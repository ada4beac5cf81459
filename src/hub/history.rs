//! What needs storage or the hashers: private and offline messages (with their paced
//! delivery), `/search`, `/register` and `/identify`, and the handling of their answers.

use super::{
    conn_label, Auth, ConnId, Hub, MsgKind, Out, ReplyKind, Sink, Wait, MAX_PASSWORD_TRIES,
};
use crate::cluster::Wire;
use crate::names::name_key;
use crate::storage::{
    Event, HashJob, OfflineMessage, RegisteredName, Registration, Reply, Request, RequestKind,
    SearchHit,
};
use crate::utils_errors as text;

/// A password's length, in characters.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=64;

/// Offline messages fetched from storage (and queued for the socket) at a time.
pub const MAIL_BATCH: usize = 100;

/// How a private message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Private {
    /// Handed to the recipient's connection.
    Delivered,
    /// Being stored for an offline recipient; the sender gets the confirmation once committed.
    Stored,
}

/// Why a private message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrivateError {
    #[error("no such user")]
    NoSuchUser,
    #[error("the recipient's mailbox is full")]
    MailboxFull,
    #[error("not logged in")]
    NotLoggedIn,
}

/// Why a search was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("no search term")]
    Empty,
}

impl Hub {
    /// A private message to the user called `target`: delivered now, kept for later, or
    /// refused. History keeps it either way.
    pub fn private(
        &mut self,
        conn: ConnId,
        target: &str,
        body: &str,
        kind: MsgKind,
        sink: &mut impl Sink,
    ) -> Result<Private, PrivateError> {
        let Some(client) = self.clients.get(&conn) else {
            return Err(PrivateError::NotLoggedIn);
        };
        let (Some(from), Some(from_key)) = (client.person.clone(), client.key.clone()) else {
            return Err(PrivateError::NotLoggedIn);
        };
        let key = name_key(target);
        let online = self
            .owners
            .get(&*key)
            .copied()
            .filter(|to| self.clients.get(to).is_some_and(|c| c.auth == Auth::Open));
        let remote = if online.is_none() {
            self.remote_person(&key).map(|p| p.name.to_string())
        } else {
            None
        };
        if online.is_none() && remote.is_none() && !self.known.contains(&*key) {
            return Err(PrivateError::NoSuchUser);
        }
        // While the recipient's stored messages are being delivered, a new one joins them, so
        // that it arrives after all of them.
        let delivering = online
            .and_then(|to| self.clients.get(&to))
            .is_some_and(|c| c.wait == Wait::Mail);
        let recipient = online
            .and_then(|to| self.name_of(to))
            .map(str::to_string)
            .or(remote.clone())
            .unwrap_or_else(|| target.to_string());
        let count = self.mail.get(&*key).copied().unwrap_or(0);
        if remote.is_none() && (online.is_none() || delivering) && count >= self.limits.max_offline
        {
            return Err(PrivateError::MailboxFull);
        }
        let stored = match kind {
            MsgKind::Action => text::action_line(&from.name, body),
            MsgKind::Chat | MsgKind::Notice => body.to_string(),
        };
        let seq = self.next_seq();
        let time = self.clock.now();
        sink.store(Request::Event(Event::Private {
            seq,
            time,
            sender: from.name.to_string(),
            sender_key: from_key.to_string(),
            recipient: recipient.clone(),
            recipient_key: key.to_string(),
            text: stored.clone(),
        }));
        if remote.is_some() {
            // Another node's user: that node delivers it.
            if !self.tell_private(sink, conn, &key, body, kind, seq) {
                self.reply(sink, conn, &[text::STORAGE_FAILED]);
            }
            return Ok(Private::Delivered);
        }
        match online {
            Some(to) if !delivering => {
                let out = Out::Private {
                    from: &from,
                    to: &recipient,
                    text: body,
                    kind,
                };
                sink.emit(to, &out);
                Ok(Private::Delivered)
            }
            _ => {
                *self.mail.entry(key.clone()).or_default() += 1;
                let notify = (!delivering).then_some(conn);
                sink.store(Request::StoreOffline {
                    notify,
                    sender: from.name.to_string(),
                    recipient,
                    recipient_key: key.to_string(),
                    time,
                    text: stored,
                    // In a cluster every node stores for the mailbox: the database counts.
                    max: self.cluster.is_some().then_some(self.limits.max_offline),
                });
                if notify.is_some() {
                    self.set_wait(conn, Wait::Storage);
                    Ok(Private::Stored)
                } else {
                    Ok(Private::Delivered)
                }
            }
        }
    }

    /// Starts delivering the messages kept for a connection's name, if there are any; they
    /// arrive before anything else, a batch at a time as the socket takes them.
    pub(super) fn start_mail(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(key) = self.clients.get(&conn).and_then(|c| c.key.clone()) else {
            return;
        };
        // In a cluster other nodes store mail too: always ask storage.
        if self.cluster.is_none() && self.mail.get(&*key).copied().unwrap_or(0) == 0 {
            self.done_waiting(conn, sink);
            return;
        }
        if let Some(client) = self.clients.get_mut(&conn) {
            client.wait = Wait::Mail;
            client.mail = Some(Box::default());
        }
        sink.store(Request::FetchOffline {
            conn,
            key: key.to_string(),
            after: 0,
            limit: MAIL_BATCH,
        });
    }

    /// A batch of stored messages arrived: hand them to the socket, and ask to hear when it
    /// has taken them.
    fn deliver_mail(
        &mut self,
        conn: ConnId,
        total: usize,
        messages: &[OfflineMessage],
        sink: &mut impl Sink,
    ) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let name = client.name().unwrap_or_default().to_string();
        let (Some(key), Some(delivery)) = (client.key.clone(), client.mail.as_mut()) else {
            return;
        };
        if self.cluster.is_some() {
            // Storage's count is the cluster's; this node's is not.
            self.mail.insert(Box::from(&*key), total);
        }
        if messages.is_empty() {
            // Storage holds nothing more (a store that failed, say): the count was too high.
            self.mail.remove(&*key);
            self.end_mail(conn, sink);
            return;
        }
        let mut lines = Vec::with_capacity(messages.len() + 1);
        if !delivery.started {
            delivery.started = true;
            lines.push(text::offline_header(total.max(messages.len())));
        }
        delivery.unacked.extend(messages.iter().map(|m| m.id));
        delivery.after = messages.last().map_or(delivery.after, |m| m.id);
        lines.extend(
            messages
                .iter()
                .map(|m| text::offline_line(&self.clock.stamp(m.time), &m.sender, &name, &m.text)),
        );
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.reply_kind(sink, conn, ReplyKind::Offline, &refs);
        sink.report_flush(conn);
    }

    /// The socket took a batch: delete it from storage, then fetch the next or finish.
    pub(super) fn mail_flushed(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let (Some(key), Some(delivery)) = (client.key.clone(), client.mail.as_mut()) else {
            return;
        };
        let ids = std::mem::take(&mut delivery.unacked);
        let after = delivery.after;
        if ids.is_empty() {
            return;
        }
        let left = {
            let count = self.mail.entry(Box::from(&*key)).or_default();
            *count = count.saturating_sub(ids.len());
            *count
        };
        sink.store(Request::DeleteOffline { ids });
        if left > 0 {
            sink.store(Request::FetchOffline {
                conn,
                key: key.to_string(),
                after,
                limit: MAIL_BATCH,
            });
        } else {
            self.mail.remove(&*key);
            self.end_mail(conn, sink);
        }
    }

    /// A mailbox delivery is over: one more round if another node stored a message for it
    /// meanwhile ([`Hub::remote_mail`]), else the connection goes on.
    fn end_mail(&mut self, conn: ConnId, sink: &mut impl Sink) {
        let again = self
            .clients
            .get_mut(&conn)
            .and_then(|c| c.mail.take())
            .is_some_and(|d| d.again);
        if again {
            self.start_mail(conn, sink);
        } else {
            self.done_waiting(conn, sink);
        }
    }

    /// Another node stored an offline message for `key` ([`Wire::Mail`]): if that user is
    /// online here, its mailbox is delivered now (or once the delivery under way ends).
    pub(super) fn remote_mail(&mut self, key: &str, sink: &mut impl Sink) {
        let Some(conn) = self.owners.get(key).copied() else {
            return;
        };
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        if client.auth != Auth::Open {
            return;
        }
        match client.wait {
            Wait::Nothing => self.start_mail(conn, sink),
            Wait::Mail => {
                if let Some(d) = client.mail.as_mut() {
                    d.again = true;
                }
            }
            // Busy with something else (a search, a stored message of its own): its next
            // login delivers it, as before.
            _ => {}
        }
    }

    /// `/search TERM`: the messages this connection may see, found off the loop.
    pub fn search(
        &mut self,
        conn: ConnId,
        term: &str,
        sink: &mut impl Sink,
    ) -> Result<(), SearchError> {
        if term.is_empty() {
            return Err(SearchError::Empty);
        }
        // In a cluster: everything this node has seen so far (its clock follows the others').
        let upto_seq = self.cluster.is_some().then(|| self.next_seq());
        let Some(client) = self.clients.get(&conn) else {
            return Ok(());
        };
        let Some(key) = client.key.as_deref() else {
            return Ok(());
        };
        if self.searches >= self.limits.max_searches {
            self.reply(sink, conn, &[text::BUSY]);
            return Ok(());
        }
        // A registered name sees its history since it was registered; any other name only
        // since this connection logged in.
        let since = match (self.registered.get(key), client.auth) {
            (Some(r), Auth::Open) => r.history_from,
            _ => client.login_seq,
        };
        let request = Request::Search {
            conn,
            user_key: key.to_string(),
            since_seq: since,
            upto_seq,
            term: term.to_string(),
        };
        self.searches += 1;
        self.set_wait(conn, Wait::Search);
        sink.store(request);
        Ok(())
    }

    /// `/register PASSWORD`: reserves the name once the hash is stored and committed.
    pub fn register(&mut self, conn: ConnId, password: &str, sink: &mut impl Sink) {
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        let (Some(name), Some(key)) = (client.name(), client.key.as_deref()) else {
            return;
        };
        if !PASSWORD_CHARS.contains(&password.chars().count()) {
            self.reply_kind(sink, conn, ReplyKind::Registered, &[text::PASSWORD_LENGTH]);
            return;
        }
        if self.registered.contains_key(key) {
            let reply = text::already_registered(name);
            self.reply_kind(sink, conn, ReplyKind::Registered, &[&reply]);
            return;
        }
        let job = HashJob::Hash {
            conn,
            name: name.to_string(),
            key: key.to_string(),
            password: password.to_string(),
            history_from: client.login_seq,
        };
        if sink.hash(job) {
            self.set_wait(conn, Wait::Hash);
        } else {
            self.reply(sink, conn, &[text::BUSY]);
        }
    }

    /// `/identify PASSWORD`: checked off the loop, unless the name or the address is locked
    /// out; the answer comes in [`Hub::storage_reply`].
    pub fn identify(&mut self, conn: ConnId, password: &str, sink: &mut impl Sink) {
        let now = self.clock.now();
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        let (Some(name), Some(key)) = (client.name(), client.key.as_deref()) else {
            return;
        };
        if client.auth == Auth::Open {
            let reply = if self.registered.contains_key(key) {
                text::already_identified(name)
            } else {
                text::not_registered(name)
            };
            self.reply(sink, conn, &[&reply]);
            return;
        }
        if !PASSWORD_CHARS.contains(&password.chars().count()) {
            self.reply_kind(sink, conn, ReplyKind::AuthFailed, &[text::PASSWORD_LENGTH]);
            return;
        }
        if let Some(secs) = self.guard.locked(key, client.addr, now) {
            log::info!(
                "{}: /identify for {name} refused: locked out for {secs} s",
                conn_label(conn)
            );
            let reply = text::locked_out(name, secs);
            self.reply_kind(sink, conn, ReplyKind::AuthFailed, &[&reply]);
            return;
        }
        let Some(hash) = self.registered.get(key).map(|r| r.hash.clone()) else {
            return;
        };
        let job = HashJob::Verify {
            conn,
            key: key.to_string(),
            password: password.to_string(),
            hash,
        };
        if sink.hash(job) {
            self.set_wait(conn, Wait::Hash);
        } else {
            self.reply(sink, conn, &[text::BUSY]);
        }
    }

    /// An answer from storage or the hashers. Its effects on shared state (a registration,
    /// a count) hold even when the connection that asked is gone.
    pub fn storage_reply(&mut self, reply: Reply, sink: &mut impl Sink) {
        match reply {
            Reply::OfflineStored { conn, recipient } => {
                if let Some(node) = self.node() {
                    // Its recipient may have logged in on another node a moment ago.
                    let key = name_key(&recipient).to_string();
                    self.publish(sink, Wire::Mail { node, key });
                }
                if self.waits(conn, Wait::Storage) {
                    self.reply(sink, conn, &[&text::user_offline(&recipient)]);
                    self.done_waiting(conn, sink);
                }
            }
            Reply::OfflineFull {
                conn,
                recipient,
                key,
            } => {
                if let Some(count) = self.mail.get_mut(key.as_str()) {
                    *count = count.saturating_sub(1);
                }
                match conn {
                    Some(conn) if self.waits(conn, Wait::Storage) => {
                        self.reply(sink, conn, &[&text::mailbox_full(&recipient)]);
                        self.done_waiting(conn, sink);
                    }
                    _ => log::info!("offline message for {recipient} not stored: mailbox full"),
                }
            }
            Reply::Offline {
                conn,
                total,
                messages,
                ..
            } => {
                if self.waits(conn, Wait::Mail) {
                    self.deliver_mail(conn, total, &messages, sink);
                }
            }
            Reply::Registered {
                conn,
                name,
                key,
                history_from,
                hash,
                result,
            } => {
                let reply = match result {
                    Registration::Registered => {
                        log::info!("{}: registered {name}", conn_label(conn));
                        let entry = RegisteredName {
                            name: name.clone(),
                            history_from,
                            hash,
                        };
                        self.registered.insert(key.as_str().into(), entry);
                        self.enforce_registration(&key, conn, sink);
                        if let Some(node) = self.node() {
                            let wire = crate::cluster::Wire::Registered {
                                node,
                                key: key.clone(),
                                name: name.clone(),
                                history_from,
                                hash: self
                                    .registered
                                    .get(key.as_str())
                                    .map(|r| r.hash.clone())
                                    .unwrap_or_default(),
                            };
                            self.publish(sink, wire);
                        }
                        text::now_registered(&name)
                    }
                    Registration::AlreadyRegistered => text::already_registered(&name),
                };
                if self.waits(conn, Wait::Hash) {
                    self.reply_kind(sink, conn, ReplyKind::Registered, &[&reply]);
                    self.done_waiting(conn, sink);
                }
            }
            Reply::Identified { conn, key, ok } => {
                let addr = self.clients.get(&conn).and_then(|c| c.addr);
                self.guard.record(&key, addr, ok, self.clock.now());
                if self.waits(conn, Wait::Hash) {
                    if self.name_of(conn).is_none() {
                        self.authenticated(conn, &key, ok, sink);
                    } else {
                        self.identified(conn, ok, sink);
                    }
                }
            }
            Reply::Search {
                conn,
                term,
                total,
                results,
            } => {
                self.searches = self.searches.saturating_sub(1);
                if self.waits(conn, Wait::Search) {
                    self.search_results(conn, &term, total, &results, sink);
                    self.done_waiting(conn, sink);
                }
            }
            Reply::Failed { conn, request, key } => {
                match request {
                    RequestKind::Search => self.searches = self.searches.saturating_sub(1),
                    RequestKind::StoreOffline => {
                        if let Some(count) = key.and_then(|k| self.mail.get_mut(k.as_str())) {
                            *count = count.saturating_sub(1);
                        }
                    }
                    _ => {}
                }
                let Some(conn) = conn else { return };
                if self.is_waiting(conn) {
                    log::warn!("{}: storage failed a {request:?} request", conn_label(conn));
                    // A password check before login (SASL) must end as one, or the IRC
                    // client waits for its 904 until the name timeout.
                    let sasl = self.waits(conn, Wait::Hash)
                        && self.clients.get(&conn).is_some_and(|c| c.person.is_none());
                    if let Some(client) = self.clients.get_mut(&conn) {
                        client.mail = None;
                    }
                    let kind = if sasl {
                        ReplyKind::SaslFailed
                    } else {
                        ReplyKind::Plain
                    };
                    self.reply_kind(sink, conn, kind, &[text::STORAGE_FAILED]);
                    self.done_waiting(conn, sink);
                }
            }
        }
    }

    /// True when `conn` is connected and waits for `what`.
    fn waits(&self, conn: ConnId, what: Wait) -> bool {
        self.clients.get(&conn).is_some_and(|c| c.wait == what)
    }

    /// A registration is enforced from its commit: whoever else holds the name now must
    /// identify (and leaves its channels until then).
    pub(super) fn enforce_registration(
        &mut self,
        key: &str,
        registrant: ConnId,
        sink: &mut impl Sink,
    ) {
        let Some(&holder) = self.owners.get(key) else {
            return;
        };
        if holder == registrant {
            return;
        }
        self.logged_out(holder, key, None, sink);
        log::info!(
            "{}: its name is now registered by another: must identify",
            conn_label(holder)
        );
        self.quit_channels(holder, None, sink);
        self.owners.remove(key);
        // The name's offline messages are the registered name's now: their delivery stops, and
        // what was not written yet stays stored for whoever identifies.
        if self.waits(holder, Wait::Mail) {
            if let Some(client) = self.clients.get_mut(&holder) {
                client.mail = None;
            }
            self.done_waiting(holder, sink);
        }
        // A holder spelling the name otherwise (it logged in as `аlice` before `ALICE` was
        // registered) could never log in with that spelling now, so it may not identify with
        // it either: it is told so, as a login would be, and closed.
        let spelled = self
            .clients
            .get(&holder)
            .and_then(|c| c.name())
            .map(str::to_string);
        let registered = self.registered.get(key).map(|r| r.name.clone());
        if let (Some(spelled), Some(registered)) = (spelled, registered) {
            if spelled != registered {
                log::info!(
                    "{}: {spelled} is too close to the name just registered; closing",
                    conn_label(holder)
                );
                sink.close(holder, Some(&text::name_too_close(&spelled)));
                if let Some(c) = self.clients.get_mut(&holder) {
                    c.person = None;
                    c.key = None;
                }
                return;
            }
        }
        self.require_identify(holder, sink);
    }

    /// A registered name is proven: this connection owns it, and every other connection
    /// holding it unidentified is told and closed. In a cluster the name is then claimed
    /// there (true: the connection waits for that).
    pub(super) fn take_name(
        &mut self,
        conn: ConnId,
        key: &str,
        name: &str,
        sink: &mut impl Sink,
    ) -> bool {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.auth = Auth::Open;
        }
        log::info!("{}: logged in as {name} (identified)", conn_label(conn));
        self.forget_pending(key, conn);
        if let Some(others) = self.pending.remove(key) {
            let reason = text::identified_elsewhere(name);
            for other in others {
                log::info!(
                    "{}: {name} was identified by {}; closing",
                    conn_label(other),
                    conn_label(conn)
                );
                sink.close(other, Some(&reason));
            }
        }
        if self.cluster.is_some() {
            if self.claim(conn, key, sink) {
                return true;
            }
            // Redis cannot be asked: the name is this node's meanwhile.
            log::warn!(
                "{}: {name} identified while the cluster is away",
                conn_label(conn)
            );
        }
        self.owners.insert(key.into(), conn);
        self.logged_in(conn, sink);
        false
    }

    /// Checks a password for a registered name before the connection logs in (IRC's SASL
    /// PLAIN), with the same lockouts as `/identify`. The answer is a reply of kind
    /// [`ReplyKind::SaslOk`] (a login with that name then needs no `/identify`) or
    /// [`ReplyKind::SaslFailed`].
    pub fn authenticate(
        &mut self,
        conn: ConnId,
        account: &str,
        password: &str,
        sink: &mut impl Sink,
    ) {
        let now = self.clock.now();
        let Some(client) = self.clients.get(&conn) else {
            return;
        };
        if client.person.is_some() {
            return;
        }
        let key = name_key(account);
        let Some(hash) = self.registered.get(&key).map(|r| r.hash.clone()) else {
            let reply = text::not_registered(account);
            self.reply_kind(sink, conn, ReplyKind::SaslFailed, &[&reply]);
            return;
        };
        if let Some(secs) = self.guard.locked(&key, client.addr, now) {
            let reply = text::locked_out(account, secs);
            self.reply_kind(sink, conn, ReplyKind::SaslFailed, &[&reply]);
            return;
        }
        let job = HashJob::Verify {
            conn,
            key: key.to_string(),
            password: password.to_string(),
            hash,
        };
        if sink.hash(job) {
            self.set_wait(conn, Wait::Hash);
        } else {
            self.reply_kind(sink, conn, ReplyKind::SaslFailed, &[text::BUSY]);
        }
    }

    /// The answer to [`Hub::authenticate`].
    fn authenticated(&mut self, conn: ConnId, key: &str, ok: bool, sink: &mut impl Sink) {
        let account = self
            .registered
            .get(key)
            .map_or_else(|| key.to_string(), |r| r.name.clone());
        if ok {
            if let Some(client) = self.clients.get_mut(&conn) {
                client.irc_mut().account = Some(key.into());
            }
            self.reply_kind(sink, conn, ReplyKind::SaslOk, &[&account]);
        } else {
            let reply = text::wrong_password(&account);
            self.reply_kind(sink, conn, ReplyKind::SaslFailed, &[&reply]);
        }
        self.done_waiting(conn, sink);
    }

    /// Handles a password check of a connection that waited for it.
    fn identified(&mut self, conn: ConnId, ok: bool, sink: &mut impl Sink) {
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let Auth::MustIdentify { tries } = client.auth else {
            self.done_waiting(conn, sink);
            return;
        };
        let (Some(name), Some(key)) = (client.name().map(str::to_string), client.key.clone())
        else {
            return;
        };
        if ok {
            let claiming = self.take_name(conn, &key, &name, sink);
            if claiming {
                // Said once the cluster has given the name (see `claimed`).
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.identifying = true;
                }
                return;
            }
            self.reply_kind(
                sink,
                conn,
                ReplyKind::Identified,
                &[&text::identified(&name)],
            );
            self.start_mail(conn, sink);
            return;
        }
        let tries = tries + 1;
        client.auth = Auth::MustIdentify { tries };
        log::info!(
            "{}: wrong password for {name} ({tries} of {MAX_PASSWORD_TRIES})",
            conn_label(conn)
        );
        let reply = text::wrong_password(&name);
        self.reply_kind(sink, conn, ReplyKind::AuthFailed, &[&reply]);
        if tries >= MAX_PASSWORD_TRIES {
            // The wrong-password text was the reason; the connection stays waiting until closed.
            sink.close(conn, None);
        } else {
            self.done_waiting(conn, sink);
        }
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
            self.reply(sink, conn, &[&text::search_not_found(term)]);
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
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        self.reply(sink, conn, &refs);
    }
}
