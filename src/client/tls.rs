//! TLS for the clients (PROTOCOL.md section 8): rustls with the `ring` provider, TLS 1.2 and
//! 1.3, the server's certificate and name checked against `--ca FILE` or the system's roots.
//!
//! This module only builds the configuration, runs the handshake on a blocking socket and
//! explains failures; the connection it returns is driven by whoever owns the socket (the
//! client's event loop, or another tool), so it does not depend on the client.

use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

/// Why TLS could not be set up or the server's certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The `--ca` file cannot be read or is not PEM.
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The `--ca` file holds no certificate rustls accepts.
    #[error("the CA file {0} holds no usable PEM certificate")]
    NoCaCertificate(PathBuf),
    /// No `--ca` and the system has no root certificates.
    #[error("no system root certificates were found (install ca-certificates, or give --ca FILE)")]
    NoSystemRoots,
    /// The rustls configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] rustls::Error),
    /// HOST cannot be checked against a certificate.
    #[error("{0} is not a host name or address a certificate can be checked against")]
    BadServerName(String),
    /// The certificate is for other names.
    #[error("the server's certificate is not valid for {host}{}", presented_names(.presented))]
    WrongName {
        host: String,
        presented: Vec<String>,
    },
    /// The certificate chain does not lead to a trusted root.
    #[error(
        "the server's certificate is not signed by a trusted certificate authority \
         (give --ca FILE for a private CA)"
    )]
    UnknownIssuer,
    /// Any other reason to refuse the certificate (expired, not yet valid, revoked…).
    #[error("the server's certificate was refused: {0}")]
    BadCertificate(String),
    /// The server answered, but not in TLS (a plain port, say).
    #[error("the server did not answer in TLS (is {0} a TLS port?)")]
    NotTls(String),
    /// The handshake did not finish.
    #[error("the TLS handshake failed: {0}")]
    Handshake(String),
}

fn presented_names(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = names.iter().map(|n| bare_name(n)).collect();
        format!(" (it is for {})", names.join(", "))
    }
}

/// A presented name without webpki's debug wrapping: `DnsName("a.example")` is `a.example`,
/// `IpAddress(192.0.2.1)` is `192.0.2.1`.
fn bare_name(name: &str) -> &str {
    name.strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        })
        .unwrap_or(name)
}

/// The configuration for a client that trusts the certificates in `ca` (PEM), or else the
/// system's roots.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsError::CaFile {
                    path: path.to_owned(),
                    source,
                })?;
            let (added, ignored) = roots.add_parsable_certificates(certs);
            if ignored > 0 {
                log::warn!(
                    "{} of the certificates in {} were ignored",
                    ignored,
                    path.display()
                );
            }
            if added == 0 {
                return Err(TlsError::NoCaCertificate(path.to_owned()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                log::warn!("system root certificates: {error}");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::NoSystemRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the certificate must hold: HOST as given, without the brackets of `[::1]`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::BadServerName(host.to_owned()))
}

/// Runs the handshake on a connected blocking socket (its timeouts bound the wait); on success
/// the connection is ready for application data.
pub fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    port: &str,
    stream: &mut TcpStream,
) -> Result<ClientConnection, TlsError> {
    let name = server_name(host)?;
    let mut conn = ClientConnection::new(config, name).map_err(TlsError::Setup)?;
    while conn.is_handshaking() {
        match conn.complete_io(stream) {
            // No progress while still handshaking: the server went away.
            Ok((0, 0)) => {
                return Err(TlsError::Handshake(
                    "the server closed the connection".into(),
                ))
            }
            Ok(_) => {}
            Err(error) => return Err(explain(error, host, port)),
        }
    }
    Ok(conn)
}

/// Turns a handshake's I/O error into the reason a person can act on.
fn explain(error: io::Error, host: &str, port: &str) -> TlsError {
    let tls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            CertificateError::NotValidForName => TlsError::WrongName {
                host: host.to_owned(),
                presented: Vec::new(),
            },
            CertificateError::NotValidForNameContext { presented, .. } => TlsError::WrongName {
                host: host.to_owned(),
                presented: presented.clone(),
            },
            CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
            other => TlsError::BadCertificate(format!("{other:?}")),
        },
        Some(
            error @ (rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }),
        ) => {
            log::debug!("handshake: {error}");
            TlsError::NotTls(format!("{host}:{port}"))
        }
        Some(other) => TlsError::Handshake(other.to_string()),
        None => match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                TlsError::Handshake("the server did not answer in time".into())
            }
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                TlsError::Handshake("the server closed the connection".into())
            }
            _ => TlsError::Handshake(error.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("localhost"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("bad name"),
            Err(TlsError::BadServerName(_))
        ));
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_refused() {
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(matches!(
            client_config(Some(missing)),
            Err(TlsError::CaFile { .. })
        ));
        let dir = std::env::temp_dir().join(format!("chat-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let result = client_config(Some(&empty));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(result, Err(TlsError::NoCaCertificate(_))));
    }

    #[test]
    fn messages_say_what_to_do() {
        let wrong = TlsError::WrongName {
            host: "localhost".into(),
            presented: vec![
                "DnsName(\"other.example\")".into(),
                "IpAddress(192.0.2.1)".into(),
            ],
        };
        assert_eq!(
            wrong.to_string(),
            "the server's certificate is not valid for localhost \
             (it is for other.example, 192.0.2.1)"
        );
        assert!(TlsError::UnknownIssuer.to_string().contains("--ca FILE"));
    }
}
