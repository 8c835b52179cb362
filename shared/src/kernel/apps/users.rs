//! The users app: a parent that keeps one [`kv`](super::kv) child per
//! user.
//!
//! Slot map: [`IMAGE_SLOT`] (0) holds the kv Image, given by the host at
//! creation (`new_instance_with_slots`); user `u` (`0..MAX_USERS`) is the
//! kv child in slot `USER_BASE + u`; [`SCRATCH_SLOT`] holds a value in
//! transit (empty between invocations). There is no memory state.
//!
//! Every endpoint takes φ7 = user, φ8 = key, φ9 = the child's gas limit
//! (0 = all the remaining gas; a smaller one lets a caller bound what a
//! child may spend). Results:
//!
//! * the child's own result when it halted: φ7 = its φ7 (a kv error code
//!   such as `ERR_BAD_KEY` or `ERR_EMPTY` passes through as is);
//! * [`ERR_CHILD_FAILED`] when the child did not halt or the kernel
//!   refused the call: φ8 = the `CALL_*` exit (1 panic, 2 out of gas,
//!   3 page fault) or the kernel's `ERR_*` code;
//! * [`ERR_BAD_KEY`] (user out of range), [`ERR_NO_USER`] (no child in
//!   the user's slot), `ERR_TOO_LONG` (input over `MAX_VALUE_LEN`).
//!
//! Failures never trap and leave the state hash as it was: a `put` whose
//! child refuses the value or fails takes the value back out of the
//! child's staging slot and drops it, so the child (and so the parent)
//! settles to the hash it had.

use alloc::vec::Vec;

use super::kv::{self, STAGING_SLOT};
use super::{Asm, ERR_BAD_KEY, ERR_CHILD_FAILED, ERR_MIN, ERR_NO_USER, MAX_VALUE_LEN, STACK_SIZE};
use crate::cap::{CapKind, Image};
use crate::kernel::ops::{CALL_GAS_SHIFT, CALL_HALT, ERR_TOO_LONG, KernelOp, OK};
use crate::pvm::asm::{Label, Reg};

/// The kv Image the host puts here at creation.
pub const IMAGE_SLOT: u32 = 0;
/// User `u` lives in slot `USER_BASE + u`.
pub const USER_BASE: u32 = 1;
/// Users are `0..MAX_USERS`.
pub const MAX_USERS: u32 = 65_000;
/// A value in transit (empty between invocations).
pub const SCRATCH_SLOT: u32 = 65_500;

/// The users app's endpoints (index into `Image::endpoints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Endpoint {
    /// `add_user(u)`: spawns a kv child for `u`. φ7 = OK; ERR_OCCUPIED if
    /// the user exists, ERR_EMPTY / ERR_KIND if slot 0 holds no Image.
    AddUser = 0,
    /// `put(u, key, gas)`: the input becomes a Data, given to the child's
    /// staging slot, then the child's `put_from_slot(key)`. φ7 = OK, φ8 =
    /// 1 if it replaced a value.
    Put = 1,
    /// `get(u, key, gas)`: the child's `get(key)`; output = the value (read
    /// with `output_read`), φ7 = its length.
    Get = 2,
    /// `count(u, _, gas)`: φ7 = the child's `len()`.
    Count = 3,
    /// `get_via_export(u, key, gas)`: like `get`, but through the child's
    /// `export(key)` and a `take` of the Data cap (the cap route).
    GetViaExport = 4,
}

impl Endpoint {
    /// Every endpoint, in index order.
    pub const ALL: [Endpoint; 5] = [
        Endpoint::AddUser,
        Endpoint::Put,
        Endpoint::Get,
        Endpoint::Count,
        Endpoint::GetViaExport,
    ];

    /// Index into the image's endpoint list.
    pub const fn index(self) -> u32 {
        self as u32
    }
}

fn op(a: &mut Asm, op: KernelOp) {
    a.b.ecalli(op.number());
}

/// Labels shared by the endpoints.
struct Stubs {
    bad_key: Label,
    no_user: Label,
    too_long: Label,
    /// φ8 = φ7 (the exit or kernel code), φ7 = ERR_CHILD_FAILED; halt.
    child_failed: Label,
    /// φ7 = φ8 (the child's error code), φ8 = 0; halt.
    child_refused: Label,
}

