//! The node's durable state in SQLite (WAL): twins, the sync queue, the outbox and the
//! tracker cursor. Everything an event changes is written in one transaction.

pub mod conflicts;
pub mod events;
pub mod history;
pub mod links;
pub mod outbox;
pub mod twins;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::runtime::TwinDirectory;

const SCHEMA: &str = include_str!("schema.sql");

/// The node's database.
pub struct NodeStore {
    db: Mutex<Connection>,
    id: String,
}

impl NodeStore {
    pub fn open(path: &Path) -> Result<Self> {
        let db = open_wal(path)?;
        db.execute_batch(SCHEMA)
            .and_then(|()| db.execute_batch(crate::plugins::store::SCHEMA))
            .with_context(|| format!("cannot set up the database in {}", path.display()))?;
        db.execute_batch(history::SCHEMA)
            .with_context(|| format!("cannot set up the history in {}", path.display()))?;
        // A random name for this database, part of every id it makes: a node whose database
        // was reset must not reuse ids that trackers and other nodes remember.
        db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('store.id', ?1)",
            [fresh_id()],
        )?;
        let id = get_meta(&db, "store.id")?.unwrap_or_default();
        Ok(NodeStore {
            db: Mutex::new(db),
            id,
        })
    }

    /// This database's random name (a few hex digits), fixed when it was created.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Run `f` in a transaction; commit if it returns `Ok`. IMMEDIATE: the write lock is
    /// taken at the start, so two processes (`serve` and a CLI command) wait for each other
    /// (up to the busy timeout) instead of one failing with `SQLITE_BUSY` when a read turns
    /// into a write.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut db = self.lock();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Run `f` on the connection, without a transaction of its own.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection to a database in WAL mode, set up as every twinsync database is.
pub fn open_wal(path: &Path) -> Result<Connection> {
    let db = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode NORMAL loses nothing on a process crash: a commit is in the log before
    // it returns. (Only a power loss can take back the last commits.)
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    // Keep each cached statement's query plan. Otherwise SQLite (3.54) marks a statement
    // for re-preparing on every new value bound to `col = ?` or `LIMIT ?`, and parsing
    // again took a fifth of the CPU of a busy node.
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // Fewer, larger checkpoints: each one syncs the database file. (Checkpointing from a
    // thread of its own instead took the syncs off the event loop, but writers then
    // stalled behind them: p99 latency doubled in the throughput benchmark.)
    db.pragma_update(None, "wal_autocheckpoint", 4000)?;
    Ok(db)
}

fn fresh_id() -> String {
    use sha2::Digest;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{now}-{}-{:p}", std::process::id(), &now);
    crate::hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..3])
}

/// A named value that survives restarts (the tracker cursor, id counters).
pub fn get_meta(db: &Connection, name: &str) -> Result<Option<String>> {
    Ok(db
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

pub fn set_meta(db: &Connection, name: &str, value: &str) -> Result<()> {
    db.prepare_cached(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute([name, value])?;
    Ok(())
}

/// The next number of a counter, for ids that stay unique across restarts.
pub fn next_number(db: &Connection, counter: &str) -> Result<i64> {
    Ok(db
        .prepare_cached(
            "INSERT INTO meta (name, value) VALUES (?1, '1')
         ON CONFLICT (name) DO UPDATE SET value = CAST(value AS INTEGER) + 1
         RETURNING CAST(value AS INTEGER)",
        )?
        .query_row([counter], |r| r.get(0))?)
}

impl TwinDirectory for NodeStore {
    fn local_key_for_remote(&self, connection: &str, remote_key: &str) -> Option<String> {
        self.read(|db| twins::local_key_for_remote(db, connection, remote_key))
            .ok()
            .flatten()
    }

    fn is_under_sync(&self, connection: &str, local_key: &str) -> bool {
        self.read(|db| Ok(twins::by_local_key(db, connection, local_key)?.is_some()))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two processes on one node database (`serve` and a CLI command): a transaction that
    /// reads and then writes while the other one commits waits for it, instead of failing
    /// with `SQLITE_BUSY` (as a DEFERRED transaction does when its read turns into a write).
    #[test]
    fn two_writers_on_one_database_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twinsync.db");
        let (a, b) = (
            NodeStore::open(&path).unwrap(),
            NodeStore::open(&path).unwrap(),
        );
        let (read, wrote) = (
            std::sync::Barrier::new(2),
            std::sync::atomic::AtomicBool::new(false),
        );
        std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                a.write(|tx| {
                    let before = get_meta(tx, "x")?;
                    read.wait();
                    // The other writer tries now; it must not get in between.
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    set_meta(tx, "x", &format!("{before:?}+a"))
                })
            });
            read.wait();
            let second = b.write(|tx| {
                wrote.store(true, std::sync::atomic::Ordering::SeqCst);
                let before = get_meta(tx, "x")?;
                set_meta(tx, "x", &format!("{before:?}+b"))
            });
            first.join().unwrap().expect("the first writer commits");
            second.expect("the second writer waits, then commits");
        });
        assert!(wrote.into_inner());
        // The second saw the first's write: they ran one after the other.
        let value = a.read(|db| get_meta(db, "x")).unwrap().unwrap();
        assert_eq!(value, "Some(\"None+a\")+b");
    }
}
