//! End-to-end tests of `client --tls` against the real server's TLS port, with a CA and
//! certificates made by rcgen at run time: a TLS client and a plain client meet in one
//! channel; certificates for another name or from an unknown CA are refused with a clear
//! reason.

mod common;
#[path = "client_support.rs"]
mod support;

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use common::certs::Ca;
use common::{ServerProc, TempDir};
use support::*;

/// The real server with a TLS port whose certificate, signed by `ca`, names `names`.
fn tls_server(ca: &Ca, dir: &TempDir, names: &[&str]) -> (ServerProc, u16) {
    let cert = ca.issue(&dir.0, "server", names);
    let server = ServerProc::start(&[
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
        "--tls-port",
        "0",
    ]);
    let port = server.addr_of("TLS").port();
    (server, port)
}

fn tls_client(name: &str, ca: &std::path::Path, host: &str, port: u16) -> Client {
    let ca = ca.to_str().unwrap();
    Client::spawn_args(&["--tls", "--ca", ca, name, host, &port.to_string()], None)
}

/// A TLS client and a plain client in one channel see each other's messages exactly as two
/// plain clients do.
#[test]
fn a_tls_client_and_a_plain_client_chat_in_one_channel() {
    let ca = Ca::new("chat test CA");
    let dir = TempDir::new("client-tls");
    let ca_pem = ca.write_pem(&dir.0);
    let (server, port) = tls_server(&ca, &dir, &["localhost"]);

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

/// A certificate may name the address the client was given.
#[test]
fn an_ip_address_certificate() {
    let ca = Ca::new("chat test CA");
    let dir = TempDir::new("client-tls-ip");
    let ca_pem = ca.write_pem(&dir.0);
    let (_server, port) = tls_server(&ca, &dir, &["127.0.0.1"]);
    let mut alice = tls_client("alice", &ca_pem, "127.0.0.1", port);
    alice.type_text("/create x\n/list\n");
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0));
    alice.expect_stdout("[Me] [Me] [Me] \r    \rx\n[Me] ");
}

/// Runs `client --tls` against a server that must be refused; returns its stderr.
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
    let ca = Ca::new("chat test CA");
    let dir = TempDir::new("client-tls-name");
    let ca_pem = ca.write_pem(&dir.0);
    let (_server, port) = tls_server(&ca, &dir, &["other.example"]);
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
    let trusted = Ca::new("chat test CA");
    let unknown = Ca::new("someone else's CA");
    let dir = TempDir::new("client-tls-ca");
    let ca_pem = trusted.write_pem(&dir.0);
    let (_server, port) = tls_server(&unknown, &dir, &["localhost"]);
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
    let server = ServerProc::start(&[]);
    let ca = Ca::new("chat test CA");
    let dir = TempDir::new("client-tls-plain");
    let ca_pem = ca.write_pem(&dir.0);
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
    let dir = TempDir::new("client-tls-badca");
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
