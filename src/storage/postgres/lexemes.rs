//! The words of a message or of a search term as PostgreSQL's full-text search stores and
//! queries them, made by SQLite's own tokenizer so that both engines find the same messages.
//!
//! PostgreSQL's parser and dictionaries (even `simple` plus `unaccent`) do not split, fold and
//! strip accents as SQLite's `unicode61 remove_diacritics 2` does: its parser keeps e-mail
//! addresses, host names, `3.14` and hyphenated words whole, its lower-casing depends on the
//! database's locale (nothing but ASCII under `C`), and `unaccent` maps far more (`ß` to `ss`,
//! `æ` to `ae`, Greek accents) than SQLite does. Measured over every code point, tens of
//! thousands of characters come out differently. So the lexemes come from the reference
//! itself: an in-memory FTS5 table with the same tokenizer, read back through `fts5vocab`.
//! PostgreSQL then does what it does well: a `tsvector` column, its GIN index, and `@@`.
//!
//! A message becomes a `tsvector` of its tokens with their positions; a term becomes a
//! `tsquery` in which every word is required, a word that the tokenizer splits into several
//! tokens being a phrase (`a <-> b`), as FTS5 treats a quoted string. Lexemes are always quoted,
//! so no text is ever query syntax.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use rusqlite::{ffi, Connection};

use crate::storage::search::term_tokens;
use crate::storage::sqlite::schema::TOKENIZER;

/// PostgreSQL's longest lexeme, in bytes; a longer token cannot be stored, and no search term
/// can hold one (a command is a few hundred bytes at most), so it is left out.
const MAX_LEXEME_BYTES: usize = 2046;
/// PostgreSQL's highest word position.
const MAX_POSITION: usize = 16_383;
/// PostgreSQL keeps at most this many positions per lexeme.
const MAX_POSITIONS: usize = 256;

/// The xTokenize of an FTS5 tokenizer.
type Tokenize = unsafe extern "C" fn(
    *mut ffi::Fts5Tokenizer,
    *mut c_void,
    c_int,
    *const c_char,
    c_int,
    Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_char, c_int, c_int, c_int) -> c_int>,
) -> c_int;

/// SQLite's own FTS5 tokenizer (`TOKENIZER`), called directly: the tokens it gives a text are
/// the ones an FTS5 table with that tokenizer indexes, in order (`unicode61` never gives two
/// tokens one position). One per storage thread.
pub(super) struct Lexer {
    /// An in-memory database: the FTS5 module, and so the tokenizer, live as long as it does.
    _conn: Connection,
    tokenizer: *mut ffi::Fts5Tokenizer,
    tokenize: Tokenize,
    delete: Option<unsafe extern "C" fn(*mut ffi::Fts5Tokenizer)>,
}

// SAFETY: the tokenizer belongs to `_conn`, which moves with it, and a `Lexer` is used by one
// thread at a time (`&mut self`); SQLite lets a connection move between threads.
unsafe impl Send for Lexer {}

impl Drop for Lexer {
    fn drop(&mut self) {
        if let Some(delete) = self.delete {
            // SAFETY: made by this tokenizer's xCreate, deleted once, before the connection.
            unsafe { delete(self.tokenizer) };
        }
    }
}

fn failure(rc: c_int, what: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(what.to_string()))
}

/// Collects one token (the xToken callback): `ctx` is the `Vec<String>` of [`Lexer::tokenize`].
unsafe extern "C" fn on_token(
    ctx: *mut c_void,
    _flags: c_int,
    token: *const c_char,
    len: c_int,
    _start: c_int,
    _end: c_int,
) -> c_int {
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: `ctx` is the vector `tokenize` passed, alive for the call; SQLite hands `len`
    // bytes at `token`.
    let (out, bytes) = unsafe {
        (
            &mut *ctx.cast::<Vec<String>>(),
            std::slice::from_raw_parts(token.cast::<u8>(), len),
        )
    };
    out.push(String::from_utf8_lossy(bytes).into_owned());
    ffi::SQLITE_OK
}

