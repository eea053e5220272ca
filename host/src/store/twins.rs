//! Twin links and the replicas remembered for each twin.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::fields::FieldStamps;
use crate::model::{Issue, Replica};

use super::bodies::{self, Packed};
use super::sql::{Dialect, Row, Sql, Value, args};

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
    /// Who wrote the issue's stamps last, if an outgoing event for a local change did and
    /// nothing has written them since: that event's twin and its processor's fingerprint.
    /// It read the issue as `stamped` (kept per issue; see `outgoing::read_already`).
    pub stamped_by: Option<String>,
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
            stamped_by: None,
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

/// The columns `from_row` reads, given the expressions of the exalate replica and the
/// merge base.
macro_rules! columns {
    ($exalate_replica:literal, $local_base:literal) => {
        concat!(
            "twins.twin_id, twins.connection, twins.local_key, twins.remote_key, twins.sent_seq, ",
            $exalate_replica,
            ", twins.last_sent, twins.last_received, ",
            $local_base,
            ", issue_stamps.stamps, twins.remote_stamps, issue_stamps.stamped, twins.sent_stamps, ",
            "issue_stamps.stamped_by"
        )
    };
}
// The exalate replica is only read while nothing was received: it is `previous` until then.
const COLUMNS: &str = columns!(
    "CASE WHEN twins.last_received IS NULL THEN twins.exalate_replica END",
    "twins.local_base"
);
/// The same columns for an outgoing event: sending reads neither the replica this side
/// exalated with nor the merge base, each an issue of up to kilobytes of JSON to decode.
const COLUMNS_TO_SEND: &str = columns!("NULL", "NULL");
/// Twins with the field stamps of their local issue.
const FROM: &str = "twins LEFT JOIN issue_stamps ON issue_stamps.local_key = twins.local_key";

fn from_row(row: &dyn Row) -> Result<Twin> {
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
        stamped_by: row.get(13)?,
    })
}

fn json<T: DeserializeOwned>(row: &dyn Row, index: usize) -> Result<Option<T>> {
    // Decoded from the row's own text, not from a copy of it: a twin's columns are
    // kilobytes, and every event reads its twin.
    let value = row.value(index)?;
    let decoded = match value {
        Value::Null => return Ok(None),
        Value::Text(text) => serde_json::from_str(text),
        Value::Blob(_) => {
            let text = bodies::unpack(value)
                .with_context(|| format!("column {index}"))?
                .expect("a BLOB unpacks to text");
            serde_json::from_str(&text)
        }
        other => bail!("column {index} holds {}, not JSON", other.kind()),
    };
    decoded.map(Some).with_context(|| format!("column {index}"))
}

/// `value` as JSON, as the twin's row stores it: compressed on SQLite (see [`bodies::pack`]).
/// A twin's replicas, merge base and stamps are kilobytes of JSON, rewritten whole by every
/// event of the twin together with its issue's stamps; as text they overflowed into pages of
/// their own, each written to the log again on every event (about 17 KiB a twin for an
/// issue of 20 comments).
fn pack<T: Serialize>(dialect: Dialect, value: &T) -> Result<Packed> {
    let json = serde_json::to_string(value).expect("replicas and stamps always encode to JSON");
    bodies::pack(dialect, &json)
}

pub fn get(db: &dyn Sql, twin_id: &str) -> Result<Option<Twin>> {
    // Formatted once: every event reads its twin.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {COLUMNS} FROM {FROM} WHERE twins.twin_id = ?1")
    });
    db.row(&SQL, args![twin_id], from_row)
}

/// Twin `twin_id` as an outgoing event reads it: without `exalate_replica` and
/// `local_base` (both `None`), which sending does not use.
pub fn get_to_send(db: &dyn Sql, twin_id: &str) -> Result<Option<Twin>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {COLUMNS_TO_SEND} FROM {FROM} WHERE twins.twin_id = ?1")
    });
    db.row(&SQL, args![twin_id], from_row)
}

pub fn by_local_key(db: &dyn Sql, connection: &str, local_key: &str) -> Result<Option<Twin>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE twins.connection = ?1 AND twins.local_key = ?2"
    );
    db.row(&sql, args![connection, local_key], from_row)
}

