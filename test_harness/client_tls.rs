//! End-to-end tests of `client --tls`: a TLS-terminating proxy written here (rustls, with a CA
//! and certificates made by rcgen at run time) forwards plain bytes to the real server, so a
//! TLS client and a plain client meet in one channel; certificates for another name or from
//! an unknown CA are refused with a clear reason.

mod common;
#[path = "client_support.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rcgen::{KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

use support::*;

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
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
    fn write_pem(&self, dir: &common::TempDir) -> PathBuf {
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("ca.pem");
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }

    /// A rustls server configuration with a certificate for `names`, signed by this CA.
    fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        self.server_config_for(names, &[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// The same, speaking only the given TLS versions.
    fn server_config_for(
        &self,
        names: &[&str],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
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
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }
}

/// A TLS-terminating proxy on 127.0.0.1: each connection's plaintext goes to `backend`.
fn tls_proxy(config: Arc<ServerConfig>, backend: SocketAddr) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let config = Arc::clone(&config);
            thread::spawn(move || forward(stream, config, backend));
        }
    });
    port
}

/// One proxied connection: TLS on `front`, plain bytes to a new connection to `backend`.
/// Each direction's end of stream is passed on (close_notify, then a half close).
fn forward(mut front: TcpStream, config: Arc<ServerConfig>, backend: SocketAddr) {
    let mut tls = ServerConnection::new(config).unwrap();
    let mut back = TcpStream::connect(backend).unwrap();
    front.set_nonblocking(true).unwrap();
    // Reads from the server wait at most a millisecond: that paces the loop.
    back.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut front_open = true;
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        if front_open {
            match tls.read_tls(&mut front) {
                Ok(0) => front_open = false,
                Ok(_) => {
                    if tls.process_new_packets().is_err() {
                        // A refused handshake: send the alert and stop.
                        let _ = tls.write_tls(&mut front);
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => front_open = false,
            }
            loop {
                match tls.reader().read(&mut buf) {
                    Ok(0) => {
                        front_open = false;
                        let _ = back.shutdown(std::net::Shutdown::Write);
                        break;
                    }
                    Ok(n) => back.write_all(&buf[..n]).unwrap(),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        front_open = false;
                        let _ = back.shutdown(std::net::Shutdown::Write);
                        break;
                    }
                }
            }
        }
        let back_done = match back.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                tls.writer().write_all(&buf[..n]).unwrap();
                false
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => true,
        };
        if back_done {
            tls.send_close_notify();
        }
        while tls.wants_write() {
            match tls.write_tls(&mut front) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(1))
                }
                Err(_) => return,
            }
        }
        if back_done {
            return;
        }
    }
}

fn tls_client(name: &str, ca: &std::path::Path, host: &str, port: u16) -> Client {
    let ca = ca.to_str().unwrap();
    Client::spawn_args(&["--tls", "--ca", ca, name, host, &port.to_string()], None)
}

/// A TLS client and a plain client in one channel see each other's messages exactly as two
/// plain clients do.
#[test]
fn a_tls_client_and_a_plain_client_chat_in_one_channel() {
    let server = common::ServerProc::start(&[]);
    let ca = Ca::new("chat test CA");
    let dir = common::TempDir::new("client-tls");
    let ca_pem = ca.write_pem(&dir);
    let port = tls_proxy(ca.server_config(&["localhost"]), server.addr);

    let mut bob = Client::spawn("bob", server.addr.port(), None);
    bob.type_text("/create room\n");
    let mut probe = server.login("probe");
    probe.send("/create probe-room");
    let mut listed = false;
    for _ in 0..100 {
        probe.send("/list");
        if probe.recv().lines().any(|l| l == "room") {
            listed = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(listed, "the server never listed bob's channel");

    let mut alice = tls_client("alice", &ca_pem, "localhost", port);
    alice.type_text("/join room\n");
    bob.expect_stdout("[Me] [Me] \r    \ralice has joined\n[Me] ");
    alice.type_text("hi over TLS\n");
    bob.expect_stdout(
        "[Me] [Me] \r    \ralice has joined\n[Me] \r    \r[alice] hi over TLS\n[Me] ",
    );
    bob.type_text("hello in the clear\n");
    alice.expect_stdout("[Me] [Me] [Me] \r    \r[bob] hello in the clear\n[Me] ");

    // End of input inside TLS: everything is sent, the client leaves and exits 0.
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0));
    assert_eq!(alice.stderr(), "");
    bob.expect_stdout(concat!(
        "[Me] [Me] \r    \ralice has joined\n[Me] \r    \r[alice] hi over TLS\n[Me] [Me] ",
        "\r    \ralice has left\n[Me] "
    ));
    bob.close_stdin();
    assert_eq!(bob.wait().code(), Some(0));
}

