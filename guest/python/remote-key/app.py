"""`remote-key`: each side keeps the key of its twin in the custom field "remote issue key".

The side that creates the issue on first sync asks for a sync back, so that the source
learns the new key without waiting for the next change; on a one-way connection nothing
can go back, so it does not ask. It also keeps the seed page's status guard (see
`status-guard`) where the connection's status policy is `overwrite`: outside first sync, a
replica whose status is the one received last time carries no status change, so a local
status change made meanwhile survives the stale status a sync back brings. With the other
policies the three-way merge already tells a stale status from a change, and second-guessing
it could leave the sides apart.
"""

from typing import Optional

from twinsync_helpers import (
    Issue,
    Merger,
    SyncBackError,
    SyncContext,
    fail,
    mirror_incoming,
    mirror_outgoing,
    remove_custom_field,
    set_custom_field,
    sync_back_after_processing,
    text,
)
from wit_world import exports
from wit_world.imports.types import ConflictPolicy, Direction

REMOTE_KEY_FIELD = "remote issue key"


class Incoming(exports.Incoming):
    def process(
        self, ctx: SyncContext, replica: Issue, previous: Optional[Issue], issue: Issue
    ) -> Issue:
        if ctx.first_sync and ctx.direction == Direction.BIDIRECTIONAL:
            # The other side does not know our key yet: send it back once we exist.
            try:
                sync_back_after_processing()
            except SyncBackError as refused:
                raise fail(str(refused)) from None
        local_status = issue.status
        status_unchanged = previous is not None and previous.status == replica.status
        issue = mirror_incoming(ctx, replica, previous, issue)
        if (
            not ctx.first_sync
            and status_unchanged
            and Merger(ctx).policy("status") == ConflictPolicy.OVERWRITE
        ):
            issue.status = local_status
        if replica.key is not None:
            set_custom_field(issue, REMOTE_KEY_FIELD, text(replica.key))
        return issue


class Outgoing(exports.Outgoing):
    def process(self, ctx: SyncContext, issue: Issue) -> Optional[Issue]:
        replica = mirror_outgoing(ctx, issue)
        # Our record of the other side's key means nothing to the other side.
        remove_custom_field(replica, REMOTE_KEY_FIELD)
        return replica
