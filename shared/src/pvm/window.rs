//! The interpreter's fast path into memory: where the last load (or
//! store) landed, as raw parts of that region's buffers.
//!
//! Reaching a region's bytes through `Memory` means three dependent loads
//! (the regions' `Vec`, the `Region`, its buffer) before the access itself;
//! the register file and the window sit next to each other in the
//! `Machine`, so a hit costs one subtraction, one compare and the access.
//! `Memory` keeps the invariant below; everything else (finding the region,
//! faults, access rights) stays on the slow path.

use core::ptr::NonNull;

use alloc::vec::Vec;

use super::buffer::RegionBuffer;
use super::memory::PAGE_SIZE;

/// The raw parts of one region's buffers, or nothing (`len` 0: every access
/// misses).
///
/// Invariant (kept by `Memory`, which owns the region): while `len` > 0,
/// `data` is valid for reads and writes of `len` bytes and `dirty` for
/// `len` / `PAGE_SIZE` / 64 words (rounded up), both the buffers of the
/// region based at `base`; `Memory` empties its windows before anything
/// that can move, resize or free a region's buffers (`map`, `set_heap`,
/// `sbrk`), and drops them with the buffers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    base: u32,
    len: usize,
    data: *mut u8,
    dirty: *mut u64,
    /// The offsets of the last two pages this window marked dirty and
    /// holds whole, the newer first ([`NOT_MARKED`]: none): a store inside
    /// one skips the bitmap and the bounds check. Two, so stores that
    /// alternate between two pages (a stack frame across a page boundary)
    /// stay on the fast path. `Memory` empties its windows when it clears
    /// the bitmaps, so these pages' bits are set while named here.
    marked: [u64; 2],
    /// For generated code (`jit`): the pages in `marked` as guest
    /// addresses (`base` + offset; [`NOT_MARKED`]: none) and as host
    /// pointers, so its store check and address take two loads.
    #[cfg(feature = "jit")]
    marked_address: [u64; 2],
    #[cfg(feature = "jit")]
    marked_host: [*mut u8; 2],
}

// SAFETY: a window only points into buffers owned by the `Memory` that
// holds it, and is only used through that `Memory`'s `&self`/`&mut self`
// methods, so sharing or sending it is as safe as sharing or sending the
// `Memory` (whose `RegionBuffer`s are `Send` and `Sync`).
unsafe impl Send for Window {}
// SAFETY: as for `Send`.
unsafe impl Sync for Window {}

/// `marked` when no page is: far above any offset (offsets are below
/// 2^32), so `offset - NOT_MARKED` wraps to a large number.
const NOT_MARKED: u64 = 1 << 63;

/// Where generated code finds a window's fields (`jit`).
#[cfg(feature = "jit")]
pub(super) mod offsets {
    use super::Window;
    use core::mem::offset_of;

    pub(in crate::pvm) const BASE: usize = offset_of!(Window, base);
    pub(in crate::pvm) const LEN: usize = offset_of!(Window, len);
    pub(in crate::pvm) const DATA: usize = offset_of!(Window, data);
    pub(in crate::pvm) const MARKED_ADDRESS: usize = offset_of!(Window, marked_address);
    pub(in crate::pvm) const MARKED_HOST: usize = offset_of!(Window, marked_host);
}

impl Window {
    /// Matches no address.
    pub(super) const EMPTY: Window = Window {
        base: 0,
        len: 0,
        data: NonNull::dangling().as_ptr(),
        dirty: NonNull::dangling().as_ptr(),
        marked: [NOT_MARKED; 2],
        #[cfg(feature = "jit")]
        marked_address: [NOT_MARKED; 2],
        #[cfg(feature = "jit")]
        marked_host: [NonNull::dangling().as_ptr(); 2],
    };

    /// The window of the region based at `base` with these buffers, or
    /// [`Window::EMPTY`] if the dirty bitmap does not cover the data (never
    /// for a well-formed region).
    pub(super) fn new(base: u32, data: &mut RegionBuffer, dirty: &mut Vec<u64>) -> Window {
        let pages = data.len().div_ceil(PAGE_SIZE as usize);
        if dirty.len() < pages.div_ceil(64) {
            return Window::EMPTY;
        }
        Window {
            base,
            len: data.len(),
            data: data.as_mut_ptr(),
            dirty: dirty.as_mut_ptr(),
            marked: [NOT_MARKED; 2],
            #[cfg(feature = "jit")]
            marked_address: [NOT_MARKED; 2],
            #[cfg(feature = "jit")]
            marked_host: [NonNull::dangling().as_ptr(); 2],
        }
    }

    /// This window, having marked the page holding `offset` (whose dirty
    /// bit the caller set).
    pub(super) fn marked_at(mut self, offset: usize) -> Window {
        self.mark_at(offset);
        self
    }

