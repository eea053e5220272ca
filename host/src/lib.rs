//! twinsync keeps issues in two trackers in sync. Each tracker runs a [`sync::Node`]; the
//! mapping between them is done by processors, WebAssembly components implementing the WIT
//! contract in `wit/processor.wit`, run by [`runtime::Runtime`] in a sandbox.

pub mod admin;
pub mod builtin;
pub mod clock;
pub mod config;
pub mod console;
pub mod hex;
pub mod model;
pub mod ops;
pub mod plugins;
pub mod runtime;
pub mod service;
pub mod setup;
pub mod store;
pub mod sync;
pub mod tracker;
pub mod transport;
