//! Messages made by this node and not yet acknowledged by the other node.
//!
//! A message's body is stored packed (compressed on SQLite, see [`bodies::pack`]): a message
//! of a realistic issue is kilobytes of JSON, which as text overflowed into pages of their
//! own, written when the message was made and again when it was acknowledged (a quarter of
//! the pages a sending node wrote). Its twin is kept beside it, for holding back the twin's
//! messages; messages stored before have their twin read from their text.

use super::bodies::{self, Packed};
use super::sql::{Dialect, Row, Sql, args};
use anyhow::{Context, Result, bail};

/// Queue message `id` of twin `twin_id`, its `body` packed.
pub fn insert(
    db: &dyn Sql,
    id: &str,
    connection: &str,
    twin_id: &str,
    body: &Packed,
) -> Result<()> {
    db.execute(
        "INSERT INTO outbox (id, connection, twin_id, body) VALUES (?1, ?2, ?3, ?4)",
        args![id, connection, twin_id, body.value()],
    )?;
    Ok(())
}

/// The oldest unacknowledged messages of a connection, in the order they were made, but
/// none of a twin with a held message (see [`hold`]).
pub fn peek(db: &dyn Sql, connection: &str, limit: usize) -> Result<Vec<(String, String)>> {
    // The twins are compared only while some twin of the connection is held. A message
    // stored before its twin was kept beside it has its twin read from its text (`CASE`:
    // never from a compressed body).
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT id, body FROM outbox
             WHERE connection = ?1
               AND (NOT EXISTS (SELECT 1 FROM outbox_held WHERE connection = ?1)
                    OR CASE WHEN twin_id IS NOT NULL THEN twin_id
                            ELSE json_extract(body, '$.twin') END NOT IN
                       (SELECT twin_id FROM outbox_held WHERE connection = ?1))
             ORDER BY seq LIMIT ?2"
        }
        Dialect::Postgres => {
            "SELECT id, body FROM outbox
             WHERE connection = ?1
               AND (NOT EXISTS (SELECT 1 FROM outbox_held WHERE connection = ?1)
                    OR CASE WHEN twin_id IS NOT NULL THEN twin_id
                            ELSE body::jsonb ->> 'twin' END NOT IN
                       (SELECT twin_id FROM outbox_held WHERE connection = ?1))
             ORDER BY seq LIMIT ?2"
        }
    };
    db.rows(sql, args![connection, limit], |r| {
        Ok((r.get(0)?, unpacked(r, 1)?))
    })
}

/// Column `index` of an outbox row, a message's body, as text.
fn unpacked(row: &dyn Row, index: usize) -> Result<String> {
    bodies::unpack(row.value(index)?)
        .with_context(|| format!("column {index}"))?
        .with_context(|| format!("column {index} is NULL"))
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
        |r| Ok((r.get(0)?, r.get(1)?, unpacked(r, 2)?)),
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
            // Packed, so its twin goes beside it (a message stored before had none).
            let body = bodies::pack(db.dialect(), &message.to_string())?;
            db.execute(
                "UPDATE outbox SET body = ?2, twin_id = ?3 WHERE seq = ?1",
                args![row, body.value(), &twin_id],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeStore;

    fn body(twin: &str, seq: i64) -> String {
        serde_json::json!({"twin": twin, "seq": seq}).to_string()
    }

    /// Messages are stored compressed with their twin beside them; a held twin's messages
    /// (only those) wait, whether stored now or as text by an earlier version, which named
    /// its twin only in its text; dropping a held message renumbers the twin's later ones,
    /// packing those stored as text, with their twin.
    #[test]
    fn a_held_twin_holds_back_its_messages_stored_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(&dir.path().join("node.db")).unwrap();
        store
            .write(|tx| {
                let tx: &dyn Sql = tx;
                // As an earlier version stored them: text, no twin beside it.
                for (id, twin, seq) in [("m1", "t1", 1), ("m2", "t2", 1), ("m3", "t1", 2)] {
                    tx.execute(
                        "INSERT INTO outbox (id, connection, body) VALUES (?1, 'c', ?2)",
                        args![id, body(twin, seq).as_str()],
                    )?;
                }
                for (id, twin, seq) in [("m4", "t2", 2), ("m5", "t1", 3)] {
                    let packed = bodies::pack(tx.dialect(), &body(twin, seq))?;
                    insert(tx, id, "c", twin, &packed)?;
                }
                let types: String = tx.one(
                    "SELECT group_concat(typeof(body) || ' ' || coalesce(twin_id, '-'), ', ')
                     FROM outbox",
                    &[],
                )?;
                assert_eq!(
                    types, "text -, text -, text -, blob t2, blob t1",
                    "compressed, with the twin beside it"
                );
                let ids = |tx: &dyn Sql| -> Result<Vec<String>> {
                    Ok(peek(tx, "c", 10)?.into_iter().map(|(id, _)| id).collect())
                };
                assert_eq!(ids(tx)?, ["m1", "m2", "m3", "m4", "m5"]);
                assert_eq!(peek(tx, "c", 10)?[2].1, body("t1", 2), "read back as text");

                hold(tx, "m1", "c", "t1", "refused", 5)?;
                assert_eq!(ids(tx)?, ["m2", "m4"], "t1's messages wait, both kinds");
                drop_held(tx, "m1")?;
                let left = peek(tx, "c", 10)?;
                let seqs: Vec<(&str, String)> = left
                    .iter()
                    .map(|(id, b)| (id.as_str(), b.clone()))
                    .collect();
                assert_eq!(
                    seqs,
                    [
                        ("m2", body("t2", 1)),
                        ("m3", body("t1", 1)),
                        ("m4", body("t2", 2)),
                        ("m5", body("t1", 2)),
                    ]
                );
                // The old message renumbered is packed now, with its twin beside it: holding
                // another twin compares it by that, not by its (compressed) text.
                hold(tx, "m2", "c", "t2", "refused", 6)?;
                assert_eq!(ids(tx)?, ["m3", "m5"]);
                Ok(())
            })
            .unwrap();
    }
}
