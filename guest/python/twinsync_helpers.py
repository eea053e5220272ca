"""Shared helpers for twinsync processors written in Python.

The Python counterpart of the Rust SDK (`guest/sdk`): custom fields by name, comment
merging without duplicates, the three-way merge with the connection's conflict policies,
and the default `mirror` mapping in both directions. The
types come from the bindings that componentize-py generates at build time for the world
`processor` of `wit/processor.wit` (module `wit_world`); nothing generated is committed.
"""

from dataclasses import replace
from typing import List, Optional

from componentize_py_types import Err
from wit_world.imports import sync_helper
from wit_world.imports.types import (
    Comment,
    ConflictPolicy,
    CustomField,
    FieldValue,
    FieldValue_Option,
    FieldValue_Text,
    FieldStamp,
    Issue,
    LogLevel,
    ProcessorError,
    SyncContext,
)

__all__ = [
    "Err",
    "Issue",
    "LogLevel",
    "Merger",
    "ProcessorError",
    "SyncBackError",
    "SyncContext",
    "custom_field",
    "custom_text",
    "fail",
    "log",
    "merge_comments",
    "mirror_incoming",
    "mirror_outgoing",
    "remove_custom_field",
    "set_custom_field",
    "sync_back_after_processing",
    "text",
]

Replica = Issue


# --- Custom fields by name -------------------------------------------------------------


def custom_field(issue: Issue, name: str) -> Optional[FieldValue]:
    """The value of the custom field `name`, or None if the issue does not have it."""
    for field in issue.custom_fields:
        if field.name == name:
            return field.value
    return None


def custom_text(issue: Issue, name: str) -> Optional[str]:
    """The text of the custom field `name`, if it holds text or an option."""
    value = custom_field(issue, name)
    if isinstance(value, (FieldValue_Text, FieldValue_Option)):
        return value.value
    return None


def set_custom_field(issue: Issue, name: str, value: FieldValue) -> None:
    """Set the custom field `name`, adding it if the issue does not have it yet."""
    for index, field in enumerate(issue.custom_fields):
        if field.name == name:
            issue.custom_fields[index] = CustomField(name=name, value=value)
            return
    issue.custom_fields.append(CustomField(name=name, value=value))


def remove_custom_field(issue: Issue, name: str) -> Optional[FieldValue]:
    """Remove the custom field `name`; return its value if it was there."""
    for index, field in enumerate(issue.custom_fields):
        if field.name == name:
            return issue.custom_fields.pop(index).value
    return None


def text(value: str) -> FieldValue:
    """A free-text field value."""
    return FieldValue_Text(value)


# --- Host functions --------------------------------------------------------------------


class SyncBackError(Exception):
    """The host refused `sync-back-after-processing`; the message says why."""


def sync_back_after_processing() -> None:
    """Ask the host to send the issue back after this incoming processing.

    Raises `SyncBackError` with the host's reason when it refuses (unidirectional
    connection, or called from an outgoing processor).
    """
    try:
        sync_helper.sync_back_after_processing()
    except Err as refused:
        raise SyncBackError(refused.value) from None


def log(level: LogLevel, message: str) -> None:
    """Write a line to the event's log."""
    sync_helper.log(level, message)


def fail(message: str) -> Err:
    """The exception that ends processing with a processor error: `raise fail("...")`.

    The host keeps the event as a sync error with this message. Any other exception is a
    crash: the component traps and the host records the traceback printed on stderr.
    """
    return Err(ProcessorError(message=message))


# --- Comments --------------------------------------------------------------------------


def _same_comment(a: Comment, b: Comment) -> bool:
    return a.created == b.created and a.body.strip() == b.body.strip()


def merge_comments(
    local: List[Comment], remote: List[Comment], previous: Optional[List[Comment]]
) -> List[Comment]:
    """Merge the comments of a received replica into the local issue's comments.

    The host names comments for the processor (see `merge-base` in the WIT): a remote
    comment with id `local:ID` is the local comment `ID` (ours, or our copy of theirs); any
    other is only on the other side so far.

    - A comment only on the other side is added, with the id `remote:ID` so that the host
      links the copy to it; unless the local issue already has the same comment (same
      creation time and text), or it was seen before (it was deleted here on purpose).
    - A comment edited on the other side since `previous` updates the local one.
    - Nothing is ever removed.
    """
    previous = previous or []
    merged = list(local)
    for comment in remote:
        before = next((old for old in previous if old.id == comment.id), None)
        if comment.id.startswith("local:"):
            own = comment.id[len("local:") :]
            edited = before is not None and before.body != comment.body
            index = next((i for i, mine in enumerate(merged) if mine.id == own), None)
            if index is not None and edited:
                merged[index] = replace(merged[index], body=comment.body, updated=comment.updated)
            continue
        copy_id = "remote:" + comment.id
        have = any(mine.id == copy_id or _same_comment(mine, comment) for mine in merged)
        if have or before is not None:
            continue
        merged.append(
            Comment(
                id=copy_id,
                author=comment.author,
                body=comment.body,
                created=comment.created,
                updated=comment.updated,
                internal=False,
            )
        )
    return merged