/// The twins of a local issue, one per connection it is synced on, as (twin id,
/// connection): what is needed to queue events for them, without reading their replicas.
pub fn of_issue(db: &dyn Sql, local_key: &str) -> Result<Vec<(String, String)>> {
    let mut twins: Vec<(String, String)> = db.rows(
        "SELECT twin_id, connection FROM twins WHERE local_key = ?1",
        args![local_key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    // Sorted here, not by `ORDER BY connection`: the index holds only the key, so SQLite
    // would open a sorter for the one or two rows of every event.
    twins.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(twins)
}

/// The local issue of a twin, if the twin exists.
pub fn local_key(db: &dyn Sql, twin_id: &str) -> Result<Option<String>> {
    db.value(
        "SELECT local_key FROM twins WHERE twin_id = ?1",
        args![twin_id],
    )
}

pub fn local_key_for_remote(
    db: &dyn Sql,
    connection: &str,
    remote_key: &str,
) -> Result<Option<String>> {
    db.value(
        "SELECT local_key FROM twins WHERE connection = ?1 AND remote_key = ?2",
        args![connection, remote_key],
    )
}

pub fn list(db: &dyn Sql) -> Result<Vec<Twin>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} ORDER BY twins.connection, twins.local_key");
    db.rows(&sql, &[], from_row)
}

/// Up to `limit` twins after `after` (a twin id) in id order: the next page of a walk over
/// every twin that holds one page in memory at a time, however many twins there are.
pub fn page(db: &dyn Sql, after: Option<&str>, limit: usize) -> Result<Vec<Twin>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE CAST(?1 AS TEXT) IS NULL OR twins.twin_id > ?1 ORDER BY twins.twin_id LIMIT ?2"
        )
    });
    db.rows(&SQL, args![after, limit], from_row)
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
pub fn listed_page(db: &dyn Sql, after: Option<&str>, limit: usize) -> Result<Vec<Listed>> {
    db.rows(
        "SELECT twin_id, connection, local_key, remote_key, sent_seq FROM twins
         WHERE CAST(?1 AS TEXT) IS NULL OR twin_id > ?1 ORDER BY twin_id LIMIT ?2",
        args![after, limit],
        |r| {
            Ok(Listed {
                twin_id: r.get(0)?,
                connection: r.get(1)?,
                local_key: r.get(2)?,
                remote_key: r.get(3)?,
                sent_seq: r.get(4)?,
            })
        },
    )
}

/// Start a twin on the exalating side: nothing sent or received yet.
pub fn insert(
    db: &dyn Sql,
    twin_id: &str,
    connection: &str,
    local_key: &str,
    now_ms: i64,
) -> Result<()> {
    db.execute(
        "INSERT INTO twins (twin_id, connection, local_key, created_at) VALUES (?1, ?2, ?3, ?4)",
        args![twin_id, connection, local_key, now_ms],
    )?;
    Ok(())
}

/// What an outgoing event leaves of its twin: the local issue as synced now with the
/// stamps of its fields, and the replica sent, if one was. Encoded and packed by the worker
/// that prepared the event, before the commit's transaction, which holds the node's write
/// lock (as [`bodies::pack`] asks).
#[derive(Debug, Clone)]
pub struct Outgoing {
    local_key: Option<String>,
    local: Packed,
    stamps: Packed,
    /// The message's number for the twin, and the replica it carries.
    sent: Option<(i64, Packed)>,
    /// Who read the issue, if the event was queued for a local change (see
    /// [`Twin::stamped_by`]).
    read_by: Option<String>,
}

impl Outgoing {
    pub fn pack(
        dialect: Dialect,
        local: &Issue,
        stamps: &FieldStamps,
        sent: Option<(i64, &Replica)>,
        read_by: Option<String>,
    ) -> Result<Outgoing> {
        Ok(Outgoing {
            read_by,
            local_key: local.key.clone(),
            local: pack(dialect, local)?,
            stamps: pack(dialect, stamps)?,
            sent: match sent {
                Some((seq, replica)) => Some((seq, pack(dialect, replica)?)),
                None => None,
            },
        })
    }
}

