//! Settling a conflict held for review: the operator picks a side, the chosen value is
//! written here if it is the remote one, and it is sent to the other side stamped with the
//! time of the decision, so that the other side takes it too.

use anyhow::{Context, Result, anyhow, bail};

use super::node::Node;
use crate::model::SyncReason;
use crate::model::fields;
use crate::store::events::Kind;
use crate::store::{conflicts, twins};
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
        let mut local = None;
        for _ in 0..5 {
            let mut issue = self
                .tracker
                .get(&twin.local_key)?
                .with_context(|| format!("the local issue {} no longer exists", twin.local_key))?;
            if take == Take::Local {
                local = Some(issue);
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
            // Written as twinsync, not as a person: the decision is sent below, once. Only
            // onto the issue as read: an edit made meanwhile is read again, not overwritten.
            let write = format!("{}-conflict-{id}", self.store.id());
            match self
                .tracker
                .update_if(&issue, Origin::Sync { event_id: &write }, Some(&seen))
            {
                Ok(stored) => {
                    local = Some(stored);
                    break;
                }
                Err(TrackerError::Changed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let local =
            local.ok_or_else(|| anyhow!("issue {} kept changing: try again", twin.local_key))?;
        let now = self.now_ms();
        // In one IMMEDIATE transaction with fresh stamps: the event loop may have synced the
        // twin since it was read above, and its stamps must not be overwritten by old ones.
        self.store.write(|tx| {
            let open = conflicts::get(tx, id)?.is_some_and(|c| c.resolved_at.is_none());
            if !open {
                bail!("conflict {id} was settled meanwhile");
            }
            let twin = twins::get(tx, &conflict.twin_id)?
                .ok_or_else(|| anyhow!("the twin of conflict {id} is no longer under sync"))?;
            // A new write that replaces the other side's: the other side takes it as a
            // later change, not as another conflict.
            let mut stamps = twin.local_stamps.clone();
            let theirs = twin
                .remote_stamps
                .get(&conflict.field)
                .cloned()
                .unwrap_or_default();
            let mine = stamps.get(&conflict.field).cloned().unwrap_or_default();
            let after = theirs.key().max(mine.key()).0;
            stamps.insert(
                conflict.field.clone(),
                fields::Stamp {
                    at: now.max(after + 1),
                    by: self.instance.clone(),
                    replaced_at: theirs.at,
                    replaced_by: theirs.by,
                },
            );
            // Only this field is re-stamped: the rest of what the stamps describe stays as
            // the event loop left it.
            let mut stamped = twin.stamped.clone().unwrap_or_else(|| local.clone());
            fields::copy(&conflict.field, &local, &mut stamped);
            twins::restamp(tx, &twin.local_key, &stamps, &stamped)?;
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
            )
        })
    }
}
