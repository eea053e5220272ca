//! The allocator of a processor built with this SDK: a bump allocator.
//!
//! twinsync runs every event in a fresh instance and throws it away afterwards, so memory
//! never needs to be given back: an allocation is a pointer increment, and freeing is free.
//! Much of what crossing the contract costs inside the guest is allocation: the host hands an
//! issue over as a few hundred strings, each one a call of `cabi_realloc` (an allocation
//! here), and every one of them is freed again when the processor drops its inputs and after
//! the result has been copied out (`post-return`). With the default allocator (wasi-libc's
//! dlmalloc) each of those is a search of its free lists; here it is a few instructions.
//!
//! The last allocation is grown and freed in place, so a `Vec` or `String` that grows
//! while nothing else is allocated (the common case: building one value) reuses its memory
//! instead of leaving copies behind. Everything else freed stays allocated until the
//! instance is dropped: a processor that allocates and frees in a long loop uses more
//! memory than with dlmalloc, up to its memory limit (a `memory-limit` failure, as with any
//! allocator). Such a processor can turn the SDK's default feature `bump-allocator` off to
//! get the default allocator back.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

const PAGE: usize = 65_536;

/// The free space: `[next, end)` is what the allocator owns and has not handed out yet.
struct Bump {
    next: usize,
    end: usize,
}

/// The SDK's global allocator (see the module documentation).
pub struct BumpAllocator(UnsafeCell<Bump>);

// SAFETY: a processor runs on one thread (wasm32-wasip2 has no threads), so the cell is
// never accessed concurrently.
unsafe impl Sync for BumpAllocator {}

/// Where allocation starts: static memory, so part of what the instance is created with
/// (zero-filled, not stored in the component). Enough for the allocations of an event on an
/// issue with dozens of comments; beyond it, memory grows.
const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: as for `BumpAllocator`; the arena is only reached through the allocator.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));

#[global_allocator]
static ALLOCATOR: BumpAllocator = BumpAllocator(UnsafeCell::new(Bump { next: 0, end: 0 }));

impl Bump {
    /// Hand out `size` bytes aligned to `align`, growing linear memory when needed; `None`
    /// when the memory cannot grow (the host's memory limit).
    fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        if self.end == 0 {
            self.start();
        }
        let start = self.next.checked_add(align - 1)? & !(align - 1);
        let new_next = start.checked_add(size)?;
        if new_next <= self.end {
            self.next = new_next;
            return Some(start);
        }
        self.grow(size.checked_add(align)?)?;
        let start = self.next.checked_add(align - 1)? & !(align - 1);
        self.next = start + size;
        Some(start)
    }

    /// Start in the arena: an event whose allocations fit there never grows memory, and
    /// growing is a system call in the host (the new pages are made accessible, and made
    /// inaccessible again when the instance is dropped).
    fn start(&mut self) {
        self.next = ARENA.0.get() as usize;
        self.end = self.next + ARENA_BYTES;
    }

    /// Make room for at least `bytes` more after `next`.
    fn grow(&mut self, bytes: usize) -> Option<()> {
        let have = self.end - self.next;
        let pages = (bytes - have.min(bytes)).div_ceil(PAGE).max(1);
        let previous = wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return None;
        }
        let old_end = previous * PAGE;
        if old_end != self.end {
            // Memory grown by someone else: start over in the new pages.
            self.next = old_end;
        }
        self.end = old_end + pages * PAGE;
        // Starting over in pages that are not contiguous with ours leaves less than asked.
        if self.end - self.next < bytes {
            return self.grow(bytes);
        }
        Some(())
    }
}

unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded (see `Sync` above), and no reference outlives this call.
        let bump = unsafe { &mut *self.0.get() };
        match bump.take(layout.size(), layout.align()) {
            Some(address) => address as *mut u8,
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Fresh pages from `memory.grow` are zero, but memory given back by `dealloc` (the
        // last allocation, rewound) is not: always clear.
        let ptr = unsafe { self.alloc(layout) };
        if !ptr.is_null() {
            unsafe { core::ptr::write_bytes(ptr, 0, layout.size()) };
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let bump = unsafe { &mut *self.0.get() };
        // Only the last allocation can be given back: rewind to its start.
        if ptr as usize + layout.size() == bump.next {
            bump.next = ptr as usize;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let bump = unsafe { &mut *self.0.get() };
        let address = ptr as usize;
        // The last allocation grows or shrinks where it is, if the pages after it allow.
        if address + layout.size() == bump.next
            && let Some(new_next) = address.checked_add(new_size)
        {
            if new_next <= bump.end {
                bump.next = new_next;
                return ptr;
            }
            if bump.grow(new_next - bump.next).is_some() && bump.next == address + layout.size() {
                bump.next = new_next;
                return ptr;
            }
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the layout's alignment is valid and `new_size` is non-zero (GlobalAlloc's
        // contract for `realloc`).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
        }
        new
    }
}
