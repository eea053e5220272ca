//! The reference tracker: a small issue tracker that implements [`Tracker`] with every field
//! of the contract. The demo and the tests run on it; it is also the model for embedding
//! twinsync in a real tracker. It comes in two storages with one behaviour: one SQLite file
//! for a single machine ([`ReferenceTracker`]), and PostgreSQL for several processes sharing
//! one tracker ([`PostgresTracker`]). What a tracker does is written once, here and in
//! `rows.rs`; a storage only reads and writes rows.

mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;

pub use postgres::Postgres;
pub use sqlite::Sqlite;

use super::{Change, ChangeBatch, Origin, Query, Tracker, TrackerError, UpdateIf};
use crate::clock::{Clock, rfc3339};
use crate::model::Issue;
use rows::Rows;

/// The reference tracker in one SQLite file.
pub type ReferenceTracker = Reference<Sqlite>;
/// The reference tracker in a PostgreSQL database, shared by every process that opens it.
pub type PostgresTracker = Reference<Postgres>;

/// The reference tracker on the storage `S`.
pub struct Reference<S> {
    storage: S,
    /// Where issues created without a project go (keys `PROJECT-n`).
    default_project: String,
    clock: Arc<dyn Clock>,
}

/// Where a reference tracker keeps its rows.
pub trait Storage: Send + Sync {
    /// A write transaction.
    type Tx<'t>: Rows;
    /// Run `work` in a write transaction, committed if it succeeds. Writers take turns:
    /// the change feed's numbers are in commit order, and a conditional update compares
    /// and writes with nobody in between.
    fn transaction<T>(
        &self,
        work: impl FnOnce(&mut Self::Tx<'_>) -> Result<T, TrackerError>,
    ) -> Result<T, TrackerError>;
    /// The issue `key`, outside any write.
    fn load(&self, key: &str) -> Result<Option<Issue>, TrackerError>;
    /// Every issue, oldest first.
    fn list(&self) -> Result<Vec<Issue>, TrackerError>;
    /// The changes numbered above `after`, at most `limit`, oldest first: each change's
    /// number, key, and whether a sync event wrote it.
    fn changes(&self, after: i64, limit: usize) -> Result<Vec<(i64, String, bool)>, TrackerError>;
}

impl<S: Storage> Reference<S> {
    fn on(storage: S, default_project: &str, clock: Arc<dyn Clock>) -> Self {
        Reference {
            storage,
            default_project: default_project.to_string(),
            clock,
        }
    }

    /// Every issue, oldest first.
    pub fn list(&self) -> Result<Vec<Issue>, TrackerError> {
        self.storage.list()
    }

    /// Users' edits of many issues in one transaction: all are written or none. (What a
    /// busy tracker's bulk edit does; the throughput bench makes its changes this way so
    /// that making them costs less than syncing them.)
    pub fn update_many(&self, issues: &[Issue]) -> Result<Vec<Issue>, TrackerError> {
        self.storage.transaction(|tx| {
            let now = self.now();
            issues
                .iter()
                .map(|issue| {
                    rows::check(issue)?;
                    rows::update(tx, issue, Origin::User, None, &now)
                })
                .collect()
        })
    }

    /// The time writes are stamped with, taken inside the write transaction.
    fn now(&self) -> String {
        rfc3339(self.clock.now())
    }
}

impl<S: Storage> Tracker for Reference<S> {
    fn get(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        self.storage.load(key)
    }

    fn create(&self, issue: &Issue, origin: Origin<'_>) -> Result<Issue, TrackerError> {
        rows::check(issue)?;
        self.storage.transaction(|tx| {
            let now = self.now();
            rows::write(tx, origin, |tx| {
                rows::create(tx, issue, &self.default_project, origin, &now)
            })
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
        rows::check(issue)?;
        rows::key_of(issue)?;
        self.storage.transaction(|tx| {
            // Taken once this writer's turn has come: times follow the commit order.
            let now = self.now();
            rows::write(tx, origin, |tx| rows::update(tx, issue, origin, seen, &now))
        })
    }

    /// In one transaction. A write that is refused, or finds its issue gone or changed, has
    /// written nothing when it fails (`rows::check` writes nothing, `rows::update` checks
    /// before it writes), so the others commit; any other failure is the storage's, and
    /// then none is written.
    fn update_many_if(&self, writes: &[UpdateIf<'_>]) -> Vec<Result<Issue, TrackerError>> {
        let outcomes = self.storage.transaction(|tx| {
            let now = self.now();
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                let outcome = rows::check(write.issue).and_then(|()| {
                    rows::write(tx, write.origin, |tx| {
                        rows::update(tx, write.issue, write.origin, write.seen, &now)
                    })
                });
                match outcome {
                    Err(error @ TrackerError::Unavailable(_)) => return Err(error),
                    outcome => outcomes.push(outcome),
                }
            }
            Ok(outcomes)
        });
        match outcomes {
            Ok(outcomes) => outcomes,
            Err(error) => writes.iter().map(|_| Err(error.clone())).collect(),
        }
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
        let mut batch = ChangeBatch {
            changes: Vec::new(),
            cursor: cursor.map(str::to_string),
        };
        for (seq, key, by_sync) in self.storage.changes(after, limit)? {
            batch.changes.push(Change { key, by_sync });
            batch.cursor = Some(seq.to_string());
        }
        Ok(batch)
    }
}
