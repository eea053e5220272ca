//! The node's state in PostgreSQL: the connection, the schema's migrations, and
//! transactions that take turns as SQLite's do.
//!
//! Migrations are numbered files (`migrations/postgres-N.sql`), applied at start in one
//! transaction that holds [`WRITE_LOCK`] (two processes starting together do not both
//! apply them), and recorded in `schema_version`. A database whose version is newer than
//! this binary knows is refused: an older binary must not write a layout it does not know.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use super::sql::postgres::{PgConnection, connect, redact};
use super::sql::{Sql, args};
use crate::config::Secret;

/// The schema's versions, in order; the last is the one this binary writes.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres-1.sql"),
    include_str!("migrations/postgres-2.sql"),
    include_str!("migrations/postgres-3.sql"),
    include_str!("migrations/postgres-4.sql"),
    include_str!("migrations/postgres-5.sql"),
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
    /// The write lock of this store's schema.
    lock: i64,
    session: PgSession,
}

/// Where a node's (or a tenant's) state is in PostgreSQL: the database, how to log in, and
/// the schema (`None`: the connection's default, `public`).
#[derive(Clone)]
pub struct PgTarget {
    pub url: String,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password (nor one in the URL).
        f.debug_struct("PgTarget")
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

/// A connection to one schema of a database, opened when first used, opened again if the
/// server closed it (a restart, a proxy), and closed on request: a host of 10,000 idle
/// tenants does not hold 10,000 connections.
pub struct PgSession {
    target: PgTarget,
    schema: Option<String>,
    db: Mutex<Option<PgConnection>>,
}

impl PgSession {
    pub fn new(target: &PgTarget, schema: Option<&str>) -> Self {
        PgSession {
            target: target.clone(),
            schema: schema.map(str::to_string),
            db: Mutex::new(None),
        }
    }

    /// `f` on the connection, opened if need be (the call that found it closed by the
    /// server failed, and the next one goes on). The schema is the connection's
    /// `search_path`, alone: a table missing there is an error, never another schema's.
    pub fn with<T>(&self, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if db.as_ref().is_none_or(PgConnection::is_closed) {
            *db = None;
            let t = &self.target;
            let connection =
                PgConnection::new(connect(&t.url, t.password.as_ref(), t.ca_file.as_deref())?);
            if let Some(schema) = &self.schema {
                // It may not exist yet: `SET` does not care, and the first use creates it
                // (see `create_schema`).
                connection.batch(&format!("SET search_path TO {}", quote(schema)))?;
            }
            *db = Some(connection);
        }
        f(db.as_mut().expect("opened above"))
    }

    /// Close the connection if nobody uses it now; the next use opens it again.
    pub fn release(&self) {
        if let Ok(mut db) = self.db.try_lock() {
            db.take();
        }
    }

    /// Whether the connection is open (or in use).
    pub fn is_open(&self) -> bool {
        self.db.try_lock().map_or(true, |db| db.is_some())
    }
}

/// An identifier quoted for PostgreSQL (names are checked already; quoted all the same).
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The advisory lock that writers of `schema` take turns on: [`WRITE_LOCK`] for the
/// default schema, a key of its own for each other one (tenants do not wait for each
/// other's commits). Two schemas whose keys collide only take turns.
pub fn lock_key(schema: Option<&str>) -> i64 {
    let Some(schema) = schema else {
        return WRITE_LOCK;
    };
    let hash = schema.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash as i64) ^ WRITE_LOCK
}

/// In `tx`, which holds the schema's lock: create the schema if it is missing. (Two
/// processes creating it at once would otherwise collide on its name.)
pub fn create_schema(tx: &dyn Sql, schema: Option<&str>) -> Result<()> {
    if let Some(schema) = schema {
        tx.batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))?;
    }
    Ok(())
}

/// The schema of a hosted tenant's state. Tenant names are 1 to 64 letters, digits, `-`
/// and `_`; PostgreSQL's names at most 63 bytes: a long name is cut, and a hash of the
/// whole keeps it apart from others cut alike.
pub fn tenant_schema(name: &str) -> String {
    let schema = format!("tenant_{name}");
    if schema.len() <= 63 {
        return schema;
    }
    let hash = lock_key(Some(name)) as u64;
    let cut: String = name.chars().take(39).collect();
    format!("tenant_{cut}_{hash:016x}")
}

impl PgStore {
    /// Connect, bring the schema up to date; the store and its id.
    pub fn connect(target: &PgTarget, schema: Option<&str>) -> Result<(Self, String)> {
        let session = PgSession::new(target, schema);
        let lock = lock_key(schema);
        let id = session
            .with(|db| migrate(db, lock, schema))
            .with_context(|| match schema {
                None => format!(
                    "cannot set up the node's database in {}",
                    redact(&target.url)
                ),
                Some(s) => format!(
                    "cannot set up schema `{s}` of the database in {}",
                    redact(&target.url)
                ),
            })?;
        let store = PgStore {
            owner: format!("{}-{}", std::process::id(), super::fresh_id()),
            lock,
            session,
        };
        Ok((store, id))
    }

    pub fn close(&self) {
        self.session.release();
    }

    pub fn is_open(&self) -> bool {
        self.session.is_open()
    }

    pub fn write<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.session.with(|db| {
            let tx = db.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(?1)", args![self.lock])?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// `f` on the connection, each statement on its own: a read needs no transaction
    /// (under READ COMMITTED each statement sees a snapshot of its own anyway), and two
    /// round trips fewer.
    pub fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.session.with(|db| f(&*db))
    }

    /// Claim `issues` for this process for `lease_ms`: those it now holds (free ones, ones
    /// whose claim ran out, and its own, renewed).
    pub fn claim(&self, issues: &[String], lease_ms: i64) -> Result<Vec<String>> {
        if issues.is_empty() {
            return Ok(Vec::new());
        }
        let issues = serde_json::to_string(issues)?;
        // Under the write lock, as commits are: a commit locks the claim rows of its events
        // one by one (`holds`), and a claim statement locking several rows at once beside it
        // could wait on the commit while the commit waits on it (a deadlock PostgreSQL
        // breaks after a second by failing one of them).
        self.write(|db| {
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
        self.write(|db| {
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
}

/// Apply the migrations the database lacks; the database's id.
fn migrate(db: &mut PgConnection, lock: i64, schema: Option<&str>) -> Result<String> {
    let tx = db.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock(?1)", args![lock])?;
    create_schema(&tx, schema)?;
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
