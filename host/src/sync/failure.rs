//! Why an event could not be processed.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::{Issue, Replica, SyncContext};
use crate::runtime::ProcessorFailure;
use crate::tracker::TrackerError;

/// Sync backs in a row after which a chain is stopped even if the replica keeps changing.
pub const MAX_SYNC_BACK_HOPS: u32 = 10;

/// The reason an event failed. Only `Tracker(Unavailable)`, `Storage` and a processor
/// interrupted by shutdown are transient:
/// everything else is a sync error for the twin until an operator acts.
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
}

impl SyncFailure {
    /// A short, stable name for the cause.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncFailure::Processor(p) => p.kind(),
            SyncFailure::Tracker(TrackerError::Unavailable(_)) => "tracker-unavailable",
            SyncFailure::Tracker(_) => "tracker-rejected",
            SyncFailure::SyncBackLoop { .. } => "sync-back-loop",
            SyncFailure::LocalIssueMissing { .. } => "local-issue-missing",
            SyncFailure::UnknownConnection { .. } => "unknown-connection",
            SyncFailure::ForeignTwin { .. } => "foreign-twin",
            SyncFailure::CorruptMessage { .. } => "corrupt-message",
            SyncFailure::Storage(_) => "storage",
        }
    }

    /// Worth retrying by itself, later.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncFailure::Tracker(error) => error.is_transient(),
            SyncFailure::Processor(failure) => failure.is_transient(),
            SyncFailure::Storage(_) => true,
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

impl Failed {
    pub fn after_run(
        failure: impl Into<SyncFailure>,
        log: &str,
        input: &ProcessorInput<'_>,
    ) -> Self {
        Failed {
            failure: failure.into(),
            log: log.to_string(),
            input: serde_json::to_string(input).ok(),
        }
    }
}

/// What a processor was given. Stored with a sync error; `twinsync events replay` runs the
/// processor again on it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProcessorInput<'a> {
    pub ctx: SyncContext,
    /// Incoming only: the replica received.
    pub replica: Option<Cow<'a, Replica>>,
    /// Incoming only.
    pub previous: Option<Cow<'a, Replica>>,
    /// The local issue (empty on first sync).
    pub issue: Cow<'a, Issue>,
}
