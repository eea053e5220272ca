//! Runs processors: WebAssembly components implementing `wit/processor.wit`, each compiled
//! once and instantiated in a fresh, limited store for every event.

mod bindings;
mod cache;
mod crash;
mod engine;
mod exports;
mod failure;
mod invoke;
mod limits;
mod log;
mod plugin;
mod sandbox;
mod state;
pub mod wit_types;
pub mod wit_types_v1;

pub use bindings::{CONTRACT_VERSION, SUPPORTED_VERSIONS};
pub use cache::{Compiled, sha256_hex};
pub use engine::{PoolConfig, Runtime, RuntimeConfig, available_cores};
pub use failure::ProcessorFailure;
pub use invoke::{Call, Outcome};
pub use limits::Limits;
pub use plugin::{Contract, Plugin, PluginError, PluginIdentity, PluginInfo};
pub use state::{NoTwins, RecordedConflict, SyncBack, TwinDirectory};
pub use wit_types::{ConflictPolicy, FieldBase, FieldPolicy, FieldStamp, MergeBase};