/// TLS 1.2 works too, and a certificate may name the address the client was given.
#[test]
fn tls_1_2_and_an_ip_address_certificate() {
    let server = common::ServerProc::start(&[]);
    let ca = Ca::new("chat test CA");
    let dir = common::TempDir::new("client-tls12");
    let ca_pem = ca.write_pem(&dir);
    let config = ca.server_config_for(&["127.0.0.1"], &[&rustls::version::TLS12]);
    let port = tls_proxy(config, server.addr);
    let mut alice = tls_client("alice", &ca_pem, "127.0.0.1", port);
    alice.type_text("/create x\n/list\n");
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0));
    alice.expect_stdout("[Me] [Me] [Me] \r    \rx\n[Me] ");
}

/// Runs `client --tls` against a proxy that must be refused; returns its stderr.
fn refused(args: &[&str], port: u16) -> String {
    let port = port.to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["alice", "localhost", &port]);
    let mut client = Client::spawn_args(&all, None);
    assert_eq!(client.wait().code(), Some(1));
    client.expect_stdout(&format!("Unable to connect to localhost:{port}\n"));
    client.stderr()
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let server = common::ServerProc::start(&[]);
    let ca = Ca::new("chat test CA");
    let dir = common::TempDir::new("client-tls-name");
    let ca_pem = ca.write_pem(&dir);
    let port = tls_proxy(ca.server_config(&["other.example"]), server.addr);
    let stderr = refused(&["--tls", "--ca", ca_pem.to_str().unwrap()], port);
    assert_eq!(
        stderr,
        format!(
            "client: cannot connect to localhost:{port}: the server's certificate is not valid \
             for localhost (it is for other.example)\n"
        )
    );
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused() {
    let server = common::ServerProc::start(&[]);
    let trusted = Ca::new("chat test CA");
    let unknown = Ca::new("someone else's CA");
    let dir = common::TempDir::new("client-tls-ca");
    let ca_pem = trusted.write_pem(&dir);
    let port = tls_proxy(unknown.server_config(&["localhost"]), server.addr);
    let expected = format!(
        "client: cannot connect to localhost:{port}: the server's certificate is not signed by \
         a trusted certificate authority (give --ca FILE for a private CA)\n"
    );
    // With --ca, and with the system's roots (which do not hold a CA made a moment ago).
    assert_eq!(
        refused(&["--tls", "--ca", ca_pem.to_str().unwrap()], port),
        expected
    );
    assert_eq!(refused(&["--tls"], port), expected);
}

#[test]
fn a_plain_port_is_not_taken_for_tls() {
    let server = common::ServerProc::start(&[]);
    let ca = Ca::new("chat test CA");
    let dir = common::TempDir::new("client-tls-plain");
    let ca_pem = ca.write_pem(&dir);
    let port = server.addr.port();
    let stderr = refused(&["--tls", "--ca", ca_pem.to_str().unwrap()], port);
    assert_eq!(
        stderr,
        format!(
            "client: cannot connect to localhost:{port}: the server did not answer in TLS \
             (is localhost:{port} a TLS port?)\n"
        )
    );
}

#[test]
fn a_server_that_hangs_up_during_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        // A half close, so that the client reads the end of stream (not a reset).
        if let Some(Ok(stream)) = listener.incoming().next() {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            thread::sleep(Duration::from_secs(5));
        }
    });
    let stderr = refused(&["--tls"], port);
    assert_eq!(
        stderr,
        format!(
            "client: cannot connect to localhost:{port}: the TLS handshake failed: the server \
             closed the connection\n"
        )
    );
}

#[test]
fn a_bad_ca_file_is_refused_before_connecting() {
    let dir = common::TempDir::new("client-tls-badca");
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("ca.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    // Nothing listens on the port: the CA file is checked first.
    let stderr = refused(&["--tls", "--ca", path.to_str().unwrap()], 9);
    assert_eq!(
        stderr,
        format!(
            "client: cannot connect to localhost:9: the CA file {} holds no usable PEM \
             certificate\n",
            path.display()
        )
    );
}

#[test]
fn ca_without_tls_is_a_usage_error() {
    let mut client = Client::spawn_args(&["--ca", "x.pem", "alice", "localhost", "1"], None);
    assert_eq!(client.wait().code(), Some(2));
    assert!(client.stderr().contains("--tls"));
}
