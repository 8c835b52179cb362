//! The page-allocation hook: where cap pages ([`SharedPage`]) and PVM memory
//! regions get their storage.
//!
//! The guest cannot install a second `#[global_allocator]`
//! (hyperlight-guest-bin owns it), so the bulk allocations that make up
//! most of its memory — Data pages and program memory — go through this
//! hook instead. The guest installs its talc arena here at start-up
//! ([`install`]); anywhere else (the host, the local backend, tests) the
//! hook is the global allocator.
//!
//! The first allocation fixes the allocator for the life of the process:
//! [`install`] after that fails. So a block is always returned to the
//! allocator that produced it.
//!
//! Usage is counted here, for every allocator alike ([`usage`]): bytes
//! handed out and not yet returned, their peak, and *spill* — Data pages
//! that did not fit in the installed allocator and were taken from the
//! global heap instead (see [`SharedPage`]). PVM memory never spills: a
//! region that does not fit is a typed error
//! ([`crate::pvm::MemoryError::OutOfMemory`]).
//!
//! [`SharedPage`]: crate::cap::SharedPage

use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use spin::Once;

/// A source of page storage.
///
/// # Safety
///
/// An implementation must behave like a `GlobalAlloc`: a block returned by
/// [`allocate`](Self::allocate) is valid for reads and writes of
/// `layout.size()` bytes, aligned to `layout.align()`, disjoint from every
/// other live block, zero-filled when `zeroed` is true, and stays valid
/// until it is passed to [`deallocate`](Self::deallocate). It must be
/// callable from any thread (the host runs kernels on many).
pub unsafe trait PageAllocator: Sync {
    /// A block for `layout` (never zero-sized), or `None` when out of space.
    fn allocate(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>>;

    /// Returns a block.
    ///
    /// # Safety
    ///
    /// `block` came from [`allocate`](Self::allocate) on this allocator
    /// with this same `layout`, and is not used after this call.
    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout);

    /// Total bytes this allocator can hand out; 0 means unbounded (the
    /// global heap).
    fn capacity(&self) -> u64;
}

/// The default hook: the global allocator.
struct GlobalHeap;

// SAFETY: forwards to the global allocator, which upholds the same contract.
unsafe impl PageAllocator for GlobalHeap {
    fn allocate(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
        global_allocate(layout, zeroed)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: `block` came from `global_allocate` with `layout` (the
        // caller's contract).
        unsafe { alloc::alloc::dealloc(block.as_ptr(), layout) }
    }

    fn capacity(&self) -> u64 {
        0
    }
}

fn global_allocate(layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
    debug_assert!(layout.size() != 0);
    // SAFETY: every caller in this module passes a non-zero-sized layout.
    let block = unsafe {
        if zeroed {
            alloc::alloc::alloc_zeroed(layout)
        } else {
            alloc::alloc::alloc(layout)
        }
    };
    NonNull::new(block)
}

static GLOBAL_HEAP: GlobalHeap = GlobalHeap;
static ALLOCATOR: Once<&'static dyn PageAllocator> = Once::new();

static USED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static SPILL: AtomicUsize = AtomicUsize::new(0);

/// [`install`] came too late: pages were already allocated (or another
/// allocator was installed first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyInstalled;

impl fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a page allocator is already in use; install one before the first page is allocated",
        )
    }
}

/// Makes `allocator` the source of every page from now on. Succeeds once,
/// before the first page allocation; installing the same allocator again
/// is a no-op.
///
/// Allocators are told apart by address, so give each its own non-zero-sized
/// `static`.
pub fn install(allocator: &'static dyn PageAllocator) -> Result<(), AlreadyInstalled> {
    let current = ALLOCATOR.call_once(|| allocator);
    if core::ptr::addr_eq(*current, allocator) {
        Ok(())
    } else {
        Err(AlreadyInstalled)
    }
}

/// The allocator in use (fixing the default if none was installed).
#[inline]
fn current() -> &'static dyn PageAllocator {
    *ALLOCATOR.call_once(|| &GLOBAL_HEAP)
}

/// Page-storage usage in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageUsage {
    /// What the installed allocator can hold; 0 = unbounded (global heap).
    pub capacity: u64,
    /// Handed out by the allocator and not yet returned.
    pub used: u64,
    /// The largest `used` so far.
    pub peak: u64,
    /// Data pages living on the global heap because the allocator was
    /// full (bytes, not yet returned).
    pub spill: u64,
}

/// Current usage, process-wide (every kernel in the process shares the
/// hook).
pub fn usage() -> PageUsage {
    PageUsage {
        capacity: current().capacity(),
        used: USED.load(Ordering::Relaxed) as u64,
        peak: PEAK.load(Ordering::Relaxed) as u64,
        spill: SPILL.load(Ordering::Relaxed) as u64,
    }
}

/// Where a block came from, so it goes back to the same place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The installed allocator.
    Pages,
    /// The global heap, because the allocator was full.
    Spill,
}

/// A block for `layout` (non-zero size) from the installed allocator.
pub(crate) fn allocate(layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
    let block = current().allocate(layout, zeroed)?;
    let used = USED.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
    PEAK.fetch_max(used, Ordering::Relaxed);
    Some(block)
}

/// A block for `layout` (non-zero size): from the installed allocator, or
/// else from the global heap (counted as spill). `None` only when both are
/// exhausted.
pub(crate) fn allocate_or_spill(layout: Layout, zeroed: bool) -> Option<(NonNull<u8>, Origin)> {
    if let Some(block) = allocate(layout, zeroed) {
        return Some((block, Origin::Pages));
    }
    let block = global_allocate(layout, zeroed)?;
    SPILL.fetch_add(layout.size(), Ordering::Relaxed);
    Some((block, Origin::Spill))
}

/// Returns a block.
///
/// # Safety
///
/// `block` came from [`allocate`] (then `origin` is [`Origin::Pages`]) or
/// [`allocate_or_spill`] (with the origin it reported) with this `layout`,
/// and is not used afterwards.
pub(crate) unsafe fn deallocate(block: NonNull<u8>, layout: Layout, origin: Origin) {
    match origin {
        Origin::Pages => {
            // SAFETY: the block came from the installed allocator, which
            // cannot change once a block exists (see `install`).
            unsafe { current().deallocate(block, layout) };
            USED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        Origin::Spill => {
            // SAFETY: a spilled block came from `global_allocate` with
            // `layout`.
            unsafe { alloc::alloc::dealloc(block.as_ptr(), layout) };
            SPILL.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }
}
