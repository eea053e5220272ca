//! The sync engine: nodes, connections, the messages between them, and how each event is
//! processed.

mod batch;
mod comment_ids;
mod conflicts;
mod connection;
mod crash;
mod effect;
mod failure;
mod grouped;
pub(crate) mod history;
pub mod ids;
mod incoming;
mod message;
mod node;
mod outgoing;
mod pipeline;
mod receive;
mod replay;
mod verify;

pub use batch::{BATCH_TIME, Progress, RetryPolicy};
pub use conflicts::Take;
pub use connection::{Connection, Flow, Policies};
pub use crash::{CRASH_AT_VAR, CRASH_SKIP_VAR, CrashHook, CrashPoint};
pub use failure::{MAX_SYNC_BACK_HOPS, SyncFailure};
pub use message::{Applied, MESSAGE_VERSION, MessageKind, Receipt, SyncMessage};
pub use node::{KEEP_EVENTS, Node, Observer};
pub use pipeline::{Pipeline, Ran, Workers};
pub use replay::{Replay, ReplayInput};
pub use verify::{Mismatch, Verification, digest};
