//! IRC lines: cutting a byte stream into lines, parsing one, writing one.
//!
//! Sans-I/O and allocation-free on the relay path: [`LineSplitter`] borrows lines out of the
//! connection's input buffer, [`decode`] borrows unless the bytes are not valid UTF-8 (or hold a
//! NUL), [`parse`] borrows every part of the line, and [`write_message`] appends to a buffer the
//! caller owns. Message tags (`@…`) are skipped: the server negotiates no capability that would
//! let it send them back.
//!
//! The grammar is that of modern.ircdocs.horse ("Message Format"), with its "compatibility with
//! incorrect software" rules: a bare LF (and a bare CR) ends a line, empty lines are ignored,
//! several spaces count as one.

use std::borrow::Cow;

/// The longest line (without tags), CR LF included.
pub const MAX_LINE: usize = 512;

/// The longest line body (without tags), CR LF excluded.
pub const MAX_BODY: usize = MAX_LINE - 2;

/// The longest tag section accepted from a client: `@`, the tags, and the spaces after them.
pub const MAX_TAGS: usize = 8191;

/// The most parameters a message has; a 15th runs to the end of the line, spaces included.
pub const MAX_PARAMS: usize = 15;

/// Why a line is not a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum ParseError {
    /// Nothing but tags, a prefix or spaces.
    #[error("the line has no command")]
    NoCommand,
    /// The command is neither letters nor a three-digit numeric.
    #[error("the command is neither letters nor a three-digit numeric")]
    BadCommand,
}

/// Why a message cannot be written without breaking the line.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum WriteError {
    /// The prefix is empty or holds a space, CR, LF or NUL.
    #[error("the prefix is empty or holds a space, CR, LF or NUL")]
    BadPrefix,
    /// The command is neither letters nor a three-digit numeric.
    #[error("the command is neither letters nor a three-digit numeric")]
    BadCommand,
    /// A parameter holds CR, LF or NUL (`index` counts from 0, the trailing one last).
    #[error("parameter {index} holds CR, LF or NUL")]
    ForbiddenByte {
        /// Which parameter.
        index: usize,
    },
    /// A middle parameter is empty, holds a space or starts with `:`.
    #[error("middle parameter {index} is empty, holds a space or starts with ':'")]
    BadMiddle {
        /// Which parameter.
        index: usize,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParams,
    /// The line would be longer than [`MAX_LINE`] bytes, CR LF included.
    #[error("the line would be {len} bytes, over the {MAX_LINE}-byte limit")]
    TooLong {
        /// Its length, CR LF included.
        len: usize,
    },
}

/// One parsed line; every part borrows from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The source after `:`, when the line has one (clients should not send it).
    pub prefix: Option<&'a str>,
    /// The command as sent; compare it with [`Message::is`] (commands are case-insensitive).
    pub command: &'a str,
    params: [&'a str; MAX_PARAMS],
    len: usize,
}

impl<'a> Message<'a> {
    /// The parameters, the trailing one included (it is a parameter like the others).
    pub fn params(&self) -> &[&'a str] {
        &self.params[..self.len]
    }

    /// Parameter `i`, if there is one.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params().get(i).copied()
    }

    /// True when the command is `command`, ignoring ASCII case.
    pub fn is(&self, command: &str) -> bool {
        self.command.eq_ignore_ascii_case(command)
    }
}

/// Decodes a line's bytes: invalid UTF-8 becomes U+FFFD and NUL bytes (never valid in IRC) are
/// removed, so that no parameter can hold one. Borrows when there is nothing to fix.
pub fn decode(line: &[u8]) -> Cow<'_, str> {
    if line.contains(&0) {
        let kept: Vec<u8> = line.iter().copied().filter(|&b| b != 0).collect();
        Cow::Owned(String::from_utf8_lossy(&kept).into_owned())
    } else {
        crate::frame::lossy(line)
    }
}

/// True for a valid command: letters, or exactly three digits.
pub fn is_command(command: &str) -> bool {
    let b = command.as_bytes();
    (!b.is_empty() && b.iter().all(u8::is_ascii_alphabetic))
        || (b.len() == 3 && b.iter().all(u8::is_ascii_digit))
}

