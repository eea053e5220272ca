//! Twin links and the replicas remembered for each twin.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, Row, params};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::fields::FieldStamps;
use crate::model::{Issue, Replica};

/// One local issue synced with one remote issue over one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Twin {
    pub twin_id: String,
    pub connection: String,
    pub local_key: String,
    pub remote_key: Option<String>,
    /// Number of the last message this side sent for the twin.
    pub sent_seq: i64,
    /// The first replica this side sent: `previous` until something is received.
    pub exalate_replica: Option<Replica>,
    pub last_sent: Option<Replica>,
    pub last_received: Option<Replica>,
    /// The local issue as it was after the last sync: the base of a three-way merge.
    pub local_base: Option<Issue>,
    /// The stamps sent with `last_sent`.
    pub sent_stamps: FieldStamps,
    /// Which write each field of the local issue comes from (kept per issue).
    pub local_stamps: FieldStamps,
    /// The local issue as `local_stamps` describe it: a field that differs from it now was
    /// written locally since (kept per issue).
    pub stamped: Option<Issue>,
    /// When each field of the last replica received got its value, at its origin.
    pub remote_stamps: FieldStamps,
}

impl Twin {
    /// A twin as the receiving side first records it.
    pub fn received(
        twin_id: String,
        connection: String,
        local_key: String,
        remote_key: String,
    ) -> Twin {
        Twin {
            twin_id,
            connection,
            local_key,
            remote_key: Some(remote_key),
            sent_seq: 0,
            exalate_replica: None,
            last_sent: None,
            last_received: None,
            local_base: None,
            local_stamps: FieldStamps::new(),
            sent_stamps: FieldStamps::new(),
            stamped: None,
            remote_stamps: FieldStamps::new(),
        }
    }

    /// What the incoming processor gets as `previous`: the last replica received, or before
    /// anything was received, the replica this side exalated the issue with.
    pub fn previous(&self) -> Option<&Replica> {
        self.last_received
            .as_ref()
            .or(self.exalate_replica.as_ref())
    }
}

// The exalate replica is only read while nothing was received: it is `previous` until then.
const COLUMNS: &str =
    "twins.twin_id, twins.connection, twins.local_key, twins.remote_key, twins.sent_seq,
    CASE WHEN twins.last_received IS NULL THEN twins.exalate_replica END, twins.last_sent,
    twins.last_received, twins.local_base, issue_stamps.stamps,
    twins.remote_stamps, issue_stamps.stamped, twins.sent_stamps";
/// Twins with the field stamps of their local issue.
const FROM: &str = "twins LEFT JOIN issue_stamps ON issue_stamps.local_key = twins.local_key";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Twin> {
    Ok(Twin {
        twin_id: row.get(0)?,
        connection: row.get(1)?,
        local_key: row.get(2)?,
        remote_key: row.get(3)?,
        sent_seq: row.get(4)?,
        exalate_replica: json(row, 5)?,
        last_sent: json(row, 6)?,
        last_received: json(row, 7)?,
        local_base: json(row, 8)?,
        local_stamps: json(row, 9)?.unwrap_or_default(),
        remote_stamps: json(row, 10)?.unwrap_or_default(),
        stamped: json(row, 11)?,
        sent_stamps: json(row, 12)?.unwrap_or_default(),
    })
}

fn json<T: DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })
    })
    .transpose()
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("replicas and stamps always encode to JSON")
}

pub fn get(db: &Connection, twin_id: &str) -> Result<Option<Twin>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE twins.twin_id = ?1");
    Ok(db
        .prepare_cached(&sql)?
        .query_row([twin_id], from_row)
        .optional()?)
}

pub fn by_local_key(db: &Connection, connection: &str, local_key: &str) -> Result<Option<Twin>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE twins.connection = ?1 AND twins.local_key = ?2"
    );
    Ok(db
        .prepare_cached(&sql)?
        .query_row([connection, local_key], from_row)
        .optional()?)
}

