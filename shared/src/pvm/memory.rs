//! PVM memory: a few contiguous regions of 4 KiB pages, each readable or
//! writable, with per-page dirty tracking of writes.
//!
//! Every access is one range check against each region in turn (programs
//! have a handful: read-only data, heap, stack, arguments), so the common
//! case never hashes or walks a page table. Accesses that straddle two
//! regions, wrap around 2^32 or fault take a slow path that finds the lowest
//! inaccessible address exactly as the Graypaper's `ε^μ` prescribes.

use alloc::vec;
use alloc::vec::Vec;

use super::buffer::RegionBuffer;
use super::error::MemoryError;
use super::window::Window;

/// The PVM page size `Z_P`.
pub const PAGE_SIZE: u32 = 1 << 12;

/// Addresses below this are never accessible; touching them panics.
pub const RESERVED_LOW: u32 = 1 << 16;

/// Access rights of a mapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Readable only.
    Read,
    /// Readable and writable.
    Write,
}

/// One entry of a page map: `length` octets from `address`, page aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageMapEntry {
    /// Start address (a multiple of [`PAGE_SIZE`]).
    pub address: u32,
    /// Length in octets (a multiple of [`PAGE_SIZE`]).
    pub length: u32,
    /// Access rights of every page in the range.
    pub access: Access,
}

/// Why an access by the program failed (internal to the interpreter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AccessTrap {
    /// The lowest inaccessible address is in the reserved first 64 KiB.
    Panic,
    /// The lowest inaccessible address is on the page starting here.
    Fault(u32),
}

#[derive(Debug)]
struct Region {
    base: u32,
    access: Access,
    /// From the page-allocation hook (`crate::page_alloc`).
    data: RegionBuffer,
    /// One bit per page; only set for writable regions.
    dirty: Vec<u64>,
}

impl Region {
    fn new(base: u32, length: u32, access: Access) -> Result<Region, MemoryError> {
        let pages = (length / PAGE_SIZE) as usize;
        let data = RegionBuffer::zeroed(length as usize).map_err(|_| MemoryError::OutOfMemory {
            address: base,
            length,
        })?;
        Ok(Region {
            base,
            access,
            data,
            dirty: vec![0; pages.div_ceil(64)],
        })
    }

    fn end(&self) -> u64 {
        u64::from(self.base) + self.data.len() as u64
    }

    fn contains(&self, address: u32) -> bool {
        (address.wrapping_sub(self.base) as usize) < self.data.len()
    }

    #[inline(always)]
    fn mark_dirty(&mut self, offset: usize, len: usize) {
        let first = offset / PAGE_SIZE as usize;
        let last = (offset + len - 1) / PAGE_SIZE as usize;
        self.mark_page_dirty(first);
        // Interpreter stores (≤ 8 octets) touch at most one more page.
        for page in first + 1..=last {
            self.mark_page_dirty(page);
        }
    }

    #[inline(always)]
    fn mark_page_dirty(&mut self, page: usize) {
        if let Some(word) = self.dirty.get_mut(page / 64) {
            *word |= 1 << (page % 64);
        }
    }
}

/// The heap that `sbrk` grows: the end of one writable region.
#[derive(Clone, Copy, Debug)]
struct Heap {
    region: usize,
    /// Current break (first octet not yet handed out).
    top: u32,
    /// The break may not pass this address.
    limit: u32,
}

/// A PVM's memory (`μ`). Region storage comes from the page-allocation
/// hook ([`crate::page_alloc`]): mapping more than it can provide is
/// [`MemoryError::OutOfMemory`], and `sbrk` past it returns 0.
#[derive(Debug)]
pub struct Memory {
    regions: Vec<Region>,
    heap: Option<Heap>,
    /// `sbrk` never grows the mapped total past this many octets.
    sbrk_budget: u64,
    /// An `sbrk` failed for lack of page storage (not for its budget): the
    /// run's result depends on the allocator's state, so the kernel must
    /// not keep it.
    storage_exhausted: bool,
    /// The region the interpreter's last load walk found (empty until one
    /// does, and after anything that changes the regions).
    load_window: Window,
    /// The one the walk found before that: code that alternates between
    /// two regions (the stack and its data) hits one of the two.
    older_load_window: Window,
    /// The writable region the interpreter's last store hit (as above).
    store_window: Window,
}

