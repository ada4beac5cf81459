//! The chat as an IRC client sees it (PROTOCOL.md section 9), translated to and from the frame
//! protocol's view (see the parent module): works against the chat server's IRC port and
//! against any other IRC server (InspIRCd, for the benchmark's comparison).
//!
//! Out: the first frame (the name) is `NICK`/`USER`, and everything after it waits for `001`
//! (a server may refuse a `JOIN` that comes before registration is complete); `/join C` is
//! `JOIN #C`; `/create C` is nothing (JOIN creates); any other command `/word …` is
//! `PING :/word`; a chat message is `PRIVMSG #C :text` to the channel last joined.
//!
//! In: `PING` is answered with `PONG` at once; `PRIVMSG #C :text` from `nick` is the frame
//! `[nick] text`; `JOIN` / `PART` / `QUIT` of another nick are `nick has joined` /
//! `nick has left`; the `PONG` of `/word` is the frame server's reply to an unknown command,
//! `{/word} is not a valid control message…`; `ERROR` and error numerics (but `422`, no MOTD)
//! are frames of their text, so that the checks report them; every other line is ignored.

use super::{emit_text, unpadded, Incoming, WireError};
use crate::frame::Frame;
use crate::utils_errors as text;

/// The longest line accepted from a server: 512 bytes and IRCv3 tags (8,191).
pub const MAX_LINE: usize = 8191 + 512;
/// At most this many parameters in a line (RFC 1459 allows 15).
const MAX_PARAMS: usize = 15;

/// One parsed line, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The source, without its `:`.
    pub prefix: Option<&'a [u8]>,
    /// The command or numeric.
    pub command: &'a [u8],
    params: [&'a [u8]; MAX_PARAMS],
    count: usize,
}

impl<'a> Line<'a> {
    /// The parameters, the trailing one last.
    pub fn params(&self) -> &[&'a [u8]] {
        &self.params[..self.count]
    }

    /// The nick of the source (`nick!user@host`).
    pub fn nick(&self) -> Option<&'a [u8]> {
        let prefix = self.prefix?;
        Some(prefix.split(|&b| b == b'!').next().unwrap_or(prefix))
    }

    fn is(&self, command: &[u8]) -> bool {
        self.command.eq_ignore_ascii_case(command)
    }

    /// The three-digit numeric, if the command is one.
    fn numeric(&self) -> Option<u16> {
        match self.command {
            [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
            }
            _ => None,
        }
    }
}

/// Parses one line (no CR or LF): `[@tags] [:prefix] COMMAND params… [:trailing]`.
pub fn parse(line: &[u8]) -> Option<Line<'_>> {
    let mut rest = line;
    if rest.first() == Some(&b'@') {
        rest = after_word(rest);
    }
    let mut prefix = None;
    if rest.first() == Some(&b':') {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        prefix = Some(&rest[1..end]);
        rest = after_word(rest);
    }
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let command = &rest[..end];
    if command.is_empty() {
        return None;
    }
    rest = after_word(rest);
    let mut params: [&[u8]; MAX_PARAMS] = [&[]; MAX_PARAMS];
    let mut count = 0;
    while !rest.is_empty() && count < MAX_PARAMS {
        if rest[0] == b':' || count == MAX_PARAMS - 1 {
            params[count] = rest.strip_prefix(b":").unwrap_or(rest);
            count += 1;
            break;
        }
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        params[count] = &rest[..end];
        count += 1;
        rest = after_word(rest);
    }
    Some(Line {
        prefix,
        command,
        params,
        count,
    })
}

/// `:nick!user@host PRIVMSG #channel :text` written the usual way (no tags, single spaces),
/// the line a server relays most: (nick, channel, text). Anything else is for [`parse`].
#[inline]
fn channel_privmsg(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let rest = line.strip_prefix(b":")?;
    let space = memchr::memchr(b' ', rest)?;
    let (prefix, rest) = (&rest[..space], &rest[space + 1..]);
    let rest = rest
        .strip_prefix(b"PRIVMSG ")
        .filter(|r| r.first() == Some(&b'#'))?;
    let space = memchr::memchr(b' ', rest)?;
    let text = rest[space + 1..].strip_prefix(b":")?;
    let nick = &prefix[..memchr::memchr(b'!', prefix).unwrap_or(prefix.len())];
    (!nick.is_empty()).then_some((nick, &rest[..space], text))
}