/// Remember what an outgoing event leaves of twin `twin_id`: a replica sent (the first one
/// sent is also the exalate replica) with its stamps, and the local issue as synced now,
/// in one UPDATE of the twin.
pub fn record_outgoing(db: &dyn Sql, twin_id: &str, outgoing: &Outgoing) -> Result<()> {
    let Outgoing {
        local_key,
        local,
        stamps,
        sent,
        read_by,
    } = outgoing;
    match sent {
        Some((seq, replica)) => db.execute(
            "UPDATE twins SET sent_seq = ?2, last_sent = ?3,
                exalate_replica = coalesce(exalate_replica, ?3), sent_stamps = ?4, local_base = ?5
             WHERE twin_id = ?1",
            args![
                twin_id,
                *seq,
                replica.value(),
                stamps.value(),
                local.value()
            ],
        )?,
        None => db.execute(
            "UPDATE twins SET local_base = ?2 WHERE twin_id = ?1",
            args![twin_id, local.value()],
        )?,
    };
    match local_key {
        Some(key) => record_stamps(db, key, stamps, local, read_by.as_deref()),
        None => Ok(()),
    }
}

/// `stamps` and `stamped`, packed, written by an outgoing event for a local change
/// (`stamped_by`: who read the issue, see [`Twin::stamped_by`]) or by anything else (`None`).
fn record_stamps(
    db: &dyn Sql,
    local_key: &str,
    stamps: &Packed,
    stamped: &Packed,
    stamped_by: Option<&str>,
) -> Result<()> {
    db.execute(
        "INSERT INTO issue_stamps (local_key, stamps, stamped, stamped_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (local_key) DO UPDATE
         SET stamps = excluded.stamps, stamped = excluded.stamped, stamped_by = excluded.stamped_by",
        args![local_key, stamps.value(), stamped.value(), stamped_by],
    )?;
    Ok(())
}

/// What an incoming event leaves of its twin: the replica received, the local issue it led
/// to, and the stamps of both. Packed before the commit's transaction, as [`Outgoing`] is.
#[derive(Debug, Clone)]
pub struct Received {
    replica: Packed,
    local: Packed,
    remote_stamps: Packed,
    local_stamps: Packed,
}

impl Received {
    /// `twin` as the event leaves it: its keys and the stamps of both sides.
    pub fn pack(
        dialect: Dialect,
        twin: &Twin,
        replica: &Replica,
        local: &Issue,
    ) -> Result<Received> {
        Ok(Received {
            replica: pack(dialect, replica)?,
            local: pack(dialect, local)?,
            remote_stamps: pack(dialect, &twin.remote_stamps)?,
            local_stamps: pack(dialect, &twin.local_stamps)?,
        })
    }
}

/// Remember a replica received and the local issue it led to (`received`, packed from
/// `twin`), creating the twin on first sync.
///
/// The keys are written only when they change: setting an indexed column, even to the value
/// it holds, makes SQLite delete and insert the row's entry in each index on it (three on
/// `twins`), at random places in those indexes, on every incoming event.
pub fn record_received(db: &dyn Sql, twin: &Twin, received: &Received, now_ms: i64) -> Result<()> {
    let Received {
        replica,
        local,
        remote_stamps,
        local_stamps,
    } = received;
    let updated = db.execute(
        "UPDATE twins SET last_received = ?3, local_base = ?4, remote_stamps = ?5
         WHERE twin_id = ?1 AND connection = ?2",
        args![
            &twin.twin_id,
            &twin.connection,
            replica.value(),
            local.value(),
            remote_stamps.value()
        ],
    )?;
    let recorded = if updated > 0 {
        db.execute(
            "UPDATE twins SET local_key = ?2, remote_key = ?3
             WHERE twin_id = ?1
               AND (local_key IS DISTINCT FROM ?2 OR remote_key IS DISTINCT FROM ?3)",
            args![&twin.twin_id, &twin.local_key, twin.remote_key.as_deref()],
        )?;
        true
    } else {
        db.execute(
            "INSERT INTO twins (twin_id, connection, local_key, remote_key, last_received,
                local_base, remote_stamps, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (twin_id) DO NOTHING",
            args![
                &twin.twin_id,
                &twin.connection,
                &twin.local_key,
                twin.remote_key.as_deref(),
                replica.value(),
                local.value(),
                remote_stamps.value(),
                now_ms
            ],
        )? > 0
    };
    if !recorded {
        // Checked when the message arrived and again before processing: never reached.
        anyhow::bail!(
            "twin {} belongs to another connection than `{}`",
            twin.twin_id,
            twin.connection
        );
    }
    record_stamps(db, &twin.local_key, local_stamps, local, None)
}

