//! The default mapping: copy the core fields across, merge comments.

use crate::{Issue, IssueFields, Replica, SyncContext, merge_comments};

/// The outgoing default: everything the local issue has, except internal comments.
pub fn mirror_outgoing(_ctx: &SyncContext, mut issue: Issue) -> Replica {
    issue.comments.retain(|comment| !comment.internal);
    issue
}

/// The incoming default: take the remote issue's core fields (summary, description, status,
/// priority, resolution, labels, components, due date, type), merge its comments into the
/// local ones, and copy its custom fields: all of them on first sync, afterwards those the
/// local issue has too.
///
/// Keys, ids, project, assignee, reporter and attachments stay local: they name things that
/// only mean something in their own tracker (on first sync the tracker puts the issue in its
/// default project).
pub fn mirror_incoming(
    ctx: &SyncContext,
    replica: &Replica,
    previous: Option<&Replica>,
    mut issue: Issue,
) -> Issue {
    if ctx.first_sync {
        issue.custom_fields = replica.custom_fields.clone();
    } else {
        for field in &replica.custom_fields {
            if issue.custom_field(&field.name).is_some() {
                issue.set_custom_field(&field.name, field.value.clone());
            }
        }
    }
    issue.issue_type = replica.issue_type.clone();
    issue.summary = replica.summary.clone();
    issue.description = replica.description.clone();
    issue.status = replica.status.clone();
    issue.priority = replica.priority.clone();
    issue.resolution = replica.resolution.clone();
    issue.labels = replica.labels.clone();
    issue.components = replica.components.clone();
    issue.due_date = replica.due_date.clone();
    let previous_comments = previous.map(|p| p.comments.as_slice());
    issue.comments = merge_comments(issue.comments, &replica.comments, previous_comments);
    issue
}
