//! Shakespeare's 154 sonnets, loaded once at server start, and the `/sonnet N` argument.
//!
//! Two file formats are read, and told apart by themselves:
//! - **ICS** (`AllSonnets.txt`): an optional title, then each sonnet under a heading line that is
//!   its Roman numeral and a period (`II.`), headings in order from `I.`.
//! - **Plain** (`en.shakespeare.txt`, what `scripts/fetch_sonnets.sh` fetches): the sonnets in
//!   order, without numbers, separated by one or more blank lines.
//!
//! A file is ICS when any of its lines is a heading; otherwise it is plain. In both, every line is
//! stripped of control characters and trimmed, blank lines are dropped, and so are the bracket
//! placeholders `(   )` that some editions print for the two lines sonnet 126 never had.
//! The text is otherwise kept as the file has it (the plain edition prints sonnet 1's first word
//! as `FROM`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::frame;
use crate::utils_errors as text;

/// How many sonnets there are; a file must hold exactly this many.
pub const SONNET_COUNT: usize = 154;

/// Where the server looks for the sonnets by default, relative to its working directory
/// (`scripts/fetch_sonnets.sh` puts the file there).
pub const DEFAULT_SONNETS_PATH: &str = "data/sonnets.txt";

/// The text of `scripts/fetch_sonnets.sh`, built in so that an installed server, far from any
/// checkout, can fetch the sonnets too (`chat-server --fetch-sonnets`, see [`fetch`]).
pub const FETCH_SCRIPT: &str = include_str!("../scripts/fetch_sonnets.sh");

/// Why [`fetch`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// bash could not be started.
    #[error("cannot run bash for the sonnets download: {0}")]
    Bash(std::io::Error),
    /// The script ran and failed; it has said why on stderr.
    #[error("the sonnets download failed ({0})")]
    Failed(std::process::ExitStatus),
}

/// Downloads the sonnets to `dest` (relative to the current directory, like `--sonnets`) by
/// running [`FETCH_SCRIPT`] with bash; the script talks to our stdout and stderr, and does
/// nothing when `dest` already holds the right file.
pub fn fetch(dest: &Path) -> Result<(), FetchError> {
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(FETCH_SCRIPT)
        .arg("fetch_sonnets")
        .arg(dest)
        .status()
        .map_err(FetchError::Bash)?;
    if status.success() {
        Ok(())
    } else {
        Err(FetchError::Failed(status))
    }
}

/// The server's warning when it starts without sonnets: what went wrong, and the command that
/// fetches them to `path` (the server's `--sonnets`) wherever the server is installed, with the
/// reminder that a relative `path` is relative to the current directory (which it names when
/// it can read it).
pub fn missing_warning(path: &Path, err: &SonnetsError) -> String {
    let arg = if path == Path::new(DEFAULT_SONNETS_PATH) {
        String::new()
    } else {
        format!(" {}", shell_word(&path.display().to_string()))
    };
    let place = if path.is_absolute() {
        String::new()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => format!(", relative to the current directory ({})", cwd.display()),
            Err(_) => ", relative to the current directory".to_string(),
        }
    };
    format!(
        "no sonnets: {err}; /sonnet will say none are available. \
         `chat-server --fetch-sonnets{arg}` (`server --fetch-sonnets{arg}` in a checkout) \
         downloads them to {}{place}, where this server looks for them",
        path.display()
    )
}

/// `word` as one shell word: as it is when it is plain, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Why a sonnets file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SonnetsError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read sonnets file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text holds no line of verse at all.
    #[error("the sonnets text is empty")]
    Empty,
    /// The text holds another number of sonnets than [`SONNET_COUNT`].
    #[error("found {found} sonnets, expected {SONNET_COUNT}")]
    WrongCount {
        /// How many sonnets were found.
        found: usize,
    },
    /// An ICS heading is not the next number in sequence.
    #[error("line {line}: heading {}. where {}. was expected", roman(*found), roman(*expected))]
    OutOfOrder {
        /// The 1-based line number of the heading.
        line: usize,
        /// The number the heading should have had.
        expected: usize,
        /// The number it has.
        found: usize,
    },
    /// An ICS heading is followed by no line of verse.
    #[error("sonnet {} has no lines", roman(*number))]
    EmptySonnet {
        /// The sonnet's number.
        number: usize,
    },
}

