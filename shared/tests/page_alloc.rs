//! The page-allocation hook with a counting test allocator: Data pages and
//! PVM memory really come from it and go back to it, clones share,
//! copy-on-write copies, and a full allocator means spill (Data) or a typed
//! error (memory).
//!
//! The hook is process-wide and fixed by the first allocation, so every
//! test installs the same allocator first; it counts per thread (tests run
//! in parallel threads), so each test sees only its own pages.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr::NonNull;

use capbox_shared::cap::{Data, PAGE_SIZE, SharedPage};
use capbox_shared::page_alloc::{self, PageAllocator};
use capbox_shared::pvm::{Access, Memory, MemoryError, PageMapEntry, StandardLayout};

thread_local! {
    /// Blocks and bytes this thread holds from the counting allocator.
    static LIVE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// Bytes this thread may hold before allocations fail.
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Not zero-sized: the hook tells allocators apart by address.
struct Counting(#[allow(dead_code)] u8);

// SAFETY: forwards to the system allocator, which upholds the contract.
unsafe impl PageAllocator for Counting {
    fn allocate(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
        let (blocks, bytes) = LIVE.get();
        if bytes + layout.size() > LIMIT.get() {
            return None;
        }
        // SAFETY: the hook never asks for zero-sized blocks.
        let block = unsafe {
            if zeroed {
                System.alloc_zeroed(layout)
            } else {
                System.alloc(layout)
            }
        };
        let block = NonNull::new(block)?;
        LIVE.set((blocks + 1, bytes + layout.size()));
        Some(block)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        let (blocks, bytes) = LIVE.get();
        LIVE.set((blocks - 1, bytes - layout.size()));
        // SAFETY: `block` came from `System` with `layout` (see `allocate`).
        unsafe { System.dealloc(block.as_ptr(), layout) }
    }

    fn capacity(&self) -> u64 {
        1 << 40
    }
}

static COUNTING: Counting = Counting(0);

/// Installs the counting allocator and resets this thread's limit.
fn setup() {
    page_alloc::install(&COUNTING).expect("the first allocation comes after install");
    LIMIT.set(usize::MAX);
}

fn live_blocks() -> usize {
    LIVE.get().0
}

#[test]
fn data_pages_come_from_the_hook_and_return_on_drop() {
    setup();
    let before = live_blocks();
    let mut data = Data::new(4 * PAGE_SIZE as u64).unwrap();
    data.write(0, &[1; 10]).unwrap();
    data.write(2 * PAGE_SIZE as u64, &[2; PAGE_SIZE]).unwrap();
    assert_eq!(live_blocks(), before + 2);
    let decoded = Data::from_bytes(&data.to_vec()).unwrap();
    assert_eq!(live_blocks(), before + 4);
    assert_eq!(decoded, data);
    drop(decoded);
    drop(data);
    assert_eq!(live_blocks(), before);
    assert_eq!(page_alloc::usage().capacity, 1 << 40);
}

#[test]
fn clones_share_pages_and_writes_copy_one() {
    setup();
    let before = live_blocks();
    let mut data = Data::from_bytes(&[7; 3 * PAGE_SIZE]).unwrap();
    assert_eq!(live_blocks(), before + 3);
    let mut copy = data.clone();
    assert_eq!(live_blocks(), before + 3, "a clone shares every page");
    copy.write(PAGE_SIZE as u64, &[8]).unwrap();
    assert_eq!(live_blocks(), before + 4, "a write copies only its page");
    let mut byte = [0];
    data.read(PAGE_SIZE as u64, &mut byte).unwrap();
    assert_eq!(byte, [7], "the original is untouched");
    // The sole holder of a page writes in place; a shared one copies.
    copy.write(PAGE_SIZE as u64 + 1, &[9]).unwrap();
    assert_eq!(live_blocks(), before + 4);
    data.write(0, &[9]).unwrap();
    assert_eq!(live_blocks(), before + 5);
    // data: its page-0 copy, the original page 1, shared page 2;
    // copy: the original page 0, its page-1 copy, shared page 2.
    drop(data);
    assert_eq!(live_blocks(), before + 3, "pages the copy holds stay");
    drop(copy);
    assert_eq!(live_blocks(), before);
}

#[test]
fn shared_page_handles() {
    setup();
    let before = live_blocks();
    let page = SharedPage::new(&[5; PAGE_SIZE]);
    let mut other = page.clone();
    assert!(SharedPage::ptr_eq(&page, &other));
    assert_eq!(SharedPage::holders(&page), 2);
    assert_eq!(live_blocks(), before + 1);
    SharedPage::make_mut(&mut other)[0] = 6;
    assert!(!SharedPage::ptr_eq(&page, &other));
    assert_eq!((page[0], other[0], other[1]), (5, 6, 5));
    assert_eq!(live_blocks(), before + 2);
    // A page stored with write_page_shared is the same block.
    let mut data = Data::new(PAGE_SIZE as u64).unwrap();
    data.write_page_shared(0, page.clone()).unwrap();
    assert!(SharedPage::ptr_eq(
        data.shared_pages().next().unwrap().1,
        &page
    ));
    assert_eq!(live_blocks(), before + 2);
    assert!(SharedPage::zeroed().iter().all(|&b| b == 0));
    drop((page, other, data));
    assert_eq!(live_blocks(), before);
}

#[test]
fn memory_regions_come_from_the_hook() {
    setup();
    let before = LIVE.get();
    let layout = StandardLayout::new(100, 5000, 2, 8192, 0).unwrap();
    let mut memory = Memory::standard(&layout, &[1; 100], &[2; 5000], &[]).unwrap();
    let (blocks, bytes) = LIVE.get();
    assert!(blocks > before.0, "regions allocate through the hook");
    assert!(bytes - before.1 >= 4 * 4096, "ro, rw+heap and stack pages");
    // sbrk growth allocates through the hook too.
    let top = memory.sbrk(0);
    assert_ne!(memory.sbrk(64 * 4096), 0);
    assert!(LIVE.get().1 > bytes);
    memory.write(top as u32 + 64 * 4096 - 1, &[3]).unwrap();
    drop(memory);
    assert_eq!(LIVE.get(), before);
}

#[test]
fn full_allocator_memory_fails_typed() {
    setup();
    LIMIT.set(LIVE.get().1 + 16 * 4096);
    let entry = |address, pages: u32| PageMapEntry {
        address,
        length: pages * 4096,
        access: Access::Write,
    };
    let small = Memory::from_page_map(&[entry(0x10000, 8)]).unwrap();
    let err = Memory::from_page_map(&[entry(0x100000, 32)]).unwrap_err();
    assert_eq!(
        err,
        MemoryError::OutOfMemory {
            address: 0x100000,
            length: 32 * 4096
        }
    );
    assert!(err.to_string().contains("no page storage left"), "{err}");
    drop(small);
    // sbrk past the allocator returns 0 and leaves the memory as it was.
    let layout = StandardLayout::new(0, 4096, 0, 4096, 0).unwrap();
    let mut memory = Memory::standard(&layout, &[], &[1; 4096], &[]).unwrap();
    let top = memory.sbrk(0);
    assert_eq!(memory.sbrk(64 * 4096), 0);
    assert_eq!(memory.sbrk(0), top);
    assert_ne!(memory.sbrk(4096), 0, "a request that fits still works");
    LIMIT.set(usize::MAX);
}

#[test]
fn full_allocator_data_pages_spill() {
    setup();
    let before = live_blocks();
    LIMIT.set(LIVE.get().1);
    let spill_before = page_alloc::usage().spill;
    let mut data = Data::from_bytes(&[4; 2 * PAGE_SIZE]).unwrap();
    assert_eq!(
        live_blocks(),
        before,
        "nothing came from the full allocator"
    );
    assert!(data.shared_pages().all(|(_, p)| SharedPage::is_spilled(p)));
    assert!(page_alloc::usage().spill >= spill_before + 2 * PAGE_SIZE as u64);
    // Spilled pages behave like any other (copy-on-write included).
    let copy = data.clone();
    data.write(0, &[5]).unwrap();
    assert_eq!(copy.to_vec(), vec![4; 2 * PAGE_SIZE]);
    // Once there is room again, new pages come from the allocator.
    LIMIT.set(usize::MAX);
    data.write(PAGE_SIZE as u64, &[6]).unwrap();
    assert_eq!(live_blocks(), before + 1);
    drop((data, copy));
    assert_eq!(live_blocks(), before, "spilled pages went back to the heap");
}

#[test]
fn install_is_fixed_after_first_use() {
    setup();
    static OTHER: Counting = Counting(1);
    assert!(page_alloc::install(&OTHER).is_err());
    assert!(page_alloc::install(&COUNTING).is_ok());
}
