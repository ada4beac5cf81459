//! The web port's HTTP/1.1 front: one request head, answered with a file of the page or an
//! error and then a close (no keep-alive, so HTTP/1.0 and pipelining need nothing more), or
//! with the WebSocket upgrade (101).
//!
//! Strict on purpose: one exact path per file, GET and HEAD only, exactly one valid Host for
//! HTTP/1.1, a head of at most [`MAX_HEAD`] bytes, an upgrade only with every header RFC 6455
//! asks for and an allowed `Origin`.
//!
//! `Origin` and cross-site requests: a browser always sends `Origin` with a WebSocket upgrade,
//! so checking it stops another site's page from chatting in its visitor's name. A request
//! without `Origin` comes from a program, not a browser; no other site can make it, so it is
//! let through like any client of the plain port.

use super::{assets, Asset, WebClose};
use crate::utils_errors as text;

/// The longest request head, in bytes (request line, headers and the blank line).
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers a head may hold at most; more is answered like a head that is too long.
const MAX_HEADERS: usize = 64;

/// The path of the WebSocket.
pub const WS_PATH: &str = "/ws";

/// What the bytes received so far ask of the connection.
#[derive(Debug)]
pub enum Head {
    /// The head is not complete yet.
    Partial,
    /// The upgrade was accepted and the 101 written: the first `n` bytes were the head; the rest
    /// are the WebSocket's.
    Upgrade(usize),
    /// A response was written; the connection closes for this reason.
    Done(WebClose),
}

/// Answers the request head at the start of `buf`, appending the response to `out`.
pub fn handle(buf: &[u8], secure: bool, origins: &[String], out: &mut Vec<u8>) -> Head {
    // Only the first MAX_HEAD bytes can be the head; what follows them in the same read may be
    // the first WebSocket frames.
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(window);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return refuse(out, WebClose::HeadTooLarge, false)
        }
        Err(_) => return refuse(out, WebClose::BadRequest("a malformed request head"), false),
    };
    let head_only = req.method == Some("HEAD");
    match route(&req, secure, origins) {
        Ok(Route::Asset { asset, host }) => {
            serve(out, asset, host, secure, head_only);
            Head::Done(WebClose::Served(asset.path))
        }
        Ok(Route::Upgrade { key }) => {
            switch(out, key);
            Head::Upgrade(len)
        }
        Err(why) => refuse(out, why, head_only),
    }
}

/// What a well-formed request asks for.
enum Route<'h> {
    /// A file of the page; `host` as the request named it.
    Asset {
        asset: &'static Asset,
        host: Option<&'h str>,
    },
    /// The WebSocket, with the client's `Sec-WebSocket-Key`.
    Upgrade { key: &'h [u8] },
}

/// Decides what a complete head asks for, or why it is refused.
fn route<'h>(
    req: &httparse::Request<'h, '_>,
    secure: bool,
    origins: &[String],
) -> Result<Route<'h>, WebClose> {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(WebClose::BadRequest("an incomplete request line"));
    };
    let headers: &[httparse::Header<'h>] = req.headers;
    let host = match single(headers, "host") {
        Err(()) => return Err(WebClose::BadRequest("more than one Host")),
        Ok(Some(h)) => match std::str::from_utf8(h.trim_ascii()) {
            Ok(h) if valid_host(h) => Some(h),
            _ => return Err(WebClose::BadRequest("an invalid Host")),
        },
        // RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400; HTTP/1.0 had none.
        Ok(None) if version == 0 => None,
        Ok(None) => return Err(WebClose::BadRequest("HTTP/1.1 without Host")),
    };
    if !target.starts_with('/') {
        return Err(WebClose::BadRequest("a request target that is not a path"));
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    if path == WS_PATH {
        if method != "GET" {
            return Err(WebClose::MethodNotAllowed { allow: "GET" });
        }
        return upgrade(headers, version, host, secure, origins).map(|key| Route::Upgrade { key });
    }
    let Some(asset) = assets::find(path) else {
        return Err(WebClose::NotFound);
    };
    if method != "GET" && method != "HEAD" {
        return Err(WebClose::MethodNotAllowed { allow: "GET, HEAD" });
    }
    Ok(Route::Asset { asset, host })
}

/// Checks a `GET /ws` as RFC 6455 4.2.1 asks, then its `Origin`; gives the client's key.
fn upgrade<'h>(
    headers: &[httparse::Header<'h>],
    version: u8,
    host: Option<&str>,
    secure: bool,
    origins: &[String],
) -> Result<&'h [u8], WebClose> {
    if version != 1 {
        return Err(WebClose::BadRequest("a WebSocket upgrade over HTTP/1.0"));
    }
    if host.is_none() {
        return Err(WebClose::BadRequest("HTTP/1.1 without Host"));
    }
    if !has_token(headers, "upgrade", "websocket") {
        return Err(WebClose::BadRequest("a GET /ws without Upgrade: websocket"));
    }
    if !has_token(headers, "connection", "upgrade") {
        return Err(WebClose::BadRequest(
            "a GET /ws without Connection: upgrade",
        ));
    }
    // What follows the head is the WebSocket's, so a body would be read as frames.
    let body = headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value.trim_ascii() != b"0")
    });
    if body {
        return Err(WebClose::BadRequest("a body on the WebSocket upgrade"));
    }
    match single(headers, "sec-websocket-version") {
        Ok(Some(v)) if v.trim_ascii() == b"13" => {}
        Ok(Some(v)) => return Err(WebClose::BadVersion(lossy(v))),
        Ok(None) => return Err(WebClose::BadRequest("no Sec-WebSocket-Version")),
        Err(()) => return Err(WebClose::BadRequest("more than one Sec-WebSocket-Version")),
    }
    let key = match single(headers, "sec-websocket-key") {
        Ok(Some(k)) if valid_key(k.trim_ascii()) => k.trim_ascii(),
        _ => return Err(WebClose::BadRequest("an invalid Sec-WebSocket-Key")),
    };
    match single(headers, "origin") {
        Ok(None) => {}
        Ok(Some(origin)) if origin_allowed(origin, host, secure, origins) => {}
        Ok(Some(origin)) => return Err(WebClose::BadOrigin(lossy(origin))),
        Err(()) => return Err(WebClose::BadOrigin("(more than one Origin)".into())),
    }
    Ok(key)
}

