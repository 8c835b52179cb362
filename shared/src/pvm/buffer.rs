//! `RegionBuffer`: the zero-initialised bytes of one memory region, taken
//! from the page-allocation hook ([`crate::page_alloc`]).
//!
//! Only allocation goes through the hook; accesses are plain slice indexing
//! (`Deref<Target = [u8]>`), so the interpreter's loads and stores cost
//! what they cost on a `Vec<u8>`. Running out of space is an error
//! ([`OutOfPages`]), never a fallback: program memory must fit the arena.

use core::alloc::Layout;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::page_alloc::{self, Origin};

/// Alignment of region storage (a cache line).
const ALIGN: usize = 64;

/// The page allocator could not provide `bytes` more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutOfPages {
    pub bytes: usize,
}

/// A zero-initialised, growable byte buffer whose storage comes from the
/// page allocator. Bytes past `len` (up to the capacity) stay zero, so
/// growing within the capacity needs no writes.
pub(crate) struct RegionBuffer {
    block: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: the buffer owns its block exclusively, like a `Vec<u8>`.
unsafe impl Send for RegionBuffer {}
// SAFETY: `&RegionBuffer` only reads, like `&Vec<u8>`.
unsafe impl Sync for RegionBuffer {}

fn layout(capacity: usize) -> Result<Layout, OutOfPages> {
    Layout::from_size_align(capacity, ALIGN).map_err(|_| OutOfPages { bytes: capacity })
}

impl RegionBuffer {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Result<RegionBuffer, OutOfPages> {
        if len == 0 {
            return Ok(RegionBuffer {
                block: NonNull::<[u8; ALIGN]>::dangling().cast(),
                len: 0,
                capacity: 0,
            });
        }
        let block = page_alloc::allocate(layout(len)?, true).ok_or(OutOfPages { bytes: len })?;
        Ok(RegionBuffer {
            block,
            len,
            capacity: len,
        })
    }

    /// Extends the buffer with zeros to `new_len` (no-op if not longer).
    /// Reserves room for doubling when the allocator has it, so a heap
    /// growing page by page is not copied every time.
    pub fn grow_zeroed(&mut self, new_len: usize) -> Result<(), OutOfPages> {
        if new_len <= self.len {
            return Ok(());
        }
        if new_len > self.capacity {
            let doubled = self.capacity.saturating_mul(2);
            let mut bigger = match RegionBuffer::zeroed(doubled.max(new_len)) {
                Ok(bigger) => bigger,
                Err(_) if doubled > new_len => RegionBuffer::zeroed(new_len)?,
                Err(e) => return Err(e),
            };
            bigger[..self.len].copy_from_slice(self);
            bigger.len = self.len;
            *self = bigger;
        }
        // Bytes between the old and new length are still zero: nothing
        // writes past `len`.
        self.len = new_len;
        Ok(())
    }
}

impl RegionBuffer {
    /// The block's pointer itself (not derived from a borrow of the
    /// bytes), for [`super::window::Window`].
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.block.as_ptr()
    }
}

impl Deref for RegionBuffer {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: `block` is valid for `capacity ≥ len` initialised bytes
        // (dangling but aligned when `len` is 0), owned by `self`.
        unsafe { core::slice::from_raw_parts(self.block.as_ptr(), self.len) }
    }
}

impl DerefMut for RegionBuffer {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.block.as_ptr(), self.len) }
    }
}

impl Drop for RegionBuffer {
    fn drop(&mut self) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(layout) = layout(self.capacity) {
            // SAFETY: the block came from `page_alloc::allocate` with this
            // layout (the capacity never changes for a block) and is not
            // used after this.
            unsafe { page_alloc::deallocate(self.block, layout, Origin::Pages) }
        }
    }
}

impl core::fmt::Debug for RegionBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RegionBuffer")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}
