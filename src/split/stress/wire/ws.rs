//! The chat over WebSocket (PROTOCOL.md section 8), client side: `GET /ws` upgraded, then each
//! frame's text (padding removed) as one masked text message, and each message from the
//! server (one frame's text, padding removed) padded back into a frame.
//!
//! tungstenite does the upgrade and everything the client writes (masked messages, pongs, the
//! close). It is driven sans-I/O: it reads from and writes to a [`MemStream`] here, an
//! in-memory pipe that says `WouldBlock` when it has nothing more, which tungstenite handles as
//! a non-blocking socket. So the bytes themselves go through the stress tool's own sockets,
//! plain or TLS, cut into random pieces like every other protocol's.
//!
//! What the server sends after the upgrade is read here instead ([`Incoming`]), in place from
//! each read's bytes, with RFC 6455's rules for a client (section 5: no mask, no reserved
//! bits or opcodes, control frames whole and short, fragments in order, text in UTF-8).
//! tungstenite's reader copies every read into a 128 KiB buffer it zeroes first, then each
//! message twice more: at a few million messages a second the load tool measured itself, not
//! the server (a third of plain frames' deliveries per second, with the server's core idle).

use std::io::{self, Read, Write};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::http::HeaderValue;
use tungstenite::{Bytes, Message, WebSocket};

use super::{emit_text, unpadded, WireError, WsTarget};
use crate::frame::Frame;

/// The path of the chat's WebSocket.
pub const WS_PATH: &str = "/ws";

/// The longest frame, and message, accepted from the server (the chat's are at most 200
/// bytes of text).
const MAX_MESSAGE: usize = 1 << 20;

/// An in-memory stream: reads what was pushed into it (then `WouldBlock`), and collects what is
/// written to it.
#[derive(Debug, Default)]
pub struct MemStream {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
    /// During the upgrade: each read ends at the end of a line, so that the handshake stops
    /// reading exactly at the end of the response head and what follows stays here.
    by_line: bool,
}

impl MemStream {
    fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Takes what was pushed and not read.
    fn take_unread(&mut self) -> Vec<u8> {
        let rest = self.input.split_off(self.pos);
        self.input.clear();
        self.pos = 0;
        rest
    }

    /// Moves what was written onto `out`.
    fn drain_into(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.output);
        } else {
            out.append(&mut self.output);
        }
    }
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut left = &self.input[self.pos..];
        if left.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.by_line {
            if let Some(end) = memchr::memchr(b'\n', left) {
                left = &left[..=end];
            }
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Handshake = MidHandshake<ClientHandshake<MemStream>>;

#[derive(Debug)]
enum State {
    /// The upgrade request is being written or its answer read.
    Upgrading(Box<Handshake>),
    /// Messages flow.
    Open(Box<WebSocket<MemStream>>),
    /// The upgrade failed, or the stream ended.
    Done,
}

/// A WebSocket client's state.
#[derive(Debug)]
pub struct WsWire {
    state: State,
    /// Frames sent before the upgrade was answered.
    held: Vec<Frame>,
    /// The server's frames, once the upgrade is over.
    incoming: Incoming,
}

/// The reading side of an open WebSocket: the server's frames, parsed in place. Only a frame
/// cut by the end of a read is copied, and only until it is whole.
#[derive(Debug, Default)]
struct Incoming {
    /// A frame cut by the end of a read, so far.
    partial: Vec<u8>,
    /// A fragmented message's data so far.
    message: Vec<u8>,
    /// While a fragmented message goes on: whether it is text.
    fragmented: Option<bool>,
}

/// A frame's header: (FIN, opcode, header length, payload length); None until it is whole.
fn header(bytes: &[u8]) -> Result<Option<(bool, u8, usize, usize)>, WireError> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WireError::Frame(
            "a reserved bit is set, and no extension was agreed",
        ));
    }
    if b1 & 0x80 != 0 {
        return Err(WireError::Frame("the server masked a frame"));
    }
    let (head, len) = match b1 & 0x7f {
        126 => match bytes.get(2..4) {
            Some(&[a, b]) => (4, u64::from(u16::from_be_bytes([a, b]))),
            _ => return Ok(None),
        },
        127 => match bytes.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (10, u64::from_be_bytes(b)),
            None => return Ok(None),
        },
        n => (2, u64::from(n)),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(WireError::Frame("a frame of more than 1 MiB"));
    }
    Ok(Some((b0 & 0x80 != 0, b0 & 0x0f, head, len as usize)))
}

