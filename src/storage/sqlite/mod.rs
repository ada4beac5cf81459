//! The SQLite engine: one database file (or a shared in-memory database), opened by the writer
//! in WAL mode and read by the search threads on read-only connections of their own.
//!
//! The tables are described in `schema.rs`, the writer's statements in `writes.rs`, the
//! searches in `search.rs`.

pub(super) mod schema;
pub(super) mod search;
mod writes;

use std::path::Path;

use rusqlite::Connection;

use super::backend::{Applied, Backend, Ids, Reader};
use super::queue::Job;
use super::search::SearchJob;
use super::{Event, SearchHit, Startup, StorageError};

/// The writer's end: its connection and the ids it has cached.
pub(super) struct Sqlite {
    conn: Connection,
    ids: Ids,
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` (a file, or a URI) for writing, and
    /// brings its schema up to date.
    pub(super) fn open(path: &Path) -> Result<Sqlite, StorageError> {
        Ok(Sqlite {
            conn: schema::open_writer(path)?,
            ids: Ids::default(),
        })
    }
}

impl Backend for Sqlite {
    type Error = rusqlite::Error;

    fn startup(&mut self) -> Result<Startup, StorageError> {
        schema::startup(&mut self.conn)
    }

    fn apply(
        &mut self,
        unstored: &[Event],
        jobs: &[&Job],
        last_seq: u64,
    ) -> Result<Vec<Applied>, rusqlite::Error> {
        let result = writes::apply(&mut self.conn, &mut self.ids, unstored, jobs, last_seq);
        match result {
            Ok(_) => self.ids.commit(),
            Err(_) => self.ids.rollback(),
        }
        result
    }
}

/// A search thread's read-only connection.
pub(super) struct SqliteReader {
    conn: Connection,
}

impl SqliteReader {
    /// Opens a read-only connection; the writer must have opened the database first.
    pub(super) fn open(path: &Path) -> Result<SqliteReader, StorageError> {
        Ok(SqliteReader {
            conn: schema::open_reader(path)?,
        })
    }
}

impl Reader for SqliteReader {
    type Error = rusqlite::Error;

    fn search(&mut self, job: &SearchJob) -> Result<(usize, Vec<SearchHit>), rusqlite::Error> {
        search::search(&mut self.conn, job)
    }
}
