//! The stress messages: what a sender writes, and how a receiver checks what the server relayed,
//! byte for byte, without allocating.
//!
//! A client's name is `s{run:04}-{index:06}` (no-read clients: `s{run:04}-n{index:05}`), so the
//! relayed prefix `[name] ` always has the same length and the message text fills the rest of
//! the frame exactly: `{sender:06}.{seq:010}.{sent_ns:019}.` then padding text chosen by
//! (sender, seq). The receiver parses the fields in place and compares every other byte with
//! what it must be.

use crate::frame::{Frame, FRAME_LEN};

/// The length of every stress client's name.
pub const NAME_LEN: usize = 12;
/// The length of the relayed prefix `[name] `.
pub const PREFIX_LEN: usize = NAME_LEN + 3;
/// The length of a message text: it fills the relayed frame exactly.
pub const TEXT_LEN: usize = FRAME_LEN - PREFIX_LEN;
/// The length of the fields at the start of the text.
pub const HEADER_LEN: usize = SENDER_DIGITS + 1 + SEQ_DIGITS + 1 + TS_DIGITS + 1;
/// The length of the padding text after the fields.
pub const PAD_LEN: usize = TEXT_LEN - HEADER_LEN;
/// The most clients (sender indexes have six digits).
pub const MAX_CLIENTS: usize = 999_999;
/// The most no-read clients.
pub const MAX_NO_READ: usize = 99_999;
/// Run ids have four digits.
pub const MAX_RUN: u16 = 9_999;

/// The largest timestamp a message can carry.
pub const MAX_NS: u64 = 9_999_999_999_999_999_999;

const SENDER_DIGITS: usize = 6;
const SEQ_DIGITS: usize = 10;
const TS_DIGITS: usize = 19;
const RUN_TAG_LEN: usize = 6; // "s1234-"
const PAD_OFFSETS: usize = 64;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A message's fields, as parsed from a relayed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// The sender's client index.
    pub sender: u32,
    /// The sender's sequence number, from 0.
    pub seq: u32,
    /// When it was encoded, in ns since the run's start (below 10^19).
    pub sent_ns: u64,
}

/// What a received frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// One of this run's messages, intact.
    Ours(Message),
    /// It claims to come from this run (`[s{run}-`) but some byte is wrong.
    Corrupt,
    /// Anything else: a notice (`X has joined`), a reply, another run's message.
    Foreign,
}

/// Encodes and verifies the messages of one run.
#[derive(Debug, Clone)]
pub struct Codec {
    run_tag: [u8; RUN_TAG_LEN],
    table: [u8; PAD_LEN + PAD_OFFSETS],
}

