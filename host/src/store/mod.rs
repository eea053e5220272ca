//! The node's durable state in SQLite (WAL): twins, the sync queue, the outbox and the
//! tracker cursor. Everything an event changes is written in one transaction.

pub mod bodies;
pub mod conflicts;
pub mod events;
pub mod history;
pub mod links;
pub mod outbox;
pub(crate) mod postgres;
pub mod readers;
pub mod shared;
pub mod sql;
pub mod twins;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::config::Secret;
use crate::runtime::TwinDirectory;
pub use postgres::{PgTarget, tenant_schema};
use sql::{Dialect, Sql, args};

const SCHEMA: &str = include_str!("schema.sql");

/// The node's database: SQLite (embedded, the default) or PostgreSQL (several processes of
/// one node, on several machines). The engine reads and writes it only through [`Sql`].
pub struct NodeStore {
    backend: Backend,
    /// Set once the schema is set up, at the first opening.
    id: OnceLock<String>,
}

enum Backend {
    Sqlite {
        /// `None` until first used, and while released (see [`NodeStore::release`]).
        db: Mutex<Option<Connection>>,
        /// Connections that read while `db` is busy (see [`NodeStore::read`]).
        readers: readers::Readers,
        path: PathBuf,
    },
    Postgres(Box<postgres::PgStore>),
}

impl NodeStore {
    /// Open the database (created if need be) and set up its schema now.
    pub fn open(path: &Path) -> Result<Self> {
        let store = NodeStore::open_lazily(path);
        store.read(|_| Ok(()))?;
        Ok(store)
    }

    /// A database opened, and its schema set up, when first used: a host restarting with
    /// 10,000 tenants does not read 10,000 schemas before the first event.
    pub fn open_lazily(path: &Path) -> Self {
        NodeStore {
            backend: Backend::Sqlite {
                db: Mutex::new(None),
                readers: readers::Readers::new(path),
                path: path.to_path_buf(),
            },
            id: OnceLock::new(),
        }
    }

    /// The node's state in the PostgreSQL database of `url`, its schema brought up to date
    /// now (see `store/postgres.rs`). The password is in the URL or in `password`; with
    /// `sslmode=require` in the URL, the server's certificate may also be signed by the
    /// certificates of `ca_file`.
    pub fn connect(url: &str, password: Option<&Secret>, ca_file: Option<&Path>) -> Result<Self> {
        let target = PgTarget {
            url: url.to_string(),
            password: password.cloned(),
            ca_file: ca_file.map(Path::to_path_buf),
        };
        NodeStore::connect_in_schema(&target, None)
    }

    /// [`NodeStore::connect`], with the state in `schema` of the database (created if
    /// missing) instead of the default one: each hosted tenant's state is in a schema of
    /// its own (see [`tenant_schema`]), with a write lock of its own.
    pub fn connect_in_schema(target: &PgTarget, schema: Option<&str>) -> Result<Self> {
        let (pg, id) = postgres::PgStore::connect(target, schema)?;
        Ok(NodeStore {
            backend: Backend::Postgres(Box::new(pg)),
            id: OnceLock::from(id),
        })
    }

