//! Comment links: which local comment is a copy of which remote one, per twin.

use anyhow::Result;
use rusqlite::{Connection, params};

/// Local comment `local_id` is the copy of the other side's comment `remote_id`.
pub fn link(db: &Connection, twin_id: &str, local_id: &str, remote_id: &str) -> Result<()> {
    db.prepare_cached(
        "INSERT OR REPLACE INTO comment_links (twin_id, local_id, remote_id) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![twin_id, local_id, remote_id])?;
    Ok(())
}

/// Every link of a twin, as (local id, remote id).
pub fn all(db: &Connection, twin_id: &str) -> Result<Vec<(String, String)>> {
    let mut stmt =
        db.prepare_cached("SELECT local_id, remote_id FROM comment_links WHERE twin_id = ?1")?;
    let rows = stmt.query_map([twin_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