fn write_digits(buf: &mut [u8], mut v: u64) {
    for b in buf.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Parses up to 19 ASCII digits (so no overflow is possible), without a branch per digit.
#[inline]
fn parse_digits(buf: &[u8]) -> Option<u64> {
    debug_assert!(buf.len() <= 19);
    let mut value = 0u64;
    let mut bad = false;
    for &b in buf {
        let d = b.wrapping_sub(b'0');
        bad |= d > 9;
        value = value.wrapping_mul(10).wrapping_add(u64::from(d));
    }
    (!bad).then_some(value)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pad_offset(sender: u32, seq: u32) -> usize {
    let mut state = (u64::from(sender) << 32) | u64::from(seq);
    (splitmix(&mut state) % PAD_OFFSETS as u64) as usize
}

impl Codec {
    /// The codec of run `run` (0 to 9999; larger values are reduced).
    pub fn new(run: u16) -> Codec {
        let mut run_tag = *b"s0000-";
        write_digits(&mut run_tag[1..5], u64::from(run % (MAX_RUN + 1)));
        let mut table = [0u8; PAD_LEN + PAD_OFFSETS];
        let mut state = 0x5EED_C0DE;
        for b in table.iter_mut() {
            *b = ALPHABET[(splitmix(&mut state) % ALPHABET.len() as u64) as usize];
        }
        Codec { run_tag, table }
    }

    /// The name of client `index`.
    pub fn name(&self, index: usize) -> [u8; NAME_LEN] {
        let mut name = [0u8; NAME_LEN];
        name[..RUN_TAG_LEN].copy_from_slice(&self.run_tag);
        write_digits(&mut name[RUN_TAG_LEN..], index as u64);
        name
    }

    /// The name of no-read client `index`.
    pub fn no_read_name(&self, index: usize) -> [u8; NAME_LEN] {
        let mut name = [0u8; NAME_LEN];
        name[..RUN_TAG_LEN].copy_from_slice(&self.run_tag);
        name[RUN_TAG_LEN] = b'n';
        write_digits(&mut name[RUN_TAG_LEN + 1..], index as u64);
        name
    }

    /// The name of the run's responsiveness probe (see `stress::probe`).
    pub fn probe_name(&self) -> String {
        format!("{}probe", String::from_utf8_lossy(&self.run_tag))
    }

    /// True when `name` is one of this run's no-read clients.
    pub fn is_no_read_name(&self, name: &[u8]) -> bool {
        name.len() == NAME_LEN
            && name[..RUN_TAG_LEN] == self.run_tag
            && name[RUN_TAG_LEN] == b'n'
            && parse_digits(&name[RUN_TAG_LEN + 1..]).is_some()
    }

    /// Writes the frame a sender sends: the text, padded with spaces.
    pub fn encode(&self, msg: Message, out: &mut Frame) {
        let (text, padding) = out.split_at_mut(TEXT_LEN);
        padding.fill(b' ');
        let (sender, rest) = text.split_at_mut(SENDER_DIGITS);
        write_digits(sender, u64::from(msg.sender));
        rest[0] = b'.';
        write_digits(&mut rest[1..=SEQ_DIGITS], u64::from(msg.seq));
        let rest = &mut rest[SEQ_DIGITS + 1..];
        rest[0] = b'.';
        write_digits(&mut rest[1..=TS_DIGITS], msg.sent_ns);
        rest[TS_DIGITS + 1] = b'.';
        let off = pad_offset(msg.sender, msg.seq);
        rest[TS_DIGITS + 2..].copy_from_slice(&self.table[off..off + PAD_LEN]);
    }

    /// Checks a frame as the server relays it: `[name] text`, every byte.
    pub fn verify(&self, frame: &Frame) -> Verdict {
        if frame[0] != b'[' || frame[1..=RUN_TAG_LEN] != self.run_tag {
            return Verdict::Foreign;
        }
        if &frame[1 + NAME_LEN..PREFIX_LEN] != b"] " {
            return Verdict::Corrupt;
        }
        self.verify_text(&frame[1 + RUN_TAG_LEN..1 + NAME_LEN], &frame[PREFIX_LEN..])
    }

    /// [`Codec::verify`] of the frame `[name] text` without making it: `None` when that frame
    /// would not be exactly one of ours in shape (then make the frame and verify it).
    pub fn verify_said(&self, name: &[u8], text: &[u8]) -> Option<Verdict> {
        if name.len() != NAME_LEN || text.len() != TEXT_LEN || name[..RUN_TAG_LEN] != self.run_tag {
            return None;
        }
        Some(self.verify_text(&name[RUN_TAG_LEN..], text))
    }

    /// The checks after the prefix: the name's `digits`, and the `TEXT_LEN` bytes of `text`.
    fn verify_text(&self, digits: &[u8], text: &[u8]) -> Verdict {
        if text[..SENDER_DIGITS] != *digits {
            return Verdict::Corrupt;
        }
        let seps = [
            SENDER_DIGITS,
            SENDER_DIGITS + 1 + SEQ_DIGITS,
            HEADER_LEN - 1,
        ];
        if seps.iter().any(|&i| text[i] != b'.') {
            return Verdict::Corrupt;
        }
        let fields = (
            parse_digits(digits).and_then(|v| u32::try_from(v).ok()),
            parse_digits(&text[seps[0] + 1..seps[1]]).and_then(|v| u32::try_from(v).ok()),
            parse_digits(&text[seps[1] + 1..seps[2]]),
        );
        let (Some(sender), Some(seq), Some(sent_ns)) = fields else {
            return Verdict::Corrupt;
        };
        let off = pad_offset(sender, seq);
        if text[HEADER_LEN..] != self.table[off..off + PAD_LEN] {
            return Verdict::Corrupt;
        }
        Verdict::Ours(Message {
            sender,
            seq,
            sent_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server relays: `[name] ` then the text without its padding.
    fn relay(codec: &Codec, msg: Message) -> Frame {
        let mut sent = [0u8; FRAME_LEN];
        codec.encode(msg, &mut sent);
        let text = crate::frame::decode(&sent);
        let name = codec.name(msg.sender as usize);
        let line = format!("[{}] {text}", std::str::from_utf8(&name).unwrap());
        crate::frame::pad(&line).unwrap()
    }

    #[test]
    fn the_text_fills_the_relayed_frame_and_needs_no_cleaning() {
        let codec = Codec::new(4321);
        let msg = Message {
            sender: 17,
            seq: 5,
            sent_ns: 123_456_789,
        };
        let mut sent = [0u8; FRAME_LEN];
        codec.encode(msg, &mut sent);
        let text = crate::frame::decode(&sent);
        assert_eq!(text.len(), TEXT_LEN);
        assert!(text.starts_with("000017.0000000005.0000000000123456789."));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        assert_eq!(crate::frame::clean(&text), text);
        assert_eq!(&codec.name(17), b"s4321-000017");
        let relayed = relay(&codec, msg);
        assert_eq!(relayed[FRAME_LEN - 1], sent[TEXT_LEN - 1]);
    }

    #[test]
    fn encode_then_verify_round_trips() {
        let codec = Codec::new(7);
        for (sender, seq, ts) in [(0, 0, 0), (999_999, u32::MAX, MAX_NS), (42, 99, 5)] {
            let msg = Message {
                sender,
                seq,
                sent_ns: ts,
            };
            assert_eq!(codec.verify(&relay(&codec, msg)), Verdict::Ours(msg));
        }
    }

    #[test]
    fn every_corrupted_byte_is_detected() {
        let codec = Codec::new(12);
        let msg = Message {
            sender: 3,
            seq: 8,
            sent_ns: 1_000,
        };
        let good = relay(&codec, msg);
        for i in 0..FRAME_LEN {
            let mut bad = good;
            bad[i] ^= 0x01;
            let verdict = codec.verify(&bad);
            assert_ne!(verdict, Verdict::Ours(msg), "byte {i}");
            // A flipped timestamp digit is still a digit: the frame looks intact with another
            // time, which the tracker compares with the time it recorded when sending.
            if let Verdict::Ours(other) = verdict {
                assert!((PREFIX_LEN + 18..PREFIX_LEN + 37).contains(&i), "byte {i}");
                assert_eq!((other.sender, other.seq), (3, 8));
            }
        }
    }

    #[test]
    fn another_messages_padding_or_another_run_does_not_pass() {
        let codec = Codec::new(12);
        let a = relay(
            &codec,
            Message {
                sender: 3,
                seq: 8,
                sent_ns: 1,
            },
        );
        let b = relay(
            &codec,
            Message {
                sender: 3,
                seq: 9,
                sent_ns: 1,
            },
        );
        let mut mixed = a;
        mixed[PREFIX_LEN + HEADER_LEN..].copy_from_slice(&b[PREFIX_LEN + HEADER_LEN..]);
        // Different (sender, seq) almost always pick different padding; these two do.
        assert_ne!(pad_offset(3, 8), pad_offset(3, 9));
        assert_eq!(codec.verify(&mixed), Verdict::Corrupt);
        assert_eq!(Codec::new(13).verify(&a), Verdict::Foreign);
        let notice = crate::frame::pad("s0012-000003 has joined").unwrap();
        assert_eq!(codec.verify(&notice), Verdict::Foreign);
    }

    #[test]
    fn no_read_names_are_recognised() {
        let codec = Codec::new(55);
        assert_eq!(&codec.no_read_name(3), b"s0055-n00003");
        assert!(codec.is_no_read_name(&codec.no_read_name(3)));
        assert!(!codec.is_no_read_name(&codec.name(3)));
        assert!(!codec.is_no_read_name(&Codec::new(56).no_read_name(3)));
    }
}
