//! Host bindings generated from the contract, one module per version the host runs side
//! by side: `v0_2_1` from `wit/processor.wit` (current) and `v0_1_0` from the frozen copy
//! in `wit/since_v0_1_0/`, which never changes. Contract 0.2.0 (frozen in
//! `wit/since_v0_2_0/`, for its builders) needs no bindings of its own: 0.2.1 only added to
//! it, and the linker gives a component that imports a 0.2.0 interface the 0.2.1 one
//! (semver-compatible names resolve to each other).

/// The contract as it is now.
pub mod v0_2_1 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "processor",
        // Host functions may trap: that is how the host-call limit stops a guest.
        imports: { default: trappable },
        // The WIT's types are the host's model types (see `wit_types`).
        with: { "twinsync:processor/types": crate::runtime::wit_types },
    });

    pub use self::twinsync::processor::sync_helper;

    pub const VERSION: &str = "0.2.1";
    /// Import name of the types interface.
    pub const TYPES: &str = "twinsync:processor/types@0.2.1";
    /// Export name of the incoming interface.
    pub const INCOMING: &str = "twinsync:processor/incoming@0.2.1";
    /// Export name of the outgoing interface.
    pub const OUTGOING: &str = "twinsync:processor/outgoing@0.2.1";
}

/// Contract 0.2.0: 0.2.1 without `read-field-base`. Its components link against the 0.2.1
/// bindings; only the names of their exports differ.
pub mod v0_2_0 {
    pub const VERSION: &str = "0.2.0";
    pub const INCOMING: &str = "twinsync:processor/incoming@0.2.0";
    pub const OUTGOING: &str = "twinsync:processor/outgoing@0.2.0";
}

/// The frozen 0.1.0 contract: components built for it keep running unchanged.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0_1_0",
        world: "processor",
        imports: { default: trappable },
        with: { "twinsync:processor/types": crate::runtime::wit_types_v1 },
    });

    pub use self::twinsync::processor::sync_helper;

    pub const VERSION: &str = "0.1.0";
    pub const TYPES: &str = "twinsync:processor/types@0.1.0";
    pub const INCOMING: &str = "twinsync:processor/incoming@0.1.0";
    pub const OUTGOING: &str = "twinsync:processor/outgoing@0.1.0";
}

pub use v0_2_1::{TYPES, sync_helper};

/// The version of the contract this host implements best: what new plugins build against.
pub const CONTRACT_VERSION: &str = v0_2_1::VERSION;
/// Every contract version this host runs, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 3] = [v0_1_0::VERSION, v0_2_0::VERSION, v0_2_1::VERSION];
