"""Shared helpers for twinsync processors written in Python.

The Python counterpart of the Rust SDK (`guest/sdk`): custom fields by name, comment
merging without duplicates, and the default `mirror` mapping in both directions. The
types come from the bindings that componentize-py generates at build time for the world
`processor` of `wit/processor.wit` (module `wit_world`); nothing generated is committed.
"""

from dataclasses import replace
from typing import List, Optional

from componentize_py_types import Err
from wit_world.imports import sync_helper
from wit_world.imports.types import (
    Comment,
    CustomField,
    FieldValue,
    FieldValue_Option,
    FieldValue_Text,
    Issue,
    LogLevel,
    ProcessorError,
    SyncContext,
)

__all__ = [
    "Err",
    "Issue",
    "LogLevel",
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

    - A remote comment that is new since `previous` is added, unless the local issue
      already holds the same comment (same creation time and text).
    - A remote comment edited since `previous` updates the local copy it was made from.
    - Nothing is ever removed.

    New comments get an empty id: the tracker assigns one when it stores the issue.
    """
    previous = previous or []
    merged = list(local)
    for comment in remote:
        before = next((old for old in previous if old.id == comment.id), None)
        # Locate our copy by what the comment looked like when we last saw it.
        known = before if before is not None else comment
        index = next((i for i, mine in enumerate(merged) if _same_comment(mine, known)), None)
        if index is not None:
            if before is not None and before.body != comment.body:
                merged[index] = replace(merged[index], body=comment.body, updated=comment.updated)
        elif before is None:
            merged.append(
                Comment(
                    id="",
                    author=comment.author,
                    body=comment.body,
                    created=comment.created,
                    updated=comment.updated,
                    internal=False,
                )
            )
        # Seen before but gone locally: someone deleted our copy on purpose; keep it gone.
    return merged


# --- The default mapping ---------------------------------------------------------------


def mirror_outgoing(ctx: SyncContext, issue: Issue) -> Replica:
    """Everything the local issue has, except internal comments."""
    issue.comments = [comment for comment in issue.comments if not comment.internal]
    return issue


def mirror_incoming(
    ctx: SyncContext, replica: Replica, previous: Optional[Replica], issue: Issue
) -> Issue:
    """Take the remote issue's core fields, merge its comments, copy its custom fields
    (all on first sync, afterwards only those the local issue has too).

    Keys, ids, project, assignee, reporter and attachments stay local.
    """
    if ctx.first_sync:
        issue.custom_fields = list(replica.custom_fields)
    else:
        for field in replica.custom_fields:
            if custom_field(issue, field.name) is not None:
                set_custom_field(issue, field.name, field.value)
    issue.issue_type = replica.issue_type
    issue.summary = replica.summary
    issue.description = replica.description
    issue.status = replica.status
    issue.priority = replica.priority
    issue.resolution = replica.resolution
    issue.labels = list(replica.labels)
    issue.components = list(replica.components)
    issue.due_date = replica.due_date
    previous_comments = previous.comments if previous is not None else None
    issue.comments = merge_comments(issue.comments, replica.comments, previous_comments)
    return issue
