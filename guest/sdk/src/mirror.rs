//! The outgoing default (the incoming one is in `merge`).

use crate::{Issue, Replica, SyncContext};

/// The outgoing default: everything the local issue has, except internal comments.
pub fn mirror_outgoing(_ctx: &SyncContext, mut issue: Issue) -> Replica {
    issue.comments.retain(|comment| !comment.internal);
    issue
}
