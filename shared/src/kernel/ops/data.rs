//! `cap_info`, `data_new`, `data_read`, `data_write`, `hash_of`, `type_of`.

use alloc::sync::Arc;
use core::hash::BuildHasher;

use super::io::{charge_pages, mem_range, require_writable, write_mem};
use super::{
    ERR_KIND, ERR_MEMORY, ERR_OFFSET, ERR_TOO_LONG, INFO_EMPTY, KernelOp, MAX_TRANSFER_LEN, OK,
};
use crate::cap::{Cap, CapHashOrRef, Data, MAX_DATA_LEN, PAGE_SIZE};
use crate::kernel::transaction::{Frame, OpError, OpResult, Txn, code, slot_arg};
use crate::pvm::Machine;

/// `cap_info(slot)`: kind tag (or `INFO_EMPTY`); φ8 = size.
pub(crate) fn cap_info<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let slot = slot_arg(machine.regs[7])?;
    let Some(link) = frame.get(txn, slot)? else {
        machine.regs[8] = 0;
        return Ok(INFO_EMPTY);
    };
    let cap = txn.load(&link)?;
    machine.regs[8] = match &*cap {
        Cap::Data(d) => d.len(),
        Cap::CNode(c) => c.len() as u64,
        Cap::Image(i) => i.code.len() as u64,
        Cap::Instance(_) | Cap::Type(_) => 0,
    };
    Ok(u64::from(cap.kind().tag()))
}

/// `data_new(dst_slot, ptr, len)`.
pub(crate) fn data_new<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let dst = slot_arg(machine.regs[7])?;
    frame.require_empty(txn, dst)?;
    let (ptr, len) = mem_range(machine.regs[8], machine.regs[9], MAX_TRANSFER_LEN)?;
    if !machine.memory.is_readable(ptr, len) {
        return code(ERR_MEMORY);
    }
    charge_pages(machine, KernelOp::DataNew, len as u64)?;
    txn.charge_new_bytes(len as u64)?;
    // Page by page: no buffer as large as the Data.
    let kernel = |e: crate::cap::CapError| OpError::Kernel(e.into());
    let mut data = Data::new(len as u64).map_err(kernel)?;
    let mut piece = [0u8; PAGE_SIZE];
    let mut done = 0;
    while done < len {
        let k = (len - done).min(PAGE_SIZE);
        machine
            .memory
            .read(ptr + done as u32, &mut piece[..k])
            .map_err(|_| OpError::Code(ERR_MEMORY))?;
        data.write(done as u64, &piece[..k]).map_err(kernel)?;
        done += k;
    }
    let working = txn.working(Arc::new(Cap::Data(data)));
    frame.set(txn, dst, CapHashOrRef::Ref(working))?;
    Ok(OK)
}

/// The Data in `slot` (checked), with its link.
fn data_in<S: BuildHasher>(
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
    slot: u64,
) -> Result<(u32, CapHashOrRef, Arc<Cap>), OpError> {
    let slot = slot_arg(slot)?;
    let link = frame.occupied(txn, slot)?;
    let cap = txn.load(&link)?;
    if !matches!(&*cap, Cap::Data(_)) {
        return code(ERR_KIND);
    }
    Ok((slot, link, cap))
}

/// `data_read(slot, offset, ptr, len)`: bytes copied.
pub(crate) fn data_read<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let (_, _, cap) = data_in(frame, txn, machine.regs[7])?;
    let Cap::Data(data) = &*cap else {
        return code(ERR_KIND);
    };
    let offset = machine.regs[8];
    let (ptr, len) = mem_range(machine.regs[9], machine.regs[10], MAX_TRANSFER_LEN)?;
    let Some(available) = data.len().checked_sub(offset) else {
        return code(ERR_OFFSET);
    };
    let n = (len as u64).min(available) as usize;
    require_writable(machine, ptr, n)?;
    charge_pages(machine, KernelOp::DataRead, n as u64)?;
    // Page-sized pieces: no buffer as large as the transfer.
    let mut piece = [0u8; PAGE_SIZE];
    let mut done = 0;
    while done < n {
        let k = (n - done).min(PAGE_SIZE);
        data.read(offset + done as u64, &mut piece[..k])
            .map_err(|e| OpError::Kernel(e.into()))?;
        write_mem(machine, ptr + done as u32, &piece[..k])?;
        done += k;
    }
    Ok(n as u64)
}