/// The 154 sonnets, each a list of its lines (trimmed, none empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sonnets {
    /// Exactly [`SONNET_COUNT`] sonnets, each with at least one line.
    sonnets: Vec<Vec<String>>,
}

impl Sonnets {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Sonnets, SonnetsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SonnetsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Sonnets::parse(&text)
    }

    /// Parses a text in either format (see the module documentation).
    pub fn parse(text: &str) -> Result<Sonnets, SonnetsError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let headings = headings();
        let is_ics = text.lines().any(|l| heading(&tidy(l), &headings).is_some());
        let sonnets = if is_ics {
            parse_ics(text, &headings)?
        } else {
            parse_plain(text)
        };
        match sonnets.len() {
            0 => Err(SonnetsError::Empty),
            SONNET_COUNT => Ok(Sonnets { sonnets }),
            found => Err(SonnetsError::WrongCount { found }),
        }
    }

    /// The lines of sonnet `n` (1-based), or `None` outside 1 to 154.
    pub fn get(&self, n: usize) -> Option<&[String]> {
        n.checked_sub(1)
            .and_then(|i| self.sonnets.get(i))
            .map(Vec::as_slice)
    }

    /// The reply to `/sonnet n`: its Roman numeral with a period (`II.`), then its lines.
    pub fn lines_for(&self, n: usize) -> Option<Vec<String>> {
        let lines = self.get(n)?;
        let mut reply = Vec::with_capacity(lines.len() + 1);
        reply.push(format!("{}.", roman(n)));
        reply.extend(lines.iter().cloned());
        Some(reply)
    }
}

/// The reply lines to `/sonnet ARG` (or `/poem ARG`), to be packed with [`frame::pack_lines`].
///
/// `sonnets` is `None` when the server has no sonnets file; then every `/sonnet` gets
/// [`text::NO_SONNETS`], whatever its argument.
pub fn reply(sonnets: Option<&Sonnets>, arg: &str) -> Vec<String> {
    let Some(sonnets) = sonnets else {
        return vec![text::NO_SONNETS.to_string()];
    };
    match parse_number(arg) {
        SonnetArg::NotANumber => vec![text::SONNET_REQUIRES_NUMBER.to_string()],
        SonnetArg::OutOfRange(typed) => vec![text::sonnet_not_found(typed)],
        SonnetArg::Valid(n) => sonnets
            .lines_for(n)
            // Unreachable: a Sonnets always holds all 154 and Valid is within 1..=154.
            .unwrap_or_else(|| vec![text::sonnet_not_found(arg.trim())]),
    }
}

/// What the argument of `/sonnet` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SonnetArg<'a> {
    /// No argument, or one that is not a whole number: the reply is
    /// [`text::SONNET_REQUIRES_NUMBER`].
    NotANumber,
    /// A whole number outside 1 to 154, as typed (trimmed): the reply is
    /// [`text::sonnet_not_found`].
    OutOfRange(&'a str),
    /// A sonnet number, 1 to 154.
    Valid(usize),
}

/// Reads the argument of `/sonnet`.
///
/// After trimming, a whole number is an optional sign (`+` or `-`) followed by one or more ASCII
/// digits, nothing else. So:
/// - `""`, `five`, `5x`, `1.5`, `1e2`, `5 6`, `- 5`, `+` are not numbers: [`SonnetArg::NotANumber`];
/// - ` 5 ` and `+5` are [`SonnetArg::Valid`] 5; `007` and `+007` are 7;
/// - `0`, `000`, `-0`, `-1`, `155` and digit strings too large for any integer type are
///   [`SonnetArg::OutOfRange`] with the argument as typed (`-1`, `99999999999999999999999`).
pub fn parse_number(arg: &str) -> SonnetArg<'_> {
    let arg = arg.trim();
    let digits = arg.strip_prefix(['+', '-']).unwrap_or(arg);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return SonnetArg::NotANumber;
    }
    if arg.starts_with('-') {
        return SonnetArg::OutOfRange(arg);
    }
    // Leading zeros carry no value, so `000…0007` of any length is 7.
    match digits.trim_start_matches('0').parse::<usize>() {
        Ok(n) if (1..=SONNET_COUNT).contains(&n) => SonnetArg::Valid(n),
        _ => SonnetArg::OutOfRange(arg),
    }
}

