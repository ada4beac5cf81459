//! Typed input to frames, as a stream: [`LinePlanner`] takes stdin's bytes in chunks of any size
//! and hands out each frame as soon as it is certain, so a line of any length is sent with
//! bounded memory (PROTOCOL.md sections 1 and 4).
//!
//! The rules, for one line (its ending removed, control characters removed as the server would):
//! - an empty line (or one of nothing but whitespace) is not sent;
//! - a chat line that fits beside the `[NAME] ` prefix the server adds is sent as typed (or
//!   without its trailing whitespace, if that makes it fit); a longer one is cut at word
//!   boundaries where there are any (the whitespace at a cut begins the next piece), into chat
//!   messages that each fit beside the prefix, none starting with `/`;
//! - `/msg NAME TEXT` likewise, leaving room for the `[SENDER -> NAME] ` prefix the recipient
//!   sees: several `/msg NAME piece` commands;
//! - any other command that fits in a frame is sent as typed; a longer one is not sent: the
//!   planner reports [`Step::TooLong`] as soon as its 201st byte of text arrives, and discards
//!   the rest of the line.
//!
//! The server removes control characters before it counts or relays anything, so the planner
//! does too: its lengths are the server's, and no piece can turn into a command once the server
//! has cleaned it (a piece starting with a tab and a `/`, say).

use crate::frame::{self, FRAME_LEN};

/// A cut looks at most one character past its window; a character is at most 4 bytes.
const LOOKAHEAD: usize = 4;
/// How much of a line's start the planner keeps: enough to send a command as typed.
const HEAD_CAP: usize = FRAME_LEN + 1;
/// `/msg ` and the space after NAME.
const MSG_COMMAND: &str = "/msg ";
/// The fewest bytes a piece may have room for: one character of any size.
const MIN_ROOM: usize = 4;

/// What the planner asks for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this text as one frame (at most [`FRAME_LEN`] bytes).
    Send(String),
    /// The command being typed is too long to send: say so (once per line).
    TooLong,
    /// A line ended.
    LineEnd(LineEnd),
}

/// How a typed line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// Its frames were sent.
    Sent,
    /// Nothing to send (an empty line).
    Skipped,
    /// A command too long to send ([`Step::TooLong`] came first).
    TooLong,
    /// `/quit` was sent: the planner takes no more input.
    Quit,
}

/// Where to cut `text` so that the first piece holds at most `max` bytes: at the last word
/// boundary in reach (a whitespace character right after a non-whitespace one; the whitespace
/// begins the next piece), else where [`frame::cut_point`] cuts a word. Looks at no more than
/// one character past `max`. Returns `text.len()` when the whole text fits.
pub fn word_cut(text: &str, max: usize, no_slash: bool) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut best = None;
    let mut prev_blank = true;
    for (i, c) in text.char_indices() {
        if i > max {
            break;
        }
        let blank = c.is_whitespace();
        if blank && !prev_blank {
            best = Some(i);
        }
        prev_blank = blank;
    }
    best.unwrap_or_else(|| frame::cut_point(text, max, no_slash))
}

/// Cuts `text` into pieces of at most `room` bytes (see [`word_cut`]), each handed to `emit`
/// with `prefix` before it; pieces of nothing but whitespace are dropped (the server would
/// ignore them). With `chat`, no piece starts with `/`: where no cut can avoid it (a run of
/// slashes), the piece gets a leading space and one byte less.
fn emit_pieces(text: &str, room: usize, prefix: &str, chat: bool, out: &mut Vec<Step>) {
    let mut rest = text;
    while !rest.is_empty() {
        let guard = chat && rest.starts_with('/');
        let cut = word_cut(rest, room - usize::from(guard), chat);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        if piece.trim().is_empty() {
            continue;
        }
        let guard = if guard { " " } else { "" };
        out.push(Step::Send(format!("{prefix}{guard}{piece}")));
    }
}

/// The first piece [`emit_pieces`] would cut from `buf`, if `buf` holds enough to be sure of it;
/// returns how many bytes it took.
fn emit_ready(buf: &str, room: usize, prefix: &str, chat: bool, out: &mut Vec<Step>) -> usize {
    let mut used = 0;
    while buf.len() - used > room + LOOKAHEAD {
        let rest = &buf[used..];
        let guard = chat && rest.starts_with('/');
        let cut = word_cut(rest, room - usize::from(guard), chat);
        let piece = &rest[..cut];
        used += cut;
        if !piece.trim().is_empty() {
            let guard = if guard { " " } else { "" };
            out.push(Step::Send(format!("{prefix}{guard}{piece}")));
        }
    }
    used
}

