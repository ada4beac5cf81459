//! The web port (`--web-port`): a small, strict HTTP/1.1 front that serves the web client's
//! page, then the chat over a WebSocket (RFC 6455) at `/ws`.
//!
//! Sans-I/O like the rest of the protocols: a [`WebConn`] is fed the plaintext bytes the loop
//! read (TLS, when configured, is a layer under it) and appends to `out` what the loop must
//! write. The chat inside the WebSocket is the frame protocol's: each text message from the
//! browser is one frame's text (at most 200 bytes, padded by the loop like any frame), and each
//! frame the frame protocol renders goes out as one text message without its padding
//! ([`render`]).
//!
//! - [`http`]: the request head, the page's files, the upgrade and its `Origin` check.
//! - [`ws`]: the WebSocket after the upgrade (tungstenite over in-memory buffers) and the
//!   server's own frames.
//! - [`assets`]: the page's files, built into the binary.
//!
//! # Driving a connection
//!
//! After each read from the socket, [`WebConn::feed`] the bytes, then call [`WebConn::next`]
//! until it gives `Ok(None)` (it needs more bytes: read again) or `Err` (write what is in `out`,
//! then close); each `Ok(Some(input))` goes to the hub. While the hub makes the connection
//! wait, stop calling `next` (and stop reading); the codec keeps what it was fed, and calling
//! `next` again later carries on where it stopped. Memory per connection is what `feed` was
//! given and not consumed yet, plus a few small buffers (at most ~1 KiB read ahead inside
//! tungstenite and one message of 200 bytes).

pub mod assets;
pub mod http;
pub mod ws;

use std::borrow::Cow;
use std::sync::Arc;

use crate::frame::FRAME_LEN;
use crate::hub::Out;
use crate::proto::frame;
use crate::utils_errors as text;

pub use assets::Asset;
pub use http::{normalize_origin, MAX_HEAD, WS_PATH};
pub use ws::MAX_MESSAGE;

/// What a web connection gives the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebInput {
    /// One WebSocket text message: one frame's text for the chat.
    Message(String),
}

/// Why a web connection must now close, once `out` is written. Its text is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebClose {
    /// A file of the page was served; every response but the upgrade closes the connection.
    #[error("served {0}")]
    Served(&'static str),
    /// 400: the head is malformed, or asks for something this server does not do.
    #[error("400 Bad Request: {0}")]
    BadRequest(&'static str),
    /// 403: a WebSocket upgrade from a page of another origin.
    #[error("403 Forbidden: a WebSocket upgrade from origin {0:?}")]
    BadOrigin(Box<str>),
    /// 404: no such file.
    #[error("404 Not Found")]
    NotFound,
    /// 405: the path is served, but not to this method.
    #[error("405 Method Not Allowed (allowed: {allow})")]
    MethodNotAllowed {
        /// The methods the path allows, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// 426: a WebSocket upgrade for a version other than 13.
    #[error("426 Upgrade Required: WebSocket version {0:?}")]
    BadVersion(Box<str>),
    /// 431: the head did not end within [`MAX_HEAD`] bytes (or had too many headers).
    #[error("431 Request Header Fields Too Large: no end of the head within {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The client closed the WebSocket (its close was answered); the code it gave, if any.
    #[error("the client closed the WebSocket (code {0:?})")]
    ClientClosed(Option<u16>),
    /// A binary message (closed with 1003).
    #[error("a binary WebSocket message (closed with 1003)")]
    Binary,
    /// A message or frame over [`MAX_MESSAGE`] bytes (closed with 1009).
    #[error("a WebSocket message over {MAX_MESSAGE} bytes (closed with 1009)")]
    TooLong,
    /// A text message that is not UTF-8 (closed with 1007).
    #[error("a WebSocket text message that is not UTF-8 (closed with 1007)")]
    BadUtf8,
    /// Any other breach of RFC 6455 (closed with 1002).
    #[error("a WebSocket protocol error (closed with 1002): {0}")]
    Protocol(Box<str>),
    /// `next` was called again after it gave an error.
    #[error("the connection was already closed")]
    Closed,
}

impl WebClose {
    /// The HTTP status this close is answered with, if it is an HTTP refusal.
    pub fn http_status(&self) -> Option<(u16, &'static str)> {
        Some(match self {
            WebClose::BadRequest(_) => (400, "Bad Request"),
            WebClose::BadOrigin(_) => (403, "Forbidden"),
            WebClose::NotFound => (404, "Not Found"),
            WebClose::MethodNotAllowed { .. } => (405, "Method Not Allowed"),
            WebClose::BadVersion(_) => (426, "Upgrade Required"),
            WebClose::HeadTooLarge => (431, "Request Header Fields Too Large"),
            _ => return None,
        })
    }
}

/// The codec of one connection on the web port.
#[derive(Debug)]
pub struct WebConn {
    secure: bool,
    origins: Arc<[String]>,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Reading the request head; `fresh` when bytes came since it was last parsed.
    Head { buf: Vec<u8>, fresh: bool },
    /// Upgraded.
    Open(Box<ws::Socket>),
    /// Over: `next` gave its error.
    Closed,
}

impl WebConn {
    /// `secure`: the port speaks TLS (the page's own origin is then https://HOST). `origins`:
    /// extra allowed origins from --web-origin.
    pub fn new(secure: bool, origins: Arc<[String]>) -> WebConn {
        WebConn {
            secure,
            origins,
            state: State::Head {
                buf: Vec::new(),
                fresh: false,
            },
        }
    }

    /// Takes bytes read from the socket (the caller reads nothing more while `next` still
    /// yields inputs). Bytes after the close are dropped.
    pub fn feed(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Head { buf, fresh } => {
                buf.extend_from_slice(data);
                *fresh |= !data.is_empty();
            }
            State::Open(socket) => socket.feed(data),
            State::Closed => {}
        }
    }

    /// The next input for the hub, if a whole one is buffered; protocol bytes for the peer
    /// (HTTP responses, 101, pongs, close frames) are appended to `out`. Ok(None): needs more
    /// bytes. Err: close the connection once `out` is written.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<WebInput>, WebClose> {
        let step = match &mut self.state {
            State::Head { buf, fresh } => {
                if !*fresh {
                    return Ok(None);
                }
                *fresh = false;
                match http::handle(buf, self.secure, &self.origins, out) {
                    http::Head::Partial => return Ok(None),
                    http::Head::Upgrade(len) => Ok(buf.split_off(len)),
                    http::Head::Done(why) => Err(why),
                }
            }
            State::Open(socket) => match socket.next(out) {
                Ok(message) => return Ok(message.map(WebInput::Message)),
                Err(why) => Err(why),
            },
            State::Closed => return Err(WebClose::Closed),
        };
        match step {
            Ok(rest) => {
                self.state = State::Open(Box::new(ws::Socket::new(rest)));
                self.next(out)
            }
            Err(why) => {
                self.state = State::Closed;
                Err(why)
            }
        }
    }

    /// True once the WebSocket upgrade is done.
    pub fn is_upgraded(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Bytes fed and not consumed yet (for the loop's accounting of held input).
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Head { buf, .. } => buf.len(),
            State::Open(socket) => socket.buffered(),
            State::Closed => 0,
        }
    }
}