/// Forget a twin of `connection`: both issues stay, the link goes, and a tombstone
/// remembers it so that messages still on their way are ignored. Returns whether the twin
/// was under sync. A twin of another connection is left alone.
pub fn unexalate(db: &dyn Sql, connection: &str, twin_id: &str, now_ms: i64) -> Result<bool> {
    // (The WHERE also keeps SQLite from reading `ON CONFLICT` as the SELECT's join.)
    db.execute(
        "INSERT INTO unexalated (twin_id, connection, local_key, remote_key, at)
         SELECT twin_id, connection, local_key, remote_key, ?2 FROM twins
         WHERE twin_id = ?1 AND connection = ?3
         ON CONFLICT DO NOTHING",
        args![twin_id, now_ms, connection],
    )?;
    Ok(db.execute(
        "DELETE FROM twins WHERE twin_id = ?1 AND connection = ?2",
        args![twin_id, connection],
    )? > 0)
}

/// Whether a twin of `connection` was unexalated on this node.
pub fn is_unexalated(db: &dyn Sql, connection: &str, twin_id: &str) -> Result<bool> {
    db.exists(
        "SELECT 1 FROM unexalated WHERE twin_id = ?1 AND connection = ?2",
        args![twin_id, connection],
    )
}

/// Where a twin id is known, as seen from one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Nowhere yet: a new twin.
    Nowhere,
    /// On this connection only.
    Here,
    /// On another connection (a peer may only name twins of its own connection).
    Elsewhere,
}

