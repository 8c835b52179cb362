//! `gas`, `log`, `set_output`, `input_len`, `input_read`, `output_read`,
//! and the checked access to program memory every op uses.

use alloc::vec;
use alloc::vec::Vec;

use super::{ERR_MEMORY, ERR_OFFSET, ERR_TOO_LONG, KernelOp, MAX_TRANSFER_LEN};
use crate::cap::PAGE_SIZE;
use crate::kernel::transaction::{OpError, OpResult, code};
use crate::pvm::Machine;

/// Checked program-memory range: `len ≤ max` (else `ERR_TOO_LONG`) and
/// `ptr..ptr + len` inside the 32-bit address space (else `ERR_MEMORY`).
pub(crate) fn mem_range(ptr: u64, len: u64, max: u64) -> Result<(u32, usize), OpError> {
    if len > max {
        return code(ERR_TOO_LONG);
    }
    match ptr.checked_add(len) {
        Some(end) if end <= 1 << 32 => Ok((ptr as u32, len as usize)),
        _ => code(ERR_MEMORY),
    }
}

/// `len` bytes of program memory at `ptr`, or `ERR_MEMORY`.
pub(crate) fn read_mem(machine: &Machine, ptr: u32, len: usize) -> Result<Vec<u8>, OpError> {
    if !machine.memory.is_readable(ptr, len) {
        return code(ERR_MEMORY);
    }
    let mut buf = vec![0u8; len];
    machine
        .memory
        .read(ptr, &mut buf)
        .map_err(|_| OpError::Code(ERR_MEMORY))?;
    Ok(buf)
}

/// `ERR_MEMORY` unless the program may write `len` bytes at `ptr`
/// (checked before an op changes anything, so a bad pointer never leaves
/// a half-done op).
pub(crate) fn require_writable(machine: &Machine, ptr: u32, len: usize) -> Result<(), OpError> {
    if machine.memory.is_writable(ptr, len) {
        Ok(())
    } else {
        code(ERR_MEMORY)
    }
}

/// Writes `bytes` at `ptr` (checked with [`require_writable`] first).
pub(crate) fn write_mem(machine: &mut Machine, ptr: u32, bytes: &[u8]) -> Result<(), OpError> {
    machine
        .memory
        .write(ptr, bytes)
        .map_err(|_| OpError::Code(ERR_MEMORY))
}

/// Charges `op`'s per-page gas for `bytes` bytes moved.
pub(crate) fn charge_pages(machine: &mut Machine, op: KernelOp, bytes: u64) -> Result<(), OpError> {
    let pages = bytes.div_ceil(PAGE_SIZE as u64);
    let cost = i64::try_from(pages)
        .unwrap_or(i64::MAX)
        .saturating_mul(op.gas_per_page());
    machine.gas = machine.gas.saturating_sub(cost);
    if machine.gas < 0 {
        return Err(OpError::OutOfGas);
    }
    Ok(())
}

/// `gas`.
pub(crate) fn gas(machine: &Machine) -> OpResult {
    Ok(u64::try_from(machine.gas.max(0)).unwrap_or(0))
}

/// `log(ptr, len)` and `set_output(ptr, len)`: the bytes, checked and
/// paid for.
pub(crate) fn message(machine: &mut Machine, op: KernelOp, limit: u64) -> Result<Vec<u8>, OpError> {
    let (ptr, len) = mem_range(machine.regs[7], machine.regs[8], limit)?;
    if !machine.memory.is_readable(ptr, len) {
        return code(ERR_MEMORY);
    }
    charge_pages(machine, op, len as u64)?;
    read_mem(machine, ptr, len)
}

/// `input_read(offset, ptr, len)` / `output_read(offset, ptr, len)`:
/// copies from `source`; the number of bytes copied.
pub(crate) fn read_into(machine: &mut Machine, op: KernelOp, source: &[u8]) -> OpResult {
    let [offset, ptr, len] = [machine.regs[7], machine.regs[8], machine.regs[9]];
    let (ptr, len) = mem_range(ptr, len, MAX_TRANSFER_LEN)?;
    let Some(available) = (source.len() as u64).checked_sub(offset) else {
        return code(ERR_OFFSET);
    };
    let n = (len as u64).min(available) as usize;
    require_writable(machine, ptr, n)?;
    charge_pages(machine, op, n as u64)?;
    let start = offset as usize;
    write_mem(machine, ptr, &source[start..start + n])?;
    Ok(n as u64)
}
