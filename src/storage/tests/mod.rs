//! Storage tests. The rules are tested against both engines: each test of the shared suite
//! is a function of the [`Engine`], run once for SQLite and once for PostgreSQL (the
//! `sqlite::` and `postgres::` tests, made by [`both_engines!`]). What only one engine has is
//! in `sqlite_only.rs` and `postgres_only.rs`.
//!
//! SQLite runs in memory for the rules and in a temporary directory for persistence;
//! PostgreSQL in a database of its own per test, in one throwaway cluster per test binary
//! (`test_harness/common/postgres.rs`).

#[path = "../../../test_harness/common/postgres.rs"]
#[allow(dead_code)]
mod pg_cluster;
mod postgres_only;
mod sqlite_only;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use rusqlite::Connection;

use super::*;
use pg_cluster::{PgCluster, PgDatabase};

const WAKE: Token = Token(7);
/// How long a test waits for a reply before failing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The schema version this program writes on this engine.
    fn schema_version(self) -> i64 {
        match self {
            Engine::Sqlite => super::sqlite::schema::current_version(),
            Engine::Postgres => super::postgres::schema::current_version(),
        }
    }
}

/// Makes a `#[test]` of each shared test function for each engine: `sqlite::NAME` and
/// `postgres::NAME`.
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Engine::Sqlite)
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(super::Engine::Postgres)
            })*
        }
    };
}

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

/// A fresh PostgreSQL database in the test binary's cluster.
fn pg_database() -> PgDatabase<'static> {
    PgCluster::shared().database()
}

/// Where a test keeps its data across several openings of storage.
enum Place {
    Dir(TempDir),
    Pg(PgDatabase<'static>),
}

impl Place {
    fn new(engine: Engine, tag: &str) -> Place {
        match engine {
            Engine::Sqlite => Place::Dir(TempDir::new(tag)),
            Engine::Postgres => Place::Pg(pg_database()),
        }
    }

    fn try_open(&self) -> Result<Fixture, StorageError> {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let (handle, startup) = match self {
            Place::Dir(dir) => Storage::open(dir.path(), waker)?,
            Place::Pg(db) => Storage::postgres(&db.url(), waker, true)?,
        };
        Ok(Fixture {
            handle,
            startup,
            poll,
            _db: None,
        })
    }

    /// Opens storage here.
    fn open(&self) -> Fixture {
        self.try_open().unwrap()
    }

    /// Why opening storage here fails.
    fn open_error(&self) -> StorageError {
        match self.try_open() {
            Err(e) => e,
            Ok(_) => panic!("storage opened"),
        }
    }

    /// The first row of a query, read by the test directly: each column as text ("" for
    /// NULL).
    fn row(&self, sql: &str) -> Vec<String> {
        match self {
            Place::Dir(dir) => {
                let db = dir.db();
                let mut stmt = db.prepare(sql).unwrap();
                let n = stmt.column_count();
                stmt.query_row([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => String::new(),
                                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                                rusqlite::types::ValueRef::Text(t) => {
                                    String::from_utf8_lossy(t).into_owned()
                                }
                                rusqlite::types::ValueRef::Blob(_) => "(blob)".into(),
                            })
                        })
                        .collect()
                })
                .unwrap()
            }
            Place::Pg(db) => {
                let out = db.psql(sql);
                let line = out.lines().next().unwrap_or_default();
                line.split('|').map(str::to_string).collect()
            }
        }
    }

    /// A number a query counts.
    fn count(&self, sql: &str) -> i64 {
        self.row(sql)[0].parse().unwrap()
    }

    /// Pretends a newer program wrote the database.
    fn set_schema_version(&self, version: i64) {
        match self {
            Place::Dir(dir) => dir
                .db()
                .pragma_update(None, "user_version", version)
                .unwrap(),
            Place::Pg(db) => {
                db.psql(&format!(
                    "UPDATE schema_version SET version = {version} WHERE id = 0"
                ));
            }
        }
    }

    /// The schema version stored.
    fn schema_version(&self) -> i64 {
        match self {
            Place::Dir(dir) => dir
                .db()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap(),
            Place::Pg(_) => self.count("SELECT version FROM schema_version"),
        }
    }
}

/// Storage plus the poll its waker wakes.
struct Fixture {
    handle: StorageHandle,
    startup: Startup,
    poll: Poll,
    /// The database of an ephemeral PostgreSQL fixture, dropped after the handle.
    _db: Option<PgDatabase<'static>>,
}

