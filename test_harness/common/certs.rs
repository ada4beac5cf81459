//! TLS for the end-to-end tests: a certificate authority and server certificates made at run
//! time (rcgen), written as the PEM files the server reads, and a raw TLS peer speaking
//! 200-byte frames (rustls), every read with a timeout.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rcgen::{KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{frame, strip, FRAME, REPLY_TIMEOUT};

/// A certificate authority made for one test.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and key, as PEM files.
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate itself (DER), to tell which one a server presented.
    pub der: CertificateDer<'static>,
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

    /// A certificate for `names` (DNS names or IP addresses) signed by this CA, written to
    /// `dir/{stem}.pem` and `dir/{stem}.key`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> ServerCert {
        std::fs::create_dir_all(dir).unwrap();
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
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        ServerCert {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
        }
    }

    /// A rustls client configuration trusting only this CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client_config_for(&[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// The same, speaking only the given TLS versions.
    pub fn client_config_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// A TLS peer speaking 200-byte frames.
pub struct TlsPeer {
    pub tls: StreamOwned<ClientConnection, TcpStream>,
}

impl TlsPeer {
    /// Connects and finishes the handshake (checking `host` against the certificate).
    pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>, host: &str) -> TlsPeer {
        let name = ServerName::try_from(host.to_string()).unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        let sock = TcpStream::connect(addr).expect("connect to the TLS port");
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while tls.conn.is_handshaking() {
            assert!(Instant::now() < deadline, "no TLS handshake");
            tls.conn
                .complete_io(&mut tls.sock)
                .expect("the TLS handshake");
        }
        TlsPeer { tls }
    }

    /// The certificate the server presented.
    pub fn server_cert(&self) -> CertificateDer<'static> {
        self.tls.conn.peer_certificates().unwrap()[0].clone()
    }

    /// The TLS version agreed.
    pub fn version(&self) -> rustls::ProtocolVersion {
        self.tls.conn.protocol_version().unwrap()
    }

    pub fn send(&mut self, text: &str) {
        self.send_raw(&frame(text));
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).expect("write over TLS");
        self.tls.flush().unwrap();
    }

    /// One frame's text, or None when the server closed the connection.
    pub fn recv_opt(&mut self) -> Option<String> {
        let mut buf = vec![0u8; FRAME];
        let mut got = 0;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while got < FRAME {
            assert!(
                Instant::now() < deadline,
                "no frame over TLS within {REPLY_TIMEOUT:?}"
            );
            match self.tls.read(&mut buf[got..]) {
                Ok(0) => {
                    assert_eq!(got, 0, "closed in mid-frame");
                    return None;
                }
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("no frame over TLS within {REPLY_TIMEOUT:?}")
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("TLS read: {e}"),
            }
        }
        Some(strip(&buf))
    }

    pub fn recv(&mut self) -> String {
        self.recv_opt()
            .expect("the server closed the TLS connection")
    }

    pub fn expect(&mut self, text: &str) {
        assert_eq!(self.recv(), text);
    }

    /// The frames before the server closes the connection.
    pub fn expect_closed(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        for _ in 0..10_000 {
            match self.recv_opt() {
                Some(f) => frames.push(f),
                None => return frames,
            }
        }
        panic!("the server kept sending and never closed");
    }

    /// Asserts that nothing arrives for `quiet`.
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.tls.sock.set_read_timeout(Some(quiet)).unwrap();
        let mut byte = [0u8; 1];
        match self.tls.read(&mut byte) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => panic!("expected no frame"),
            Err(_) => {}
        }
        self.tls.sock.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    }
}