/// φ2 = the user's slot, φ3 = key, φ4 = gas limit << 32, φ5 = the value
/// buffer; fails unless the user exists.
fn prologue(a: &mut Asm, s: &Stubs, require_user: bool) {
    a.b.branch_ge_u_imm(Reg::R7, MAX_USERS, s.bad_key)
        .add_imm_64(Reg::R2, Reg::R7, USER_BASE)
        .move_reg(Reg::R3, Reg::R8)
        .shlo_l_imm_64(Reg::R4, Reg::R9, CALL_GAS_SHIFT);
    a.value_buffer(Reg::R5);
    if require_user {
        a.b.move_reg(Reg::R7, Reg::R2);
        op(a, KernelOp::CapInfo);
        a.b.branch_ne_imm(Reg::R7, u32::from(CapKind::Instance.tag()), s.no_user);
    }
}

/// Calls the child's `endpoint(key)`. Afterwards φ7 = exit (or a kernel
/// code), φ8 = the child's φ7, φ9 = its φ8, φ10 = its output length.
fn call_child(a: &mut Asm, endpoint: kv::Endpoint) {
    a.b.move_reg(Reg::R7, Reg::R2)
        .or_imm(Reg::R8, Reg::R4, endpoint.index())
        .move_reg(Reg::R9, Reg::R3);
    op(a, KernelOp::Call);
}

/// Fails unless the child halted with a non-error result.
fn require_child_ok(a: &mut Asm, s: &Stubs) {
    a.b.branch_ne_imm(Reg::R7, CALL_HALT as u32, s.child_failed)
        .branch_ge_u_imm(Reg::R8, ERR_MIN as u32, s.child_refused);
}

