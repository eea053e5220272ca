//! The reference tracker: a small issue tracker on SQLite that implements [`Tracker`] with
//! every field of the contract. The demo and the tests run on it; it is also the model for
//! embedding twinsync in a real tracker.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Change, ChangeBatch, Origin, Query, Tracker, TrackerError};
use crate::clock::{Clock, rfc3339};
use crate::model::Issue;

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

/// An issue tracker in one SQLite file.
pub struct ReferenceTracker {
    db: Mutex<Connection>,
    default_project: String,
    clock: Arc<dyn Clock>,
}

impl ReferenceTracker {
    /// Open (or create) the tracker in `path`. Issues created without a project go to
    /// `default_project`, whose keys look like `INT-1`.
    /// Open (or create) the tracker in the SQLite file `path`, on the system clock; new
    /// issues get keys `PROJECT-n`.
    pub fn new(path: &Path, project: &str) -> anyhow::Result<Self> {
        Self::open(path, project, Arc::new(crate::clock::SystemClock))
    }

    pub fn open(path: &Path, default_project: &str, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let db = crate::store::open_wal(path)?;
        db.execute_batch(SCHEMA)?;
        Ok(ReferenceTracker {
            db: Mutex::new(db),
            default_project: default_project.to_string(),
            clock,
        })
    }

    /// Every issue, oldest first.
    pub fn list(&self) -> Result<Vec<Issue>, TrackerError> {
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

    /// Users' edits of many issues in one transaction: all are written or none. (What a
    /// busy tracker's bulk edit does; the throughput bench makes its changes this way so
    /// that making them costs less than syncing them.)
    pub fn update_many(&self, issues: &[Issue]) -> Result<Vec<Issue>, TrackerError> {
        let mut db = self.lock();
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let now = rfc3339(self.clock.now());
        let mut stored = Vec::with_capacity(issues.len());
        for issue in issues {
            check(issue)?;
            let key = issue
                .key
                .clone()
                .ok_or_else(|| TrackerError::Rejected("an issue to update needs a key".into()))?;
            stored.push(update_in(&tx, issue, key, Origin::User, None, now.clone())?);
        }
        tx.commit().map_err(unavailable)?;
        Ok(stored)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `write` in a transaction, unless `origin` is a sync event already applied: then
    /// return the issue that event wrote.
    fn write(
        &self,
        origin: Origin<'_>,
        write: impl FnOnce(&Transaction<'_>, String) -> Result<Issue, TrackerError>,
    ) -> Result<Issue, TrackerError> {
        let mut db = self.lock();
        // IMMEDIATE: another process writing the same file waits (busy timeout) rather
        // than failing when this transaction's read turns into a write.
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        if let Origin::Sync { event_id } = origin {
            let done: Option<String> = tx
                .prepare_cached("SELECT key FROM sync_writes WHERE event_id = ?1")
                .map_err(unavailable)?
                .query_row([event_id], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            if let Some(key) = done {
                return load(&tx, &key)?.ok_or(TrackerError::NotFound(key));
            }
        }
        let now = rfc3339(self.clock.now());
        let issue = write(&tx, now)?;
        let key = issue.key.clone().unwrap_or_default();
        let sync_event = match origin {
            Origin::Sync { event_id } => Some(event_id),
            Origin::User => None,
        };
        if let Some(event_id) = sync_event {
            tx.prepare_cached("INSERT INTO sync_writes (event_id, key) VALUES (?1, ?2)")
                .map_err(unavailable)?
                .execute(params![event_id, key])
                .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)?;
        Ok(issue)
    }
}

impl Tracker for ReferenceTracker {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        load(&self.lock(), key)
    }

    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        check(issue)?;
        self.write(origin, |tx, now| {
            let mut issue = issue.clone();
            if issue.project.is_empty() {
                issue.project = self.default_project.clone();
            }
            let number: i64 = tx
                .prepare_cached(
                    "INSERT INTO projects (project, last_number) VALUES (?1, 1)
                     ON CONFLICT (project) DO UPDATE SET last_number = last_number + 1
                     RETURNING last_number",
                )
                .map_err(unavailable)?
                .query_row([&issue.project], |r| r.get(0))
                .map_err(unavailable)?;
            let key = format!("{}-{number}", issue.project);
            issue.key = Some(key.clone());
            issue.id = Some(next(tx, "issue")?.to_string());
            issue.created = Some(now.clone());
            issue.updated = Some(now.clone());
            if issue.status.is_empty() {
                issue.status = "Open".into();
            }
            if issue.issue_type.is_empty() {
                issue.issue_type = "Task".into();
            }
            assign_ids(tx, &mut issue, &Issue::default(), &now)?;
            tx.prepare_cached("INSERT INTO issues (key, body) VALUES (?1, ?2)")
                .map_err(unavailable)?
                .execute(params![key, encode(&issue)])
                .map_err(unavailable)?;
            record_change(tx, &key, origin)?;
            Ok(issue)
        })
    }

    fn update(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        self.update_if(issue, origin, None)
    }

    fn update_if(
        &self,
        issue: &Issue,
        origin: Origin<'_>,
        seen: Option<&Issue>,
    ) -> Result<Issue, TrackerError> {
        check(issue)?;
        let key = issue
            .key
            .clone()
            .ok_or_else(|| TrackerError::Rejected("an issue to update needs a key".into()))?;
        self.write(origin, |tx, now| {
            update_in(tx, issue, key, origin, seen, now)
        })
    }

    fn search(&self, query: &Query) -> Result<Vec<String>, TrackerError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|issue| query.matches(issue))
            .filter_map(|issue| issue.key)
            .collect())
    }

    fn changes(&self, cursor: Option<&str>, limit: usize) -> Result<ChangeBatch, TrackerError> {
        let after: i64 = match cursor {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| TrackerError::Rejected(format!("bad change cursor `{text}`")))?,
        };
        let db = self.lock();
        let mut stmt = db
            .prepare_cached("SELECT seq, key, sync_event IS NOT NULL FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(unavailable)?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .map_err(unavailable)?;
        let mut batch = ChangeBatch {
            changes: Vec::new(),
            cursor: cursor.map(str::to_string),
        };
        for row in rows {
            let (seq, key, by_sync) = row.map_err(unavailable)?;
            batch.changes.push(Change { key, by_sync });
            batch.cursor = Some(seq.to_string());
        }
        Ok(batch)
    }
}

