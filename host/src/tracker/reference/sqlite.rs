//! The reference tracker's storage in one SQLite file (WAL). Several processes may open
//! the file; writes wait for each other (IMMEDIATE transactions).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::rows::{Rows, decode, encode};
use super::{Reference, ReferenceTracker, Storage};
use crate::clock::Clock;
use crate::model::Issue;
use crate::tracker::TrackerError;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS issues (
        key TEXT PRIMARY KEY,
        body TEXT NOT NULL             -- the issue as JSON
    );
    CREATE TABLE IF NOT EXISTS projects (
        project TEXT PRIMARY KEY,
        last_number INTEGER NOT NULL   -- keys are PROJECT-n
    );
    CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    -- The change feed: one row per write, with the sync event that made it, if any.
    CREATE TABLE IF NOT EXISTS changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        sync_event TEXT
    );
    -- Writes made for sync events, so that a repeated event changes nothing.
    CREATE TABLE IF NOT EXISTS sync_writes (
        event_id TEXT PRIMARY KEY,
        key TEXT NOT NULL
    );
";

/// The reference tracker's rows in a SQLite file.
pub struct Sqlite {
    db: Mutex<Connection>,
}

impl ReferenceTracker {
    /// Open (or create) the tracker in the SQLite file `path`, on the system clock; new
    /// issues without a project go to `project`, with keys `PROJECT-n`.
    pub fn new(path: &Path, project: &str) -> anyhow::Result<Self> {
        Self::open(path, project, Arc::new(crate::clock::SystemClock))
    }

    pub fn open(path: &Path, default_project: &str, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let db = crate::store::open_wal(path)?;
        db.execute_batch(SCHEMA)?;
        let storage = Sqlite { db: Mutex::new(db) };
        Ok(Reference::on(storage, default_project, clock))
    }
}

impl Sqlite {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for Sqlite {
    type Tx<'t> = Transaction<'t>;

    fn transaction<T>(
        &self,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T, TrackerError>,
    ) -> Result<T, TrackerError> {
        let mut db = self.lock();
        // IMMEDIATE: another process writing the same file waits (busy timeout) rather
        // than failing when this transaction's read turns into a write.
        let mut tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let done = work(&mut tx)?;
        tx.commit().map_err(unavailable)?;
        Ok(done)
    }

    fn load(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        load(&self.lock(), key)
    }

    fn list(&self) -> Result<Vec<Issue>, TrackerError> {
        let db = self.lock();
        let mut stmt = db
            .prepare("SELECT body FROM issues ORDER BY rowid")
            .map_err(unavailable)?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(unavailable)?;
        rows.map(|body| decode(&body.map_err(unavailable)?))
            .collect()
    }

    fn changes(&self, after: i64, limit: usize) -> Result<Vec<(i64, String, bool)>, TrackerError> {
        let db = self.lock();
        let mut stmt = db
            .prepare_cached(
                "SELECT seq, key, sync_event IS NOT NULL FROM changes
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(unavailable)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(unavailable)?;
        rows.map(|row| row.map_err(unavailable)).collect()
    }
}

impl Rows for Transaction<'_> {
    fn load(&mut self, key: &str) -> Result<Option<Issue>, TrackerError> {
        load(self, key)
    }

    fn insert(&mut self, key: &str, issue: &Issue) -> Result<(), TrackerError> {
        self.prepare_cached("INSERT INTO issues (key, body) VALUES (?1, ?2)")
            .map_err(unavailable)?
            .execute(params![key, encode(issue)])
            .map_err(unavailable)?;
        Ok(())
    }

    fn replace(&mut self, key: &str, issue: &Issue) -> Result<(), TrackerError> {
        self.prepare_cached("UPDATE issues SET body = ?2 WHERE key = ?1")
            .map_err(unavailable)?
            .execute(params![key, encode(issue)])
            .map_err(unavailable)?;
        Ok(())
    }

