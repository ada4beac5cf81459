//! TLS for the server: a layer under any wire protocol (frames, WebSocket, IRC), never a
//! second server. rustls with the `ring` provider, TLS 1.2 and 1.3, no client certificates.
//!
//! The certificate and key are read from PEM files at start and again on SIGUSR1 (certbot
//! renews every 60–90 days): new connections get the new ones, open connections keep theirs.
//! A connection's [`rustls::ServerConnection`] sits between its socket and its codec in
//! `conn.rs`, driven without blocking from the event loop as in rustls's mio example.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the TLS certificate {path}: {source}")]
    Cert {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS certificate file {0} holds no certificate")]
    NoCert(PathBuf),
    #[error("cannot read the TLS key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS certificate and key do not go together: {0}")]
    Config(#[source] rustls::Error),
}

/// The plaintext a connection may have waiting inside rustls (plus its records), at most.
pub const TLS_BUFFER: usize = 64 * 1024;

/// Reads the certificate chain and key and builds the server's TLS configuration.
pub fn load_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|source| TlsSetupError::Cert {
            path: cert.to_path_buf(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsSetupError::Cert {
            path: cert.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCert(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsSetupError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsSetupError::Config)?;
    Ok(Arc::new(config))
}

/// A new server-side TLS connection with the buffer bound.
pub fn accept(config: &Arc<ServerConfig>) -> Result<rustls::ServerConnection, rustls::Error> {
    let mut conn = rustls::ServerConnection::new(config.clone())?;
    conn.set_buffer_limit(Some(TLS_BUFFER));
    Ok(conn)
}
