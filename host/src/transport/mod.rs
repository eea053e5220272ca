//! Moving messages between nodes. `local` connects nodes in one process (the demo, tests,
//! benchmarks).

pub mod local;
