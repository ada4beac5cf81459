//! The sonnet texts the tests use, made from nothing but what the project fetches:
//! `data/sonnets.txt` (the plain format, as `scripts/fetch_sonnets.sh` downloads it), and the
//! course's ICS `AllSonnets.txt` layout generated from that text.
//!
//! Shared by the library's unit tests (`src/sonnets.rs` includes this file with `#[path]`) and
//! the end-to-end suites (`common::sonnet_files`), so it uses std only, and it does not use the
//! parser it helps to test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The title line the ICS file starts with.
pub const ICS_TITLE: &str = "All Sonnets";

/// The two placeholder lines that the course's edition prints for the two lines sonnet 126
/// never had (the plain edition leaves them out).
pub const PLACEHOLDERS: [&str; 2] = [
    "(                                           )",
    "(                                            )",
];

/// Where `scripts/fetch_sonnets.sh` puts the sonnets (and where the server looks by default).
pub fn plain_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sonnets.txt")
}

/// [`plain_path`], after checking that the file is there.
pub fn plain_path_checked() -> PathBuf {
    let path = plain_path();
    if !path.is_file() {
        panic!("{}", missing(&path, "no such file"));
    }
    path
}

/// The text of `data/sonnets.txt`; panics with the command that fetches it when it is missing.
pub fn plain_text() -> String {
    let path = plain_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}", missing(&path, &e.to_string())))
}

fn missing(path: &Path, why: &str) -> String {
    format!(
        "the tests need {}: {why}. Run scripts/fetch_sonnets.sh (scripts/test.sh runs it)",
        path.display()
    )
}

/// The sonnets of `data/sonnets.txt` in the ICS layout.
pub fn ics_text() -> String {
    ics_layout(&plain_text())
}

/// Writes [`ics_text`] to `dir/AllSonnets.txt` and returns the path. The file is written
/// beside its destination and renamed into place, so parallel tests never read half of it.
pub fn write_ics(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("AllSonnets.txt");
    let partial = dir.join(format!("AllSonnets.txt.{}", std::process::id()));
    std::fs::write(&partial, ics_text()).unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// Lays out plain-format sonnets (verse blocks separated by blank lines) as the course's
/// `AllSonnets.txt` does: the title and two blank lines; then for each sonnet its Roman numeral
/// and a period, a blank line, its first line, every further line indented by one space, and
/// three blank lines before the next heading (two after the last sonnet). Sonnet 126 gets the
/// two [`PLACEHOLDERS`], and every 20th line a trailing space, as in the course's file.
pub fn ics_layout(plain: &str) -> String {
    let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
    for line in plain.lines() {
        let line = line.trim();
        if line.is_empty() {
            if blocks.last().is_some_and(|b| !b.is_empty()) {
                blocks.push(Vec::new());
            }
        } else if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    blocks.retain(|b| !b.is_empty());
    let mut out = format!("{ICS_TITLE}\n\n\n");
    let mut count = 0;
    for (i, block) in blocks.iter().enumerate() {
        let n = i + 1;
        if i > 0 {
            out.push_str("\n\n\n");
        }
        out.push_str(&format!("{}.\n\n", roman(n)));
        let extra: &[&str] = if n == 126 { &PLACEHOLDERS } else { &[] };
        for (j, line) in block.iter().chain(extra).enumerate() {
            let indent = if j == 0 { "" } else { " " };
            count += 1;
            let trailing = if count % 20 == 0 { " " } else { "" };
            out.push_str(&format!("{indent}{line}{trailing}\n"));
        }
    }
    out.push_str("\n\n");
    out
}

/// Roman numerals up to 399, written out here rather than taken from the library under test.
pub fn roman(n: usize) -> String {
    assert!((1..400).contains(&n), "{n}");
    const ONES: [&str; 10] = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"];
    const TENS: [&str; 10] = ["", "X", "XX", "XXX", "XL", "L", "LX", "LXX", "LXXX", "XC"];
    const HUNDREDS: [&str; 4] = ["", "C", "CC", "CCC"];
    format!("{}{}{}", HUNDREDS[n / 100], TENS[n / 10 % 10], ONES[n % 10])
}
