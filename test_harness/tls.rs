//! End to end: the frame protocol inside TLS on `--tls-port` (PROTOCOL.md section 8), with a
//! CA and certificates made at run time. A TLS and a plain client share a channel; the limits
//! of section 7 hold over TLS; a handshake that never comes, or garbage instead of one, closes
//! only that connection; SIGUSR1 reloads the certificate without dropping anyone.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat::utils_errors as text;
use common::certs::{Ca, ServerCert, TlsPeer};
use common::{frame, ServerProc, TempDir};

/// A server with a plain port and a TLS port, its CA and certificate.
struct TlsServer {
    server: ServerProc,
    ca: Ca,
    cert: ServerCert,
    dir: TempDir,
}

fn tls_server(extra: &[&str]) -> TlsServer {
    let dir = TempDir::new("tls");
    let ca = Ca::new("chat test CA");
    let cert = ca.issue(&dir.0, "server", &["localhost", "127.0.0.1"]);
    let mut args = vec![
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
        "--tls-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let server = ServerProc::start(&args);
    TlsServer {
        server,
        ca,
        cert,
        dir,
    }
}

impl TlsServer {
    fn tls(&self) -> TlsPeer {
        TlsPeer::connect(
            self.server.addr_of("TLS"),
            self.ca.client_config(),
            "localhost",
        )
    }

    fn tls_login(&self, name: &str) -> TlsPeer {
        let mut p = self.tls();
        p.send(name);
        p
    }
}

#[test]
fn a_tls_client_and_a_plain_client_share_a_channel() {
    let s = tls_server(&[]);
    let mut alice = s.tls_login("Alice");
    alice.send("/create tas");
    alice.send("/list");
    alice.expect("tas");
    let mut kay = s.server.login("Kay");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    kay.send("Hi!");
    alice.expect("[Kay] Hi!");
    alice.send("Hello over TLS!");
    kay.expect("[Alice] Hello over TLS!");
    // The real client, too.
    let ca = s.ca.write_pem(&s.dir.0);
    let port = s.server.addr_of("TLS").port().to_string();
    let mut client = Command::new(env!("CARGO_BIN_EXE_client"))
        .args([
            "--tls",
            "--ca",
            ca.to_str().unwrap(),
            "Carol",
            "localhost",
            &port,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"/join tas\nfrom the real client\n")
        .unwrap();
    alice.expect("Carol has joined");
    alice.expect("[Carol] from the real client");
    alice.expect("Carol has left");
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_1_2_is_spoken_too() {
    let s = tls_server(&[]);
    let config = s.ca.client_config_for(&[&rustls::version::TLS12]);
    let mut p = TlsPeer::connect(s.server.addr_of("TLS"), config, "127.0.0.1");
    assert_eq!(p.version(), rustls::ProtocolVersion::TLSv1_2);
    p.send("Alice");
    p.send("/time");
    assert!(p.recv().starts_with("Time is: "));
    assert_eq!(p.server_cert(), s.cert.der);
}

#[test]
fn a_wrong_certificate_name_is_refused_by_the_client() {
    let dir = TempDir::new("tls-name");
    let ca = Ca::new("chat test CA");
    let cert = ca.issue(&dir.0, "other", &["other.example"]);
    let server = ServerProc::start(&[
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
        "--tls-port",
        "0",
    ]);
    let port = server.addr_of("TLS").port().to_string();
    let ca_pem = ca.write_pem(&dir.0);
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .args([
            "--tls",
            "--ca",
            ca_pem.to_str().unwrap(),
            "alice",
            "localhost",
            &port,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Unable to connect to localhost:{port}\n")
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "client: cannot connect to localhost:{port}: the server's certificate is not valid \
             for localhost (it is for other.example)\n"
        )
    );
}

#[test]
fn a_silent_connection_to_the_tls_port_is_closed_at_the_name_timeout() {
    let s = tls_server(&["--name-timeout", "0.5"]);
    let mut raw = TcpStream::connect(s.server.addr_of("TLS")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match raw.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(4), "never closed");
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A TLS client that does its handshake and then says nothing gets the reason.
    let mut quiet = s.tls();
    assert_eq!(quiet.expect_closed(), [text::NAME_TIMEOUT]);
}

#[test]
fn garbage_instead_of_a_client_hello_closes_only_that_connection() {
    let s = tls_server(&[]);
    let mut alice = s.tls_login("Alice");
    alice.send("/create room");
    alice.send("/list");
    alice.expect("room");
    for garbage in [
        &b"Alice"[..],
        &frame("Alice"),
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0],
    ] {
        let mut raw = TcpStream::connect(s.server.addr_of("TLS")).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        raw.write_all(garbage).unwrap();
        let mut buf = [0u8; 256];
        let started = Instant::now();
        loop {
            match raw.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // a TLS alert
            }
            assert!(started.elapsed() < Duration::from_secs(4), "never closed");
        }
    }
    alice.send("still here");
    alice.send("/list");
    alice.expect("room");
}

#[test]
fn a_tls_client_that_never_reads_is_disconnected_and_others_keep_receiving() {
    let s = tls_server(&["--max-queue", "65536", "--flood-rate", "0"]);
    let mut alice = s.tls_login("Alice");
    alice.send("/create tas");
    alice.send("/list");
    alice.expect("tas");
    let mut kay = s.server.login("Kay");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    let mut sloth = s.tls_login("Sloth");
    sloth.send("/join tas");
    alice.expect("Sloth has joined");
    kay.expect("Sloth has joined");
    // Enough to fill Sloth's socket buffers as well as its queue.
    let total = 60_000;
    let mut burst = Vec::new();
    let mut got = 0;
    let mut sloth_left = false;
    for i in 0..total {
        burst.extend_from_slice(&frame(&format!("m{i}")));
        if burst.len() == 200 * 100 {
            kay.send_raw(&burst);
            burst.clear();
            while got + 100 < i + 1 {
                let t = alice.recv();
                if t == "Sloth has left" {
                    sloth_left = true;
                    continue;
                }
                assert_eq!(t, format!("[Kay] m{got}"));
                got += 1;
            }
        }
    }
    while got < total {
        let t = alice.recv();
        if t == "Sloth has left" {
            sloth_left = true;
            continue;
        }
        assert_eq!(t, format!("[Kay] m{got}"));
        got += 1;
    }
    if !sloth_left {
        alice.expect("Sloth has left");
    }
}

#[test]
fn a_flooding_tls_client_is_slowed_not_cut() {
    let s = tls_server(&["--flood-rate", "200", "--flood-burst", "50"]);
    let mut alice = s.server.login("Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = s.tls_login("Kay");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    let mut burst = Vec::new();
    for i in 0..300 {
        burst.extend_from_slice(&frame(&format!("f{i}")));
    }
    let started = Instant::now();
    kay.send_raw(&burst);
    for i in 0..300 {
        assert_eq!(alice.recv(), format!("[Kay] f{i}"));
    }
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn shutdown_tells_tls_clients_why() {
    let s = tls_server(&[]);
    let mut alice = s.tls_login("Alice");
    alice.send("/time");
    alice.recv();
    let TlsServer { server, .. } = s;
    let status = server.terminate();
    assert!(status.success());
    assert_eq!(alice.expect_closed(), [text::SHUTTING_DOWN]);
}

#[test]
fn sigusr1_reloads_the_certificate_without_dropping_anyone() {
    let s = tls_server(&[]);
    let mut old = s.tls_login("Old");
    old.send("/create room");
    old.send("/list");
    old.expect("room");
    assert_eq!(old.server_cert(), s.cert.der);
    // certbot renews: new files in place, then SIGUSR1.
    let renewed = s.ca.issue(&s.dir.0, "renewed", &["localhost"]);
    std::fs::copy(&renewed.cert, &s.cert.cert).unwrap();
    std::fs::copy(&renewed.key, &s.cert.key).unwrap();
    s.server.signal(libc::SIGUSR1);
    let started = Instant::now();
    loop {
        let p = s.tls();
        if p.server_cert() == renewed.der {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never reloaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The old connection is still there and works.
    let mut new = s.tls_login("New");
    new.send("/join room");
    old.expect("New has joined");
    old.send("/list");
    old.expect("room");
    // A broken file is refused and the certificate in use stays.
    std::fs::write(&s.cert.cert, "not a certificate").unwrap();
    s.server.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.tls().server_cert(), renewed.der);
}

#[test]
fn no_plain_listens_only_inside_tls() {
    let dir = TempDir::new("tls-only");
    let ca = Ca::new("chat test CA");
    let cert = ca.issue(&dir.0, "server", &["localhost"]);
    let server = ServerProc::start(&[
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
        "--tls-port",
        "0",
        "--no-plain",
    ]);
    assert_eq!(server.listening.len(), 1);
    let mut p = TlsPeer::connect(server.addr_of("TLS"), ca.client_config(), "localhost");
    p.send("Alice");
    p.send("/time");
    assert!(p.recv().starts_with("Time is: "));
    // Refused at start, each with the flag and why: a TLS port without a certificate,
    // --no-plain with nothing else, a certificate without its key, an origin that is none.
    let cert_path = cert.cert.to_str().unwrap();
    let refusals: [(&[&str], &str); 6] = [
        (
            &["--tls-port", "0"],
            "--tls-port 0: needs --tls-cert FILE and --tls-key FILE",
        ),
        (
            &["--irc-tls-port", "0"],
            "--irc-tls-port 0: needs --tls-cert FILE and --tls-key FILE",
        ),
        (
            &["--no-plain"],
            "--no-plain: leaves nothing to listen on: give --tls-port (or an IRC port) too",
        ),
        // clap's own check (exit 2), before the server's (exit 1).
        (
            &["--tls-cert", cert_path, "--web-port", "0"],
            "required arguments were not provided:\n  --tls-key <FILE>",
        ),
        (
            &["--web-port", "0", "--web-origin", "nonsense"],
            "--web-origin nonsense: must be an origin as a browser sends it: scheme://host[:port]",
        ),
        (
            &[
                "--web-port",
                "0",
                "--web-origin",
                "https://ok.example",
                "--web-origin",
                "ftp:/x",
            ],
            "--web-origin ftp:/x: must be an origin as a browser sends it: scheme://host[:port]",
        ),
    ];
    for (args, said) in refusals {
        let out = Command::new(env!("CARGO_BIN_EXE_server"))
            .args(["0", "--bind", "127.0.0.1", "--ephemeral"])
            .args(args)
            .output()
            .unwrap();
        let code = if args[0] == "--tls-cert" { 2 } else { 1 };
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}