    fn next(&mut self, name: &str) -> Result<i64, TrackerError> {
        count(
            self,
            "INSERT INTO counters (name, value) VALUES (?1, 1)
             ON CONFLICT (name) DO UPDATE SET value = value + 1",
            "SELECT value FROM counters WHERE name = ?1",
            name,
        )
    }

    fn next_number(&mut self, project: &str) -> Result<i64, TrackerError> {
        count(
            self,
            "INSERT INTO projects (project, last_number) VALUES (?1, 1)
             ON CONFLICT (project) DO UPDATE SET last_number = last_number + 1",
            "SELECT last_number FROM projects WHERE project = ?1",
            project,
        )
    }

    fn record_change(&mut self, key: &str, sync_event: Option<&str>) -> Result<(), TrackerError> {
        self.prepare_cached("INSERT INTO changes (key, sync_event) VALUES (?1, ?2)")
            .map_err(unavailable)?
            .execute(params![key, sync_event])
            .map_err(unavailable)?;
        Ok(())
    }

    fn written_by(&mut self, event_id: &str) -> Result<Option<String>, TrackerError> {
        self.prepare_cached("SELECT key FROM sync_writes WHERE event_id = ?1")
            .map_err(unavailable)?
            .query_row([event_id], |r| r.get(0))
            .optional()
            .map_err(unavailable)
    }

    fn record_sync_write(&mut self, event_id: &str, key: &str) -> Result<(), TrackerError> {
        self.prepare_cached("INSERT INTO sync_writes (event_id, key) VALUES (?1, ?2)")
            .map_err(unavailable)?
            .execute(params![event_id, key])
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Move the counter `name` on with `upsert` and read its new value with `read`, in the
/// write transaction. Two statements rather than one with `RETURNING`, which SQLite answers
/// through a temporary table made for every statement (and every comment of a new issue
/// takes a number).
fn count(tx: &Transaction<'_>, upsert: &str, read: &str, name: &str) -> Result<i64, TrackerError> {
    tx.prepare_cached(upsert)
        .map_err(unavailable)?
        .execute([name])
        .map_err(unavailable)?;
    tx.prepare_cached(read)
        .map_err(unavailable)?
        .query_row([name], |r| r.get(0))
        .map_err(unavailable)
}

fn load(db: &Connection, key: &str) -> Result<Option<Issue>, TrackerError> {
    let body: Option<String> = db
        .prepare_cached("SELECT body FROM issues WHERE key = ?1")
        .map_err(unavailable)?
        .query_row([key], |r| r.get(0))
        .optional()
        .map_err(unavailable)?;
    body.map(|b| decode(&b)).transpose()
}

fn unavailable(error: rusqlite::Error) -> TrackerError {
    TrackerError::Unavailable(format!("reference tracker database: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::tracker::{Origin, Tracker};

    fn tracker(dir: &tempfile::TempDir) -> ReferenceTracker {
        ReferenceTracker::open(&dir.path().join("t.db"), "T", Arc::new(SystemClock)).unwrap()
    }

    fn issue(summary: &str) -> Issue {
        Issue {
            summary: summary.into(),
            ..Issue::default()
        }
    }

    #[test]
    fn update_many_writes_every_issue_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = tracker(&dir);
        let mut a = tracker.create(&issue("a"), Origin::User).unwrap();
        let mut b = tracker.create(&issue("b"), Origin::User).unwrap();
        a.summary = "a2".into();
        b.summary = "b2".into();
        let stored = tracker.update_many(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(stored[1].summary, "b2");
        let changes = tracker.changes(None, 100).unwrap().changes.len();

        // The second edit is refused: the first is not written either.
        a.summary = "a3".into();
        b.summary = " ".into();
        assert!(tracker.update_many(&[a.clone(), b]).is_err());
        let key = a.key.unwrap();
        assert_eq!(tracker.get(&key).unwrap().unwrap().summary, "a2");
        assert_eq!(tracker.changes(None, 100).unwrap().changes.len(), changes);
    }
}