/// Where the twin id is known, for a message on `connection`: as a twin, an unexalated
/// twin, or the twin of a received message.
pub fn known_on(db: &dyn Sql, twin_id: &str, connection: &str) -> Result<Known> {
    // `UNION ALL` under an aggregate: a plain `UNION` would remove duplicates through a
    // temporary table, made for every message received.
    let elsewhere: Option<i64> = db.one(
        "SELECT max(CASE WHEN connection = ?2 THEN 0 ELSE 1 END) FROM (
             SELECT connection FROM twins WHERE twin_id = ?1
             UNION ALL SELECT connection FROM unexalated WHERE twin_id = ?1
             UNION ALL SELECT connection FROM events WHERE twin_id = ?1 AND direction = 'incoming'
         ) AS known",
        args![twin_id, connection],
    )?;
    Ok(match elsewhere {
        None => Known::Nowhere,
        Some(0) => Known::Here,
        Some(_) => Known::Elsewhere,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`record_received`] of what it is given, packed as a worker packs it.
    fn received(
        tx: &dyn Sql,
        twin: &Twin,
        replica: &Replica,
        local: &Issue,
        now: i64,
    ) -> Result<()> {
        let state = Received::pack(tx.dialect(), twin, replica, local)?;
        record_received(tx, twin, &state, now)
    }

    /// [`record_outgoing`] of a replica sent as message `seq`.
    fn sent(
        tx: &dyn Sql,
        twin_id: &str,
        seq: i64,
        replica: &Replica,
        local: &Issue,
        stamps: &FieldStamps,
    ) -> Result<()> {
        let state = Outgoing::pack(tx.dialect(), local, stamps, Some((seq, replica)), None)?;
        record_outgoing(tx, twin_id, &state)
    }

    /// [`record_outgoing`] of an event that sent nothing.
    fn local_only(tx: &dyn Sql, twin_id: &str, local: &Issue, stamps: &FieldStamps) -> Result<()> {
        record_outgoing(
            tx,
            twin_id,
            &Outgoing::pack(tx.dialect(), local, stamps, None, None)?,
        )
    }

    #[test]
    fn a_received_replica_is_recorded_the_keys_only_when_they_change_and_never_on_another_connection()
     {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::NodeStore::open(&dir.path().join("node.db")).unwrap();
        let issue = |summary: &str| Issue {
            summary: summary.into(),
            ..Issue::default()
        };
        store
            .write(|tx| {
                let tx: &dyn Sql = tx;
                // First sync: the twin is made.
                let twin = Twin::received("t1".into(), "c".into(), "A-1".into(), "B-1".into());
                received(tx, &twin, &issue("one"), &issue("one, here"), 5)?;
                let got = get(tx, "t1")?.unwrap();
                assert_eq!(got.last_received.unwrap().summary, "one");
                assert_eq!(got.local_base.unwrap().summary, "one, here");
                // Again with the same keys: the replicas move on.
                received(tx, &twin, &issue("two"), &issue("two, here"), 6)?;
                let got = get(tx, "t1")?.unwrap();
                assert_eq!(got.last_received.unwrap().summary, "two");
                assert_eq!(got.local_base.unwrap().summary, "two, here");
                assert_eq!(of_issue(tx, "A-1")?, [("t1".to_string(), "c".to_string())]);
                // The other side moved its issue: the new key is found, the old one is not.
                let moved = Twin::received("t1".into(), "c".into(), "A-1".into(), "B-9".into());
                received(tx, &moved, &issue("three"), &issue("three, here"), 7)?;
                assert_eq!(
                    local_key_for_remote(tx, "c", "B-9")?.as_deref(),
                    Some("A-1")
                );
                assert_eq!(local_key_for_remote(tx, "c", "B-1")?, None);
                // Another connection's message for this twin is refused and changes nothing.
                let foreign = Twin::received("t1".into(), "d".into(), "A-7".into(), "B-7".into());
                let refused = received(tx, &foreign, &issue("x"), &issue("x"), 8);
                assert!(
                    refused
                        .unwrap_err()
                        .to_string()
                        .contains("another connection")
                );
                let got = get(tx, "t1")?.unwrap();
                assert_eq!(
                    (got.connection.as_str(), got.local_key.as_str()),
                    ("c", "A-1")
                );
                assert_eq!(got.last_received.unwrap().summary, "three");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_sent_replica_is_recorded_with_the_local_issue_and_only_the_first_is_the_exalate_replica() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::NodeStore::open(&dir.path().join("node.db")).unwrap();
        let issue = |summary: &str| Issue {
            key: Some("A-1".into()),
            summary: summary.into(),
            ..Issue::default()
        };
        let mut stamps = FieldStamps::default();
        crate::model::fields::stamp_write(&mut stamps, "summary", 5, "Here");
        store
            .write(|tx| {
                let tx: &dyn Sql = tx;
                insert(tx, "t1", "c", "A-1", 1)?;
                sent(tx, "t1", 1, &issue("one"), &issue("one, here"), &stamps)?;
                let got = get(tx, "t1")?.unwrap();
                assert_eq!(got.sent_seq, 1);
                assert_eq!(got.last_sent.unwrap().summary, "one");
                assert_eq!(got.exalate_replica.unwrap().summary, "one");
                assert_eq!(got.local_base.unwrap().summary, "one, here");
                assert_eq!(got.stamped.unwrap().summary, "one, here");
                assert_eq!(got.sent_stamps, stamps);
                assert_eq!(got.local_stamps, stamps);
                sent(tx, "t1", 2, &issue("two"), &issue("two, here"), &stamps)?;
                let got = get(tx, "t1")?.unwrap();
                assert_eq!(got.sent_seq, 2);
                assert_eq!(got.last_sent.unwrap().summary, "two");
                assert_eq!(got.exalate_replica.unwrap().summary, "one");
                assert_eq!(got.local_base.unwrap().summary, "two, here");
                // Nothing sent: the local issue alone moves on.
                local_only(tx, "t1", &issue("three, here"), &stamps)?;
                let got = get(tx, "t1")?.unwrap();
                assert_eq!(got.last_sent.unwrap().summary, "two");
                assert_eq!(got.local_base.unwrap().summary, "three, here");
                assert_eq!(got.stamped.unwrap().summary, "three, here");
                // As an outgoing event reads it: the same, but for the two it does not use.
                let whole = get(tx, "t1")?.unwrap();
                let to_send = get_to_send(tx, "t1")?.unwrap();
                assert_eq!(
                    to_send,
                    Twin {
                        exalate_replica: None,
                        local_base: None,
                        ..whole
                    }
                );
                Ok(())
            })
            .unwrap();
    }

    /// A twin's JSON is stored compressed on SQLite: a realistic twin's replica sent, merge
    /// base and stamps in under a page (as text, 11 KB). A twin an earlier version stored as
    /// text reads as it did, and what is written since is compressed (the exalate replica,
    /// written once, stays text).
    #[test]
    fn a_twin_is_stored_compressed_and_one_stored_as_text_reads_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::NodeStore::open(&dir.path().join("node.db")).unwrap();
        let mut local = crate::model::sample_issue(10, 20);
        local.key = Some("A-1".into());
        // Prose the dictionary was not trained on (it was on `sample_issue`'s own comments).
        let prose = [
            "The customer in Lyon says the invoice PDF renders blank on Safari 17.",
            "Reproduced on staging with account 4411; the font subset is missing from the bundle.",
            "Rolled back the asset pipeline change from Tuesday, still blank for them.",
            "Found it: the CDN strips the Content-Encoding header for woff2 files over 1 MB.",
            "Ops opened a ticket with the CDN vendor, reference CX-99812, ETA two business days.",
            "Workaround shipped: we inline the glyphs for invoices until the vendor fixes it.",
            "Customer confirmed the workaround works but the download is now 3.4 MB per invoice.",
            "Finance asks whether archived invoices from October need to be regenerated too.",
            "Checked the archive job; it renders lazily, so old invoices pick up the fix on open.",
            "QA found a regression in right-to-left languages: Hebrew invoices lose their alignment.",
            "Alignment fix merged in PR 2217, deploying with tonight's train at 22:00 CET.",
            "Deployed. Monitoring error rates on the render service for the next 24 hours.",
            "Error rate back to baseline 0.02%; keeping the ticket open until the vendor replies.",
            "Vendor replied: fix rolled out to all edge nodes, asks us to remove the workaround.",
            "Removed the inlined glyphs behind a flag, 10% of traffic first.",
            "No blank renders at 10%, raising to 50% tomorrow morning.",
            "At 50% since 09:00; one report from Oslo turned out to be an ad blocker.",
            "Full rollout done. Invoice size back to 180 KB on average.",
            "Writing the post-mortem; draft in the shared folder under 2026/incidents.",
            "Post-mortem reviewed, action items filed as SUP-51 to SUP-54. Closing after sign-off.",
        ];
        for (comment, body) in local.comments.iter_mut().zip(prose) {
            comment.body = body.into();
        }
        let mut stamps = FieldStamps::default();
        crate::model::fields::stamp_write(&mut stamps, "summary", 5, "Here");
        let stored = |tx: &dyn Sql| -> Result<(String, i64)> {
            Ok(tx
                .row(
                    "SELECT typeof(t.last_sent) || ' ' || typeof(t.local_base) || ' '
                            || typeof(t.sent_stamps) || ' ' || typeof(s.stamped) || ' '
                            || typeof(s.stamps),
                        length(CAST(t.last_sent AS BLOB)) + length(CAST(t.local_base AS BLOB))
                            + length(CAST(t.sent_stamps AS BLOB))
                     FROM twins t JOIN issue_stamps s ON s.local_key = t.local_key",
                    &[],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .unwrap())
        };
        store
            .write(|tx| {
                let tx: &dyn Sql = tx;
                insert(tx, "t1", "c", "A-1", 1)?;
                // As an earlier version stored it: text.
                tx.execute(
                    "UPDATE twins SET last_sent = ?2, exalate_replica = ?2, local_base = ?3,
                        sent_stamps = ?4 WHERE twin_id = ?1",
                    args![
                        "t1",
                        serde_json::to_string(&local)?.as_str(),
                        serde_json::to_string(&local)?.as_str(),
                        serde_json::to_string(&stamps)?.as_str()
                    ],
                )?;
                tx.execute(
                    "INSERT INTO issue_stamps (local_key, stamps, stamped) VALUES ('A-1', ?1, ?2)",
                    args![
                        serde_json::to_string(&stamps)?.as_str(),
                        serde_json::to_string(&local)?.as_str()
                    ],
                )?;
                let (types, text_bytes) = stored(tx)?;
                assert_eq!(types, "text text text text text");
                let got = get(tx, "t1")?.unwrap();
                assert_eq!(got.last_sent.as_ref(), Some(&local));
                assert_eq!(got.local_base.as_ref(), Some(&local));
                assert_eq!(got.stamped.as_ref(), Some(&local));
                assert_eq!(got.sent_stamps, stamps);
                assert_eq!(got.local_stamps, stamps);
                // Written now: compressed, and read back the same.
                sent(tx, "t1", 1, &local, &local, &stamps)?;
                let (types, packed_bytes) = stored(tx)?;
                assert_eq!(types, "blob blob blob blob blob");
                assert!(
                    packed_bytes * 3 < text_bytes && packed_bytes < 4096,
                    "{packed_bytes} bytes compressed, {text_bytes} as text"
                );
                let again = get(tx, "t1")?.unwrap();
                assert!(again == Twin { sent_seq: 1, ..got }, "read back otherwise");
                // The exalate replica is written once: text it stays, and reads as before.
                let exalate: String = tx.one("SELECT typeof(exalate_replica) FROM twins", &[])?;
                assert_eq!(exalate, "text");
                assert_eq!(again.exalate_replica.as_ref(), Some(&local));
                // What an incoming event writes is compressed too.
                let mut twin = Twin::received("t1".into(), "c".into(), "A-1".into(), "B-1".into());
                twin.remote_stamps = stamps.clone();
                received(tx, &twin, &local, &local, 2)?;
                let types: String = tx.one(
                    "SELECT typeof(last_received) || ' ' || typeof(remote_stamps) FROM twins",
                    &[],
                )?;
                assert_eq!(types, "blob blob");
                let again = get(tx, "t1")?.unwrap();
                assert_eq!(again.last_received.as_ref(), Some(&local));
                assert_eq!(again.remote_stamps, stamps);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn an_unexalated_twin_keeps_its_first_tombstone_and_other_connections_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::NodeStore::open(&dir.path().join("node.db")).unwrap();
        store
            .write(|tx| {
                let tx: &dyn Sql = tx;
                insert(tx, "t1", "c", "A-1", 5)?;
                assert!(
                    !unexalate(tx, "other", "t1", 6)?,
                    "not this connection's twin"
                );
                assert!(get(tx, "t1")?.is_some());
                assert!(unexalate(tx, "c", "t1", 7)?);
                assert!(is_unexalated(tx, "c", "t1")?);
                // Made again under the same id and unexalated again: the tombstone stays.
                insert(tx, "t1", "c", "A-2", 8)?;
                assert!(unexalate(tx, "c", "t1", 9)?);
                let tombstone: (String, i64) = tx
                    .row(
                        "SELECT local_key, at FROM unexalated WHERE twin_id = 't1'",
                        &[],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?
                    .unwrap();
                assert_eq!(tombstone, ("A-1".into(), 7));
                assert!(get(tx, "t1")?.is_none());
                assert_eq!(known_on(tx, "t1", "c")?, Known::Here);
                assert_eq!(known_on(tx, "t1", "d")?, Known::Elsewhere);
                assert_eq!(known_on(tx, "t2", "c")?, Known::Nowhere);
                // Known here and, from a message, on another connection too.
                tx.execute(
                    "INSERT INTO events (id, direction, connection, twin_id, reason, created_at)
                     VALUES ('m1', 'incoming', 'd', 't1', 'local-change', 10)",
                    &[],
                )?;
                assert_eq!(known_on(tx, "t1", "c")?, Known::Elsewhere);
                Ok(())
            })
            .unwrap();
    }
}
