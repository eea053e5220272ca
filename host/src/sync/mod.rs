//! The sync engine: nodes, connections, the messages between them, and how each event is
//! processed.

mod batch;
mod comment_ids;
mod conflicts;
mod connection;
mod effect;
mod failure;
mod incoming;
mod message;
mod node;
mod outgoing;
mod pipeline;
mod replay;

pub use batch::{BATCH_TIME, Progress, RetryPolicy};
pub use conflicts::Take;
pub use connection::{Connection, Flow, Policies};
pub use failure::{MAX_SYNC_BACK_HOPS, SyncFailure};
pub use message::{MESSAGE_VERSION, MessageKind, Receipt, SyncMessage};
pub use node::{KEEP_EVENTS, Node};
pub use pipeline::Pipeline;
pub use replay::{Replay, ReplayInput};
