//! The terminal mode's line editor, as a pure state machine: keys in, edits out, and the exact
//! bytes that draw the prompt line (PROTOCOL.md section 4). Nothing here touches a terminal;
//! [`super::terminal`] feeds it keys and writes what it renders.
//!
//! The line being typed is one terminal line: the prompt, then as much of the text as fits,
//! scrolled sideways so that the cursor is always in view. A frame from the server is printed
//! by [`Editor::print_above`]: the prompt line is cleared, the text printed, and the prompt line
//! drawn again below it with the text typed so far and the cursor where it was.

use unicode_width::UnicodeWidthChar;

/// Commands whose argument is a password: what follows them is shown as `*`.
const SECRET_COMMANDS: [&str; 2] = ["/register ", "/identify "];
/// Lines kept for up/down.
const HISTORY_MAX: usize = 1000;
/// Characters a line may hold: a typed line longer than a few frames is a paste gone wrong,
/// and the editor's memory must not grow without bound.
const LINE_MAX_CHARS: usize = 64 * 1024;

/// A key, as the editor understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    WordLeft,
    WordRight,
    Home,
    End,
    Up,
    Down,
    /// Ctrl-D: end of input on an empty line, else delete under the cursor.
    CtrlD,
    /// Ctrl-C: clear the line, or end when it is empty.
    CtrlC,
    /// Ctrl-U: delete to the start of the line.
    KillToStart,
    /// Ctrl-K: delete to the end of the line.
    KillToEnd,
    /// Ctrl-W: delete the word before the cursor.
    KillWord,
    /// Ctrl-L: draw the line again.
    Redraw,
}

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Nothing changed on screen.
    Nothing,
    /// The line changed: draw it again.
    Changed,
    /// Enter: this line was typed (the editor is empty again).
    Submit(String),
    /// The user wants to stop (Ctrl-D or Ctrl-C on an empty line).
    Eof,
}

/// The line being typed, the cursor, the prompt and the history.
#[derive(Debug, Default)]
pub struct Editor {
    prompt: String,
    line: String,
    /// Byte offset of the cursor in `line`, on a character boundary.
    cursor: usize,
    history: Vec<String>,
    /// While browsing the history: which entry is shown.
    browsing: Option<usize>,
    /// The line that was being typed when browsing began.
    draft: String,
}

