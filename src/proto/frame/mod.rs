//! The course's frame protocol: 200-byte frames in, the hub's events rendered as exactly the
//! course's bytes out.

pub mod commands;

use crate::frame::{self, Frame, FRAME_LEN};
use crate::hub::{MsgKind, Out};
use crate::utils_errors as text;

pub use commands::handle;

/// Appends `line` to `buf` as frames (one, or several when it is longer than a frame).
fn push_line(buf: &mut Vec<u8>, line: &str) {
    push_lines(buf, [line]);
}

/// Appends lines packed into as few frames as hold them.
fn push_lines<'a>(buf: &mut Vec<u8>, lines: impl IntoIterator<Item = &'a str>) {
    for piece in frame::pack_lines(lines) {
        push_text(buf, &piece);
    }
}

/// Appends one text that fits in a frame, padded.
fn push_text(buf: &mut Vec<u8>, piece: &str) {
    let bytes = piece.as_bytes();
    let len = bytes.len().min(FRAME_LEN);
    buf.extend_from_slice(&bytes[..len]);
    buf.resize(buf.len() + (FRAME_LEN - len), b' ');
}

/// Appends `prefix` + `body` cut into frames that each begin with the prefix (or, when the
/// prefix leaves no room, the whole line packed like any long line).
fn push_prefixed(buf: &mut Vec<u8>, prefix: &[u8], body: &str) {
    let fitted = frame::prefixed_frames(prefix, body, |f: &Frame| buf.extend_from_slice(f));
    if !fitted {
        let line = format!("{}{body}", String::from_utf8_lossy(prefix));
        push_line(buf, &line);
    }
}

/// Renders an event as the course's frames, appended to `buf`. Allocation-free for a chat
/// message, the hot path.
pub fn render(out: &Out<'_>, buf: &mut Vec<u8>) {
    match *out {
        Out::Chat {
            from,
            text: body,
            kind,
            ..
        } => match kind {
            MsgKind::Chat | MsgKind::Notice => {
                // `[name] ` on the stack. A name is at most 32 characters (128 bytes), so the
                // prefix always leaves room.
                let name = from.name.as_bytes();
                let mut prefix = [0u8; FRAME_LEN];
                let n = name.len().min(FRAME_LEN - 3);
                prefix[0] = b'[';
                prefix[1..=n].copy_from_slice(&name[..n]);
                prefix[n + 1..n + 3].copy_from_slice(b"] ");
                push_prefixed(buf, &prefix[..n + 3], body);
            }
            MsgKind::Action => push_line(buf, &text::action_line(&from.name, body)),
        },
        Out::Private {
            from,
            to,
            text: body,
            kind,
        } => {
            let prefix = text::private_prefix(&from.name, to);
            match kind {
                MsgKind::Action => {
                    push_prefixed(buf, prefix.as_bytes(), &text::action_line(&from.name, body))
                }
                MsgKind::Chat | MsgKind::Notice => push_prefixed(buf, prefix.as_bytes(), body),
            }
        }
        Out::Joined { who, .. } => push_line(buf, &text::has_joined(&who.name)),
        Out::Parted { who, .. } | Out::Quit { who, .. } => {
            push_line(buf, &text::has_left(&who.name))
        }
        Out::Renamed { old, new } => push_line(buf, &text::now_known_as(&old.name, new)),
        Out::Reply { lines, .. } => push_lines(buf, lines.iter().copied()),
        // Bytes of another protocol never reach a frame client.
        Out::Raw(_) => {}
    }
}

/// Renders the reason a connection is being closed: one frame (or more if long).
pub fn render_reason(reason: &str, buf: &mut Vec<u8>) {
    push_line(buf, reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Person, ReplyKind};

    fn person(name: &str) -> Person {
        Person {
            name: name.into(),
            user: name.into(),
            host: "h".into(),
        }
    }

    fn texts(buf: &[u8]) -> Vec<String> {
        assert_eq!(buf.len() % FRAME_LEN, 0);
        buf.chunks(FRAME_LEN)
            .map(|f| frame::decode(f).into_owned())
            .collect()
    }

    #[test]
    fn every_event_renders_as_the_course_bytes() {
        let kay = person("Kay");
        let mut buf = Vec::new();
        let cases: Vec<(Out<'_>, &str)> = vec![
            (
                Out::Chat {
                    chan: "tas",
                    from: &kay,
                    text: "Hi!",
                    kind: MsgKind::Chat,
                },
                "[Kay] Hi!",
            ),
            (
                Out::Chat {
                    chan: "tas",
                    from: &kay,
                    text: "waves",
                    kind: MsgKind::Action,
                },
                "* Kay waves",
            ),
            (
                Out::Private {
                    from: &kay,
                    to: "Bob",
                    text: "psst",
                    kind: MsgKind::Chat,
                },
                "[Kay -> Bob] psst",
            ),
            (
                Out::Joined {
                    chan: "tas",
                    who: &kay,
                },
                "Kay has joined",
            ),
            (
                Out::Parted {
                    chan: "tas",
                    who: &kay,
                    msg: Some("bye"),
                },
                "Kay has left",
            ),
            (
                Out::Quit {
                    who: &kay,
                    msg: None,
                },
                "Kay has left",
            ),
            (
                Out::Renamed {
                    old: &kay,
                    new: "Kai",
                },
                "Kay is now known as Kai",
            ),
            (
                Out::Reply {
                    kind: ReplyKind::Plain,
                    lines: &["a", "b"],
                    to: Some("Kay"),
                },
                "a\nb",
            ),
        ];
        for (out, want) in cases {
            buf.clear();
            render(&out, &mut buf);
            assert_eq!(texts(&buf), [want], "{out:?}");
            // Exactly the padded bytes.
            let mut padded = want.as_bytes().to_vec();
            padded.resize(FRAME_LEN, b' ');
            assert_eq!(buf, padded);
        }
        buf.clear();
        render(&Out::Raw(b"PING x\r\n"), &mut buf);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_long_chat_keeps_its_prefix_on_every_frame() {
        let kay = person("Kay");
        let body = "word ".repeat(100);
        let mut buf = Vec::new();
        render(
            &Out::Chat {
                chan: "c",
                from: &kay,
                text: &body,
                kind: MsgKind::Chat,
            },
            &mut buf,
        );
        let frames = texts(&buf);
        assert!(frames.len() > 2);
        assert!(frames.iter().all(|f| f.starts_with("[Kay] ")));
    }
}