/// What follows the first word and the spaces after it.
fn after_word(s: &[u8]) -> &[u8] {
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    let rest = &s[end..];
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    &rest[spaces..]
}

/// An IRC client's state.
#[derive(Debug, Default)]
pub struct IrcWire {
    nick: Vec<u8>,
    /// `#C` of the channel last joined.
    channel: Vec<u8>,
    /// `001` has arrived.
    registered: bool,
    /// Translated output waiting for `001`.
    held: Vec<u8>,
    /// The end of a line not yet complete.
    partial: Vec<u8>,
}

impl IrcWire {
    /// A client that has sent nothing yet.
    pub fn new() -> IrcWire {
        IrcWire::default()
    }

    /// True once the server has welcomed the client (`001`).
    pub fn established(&self) -> bool {
        self.registered
    }

    /// Translates one frame (see the module's documentation).
    pub fn send(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let text = unpadded(frame);
        if self.nick.is_empty() {
            self.nick = text.to_vec();
            for part in [b"NICK ", text, b"\r\nUSER ", text, b" 0 * :", text, b"\r\n"] {
                out.extend_from_slice(part);
            }
            return;
        }
        let out = if self.registered { out } else { &mut self.held };
        if let Some(command) = text.strip_prefix(b"/") {
            let end = command
                .iter()
                .position(|&b| b == b' ')
                .unwrap_or(command.len());
            let (word, arg) = (&command[..end], command[end..].trim_ascii());
            match word {
                b"create" => {}
                b"join" => {
                    self.channel.clear();
                    self.channel.push(b'#');
                    self.channel.extend_from_slice(arg);
                    for part in [b"JOIN ", &self.channel[..], b"\r\n"] {
                        out.extend_from_slice(part);
                    }
                }
                _ => {
                    for part in [b"PING :/", word, b"\r\n"] {
                        out.extend_from_slice(part);
                    }
                }
            }
            return;
        }
        for part in [b"PRIVMSG ", &self.channel[..], b" :", text, b"\r\n"] {
            out.extend_from_slice(part);
        }
    }