    /// Remembers the page holding `offset` as marked, if the window holds
    /// all of it (so a store inside it needs no bounds check).
    #[inline(always)]
    fn mark_at(&mut self, offset: usize) {
        let start = offset / PAGE_SIZE as usize * PAGE_SIZE as usize;
        if start + PAGE_SIZE as usize <= self.len && start as u64 != self.marked[0] {
            self.marked = [start as u64, self.marked[0]];
            #[cfg(feature = "jit")]
            {
                let address = u64::from(self.base) + start as u64;
                self.marked_address = [address, self.marked_address[0]];
                self.marked_host = [self.data.wrapping_add(start), self.marked_host[0]];
            }
        }
    }

    /// Whether all `n` bytes at `offset` lie in a page named in `marked`.
    #[inline(always)]
    fn in_marked(&self, offset: usize, n: usize) -> bool {
        // `offset` < 2^32 and each entry a page's offset or far above.
        let last_start = u64::from(PAGE_SIZE) - n as u64;
        let offset = offset as u64;
        offset.wrapping_sub(self.marked[0]) <= last_start
            || offset.wrapping_sub(self.marked[1]) <= last_start
    }

    /// The offset of `address` in the window if all `n` bytes from it are.
    #[inline(always)]
    fn offset(&self, address: u32, n: usize) -> Option<usize> {
        let offset = address.wrapping_sub(self.base) as usize;
        // No overflow: `offset` < 2^32 and `n` ≤ 8, in 64 bits.
        (offset as u64 + n as u64 <= self.len as u64).then_some(offset)
    }

    /// `N` bytes at `address`, if the window holds them all.
    #[inline(always)]
    pub(super) fn load<const N: usize>(&self, address: u32) -> Option<[u8; N]> {
        let offset = self.offset(address, N)?;
        // SAFETY: `offset + N ≤ len`, and `data` is valid for `len` bytes
        // (the type's invariant); `read_unaligned` needs no alignment.
        Some(unsafe { self.data.add(offset).cast::<[u8; N]>().read_unaligned() })
    }

    /// Writes `bytes` at `address` and marks their pages dirty, if the
    /// window holds them all (only writable regions get a store window).
    #[inline(always)]
    pub(super) fn store<const N: usize>(&mut self, address: u32, bytes: [u8; N]) -> bool {
        let Some(offset) = self.offset(address, N) else {
            return false;
        };
        // SAFETY: `offset + N ≤ len` (`offset` checked it).
        unsafe { self.write_at(offset, bytes) };
        if !self.in_marked(offset, N) {
            self.mark_pages(offset, N);
        }
        true
    }

    /// Writes `bytes` at `address` if they fall in a page the window
    /// marked (so no bitmap to touch, no bounds to check): the
    /// handlers' fast path, which then needs no registers for marking.
    #[inline(always)]
    pub(super) fn store_in_marked<const N: usize>(&mut self, address: u32, bytes: [u8; N]) -> bool {
        let offset = address.wrapping_sub(self.base) as usize;
        if !self.in_marked(offset, N) {
            return false;
        }
        // SAFETY: the `N` bytes lie in a page named in `marked`, which
        // lies in the window (`mark_at` names no other), so
        // `offset + N ≤ len`.
        unsafe { self.write_at(offset, bytes) };
        true
    }

    /// Writes `bytes` at `offset` into the window's data.
    ///
    /// # Safety
    ///
    /// `offset + N` must be at most `len`.
    #[inline(always)]
    unsafe fn write_at<const N: usize>(&mut self, offset: usize, bytes: [u8; N]) {
        let at = self.data.wrapping_add(offset).cast::<[u8; N]>();
        // SAFETY: `data` is valid for writes of `len` bytes (the type's
        // invariant) and `offset + N ≤ len` (the caller's contract), so
        // `at` is in bounds; `write_unaligned` needs no alignment.
        unsafe { at.write_unaligned(bytes) };
    }

    /// Marks the pages of `n` bytes at `offset` (inside the window) dirty
    /// and remembers the last. Inlined: a call here makes every handler
    /// with a store save and restore callee-saved registers on its fast
    /// path (measured: +6-9 % on store-heavy programs).
    #[inline(always)]
    fn mark_pages(&mut self, offset: usize, n: usize) {
        let page = PAGE_SIZE as usize;
        let (first, last) = (offset / page, (offset + n - 1) / page);
        self.mark(first);
        self.mark(last);
        self.mark_at(offset + n - 1);
    }

    /// Sets page `page`'s dirty bit; `page` < `len` / `PAGE_SIZE` (rounded
    /// up).
    #[inline(always)]
    fn mark(&self, page: usize) {
        // SAFETY: `page` is below `len / PAGE_SIZE` rounded up, so its word
        // is below the bitmap's length (the type's invariant).
        unsafe { *self.dirty.add(page / 64) |= 1 << (page % 64) };
    }
}

#[cfg(test)]
mod tests {
    use crate::pvm::{Access, Memory, PageMapEntry};

    fn two_pages() -> Memory {
        Memory::from_page_map(&[PageMapEntry {
            address: 0x10000,
            length: 0x2000,
            access: Access::Write,
        }])
        .expect("maps")
    }

    fn dirty(memory: &Memory) -> alloc::vec::Vec<u32> {
        let mut out = alloc::vec::Vec::new();
        memory.dirty_page_addresses(&mut out);
        out
    }

