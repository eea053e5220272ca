//! The `types` interface of the frozen contract `twinsync:processor@0.1.0`
//! (`wit/since_v0_1_0/`), mapped onto the host's model like the current one: every type is
//! the same but the sync context, which has no `origin` in 0.1.0.

pub use super::wit_types::{
    Attachment, Comment, ConflictPolicy, CustomField, Date, DateTime, Direction, FieldPolicy,
    FieldStamp, FieldValue, Issue, LogLevel, MergeBase, ProcessorError, Replica, SyncReason, User,
};
pub use super::wit_types::{Host, HostWithStore};
use wasmtime::component::{ComponentType, Lift, Lower};

/// `types.sync-context` of 0.1.0: the current context without `origin`.
#[derive(Debug, Clone, PartialEq, ComponentType, Lift, Lower)]
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
    pub now: String,
}

impl From<&crate::model::SyncContext> for SyncContext {
    fn from(ctx: &crate::model::SyncContext) -> Self {
        SyncContext {
            connection: ctx.connection.clone(),
            local_instance: ctx.local_instance.clone(),
            remote_instance: ctx.remote_instance.clone(),
            direction: ctx.direction,
            first_sync: ctx.first_sync,
            event_id: ctx.event_id.clone(),
            reason: ctx.reason,
            hop: ctx.hop,
            now: ctx.now.clone(),
        }
    }
}

/// An empty instance for the interface, so that 0.1.0 components importing it link.
pub fn add_to_linker<T, D>(
    linker: &mut wasmtime::component::Linker<T>,
    _host_getter: fn(&mut T) -> D::Data<'_>,
) -> wasmtime::Result<()>
where
    D: wasmtime::component::HasData,
    for<'a> D::Data<'a>: Host,
    T: 'static,
{
    linker.instance(super::bindings::v0_1_0::TYPES)?;
    Ok(())
}