/// The room for a chat message's text beside the `[NAME] ` prefix.
pub fn chat_room(sender: &str) -> usize {
    FRAME_LEN.saturating_sub(sender.len() + 3).max(MIN_ROOM)
}

/// The room for a private message's text beside the `[SENDER -> NAME] ` prefix; `None` when
/// the names leave no room for a character.
pub fn msg_room(sender: &str, recipient: &str) -> Option<usize> {
    FRAME_LEN
        .checked_sub(sender.len() + recipient.len() + 7)
        .filter(|&room| room >= MIN_ROOM)
}

/// What kind of line is being typed, with what it has buffered.
#[derive(Debug)]
enum Kind {
    /// Nothing yet, or a `/` command whose first five bytes have not come.
    Undecided,
    /// A chat message: `buf[start..]` is not sent yet; `cutting` once a piece was cut.
    Chat {
        buf: String,
        start: usize,
        cutting: bool,
    },
    /// A command other than a splittable `/msg`: sent as typed at the end, or too long.
    Other,
    /// After `/msg `: the recipient's name so far.
    MsgName { name: String },
    /// A `/msg`'s text: `buf[start..]` is not sent yet; `started` once its first non-whitespace
    /// character came.
    MsgBody {
        prefix: String,
        room: usize,
        buf: String,
        start: usize,
        started: bool,
        cutting: bool,
    },
    /// Too long: reported, the rest of the line is discarded.
    Discard,
}

/// The line being typed.
#[derive(Debug)]
struct Line {
    /// Bytes of (cleaned) text so far.
    len: usize,
    /// The line's length once trailing whitespace is removed.
    content_end: usize,
    /// The line's first [`HEAD_CAP`] bytes (all of it while `len <= FRAME_LEN`).
    head: String,
    kind: Kind,
    /// A frame of this line was sent.
    sent: bool,
}

impl Line {
    fn new() -> Line {
        Line {
            len: 0,
            content_end: 0,
            head: String::new(),
            kind: Kind::Undecided,
            sent: false,
        }
    }

    /// The whole line as typed, or without its trailing whitespace, if either fits in `max`.
    fn fitting(&self, max: usize) -> Option<&str> {
        if self.len <= max.min(FRAME_LEN) {
            Some(&self.head)
        } else if self.content_end <= max.min(FRAME_LEN) {
            self.head.get(..self.content_end)
        } else {
            None
        }
    }

    /// The command word, for `/quit`.
    fn is_quit(&self) -> bool {
        self.head.split(' ').next() == Some("/quit")
    }
}

/// Turns typed bytes into frames as they come; see the module documentation for the rules.
#[derive(Debug)]
pub struct LinePlanner {
    sender: String,
    /// An incomplete UTF-8 sequence at the end of the last chunk.
    raw: Vec<u8>,
    line: Line,
    /// `/quit` was sent: everything after it is ignored.
    quit: bool,
}

impl LinePlanner {
    /// A planner for a client logged in as `sender` (the name the server puts in prefixes).
    pub fn new(sender: &str) -> LinePlanner {
        LinePlanner {
            sender: sender.to_owned(),
            raw: Vec::new(),
            line: Line::new(),
            quit: false,
        }
    }

