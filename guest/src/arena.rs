//! The guest's page arena: a talc allocator over a region taken once from
//! the Hyperlight heap at start-up; `stats` reports its usage.
//!
//! Not yet used for allocations: cap pages (`Arc<Page>` in `cap::Data`)
//! and PVM memory (`Vec` regions in `pvm::Memory`) come from the global
//! allocator, which hyperlight-guest-bin owns. Routing them here needs a
//! page-allocation hook in those modules.

use alloc::alloc::{Layout, alloc};

use spin::Mutex;
use talc::{ErrOnOom, Span, Talc};

/// Bytes reserved for the arena (the rest of the heap serves the directory
/// and the Rust runtime).
pub const ARENA_BYTES: usize = 1 << 20;
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
