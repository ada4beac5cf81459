//! Framing: every message is one 200-byte frame of UTF-8 text, right-padded with spaces.
//!
//! This module knows nothing of sockets. [`FrameDecoder`] turns a byte stream into whole frames;
//! [`decode`] turns a frame into text; [`pad`] turns text back into a frame; [`split_text`] and
//! [`pack_lines`] make sure no text is ever longer than a frame.

use std::borrow::Cow;

/// The size of every frame, in both directions.
pub const FRAME_LEN: usize = 200;

/// One frame on the wire.
pub type Frame = [u8; FRAME_LEN];

/// Errors of the framing layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The text does not fit in one frame.
    #[error("text of {0} bytes does not fit in a {FRAME_LEN}-byte frame")]
    TooLong(usize),
}

/// Pads `text` with spaces into one frame.
pub fn pad(text: &str) -> Result<Frame, FrameError> {
    let bytes = text.as_bytes();
    if bytes.len() > FRAME_LEN {
        return Err(FrameError::TooLong(bytes.len()));
    }
    let mut frame = [b' '; FRAME_LEN];
    frame[..bytes.len()].copy_from_slice(bytes);
    Ok(frame)
}

/// Removes the padding (trailing spaces, `\t`, `\r`, `\n` and NUL bytes) and decodes the rest,
/// lossily: invalid UTF-8 becomes U+FFFD.
pub fn decode(frame: &[u8]) -> Cow<'_, str> {
    let end = frame
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0))
        .map_or(0, |i| i + 1);
    lossy(&frame[..end])
}