    /// Which database holds the store, for what is prepared ahead of its transactions
    /// (see [`bodies::pack`]).
    pub fn dialect(&self) -> Dialect {
        match &self.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Whether the database connection is open (or in use).
    pub fn is_open(&self) -> bool {
        match &self.backend {
            Backend::Sqlite { db, .. } => db.try_lock().map_or(true, |db| db.is_some()),
            Backend::Postgres(pg) => pg.is_open(),
        }
    }

    /// Close the database connection if nothing uses it now; the next use opens it again.
    /// A host with thousands of idle tenants keeps neither their files (or PostgreSQL
    /// connections) open nor their page caches and parsed schemas in memory.
    pub fn release(&self) {
        match &self.backend {
            Backend::Sqlite { db, readers, .. } => {
                if let Ok(mut db) = db.try_lock() {
                    db.take();
                }
                readers.close();
            }
            // Its connection: the server keeps a process for each.
            Backend::Postgres(pg) => pg.close(),
        }
    }

    /// This database's random name (a few hex digits), fixed when it was created. Empty
    /// if the database cannot be opened (then nothing that would use it can be done).
    pub fn id(&self) -> &str {
        if self.id.get().is_none() {
            let _ = self.read(|_| Ok(()));
        }
        self.id.get().map_or("", String::as_str)
    }

    /// Run `f` in a transaction; commit if it returns `Ok`. Writers take turns: on SQLite
    /// the transaction is IMMEDIATE (the write lock is taken at the start, so two processes,
    /// `serve` and a CLI command, wait for each other up to the busy timeout instead of one
    /// failing with `SQLITE_BUSY` when a read turns into a write); on PostgreSQL it holds a
    /// transaction-level advisory lock, to the same effect across processes.
    pub fn write<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite { .. } => self.with_sqlite(|db| {
                let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            }),
            Backend::Postgres(pg) => pg.write(f),
        }
    }

    /// Run `f` for reading. On SQLite it runs in one read transaction, so what it reads is
    /// one snapshot: on the connection while no other thread of this process uses it, or
    /// else on a reader connection of its own. (A worker reads what its event needs in one
    /// `read`: each read transaction takes and drops a lock of the WAL's index.) On
    /// PostgreSQL each statement sees what was committed when it started (see
    /// `postgres.rs`).
    ///
    /// A worker reading what its event needs thus never waits for the event loop's commit
    /// or a delivery's write: in WAL mode readers and the writer do not block each other.
    /// (With one connection for everything, at 5,000 changes/s the incoming worker waited
    /// 1.5 s of a 12 s run for it, while a quarter of the two cores stood idle.)
    pub fn read<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sqlite { db, readers, .. } => {
                // Before the schema is set up (the first use), only on the connection.
                if self.id.get().is_some() {
                    match db.try_lock() {
                        Ok(mut db) if db.is_some() => {
                            let (value, ended) =
                                readers::in_read_transaction(db.as_ref().expect("open"), |db| {
                                    f(db)
                                });
                            // Still in its transaction: opened afresh by the next use.
                            if !ended {
                                db.take();
                            }
                            return value;
                        }
                        Err(std::sync::TryLockError::WouldBlock) => {
                            return readers.read(|db| f(db));
                        }
                        // Released, or poisoned: `with_sqlite` opens it or takes it over.
                        _ => {}
                    }
                }
                self.with_sqlite(|db| readers::in_read_transaction(db, |db| f(db)).0)
            }
            Backend::Postgres(pg) => pg.read(f),
        }
    }

    /// Run `f` on the SQLite connection, opened again if it was released (the schema was
    /// set up when the store was opened).
    fn with_sqlite<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let Backend::Sqlite { db, path, .. } = &self.backend else {
            unreachable!("called for the SQLite backend only");
        };
        let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
        let db = match &mut *db {
            Some(db) => db,
            closed @ None => {
                let db = open_wal(path)?;
                if self.id.get().is_none() {
                    let _ = self.id.set(set_up(&db, path)?);
                }
                closed.insert(db)
            }
        };
        f(db)
    }
}

/// Create what is missing of the schema and move old layouts on; the database's id.
fn set_up(db: &Connection, path: &Path) -> Result<String> {
    // Set up by this very schema already: only the id to read. (Running the schema's
    // statements again changes nothing, but parsing them took 2 ms per database, 20 s for
    // a host of 10,000 tenants.)
    let version: i32 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == schema_version()
        && let Some(id) = get_meta(db, "store.id")?
    {
        return Ok(id);
    }
    // Another process may be setting the same database up, and moving a large table on to
    // a new layout takes longer than the usual wait.
    db.busy_timeout(SET_UP_WAIT)?;
    let done = create_and_migrate(db, path);
    db.busy_timeout(BUSY_WAIT)?;
    done?;
    db.pragma_update(None, "user_version", schema_version())?;
    Ok(get_meta(db, "store.id")?.unwrap_or_default())
}

