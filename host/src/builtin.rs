//! The example processors, built from `guest/processors/` by `build.rs` and embedded in the
//! binary, so that `twinsync demo` needs no files.

/// `mirror`: copies the core fields both ways.
pub const MIRROR: &[u8] = include_bytes!(env!("TWINSYNC_BUILTIN_MIRROR"));
/// `remote-key`: the seed feature; stores the twin's key, syncs back on first sync.
pub const REMOTE_KEY: &[u8] = include_bytes!(env!("TWINSYNC_BUILTIN_REMOTE_KEY"));
/// `status-guard`: `mirror` that leaves the status alone when the replica's is stale.
pub const STATUS_GUARD: &[u8] = include_bytes!(env!("TWINSYNC_BUILTIN_STATUS_GUARD"));

/// Every built-in processor by name.
pub const ALL: &[(&str, &[u8])] = &[
    ("mirror", MIRROR),
    ("remote-key", REMOTE_KEY),
    ("status-guard", STATUS_GUARD),
];

/// The built-in processor called `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, wasm)| *wasm)
}
