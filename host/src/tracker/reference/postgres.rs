//! The reference tracker on PostgreSQL: one tracker shared by several processes, on one
//! machine or many (what a node whose workers run in several processes needs). It behaves
//! as the SQLite one does (`rows.rs`); only the storage differs.
//!
//! Writers take turns on one transaction-level advisory lock ([`WRITE_LOCK`]). That keeps
//! two promises a sequence alone would break under concurrent writers:
//! - the change feed's numbers are in commit order, so a reader that has read change `n`
//!   never misses a change numbered below `n` that commits later;
//! - a conditional update compares and writes with nobody writing in between.
//!
//! Reads do not take the lock. A reference tracker needs correctness more than write
//! concurrency; a real tracker's own storage decides this for itself.

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use postgres::{Client, Transaction};

use super::rows::{Rows, decode, encode};
use super::{PostgresTracker, Reference, Storage};
use crate::clock::Clock;
use crate::config::Secret;
use crate::model::Issue;
use crate::store::sql::postgres::{connect, describe};
use crate::tracker::TrackerError;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS issues (
        key TEXT PRIMARY KEY,
        n BIGSERIAL NOT NULL,          -- creation order, for listing
        body TEXT NOT NULL             -- the issue as JSON
    );
    CREATE TABLE IF NOT EXISTS projects (
        project TEXT PRIMARY KEY,
        last_number BIGINT NOT NULL    -- keys are PROJECT-n
    );
    CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    -- The change feed: one row per write, with the sync event that made it, if any.
    CREATE TABLE IF NOT EXISTS changes (
        seq BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL,
        sync_event TEXT
    );
    -- Writes made for sync events, so that a repeated event changes nothing.
    CREATE TABLE IF NOT EXISTS sync_writes (
        event_id TEXT PRIMARY KEY,
        key TEXT NOT NULL
    );
";

/// The advisory lock every write (and the schema's creation) holds until it commits.
pub const WRITE_LOCK: i64 = 0x7477_696e_7379_6e63; // "twinsync"

/// The reference tracker's rows in a PostgreSQL database.
pub struct Postgres {
    url: String,
    password: Option<Secret>,
    client: Mutex<Client>,
}

impl PostgresTracker {
    /// Open the tracker in the database of `url` (`postgres://user:password@host:port/db`),
    /// creating its tables if they are missing, on the system clock; new issues without a
    /// project go to `project`, with keys `PROJECT-n`.
    pub fn connect(url: &str, project: &str) -> anyhow::Result<Self> {
        Self::open(url, None, project, Arc::new(crate::clock::SystemClock))
    }

    /// [`PostgresTracker::connect`], with the password apart from the URL (from a file: a
    /// URL in a configuration file should not hold it), and a clock.
    pub fn open(
        url: &str,
        password: Option<&Secret>,
        default_project: &str,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let mut client = connect(url, password, None)?;
        // Processes starting at once would race to create the tables: they take turns.
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        tx.batch_execute(SCHEMA)
            .context("cannot create the reference tracker's tables")?;
        tx.commit()?;
        let storage = Postgres {
            url: url.to_string(),
            password: password.cloned(),
            client: Mutex::new(client),
        };
        Ok(Reference::on(storage, default_project, clock))
    }
}

impl Postgres {
    /// The connection, opened again if the server closed it (a restart): the call that
    /// found it closed failed as `Unavailable`, and the next one goes on.
    fn client(&self) -> Result<MutexGuard<'_, Client>, TrackerError> {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if client.is_closed() {
            *client = connect(&self.url, self.password.as_ref(), None)
                .map_err(|e| TrackerError::Unavailable(format!("{e:#}")))?;
        }
        Ok(client)
    }
}

impl Storage for Postgres {
    type Tx<'t> = Transaction<'t>;

    /// A transaction holding [`WRITE_LOCK`].
    fn transaction<T>(
        &self,
        work: impl FnOnce(&mut Transaction<'_>) -> Result<T, TrackerError>,
    ) -> Result<T, TrackerError> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(unavailable)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .map_err(unavailable)?;
        let done = work(&mut tx)?;
        tx.commit().map_err(unavailable)?;
        Ok(done)
    }

    fn load(&self, key: &str) -> Result<Option<Issue>, TrackerError> {
        let row = self
            .client()?
            .query_opt("SELECT body FROM issues WHERE key = $1", &[&key])
            .map_err(unavailable)?;
        row.map(|row| decode(row.get(0))).transpose()
    }

    fn list(&self) -> Result<Vec<Issue>, TrackerError> {
        let rows = self
            .client()?
            .query("SELECT body FROM issues ORDER BY n", &[])
            .map_err(unavailable)?;
        rows.iter().map(|row| decode(row.get(0))).collect()
    }

    fn changes(&self, after: i64, limit: usize) -> Result<Vec<(i64, String, bool)>, TrackerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(
                "SELECT seq, key, sync_event IS NOT NULL FROM changes
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            )
            .map_err(unavailable)?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
    }
}

impl Rows for Transaction<'_> {
    fn load(&mut self, key: &str) -> Result<Option<Issue>, TrackerError> {
        let row = self
            .query_opt("SELECT body FROM issues WHERE key = $1", &[&key])
            .map_err(unavailable)?;
        row.map(|row| decode(row.get(0))).transpose()
    }

    fn insert(&mut self, key: &str, issue: &Issue) -> Result<(), TrackerError> {
        self.execute(
            "INSERT INTO issues (key, body) VALUES ($1, $2)",
            &[&key, &encode(issue)],
        )
        .map_err(unavailable)?;
        Ok(())
    }

    fn replace(&mut self, key: &str, issue: &Issue) -> Result<(), TrackerError> {
        self.execute(
            "UPDATE issues SET body = $2 WHERE key = $1",
            &[&key, &encode(issue)],
        )
        .map_err(unavailable)?;
        Ok(())
    }

    fn next(&mut self, name: &str) -> Result<i64, TrackerError> {
        let row = self
            .query_one(
                "INSERT INTO counters (name, value) VALUES ($1, 1)
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                &[&name],
            )
            .map_err(unavailable)?;
        Ok(row.get(0))
    }

    fn next_number(&mut self, project: &str) -> Result<i64, TrackerError> {
        let row = self
            .query_one(
                "INSERT INTO projects (project, last_number) VALUES ($1, 1)
                 ON CONFLICT (project) DO UPDATE SET last_number = projects.last_number + 1
                 RETURNING last_number",
                &[&project],
            )
            .map_err(unavailable)?;
        Ok(row.get(0))
    }

    fn record_change(&mut self, key: &str, sync_event: Option<&str>) -> Result<(), TrackerError> {
        self.execute(
            "INSERT INTO changes (key, sync_event) VALUES ($1, $2)",
            &[&key, &sync_event],
        )
        .map_err(unavailable)?;
        Ok(())
    }

    fn written_by(&mut self, event_id: &str) -> Result<Option<String>, TrackerError> {
        let row = self
            .query_opt(
                "SELECT key FROM sync_writes WHERE event_id = $1",
                &[&event_id],
            )
            .map_err(unavailable)?;
        Ok(row.map(|row| row.get(0)))
    }

    fn record_sync_write(&mut self, event_id: &str, key: &str) -> Result<(), TrackerError> {
        self.execute(
            "INSERT INTO sync_writes (event_id, key) VALUES ($1, $2)",
            &[&event_id, &key],
        )
        .map_err(unavailable)?;
        Ok(())
    }
}

fn unavailable(error: postgres::Error) -> TrackerError {
    TrackerError::Unavailable(format!("reference tracker database: {}", describe(&error)))
}
