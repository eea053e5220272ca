//! The node's state in PostgreSQL: the connection, the schema's migrations, and
//! transactions that take turns as SQLite's do.
//!
//! Migrations are numbered files (`migrations/postgres-N.sql`), applied at start in one
//! transaction that holds [`WRITE_LOCK`] (two processes starting together do not both
//! apply them), and recorded in `schema_version`. A database whose version is newer than
//! this binary knows is refused: an older binary must not write a layout it does not know.

use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use super::sql::postgres::{PgConnection, connect, redact};
use super::sql::{Sql, args};
use crate::config::Secret;

/// The schema's versions, in order; the last is the one this binary writes.
const MIGRATIONS: &[&str] = &[include_str!("migrations/postgres-1.sql")];

/// The advisory lock every write transaction (and the migrations) holds until it commits:
/// writers take turns, across all the processes of a node, as they do on SQLite.
const WRITE_LOCK: i64 = 0x7477_696e_6e6f_6465; // "twinnode"

pub struct PgStore {
    url: String,
    password: Option<Secret>,
    db: Mutex<PgConnection>,
}

impl PgStore {
    /// Connect, bring the schema up to date; the store and its id.
    pub fn connect(url: &str, password: Option<&Secret>) -> Result<(Self, String)> {
        let mut db = PgConnection::new(connect(url, password)?);
        let id = migrate(&mut db)
            .with_context(|| format!("cannot set up the node's database in {}", redact(url)))?;
        let store = PgStore {
            url: url.to_string(),
            password: password.cloned(),
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

    pub fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        let mut db = self.connection()?;
        let tx = db.transaction()?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// The connection, opened again if the server closed it (a restart, a proxy): the
    /// call that found it closed failed, and the next one goes on.
    fn connection(&self) -> Result<std::sync::MutexGuard<'_, PgConnection>> {
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        if db.is_closed() {
            *db = PgConnection::new(connect(&self.url, self.password.as_ref())?);
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
