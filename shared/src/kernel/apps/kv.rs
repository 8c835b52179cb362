//! The key-value service: values are Data caps in the instance's root
//! CNode, one per key; keys are slot numbers `0..KV_KEYS`.
//!
//! Slot map: `0..KV_KEYS` hold values; [`STAGING_SLOT`] is where a parent
//! `give`s a value for [`Endpoint::PutFromSlot`] and `take`s one after
//! [`Endpoint::Export`]; [`SCRATCH_SLOT`] holds a value being built (empty
//! between invocations). Slots above are reserved.
//!
//! State: the values (slots) and the key count, the one u64 of instance
//! memory at [`COUNT_ADDRESS`] (written only when it changes, so replacing
//! a value re-hashes no memory page).
//!
//! Values are at most [`MAX_VALUE_LEN`] bytes: `input_read`, `data_new`,
//! `data_read` and `set_output` all go through program memory, so a value
//! passes through a stack buffer of that size (stack pages are never
//! committed). No op moves input straight into a Data.
//!
//! Cost: the root CNode is one flat blob (36 bytes a slot), re-hashed on
//! every change, so a put costs O(number of keys) hashing.
//!
//! Errors (φ7, φ8 = 0, nothing changed): [`ERR_BAD_KEY`] (key ≥ `KV_KEYS`),
//! [`ERR_EMPTY`] (no value), [`ERR_KIND`] (not a Data), [`ERR_TOO_LONG`]
//! (a value over [`MAX_VALUE_LEN`]), and any kernel `ERR_*` an op returns
//! (e.g. [`ERR_OCCUPIED`](super::super::ops::ERR_OCCUPIED) from `export`
//! when the staging slot is full).

use alloc::vec::Vec;

use super::{Asm, ERR_BAD_KEY, MAX_VALUE_LEN, STACK_SIZE};
use crate::cap::Image;
use crate::kernel::ops::{ERR_EMPTY, ERR_KIND, ERR_TOO_LONG, INFO_EMPTY, KernelOp, OK};
use crate::pvm::asm::Reg;

/// Keys are `0..KV_KEYS`.
pub const KV_KEYS: u32 = 65_000;
/// A parent's hand-over slot (`put_from_slot` reads it, `export` fills it).
pub const STAGING_SLOT: u32 = 65_000;
/// Where `put` builds a value before moving it into its key.
pub const SCRATCH_SLOT: u32 = 65_001;
/// The key count (u64 LE): the start of the read-write data.
pub const COUNT_ADDRESS: u32 = 0x2_0000;

/// The kv service's endpoints (index into `Image::endpoints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Endpoint {
    /// `put(key)`: value = the invocation's input. φ7 = OK, φ8 = 1 if it
    /// replaced a value (else 0).
    Put = 0,
    /// `get(key)`: output = the value, φ7 = its length.
    Get = 1,
    /// `delete(key)`: φ7 = 1 if there was a value (now gone), else 0.
    Delete = 2,
    /// `len()`: φ7 = the number of keys.
    Len = 3,
    /// `put_from_slot(key)`: moves the Data in [`STAGING_SLOT`] into
    /// `key`; φ7 = OK, φ8 = 1 if it replaced a value. ERR_EMPTY / ERR_KIND
    /// / ERR_TOO_LONG leave the staging slot as it was.
    PutFromSlot = 4,
    /// `export(key)`: copies the value into [`STAGING_SLOT`] (for the
    /// parent to `take`); φ7 = its length. ERR_OCCUPIED if staging is full.
    Export = 5,
}

impl Endpoint {
    /// Every endpoint, in index order.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Put,
        Endpoint::Get,
        Endpoint::Delete,
        Endpoint::Len,
        Endpoint::PutFromSlot,
        Endpoint::Export,
    ];

    /// Index into the image's endpoint list.
    pub const fn index(self) -> u32 {
        self as u32
    }
}

fn op(a: &mut Asm, op: KernelOp) {
    a.b.ecalli(op.number());
}

/// φ2 = the key from φ7; fails with ERR_BAD_KEY when out of range.
fn take_key(a: &mut Asm, bad_key: crate::pvm::asm::Label) {
    a.b.move_reg(Reg::R2, Reg::R7)
        .branch_ge_u_imm(Reg::R2, KV_KEYS, bad_key);
}

/// φ7 = kind of the cap in the key's slot, φ8 = its size; fails with
/// ERR_EMPTY / ERR_KIND unless it is a Data.
fn require_value(a: &mut Asm, empty: crate::pvm::asm::Label, kind: crate::pvm::asm::Label) {
    a.b.move_reg(Reg::R7, Reg::R2);
    op(a, KernelOp::CapInfo);
    a.b.branch_eq_imm(Reg::R7, INFO_EMPTY as u32, empty)
        .branch_ne_imm(Reg::R7, 0u32, kind);
}

