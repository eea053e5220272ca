//! Messages made by this node and not yet acknowledged by the other node.

use anyhow::Result;
use rusqlite::{Connection, params};

pub fn insert(db: &Connection, id: &str, connection: &str, body: &str) -> Result<()> {
    db.prepare_cached("INSERT INTO outbox (id, connection, body) VALUES (?1, ?2, ?3)")?
        .execute(params![id, connection, body])?;
    Ok(())
}

/// The oldest unacknowledged messages of a connection, in the order they were made.
pub fn peek(db: &Connection, connection: &str, limit: usize) -> Result<Vec<(String, String)>> {
    let mut stmt = db.prepare_cached(
        "SELECT id, body FROM outbox WHERE connection = ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![connection, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The other node has the message: forget it.
pub fn remove(db: &Connection, id: &str) -> Result<()> {
    db.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Unacknowledged messages per connection.
pub fn counts(db: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = db.prepare("SELECT connection, count(*) FROM outbox GROUP BY connection")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
