"""A test processor that behaves like `mirror` unless the issue asks otherwise.

The custom field "test behaviour" (on the replica for incoming, on the issue for
outgoing) names what to do, as in the Rust `scripted` test processor:

- "error": fail with the processor error "refusing issue on purpose";
- "panic": raise an uncaught exception ("scripted panic ..."): the component traps and
  the traceback goes to stderr;
- "sync-back-always": ask for a sync back on every event, failing if the host refuses;
- "sync-back-ignore-error": ask for a sync back and carry on whatever the host answers;
- outgoing "outgoing-error": fail with "outgoing refused on purpose";
- outgoing "outgoing-nothing": send nothing.
"""

from typing import Optional

from twinsync_helpers import (
    Issue,
    SyncBackError,
    SyncContext,
    custom_text,
    fail,
    mirror_incoming,
    mirror_outgoing,
    sync_back_after_processing,
)
from wit_world import exports

BEHAVIOUR_FIELD = "test behaviour"


class ScriptedPanic(Exception):
    """What "panic" raises; nothing catches it."""


class Incoming(exports.Incoming):
    def process(
        self, ctx: SyncContext, replica: Issue, previous: Optional[Issue], issue: Issue
    ) -> Issue:
        behaviour = custom_text(replica, BEHAVIOUR_FIELD) or ""
        if behaviour == "error":
            raise fail("refusing issue on purpose")
        if behaviour == "panic":
            raise ScriptedPanic(f"scripted panic for {replica.key!r}")
        if behaviour == "sync-back-always":
            # Sync back on every event, on both sides: the loop the seed page warns about.
            try:
                sync_back_after_processing()
            except SyncBackError as refused:
                raise fail(str(refused)) from None
        elif behaviour == "sync-back-ignore-error":
            try:
                sync_back_after_processing()
            except SyncBackError:
                pass
        return mirror_incoming(ctx, replica, previous, issue)


class Outgoing(exports.Outgoing):
    def process(self, ctx: SyncContext, issue: Issue) -> Optional[Issue]:
        behaviour = custom_text(issue, BEHAVIOUR_FIELD)
        if behaviour == "outgoing-error":
            raise fail("outgoing refused on purpose")
        if behaviour == "outgoing-nothing":
            return None
        return mirror_outgoing(ctx, issue)