/// The kv image.
pub fn kv_image() -> Image {
    let mut a = Asm::new();
    let bad_key = a.error_stub(ERR_BAD_KEY);
    let empty = a.error_stub(ERR_EMPTY);
    let kind = a.error_stub(ERR_KIND);
    let too_long = a.error_stub(ERR_TOO_LONG);
    // Moves the value in slot φ5 into key φ2 (dropping the old one),
    // counts a new key, halts with φ7 = OK, φ8 = replaced.
    let store_value = a.b.new_label();

    // put(key)
    a.endpoint();
    take_key(&mut a, bad_key);
    op(&mut a, KernelOp::InputLen);
    a.b.branch_gt_u_imm(Reg::R7, MAX_VALUE_LEN as u32, too_long)
        .move_reg(Reg::R3, Reg::R7);
    a.value_buffer(Reg::R4);
    a.b.load_imm(Reg::R7, 0u32)
        .move_reg(Reg::R8, Reg::R4)
        .move_reg(Reg::R9, Reg::R3);
    op(&mut a, KernelOp::InputRead);
    a.fail_on_error();
    a.b.load_imm(Reg::R7, super::kv::SCRATCH_SLOT)
        .move_reg(Reg::R8, Reg::R4)
        .move_reg(Reg::R9, Reg::R3);
    op(&mut a, KernelOp::DataNew);
    a.fail_on_error();
    a.b.load_imm(Reg::R5, SCRATCH_SLOT).jump(store_value);

    // get(key)
    a.endpoint();
    take_key(&mut a, bad_key);
    require_value(&mut a, empty, kind);
    a.b.branch_gt_u_imm(Reg::R8, MAX_VALUE_LEN as u32, too_long)
        .move_reg(Reg::R3, Reg::R8);
    a.value_buffer(Reg::R4);
    a.b.move_reg(Reg::R7, Reg::R2)
        .load_imm(Reg::R8, 0u32)
        .move_reg(Reg::R9, Reg::R4)
        .move_reg(Reg::R10, Reg::R3);
    op(&mut a, KernelOp::DataRead);
    a.fail_on_error();
    a.b.move_reg(Reg::R7, Reg::R4).move_reg(Reg::R8, Reg::R3);
    op(&mut a, KernelOp::SetOutput);
    a.fail_on_error();
    a.b.move_reg(Reg::R7, Reg::R3).load_imm(Reg::R8, 0u32);
    a.halt();

    // delete(key)
    a.endpoint();
    take_key(&mut a, bad_key);
    let absent = a.b.new_label();
    a.b.move_reg(Reg::R7, Reg::R2);
    op(&mut a, KernelOp::CapInfo);
    a.b.branch_eq_imm(Reg::R7, INFO_EMPTY as u32, absent)
        .move_reg(Reg::R7, Reg::R2);
    op(&mut a, KernelOp::SlotDrop);
    a.b.load_u64(Reg::R3, COUNT_ADDRESS)
        .add_imm_64(Reg::R3, Reg::R3, -1i32)
        .store_u64(Reg::R3, COUNT_ADDRESS)
        .load_imm(Reg::R7, 1u32)
        .load_imm(Reg::R8, 0u32);
    a.halt();
    a.bind(absent);
    a.b.load_imm(Reg::R7, 0u32).load_imm(Reg::R8, 0u32);
    a.halt();

    // len()
    a.endpoint();
    a.b.load_u64(Reg::R7, COUNT_ADDRESS).load_imm(Reg::R8, 0u32);
    a.halt();

    // put_from_slot(key)
    a.endpoint();
    take_key(&mut a, bad_key);
    a.b.load_imm(Reg::R7, STAGING_SLOT);
    op(&mut a, KernelOp::CapInfo);
    a.b.branch_eq_imm(Reg::R7, INFO_EMPTY as u32, empty)
        .branch_ne_imm(Reg::R7, 0u32, kind)
        .branch_gt_u_imm(Reg::R8, MAX_VALUE_LEN as u32, too_long)
        .load_imm(Reg::R5, STAGING_SLOT)
        .jump(store_value);

    // export(key)
    a.endpoint();
    take_key(&mut a, bad_key);
    require_value(&mut a, empty, kind);
    a.b.move_reg(Reg::R3, Reg::R8)
        .move_reg(Reg::R7, Reg::R2)
        .load_imm(Reg::R8, STAGING_SLOT);
    op(&mut a, KernelOp::SlotCopy);
    a.fail_on_error();
    a.b.move_reg(Reg::R7, Reg::R3).load_imm(Reg::R8, 0u32);
    a.halt();

    // store_value: slot φ5 → key φ2.
    a.bind(store_value);
    let fresh = a.b.new_label();
    let counted = a.b.new_label();
    a.b.load_imm(Reg::R6, 0u32).move_reg(Reg::R7, Reg::R2);
    op(&mut a, KernelOp::CapInfo);
    a.b.branch_eq_imm(Reg::R7, INFO_EMPTY as u32, fresh)
        .load_imm(Reg::R6, 1u32)
        .move_reg(Reg::R7, Reg::R2);
    op(&mut a, KernelOp::SlotDrop);
    a.bind(fresh);
    // Cannot fail: the source is full and the key now empty.
    a.b.move_reg(Reg::R7, Reg::R5).move_reg(Reg::R8, Reg::R2);
    op(&mut a, KernelOp::SlotMove);
    a.fail_on_error();
    a.b.branch_ne_imm(Reg::R6, 0u32, counted)
        .load_u64(Reg::R3, COUNT_ADDRESS)
        .add_imm_64(Reg::R3, Reg::R3, 1u32)
        .store_u64(Reg::R3, COUNT_ADDRESS);
    a.bind(counted);
    a.b.load_imm(Reg::R7, OK as u32).move_reg(Reg::R8, Reg::R6);
    a.halt();

    let (code, endpoints) = a.finish();
    Image {
        code,
        ro_data: Vec::new(),
        rw_data: alloc::vec![0; 8],
        heap_pages: 0,
        stack_size: STACK_SIZE,
        endpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_has_every_endpoint() {
        assert_eq!(kv_image().endpoints.len(), Endpoint::ALL.len());
    }
}