impl Fixture {
    /// Storage that nothing else will open again: SQLite in memory, or a fresh PostgreSQL
    /// database.
    fn ephemeral(engine: Engine) -> Fixture {
        match engine {
            Engine::Sqlite => {
                let poll = Poll::new().unwrap();
                let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
                let (handle, startup) = Storage::ephemeral(waker).unwrap();
                Fixture {
                    handle,
                    startup,
                    poll,
                    _db: None,
                }
            }
            Engine::Postgres => {
                let place = Place::new(engine, "ephemeral");
                let mut f = place.open();
                if let Place::Pg(db) = place {
                    f._db = Some(db);
                }
                f
            }
        }
    }

    /// SQLite storage in a directory.
    fn open(dir: &TempDir) -> Fixture {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
        let (handle, startup) = Storage::open(dir.path(), waker).unwrap();
        Fixture {
            handle,
            startup,
            poll,
            _db: None,
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
            upto_seq: None,
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

fn search_needs_every_word_case_and_punctuation_ignored_whole_words(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn search_input_is_never_query_syntax(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn search_shows_channel_messages_only_inside_membership_intervals(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn search_shows_own_messages_and_own_private_messages_only(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn search_returns_the_20_newest_oldest_first_with_the_total(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn search_sees_what_was_submitted_before_it_and_nothing_after(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "early bird"));
    f.submit(Request::Search {
        conn: 9,
        user_key: key("ann"),
        since_seq: 0,
        term: "bird".into(),
        upto_seq: None,
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

fn submit_all_queues_in_order_and_empties_the_batch(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
    let mut batch = vec![
        Request::Event(join(1, "ann", "x")),
        Request::Event(chat(2, "x", "ann", "first batch")),
        Request::Search {
            conn: 5,
            user_key: key("ann"),
            since_seq: 0,
            term: "batch".into(),
            upto_seq: None,
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

fn events_alone_are_committed_without_an_urgent_job_to_push_them(engine: Engine) {
    let place = Place::new(engine, "gap");
    let f = place.open();
    // Two batches: the second arrives within the commit gap of the first and must still be
    // committed by itself, with nothing after it.
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "ann", "one"));
    std::thread::sleep(Duration::from_millis(2));
    f.event(chat(3, "x", "ann", "two"));
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let n = place.count("SELECT count(*) FROM messages");
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
        max: None,
    });
}

/// With `max`, a mailbox is counted in the database: a message past it is not stored.
fn a_full_mailbox_is_counted_by_the_database(engine: Engine) {
    let place = Place::new(engine, "mailbox");
    let mut f = place.open();
    let bounded = |time: i64| Request::StoreOffline {
        notify: Some(3),
        sender: "bob".into(),
        recipient: "Carol".into(),
        recipient_key: key("carol"),
        time,
        text: format!("message {time}"),
        max: Some(2),
    };
    for time in 1..=2 {
        f.submit(bounded(time));
        assert!(matches!(f.reply(), Reply::OfflineStored { conn: 3, .. }));
    }
    f.submit(bounded(3));
    assert_eq!(
        f.reply(),
        Reply::OfflineFull {
            conn: Some(3),
            recipient: "Carol".into(),
            key: key("carol").to_string(),
        }
    );
    let stored = fetch_offline(&mut f, "carol");
    assert_eq!(stored.len(), 2);
    f.shutdown();
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

fn offline_messages_are_stored_fetched_oldest_first_and_deleted(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn a_fetch_reply_comes_after_the_store_submitted_before_it(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn register_and_identify(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn two_registrations_of_one_name_in_flight_only_the_first_wins(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn the_hashers_queue_is_bounded_and_never_blocks(engine: Engine) {
    let f = Fixture::ephemeral(engine);
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

fn replies_wake_the_poll_and_backlog_drains(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn a_failing_event_is_logged_and_the_rest_of_the_batch_is_kept(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn reopening_keeps_the_schema_version_and_all_data(engine: Engine) {
    let place = Place::new(engine, "reopen");
    let mut f = place.open();
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

    let version = place.schema_version();
    assert_eq!(version, engine.schema_version());
    assert_eq!(
        version,
        match engine {
            Engine::Sqlite => 3,
            Engine::Postgres => 2,
        }
    );
    let stored = place.row("SELECT password_hash FROM users WHERE name = 'ann'");
    assert_eq!(stored, std::slice::from_ref(&hash));
    assert!(!stored[0].contains("secret password"));
    if let Place::Dir(dir) = &place {
        let mode: String = dir
            .db()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    let mut f = place.open();
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
    let f = place.open();
    assert_eq!(f.startup.last_seq, 4);
    f.shutdown();
}

fn a_newer_schema_is_refused(engine: Engine) {
    let place = Place::new(engine, "newer");
    place.open().shutdown();
    place.set_schema_version(99);
    match place.open_error() {
        StorageError::SchemaTooNew {
            found: 99,
            supported,
        } if supported == engine.schema_version() => {}
        e => panic!("unexpected error {e}"),
    }
}

fn memberships_left_open_are_closed_on_reopen(engine: Engine) {
    let place = Place::new(engine, "crash");
    let mut f = place.open();
    f.event(join(1, "ann", "x"));
    f.event(join(2, "bob", "x"));
    f.event(leave(3, "bob", "x"));
    f.event(chat(4, "x", "carol", "before the crash"));
    assert_eq!(f.texts("ann", "crash"), strings(&["before the crash"]));
    // Dropped without shutdown, as in a crash: no Leave for ann ever arrives. (The search
    // above ran after the events were committed.)
    drop(f);

    let mut f = place.open();
    assert_eq!(f.startup.last_seq, 5, "the recovery takes a seq of its own");
    f.event(chat(6, "x", "carol", "after the crash"));
    assert_eq!(f.texts("ann", "crash"), strings(&["before the crash"]));
    f.shutdown();

    let stay = place.row(
        "SELECT from_seq, to_seq FROM memberships JOIN users ON users.id = user_id
         WHERE users.key = 'ann'",
    );
    assert_eq!(stay, ["1", "5"]);
}

fn a_rejoin_with_no_message_between_continues_the_stay(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn a_large_mailbox_is_fetched_in_batches(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
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

fn many_events_all_survive_shutdown_and_reopen(engine: Engine) {
    const EVENTS: u64 = 50_000;
    let place = Place::new(engine, "heavy");
    let f = place.open();
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
        "storage ({engine:?}): {EVENTS} events submitted in {submitted:?}, committed by shutdown after \
         {elapsed:?}: {:.0} events/s (largest backlog seen: {max_backlog})",
        EVENTS as f64 / elapsed.as_secs_f64()
    );

    let messages = place.count("SELECT count(*) FROM messages");
    let joins = place.count("SELECT count(*) FROM memberships");
    let open = place.count("SELECT count(*) FROM memberships WHERE to_seq IS NULL");
    assert_eq!(u64::try_from(messages).unwrap(), EVENTS - 2 * EVENTS / 10);
    assert_eq!(u64::try_from(joins).unwrap(), EVENTS / 10);
    assert_eq!(open, 1, "only the last join has no leave yet");

    let mut f = place.open();
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

fn one_request_at_a_time_each_commits_and_replies(engine: Engine) {
    const ROUNDS: usize = 300;
    let place = Place::new(engine, "latency");
    let mut f = place.open();
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
        "storage ({engine:?}): {ROUNDS} commits one at a time: {:?} each on average, {worst:?} at worst",
        elapsed / u32::try_from(ROUNDS).unwrap()
    );
    let stored = fetch_offline(&mut f, "bob");
    assert_eq!(stored.len(), ROUNDS);
    assert_eq!(stored[ROUNDS - 1].text, format!("note {}", ROUNDS - 1));
    f.shutdown();
}

fn an_unusable_stored_hash_fails_identification_without_a_panic(engine: Engine) {
    let mut f = Fixture::ephemeral(engine);
    assert!(!identify(
        &mut f,
        "ann",
        "good password",
        "not a PHC string"
    ));
    f.shutdown();
}

fn a_registration_keeps_where_its_history_starts(engine: Engine) {
    let place = Place::new(engine, "history-from");
    let mut f = place.open();
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
    let f = place.open();
    assert_eq!(f.startup.registered[&key("ann")].history_from, 42);
    f.shutdown();
}

both_engines!(
    search_needs_every_word_case_and_punctuation_ignored_whole_words,
    search_input_is_never_query_syntax,
    search_shows_channel_messages_only_inside_membership_intervals,
    search_shows_own_messages_and_own_private_messages_only,
    search_returns_the_20_newest_oldest_first_with_the_total,
    search_sees_what_was_submitted_before_it_and_nothing_after,
    submit_all_queues_in_order_and_empties_the_batch,
    events_alone_are_committed_without_an_urgent_job_to_push_them,
    offline_messages_are_stored_fetched_oldest_first_and_deleted,
    a_full_mailbox_is_counted_by_the_database,
    a_fetch_reply_comes_after_the_store_submitted_before_it,
    register_and_identify,
    two_registrations_of_one_name_in_flight_only_the_first_wins,
    the_hashers_queue_is_bounded_and_never_blocks,
    replies_wake_the_poll_and_backlog_drains,
    a_failing_event_is_logged_and_the_rest_of_the_batch_is_kept,
    reopening_keeps_the_schema_version_and_all_data,
    a_newer_schema_is_refused,
    memberships_left_open_are_closed_on_reopen,
    a_rejoin_with_no_message_between_continues_the_stay,
    a_large_mailbox_is_fetched_in_batches,
    many_events_all_survive_shutdown_and_reopen,
    one_request_at_a_time_each_commits_and_replies,
    an_unusable_stored_hash_fails_identification_without_a_panic,
    a_registration_keeps_where_its_history_starts,
);
