//! The guest's page arena: a talc allocator over memory taken once from the
//! Hyperlight heap at start-up, installed as the page-allocation hook
//! (`capbox_shared::page_alloc`). Cap pages (`SharedPage`) and PVM memory
//! regions live here; everything else (the directory's maps, decoded
//! programs, messages) stays on the global heap that hyperlight-guest-bin
//! owns.
//!
//! Size: [`ARENA_SHARE_PERCENT`] of the heap the host configured (read from
//! Hyperlight's PEB, not assumed). The global heap is a buddy allocator,
//! which rounds every request up to a power of two, so the arena is claimed
//! as power-of-two chunks, largest first; talc manages them as one arena.
//! One allocation (one memory region) must fit inside a chunk.
//!
//! When the arena is full, mapping PVM memory fails (a typed error for the
//! invocation) and a Data page spills to the global heap (counted in
//! `stats` as spill); see `capbox_shared::page_alloc`.

use core::alloc::Layout;
use core::ptr::NonNull;

use capbox_shared::page_alloc::{self, PageAllocator};
use spin::Mutex;
use talc::{ErrOnOom, Span, Talc};

/// Share of the guest heap given to the arena; the rest serves the
/// directory, decoded programs, messages and the Rust runtime.
pub const ARENA_SHARE_PERCENT: usize = 75;
/// Chunks smaller than this are not worth claiming.
const MIN_CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;

struct Arena {
    talc: Talc<ErrOnOom>,
    capacity: u64,
}

struct TalcArena(Mutex<Arena>);

static ARENA: TalcArena = TalcArena(Mutex::new(Arena {
    talc: Talc::new(ErrOnOom),
    capacity: 0,
}));

// SAFETY: talc hands out disjoint blocks inside memory claimed exclusively
// for it (see `init`), which is never freed; the mutex serialises every use
// of the allocator, and zeroing is done here when asked.
unsafe impl PageAllocator for TalcArena {
    fn allocate(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the size is non-zero (checked above).
        let block = unsafe { self.0.lock().talc.malloc(layout) }.ok()?;
        if zeroed {
            // SAFETY: the block is valid for `layout.size()` bytes and ours.
            unsafe { block.as_ptr().write_bytes(0, layout.size()) };
        }
        Some(block)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a block from `allocate` with its layout.
        unsafe { self.0.lock().talc.free(block, layout) }
    }

    fn capacity(&self) -> u64 {
        self.0.lock().capacity
    }
}

/// The heap size the host gave this guest, from Hyperlight's PEB.
fn heap_size() -> usize {
    // SAFETY: hyperlight-guest-bin initialises `GUEST_HANDLE` before it
    // calls `main`, and nothing writes it afterwards; we only read.
    let handle = unsafe { &*core::ptr::addr_of!(hyperlight_guest_bin::GUEST_HANDLE) };
    match handle.peb() {
        // SAFETY: the PEB is set up by the host and stays valid for the
        // guest's lifetime (Hyperlight's contract).
        Some(peb) => unsafe { (*peb).guest_heap.size as usize },
        None => 0,
    }
}

/// Claims the arena from the global heap and installs it as the page
/// allocator. Called once from `main`, before any page is allocated. If the
/// heap cannot spare anything the arena stays empty: every page then
/// spills and every memory region fails to map.
pub fn init() {
    let target = heap_size() / 100 * ARENA_SHARE_PERCENT;
    let mut arena = ARENA.0.lock();
    let mut claimed = 0usize;
    let mut chunk = prev_power_of_two(target);
    while chunk >= MIN_CHUNK {
        if claimed + chunk > target {
            chunk /= 2;
            continue;
        }
        let Ok(layout) = Layout::from_size_align(chunk, PAGE) else {
            break;
        };
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc::alloc::alloc(layout) };
        if base.is_null() {
            chunk /= 2;
            continue;
        }
        // SAFETY: `base..base + chunk` was just allocated for us, is never
        // freed, and is handed to talc exclusively.
        match unsafe { arena.talc.claim(Span::from_base_size(base, chunk)) } {
            Ok(span) => {
                claimed += chunk;
                arena.capacity += span.size() as u64;
            }
            Err(()) => break,
        }
    }
    drop(arena);
    // Only fails if a page was allocated before `main`: then the global
    // heap stays the page allocator and stats report capacity 0.
    let _: Result<(), _> = page_alloc::install(&ARENA);
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 { 0 } else { 1 << (usize::BITS - 1 - n.leading_zeros()) }
}
