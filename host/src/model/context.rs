//! The context of one sync event, as handed to a processor.

use serde::{Deserialize, Serialize};

/// The shape of a connection as processors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Bidirectional,
    Unidirectional,
}

/// Why a sync event exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncReason {
    LocalChange,
    SyncBack,
    ManualExalate,
    Retry,
}

impl SyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncReason::LocalChange => "local-change",
            SyncReason::SyncBack => "sync-back",
            SyncReason::ManualExalate => "manual-exalate",
            SyncReason::Retry => "retry",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "local-change" => SyncReason::LocalChange,
            "sync-back" => SyncReason::SyncBack,
            "manual-exalate" => SyncReason::ManualExalate,
            "retry" => SyncReason::Retry,
            _ => return None,
        })
    }
}

/// Everything a processor knows about the event it processes (`types.sync-context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncContext {
    pub connection: String,
    pub local_instance: String,
    pub remote_instance: String,
    pub direction: Direction,
    pub first_sync: bool,
    pub event_id: String,
    pub reason: SyncReason,
    pub hop: u32,
    /// RFC 3339, UTC: the event's time, fixed for the event.
    pub now: String,
}
