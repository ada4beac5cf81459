//! The WebSocket side of the web port (RFC 6455, after the 101).
//!
//! tungstenite reads the client's frames from an in-memory pipe that [`Socket::feed`] fills:
//! unmasking, fragments, control frames, UTF-8, the size bounds and the close handshake are
//! its. Its replies (pongs, the answer to a close) land in the pipe's other half and are moved
//! to the caller's output. The server's own frames (text messages and its close) are written
//! here: unmasked, never fragmented, each at most a few bytes of header and one frame's text.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error, Message, WebSocket};

use super::WebClose;
use crate::frame::FRAME_LEN;

/// The longest message a client may send, in bytes: one frame's text.
pub const MAX_MESSAGE: usize = FRAME_LEN;

/// How much tungstenite reads from the pipe at a time; small, since its buffer is allocated
/// per connection and messages are small.
const READ_CHUNK: usize = 1024;

/// Close codes of RFC 6455 7.4.1 and the IANA registry.
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going down.
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// A kind of data the endpoint does not accept (binary, here).
    pub const UNSUPPORTED: u16 = 1003;
    /// Text that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A message that breaks the endpoint's policy.
    pub const POLICY: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// The server is overloaded: try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Both directions of the connection as buffers: what the client sent and tungstenite has not
/// read yet, and what tungstenite wrote for the client.
#[derive(Debug, Default)]
struct Pipe {
    input: VecDeque<u8>,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ok(0) would tell tungstenite the peer hung up; no bytes yet is "would block".
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.input.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The server's end of an upgraded connection.
#[derive(Debug)]
pub struct Socket {
    ws: WebSocket<Pipe>,
}

impl Socket {
    /// A WebSocket whose client has already sent `first` (the bytes after the upgrade's head).
    pub fn new(first: Vec<u8>) -> Socket {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_CHUNK)
            // Pongs and close replies are written to the pipe at once, never held back.
            .write_buffer_size(0)
            .max_frame_size(Some(MAX_MESSAGE))
            .max_message_size(Some(MAX_MESSAGE));
        let pipe = Pipe {
            input: first.into(),
            output: Vec::new(),
        };
        Socket {
            ws: WebSocket::from_raw_socket(pipe, Role::Server, Some(config)),
        }
    }

    /// Takes bytes from the client.
    pub fn feed(&mut self, data: &[u8]) {
        self.ws.get_mut().input.extend(data);
    }

    /// Bytes fed and not read by tungstenite yet.
    pub fn buffered(&self) -> usize {
        self.ws.get_ref().input.len()
    }

    /// The next text message, if a whole one is buffered; replies for the client are appended
    /// to `out`. Err: the connection is over (its close frame, if any, is in `out`).
    pub fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<String>, WebClose> {
        loop {
            let read = self.ws.read();
            // tungstenite queues the pong for a ping and the answer to a close; write them now.
            // Its error after a close only says the handshake is over, which `read` told.
            let _ = self.ws.flush();
            out.append(&mut self.ws.get_mut().output);
            let (close, why) = match read {
                Ok(Message::Text(text)) => return Ok(Some(text.as_str().to_owned())),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(frame)) => {
                    return Err(WebClose::ClientClosed(frame.map(|f| u16::from(f.code))))
                }
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Ok(Message::Binary(_)) => (code::UNSUPPORTED, WebClose::Binary),
                Err(Error::Capacity(_)) => (code::TOO_BIG, WebClose::TooLong),
                Err(Error::Utf8(_)) => (code::INVALID_DATA, WebClose::BadUtf8),
                Err(e) => (code::PROTOCOL, WebClose::Protocol(e.to_string().into())),
            };
            push_close(out, close);
            return Err(why);
        }
    }
}

/// Appends the header of a server's frame (FIN set, unmasked) with `opcode` and a payload of
/// `len` bytes.
fn push_header(buf: &mut Vec<u8>, opcode: u8, len: usize) {
    buf.push(0x80 | opcode);
    if len < 126 {
        buf.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        buf.push(126);
        buf.extend_from_slice(&len.to_be_bytes());
    } else {
        buf.push(127);
        buf.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends the header of a text message of `len` bytes; its UTF-8 text must follow.
pub fn push_text_header(buf: &mut Vec<u8>, len: usize) {
    push_header(buf, 0x1, len);
}

/// Appends one text message.
pub fn push_text(buf: &mut Vec<u8>, text: &str) {
    push_text_header(buf, text.len());
    buf.extend_from_slice(text.as_bytes());
}

/// Appends a close frame with `code` and no reason (the reason, when there is one, went
/// before it as a text message, which every client shows).
pub fn push_close(buf: &mut Vec<u8>, code: u16) {
    push_header(buf, 0x8, 2);
    buf.extend_from_slice(&code.to_be_bytes());
}