    /// Takes typed bytes (any part of any number of lines); appends the steps they make certain.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Step>) {
        while !bytes.is_empty() && !self.quit {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.decode(&bytes[..i], true, out);
                    self.end_line(out);
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.decode(bytes, false, out);
                    bytes = &[];
                }
            }
        }
    }

    /// End of input: a last line without a newline is planned like any other.
    pub fn finish(&mut self, out: &mut Vec<Step>) {
        if self.quit {
            return;
        }
        self.decode(&[], true, out);
        if self.line.len > 0 || !matches!(self.line.kind, Kind::Undecided) {
            self.end_line(out);
        }
    }

    /// Plans one whole line (without its newline): the steps a line typed in one go makes.
    pub fn plan(&mut self, line: &str) -> Vec<Step> {
        let mut out = Vec::new();
        self.feed(line.as_bytes(), &mut out);
        self.feed(b"\n", &mut out);
        out
    }

    /// Decodes bytes lossily (as `String::from_utf8_lossy` would decode the whole line), keeping
    /// an incomplete sequence at the end for the next chunk unless the line ends here.
    fn decode(&mut self, bytes: &[u8], line_ends: bool, out: &mut Vec<Step>) {
        let mut joined;
        let mut rest: &[u8] = if self.raw.is_empty() {
            bytes
        } else {
            joined = std::mem::take(&mut self.raw);
            joined.extend_from_slice(bytes);
            &joined[..]
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.push(text, out);
                    return;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    // The first `valid_up_to` bytes are valid UTF-8: this cannot fail.
                    if let Ok(text) = std::str::from_utf8(valid) {
                        self.push(text, out);
                    }
                    match error.error_len() {
                        Some(bad) => {
                            self.push("\u{fffd}", out);
                            rest = &after[bad..];
                        }
                        None if line_ends => {
                            self.push("\u{fffd}", out);
                            return;
                        }
                        None => {
                            self.raw = after.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Takes decoded text of the current line.
    fn push(&mut self, text: &str, out: &mut Vec<Step>) {
        let cleaned = frame::clean(text);
        let mut text: &str = &cleaned;
        if text.is_empty() {
            return;
        }
        let offset = self.line.len;
        self.note(text);
        let mut at = offset;
        let before = out.len();
        while !text.is_empty() {
            let used = self.take(at, text, out);
            at += used;
            text = &text[used..];
        }
        if out[before..].iter().any(|s| matches!(s, Step::Send(_))) {
            self.line.sent = true;
        }
    }

    /// Updates the line's length, content end and head for `text`.
    fn note(&mut self, text: &str) {
        let line = &mut self.line;
        let trimmed = text.trim_end();
        if !trimmed.is_empty() {
            line.content_end = line.len + trimmed.len();
        }
        if line.head.len() < HEAD_CAP {
            let mut end = (HEAD_CAP - line.head.len()).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            line.head.push_str(&text[..end]);
        }
        line.len += text.len();
    }

    /// Hands `text` (starting at byte `at` of the line) to the line's kind; returns how much of
    /// it was used (the rest goes to the kind it switched to).
    fn take(&mut self, at: usize, text: &str, out: &mut Vec<Step>) -> usize {
        let room = chat_room(&self.sender);
        let line = &mut self.line;
        match &mut line.kind {
            Kind::Undecided => {
                if !line.head.starts_with('/') {
                    line.kind = Kind::Chat {
                        buf: String::new(),
                        start: 0,
                        cutting: false,
                    };
                    0
                } else if line.head.starts_with(MSG_COMMAND) {
                    line.kind = Kind::MsgName {
                        name: String::new(),
                    };
                    MSG_COMMAND.len().saturating_sub(at).min(text.len())
                } else if line.len >= MSG_COMMAND.len() {
                    line.kind = Kind::Other;
                    0
                } else {
                    text.len()
                }
            }
            Kind::Chat {
                buf,
                start,
                cutting,
            } => {
                buf.push_str(text);
                let used = emit_ready(&buf[*start..], room, "", true, out);
                if used > 0 {
                    *cutting = true;
                    *start += used;
                }
                if *start > FRAME_LEN {
                    buf.drain(..*start);
                    *start = 0;
                }
                text.len()
            }
            Kind::MsgName { name } => {
                let mut used = 0;
                let mut rest = text;
                if name.is_empty() {
                    let trimmed = rest.trim_start();
                    used += rest.len() - trimmed.len();
                    rest = trimmed;
                }
                match rest.find(' ') {
                    Some(i) => {
                        name.push_str(&rest[..i]);
                        used += i + 1;
                        line.kind = match msg_room(&self.sender, name) {
                            Some(room) => Kind::MsgBody {
                                prefix: format!("{MSG_COMMAND}{name} "),
                                room,
                                buf: String::new(),
                                start: 0,
                                started: false,
                                cutting: false,
                            },
                            None => Kind::Other,
                        };
                    }
                    None => {
                        name.push_str(rest);
                        used += rest.len();
                        if name.len() > FRAME_LEN {
                            line.kind = Kind::Other;
                        }
                    }
                }
                used
            }
            Kind::MsgBody {
                prefix,
                room,
                buf,
                start,
                started,
                cutting,
            } => {
                let mut rest = text;
                if !*started {
                    rest = rest.trim_start();
                    if rest.is_empty() {
                        return text.len();
                    }
                    *started = true;
                }
                buf.push_str(rest);
                let used = emit_ready(&buf[*start..], *room, prefix, false, out);
                if used > 0 {
                    *cutting = true;
                    *start += used;
                }
                if *start > FRAME_LEN {
                    buf.drain(..*start);
                    *start = 0;
                }
                text.len()
            }
            Kind::Other => {
                if line.content_end > FRAME_LEN {
                    out.push(Step::TooLong);
                    line.kind = Kind::Discard;
                }
                text.len()
            }
            Kind::Discard => text.len(),
        }
    }

    /// The line ended: send what is left of it.
    fn end_line(&mut self, out: &mut Vec<Step>) {
        let line = std::mem::replace(&mut self.line, Line::new());
        let before = out.len();
        let end = match &line.kind {
            Kind::Discard => LineEnd::TooLong,
            Kind::Chat {
                buf,
                start,
                cutting,
            } => {
                let rest = &buf[*start..];
                if !*cutting {
                    Self::send_whole(&line, rest, chat_room(&self.sender), "", true, out)
                } else {
                    emit_pieces(rest.trim_end(), chat_room(&self.sender), "", true, out);
                    let sent = line.sent || out.len() > before;
                    if sent {
                        LineEnd::Sent
                    } else {
                        LineEnd::Skipped
                    }
                }
            }
            Kind::MsgBody {
                prefix,
                room,
                buf,
                start,
                cutting,
                ..
            } => {
                let rest = buf[*start..].trim_end();
                if *cutting {
                    emit_pieces(rest, *room, prefix, false, out);
                    LineEnd::Sent
                } else if rest.is_empty() {
                    Self::send_command(&line, out)
                } else if let Some(whole) = line.fitting(FRAME_LEN).filter(|_| rest.len() <= *room)
                {
                    out.push(Step::Send(whole.to_owned()));
                    LineEnd::Sent
                } else {
                    emit_pieces(rest, *room, prefix, false, out);
                    LineEnd::Sent
                }
            }
            Kind::Undecided | Kind::Other | Kind::MsgName { .. } => Self::send_command(&line, out),
        };
        if end == LineEnd::Quit {
            self.quit = true;
        }
        out.push(Step::LineEnd(end));
    }

    /// A chat line of which nothing was sent yet: as typed if it fits, else cut.
    fn send_whole(
        line: &Line,
        text: &str,
        room: usize,
        prefix: &str,
        chat: bool,
        out: &mut Vec<Step>,
    ) -> LineEnd {
        let trimmed = text.trim_end();
        if trimmed.is_empty() {
            return LineEnd::Skipped;
        }
        match line.fitting(room) {
            Some(whole) => out.push(Step::Send(whole.to_owned())),
            None => emit_pieces(trimmed, room, prefix, chat, out),
        }
        LineEnd::Sent
    }

    /// A command that is sent whole or not at all.
    fn send_command(line: &Line, out: &mut Vec<Step>) -> LineEnd {
        if line.content_end == 0 {
            return LineEnd::Skipped;
        }
        match line.fitting(FRAME_LEN) {
            Some(whole) => {
                out.push(Step::Send(whole.to_owned()));
                if line.is_quit() {
                    LineEnd::Quit
                } else {
                    LineEnd::Sent
                }
            }
            None => {
                out.push(Step::TooLong);
                LineEnd::TooLong
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames a planner for `sender` sends for one typed `line`, and how the line ended.
    fn plan(sender: &str, line: &str) -> (Vec<String>, LineEnd) {
        let steps = LinePlanner::new(sender).plan(line);
        split(steps)
    }

    fn split(steps: Vec<Step>) -> (Vec<String>, LineEnd) {
        let mut frames = Vec::new();
        let mut end = None;
        for step in steps {
            match step {
                Step::Send(text) => {
                    assert!(end.is_none(), "a frame after the line ended");
                    frames.push(text);
                }
                Step::TooLong => assert!(frames.is_empty(), "sent part of a too-long command"),
                Step::LineEnd(e) => {
                    assert!(end.is_none(), "two line ends");
                    end = Some(e);
                }
            }
        }
        (frames, end.expect("the line ended"))
    }

    fn sent(texts: &[&str]) -> (Vec<String>, LineEnd) {
        (texts.iter().map(|t| t.to_string()).collect(), LineEnd::Sent)
    }

    fn words(n: usize) -> String {
        (0..n)
            .map(|i| format!("word{i:03}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn short_lines_are_sent_as_typed() {
        assert_eq!(plan("Scott", "hi"), sent(&["hi"]));
        assert_eq!(plan("Scott", "/create x"), sent(&["/create x"]));
        assert_eq!(plan("Scott", "  indented "), sent(&["  indented "]));
        let full = format!("/join {}", "x".repeat(194));
        assert_eq!(plan("Scott", &full), sent(&[&full]));
        // A chat line that just fits beside `[Scott] ` (8 bytes).
        let chat = "x".repeat(192);
        assert_eq!(plan("Scott", &chat), sent(&[&chat]));
    }

    #[test]
    fn empty_lines_are_not_sent() {
        for line in ["", "   ", "\t\r", &" ".repeat(300), "\u{3000} \u{a0}"] {
            assert_eq!(plan("Scott", line), (vec![], LineEnd::Skipped), "{line:?}");
        }
    }

    #[test]
    fn control_characters_are_removed_as_the_server_would() {
        assert_eq!(plan("Scott", "a\tb\x1b[1mc\r"), sent(&["ab[1mc"]));
        // A tab before a slash would become a command once the server removed the tab.
        assert_eq!(plan("Scott", "\t/join x"), sent(&["/join x"]));
    }

    #[test]
    fn trailing_whitespace_does_not_make_a_line_long() {
        let line = format!("/join room{}", " ".repeat(250));
        assert_eq!(plan("Scott", &line), sent(&["/join room"]));
        let chat = format!("hello{}", " ".repeat(250));
        assert_eq!(plan("Scott", &chat), sent(&["hello"]));
    }

    #[test]
    fn a_chat_line_leaves_room_for_the_name_prefix() {
        // 193 bytes do not fit beside `[Scott] `: the cut is at the last word boundary.
        let line = format!("{} {}", "a".repeat(150), "b".repeat(42));
        let tail = format!(" {}", "b".repeat(42));
        assert_eq!(plan("Scott", &line), sent(&[&"a".repeat(150), &tail]));
        // A longer name leaves less room.
        let name = "n".repeat(32);
        let line = "x".repeat(170);
        assert_eq!(
            plan(&name, &line),
            sent(&[&"x".repeat(165), &"x".repeat(5)])
        );
    }

    #[test]
    fn cuts_are_at_word_boundaries() {
        let line = words(60); // 60 words of 7 bytes and 59 spaces: 479 bytes
        assert_eq!(line.len(), 479);
        let (frames, end) = plan("bob", &line);
        assert_eq!(end, LineEnd::Sent);
        assert_eq!(frames.len(), 3);
        for (i, f) in frames.iter().enumerate() {
            assert!(f.len() <= 200 - "[bob] ".len(), "{f:?}");
            if i > 0 {
                assert!(f.starts_with(" word"), "{f:?}");
            }
            assert!(f.trim_start().split(' ').all(|w| w.len() == 7), "{f:?}");
        }
        assert_eq!(frames.concat(), line);
    }

    #[test]
    fn a_word_longer_than_a_frame_is_cut_inside() {
        let line = format!("{}/{}", "x".repeat(200), "y".repeat(100));
        // 192 bytes of room: the cut is inside the word, and the next piece does not start
        // with `/` (the cut would be at the slash at 200; it is at 192 here).
        assert_eq!(
            plan("Scott", &line),
            sent(&[&"x".repeat(192), &format!("xxxxxxxx/{}", "y".repeat(100))])
        );
        let line = format!("{}/{}", "x".repeat(192), "y".repeat(100));
        assert_eq!(
            plan("Scott", &line),
            sent(&[&"x".repeat(191), &format!("x/{}", "y".repeat(100))])
        );
    }

    #[test]
    fn all_slash_chat_pieces_get_a_guard_space() {
        let line = format!("a{}", "/".repeat(400));
        let (frames, _) = plan("Scott", &line);
        assert_eq!(
            frames,
            vec![
                format!("a{}", "/".repeat(191)),
                format!(" {}", "/".repeat(191)),
                format!(" {}", "/".repeat(18)),
            ]
        );
        assert!(frames.iter().all(|f| f.len() <= 192 && !f.starts_with('/')));
    }

    #[test]
    fn long_multibyte_chat_line_stays_within_frames() {
        let line = "é".repeat(250); // 500 bytes
        let (frames, _) = plan("Scott", &line);
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.len() <= 192));
        assert_eq!(frames.concat(), line);
    }

    #[test]
    fn whitespace_only_pieces_are_dropped() {
        let line = format!("a{}b", " ".repeat(450));
        let (frames, _) = plan("Scott", &line);
        assert_eq!(
            frames,
            vec!["a".to_string(), format!("{}b", " ".repeat(66))]
        );
    }

    #[test]
    fn a_long_msg_leaves_room_for_the_private_prefix() {
        // `[Scott -> Bob] ` is 15 bytes: 185 bytes of text per piece.
        let line = format!("/msg Bob {}", "z".repeat(400));
        let full = format!("/msg Bob {}", "z".repeat(185));
        let last = format!("/msg Bob {}", "z".repeat(30));
        assert_eq!(plan("Scott", &line), sent(&[&full, &full, &last]));
        // A /msg whose text fits is sent as typed, odd spacing and all.
        let line = format!("/msg  Bob   {} ", "z".repeat(185));
        assert_eq!(plan("Scott", &line), sent(&[&line]));
        // One byte more and it is cut, rebuilt as `/msg NAME piece`.
        let line = format!("/msg Bob {}", "z".repeat(186));
        let (frames, _) = plan("Scott", &line);
        assert_eq!(frames, vec![full.clone(), "/msg Bob z".to_string()]);
    }

    #[test]
    fn long_msg_pieces_lose_nothing_but_the_spaces_at_cuts() {
        let message = words(60);
        let line = format!("/msg  Bob   {message} ");
        let (frames, _) = plan("Kay", &line);
        assert_eq!(frames.len(), 3);
        let mut pieces = Vec::new();
        for f in &frames {
            assert!(f.len() <= 200);
            let piece = f.strip_prefix("/msg Bob ").unwrap();
            assert!(piece.trim().len() <= 200 - "[Kay -> Bob] ".len());
            pieces.push(piece.trim().to_string());
        }
        assert_eq!(pieces.join(" "), message);
    }

    #[test]
    fn other_long_commands_are_refused() {
        let refused = (vec![], LineEnd::TooLong);
        for line in [
            format!("/join {}", "c".repeat(300)),
            format!("/msg {}", "n".repeat(300)),
            format!("/msg {} hi", "n".repeat(300)),
            format!("/msgx Bob {}", "z".repeat(300)),
            format!("/{}", "q".repeat(300)),
            format!("/join room{}x", " ".repeat(300)),
        ] {
            assert_eq!(plan("Scott", &line), refused, "{line:?}");
        }
        // A /msg to a name too long to leave room for text is a command like any other.
        let line = format!("/msg {} hi", "n".repeat(180));
        assert_eq!(plan("Scott", &line), sent(&[&line]));
    }

    #[test]
    fn a_msg_without_text_is_sent_as_typed() {
        assert_eq!(plan("Scott", "/msg"), sent(&["/msg"]));
        assert_eq!(plan("Scott", "/msg Bob"), sent(&["/msg Bob"]));
        assert_eq!(plan("Scott", "/msg Bob   "), sent(&["/msg Bob   "]));
        assert_eq!(plan("Scott", "/ms"), sent(&["/ms"]));
    }

    #[test]
    fn quit_ends_the_input() {
        let mut planner = LinePlanner::new("Scott");
        let mut out = Vec::new();
        planner.feed(b"hi\n/quit\nnot sent\n", &mut out);
        planner.finish(&mut out);
        assert_eq!(
            out,
            vec![
                Step::Send("hi".into()),
                Step::LineEnd(LineEnd::Sent),
                Step::Send("/quit".into()),
                Step::LineEnd(LineEnd::Quit),
            ]
        );
        assert_eq!(plan("Scott", "/quit now").1, LineEnd::Quit);
        assert_eq!(plan("Scott", "/quitx").1, LineEnd::Sent);
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily_across_chunks() {
        let mut planner = LinePlanner::new("Scott");
        let mut out = Vec::new();
        // `é` split across two chunks, then a stray byte, then an unfinished sequence.
        planner.feed(b"caf\xc3", &mut out);
        planner.feed(b"\xa9 \xff ok \xe2\x82", &mut out);
        planner.feed(b"\n", &mut out);
        assert_eq!(
            out,
            vec![
                Step::Send("café \u{fffd} ok \u{fffd}".into()),
                Step::LineEnd(LineEnd::Sent)
            ]
        );
    }

    #[test]
    fn a_last_line_without_newline_is_sent_at_the_end() {
        let mut planner = LinePlanner::new("Scott");
        let mut out = Vec::new();
        planner.feed(b"one\ntwo", &mut out);
        assert_eq!(out.len(), 2);
        planner.finish(&mut out);
        assert_eq!(
            out[2..],
            [Step::Send("two".into()), Step::LineEnd(LineEnd::Sent)]
        );
        // Nothing after a final newline: no extra line.
        let mut planner = LinePlanner::new("Scott");
        let mut out = Vec::new();
        planner.feed(b"one\n", &mut out);
        planner.finish(&mut out);
        assert_eq!(out.len(), 2);
    }

    /// Any chunking of the input plans the same frames as the whole input at once.
    #[test]
    fn chunking_does_not_change_the_plan() {
        let lines = [
            words(60),
            format!("/msg Bob {}", words(80)),
            format!("/msg   Bob{}x  {}", " ".repeat(5), "é".repeat(300)),
            format!("/msg {}Bob hi", " ".repeat(300)),
            format!("a{}b", " ".repeat(450)),
            format!("{}/{}", "x".repeat(200), "/".repeat(300)),
            format!("/join {}", "c".repeat(300)),
            format!("/join room{}", " ".repeat(300)),
            "short".into(),
            format!("{}\u{3000}word", "日本".repeat(70)),
        ];
        let input = lines.join("\n");
        let mut whole = Vec::new();
        let mut planner = LinePlanner::new("Kay");
        planner.feed(input.as_bytes(), &mut whole);
        planner.finish(&mut whole);
        for size in [1, 2, 3, 5, 7, 64, 199, 200, 201, 1000] {
            let mut out = Vec::new();
            let mut planner = LinePlanner::new("Kay");
            for chunk in input.as_bytes().chunks(size) {
                planner.feed(chunk, &mut out);
            }
            planner.finish(&mut out);
            assert_eq!(out, whole, "chunks of {size}");
        }
        for step in &whole {
            if let Step::Send(text) = step {
                assert!(text.len() <= FRAME_LEN, "{text:?}");
            }
        }
    }

    #[test]
    fn a_huge_line_is_streamed_with_bounded_buffers() {
        let mut planner = LinePlanner::new("Kay");
        let chunk = "lorem ipsum dolor sit amet ".repeat(300); // 8100 bytes
        let mut sent = 0;
        for _ in 0..200 {
            let mut out = Vec::new();
            planner.feed(chunk.as_bytes(), &mut out);
            sent += out.len();
            let held = match &planner.line.kind {
                Kind::Chat { buf, .. } => buf.len(),
                other => panic!("{other:?}"),
            };
            assert!(held < chunk.len() + 2 * FRAME_LEN, "{held}");
        }
        assert!(sent > 200 * 8100 / 200);
        // A huge command is refused after 200 bytes and the rest is dropped as it comes.
        let mut planner = LinePlanner::new("Kay");
        let mut out = Vec::new();
        planner.feed(b"/join ", &mut out);
        for _ in 0..100 {
            planner.feed(chunk.as_bytes(), &mut out);
        }
        assert_eq!(out, vec![Step::TooLong]);
        assert!(planner.line.head.len() <= HEAD_CAP);
        planner.feed(b"\nhi\n", &mut out);
        assert_eq!(
            out[1..],
            [
                Step::LineEnd(LineEnd::TooLong),
                Step::Send("hi".into()),
                Step::LineEnd(LineEnd::Sent)
            ]
        );
    }

    #[test]
    fn word_cut_examples() {
        assert_eq!(word_cut("ab cd", 10, true), 5);
        assert_eq!(word_cut("ab cd ef", 6, true), 5);
        assert_eq!(word_cut("ab cd ef", 5, true), 5);
        assert_eq!(word_cut("ab cd ef", 4, true), 2);
        assert_eq!(word_cut("abcdef", 4, true), 4);
        assert_eq!(word_cut("abc/ef", 3, true), 2);
        assert_eq!(word_cut("  abcdef", 4, true), 4);
        assert_eq!(word_cut("ab   cd", 4, true), 2);
    }
}
