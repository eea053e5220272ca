//! Three-way merge, field by field, with the connection's conflict policies.
//!
//! For each field: a change on the remote side only is taken, a change on the local side
//! only is kept, and a change on both sides (a conflict) is settled by the field's policy.
//! Which is which comes from the stamps the host keeps per field (see `field-stamp` in the
//! WIT): a remote write that replaced the local one is a later change; one that neither side
//! had seen when the other wrote is a conflict.

use crate::bindings::twinsync::processor::types::{ConflictPolicy, FieldStamp};
use crate::host::{log, read_field_base, record_conflict};
use crate::{FieldValue, Issue, IssueFields, LogLevel, Replica, SyncContext, merge_comments};

/// Merges one replica into one local issue.
///
/// It asks the host for the stamps and policy of each field that differs, when it settles
/// it (`read-field-base`): an event usually changes a few fields, and the whole merge base
/// (`read-merge-base`: every field's stamps and the local issue at the last sync) would
/// cost more to copy in than the merge itself.
pub struct Merger<'a> {
    ctx: &'a SyncContext,
}

impl<'a> Merger<'a> {
    /// A merger for the event being processed.
    pub fn new(ctx: &'a SyncContext) -> Self {
        Merger { ctx }
    }

    /// The policy of `field` on this connection.
    pub fn policy(&self, field: &str) -> ConflictPolicy {
        read_field_base(field).policy
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
        let (take, why) = self.decide(field, &mine, &theirs);
        let (kept, dropped) = if take { (theirs, mine) } else { (mine, theirs) };
        let side = if take { "remote" } else { "local" };
        log(
            LogLevel::Debug,
            &format!("{field}: kept the {side} value {kept:?} over {dropped:?} ({why})"),
        );
        take
    }

    fn decide(
        &self,
        field: &str,
        mine: &dyn std::fmt::Debug,
        theirs: &dyn std::fmt::Debug,
    ) -> (bool, &'static str) {
        let base = read_field_base(field);
        let policy = base.policy;
        if policy == ConflictPolicy::Overwrite {
            return (true, "policy overwrite");
        }
        let Some(remote) = &base.remote else {
            return (false, "the other side sent no stamp for it");
        };
        let local = base.local.as_ref();
        // A write this side has seen already: its own, or the one the other side sent before.
        let seen = local.is_some_and(|l| same(l, remote))
            || remote.by == self.ctx.local_instance
            || base
                .previous_remote
                .as_ref()
                .is_some_and(|p| same(p, remote));
        if seen {
            return (false, "not changed on the other side since");
        }
        let Some(local) = local else {
            return (true, "never written here");
        };
        if remote.replaced_at == local.at && remote.replaced_by == local.by {
            return (true, "changed on the other side after this side's value");
        }
        match policy {
            ConflictPolicy::Overwrite | ConflictPolicy::RemoteWins => {
                (true, "conflict, remote wins")
            }
            ConflictPolicy::LocalWins => (false, "conflict, local wins"),
            ConflictPolicy::LastWriterWins => {
                if (remote.at, remote.by.as_str()) > (local.at, local.by.as_str()) {
                    (true, "conflict, the remote write is the last")
                } else {
                    (false, "conflict, the local write is the last")
                }
            }
            ConflictPolicy::HoldForReview => {
                record_conflict(field, &format!("{mine:?}"), &format!("{theirs:?}"));
                (false, "conflict, held for review")
            }
        }
    }
}

fn same(a: &FieldStamp, b: &FieldStamp) -> bool {
    a.at == b.at && a.by == b.by
}

/// Reads custom field `name` (a function, so that it works for an issue of any lifetime).
fn field_reader(name: &str) -> impl for<'i> Fn(&'i Issue) -> Option<&'i FieldValue> + '_ {
    move |issue| issue.custom_field(name)
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
        let merger = Merger::new(ctx);
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
