//! One stress connection: its transport ([`Link`]: plain or TLS), its protocol ([`Wire`]:
//! frames, WebSocket or IRC) and its pending output, written in random pieces. WRITABLE
//! interest is registered only while output is pending; READABLE for a client that reads, and
//! for any client until its handshakes (TLS, WebSocket upgrade, IRC welcome) are over.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rand::Rng;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::link::Link;
use super::wire::{Incoming, Proto, Wire, WireError, WsTarget};
use crate::frame::Frame;
use crate::split::pieces;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet.
    Waiting,
    /// The TCP handshake is under way.
    Connecting,
    /// Logged in and joining; waiting for the reply to its sync command.
    Setup,
    /// In its channel.
    Ready,
    /// Gone.
    Closed,
}

/// Written output is compacted away once this many bytes of it pile up at the front.
const COMPACT_AT: usize = 64 * 1024;

/// One server to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its address.
    pub addr: SocketAddr,
    /// The host as given (the name TLS checks, WebSocket's `Host` and `Origin`).
    pub host: String,
    /// The name the server's certificate must hold (with TLS).
    pub tls_name: Option<ServerName<'static>>,
}

impl Target {
    /// A target known only by its address (its name is the address).
    pub fn of_addr(addr: SocketAddr) -> Target {
        Target {
            addr,
            host: addr.ip().to_string(),
            tls_name: None,
        }
    }

    /// `host:port` as given, for messages.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.addr.port())
    }
}

/// How every connection speaks: TLS or not, and which protocol.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// The protocol.
    pub proto: Proto,
    /// TLS, with this configuration.
    pub tls: Option<Arc<ClientConfig>>,
    /// Over WebSocket: the `Origin` to send instead of the page's own.
    pub origin: Option<String>,
}

impl Transport {
    fn wire(&self, target: &Target) -> Result<Wire, WireError> {
        Ok(match self.proto {
            Proto::Frames => Wire::frames(),
            Proto::Irc => Wire::irc(),
            Proto::Ws => Wire::ws(&WsTarget {
                host: target.host.clone(),
                port: target.addr.port(),
                tls: self.tls.is_some(),
                origin: self.origin.clone(),
            })?,
        })
    }
}

/// What a read found.
#[derive(Debug)]
pub enum ReadOutcome {
    /// Everything that had arrived was handled; the connection stays open.
    Open,
    /// The server ended the stream.
    Closed,
    /// The connection failed (the reason).
    Failed(String),
}

/// A stress client's connection.
#[derive(Debug)]
pub struct Conn {
    /// The transport, while open.
    pub link: Option<Link>,
    /// The protocol.
    pub wire: Wire,
    /// Where it is.
    pub phase: Phase,
    /// False for the no-read clients, which never read a byte once their handshakes are over.
    pub reads: bool,
    /// The socket while the TCP handshake is under way.
    connecting: Option<TcpStream>,
    out: Vec<u8>,
    out_pos: usize,
    interest: Option<Interest>,
}

impl Conn {
    /// A connection not yet started.
    pub fn new(reads: bool) -> Conn {
        Conn {
            link: None,
            wire: Wire::frames(),
            phase: Phase::Waiting,
            reads,
            connecting: None,
            out: Vec::new(),
            out_pos: 0,
            interest: None,
        }
    }

    /// Bytes queued but not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// True once TLS and the protocol's own handshake are over.
    pub fn established(&self) -> bool {
        self.wire.established() && self.link.as_ref().is_some_and(Link::established)
    }

    /// Starts the TCP handshake with `target` (non-blocking); the connection is then
    /// [`Phase::Connecting`] until [`Conn::finish_connect`].
    pub fn connect(
        &mut self,
        target: &Target,
        registry: &Registry,
        token: Token,
    ) -> io::Result<()> {
        let mut stream = TcpStream::connect(target.addr)?;
        registry.register(&mut stream, token, Interest::WRITABLE)?;
        self.connecting = Some(stream);
        self.interest = Some(Interest::WRITABLE);
        self.phase = Phase::Connecting;
        Ok(())
    }