impl Default for Memory {
    fn default() -> Memory {
        Memory {
            regions: Vec::new(),
            heap: None,
            sbrk_budget: u64::MAX,
            storage_exhausted: false,
            load_window: Window::EMPTY,
            older_load_window: Window::EMPTY,
            store_window: Window::EMPTY,
        }
    }
}

/// Where generated code finds the interpreter's windows (`jit`).
#[cfg(feature = "jit")]
pub(super) mod offsets {
    use super::Memory;
    use core::mem::offset_of;

    pub(in crate::pvm) const LOAD_WINDOW: usize = offset_of!(Memory, load_window);
    pub(in crate::pvm) const OLDER_LOAD_WINDOW: usize = offset_of!(Memory, older_load_window);
    pub(in crate::pvm) const STORE_WINDOW: usize = offset_of!(Memory, store_window);
}

impl Memory {
    /// An empty memory: every access faults.
    pub fn new() -> Memory {
        Memory::default()
    }

    /// Octets mapped in all regions.
    pub fn mapped_bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.data.len() as u64).sum()
    }

    /// Caps what `sbrk` may map: a request that would take
    /// [`Memory::mapped_bytes`] past `max_mapped_bytes` fails (returns 0).
    /// Without a cap one `sbrk` (one gas) could make the host allocate and
    /// zero up to 4 GiB; the kernel sets its per-invocation budget here.
    pub fn set_sbrk_budget(&mut self, max_mapped_bytes: u64) {
        self.sbrk_budget = max_mapped_bytes;
    }

    /// Whether an `sbrk` failed for lack of page storage (see the field).
    pub fn storage_exhausted(&self) -> bool {
        self.storage_exhausted
    }

    /// Memory with the given pages mapped (zero-filled), as the test
    /// vectors' `initial-page-map` describes.
    pub fn from_page_map(entries: &[PageMapEntry]) -> Result<Memory, MemoryError> {
        let mut memory = Memory::new();
        for entry in entries {
            memory.map(entry.address, entry.length, entry.access)?;
        }
        Ok(memory)
    }

    /// Maps `length` zero octets at `address` with `access`. Both must be
    /// page aligned, the range must not overlap the first 64 KiB or another
    /// region.
    pub fn map(&mut self, address: u32, length: u32, access: Access) -> Result<(), MemoryError> {
        self.forget_windows();
        if !address.is_multiple_of(PAGE_SIZE) || !length.is_multiple_of(PAGE_SIZE) {
            return Err(MemoryError::Unaligned { address, length });
        }
        let end = u64::from(address) + u64::from(length);
        if end > 1 << 32 {
            return Err(MemoryError::OutOfRange { address, length });
        }
        if length == 0 {
            return Ok(());
        }
        if address < RESERVED_LOW {
            return Err(MemoryError::Reserved { address });
        }
        if self
            .regions
            .iter()
            .any(|r| u64::from(address) < r.end() && end > u64::from(r.base))
        {
            return Err(MemoryError::Overlap { address });
        }
        let at = self.regions.partition_point(|r| r.base < address);
        self.regions
            .insert(at, Region::new(address, length, access)?);
        if let Some(heap) = &mut self.heap
            && heap.region >= at
        {
            heap.region += 1;
        }
        Ok(())
    }

    /// Makes the writable region that starts at `region_base` the heap:
    /// `sbrk` hands out octets from `top` upward, growing the region page by
    /// page, but never past `limit`.
    pub(crate) fn set_heap(&mut self, region_base: u32, top: u32, limit: u32) {
        self.forget_windows();
        let existing = self
            .regions
            .iter()
            .position(|r| r.base == region_base && r.access == Access::Write);
        let region = match existing {
            Some(region) => region,
            // An empty heap: an empty writable region that sbrk grows.
            None if !self.regions.iter().any(|r| r.contains(region_base)) => {
                let at = self.regions.partition_point(|r| r.base < region_base);
                // An empty region allocates nothing, so it cannot fail.
                let Ok(empty) = Region::new(region_base, 0, Access::Write) else {
                    return;
                };
                self.regions.insert(at, empty);
                at
            }
            None => return,
        };
        self.heap = Some(Heap { region, top, limit });
    }

    /// Copies `bytes` to `address` regardless of access rights (for initial
    /// contents); does not mark pages dirty.
    pub fn initialize(&mut self, address: u32, bytes: &[u8]) -> Result<(), MemoryError> {
        self.copy_in(address, bytes, false, false)
    }

    /// Reads `out.len()` octets at `address` (wrapping at 2^32). Fails with
    /// the first unreadable page.
    pub fn read(&self, address: u32, out: &mut [u8]) -> Result<(), MemoryError> {
        if let Some(page) = self.first_inaccessible(address, out.len(), false) {
            return Err(MemoryError::PageFault { address: page });
        }
        let mut done = 0;
        while done < out.len() {
            let a = address.wrapping_add(done as u32);
            let Some((region, offset, available)) = self.span(a, false) else {
                return Err(MemoryError::PageFault {
                    address: a - a % PAGE_SIZE,
                });
            };
            let n = available.min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.regions[region].data[offset..offset + n]);
            done += n;
        }
        Ok(())
    }

    /// Writes `bytes` at `address` (wrapping at 2^32) with the program's
    /// rights: every page must be writable. Marks the pages dirty.
    pub fn write(&mut self, address: u32, bytes: &[u8]) -> Result<(), MemoryError> {
        if let Some(page) = self.first_inaccessible(address, bytes.len(), true) {
            return Err(MemoryError::PageFault { address: page });
        }
        self.copy_in(address, bytes, true, true)
    }

    /// Whether every octet of `[address, address + len)` is readable.
    pub fn is_readable(&self, address: u32, len: usize) -> bool {
        self.first_inaccessible(address, len, false).is_none()
    }

    /// Whether every octet of `[address, address + len)` is writable by
    /// the program.
    pub fn is_writable(&self, address: u32, len: usize) -> bool {
        self.first_inaccessible(address, len, true).is_none()
    }

    /// The access rights of the page holding `address`.
    pub fn access(&self, address: u32) -> Option<Access> {
        self.regions
            .iter()
            .find(|r| r.contains(address))
            .map(|r| r.access)
    }

    /// Every mapped region in address order: start, access and contents.
    pub fn regions(&self) -> impl Iterator<Item = (u32, Access, &[u8])> + '_ {
        self.regions.iter().map(|r| (r.base, r.access, &*r.data))
    }

    /// Whether any page was written since creation or the last
    /// [`clear_dirty`](Self::clear_dirty): one test per 64 pages, so a
    /// call that wrote nothing skips the page-by-page
    /// [`dirty_pages`](Self::dirty_pages) walk.
    pub fn has_dirty_pages(&self) -> bool {
        self.regions
            .iter()
            .any(|r| r.dirty.iter().any(|&word| word != 0))
    }

    /// Writable pages written since creation or the last
    /// [`clear_dirty`](Self::clear_dirty), in address order, with contents.
    pub fn dirty_pages(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        self.regions.iter().flat_map(|r| {
            r.data
                .chunks(PAGE_SIZE as usize)
                .enumerate()
                .filter(|(page, _)| r.dirty[page / 64] & (1 << (page % 64)) != 0)
                .map(|(page, bytes)| (r.base + page as u32 * PAGE_SIZE, bytes))
        })
    }

    /// Appends the address of every page [`dirty_pages`](Self::dirty_pages)
    /// lists to `out`, in address order: one step per 64 pages of the
    /// dirty bitmaps plus one per dirty page, no walk over the pages (the
    /// kernel's commit and memory reset need only the addresses).
    pub fn dirty_page_addresses(&self, out: &mut Vec<u32>) {
        for r in &self.regions {
            let pages = r.data.len() / PAGE_SIZE as usize;
            for (word, &bits) in r.dirty.iter().enumerate() {
                let mut bits = bits;
                while bits != 0 {
                    let page = word * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if page < pages {
                        out.push(r.base.wrapping_add(page as u32 * PAGE_SIZE));
                    }
                }
            }
        }
    }

    /// Forgets which pages were written.
    pub fn clear_dirty(&mut self) {
        // The store window remembers a page it marked.
        self.forget_windows();
        for r in &mut self.regions {
            r.dirty.fill(0);
        }
    }

    /// `sbrk`: hands out `size` octets at the current break and returns
    /// their address; `size == 0` returns the break. Returns 0 when the
    /// memory has no heap or the request does not fit (past the limit, or
    /// more than the page allocator can provide).
    pub fn sbrk(&mut self, size: u64) -> u64 {
        // Growing the heap may move its buffers.
        self.forget_windows();
        let Some(heap) = self.heap else {
            return 0;
        };
        let old = heap.top;
        // Never grow into the next mapped region, whatever the limit says.
        let next_region = self
            .regions
            .get(heap.region + 1)
            .map_or(u64::MAX, |r| u64::from(r.base));
        let limit = u64::from(heap.limit).min(next_region);
        let Some(new_top) = u64::from(old)
            .checked_add(size)
            .filter(|&t| t.next_multiple_of(u64::from(PAGE_SIZE)) <= limit)
        else {
            return 0;
        };
        let mapped = self.mapped_bytes();
        let Some(region) = self.regions.get_mut(heap.region) else {
            return 0;
        };
        let needed = new_top.next_multiple_of(u64::from(PAGE_SIZE)) - u64::from(region.base);
        if needed > region.data.len() as u64 {
            let growth = needed - region.data.len() as u64;
            if mapped.saturating_add(growth) > self.sbrk_budget {
                return 0;
            }
            // Out of page storage: the program sees sbrk's 0, and the
            // kernel learns that this run depended on the allocator.
            if region.data.grow_zeroed(needed as usize).is_err() {
                self.storage_exhausted = true;
                return 0;
            }
            let pages = needed as usize / PAGE_SIZE as usize;
            region.dirty.resize(pages.div_ceil(64), 0);
        }
        if let Some(heap) = &mut self.heap {
            heap.top = new_top as u32;
        }
        u64::from(old)
    }

    /// The current break of the heap (`sbrk(0)`), if the memory has one.
    pub fn heap_top(&self) -> Option<u32> {
        self.heap.map(|heap| heap.top)
    }

    /// Empties the interpreter's windows (before the regions change).
    fn forget_windows(&mut self) {
        self.load_window = Window::EMPTY;
        self.older_load_window = Window::EMPTY;
        self.store_window = Window::EMPTY;
    }

    /// Loads `N` octets at `address` for the interpreter: through the
    /// window of the previous load, else the walk over all regions (which
    /// moves the window).
    #[inline(always)]
    pub(crate) fn load<const N: usize>(&mut self, address: u32) -> Result<[u8; N], AccessTrap> {
        match self.load_hinted(address) {
            Some(bytes) => Ok(bytes),
            None => self.load_walk(address),
        }
    }

    /// The interpreter's fast path: `N` octets at `address` through the
    /// windows of the last two load walks, or `None` (nothing changed) when the
    /// access leaves it; [`Self::load`] then does the rest.
    #[inline(always)]
    pub(crate) fn load_hinted<const N: usize>(&self, address: u32) -> Option<[u8; N]> {
        match self.load_window.load(address) {
            Some(bytes) => Some(bytes),
            None => self.older_load_window.load(address),
        }
    }

    /// The interpreter's fast path for stores: like [`Self::store`] when
    /// the access falls in the window of the previous store, else `false`
    /// and nothing changed.
    #[inline(always)]
    pub(crate) fn store_hinted<const N: usize>(&mut self, address: u32, bytes: [u8; N]) -> bool {
        self.store_window.store_in_marked(address, bytes)
    }

    #[inline(never)]
    fn load_walk<const N: usize>(&mut self, address: u32) -> Result<[u8; N], AccessTrap> {
        for r in self.regions.iter_mut() {
            let offset = address.wrapping_sub(r.base) as usize;
            if let Some(bytes) = r.data.get(offset..offset + N)
                && let Ok(array) = <[u8; N]>::try_from(bytes)
            {
                self.older_load_window = self.load_window;
                self.load_window = Window::new(r.base, &mut r.data, &mut r.dirty);
                return Ok(array);
            }
        }
        self.load_slow(address)
    }

    /// Stores `N` octets at `address` for the interpreter; like
    /// [`Self::load`], through the previous store's window first.
    #[inline(always)]
    pub(crate) fn store<const N: usize>(
        &mut self,
        address: u32,
        bytes: [u8; N],
    ) -> Result<(), AccessTrap> {
        if self.store_window.store(address, bytes) {
            return Ok(());
        }
        self.store_walk(address, bytes)
    }

    #[inline(never)]
    fn store_walk<const N: usize>(
        &mut self,
        address: u32,
        bytes: [u8; N],
    ) -> Result<(), AccessTrap> {
        for r in self.regions.iter_mut() {
            let offset = address.wrapping_sub(r.base) as usize;
            if r.access == Access::Write
                && let Some(target) = r.data.get_mut(offset..offset + N)
            {
                target.copy_from_slice(&bytes);
                r.mark_dirty(offset, N);
                self.store_window =
                    Window::new(r.base, &mut r.data, &mut r.dirty).marked_at(offset + N - 1);
                return Ok(());
            }
        }
        self.store_slow(address, &bytes)
    }

    #[cold]
    #[inline(never)]
    fn load_slow<const N: usize>(&self, address: u32) -> Result<[u8; N], AccessTrap> {
        let mut out = [0; N];
        self.read(address, &mut out)
            .map_err(|_| self.trap(address, N, false))?;
        Ok(out)
    }

    #[cold]
    #[inline(never)]
    fn store_slow(&mut self, address: u32, bytes: &[u8]) -> Result<(), AccessTrap> {
        let len = bytes.len();
        self.write(address, bytes)
            .map_err(|_| self.trap(address, len, true))
    }

    fn trap(&self, address: u32, len: usize, write: bool) -> AccessTrap {
        match self.first_inaccessible_address(address, len, write) {
            Some(a) if a >= RESERVED_LOW => AccessTrap::Fault(a - a % PAGE_SIZE),
            _ => AccessTrap::Panic,
        }
    }

    /// The page of the lowest address in the access that is not accessible.
    fn first_inaccessible(&self, address: u32, len: usize, write: bool) -> Option<u32> {
        self.first_inaccessible_address(address, len, write)
            .map(|a| a - a % PAGE_SIZE)
    }

    /// The first address of the access, in access order, that is not
    /// accessible. Octet `i` of an access at `address` has index
    /// `address + i`; the Graypaper takes the minimum of those indices
    /// before reducing mod 2^32, so an access wrapping past 2^32 reports its
    /// high part first.
    fn first_inaccessible_address(&self, address: u32, len: usize, write: bool) -> Option<u32> {
        let mut done = 0;
        while done < len {
            let a = address.wrapping_add(done as u32);
            match self.span(a, write) {
                Some((_, _, available)) => done += available,
                None => return Some(a),
            }
        }
        None
    }

    /// The region holding `address` (writable if `write`), the offset in it
    /// and how many octets remain in it from there.
    fn span(&self, address: u32, write: bool) -> Option<(usize, usize, usize)> {
        if address < RESERVED_LOW {
            return None;
        }
        self.regions
            .iter()
            .position(|r| r.contains(address) && (!write || r.access == Access::Write))
            .map(|i| {
                let offset = (address - self.regions[i].base) as usize;
                (i, offset, self.regions[i].data.len() - offset)
            })
    }

    fn copy_in(
        &mut self,
        address: u32,
        bytes: &[u8],
        write: bool,
        dirty: bool,
    ) -> Result<(), MemoryError> {
        let mut done = 0;
        while done < bytes.len() {
            let a = address.wrapping_add(done as u32);
            let (i, offset, available) = self
                .span(a, write)
                .ok_or(MemoryError::Unmapped { address: a })?;
            let n = available.min(bytes.len() - done);
            let region = &mut self.regions[i];
            region.data[offset..offset + n].copy_from_slice(&bytes[done..done + n]);
            if dirty && region.access == Access::Write {
                region.mark_dirty(offset, n);
            }
            done += n;
        }
        Ok(())
    }
}
