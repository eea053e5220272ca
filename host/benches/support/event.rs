//! The incoming event the per-call benches (`invocation`, `languages`) give a processor: a
//! replica of the realistic issue (`sample_issue(10, 20)`: 10 custom fields, 20 comments)
//! whose summary and one comment are new, the previous replica, the local issue, and the
//! merge base a node builds for such an event.

// Each bench uses its own part of this module.
#![allow(dead_code)]

use twinsync::model::fields::{FieldStamps, stamp_local_writes, stamp_write};
use twinsync::model::{Direction, Issue, Origin, SyncContext, SyncReason, sample_issue};
use twinsync::runtime::{ConflictPolicy, FieldStamp, MergeBase};

/// The replica just received, the previous one, the local issue, the merge base.
pub struct Inputs {
    pub replica: Issue,
    pub previous: Issue,
    pub local: Issue,
    pub merge_base: MergeBase,
}

pub fn inputs() -> Inputs {
    let replica = sample_issue(10, 20);
    let mut previous = replica.clone();
    previous.comments.pop();
    previous.summary = "Checkout fails".into();
    let mut local = previous.clone();
    local.key = Some("EXT-7".into());
    Inputs {
        merge_base: merge_base(&previous, &local),
        replica,
        previous,
        local,
    }
}

pub fn context() -> SyncContext {
    SyncContext {
        connection: "internal-external".into(),
        local_instance: "External".into(),
        remote_instance: "Internal".into(),
        direction: Direction::Bidirectional,
        first_sync: false,
        event_id: "Internal-42".into(),
        reason: SyncReason::LocalChange,
        hop: 0,
        now: "2026-11-27T20:00:00Z".into(),
        origin: Origin::Remote,
    }
}

/// The merge base a node gives the processor for these inputs: the local issue as it was
/// at the last sync, and each side's stamp of every field. Every value came from Internal
/// at the last sync (both sides hold Internal's stamps); the replica's summary was written
/// on Internal since, replacing the value this side has: a change on the other side only,
/// which `mirror` takes.
fn merge_base(previous: &Issue, local: &Issue) -> MergeBase {
    let mut previous_remote = FieldStamps::new();
    stamp_local_writes(
        &mut previous_remote,
        None,
        previous,
        1_767_225_600_000,
        "Internal",
    );
    let mut remote = previous_remote.clone();
    stamp_write(&mut remote, "summary", 1_767_225_700_000, "Internal");
    MergeBase {
        local: Some(local.clone()),
        local_stamps: FieldStamp::list(&previous_remote),
        remote_stamps: FieldStamp::list(&remote),
        previous_remote_stamps: FieldStamp::list(&previous_remote),
        default_policy: ConflictPolicy::LastWriterWins,
        policies: Vec::new(),
    }
}