/// Create what is missing of the schema, in one transaction (one commit, not one per
/// statement), then move old layouts on.
fn create_and_migrate(db: &Connection, path: &Path) -> Result<()> {
    in_write_transaction(db, || {
        db.execute_batch(SCHEMA)?;
        db.execute_batch(crate::plugins::store::SCHEMA)?;
        db.execute_batch(history::SCHEMA)
            .context("cannot set up the history")?;
        // A random name for this database, part of every id it makes: a node whose
        // database was reset must not reuse ids that trackers and other nodes remember.
        db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('store.id', ?1)",
            [fresh_id()],
        )?;
        Ok(())
    })
    .with_context(|| format!("cannot set up the database in {}", path.display()))?;
    move_event_bodies(db)
        .with_context(|| format!("cannot move events' messages in {}", path.display()))?;
    spell_out_event_checks(db)
        .with_context(|| format!("cannot rebuild the events' table in {}", path.display()))?;
    keep_outbox_twins(db)
        .with_context(|| format!("cannot add the outbox's twins in {}", path.display()))?;
    keep_stamped_by(db)
        .with_context(|| format!("cannot add who wrote issues' stamps in {}", path.display()))?;
    keep_conflict_decisions(db).with_context(|| {
        format!(
            "cannot add when conflicts' decisions were sent in {}",
            path.display()
        )
    })
}

/// Databases made before the outbox kept each message's twin beside its (now compressed)
/// body get the column, once; the messages already there name their twin in their text.
fn keep_outbox_twins(db: &Connection) -> Result<()> {
    add_column(db, "outbox", "twin_id TEXT")
}

/// Databases made before an issue's stamps said which twin's outgoing event wrote them
/// (`twins::Twin::stamped_by`) get the column: NULL, which reads as written by anything
/// else, so the next outgoing event of each twin runs its processor. So does a database
/// another release opened since this one: an earlier release writes stamps without
/// clearing who wrote them.
fn keep_stamped_by(db: &Connection) -> Result<()> {
    add_column(db, "issue_stamps", "stamped_by TEXT")?;
    db.execute(
        "UPDATE issue_stamps SET stamped_by = NULL WHERE stamped_by IS NOT NULL",
        [],
    )?;
    Ok(())
}

/// Databases made before an operator's decision on a conflict was sent by the retry it
/// queues (`Node::resolve_conflict`) get the column, in one transaction with marking every
/// decision made before as sent: those were stamped as they were made.
fn keep_conflict_decisions(db: &Connection) -> Result<()> {
    in_write_transaction(db, || {
        if !has_column(db, "conflicts", "sent_at")? {
            db.execute_batch(
                "ALTER TABLE conflicts ADD COLUMN sent_at INTEGER;
                 UPDATE conflicts SET sent_at = resolved_at WHERE resolved_at IS NOT NULL;",
            )?;
        }
        db.execute_batch(
            "CREATE INDEX IF NOT EXISTS conflicts_unsent ON conflicts (twin_id) WHERE sent_at IS NULL",
        )?;
        Ok(())
    })
}

/// Add `column` (a name and its type) to `table` unless it has it.
fn add_column(db: &Connection, table: &str, column: &str) -> Result<()> {
    let name = column.split_whitespace().next().unwrap_or_default();
    in_write_transaction(db, || {
        if !has_column(db, table, name)? {
            db.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column}"))?;
        }
        Ok(())
    })
}

fn has_column(db: &Connection, table: &str, name: &str) -> Result<bool> {
    let count: i64 = db.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, name],
        |r| r.get(0),
    )?;
    Ok(count > 0)
}

/// A number that changes with the schema's text (FNV-1a of it): a database whose
/// `user_version` is this one was set up by this schema.
fn schema_version() -> i32 {
    let texts = [SCHEMA, crate::plugins::store::SCHEMA, history::SCHEMA];
    let hash = texts
        .iter()
        .flat_map(|t| t.bytes())
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    // Positive and never 0 (the value of a database nobody set up).
    (hash >> 1).max(1) as i32
}

