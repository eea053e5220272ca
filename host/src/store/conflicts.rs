//! Conflicts held for review: fields changed on both sides that an operator settles.

use anyhow::{Result, bail};
use serde::Serialize;

use super::sql::{Row, Sql, args};

/// A conflict as operators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Conflict {
    pub id: i64,
    pub twin_id: String,
    pub connection: String,
    pub field: String,
    pub local_value: String,
    pub remote_value: String,
    pub event_id: String,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub resolution: Option<String>,
}

fn from_row(row: &dyn Row) -> Result<Conflict> {
    Ok(Conflict {
        id: row.get(0)?,
        twin_id: row.get(1)?,
        connection: row.get(2)?,
        field: row.get(3)?,
        local_value: row.get(4)?,
        remote_value: row.get(5)?,
        event_id: row.get(6)?,
        created_at: row.get(7)?,
        resolved_at: row.get(8)?,
        resolution: row.get(9)?,
    })
}

const COLUMNS: &str = "id, twin_id, connection, field, local_value, remote_value, event_id, created_at, resolved_at, resolution";

/// Record a conflict; an open one on the same field of the twin is replaced by it, and so is
/// a decision on that field not sent yet: it was made on the values of the conflict before,
/// and sent now it would replace the other side's newer write without anyone seeing it.
#[allow(clippy::too_many_arguments)]
pub fn record(
    db: &dyn Sql,
    twin_id: &str,
    connection: &str,
    field: &str,
    local_value: &str,
    remote_value: &str,
    event_id: &str,
    now_ms: i64,
) -> Result<()> {
    db.execute(
        "DELETE FROM conflicts WHERE twin_id = ?1 AND field = ?2 AND resolved_at IS NULL",
        args![twin_id, field],
    )?;
    db.execute(
        "UPDATE conflicts SET sent_at = ?3
         WHERE twin_id = ?1 AND field = ?2 AND sent_at IS NULL AND resolved_at IS NOT NULL",
        args![twin_id, field, now_ms],
    )?;
    db.execute(
        "INSERT INTO conflicts (twin_id, connection, field, local_value, remote_value, event_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![twin_id, connection, field, local_value, remote_value, event_id, now_ms],
    )?;
    Ok(())
}

/// Open conflicts, oldest first.
pub fn open(db: &dyn Sql) -> Result<Vec<Conflict>> {
    let sql = format!("SELECT {COLUMNS} FROM conflicts WHERE resolved_at IS NULL ORDER BY id");
    db.rows(&sql, &[], from_row)
}

pub fn get(db: &dyn Sql, id: i64) -> Result<Option<Conflict>> {
    let sql = format!("SELECT {COLUMNS} FROM conflicts WHERE id = ?1");
    db.row(&sql, args![id], from_row)
}

/// Close an open conflict with how it was settled.
pub fn resolve(db: &dyn Sql, id: i64, resolution: &str, now_ms: i64) -> Result<()> {
    let changed = db.execute(
        "UPDATE conflicts SET resolved_at = ?2, resolution = ?3 WHERE id = ?1 AND resolved_at IS NULL",
        args![id, now_ms, resolution],
    )?;
    if changed == 0 {
        bail!("there is no open conflict {id} (see `twinsync conflicts list`)");
    }
    Ok(())
}

/// An operator's decision on a conflict of a twin that was not sent yet: which field's value
/// was kept, and when it was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub id: i64,
    pub field: String,
    pub at: i64,
}

/// The decisions made on twin `twin_id`'s conflicts that no event has sent yet, oldest
/// first (a conflict that converged on its own has nothing to send).
pub fn unsent(db: &dyn Sql, twin_id: &str) -> Result<Vec<Decided>> {
    db.rows(
        "SELECT id, field, resolved_at FROM conflicts
         WHERE twin_id = ?1 AND sent_at IS NULL AND (resolution = 'local' OR resolution = 'remote')
         ORDER BY id",
        args![twin_id],
        |r| {
            Ok(Decided {
                id: r.get(0)?,
                field: r.get(1)?,
                at: r.get(2)?,
            })
        },
    )
}

/// Mark decisions sent (by the event that committed them).
pub fn sent(db: &dyn Sql, ids: &[i64], now_ms: i64) -> Result<()> {
    for id in ids {
        db.execute(
            "UPDATE conflicts SET sent_at = ?2 WHERE id = ?1",
            args![*id, now_ms],
        )?;
    }
    Ok(())
}

/// Close the open conflicts of a twin on the fields that are not in `still_differ`: both
/// sides hold the same value now.
pub fn close_converged(
    db: &dyn Sql,
    twin_id: &str,
    still_differ: &[String],
    now_ms: i64,
) -> Result<()> {
    let sql = format!("SELECT {COLUMNS} FROM conflicts WHERE twin_id = ?1 AND resolved_at IS NULL");
    let open: Vec<Conflict> = db.rows(&sql, args![twin_id], from_row)?;
    for conflict in open.iter().filter(|c| !still_differ.contains(&c.field)) {
        resolve(db, conflict.id, "converged", now_ms)?;
    }
    Ok(())
}