    /// Handles bytes from the server.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        mut on_frame: impl FnMut(&Frame),
    ) -> Result<(), WireError> {
        self.receive_incoming(bytes, out, |incoming| incoming.frames(&mut on_frame))
    }

    /// [`IrcWire::receive`], a channel `PRIVMSG` handed over as its parts.
    pub fn receive_incoming(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        mut on_frame: impl FnMut(Incoming<'_>),
    ) -> Result<(), WireError> {
        let mut data = bytes;
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', data) else {
                self.partial.extend_from_slice(data);
                return self.check_partial();
            };
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&data[..end]);
            data = &data[end + 1..];
            self.on_line(&line, out, &mut on_frame);
            line.clear();
            self.partial = line;
        }
        while let Some(end) = memchr::memchr(b'\n', data) {
            let line = &data[..end];
            data = &data[end + 1..];
            self.on_line(line, out, &mut on_frame);
        }
        self.partial.extend_from_slice(data);
        self.check_partial()
    }

    fn check_partial(&self) -> Result<(), WireError> {
        if self.partial.len() > MAX_LINE {
            return Err(WireError::LineTooLong(MAX_LINE));
        }
        Ok(())
    }

    fn on_line(
        &mut self,
        line: &[u8],
        out: &mut Vec<u8>,
        on_incoming: &mut impl FnMut(Incoming<'_>),
    ) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some((name, _, text)) = channel_privmsg(line) {
            on_incoming(Incoming::Said { name, text });
            return;
        }
        let mut on_frame = |f: &Frame| on_incoming(Incoming::Frame(f));
        let on_frame = &mut on_frame;
        let Some(msg) = parse(line) else {
            return;
        };
        let params = msg.params();
        let last = params.last().copied().unwrap_or_default();
        if msg.is(b"PRIVMSG") {
            if let (Some(nick), Some(&target)) = (msg.nick(), params.first()) {
                if target.first() == Some(&b'#') && params.len() >= 2 {
                    emit_text(&[b"[", nick, b"] ", last], on_frame);
                }
            }
        } else if msg.is(b"PING") {
            for part in [b"PONG :", last, b"\r\n"] {
                out.extend_from_slice(part);
            }
        } else if msg.is(b"PONG") {
            if let Some(word) = std::str::from_utf8(last)
                .ok()
                .filter(|w| w.starts_with('/'))
            {
                emit_text(&[text::invalid_control_message(word).as_bytes()], on_frame);
            }
        } else if msg.is(b"JOIN") || msg.is(b"PART") || msg.is(b"QUIT") {
            let Some(nick) = msg.nick() else {
                return;
            };
            if nick.eq_ignore_ascii_case(&self.nick) {
                return;
            }
            let what: &[u8] = if msg.is(b"JOIN") {
                b" has joined"
            } else {
                b" has left"
            };
            emit_text(&[nick, what], on_frame);
        } else if msg.is(b"ERROR") {
            emit_text(&[b"ERROR :", last], on_frame);
        } else if let Some(numeric) = msg.numeric() {
            match numeric {
                1 => {
                    self.registered = true;
                    out.append(&mut self.held);
                }
                // No MOTD is no error.
                422 => {}
                400..=599 => {
                    let mut parts: Vec<&[u8]> = vec![msg.command];
                    for p in params.iter().skip(1) {
                        parts.push(b" ");
                        parts.push(p);
                    }
                    emit_text(&parts, on_frame);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, pad};

    fn send_all(wire: &mut IrcWire, frames: &[&str]) -> String {
        let mut out = Vec::new();
        for f in frames {
            wire.send(&pad(f).unwrap(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn receive(wire: &mut IrcWire, bytes: &[u8]) -> (Vec<String>, String) {
        let mut out = Vec::new();
        let mut frames = Vec::new();
        wire.receive(bytes, &mut out, |f| frames.push(decode(f).into_owned()))
            .unwrap();
        (frames, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_usual_channel_privmsg_is_read_as_the_general_parse_reads_it() {
        for line in [
            &b":kay!kayu@host PRIVMSG #tas :hello there"[..],
            b":kay PRIVMSG #tas :",
            b":kay!k@h PRIVMSG #tas ::starts with a colon",
        ] {
            let (nick, channel, text) = channel_privmsg(line).unwrap();
            let m = parse(line).unwrap();
            assert_eq!(Some(nick), m.nick());
            assert_eq!(m.params(), [channel, text]);
        }
        // Anything unusual is left to the general parse.
        for line in [
            &b"@t=1 :kay!k@h PRIVMSG #tas :hi"[..],
            b":kay!k@h PRIVMSG  #tas :hi",
            b":kay!k@h privmsg #tas :hi",
            b":kay!k@h PRIVMSG #tas hi",
            b":kay!k@h PRIVMSG bob :hi",
            b":!k@h PRIVMSG #tas :hi",
            b"PRIVMSG #tas :hi",
        ] {
            assert_eq!(
                channel_privmsg(line),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        // Both paths give the same frames.
        let mut wire = IrcWire::new();
        let (frames, _) = receive(
            &mut wire,
            b":kay!k@h PRIVMSG #tas :fast\r\n@t=1 :kay!k@h PRIVMSG #tas :slow\r\n",
        );
        assert_eq!(frames, ["[kay] fast", "[kay] slow"]);
    }

    #[test]
    fn lines_parse_with_tags_prefix_middles_and_trailing() {
        let m = parse(b"@time=x :kay!kayu@host PRIVMSG #tas :hello there").unwrap();
        assert_eq!(m.prefix, Some(&b"kay!kayu@host"[..]));
        assert_eq!(m.nick(), Some(&b"kay"[..]));
        assert_eq!(m.command, b"PRIVMSG");
        assert_eq!(m.params(), [&b"#tas"[..], b"hello there"]);
        let m = parse(b"PING srv").unwrap();
        assert_eq!((m.prefix, m.params()), (None, &[&b"srv"[..]][..]));
        let m = parse(b":srv 001 kay :Welcome").unwrap();
        assert_eq!(m.numeric(), Some(1));
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b":only-a-prefix"), None);
        let m = parse(b":a B c  d :e f").unwrap();
        assert_eq!(m.params(), [&b"c"[..], b"d", b"e f"]);
    }

    #[test]
    fn the_name_registers_and_the_rest_waits_for_the_welcome() {
        let mut wire = IrcWire::new();
        let sent = send_all(
            &mut wire,
            &["kay", "/create tas", "/join tas", "/stress-sync", "hello"],
        );
        assert_eq!(sent, "NICK kay\r\nUSER kay 0 * :kay\r\n");
        assert!(!wire.established());
        let (frames, out) = receive(
            &mut wire,
            b":srv NOTICE * :*** hello\r\n:srv 001 kay :Welcome to IRC\r\n:srv 422 kay :MOTD File is missing\r\n",
        );
        assert!(frames.is_empty(), "{frames:?}");
        assert!(wire.established());
        assert_eq!(
            out,
            "JOIN #tas\r\nPING :/stress-sync\r\nPRIVMSG #tas :hello\r\n"
        );
        assert_eq!(send_all(&mut wire, &["again"]), "PRIVMSG #tas :again\r\n");
    }

    #[test]
    fn relayed_lines_become_the_frames_a_frame_client_gets() {
        let mut wire = IrcWire::new();
        send_all(&mut wire, &["kay", "/join tas"]);
        let bytes = concat!(
            ":srv 001 kay :Welcome\r\n",
            ":kay!kay@h JOIN #tas\r\n",
            ":srv 353 kay = #tas :kay bob\r\n",
            ":bob!b@h JOIN :#tas\r\n",
            ":bob!b@h PRIVMSG #tas :hi there\r\n",
            ":bob!b@h PRIVMSG kay :private\r\n",
            ":srv PONG srv :/stress-sync\r\n",
            "PING :tok123\r\n",
            ":bob!b@h PART #tas :bye\r\n",
            ":eve!e@h QUIT :Quit: gone\r\n",
            ":srv 404 kay #tas :Cannot send to channel\r\n",
            "ERROR :Closing link\r\n",
        );
        // Cut anywhere, even inside CRLF.
        let mut frames = Vec::new();
        let mut out = String::new();
        for piece in bytes.as_bytes().chunks(3) {
            let (f, o) = receive(&mut wire, piece);
            frames.extend(f);
            out.push_str(&o);
        }
        assert_eq!(
            frames,
            [
                "bob has joined",
                "[bob] hi there",
                "/stress-sync is not a valid control message. Valid messages are /create, /list, and /join.",
                "bob has left",
                "eve has left",
                "404 #tas Cannot send to channel",
                "ERROR :Closing link",
            ]
        );
        assert_eq!(out, "JOIN #tas\r\nPONG :tok123\r\n");
    }

    #[test]
    fn a_relayed_stress_message_fills_its_frame_exactly() {
        let mut wire = IrcWire::new();
        send_all(&mut wire, &["kay"]);
        let text = "t".repeat(185);
        let line = format!(":s0001-000002!u@h PRIVMSG #stress-0 :{text}\r\n");
        let mut got = Vec::new();
        let mut out = Vec::new();
        wire.receive(line.as_bytes(), &mut out, |f| got.push(*f))
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0][..15], b"[s0001-000002] ");
        assert_eq!(&got[0][15..], text.as_bytes());
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let mut wire = IrcWire::new();
        let mut out = Vec::new();
        let chunk = vec![b'x'; 4096];
        let mut result = Ok(());
        for _ in 0..3 {
            result = wire.receive(&chunk, &mut out, |_| {});
        }
        assert!(matches!(result, Err(WireError::LineTooLong(_))));
    }
}
