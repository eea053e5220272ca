//! Each twin's history: an append-only audit log with one entry per event processed (or
//! failed, retried, skipped), written in the same transaction as the event's own effects.
//! Entries carry the keys of both sides as they were then, so a twin stays findable by
//! either key after it was unexalated. Kept as long as finished events are.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::sql::{Row, Sql, args};

/// Created with the rest of the schema (see `NodeStore::open`).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,             -- ms since epoch
    twin_id TEXT NOT NULL,
    connection TEXT NOT NULL,
    local_key TEXT,                  -- the keys when the entry was written
    remote_key TEXT,
    event_id TEXT NOT NULL,
    direction TEXT NOT NULL,         -- outgoing, incoming, unexalate
    reason TEXT NOT NULL,
    hop INTEGER NOT NULL,
    outcome TEXT NOT NULL,           -- done, failed, retried, skipped
    note TEXT NOT NULL,
    processor TEXT,                  -- name of the processor that ran, and its SHA-256
    processor_sha256 TEXT,
    changes TEXT NOT NULL DEFAULT '[]',   -- JSON: [{field, old, new}] on the local issue
    comments TEXT NOT NULL DEFAULT '[]'   -- JSON: [{id, author, body}] added to the local issue
);
CREATE INDEX IF NOT EXISTS history_by_twin ON history (twin_id, seq);
CREATE INDEX IF NOT EXISTS history_by_local_key ON history (local_key, seq);
CREATE INDEX IF NOT EXISTS history_by_remote_key ON history (remote_key, seq);
CREATE INDEX IF NOT EXISTS history_by_time ON history (at);
CREATE INDEX IF NOT EXISTS history_by_connection ON history (connection, at);
-- Finding a twin by its remote key alone (the history of an issue of the other side).
CREATE INDEX IF NOT EXISTS twins_by_remote_key ON twins (remote_key);
";

/// One field of the local issue changed by an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A comment an event added to the local issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedComment {
    pub id: String,
    pub author: Option<String>,
    pub body: String,
}

/// A history entry to write.
#[derive(Debug, Clone, Default)]
pub struct NewEntry<'a> {
    pub twin_id: &'a str,
    pub connection: &'a str,
    pub local_key: Option<&'a str>,
    pub remote_key: Option<&'a str>,
    pub event_id: &'a str,
    pub direction: &'a str,
    pub reason: &'a str,
    pub hop: u32,
    pub outcome: &'a str,
    pub note: &'a str,
    pub processor: Option<(&'a str, &'a str)>,
    pub changes: &'a [FieldChange],
    pub comments: &'a [AddedComment],
}

/// A history entry as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    pub at_ms: i64,
    pub twin: String,
    pub connection: String,
    pub local_key: Option<String>,
    pub remote_key: Option<String>,
    pub event: String,
    pub direction: String,
    pub reason: String,
    pub hop: u32,
    pub outcome: String,
    pub note: String,
    pub processor: Option<String>,
    pub processor_sha256: Option<String>,
    pub changes: Vec<FieldChange>,
    pub comments: Vec<AddedComment>,
}

pub fn append(db: &dyn Sql, entry: &NewEntry<'_>, now_ms: i64) -> Result<()> {
    let (processor, sha256) = entry.processor.unzip();
    db.execute(
        "INSERT INTO history (at, twin_id, connection, local_key, remote_key, event_id, direction,
            reason, hop, outcome, note, processor, processor_sha256, changes, comments)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        args![
            now_ms,
            entry.twin_id,
            entry.connection,
            entry.local_key,
            entry.remote_key,
            entry.event_id,
            entry.direction,
            entry.reason,
            entry.hop,
            entry.outcome,
            entry.note,
            processor,
            sha256,
            &serde_json::to_string(entry.changes)?,
            &serde_json::to_string(entry.comments)?,
        ],
    )?;
    Ok(())
}

/// Which entries to read: all filters apply together. Newest first; `before` (an entry's
/// `seq`) pages back.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    /// A twin id, or an issue key on either side.
    pub key: Option<String>,
    /// Only this connection.
    pub connection: Option<String>,
    /// From this time on, ms since epoch (inclusive).
    pub since_ms: Option<i64>,
    /// Before this time, ms since epoch.
    pub until_ms: Option<i64>,
    /// Entries older than this one (paging).
    pub before: Option<i64>,
    /// At most this many (default 50, at most 1000).
    pub limit: Option<usize>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

