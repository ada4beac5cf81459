//! The connection to the server: connecting (with a clear reason when it fails) and a
//! non-blocking byte stream, plain or inside TLS, for the event loop.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use log::debug;
use mio::net::TcpStream;
use rustls::ClientConnection;

use super::tls::{self, TlsError};

/// How long connecting (and the TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Plaintext rustls may buffer before it pushes back (its own default, said out loud).
const TLS_BUFFER: usize = 64 * 1024;

/// How to reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host, as given.
    pub host: String,
    /// The port, as given.
    pub port: String,
    /// Speak TLS, trusting this CA file or else the system's roots.
    pub tls: Option<TlsTarget>,
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsTarget {
    /// A PEM file of CA certificates to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
}

/// Why the client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// PORT is not a port number.
    #[error("{0:?} is not a port: a port is a number from 1 to 65535")]
    BadPort(String),
    /// HOST does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    /// HOST resolves to no address.
    #[error("{0} has no address")]
    NoAddress(String),
    /// No address accepted the connection (the last failure is given).
    #[error("{source} (at {addr})")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// TLS could not be set up, or the server's certificate was refused.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The socket could not be set up.
    #[error("cannot set up the connection: {0}")]
    Socket(#[source] io::Error),
}

/// Checks PORT: a number from 1 to 65535.
pub fn parse_port(port: &str) -> Result<u16, ConnectError> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(ConnectError::BadPort(port.to_owned())),
        Ok(n) => Ok(n),
    }
}

/// Connects to the target (every address HOST resolves to, in turn) and, for TLS, completes
/// the handshake; returns a non-blocking stream.
pub fn connect(target: &Target) -> Result<Stream, ConnectError> {
    let port = parse_port(&target.port)?;
    // Build the TLS configuration first: a bad --ca file is reported without a connection.
    let tls_config = match &target.tls {
        Some(settings) => Some(tls::client_config(settings.ca.as_deref())?),
        None => None,
    };
    let host = &target.host;
    // `[::1]` as in a URL: the brackets are not part of the address.
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs = (bare, port)
        .to_socket_addrs()
        .map_err(|source| ConnectError::Resolve {
            host: host.clone(),
            source,
        })?;
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(source) => {
                debug!("cannot connect to {addr}: {source}");
                last = Some(ConnectError::Connect { addr, source });
            }
        }
    }
    let Some(mut stream) = stream else {
        return Err(last.unwrap_or_else(|| ConnectError::NoAddress(host.clone())));
    };
    if let Err(error) = stream.set_nodelay(true) {
        debug!("cannot set TCP_NODELAY: {error}");
    }
    let tls = match tls_config {
        Some(config) => {
            stream
                .set_read_timeout(Some(CONNECT_TIMEOUT))
                .and_then(|()| stream.set_write_timeout(Some(CONNECT_TIMEOUT)))
                .map_err(ConnectError::Socket)?;
            let mut conn = tls::handshake(config, host, &target.port, &mut stream)?;
            conn.set_buffer_limit(Some(TLS_BUFFER));
            stream
                .set_read_timeout(None)
                .and_then(|()| stream.set_write_timeout(None))
                .map_err(ConnectError::Socket)?;
            Some(Box::new(conn))
        }
        None => None,
    };
    stream.set_nonblocking(true).map_err(ConnectError::Socket)?;
    Ok(Stream {
        socket: TcpStream::from_std(stream),
        tls,
    })
}

/// A non-blocking connection to the server: plaintext in and out, TLS underneath when asked.
#[derive(Debug)]
pub struct Stream {
    socket: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

impl Stream {
    /// The socket, to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Reads plaintext: `Ok(0)` when the server closed the connection, `WouldBlock` when there
    /// is nothing more for now (the socket was read until it would block).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.socket.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The server closed TCP without close_notify: for a chat client, just closed.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut self.socket) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    tls.process_new_packets().map_err(io::Error::other)?;
                    // Alerts or key updates may want to go out.
                    Self::push_tls(tls, &mut self.socket)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes plaintext; returns how much was taken (`WouldBlock` when none could be).
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.socket.write(data);
        };
        // Push out what is waiting first, so the buffer has room.
        Self::push_tls(tls, &mut self.socket)?;
        let taken = tls.writer().write(data)?;
        Self::push_tls(tls, &mut self.socket)?;
        if taken == 0 && !data.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    /// Sends TLS records until none wait or the socket would block.
    fn push_tls(tls: &mut ClientConnection, socket: &mut TcpStream) -> io::Result<()> {
        while tls.wants_write() {
            match tls.write_tls(socket) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Pushes out what TLS holds; returns true when nothing is left to write.
    pub fn flush(&mut self) -> io::Result<bool> {
        match self.tls.as_mut() {
            Some(tls) => {
                Self::push_tls(tls, &mut self.socket)?;
                Ok(!tls.wants_write())
            }
            None => Ok(true),
        }
    }

    /// True while TLS holds records the socket has not taken.
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Ends the sending direction (close_notify first, for TLS); the server's frames still come.
    pub fn shutdown_write(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            if let Err(error) = Self::push_tls(tls, &mut self.socket) {
                debug!("close_notify: {error}");
            }
        }
        if let Err(error) = self.socket.shutdown(Shutdown::Write) {
            debug!("shutdown: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_checked() {
        assert_eq!(parse_port("5555").unwrap(), 5555);
        assert_eq!(parse_port("065535").unwrap(), 65535);
        for bad in ["abc", "70000", "0", "", "-1", "55 "] {
            assert!(
                matches!(parse_port(bad), Err(ConnectError::BadPort(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_port("abc").unwrap_err().to_string(),
            "\"abc\" is not a port: a port is a number from 1 to 65535"
        );
    }
}
