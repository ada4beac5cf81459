//! The web client's files (web/), built into the binary so the server needs nothing on disk
//! and serves exactly the page it was built with.

/// One file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The request path that serves it.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// Every file the page loads (index.html links style.css and app.js; its icon is a data: URL).
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/index.html")),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/app.js")),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/style.css")),
    },
];

/// The file served at `path` (the path without its query).
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