/// What the reference tracker refuses to store.
fn check(issue: &Issue) -> Result<(), TrackerError> {
    if issue.summary.trim().is_empty() {
        return Err(TrackerError::Rejected("the summary is empty".into()));
    }
    let mut names: Vec<&str> = issue
        .custom_fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(TrackerError::Rejected(format!(
            "custom field `{}` appears twice",
            pair[0]
        )));
    }
    Ok(())
}

/// Write `issue` over the stored issue `key`, in `tx`, unless the stored issue is not `seen`.
fn update_in(
    tx: &Transaction<'_>,
    issue: &Issue,
    key: String,
    origin: Origin<'_>,
    seen: Option<&Issue>,
    now: String,
) -> Result<Issue, TrackerError> {
    let stored = load(tx, &key)?.ok_or_else(|| TrackerError::NotFound(key.clone()))?;
    // Compared in the write's transaction: nobody can write in between.
    if seen.is_some_and(|seen| *seen != stored) {
        return Err(TrackerError::Changed(key));
    }
    let mut issue = issue.clone();
    // What identifies the issue is the tracker's, not the writer's.
    issue.id = stored.id.clone();
    issue.created = stored.created.clone();
    issue.updated = stored.updated.clone();
    assign_ids(tx, &mut issue, &stored, &now)?;
    if issue == stored {
        return Ok(stored);
    }
    issue.updated = Some(now);
    tx.prepare_cached("UPDATE issues SET body = ?2 WHERE key = ?1")
        .map_err(unavailable)?
        .execute(params![key, encode(&issue)])
        .map_err(unavailable)?;
    record_change(tx, &key, origin)?;
    Ok(issue)
}

/// Give new comments and attachments (no id, or an id this issue does not have) an id, and
/// new comments a creation time if they have none.
fn assign_ids(
    tx: &Transaction<'_>,
    issue: &mut Issue,
    stored: &Issue,
    now: &str,
) -> Result<(), TrackerError> {
    for comment in &mut issue.comments {
        if comment.id.is_empty() || !stored.comments.iter().any(|c| c.id == comment.id) {
            comment.id = format!("c{}", next(tx, "comment")?);
        }
        if comment.created.is_empty() {
            comment.created = now.to_string();
        }
    }
    for attachment in &mut issue.attachments {
        if attachment.id.is_empty() || !stored.attachments.iter().any(|a| a.id == attachment.id) {
            attachment.id = format!("a{}", next(tx, "attachment")?);
        }
    }
    Ok(())
}

fn next(tx: &Transaction<'_>, counter: &str) -> Result<i64, TrackerError> {
    tx.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
    )
    .map_err(unavailable)?
    .query_row([counter], |r| r.get(0))
    .map_err(unavailable)
}

fn record_change(tx: &Transaction<'_>, key: &str, origin: Origin<'_>) -> Result<(), TrackerError> {
    let sync_event = match origin {
        Origin::Sync { event_id } => Some(event_id),
        Origin::User => None,
    };
    tx.prepare_cached("INSERT INTO changes (key, sync_event) VALUES (?1, ?2)")
        .map_err(unavailable)?
        .execute(params![key, sync_event])
        .map_err(unavailable)?;
    Ok(())
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

fn encode(issue: &Issue) -> String {
    serde_json::to_string(issue).expect("an issue always encodes to JSON")
}

fn decode(body: &str) -> Result<Issue, TrackerError> {
    serde_json::from_str(body)
        .map_err(|e| TrackerError::Unavailable(format!("stored issue is corrupt: {e}")))
}

fn unavailable(error: rusqlite::Error) -> TrackerError {
    TrackerError::Unavailable(format!("reference tracker database: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

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