    /// Called when the socket of a connecting connection is writable: `Ok(true)` once it is
    /// connected (TLS and the protocol are then started, their first bytes queued), `Ok(false)`
    /// while the handshake goes on.
    pub fn finish_connect(
        &mut self,
        target: &Target,
        transport: &Transport,
    ) -> Result<bool, String> {
        let Some(stream) = self.connecting.as_ref() else {
            return Ok(self.link.is_some());
        };
        if let Some(e) = stream.take_error().map_err(|e| e.to_string())? {
            return Err(e.to_string());
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(e.to_string()),
        }
        let Some(stream) = self.connecting.take() else {
            return Ok(false);
        };
        let _ = stream.set_nodelay(true);
        let tls = match (&transport.tls, &target.tls_name) {
            (Some(config), Some(name)) => Some((config, name)),
            (Some(_), None) => return Err("TLS without a server name".into()),
            (None, _) => None,
        };
        self.link = Some(Link::new(stream, tls).map_err(|e| e.to_string())?);
        self.wire = transport.wire(target).map_err(|e| e.to_string())?;
        self.wire.start(&mut self.out).map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Queues one frame, in the connection's protocol.
    #[inline]
    pub fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= COMPACT_AT {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        self.wire.send(frame, &mut self.out)
    }

    /// Reads everything that has arrived into `buf`, piece by piece, and hands every frame to
    /// `on_frame` with the connection's phase and the time of its read (ns since `t0`).
    /// Replies the protocol owes (a PONG…) are queued; the caller flushes.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        t0: Instant,
        mut on_incoming: impl FnMut(&mut Phase, Incoming<'_>, u64),
    ) -> ReadOutcome {
        let Conn {
            link,
            wire,
            phase,
            out,
            out_pos,
            ..
        } = self;
        let Some(link) = link.as_mut() else {
            return ReadOutcome::Open;
        };
        loop {
            match link.read(buf) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    let now_ns = t0.elapsed().as_nanos() as u64;
                    if *out_pos == out.len() {
                        out.clear();
                        *out_pos = 0;
                    }
                    let result = wire.receive_incoming(&buf[..n], out, |incoming| {
                        on_incoming(phase, incoming, now_ns)
                    });
                    if let Err(e) = result {
                        return ReadOutcome::Failed(e.to_string());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Open,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return ReadOutcome::Closed,
                Err(e) => return ReadOutcome::Failed(e.to_string()),
            }
        }
    }

    /// Writes pending output in random pieces of 1 to `max_write` bytes until it is all written
    /// or the socket is full, then sets the interest to match.
    pub fn flush(
        &mut self,
        rng: &mut impl Rng,
        max_write: usize,
        registry: &Registry,
        token: Token,
    ) -> io::Result<()> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        link.flush_tls()?;
        while self.out_pos < self.out.len() {
            let n = pieces::next_len(rng, self.out.len() - self.out_pos, max_write);
            match link.write(&self.out[self.out_pos..self.out_pos + n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => self.out_pos += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.update_interest(registry, token)
    }

    fn wanted(&self) -> Option<Interest> {
        let Some(link) = self.link.as_ref() else {
            return self.connecting.as_ref().map(|_| Interest::WRITABLE);
        };
        let write = link.wants_write() || (self.pending() > 0 && link.established());
        let read = self.reads || !self.established();
        match (read, write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// Registers, re-registers or deregisters the socket to match what the connection waits for.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.wanted();
        if want == self.interest {
            return Ok(());
        }
        let Some(stream) = self.link.as_mut().map(Link::socket) else {
            return Ok(());
        };
        match (self.interest, want) {
            (None, Some(w)) => registry.register(stream, token, w)?,
            (Some(_), Some(w)) => registry.reregister(stream, token, w)?,
            (Some(_), None) => registry.deregister(stream)?,
            (None, None) => {}
        }
        self.interest = want;
        Ok(())
    }

    /// Closes the socket (deregistering it first).
    pub fn close(&mut self, registry: &Registry) {
        if let Some(mut stream) = self.connecting.take() {
            let _ = registry.deregister(&mut stream);
        }
        if let Some(mut link) = self.link.take() {
            if self.interest.is_some() {
                let _ = registry.deregister(link.socket());
            }
        }
        self.interest = None;
        self.phase = Phase::Closed;
        self.out = Vec::new();
        self.out_pos = 0;
    }
}
