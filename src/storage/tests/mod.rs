//! Storage tests: an in-memory database for the rules, a temporary directory for persistence.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use rusqlite::Connection;

use super::search::term_tokens;
use super::sqlite::schema;
use super::*;

const WAKE: Token = Token(7);
/// How long a test waits for a reply before failing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// A directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "chat-storage-test-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn db(&self) -> Connection {
        Connection::open(self.0.join(DB_FILE)).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Storage plus the poll its waker wakes.
struct Fixture {
    handle: StorageHandle,
    startup: Startup,
    poll: Poll,
}

impl Fixture {
    fn ephemeral() -> Fixture {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let (handle, startup) = Storage::ephemeral(waker).unwrap();
        Fixture {
            handle,
            startup,
            poll,
        }
    }

    fn open(dir: &TempDir) -> Fixture {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let (handle, startup) = Storage::open(dir.path(), waker).unwrap();
        Fixture {
            handle,
            startup,
            poll,
        }
    }

    fn submit(&self, request: Request) {
        self.handle.submit(request);
    }

    fn event(&self, event: Event) {
        self.submit(Request::Event(event));
    }

    /// Waits (through the waker, as the event loop does) until `n` replies have arrived.
    fn replies(&mut self, n: usize) -> Vec<Reply> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut events = Events::with_capacity(8);
        let mut got: Vec<Reply> = self.handle.replies().collect();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out with {got:?}, waiting for {n}");
            self.poll.poll(&mut events, Some(left)).unwrap();
            got.extend(self.handle.replies());
        }
        assert_eq!(got.len(), n, "more replies than expected: {got:?}");
        got
    }

    fn reply(&mut self) -> Reply {
        self.replies(1).remove(0)
    }

    fn search_as(
        &mut self,
        user: &str,
        since_seq: Option<u64>,
        term: &str,
    ) -> (usize, Vec<SearchHit>) {
        self.submit(Request::Search {
            conn: 1,
            user_key: key(user),
            since_seq: since_seq.unwrap_or(0),
            term: term.into(),
        });
        match self.reply() {
            Reply::Search {
                conn: 1,
                term: t,
                total,
                results,
            } if t == term => (total, results),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The texts `user` finds for `term`, oldest first.
    fn texts(&mut self, user: &str, term: &str) -> Vec<String> {
        self.search_as(user, None, term)
            .1
            .into_iter()
            .map(|hit| hit.text)
            .collect()
    }

    fn shutdown(self) {
        self.handle.shutdown().unwrap();
    }
}

/// The key of a name.
fn key(name: &str) -> String {
    crate::names::name_key(name).to_string()
}

fn user(name: &str, time: i64) -> Event {
    Event::User {
        name: name.into(),
        key: key(name),
        time,
    }
}

fn chat(seq: u64, channel: &str, sender: &str, text: &str) -> Event {
    Event::Chat {
        seq,
        time: 1_700_000_000 + i64::try_from(seq).unwrap(),
        channel: channel.into(),
        sender: sender.into(),
        sender_key: key(sender),
        text: text.into(),
    }
}

fn private(seq: u64, sender: &str, recipient: &str, text: &str) -> Event {
    Event::Private {
        seq,
        time: 1_700_000_000 + i64::try_from(seq).unwrap(),
        sender: sender.into(),
        sender_key: key(sender),
        recipient: recipient.into(),
        recipient_key: key(recipient),
        text: text.into(),
    }
}

fn join(seq: u64, user: &str, channel: &str) -> Event {
    Event::Join {
        seq,
        user_key: key(user),
        channel: channel.into(),
    }
}

fn leave(seq: u64, user: &str, channel: &str) -> Event {
    Event::Leave {
        seq,
        user_key: key(user),
        channel: channel.into(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---- Search: words ----------------------------------------------------------------------------

#[test]
fn term_tokens_split_like_unicode61() {
    assert_eq!(term_tokens("Hello, world!"), ["Hello", "world"]);
    assert_eq!(term_tokens("don't"), ["don", "t"]);
    assert_eq!(term_tokens("  --!?  "), Vec::<&str>::new());
    assert_eq!(term_tokens("café au lait"), ["café", "au", "lait"]);
    // A combining accent continues the word instead of splitting it.
    assert_eq!(term_tokens("e\u{301}te\u{301}"), ["e\u{301}te\u{301}"]);
    assert_eq!(
        term_tokens("x2 \"quoted\" (paren)"),
        ["x2", "quoted", "paren"]
    );
}

#[test]
fn fts_query_quotes_every_word() {
    assert_eq!(
        super::sqlite::search::fts_query("cat OR dog*").as_deref(),
        Some("text : \"cat\" AND text : \"OR\" AND text : \"dog\"")
    );
    assert_eq!(super::sqlite::search::fts_query("..."), None);
}

#[test]
fn search_needs_every_word_case_and_punctuation_ignored_whole_words() {
    let mut f = Fixture::ephemeral();
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "The cat sat on the mat."));
    f.event(chat(3, "x", "ann", "A catalog of CATS, and a dog"));
    f.event(chat(4, "x", "ann", "cat-dog: friends?"));
    f.event(chat(5, "x", "ann", "Café au lait"));

    assert_eq!(
        f.texts("ann", "cat"),
        strings(&["The cat sat on the mat.", "cat-dog: friends?"])
    );
    assert_eq!(f.texts("ann", "CAT dog"), strings(&["cat-dog: friends?"]));
    assert_eq!(f.texts("ann", "dog, cat!"), strings(&["cat-dog: friends?"]));
    assert_eq!(
        f.texts("ann", "cats"),
        strings(&["A catalog of CATS, and a dog"])
    );
    assert_eq!(
        f.texts("ann", "catalog"),
        strings(&["A catalog of CATS, and a dog"])
    );
    assert_eq!(
        f.texts("ann", "mat sat the"),
        strings(&["The cat sat on the mat."])
    );
    assert_eq!(f.texts("ann", "cat mouse"), Vec::<String>::new());
    assert_eq!(f.texts("ann", "ca"), Vec::<String>::new());
    assert_eq!(f.texts("ann", "cafe"), strings(&["Café au lait"]));
    assert_eq!(f.texts("ann", "CAFE\u{301}"), strings(&["Café au lait"]));
    // No word at all: nothing, not everything.
    assert_eq!(f.search_as("ann", None, "?!"), (0, Vec::new()));
    f.shutdown();
}

#[test]
fn search_input_is_never_query_syntax() {
    let mut f = Fixture::ephemeral();
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "cats OR dogs NEAR the text: column"));
    f.event(chat(3, "x", "ann", "cats"));
    for term in [
        "cats OR dogs",
        "\"cats",
        "cats*",
        "text:cats",
        "NEAR(cats dogs)",
        "cats AND",
        "-cats",
        "^cats",
        "{text}: cats",
        "\u{24B6}",
    ] {
        let (total, _) = f.search_as("ann", None, term);
        let expected = match term {
            "cats OR dogs" | "NEAR(cats dogs)" => 1,
            "{text}: cats" | "text:cats" => 1,
            "cats AND" => 0,
            "\u{24B6}" => 0,
            _ => 2,
        };
        assert_eq!(total, expected, "term {term:?}");
    }
    f.shutdown();
}

