//! What only the SQLite engine has: its word splitting and FTS5 queries, the data directory's
//! lock, its files, and the migration from older schemas.

use super::*;
use crate::storage::search::term_tokens;
use crate::storage::sqlite::schema;

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
        crate::storage::sqlite::search::fts_query("cat OR dog*").as_deref(),
        Some("text : \"cat\" AND text : \"OR\" AND text : \"dog\"")
    );
    assert_eq!(crate::storage::sqlite::search::fts_query("..."), None);
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
fn the_index_uses_the_tokenizer_that_the_postgresql_engine_runs() {
    let dir = TempDir::new("tokenizer");
    Fixture::open(&dir).shutdown();
    let sql: String = dir
        .db()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'messages_fts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        sql.contains(&format!("tokenize = '{}'", schema::TOKENIZER)),
        "{sql}"
    );
}
