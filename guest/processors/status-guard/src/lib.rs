//! `status-guard`: `mirror` with the seed page's conflict avoidance. Outside first sync, a
//! replica whose status is the one we received (or sent) last time carries no status
//! change, so the local status is left alone: a local change made meanwhile survives the
//! stale value a sync back brings.

use twinsync_sdk::prelude::*;

struct StatusGuard;

impl Processor for StatusGuard {
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {
        let local_status = issue.status.clone();
        let unchanged = previous
            .as_ref()
            .is_some_and(|p| p.status == replica.status);
        let mut issue = mirror_incoming(ctx, &replica, previous.as_ref(), issue);
        if !ctx.first_sync && unchanged {
            issue.status = local_status;
        }
        Ok(issue)
    }
}

twinsync_sdk::export_processor!(StatusGuard);
