//! What the console reads that the operator commands do not: pages of events and twins,
//! with filters. Plain SQL over the node's database, read-only.

use anyhow::Result;

use crate::store::sql::{Sql, args};

/// An event as the queue page lists it.
pub struct EventRow {
    pub id: String,
    pub direction: String,
    pub connection: String,
    pub twin: String,
    pub local_key: Option<String>,
    pub reason: String,
    pub hop: i64,
    pub state: String,
    pub attempts: i64,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub first_attempt_at: Option<i64>,
}

/// Which events to list; empty strings are no filter.
#[derive(Default, serde::Deserialize)]
pub struct EventFilter {
    #[serde(default)]
    pub connection: String,
    #[serde(default)]
    pub twin: String,
    /// `open` (pending and failed: the default), `pending`, `failed`, `done`, `skipped` or `all`.
    #[serde(default)]
    pub state: String,
    /// An event id, a twin id, or an issue key on either side.
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub page: usize,
}

/// `None` for an empty filter value.
fn opt(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

/// A page of events (and whether there are more), newest first.
pub fn events(db: &dyn Sql, filter: &EventFilter, size: usize) -> Result<(Vec<EventRow>, bool)> {
    // The states are the program's own words, not the filter's: written into the statement
    // (one cached statement per choice).
    let states = match filter.state.as_str() {
        "" | "open" => "e.state IN ('pending', 'failed')",
        // (Every state there is: no condition, and the newest events are read first.)
        "all" => "TRUE",
        "pending" => "e.state = 'pending'",
        "failed" => "e.state = 'failed'",
        "done" => "e.state = 'done'",
        "skipped" => "e.state = 'skipped'",
        other => anyhow::bail!("unknown state `{other}`"),
    };
    let sql = format!(
        "SELECT e.id, e.direction, e.connection, e.twin_id, t.local_key, e.reason, e.hop, e.state,
                e.attempts, e.error_kind, e.error, e.created_at, e.next_attempt_at, e.first_attempt_at
         FROM events e LEFT JOIN twins t ON t.twin_id = e.twin_id
         WHERE {states}
           AND (CAST(?1 AS TEXT) IS NULL OR e.connection = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR e.twin_id = ?2)
           AND (CAST(?3 AS TEXT) IS NULL OR e.id = ?3 OR e.twin_id = ?3 OR e.twin_id IN
                (SELECT twin_id FROM twins WHERE local_key = ?3 OR remote_key = ?3))
         ORDER BY e.seq DESC LIMIT ?4 OFFSET ?5"
    );
    let offset = filter.page.saturating_mul(size);
    let mut rows = db.rows(
        &sql,
        args![
            opt(&filter.connection),
            opt(&filter.twin),
            opt(&filter.key),
            size.saturating_add(1),
            offset
        ],
        |r| {
            Ok(EventRow {
                id: r.get(0)?,
                direction: r.get(1)?,
                connection: r.get(2)?,
                twin: r.get(3)?,
                local_key: r.get(4)?,
                reason: r.get(5)?,
                hop: r.get(6)?,
                state: r.get(7)?,
                attempts: r.get(8)?,
                error_kind: r.get(9)?,
                error: r.get(10)?,
                created_at: r.get(11)?,
                next_attempt_at: r.get(12)?,
                first_attempt_at: r.get(13)?,
            })
        },
    )?;
    let more = rows.len() > size;
    rows.truncate(size);
    Ok((rows, more))
}

/// A twin as the twins page lists it.
pub struct TwinRow {
    pub twin: String,
    pub connection: String,
    pub local_key: String,
    pub remote_key: Option<String>,
    pub created_at: i64,
}

/// A page of twins whose id or key (either side) starts with `key`, by local key.
pub fn twins(db: &dyn Sql, key: &str, page: usize, size: usize) -> Result<(Vec<TwinRow>, bool)> {
    let prefix = opt(key).map(|k| {
        let escaped = k
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("{escaped}%")
    });
    // Case-insensitive, as SQLite's LIKE is for ASCII and PostgreSQL's is not.
    let mut rows = db.rows(
        "SELECT twin_id, connection, local_key, remote_key, created_at FROM twins
         WHERE CAST(?1 AS TEXT) IS NULL
               OR lower(local_key) LIKE lower(?1) ESCAPE '\\'
               OR lower(remote_key) LIKE lower(?1) ESCAPE '\\'
               OR lower(twin_id) LIKE lower(?1) ESCAPE '\\'
         ORDER BY local_key, connection LIMIT ?2 OFFSET ?3",
        args![
            prefix.as_ref(),
            size.saturating_add(1),
            page.saturating_mul(size)
        ],
        |r| {
            Ok(TwinRow {
                twin: r.get(0)?,
                connection: r.get(1)?,
                local_key: r.get(2)?,
                remote_key: r.get(3)?,
                created_at: r.get(4)?,
            })
        },
    )?;
    let more = rows.len() > size;
    rows.truncate(size);
    Ok((rows, more))
}

/// Events of a connection waiting to retry after a passing failure (a tracker or the
/// other node unavailable).
pub fn retrying(db: &dyn Sql, connection: &str) -> Result<i64> {
    db.one(
        "SELECT count(*) FROM events
         WHERE state = 'pending' AND error_kind IS NOT NULL AND connection = ?1",
        args![connection],
    )
}

/// Open conflicts per connection.
pub fn open_conflicts(db: &dyn Sql, connection: &str) -> Result<i64> {
    db.one(
        "SELECT count(*) FROM conflicts WHERE resolved_at IS NULL AND connection = ?1",
        args![connection],
    )
}

/// One page of a list held in memory, and whether there are more.
pub fn page_of<T>(mut all: Vec<T>, page: usize, size: usize) -> (Vec<T>, bool) {
    let start = page.saturating_mul(size).min(all.len());
    let more = all.len() > start + size;
    all.truncate((start + size).min(all.len()));
    (all.split_off(start), more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_a_list() {
        assert_eq!(page_of(vec![1, 2, 3, 4, 5], 0, 2), (vec![1, 2], true));
        assert_eq!(page_of(vec![1, 2, 3, 4, 5], 2, 2), (vec![5], false));
        assert_eq!(page_of(vec![1, 2, 3, 4], 1, 2), (vec![3, 4], false));
        assert_eq!(page_of(vec![1], 9, 2), (Vec::<i32>::new(), false));
    }

    #[test]
    fn twins_are_found_by_a_prefix_of_any_key_in_any_case_and_events_by_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::NodeStore::open(&dir.path().join("node.db")).unwrap();
        store
            .write(|tx| {
                for (twin, key) in [("t1", "PROJ-1"), ("t2", "PROJ-12"), ("t3", "OTHER-3")] {
                    crate::store::twins::insert(tx, twin, "c", key, 5)?;
                }
                for (id, twin, state) in [("e1", "t1", "done"), ("e2", "t1", "failed")] {
                    Sql::execute(
                        tx,
                        "INSERT INTO events (id, direction, connection, twin_id, reason, state,
                            created_at)
                         VALUES (?1, 'outgoing', 'c', ?2, 'local-change', ?3, 5)",
                        args![id, twin, state],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        store
            .read(|db| {
                let keys = |key: &str, page: usize, size: usize| -> Result<(Vec<String>, bool)> {
                    let (rows, more) = twins(db, key, page, size)?;
                    Ok((rows.into_iter().map(|r| r.local_key).collect(), more))
                };
                // The key in another case, as SQLite's LIKE has always matched it.
                assert_eq!(
                    keys("proj-1", 0, 10)?,
                    (vec!["PROJ-1".into(), "PROJ-12".into()], false)
                );
                assert_eq!(keys("T3", 0, 10)?, (vec!["OTHER-3".into()], false));
                // `_` and `%` are themselves, not wildcards.
                assert_eq!(keys("PROJ_", 0, 10)?, (vec![], false));
                assert_eq!(keys("%", 0, 10)?, (vec![], false));
                assert_eq!(keys(" ", 1, 2)?, (vec!["PROJ-12".into()], false));
                assert_eq!(
                    keys("", 0, 2)?,
                    (vec!["OTHER-3".into(), "PROJ-1".into()], true)
                );

                let ids = |state: &str, key: &str| -> Result<Vec<String>> {
                    let filter = EventFilter {
                        state: state.into(),
                        key: key.into(),
                        ..EventFilter::default()
                    };
                    Ok(events(db, &filter, 10)?
                        .0
                        .into_iter()
                        .map(|e| e.id)
                        .collect())
                };
                assert_eq!(ids("", "")?, ["e2"]);
                assert_eq!(ids("done", "")?, ["e1"]);
                assert_eq!(ids("all", "PROJ-1")?, ["e2", "e1"]);
                assert!(ids("all", "PROJ-12")?.is_empty());
                assert!(ids("skipped", "")?.is_empty());
                assert!(ids("gone", "").is_err());
                Ok(())
            })
            .unwrap();
    }
}