/// Parses one line (its CR LF already removed; a trailing CR or LF is tolerated).
pub fn parse(line: &str) -> Result<Message<'_>, ParseError> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    if rest.starts_with('@') {
        rest = match rest.find(' ') {
            Some(i) => &rest[i..],
            None => return Err(ParseError::NoCommand),
        };
    }
    rest = rest.trim_start_matches(' ');
    let mut prefix = None;
    if let Some(after) = rest.strip_prefix(':') {
        let (p, tail) = after.split_once(' ').unwrap_or((after, ""));
        prefix = (!p.is_empty()).then_some(p);
        rest = tail.trim_start_matches(' ');
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() {
        return Err(ParseError::NoCommand);
    }
    if !is_command(command) {
        return Err(ParseError::BadCommand);
    }
    let mut message = Message {
        prefix,
        command,
        params: [""; MAX_PARAMS],
        len: 0,
    };
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        // RFC 2812: after 14 middle parameters the rest of the line is the 15th, colon or not.
        if let Some(trailing) = rest.strip_prefix(':') {
            message.params[message.len] = trailing;
            message.len += 1;
            break;
        }
        if message.len == MAX_PARAMS - 1 {
            message.params[message.len] = rest;
            message.len += 1;
            break;
        }
        let (middle, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        message.params[message.len] = middle;
        message.len += 1;
        rest = tail;
    }
    Ok(message)
}

/// One step of [`LineSplitter::next`]. `consumed` bytes of the buffer are done with: the caller
/// drops them (after it has finished with `line`, which borrows the buffer).
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete, non-empty line within the limits, without its CR/LF.
    Line {
        /// The line's bytes: give them to [`decode`], then [`parse`].
        line: &'a [u8],
        /// Bytes done with, the line's terminator included.
        consumed: usize,
    },
    /// A line over the limits was dropped (the caller answers `417` once); if it was not
    /// complete yet, the rest of it is dropped as it arrives, without another `TooLong`.
    TooLong {
        /// Bytes done with.
        consumed: usize,
    },
    /// No complete line: keep the unconsumed bytes and read more.
    Incomplete {
        /// Bytes done with (empty lines, or the tail of an over-long line).
        consumed: usize,
    },
}

/// Cuts a byte stream into lines, so that a connection never buffers more than one line's limit.
///
/// Lines end at LF or CR (CR LF counts once; an empty line is skipped). A line is over the
/// limit when its tag section (`@…` and the spaces after it) is longer than [`MAX_TAGS`] or the
/// rest longer than [`MAX_BODY`].
#[derive(Debug, Default)]
pub struct LineSplitter {
    discarding: bool,
}

impl LineSplitter {
    /// A splitter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next piece of `buf` (the unconsumed input, oldest byte first).
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Piece<'a> {
        let mut pos = 0;
        while let Some(i) = memchr::memchr2(b'\n', b'\r', &buf[pos..]) {
            let line = &buf[pos..pos + i];
            let mut end = pos + i + 1;
            if buf[pos + i] == b'\r' && buf.get(end) == Some(&b'\n') {
                end += 1;
            }
            if std::mem::take(&mut self.discarding) || line.is_empty() {
                pos = end;
                continue;
            }
            if over_limit(line) {
                return Piece::TooLong { consumed: end };
            }
            return Piece::Line {
                line,
                consumed: end,
            };
        }
        if self.discarding {
            return Piece::Incomplete {
                consumed: buf.len(),
            };
        }
        if over_limit(&buf[pos..]) {
            self.discarding = true;
            return Piece::TooLong {
                consumed: buf.len(),
            };
        }
        Piece::Incomplete { consumed: pos }
    }
}

/// True when a line, or the start of one, is already over the limits.
fn over_limit(line: &[u8]) -> bool {
    if line.first() != Some(&b'@') {
        return line.len() > MAX_BODY;
    }
    match line.iter().position(|&b| b == b' ') {
        None => line.len() > MAX_TAGS,
        Some(space) => {
            let body = space + line[space..].iter().take_while(|&&b| b == b' ').count();
            body > MAX_TAGS || line.len() - body > MAX_BODY
        }
    }
}