/// The users image.
pub fn users_image() -> Image {
    let mut a = Asm::new();
    let bad_key = a.error_stub(ERR_BAD_KEY);
    let no_user = a.error_stub(ERR_NO_USER);
    let too_long = a.error_stub(ERR_TOO_LONG);
    let child_failed = a.b.new_label();
    let child_refused = a.b.new_label();
    let s = Stubs {
        bad_key,
        no_user,
        too_long,
        child_failed,
        child_refused,
    };

    // add_user(u)
    a.endpoint();
    prologue(&mut a, &s, false);
    a.b.load_imm(Reg::R7, IMAGE_SLOT).move_reg(Reg::R8, Reg::R2);
    op(&mut a, KernelOp::Spawn);
    a.fail_on_error();
    a.b.load_imm(Reg::R8, 0u32);
    a.halt();

    // put(u, key, gas)
    a.endpoint();
    prologue(&mut a, &s, true);
    op(&mut a, KernelOp::InputLen);
    a.b.branch_gt_u_imm(Reg::R7, MAX_VALUE_LEN as u32, s.too_long)
        .move_reg(Reg::R6, Reg::R7)
        .load_imm(Reg::R7, 0u32)
        .move_reg(Reg::R8, Reg::R5)
        .move_reg(Reg::R9, Reg::R6);
    op(&mut a, KernelOp::InputRead);
    a.fail_on_error();
    a.b.load_imm(Reg::R7, SCRATCH_SLOT)
        .move_reg(Reg::R8, Reg::R5)
        .move_reg(Reg::R9, Reg::R6);
    op(&mut a, KernelOp::DataNew);
    a.fail_on_error();
    let give_failed = a.b.new_label();
    let put_failed = a.b.new_label();
    let put_refused = a.b.new_label();
    let take_back = a.b.new_label();
    a.b.move_reg(Reg::R7, Reg::R2)
        .load_imm(Reg::R8, SCRATCH_SLOT)
        .load_imm(Reg::R9, STAGING_SLOT);
    op(&mut a, KernelOp::Give);
    a.b.branch_ge_u_imm(Reg::R7, ERR_MIN as u32, give_failed);
    call_child(&mut a, kv::Endpoint::PutFromSlot);
    a.b.branch_ne_imm(Reg::R7, CALL_HALT as u32, put_failed)
        .branch_ge_u_imm(Reg::R8, ERR_MIN as u32, put_refused)
        .load_imm(Reg::R7, OK as u32)
        .move_reg(Reg::R8, Reg::R9);
    a.halt();
    // The child kept nothing: take the value back (the child settles to
    // its old hash) and drop it.
    a.bind(put_failed);
    a.b.move_reg(Reg::R11, Reg::R7)
        .load_imm_64(Reg::R12, ERR_CHILD_FAILED)
        .jump(take_back);
    a.bind(put_refused);
    a.b.load_imm(Reg::R11, 0u32)
        .move_reg(Reg::R12, Reg::R8)
        .jump(take_back);
    a.bind(take_back);
    a.b.move_reg(Reg::R7, Reg::R2)
        .load_imm(Reg::R8, STAGING_SLOT)
        .load_imm(Reg::R9, SCRATCH_SLOT);
    op(&mut a, KernelOp::Take);
    a.b.load_imm(Reg::R7, SCRATCH_SLOT);
    op(&mut a, KernelOp::SlotDrop);
    a.b.move_reg(Reg::R7, Reg::R12).move_reg(Reg::R8, Reg::R11);
    a.halt();
    // The child's staging slot is full (never, unless a host put a cap
    // there): drop our copy and report the give's code.
    a.bind(give_failed);
    a.b.move_reg(Reg::R12, Reg::R7)
        .load_imm(Reg::R7, SCRATCH_SLOT);
    op(&mut a, KernelOp::SlotDrop);
    a.b.move_reg(Reg::R7, Reg::R12).jump(a.fail);

    // get(u, key, gas)
    a.endpoint();
    prologue(&mut a, &s, true);
    call_child(&mut a, kv::Endpoint::Get);
    require_child_ok(&mut a, &s);
    a.b.branch_gt_u_imm(Reg::R10, MAX_VALUE_LEN as u32, s.too_long)
        .move_reg(Reg::R6, Reg::R10)
        .load_imm(Reg::R7, 0u32)
        .move_reg(Reg::R8, Reg::R5)
        .move_reg(Reg::R9, Reg::R6);
    op(&mut a, KernelOp::OutputRead);
    a.fail_on_error();
    output_value(&mut a);

    // count(u, _, gas)
    a.endpoint();
    prologue(&mut a, &s, true);
    call_child(&mut a, kv::Endpoint::Len);
    require_child_ok(&mut a, &s);
    a.b.move_reg(Reg::R7, Reg::R8).load_imm(Reg::R8, 0u32);
    a.halt();

    // get_via_export(u, key, gas)
    a.endpoint();
    prologue(&mut a, &s, true);
    call_child(&mut a, kv::Endpoint::Export);
    require_child_ok(&mut a, &s);
    a.b.branch_gt_u_imm(Reg::R8, MAX_VALUE_LEN as u32, s.too_long)
        .move_reg(Reg::R6, Reg::R8)
        .move_reg(Reg::R7, Reg::R2)
        .load_imm(Reg::R8, STAGING_SLOT)
        .load_imm(Reg::R9, SCRATCH_SLOT);
    op(&mut a, KernelOp::Take);
    a.fail_on_error();
    a.b.load_imm(Reg::R7, SCRATCH_SLOT)
        .load_imm(Reg::R8, 0u32)
        .move_reg(Reg::R9, Reg::R5)
        .move_reg(Reg::R10, Reg::R6);
    op(&mut a, KernelOp::DataRead);
    a.b.move_reg(Reg::R12, Reg::R7)
        .load_imm(Reg::R7, SCRATCH_SLOT);
    op(&mut a, KernelOp::SlotDrop);
    a.b.move_reg(Reg::R7, Reg::R12);
    a.fail_on_error();
    output_value(&mut a);

    // Shared tails.
    a.bind(child_failed);
    a.b.move_reg(Reg::R8, Reg::R7)
        .load_imm_64(Reg::R7, ERR_CHILD_FAILED);
    a.halt();
    a.bind(child_refused);
    a.b.move_reg(Reg::R7, Reg::R8).jump(a.fail);

    let (code, endpoints) = a.finish();
    Image {
        code,
        ro_data: Vec::new(),
        rw_data: Vec::new(),
        heap_pages: 0,
        stack_size: STACK_SIZE,
        endpoint_names: Vec::new(),
        endpoints,
    }
}

/// set_output(φ5, φ6); φ7 = φ6; halt.
fn output_value(a: &mut Asm) {
    a.b.move_reg(Reg::R7, Reg::R5).move_reg(Reg::R8, Reg::R6);
    op(a, KernelOp::SetOutput);
    a.fail_on_error();
    a.b.move_reg(Reg::R7, Reg::R6).load_imm(Reg::R8, 0u32);
    a.halt();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_has_every_endpoint() {
        assert_eq!(users_image().endpoints.len(), Endpoint::ALL.len());
    }
}
