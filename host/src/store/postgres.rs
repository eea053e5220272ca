//! The node's state in PostgreSQL: the connection, the schema's migrations, and
//! transactions that take turns as SQLite's do.
//!
//! Migrations are numbered files (`migrations/postgres-N.sql`), applied at start in one
//! transaction that holds [`WRITE_LOCK`] (two processes starting together do not both
//! apply them), and recorded in `schema_version`. A database whose version is newer than
//! this binary knows is refused: an older binary must not write a layout it does not know.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use super::sql::postgres::{PgConnection, connect, redact};
use super::sql::{Sql, args};
use crate::config::Secret;

/// The schema's versions, in order; the last is the one this binary writes.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres-1.sql"),
    include_str!("migrations/postgres-2.sql"),
];

/// The advisory lock every write transaction (and the migrations) holds until it commits:
/// writers take turns, across all the processes of a node, as they do on SQLite.
const WRITE_LOCK: i64 = 0x7477_696e_6e6f_6465; // "twinnode"

/// Now, in ms since the epoch, by the database's clock: leases are compared on one clock,
/// whatever the clocks of the machines the processes run on say.
const NOW_MS: &str = "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)";

pub struct PgStore {
    /// This process, as its claims and leases name it: random, new at every start.
    owner: String,
    url: String,
    password: Option<Secret>,
    ca_file: Option<PathBuf>,
    db: Mutex<PgConnection>,
}

impl PgStore {
    /// Connect, bring the schema up to date; the store and its id.
    pub fn connect(
        url: &str,
        password: Option<&Secret>,
        ca_file: Option<&Path>,
    ) -> Result<(Self, String)> {
        let mut db = PgConnection::new(connect(url, password, ca_file)?);
        let id = migrate(&mut db)
            .with_context(|| format!("cannot set up the node's database in {}", redact(url)))?;
        let store = PgStore {
            owner: format!("{}-{}", std::process::id(), super::fresh_id()),
            url: url.to_string(),
            password: password.cloned(),
            ca_file: ca_file.map(Path::to_path_buf),
            db: Mutex::new(db),
        };
        Ok((store, id))
    }

    pub fn write<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let mut db = self.connection()?;
        let tx = db.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(?1)", args![WRITE_LOCK])?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// `f` on the connection, each statement on its own: a read needs no transaction
    /// (under READ COMMITTED each statement sees a snapshot of its own anyway), and two
    /// round trips fewer.
    pub fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let db = self.connection()?;
        f(&*db)
    }

    /// Claim `issues` for this process for `lease_ms`: those it now holds (free ones, ones
    /// whose claim ran out, and its own, renewed).
    pub fn claim(&self, issues: &[String], lease_ms: i64) -> Result<Vec<String>> {
        if issues.is_empty() {
            return Ok(Vec::new());
        }
        let issues = serde_json::to_string(issues)?;
        // Not under the write lock: one row each, taken or not in one statement.
        self.read(|db| {
            db.rows(
                &format!(
                    "INSERT INTO claims (issue, owner, until)
                     SELECT DISTINCT i, ?2, {NOW_MS} + ?3
                     FROM json_array_elements_text(CAST(CAST(?1 AS TEXT) AS json)) AS i
                     ON CONFLICT (issue) DO UPDATE SET owner = excluded.owner, until = excluded.until
                     WHERE claims.owner = excluded.owner OR claims.until < {NOW_MS}
                     RETURNING issue"
                ),
                args![&issues, &self.owner, lease_ms],
                |r| r.get(0),
            )
        })
    }

    /// Extend this process's claims on `issues` by `lease_ms` from now. (Only those: a
    /// claim it no longer works on runs out, and another process may take the issue.)
    pub fn renew_claims(&self, issues: &[String], lease_ms: i64) -> Result<()> {
        if issues.is_empty() {
            return Ok(());
        }
        let issues = serde_json::to_string(issues)?;
        self.read(|db| {
            db.execute(
                &format!(
                    "UPDATE claims SET until = {NOW_MS} + ?3
                     WHERE owner = ?1
                       AND issue IN (SELECT json_array_elements_text(CAST(CAST(?2 AS TEXT) AS json)))"
                ),
                args![&self.owner, &issues, lease_ms],
            )
        })?;
        Ok(())
    }

    /// Whether this process still holds its claim on `issue`, in `tx`; the claim's row
    /// stays locked until `tx` ends, so that nobody takes it over between this check and
    /// the commit it guards.
    pub fn holds(&self, tx: &dyn Sql, issue: &str) -> Result<bool> {
        tx.exists(
            "SELECT 1 FROM claims WHERE issue = ?1 AND owner = ?2 FOR UPDATE",
            args![issue, &self.owner],
        )
    }

    /// Give up the claim on `issue`, in `tx`.
    pub fn release(&self, tx: &dyn Sql, issue: &str) -> Result<()> {
        tx.execute(
            "DELETE FROM claims WHERE issue = ?1 AND owner = ?2",
            args![issue, &self.owner],
        )?;
        Ok(())
    }

    /// Take or renew `role` for `lease_ms`; whether this process holds it now.
    pub fn lead(&self, role: &str, lease_ms: i64) -> Result<bool> {
        self.read(|db| {
            db.exists(
                &format!(
                    "INSERT INTO leaders (role, owner, until) VALUES (?1, ?2, {NOW_MS} + ?3)
                     ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, until = excluded.until
                     WHERE leaders.owner = excluded.owner OR leaders.until < {NOW_MS}
                     RETURNING 1"
                ),
                args![role, &self.owner, lease_ms],
            )
        })
    }

    /// Give up `role` (a process stopping): another takes it at once.
    pub fn resign(&self, role: &str) -> Result<()> {
        self.read(|db| {
            db.execute(
                "DELETE FROM leaders WHERE role = ?1 AND owner = ?2",
                args![role, &self.owner],
            )
        })?;
        Ok(())
    }

    /// The connection, opened again if the server closed it (a restart, a proxy): the
    /// call that found it closed failed, and the next one goes on.
    fn connection(&self) -> Result<std::sync::MutexGuard<'_, PgConnection>> {
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if db.is_closed() {
            *db = PgConnection::new(connect(
                &self.url,
                self.password.as_ref(),
                self.ca_file.as_deref(),
            )?);
        }
        Ok(db)
    }
}

/// Apply the migrations the database lacks; the database's id.
fn migrate(db: &mut PgConnection) -> Result<String> {
    let tx = db.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock(?1)", args![WRITE_LOCK])?;
    tx.batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version BIGINT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let sql: &dyn Sql = &tx;
    let current: i64 = sql.one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        bail!(
            "its schema is version {current}, newer than this twinsync knows ({known}): \
             run a twinsync at least as new as the one that wrote it"
        );
    }
    for (version, migration) in (current + 1..).zip(&MIGRATIONS[current as usize..]) {
        tx.batch(migration)
            .with_context(|| format!("migration {version} failed"))?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            args![version],
        )?;
    }
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('store.id', ?1) ON CONFLICT DO NOTHING",
        args![&super::fresh_id()],
    )?;
    let id: String = sql.one("SELECT value FROM meta WHERE name = 'store.id'", &[])?;
    tx.commit()?;
    Ok(id)
}
