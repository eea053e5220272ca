//! Why a processor invocation failed: one variant per cause, each with a message a tenant
//! admin understands and the figures involved.

use thiserror::Error;

/// A failed processor invocation. Every variant keeps the event queued as a sync error for
/// its twin only.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProcessorFailure {
    #[error("instruction limit exceeded: the processor used all {limit} units of fuel")]
    InstructionLimit { limit: u64 },
    #[error("timeout: the processor ran longer than {limit_ms} ms")]
    Timeout { limit_ms: u64 },
    #[error(
        "memory limit exceeded: the processor asked for {requested} bytes of memory, the limit is {limit}"
    )]
    MemoryLimit { limit: usize, requested: usize },
    #[error("resource limit exceeded: {what}")]
    ResourceLimit { what: String },
    #[error("stack overflow: the processor recursed too deeply")]
    StackOverflow,
    #[error("processor panicked: {message}")]
    Panic { message: String },
    #[error("processor trapped: {message}")]
    Trap { message: String },
    #[error("invalid output: {reason}")]
    InvalidOutput { reason: String },
    #[error("output too large: {size} bytes, the limit is {limit}")]
    OutputTooLarge { limit: usize, size: usize },
    /// The result was refused while being copied out of the processor, before its size
    /// could be known: its strings and lists add up to more than `budget` bytes.
    #[error(
        "output too large: copying the result out of the processor took more than {budget} \
         bytes (strings that point at the same memory count each time); the limit is {limit} \
         bytes of text"
    )]
    OutputTooLargeToCopy { limit: usize, budget: usize },
    #[error("input too large: {size} bytes, the limit is {limit}")]
    InputTooLarge { limit: usize, size: usize },
    #[error("host call limit exceeded: more than {limit} calls to sync-helper functions")]
    HostCallLimit { limit: u64 },
    #[error(
        "host data limit exceeded: the processor handed the host at least {size} bytes in \
         sync-helper calls, the limit is {limit}"
    )]
    HostDataLimit { limit: usize, size: usize },
    #[error("processor misused the contract: {message}")]
    Misuse { message: String },
    /// The node is shutting down: the event was not processed and stays queued as it was.
    #[error("interrupted: the node is shutting down; the event stays queued")]
    Interrupted,
    #[error("processor error: {message}")]
    Processor { message: String },
    #[error(
        "sync back refused: connection `{connection}` is unidirectional, so this side cannot \
         send anything back; the processor called sync-back-after-processing and ignored the error"
    )]
    SyncBackOnUnidirectional { connection: String },
    #[error("incompatible processor: {reason}")]
    Incompatible { reason: String },
}

impl ProcessorFailure {
    /// Not the processor's fault: the same event runs again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProcessorFailure::Interrupted)
    }

    /// A short, stable name for the cause, stored with the sync error and used in `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProcessorFailure::InstructionLimit { .. } => "instruction-limit",
            ProcessorFailure::Timeout { .. } => "timeout",
            ProcessorFailure::MemoryLimit { .. } => "memory-limit",
            ProcessorFailure::ResourceLimit { .. } => "resource-limit",
            ProcessorFailure::StackOverflow => "stack-overflow",
            ProcessorFailure::Panic { .. } => "panic",
            ProcessorFailure::Trap { .. } => "trap",
            ProcessorFailure::InvalidOutput { .. } => "invalid-output",
            ProcessorFailure::OutputTooLarge { .. }
            | ProcessorFailure::OutputTooLargeToCopy { .. } => "output-too-large",
            ProcessorFailure::InputTooLarge { .. } => "input-too-large",
            ProcessorFailure::HostCallLimit { .. } => "host-call-limit",
            ProcessorFailure::HostDataLimit { .. } => "host-data-limit",
            ProcessorFailure::Misuse { .. } => "misuse",
            ProcessorFailure::Interrupted => "interrupted",
            ProcessorFailure::Processor { .. } => "processor-error",
            ProcessorFailure::SyncBackOnUnidirectional { .. } => "sync-back-unidirectional",
            ProcessorFailure::Incompatible { .. } => "incompatible-plugin",
        }
    }
}
