//! What only the PostgreSQL engine has: a server that restarts under it, the same search
//! results as SQLite's on the same history, and its connection errors.

use super::*;

/// Storage on a PostgreSQL URL.
fn open_url(url: &str) -> Result<Fixture, StorageError> {
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).unwrap());
    let (handle, startup) = Storage::postgres(url, waker, true)?;
    Ok(Fixture {
        handle,
        startup,
        poll,
        _db: None,
    })
}

fn open_error(url: &str) -> StorageError {
    match open_url(url) {
        Err(e) => e,
        Ok(_) => panic!("storage opened {url}"),
    }
}

/// Repeats a request until its reply is not a failure (storage is back), for at most 20 s.
fn until_not_failed(f: &mut Fixture, request: impl Fn() -> Request) -> Reply {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        f.submit(request());
        match f.reply() {
            Reply::Failed { .. } if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            reply => return reply,
        }
    }
}

#[test]
fn a_restart_of_postgresql_fails_what_waits_keeps_its_events_and_recovers() {
    let cluster = PgCluster::start();
    let db = cluster.database();
    let mut f = open_url(&db.url()).unwrap();
    f.event(join(1, "ann", "x"));
    f.event(chat(2, "x", "bob", "before the outage"));
    assert_eq!(f.texts("ann", "outage"), strings(&["before the outage"]));

    cluster.stop();
    // The leave and the message are kept, and stored once the database is back; what
    // someone waits for is refused.
    f.event(leave(3, "ann", "x"));
    f.event(chat(4, "x", "bob", "during the outage"));
    store_offline(&f, "bob", "carol", 4, "lost in the outage");
    assert_eq!(
        f.reply(),
        Reply::Failed {
            conn: Some(3),
            request: RequestKind::StoreOffline,
            key: Some(key("carol")),
        }
    );
    f.submit(fetch_request("carol", 0, 10));
    assert_eq!(
        f.reply(),
        Reply::Failed {
            conn: Some(4),
            request: RequestKind::FetchOffline,
            key: None,
        }
    );
    f.submit(Request::Search {
        conn: 1,
        user_key: key("ann"),
        since_seq: 0,
        term: "outage".into(),
        upto_seq: None,
    });
    assert_eq!(
        f.reply(),
        Reply::Failed {
            conn: Some(1),
            request: RequestKind::Search,
            key: None,
        }
    );
    assert!(f.handle.try_hash(hash_job(5, "dave", "a long password", 0)));
    assert!(matches!(
        f.reply(),
        Reply::Failed {
            conn: Some(5),
            request: RequestKind::Register,
            ..
        }
    ));
    // Submitting never waits, however long the database is away.
    let start = Instant::now();
    for seq in 100..1100 {
        f.event(chat(seq, "y", "bob", "filler while away"));
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "submit waited"
    );

    cluster.resume();
    // The same storage, the same process: the writer connects again by itself.
    let stored = until_not_failed(&mut f, || Request::StoreOffline {
        notify: Some(3),
        sender: "bob".into(),
        recipient: "carol".into(),
        recipient_key: key("carol"),
        time: 5,
        text: "after the outage".into(),
        max: None,
    });
    assert_eq!(
        stored,
        Reply::OfflineStored {
            conn: 3,
            recipient: "carol".into()
        }
    );
    f.event(chat(1101, "x", "bob", "outage over, ann away"));
    f.event(join(1102, "ann", "x"));
    f.event(chat(1103, "x", "bob", "outage over, ann back"));
    // The readers connect again too. Had the leave been lost, ann would see 1101.
    let found = until_not_failed(&mut f, || Request::Search {
        conn: 1,
        user_key: key("ann"),
        since_seq: 0,
        term: "outage".into(),
        upto_seq: None,
    });
    match found {
        Reply::Search { total, results, .. } => {
            let texts: Vec<&str> = results.iter().map(|h| h.text.as_str()).collect();
            assert_eq!(
                (total, texts),
                (2, vec!["before the outage", "outage over, ann back"])
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Nothing the chat said meanwhile was lost: bob finds his messages of the outage (on
    // either search thread, each connecting again after its own pause).
    for (term, want) in [("during", 1), ("filler", 1000)] {
        let found = until_not_failed(&mut f, || Request::Search {
            conn: 1,
            user_key: key("bob"),
            since_seq: 0,
            term: term.into(),
            upto_seq: None,
        });
        match found {
            Reply::Search { total, .. } => assert_eq!(total, want, "{term}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let offline = fetch_offline(&mut f, "carol");
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].text, "after the outage");
    assert!(matches!(
        register(&mut f, "dave", "a long password").0,
        Registration::Registered
    ));
    f.shutdown();
    assert_eq!(
        db.psql("SELECT from_seq, to_seq FROM memberships ORDER BY from_seq",),
        "1|3\n1102|"
    );
}

#[test]
fn cluster_node_numbers_never_repeat() {
    let db = PgCluster::shared().database();
    let numbers: Vec<u64> = (0..5)
        .map(|_| crate::storage::cluster_node_number(&db.url()).unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    // Storage opening the same database (migrated already) goes on from there.
    let f = open_url(&db.url()).unwrap();
    f.shutdown();
    assert_eq!(crate::storage::cluster_node_number(&db.url()).unwrap(), 6);
}

#[test]
fn connection_errors_are_clear_and_never_show_the_password() {
    let e = open_error("postgres://chat@127.0.0.1:notaport/db");
    assert!(matches!(e, StorageError::PostgresUrl(_)), "{e}");
    assert!(e.to_string().starts_with("invalid PostgreSQL URL: "), "{e}");
    let e = open_error("postgres:///db");
    assert!(matches!(e, StorageError::PostgresUrl(_)), "{e}");

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = open_error(&format!("postgres://chat:s3cret@127.0.0.1:{port}/db"));
    assert!(matches!(e, StorageError::PostgresConnect { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port} (database \"db\", user \"chat\"): "
        )),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");

    let cluster = PgCluster::shared();
    let e = open_error(&cluster.url("no_such_database"));
    assert!(matches!(e, StorageError::PostgresConnect { .. }), "{e}");
    assert!(e.to_string().contains("no_such_database"), "{e}");
}

#[test]
fn a_failing_message_does_not_lose_the_users_created_before_it_in_its_batch() {
    let mut f = Fixture::ephemeral(Engine::Postgres);
    let mut batch = vec![
        Request::Event(chat(1, "x", "ann", "first words")),
        // The same seq again (the hub never does this): it fails, after creating yan.
        Request::Event(chat(1, "x", "yan", "duplicate words")),
        Request::Event(private(2, "yan", "zed", "words for zed")),
        Request::Event(join(3, "zed", "x")),
        Request::Event(chat(4, "x", "ann", "later words")),
    ];
    f.handle.submit_all(&mut batch);
    assert_eq!(f.texts("yan", "words"), strings(&["words for zed"]));
    assert_eq!(
        f.texts("zed", "words"),
        strings(&["words for zed", "later words"])
    );
    assert_eq!(
        f.texts("ann", "words"),
        strings(&["first words", "later words"])
    );
    f.shutdown();
}

// ---- The same results as SQLite -------------------------------------------------------------

/// Runs every search at once (each its own connection id) and returns the answers in order.
fn search_all(f: &mut Fixture, searches: &[(&str, u64, String)]) -> Vec<(usize, Vec<SearchHit>)> {
    let mut requests: Vec<Request> = searches
        .iter()
        .enumerate()
        .map(|(i, (user, since, term))| Request::Search {
            conn: i,
            user_key: key(user),
            since_seq: *since,
            term: term.clone(),
            upto_seq: None,
        })
        .collect();
    f.handle.submit_all(&mut requests);
    let mut answers: Vec<Option<(usize, Vec<SearchHit>)>> = vec![None; searches.len()];
    for reply in f.replies(searches.len()) {
        match reply {
            Reply::Search {
                conn,
                total,
                results,
                ..
            } => answers[conn] = Some((total, results)),
            other => panic!("unexpected {other:?}"),
        }
    }
    answers.into_iter().map(Option::unwrap).collect()
}

/// Texts that SQLite's tokenizer and PostgreSQL's own parser treat differently.
const TEXTS: &[&str] = &[
    "Café au lait, s'il vous plaît!",
    "CAFÉ NOIR",
    "cafe\u{301} with a combining accent",
    "naïve façade — déjà vu",
    "Straße und STRASSE",
    "ǅemal, Ǆ and ǈ ǉ title case",
    "Ελληνικά: Άλφα ΒΉΤΑ γάμμα ς",
    "Русский текст: Ёлка и ёж",
    "日本語のテキスト 東京",
    "हिन्दी भाषा",
    "emoji 🎉 party 🎉🎉",
    "ann@example.com wrote foo.bar 3.14 x2 -5 1e5 v1.2.3",
    "hyphen-ated words, under_score, dot.separated /usr/bin/file.txt",
    "http://example.org/path?q=1 and <b>tags</b> &amp;",
    "İstanbul ıstanbul ISTANBUL",
    "ﬁne ligature ﬀ",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ",
    "quotes \"double\" 'single' `back` and \\backslash\\",
    "tsquery syntax: cats & dogs | !birds <-> :* (x) cats:A",
    "O'Reilly's books",
    "private use \u{E000}\u{E001} chars",
    "zero\u{200B}width join",
    "Ⅻ roman ½ fraction ² superscript",
    "ÅNGSTRÖM Ångström angstrom",
    "Ø ø Ł ł Đ đ æ Æ œ",
    "العربية ١٢٣ ٤٥",
    "ไทย ภาษา",
    "한국어 텍스트",
    "cats and dogs",
    "dogs, not cats",
];

/// Search terms: the texts' words, other spellings of them, and syntax of both engines.
const TERMS: &[&str] = &[
    "cafe",
    "CAFE",
    "café",
    "cafe\u{301}",
    "CAFE\u{301} lait",
    "noir cafe",
    "vu déjà",
    "naive",
    "strasse",
    "straße",
    "STRASSE",
    "dzemal",
    "ǆemal",
    "ǳ",
    "αλφα",
    "άλφα",
    "ΆΛΦΑ",
    "βητα",
    "σ",
    "ς",
    "елка",
    "ёлка",
    "ЁЛКА",
    "ёж",
    "東京",
    "テキスト",
    "日本語のテキスト",
    "हिन्दी",
    "भाषा",
    "🎉",
    "party",
    "example",
    "ann@example.com",
    "foo",
    "foo.bar",
    "3",
    "14",
    "3.14",
    "x2",
    "5",
    "-5",
    "1e5",
    "v1",
    "hyphen",
    "ated",
    "hyphen-ated",
    "under_score",
    "under",
    "separated",
    "usr",
    "file",
    "txt",
    "http",
    "org",
    "b",
    "tags",
    "amp",
    "istanbul",
    "ıstanbul",
    "İstanbul",
    "fine",
    "ﬁne",
    "ff",
    "ﬀ",
    "fullwidth",
    "ＦＵＬＬＷＩＤＴＨ",
    "text",
    "double",
    "\"double",
    "single",
    "backslash",
    "cats & dogs",
    "cats | dogs",
    "!birds",
    "<->",
    ":*",
    "cats:A",
    "(x)",
    "o'reilly",
    "reilly",
    "s",
    "\u{E000}",
    "\u{E000}\u{E001}",
    "zero",
    "width",
    "zerowidth",
    "Ⅻ",
    "xii",
    "½",
    "2",
    "angstrom",
    "ångström",
    "ANGSTROM",
    "o",
    "l",
    "ł",
    "d",
    "ae",
    "æ",
    "oe",
    "١٢٣",
    "123",
    "ไทย",
    "한국어",
    "nothing at all",
    "",
    "?!",
    "cats",
    "dogs",
    "cats dogs",
    "not",
    "and",
    "AND",
    "OR",
    "NEAR",
    "*",
];

#[test]
fn both_engines_find_the_same_on_the_same_history() {
    let mut sqlite = Fixture::ephemeral(Engine::Sqlite);
    let mut pg = Fixture::ephemeral(Engine::Postgres);
    // A history: ann in x twice, bob in y, private messages; every text in both channels and
    // in private, so that who may see it matters.
    let mut events = vec![join(1, "ann", "x"), join(2, "bob", "y")];
    let mut seq = 2;
    let mut next = || {
        seq += 1;
        seq
    };
    for (i, text) in TEXTS.iter().enumerate() {
        events.push(chat(next(), "x", "carol", text));
        events.push(chat(next(), "y", "carol", text));
        if i % 3 == 0 {
            events.push(private(next(), "carol", "ann", text));
        }
        if i == 10 {
            events.push(leave(next(), "ann", "x"));
        }
        if i == 20 {
            events.push(join(next(), "ann", "x"));
        }
    }
    // Every code point of the Latin, Greek and Cyrillic blocks and the combining marks, and a
    // sample beyond, each in a word of its own, searched as it is and upper-cased.
    let sweep: Vec<char> = (0xC0..0x530)
        .chain((0x530..0x3000).step_by(7))
        .chain((0x1F000..0x1F700).step_by(61))
        .filter_map(char::from_u32)
        .collect();
    for chars in sweep.chunks(16) {
        let words: Vec<String> = chars.iter().map(|c| format!("q{c}z")).collect();
        events.push(chat(next(), "x", "dave", &words.join(" ")));
    }
    let mut requests: Vec<Request> = events.into_iter().map(Request::Event).collect();
    let mut again = requests.clone();
    sqlite.handle.submit_all(&mut requests);
    pg.handle.submit_all(&mut again);

    let mut searches: Vec<(&str, u64, String)> = Vec::new();
    for term in TERMS {
        for (user, since) in [
            ("ann", 0),
            ("bob", 0),
            ("carol", 0),
            ("carol", 40),
            ("eve", 0),
        ] {
            searches.push((user, since, term.to_string()));
        }
    }
    for c in &sweep {
        searches.push(("dave", 0, format!("q{c}z")));
        searches.push(("dave", 0, format!("q{c}z").to_uppercase()));
    }
    let expected = search_all(&mut sqlite, &searches);
    let got = search_all(&mut pg, &searches);
    let mut found = 0;
    for (i, (user, since, term)) in searches.iter().enumerate() {
        assert_eq!(
            got[i], expected[i],
            "{user} (since {since}) searching {term:?}: PostgreSQL, then SQLite"
        );
        found += usize::from(expected[i].0 > 0);
    }
    // Not a comparison of two empty answers: most searches find something.
    assert!(
        found > searches.len() / 2,
        "only {found} of {} found anything",
        searches.len()
    );
    sqlite.shutdown();
    pg.shutdown();
}
