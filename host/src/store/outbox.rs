//! Messages made by this node and not yet acknowledged by the other node.

use super::sql::{Dialect, Sql, args};
use anyhow::{Context, Result, bail};

pub fn insert(db: &dyn Sql, id: &str, connection: &str, body: &str) -> Result<()> {
    db.execute(
        "INSERT INTO outbox (id, connection, body) VALUES (?1, ?2, ?3)",
        args![id, connection, body],
    )?;
    Ok(())
}

/// The oldest unacknowledged messages of a connection, in the order they were made, but
/// none of a twin with a held message (see [`hold`]).
pub fn peek(db: &dyn Sql, connection: &str, limit: usize) -> Result<Vec<(String, String)>> {
    // The twin is read from the body only while some twin of the connection is held.
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT id, body FROM outbox
             WHERE connection = ?1
               AND (NOT EXISTS (SELECT 1 FROM outbox_held WHERE connection = ?1)
                    OR json_extract(body, '$.twin') NOT IN
                       (SELECT twin_id FROM outbox_held WHERE connection = ?1))
             ORDER BY seq LIMIT ?2"
        }
        Dialect::Postgres => {
            "SELECT id, body FROM outbox
             WHERE connection = ?1
               AND (NOT EXISTS (SELECT 1 FROM outbox_held WHERE connection = ?1)
                    OR (body::jsonb ->> 'twin') NOT IN
                       (SELECT twin_id FROM outbox_held WHERE connection = ?1))
             ORDER BY seq LIMIT ?2"
        }
    };
    db.rows(sql, args![connection, limit], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

/// The other node has the message: forget it.
pub fn remove(db: &dyn Sql, id: &str) -> Result<()> {
    db.execute("DELETE FROM outbox WHERE id = ?1", args![id])?;
    db.execute("DELETE FROM outbox_held WHERE id = ?1", args![id])?;
    Ok(())
}

/// The other node refused message `id` for good: keep it, and hold back its twin's
/// messages (only those) until an operator retries or skips it.
pub fn hold(
    db: &dyn Sql,
    id: &str,
    connection: &str,
    twin_id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<()> {
    db.execute(
        "INSERT INTO outbox_held (id, connection, twin_id, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET reason = excluded.reason, at = excluded.at",
        args![id, connection, twin_id, reason, now_ms],
    )?;
    Ok(())
}

/// Whether message `id` is held.
pub fn is_held(db: &dyn Sql, id: &str) -> Result<bool> {
    db.exists("SELECT 1 FROM outbox_held WHERE id = ?1", args![id])
}

/// Send a held message again (the other node was fixed, say).
pub fn release(db: &dyn Sql, id: &str) -> Result<()> {
    db.execute("DELETE FROM outbox_held WHERE id = ?1", args![id])?;
    Ok(())
}

/// Drop a held message for good. The other node still expects its number for the twin,
/// so the twin's later messages (none of which it has: they waited behind this one) move
/// down by one, and so does the twin's count of messages sent. Returns the twin.
pub fn drop_held(db: &dyn Sql, id: &str) -> Result<String> {
    let Some((connection, twin_id)): Option<(String, String)> = db.row(
        "SELECT connection, twin_id FROM outbox_held WHERE id = ?1",
        args![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    else {
        bail!("message `{id}` is not held");
    };
    let rows: Vec<(i64, String, String)> = db.rows(
        "SELECT seq, id, body FROM outbox WHERE connection = ?1 ORDER BY seq",
        args![&connection],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
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
            db.execute(
                "UPDATE outbox SET body = ?2 WHERE seq = ?1",
                args![row, &message.to_string()],
            )?;
        }
    }
    remove(db, id)?;
    // (`sent_seq` is never 0 here: the held message had a number.)
    db.execute(
        "UPDATE twins SET sent_seq = sent_seq - 1
         WHERE twin_id = ?1 AND connection = ?2 AND sent_seq > 0",
        args![&twin_id, &connection],
    )?;
    Ok(twin_id)
}

/// Unacknowledged messages per connection.
pub fn counts(db: &dyn Sql) -> Result<Vec<(String, i64)>> {
    db.rows(
        "SELECT connection, count(*) FROM outbox GROUP BY connection",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
