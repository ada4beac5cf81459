//! Every user-visible protocol text, in one place.
//!
//! The course texts are byte-exact (graders compare them); the extension texts follow
//! `docs/PROTOCOL.md`. Each text has a constant or a formatting function; nothing else in the
//! project writes a protocol text by hand.

// ---- Section 2: connection and names -------------------------------------------------------

/// Reply to a name that is not 1 to 32 characters without whitespace or control characters.
pub fn invalid_name(name: &str) -> String {
    format!("Invalid name {name}: a name is 1 to 32 characters without spaces.")
}

/// Reply to a name that a connected client already uses.
pub fn name_in_use(name: &str) -> String {
    format!("Name {name} is already in use. Send another name.")
}

/// Reply to a name the same (after case folding and the confusable skeleton) as a registered
/// name but not spelled exactly like it.
pub fn name_too_close(name: &str) -> String {
    format!("Name {name} is too close to a registered name. Send another name.")
}

/// Broadcast to a channel when a member leaves it or disconnects.
pub fn has_left(name: &str) -> String {
    format!("{name} has left")
}

/// Broadcast to a channel's existing members when someone joins it.
pub fn has_joined(name: &str) -> String {
    format!("{name} has joined")
}

// ---- Section 3: the channel protocol (byte-exact) -------------------------------------------

/// The prefix of a relayed chat message: `[name] `.
pub fn chat_prefix(name: &str) -> String {
    format!("[{name}] ")
}

/// Reply to a chat message (or `/members`, `/leave`) from a client in no channel.
pub const NOT_IN_CHANNEL: &str =
    "Not currently in any channel. Must join a channel before sending messages.";

/// Reply to `/join C` when no channel C exists.
pub fn no_such_channel(channel: &str) -> String {
    format!("No channel named {channel} exists. Try '/create {channel}'?")
}

/// Reply to `/join` without an argument.
pub const JOIN_REQUIRES_ARGUMENT: &str =
    "/join command must be followed by the name of a channel to join.";

/// Reply to `/create C` when C exists.
pub fn channel_exists(channel: &str) -> String {
    format!("Room {channel} already exists, so cannot be created.")
}

/// Reply to `/create` without an argument (the course text has no final period).
pub const CREATE_REQUIRES_ARGUMENT: &str =
    "/create command must be followed by the name of a channel to create";

/// Reply to an unknown command; `word` is the command word only.
pub fn invalid_control_message(word: &str) -> String {
    format!("{word} is not a valid control message. Valid messages are /create, /list, and /join.")
}

/// Reply to `/create` or `/join` with a channel name over the limit.
pub const CHANNEL_NAME_TOO_LONG: &str = "Channel names are at most 64 characters.";

/// Reply to `/create C` when the server has `--max-channels` channels already.
pub fn too_many_channels(channel: &str, n: usize) -> String {
    format!("Cannot create {channel}: the server already has {n} channels.")
}

/// Broadcast to a user's channels when it changes its name (an IRC `NICK`).
pub fn now_known_as(old: &str, new: &str) -> String {
    format!("{old} is now known as {new}")
}

/// How a CTCP ACTION (an IRC client's `/me waves`) is shown to frame clients.
pub fn action_line(name: &str, text: &str) -> String {
    format!("* {name} {text}")
}

// ---- Section 4: clients ---------------------------------------------------------------------

/// The client's prompt.
pub const CLIENT_PROMPT: &str = "[Me] ";

/// Written by the client before a received frame: wipes the prompt.
pub const CLIENT_WIPE: &str = "\r    \r";

/// Printed by the client for a typed command that does not fit in one frame.
pub const COMMAND_TOO_LONG: &str = "Command too long: at most 200 bytes.";

/// Printed by the client when the server closes the connection.
pub fn server_disconnected(host: &str, port: &str) -> String {
    format!("Server at {host}:{port} has disconnected")
}

/// Printed by the client when it cannot connect.
pub fn unable_to_connect(host: &str, port: &str) -> String {
    format!("Unable to connect to {host}:{port}")
}

/// Sent by the client right after NAME to learn whether the server took it (the server says
/// nothing when it does): as a name it is invalid (it holds a space), so a server still waiting
/// for a name answers the invalid-name text; as a command `/time` ignores its argument.
pub const LOGIN_PROBE: &str = "/time now";

/// Printed by the client on a terminal once the server has taken its name.
pub fn client_connected(host: &str, port: &str, name: &str) -> String {
    format!("Connected to {host}:{port} as {name}. Type /help for commands.")
}

/// The client's prompt on a terminal when the server refused its name.
pub const CLIENT_NAME_PROMPT: &str = "Name: ";

/// The split client's log line for each piece it sends (to stderr).
pub fn sending_piece(len: usize, piece: &str) -> String {
    format!("Sending {len} characters: {piece}")
}

/// The name the split client's course replay logs in with.
pub const SPLIT_REPLAY_NAME: &str = "SplitMessagesChatClient";

