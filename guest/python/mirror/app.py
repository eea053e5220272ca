"""`mirror`: copy the core fields across and merge comments, in both directions."""

from typing import Optional

from twinsync_helpers import Issue, SyncContext, mirror_incoming, mirror_outgoing
from wit_world import exports


class Incoming(exports.Incoming):
    def process(
        self, ctx: SyncContext, replica: Issue, previous: Optional[Issue], issue: Issue
    ) -> Issue:
        return mirror_incoming(ctx, replica, previous, issue)


class Outgoing(exports.Outgoing):
    def process(self, ctx: SyncContext, issue: Issue) -> Optional[Issue]:
        return mirror_outgoing(ctx, issue)