/// `data_write(slot, offset, ptr, len)`: in place, copy-on-write per page,
/// growing the Data to `offset + len` if it is shorter.
pub(crate) fn data_write<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let (slot, link, _) = data_in(frame, txn, machine.regs[7])?;
    let offset = machine.regs[8];
    let (ptr, len) = mem_range(machine.regs[9], machine.regs[10], MAX_TRANSFER_LEN)?;
    let end = match offset.checked_add(len as u64) {
        Some(end) if end <= MAX_DATA_LEN => end,
        _ => return code(ERR_TOO_LONG),
    };
    if !machine.memory.is_readable(ptr, len) {
        return code(ERR_MEMORY);
    }
    let page = PAGE_SIZE as u64;
    let touched = if len == 0 {
        0
    } else {
        end.div_ceil(page) - offset / page
    };
    charge_pages(machine, KernelOp::DataWrite, touched * page)?;
    txn.charge_new_bytes(touched * page)?;
    let working = txn.make_working(&link)?;
    if matches!(link, CapHashOrRef::Hash(_)) {
        frame.set(txn, slot, CapHashOrRef::Ref(working.clone()))?;
    }
    let memory = &machine.memory;
    txn.update(&working, |cap| -> Result<(), OpError> {
        let Cap::Data(data) = cap else {
            return code(ERR_KIND);
        };
        let kernel = |e: crate::cap::CapError| OpError::Kernel(e.into());
        if data.len() < end {
            data.set_len(end).map_err(kernel)?;
        }
        let mut piece = [0u8; PAGE_SIZE];
        let mut done = 0;
        while done < len {
            // Aligned to the Data's pages, so each piece touches one page.
            let at = offset + done as u64;
            let k = (len - done).min(PAGE_SIZE - (at % page) as usize);
            memory
                .read(ptr + done as u32, &mut piece[..k])
                .map_err(|_| OpError::Code(ERR_MEMORY))?;
            data.write(at, &piece[..k]).map_err(kernel)?;
            done += k;
        }
        Ok(())
    })??;
    Ok(OK)
}

/// `hash_of(slot, ptr)`: settles a working cap first (the slot then holds
/// the hash).
pub(crate) fn hash_of<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let (slot, link, ptr) = slot_and_hash_out(machine, frame, txn)?;
    let hash = settled(frame, txn, slot, &link)?;
    write_mem(machine, ptr, hash.as_bytes())?;
    Ok(OK)
}

/// `(slot, ptr)` arguments of an op that writes 32 bytes about the cap in
/// `slot`: the slot, its link, and the (writable) pointer.
fn slot_and_hash_out<S: BuildHasher>(
    machine: &Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> Result<(u32, CapHashOrRef, u32), OpError> {
    let slot = slot_arg(machine.regs[7])?;
    let link = frame.occupied(txn, slot)?;
    let (ptr, _) = mem_range(machine.regs[8], 32, 32)?;
    require_writable(machine, ptr, 32)?;
    Ok((slot, link, ptr))
}

/// The hash of the link in `slot`, settling (and re-linking by hash) a
/// working cap.
pub(crate) fn settled<S: BuildHasher>(
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
    slot: u32,
    link: &CapHashOrRef,
) -> Result<crate::hash::CapHash, OpError> {
    match link {
        CapHashOrRef::Hash(h) => Ok(*h),
        CapHashOrRef::Ref(_) => {
            let hash = txn.settle(link)?;
            frame.set(txn, slot, CapHashOrRef::Hash(hash))?;
            Ok(hash)
        }
    }
}

/// `type_of(slot, ptr)`: an Instance's (or a Type cap's) type chain.
pub(crate) fn type_of<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let (_, link, ptr) = slot_and_hash_out(machine, frame, txn)?;
    let chain = match &*txn.load(&link)? {
        Cap::Instance(i) => i.image_hash_chain,
        Cap::Type(t) => t.image_hash_chain,
        _ => return code(ERR_KIND),
    };
    write_mem(machine, ptr, chain.as_bytes())?;
    Ok(OK)
}