/// The twins of a local issue, one per connection it is synced on, as (twin id,
/// connection): what is needed to queue events for them, without reading their replicas.
pub fn of_issue(db: &Connection, local_key: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = db.prepare_cached(
        "SELECT twin_id, connection FROM twins WHERE local_key = ?1 ORDER BY connection",
    )?;
    let rows = stmt.query_map([local_key], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The local issue of a twin, if the twin exists.
pub fn local_key(db: &Connection, twin_id: &str) -> Result<Option<String>> {
    Ok(db
        .prepare_cached("SELECT local_key FROM twins WHERE twin_id = ?1")?
        .query_row([twin_id], |r| r.get(0))
        .optional()?)
}

pub fn local_key_for_remote(
    db: &Connection,
    connection: &str,
    remote_key: &str,
) -> Result<Option<String>> {
    Ok(db
        .prepare_cached("SELECT local_key FROM twins WHERE connection = ?1 AND remote_key = ?2")?
        .query_row([connection, remote_key], |r| r.get(0))
        .optional()?)
}

pub fn list(db: &Connection) -> Result<Vec<Twin>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} ORDER BY twins.connection, twins.local_key");
    let mut stmt = db.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Up to `limit` twins after `after` (a twin id) in id order: the next page of a walk over
/// every twin that holds one page in memory at a time, however many twins there are.
pub fn page(db: &Connection, after: Option<&str>, limit: usize) -> Result<Vec<Twin>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE ?1 IS NULL OR twins.twin_id > ?1 ORDER BY twins.twin_id LIMIT ?2"
        )
    });
    let mut stmt = db.prepare_cached(&SQL)?;
    let rows = stmt.query_map(params![after, limit as i64], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A twin as listed: its link, without its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub twin_id: String,
    pub connection: String,
    pub local_key: String,
    pub remote_key: Option<String>,
    pub sent_seq: i64,
}

