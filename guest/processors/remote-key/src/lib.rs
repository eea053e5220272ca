//! `remote-key`: the seed feature, safe with no configuration. Each side keeps the key of
//! its twin in the custom field "remote issue key". The side that creates the issue on
//! first sync asks for a sync back, so that the source learns the new key without waiting
//! for the next change; on a one-way connection nothing can go back, so it does not ask.
//! It also keeps the seed page's status guard (see `status-guard`) where the connection's
//! status policy is `overwrite`: outside first sync, a replica whose status is the one
//! received last time carries no status change, so a local status change made meanwhile
//! (right after exalating, say) survives the stale status the sync back brings. With the
//! other policies the three-way merge already tells a stale status from a change, and
//! second-guessing it could leave the sides apart.

use twinsync_sdk::prelude::*;
use twinsync_sdk::{ConflictPolicy, Merger};

const REMOTE_KEY_FIELD: &str = "remote issue key";

struct RemoteKey;

impl Processor for RemoteKey {
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {
        if ctx.first_sync && ctx.direction == Direction::Bidirectional {
            // The other side does not know our key yet: send it back once we exist.
            sync_back_after_processing().map_err(ProcessorError::new)?;
        }
        let local_status = issue.status.clone();
        let status_unchanged = previous
            .as_ref()
            .is_some_and(|p| p.status == replica.status);
        let mut issue = mirror_incoming(ctx, &replica, previous.as_ref(), issue);
        if !ctx.first_sync
            && status_unchanged
            && Merger::new(ctx).policy("status") == ConflictPolicy::Overwrite
        {
            issue.status = local_status;
        }
        if let Some(remote_key) = replica.key {
            issue.set_custom_field(REMOTE_KEY_FIELD, FieldValue::Text(remote_key));
        }
        Ok(issue)
    }

    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {
        let mut replica = mirror_outgoing(ctx, issue);
        // Our record of the other side's key means nothing to the other side.
        replica.remove_custom_field(REMOTE_KEY_FIELD);
        Ok(Some(replica))
    }
}

twinsync_sdk::export_processor!(RemoteKey);
