//! Moving messages between nodes: `local` connects nodes in one process (the demo, tests,
//! benchmarks); `protocol`, `server` and `client` are the signed HTTP protocol between
//! node processes.

pub mod client;
pub mod local;
pub mod protocol;
pub mod server;
