//! `sbrk` is bounded by the memory's budget: one instruction (one gas) must
//! not make the host map gigabytes (found by the `run_blob` fuzz target's
//! precursor: `sbrk` of 0xF000_0000 allocated and zeroed ~4 GB).

use capbox_shared::pvm::{Memory, StandardLayout};

#[test]
fn sbrk_past_the_budget_fails_and_changes_nothing() {
    let layout = StandardLayout::new(0, 0, 0, 4096, 0).unwrap();
    let mut memory = Memory::standard(&layout, &[], &[], &[]).unwrap();
    memory.set_sbrk_budget(1 << 20);
    let top = memory.sbrk(0);
    let mapped = memory.mapped_bytes();
    assert_eq!(memory.sbrk(0xF000_0000), 0, "a huge request is refused");
    assert_eq!(memory.sbrk(0), top, "the break did not move");
    assert_eq!(memory.mapped_bytes(), mapped, "nothing was mapped");
    // Requests within the budget still work, up to it and not past it.
    let room = (1 << 20) - mapped;
    assert_eq!(memory.sbrk(room), top);
    assert_eq!(memory.mapped_bytes(), 1 << 20);
    assert_eq!(memory.sbrk(4096), 0, "the budget is spent");
}

#[test]
fn without_a_budget_sbrk_is_bounded_only_by_the_layout() {
    let layout = StandardLayout::new(0, 0, 0, 4096, 0).unwrap();
    let mut memory = Memory::standard(&layout, &[], &[], &[]).unwrap();
    let top = memory.sbrk(0);
    assert_eq!(memory.sbrk(64 << 10), top);
    assert_eq!(memory.sbrk(0), top + (64 << 10));
}