/// How many bytes the frame whose start is `partial` needs (its header first).
fn needed(partial: &[u8]) -> Result<usize, WireError> {
    Ok(match header(partial)? {
        Some((_, _, head, len)) => head + len,
        None if partial.len() < 2 => 2,
        None if partial[1] & 0x7f == 126 => 4,
        None => 10,
    })
}

impl Incoming {
    /// Handles bytes from the server; false once the server has closed the WebSocket (its
    /// close answered).
    fn receive(
        &mut self,
        mut bytes: &[u8],
        ws: &mut WebSocket<MemStream>,
        on_frame: &mut impl FnMut(&Frame),
    ) -> Result<bool, WireError> {
        if !self.partial.is_empty() {
            // Complete the cut frame with as few bytes as it needs.
            loop {
                let need = needed(&self.partial)?;
                let take = (need - self.partial.len()).min(bytes.len());
                self.partial.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.partial.len() < need {
                    return Ok(true);
                }
                if let Some((fin, op, head, len)) = header(&self.partial)? {
                    if self.partial.len() == head + len {
                        let mut frame = std::mem::take(&mut self.partial);
                        let open = self.frame(fin, op, &frame[head..], ws, on_frame)?;
                        frame.clear();
                        self.partial = frame;
                        if !open {
                            return Ok(false);
                        }
                        break;
                    }
                }
            }
        }
        while let Some((fin, op, head, len)) = header(bytes)? {
            if bytes.len() < head + len {
                break;
            }
            if !self.frame(fin, op, &bytes[head..head + len], ws, on_frame)? {
                return Ok(false);
            }
            bytes = &bytes[head + len..];
        }
        self.partial.extend_from_slice(bytes);
        Ok(true)
    }

    /// One whole frame; false for a close.
    fn frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: &[u8],
        ws: &mut WebSocket<MemStream>,
        on_frame: &mut impl FnMut(&Frame),
    ) -> Result<bool, WireError> {
        match opcode {
            0x1 | 0x2 => {
                if self.fragmented.is_some() {
                    return Err(WireError::Frame("a message began inside a fragmented one"));
                }
                if fin {
                    message(opcode == 0x1, payload, on_frame)?;
                } else {
                    self.fragmented = Some(opcode == 0x1);
                    self.message.clear();
                    self.message.extend_from_slice(payload);
                }
            }
            0x0 => {
                let Some(text) = self.fragmented else {
                    return Err(WireError::Frame("a continuation frame outside a message"));
                };
                if self.message.len() + payload.len() > MAX_MESSAGE {
                    return Err(WireError::Frame("a message of more than 1 MiB"));
                }
                self.message.extend_from_slice(payload);
                if fin {
                    self.fragmented = None;
                    message(text, &self.message, on_frame)?;
                }
            }
            0x8..=0xa if !fin || payload.len() > 125 => {
                return Err(WireError::Frame(
                    "a control frame cut in fragments or of more than 125 bytes",
                ));
            }
            // A ping is answered, a pong needs nothing, a close is answered and ends it.
            0x9 => ws.send(Message::Pong(Bytes::copy_from_slice(payload)))?,
            0xa => {}
            0x8 => {
                match ws.close(None) {
                    Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(WireError::WebSocket(e)),
                }
                return Ok(false);
            }
            _ => return Err(WireError::Frame("a reserved opcode")),
        }
        Ok(true)
    }
}

