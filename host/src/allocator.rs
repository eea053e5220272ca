//! The memory allocators the `twinsync` binary runs with. A host embedding the library
//! chooses its own; it may use these.

/// The Rust allocator: an event allocates and frees many small values (JSON, the strings
/// lifted from a processor's result, SQL arguments), and glibc's `malloc` and `free` took
/// 18 % of a saturated node's time, about 10 % more CPU per event than mimalloc.
/// `#[global_allocator] static A: twinsync::Allocator = twinsync::Allocator;`
pub use mimalloc::MiMalloc as Allocator;

/// Keep the C library's freed memory rather than give it back at once. SQLite allocates its
/// page caches with the C library's `malloc` whatever the Rust allocator is, and empties a
/// connection's cache whenever another process wrote the database (a tracker written by
/// its own users). Once Rust's values moved to [`Allocator`], those caches were all that
/// glibc's heap held, so every emptied cache was given back to the system and faulted in
/// again: a million page faults in ten seconds, and 25 % more CPU per event, in the HTTP
/// benchmark at 2,000 changes a second. Call it first thing in `main`; it does nothing off
/// glibc.
pub fn keep_freed_c_memory() {
    // How much freed memory glibc keeps before it gives the top of its heap back.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator; any value is valid.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
