//! What a stress connection speaks above its transport: the course's 200-byte frames, the chat
//! over WebSocket (`--proto ws`), or IRC (`--proto irc`). Sans-I/O: bytes in, bytes out.
//!
//! The rest of the tool thinks in frames whatever the protocol: it sends the frames a frame
//! client would send (its name, `/create C`, `/join C`, a sync command, messages) and checks
//! the frames a frame client would get. A [`Wire`] translates both ways, so that every check
//! (exactly once, in order, byte for byte) is the same on every protocol:
//! - frames: as they are;
//! - WebSocket ([`ws`]): each frame's text, padding removed, as one masked text message; each
//!   message from the server padded back into a frame;
//! - IRC ([`irc`]): the name becomes `NICK`/`USER` (the rest waits for `001`), `/join C` becomes
//!   `JOIN #C` (IRC's JOIN creates, so `/create` says nothing), a message `PRIVMSG #C :text`,
//!   and any other command a `PING` whose `PONG` stands for the frame server's reply to an
//!   unknown command; a relayed `PRIVMSG` comes back as `[nick] text`, a `JOIN`, `PART` or
//!   `QUIT` of someone else as `nick has joined` / `nick has left`.

pub mod irc;
pub mod ws;

use std::fmt;

use crate::frame::{Frame, FrameDecoder, FRAME_LEN};

/// Which protocol the stress clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    /// The course's 200-byte frames.
    #[default]
    Frames,
    /// The chat over WebSocket, `ws://HOST:PORT/ws` (`wss://` inside TLS).
    Ws,
    /// IRC; channel `C` is `#C`.
    Irc,
}

impl Proto {
    /// The name used on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Frames => "frames",
            Proto::Ws => "ws",
            Proto::Irc => "irc",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a connection's protocol cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The WebSocket upgrade was refused or malformed.
    #[error("the WebSocket upgrade failed: {0}")]
    Upgrade(String),
    /// The WebSocket stream broke a rule of RFC 6455.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// A frame from the server broke a rule of RFC 6455 (section 5).
    #[error("WebSocket: {0}")]
    Frame(&'static str),
    /// An IRC line longer than any server may send.
    #[error("the server sent an IRC line of more than {0} bytes")]
    LineTooLong(usize),
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Wire {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Frames(FrameDecoder),
    Ws(Box<ws::WsWire>),
    Irc(Box<irc::IrcWire>),
}

/// Where a WebSocket client connects: the host and port as given (for `Host` and `Origin`),
/// and whether TLS carries it (`wss://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsTarget {
    /// The host as given on the command line.
    pub host: String,
    /// The port.
    pub port: u16,
    /// `wss://` rather than `ws://`.
    pub tls: bool,
    /// The `Origin` to send instead of the page's own (a page of another site, which the
    /// server must refuse unless `--web-origin` allows it).
    pub origin: Option<String>,
}

impl Wire {
    /// The course's frames.
    pub fn frames() -> Wire {
        Wire {
            inner: Inner::Frames(FrameDecoder::new()),
        }
    }

    /// A WebSocket client of `target`.
    pub fn ws(target: &WsTarget) -> Result<Wire, WireError> {
        Ok(Wire {
            inner: Inner::Ws(Box::new(ws::WsWire::new(target)?)),
        })
    }

    /// An IRC client.
    pub fn irc() -> Wire {
        Wire {
            inner: Inner::Irc(Box::new(irc::IrcWire::new())),
        }
    }

    /// What to write as soon as the connection is up (the WebSocket upgrade request).
    pub fn start(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
        match &mut self.inner {
            Inner::Frames(_) | Inner::Irc(_) => Ok(()),
            Inner::Ws(ws) => ws.start(out),
        }
    }

    /// True once the protocol's own handshake is over (frames: at once; WebSocket: the
    /// upgrade answered; IRC: `001` received). Until then a client must read even if it is
    /// one that never reads, and what it sends is held.
    pub fn established(&self) -> bool {
        match &self.inner {
            Inner::Frames(_) => true,
            Inner::Ws(ws) => ws.established(),
            Inner::Irc(irc) => irc.established(),
        }
    }

