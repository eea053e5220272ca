//! Host bindings generated from `wit/processor.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "processor",
    // Host functions may trap: that is how the host-call limit stops a guest.
    imports: { default: trappable },
    // The WIT's types are the host's model types (see `wit_types`).
    with: { "twinsync:processor/types": super::wit_types },
});

pub use self::exports::twinsync::processor::{incoming, outgoing};
pub use self::twinsync::processor::sync_helper;

/// The version of the contract this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The WIT package this host implements, as it appears in import and export names.
pub const PACKAGE: &str = "twinsync:processor@0.1.0";
/// Import name of the types interface.
pub const TYPES: &str = "twinsync:processor/types@0.1.0";
/// Export name of the incoming interface.
pub const INCOMING: &str = "twinsync:processor/incoming@0.1.0";
/// Export name of the outgoing interface.
pub const OUTGOING: &str = "twinsync:processor/outgoing@0.1.0";
