//! `/search` in PostgreSQL: the same visibility as SQLite's (`storage/search.rs`), the
//! matching done by PostgreSQL's full-text search on the lexemes of `lexemes.rs`.
//!
//! A search is one read-only snapshot and three round trips: the user and its stays, then one
//! statement that looks in the user's own and private messages and, through a lateral join,
//! in each stay's seq range of its channel (an index scan of `messages_by_channel` per stay,
//! or the GIN index where the planner finds the words rarer than the stays are long), and
//! returns the count and the newest matches.

use postgres::{Client, IsolationLevel, Statement};

use crate::storage::search::{sql, SearchJob, Stay};
use crate::storage::{SearchHit, MAX_SEARCH_RESULTS};

/// A search thread's statements, prepared once per connection.
pub(super) struct Statements {
    stays: Statement,
    channels: Statement,
    find: Statement,
}

impl Statements {
    pub(super) fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        // Planned for each search's own words and ranges: a generic plan cannot know whether
        // the words are rarer than the stays are long.
        client.batch_execute("SET plan_cache_mode = force_custom_plan")?;
        Ok(Statements {
            // The user, with every stay that did not end before `since`; no row: no user.
            stays: client.prepare(
                "SELECT u.id, m.channel_id, m.from_seq, m.to_seq
                 FROM users AS u LEFT JOIN memberships AS m
                     ON m.user_id = u.id AND (m.to_seq IS NULL OR m.to_seq > $2)
                 WHERE u.key = $1",
            )?,
            channels: client.prepare("SELECT key, id FROM channels WHERE key = ANY($1)")?,
            find: client.prepare(
                "WITH found AS (
                     SELECT seq FROM messages
                     WHERE (sender_id = $1 OR recipient_id = $1) AND seq > $2 AND seq < $3
                         AND words @@ $4::text::tsquery
                     UNION
                     SELECT m.seq
                     FROM unnest($5::int8[], $6::int8[], $7::int8[]) AS r (channel_id, after, before)
                     CROSS JOIN LATERAL (
                         SELECT seq FROM messages
                         WHERE channel_id = r.channel_id AND seq > r.after AND seq < r.before
                             AND words @@ $4::text::tsquery
                     ) AS m
                 ), newest AS (
                     SELECT seq, count(*) OVER () AS total FROM found
                     ORDER BY seq DESC LIMIT $8
                 )
                 SELECT n.total, m.seq, m.time, c.name, m.sender, m.recipient, m.text
                 FROM newest AS n JOIN messages AS m ON m.seq = n.seq
                     LEFT JOIN channels AS c ON c.id = m.channel_id
                 ORDER BY m.seq",
            )?,
        })
    }
}

/// Runs a search whose term became `query` (a `tsquery` literal).
pub(super) fn search(
    client: &mut Client,
    st: &Statements,
    job: &SearchJob,
    query: &str,
) -> Result<(usize, Vec<SearchHit>), postgres::Error> {
    // One snapshot for the stays and the messages, while the writer goes on committing.
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let rows = tx.query(&st.stays, &[&job.user_key, &sql(job.since_seq)])?;
    let Some(first) = rows.first() else {
        return Ok((0, Vec::new()));
    };
    let user: i64 = first.try_get(0)?;
    let mut stays: Vec<Stay> = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(channel) = row.try_get::<_, Option<i64>>(1)? {
            stays.push((channel, row.try_get(2)?, row.try_get(3)?));
        }
    }
    let mut cut: Vec<(i64, i64)> = Vec::new();
    if !job.unstored_leaves.is_empty() {
        let keys: Vec<&str> = job
            .unstored_leaves
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        for row in tx.query(&st.channels, &[&keys])? {
            let key: String = row.try_get(0)?;
            let id: i64 = row.try_get(1)?;
            cut.extend(
                job.unstored_leaves
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|&(_, seq)| (id, sql(seq))),
            );
        }
    }
    let ranges = job.stay_ranges(&stays, &cut);
    let channels: Vec<i64> = ranges.iter().map(|(c, _)| *c).collect();
    let afters: Vec<i64> = ranges.iter().map(|(_, r)| r.after).collect();
    let befores: Vec<i64> = ranges.iter().map(|(_, r)| r.before).collect();
    let own = job.own_range();
    let limit = i64::try_from(MAX_SEARCH_RESULTS).unwrap_or(i64::MAX);
    let rows = tx.query(
        &st.find,
        &[
            &user,
            &own.after,
            &own.before,
            &query,
            &channels,
            &afters,
            &befores,
            &limit,
        ],
    )?;
    tx.commit()?;
    let mut total = 0;
    let mut hits = Vec::with_capacity(rows.len());
    for row in rows {
        total = usize::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0);
        hits.push(SearchHit {
            seq: u64::try_from(row.try_get::<_, i64>(1)?).unwrap_or(0),
            time: row.try_get(2)?,
            channel: row.try_get(3)?,
            sender: row.try_get(4)?,
            recipient: row.try_get(5)?,
            text: row.try_get(6)?,
        });
    }
    Ok((total, hits))
}