/// `bytes` as text, invalid UTF-8 as U+FFFD; borrows valid text, which the standard library
/// checks several times faster than [`String::from_utf8_lossy`] goes through it.
pub fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// True for the control characters the server removes: U+0000–U+001F, U+007F, U+0080–U+009F.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// True for what [`clean`] removes: control characters, bidi controls and the Unicode line
/// and paragraph separators.
pub fn is_unclean(c: char) -> bool {
    is_control(c) || crate::names::is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Removes control characters, bidi controls and U+2028/U+2029, so that no client can move
/// another's cursor, fake a line, or reverse the text around it.
pub fn clean(text: &str) -> Cow<'_, str> {
    // Printable ASCII, nearly every message, is clean: one pass over the bytes.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Cow::Borrowed(text);
    }
    if text.chars().any(is_unclean) {
        Cow::Owned(text.chars().filter(|&c| !is_unclean(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// Where to cut `text` so that the first piece holds at most `max` bytes.
///
/// The cut is at a character boundary, never leaves whitespace at the end of the first piece
/// (whitespace moves to the start of the next one, so stripping padding loses nothing) and, with
/// `no_slash`, never lets the next piece start with `/` (so it cannot be taken for a command).
/// Only when no such cut exists (a window of nothing but whitespace) is the cut made at the last
/// character boundary. Returns `text.len()` when the whole text fits.
pub fn cut_point(text: &str, max: usize, no_slash: bool) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut hard = max;
    while !text.is_char_boundary(hard) {
        hard -= 1;
    }
    let mut cut = hard;
    while cut > 0 {
        let head = &text[..cut];
        let ends_blank = head.chars().next_back().is_some_and(char::is_whitespace);
        let slash_next = no_slash && text[cut..].starts_with('/');
        if !ends_blank && !slash_next {
            return cut;
        }
        cut -= head.chars().next_back().map_or(1, char::len_utf8);
    }
    if hard == 0 {
        // `max` is smaller than the first character: take that character whole.
        text.chars().next().map_or(text.len(), char::len_utf8)
    } else {
        hard
    }
}

/// Splits `text` into pieces of at most `max` bytes (see [`cut_point`] for where it cuts).
/// Returns one piece, the text itself, when it fits; never returns an empty piece.
pub fn split_text(text: &str, max: usize, no_slash: bool) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = cut_point(rest, max, no_slash);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

/// Cuts `body` into frames that each begin with `prefix` (see [`cut_point`] for where it cuts),
/// handing each to `emit`; allocates nothing. Returns false, emitting nothing, when the prefix
/// leaves no room for a character of any size.
pub fn prefixed_frames(prefix: &[u8], body: &str, mut emit: impl FnMut(&Frame)) -> bool {
    if prefix.len() + 4 > FRAME_LEN {
        return false;
    }
    let mut out = [b' '; FRAME_LEN];
    out[..prefix.len()].copy_from_slice(prefix);
    let mut rest = body;
    while !rest.is_empty() {
        let cut = cut_point(rest, FRAME_LEN - prefix.len(), false);
        out[prefix.len()..].fill(b' ');
        out[prefix.len()..prefix.len() + cut].copy_from_slice(&rest.as_bytes()[..cut]);
        emit(&out);
        rest = &rest[cut..];
    }
    true
}

/// Packs lines into frame texts: lines joined by `\n`, as many whole lines per frame as fit; a
/// line longer than a frame is cut into several (see [`split_text`]). Empty lines are kept inside
/// a frame but never start or end one (stripping would lose them anyway).
pub fn pack_lines<'a, I>(lines: I) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut frames = Vec::new();
    let mut current = String::new();
    for line in lines {
        for piece in split_text(line, FRAME_LEN, false) {
            if current.is_empty() {
                current.push_str(piece);
            } else if current.len() + 1 + piece.len() <= FRAME_LEN {
                current.push('\n');
                current.push_str(piece);
            } else {
                frames.push(std::mem::take(&mut current));
                current.push_str(piece);
            }
        }
    }
    if !current.is_empty() {
        frames.push(current);
    }
    frames
}

/// Turns a byte stream into whole frames. Holds at most one partial frame.
#[derive(Debug)]
pub struct FrameDecoder {
    partial: Frame,
    len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        FrameDecoder {
            partial: [0; FRAME_LEN],
            len: 0,
        }
    }

    /// How many bytes of an incomplete frame are buffered.
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// Feeds bytes in; calls `on_frame` for each frame they complete, in order.
    pub fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(&Frame)) {
        if self.len > 0 {
            let take = (FRAME_LEN - self.len).min(data.len());
            self.partial[self.len..self.len + take].copy_from_slice(&data[..take]);
            self.len += take;
            data = &data[take..];
            if self.len < FRAME_LEN {
                return;
            }
            on_frame(&self.partial);
            self.len = 0;
        }
        let mut chunks = data.chunks_exact(FRAME_LEN);
        for chunk in &mut chunks {
            if let Ok(frame) = <&Frame>::try_from(chunk) {
                on_frame(frame);
            }
        }
        let rest = chunks.remainder();
        self.partial[..rest.len()].copy_from_slice(rest);
        self.len = rest.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(decoder: &mut FrameDecoder, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        decoder.feed(data, |f| out.push(decode(f).into_owned()));
        out
    }

    #[test]
    fn pad_and_decode_round_trip() {
        let frame = pad("hello").unwrap();
        assert_eq!(frame.len(), FRAME_LEN);
        assert_eq!(&frame[..6], b"hello ");
        assert_eq!(decode(&frame), "hello");
        assert_eq!(pad(&"x".repeat(201)), Err(FrameError::TooLong(201)));
        assert!(pad(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn decode_strips_padding_whitespace_and_nul_only_at_the_end() {
        assert_eq!(decode(b"  hi there \t\r\n\0\0  "), "  hi there");
        assert_eq!(decode(b"\0\0\0"), "");
        assert_eq!(decode(b"a\0b"), "a\0b");
    }

    #[test]
    fn decode_is_lossy_for_invalid_utf8() {
        assert_eq!(decode(b"ok\xff\xfeok"), "ok\u{fffd}\u{fffd}ok");
    }

    #[test]
    fn clean_removes_control_characters() {
        assert_eq!(clean("a\x1b[31mb\x07c\u{85}d\u{7f}"), "a[31mbcd");
        assert_eq!(clean("ab\u{202E}cd\u{2066}e\u{2028}f"), "abcdef");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn decoder_handles_one_byte_at_a_time() {
        let mut d = FrameDecoder::new();
        let frame = pad("one byte at a time").unwrap();
        let mut got = Vec::new();
        for b in frame.iter() {
            got.extend(frames_of(&mut d, std::slice::from_ref(b)));
        }
        assert_eq!(got, vec!["one byte at a time"]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn decoder_handles_coalesced_frames_and_a_part() {
        let mut d = FrameDecoder::new();
        let mut data = Vec::new();
        for t in ["a", "b", "c"] {
            data.extend_from_slice(&pad(t).unwrap());
        }
        data.extend_from_slice(&pad("d").unwrap()[..50]);
        assert_eq!(frames_of(&mut d, &data), vec!["a", "b", "c"]);
        assert_eq!(d.buffered(), 50);
        assert_eq!(frames_of(&mut d, &pad("d").unwrap()[50..]), vec!["d"]);
    }

    #[test]
    fn split_never_ends_a_piece_with_whitespace() {
        let text = format!("{}  {}", "a".repeat(199), "b".repeat(10));
        let pieces = split_text(&text, 200, false);
        assert_eq!(
            pieces,
            vec!["a".repeat(199), format!("  {}", "b".repeat(10))]
        );
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn split_respects_char_boundaries() {
        let text = "é".repeat(150); // 300 bytes
        let pieces = split_text(&text, 199, false);
        assert!(pieces.iter().all(|p| p.len() <= 199));
        assert_eq!(pieces[0].len(), 198);
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn split_no_slash_never_starts_a_piece_with_slash() {
        let text = format!("{}/{}", "a".repeat(199), "b".repeat(50));
        let pieces = split_text(&text, 200, true);
        assert!(pieces.iter().skip(1).all(|p| !p.starts_with('/')));
        assert_eq!(pieces.concat(), text);
        let spaced = format!("{} /x", "a".repeat(199));
        let pieces = split_text(&spaced, 200, true);
        assert_eq!(pieces, vec!["a".repeat(199).as_str(), " /x"]);
    }

    #[test]
    fn split_all_whitespace_window_still_progresses() {
        let text = format!("a{}b", " ".repeat(300));
        let pieces = split_text(&text, 200, false);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.len() <= 200 && !p.is_empty()));
    }

    #[test]
    fn prefixed_frames_put_the_prefix_on_every_piece() {
        let body = format!("{} {}", "a".repeat(150), "é".repeat(60));
        let mut pieces = Vec::new();
        assert!(prefixed_frames(b"[Kay] ", &body, |f| pieces.push(decode(f).into_owned())));
        assert_eq!(pieces.len(), 2);
        let rebuilt: String = pieces
            .iter()
            .map(|p| p.strip_prefix("[Kay] ").unwrap())
            .collect();
        assert_eq!(rebuilt, body.trim_end());
        // A prefix that leaves no room for a 4-byte character: nothing is emitted.
        assert!(!prefixed_frames(&[b'x'; 197], "y", |_| panic!("emitted")));
    }

    #[test]
    fn pack_lines_fills_frames_with_whole_lines() {
        let lines: Vec<String> = (0..30).map(|i| format!("line number {i:02}")).collect();
        let frames = pack_lines(lines.iter().map(String::as_str));
        assert!(frames.iter().all(|f| f.len() <= FRAME_LEN));
        // 14 bytes a line + 1 for the newline: 13 lines fit in 200 bytes.
        assert_eq!(frames[0].lines().count(), 13);
        let rejoined: Vec<&str> = frames.iter().flat_map(|f| f.lines()).collect();
        assert_eq!(rejoined, lines);
    }

    #[test]
    fn pack_lines_cuts_a_long_line() {
        let long = "x".repeat(450);
        let frames = pack_lines(["short", long.as_str()]);
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], "short");
        assert_eq!(frames[1..].concat(), long);
    }

    // ---- Fuzz tests (see `crate::hub::fuzz::run` for FUZZ_SECS and FUZZ_SEED) ----------------

    use crate::hub::fuzz::{forbidden, odd_text, run};
    use rand::rngs::SmallRng;
    use rand::Rng;
    use std::time::Duration;

    /// Text made of pieces that matter to cutting: odd characters, runs of whitespace and of
    /// slashes, long words.
    fn cut_text(rng: &mut SmallRng) -> String {
        let mut text = String::new();
        for _ in 0..rng.random_range(0..8) {
            match rng.random_range(0..4) {
                0 => text.push_str(&odd_text(rng, 60)),
                1 => text.push_str(&" ".repeat(rng.random_range(1..250))),
                2 => text.push_str(&"/".repeat(rng.random_range(1..5))),
                _ => text.push_str(&"é".repeat(rng.random_range(1..120))),
            }
        }
        text
    }

    /// A valid cut of `text` for `max` and `no_slash`, as section 1 has it.
    fn good_cut(text: &str, cut: usize, no_slash: bool) -> bool {
        text.is_char_boundary(cut)
            && cut > 0
            && !text[..cut].ends_with(char::is_whitespace)
            && !(no_slash && text[cut..].starts_with('/'))
    }

    #[test]
    fn frame_decoder_fuzz() {
        run(
            "frame_decoder_fuzz",
            Duration::from_millis(300),
            |rng, _| {
                let len = rng.random_range(0..2000);
                let mut data = vec![0u8; len];
                rng.fill(&mut data[..]);
                let mut d = FrameDecoder::new();
                let mut got: Vec<Frame> = Vec::new();
                let mut pos = 0;
                let mut feeds = 0;
                while pos < data.len() {
                    let n = rng.random_range(0..=450).min(data.len() - pos);
                    d.feed(&data[pos..pos + n], |f| got.push(*f));
                    pos += n;
                    feeds += 1;
                    assert_eq!(d.buffered(), pos % FRAME_LEN);
                    assert_eq!(got.len(), pos / FRAME_LEN);
                }
                let want: Vec<&[u8]> = data.chunks_exact(FRAME_LEN).collect();
                assert_eq!(got.len(), want.len());
                assert!(got.iter().zip(want).all(|(g, w)| g[..] == *w));
                feeds
            },
        );
    }

    #[test]
    fn decode_clean_pad_fuzz() {
        run(
            "decode_clean_pad_fuzz",
            Duration::from_millis(300),
            |rng, _| {
                // Any bytes decode, padding removed and nothing else.
                let mut raw = [0u8; FRAME_LEN];
                rng.fill(&mut raw[..]);
                let decoded = decode(&raw);
                assert!(!decoded.ends_with([' ', '\t', '\r', '\n', '\0']));
                let end = raw
                    .iter()
                    .rposition(|b| !b" \t\r\n\0".contains(b))
                    .map_or(0, |i| i + 1);
                assert_eq!(decoded, String::from_utf8_lossy(&raw[..end]));
                // Text round-trips through a frame, less its trailing padding.
                let text = odd_text(rng, 80);
                match pad(&text) {
                    Ok(frame) => {
                        assert_eq!(
                            decode(&frame),
                            text.trim_end_matches([' ', '\t', '\r', '\n', '\0'])
                        )
                    }
                    Err(FrameError::TooLong(n)) => assert!(n == text.len() && n > FRAME_LEN),
                }
                // Cleaning removes exactly what section 1 says, and only that.
                let cleaned = clean(&text);
                let kept: String = text
                    .chars()
                    .filter(|&c| !forbidden(c) && c != '\n')
                    .collect();
                assert_eq!(cleaned, kept, "{text:?}");
                assert_eq!(clean(&cleaned), cleaned);
                1
            },
        );
    }

    #[test]
    fn split_text_fuzz() {
        run("split_text_fuzz", Duration::from_millis(300), |rng, _| {
            let text = cut_text(rng);
            let max = rng.random_range(1..=250);
            let no_slash = rng.random_bool(0.5);
            let pieces = split_text(&text, max, no_slash);
            assert_eq!(pieces.concat(), text, "nothing lost or added");
            let mut rest = text.as_str();
            for (i, piece) in pieces.iter().enumerate() {
                assert!(!piece.is_empty());
                let first = piece.chars().next().map_or(0, char::len_utf8);
                assert!(piece.len() <= max.max(first), "{} > {max}", piece.len());
                if i + 1 < pieces.len() {
                    let cut = piece.len();
                    // The cut is the last good one within `max`, or, when there is none, the
                    // last character boundary.
                    let goods: Vec<usize> = (1..=max.min(rest.len()))
                        .filter(|&c| good_cut(rest, c, no_slash))
                        .collect();
                    match goods.last() {
                        Some(&best) => assert_eq!(cut, best, "{rest:?} max {max}"),
                        None => {
                            let mut hard = max;
                            while !rest.is_char_boundary(hard) {
                                hard -= 1;
                            }
                            assert_eq!(cut, hard.max(first), "{rest:?} max {max}");
                        }
                    }
                }
                rest = &rest[piece.len()..];
            }
            pieces.len() as u64
        });
    }

    #[test]
    fn pack_lines_fuzz() {
        run("pack_lines_fuzz", Duration::from_millis(300), |rng, _| {
            let lines: Vec<String> = (0..rng.random_range(0..30))
                .map(|_| cut_text(rng).replace('\n', ""))
                .collect();
            let frames = pack_lines(lines.iter().map(String::as_str));
            let pieces: Vec<&str> = lines
                .iter()
                .flat_map(|l| split_text(l, FRAME_LEN, false))
                .collect();
            let got: Vec<&str> = frames.iter().flat_map(|f| f.split('\n')).collect();
            assert_eq!(
                got, pieces,
                "the lines, in order, cut where split_text cuts"
            );
            for (i, f) in frames.iter().enumerate() {
                assert!(!f.is_empty() && f.len() <= FRAME_LEN, "{f:?}");
                if let Some(next) = frames.get(i + 1) {
                    // As many whole lines per frame as fit.
                    let first = next.split('\n').next().unwrap_or_default();
                    assert!(f.len() + 1 + first.len() > FRAME_LEN);
                }
            }
            frames.len() as u64
        });
    }

    #[test]
    fn prefixed_frames_fuzz() {
        run(
            "prefixed_frames_fuzz",
            Duration::from_millis(300),
            |rng, _| {
                let prefix = odd_text(rng, 70).into_bytes();
                let body = cut_text(rng);
                let mut frames: Vec<Frame> = Vec::new();
                let fitted = prefixed_frames(&prefix, &body, |f| frames.push(*f));
                assert_eq!(fitted, prefix.len() + 4 <= FRAME_LEN);
                if !fitted {
                    assert!(frames.is_empty());
                    return 1;
                }
                let pieces = split_text(&body, FRAME_LEN - prefix.len(), false);
                assert_eq!(frames.len(), pieces.len());
                for (f, piece) in frames.iter().zip(pieces) {
                    let mut want = prefix.clone();
                    want.extend_from_slice(piece.as_bytes());
                    want.resize(FRAME_LEN, b' ');
                    assert_eq!(f[..], want[..]);
                }
                frames.len() as u64
            },
        );
    }
}
