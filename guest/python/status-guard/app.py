"""`status-guard`: `mirror` with the seed page's conflict avoidance.

Outside first sync, a replica whose status is the one received (or sent) last time carries
no status change, so the local status is left alone: a local change made meanwhile survives
the stale value that a sync back brings.
"""

from typing import Optional

from twinsync_helpers import Issue, SyncContext, mirror_incoming, mirror_outgoing
from wit_world import exports


class Incoming(exports.Incoming):
    def process(
        self, ctx: SyncContext, replica: Issue, previous: Optional[Issue], issue: Issue
    ) -> Issue:
        local_status = issue.status
        status_unchanged = previous is not None and previous.status == replica.status
        issue = mirror_incoming(ctx, replica, previous, issue)
        if not ctx.first_sync and status_unchanged:
            issue.status = local_status
        return issue


class Outgoing(exports.Outgoing):
    def process(self, ctx: SyncContext, issue: Issue) -> Optional[Issue]:
        return mirror_outgoing(ctx, issue)
