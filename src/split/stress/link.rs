//! A stress connection's transport: its TCP socket, plain or inside TLS.
//!
//! TLS is rustls driven non-blocking, as rustls's mio examples do: ciphertext moves with
//! `read_tls` / `write_tls` when the socket is ready, `process_new_packets` decrypts, and the
//! plaintext is read from and written to rustls's buffers. The configuration (roots, `--ca`,
//! the server's name) is the client's, `crate::client::tls`.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// The socket, plain or with its TLS session.
#[derive(Debug)]
pub enum Link {
    /// Bytes as they are.
    Plain(TcpStream),
    /// Bytes inside TLS.
    Tls(Box<TlsLink>),
}

/// A socket and its TLS session.
#[derive(Debug)]
pub struct TlsLink {
    sock: TcpStream,
    tls: ClientConnection,
}

/// Why rustls refused the session, with what to do about the common case.
fn tls_error(e: rustls::Error) -> io::Error {
    let hint = match &e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            " (give --ca FILE for a private CA)"
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            " (the server did not answer in TLS: is it a TLS port?)"
        }
        _ => "",
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}{hint}"))
}

impl Link {
    /// A connected socket, with TLS for `name` when a configuration is given.
    pub fn new(
        sock: TcpStream,
        tls: Option<(&Arc<ClientConfig>, &ServerName<'static>)>,
    ) -> io::Result<Link> {
        Ok(match tls {
            None => Link::Plain(sock),
            Some((config, name)) => {
                let tls =
                    ClientConnection::new(Arc::clone(config), name.clone()).map_err(tls_error)?;
                Link::Tls(Box::new(TlsLink { sock, tls }))
            }
        })
    }

    /// The socket, to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Link::Plain(s) => s,
            Link::Tls(t) => &mut t.sock,
        }
    }

    /// True once plaintext can flow (at once without TLS).
    pub fn established(&self) -> bool {
        match self {
            Link::Plain(_) => true,
            Link::Tls(t) => !t.tls.is_handshaking(),
        }
    }

    /// True while TLS has ciphertext to write (the handshake, or records not yet taken by the
    /// socket).
    pub fn wants_write(&self) -> bool {
        match self {
            Link::Plain(_) => false,
            Link::Tls(t) => t.tls.wants_write(),
        }
    }

    /// Reads plaintext: `Ok(0)` when the server has ended the stream, `WouldBlock` when
    /// nothing more has arrived.
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(t) => t.read(buf),
        }
    }

    /// Writes plaintext; returns how much was taken (`WouldBlock` when nothing can be now:
    /// the socket is full, or the TLS handshake is not over).
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(bytes),
            Link::Tls(t) => t.write(bytes),
        }
    }

    /// Writes what TLS has pending (handshake messages, records); `WouldBlock` is not an
    /// error here: the rest waits for the socket.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(_) => Ok(()),
            Link::Tls(t) => t.write_pending(),
        }
    }
}

impl TlsLink {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The server closed the socket without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = self.tls.process_new_packets() {
                        // Tell the server why (the alert), then give up.
                        let _ = self.write_pending();
                        return Err(tls_error(e));
                    }
                    // The handshake, a key update: answered now, not when output comes.
                    self.write_pending()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.tls.is_handshaking() {
            self.write_pending()?;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.write_pending()?;
        if self.tls.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // One record (or more, for a long piece) per call: the server's TLS layer sees the
        // plaintext in the same random pieces as a plain server sees the bytes.
        let n = self.tls.writer().write(bytes)?;
        self.write_pending()?;
        if n == 0 && !bytes.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn write_pending(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
