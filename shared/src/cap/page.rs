//! `SharedPage`: one refcounted, copy-on-write 4 KiB page whose storage
//! comes from the page-allocation hook ([`crate::page_alloc`]).
//!
//! It is what `Arc<Page>` was for `Data`, minus weak references, plus the
//! hook: when the installed allocator (the guest's arena) is full, the page
//! is taken from the global heap instead and counted as spill, so building
//! or copying a Data never fails for lack of arena space (it fails only if
//! the global heap is exhausted too, like any allocation).

use core::alloc::Layout;
use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering, fence};

use super::data::{PAGE_SIZE, Page};
use crate::page_alloc::{self, Origin};

/// The allocation behind a [`SharedPage`]: the holder count, where the
/// block came from, and the bytes.
#[repr(C)]
struct PageBlock {
    holders: AtomicUsize,
    origin: Origin,
    bytes: Page,
}

const BLOCK_LAYOUT: Layout = Layout::new::<PageBlock>();

/// A shared, copy-on-write page. `Clone` adds a holder (no copy);
/// [`SharedPage::make_mut`] copies only when the page is shared; the last
/// holder's drop returns the block to the allocator it came from.
pub struct SharedPage {
    block: NonNull<PageBlock>,
}

// SAFETY: the bytes are only written through `make_mut`, which requires the
// handle to be the sole holder; the holder count is atomic. This is the
// reasoning that makes `Arc<[u8; 4096]>` Send + Sync.
unsafe impl Send for SharedPage {}
// SAFETY: as above; `&SharedPage` only reads the bytes.
unsafe impl Sync for SharedPage {}

impl SharedPage {
    /// A page of zeros.
    pub fn zeroed() -> SharedPage {
        SharedPage::allocate(None)
    }

    /// A page holding a copy of `bytes`.
    pub fn new(bytes: &Page) -> SharedPage {
        SharedPage::allocate(Some(bytes))
    }

    /// Allocates a block holding `bytes` (zeros if `None`) with one holder.
    fn allocate(bytes: Option<&Page>) -> SharedPage {
        let zeroed = bytes.is_none();
        let Some((raw, origin)) = page_alloc::allocate_or_spill(BLOCK_LAYOUT, zeroed) else {
            alloc::alloc::handle_alloc_error(BLOCK_LAYOUT)
        };
        let block = raw.cast::<PageBlock>();
        // SAFETY: `raw` is a fresh, exclusively owned `BLOCK_LAYOUT` block, so
        // every field may be written through raw places; its bytes are zero
        // (`zeroed`) or fully copied in before the handle exists.
        unsafe {
            let header = block.as_ptr();
            core::ptr::addr_of_mut!((*header).holders).write(AtomicUsize::new(1));
            core::ptr::addr_of_mut!((*header).origin).write(origin);
            if let Some(bytes) = bytes {
                let target = core::ptr::addr_of_mut!((*header).bytes).cast::<u8>();
                core::ptr::copy_nonoverlapping(bytes.as_ptr(), target, PAGE_SIZE);
            }
        }
        SharedPage { block }
    }

    fn header(&self) -> &PageBlock {
        // SAFETY: the block lives while any handle does, and only
        // `make_mut` (with `&mut self` and a single holder) writes to it.
        unsafe { self.block.as_ref() }
    }

    /// Whether both handles hold the same block.
    pub fn ptr_eq(a: &SharedPage, b: &SharedPage) -> bool {
        a.block == b.block
    }

    /// How many handles hold this page.
    pub fn holders(this: &SharedPage) -> usize {
        this.header().holders.load(Ordering::Acquire)
    }

    /// Whether this page was taken from the global heap because the page
    /// allocator was full.
    pub fn is_spilled(this: &SharedPage) -> bool {
        this.header().origin == Origin::Spill
    }

    /// The bytes, writable: copies the page first if another handle holds
    /// it (copy-on-write).
    pub fn make_mut(this: &mut SharedPage) -> &mut Page {
        if this.header().holders.load(Ordering::Acquire) != 1 {
            *this = SharedPage::new(this);
        }
        // SAFETY: `this` is the only holder (checked above, or a fresh
        // copy), and `&mut this` keeps it that way for the borrow: no other
        // handle can be made from it meanwhile.
        unsafe { &mut (*this.block.as_ptr()).bytes }
    }
}

impl Deref for SharedPage {
    type Target = Page;

    #[inline]
    fn deref(&self) -> &Page {
        &self.header().bytes
    }
}

impl Clone for SharedPage {
    fn clone(&self) -> SharedPage {
        // Relaxed suffices for an increment (the holder we clone from keeps
        // the block alive); as for `Arc`.
        let previous = self.header().holders.fetch_add(1, Ordering::Relaxed);
        // A count this large needs more handles than memory can hold.
        assert!(
            previous < isize::MAX as usize,
            "SharedPage holder count overflow"
        );
        SharedPage { block: self.block }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        if self.header().holders.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Synchronise with every other holder's release before freeing.
        fence(Ordering::Acquire);
        let origin = self.header().origin;
        // SAFETY: this was the last holder, so nothing refers to the block;
        // it came from `allocate_or_spill` with `BLOCK_LAYOUT` and `origin`.
        unsafe { page_alloc::deallocate(self.block.cast(), BLOCK_LAYOUT, origin) }
    }
}

impl From<Page> for SharedPage {
    fn from(bytes: Page) -> SharedPage {
        SharedPage::new(&bytes)
    }
}

impl PartialEq for SharedPage {
    fn eq(&self, other: &SharedPage) -> bool {
        SharedPage::ptr_eq(self, other) || self[..] == other[..]
    }
}

impl Eq for SharedPage {}

impl fmt::Debug for SharedPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPage")
            .field("holders", &SharedPage::holders(self))
            .field("spilled", &SharedPage::is_spilled(self))
            .finish_non_exhaustive()
    }
}
