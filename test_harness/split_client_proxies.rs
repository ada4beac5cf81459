//! Stand-ins for transports the server does not speak yet, written for the `split_client`
//! tests: a TLS-terminating proxy and a WebSocket bridge, each forwarding to the real server's
//! plain frame port (or to each other: TLS in front of the bridge is `wss://`), and a CA with
//! server certificates made by rcgen at run time. Each connection is served by its own
//! threads and ends when either side does.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rcgen::{KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// How long a proxied connection may live.
const LIFETIME: Duration = Duration::from_secs(60);
const FRAME: usize = 200;

/// A certificate authority made for one test.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// Writes the CA certificate as PEM into `dir`; returns its path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }

    /// A rustls server configuration with a certificate for `names`, signed by this CA.
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for name in names {
            let san = match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into().unwrap()),
            };
            params.subject_alt_names.push(san);
        }
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

/// Accepts on a fresh 127.0.0.1 port and serves every connection with `serve` on its own
/// thread; returns the port.
fn listen(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let serve = Arc::clone(&serve);
            thread::spawn(move || serve(stream));
        }
    });
    port
}

/// A TLS-terminating proxy on 127.0.0.1: each connection's plaintext goes to `backend`.
pub fn tls_proxy(config: Arc<ServerConfig>, backend: SocketAddr) -> u16 {
    listen(move |stream| tls_forward(stream, Arc::clone(&config), backend))
}

/// One proxied TLS connection: TLS on `front`, plain bytes to a new connection to `backend`.
fn tls_forward(mut front: TcpStream, config: Arc<ServerConfig>, backend: SocketAddr) {
    let mut tls = ServerConnection::new(config).unwrap();
    let Ok(mut back) = TcpStream::connect(backend) else {
        return;
    };
    let _ = back.set_nodelay(true);
    let _ = front.set_nodelay(true);
    front.set_nonblocking(true).unwrap();
    back.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + LIFETIME;
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        let mut idle = true;
        match tls.read_tls(&mut front) {
            Ok(0) => return,
            Ok(_) => {
                idle = false;
                if tls.process_new_packets().is_err() {
                    // A refused handshake: send the alert and stop.
                    let _ = tls.write_tls(&mut front);
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        loop {
            match tls.reader().read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    idle = false;
                    if write_all_nb(&mut back, &buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        match back.read(&mut buf) {
            Ok(0) => {
                tls.send_close_notify();
                let _ = drain_tls(&mut tls, &mut front);
                return;
            }
            Ok(n) => {
                idle = false;
                tls.writer().write_all(&buf[..n]).unwrap();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        if drain_tls(&mut tls, &mut front).is_err() {
            return;
        }
        if idle {
            thread::sleep(Duration::from_micros(200));
        }
    }
}

fn drain_tls(tls: &mut ServerConnection, front: &mut TcpStream) -> std::io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(front) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_micros(100))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `write_all` on a non-blocking socket.
fn write_all_nb(stream: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_micros(100))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the WebSocket bridge lets through.
#[derive(Clone)]
pub enum Origin {
    /// Only upgrades from the page's own origin, `http://HOST:PORT` with the request's `Host`
    /// (`https://` for a bridge behind the TLS proxy).
    Own { tls: bool },
    /// Nothing: every upgrade gets 403.
    RefuseAll,
}

/// A WebSocket bridge on 127.0.0.1, the way the spec says the server will speak it: `GET /ws`
/// upgraded (403 unless the origin is allowed), each text message from the client padded into
/// one frame for `backend`, each frame from `backend` one text message with its padding
/// removed.
pub fn ws_bridge(backend: SocketAddr, origin: Origin) -> u16 {
    listen(move |stream| ws_forward(stream, backend, origin.clone()))
}

fn ws_forward(front: TcpStream, backend: SocketAddr, origin: Origin) {
    let _ = front.set_nodelay(true);
    // tungstenite's callback type returns the whole refusal response by value.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let allowed = match &origin {
            Origin::Own { tls } => {
                let scheme = if *tls { "https" } else { "http" };
                header("Origin") == format!("{scheme}://{}", header("Host"))
            }
            Origin::RefuseAll => false,
        };
        if request.uri().path() != "/ws" || !allowed {
            let mut refusal = ErrorResponse::new(None);
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        Ok(response)
    };
    let Ok(mut reader) = tungstenite::accept_hdr(front, check) else {
        return;
    };
    let Ok(mut back) = TcpStream::connect(backend) else {
        return;
    };
    let _ = back.set_nodelay(true);
    let mut back_reader = back.try_clone().unwrap();
    let mut writer =
        WebSocket::from_raw_socket(reader.get_ref().try_clone().unwrap(), Role::Server, None);
    // Server to client: frames to messages.
    let down = thread::spawn(move || {
        let mut frame = [0u8; FRAME];
        while back_reader.read_exact(&mut frame).is_ok() {
            let end = frame
                .iter()
                .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0))
                .map_or(0, |i| i + 1);
            let text = String::from_utf8_lossy(&frame[..end]).into_owned();
            if writer.send(Message::text(text)).is_err() {
                break;
            }
        }
        let _ = writer.get_ref().shutdown(std::net::Shutdown::Both);
    });
    // Client to server: messages to frames.
    while let Ok(message) = reader.read() {
        let Message::Text(text) = message else {
            continue;
        };
        let mut frame = text.as_bytes().to_vec();
        frame.resize(FRAME, b' ');
        if back.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = back.shutdown(std::net::Shutdown::Both);
    let _ = down.join();
}