// ---- Search: who may see what -------------------------------------------------------------------

#[test]
fn search_shows_channel_messages_only_inside_membership_intervals() {
    let mut f = Fixture::ephemeral();
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "news one"));
    f.event(join(3, "bob", "x"));
    f.event(chat(4, "x", "ann", "news two"));
    f.event(leave(5, "bob", "x"));
    f.event(chat(6, "x", "ann", "news three"));
    f.event(join(7, "bob", "x"));
    f.event(chat(8, "x", "ann", "news four"));
    f.event(chat(9, "y", "ann", "news in y"));
    f.event(leave(10, "bob", "x"));
    f.event(chat(11, "x", "ann", "news five"));

    assert_eq!(f.texts("bob", "news"), strings(&["news two", "news four"]));
    assert_eq!(
        f.texts("ann", "news"),
        strings(&[
            "news one",
            "news two",
            "news three",
            "news four",
            "news in y",
            "news five"
        ])
    );
    assert_eq!(f.texts("carol", "news"), Vec::<String>::new());
    // since_seq cuts what came before.
    let (total, hits) = f.search_as("bob", Some(4), "news");
    assert_eq!(total, 1);
    assert_eq!(hits[0].text, "news four");
    let (total, _) = f.search_as("ann", Some(8), "news");
    assert_eq!(total, 2);
    f.shutdown();
}