/// A whole message: a text one must be UTF-8. A binary one is not what the chat sends: it is
/// shown to the checks as it is, so that they flag it.
fn message(text: bool, data: &[u8], on_frame: &mut impl FnMut(&Frame)) -> Result<(), WireError> {
    if text && std::str::from_utf8(data).is_err() {
        return Err(WireError::Frame("a text message that is not UTF-8"));
    }
    emit_text(&[data], on_frame);
    Ok(())
}

/// The URI of the chat's WebSocket on `target`.
pub fn uri(target: &WsTarget) -> String {
    let scheme = if target.tls { "wss" } else { "ws" };
    format!("{scheme}://{}{WS_PATH}", authority(target))
}

/// `host:port`, an IPv6 address in brackets.
fn authority(target: &WsTarget) -> String {
    if target.host.contains(':') && !target.host.starts_with('[') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    }
}

/// The `Origin` the upgrade sends: the one asked for, or else the origin of the web client's
/// page on the same host and port, which the server accepts.
pub fn origin(target: &WsTarget) -> String {
    if let Some(origin) = &target.origin {
        return origin.clone();
    }
    let scheme = if target.tls { "https" } else { "http" };
    format!("{scheme}://{}", authority(target))
}

impl WsWire {
    /// A client of `target`; the request is written by [`WsWire::start`].
    pub fn new(target: &WsTarget) -> Result<WsWire, WireError> {
        let mut request = uri(target).into_client_request()?;
        let origin = HeaderValue::from_str(&origin(target))
            .map_err(|e| WireError::Upgrade(format!("bad origin: {e}")))?;
        request.headers_mut().insert("Origin", origin);
        let stream = MemStream {
            by_line: true,
            ..MemStream::default()
        };
        let mid = ClientHandshake::start(stream, request, None)?;
        Ok(WsWire {
            state: State::Upgrading(Box::new(mid)),
            held: Vec::new(),
            incoming: Incoming::default(),
        })
    }

    /// Writes the upgrade request onto `out`.
    pub fn start(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.advance(out, |_| {})
    }

    /// True once the server has answered the upgrade.
    pub fn established(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Sends a frame's text as one text message (held until the upgrade is answered).
    pub fn send(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), WireError> {
        match &mut self.state {
            State::Open(ws) => {
                let text = String::from_utf8_lossy(unpadded(frame)).into_owned();
                ws.send(Message::text(text))?;
                ws.get_mut().drain_into(out);
            }
            State::Upgrading(_) => self.held.push(*frame),
            State::Done => {}
        }
        Ok(())
    }

    /// Handles bytes from the server.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        mut on_frame: impl FnMut(&Frame),
    ) -> Result<(), WireError> {
        match &mut self.state {
            State::Upgrading(mid) => {
                mid.get_mut().get_mut().push(bytes);
                self.advance(out, &mut on_frame)
            }
            State::Open(_) => self.read_open(bytes, out, &mut on_frame),
            State::Done => Ok(()),
        }
    }

    /// The server's bytes on an open WebSocket; what it needs answered goes onto `out`.
    fn read_open(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        on_frame: &mut impl FnMut(&Frame),
    ) -> Result<(), WireError> {
        let State::Open(ws) = &mut self.state else {
            return Ok(());
        };
        let open = self.incoming.receive(bytes, ws, on_frame);
        match ws.flush() {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(WireError::WebSocket(e)),
        }
        ws.get_mut().drain_into(out);
        if !open? {
            // The close handshake is over: the server ends the stream next.
            self.state = State::Done;
        }
        Ok(())
    }

