//! Messages made by this node and not yet acknowledged by the other node.

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};

pub fn insert(db: &Connection, id: &str, connection: &str, body: &str) -> Result<()> {
    db.prepare_cached("INSERT INTO outbox (id, connection, body) VALUES (?1, ?2, ?3)")?
        .execute(params![id, connection, body])?;
    Ok(())
}

/// The oldest unacknowledged messages of a connection, in the order they were made, but
/// none of a twin with a held message (see [`hold`]).
pub fn peek(db: &Connection, connection: &str, limit: usize) -> Result<Vec<(String, String)>> {
    // The twin is read from the body only while some twin of the connection is held.
    let mut stmt = db.prepare_cached(
        "SELECT id, body FROM outbox
         WHERE connection = ?1
           AND (NOT EXISTS (SELECT 1 FROM outbox_held WHERE connection = ?1)
                OR json_extract(body, '$.twin') NOT IN
                   (SELECT twin_id FROM outbox_held WHERE connection = ?1))
         ORDER BY seq LIMIT ?2",
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
    db.prepare_cached("DELETE FROM outbox_held WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// The other node refused message `id` for good: keep it, and hold back its twin's
/// messages (only those) until an operator retries or skips it.
pub fn hold(
    db: &Connection,
    id: &str,
    connection: &str,
    twin_id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<()> {
    db.prepare_cached(
        "INSERT INTO outbox_held (id, connection, twin_id, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET reason = excluded.reason, at = excluded.at",
    )?
    .execute(params![id, connection, twin_id, reason, now_ms])?;
    Ok(())
}

/// Whether message `id` is held.
pub fn is_held(db: &Connection, id: &str) -> Result<bool> {
    Ok(db
        .prepare_cached("SELECT 1 FROM outbox_held WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Send a held message again (the other node was fixed, say).
pub fn release(db: &Connection, id: &str) -> Result<()> {
    db.prepare_cached("DELETE FROM outbox_held WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Drop a held message for good. The other node still expects its number for the twin,
/// so the twin's later messages (none of which it has: they waited behind this one) move
/// down by one, and so does the twin's count of messages sent. Returns the twin.
pub fn drop_held(db: &Connection, id: &str) -> Result<String> {
    let Some((connection, twin_id)): Option<(String, String)> = db
        .prepare_cached("SELECT connection, twin_id FROM outbox_held WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    else {
        bail!("message `{id}` is not held");
    };
    let mut stmt =
        db.prepare_cached("SELECT seq, id, body FROM outbox WHERE connection = ?1 ORDER BY seq")?;
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([&connection], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut later = false;
    for (row, row_id, body) in rows {
        let mut message: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("outbox message {row_id}"))?;
        if message["twin"].as_str() != Some(twin_id.as_str()) {
            continue;
        }
        if row_id == id {
            later = true;
            continue;
        }
        if later && let Some(seq) = message["seq"].as_i64() {
            message["seq"] = (seq - 1).into();
            db.prepare_cached("UPDATE outbox SET body = ?2 WHERE seq = ?1")?
                .execute(params![row, message.to_string()])?;
        }
    }
    remove(db, id)?;
    db.prepare_cached(
        "UPDATE twins SET sent_seq = max(sent_seq - 1, 0) WHERE twin_id = ?1 AND connection = ?2",
    )?
    .execute([&twin_id, &connection])?;
    Ok(twin_id)
}

/// Unacknowledged messages per connection.
pub fn counts(db: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt = db.prepare("SELECT connection, count(*) FROM outbox GROUP BY connection")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
