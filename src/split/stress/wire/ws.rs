//! The chat over WebSocket (PROTOCOL.md section 8), client side: `GET /ws` upgraded, then each
//! frame's text (padding removed) as one masked text message, and each message from the
//! server (one frame's text, padding removed) padded back into a frame.
//!
//! tungstenite does the upgrade and the framing (masking, control frames, the close
//! handshake, UTF-8 checks). It is driven sans-I/O: it reads from and writes to a [`MemStream`]
//! here, an in-memory pipe that says `WouldBlock` when it has nothing more, which tungstenite
//! handles as a non-blocking socket. So the bytes themselves go through the stress tool's own
//! sockets, plain or TLS, cut into random pieces like every other protocol's.

use std::io::{self, Read, Write};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::http::HeaderValue;
use tungstenite::{Message, WebSocket};

use super::{emit_text, unpadded, WireError, WsTarget};
use crate::frame::Frame;

/// The path of the chat's WebSocket.
pub const WS_PATH: &str = "/ws";

/// An in-memory stream: reads what was pushed into it (then `WouldBlock`), and collects what is
/// written to it.
#[derive(Debug, Default)]
pub struct MemStream {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

impl MemStream {
    fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
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
        let left = &self.input[self.pos..];
        if left.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
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
        let mid = ClientHandshake::start(MemStream::default(), request, None)?;
        Ok(WsWire {
            state: State::Upgrading(Box::new(mid)),
            held: Vec::new(),
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
            State::Upgrading(mid) => mid.get_mut().get_mut().push(bytes),
            State::Open(ws) => ws.get_mut().push(bytes),
            State::Done => return Ok(()),
        }
        self.advance(out, &mut on_frame)
    }

    /// Runs the handshake or reads the messages as far as the bytes so far allow.
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
                    self.state = State::Open(Box::new(ws));
                }
                Err(HandshakeError::Interrupted(mut mid)) => {
                    mid.get_mut().get_mut().drain_into(out);
                    self.state = State::Upgrading(Box::new(mid));
                    return Ok(());
                }
                Err(HandshakeError::Failure(e)) => return Err(upgrade_error(e)),
            }
        }
        let State::Open(ws) = &mut self.state else {
            return Ok(());
        };
        let result = loop {
            match ws.read() {
                Ok(Message::Text(text)) => emit_text(&[text.as_bytes()], &mut on_frame),
                // Not what the chat sends: shown to the checks as it is, so they flag it.
                Ok(Message::Binary(data)) => emit_text(&[&data], &mut on_frame),
                // Answered by tungstenite (a pong, the closing reply) at the flush below.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    break Ok(());
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    // The close handshake is over: the server ends the stream next.
                    ws.get_mut().drain_into(out);
                    self.state = State::Done;
                    return Ok(());
                }
                Err(e) => break Err(WireError::WebSocket(e)),
            }
        };
        match ws.flush() {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(WireError::WebSocket(e)),
        }
        ws.get_mut().drain_into(out);
        result
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