    /// Runs the handshake as far as the bytes so far allow, then reads what followed it.
    fn advance(
        &mut self,
        out: &mut Vec<u8>,
        mut on_frame: impl FnMut(&Frame),
    ) -> Result<(), WireError> {
        if let State::Upgrading(_) = self.state {
            let State::Upgrading(mid) = std::mem::replace(&mut self.state, State::Done) else {
                return Ok(());
            };
            match mid.handshake() {
                Ok((mut ws, _response)) => {
                    ws.get_mut().drain_into(out);
                    for frame in std::mem::take(&mut self.held) {
                        let text = String::from_utf8_lossy(unpadded(&frame)).into_owned();
                        ws.write(Message::text(text))?;
                    }
                    ws.flush()?;
                    ws.get_mut().drain_into(out);
                    // The head ended a read: what came after it is the first frames.
                    let rest = ws.get_mut().take_unread();
                    self.state = State::Open(Box::new(ws));
                    return self.read_open(&rest, out, &mut on_frame);
                }
                Err(HandshakeError::Interrupted(mut mid)) => {
                    mid.get_mut().get_mut().drain_into(out);
                    self.state = State::Upgrading(Box::new(mid));
                    return Ok(());
                }
                Err(HandshakeError::Failure(e)) => return Err(upgrade_error(e)),
            }
        }
        Ok(())
    }
}