fn forbidden(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// The length of the line [`write_message`] would write, CR LF included (for packing lists
/// such as `353` into lines that fit).
pub fn line_len(
    prefix: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> usize {
    line_len_of(
        prefix.map(str::len),
        command.len(),
        middle.iter().map(|m| m.len()),
        trailing.map(str::len),
    )
}

/// [`line_len`] from the parts' lengths, for a line whose parts are not strings yet (the
/// relay path checks a message's length without building its prefix).
pub fn line_len_of(
    prefix: Option<usize>,
    command: usize,
    middle: impl IntoIterator<Item = usize>,
    trailing: Option<usize>,
) -> usize {
    prefix.map_or(0, |p| p + 2)
        + command
        + middle.into_iter().map(|m| m + 1).sum::<usize>()
        + trailing.map_or(0, |t| t + 2)
        + 2
}

/// Checks a message before it is written: nothing is written unless the whole line is sound.
fn check(
    prefix: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> Result<usize, WriteError> {
    if let Some(p) = prefix {
        if p.is_empty() || p.contains(' ') || forbidden(p) {
            return Err(WriteError::BadPrefix);
        }
    }
    if !is_command(command) {
        return Err(WriteError::BadCommand);
    }
    if middle.len() + usize::from(trailing.is_some()) > MAX_PARAMS {
        return Err(WriteError::TooManyParams);
    }
    for (index, m) in middle.iter().enumerate() {
        if forbidden(m) {
            return Err(WriteError::ForbiddenByte { index });
        }
        if m.is_empty() || m.contains(' ') || m.starts_with(':') {
            return Err(WriteError::BadMiddle { index });
        }
    }
    if trailing.is_some_and(forbidden) {
        return Err(WriteError::ForbiddenByte {
            index: middle.len(),
        });
    }
    let len = line_len(prefix, command, middle, trailing);
    if len > MAX_LINE {
        return Err(WriteError::TooLong { len });
    }
    Ok(len)
}

/// Appends `:prefix COMMAND middle… :trailing\r\n` to `out` and returns its length; on an error
/// nothing is appended. The trailing parameter, when given, is always written with its `:`.
pub fn write_message(
    out: &mut Vec<u8>,
    prefix: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> Result<usize, WriteError> {
    let len = check(prefix, command, middle, trailing)?;
    out.reserve(len);
    if let Some(p) = prefix {
        out.push(b':');
        out.extend_from_slice(p.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(command.as_bytes());
    for m in middle {
        out.push(b' ');
        out.extend_from_slice(m.as_bytes());
    }
    if let Some(t) = trailing {
        out.extend_from_slice(b" :");
        out.extend_from_slice(t.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(len)
}

/// Appends a numeric reply, `:server NNN target middle… :trailing\r\n`: the numeric as three
/// digits, then the target (the client's nick, or `*` before it has one).
pub fn write_numeric(
    out: &mut Vec<u8>,
    server: &str,
    numeric: super::numerics::Numeric,
    target: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> Result<usize, WriteError> {
    let digits = numeric.digits();
    // The digits are ASCII by construction.
    let command = std::str::from_utf8(&digits).map_err(|_| WriteError::BadCommand)?;
    let mut params: [&str; MAX_PARAMS] = [""; MAX_PARAMS];
    if middle.len() >= MAX_PARAMS {
        return Err(WriteError::TooManyParams);
    }
    params[0] = target;
    params[1..=middle.len()].copy_from_slice(middle);
    write_message(
        out,
        Some(server),
        command,
        &params[..=middle.len()],
        trailing,
    )
}

// ---- CTCP ---------------------------------------------------------------------------------

/// The CTCP delimiter.
pub const CTCP: char = '\x01';

/// A CTCP query or reply inside a PRIVMSG/NOTICE text: `\x01COMMAND params\x01` (the final
/// `\x01` may be missing, as modern.ircdocs.horse allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctcp<'a> {
    /// The CTCP command (`ACTION`, `VERSION`, …) as sent.
    pub command: &'a str,
    /// Everything after the command and one space; empty when there is none.
    pub params: &'a str,
}

/// The CTCP message in `text`, if it is one.
pub fn ctcp(text: &str) -> Option<Ctcp<'_>> {
    let inner = text.strip_prefix(CTCP)?;
    let inner = inner.strip_suffix(CTCP).unwrap_or(inner);
    let (command, params) = inner.split_once(' ').unwrap_or((inner, ""));
    (!command.is_empty()).then_some(Ctcp { command, params })
}

/// The text of a CTCP ACTION (a client's `/me waves` → `waves`), if `text` is one.
pub fn action(text: &str) -> Option<&str> {
    ctcp(text)
        .filter(|c| c.command.eq_ignore_ascii_case("ACTION"))
        .map(|c| c.params)
}

/// What [`make_action`] adds to a text: `\x01ACTION ` and the closing `\x01`.
pub const ACTION_WRAP: usize = "\x01ACTION \x01".len();

/// `text` as a CTCP ACTION, `\x01ACTION text\x01`, for a PRIVMSG to IRC clients.
pub fn make_action(text: &str) -> String {
    format!("{CTCP}ACTION {text}{CTCP}")
}

// ---- Case mapping (CASEMAPPING=ascii) ------------------------------------------------------

/// The `CASEMAPPING` this module implements.
pub const CASEMAPPING: &str = "ascii";

/// `s` folded for comparison under `CASEMAPPING=ascii`: `A`–`Z` become `a`–`z`, nothing else
/// changes. Borrows when `s` has no ASCII capital.
pub fn casefold(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// True when `a` and `b` are the same under `CASEMAPPING=ascii`.
pub fn same_casefold(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

// ---- Channel names and nicks ---------------------------------------------------------------

/// The only channel type offered (`CHANTYPES=#`).
pub const CHANNEL_PREFIX: char = '#';

/// The longest IRC channel name, in characters, `#` included (`CHANNELLEN`).
pub const CHANNELLEN: usize = 65;

/// The longest nick, in characters (`NICKLEN`; the chat's names are 1 to 32 characters).
pub const NICKLEN: usize = 32;

/// True when the chat channel `name` can be carried over IRC as `#name`: not empty, at most
/// `CHANNELLEN - 1` characters, no space, comma or control character (BEL, NUL, CR, LF, C1…),
/// and no `:` at its start. Other channels are not offered to IRC clients.
pub fn channel_carriable(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() < CHANNELLEN
        && !name.starts_with(':')
        && !name.chars().any(|c| c == ' ' || c == ',' || c.is_control())
}

/// The IRC name of chat channel `name` (`tas` → `#tas`), if IRC can carry it.
pub fn irc_channel(name: &str) -> Option<String> {
    channel_carriable(name).then(|| format!("{CHANNEL_PREFIX}{name}"))
}

/// The length in bytes of [`irc_channel`]'s answer, without making it.
pub fn irc_channel_len(name: &str) -> Option<usize> {
    channel_carriable(name).then(|| CHANNEL_PREFIX.len_utf8() + name.len())
}

/// The chat channel an IRC channel parameter names (`#tas` → `tas`), if it is a `#` channel
/// whose name IRC can carry. Split a `JOIN #a,#b` list on commas first.
pub fn chat_channel(param: &str) -> Option<&str> {
    param
        .strip_prefix(CHANNEL_PREFIX)
        .filter(|name| channel_carriable(name))
}

/// Characters that break a nick anywhere: list separators, wildcards, prefix separators.
const NICK_FORBIDDEN: &[char] = &[' ', ',', '*', '?', '!', '@'];

/// Characters that break a nick at its start: `$` (server masks), `:` (trailing parameter),
/// channel types `#` and `&`, and membership prefixes `~ & @ % +` (clients strip them from
/// `NAMES` replies, whatever `PREFIX` says).
const NICK_FORBIDDEN_FIRST: &[char] = &['$', ':', '#', '&', '~', '@', '%', '+'];

/// True when the chat name `name` can be an IRC nick as it is: 1 to [`NICKLEN`] characters,
/// none of `space , * ? ! @` or a control character, and no `$ : # & ~ @ % +` at its start.
pub fn nick_carriable(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    !NICK_FORBIDDEN_FIRST.contains(&first)
        && name.chars().count() <= NICKLEN
        && !name
            .chars()
            .any(|c| NICK_FORBIDDEN.contains(&c) || c.is_control())
}

/// A nick for a chat name that IRC cannot carry: each character that breaks a nick becomes `_`
/// (so does a character that breaks its start), cut to [`NICKLEN`] characters. Different names
/// can give the same alias, and an alias can be a real name: whoever hands it out must check.
pub fn nick_alias(name: &str) -> String {
    let alias: String = name
        .chars()
        .enumerate()
        .take(NICKLEN)
        .map(|(i, c)| {
            let bad = NICK_FORBIDDEN.contains(&c)
                || c.is_control()
                || (i == 0 && NICK_FORBIDDEN_FIRST.contains(&c));
            if bad {
                '_'
            } else {
                c
            }
        })
        .collect();
    if alias.is_empty() {
        "_".to_owned()
    } else {
        alias
    }
}

/// True when `user` (the first parameter of `USER`) fits the `user` of `nick!user@host`: not
/// empty, no space, `!`, `@`, `:` at its start, or control character.
pub fn username_carriable(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with(':')
        && !user
            .chars()
            .any(|c| c == ' ' || c == '!' || c == '@' || c.is_control())
}