#[test]
fn search_shows_own_messages_and_own_private_messages_only() {
    let mut f = Fixture::ephemeral();
    f.event(chat(1, "x", "ann", "secret plan")); // sent outside any recorded stay: still hers
    f.event(private(2, "ann", "bob", "secret for bob"));
    f.event(private(3, "carol", "dave", "secret for dave"));
    f.event(private(4, "bob", "bob", "secret to myself"));

    let (total, hits) = f.search_as("ann", None, "secret");
    assert_eq!(total, 2);
    assert_eq!(
        hits,
        vec![
            SearchHit {
                seq: 1,
                time: 1_700_000_001,
                channel: Some("x".into()),
                sender: "ann".into(),
                recipient: None,
                text: "secret plan".into(),
            },
            SearchHit {
                seq: 2,
                time: 1_700_000_002,
                channel: None,
                sender: "ann".into(),
                recipient: Some("bob".into()),
                text: "secret for bob".into(),
            },
        ]
    );
    assert_eq!(
        f.texts("bob", "secret"),
        strings(&["secret for bob", "secret to myself"])
    );
    assert_eq!(f.texts("dave", "secret"), strings(&["secret for dave"]));
    assert_eq!(f.texts("carol", "secret"), strings(&["secret for dave"]));
    assert_eq!(f.texts("eve", "secret"), Vec::<String>::new());
    assert_eq!(f.search_as("bob", Some(2), "secret").0, 1);
    f.shutdown();
}

#[test]
fn search_returns_the_20_newest_oldest_first_with_the_total() {
    let mut f = Fixture::ephemeral();
    f.event(join(1, "ann", "x"));
    for i in 0..25u64 {
        f.event(chat(2 + i, "x", "ann", &format!("ping number {i}")));
        f.event(chat(100 + i, "x", "ann", &format!("other {i}")));
    }
    let (total, hits) = f.search_as("ann", None, "ping");
    assert_eq!(total, 25);
    assert_eq!(hits.len(), MAX_SEARCH_RESULTS);
    let expected: Vec<String> = (5..25).map(|i| format!("ping number {i}")).collect();
    assert_eq!(
        hits.into_iter().map(|h| h.text).collect::<Vec<_>>(),
        expected
    );
    let (total, hits) = f.search_as("ann", None, "ping 3");
    assert_eq!(total, 1);
    assert_eq!(hits[0].text, "ping number 3");
    f.shutdown();
}

#[test]
fn search_sees_what_was_submitted_before_it_and_nothing_after() {
    let mut f = Fixture::ephemeral();
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "early bird"));
    f.submit(Request::Search {
        conn: 9,
        user_key: key("ann"),
        since_seq: 0,
        term: "bird".into(),
    });
    f.event(chat(3, "x", "ann", "late bird"));
    match f.reply() {
        Reply::Search {
            conn,
            total,
            results,
            ..
        } => {
            assert_eq!(conn, 9);
            assert_eq!(total, 1);
            assert_eq!(results[0].text, "early bird");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        f.texts("ann", "bird"),
        strings(&["early bird", "late bird"])
    );
    f.shutdown();
}

#[test]
fn submit_all_queues_in_order_and_empties_the_batch() {
    let mut f = Fixture::ephemeral();
    let mut batch = vec![
        Request::Event(join(1, "ann", "x")),
        Request::Event(chat(2, "x", "ann", "first batch")),
        Request::Search {
            conn: 5,
            user_key: key("ann"),
            since_seq: 0,
            term: "batch".into(),
        },
        Request::Event(chat(3, "x", "ann", "after the search batch")),
    ];
    f.handle.submit_all(&mut batch);
    assert!(batch.is_empty());
    match f.reply() {
        Reply::Search { conn: 5, total, .. } => assert_eq!(total, 1),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        f.texts("ann", "batch"),
        strings(&["first batch", "after the search batch"])
    );
    // An empty batch is nothing to do.
    f.handle.submit_all(&mut batch);
    f.shutdown();
}

#[test]
fn events_alone_are_committed_without_an_urgent_job_to_push_them() {
    let dir = TempDir::new("gap");
    let f = Fixture::open(&dir);
    // Two batches: the second arrives within the commit gap of the first and must still be
    // committed by itself, with nothing after it.
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "one"));
    std::thread::sleep(Duration::from_millis(2));
    f.event(chat(3, "x", "ann", "two"));
    let db = dir.db();
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let n: i64 = db
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of 2 messages committed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    f.shutdown();
}