impl Lexer {
    pub(super) fn new() -> rusqlite::Result<Lexer> {
        let conn = Connection::open_in_memory()?;
        // SAFETY: the documented way to reach the FTS5 API ("SELECT fts5(?1)" with a pointer
        // bound as "fts5_api_ptr"); every pointer is checked before use, and the tokenizer is
        // made with the arguments `TOKENIZER` names.
        unsafe {
            let db = conn.handle();
            let mut api: *mut ffi::fts5_api = ptr::null_mut();
            let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
            let sql = c"SELECT fts5(?1)";
            let rc = ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, ptr::null_mut());
            if rc != ffi::SQLITE_OK {
                return Err(failure(rc, "no FTS5 in this SQLite"));
            }
            ffi::sqlite3_bind_pointer(
                stmt,
                1,
                ptr::addr_of_mut!(api).cast(),
                c"fts5_api_ptr".as_ptr(),
                None,
            );
            ffi::sqlite3_step(stmt);
            ffi::sqlite3_finalize(stmt);
            let Some(find) = api.as_ref().and_then(|a| a.xFindTokenizer) else {
                return Err(failure(ffi::SQLITE_ERROR, "no FTS5 API"));
            };
            let mut words = TOKENIZER.split_whitespace();
            let name = std::ffi::CString::new(words.next().unwrap_or("unicode61"))
                .map_err(|_| failure(ffi::SQLITE_MISUSE, "tokenizer name"))?;
            let args: Vec<std::ffi::CString> = words
                .map(std::ffi::CString::new)
                .collect::<Result<_, _>>()
                .map_err(|_| failure(ffi::SQLITE_MISUSE, "tokenizer arguments"))?;
            let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
            let mut user: *mut c_void = ptr::null_mut();
            let mut methods: ffi::fts5_tokenizer = std::mem::zeroed();
            let rc = find(api, name.as_ptr(), &mut user, &mut methods);
            if rc != ffi::SQLITE_OK {
                return Err(failure(rc, "no such FTS5 tokenizer"));
            }
            let (Some(create), Some(tokenize)) = (methods.xCreate, methods.xTokenize) else {
                return Err(failure(
                    ffi::SQLITE_ERROR,
                    "an FTS5 tokenizer without methods",
                ));
            };
            let mut tokenizer: *mut ffi::Fts5Tokenizer = ptr::null_mut();
            let argc = c_int::try_from(argv.len()).unwrap_or(0);
            let rc = create(user, argv.as_mut_ptr(), argc, &mut tokenizer);
            if rc != ffi::SQLITE_OK || tokenizer.is_null() {
                return Err(failure(rc, "the FTS5 tokenizer refused its arguments"));
            }
            Ok(Lexer {
                _conn: conn,
                tokenizer,
                tokenize,
                delete: methods.xDelete,
            })
        }
    }

    /// The tokens of each text, in order, as SQLite's full-text index stores them.
    pub(super) fn tokens(&mut self, texts: &[&str]) -> rusqlite::Result<Vec<Vec<String>>> {
        texts.iter().map(|text| self.tokenize(text)).collect()
    }

    fn tokenize(&mut self, text: &str) -> rusqlite::Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let len = c_int::try_from(text.len()).map_err(|_| failure(ffi::SQLITE_TOOBIG, "text"))?;
        // SAFETY: the tokenizer is alive (see `Drop`); `out` outlives the call, which is the
        // only one to use it through `on_token`; the text is `len` bytes.
        let rc = unsafe {
            (self.tokenize)(
                self.tokenizer,
                ptr::addr_of_mut!(out).cast(),
                ffi::FTS5_TOKENIZE_DOCUMENT,
                text.as_ptr().cast(),
                len,
                Some(on_token),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(failure(rc, "tokenizing"));
        }
        Ok(out)
    }

    /// The `tsvector` literal of each text.
    pub(super) fn tsvectors(&mut self, texts: &[&str]) -> rusqlite::Result<Vec<String>> {
        Ok(self.tokens(texts)?.iter().map(|t| tsvector(t)).collect())
    }

    /// The `tsquery` literal of a search term: all its words required. `None` when it can
    /// find nothing: no word at all, or a word with no token (FTS5 matches no row for an empty
    /// phrase).
    pub(super) fn tsquery(&mut self, term: &str) -> rusqlite::Result<Option<String>> {
        let words = term_tokens(term);
        if words.is_empty() {
            return Ok(None);
        }
        let mut query = Vec::with_capacity(words.len());
        for tokens in self.tokens(&words)? {
            if tokens.is_empty() || tokens.iter().any(|t| t.len() > MAX_LEXEME_BYTES) {
                return Ok(None);
            }
            let phrase: Vec<String> = tokens.iter().map(|t| quote(t)).collect();
            query.push(format!("({})", phrase.join(" <-> ")));
        }
        Ok(Some(query.join(" & ")))
    }
}

/// A lexeme quoted for `tsvector` and `tsquery` input: inside quotes a backslash escapes and a
/// doubled quote is a quote.
fn quote(lexeme: &str) -> String {
    let mut out = String::with_capacity(lexeme.len() + 2);
    push_quoted(&mut out, lexeme);
    out
}

