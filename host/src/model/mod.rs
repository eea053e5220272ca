//! Data the sync engine moves around: issues, replicas and the context of an event.

mod context;
pub mod fields;
mod issue;
mod sample;
mod validate;

pub use context::{Direction, Origin, SyncContext, SyncReason};
pub use issue::{Attachment, Comment, CustomField, FieldValue, Issue, Replica, User};
pub use sample::sample_issue;
pub use validate::validate;