// ---- Offline messages -----------------------------------------------------------------------------

fn store_offline(f: &Fixture, sender: &str, recipient: &str, time: i64, text: &str) {
    f.submit(Request::StoreOffline {
        notify: Some(3),
        sender: sender.into(),
        recipient: recipient.into(),
        recipient_key: key(recipient),
        time,
        text: text.into(),
    });
}

fn fetch_request(name: &str, after: i64, limit: usize) -> Request {
    Request::FetchOffline {
        conn: 4,
        key: key(name),
        after,
        limit,
    }
}

/// Up to `limit` messages for `name` after id `after`, and how many are stored in all.
fn fetch_some(
    f: &mut Fixture,
    name: &str,
    after: i64,
    limit: usize,
) -> (usize, Vec<OfflineMessage>) {
    f.submit(fetch_request(name, after, limit));
    match f.reply() {
        Reply::Offline {
            conn: 4,
            key: k,
            total,
            messages,
        } if k == key(name) => (total, messages),
        other => panic!("unexpected {other:?}"),
    }
}

fn fetch_offline(f: &mut Fixture, name: &str) -> Vec<OfflineMessage> {
    fetch_some(f, name, 0, 10_000).1
}

#[test]
fn offline_messages_are_stored_fetched_oldest_first_and_deleted() {
    let mut f = Fixture::ephemeral();
    store_offline(&f, "ann", "bob", 10, "first");
    store_offline(&f, "carol", "bob", 5, "second"); // an older clock does not reorder
    store_offline(&f, "ann", "dave", 11, "for dave");
    let stored = f.replies(3);
    assert_eq!(
        stored,
        vec![
            Reply::OfflineStored {
                conn: 3,
                recipient: "bob".into()
            },
            Reply::OfflineStored {
                conn: 3,
                recipient: "bob".into()
            },
            Reply::OfflineStored {
                conn: 3,
                recipient: "dave".into()
            },
        ]
    );
    // Stored right before the fetch: included.
    store_offline(&f, "ann", "bob", 12, "third");
    f.submit(fetch_request("bob", 0, 100));
    let mut replies = f.replies(2);
    assert!(matches!(replies[0], Reply::OfflineStored { .. }));
    let Reply::Offline { messages: all, .. } = replies.remove(1) else {
        panic!("unexpected {replies:?}");
    };
    assert_eq!(
        all.iter()
            .map(|m| (m.sender.as_str(), m.time, m.text.as_str()))
            .collect::<Vec<_>>(),
        [
            ("ann", 10, "first"),
            ("carol", 5, "second"),
            ("ann", 12, "third")
        ]
    );
    f.submit(Request::DeleteOffline {
        ids: vec![all[0].id, all[1].id],
    });
    let left = fetch_offline(&mut f, "bob");
    assert_eq!(left, vec![all[2].clone()]);
    assert_eq!(fetch_offline(&mut f, "dave").len(), 1);
    assert_eq!(fetch_offline(&mut f, "nobody"), Vec::new());
    f.shutdown();
}

#[test]
fn a_fetch_reply_comes_after_the_store_submitted_before_it() {
    let mut f = Fixture::ephemeral();
    store_offline(&f, "ann", "bob", 1, "hello");
    f.submit(fetch_request("bob", 0, 100));
    let replies = f.replies(2);
    assert!(matches!(replies[0], Reply::OfflineStored { .. }));
    match &replies[1] {
        Reply::Offline { messages, .. } => assert_eq!(messages[0].text, "hello"),
        other => panic!("unexpected {other:?}"),
    }
    f.shutdown();
}

// ---- Registration -----------------------------------------------------------------------------

fn hash_job(conn: ConnId, name: &str, password: &str, history_from: u64) -> HashJob {
    HashJob::Hash {
        conn,
        name: name.into(),
        key: key(name),
        password: password.into(),
        history_from,
    }
}

/// Registers a name through the hashers and the writer; the outcome and the stored hash.
fn register(f: &mut Fixture, name: &str, password: &str) -> (Registration, String) {
    assert!(f.handle.try_hash(hash_job(5, name, password, 0)));
    match f.reply() {
        Reply::Registered {
            conn: 5,
            name: n,
            key: k,
            hash,
            result,
            ..
        } if n == name && k == key(name) => (result, hash),
        other => panic!("unexpected {other:?}"),
    }
}