/// Databases made before `event_bodies` existed kept each event's message and input in the
/// event's row: move them there, once.
fn move_event_bodies(db: &Connection) -> Result<()> {
    in_write_transaction(db, || {
        let old: i64 = db.query_row(
            "SELECT count(*) FROM pragma_table_info('events') WHERE name IN ('message', 'input')",
            [],
            |r| r.get(0),
        )?;
        if old == 0 {
            return Ok(());
        }
        db.execute_batch(
            "INSERT OR IGNORE INTO event_bodies (seq, message, input)
                 SELECT seq, message, input FROM events WHERE message IS NOT NULL OR input IS NOT NULL;
             ALTER TABLE events DROP COLUMN message;
             ALTER TABLE events DROP COLUMN input;",
        )?;
        Ok(())
    })
}

/// Run `change` in a write transaction of `db`, committed if it succeeds. A migration looks
/// at the layout inside it: another process opening the database at the same time finds
/// the change made once its turn comes.
fn in_write_transaction(db: &Connection, change: impl FnOnce() -> Result<()>) -> Result<()> {
    db.execute_batch("BEGIN IMMEDIATE")?;
    match change() {
        Ok(()) => Ok(db.execute_batch("COMMIT")?),
        Err(error) => {
            let _ = db.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Databases made before the events' checks compared with `=` check every insert and every
/// change of state through a temporary table (`IN` of three or more values, see
/// `schema.sql`). SQLite cannot change a table's checks in place: the table is made again
/// from the schema, with its rows, indexes, triggers and numbering, once.
fn spell_out_event_checks(db: &Connection) -> Result<()> {
    in_write_transaction(db, || {
        let table: String = db.query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get(0),
        )?;
        if !table.contains("direction IN (") && !table.contains("state IN (") {
            return Ok(());
        }
        let columns: Vec<String> = db
            .prepare("SELECT name FROM pragma_table_info('events')")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let columns = columns.join(", ");
        db.execute_batch("ALTER TABLE events RENAME TO events_before_checks")?;
        // Its indexes and triggers moved to the old table under the names the schema gives
        // them: dropped, and made again on the new table by the schema.
        let attached: Vec<(String, String)> = db
            .prepare(
                "SELECT type, name FROM sqlite_schema
                 WHERE tbl_name = 'events_before_checks' AND type IN ('index', 'trigger')
                   AND sql IS NOT NULL",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (kind, name) in attached {
            db.execute_batch(&format!("DROP {kind} \"{name}\""))?;
        }
        db.execute_batch(SCHEMA)?;
        db.execute_batch(crate::plugins::store::SCHEMA)?;
        db.execute_batch(&format!(
            "INSERT INTO events ({columns}) SELECT {columns} FROM events_before_checks;
             -- AUTOINCREMENT: the numbers of events already forgotten are never given again.
             DELETE FROM sqlite_sequence WHERE name = 'events';
             UPDATE sqlite_sequence SET name = 'events' WHERE name = 'events_before_checks';
             DROP TABLE events_before_checks;"
        ))?;
        Ok(())
    })
}

/// How long a connection waits for another's write (another process's, on the same file).
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the set-up of a database waits: another process may be moving a large table on
/// to a new layout, once.
const SET_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// A connection to a database in WAL mode, set up as every twinsync database is.
pub fn open_wal(path: &Path) -> Result<Connection> {
    let db = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode NORMAL loses nothing on a process crash: a commit is in the log before
    // it returns. (Only a power loss can take back the last commits.)
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.busy_timeout(BUSY_WAIT)?;
    // Keep each cached statement's query plan. Otherwise SQLite (3.54) marks a statement
    // for re-preparing on every new value bound to `col = ?` or `LIMIT ?`, and parsing
    // again took a fifth of the CPU of a busy node.
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // Fewer, larger checkpoints: each one syncs the database file. (Checkpointing from a
    // thread of its own instead took the syncs off the event loop, but writers then
    // stalled behind them: p99 latency doubled in the throughput benchmark.)
    db.pragma_update(None, "wal_autocheckpoint", 4000)?;
    // Every statement of the per-event path stays prepared (the default keeps 16).
    db.set_prepared_statement_cache_capacity(128);
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
pub fn get_meta(db: &dyn Sql, name: &str) -> Result<Option<String>> {
    db.value("SELECT value FROM meta WHERE name = ?1", args![name])
}

pub fn set_meta(db: &dyn Sql, name: &str, value: &str) -> Result<()> {
    db.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        args![name, value],
    )?;
    Ok(())
}

/// The next number of a counter, for ids that stay unique across restarts. In a write
/// transaction, as every caller runs it: on SQLite the number is counted and read by two
/// statements.
pub fn next_number(db: &dyn Sql, counter: &str) -> Result<i64> {
    // `value` is text: the number is cast both ways, as PostgreSQL wants (SQLite would
    // convert on its own). `meta.value`: PostgreSQL finds a bare `value` ambiguous next
    // to `excluded.value`.
    const COUNT: &str = "INSERT INTO meta (name, value) VALUES (?1, '1')
         ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)";
    match db.dialect() {
        // SQLite gathers what `RETURNING` yields in a temporary table, made and dropped per
        // statement: more work than reading the row again (every event id is counted here).
        Dialect::Sqlite => {
            db.execute(COUNT, args![counter])?;
            db.one(
                "SELECT CAST(value AS BIGINT) FROM meta WHERE name = ?1",
                args![counter],
            )
        }
        Dialect::Postgres => db.one(
            &format!("{COUNT} RETURNING CAST(value AS BIGINT)"),
            args![counter],
        ),
    }
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

    /// A read while another thread's write transaction is open goes on (on a reader
    /// connection) and sees what was committed before it, not what the write has done yet.
    #[test]
    fn a_read_does_not_wait_for_a_write_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(&dir.path().join("twinsync.db")).unwrap();
        store.write(|tx| set_meta(tx, "x", "before")).unwrap();
        let read_x = || store.read(|db| get_meta(db, "x")).unwrap();
        let (wrote, written) = std::sync::mpsc::channel();
        let (done, read) = std::sync::mpsc::channel();
        let seen = std::thread::scope(|scope| {
            let store = &store;
            let writer = scope.spawn(move || {
                store.write(|tx| {
                    set_meta(tx, "x", "after")?;
                    wrote.send(()).unwrap();
                    // Held open until the read is done: a read that waited for the
                    // connection would never be done.
                    read.recv_timeout(std::time::Duration::from_secs(10))
                        .context("the read waited for the write")
                })
            });
            written.recv().unwrap();
            done.send(read_x()).unwrap();
            writer.join().unwrap()
        });
        assert_eq!(seen.unwrap().as_deref(), Some("before"));
        assert_eq!(read_x().as_deref(), Some("after"));
    }

    /// A read that panics (a bug, caught further up, as preparing an event is) leaves no
    /// transaction open behind it: the store reads and writes on afterwards.
    #[test]
    fn a_read_that_panics_leaves_the_store_usable() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(&dir.path().join("twinsync.db")).unwrap();
        store.write(|tx| set_meta(tx, "x", "before")).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.read(|db| -> Result<()> {
                get_meta(db, "x")?;
                panic!("a bug in a read");
            })
        }));
        assert!(panicked.is_err());
        store.write(|tx| set_meta(tx, "x", "after")).unwrap();
        assert_eq!(
            store.read(|db| get_meta(db, "x")).unwrap().as_deref(),
            Some("after")
        );
    }

    /// A read on the node's own connection is one snapshot too: what another process
    /// commits between two of its statements is not seen by the second.
    #[test]
    fn a_read_on_the_connection_sees_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twinsync.db");
        let store = NodeStore::open(&path).unwrap();
        store.write(|tx| set_meta(tx, "x", "before")).unwrap();
        let other = open_wal(&path).unwrap();
        let (first, second) = store
            .read(|db| {
                let first = get_meta(db, "x")?;
                set_meta(&other, "x", "after")?;
                Ok((first, get_meta(db, "x")?))
            })
            .unwrap();
        assert_eq!(first.as_deref(), Some("before"));
        assert_eq!(
            second.as_deref(),
            Some("before"),
            "the read saw a later commit"
        );
        assert_eq!(
            store.read(|db| get_meta(db, "x")).unwrap().as_deref(),
            Some("after")
        );
    }

    /// Counters count from 1, each on its own, and read back as text through `get_meta`.
    #[test]
    fn counters_count_on_from_one() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(SCHEMA).unwrap();
        let numbers: Vec<i64> = (0..3).map(|_| next_number(&db, "x").unwrap()).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(next_number(&db, "y").unwrap(), 1);
        assert_eq!(get_meta(&db, "x").unwrap().as_deref(), Some("3"));
        set_meta(&db, "x", "41").unwrap();
        assert_eq!(next_number(&db, "x").unwrap(), 42);
    }

    /// A database made before events' messages and inputs moved to `event_bodies` opens
    /// with them where the code now looks, and nothing else of the event lost.
    #[test]
    fn an_older_database_keeps_its_events_messages_and_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twinsync.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                direction TEXT NOT NULL CHECK (direction IN ('outgoing', 'incoming', 'unexalate')),
                connection TEXT NOT NULL, twin_id TEXT NOT NULL,
                reason TEXT NOT NULL, hop INTEGER NOT NULL DEFAULT 0, message_seq INTEGER,
                message TEXT, state TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'failed', 'done', 'skipped')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at INTEGER, error_kind TEXT, error TEXT, log TEXT, input TEXT,
                note TEXT, created_at INTEGER NOT NULL, first_attempt_at INTEGER, last_attempt_at INTEGER);
             INSERT INTO events (id, direction, connection, twin_id, reason, message_seq, message, input, created_at)
                 VALUES ('m1', 'incoming', 'c', 't1', 'local-change', 1, '{\"m\":1}', '{\"i\":1}', 5),
                        ('e2', 'outgoing', 'c', 't2', 'local-change', NULL, NULL, NULL, 6);",
        )
        .unwrap();
        drop(old);

        let store = NodeStore::open(&path).unwrap();
        let first = store.read(|db| events::get(db, "m1")).unwrap().unwrap();
        assert_eq!(first.message.as_deref(), Some("{\"m\":1}"));
        assert_eq!(first.input.as_deref(), Some("{\"i\":1}"));
        assert_eq!((first.twin_id.as_str(), first.created_at), ("t1", 5));
        let second = store.read(|db| events::get(db, "e2")).unwrap().unwrap();
        assert_eq!((second.message, second.input), (None, None));
        // Its checks, too, moved on (see the next test).
        let table = store
            .read(|db| db.one::<String>("SELECT sql FROM sqlite_schema WHERE name = 'events'", &[]))
            .unwrap();
        assert!(!table.contains(" IN ("), "{table}");
        // Opened again: nothing to move, nothing moved twice.
        drop(store);
        let store = NodeStore::open(&path).unwrap();
        let first = store.read(|db| events::get(db, "m1")).unwrap().unwrap();
        assert_eq!(first.message.as_deref(), Some("{\"m\":1}"));
    }

    /// A database whose outbox did not keep each message's twin gets the column, and its
    /// messages (text, naming their twin) are sent as before.
    #[test]
    fn an_older_database_keeps_its_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twinsync.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                connection TEXT NOT NULL, body TEXT NOT NULL);
             INSERT INTO outbox (id, connection, body) VALUES ('m1', 'c', '{\"twin\":\"t1\"}'),
                 ('m2', 'c', '{\"twin\":\"t2\"}');",
        )
        .unwrap();
        drop(old);
        let store = NodeStore::open(&path).unwrap();
        let peeked = store.read(|db| outbox::peek(db, "c", 10)).unwrap();
        let t2 = ("m2".to_string(), "{\"twin\":\"t2\"}".to_string());
        assert_eq!(
            peeked,
            [
                ("m1".to_string(), "{\"twin\":\"t1\"}".to_string()),
                t2.clone()
            ]
        );
        // Held by the twin their text names: t1's waits, t2's goes.
        store
            .write(|tx| outbox::hold(tx, "m1", "c", "t1", "refused", 5))
            .unwrap();
        assert_eq!(store.read(|db| outbox::peek(db, "c", 10)).unwrap(), [t2]);
    }

    /// A database whose issues' stamps did not say who wrote them gets the column: NULL,
    /// written by anything else. So does one another release opened since.
    #[test]
    fn an_older_database_gets_who_wrote_the_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twinsync.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE issue_stamps (local_key TEXT PRIMARY KEY, stamps TEXT NOT NULL,
                stamped TEXT);
             INSERT INTO issue_stamps (local_key, stamps) VALUES ('A-1', '{}');",
        )
        .unwrap();
        drop(old);

        let store = NodeStore::open(&path).unwrap();
        store
            .write(|tx| twins::insert(tx, "t1", "c", "A-1", 5))
            .unwrap();
        let twin = store.read(|db| twins::get(db, "t1")).unwrap().unwrap();
        assert_eq!(twin.stamped_by, None);

        // Written by this release, then the database opened by another (which sets its own
        // schema version): opened here again, nobody is said to have written the stamps.
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE issue_stamps SET stamped_by = 't1 processor' WHERE local_key = 'A-1'",
                    &[],
                )
            })
            .unwrap();
        drop(store);
        let reopened = |path: &Path| {
            let store = NodeStore::open(path).unwrap();
            let twin = store.read(|db| twins::get(db, "t1")).unwrap().unwrap();
            twin.stamped_by
        };
        assert_eq!(reopened(&path).as_deref(), Some("t1 processor"));
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 1)
            .unwrap();
        assert_eq!(reopened(&path), None);
    }

    /// A database made before decisions on conflicts were sent by a retry gets the column,
    /// with the decisions made before marked sent (they were stamped as they were made):
    /// no retry sends them again.
    #[test]
    fn an_older_database_does_not_send_old_decisions_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twinsync.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE conflicts (id INTEGER PRIMARY KEY AUTOINCREMENT, twin_id TEXT NOT NULL,
                connection TEXT NOT NULL, field TEXT NOT NULL, local_value TEXT NOT NULL,
                remote_value TEXT NOT NULL, event_id TEXT NOT NULL, created_at INTEGER NOT NULL,
                resolved_at INTEGER, resolution TEXT);
             INSERT INTO conflicts (twin_id, connection, field, local_value, remote_value,
                event_id, created_at, resolved_at, resolution)
             VALUES ('t1', 'c', 'status', 'a', 'b', 'e1', 5, 6, 'local'),
                    ('t1', 'c', 'summary', 'a', 'b', 'e2', 7, NULL, NULL);",
        )
        .unwrap();
        drop(old);

        let store = NodeStore::open(&path).unwrap();
        assert_eq!(store.read(|db| conflicts::unsent(db, "t1")).unwrap(), []);
        // Decided now: unsent until an event sends it.
        store
            .write(|tx| conflicts::resolve(tx, 2, "remote", 9))
            .unwrap();
        let unsent = store.read(|db| conflicts::unsent(db, "t1")).unwrap();
        assert_eq!(
            unsent,
            [conflicts::Decided {
                id: 2,
                field: "summary".into(),
                at: 9
            }]
        );
        store.write(|tx| conflicts::sent(tx, &[2], 10)).unwrap();
        assert_eq!(store.read(|db| conflicts::unsent(db, "t1")).unwrap(), []);
    }

    /// A database whose events' checks use `IN (...)` gets the table of this schema, with
    /// its rows, numbering, indexes, triggers and checks.
    #[test]
    fn an_older_database_gets_the_events_checks_spelled_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("twinsync.db");
        let old_schema = SCHEMA
            .replace(
                "CHECK (direction = 'outgoing' OR direction = 'incoming' OR direction = 'unexalate')",
                "CHECK (direction IN ('outgoing', 'incoming', 'unexalate'))",
            )
            .replace(
                "CHECK (state = 'pending' OR state = 'failed' OR state = 'done' OR state = 'skipped')",
                "CHECK (state IN ('pending', 'failed', 'done', 'skipped'))",
            );
        assert_ne!(old_schema, SCHEMA, "the test no longer makes the old table");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&old_schema).unwrap();
        old.execute_batch(crate::plugins::store::SCHEMA).unwrap();
        old.execute_batch(
            "INSERT INTO events (id, direction, connection, twin_id, reason, message_seq, state, created_at)
                 VALUES ('m1', 'incoming', 'c', 't1', 'local-change', 1, 'done', 5),
                        ('e2', 'outgoing', 'c', 't2', 'local-change', NULL, 'pending', 6),
                        ('e3', 'outgoing', 'c', 't2', 'local-change', NULL, 'pending', 7);
             INSERT INTO event_bodies (seq, input) VALUES (1, 'i1'), (2, 'i2');
             DELETE FROM events WHERE id = 'e3';",
        )
        .unwrap();
        drop(old);

        let store = NodeStore::open(&path).unwrap();
        let check = |sql: &str| store.read(|db| db.one::<String>(sql, &[])).unwrap();
        let table = check("SELECT sql FROM sqlite_schema WHERE name = 'events'");
        assert!(!table.contains(" IN ("), "{table}");
        let attached = check(
            "SELECT group_concat(name, ' ') FROM
             (SELECT name FROM sqlite_schema WHERE tbl_name = 'events' AND sql IS NOT NULL
              AND type IN ('index', 'trigger') ORDER BY name)",
        );
        assert_eq!(
            attached,
            "event_bodies_go_with_their_event event_plugins_forget events_by_state \
             events_open_by_twin events_received_by_twin"
        );
        let m1 = store.read(|db| events::get(db, "m1")).unwrap().unwrap();
        assert_eq!((m1.twin_id.as_str(), m1.created_at), ("t1", 5));
        assert_eq!(m1.input.as_deref(), Some("i1"));
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO events (id, direction, connection, twin_id, reason, created_at)
                     VALUES ('e4', 'outgoing', 'c', 't2', 'local-change', 8)",
                    &[],
                )?;
                // The number of the forgotten e3 is not given again.
                assert_eq!(
                    tx.one::<i64>("SELECT seq FROM events WHERE id = 'e4'", &[])?,
                    4
                );
                let refused = tx.execute("UPDATE events SET state = 'gone' WHERE id = 'e4'", &[]);
                assert!(refused.is_err(), "the state's check is gone");
                // An event still takes its body with it.
                tx.execute("DELETE FROM events WHERE id = 'e2'", &[])?;
                assert_eq!(tx.one::<i64>("SELECT count(*) FROM event_bodies", &[])?, 1);
                Ok(())
            })
            .unwrap();
        // Opened again: the same rows and numbering, and nothing of the rebuild left over.
        drop(store);
        let store = NodeStore::open(&path).unwrap();
        let left = store
            .read(|db| {
                db.one::<String>(
                    "SELECT (SELECT count(*) FROM events) || ' ' ||
                            (SELECT group_concat(name || '=' || seq) FROM sqlite_sequence) || ' ' ||
                            (SELECT count(*) FROM sqlite_schema WHERE name = 'events_before_checks')",
                    &[],
                )
            })
            .unwrap();
        assert_eq!(left, "2 events=4 0");
    }

    /// An event's body goes with it when finished events are forgotten.
    #[test]
    fn a_forgotten_event_takes_its_body_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(&dir.path().join("twinsync.db")).unwrap();
        let bodies = |store: &NodeStore| {
            store
                .read(|db| db.one::<i64>("SELECT count(*) FROM event_bodies", &[]))
                .unwrap()
        };
        store
            .write(|tx| {
                let message = bodies::pack(sql::Dialect::Sqlite, "{}")?;
                for (id, seq) in [("m1", 1), ("m2", 2)] {
                    events::insert(
                        tx,
                        &events::NewEvent {
                            id,
                            kind: events::Kind::Incoming,
                            connection: "c",
                            twin_id: "t",
                            reason: crate::model::SyncReason::LocalChange,
                            hop: 0,
                            message_seq: Some(seq),
                            message: Some(&message),
                        },
                        0,
                    )?;
                }
                tx.execute("UPDATE events SET state = 'done'", &[])?;
                Ok(())
            })
            .unwrap();
        assert_eq!(bodies(&store), 2);
        // The last message of the twin stays (see `forget_finished`); the other goes.
        let forgotten = store
            .write(|tx| events::forget_finished(tx, 1, 10))
            .unwrap();
        assert_eq!(forgotten, 1);
        assert_eq!(bodies(&store), 1);
    }
}
