//! Several processes of one node on one store (PostgreSQL): claims, so that each issue's
//! events run in one process at a time and in order, and leaders, so that one process at a
//! time sends a connection's outbox and reads the tracker's changes. See
//! docs/postgres-workers.md.
//!
//! On SQLite one process has the store (`serve` locks its data directory; a CLI command
//! only writes under the write lock), so every claim and every role is held already.

use std::time::Duration;

use anyhow::Result;

use super::sql::Sql;
use super::{Backend, NodeStore};

/// How long a claim or a role lasts unless renewed. Its holder renews it every round of its
/// loop (milliseconds apart); a killed process's work is taken over this long after.
pub const LEASE: Duration = Duration::from_secs(5);

fn lease_ms() -> i64 {
    LEASE.as_millis() as i64
}

impl NodeStore {
    /// Whether other processes may work on this store at the same time.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Claim `issues` (see `sync::batch::issue_of`) for this process: for each, whether it
    /// holds it now.
    pub fn claim(&self, issues: &[String]) -> Result<Vec<bool>> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(vec![true; issues.len()]),
            Backend::Postgres(pg) => {
                let won: std::collections::HashSet<String> =
                    pg.claim(issues, lease_ms())?.into_iter().collect();
                Ok(issues.iter().map(|i| won.contains(i)).collect())
            }
        }
    }

    /// Renew this process's claims on `issues` (the ones it works on); the others run out.
    pub fn renew_claims(&self, issues: &[String]) -> Result<()> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(()),
            Backend::Postgres(pg) => pg.renew_claims(issues, lease_ms()),
        }
    }

    /// Whether this process still holds `issue`, checked in the transaction that commits
    /// its event (and kept until it ends).
    pub fn holds_claim(&self, tx: &dyn Sql, issue: &str) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(true),
            Backend::Postgres(pg) => pg.holds(tx, issue),
        }
    }

    /// Give `issue` up, in the transaction that committed its event.
    pub fn release_claim(&self, tx: &dyn Sql, issue: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(()),
            Backend::Postgres(pg) => pg.release(tx, issue),
        }
    }

    /// Take or keep `role` (`send:CONNECTION`, `poll`): whether this process holds it.
    pub fn lead(&self, role: &str) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(true),
            Backend::Postgres(pg) => pg.lead(role, lease_ms()),
        }
    }

    /// The bytes its tables take on PostgreSQL (with their indexes and out-of-line values),
    /// in its schema; `None` on SQLite, whose files say it.
    pub fn stored_bytes(&self) -> Result<Option<u64>> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(None),
            Backend::Postgres(pg) => {
                let bytes: i64 = pg.read(|db| {
                    db.one(
                        "SELECT CAST(coalesce(sum(pg_total_relation_size(c.oid)), 0) AS BIGINT)
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                        &[],
                    )
                })?;
                Ok(Some(u64::try_from(bytes).unwrap_or(0)))
            }
        }
    }

    /// Give `role` up (this process stops).
    pub fn resign(&self, role: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(()),
            Backend::Postgres(pg) => pg.resign(role),
        }
    }
}