    #[test]
    fn a_store_after_clear_dirty_marks_its_page_again() {
        let mut memory = two_pages();
        memory.store(0x10008, 7u64.to_le_bytes()).expect("stores");
        assert!(
            memory.store_hinted(0x10010, 8u64.to_le_bytes()),
            "window hit"
        );
        assert_eq!(dirty(&memory), [0x10000]);
        memory.clear_dirty();
        assert!(dirty(&memory).is_empty());
        // The same page again: the window must not trust what it marked
        // before the bitmaps were cleared.
        memory.store(0x10018, 9u64.to_le_bytes()).expect("stores");
        assert!(
            memory.store_hinted(0x10020, 1u64.to_le_bytes()),
            "window hit"
        );
        assert_eq!(dirty(&memory), [0x10000]);
    }

    #[test]
    fn a_store_across_a_page_boundary_marks_both_pages() {
        let mut memory = two_pages();
        memory.store(0x10000, [1u8]).expect("stores");
        memory.clear_dirty();
        memory.store(0x10000, [1u8]).expect("stores");
        // The handlers' fast path takes only stores inside a page its
        // window marked; the full path marks both pages.
        assert!(!memory.store_hinted(0x10ffc, u64::MAX.to_le_bytes()));
        assert_eq!(dirty(&memory), [0x10000]);
        memory
            .store(0x10ffc, u64::MAX.to_le_bytes())
            .expect("stores");
        assert_eq!(dirty(&memory), [0x10000, 0x11000]);
        assert!(memory.store_hinted(0x11800, [2u8]), "a marked page");
        let mut back = [0u8; 8];
        memory.read(0x10ffc, &mut back).expect("reads");
        assert_eq!(back, [0xff; 8]);
    }

    #[test]
    fn stores_alternating_between_two_pages_stay_on_the_fast_path() {
        let mut memory = Memory::from_page_map(&[PageMapEntry {
            address: 0x10000,
            length: 0x3000,
            access: Access::Write,
        }])
        .expect("maps");
        memory.store(0x10ff8, [1u8]).expect("stores");
        assert!(!memory.store_hinted(0x11000, [2u8]), "not marked yet");
        memory.store(0x11000, [2u8]).expect("stores");
        for _ in 0..3 {
            assert!(memory.store_hinted(0x10ff0, [3u8]));
            assert!(memory.store_hinted(0x11008, [4u8]));
        }
        // A third page pushes out the older of the two.
        memory.store(0x12000, [5u8]).expect("stores");
        assert!(memory.store_hinted(0x11010, [6u8]));
        assert!(!memory.store_hinted(0x10fe8, [7u8]));
        assert_eq!(dirty(&memory), [0x10000, 0x11000, 0x12000]);
    }

    #[test]
    fn windows_miss_outside_their_region_and_after_sbrk_moves_the_heap() {
        let mut memory = two_pages();
        memory.store(0x10000, [5u8]).expect("stores");
        assert_eq!(memory.load_hinted::<1>(0x10000), None, "no load yet");
        assert_eq!(memory.load::<1>(0x10000), Ok([5]));
        assert_eq!(memory.load_hinted::<1>(0x10000), Some([5]));
        assert_eq!(memory.load_hinted::<8>(0x11ff9), None, "past the end");
        assert_eq!(memory.load_hinted::<8>(0x11ff8), Some([0; 8]));
        memory.set_heap(0x10000, 0x12000, 0x20000);
        assert_eq!(memory.load_hinted::<1>(0x10000), None, "forgotten");
        assert!(!memory.store_hinted(0x10000, [1u8]), "forgotten");
        assert_ne!(memory.sbrk(0x4000), 0);
        assert_eq!(memory.load::<1>(0x13000), Ok([0]), "the grown heap");
        assert_eq!(memory.load_hinted::<1>(0x10000), Some([5]));
    }

    #[test]
    fn loads_that_alternate_between_two_regions_hit_both_windows() {
        let mut memory = Memory::from_page_map(&[
            PageMapEntry {
                address: 0x10000,
                length: 0x1000,
                access: Access::Read,
            },
            PageMapEntry {
                address: 0x20000,
                length: 0x1000,
                access: Access::Write,
            },
        ])
        .expect("maps");
        memory.initialize(0x10000, &[1]).expect("fits");
        memory.initialize(0x20000, &[2]).expect("fits");
        assert_eq!(memory.load::<1>(0x10000), Ok([1]));
        assert_eq!(memory.load::<1>(0x20000), Ok([2]));
        assert_eq!(
            memory.load_hinted::<1>(0x10000),
            Some([1]),
            "the older window"
        );
        assert_eq!(
            memory.load_hinted::<1>(0x20000),
            Some([2]),
            "the newer window"
        );
        assert_eq!(memory.load_hinted::<1>(0x30000), None);
        // A store can still go to neither: the read-only region has no
        // store window, whatever the load windows hold.
        assert!(!memory.store_hinted(0x10000, [9u8]));
    }
}
