//! Three-way merge, field by field, with the connection's conflict policies.
//!
//! For each field: a change on the remote side only is taken, a change on the local side
//! only is kept, and a change on both sides (a conflict) is settled by the field's policy.
//! "Changed" compares the replica with `previous` (and the times the host reports, so that
//! a value set again counts), and the local issue with the local issue at the last sync.

use crate::bindings::twinsync::processor::types::{ConflictPolicy, FieldTime, MergeBase};
use crate::host::{read_merge_base, record_conflict};
use crate::{FieldValue, Issue, IssueFields, Replica, SyncContext, merge_comments};

/// Merges one replica into one local issue.
pub struct Merger<'a> {
    ctx: &'a SyncContext,
    base: MergeBase,
    previous: Option<&'a Replica>,
}

impl<'a> Merger<'a> {
    /// A merger for the event being processed; asks the host for the merge base.
    pub fn new(ctx: &'a SyncContext, previous: Option<&'a Replica>) -> Self {
        Merger {
            ctx,
            base: read_merge_base(),
            previous,
        }
    }

    /// The policy of `field` on this connection.
    pub fn policy(&self, field: &str) -> ConflictPolicy {
        self.base
            .policies
            .iter()
            .find(|p| p.field == field)
            .map_or(self.base.default_policy, |p| p.policy)
    }

    /// Whether the local value of `field` should become the remote one.
    /// `get` reads the field from an issue; absent values compare as absent.
    pub fn take_remote<T: PartialEq + std::fmt::Debug>(
        &self,
        field: &str,
        local: &Issue,
        remote: &Replica,
        get: impl for<'i> Fn(&'i Issue) -> Option<&'i T>,
    ) -> bool {
        let (mine, theirs) = (get(local), get(remote));
        if mine == theirs {
            return false;
        }
        let policy = self.policy(field);
        if policy == ConflictPolicy::Overwrite {
            return true;
        }
        let remote_changed = self.previous.is_none_or(|p| get(p) != theirs)
            || time(&self.base.remote_times, field) > time(&self.base.previous_remote_times, field);
        if !remote_changed {
            return false;
        }
        let local_changed = self.base.local.as_ref().is_some_and(|b| get(b) != mine);
        if !local_changed {
            return true;
        }
        match policy {
            ConflictPolicy::Overwrite | ConflictPolicy::RemoteWins => true,
            ConflictPolicy::LocalWins => false,
            ConflictPolicy::LastWriterWins => {
                let remote = (
                    time(&self.base.remote_times, field),
                    self.ctx.remote_instance.as_str(),
                );
                let local = (
                    time(&self.base.local_times, field),
                    self.ctx.local_instance.as_str(),
                );
                remote > local
            }
            ConflictPolicy::HoldForReview => {
                record_conflict(field, &format!("{mine:?}"), &format!("{theirs:?}"));
                false
            }
        }
    }
}

/// Reads custom field `name` (a function, so that it works for an issue of any lifetime).
fn field_reader(name: &str) -> impl for<'i> Fn(&'i Issue) -> Option<&'i FieldValue> + '_ {
    move |issue| issue.custom_field(name)
}

fn time(times: &[FieldTime], field: &str) -> i64 {
    times.iter().find(|t| t.field == field).map_or(0, |t| t.at)
}

/// The incoming default: the remote issue's core fields (summary, description, status,
/// priority, resolution, labels, components, due date, type) and custom fields merged three
/// ways with the connection's policies, and its comments merged in. On first sync,
/// everything is taken.
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
        let merger = Merger::new(ctx, previous);
        merge_core_fields(&merger, replica, &mut issue);
        merge_custom_fields(&merger, replica, &mut issue);
    }
    if ctx.first_sync {
        copy_core_fields(replica, &mut issue);
    }
    let previous_comments = previous.map(|p| p.comments.as_slice());
    issue.comments = merge_comments(issue.comments, &replica.comments, previous_comments);
    issue
}

macro_rules! core_fields {
    ($apply:ident) => {
        $apply!("summary", summary);
        $apply!("description", description);
        $apply!("status", status);
        $apply!("priority", priority);
        $apply!("resolution", resolution);
        $apply!("issue-type", issue_type);
        $apply!("labels", labels);
        $apply!("components", components);
        $apply!("due-date", due_date);
    };
}

fn copy_core_fields(replica: &Replica, issue: &mut Issue) {
    macro_rules! copy {
        ($name:literal, $field:ident) => {
            issue.$field = replica.$field.clone();
        };
    }
    core_fields!(copy);
}

fn merge_core_fields(merger: &Merger<'_>, replica: &Replica, issue: &mut Issue) {
    macro_rules! merge {
        ($name:literal, $field:ident) => {
            if merger.take_remote($name, issue, replica, |i| Some(&i.$field)) {
                issue.$field = replica.$field.clone();
            }
        };
    }
    core_fields!(merge);
}

/// Custom fields the remote issue has, merged one by one (`custom-field:NAME`). A field the
/// local issue lacks is added when the remote side set it since the last sync.
fn merge_custom_fields(merger: &Merger<'_>, replica: &Replica, issue: &mut Issue) {
    for field in &replica.custom_fields {
        let name = &field.name;
        let key = format!("custom-field:{name}");
        if merger.take_remote(&key, issue, replica, field_reader(name)) {
            issue.set_custom_field(name, field.value.clone());
        }
    }
}
