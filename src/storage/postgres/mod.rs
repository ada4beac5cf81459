//! The PostgreSQL engine: the same tables, rules and replies as SQLite's, in a database that
//! several servers can share (the cluster, PROTOCOL.md section 10).
//!
//! The writer and every search thread hold a connection of their own (the synchronous
//! `postgres` client: only the storage threads ever wait on it). A connection that breaks (the
//! server restarts, the network goes) fails the batch or the search it was serving, as a full
//! disk fails SQLite's: the writer keeps the membership changes and answers whoever waits with
//! a failure, chat goes on. The next batch (or search) connects again, with a pause that
//! doubles after each failed attempt (from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`]), so a dead
//! server costs one refused connection now and then, not one per batch. The log says so once
//! per outage.
//!
//! The tables are in `schema.rs`, the writer's statements in `writes.rs`, the searches in
//! `search.rs`, and how words become lexemes in `lexemes.rs`.

mod lexemes;
pub(super) mod schema;
mod search;
mod writes;

use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::backend::{Applied, Backend, Ids, Reader};
use super::queue::Job;
use super::search::SearchJob;
use super::{Event, SearchHit, Startup, StorageError};
use lexemes::Lexer;

/// How long connecting may take before it counts as failed, unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may go unacknowledged before the connection counts as dead, unless the
/// URL says otherwise: a vanished server must not hold the writer for TCP's quarter of an hour.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
/// The pause before the second attempt to connect again; it doubles after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Why a batch or a search could not be done.
#[derive(Debug, thiserror::Error)]
pub(super) enum PgError {
    #[error(transparent)]
    Db(#[from] postgres::Error),
    #[error("not connected to PostgreSQL (the next attempt in {0:?})")]
    Waiting(Duration),
    #[error("cannot make the words of a text: {0}")]
    Lexer(#[from] rusqlite::Error),
}

/// Parses a connection URL (`postgres://user:password@host:port/database?…`, or libpq's
/// `key=value` form), with our defaults for what it leaves out.
pub(super) fn config(url: &str) -> Result<Config, StorageError> {
    let mut config = Config::from_str(url).map_err(|e| StorageError::PostgresUrl(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(StorageError::PostgresUrl("it names no host".into()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("chat-server");
    }
    // Notices ("relation already exists, skipping") are for the log's debug level.
    config.notice_callback(|notice| log::debug!("storage: PostgreSQL says: {}", notice.message()));
    Ok(config)
}

/// Where a configuration points, for messages (never the password).
pub(super) fn target(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    format!(
        "{} (database {:?}, user {:?})",
        hosts.join(","),
        config.get_dbname().unwrap_or("(the user's)"),
        config.get_user().unwrap_or("(the system's)")
    )
}

/// True when an error is one statement's fault and the connection and the transaction are
/// otherwise fine: bad data (22), a broken constraint (23), a statement PostgreSQL will not run
/// (42), a value over a limit (54), a query that returned the wrong number of rows (21).
/// Anything else (a lost connection, a full disk, a shutdown, a deadlock) is the batch's.
fn is_statement_error(e: &postgres::Error) -> bool {
    matches!(
        e.code().map(|c| c.code().get(..2).unwrap_or("")),
        Some("22" | "23" | "42" | "54" | "21")
    )
}

/// One connection that reconnects: lost, it is tried again on the next use, after a pause
/// that grows while the server stays away.
struct Link {
    config: Config,
    /// Whose connection this is, for the log.
    role: String,
    client: Option<Client>,
    /// When the next attempt to connect may be made.
    retry_at: Instant,
    backoff: Duration,
    /// Since when the connection has been lost (`None`: connected, or never was).
    lost_since: Option<Instant>,
}

impl Link {
    /// Connects for the first time; failing is an error of the start.
    fn open(config: &Config, role: &str) -> Result<Link, StorageError> {
        let client = config
            .connect(NoTls)
            .map_err(|source| StorageError::PostgresConnect {
                target: target(config),
                source,
            })?;
        Ok(Link {
            config: config.clone(),
            role: role.to_string(),
            client: Some(client),
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            lost_since: None,
        })
    }

    /// The connection, connecting again if it was lost and the pause is over. The bool is
    /// true when this is a new connection (prepared statements must be prepared again).
    fn client(&mut self) -> Result<(&mut Client, bool), PgError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.lost();
        }
        let fresh = self.client.is_none();
        if fresh {
            let now = Instant::now();
            if now < self.retry_at {
                return Err(PgError::Waiting(self.retry_at - now));
            }
            match self.config.connect(NoTls) {
                Ok(client) => {
                    if let Some(since) = self.lost_since.take() {
                        log::warn!(
                            "storage: the {} is connected to PostgreSQL again, after {:.1} s",
                            self.role,
                            since.elapsed().as_secs_f64()
                        );
                    }
                    self.backoff = FIRST_BACKOFF;
                    self.client = Some(client);
                }
                Err(e) => {
                    log::debug!(
                        "storage: the {} cannot connect to PostgreSQL ({e}); next attempt in \
                         {:?}",
                        self.role,
                        self.backoff
                    );
                    self.retry_at = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return Err(PgError::Db(e));
                }
            }
        }
        match self.client.as_mut() {
            Some(client) => Ok((client, fresh)),
            None => Err(PgError::Waiting(Duration::ZERO)),
        }
    }

    /// After a failure: if the connection is gone (or cannot be trusted), drop it, so that the
    /// next use connects again (at once the first time).
    fn check(&mut self, e: &PgError) {
        let broken = match e {
            PgError::Db(e) => {
                e.is_closed()
                    || e.code().is_none()
                    || self.client.as_ref().is_some_and(Client::is_closed)
                    || e.code().is_some_and(|c| {
                        matches!(c.code().get(..2), Some("08" | "57" | "58" | "XX"))
                    })
            }
            PgError::Waiting(_) | PgError::Lexer(_) => false,
        };
        if broken && self.client.is_some() {
            self.lost();
        }
    }

    fn lost(&mut self) {
        self.client = None;
        self.retry_at = Instant::now();
        self.backoff = FIRST_BACKOFF;
        if self.lost_since.is_none() {
            self.lost_since = Some(Instant::now());
            log::warn!(
                "storage: the {} lost its connection to PostgreSQL; it connects again when \
                 next needed",
                self.role
            );
        }
    }
}

/// The writer's end: its connection, its prepared statements, its lexer and its cached ids.
pub(super) struct Postgres {
    link: Link,
    statements: Option<writes::Statements>,
    lexer: Lexer,
    ids: Ids,
    /// No other node runs: stays left open by a crash are closed at start.
    first: bool,
}

impl Postgres {
    /// Connects, and brings the schema up to date.
    pub(super) fn connect(config: &Config, first: bool) -> Result<Postgres, StorageError> {
        let mut link = Link::open(config, "storage writer")?;
        if let Some(client) = link.client.as_mut() {
            schema::migrate(client)?;
        }
        Ok(Postgres {
            link,
            statements: None,
            lexer: Lexer::new()?,
            ids: Ids::default(),
            first,
        })
    }
}

/// A new cluster node number, on a connection of its own (at start, before the loop runs).
pub(super) fn node_number(config: &Config) -> Result<u64, StorageError> {
    let mut link = Link::open(config, "node numbering")?;
    let Some(client) = link.client.as_mut() else {
        return Err(StorageError::PostgresUnavailable("not connected".into()));
    };
    schema::migrate(client)?;
    schema::next_node_number(client)
}

impl Backend for Postgres {
    type Error = PgError;

    fn startup(&mut self) -> Result<Startup, StorageError> {
        let (client, _) = self.link.client().map_err(|e| match e {
            PgError::Db(e) => StorageError::Postgres(e),
            other => StorageError::PostgresUnavailable(other.to_string()),
        })?;
        schema::startup(client, self.first)
    }

    fn apply(
        &mut self,
        unstored: &[Event],
        jobs: &[&Job],
        last_seq: u64,
    ) -> Result<Vec<Applied>, PgError> {
        let result = self.try_apply(unstored, jobs, last_seq);
        match &result {
            Ok(_) => self.ids.commit(),
            Err(e) => {
                self.ids.rollback();
                self.link.check(e);
            }
        }
        result
    }
}

impl Postgres {
    fn try_apply(
        &mut self,
        unstored: &[Event],
        jobs: &[&Job],
        last_seq: u64,
    ) -> Result<Vec<Applied>, PgError> {
        // The words first: they need no connection, and a replay reuses them.
        let words = writes::words(&mut self.lexer, jobs)?;
        // Kept events are messages too, searchable once stored.
        let unstored_words = writes::event_words(&mut self.lexer, unstored)?;
        let (client, fresh) = self.link.client()?;
        if fresh || self.statements.is_none() {
            self.statements = None;
            self.statements = Some(writes::Statements::prepare(client)?);
        }
        let Some(statements) = self.statements.as_ref() else {
            return Err(PgError::Waiting(Duration::ZERO));
        };
        writes::apply(
            client,
            statements,
            &mut self.ids,
            (unstored, &unstored_words),
            jobs,
            &words,
            last_seq,
        )
    }
}

/// A search thread's end: its own connection and lexer.
pub(super) struct PgReader {
    link: Link,
    statements: Option<search::Statements>,
    lexer: Lexer,
}

impl PgReader {
    /// Connects; the writer must have brought the schema up to date first.
    pub(super) fn connect(config: &Config, i: usize) -> Result<PgReader, StorageError> {
        Ok(PgReader {
            link: Link::open(config, &format!("search thread {i}"))?,
            statements: None,
            lexer: Lexer::new()?,
        })
    }

    fn try_search(&mut self, job: &SearchJob) -> Result<(usize, Vec<SearchHit>), PgError> {
        let Some(query) = self.lexer.tsquery(&job.term)? else {
            return Ok((0, Vec::new()));
        };
        if job.blind {
            return Ok((0, Vec::new()));
        }
        let (client, fresh) = self.link.client()?;
        if fresh || self.statements.is_none() {
            self.statements = None;
            self.statements = Some(search::Statements::prepare(client)?);
        }
        let Some(statements) = self.statements.as_ref() else {
            return Err(PgError::Waiting(Duration::ZERO));
        };
        Ok(search::search(client, statements, job, &query)?)
    }
}

impl Reader for PgReader {
    type Error = PgError;

    fn search(&mut self, job: &SearchJob) -> Result<(usize, Vec<SearchHit>), PgError> {
        let result = self.try_search(job);
        if let Err(e) = &result {
            self.link.check(e);
        }
        result
    }
}