    /// Queues one frame, translated into this protocol's bytes, onto `out`.
    #[inline]
    pub fn send(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), WireError> {
        match &mut self.inner {
            Inner::Frames(_) => {
                out.extend_from_slice(frame);
                Ok(())
            }
            Inner::Ws(ws) => ws.send(frame, out),
            Inner::Irc(irc) => {
                irc.send(frame, out);
                Ok(())
            }
        }
    }

    /// Handles bytes from the server: every frame they hold (in the frame protocol's view) goes
    /// to `on_frame`, in order; what must be answered (IRC's PONG, WebSocket control frames,
    /// output held until the handshake) is appended to `out`.
    #[inline]
    pub fn receive(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        mut on_frame: impl FnMut(&Frame),
    ) -> Result<(), WireError> {
        self.receive_incoming(bytes, out, |incoming| incoming.frames(&mut on_frame))
    }

    /// [`Wire::receive`], with a relayed message that needs no translation handed over as its
    /// parts (IRC's `PRIVMSG`), so that the checks need not pad it into a frame first.
    pub fn receive_incoming(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        mut on_incoming: impl FnMut(Incoming<'_>),
    ) -> Result<(), WireError> {
        match &mut self.inner {
            Inner::Frames(decoder) => {
                decoder.feed(bytes, |f| on_incoming(Incoming::Frame(f)));
                Ok(())
            }
            Inner::Ws(ws) => ws.receive(bytes, out, |f| on_incoming(Incoming::Frame(f))),
            Inner::Irc(irc) => irc.receive_incoming(bytes, out, on_incoming),
        }
    }
}

/// What a connection got, as a frame client would see it.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    /// A frame.
    Frame(&'a Frame),
    /// The frame `[name] text`, not made yet.
    Said { name: &'a [u8], text: &'a [u8] },
}

impl Incoming<'_> {
    /// The frames it stands for (a `Said` longer than a frame is cut, as a frame server
    /// would never send it; the checks then flag it).
    pub fn frames(self, mut on_frame: impl FnMut(&Frame)) {
        match self {
            Incoming::Frame(f) => on_frame(f),
            Incoming::Said { name, text } => emit_text(&[b"[", name, b"] ", text], on_frame),
        }
    }
}

/// Text as frames, the way a frame server would send it: one padded frame if it fits, else
/// cut into 200-byte frames (only a faulty server sends that; the checks then flag it).
#[inline]
pub(crate) fn emit_text(parts: &[&[u8]], mut on_frame: impl FnMut(&Frame)) {
    let mut frame = [b' '; FRAME_LEN];
    let mut len = 0;
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            if len == FRAME_LEN {
                on_frame(&frame);
                frame = [b' '; FRAME_LEN];
                len = 0;
            }
            let n = rest.len().min(FRAME_LEN - len);
            frame[len..len + n].copy_from_slice(&rest[..n]);
            len += n;
            rest = &rest[n..];
        }
    }
    on_frame(&frame);
}

/// The bytes of a frame without its padding (trailing spaces, tabs, CR, LF and NUL).
pub(crate) fn unpadded(frame: &Frame) -> &[u8] {
    let end = frame
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0))
        .map_or(0, |i| i + 1);
    &frame[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, pad};

    #[test]
    fn frames_pass_through_and_are_cut_anywhere() {
        let mut wire = Wire::frames();
        assert!(wire.established());
        let mut out = Vec::new();
        wire.send(&pad("hello").unwrap(), &mut out).unwrap();
        assert_eq!(out, pad("hello").unwrap());
        let bytes = [pad("a").unwrap(), pad("b").unwrap()].concat();
        let mut got = Vec::new();
        for piece in bytes.chunks(7) {
            wire.receive(piece, &mut out, |f| got.push(decode(f).into_owned()))
                .unwrap();
        }
        assert_eq!(got, ["a", "b"]);
    }

    #[test]
    fn text_longer_than_a_frame_is_cut_into_frames() {
        let mut got = Vec::new();
        emit_text(&[b"[x] ", &[b'y'; 300]], |f| got.push(*f));
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0][..4], b"[x] ");
        assert_eq!(unpadded(&got[1]), &[b'y'; 104][..]);
        let mut one = Vec::new();
        emit_text(&[b"abc"], |f| one.push(*f));
        assert_eq!(one, vec![pad("abc").unwrap()]);
    }
}