# --- Three-way merge with the connection's conflict policies -----------------------------

# The core fields an incoming merge settles: (name in the merge base, attribute).
CORE_FIELDS = [
    ("summary", "summary"),
    ("description", "description"),
    ("status", "status"),
    ("priority", "priority"),
    ("resolution", "resolution"),
    ("issue-type", "issue_type"),
    ("labels", "labels"),
    ("components", "components"),
    ("due-date", "due_date"),
]


def _same_stamp(a: FieldStamp, b: FieldStamp) -> bool:
    return a.at == b.at and a.by == b.by


class Merger:
    """Merges one replica into one local issue, field by field, as the Rust SDK's `Merger`.

    A change on the remote side only is taken, a change on the local side only is kept, and
    a change on both sides (a conflict) is settled by the field's policy. Which is which
    comes from the stamps the host keeps per field (`field-stamp` in the WIT), asked for
    each field that differs when it is settled (`read-field-base`): cheaper than copying
    every field's stamps and the local issue in (`read-merge-base`).
    """

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx

    def policy(self, field: str) -> ConflictPolicy:
        """The policy of `field` on this connection."""
        return sync_helper.read_field_base(field).policy

    def take_remote(self, field: str, mine: object, theirs: object) -> bool:
        """Whether the local value `mine` of `field` should become the remote `theirs`
        (None for a value that is absent). Logs the decision; records a held conflict."""
        if mine == theirs:
            return False
        take, why = self._decide(field, mine, theirs)
        kept, dropped = (theirs, mine) if take else (mine, theirs)
        side = "remote" if take else "local"
        log(
            LogLevel.DEBUG,
            f"{field}: kept the {side} value {kept!r} over {dropped!r} ({why})",
        )
        return take

    def _decide(self, field: str, mine: object, theirs: object) -> "tuple[bool, str]":
        base = sync_helper.read_field_base(field)
        policy = base.policy
        if policy == ConflictPolicy.OVERWRITE:
            return True, "policy overwrite"
        remote = base.remote
        if remote is None:
            return False, "the other side sent no stamp for it"
        local = base.local
        # A write this side has seen already: its own, or the one the other side sent before.
        previous = base.previous_remote
        seen = (
            (local is not None and _same_stamp(local, remote))
            or remote.by == self.ctx.local_instance
            or (previous is not None and _same_stamp(previous, remote))
        )
        if seen:
            return False, "not changed on the other side since"
        if local is None:
            return True, "never written here"
        if remote.replaced_at == local.at and remote.replaced_by == local.by:
            return True, "changed on the other side after this side's value"
        if policy == ConflictPolicy.REMOTE_WINS:
            return True, "conflict, remote wins"
        if policy == ConflictPolicy.LOCAL_WINS:
            return False, "conflict, local wins"
        if policy == ConflictPolicy.LAST_WRITER_WINS:
            # Strings compare by code point in Python and by bytes of UTF-8 in Rust: the
            # same order, so both sides of a connection pick the same value.
            if (remote.at, remote.by) > (local.at, local.by):
                return True, "conflict, the remote write is the last"
            return False, "conflict, the local write is the last"
        # HOLD_FOR_REVIEW
        sync_helper.record_conflict(field, repr(mine), repr(theirs))
        return False, "conflict, held for review"


def _merge_fields(merger: Merger, replica: Replica, issue: Issue) -> None:
    for name, attribute in CORE_FIELDS:
        theirs = getattr(replica, attribute)
        if merger.take_remote(name, getattr(issue, attribute), theirs):
            setattr(issue, attribute, theirs)
    # Custom fields the remote issue has, one by one (`custom-field:NAME`). A field the
    # local issue lacks is added when the remote side set it since the last sync.
    for field in replica.custom_fields:
        key = "custom-field:" + field.name
        if merger.take_remote(key, custom_field(issue, field.name), field.value):
            set_custom_field(issue, field.name, field.value)


# --- The default mapping ---------------------------------------------------------------


def mirror_outgoing(ctx: SyncContext, issue: Issue) -> Replica:
    """Everything the local issue has, except internal comments."""
    issue.comments = [comment for comment in issue.comments if not comment.internal]
    return issue


def mirror_incoming(
    ctx: SyncContext, replica: Replica, previous: Optional[Replica], issue: Issue
) -> Issue:
    """The incoming default, as the Rust SDK's: the remote issue's core fields (summary,
    description, status, priority, resolution, type, labels, components, due date) and
    custom fields merged three ways with the connection's policies (see `Merger`), and its
    comments merged in. On first sync, everything is taken.

    Keys, ids, project, assignee, reporter and attachments stay local.
    """
    if ctx.first_sync:
        issue.custom_fields = list(replica.custom_fields)
        for _, attribute in CORE_FIELDS:
            value = getattr(replica, attribute)
            setattr(issue, attribute, list(value) if isinstance(value, list) else value)
    else:
        _merge_fields(Merger(ctx), replica, issue)
    previous_comments = previous.comments if previous is not None else None
    issue.comments = merge_comments(issue.comments, replica.comments, previous_comments)
    return issue
