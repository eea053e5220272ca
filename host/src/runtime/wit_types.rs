//! The `types` interface of the WIT, mapped onto the host's own model: the generated
//! bindings use these instead of generating types of their own, so issues cross into a
//! processor without a conversion step.

pub use crate::model::{
    Attachment, Comment, CustomField, Direction, FieldValue, Issue, Origin, Replica, SyncContext,
    SyncReason, User,
};
use wasmtime::component::{ComponentType, Lift, Lower};

/// `types.date`: ISO 8601 calendar date.
pub type Date = String;
/// `types.date-time`: RFC 3339 in UTC.
pub type DateTime = String;

/// `types.processor-error`: a processor's own failure.
#[derive(Debug, Clone, PartialEq, ComponentType, Lift, Lower)]
#[component(record)]
pub struct ProcessorError {
    pub message: String,
}

/// `types.conflict-policy`: how a field changed on both sides is settled.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    ComponentType,
    Lift,
    Lower,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[component(enum)]
#[repr(u8)]
pub enum ConflictPolicy {
    #[default]
    #[component(name = "overwrite")]
    Overwrite,
    #[component(name = "remote-wins")]
    RemoteWins,
    #[component(name = "local-wins")]
    LocalWins,
    #[component(name = "last-writer-wins")]
    LastWriterWins,
    #[component(name = "hold-for-review")]
    HoldForReview,
}

/// `types.field-stamp`.
#[derive(Debug, Clone, PartialEq, ComponentType, Lift, Lower)]
#[component(record)]
pub struct FieldStamp {
    pub field: String,
    pub at: i64,
    pub by: String,
    #[component(name = "replaced-at")]
    pub replaced_at: i64,
    #[component(name = "replaced-by")]
    pub replaced_by: String,
}

impl FieldStamp {
    /// The stamps of an issue's fields as the WIT lists them.
    pub fn list(stamps: &crate::model::fields::FieldStamps) -> Vec<FieldStamp> {
        stamps
            .iter()
            .map(|(field, s)| FieldStamp {
                field: field.clone(),
                at: s.at,
                by: s.by.clone(),
                replaced_at: s.replaced_at,
                replaced_by: s.replaced_by.clone(),
            })
            .collect()
    }
}

/// `types.field-base` (0.2.1): one field's stamps and policy.
#[derive(Debug, Clone, PartialEq, ComponentType, Lift, Lower)]
#[component(record)]
pub struct FieldBase {
    pub local: Option<FieldStamp>,
    pub remote: Option<FieldStamp>,
    #[component(name = "previous-remote")]
    pub previous_remote: Option<FieldStamp>,
    pub policy: ConflictPolicy,
}

/// `types.field-policy`.
#[derive(Debug, Clone, PartialEq, ComponentType, Lift, Lower)]
#[component(record)]
pub struct FieldPolicy {
    pub field: String,
    pub policy: ConflictPolicy,
}

/// `types.merge-base`: what the host gives an incoming processor for a three-way merge.
#[derive(Debug, Clone, PartialEq, Default, ComponentType, Lift, Lower)]
#[component(record)]
pub struct MergeBase {
    pub local: Option<Issue>,
    #[component(name = "local-stamps")]
    pub local_stamps: Vec<FieldStamp>,
    #[component(name = "remote-stamps")]
    pub remote_stamps: Vec<FieldStamp>,
    #[component(name = "previous-remote-stamps")]
    pub previous_remote_stamps: Vec<FieldStamp>,
    #[component(name = "default-policy")]
    pub default_policy: ConflictPolicy,
    pub policies: Vec<FieldPolicy>,
}

/// `types.log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ComponentType, Lift, Lower)]
#[component(enum)]
#[repr(u8)]
pub enum LogLevel {
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}

/// What bindings generate for an interface: its host trait (empty: `types` has no
/// functions) and a way to add it to a linker (an empty instance, so that components
/// importing the interface for its types link).
pub trait Host {}

impl<H: Host + ?Sized> Host for &mut H {}

pub trait HostWithStore<T>: wasmtime::component::HasData {}

impl<H: ?Sized + wasmtime::component::HasData, T> HostWithStore<T> for H {}

pub fn add_to_linker<T, D>(
    linker: &mut wasmtime::component::Linker<T>,
    _host_getter: fn(&mut T) -> D::Data<'_>,
) -> wasmtime::Result<()>
where
    D: wasmtime::component::HasData,
    for<'a> D::Data<'a>: Host,
    T: 'static,
{
    linker.instance(super::bindings::TYPES)?;
    Ok(())
}