/// The channel the split client's course replay joins.
pub const SPLIT_REPLAY_CHANNEL: &str = "split_messages";

/// Printed on stderr (after `split_client: `) when the server refuses the replay because its
/// channel does not exist; the replay then exits non-zero.
pub fn split_replay_no_channel(host: &str, port: &str) -> String {
    format!(
        "the server at {host}:{port} has no channel {SPLIT_REPLAY_CHANNEL}, so the replay stopped: \
         create it first (for example `client NAME {host} {port}`, then `/create {SPLIT_REPLAY_CHANNEL}`)"
    )
}

/// The message the split client's course replay sends ten times.
pub const SPLIT_REPLAY_MESSAGE: &str = "I think that I shall never see a structure more wasteful than a tree. Most links remain idle and unused while others are overloaded and abused.";

// ---- Section 7: limits ----------------------------------------------------------------------

/// Sent to a connection beyond the maximum before it is closed.
pub const SERVER_FULL: &str = "The server is full. Try again later.";

/// Sent to every connection when the server stops (SIGINT, SIGTERM, SIGHUP).
pub const SHUTTING_DOWN: &str = "The server is shutting down.";

/// Sent before closing a connection that sent no valid name within `--name-timeout`.
pub const NAME_TIMEOUT: &str = "No valid name was received in time.";

/// Sent before closing a registered name's connection that did not identify in time.
pub fn identify_timeout(name: &str) -> String {
    format!("{name} did not identify in time.")
}

/// Sent before closing an unidentified connection whose registered name another connection
/// has just identified.
pub fn identified_elsewhere(name: &str) -> String {
    format!("Name {name} was identified by another connection.")
}

/// Printed on stderr by a server started on a data directory another server holds.
pub fn data_dir_in_use(dir: &str) -> String {
    format!("Another server is using the data directory {dir}.")
}

/// Reply to a command whose slow work (password hashing, search) cannot be queued now.
pub const BUSY: &str = "The server is busy. Try again in a moment.";

// ---- Section 8: the web port -----------------------------------------------------------------

/// The body of the web port's error responses (`404 Not Found`), for a person who opened a
/// wrong address: the status and its standard reason phrase.
pub fn http_error_body(status: u16, reason: &str) -> String {
    format!("{status} {reason}\n")
}

// ---- Section 5 and 6: ICS and channel extensions --------------------------------------------

/// Reply to `/time`; `stamp` is `dd.mm.yy,HH:MM` in the server's local time.
pub fn time_is(stamp: &str) -> String {
    format!("Time is: {stamp}")
}

/// The first line of the `/who` reply.
pub const WHO_USERS_HEADER: &str = "Users: ------------";

/// The line that starts the groups part of the `/who` reply.
pub const WHO_GROUPS_HEADER: &str = "Groups: -----------";

/// A user line of `/who`; `channel` is `-` for a user in no channel.
pub fn who_user(name: &str, channel: &str) -> String {
    format!("{name}: {channel}")
}

/// The channel name shown by `/who` for a user in no channel.
pub const WHO_NO_CHANNEL: &str = "-";

/// Ends the user lines of `/who` when there are more users than it lists.
pub fn who_more(n: usize) -> String {
    format!("… and {n} more")
}

/// A group line of `/who`: the channel and its members, sorted.
pub fn who_group(channel: &str, members: &[&str]) -> String {
    format!("{channel}: {}", members.join(", "))
}

/// Reply to `/members`.
pub fn members_of(channel: &str, members: &[&str]) -> String {
    format!("Members of {channel}: {}", members.join(", "))
}

/// Reply to `/help`: one line per command, its arguments and what it does.
pub const HELP_LINES: &[&str] = &[
    "Commands:",
    "/create CHANNEL - create a channel and join it",
    "/join CHANNEL - join a channel (leaving the current one)",
    "/list - list the channels",
    "/leave - leave the current channel",
    "/members - list the members of the current channel",
    "/who - list the users and the channels' members",
    "/time - show the server's time",
    "/sonnet N (or /poem N) - show Shakespeare's sonnet N, 1 to 154",
    "/msg NAME TEXT - a private message to NAME, kept for NAME if offline",
    "/search TERM - the messages you may see that hold every word of TERM",
    "/register PASSWORD - reserve your name (8 to 64 characters)",
    "/identify PASSWORD - prove a registered name is yours",
    "/help - show this help",
    "/quit - leave the chat",
    "Anything else is a message to the current channel.",
];

// ---- ICS: sonnets ---------------------------------------------------------------------------

/// Reply to `/sonnet` (or `/poem`) with no argument or one that is not a whole number.
pub const SONNET_REQUIRES_NUMBER: &str =
    "/sonnet command must be followed by a sonnet number from 1 to 154.";

