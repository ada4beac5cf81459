//! End to end: the web port (`--web-port`, PROTOCOL.md section 8) through the real server
//! binary: the page and its files, strict HTTP (404, 403 for another origin, 431 for a huge
//! head), the chat over a WebSocket beside plain and TLS clients, the limits of section 7 over
//! WebSocket, and HTTPS/WSS when TLS is configured.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::utils_errors as text;
use common::certs::Ca;
use common::{frame, ServerProc, TempDir};
use tungstenite::{Message, WebSocket};

/// One raw HTTP exchange: the response until the server closes (or, for an upgrade, its
/// head).
fn http(server: &ServerProc, request: &str) -> String {
    let mut s = TcpStream::connect(server.addr_of("web")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
        if all.starts_with(b"HTTP/1.1 101 ") && all.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn get(server: &ServerProc, path: &str) -> String {
    let host = server.addr_of("web");
    http(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    )
}

type Ws = WebSocket<TcpStream>;

/// A WebSocket client of the chat, logged in as `name` (no login probe: raw protocol).
fn ws(server: &ServerProc, name: &str) -> Ws {
    let addr = server.addr_of("web");
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://{addr}/ws"))
        .header("Host", addr.to_string())
        .header("Origin", format!("http://{addr}"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut socket, _) = tungstenite::client(request, stream).expect("the upgrade");
    socket.send(Message::text(name)).unwrap();
    socket
}

/// The next text message; panics on a timeout or a close.
fn recv(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The texts before the server closes the WebSocket.
fn closed(ws: &mut Ws) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => texts.push(t.to_string()),
            Ok(Message::Close(_)) => continue,
            Ok(_) => {}
            Err(_) => return texts,
        }
    }
}

#[test]
fn the_page_and_its_files_are_served_and_nothing_else() {
    let server = ServerProc::start(&["--web-port", "0"]);
    let page = get(&server, "/");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains("Content-Security-Policy: "));
    assert!(page.contains("<script src=\"app.js\""), "{page}");
    let js = get(&server, "/app.js");
    assert!(
        js.contains("Content-Type: text/javascript; charset=utf-8\r\n"),
        "{js}"
    );
    assert!(get(&server, "/style.css").starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(get(&server, "/secret").starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(get(&server, "/../etc/passwd").starts_with("HTTP/1.1 4"));
    let host = server.addr_of("web");
    let post = http(
        &server,
        &format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
    );
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nX: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert!(http(&server, &huge).starts_with("HTTP/1.1 431 "));
    assert!(http(&server, "garbage\r\n\r\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn an_upgrade_from_another_origin_is_refused() {
    let server = ServerProc::start(&["--web-port", "0", "--web-origin", "https://chat.example"]);
    let host = server.addr_of("web");
    let upgrade = |origin: &str| {
        http(
            &server,
            &format!(
                "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            ),
        )
    };
    assert!(upgrade("http://evil.example").starts_with("HTTP/1.1 403 Forbidden\r\n"));
    assert!(upgrade(&format!("http://{host}")).starts_with("HTTP/1.1 101 "));
    assert!(upgrade("https://chat.example").starts_with("HTTP/1.1 101 "));
}

#[test]
fn a_browser_a_tls_client_and_a_plain_client_share_a_channel() {
    let dir = TempDir::new("web-tls");
    let ca = Ca::new("chat test CA");
    let cert = ca.issue(&dir.0, "server", &["localhost"]);
    let server = ServerProc::start(&[
        "--web-port",
        "0",
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
        "--tls-port",
        "0",
    ]);
    // With TLS configured the web port speaks HTTPS and WSS.
    let web = server.addr_of("web over TLS");
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = rustls::ClientConnection::new(ca.client_config(), name).unwrap();
    let sock = TcpStream::connect(web).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let stream = rustls::StreamOwned::new(tls, sock);
    let request = tungstenite::http::Request::builder()
        .uri(format!("wss://localhost:{}/ws", web.port()))
        .header("Host", format!("localhost:{}", web.port()))
        .header("Origin", format!("https://localhost:{}", web.port()))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut browser, _) = tungstenite::client(request, stream).expect("a WSS upgrade");
    browser.send(Message::text("Browser")).unwrap();
    browser.send(Message::text("/create tas")).unwrap();
    browser.send(Message::text("/list")).unwrap();
    let mut got = browser.read().unwrap();
    while !matches!(&got, Message::Text(t) if t.as_str() == "tas") {
        got = browser.read().unwrap();
    }
    let mut plain = server.login("Plain");
    plain.send("/join tas");
    let mut tls_peer = common::certs::TlsPeer::connect(
        server.addr_of("TLS"),
        Arc::clone(&ca.client_config()),
        "localhost",
    );
    tls_peer.send("Secure");
    tls_peer.send("/join tas");
    plain.expect("Secure has joined");
    plain.send("Hi all!");
    tls_peer.expect("[Plain] Hi all!");
    browser
        .send(Message::text("hello from the browser"))
        .unwrap();
    plain.expect("[Browser] hello from the browser");
    tls_peer.expect("[Browser] hello from the browser");
    tls_peer.send("and from TLS");
    plain.expect("[Secure] and from TLS");
    let texts: Vec<String> = (0..4)
        .map(|_| match browser.read().unwrap() {
            Message::Text(t) => t.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        [
            "Plain has joined",
            "Secure has joined",
            "[Plain] Hi all!",
            "[Secure] and from TLS"
        ]
    );
}

#[test]
fn websocket_messages_are_frames_text_and_replies_packed() {
    let server = ServerProc::start(&["--web-port", "0"]);
    let mut alice = ws(&server, "Alice");
    alice.send(Message::text("/create room")).unwrap();
    alice.send(Message::text("/help")).unwrap();
    let help = recv(&mut alice);
    assert!(help.starts_with("Commands:\n/create CHANNEL"), "{help:?}");
    assert!(help.len() <= 200, "each message is one frame's text");
    let mut kay = server.login("Kay");
    kay.send("/join room");
    // The rest of /help, then the join.
    let mut next = recv(&mut alice);
    while next != "Kay has joined" {
        assert!(
            next.len() <= 200 && !next.contains("has joined"),
            "{next:?}"
        );
        next = recv(&mut alice);
    }
    // A long chat from a frame client arrives as several messages, each with its prefix.
    let long = "word ".repeat(80);
    kay.send_raw(&frame(&long[..199]));
    let first = recv(&mut alice);
    assert!(first.starts_with("[Kay] word"), "{first:?}");
    let second = recv(&mut alice);
    assert!(second.starts_with("[Kay] "), "{second:?}");
    // A message over 200 bytes closes the WebSocket (1009); others are unaffected.
    alice.send(Message::text("x".repeat(201))).unwrap();
    let _ = closed(&mut alice);
    assert_eq!(kay.recv(), "Alice has left");
}

#[test]
fn a_websocket_that_never_reads_is_disconnected_and_others_keep_receiving() {
    let server = ServerProc::start(&[
        "--web-port",
        "0",
        "--max-queue",
        "65536",
        "--flood-rate",
        "0",
    ]);
    let mut alice = server.login("Alice");
    alice.send("/create tas");
    alice.sync("tas");
    let mut kay = server.login("Kay");
    kay.send("/join tas");
    alice.expect("Kay has joined");
    let mut sloth = ws(&server, "Sloth");
    sloth.send(Message::text("/join tas")).unwrap();
    alice.expect("Sloth has joined");
    kay.expect("Sloth has joined");
    // WebSocket messages carry no padding: long texts, so that Sloth's buffers fill.
    const PAD: &str = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
    let total = 60_000;
    let mut burst = Vec::new();
    let mut got = 0;
    let mut left = false;
    for i in 0..total {
        burst.extend_from_slice(&frame(&format!("m{i} {PAD}")));
        if burst.len() == 200 * 100 {
            kay.send_raw(&burst);
            burst.clear();
            while got + 100 < i + 1 {
                let t = alice.recv();
                if t == "Sloth has left" {
                    left = true;
                    continue;
                }
                assert_eq!(t, format!("[Kay] m{got} {PAD}"));
                got += 1;
            }
        }
    }
    while got < total {
        let t = alice.recv();
        if t == "Sloth has left" {
            left = true;
            continue;
        }
        assert_eq!(t, format!("[Kay] m{got} {PAD}"));
        got += 1;
    }
    if !left {
        alice.expect("Sloth has left");
    }
}

#[test]
fn the_name_timeout_and_shutdown_reach_websocket_clients_with_their_reason() {
    let server = ServerProc::start(&["--web-port", "0", "--name-timeout", "0.5"]);
    let addr = server.addr_of("web");
    // An HTTP connection that never sends its head is closed.
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert!(matches!(raw.read(&mut buf), Ok(0) | Err(_)));
    assert!(started.elapsed() < Duration::from_secs(3));
    // A WebSocket that sends no name gets the reason, then the close.
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://{addr}/ws"))
        .header("Host", addr.to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut quiet, _) = tungstenite::client(request, stream).unwrap();
    assert_eq!(closed(&mut quiet), [text::NAME_TIMEOUT]);
    let mut alice = ws(&server, "Alice");
    alice.send(Message::text("/time")).unwrap();
    assert!(recv(&mut alice).starts_with("Time is: "));
    let status = server.terminate();
    assert!(status.success());
    assert_eq!(closed(&mut alice), [text::SHUTTING_DOWN]);
}
