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

use super::{Asm, ERR_BAD_INPUT, ERR_BAD_KEY, ERR_MIN, MAX_VALUE_LEN, STACK_SIZE};
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
    /// `put_many()`: input = records `key: u32 LE, len: u32 LE, value`
    /// (see [`put_many_input`]), stored in order; φ7 = how many. A bad
    /// record ends it: φ7 = ERR_BAD_KEY / ERR_TOO_LONG / ERR_BAD_INPUT
    /// (truncated), φ8 = the records stored before it (they stay). One
    /// commit for many values: the bulk load.
    PutMany = 6,
}

impl Endpoint {
    /// Every endpoint, in index order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Put,
        Endpoint::Get,
        Endpoint::Delete,
        Endpoint::Len,
        Endpoint::PutFromSlot,
        Endpoint::Export,
        Endpoint::PutMany,
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

    // put_many(): records from the input.
    a.endpoint();
    put_many(&mut a);

    // store_value: slot φ5 → key φ2.
    a.bind(store_value);
    emit_store(&mut a, Reg::R2, Reg::R5, Reg::R6, Reg::R3);
    a.b.load_imm(Reg::R7, OK as u32).move_reg(Reg::R8, Reg::R6);
    a.halt();

    let (code, endpoints) = a.finish();
    Image {
        code,
        ro_data: Vec::new(),
        rw_data: alloc::vec![0; 8],
        heap_pages: 0,
        stack_size: STACK_SIZE,
        endpoint_names: Vec::new(),
        endpoints,
    }
}

/// Moves the value in slot `src` into slot `key` (dropping the old one)
/// and counts a new key; `existed` = 1 if a value was replaced. Clobbers
/// φ7, φ8 and `temp`.
fn emit_store(a: &mut Asm, key: Reg, src: Reg, existed: Reg, temp: Reg) {
    let fresh = a.b.new_label();
    let counted = a.b.new_label();
    a.b.load_imm(existed, 0u32).move_reg(Reg::R7, key);
    op(a, KernelOp::CapInfo);
    a.b.branch_eq_imm(Reg::R7, INFO_EMPTY as u32, fresh)
        .load_imm(existed, 1u32)
        .move_reg(Reg::R7, key);
    op(a, KernelOp::SlotDrop);
    a.bind(fresh);
    // Cannot fail: the source is full and the key now empty.
    a.b.move_reg(Reg::R7, src).move_reg(Reg::R8, key);
    op(a, KernelOp::SlotMove);
    a.fail_on_error();
    a.b.branch_ne_imm(existed, 0u32, counted)
        .load_u64(temp, COUNT_ADDRESS)
        .add_imm_64(temp, temp, 1u32)
        .store_u64(temp, COUNT_ADDRESS);
    a.bind(counted);
}

/// `put_many`: input = records `key: u32 LE, len: u32 LE, len bytes`,
/// stored in order like single puts. φ7 = records stored; on a bad
/// record φ7 = its error (ERR_BAD_KEY, ERR_TOO_LONG, ERR_BAD_INPUT for a
/// truncated one) and φ8 = the records stored before it, which stay.
fn put_many(a: &mut Asm) {
    let (offset, stored, buf, key, len, header, existed, temp) = (
        Reg::R2,
        Reg::R3,
        Reg::R4,
        Reg::R5,
        Reg::R6,
        Reg::R10,
        Reg::R11,
        Reg::R12,
    );
    let top = a.b.new_label();
    let done = a.b.new_label();
    let failed = a.b.new_label();
    let bad_key = a.b.new_label();
    let too_long = a.b.new_label();
    let bad_input = a.b.new_label();
    a.b.load_imm(offset, 0u32).load_imm(stored, 0u32);
    a.value_buffer(buf);
    // The 8-byte record header sits just below the value buffer.
    a.b.add_imm_64(header, buf, -8i32);
    a.bind(top);
    op(a, KernelOp::InputLen);
    a.b.branch_eq(Reg::R7, offset, done)
        .move_reg(Reg::R7, offset)
        .move_reg(Reg::R8, header)
        .load_imm(Reg::R9, 8u32);
    op(a, KernelOp::InputRead);
    a.b.branch_ne_imm(Reg::R7, 8u32, bad_input)
        .load_ind_u32(key, header, 0u32)
        .load_ind_u32(len, header, 4u32)
        .add_imm_64(offset, offset, 8u32)
        .branch_ge_u_imm(key, KV_KEYS, bad_key)
        .branch_gt_u_imm(len, MAX_VALUE_LEN as u32, too_long)
        .move_reg(Reg::R7, offset)
        .move_reg(Reg::R8, buf)
        .move_reg(Reg::R9, len);
    op(a, KernelOp::InputRead);
    a.b.branch_ne(Reg::R7, len, bad_input)
        .add_64(offset, offset, len)
        .load_imm(Reg::R7, SCRATCH_SLOT)
        .move_reg(Reg::R8, buf)
        .move_reg(Reg::R9, len);
    op(a, KernelOp::DataNew);
    a.b.branch_ge_u_imm(Reg::R7, ERR_MIN as u32, failed)
        .load_imm(Reg::R9, SCRATCH_SLOT);
    emit_store(a, key, Reg::R9, existed, temp);
    a.b.add_imm_64(stored, stored, 1u32).jump(top);
    a.bind(done);
    a.b.move_reg(Reg::R7, stored).load_imm(Reg::R8, 0u32);
    a.halt();
    a.bind(bad_key);
    a.b.load_imm_64(Reg::R7, ERR_BAD_KEY).jump(failed);
    a.bind(too_long);
    a.b.load_imm_64(Reg::R7, ERR_TOO_LONG).jump(failed);
    a.bind(bad_input);
    a.b.load_imm_64(Reg::R7, ERR_BAD_INPUT).jump(failed);
    a.bind(failed);
    a.b.move_reg(Reg::R8, stored);
    a.halt();
}

/// The input of `put_many` for these records.
pub fn put_many_input<'a>(records: impl IntoIterator<Item = (u32, &'a [u8])>) -> Vec<u8> {
    let mut input = Vec::new();
    for (key, value) in records {
        input.extend_from_slice(&key.to_le_bytes());
        input.extend_from_slice(&(value.len() as u32).to_le_bytes());
        input.extend_from_slice(value);
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_has_every_endpoint() {
        assert_eq!(kv_image().endpoints.len(), Endpoint::ALL.len());
    }
}
