//! A processor's `process` functions, found once per plugin and type-checked once.
//!
//! The generated bindings (`GuestIndices::load`) check the function's type against the
//! contract on every call: a walk over every field of the issue record, about a tenth of
//! a call's fixed cost. The type of an export is a property of the component, the same for
//! every instance made from one `InstancePre`, so the check is done on the first call of a
//! plugin and skipped afterwards.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::Store;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower, TypedFunc,
};

use super::state::State;
use super::wit_types::{Issue, ProcessorError, Replica, SyncContext};
use super::wit_types_v1;

/// The parameters and results of one `process` function of one contract version.
pub(super) trait Signature {
    type Params<'a>: ComponentNamedList + Lower;
    type Results: ComponentNamedList + Lift;
}

/// `incoming.process` of contract 0.1.0.
pub(super) enum IncomingV1 {}
/// `incoming.process` of contracts 0.2.0 and 0.2.1.
pub(super) enum IncomingV2 {}
/// `outgoing.process` of contract 0.1.0.
pub(super) enum OutgoingV1 {}
/// `outgoing.process` of contracts 0.2.0 and 0.2.1.
pub(super) enum OutgoingV2 {}

impl Signature for IncomingV1 {
    type Params<'a> = (
        &'a wit_types_v1::SyncContext,
        &'a Replica,
        Option<&'a Replica>,
        &'a Issue,
    );
    type Results = (Result<Issue, ProcessorError>,);
}

impl Signature for IncomingV2 {
    type Params<'a> = (&'a SyncContext, &'a Replica, Option<&'a Replica>, &'a Issue);
    type Results = (Result<Issue, ProcessorError>,);
}

impl Signature for OutgoingV1 {
    type Params<'a> = (&'a wit_types_v1::SyncContext, &'a Issue);
    type Results = (Result<Option<Replica>, ProcessorError>,);
}

impl Signature for OutgoingV2 {
    type Params<'a> = (&'a SyncContext, &'a Issue);
    type Results = (Result<Option<Replica>, ProcessorError>,);
}

/// The `process` function of one exported interface, with signature `S`.
pub(super) struct Export<S> {
    index: ComponentExportIndex,
    /// Whether a call has checked the function's type against `S` (shared by the clones
    /// of a plugin, which share its component).
    checked: Arc<AtomicBool>,
    signature: PhantomData<fn() -> S>,
}

impl<S> Clone for Export<S> {
    fn clone(&self) -> Self {
        Export {
            index: self.index,
            checked: self.checked.clone(),
            signature: PhantomData,
        }
    }
}

impl<S: Signature> Export<S> {
    /// The `process` function of `interface`, if the component exports it.
    pub fn find(pre: &InstancePre<State>, interface: &str) -> wasmtime::Result<Self> {
        let component = pre.component();
        let missing = || wasmtime::format_err!("no `process` function in `{interface}`");
        let instance = component
            .get_export_index(None, interface)
            .ok_or_else(missing)?;
        let index = component
            .get_export_index(Some(&instance), "process")
            .ok_or_else(missing)?;
        Ok(Export {
            index,
            checked: Arc::default(),
            signature: PhantomData,
        })
    }

    /// The function in `instance`, typed; its type is checked on the plugin's first call.
    pub fn func<'a>(
        &self,
        store: &mut Store<State>,
        instance: &Instance,
    ) -> wasmtime::Result<TypedFunc<S::Params<'a>, S::Results>> {
        let func = instance
            .get_func(&mut *store, self.index)
            .ok_or_else(|| wasmtime::format_err!("`process` is not a function"))?;
        if self.checked.load(Ordering::Acquire) {
            // SAFETY: a previous call checked this export, of an instance of the same
            // component (`Export`s are made from, and used with, one plugin's
            // `InstancePre`), against the same signature `S`; the check depends only on
            // the component's types, so it holds for this instance too.
            return Ok(unsafe { TypedFunc::new_unchecked(func) });
        }
        let typed = func.typed::<S::Params<'a>, S::Results>(&*store)?;
        self.checked.store(true, Ordering::Release);
        Ok(typed)
    }
}
