//! Why an event could not be processed.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::connection::Policies;
use crate::model::fields::FieldStamps;
use crate::model::{Issue, Replica, SyncContext};
use crate::runtime::{FieldStamp, MergeBase, ProcessorFailure};
use crate::tracker::TrackerError;

/// Sync backs in a row after which a chain is stopped even if the replica keeps changing.
pub const MAX_SYNC_BACK_HOPS: u32 = 10;

/// The reason an event failed. Only `Tracker(Unavailable)`, `Tracker(Changed)`, `Storage`,
/// `IssueBusy` and a processor interrupted by shutdown are transient: everything else is a
/// sync error for the twin until an operator acts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyncFailure {
    #[error(transparent)]
    Processor(#[from] ProcessorFailure),
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error(
        "sync back loop stopped after {hops} hops: {why}. A processor calls \
         sync-back-after-processing outside first sync on both sides; call it only when \
         `first-sync` is true"
    )]
    SyncBackLoop { hops: u32, why: String },
    #[error("the local issue {key} no longer exists in the tracker")]
    LocalIssueMissing { key: String },
    #[error("connection `{name}` is not configured on this node")]
    UnknownConnection { name: String },
    #[error("twin {twin} is not a twin of connection `{connection}`: the message is not applied")]
    ForeignTwin { twin: String, connection: String },
    #[error("the stored message is unreadable: {reason}")]
    CorruptMessage { reason: String },
    #[error("storage error: {0}")]
    Storage(String),
    #[error("issue {key} waits for incoming event {event}, which may have written it, to finish")]
    IssueBusy { key: String, event: String },
}

impl SyncFailure {
    /// A short, stable name for the cause.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncFailure::Processor(p) => p.kind(),
            SyncFailure::Tracker(TrackerError::Unavailable(_)) => "tracker-unavailable",
            SyncFailure::Tracker(TrackerError::Changed(_)) => "issue-changed",
            SyncFailure::Tracker(_) => "tracker-rejected",
            SyncFailure::SyncBackLoop { .. } => "sync-back-loop",
            SyncFailure::LocalIssueMissing { .. } => "local-issue-missing",
            SyncFailure::UnknownConnection { .. } => "unknown-connection",
            SyncFailure::ForeignTwin { .. } => "foreign-twin",
            SyncFailure::CorruptMessage { .. } => "corrupt-message",
            SyncFailure::Storage(_) => "storage",
            SyncFailure::IssueBusy { .. } => "issue-busy",
        }
    }

    /// Worth retrying by itself, later.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncFailure::Tracker(error) => error.is_transient(),
            SyncFailure::Processor(failure) => failure.is_transient(),
            SyncFailure::Storage(_) | SyncFailure::IssueBusy { .. } => true,
            _ => false,
        }
    }
}

impl From<anyhow::Error> for SyncFailure {
    fn from(error: anyhow::Error) -> Self {
        SyncFailure::Storage(format!("{error:#}"))
    }
}

/// A failure with the processor's log and, when the processor ran, its input (JSON), so that
/// the sync error can be shown and replayed exactly.
#[derive(Debug)]
pub struct Failed {
    pub failure: SyncFailure,
    pub log: String,
    pub input: Option<String>,
}

impl<E: Into<SyncFailure>> From<E> for Failed {
    fn from(error: E) -> Self {
        Failed {
            failure: error.into(),
            log: String::new(),
            input: None,
        }
    }
}

/// What a processor was given, exactly. Stored with every event that ran one (before an
/// incoming event writes to the tracker, so that a repeat after a crash starts from the
/// issue the first run read); `twinsync events replay` runs the processor again on it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProcessorInput<'a> {
    pub ctx: SyncContext,
    /// Incoming only: the replica received, with comment ids in local terms (as the
    /// processor saw it).
    pub replica: Option<Cow<'a, Replica>>,
    /// Incoming only.
    pub previous: Option<Cow<'a, Replica>>,
    /// The local issue (empty on first sync).
    pub issue: Cow<'a, Issue>,
    /// Incoming only: what a three-way merge was given. Missing in inputs stored by older
    /// versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_base: Option<Cow<'a, BaseInput>>,
}

/// The merge base of an incoming event in a form that can be stored (see `MergeBase`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BaseInput {
    pub local: Option<Issue>,
    pub local_stamps: FieldStamps,
    pub remote_stamps: FieldStamps,
    pub previous_remote_stamps: FieldStamps,
    pub policies: Policies,
}

impl BaseInput {
    pub fn merge_base(&self) -> MergeBase {
        MergeBase {
            local: self.local.clone(),
            local_stamps: FieldStamp::list(&self.local_stamps),
            remote_stamps: FieldStamp::list(&self.remote_stamps),
            previous_remote_stamps: FieldStamp::list(&self.previous_remote_stamps),
            default_policy: self.policies.default,
            policies: self.policies.as_list(),
        }
    }
}