/// The value of the header `name` when it appears once, None when it does not; Err when it
/// appears more than once.
fn single<'h>(headers: &[httparse::Header<'h>], name: &str) -> Result<Option<&'h [u8]>, ()> {
    let mut found = None;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
        if found.replace(h.value).is_some() {
            return Err(());
        }
    }
    Ok(found)
}

/// True when a comma-separated header `name` (in any of its lines) lists `token`, in any case.
fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A header value for the log, lossily decoded.
fn lossy(value: &[u8]) -> Box<str> {
    String::from_utf8_lossy(value).into()
}

/// True for a Host (or an origin's authority): a name or address and maybe a port, in the
/// characters these are made of, so that it can also go into a header of the response.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

/// True for the base64 form of 16 bytes (RFC 6455 4.1: the key is a random 16-byte nonce):
/// 21 characters, one whose last four bits are zero, and `==`.
fn valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key[..21]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && b"AQgw".contains(&key[21])
        && &key[22..] == b"=="
}

/// An origin as `scheme://host[:port]` in lower case, without the scheme's default port; None
/// when `origin` is not an http or https origin (`null`, a path, another scheme…).
///
/// Also what `--web-origin` values should be checked with at start.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let (scheme, authority) = origin.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    if !valid_host(authority) {
        return None;
    }
    let mut authority = authority.to_ascii_lowercase();
    if authority.ends_with(default_port) {
        authority.truncate(authority.len() - default_port.len());
    }
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// True when `origin` is the page's own (the scheme of this port and the request's Host) or one
/// of `origins`.
fn origin_allowed(origin: &[u8], host: Option<&str>, secure: bool, origins: &[String]) -> bool {
    let Some(origin) = std::str::from_utf8(origin).ok().and_then(normalize_origin) else {
        return false;
    };
    let own = host.and_then(|host| normalize_origin(&format!("{}://{host}", scheme(secure))));
    own.as_deref() == Some(origin.as_str())
        || origins
            .iter()
            .any(|o| normalize_origin(o).as_deref() == Some(origin.as_str()))
}

/// The page's scheme on this port.
fn scheme(secure: bool) -> &'static str {
    if secure {
        "https"
    } else {
        "http"
    }
}

/// The Content-Security-Policy of the page: its own files only, no inline script or style (the
/// page has none), its data: icon, and its WebSocket. `'self'` covers ws:/wss: of the page's own
/// host in CSP 3, but older browsers need the WebSocket's origin spelled out.
pub fn content_security_policy(host: Option<&str>, secure: bool) -> String {
    let mut connect = String::from("'self'");
    if let Some(host) = host {
        connect.push_str(if secure { " wss://" } else { " ws://" });
        connect.push_str(host);
    }
    format!(
        "default-src 'self'; img-src 'self' data:; connect-src {connect}; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

/// Writes the status line and the headers every response but the 101 has.
fn start(out: &mut Vec<u8>, status: u16, reason: &str, content_type: &str, len: usize) {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {len}\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Cache-Control: no-cache\r\n"
    );
    out.extend_from_slice(head.as_bytes());
}

/// The answer to a request the server has no room for: `503` with `Retry-After`, and the
/// server-full text as its body.
pub fn server_full(out: &mut Vec<u8>) {
    let body = format!("{}\n", text::SERVER_FULL);
    start(
        out,
        503,
        "Service Unavailable",
        "text/plain; charset=utf-8",
        body.len(),
    );
    out.extend_from_slice(b"Retry-After: 10\r\n");
    end(out);
    out.extend_from_slice(body.as_bytes());
}

/// Writes the last header line and the blank line.
fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Connection: close\r\n\r\n");
}

/// Writes a file of the page (its headers only for HEAD).
fn serve(out: &mut Vec<u8>, asset: &Asset, host: Option<&str>, secure: bool, head_only: bool) {
    start(out, 200, "OK", asset.content_type, asset.body.len());
    let csp = content_security_policy(host, secure);
    out.extend_from_slice(format!("Content-Security-Policy: {csp}\r\n").as_bytes());
    end(out);
    if !head_only {
        out.extend_from_slice(asset.body);
    }
}

/// Writes the 101 that completes the upgrade.
fn switch(out: &mut Vec<u8>, key: &[u8]) {
    let accept = tungstenite::handshake::derive_accept_key(key);
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    out.extend_from_slice(head.as_bytes());
}

/// Writes the error response for `why` (its headers only for HEAD) and gives the close.
fn refuse(out: &mut Vec<u8>, why: WebClose, head_only: bool) -> Head {
    let Some((status, reason)) = why.http_status() else {
        return Head::Done(why);
    };
    let body = text::http_error_body(status, reason);
    start(out, status, reason, "text/plain; charset=utf-8", body.len());
    match &why {
        WebClose::MethodNotAllowed { allow } => {
            out.extend_from_slice(format!("Allow: {allow}\r\n").as_bytes())
        }
        // RFC 6455 4.2.2: the versions the server speaks; RFC 9110 15.5.22: the protocol.
        WebClose::BadVersion(_) => {
            out.extend_from_slice(b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
        }
        _ => {}
    }
    end(out);
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    Head::Done(why)
}
