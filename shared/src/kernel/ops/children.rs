//! `spawn`, `give`, `take`, `call`, and `output_read`'s source: child
//! instances held in the frame's root CNode.

use core::hash::BuildHasher;

use super::data::settled;
use super::io::charge_pages;
use super::{
    CALL_GAS_SHIFT, CALL_HALT, CALL_OUT_OF_GAS, CALL_PAGE_FAULT, CALL_PANIC, ERR_CHILD, ERR_DEPTH,
    ERR_EMPTY, ERR_ENDPOINT, ERR_KIND, ERR_LIMIT, ERR_OCCUPIED, ERR_SLOT, KernelOp, MAX_CALL_DEPTH,
    OK,
};
use crate::cap::{CNode, Cap, CapHashOrRef, Data, InstanceCap, PAGE_SIZE, TypeCap};
use crate::kernel::error::KernelError;
use crate::kernel::invoke::{ExitReason, run_frame};
use crate::kernel::transaction::{Frame, OpError, OpResult, Txn, code, slot_arg};
use crate::pvm::Machine;

/// `spawn(image_slot, dst_slot)`: a new child Instance of the Image in
/// `image_slot`: memory = the image's rw data, an empty root CNode, type
/// chain = `TypeCap::child(this instance's chain, image hash)`.
pub(crate) fn spawn<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let image_slot = slot_arg(machine.regs[7])?;
    let dst = slot_arg(machine.regs[8])?;
    let link = frame.occupied(txn, image_slot)?;
    let cap = txn.load(&link)?;
    let Cap::Image(image) = &*cap else {
        return code(ERR_KIND);
    };
    frame.require_empty(txn, dst)?;
    let rw = image.rw_data.len() as u64;
    charge_pages(machine, KernelOp::Spawn, rw)?;
    txn.charge_new_bytes(rw.next_multiple_of(PAGE_SIZE as u64))?;
    let memory = Data::from_bytes(&image.rw_data).map_err(|e| OpError::Kernel(e.into()))?;
    let image_hash = settled(frame, txn, image_slot, &link)?;
    // A child's parts are published at once (content-addressed: the same
    // spawn always makes the same blobs); only the parent's slot is state.
    let memory_hash = txn.dir.put_cap(&Cap::Data(memory))?;
    let root_hash = txn.dir.put_cap(&Cap::CNode(CNode::new()))?;
    let child = Cap::Instance(InstanceCap {
        image: image_hash,
        memory: CapHashOrRef::Hash(memory_hash),
        root_cnode: CapHashOrRef::Hash(root_hash),
        image_hash_chain: TypeCap::child(frame.chain, &image_hash),
    });
    let child_hash = txn.dir.put_cap(&child)?;
    frame.set(txn, dst, CapHashOrRef::Hash(child_hash))?;
    Ok(OK)
}

/// The Instance in `child_slot`: its link and value.
fn child_in<S: BuildHasher>(
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
    child_slot: u32,
) -> Result<(CapHashOrRef, InstanceCap), OpError> {
    let link = frame.occupied(txn, child_slot)?;
    match &*txn.load(&link)? {
        Cap::Instance(instance) => Ok((link, instance.clone())),
        _ => code(ERR_KIND),
    }
}

/// Changes the root CNode of the child in `child_slot` (made a working
/// entry if it is not one yet). `check` runs on the child's current CNode
/// first; nothing changes unless it succeeds.
fn edit_child_root<S: BuildHasher, T>(
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
    child_slot: u32,
    check: impl FnOnce(&CNode) -> Result<(), OpError>,
    change: impl FnOnce(&mut CNode) -> T,
) -> Result<T, OpError> {
    let (child_link, child) = child_in(frame, txn, child_slot)?;
    let root = txn.load(&child.root_cnode)?;
    let Cap::CNode(cnode) = &*root else {
        return code(ERR_KIND);
    };
    check(cnode)?;
    let root_ref = txn.make_working(&child.root_cnode)?;
    let result = txn.update(&root_ref, |cap| match cap {
        Cap::CNode(cnode) => Ok(change(cnode)),
        _ => code(ERR_KIND),
    })??;
    let child_ref = txn.make_working(&child_link)?;
    if matches!(child.root_cnode, CapHashOrRef::Hash(_)) {
        txn.update(&child_ref, |cap| {
            if let Cap::Instance(instance) = cap {
                instance.root_cnode = CapHashOrRef::Ref(root_ref);
            }
        })?;
    }
    if matches!(child_link, CapHashOrRef::Hash(_)) {
        frame.set(txn, child_slot, CapHashOrRef::Ref(child_ref))?;
    }
    Ok(result)
}

