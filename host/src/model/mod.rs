//! Data the sync engine moves around: issues, replicas and the context of an event.

mod context;
mod issue;

pub use context::{Direction, SyncContext, SyncReason};
pub use issue::{Attachment, Comment, CustomField, FieldValue, Issue, Replica, User};