/// Why the upgrade failed, in words: an HTTP refusal names its status.
fn upgrade_error(e: tungstenite::Error) -> WireError {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            WireError::Upgrade(format!(
                "the server answered HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ))
        }
        other => WireError::Upgrade(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, pad};
    use tungstenite::handshake::derive_accept_key;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    use tungstenite::protocol::frame::{Frame as WsFrame, FrameHeader};

    fn target(tls: bool) -> WsTarget {
        WsTarget {
            host: "127.0.0.1".into(),
            port: 4242,
            tls,
            origin: None,
        }
    }

    /// The request the client wrote, and the server's 101 answer to it.
    fn upgrade(wire: &mut WsWire) -> (String, Vec<u8>) {
        let mut out = Vec::new();
        wire.start(&mut out).unwrap();
        let request = String::from_utf8(out).unwrap();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        (request, answer.into_bytes())
    }

    /// A server's text message (unmasked), as bytes.
    fn server_text(text: &str) -> Vec<u8> {
        let frame = WsFrame::message(text.as_bytes().to_vec(), OpCode::Data(Data::Text), true);
        let mut bytes = Vec::new();
        frame.format(&mut bytes).unwrap();
        bytes
    }

    /// Parses the client's messages out of `bytes`: (masked, opcode, payload) each.
    fn client_frames(mut bytes: &[u8]) -> Vec<(bool, OpCode, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let mut cursor = io::Cursor::new(bytes);
            let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            let start = cursor.position() as usize;
            let len = len as usize;
            let mut payload = bytes[start..start + len].to_vec();
            if let Some(mask) = header.mask {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            frames.push((header.mask.is_some(), header.opcode, payload));
            bytes = &bytes[start + len..];
        }
        frames
    }

    #[test]
    fn the_upgrade_asks_for_the_chat_socket_with_the_pages_origin() {
        let mut wire = WsWire::new(&target(false)).unwrap();
        let (request, _) = upgrade(&mut wire);
        assert!(request.starts_with("GET /ws HTTP/1.1\r\n"), "{request}");
        for line in [
            "Host: 127.0.0.1:4242",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Origin: http://127.0.0.1:4242",
        ] {
            assert!(request.lines().any(|l| l == line), "{line} in {request}");
        }
        assert!(request.ends_with("\r\n\r\n"));
        let tls = WsWire::new(&target(true)).unwrap();
        drop(tls);
        assert_eq!(uri(&target(true)), "wss://127.0.0.1:4242/ws");
        assert_eq!(origin(&target(true)), "https://127.0.0.1:4242");
        let v6 = WsTarget {
            host: "::1".into(),
            port: 80,
            tls: false,
            origin: None,
        };
        assert_eq!(uri(&v6), "ws://[::1]:80/ws");
    }

    #[test]
    fn an_origin_asked_for_replaces_the_pages_own() {
        let other = WsTarget {
            origin: Some("https://elsewhere.example".into()),
            ..target(false)
        };
        let mut wire = WsWire::new(&other).unwrap();
        let (request, _) = upgrade(&mut wire);
        assert!(
            request
                .lines()
                .any(|l| l == "Origin: https://elsewhere.example"),
            "{request}"
        );
        assert!(!request.contains("Origin: http://127.0.0.1"), "{request}");
    }

    #[test]
    fn frames_wait_for_the_upgrade_then_go_as_masked_text_messages() {
        let mut wire = WsWire::new(&target(false)).unwrap();
        let (_, answer) = upgrade(&mut wire);
        let mut out = Vec::new();
        wire.send(&pad("alice").unwrap(), &mut out).unwrap();
        assert!(out.is_empty(), "held until the upgrade is answered");
        assert!(!wire.established());
        // The answer and a first message in one read, cut anywhere.
        let bytes = [answer, server_text("[bob] hi")].concat();
        let mut got = Vec::new();
        for piece in bytes.chunks(5) {
            wire.receive(piece, &mut out, |f| got.push(*f)).unwrap();
        }
        assert!(wire.established());
        assert_eq!(got, vec![pad("[bob] hi").unwrap()]);
        wire.send(&pad("/join room").unwrap(), &mut out).unwrap();
        let frames = client_frames(&out);
        assert_eq!(
            frames,
            vec![
                (true, OpCode::Data(Data::Text), b"alice".to_vec()),
                (true, OpCode::Data(Data::Text), b"/join room".to_vec()),
            ]
        );
    }

    #[test]
    fn a_full_frame_of_text_uses_the_16_bit_length_and_comes_back_intact() {
        let mut wire = WsWire::new(&target(false)).unwrap();
        let (_, answer) = upgrade(&mut wire);
        let mut out = Vec::new();
        wire.receive(&answer, &mut out, |_| {}).unwrap();
        out.clear();
        let text = "x".repeat(200);
        wire.send(&pad(&text).unwrap(), &mut out).unwrap();
        assert_eq!(out[1] & 0x7f, 126, "16-bit length for 200 bytes");
        assert_eq!(client_frames(&out)[0].2, text.as_bytes());
        let mut got = Vec::new();
        wire.receive(&server_text(&text), &mut out, |f| {
            got.push(decode(f).into_owned())
        })
        .unwrap();
        assert_eq!(got, vec![text]);
    }

    #[test]
    fn a_ping_is_answered_with_a_pong() {
        let mut wire = WsWire::new(&target(false)).unwrap();
        let (_, answer) = upgrade(&mut wire);
        let mut out = Vec::new();
        wire.receive(&answer, &mut out, |_| {}).unwrap();
        out.clear();
        let ping = WsFrame::ping(b"tick".to_vec());
        let mut bytes = Vec::new();
        ping.format(&mut bytes).unwrap();
        wire.receive(&bytes, &mut out, |_| panic!("no frame"))
            .unwrap();
        assert_eq!(
            client_frames(&out),
            vec![(
                true,
                OpCode::Control(tungstenite::protocol::frame::coding::Control::Pong),
                b"tick".to_vec()
            )]
        );
    }

    /// A client whose upgrade is over.
    fn open_wire() -> WsWire {
        let mut wire = WsWire::new(&target(false)).unwrap();
        let (_, answer) = upgrade(&mut wire);
        let mut out = Vec::new();
        wire.receive(&answer, &mut out, |_| {}).unwrap();
        assert!(wire.established());
        wire
    }

    /// A server frame, formatted by tungstenite.
    fn server_frame(frame: WsFrame) -> Vec<u8> {
        let mut bytes = Vec::new();
        frame.format(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn messages_cut_anywhere_and_fragmented_come_out_whole_and_in_order() {
        let first = WsFrame::message(b"[a] one ".to_vec(), OpCode::Data(Data::Text), false);
        let cont = WsFrame::message(b"two".to_vec(), OpCode::Data(Data::Continue), false);
        let last = WsFrame::message(b" three".to_vec(), OpCode::Data(Data::Continue), true);
        let long = "y".repeat(200);
        let bytes = [
            server_text("[b] short"),
            server_frame(first),
            server_frame(WsFrame::ping(b"p".to_vec())),
            server_frame(cont),
            server_frame(last),
            server_text(&long),
            server_frame(WsFrame::message(
                vec![b'z'; 70_000],
                OpCode::Data(Data::Text),
                true,
            )),
        ]
        .concat();
        for cut in [1, 2, 3, 7, 200, bytes.len()] {
            let mut wire = open_wire();
            let mut out = Vec::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(cut) {
                wire.receive(piece, &mut out, |f| got.push(decode(f).into_owned()))
                    .unwrap();
            }
            assert_eq!(got.len(), 3 + 350, "cut {cut}");
            assert_eq!(got[..3], ["[b] short", "[a] one two three", long.as_str()]);
            assert!(got[3..].iter().all(|f| f == &"z".repeat(200)), "cut {cut}");
            // The ping in the middle of the fragments was answered.
            assert_eq!(
                client_frames(&out),
                vec![(
                    true,
                    OpCode::Control(tungstenite::protocol::frame::coding::Control::Pong),
                    b"p".to_vec()
                )],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_close_is_answered_and_ends_the_reading() {
        let mut wire = open_wire();
        let mut out = Vec::new();
        let close = server_frame(WsFrame::close(None));
        let after = server_text("[late] never seen");
        let mut got = Vec::new();
        wire.receive(&[close, after].concat(), &mut out, |f| got.push(*f))
            .unwrap();
        assert!(got.is_empty());
        let frames = client_frames(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0].1,
            OpCode::Control(tungstenite::protocol::frame::coding::Control::Close)
        );
        assert!(frames[0].0, "masked");
    }

    #[test]
    fn frames_a_server_may_not_send_are_refused() {
        // FIN + text, MASK + length 2, the mask, the masked "hi".
        let masked = vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let orphan = server_frame(WsFrame::message(
            b"x".to_vec(),
            OpCode::Data(Data::Continue),
            true,
        ));
        let not_utf8 = server_frame(WsFrame::message(
            vec![0xff, 0xfe],
            OpCode::Data(Data::Text),
            true,
        ));
        for (bytes, why) in [
            (masked, "WebSocket: the server masked a frame"),
            (orphan, "WebSocket: a continuation frame outside a message"),
            (not_utf8, "WebSocket: a text message that is not UTF-8"),
            (vec![0x83, 0x00], "WebSocket: a reserved opcode"),
            (
                vec![0xc1, 0x00],
                "WebSocket: a reserved bit is set, and no extension was agreed",
            ),
            (
                vec![0x09, 0x00],
                "WebSocket: a control frame cut in fragments or of more than 125 bytes",
            ),
            (
                vec![0x81, 0x7f, 0, 0, 0, 0, 0, 0x20, 0, 0],
                "WebSocket: a frame of more than 1 MiB",
            ),
        ] {
            let mut wire = open_wire();
            let mut out = Vec::new();
            let err = wire.receive(&bytes, &mut out, |_| {}).unwrap_err();
            assert_eq!(err.to_string(), why);
        }
    }

    #[test]
    fn a_refused_upgrade_names_the_status() {
        let mut wire = WsWire::new(&target(false)).unwrap();
        let _ = upgrade(&mut wire);
        let mut out = Vec::new();
        let refusal = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        let err = wire.receive(refusal, &mut out, |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the WebSocket upgrade failed: the server answered HTTP 403 Forbidden"
        );
    }

    #[test]
    fn a_wrong_accept_key_is_refused() {
        let mut wire = WsWire::new(&target(false)).unwrap();
        let _ = upgrade(&mut wire);
        let mut out = Vec::new();
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSBrZXk=\r\n\r\n";
        let err = wire.receive(answer, &mut out, |_| {}).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the WebSocket upgrade failed: "),
            "{err}"
        );
        assert!(!wire.established());
    }
}
