//! Connections that read a SQLite database (WAL) while its writing connection is busy. In
//! WAL mode readers and the writer do not block each other, so a thread that only reads
//! need not wait for another thread's write transaction, and its commit, to end.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Result;
use rusqlite::Connection;

/// Idle connections kept: about the threads of a node that read at once (its event loop,
/// workers, deliveries). More are opened when needed and closed after use.
const IDLE: usize = 4;

/// The reader connections of one database file, opened when first needed. (The reference
/// tracker has none: with them a node saw edits sooner under overload, fewer of them
/// travelled together, and with realistic issues about a fifth fewer changes per second
/// were synced.)
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(path: &Path) -> Self {
        Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Run `f` in a read transaction on a reader connection: one snapshot for everything
    /// `f` reads, as on a writing connection nothing else writes meanwhile.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let db = match idle {
            Some(db) => db,
            None => {
                let db = super::open_wal(&self.path)?;
                // What a reader runs must not write: it fails loudly here rather than
                // write outside the writers' turns.
                db.pragma_update(None, "query_only", true)?;
                db
            }
        };
        let (value, ended) = in_read_transaction(&db, f);
        if ended {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE {
                idle.push(db);
            }
        }
        value
    }

    /// Close the idle connections (the next read opens one again).
    pub fn close(&self) {
        if let Ok(mut idle) = self.idle.try_lock() {
            idle.clear();
        }
    }
}

/// Run `f` in one read transaction on `db`: one snapshot for everything it reads, and one
/// lock of the WAL's index for all its statements where each statement on its own takes
/// and drops one (an `fcntl` each way, 3 % of a busy node's CPU). Also whether `db` is out
/// of the transaction again: a connection that is not must not be used as it is.
pub fn in_read_transaction<T>(
    db: &Connection,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> (Result<T>, bool) {
    // Cached statements: a busy node begins and ends thousands of these a second.
    if let Err(error) = db
        .prepare_cached("BEGIN")
        .and_then(|mut begin| begin.execute([]))
    {
        return (Err(error.into()), db.is_autocommit());
    }
    // Neither a panic in `f` (a bug, caught further up) nor an end that failed may leave
    // the transaction open: every later read and write of the connection would fail.
    let open = RollbackIfOpen(db);
    let value = f(db);
    let end = if value.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = db.prepare_cached(end).and_then(|mut end| end.execute([]));
    drop(open);
    let out = ended.is_ok() && db.is_autocommit();
    // `f`'s own error first: it says more than a failed end of its transaction.
    let value = match (value, ended) {
        (Err(error), _) => Err(error),
        (Ok(_), Err(error)) => Err(error.into()),
        (Ok(value), Ok(_)) => Ok(value),
    };
    (value, out)
}

/// Rolls back the connection's transaction if it is still open when dropped.
struct RollbackIfOpen<'a>(&'a Connection);

impl Drop for RollbackIfOpen<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader goes on while another connection holds a write transaction open, and sees
    /// the state before it; once committed, the next read sees the write.
    #[test]
    fn a_read_does_not_wait_for_a_write_and_sees_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = super::super::open_wal(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let readers = Readers::new(&path);
        let sum = |readers: &Readers| {
            readers
                .read(|db| Ok(db.query_row("SELECT sum(v) FROM t", [], |r| r.get::<_, i64>(0))?))
                .unwrap()
        };

        writer
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2);")
            .unwrap();
        assert_eq!(
            sum(&readers),
            1,
            "the write in progress is not seen, nor waited for"
        );
        writer.execute_batch("COMMIT").unwrap();
        assert_eq!(sum(&readers), 3);
    }

    /// A reader refuses to write, and its connection goes on reading afterwards.
    #[test]
    fn a_reader_refuses_to_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        super::super::open_wal(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (v INTEGER)")
            .unwrap();
        let readers = Readers::new(&path);
        let wrote = readers.read(|db| Ok(db.execute("INSERT INTO t VALUES (1)", [])?));
        assert!(wrote.is_err(), "a reader wrote: {wrote:?}");
        let count = readers
            .read(|db| Ok(db.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?))
            .unwrap();
        assert_eq!(count, 0);
    }
}
