//! The web client in a real browser: headless Chromium (Debian's package) driven by
//! Playwright (`test_harness/browser/chat.test.mjs`) against the real server binary's
//! `--web-port`, with two browser users and terminal clients. The script checks messages,
//! joins, leaves, /who, /search, private messages, a reconnect after a restart, markup shown
//! as text and an accessibility check, and saves screenshots.

mod common;

use std::process::Command;
use std::time::Duration;

use common::tools;

#[test]
fn the_web_client_works_in_a_real_browser() {
    let node = tools::require("node");
    tools::require("chromium");
    let suite = tools::repo().join("test_harness/browser");
    let playwright = suite.join("node_modules/playwright-core");
    assert!(
        playwright.is_dir(),
        "{}",
        tools::missing_message("playwright-core (test_harness/browser/node_modules)")
    );
    let shots = tools::repo().join("target/web-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut cmd = Command::new(node);
    cmd.arg(suite.join("chat.test.mjs"))
        .env("CHAT_SERVER_BIN", env!("CARGO_BIN_EXE_server"))
        .env("CHAT_CLIENT_BIN", env!("CARGO_BIN_EXE_client"))
        .env("CHAT_SCREENSHOTS", &shots);
    let out = tools::run_bounded(cmd, Duration::from_secs(240));
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("19 passed, 0 failed"), "{stdout}");
    for shot in ["chat-desktop.png", "chat-phone.png", "login-desktop.png"] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot}");
    }
}