/// Columns a character takes on a terminal.
fn columns(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Where the masked part of `line` begins, if it is a password command.
fn secret_start(line: &str) -> Option<usize> {
    SECRET_COMMANDS
        .iter()
        .find(|cmd| line.starts_with(*cmd))
        .map(|cmd| cmd.len())
}

/// `line` as the editor shows it: what follows `/register ` or `/identify ` masked.
pub fn masked(line: &str) -> String {
    match secret_start(line) {
        Some(start) => {
            let stars = "*".repeat(line[start..].chars().count());
            format!("{}{stars}", &line[..start])
        }
        None => line.to_owned(),
    }
}

/// Writes `text` for a terminal in raw mode: each `\n` becomes `\r\n`, and no control
/// character other than `\n` is written (a frame cannot move the cursor or colour the screen).
pub fn terminal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\n' {
            out.push_str("\r\n");
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

impl Editor {
    /// An empty editor showing `prompt`.
    pub fn new(prompt: &str) -> Editor {
        Editor {
            prompt: prompt.to_owned(),
            ..Editor::default()
        }
    }

    /// The text typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The prompt shown before the line.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Changes the prompt; the line and cursor stay.
    pub fn set_prompt(&mut self, prompt: &str) {
        self.prompt = prompt.to_owned();
    }

    /// Replaces the line (the cursor goes to its end); returns the old one.
    pub fn replace_line(&mut self, line: String) -> String {
        self.browsing = None;
        self.cursor = line.len();
        std::mem::replace(&mut self.line, line)
    }

    /// Handles one key.
    pub fn key(&mut self, key: Key) -> Edit {
        match key {
            Key::Char(c) => {
                if c.is_control() || self.line.chars().count() >= LINE_MAX_CHARS {
                    return Edit::Nothing;
                }
                self.line.insert(self.cursor, c);
                self.cursor += c.len_utf8();
                self.browsing = None;
                Edit::Changed
            }
            Key::Enter => {
                let line = std::mem::take(&mut self.line);
                self.cursor = 0;
                self.browsing = None;
                self.draft.clear();
                self.remember(&line);
                Edit::Submit(line)
            }
            Key::Backspace => match self.before_cursor() {
                Some(at) => {
                    self.line.drain(at..self.cursor);
                    self.cursor = at;
                    Edit::Changed
                }
                None => Edit::Nothing,
            },
            Key::Delete => self.delete_at_cursor(),
            Key::CtrlD => {
                if self.line.is_empty() {
                    Edit::Eof
                } else {
                    self.delete_at_cursor()
                }
            }
            Key::CtrlC => {
                if self.line.is_empty() {
                    Edit::Eof
                } else {
                    self.replace_line(String::new());
                    Edit::Changed
                }
            }
            Key::Left => self.move_to(self.before_cursor()),
            Key::Right => self.move_to(self.after_cursor()),
            Key::WordLeft => self.move_to(Some(self.word_start())),
            Key::WordRight => self.move_to(Some(self.word_end())),
            Key::Home => self.move_to(Some(0)),
            Key::End => self.move_to(Some(self.line.len())),
            Key::KillToStart => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
                Edit::Changed
            }
            Key::KillToEnd => {
                self.line.truncate(self.cursor);
                Edit::Changed
            }
            Key::KillWord => {
                let at = self.word_start();
                self.line.drain(at..self.cursor);
                self.cursor = at;
                Edit::Changed
            }
            Key::Up => self.history_up(),
            Key::Down => self.history_down(),
            Key::Redraw => Edit::Changed,
        }
    }

    /// Keeps a submitted line for up/down: not an empty one, not a repeat, never a password.
    fn remember(&mut self, line: &str) {
        if line.trim().is_empty()
            || secret_start(line).is_some()
            || self.history.last().is_some_and(|last| last == line)
        {
            return;
        }
        if self.history.len() == HISTORY_MAX {
            self.history.remove(0);
        }
        self.history.push(line.to_owned());
    }

    fn history_up(&mut self) -> Edit {
        let index = match self.browsing {
            None if self.history.is_empty() => return Edit::Nothing,
            None => {
                self.draft = self.line.clone();
                self.history.len() - 1
            }
            Some(0) => return Edit::Nothing,
            Some(i) => i - 1,
        };
        self.show_history(Some(index))
    }

    fn history_down(&mut self) -> Edit {
        match self.browsing {
            None => Edit::Nothing,
            Some(i) if i + 1 < self.history.len() => self.show_history(Some(i + 1)),
            Some(_) => self.show_history(None),
        }
    }

    fn show_history(&mut self, index: Option<usize>) -> Edit {
        let line = match index {
            Some(i) => self.history[i].clone(),
            None => std::mem::take(&mut self.draft),
        };
        self.replace_line(line);
        self.browsing = index;
        Edit::Changed
    }

    fn move_to(&mut self, at: Option<usize>) -> Edit {
        match at {
            Some(at) if at != self.cursor => {
                self.cursor = at;
                Edit::Changed
            }
            _ => Edit::Nothing,
        }
    }

    fn delete_at_cursor(&mut self) -> Edit {
        match self.after_cursor() {
            Some(end) => {
                self.line.drain(self.cursor..end);
                Edit::Changed
            }
            None => Edit::Nothing,
        }
    }

    fn before_cursor(&self) -> Option<usize> {
        self.line[..self.cursor]
            .char_indices()
            .next_back()
            .map(|(i, _)| i)
    }

    fn after_cursor(&self) -> Option<usize> {
        self.line[self.cursor..]
            .chars()
            .next()
            .map(|c| self.cursor + c.len_utf8())
    }

    /// The start of the word before the cursor (skipping whitespace first).
    fn word_start(&self) -> usize {
        let head = &self.line[..self.cursor];
        let trimmed = head.trim_end();
        trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8())
    }

    /// The end of the word after the cursor (skipping whitespace first).
    fn word_end(&self) -> usize {
        let tail = &self.line[self.cursor..];
        let skipped = tail.len() - tail.trim_start().len();
        let word = &tail[skipped..];
        let len = word.find(char::is_whitespace).unwrap_or(word.len());
        self.cursor + skipped + len
    }

    /// The characters shown for the line (a password masked), with the byte offset of each.
    fn shown(&self) -> Vec<(usize, char)> {
        let secret = secret_start(&self.line);
        self.line
            .char_indices()
            .map(|(i, c)| match secret {
                Some(start) if i >= start => (i, '*'),
                _ => (i, c),
            })
            .collect()
    }

    /// The bytes that draw the prompt line on a terminal `width` columns wide: go to its start,
    /// clear it, write the prompt and the visible part of the line, put the cursor in place.
    pub fn render(&self, width: usize) -> String {
        // The last column stays free: writing there makes some terminals wrap.
        let usable = width.saturating_sub(1).max(1);
        let prompt: String = {
            let mut cols = 0;
            self.prompt
                .chars()
                .filter(|c| !c.is_control())
                .take_while(|&c| {
                    cols += columns(c);
                    cols < usable
                })
                .collect()
        };
        let prompt_cols: usize = prompt.chars().map(columns).sum();
        let room = usable - prompt_cols;
        let shown = self.shown();
        let cursor_index = shown
            .iter()
            .position(|&(i, _)| i >= self.cursor)
            .unwrap_or(shown.len());
        // Scroll so that the cursor's cell is in view, showing as much before it as fits.
        let mut start = cursor_index;
        let mut before = 0;
        while start > 0 {
            let w = columns(shown[start - 1].1);
            if before + w >= room {
                break;
            }
            before += w;
            start -= 1;
        }
        let mut out = String::from("\r\x1b[2K");
        out.push_str(&prompt);
        let mut cols = 0;
        for &(_, c) in &shown[start..] {
            let w = columns(c);
            if cols + w > room {
                break;
            }
            cols += w;
            out.push(c);
        }
        out.push('\r');
        let cursor_col = prompt_cols + before;
        if cursor_col > 0 {
            out.push_str(&format!("\x1b[{cursor_col}C"));
        }
        out
    }

    /// The bytes that print `text` above the prompt line and draw the prompt line again.
    pub fn print_above(&self, text: &str, width: usize) -> String {
        let mut out = String::from("\r\x1b[2K");
        out.push_str(&terminal_text(text));
        out.push_str("\r\n");
        out.push_str(&self.render(width));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(editor: &mut Editor, text: &str) {
        for c in text.chars() {
            editor.key(Key::Char(c));
        }
    }

    #[test]
    fn typing_and_editing_keys() {
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "helo");
        e.key(Key::Left);
        typed(&mut e, "l");
        assert_eq!(e.line(), "hello");
        e.key(Key::Home);
        typed(&mut e, ">");
        e.key(Key::End);
        typed(&mut e, "!");
        assert_eq!(e.line(), ">hello!");
        e.key(Key::Backspace);
        e.key(Key::Home);
        e.key(Key::Delete);
        assert_eq!(e.line(), "hello");
        e.key(Key::End);
        typed(&mut e, " big world");
        e.key(Key::KillWord);
        assert_eq!(e.line(), "hello big ");
        e.key(Key::WordLeft);
        e.key(Key::KillToEnd);
        assert_eq!(e.line(), "hello ");
        e.key(Key::KillToStart);
        assert_eq!(e.line(), "");
        assert_eq!(e.key(Key::Backspace), Edit::Nothing);
    }

    #[test]
    fn multibyte_characters_move_as_one() {
        let mut e = Editor::new("> ");
        typed(&mut e, "né日");
        e.key(Key::Left);
        e.key(Key::Left);
        e.key(Key::Backspace);
        assert_eq!(e.line(), "é日");
        e.key(Key::Delete);
        assert_eq!(e.line(), "日");
    }

    #[test]
    fn enter_submits_and_clears() {
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "hi");
        assert_eq!(e.key(Key::Enter), Edit::Submit("hi".into()));
        assert_eq!(e.line(), "");
        assert_eq!(e.key(Key::Enter), Edit::Submit(String::new()));
    }

    #[test]
    fn ctrl_d_ends_only_on_an_empty_line_and_ctrl_c_clears_first() {
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "ab");
        e.key(Key::Home);
        assert_eq!(e.key(Key::CtrlD), Edit::Changed);
        assert_eq!(e.line(), "b");
        assert_eq!(e.key(Key::CtrlC), Edit::Changed);
        assert_eq!(e.line(), "");
        assert_eq!(e.key(Key::CtrlD), Edit::Eof);
        assert_eq!(e.key(Key::CtrlC), Edit::Eof);
    }

    #[test]
    fn history_up_and_down_keep_the_draft() {
        let mut e = Editor::new("[Me] ");
        for line in ["one", "two", "two", "  ", "/identify secret99"] {
            typed(&mut e, line);
            e.key(Key::Enter);
        }
        typed(&mut e, "dra");
        e.key(Key::Up);
        assert_eq!(e.line(), "two");
        e.key(Key::Up);
        assert_eq!(e.line(), "one");
        assert_eq!(e.key(Key::Up), Edit::Nothing);
        e.key(Key::Down);
        assert_eq!(e.line(), "two");
        e.key(Key::Down);
        assert_eq!(e.line(), "dra");
        assert_eq!(e.key(Key::Down), Edit::Nothing);
    }

    #[test]
    fn render_draws_prompt_line_and_cursor() {
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "hello");
        assert_eq!(e.render(80), "\r\x1b[2K[Me] hello\r\x1b[10C");
        e.key(Key::Home);
        assert_eq!(e.render(80), "\r\x1b[2K[Me] hello\r\x1b[5C");
        let empty = Editor::new("");
        assert_eq!(empty.render(80), "\r\x1b[2K\r");
    }

    #[test]
    fn passwords_are_masked() {
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "/identify hunter22");
        assert_eq!(e.render(80), "\r\x1b[2K[Me] /identify ********\r\x1b[23C");
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "/register pässword");
        assert!(e.render(80).contains("/register ********\r"));
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "/identify");
        assert!(e.render(80).contains("/identify\r"));
    }

    #[test]
    fn masked_lines() {
        assert_eq!(masked("/identify pässwörd"), "/identify ********");
        assert_eq!(masked("/register x y"), "/register ***");
        assert_eq!(masked("/identify"), "/identify");
        assert_eq!(masked("hello /identify x"), "hello /identify x");
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let mut e = Editor::new("> ");
        typed(&mut e, &"abcdefghij".repeat(3)); // 30 characters in 20 columns
        let r = e.render(21);
        // 2 columns of prompt, 18 of text: the end of the line, cursor after it.
        assert_eq!(r, "\r\x1b[2K> defghijabcdefghij\r\x1b[19C");
        e.key(Key::Home);
        assert_eq!(e.render(21), "\r\x1b[2K> abcdefghijabcdefgh\r\x1b[2C");
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let mut e = Editor::new("> ");
        typed(&mut e, "日本");
        assert_eq!(e.render(80), "\r\x1b[2K> 日本\r\x1b[6C");
    }

    #[test]
    fn print_above_keeps_the_typed_line() {
        let mut e = Editor::new("[Me] ");
        typed(&mut e, "half typed");
        e.key(Key::Left);
        assert_eq!(
            e.print_above("[bob] a\nb\x1b[31m", 80),
            "\r\x1b[2K[bob] a\r\nb[31m\r\n\r\x1b[2K[Me] half typed\r\x1b[14C"
        );
    }

    #[test]
    fn control_characters_are_not_inserted() {
        let mut e = Editor::new("");
        assert_eq!(e.key(Key::Char('\x1b')), Edit::Nothing);
        assert_eq!(e.line(), "");
    }
}
