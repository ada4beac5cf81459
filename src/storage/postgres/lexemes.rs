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

use rusqlite::Connection;

use crate::storage::search::term_tokens;
use crate::storage::sqlite::schema::TOKENIZER;

/// PostgreSQL's longest lexeme, in bytes; a longer token cannot be stored, and no search term
/// can hold one (a command is a few hundred bytes at most), so it is left out.
const MAX_LEXEME_BYTES: usize = 2046;
/// PostgreSQL's highest word position.
const MAX_POSITION: usize = 16_383;
/// PostgreSQL keeps at most this many positions per lexeme.
const MAX_POSITIONS: usize = 256;

/// An in-memory SQLite database that tokenizes texts; one per storage thread.
pub(super) struct Lexer {
    conn: Connection,
}

impl Lexer {
    pub(super) fn new() -> rusqlite::Result<Lexer> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE words USING fts5(text, content = '', tokenize = '{TOKENIZER}');
             CREATE VIRTUAL TABLE word_list USING fts5vocab(words, 'instance');"
        ))?;
        Ok(Lexer { conn })
    }

    /// The tokens of each text, in order, as SQLite's full-text index stores them.
    pub(super) fn tokens(&mut self, texts: &[&str]) -> rusqlite::Result<Vec<Vec<String>>> {
        let mut out: Vec<Vec<(i64, String)>> = vec![Vec::new(); texts.len()];
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO words (rowid, text) VALUES (?1, ?2)")?;
            for (i, text) in texts.iter().enumerate() {
                insert.execute(rusqlite::params![
                    i64::try_from(i).unwrap_or(i64::MAX),
                    text
                ])?;
            }
            let mut rows = tx.prepare_cached("SELECT doc, offset, term FROM word_list")?;
            let mut rows = rows.query([])?;
            while let Some(row) = rows.next()? {
                let doc: i64 = row.get(0)?;
                if let Some(tokens) = usize::try_from(doc).ok().and_then(|d| out.get_mut(d)) {
                    tokens.push((row.get(1)?, row.get(2)?));
                }
            }
            // Contentless: the index alone is kept, and emptied at once (a row-by-row delete
            // would tokenize every text again).
            tx.execute("INSERT INTO words (words) VALUES ('delete-all')", [])?;
        }
        tx.commit()?;
        Ok(out
            .into_iter()
            .map(|mut tokens| {
                tokens.sort_unstable();
                tokens.into_iter().map(|(_, token)| token).collect()
            })
            .collect())
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
    format!("'{}'", lexeme.replace('\\', "\\\\").replace('\'', "''"))
}

/// The `tsvector` literal of a text's tokens: each lexeme with its positions (from 1).
fn tsvector(tokens: &[String]) -> String {
    let mut positions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.len() <= MAX_LEXEME_BYTES {
            let at = positions.entry(token).or_default();
            if at.len() < MAX_POSITIONS {
                at.push((i + 1).min(MAX_POSITION));
            }
        }
    }
    let mut out = String::new();
    for (lexeme, at) in positions {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&quote(lexeme));
        out.push(':');
        let at: Vec<String> = at.iter().map(usize::to_string).collect();
        out.push_str(&at.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
