//! The guest's page arena: a talc allocator over a region taken once from
//! the Hyperlight heap at start-up. Program memory pages are allocated
//! here, so their usage is visible in `stats` and an exhausted arena is a
//! typed error (`OutOfMemory`) instead of a guest abort.

use alloc::alloc::{Layout, alloc};
use core::ptr::NonNull;

use spin::Mutex;
use talc::{ErrOnOom, Span, Talc};

/// Bytes reserved for the arena (the rest of the heap serves the directory
/// and the Rust runtime).
pub const ARENA_BYTES: usize = 16 << 20;
const PAGE: usize = 4096;

struct Arena {
    talc: Talc<ErrOnOom>,
    capacity: usize,
    used: usize,
}

static ARENA: Mutex<Arena> = Mutex::new(Arena {
    talc: Talc::new(ErrOnOom),
    capacity: 0,
    used: 0,
});

/// Claims the arena's region from the global heap. Called once from main;
/// if the heap cannot spare it the arena stays empty and every page
/// allocation reports `OutOfMemory`.
pub fn init() {
    let Ok(layout) = Layout::from_size_align(ARENA_BYTES, PAGE) else {
        return;
    };
    // SAFETY: the layout has a non-zero size.
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        return;
    }
    let mut arena = ARENA.lock();
    // SAFETY: `base..base+ARENA_BYTES` was just allocated for us, is never
    // freed, and is handed to talc exclusively.
    if let Ok(span) = unsafe { arena.talc.claim(Span::from_base_size(base, ARENA_BYTES)) } {
        arena.capacity = span.size();
    }
}

/// Usage in bytes: (used, capacity).
pub fn usage() -> (usize, usize) {
    let arena = ARENA.lock();
    (arena.used, arena.capacity)
}

/// A zeroed 4 KiB page owned by the arena; freed on drop.
pub struct ArenaPage {
    ptr: NonNull<u8>,
}

// SAFETY: the page is uniquely owned memory; nothing else aliases it.
unsafe impl Send for ArenaPage {}

impl ArenaPage {
    fn layout() -> Layout {
        // 4096 is a valid size and power-of-two alignment.
        Layout::new::<[u8; PAGE]>().align_to(PAGE).unwrap_or(Layout::new::<[u8; PAGE]>())
    }

    /// A fresh zeroed page, or `None` when the arena is exhausted.
    pub fn new() -> Option<Self> {
        let mut arena = ARENA.lock();
        // SAFETY: the layout is non-zero sized.
        let ptr = unsafe { arena.talc.malloc(Self::layout()) }.ok()?;
        arena.used += PAGE;
        // SAFETY: `ptr` points to PAGE freshly allocated writable bytes.
        unsafe { ptr.as_ptr().write_bytes(0, PAGE) };
        Some(ArenaPage { ptr })
    }

    /// The page's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8; PAGE] {
        // SAFETY: `ptr` is a live, exclusively owned, PAGE-byte allocation.
        unsafe { &mut *self.ptr.as_ptr().cast::<[u8; PAGE]>() }
    }
}

impl Drop for ArenaPage {
    fn drop(&mut self) {
        let mut arena = ARENA.lock();
        // SAFETY: `ptr` came from this talc with this layout and is freed once.
        unsafe { arena.talc.free(self.ptr, Self::layout()) };
        arena.used -= PAGE;
    }
}