/// Renders a hub event for a WebSocket client: the frame protocol's rendering
/// ([`frame::render`]), each 200-byte frame with its padding removed sent as one unmasked text
/// message.
pub fn render(out: &Out<'_>, buf: &mut Vec<u8>) {
    let start = buf.len();
    frame::render(out, buf);
    frames_to_messages(buf, start);
}

/// The last words before the server closes: the reason as a text message (or several, cut as
/// frames are), then a close frame: 1001 (going away) for the shutdown, 1013 (try again later)
/// for a full server, 1008 (policy) for the rest (timeouts, passwords, a name taken over).
pub fn render_reason(reason: &str, buf: &mut Vec<u8>) {
    let start = buf.len();
    frame::render_reason(reason, buf);
    frames_to_messages(buf, start);
    let code = match reason {
        text::SHUTTING_DOWN => ws::code::GOING_AWAY,
        text::SERVER_FULL => ws::code::TRY_AGAIN_LATER,
        _ => ws::code::POLICY,
    };
    ws::push_close(buf, code);
}

/// A close without a reason (after `/quit`): the close frame 1000.
pub fn render_close(buf: &mut Vec<u8>) {
    ws::push_close(buf, ws::code::NORMAL);
}

/// Turns the frames at `buf[start..]` into text messages in place: each frame's text without
/// its padding becomes one message. The messages are built behind the frames (a message may be
/// longer than its text, by its header) and then moved down over them, so that the conversion
/// allocates nothing once `buf` has grown.
fn frames_to_messages(buf: &mut Vec<u8>, start: usize) {
    let end = buf.len();
    let mut at = start;
    while at + FRAME_LEN <= end {
        // The frame reader's own rule for the padding; a frame that is not UTF-8 (never
        // rendered, but a browser would fail the connection on it) goes out decoded lossily.
        let lossy = match crate::frame::decode(&buf[at..at + FRAME_LEN]) {
            Cow::Borrowed(text) => Err(text.len()),
            Cow::Owned(text) => Ok(text),
        };
        match lossy {
            Err(len) => {
                ws::push_text_header(buf, len);
                buf.extend_from_within(at..at + len);
            }
            Ok(text) => ws::push_text(buf, &text),
        }
        at += FRAME_LEN;
    }
    buf.copy_within(end.., start);
    buf.truncate(buf.len() - (end - start));
}

#[cfg(test)]
mod tests;