/// The Roman numeral of `n` (`4` is `IV`, `154` is `CLIV`); meant for 1 to 3999, and empty for 0.
pub fn roman(mut n: usize) -> String {
    const DIGITS: [(usize, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut out = String::new();
    for (value, digits) in DIGITS {
        while n >= value {
            out.push_str(digits);
            n -= value;
        }
    }
    out
}

/// Every heading an ICS file may hold (`I.` to `MMMCMXCIX.`), mapped to its number. Headings
/// past 154 are recognised so that a file with too many sonnets is counted, not misread.
fn headings() -> HashMap<String, usize> {
    (1..4000).map(|n| (format!("{}.", roman(n)), n)).collect()
}

/// The number of a tidied line that is an ICS heading.
fn heading(line: &str, headings: &HashMap<String, usize>) -> Option<usize> {
    headings.get(line).copied()
}

/// A line as stored: control characters removed, trimmed.
fn tidy(line: &str) -> String {
    frame::clean(line).trim().to_string()
}

/// True for a tidied line that belongs to a sonnet: not blank, not a `(   )` placeholder.
fn is_verse(line: &str) -> bool {
    let placeholder = line
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .is_some_and(|inside| inside.trim().is_empty());
    !line.is_empty() && !placeholder
}

/// The ICS format: lines before the first heading are a title and are skipped.
fn parse_ics(
    text: &str,
    headings: &HashMap<String, usize>,
) -> Result<Vec<Vec<String>>, SonnetsError> {
    let mut sonnets: Vec<Vec<String>> = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = tidy(raw);
        if let Some(found) = heading(&line, headings) {
            if let Some(body) = current.take() {
                finish(&mut sonnets, body)?;
            }
            let expected = sonnets.len() + 1;
            if found != expected {
                return Err(SonnetsError::OutOfOrder {
                    line: i + 1,
                    expected,
                    found,
                });
            }
            current = Some(Vec::new());
        } else if let Some(body) = current.as_mut() {
            if is_verse(&line) {
                body.push(line);
            }
        } else if !line.is_empty() {
            log::debug!("sonnets: skipping title line {}: {line}", i + 1);
        }
    }
    if let Some(body) = current {
        finish(&mut sonnets, body)?;
    }
    Ok(sonnets)
}

/// Adds an ICS sonnet's body, which must not be empty.
fn finish(sonnets: &mut Vec<Vec<String>>, body: Vec<String>) -> Result<(), SonnetsError> {
    if body.is_empty() {
        return Err(SonnetsError::EmptySonnet {
            number: sonnets.len() + 1,
        });
    }
    sonnets.push(body);
    Ok(())
}

/// The plain format: runs of verse lines separated by blank lines.
fn parse_plain(text: &str) -> Vec<Vec<String>> {
    let mut sonnets = Vec::new();
    let mut current = Vec::new();
    for raw in text.lines() {
        let line = tidy(raw);
        if line.is_empty() {
            if !current.is_empty() {
                sonnets.push(std::mem::take(&mut current));
            }
        } else if is_verse(&line) {
            current.push(line);
        }
    }
    if !current.is_empty() {
        sonnets.push(current);
    }
    sonnets
}

/// The test data, shared with the end-to-end suites: `data/sonnets.txt` and the ICS layout
/// generated from it.
#[cfg(test)]
#[path = "../test_harness/common/sonnet_files.rs"]
pub(crate) mod test_files;

#[cfg(test)]
mod tests {
    use super::*;

    fn ics() -> Sonnets {
        Sonnets::parse(&test_files::ics_text()).unwrap()
    }

    fn plain() -> Sonnets {
        Sonnets::parse(&test_files::plain_text()).unwrap()
    }

    /// A plain-format text of `count` made-up sonnets.
    fn plain_text(count: usize) -> String {
        (1..=count)
            .map(|n| format!("Line one of {n},\nline two of {n}.\n"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// An ICS-format text of `count` made-up sonnets.
    fn ics_text(count: usize) -> String {
        let mut text = String::from("All Sonnets\n\n\n");
        for n in 1..=count {
            text.push_str(&format!(
                "{}.\n\nLine one of {n},\n line two of {n}.\n\n\n",
                roman(n)
            ));
        }
        text
    }

    #[test]
    fn both_files_hold_154_sonnets_of_trimmed_nonempty_lines() {
        for sonnets in [ics(), plain()] {
            assert!(sonnets.get(154).is_some());
            assert_eq!(sonnets.get(155), None);
            assert_eq!(sonnets.get(0), None);
            for n in 1..=SONNET_COUNT {
                for line in sonnets.get(n).unwrap() {
                    assert!(!line.is_empty(), "sonnet {n}");
                    assert_eq!(line, line.trim(), "sonnet {n}");
                }
            }
        }
    }

    /// The ICS layout of a text reads back as exactly the sonnets of the plain text: the title,
    /// the headings, the indentation, the trailing spaces and sonnet 126's placeholders are
    /// layout, not verse.
    #[test]
    fn the_ics_layout_reads_as_the_plain_text() {
        let layout = test_files::ics_text();
        assert!(layout.starts_with("All Sonnets\n\n\nI.\n\nFROM fairest creatures"));
        assert!(layout.contains("\n That thereby beauty's rose might never die,\n"));
        assert!(layout.contains("\n\n\nCXXVI.\n\nO thou, my lovely boy, who in thy power\n"));
        for placeholder in test_files::PLACEHOLDERS {
            assert!(layout.contains(&format!("\n {placeholder}\n")));
        }
        assert!(layout.lines().filter(|l| l.ends_with(' ')).count() > 100);
        assert!(layout.ends_with("Love's fire heats water, water cools not love.\n\n\n"));
        let s = ics();
        assert_eq!(s, plain());
        let six = s.get(126).unwrap();
        assert_eq!(six.len(), 12);
        assert_eq!(six[11], "And her quietus is to render thee.");
        // The title line `All Sonnets` is not part of sonnet 1 or of any other.
        assert_eq!(
            s.get(1).unwrap()[0],
            "FROM fairest creatures we desire increase,"
        );
    }

    #[test]
    fn the_generated_numerals_are_the_librarys() {
        for n in 1..=SONNET_COUNT {
            assert_eq!(test_files::roman(n), roman(n));
        }
    }

    #[test]
    fn plain_file_text() {
        let s = plain();
        let one = s.get(1).unwrap();
        assert_eq!(one.len(), 14);
        assert_eq!(one[0], "FROM fairest creatures we desire increase,");
        assert_eq!(one[13], "To eat the world's due, by the grave and thee.");
        assert_eq!(s.get(99).unwrap().len(), 15);
        assert_eq!(s.get(126).unwrap().len(), 12);
        let last = s.get(154).unwrap();
        assert_eq!(last[0], "The little Love-god lying once asleep");
        assert_eq!(last[13], "Love's fire heats water, water cools not love.");
        assert_eq!(
            s.get(153).unwrap()[13],
            "Where Cupid got new fire\u{2014}my mistress' eyes."
        );
    }

    #[test]
    fn lines_for_starts_with_the_numeral() {
        let s = ics();
        let two = s.lines_for(2).unwrap();
        assert_eq!(two.len(), 15);
        assert_eq!(two[0], "II.");
        assert_eq!(two[1], "When forty winters shall beseige thy brow,");
        assert_eq!(s.lines_for(154).unwrap()[0], "CLIV.");
        assert_eq!(s.lines_for(0), None);
        assert_eq!(s.lines_for(155), None);
    }

    #[test]
    fn reply_covers_every_case() {
        let s = plain();
        assert_eq!(reply(None, "1"), vec![text::NO_SONNETS]);
        assert_eq!(reply(None, ""), vec![text::NO_SONNETS]);
        assert_eq!(
            reply(Some(&s), ""),
            vec!["/sonnet command must be followed by a sonnet number from 1 to 154."]
        );
        assert_eq!(
            reply(Some(&s), "-1"),
            vec!["Sonnet -1 not found. Sonnets are numbered 1 to 154."]
        );
        assert_eq!(reply(Some(&s), "007"), s.lines_for(7).unwrap());
        let lines = reply(Some(&s), "99");
        let frames = frame::pack_lines(lines.iter().map(String::as_str));
        assert_eq!(frames.len(), 4);
        assert_eq!(frames.join("\n"), lines.join("\n"));
        assert!(frames[0].starts_with("XCIX.\nThe forward violet thus did I chide:\n"));
        assert!(frames.iter().all(|f| f.len() <= frame::FRAME_LEN));
    }

    #[test]
    fn reply_texts() {
        assert_eq!(text::NO_SONNETS, "No sonnets are available on this server.");
        assert_eq!(
            text::sonnet_not_found("155"),
            "Sonnet 155 not found. Sonnets are numbered 1 to 154."
        );
    }

    #[test]
    fn made_up_texts_in_both_formats() {
        for text in [plain_text(154), ics_text(154)] {
            let s = Sonnets::parse(&text).unwrap();
            assert_eq!(
                s.get(154).unwrap(),
                ["Line one of 154,", "line two of 154."]
            );
        }
        let crlf = plain_text(154).replace('\n', "\r\n");
        assert_eq!(
            Sonnets::parse(&crlf).unwrap(),
            Sonnets::parse(&plain_text(154)).unwrap()
        );
        let bom = format!("\u{feff}{}", ics_text(154));
        assert_eq!(
            Sonnets::parse(&bom).unwrap().get(1).unwrap()[0],
            "Line one of 1,"
        );
        let spaced = format!(
            "\n\n  \n{}\n \t\n\n",
            plain_text(154).replace("\n\n", "\n \n\n")
        );
        assert_eq!(Sonnets::parse(&spaced).unwrap().get(2).unwrap().len(), 2);
    }

    #[test]
    fn wrong_counts_are_errors() {
        for text in [plain_text(153), ics_text(153)] {
            let err = Sonnets::parse(&text).unwrap_err();
            assert!(
                matches!(err, SonnetsError::WrongCount { found: 153 }),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "found 153 sonnets, expected 154");
        }
        for text in [plain_text(155), ics_text(155)] {
            let err = Sonnets::parse(&text).unwrap_err();
            assert!(
                matches!(err, SonnetsError::WrongCount { found: 155 }),
                "{err:?}"
            );
        }
        // A header line before plain sonnets is one more sonnet, not silently skipped.
        let err = Sonnets::parse(&format!("THE SONNETS\n\n{}", plain_text(154))).unwrap_err();
        assert!(
            matches!(err, SonnetsError::WrongCount { found: 155 }),
            "{err:?}"
        );
    }

    #[test]
    fn empty_texts_are_errors() {
        for text in ["", "\n\n", "  \n\t\n", "\u{feff}", "(   )\n"] {
            let err = Sonnets::parse(text).unwrap_err();
            assert!(matches!(err, SonnetsError::Empty), "{text:?}: {err:?}");
        }
        assert_eq!(SonnetsError::Empty.to_string(), "the sonnets text is empty");
    }

    #[test]
    fn ics_structure_errors() {
        let skipped = ics_text(154).replacen("III.\n", "IV.\n", 1);
        let err = Sonnets::parse(&skipped).unwrap_err();
        assert!(
            matches!(
                err,
                SonnetsError::OutOfOrder {
                    line: 16,
                    expected: 3,
                    found: 4
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "line 16: heading IV. where III. was expected"
        );
        let bare = ics_text(154).replacen("Line one of 2,\n line two of 2.\n", "", 1);
        let err = Sonnets::parse(&bare).unwrap_err();
        assert!(
            matches!(err, SonnetsError::EmptySonnet { number: 2 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "sonnet II has no lines");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("no/such/sonnets.txt");
        let err = Sonnets::load(&path).unwrap_err();
        assert!(
            matches!(&err, SonnetsError::Io { path: p, source }
                if *p == path && source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("cannot read sonnets file {}: ", path.display())));
    }

    #[test]
    fn non_utf8_file_is_an_io_error() {
        let dir = std::env::temp_dir().join(format!("chat-sonnets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("latin1.txt");
        std::fs::write(&path, b"caf\xe9\n").unwrap();
        let err = Sonnets::load(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, SonnetsError::Io { .. }), "{err:?}");
    }

    #[test]
    fn control_characters_are_removed() {
        let text = plain_text(154).replacen("Line one of 1,", "Line\x0c one\x1b[31m of 1,\x07", 1);
        let s = Sonnets::parse(&text).unwrap();
        assert_eq!(s.get(1).unwrap()[0], "Line one[31m of 1,");
    }

    #[test]
    fn the_missing_warning_names_the_fetch_command_and_the_directory() {
        let err =
            Sonnets::load(Path::new(DEFAULT_SONNETS_PATH).join("nope").as_path()).unwrap_err();
        let cwd = std::env::current_dir().unwrap();
        let warning = missing_warning(Path::new(DEFAULT_SONNETS_PATH), &err);
        assert_eq!(
            warning,
            format!(
                "no sonnets: {err}; /sonnet will say none are available. \
                 `chat-server --fetch-sonnets` (`server --fetch-sonnets` in a checkout) \
                 downloads them to data/sonnets.txt, relative to the current directory ({}), \
                 where this server looks for them",
                cwd.display()
            )
        );
        let warning = missing_warning(Path::new("/srv/chat/my sonnets.txt"), &err);
        assert!(
            warning.contains(
                "`chat-server --fetch-sonnets '/srv/chat/my sonnets.txt'` \
                 (`server --fetch-sonnets '/srv/chat/my sonnets.txt'` in a checkout) \
                 downloads them to /srv/chat/my sonnets.txt, where"
            ),
            "{warning}"
        );
        let warning = missing_warning(Path::new("poems.txt"), &err);
        assert!(
            warning.contains("--fetch-sonnets poems.txt` (`server --fetch-sonnets poems.txt`"),
            "{warning}"
        );
        assert!(warning.contains("to poems.txt, relative to the current directory ("));
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn roman_numerals() {
        let cases = [
            (1, "I"),
            (4, "IV"),
            (9, "IX"),
            (14, "XIV"),
            (40, "XL"),
            (90, "XC"),
            (99, "XCIX"),
            (126, "CXXVI"),
            (154, "CLIV"),
        ];
        for (n, numeral) in cases {
            assert_eq!(roman(n), numeral);
        }
        assert_eq!(roman(0), "");
        assert_eq!(roman(1994), "MCMXCIV");
        // Every heading is distinct, so each number reads back as itself.
        assert_eq!(headings().len(), 3999);
    }

    #[test]
    fn parse_number_cases() {
        use SonnetArg::*;
        for arg in [
            "", "  ", "five", "5x", "x5", "1.5", "1e2", "5 6", "- 5", "+", "-", "0x10", "٥",
        ] {
            assert_eq!(parse_number(arg), NotANumber, "{arg:?}");
        }
        let valid = [
            ("1", 1),
            ("154", 154),
            ("007", 7),
            (" 5 ", 5),
            ("+5", 5),
            ("+007", 7),
        ];
        for (arg, n) in valid {
            assert_eq!(parse_number(arg), Valid(n), "{arg:?}");
        }
        assert_eq!(parse_number(&format!("{}7", "0".repeat(100))), Valid(7));
        let huge = "9".repeat(60);
        for arg in [
            "0",
            "000",
            "-0",
            "-1",
            "-154",
            "155",
            "18446744073709551616",
            &huge,
        ] {
            assert_eq!(parse_number(arg), OutOfRange(arg), "{arg:?}");
        }
        assert_eq!(parse_number(" 155 "), OutOfRange("155"));
    }
}