const COLUMNS: &str = "seq, at, twin_id, connection, local_key, remote_key, event_id, direction,
    reason, hop, outcome, note, processor, processor_sha256, changes, comments";

/// Milliseconds since the epoch of an RFC 3339 time (`2026-11-30T08:00:00Z`), as the CLI
/// and the admin API take them.
pub fn parse_time(text: &str) -> Result<i64> {
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|_| anyhow::anyhow!("`{text}` is not a time like 2026-11-30T08:00:00Z"))?;
    Ok(crate::clock::millis(time))
}

/// Entries matching `filter`, newest first.
pub fn query(db: &dyn Sql, filter: &Filter) -> Result<Vec<Entry>> {
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    // A key names a twin, or an issue on either side at the time of the entry, or an issue
    // of a twin now (a remote key learnt after the first entries were written). Written
    // without `?1 IS NULL OR`, so that SQLite looks each term up in its index.
    let key = if filter.key.is_some() {
        "(twin_id = ?1 OR local_key = ?1 OR remote_key = ?1
          OR twin_id IN (SELECT twin_id FROM twins WHERE local_key = ?1 OR remote_key = ?1))"
    } else {
        "CAST(?1 AS TEXT) IS NULL"
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM history
         WHERE {key}
           AND (CAST(?2 AS TEXT) IS NULL OR connection = ?2)
           AND (CAST(?3 AS BIGINT) IS NULL OR at >= ?3)
           AND (CAST(?4 AS BIGINT) IS NULL OR at < ?4)
           AND (CAST(?5 AS BIGINT) IS NULL OR seq < ?5)
         ORDER BY seq DESC LIMIT ?6"
    );
    db.rows(
        &sql,
        args![
            filter.key.as_ref(),
            filter.connection.as_ref(),
            filter.since_ms,
            filter.until_ms,
            filter.before,
            limit
        ],
        from_row,
    )
}

fn from_row(row: &dyn Row) -> Result<Entry> {
    let json = |i: usize| -> Result<String> { row.get(i) };
    let bad = |i: usize| format!("column {i}");
    let at_ms: i64 = row.get(1)?;
    Ok(Entry {
        seq: row.get(0)?,
        at: crate::clock::rfc3339(crate::clock::from_millis(at_ms)),
        at_ms,
        twin: row.get(2)?,
        connection: row.get(3)?,
        local_key: row.get(4)?,
        remote_key: row.get(5)?,
        event: row.get(6)?,
        direction: row.get(7)?,
        reason: row.get(8)?,
        hop: row.get(9)?,
        outcome: row.get(10)?,
        note: row.get(11)?,
        processor: row.get(12)?,
        processor_sha256: row.get(13)?,
        changes: serde_json::from_str(&json(14)?).with_context(|| bad(14))?,
        comments: serde_json::from_str(&json(15)?).with_context(|| bad(15))?,
    })
}

/// Events finished per minute (entries with outcome `done`) for the `minutes` minutes
/// before `now_ms`, oldest first, per connection when `connection` is given.
pub fn per_minute(
    db: &dyn Sql,
    connection: Option<&str>,
    now_ms: i64,
    minutes: usize,
) -> Result<Vec<u64>> {
    let start = now_ms - (minutes as i64) * 60_000;
    let mut counts = vec![0u64; minutes];
    let rows = db.rows(
        "SELECT (at - ?1) / 60000, count(*) FROM history
         WHERE at >= ?1 AND at < ?2 AND outcome = 'done' AND (CAST(?3 AS TEXT) IS NULL OR connection = ?3)
         GROUP BY 1",
        args![start, now_ms, connection],
        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
    )?;
    for (minute, count) in rows {
        if let Some(slot) = usize::try_from(minute).ok().and_then(|m| counts.get_mut(m)) {
            *slot = count.max(0) as u64;
        }
    }
    Ok(counts)
}

/// The time of the last entry with outcome `done` per connection and direction.
pub fn last_done(db: &dyn Sql, connection: &str, direction: &str) -> Result<Option<i64>> {
    db.value(
        "SELECT at FROM history WHERE connection = ?1 AND direction = ?2 AND outcome = 'done'
         ORDER BY at DESC LIMIT 1",
        args![connection, direction],
    )
}

/// Delete up to `limit` entries written before `before_ms`; how many went.
pub fn forget(db: &dyn Sql, before_ms: i64, limit: usize) -> Result<usize> {
    db.execute(
        "DELETE FROM history WHERE seq IN (SELECT seq FROM history WHERE at < ?1 LIMIT ?2)",
        args![before_ms, limit],
    )
}
