//! What one processor invocation may use. Every limit has a safe default and can be set per
//! connection.

use serde::{Deserialize, Serialize};

/// Per-invocation limits. A processor that exceeds one fails with the matching
/// [`ProcessorFailure`](super::ProcessorFailure); the event stays queued as a sync error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Fuel: roughly one unit per WebAssembly instruction executed.
    pub fuel: u64,
    /// Wall-clock time for one call, in milliseconds (checked every epoch tick).
    pub timeout_ms: u64,
    /// Bytes of linear memory, all memories together.
    pub memory_bytes: usize,
    /// Elements in all tables together.
    pub table_elements: usize,
    /// Core instances a component may create.
    pub instances: usize,
    /// Tables a component may create.
    pub tables: usize,
    /// Linear memories a component may create.
    pub memories: usize,
    /// Bytes of input (issue, replica, previous, as JSON) handed to the processor.
    pub input_bytes: usize,
    /// Bytes of output (the returned issue or replica, as JSON).
    pub output_bytes: usize,
    /// Calls to host functions (`sync-helper`) in one invocation.
    pub host_calls: u64,
    /// Bytes of arguments of all host calls together (`record-conflict`, `log`, key
    /// look-ups): what a processor may hand the host besides its result.
    pub host_call_bytes: usize,
    /// Bytes of log (stdout, stderr and `log` calls together); the rest is cut, with a marker.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 100_000_000,
            timeout_ms: 2_000,
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            instances: 50,
            tables: 20,
            memories: 10,
            input_bytes: 1 << 20,
            output_bytes: 1 << 20,
            host_calls: 1_000,
            host_call_bytes: 1 << 20,
            log_bytes: 64 << 10,
        }
    }
}

impl Limits {
    /// The most bytes wasmtime may copy out of the guest in one go: for one host call's
    /// arguments, or for lifting the result (whose host form, with its vectors and enums,
    /// is a few times larger than its text). Checked while lifting, before each copy, so a
    /// result whose strings all point at one large buffer is refused after a few copies,
    /// not after thousands.
    pub fn lift_budget(&self) -> usize {
        self.output_bytes
            .saturating_mul(8)
            .max(self.host_call_bytes)
            .max(64 << 10)
    }
}
