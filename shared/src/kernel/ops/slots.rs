//! `slot_move`, `slot_copy`, `slot_drop` on the frame's root CNode.
//!
//! A working (`Ref`) cap is never linked from two places: a move moves the
//! link, a copy settles the source first so both slots hold the same hash.
//! Caps are values: changing one copy never changes the other.

use core::hash::BuildHasher;

use super::data::settled;
use super::{ERR_OCCUPIED, OK};
use crate::cap::CapHashOrRef;
use crate::kernel::transaction::{Frame, OpError, OpResult, Txn, code, slot_arg};
use crate::pvm::Machine;

/// `(src, dst)` slot arguments, checked, and the link in `src`.
fn source_and_destination<S: BuildHasher>(
    machine: &Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> Result<(u32, u32, CapHashOrRef), OpError> {
    let src = slot_arg(machine.regs[7])?;
    let dst = slot_arg(machine.regs[8])?;
    let link = frame.occupied(txn, src)?;
    Ok((src, dst, link))
}

/// `slot_move(src, dst)`; moving a slot onto itself is a no-op.
pub(crate) fn slot_move<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let (src, dst, link) = source_and_destination(machine, frame, txn)?;
    if src == dst {
        return Ok(OK);
    }
    frame.require_empty(txn, dst)?;
    frame.remove(txn, src)?;
    frame.set(txn, dst, link)?;
    Ok(OK)
}

/// `slot_copy(src, dst)`.
pub(crate) fn slot_copy<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let (src, dst, link) = source_and_destination(machine, frame, txn)?;
    if src == dst {
        return code(ERR_OCCUPIED);
    }
    frame.require_empty(txn, dst)?;
    let hash = settled(frame, txn, src, &link)?;
    frame.set(txn, dst, CapHashOrRef::Hash(hash))?;
    Ok(OK)
}

/// `slot_drop(slot)`: empties it (an empty slot stays empty).
pub(crate) fn slot_drop<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let slot = slot_arg(machine.regs[7])?;
    frame.remove(txn, slot)?;
    Ok(OK)
}