/// [`quote`], onto `out`.
fn push_quoted(out: &mut String, lexeme: &str) {
    out.push('\'');
    for c in lexeme.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// The `tsvector` literal of a text's tokens: each lexeme with its positions (from 1).
fn tsvector(tokens: &[String]) -> String {
    use std::fmt::Write as _;
    let mut positions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.len() <= MAX_LEXEME_BYTES {
            let at = positions.entry(token).or_default();
            if at.len() < MAX_POSITIONS {
                at.push((i + 1).min(MAX_POSITION));
            }
        }
    }
    let mut out = String::with_capacity(tokens.iter().map(|t| t.len() + 6).sum());
    for (lexeme, at) in positions {
        if !out.is_empty() {
            out.push(' ');
        }
        push_quoted(&mut out, lexeme);
        for (i, p) in at.iter().enumerate() {
            out.push(if i == 0 { ':' } else { ',' });
            // Writing to a String cannot fail.
            let _ = write!(out, "{p}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of each text as an FTS5 table with `TOKENIZER` indexes them, read back
    /// through `fts5vocab`: what the direct tokenizer must equal.
    fn indexed_tokens(texts: &[String]) -> Vec<Vec<String>> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE words USING fts5(text, tokenize = '{TOKENIZER}');
             CREATE VIRTUAL TABLE word_list USING fts5vocab(words, 'instance');"
        ))
        .unwrap();
        let mut insert = conn
            .prepare("INSERT INTO words (rowid, text) VALUES (?1, ?2)")
            .unwrap();
        for (i, text) in texts.iter().enumerate() {
            insert.execute(rusqlite::params![i as i64, text]).unwrap();
        }
        let mut out: Vec<Vec<(i64, String)>> = vec![Vec::new(); texts.len()];
        let mut rows = conn
            .prepare("SELECT doc, offset, term FROM word_list")
            .unwrap();
        let mut rows = rows.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let doc: i64 = row.get(0).unwrap();
            out[doc as usize].push((row.get(1).unwrap(), row.get(2).unwrap()));
        }
        out.into_iter()
            .map(|mut t| {
                t.sort_unstable();
                t.into_iter().map(|(_, token)| token).collect()
            })
            .collect()
    }

    #[test]
    fn the_direct_tokenizer_gives_what_the_index_holds_for_every_code_point() {
        let mut lexer = Lexer::new().unwrap();
        // Every code point, alone, inside a word, doubled and beside a combining mark.
        let chars: Vec<char> = (0..=0x10FFFF_u32).filter_map(char::from_u32).collect();
        for chunk in chars.chunks(4096) {
            let texts: Vec<String> = chunk
                .iter()
                .map(|&c| format!("{c} a{c}b {c}{c} {c}\u{301}x"))
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            assert_eq!(lexer.tokens(&refs).unwrap(), indexed_tokens(&texts));
        }
    }

    #[test]
    fn tokens_fold_case_and_accents_as_sqlite_does() {
        let mut lexer = Lexer::new().unwrap();
        let tokens = lexer
            .tokens(&["Café au LAIT, déjà-vu!", "", "Straße ΆΣ e\u{301}te\u{301}"])
            .unwrap();
        assert_eq!(
            tokens,
            [
                vec!["cafe", "au", "lait", "deja", "vu"],
                vec![],
                // SQLite folds ß and Greek accents no further: neither does this.
                vec!["straße", "άσ", "ete"],
            ]
        );
        // Nothing is left behind for the next batch.
        assert_eq!(lexer.tokens(&["x"]).unwrap(), [vec!["x"]]);
    }

    #[test]
    fn a_tsvector_has_every_lexeme_with_its_positions() {
        let mut lexer = Lexer::new().unwrap();
        assert_eq!(
            lexer.tsvectors(&["b a b", "it's", "?!"]).unwrap(),
            ["'a':2 'b':1,3", "'it':1 's':2", ""]
        );
        assert_eq!(tsvector(&["o'k\\".to_string()]), "'o''k\\\\':1");
    }

    #[test]
    fn a_tsquery_needs_every_word_and_a_split_word_is_a_phrase() {
        let mut lexer = Lexer::new().unwrap();
        assert_eq!(
            lexer.tsquery("Cats & dogs").unwrap().as_deref(),
            Some("('cats') & ('dogs')")
        );
        // The words split at the virama (no letter to Rust either); Rust counts the vowel
        // signs as part of a word, unicode61 splits there: a phrase, as in FTS5.
        assert_eq!(
            lexer.tsquery("हिन्दी").unwrap().as_deref(),
            Some("('ह' <-> 'न') & ('द')")
        );
        assert_eq!(lexer.tsquery("!?").unwrap(), None);
        // A lone vowel sign is a word to Rust and no token to SQLite: nothing is found.
        assert_eq!(lexer.tsquery("cats \u{93F}").unwrap(), None);
        assert_eq!(
            lexer.tsquery("'quoted' OR:*").unwrap().as_deref(),
            Some("('quoted') & ('or')")
        );
    }
}