/// `give(child_slot, src_slot, child_dst_slot)`: moves the cap in
/// `src_slot` into the child's root CNode.
pub(crate) fn give<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let child_slot = slot_arg(machine.regs[7])?;
    let src = slot_arg(machine.regs[8])?;
    let child_dst = slot_arg(machine.regs[9])?;
    if src == child_slot {
        return code(ERR_SLOT);
    }
    child_in(frame, txn, child_slot)?;
    let mut value = frame.occupied(txn, src)?;
    // A working Instance is settled first, so working Instances never nest
    // inside one another (commit settles at most a fixed depth).
    if matches!(value, CapHashOrRef::Ref(_)) && matches!(&*txn.load(&value)?, Cap::Instance(_)) {
        value = CapHashOrRef::Hash(settled(frame, txn, src, &value)?);
    }
    let given = value.clone();
    edit_child_root(
        frame,
        txn,
        child_slot,
        |cnode| match cnode.get(child_dst) {
            Some(_) => code(ERR_OCCUPIED),
            None => Ok(()),
        },
        |cnode| cnode.set(child_dst, given),
    )?
    .map_err(|e| OpError::Kernel(e.into()))?;
    frame.remove(txn, src)?;
    Ok(OK)
}

/// `take(child_slot, child_src_slot, dst_slot)`: moves a cap out of the
/// child's root CNode into `dst_slot`.
pub(crate) fn take<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let child_slot = slot_arg(machine.regs[7])?;
    let child_src = slot_arg(machine.regs[8])?;
    let dst = slot_arg(machine.regs[9])?;
    child_in(frame, txn, child_slot)?;
    frame.require_empty(txn, dst)?;
    let taken = edit_child_root(
        frame,
        txn,
        child_slot,
        |cnode| match cnode.get(child_src) {
            Some(_) => Ok(()),
            None => code(ERR_EMPTY),
        },
        |cnode| cnode.remove(child_src),
    )?;
    let Some(value) = taken else {
        return code(ERR_EMPTY);
    };
    frame.set(txn, dst, value)?;
    Ok(OK)
}

/// `call(child_slot, endpoint | gas_limit << 32, a0, a1, a2, a3)`: a
/// nested invocation of the child, on the caller's gas. The child's state
/// replaces the slot's only if it halts.
pub(crate) fn call<S: BuildHasher>(
    machine: &mut Machine,
    frame: &mut Frame,
    txn: &mut Txn<'_, S>,
) -> OpResult {
    let child_slot = slot_arg(machine.regs[7])?;
    let selector = machine.regs[8];
    let args = [
        machine.regs[9],
        machine.regs[10],
        machine.regs[11],
        machine.regs[12],
    ];
    let link = frame.occupied(txn, child_slot)?;
    // A prepared entry exists only for an Instance: skip loading it again.
    let known = match &link {
        CapHashOrRef::Hash(h) => txn.programs.prepared(h),
        CapHashOrRef::Ref(_) => None,
    };
    if known.is_none() && !matches!(&*txn.load(&link)?, Cap::Instance(_)) {
        return code(ERR_KIND);
    }
    if frame.depth >= MAX_CALL_DEPTH {
        return code(ERR_DEPTH);
    }
    // A call boundary is a slice boundary too: a parent calling short
    // children in a loop never reaches one inside a machine.
    if txn.slice_used() && txn.deadline_passed() {
        return Err(OpError::Timeout);
    }
    let endpoint = selector as u32;
    let limit = (selector >> CALL_GAS_SHIFT) as i64;
    let available = machine.gas.max(0);
    let gas = if limit == 0 {
        available
    } else {
        limit.min(available)
    };
    let child_hash = match &link {
        CapHashOrRef::Hash(hash) => *hash,
        CapHashOrRef::Ref(_) => settled(frame, txn, child_slot, &link)?,
    };
    frame.child_output.clear();
    let result = match run_frame(
        txn,
        known,
        &child_hash,
        endpoint,
        args,
        gas,
        frame.depth + 1,
    ) {
        Ok(result) => result,
        Err(KernelError::BadEndpoint { .. }) => return code(ERR_ENDPOINT),
        Err(KernelError::CallStackMemory) => return code(ERR_LIMIT),
        Err(
            KernelError::BadProgram { .. }
            | KernelError::BadLayout { .. }
            | KernelError::WrongKind { .. },
        ) => return code(ERR_CHILD),
        Err(other) => return Err(OpError::Kernel(other)),
    };
    // The child's use is the caller's: 0 ≤ gas_left ≤ gas ≤ available.
    machine.gas -= gas - result.gas_left.max(0);
    let exit = match result.exit {
        // The whole invocation ends (the child committed nothing).
        ExitReason::Timeout => return Err(OpError::Timeout),
        ExitReason::Halt => {
            if result.instance != child_hash {
                frame.set(txn, child_slot, CapHashOrRef::Hash(result.instance))?;
            }
            frame.child_output = result.output;
            machine.regs[8] = result.r7;
            CALL_HALT
        }
        ExitReason::Panic => {
            machine.regs[8] = result.r7;
            CALL_PANIC
        }
        ExitReason::OutOfGas => {
            machine.regs[8] = result.r7;
            CALL_OUT_OF_GAS
        }
        ExitReason::PageFault(address) => {
            machine.regs[8] = u64::from(address);
            CALL_PAGE_FAULT
        }
    };
    machine.regs[9] = result.r8;
    machine.regs[10] = frame.child_output.len() as u64;
    Ok(exit)
}
