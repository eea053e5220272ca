//! The twinsync processor SDK.
//!
//! A processor is a WebAssembly component that twinsync runs for every sync event: the
//! *outgoing* side turns a local issue into the replica the other side may see, the
//! *incoming* side turns a received replica into a change of the local issue. This crate
//! wraps the bindings generated from the WIT contract (`wit/processor.wit`) so that a
//! processor is one `impl Processor` and one `export_processor!`:
//!
//! ```no_run
//! use twinsync_sdk::prelude::*;
//!
//! struct KeepRemoteKey;
//!
//! impl Processor for KeepRemoteKey {
//!     fn incoming(ctx: &SyncContext, replica: Replica, previous: Option<Replica>, issue: Issue)
//!         -> Result<Issue, ProcessorError>
//!     {
//!         let mut issue = mirror_incoming(ctx, &replica, previous.as_ref(), issue);
//!         issue.set_custom_field("remote issue key", FieldValue::Text(replica.key.unwrap_or_default()));
//!         Ok(issue)
//!     }
//! }
//!
//! twinsync_sdk::export_processor!(KeepRemoteKey);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the processor.

extern crate self as twinsync_sdk;

mod attachments;
#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
mod bump;
mod comments;
mod fields;
pub mod host;
mod merge;
mod mirror;

#[doc(hidden)]
pub use wit_bindgen;

/// Bindings generated from the WIT contract. Most processors only need [`prelude`].
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "processor",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "twinsync_sdk::bindings",
        runtime_path: "twinsync_sdk::wit_bindgen::rt",
        additional_derives: [PartialEq, Clone],
    });
}

pub use attachments::merge_attachments;
pub use bindings::twinsync::processor::types::{
    Attachment, Comment, ConflictPolicy, CustomField, Direction, FieldBase, FieldStamp, FieldValue,
    Issue, LogLevel, MergeBase, Origin, ProcessorError, SyncContext, SyncReason, User,
};
pub use comments::merge_comments;
pub use fields::IssueFields;
pub use merge::{Merger, mirror_incoming};
pub use mirror::mirror_outgoing;

/// What one side sends to the other: an issue as the sending side shows it.
pub type Replica = Issue;

/// Everything a processor usually needs, in one `use`.
pub mod prelude {
    pub use crate::host::{
        is_under_sync, local_key_for_remote, log, setting, sync_back_after_processing,
        unexalate_after_processing,
    };
    pub use crate::{
        Comment, CustomField, Direction, FieldValue, Issue, IssueFields, LogLevel, Origin,
        Processor, ProcessorError, Replica, SyncContext, SyncReason, User, merge_comments,
        mirror_incoming, mirror_outgoing,
    };
}

impl ProcessorError {
    /// A processor error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ProcessorError {
            message: message.into(),
        }
    }
}

impl Issue {
    /// An issue with nothing in it: what an incoming processor receives on first sync.
    pub fn empty() -> Self {
        Issue {
            key: None,
            id: None,
            project: String::new(),
            issue_type: String::new(),
            summary: String::new(),
            description: None,
            status: String::new(),
            priority: None,
            resolution: None,
            assignee: None,
            reporter: None,
            labels: Vec::new(),
            components: Vec::new(),
            due_date: None,
            parent_key: None,
            comments: Vec::new(),
            attachments: Vec::new(),
            custom_fields: Vec::new(),
            created: None,
            updated: None,
        }
    }
}

/// A sync processor. Both sides have a default, so a processor implements only the side it
/// customises:
///
/// - [`Processor::outgoing`] defaults to [`mirror_outgoing`]: send the issue as it is, without
///   internal comments;
/// - [`Processor::incoming`] defaults to [`mirror_incoming`]: copy the core fields and merge
///   comments.
pub trait Processor {
    /// Turn a replica received from the other side into the local issue as it should be
    /// stored. See the WIT documentation of `incoming.process` for `previous`.
    fn incoming(
        ctx: &SyncContext,
        replica: Replica,
        previous: Option<Replica>,
        issue: Issue,
    ) -> Result<Issue, ProcessorError> {
        Ok(mirror_incoming(ctx, &replica, previous.as_ref(), issue))
    }

    /// Build the replica of a local issue that changed; `None` sends nothing.
    fn outgoing(ctx: &SyncContext, issue: Issue) -> Result<Option<Replica>, ProcessorError> {
        Ok(Some(mirror_outgoing(ctx, issue)))
    }
}

/// Export a [`Processor`] implementation as the component's `incoming` and `outgoing`
/// interfaces. Use it once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_processor {
    ($processor:ty) => {
        #[doc(hidden)]
        pub struct TwinsyncExport;

        impl $crate::bindings::exports::twinsync::processor::incoming::Guest for TwinsyncExport {
            fn process(
                ctx: $crate::SyncContext,
                replica: $crate::Replica,
                previous: Option<$crate::Replica>,
                issue: $crate::Issue,
            ) -> Result<$crate::Issue, $crate::ProcessorError> {
                <$processor as $crate::Processor>::incoming(&ctx, replica, previous, issue)
            }
        }

        impl $crate::bindings::exports::twinsync::processor::outgoing::Guest for TwinsyncExport {
            fn process(
                ctx: $crate::SyncContext,
                issue: $crate::Issue,
            ) -> Result<Option<$crate::Replica>, $crate::ProcessorError> {
                <$processor as $crate::Processor>::outgoing(&ctx, issue)
            }
        }

        $crate::bindings::export_bindings!(TwinsyncExport with_types_in $crate::bindings);
    };
}
