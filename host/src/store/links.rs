//! Comment links: which local comment is a copy of which remote one, per twin.

use anyhow::Result;

use super::sql::{Sql, args};

/// Local comment `local_id` is the copy of the other side's comment `remote_id`.
pub fn link(db: &dyn Sql, twin_id: &str, local_id: &str, remote_id: &str) -> Result<()> {
    db.execute(
        "INSERT INTO comment_links (twin_id, local_id, remote_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (twin_id, local_id) DO UPDATE SET remote_id = excluded.remote_id",
        args![twin_id, local_id, remote_id],
    )?;
    Ok(())
}

/// Every link of a twin, as (local id, remote id).
pub fn all(db: &dyn Sql, twin_id: &str) -> Result<Vec<(String, String)>> {
    db.rows(
        "SELECT local_id, remote_id FROM comment_links WHERE twin_id = ?1",
        args![twin_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