/// Checks a password against a stored hash through the hashers.
fn identify(f: &mut Fixture, name: &str, password: &str, hash: &str) -> bool {
    let job = HashJob::Verify {
        conn: 6,
        key: key(name),
        password: password.into(),
        hash: hash.into(),
    };
    assert!(f.handle.try_hash(job));
    match f.reply() {
        Reply::Identified {
            conn: 6,
            key: k,
            ok,
        } if k == key(name) => ok,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn register_and_identify() {
    let mut f = Fixture::ephemeral();
    f.event(user("ann", 1));
    let (result, hash) = register(&mut f, "ann", "correct horse");
    assert_eq!(result, Registration::Registered);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let (again, _) = register(&mut f, "ann", "another one");
    assert_eq!(again, Registration::AlreadyRegistered);
    assert!(identify(&mut f, "ann", "correct horse", &hash));
    assert!(!identify(&mut f, "ann", "another one", &hash));
    assert!(!identify(&mut f, "ann", "Correct horse", &hash));
    // A name that never logged in can be registered too.
    let (result, zed) = register(&mut f, "zed", "zzzzzzzz");
    assert_eq!(result, Registration::Registered);
    assert!(identify(&mut f, "zed", "zzzzzzzz", &zed));
    f.shutdown();
}

#[test]
fn two_registrations_of_one_name_in_flight_only_the_first_wins() {
    let mut f = Fixture::ephemeral();
    for (conn, password) in [(1, "password one"), (2, "password two")] {
        assert!(f.handle.try_hash(hash_job(conn, "ann", password, 0)));
    }
    let mut results: Vec<(Registration, String)> = f
        .replies(2)
        .into_iter()
        .map(|r| match r {
            Reply::Registered { result, hash, .. } => (result, hash),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    results.sort_by_key(|r| r.0 != Registration::Registered);
    assert_eq!(results[0].0, Registration::Registered);
    assert_eq!(results[1].0, Registration::AlreadyRegistered);
    // Either password may have won; the stored hash is the winner's.
    let winner = results[0].1.clone();
    let one = identify(&mut f, "ann", "password one", &winner);
    let two = identify(&mut f, "ann", "password two", &winner);
    assert!(one != two, "exactly one password matches the winner's hash");
    f.shutdown();
}

#[test]
fn the_hashers_queue_is_bounded_and_never_blocks() {
    let f = Fixture::ephemeral();
    let start = Instant::now();
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..500 {
        if f.handle
            .try_hash(hash_job(i, &format!("u{i}"), "a long password", 0))
        {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(start.elapsed() < Duration::from_secs(1), "try_hash waited");
    assert!(
        refused > 0 && accepted > 0,
        "{accepted} accepted, {refused} refused"
    );
    // Shutdown does not wait for the queued hashes: nothing was confirmed for them.
    let start = Instant::now();
    f.shutdown();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        start.elapsed()
    );
}

// ---- The queue ------------------------------------------------------------------------------------

#[test]
fn replies_wake_the_poll_and_backlog_drains() {
    let mut f = Fixture::ephemeral();
    for seq in 1..=100 {
        f.event(chat(seq, "x", "ann", "filler"));
    }
    f.submit(Request::FetchOffline {
        conn: 42,
        key: key("ann"),
        after: 0,
        limit: 10,
    });
    // Only the waker can end this poll early; nothing else is registered.
    let mut events = Events::with_capacity(4);
    f.poll.poll(&mut events, Some(REPLY_TIMEOUT)).unwrap();
    assert!(events.iter().any(|e| e.token() == WAKE), "no wake-up");
    assert!(matches!(f.replies(1)[0], Reply::Offline { conn: 42, .. }));
    assert_eq!(f.handle.backlog(), 0);
    f.shutdown();
}

#[test]
fn a_failing_event_is_logged_and_the_rest_of_the_batch_is_kept() {
    let mut f = Fixture::ephemeral();
    f.event(chat(1, "x", "ann", "original words"));
    f.event(chat(1, "x", "ann", "duplicate seq words")); // the hub never does this
    f.event(chat(2, "x", "ann", "later words"));
    assert_eq!(
        f.texts("ann", "words"),
        strings(&["original words", "later words"])
    );
    f.shutdown();
}

// ---- On disk --------------------------------------------------------------------------------------

#[test]
fn reopening_keeps_the_schema_version_and_all_data() {
    let dir = TempDir::new("reopen");
    let mut f = Fixture::open(&dir);
    assert_eq!(f.startup, Startup::default());
    f.event(user("ann", 1));
    f.event(user("bob", 2));
    f.event(Event::Channel {
        name: "x".into(),
        time: 1,
    });
    f.event(Event::Channel {
        name: "Another room".into(),
        time: 1,
    });
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "kept across restarts"));
    f.event(private(3, "ann", "bob", "kept private"));
    f.event(leave(4, "ann", "x"));
    store_offline(&f, "ann", "bob", 3, "kept offline");
    assert!(matches!(f.reply(), Reply::OfflineStored { .. }));
    let (result, hash) = register(&mut f, "ann", "secret password");
    assert_eq!(result, Registration::Registered);
    f.shutdown();

    let db = dir.db();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::current_version());
    assert_eq!(version, 3);
    let stored: String = db
        .query_row(
            "SELECT password_hash FROM users WHERE name = 'ann'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, hash);
    assert!(!stored.contains("secret password"));
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(db);

    let mut f = Fixture::open(&dir);
    assert_eq!(f.startup.last_seq, 4);
    assert_eq!(
        f.startup.known,
        [key("ann"), key("bob")].into_iter().collect()
    );
    assert_eq!(f.startup.registered.len(), 1);
    let ann = &f.startup.registered[&key("ann")];
    assert_eq!((ann.name.as_str(), ann.history_from), ("ann", 0));
    assert_eq!(ann.hash, hash);
    assert_eq!(f.startup.channels, strings(&["x", "Another room"]));
    assert_eq!(
        f.texts("ann", "kept"),
        strings(&["kept across restarts", "kept private"])
    );
    assert_eq!(f.texts("bob", "kept"), strings(&["kept private"]));
    assert_eq!(f.startup.offline.get(&key("bob")), Some(&1));
    assert!(!f.startup.offline.contains_key(&key("ann")));
    let offline = fetch_offline(&mut f, "bob");
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].text, "kept offline");
    assert!(identify(&mut f, "ann", "secret password", &hash));
    f.shutdown();

    // A third open: nothing migrates again, nothing changes.
    let f = Fixture::open(&dir);
    assert_eq!(f.startup.last_seq, 4);
    f.shutdown();
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new("newer");
    Fixture::open(&dir).shutdown();
    dir.db().pragma_update(None, "user_version", 99).unwrap();
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
    match Storage::open(dir.path(), waker) {
        Err(StorageError::SchemaTooNew {
            found: 99,
            supported: 3,
        }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a database from the future"),
    }
}

#[test]
fn a_second_storage_on_the_same_directory_is_refused() {
    let dir = TempDir::new("locked");
    let f = Fixture::open(&dir);
    let e = open_error(dir.path());
    assert!(matches!(e, StorageError::Locked { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        crate::utils_errors::data_dir_in_use(&dir.path().display().to_string())
    );
    f.shutdown();
    // Free again once the first is gone.
    Fixture::open(&dir).shutdown();
}

#[test]
fn memberships_left_open_are_closed_on_reopen() {
    let dir = TempDir::new("crash");
    let mut f = Fixture::open(&dir);
    f.event(join(1, "ann", "x"));
    f.event(join(2, "bob", "x"));
    f.event(leave(3, "bob", "x"));
    f.event(chat(4, "x", "carol", "before the crash"));
    assert_eq!(f.texts("ann", "crash"), strings(&["before the crash"]));
    // Dropped without shutdown, as in a crash: no Leave for ann ever arrives. (The search
    // above ran after the events were committed.)
    drop(f);

    let mut f = Fixture::open(&dir);
    assert_eq!(f.startup.last_seq, 5, "the recovery takes a seq of its own");
    f.event(chat(6, "x", "carol", "after the crash"));
    assert_eq!(f.texts("ann", "crash"), strings(&["before the crash"]));
    f.shutdown();

    let (from, to): (i64, Option<i64>) = dir
        .db()
        .query_row(
            "SELECT from_seq, to_seq FROM memberships JOIN users ON users.id = user_id
             WHERE users.key = 'ann'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((from, to), (1, Some(5)));
}

#[test]
fn a_rejoin_with_no_message_between_continues_the_stay() {
    let mut f = Fixture::ephemeral();
    // 2,000 joins and leaves with nothing said in between: one stay, not a thousand.
    let mut seq = 0;
    for _ in 0..1000 {
        seq += 1;
        f.event(join(seq, "ann", "x"));
        seq += 1;
        f.event(leave(seq, "ann", "x"));
    }
    seq += 1;
    f.event(chat(seq, "x", "bob", "said after"));
    seq += 1;
    f.event(join(seq, "ann", "x"));
    seq += 1;
    f.event(chat(seq, "x", "bob", "said inside"));
    assert_eq!(f.texts("ann", "said"), strings(&["said inside"]));
    f.shutdown();
}

#[test]
fn a_large_mailbox_is_fetched_in_batches() {
    let mut f = Fixture::ephemeral();
    for i in 0..25 {
        store_offline(&f, "ann", "bob", i, &format!("n{i}"));
    }
    f.replies(25);
    let (total, first) = fetch_some(&mut f, "bob", 0, 10);
    assert_eq!((total, first.len()), (25, 10));
    let (_, second) = fetch_some(&mut f, "bob", first[9].id, 10);
    assert_eq!(second[0].text, "n10");
    let (_, last) = fetch_some(&mut f, "bob", second[9].id, 10);
    assert_eq!(last.len(), 5);
    f.shutdown();
}

#[test]
fn many_events_all_survive_shutdown_and_reopen() {
    const EVENTS: u64 = 50_000;
    let dir = TempDir::new("heavy");
    let f = Fixture::open(&dir);
    let start = Instant::now();
    let mut max_backlog = 0;
    for seq in 1..=EVENTS {
        // Every 10th event a join, 7 events later that user leaves again.
        let event = match seq % 10 {
            0 => join(seq, &format!("user{}", seq / 10 % 97), "room"),
            7 => leave(seq, &format!("user{}", seq / 10 % 97), "room"),
            5 => private(seq, "ann", "bob", &format!("private note {seq}")),
            _ => chat(
                seq,
                "room",
                &format!("user{}", seq % 97),
                &format!("message number {seq} with some ordinary words in it"),
            ),
        };
        f.event(event);
        max_backlog = max_backlog.max(f.handle.backlog());
    }
    let submitted = start.elapsed();
    f.shutdown();
    let elapsed = start.elapsed();
    eprintln!(
        "storage: {EVENTS} events submitted in {submitted:?}, committed by shutdown after \
         {elapsed:?}: {:.0} events/s (largest backlog seen: {max_backlog})",
        EVENTS as f64 / elapsed.as_secs_f64()
    );

    let db = dir.db();
    let messages: i64 = db
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    let joins: i64 = db
        .query_row("SELECT count(*) FROM memberships", [], |r| r.get(0))
        .unwrap();
    let open: i64 = db
        .query_row(
            "SELECT count(*) FROM memberships WHERE to_seq IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(u64::try_from(messages).unwrap(), EVENTS - 2 * EVENTS / 10);
    assert_eq!(u64::try_from(joins).unwrap(), EVENTS / 10);
    assert_eq!(open, 1, "only the last join has no leave yet");
    drop(db);

    let mut f = Fixture::open(&dir);
    assert_eq!(f.startup.last_seq, EVENTS + 1); // the last join was left open
    let (total, hits) = f.search_as("ann", None, "private note");
    assert_eq!(total, usize::try_from(EVENTS / 10).unwrap());
    assert_eq!(
        hits.last().unwrap().text,
        format!("private note {}", EVENTS - 5)
    );
    // user52 joined at 49990 and left at 49997; user1 was elsewhere.
    let (total, hits) = f.search_as("user52", None, "message number 49992");
    assert_eq!((total, hits.len()), (1, 1));
    assert_eq!(f.search_as("user1", None, "message number 49992").0, 0);
    f.shutdown();
}

#[test]
fn one_request_at_a_time_each_commits_and_replies() {
    const ROUNDS: usize = 300;
    let dir = TempDir::new("latency");
    let mut f = Fixture::open(&dir);
    let mut worst = Duration::ZERO;
    let start = Instant::now();
    for i in 0..ROUNDS {
        let sent = Instant::now();
        store_offline(&f, "ann", "bob", 1, &format!("note {i}"));
        assert_eq!(
            f.reply(),
            Reply::OfflineStored {
                conn: 3,
                recipient: "bob".into()
            }
        );
        worst = worst.max(sent.elapsed());
    }
    let elapsed = start.elapsed();
    eprintln!(
        "storage: {ROUNDS} commits one at a time: {:?} each on average, {worst:?} at worst",
        elapsed / u32::try_from(ROUNDS).unwrap()
    );
    let stored = fetch_offline(&mut f, "bob");
    assert_eq!(stored.len(), ROUNDS);
    assert_eq!(stored[ROUNDS - 1].text, format!("note {}", ROUNDS - 1));
    f.shutdown();
}

#[test]
fn an_unusable_stored_hash_fails_identification_without_a_panic() {
    let mut f = Fixture::ephemeral();
    assert!(!identify(
        &mut f,
        "ann",
        "good password",
        "not a PHC string"
    ));
    f.shutdown();
}

fn open_error(path: &Path) -> StorageError {
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
    match Storage::open(path, waker) {
        Err(e) => e,
        Ok(_) => panic!("opened {path:?}"),
    }
}

#[test]
fn opening_a_file_or_a_corrupt_database_is_an_error() {
    let dir = TempDir::new("bad-open");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(open_error(&file), StorageError::CreateDir { .. }));

    std::fs::write(dir.path().join(DB_FILE), vec![b'?'; 4096]).unwrap();
    let e = open_error(dir.path());
    assert!(matches!(e, StorageError::Sqlite(_)), "{e}");
}

#[test]
fn a_version_2_database_is_migrated_keeping_its_data() {
    let dir = TempDir::new("migrate-v2");
    {
        std::fs::create_dir_all(dir.path()).unwrap();
        let db = Connection::open(dir.path().join(crate::storage::DB_FILE)).unwrap();
        db.execute_batch(schema::V1).unwrap();
        db.execute_batch(schema::V2).unwrap();
        db.pragma_update(None, "user_version", 2).unwrap();
        db.execute_batch(
            "INSERT INTO users (name, password_hash, created, history_from)
                 VALUES ('Old', 'phc-of-old', 0, 7), ('bob', NULL, 0, 0), ('OLD', NULL, 1, 0);
             INSERT INTO memberships VALUES ('bob', 'room', 1, 3);
             INSERT INTO memberships VALUES ('Old', 'room', 2, NULL);
             INSERT INTO messages VALUES (2, 100, 'room', 'bob', NULL, 'hello room');
             INSERT INTO messages VALUES (4, 101, NULL, 'bob', 'Old', 'hello old');
             INSERT INTO messages_fts (rowid, text) VALUES (2, 'hello room'), (4, 'hello old');
             INSERT INTO offline (time, sender, recipient, text) VALUES (5, 'bob', 'Old', 'waiting');
             UPDATE state SET last_seq = 4;",
        )
        .unwrap();
    }
    let mut f = Fixture::open(&dir);
    let old = &f.startup.registered[&key("old")];
    assert_eq!(
        (old.name.as_str(), old.history_from, old.hash.as_str()),
        ("Old", 7, "phc-of-old")
    );
    assert_eq!(f.startup.known.len(), 2, "Old and OLD are one name");
    assert_eq!(f.startup.channels, strings(&["room"]));
    assert_eq!(f.startup.offline.get(&key("Old")), Some(&1));
    assert_eq!(
        f.texts("bob", "hello"),
        strings(&["hello room", "hello old"])
    );
    assert_eq!(f.texts("Old", "hello"), strings(&["hello old"]));
    f.shutdown();
    let version: i64 = dir
        .db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

#[test]
fn a_registration_keeps_where_its_history_starts() {
    let dir = TempDir::new("history-from");
    let mut f = Fixture::open(&dir);
    assert!(f.handle.try_hash(hash_job(1, "ann", "secret password", 42)));
    assert!(matches!(
        f.reply(),
        Reply::Registered {
            result: Registration::Registered,
            history_from: 42,
            ..
        }
    ));
    f.shutdown();
    let f = Fixture::open(&dir);
    assert_eq!(f.startup.registered[&key("ann")].history_from, 42);
    f.shutdown();
}
