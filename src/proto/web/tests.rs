//! The web codec against exact bytes, and against a real tungstenite client over memory.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Role};
use tungstenite::{Message, WebSocket};

use super::*;
use crate::hub::{MsgKind, Person, ReplyKind};

const HOST: &str = "127.0.0.1:8080";
const ORIGIN: &str = "http://127.0.0.1:8080";
const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn plain() -> WebConn {
    WebConn::new(false, Arc::from(Vec::<String>::new()))
}

fn with_origins(secure: bool, origins: &[&str]) -> WebConn {
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    WebConn::new(secure, Arc::from(origins))
}

/// Feeds `bytes` and calls `next` until it needs more or fails: what it wrote, the inputs, and
/// how it ended.
fn drive(conn: &mut WebConn, bytes: &[u8]) -> (Vec<u8>, Vec<String>, Result<(), WebClose>) {
    conn.feed(bytes);
    let mut out = Vec::new();
    let mut inputs = Vec::new();
    loop {
        match conn.next(&mut out) {
            Ok(Some(WebInput::Message(m))) => inputs.push(m),
            Ok(None) => return (out, inputs, Ok(())),
            Err(why) => return (out, inputs, Err(why)),
        }
    }
}

/// One request to a fresh plain-port connection: the response and the close.
fn ask(request: &str) -> (String, WebClose) {
    ask_on(&mut plain(), request)
}

fn ask_on(conn: &mut WebConn, request: &str) -> (String, WebClose) {
    let (out, inputs, end) = drive(conn, request.as_bytes());
    assert!(inputs.is_empty());
    (String::from_utf8(out).unwrap(), end.unwrap_err())
}

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/web/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

const CSP_PLAIN: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self' ws://127.0.0.1:8080; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn ok_head(content_type: &str, len: usize, csp: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         X-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
         Content-Security-Policy: {csp}\r\nConnection: close\r\n\r\n"
    )
}

const NOT_FOUND: &str = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 14\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
    Connection: close\r\n\r\n404 Not Found\n";
const BAD_REQUEST: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 16\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
    Connection: close\r\n\r\n400 Bad Request\n";
const FORBIDDEN: &str = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 14\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
    Connection: close\r\n\r\n403 Forbidden\n";
const TOO_LARGE: &str = "HTTP/1.1 431 Request Header Fields Too Large\r\n\
    Content-Type: text/plain; charset=utf-8\r\nContent-Length: 36\r\n\
    X-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
    Connection: close\r\n\r\n431 Request Header Fields Too Large\n";

fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn switching(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// Asserts that `request` (an upgrade) is accepted by `conn`.
fn assert_upgrades(conn: &mut WebConn, request: &str) {
    let (out, inputs, end) = drive(conn, request.as_bytes());
    assert_eq!(end, Ok(()), "{request}");
    assert!(inputs.is_empty());
    assert_eq!(String::from_utf8(out).unwrap(), switching(RFC_ACCEPT));
    assert!(conn.is_upgraded());
}

// ---- HTTP -----------------------------------------------------------------------------------

#[test]
fn get_root_serves_the_page_with_exact_headers() {
    let (out, end) = ask(&format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
    let page = file("index.html");
    let want = ok_head("text/html; charset=utf-8", page.len(), CSP_PLAIN);
    assert_eq!(out.as_bytes(), [want.as_bytes(), &page].concat());
    assert_eq!(end, WebClose::Served("/"));
}

#[test]
fn every_asset_is_served_with_its_type_and_head_gives_no_body() {
    for (path, name, content_type) in [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "style.css", "text/css; charset=utf-8"),
    ] {
        let body = file(name);
        let head = ok_head(content_type, body.len(), CSP_PLAIN);
        let (out, end) = ask(&format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
        assert_eq!(out.as_bytes(), [head.as_bytes(), &body].concat(), "{path}");
        assert_eq!(end, WebClose::Served(path));
        let (out, end) = ask(&format!("HEAD {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
        assert_eq!(out, head, "HEAD {path}");
        assert_eq!(end, WebClose::Served(path));
    }
}

#[test]
fn the_secure_port_allows_wss_and_http_1_0_without_host_only_self() {
    let mut conn = with_origins(true, &[]);
    let (out, _) = ask_on(&mut conn, "HEAD / HTTP/1.1\r\nHost: chat.example\r\n\r\n");
    let csp = "default-src 'self'; img-src 'self' data:; connect-src 'self' wss://chat.example; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    let len = file("index.html").len();
    assert_eq!(out, ok_head("text/html; charset=utf-8", len, csp));

    let (out, end) = ask("HEAD / HTTP/1.0\r\n\r\n");
    let csp = "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    assert_eq!(out, ok_head("text/html; charset=utf-8", len, csp));
    assert_eq!(end, WebClose::Served("/"));
}

#[test]
fn a_query_is_ignored_and_other_paths_are_not_found() {
    let (out, end) = ask(&format!("HEAD /?v=2 HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(end, WebClose::Served("/"));
    for path in [
        "/index.html",
        "/favicon.ico",
        "/app.js/",
        "/ws/",
        "/%2e",
        "//",
    ] {
        let (out, end) = ask(&format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
        assert_eq!(out, NOT_FOUND, "{path}");
        assert_eq!(end, WebClose::NotFound);
    }
    let (out, _) = ask(&format!("HEAD /nope HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
    assert_eq!(out, NOT_FOUND.strip_suffix("404 Not Found\n").unwrap());
}

#[test]
fn other_methods_get_405_with_allow() {
    let page = "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
        Content-Length: 23\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
        Allow: GET, HEAD\r\nConnection: close\r\n\r\n405 Method Not Allowed\n";
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        let (out, end) = ask(&format!("{method} / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
        assert_eq!(out, page, "{method}");
        assert_eq!(end, WebClose::MethodNotAllowed { allow: "GET, HEAD" });
    }
    let (out, end) = ask(&format!("POST /ws HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
    assert_eq!(out, page.replace("Allow: GET, HEAD", "Allow: GET"));
    assert_eq!(end, WebClose::MethodNotAllowed { allow: "GET" });
    let (out, _) = ask(&upgrade_request("").replacen("GET", "HEAD", 1));
    assert!(out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(
        out.ends_with("Allow: GET\r\nConnection: close\r\n\r\n"),
        "{out}"
    );
}

#[test]
fn malformed_heads_get_400() {
    for request in [
        "HELLO\r\n\r\n",
        "GET /\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a;b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",
        "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        "\u{0}\u{1}\u{2}\r\n\r\n",
    ] {
        let (out, end) = ask(request);
        assert_eq!(out, BAD_REQUEST, "{request:?}");
        assert!(
            matches!(end, WebClose::BadRequest(_)),
            "{request:?}: {end:?}"
        );
    }
}

#[test]
fn keep_alive_and_pipelined_requests_still_close_after_one_response() {
    let mut conn = plain();
    let two = format!(
        "GET /style.css HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive\r\n\r\n\
         GET /app.js HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    );
    let (out, end) = ask_on(&mut conn, &two);
    let css = file("style.css");
    let want = ok_head("text/css; charset=utf-8", css.len(), CSP_PLAIN);
    assert_eq!(out.as_bytes(), [want.as_bytes(), &css].concat());
    assert_eq!(end, WebClose::Served("/style.css"));
    // Nothing more, whatever comes.
    let (out, _, end) = drive(&mut conn, b"GET / HTTP/1.1\r\n\r\n");
    assert!(out.is_empty());
    assert_eq!(end, Err(WebClose::Closed));
    assert_eq!(conn.buffered(), 0);
}

#[test]
fn a_head_fed_one_byte_at_a_time() {
    let request = format!("GET /app.js HTTP/1.1\r\nHost: {HOST}\r\nAccept: */*\r\n\r\n");
    let mut conn = plain();
    let mut out = Vec::new();
    let bytes = request.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        conn.feed(std::slice::from_ref(b));
        let got = conn.next(&mut out);
        if i + 1 < bytes.len() {
            assert_eq!(got, Ok(None), "byte {i}");
            assert!(out.is_empty());
            // Asking again without new bytes changes nothing.
            assert_eq!(conn.next(&mut out), Ok(None));
        } else {
            assert_eq!(got, Err(WebClose::Served("/app.js")));
        }
    }
    let js = file("app.js");
    let want = ok_head("text/javascript; charset=utf-8", js.len(), CSP_PLAIN);
    assert_eq!(out, [want.as_bytes(), &js].concat());
}

/// A complete head of exactly `len` bytes.
fn head_of(len: usize) -> String {
    let start = format!("HEAD / HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: ");
    let pad = len - start.len() - 4;
    format!("{start}{}\r\n\r\n", "p".repeat(pad))
}

#[test]
fn heads_up_to_8_kib_are_answered_and_longer_ones_get_431() {
    let at_bound = head_of(MAX_HEAD);
    assert_eq!(at_bound.len(), 8192);
    let (out, end) = ask(&at_bound);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(end, WebClose::Served("/"));

    let (out, end) = ask(&head_of(MAX_HEAD + 1));
    assert_eq!(out, TOO_LARGE);
    assert_eq!(end, WebClose::HeadTooLarge);

    // Fed in pieces: nothing until the 8192nd byte, then 431 at once.
    let long = head_of(3 * MAX_HEAD);
    let mut conn = plain();
    let (out, _, end) = drive(&mut conn, &long.as_bytes()[..MAX_HEAD - 1]);
    assert!(out.is_empty());
    assert_eq!(end, Ok(()));
    let (out, _, end) = drive(&mut conn, &long.as_bytes()[MAX_HEAD - 1..MAX_HEAD]);
    assert_eq!(String::from_utf8(out).unwrap(), TOO_LARGE);
    assert_eq!(end, Err(WebClose::HeadTooLarge));

    // All in one read, however much it is.
    let (out, end) = ask(&long);
    assert_eq!(out, TOO_LARGE);
    assert_eq!(end, WebClose::HeadTooLarge);

    // Too many headers, in a short head.
    let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
    let (out, end) = ask(&format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n"));
    assert_eq!(out, TOO_LARGE);
    assert_eq!(end, WebClose::HeadTooLarge);
}

// ---- The upgrade ----------------------------------------------------------------------------

#[test]
fn the_rfc_6455_example_handshake() {
    // RFC 6455 1.3, on /ws, with the example's Origin given by --web-origin.
    let request = "GET /ws HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let mut conn = with_origins(false, &["http://example.com"]);
    assert!(!conn.is_upgraded());
    let (out, inputs, end) = drive(&mut conn, request.as_bytes());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
    assert!(inputs.is_empty());
    assert_eq!(end, Ok(()));
    assert!(conn.is_upgraded());
}

#[test]
fn origins_that_are_accepted() {
    for (secure, host, origin, extra) in [
        (false, HOST, None, None),
        (false, HOST, Some(ORIGIN), None),
        (
            false,
            "Chat.Example:8080",
            Some("HTTP://chat.EXAMPLE:8080"),
            None,
        ),
        (false, "chat.example:80", Some("http://chat.example"), None),
        (false, "chat.example", Some("http://chat.example:80"), None),
        (true, "chat.example", Some("https://chat.example"), None),
        (true, "chat.example:443", Some("https://chat.example"), None),
        (true, "[::1]:9443", Some("https://[::1]:9443"), None),
        (
            false,
            HOST,
            Some("https://chat.example"),
            Some("https://chat.example"),
        ),
        (
            false,
            HOST,
            Some("https://Chat.Example:443"),
            Some("HTTPS://chat.example"),
        ),
    ] {
        let mut conn = with_origins(secure, extra.as_slice());
        let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
        let request = upgrade_request(&origin).replace(HOST, host);
        assert_upgrades(&mut conn, &request);
    }
}

#[test]
fn origins_that_are_refused_with_403() {
    for (secure, origin, extra) in [
        (false, "http://evil.example", None),
        (false, "http://127.0.0.1:8081", None),
        (false, "http://127.0.0.1", None),
        (false, "https://127.0.0.1:8080", None),
        (true, "http://127.0.0.1:8080", None),
        (false, "null", None),
        (false, "http://127.0.0.1:8080/", None),
        (false, "file://", None),
        (false, "ws://127.0.0.1:8080", None),
        (false, "", None),
        (false, "http://evil.example", Some("http://good.example")),
    ] {
        let mut conn = with_origins(secure, extra.as_slice());
        let (out, end) = ask_on(
            &mut conn,
            &upgrade_request(&format!("Origin: {origin}\r\n")),
        );
        assert_eq!(out, FORBIDDEN, "{origin}");
        assert_eq!(end, WebClose::BadOrigin(origin.into()), "{origin}");
        assert!(!conn.is_upgraded());
    }
    let two = format!("Origin: {ORIGIN}\r\nOrigin: {ORIGIN}\r\n");
    let (out, end) = ask(&upgrade_request(&two));
    assert_eq!(out, FORBIDDEN);
    assert!(matches!(end, WebClose::BadOrigin(_)));
}

#[test]
fn upgrade_headers_are_checked() {
    let good = upgrade_request("");
    // Firefox's Connection, and other spellings the RFC allows.
    let mut conn = plain();
    assert_upgrades(
        &mut conn,
        &good.replace("Connection: Upgrade", "Connection: keep-alive, Upgrade"),
    );
    let mut conn = plain();
    assert_upgrades(
        &mut conn,
        &good.replace("Upgrade: websocket", "Upgrade: WebSocket"),
    );
    let mut conn = plain();
    assert_upgrades(&mut conn, &good.replace("Upgrade\r\n", "upgrade\r\n"));
    let mut conn = plain();
    assert_upgrades(&mut conn, &upgrade_request("Content-Length: 0\r\n"));

    for bad in [
        good.replace("Upgrade: websocket\r\n", ""),
        good.replace("Upgrade: websocket", "Upgrade: h2c"),
        good.replace("Connection: Upgrade", "Connection: keep-alive"),
        good.replace("Connection: Upgrade\r\n", ""),
        good.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        good.replace(RFC_KEY, "dGhlIHNhbXBsZSBub25jZR=="),
        good.replace(RFC_KEY, "dGhlIHNhbXBsZSBub25jZQ="),
        good.replace(RFC_KEY, "dGhlIHNhbXBsZSBub25j"),
        good.replace(RFC_KEY, "dGhlIHNhbXBsZSBub25jZ!=="),
        good.replace("Sec-WebSocket-Version: 13\r\n", ""),
        good.replace("HTTP/1.1", "HTTP/1.0"),
        good.replace(&format!("Host: {HOST}\r\n"), ""),
        upgrade_request("Content-Length: 5\r\n"),
        upgrade_request("Transfer-Encoding: chunked\r\n"),
        upgrade_request(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n")),
    ] {
        let (out, end) = ask(&bad);
        assert_eq!(out, BAD_REQUEST, "{bad}");
        assert!(matches!(end, WebClose::BadRequest(_)), "{bad}: {end:?}");
    }

    let (out, end) = ask(&good.replace("Version: 13", "Version: 8"));
    assert_eq!(
        out,
        "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 21\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n\
         426 Upgrade Required\n"
    );
    assert_eq!(end, WebClose::BadVersion("8".into()));
}

#[test]
fn normalize_origin_checks_web_origin_values() {
    assert_eq!(
        normalize_origin("HTTPS://Chat.Example:443").as_deref(),
        Some("https://chat.example")
    );
    assert_eq!(
        normalize_origin(" http://a.example:8080 ").as_deref(),
        Some("http://a.example:8080")
    );
    for bad in [
        "chat.example",
        "ftp://a",
        "http://",
        "http://a/",
        "null",
        "http://a b",
    ] {
        assert_eq!(normalize_origin(bad), None, "{bad}");
    }
}

#[test]
fn the_page_loads_only_served_files_and_has_no_inline_code() {
    let page = String::from_utf8(file("index.html")).unwrap();
    let mut links = 0;
    for attr in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attr) {
            let value = &page[at + attr.len()..];
            let value = &value[..value.find('"').unwrap()];
            if value.starts_with("data:") || value.starts_with('#') {
                continue;
            }
            links += 1;
            let path = format!("/{}", value.trim_start_matches('/'));
            assert!(assets::find(&path).is_some(), "the page loads {value}");
        }
    }
    assert_eq!(links, assets::ASSETS.len() - 1);
    // The CSP allows no inline script or style: the page must need none.
    let lower = page.to_ascii_lowercase();
    assert_eq!(
        lower.matches("<script").count(),
        lower.matches("<script src=").count()
    );
    assert!(!lower.contains("<style"));
    assert!(!lower.contains(" style="));
    assert!(!lower.contains(" onclick=") && !lower.contains(" onload="));
    // And the page's WebSocket is ours.
    let js = String::from_utf8(file("app.js")).unwrap();
    assert!(js.contains("${location.host}/ws`"));
}

// ---- A real WebSocket client ----------------------------------------------------------------

/// One direction of an in-memory connection for the tungstenite client.
#[derive(Debug, Default)]
struct Wire {
    to_server: Vec<u8>,
    to_client: VecDeque<u8>,
}

#[derive(Debug)]
struct ClientEnd(Rc<RefCell<Wire>>);

impl Read for ClientEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wire = self.0.borrow_mut();
        if wire.to_client.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        wire.to_client.read(buf)
    }
}

impl Write for ClientEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().to_server.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The client's (masked) frames for `texts`.
fn masked(texts: &[&str]) -> Vec<u8> {
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut client = WebSocket::from_raw_socket(ClientEnd(wire.clone()), Role::Client, None);
    for text in texts {
        client.send(Message::text(*text)).unwrap();
    }
    let bytes = std::mem::take(&mut wire.borrow_mut().to_server);
    bytes
}

/// A tungstenite client and the server's codec, joined in memory.
struct Pair {
    client: WebSocket<ClientEnd>,
    wire: Rc<RefCell<Wire>>,
    server: WebConn,
}

impl Pair {
    /// A client that did the handshake through `WebConn`.
    fn connect() -> Pair {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut request = format!("ws://{HOST}/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", ORIGIN.parse().unwrap());
        let mid = match tungstenite::client(request, ClientEnd(wire.clone())) {
            Err(HandshakeError::Interrupted(mid)) => mid,
            other => panic!("the client did not wait for the server: {other:?}"),
        };
        let mut server = plain();
        let head = std::mem::take(&mut wire.borrow_mut().to_server);
        let (out, inputs, end) = drive(&mut server, &head);
        assert_eq!(end, Ok(()));
        assert!(inputs.is_empty() && server.is_upgraded());
        wire.borrow_mut().to_client.extend(out);
        let (client, response) = mid.handshake().unwrap();
        assert_eq!(response.status(), 101);
        Pair {
            client,
            wire,
            server,
        }
    }

    /// What the client sent so far, taken off the wire.
    fn sent(&mut self) -> Vec<u8> {
        self.client.flush().unwrap();
        std::mem::take(&mut self.wire.borrow_mut().to_server)
    }

    /// Gives the server `bytes`; its inputs and end; its output goes to the client.
    fn serve(&mut self, bytes: &[u8]) -> (Vec<String>, Result<(), WebClose>) {
        let (out, inputs, end) = drive(&mut self.server, bytes);
        self.wire.borrow_mut().to_client.extend(out);
        (inputs, end)
    }

    /// Every message the client can read now.
    fn received(&mut self) -> Vec<Message> {
        let mut got = Vec::new();
        loop {
            match self.client.read() {
                Ok(m) => got.push(m),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return got
                }
                Err(tungstenite::Error::ConnectionClosed) => return got,
                Err(e) => panic!("the client failed: {e}"),
            }
        }
    }
}

fn close_code(message: &Message) -> Option<u16> {
    match message {
        Message::Close(Some(frame)) => Some(u16::from(frame.code)),
        _ => None,
    }
}

#[test]
fn masked_text_messages_in_one_feed_and_split_across_feeds() {
    let mut pair = Pair::connect();
    for text in ["alice", "/join tas", "Hi! é 👋"] {
        pair.client.send(Message::text(text)).unwrap();
    }
    let bytes = pair.sent();
    assert_eq!(
        pair.serve(&bytes),
        (
            vec!["alice".into(), "/join tas".into(), "Hi! é 👋".into()],
            Ok(())
        )
    );

    // The same, three bytes at a time.
    for text in ["one", "", "three"] {
        pair.client.send(Message::text(text)).unwrap();
    }
    let bytes = pair.sent();
    let mut inputs = Vec::new();
    for piece in bytes.chunks(3) {
        let (got, end) = pair.serve(piece);
        assert_eq!(end, Ok(()));
        inputs.extend(got);
    }
    assert_eq!(inputs, ["one", "", "three"]);
    assert_eq!(pair.server.buffered(), 0);
    assert!(pair.received().is_empty());
}

#[test]
fn the_head_and_the_first_frames_in_one_read() {
    let frames = masked(&["bob", "hello"]);
    let mut conn = plain();
    let request = [upgrade_request("").as_bytes(), &frames].concat();
    let (out, inputs, end) = drive(&mut conn, &request);
    assert_eq!(String::from_utf8(out).unwrap(), switching(RFC_ACCEPT));
    assert_eq!(inputs, ["bob", "hello"]);
    assert_eq!(end, Ok(()));
}

#[test]
fn the_next_message_waits_while_the_caller_does() {
    let mut pair = Pair::connect();
    pair.client.send(Message::text("first")).unwrap();
    pair.client.send(Message::text("second")).unwrap();
    let bytes = pair.sent();
    pair.server.feed(&bytes);
    let mut out = Vec::new();
    let first = pair.server.next(&mut out);
    assert_eq!(first, Ok(Some(WebInput::Message("first".into()))));
    // The hub makes the connection wait; later the rest is still there.
    let second = pair.server.next(&mut out);
    assert_eq!(second, Ok(Some(WebInput::Message("second".into()))));
    assert_eq!(pair.server.next(&mut out), Ok(None));
    assert!(out.is_empty());
}

#[test]
fn fragments_are_assembled() {
    let mut pair = Pair::connect();
    let parts = [
        Frame::message("hel", OpCode::Data(Data::Text), false),
        // A ping between fragments is answered at once.
        Frame::ping("p"),
        Frame::message("lo ", OpCode::Data(Data::Continue), false),
        Frame::message("wörld", OpCode::Data(Data::Continue), true),
    ];
    for frame in parts {
        pair.client.send(Message::Frame(frame)).unwrap();
    }
    let bytes = pair.sent();
    assert_eq!(pair.serve(&bytes), (vec!["hello wörld".into()], Ok(())));
    assert_eq!(pair.received(), [Message::Pong("p".into())]);
}

#[test]
fn pings_get_pongs() {
    let mut pair = Pair::connect();
    pair.client.send(Message::Ping("one".into())).unwrap();
    pair.client.send(Message::Ping("two".into())).unwrap();
    pair.client.send(Message::Pong("unasked".into())).unwrap();
    let bytes = pair.sent();
    assert_eq!(pair.serve(&bytes), (vec![], Ok(())));
    assert_eq!(
        pair.received(),
        [Message::Pong("one".into()), Message::Pong("two".into())]
    );
}

#[test]
fn a_client_close_is_answered() {
    let mut pair = Pair::connect();
    pair.client.send(Message::text("bye")).unwrap();
    pair.client
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }))
        .unwrap();
    let bytes = pair.sent();
    assert_eq!(
        pair.serve(&bytes),
        (vec!["bye".into()], Err(WebClose::ClientClosed(Some(1000))))
    );
    let got = pair.received();
    assert_eq!(got.len(), 1);
    assert_eq!(close_code(&got[0]), Some(1000));
    // Over: nothing more is read or written.
    let (out, _, end) = drive(&mut pair.server, b"\x81\x80\0\0\0\0");
    assert!(out.is_empty());
    assert_eq!(end, Err(WebClose::Closed));
}

/// Sends `frames` from a fresh client; the server's end and the close code the client got.
fn refused(frames: Vec<Frame>) -> (WebClose, Option<u16>) {
    let mut pair = Pair::connect();
    for frame in frames {
        pair.client.send(Message::Frame(frame)).unwrap();
    }
    let bytes = pair.sent();
    let (inputs, end) = pair.serve(&bytes);
    assert!(inputs.is_empty());
    let got = pair.received();
    assert_eq!(got.len(), 1, "{got:?}");
    (end.unwrap_err(), close_code(&got[0]))
}

#[test]
fn oversize_binary_and_broken_messages_are_closed_with_their_codes() {
    let text = |s: &str, fin| Frame::message(s.to_owned(), OpCode::Data(Data::Text), fin);
    let cont = |s: &str, fin| Frame::message(s.to_owned(), OpCode::Data(Data::Continue), fin);

    // 200 bytes pass (in one frame or in fragments); 201 do not.
    let mut pair = Pair::connect();
    let full = "é".repeat(100);
    pair.client.send(Message::text(full.clone())).unwrap();
    pair.client
        .send(Message::Frame(text(&"x".repeat(100), false)))
        .unwrap();
    pair.client
        .send(Message::Frame(cont(&"y".repeat(100), true)))
        .unwrap();
    let bytes = pair.sent();
    let (inputs, end) = pair.serve(&bytes);
    assert_eq!(end, Ok(()));
    assert_eq!(
        inputs,
        [full, format!("{}{}", "x".repeat(100), "y".repeat(100))]
    );

    let over = "x".repeat(201);
    assert_eq!(
        refused(vec![text(&over, true)]),
        (WebClose::TooLong, Some(1009))
    );
    let half = "x".repeat(100);
    assert_eq!(
        refused(vec![
            text(&half, false),
            cont(&half, false),
            cont("z", true)
        ]),
        (WebClose::TooLong, Some(1009))
    );
    let binary = Frame::message(vec![1u8, 2, 3], OpCode::Data(Data::Binary), true);
    assert_eq!(refused(vec![binary]), (WebClose::Binary, Some(1003)));
    let bad_utf8 = Frame::message(vec![b'a', 0xff], OpCode::Data(Data::Text), true);
    assert_eq!(refused(vec![bad_utf8]), (WebClose::BadUtf8, Some(1007)));
    let (why, code) = refused(vec![cont("orphan", true)]);
    assert!(matches!(why, WebClose::Protocol(_)), "{why:?}");
    assert_eq!(code, Some(1002));
}

#[test]
fn unmasked_frames_and_huge_lengths_are_refused_at_once() {
    let mut pair = Pair::connect();
    let (inputs, end) = pair.serve(b"\x81\x02hi");
    assert!(inputs.is_empty());
    assert!(matches!(end, Err(WebClose::Protocol(_))), "{end:?}");
    assert_eq!(close_code(&pair.received()[0]), Some(1002));

    // A header that claims 2^63 bytes: refused before any payload, nothing reserved for it.
    let mut pair = Pair::connect();
    let (_, end) = pair.serve(b"\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x01\x02\x03\x04");
    assert_eq!(end, Err(WebClose::TooLong));
    assert_eq!(close_code(&pair.received()[0]), Some(1009));
}

#[test]
fn many_pings_in_one_read_get_as_many_pongs_and_nothing_is_kept() {
    let mut pair = Pair::connect();
    for i in 0..1000 {
        pair.client
            .write(Message::Ping(format!("{i}").into_bytes().into()))
            .unwrap();
    }
    let bytes = pair.sent();
    assert_eq!(pair.serve(&bytes), (vec![], Ok(())));
    assert_eq!(pair.server.buffered(), 0);
    let pongs = pair.received();
    assert_eq!(pongs.len(), 1000);
    assert_eq!(pongs[999], Message::Pong("999".into()));
}

// ---- Rendering ------------------------------------------------------------------------------

fn person(name: &str) -> Person {
    Person {
        name: name.into(),
        user: name.into(),
        host: "h".into(),
    }
}

/// What a browser reads from `bytes`, the server's frames.
fn decode(bytes: &[u8]) -> Vec<Message> {
    let wire = Rc::new(RefCell::new(Wire::default()));
    wire.borrow_mut().to_client.extend(bytes);
    let mut client = WebSocket::from_raw_socket(ClientEnd(wire.clone()), Role::Client, None);
    let mut got = Vec::new();
    loop {
        match client.read() {
            Ok(m) => got.push(m),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(wire.borrow().to_client.is_empty());
    got
}

fn texts(bytes: &[u8]) -> Vec<String> {
    decode(bytes)
        .into_iter()
        .map(|m| match m {
            Message::Text(t) => t.as_str().to_owned(),
            other => panic!("not a text message: {other:?}"),
        })
        .collect()
}

/// The frame protocol's texts for `out`, padding removed.
fn frame_texts(out: &Out<'_>) -> Vec<String> {
    let mut buf = Vec::new();
    frame::render(out, &mut buf);
    buf.chunks(FRAME_LEN)
        .map(|f| crate::frame::decode(f).into_owned())
        .collect()
}

#[test]
fn a_chat_message_is_one_text_message_exactly() {
    let kay = person("Kay");
    let out = Out::Chat {
        chan: "tas",
        from: &kay,
        text: "Hi!",
        kind: MsgKind::Chat,
    };
    let mut buf = b"before".to_vec();
    render(&out, &mut buf);
    assert_eq!(buf, b"before\x81\x09[Kay] Hi!");
    assert_eq!(texts(&buf[6..]), ["[Kay] Hi!"]);
}

#[test]
fn long_chats_and_replies_become_one_message_per_frame() {
    let kay = person("Kay");
    let body = "word ".repeat(100);
    let long = Out::Chat {
        chan: "c",
        from: &kay,
        text: &body,
        kind: MsgKind::Chat,
    };
    let lines = ["Users: ------------", "Kay tas", "Bob -"];
    let reply = Out::Reply {
        kind: ReplyKind::Plain,
        lines: &lines,
        to: Some("Kay"),
    };
    let full = "x".repeat(FRAME_LEN);
    let full_lines = [full.as_str()];
    let full_reply = Out::Reply {
        kind: ReplyKind::Plain,
        lines: &full_lines,
        to: Some("Kay"),
    };
    let private = Out::Private {
        from: &kay,
        to: "Bob",
        text: "psst",
        kind: MsgKind::Chat,
    };
    for out in [long, reply, full_reply, private] {
        let mut buf = Vec::new();
        render(&out, &mut buf);
        let want = frame_texts(&out);
        assert_eq!(texts(&buf), want, "{out:?}");
    }

    let mut buf = Vec::new();
    render(&long, &mut buf);
    let got = texts(&buf);
    assert!(got.len() > 2);
    assert!(got
        .iter()
        .all(|t| t.starts_with("[Kay] ") && t.len() <= FRAME_LEN));
    assert_eq!(
        got.iter()
            .map(|t| &t["[Kay] ".len()..])
            .collect::<String>()
            .split_whitespace()
            .count(),
        100
    );

    let mut buf = Vec::new();
    render(&reply, &mut buf);
    assert_eq!(texts(&buf), ["Users: ------------\nKay tas\nBob -"]);

    // A full frame's text needs the 16-bit length.
    let mut buf = Vec::new();
    render(&full_reply, &mut buf);
    assert_eq!(buf[..4], [0x81, 126, 0, 200]);
    assert_eq!(buf.len(), 204);

    let mut buf = Vec::new();
    render(&Out::Raw(b"PING x\r\n"), &mut buf);
    assert!(buf.is_empty());
}

#[test]
fn the_reason_then_a_close_frame() {
    let mut buf = Vec::new();
    render_reason(text::SHUTTING_DOWN, &mut buf);
    let got = decode(&buf);
    assert_eq!(got[0], Message::text(text::SHUTTING_DOWN));
    assert_eq!(close_code(&got[1]), Some(1001));
    assert_eq!(got.len(), 2);
    assert!(buf.ends_with(&[0x88, 2, 0x03, 0xe9]));

    for (reason, code) in [
        (text::SERVER_FULL.to_string(), 1013),
        (text::NAME_TIMEOUT.to_string(), 1008),
        (text::identify_timeout("Kay"), 1008),
    ] {
        let mut buf = Vec::new();
        render_reason(&reason, &mut buf);
        let got = decode(&buf);
        assert_eq!(got, [Message::text(reason.clone()), got[1].clone()]);
        assert_eq!(close_code(&got[1]), Some(code), "{reason}");
    }

    // A reason longer than a frame is cut as frames are.
    let long = "because ".repeat(40);
    let mut buf = Vec::new();
    render_reason(&long, &mut buf);
    let got = decode(&buf);
    let mut frames = Vec::new();
    frame::render_reason(&long, &mut frames);
    let want: Vec<Message> = frames
        .chunks(FRAME_LEN)
        .map(|f| Message::text(crate::frame::decode(f).into_owned()))
        .collect();
    assert_eq!(want.len(), 2);
    assert_eq!(got[..2], want[..]);
    assert_eq!(close_code(&got[2]), Some(1008));
    assert_eq!(got.len(), 3);

    let mut buf = Vec::new();
    render_close(&mut buf);
    assert_eq!(buf, [0x88, 2, 0x03, 0xe8]);
}

// ---- Hostile input --------------------------------------------------------------------------

/// A random frame: often a well-formed one a browser could send, often not.
fn random_frame(rng: &mut SmallRng) -> Vec<u8> {
    if rng.random_bool(0.5) {
        let len = rng.random_range(0..210);
        let text: String = (0..len)
            .map(|_| ['a', ' ', 'é', '👋', '/'][rng.random_range(0..5)])
            .take_while({
                let mut bytes = 0;
                move |c| {
                    bytes += c.len_utf8();
                    bytes <= len
                }
            })
            .collect();
        let message = match rng.random_range(0..10) {
            0 => Message::Ping(text.into_bytes().into()),
            1 => Message::Binary(text.into_bytes().into()),
            2 => Message::Close(None),
            _ => Message::text(text),
        };
        let wire = Rc::new(RefCell::new(Wire::default()));
        let config = tungstenite::protocol::WebSocketConfig::default().write_buffer_size(0);
        let mut client =
            WebSocket::from_raw_socket(ClientEnd(wire.clone()), Role::Client, Some(config));
        let _ = client.send(message);
        let bytes = std::mem::take(&mut wire.borrow_mut().to_server);
        return bytes;
    }
    let mut bytes = Vec::new();
    let first = if rng.random_bool(0.7) {
        [0x81, 0x01, 0x80, 0x89, 0x8a, 0x88, 0x82][rng.random_range(0..7)]
    } else {
        rng.random()
    };
    bytes.push(first);
    let len: usize = rng.random_range(0..260);
    let masked = rng.random_bool(0.9);
    let mask_bit = if masked { 0x80 } else { 0 };
    match rng.random_range(0..10) {
        0 => {
            bytes.push(mask_bit | 127);
            bytes.extend_from_slice(&rng.random::<u64>().to_be_bytes());
        }
        1..=3 => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => bytes.push(mask_bit | (len.min(125) as u8)),
    }
    if masked {
        bytes.extend_from_slice(&rng.random::<[u8; 4]>());
    }
    let payload_len = if rng.random_bool(0.8) {
        len.min(125)
    } else {
        len
    };
    bytes.extend((0..payload_len).map(|_| rng.random::<u8>()));
    bytes
}

#[test]
fn seeded_random_input_never_panics() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_6455);
    let heads = [
        upgrade_request(""),
        format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        "GET /ws HTTP/1.1\r\n".to_string(),
        String::new(),
    ];
    let mut outcomes = [0usize; 3];
    for case in 0..20000 {
        let mut conn = with_origins(case % 2 == 0, &[ORIGIN]);
        let mut input = heads[case % heads.len()].clone().into_bytes();
        let upgrade = case % heads.len() == 0;
        for _ in 0..rng.random_range(0..12) {
            if upgrade || rng.random_bool(0.3) {
                input.extend(random_frame(&mut rng));
            } else {
                let n = rng.random_range(0..300);
                input.extend((0..n).map(|_| rng.random::<u8>()));
            }
        }
        if rng.random_bool(0.2) && !input.is_empty() {
            let at = rng.random_range(0..input.len());
            input[at] ^= 1 << rng.random_range(0..8);
        }
        let mut out = Vec::new();
        let mut rest = &input[..];
        let mut ended = false;
        while !rest.is_empty() && !ended {
            let n = rng.random_range(1..=rest.len().min(64));
            conn.feed(&rest[..n]);
            rest = &rest[n..];
            loop {
                match conn.next(&mut out) {
                    Ok(Some(WebInput::Message(m))) => {
                        assert!(m.len() <= MAX_MESSAGE);
                        outcomes[0] += 1;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        outcomes[1] += 1;
                        ended = true;
                        break;
                    }
                }
            }
            // Held input never outgrows what was fed.
            assert!(conn.buffered() <= input.len());
        }
        if !ended {
            outcomes[2] += 1;
        }
        // Output is a response, or pongs and a close: bounded by the input and the page.
        assert!(out.len() <= 2 * input.len() + 64 * 1024, "case {case}");
    }
    // The fuzz reached every outcome.
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
}
