//! `bench-certs DIR`: the benchmark's TLS material, made at run time with rcgen: a private CA
//! (`DIR/ca.pem`, which `split_client stress --tls --ca` trusts) and a certificate for
//! `127.0.0.1` and `localhost` signed by it (`DIR/cert.pem`, its key `DIR/key.pem`, PKCS #8),
//! for `server --tls-cert DIR/cert.pem --tls-key DIR/key.pem`. Built by bench/run.sh as a
//! cargo example, so that rcgen stays a development dependency.

use std::path::PathBuf;
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

fn make(dir: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "chat benchmark CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut server = CertificateParams::new(vec!["localhost".to_string()])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate()?;
    let cert = server.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), issuer.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: bench-certs DIR");
        return ExitCode::FAILURE;
    };
    let dir = PathBuf::from(dir);
    match make(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-certs: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