/// Reply to `/sonnet N` with N outside 1 to 154; `typed` is N as the user typed it.
pub fn sonnet_not_found(typed: &str) -> String {
    format!("Sonnet {typed} not found. Sonnets are numbered 1 to 154.")
}

/// Reply to `/sonnet` when the server has no sonnets file.
pub const NO_SONNETS: &str = "No sonnets are available on this server.";

// ---- Client: automatic identification ------------------------------------------------------

/// Sent by the server to a connection that logs in with a registered name (`secs` is 60 unless
/// the operator chose otherwise); the client answers it with `/identify` when `CHAT_PASSWORD`
/// is set.
pub fn registered_name_prompt(name: &str, secs: u64) -> String {
    format!("{name} is a registered name. Send /identify PASSWORD within {secs} seconds.")
}

/// How every [`registered_name_prompt`] for `name` begins, whatever its time limit.
pub fn registered_name_prompt_start(name: &str) -> String {
    format!("{name} is a registered name. Send /identify PASSWORD within ")
}

// ---- Storage ------------------------------------------------------------------------------------

/// Sent when storage could not carry out a request (`storage::Reply::Failed`); the cause is in
/// the server's log.
pub const STORAGE_FAILED: &str = "The server could not do that just now. Try again later.";

// ---- Section 6: private and offline messages, history, registered names ----------------------

/// The prefix of a delivered private message: `[sender -> recipient] `.
pub fn private_prefix(sender: &str, recipient: &str) -> String {
    format!("[{sender} -> {recipient}] ")
}

/// Reply to `/msg NAME TEXT` when NAME is known but not connected.
pub fn user_offline(name: &str) -> String {
    format!("{name} is offline; the message will be delivered when {name} connects.")
}

/// Reply to `/msg NAME TEXT` when NAME's mailbox holds `--max-offline` messages already.
pub fn mailbox_full(name: &str) -> String {
    format!("{name} has too many offline messages; yours was not stored.")
}

/// Reply to `/msg NAME TEXT` when NAME never logged in.
pub fn no_such_user(name: &str) -> String {
    format!("No user named {name} exists.")
}

/// Reply to `/msg` without a name or a message.
pub const MSG_USAGE: &str = "/msg command must be followed by a user name and a message.";

/// The first line of an offline delivery.
pub fn offline_header(n: usize) -> String {
    if n == 1 {
        "You have 1 offline message:".to_string()
    } else {
        format!("You have {n} offline messages:")
    }
}

/// One delivered offline message.
pub fn offline_line(stamp: &str, sender: &str, recipient: &str, text: &str) -> String {
    format!("({stamp}) [{sender} -> {recipient}] {text}")
}

/// Reply to `/search` without a term.
pub const SEARCH_USAGE: &str = "/search command must be followed by a term to search for.";

/// Reply to `/search TERM` when nothing matches.
pub fn search_not_found(term: &str) -> String {
    format!("'{term}' not found")
}

/// The line before the results of `/search TERM` when there are more matches than shown.
pub fn search_header(shown: usize, total: usize, term: &str) -> String {
    format!("{shown} of {total} matches for '{term}':")
}

/// A channel message found by `/search`.
pub fn search_channel_line(stamp: &str, channel: &str, sender: &str, text: &str) -> String {
    format!("({stamp}) [{channel}] {sender}: {text}")
}

/// A private message found by `/search`.
pub fn search_private_line(stamp: &str, sender: &str, recipient: &str, text: &str) -> String {
    format!("({stamp}) {sender} -> {recipient}: {text}")
}

/// Reply to `/register` once the registration is committed.
pub fn now_registered(name: &str) -> String {
    format!("Name {name} is now registered.")
}

/// Reply to `/register` for a name that is registered already.
pub fn already_registered(name: &str) -> String {
    format!("Name {name} is already registered.")
}

/// Reply to `/register` or `/identify` with a password of the wrong length.
pub const PASSWORD_LENGTH: &str = "A password is 8 to 64 characters.";

/// Reply to a right `/identify`.
pub fn identified(name: &str) -> String {
    format!("You are now identified as {name}.")
}

/// Reply to a wrong `/identify`; the third one also closes the connection.
pub fn wrong_password(name: &str) -> String {
    format!("Wrong password for {name}.")
}

/// Reply to `/identify` while the name (or the client's address) is locked out after wrong
/// passwords; the password is not checked.
pub fn locked_out(name: &str, secs: u64) -> String {
    format!("Too many wrong passwords for {name}. Try again in {secs} seconds.")
}

/// Reply to anything but `/identify` from a registered name that has not identified.
pub const IDENTIFY_FIRST: &str = "Send /identify PASSWORD first.";

/// Reply to `/identify` from a name that is not registered (our text).
pub fn not_registered(name: &str) -> String {
    format!("Name {name} is not registered; /register PASSWORD reserves it.")
}

/// Reply to `/identify` from a connection that is identified already (our text).
pub fn already_identified(name: &str) -> String {
    format!("You are already identified as {name}.")
}