/// [`page`] without the replicas: what listing twins needs, a few hundred bytes a twin.
pub fn listed_page(db: &Connection, after: Option<&str>, limit: usize) -> Result<Vec<Listed>> {
    let mut stmt = db.prepare_cached(
        "SELECT twin_id, connection, local_key, remote_key, sent_seq FROM twins
         WHERE ?1 IS NULL OR twin_id > ?1 ORDER BY twin_id LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![after, limit], |r| {
        Ok(Listed {
            twin_id: r.get(0)?,
            connection: r.get(1)?,
            local_key: r.get(2)?,
            remote_key: r.get(3)?,
            sent_seq: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Start a twin on the exalating side: nothing sent or received yet.
pub fn insert(
    db: &Connection,
    twin_id: &str,
    connection: &str,
    local_key: &str,
    now_ms: i64,
) -> Result<()> {
    db.prepare_cached(
        "INSERT INTO twins (twin_id, connection, local_key, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![twin_id, connection, local_key, now_ms])?;
    Ok(())
}

/// Remember a replica sent as message `seq`, with its stamps; the first one sent is also
/// the exalate replica.
pub fn record_sent(
    db: &Connection,
    twin_id: &str,
    seq: i64,
    replica: &Replica,
    stamps: &FieldStamps,
) -> Result<()> {
    let replica = to_json(replica);
    db.prepare_cached(
        "UPDATE twins SET sent_seq = ?2, last_sent = ?3, exalate_replica = coalesce(exalate_replica, ?3),
            sent_stamps = ?4
         WHERE twin_id = ?1",
    )?
    .execute(params![twin_id, seq, replica, to_json(stamps)])?;
    Ok(())
}

/// Remember the local issue as synced now, with the stamps of its fields.
pub fn record_local(
    db: &Connection,
    twin_id: &str,
    local: &Issue,
    stamps: &FieldStamps,
) -> Result<()> {
    db.prepare_cached("UPDATE twins SET local_base = ?2 WHERE twin_id = ?1")?
        .execute(params![twin_id, to_json(local)])?;
    if let Some(key) = &local.key {
        record_stamps(db, key, stamps, local)?;
    }
    Ok(())
}

/// Replace the stamps of local issue `local_key`, and the issue as they describe it.
pub fn restamp(
    db: &Connection,
    local_key: &str,
    stamps: &FieldStamps,
    stamped: &Issue,
) -> Result<()> {
    record_stamps(db, local_key, stamps, stamped)
}

fn record_stamps(
    db: &Connection,
    local_key: &str,
    stamps: &FieldStamps,
    stamped: &Issue,
) -> Result<()> {
    db.prepare_cached(
        "INSERT INTO issue_stamps (local_key, stamps, stamped) VALUES (?1, ?2, ?3)
         ON CONFLICT (local_key) DO UPDATE SET stamps = excluded.stamps, stamped = excluded.stamped",
    )?
    .execute(params![local_key, to_json(stamps), to_json(stamped)])?;
    Ok(())
}

/// Remember a replica received and the local issue it led to, creating the twin on first
/// sync.
pub fn record_received(
    db: &Connection,
    twin: &Twin,
    replica: &Replica,
    local: &Issue,
    now_ms: i64,
) -> Result<()> {
    let changed = db.prepare_cached(
        "INSERT INTO twins (twin_id, connection, local_key, remote_key, last_received, local_base,
            remote_stamps, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (twin_id) DO UPDATE SET
            local_key = excluded.local_key,
            remote_key = excluded.remote_key,
            last_received = excluded.last_received,
            local_base = excluded.local_base,
            remote_stamps = excluded.remote_stamps
         WHERE twins.connection = excluded.connection",
    )?
    .execute(params![
        twin.twin_id,
        twin.connection,
        twin.local_key,
        twin.remote_key,
        to_json(replica),
        to_json(local),
        to_json(&twin.remote_stamps),
        now_ms
    ])?;
    if changed == 0 {
        // Checked when the message arrived and again before processing: never reached.
        anyhow::bail!(
            "twin {} belongs to another connection than `{}`",
            twin.twin_id,
            twin.connection
        );
    }
    record_stamps(db, &twin.local_key, &twin.local_stamps, local)
}

/// Forget a twin of `connection`: both issues stay, the link goes, and a tombstone
/// remembers it so that messages still on their way are ignored. Returns whether the twin
/// was under sync. A twin of another connection is left alone.
pub fn unexalate(db: &Connection, connection: &str, twin_id: &str, now_ms: i64) -> Result<bool> {
    db.prepare_cached(
        "INSERT OR IGNORE INTO unexalated (twin_id, connection, local_key, remote_key, at)
         SELECT twin_id, connection, local_key, remote_key, ?2 FROM twins
         WHERE twin_id = ?1 AND connection = ?3",
    )?
    .execute(params![twin_id, now_ms, connection])?;
    Ok(db
        .prepare_cached("DELETE FROM twins WHERE twin_id = ?1 AND connection = ?2")?
        .execute([twin_id, connection])?
        > 0)
}

/// Whether a twin of `connection` was unexalated on this node.
pub fn is_unexalated(db: &Connection, connection: &str, twin_id: &str) -> Result<bool> {
    Ok(db
        .prepare_cached("SELECT 1 FROM unexalated WHERE twin_id = ?1 AND connection = ?2")?
        .query_row([twin_id, connection], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The connections a twin id is known on: as a twin, an unexalated twin, or the twin of a
/// received message. (Normally one; never more, since a peer may only name twins of its
/// own connection.)
pub fn connections_of(db: &Connection, twin_id: &str) -> Result<Vec<String>> {
    let mut stmt = db.prepare_cached(
        "SELECT connection FROM twins WHERE twin_id = ?1
         UNION SELECT connection FROM unexalated WHERE twin_id = ?1
         UNION SELECT connection FROM events WHERE twin_id = ?1 AND direction = 'incoming'",
    )?;
    let rows = stmt.query_map([twin_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
