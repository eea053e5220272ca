//! Settling a conflict held for review: the operator picks a side, the chosen value is
//! written here if it is the remote one, and a retry of the twin sends it to the other side
//! stamped with the time of the decision, so that the other side takes it too.

use anyhow::{Context, Result, anyhow, bail};

use super::node::Node;
use crate::model::SyncReason;
use crate::model::fields::{self, FieldStamps, Stamp};
use crate::store::conflicts;
use crate::store::events::Kind;
use crate::store::twins::{self, Twin};
use crate::tracker::{Origin, TrackerError};

/// Which value an operator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Take {
    Local,
    Remote,
}

impl Node {
    /// Settle open conflict `id` by keeping the `take` side's value.
    pub fn resolve_conflict(&self, id: i64, take: Take) -> Result<()> {
        let conflict = self
            .store
            .read(|db| conflicts::get(db, id))?
            .filter(|c| c.resolved_at.is_none())
            .ok_or_else(|| {
                anyhow!("there is no open conflict {id} (see `twinsync conflicts list`)")
            })?;
        let twin = self
            .store
            .read(|db| twins::get(db, &conflict.twin_id))?
            .ok_or_else(|| anyhow!("the twin of conflict {id} is no longer under sync"))?;
        let mut settled = false;
        for _ in 0..5 {
            let mut issue = self
                .tracker
                .get(&twin.local_key)?
                .with_context(|| format!("the local issue {} no longer exists", twin.local_key))?;
            if take == Take::Local {
                settled = true;
                break;
            }
            let remote = twin
                .last_received
                .as_ref()
                .ok_or_else(|| anyhow!("nothing was received for this twin"))?;
            let seen = issue.clone();
            if !fields::copy(&conflict.field, remote, &mut issue) {
                bail!("unknown field `{}`", conflict.field);
            }
            // Written as twinsync, not as a person: the decision is sent once, by the retry
            // queued below. Only onto the issue as read: an edit made meanwhile is read
            // again, not overwritten.
            let write = format!("{}-conflict-{id}", self.store.id());
            match self
                .tracker
                .update_if(&issue, Origin::Sync { event_id: &write }, Some(&seen))
            {
                Ok(_) => {
                    settled = true;
                    break;
                }
                Err(TrackerError::Changed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !settled {
            bail!("issue {} kept changing: try again", twin.local_key);
        }
        let now = self.now_ms();
        // The decision is stamped and sent by the retry queued here, in the twin's order: an
        // event of the twin under way now commits before it, and cannot write its stamps
        // over the decision's.
        self.store.write(|tx| {
            let open = conflicts::get(tx, id)?.is_some_and(|c| c.resolved_at.is_none());
            if !open {
                bail!("conflict {id} was settled meanwhile");
            }
            if twins::get(tx, &conflict.twin_id)?.is_none() {
                bail!("the twin of conflict {id} is no longer under sync");
            }
            conflicts::resolve(
                tx,
                id,
                if take == Take::Local {
                    "local"
                } else {
                    "remote"
                },
                now,
            )?;
            self.queue(
                tx,
                Kind::Outgoing,
                &twin.connection,
                &twin.twin_id,
                SyncReason::Retry,
                0,
                now,
            )?;
            if take == Take::Remote {
                self.pass_on(tx, &twin.local_key, &twin.connection, now)?;
            }
            Ok(())
        })
    }
}

/// The stamp of a value an operator kept, decided at `at`: a new write that replaces the
/// other side's, so the other side takes it as a later change, not as another conflict.
pub(super) fn decision_stamp(
    twin: &Twin,
    stamps: &FieldStamps,
    field: &str,
    at: i64,
    instance: &str,
) -> Stamp {
    let theirs = twin.remote_stamps.get(field).cloned().unwrap_or_default();
    let mine = stamps.get(field).cloned().unwrap_or_default();
    let after = theirs.key().max(mine.key()).0;
    Stamp {
        at: at.max(after + 1),
        by: instance.to_string(),
        replaced_at: theirs.at,
        replaced_by: theirs.by,
    }
}
