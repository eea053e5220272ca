//! The context of one sync event, as handed to a processor.

use serde::{Deserialize, Serialize};
use wasmtime::component::{ComponentType, Lift, Lower};

/// The shape of a connection as processors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[serde(rename_all = "kebab-case")]
#[component(enum)]
#[repr(u8)]
pub enum Direction {
    #[component(name = "bidirectional")]
    Bidirectional,
    #[component(name = "unidirectional")]
    Unidirectional,
}

/// Why a sync event exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[serde(rename_all = "kebab-case")]
#[component(enum)]
#[repr(u8)]
pub enum SyncReason {
    #[component(name = "local-change")]
    LocalChange,
    #[component(name = "sync-back")]
    SyncBack,
    #[component(name = "manual-exalate")]
    ManualExalate,
    #[component(name = "retry")]
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

/// Which side created a twin (`types.origin`, new in contract 0.2.0).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ComponentType, Lift, Lower,
)]
#[serde(rename_all = "kebab-case")]
#[component(enum)]
#[repr(u8)]
pub enum Origin {
    /// This side exalated the issue: it is the twin's source.
    #[component(name = "local")]
    Local,
    /// The other side did (inputs stored before 0.2.0 read as this).
    #[default]
    #[component(name = "remote")]
    Remote,
}

/// Everything a processor knows about the event it processes (`types.sync-context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ComponentType, Lift, Lower)]
#[component(record)]
pub struct SyncContext {
    pub connection: String,
    #[component(name = "local-instance")]
    pub local_instance: String,
    #[component(name = "remote-instance")]
    pub remote_instance: String,
    pub direction: Direction,
    #[component(name = "first-sync")]
    pub first_sync: bool,
    #[component(name = "event-id")]
    pub event_id: String,
    pub reason: SyncReason,
    pub hop: u32,
    /// RFC 3339, UTC: the event's time, fixed for the event.
    pub now: String,
    /// Which side created the twin. Not in contract 0.1.0's context.
    #[serde(default)]
    pub origin: Origin,
}
