//! Every kernel op, its success path with hand-worked expectations and
//! each class of bad argument, on both backends (`backend_tests!`), through
//! the probe program (tests/src/probe.rs). An op that fails changes
//! nothing: the state hash after it is the state hash before.

use capbox::Kernel;
use capbox::shared::cap::{CNode, Cap, CapHashOrRef, Data, TypeCap};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::ops::*;
use capbox::shared::kernel::{ExitReason, KernelOp, Outcome};
use capbox_tests::probe::{self, Probe, RESULT, RW, pattern};

const GAS: u64 = 1_000_000;

/// Publishes a probe instance whose root CNode holds `caps` at the given
/// slots; its hash.
fn probe_with(kernel: &mut Kernel, caps: &[(u32, Cap)]) -> CapHash {
    let mut all: Vec<Cap> = caps.iter().map(|(_, c)| c.clone()).collect();
    let slots: Vec<(u32, CapHash)> = caps.iter().map(|(s, c)| (*s, c.hash().unwrap())).collect();
    let (more, hash) = probe::probe_instance(&slots);
    all.extend(more);
    kernel.put_caps(&all).unwrap();
    hash
}

fn run(kernel: &mut Kernel, state: &CapHash, p: Probe, args: [u64; 4]) -> Outcome {
    kernel.invoke(state, p.index(), args, GAS).unwrap()
}

/// Runs one op; it must halt. (φ7, φ8, the new state.)
fn op(kernel: &mut Kernel, state: &CapHash, op: KernelOp, args: [u64; 4]) -> (u64, u64, CapHash) {
    let o = run(kernel, state, Probe::Op(op), args);
    assert_eq!(o.exit, ExitReason::Halt, "{op:?} {args:?}: {o:?}");
    (o.r7, o.r8, o.instance)
}

/// Runs an op that must fail with `code` and change nothing.
fn fails(kernel: &mut Kernel, state: &CapHash, which: KernelOp, args: [u64; 4], code: u64) {
    let (r7, _, after) = op(kernel, state, which, args);
    assert_eq!(r7, code, "{which:?} {args:?}: got {r7:#x}");
    assert_eq!(
        after, *state,
        "{which:?} {args:?} failed but changed the state"
    );
}

/// `len` bytes of the instance's memory at `addr` (via set_output).
fn memory(kernel: &mut Kernel, state: &CapHash, addr: u32, len: u64) -> Vec<u8> {
    let o = run(
        kernel,
        state,
        Probe::Op(KernelOp::SetOutput),
        [u64::from(addr), len, 0, 0],
    );
    assert_eq!(o.r7, OK);
    o.output
}

fn hash_at(kernel: &mut Kernel, state: &CapHash, slot: u64) -> (CapHash, CapHash) {
    let (r7, _, after) = op(
        kernel,
        state,
        KernelOp::HashOf,
        [slot, u64::from(RESULT), 0, 0],
    );
    assert_eq!(r7, OK);
    let bytes = memory(kernel, &after, RESULT, 32);
    (CapHash(bytes.try_into().unwrap()), after)
}

fn data(bytes: &[u8]) -> Cap {
    Cap::Data(Data::from_bytes(bytes).unwrap())
}

/// The cap a state's root CNode holds in `slot`, from the kernel.
fn slot_of(kernel: &mut Kernel, state: &CapHash, slot: u32) -> Option<CapHash> {
    let Cap::Instance(inst) = kernel.get_cap(state).unwrap() else {
        panic!("not an instance")
    };
    let CapHashOrRef::Hash(root) = inst.root_cnode else {
        panic!("unsettled")
    };
    let Cap::CNode(cnode) = kernel.get_cap(&root).unwrap() else {
        panic!("not a cnode")
    };
    cnode.get(slot).map(|l| *l.as_hash().expect("settled"))
}

const BAD_SLOTS: [u64; 3] = [65_536, u64::MAX, 1 << 32];
const UNMAPPED: u64 = 0x10_0000;

capbox_tests::backend_tests! {
    fn cap_info_reports_kind_and_size(kernel: &mut Kernel) {
        let (image, _) = probe::probe_cap();
        let mut cnode = CNode::new();
        cnode.set(9, CapHashOrRef::Hash(CapHash([1; 32]))).unwrap();
        cnode.set(70, CapHashOrRef::Hash(CapHash([2; 32]))).unwrap();
        let Cap::Image(ref img) = image else { unreachable!() };
        let code_len = img.code.len() as u64;
        let ty = Cap::Type(TypeCap { image_hash_chain: CapHash([3; 32]) });
        let s = probe_with(kernel, &[(0, data(&[5; 100])), (1, Cap::CNode(cnode)), (2, image), (4, ty)]);
        assert_eq!(op(kernel, &s, KernelOp::CapInfo, [0; 4]), (0, 100, s));
        assert_eq!(op(kernel, &s, KernelOp::CapInfo, [1, 0, 0, 0]), (1, 2, s));
        assert_eq!(op(kernel, &s, KernelOp::CapInfo, [2, 0, 0, 0]), (2, code_len, s));
        assert_eq!(op(kernel, &s, KernelOp::CapInfo, [4, 0, 0, 0]), (4, 0, s));
        assert_eq!(op(kernel, &s, KernelOp::CapInfo, [3, 0, 0, 0]), (INFO_EMPTY, 0, s));
        assert_eq!(op(kernel, &s, KernelOp::CapInfo, [65_535, 0, 0, 0]), (INFO_EMPTY, 0, s));
        for bad in BAD_SLOTS {
            fails(kernel, &s, KernelOp::CapInfo, [bad, 0, 0, 0], ERR_SLOT);
        }
    }

    fn data_new_read_and_its_errors(kernel: &mut Kernel) {
        let s = probe_with(kernel, &[(1, data(b"x"))]);
        let (r7, _, s2) = op(kernel, &s, KernelOp::DataNew, [5, u64::from(RW) + 3, 16, 0]);
        assert_eq!(r7, OK);
        assert_ne!(s2, s);
        assert_eq!(op(kernel, &s2, KernelOp::CapInfo, [5, 0, 0, 0]).0, 0);
        assert_eq!(op(kernel, &s2, KernelOp::CapInfo, [5, 0, 0, 0]).1, 16);
        // The new Data is exactly those bytes.
        let (h, _) = hash_at(kernel, &s2, 5);
        assert_eq!(h, data(&pattern()[3..19]).hash().unwrap());
        assert_eq!(slot_of(kernel, &s2, 5), Some(h));
        // Read it back into memory: partial, whole, at the end, past it.
        let (n, _, s3) = op(kernel, &s2, KernelOp::DataRead, [5, 10, u64::from(RESULT), 100]);
        assert_eq!(n, 6);
        assert_eq!(memory(kernel, &s3, RESULT, 6), pattern()[13..19].to_vec());
        assert_eq!(op(kernel, &s2, KernelOp::DataRead, [5, 16, u64::from(RESULT), 8]).0, 0);
        fails(kernel, &s2, KernelOp::DataRead, [5, 17, u64::from(RESULT), 8], ERR_OFFSET);
        // data_new errors.
        fails(kernel, &s2, KernelOp::DataNew, [5, u64::from(RW), 4, 0], ERR_OCCUPIED);
        fails(kernel, &s2, KernelOp::DataNew, [1, u64::from(RW), 4, 0], ERR_OCCUPIED);
        for bad in BAD_SLOTS {
            fails(kernel, &s2, KernelOp::DataNew, [bad, u64::from(RW), 4, 0], ERR_SLOT);
        }
        fails(kernel, &s2, KernelOp::DataNew, [6, UNMAPPED, 4, 0], ERR_MEMORY);
        fails(kernel, &s2, KernelOp::DataNew, [6, u64::from(RW), 9000, 0], ERR_MEMORY);
        fails(kernel, &s2, KernelOp::DataNew, [6, u64::MAX - 2, 4, 0], ERR_MEMORY);
        fails(kernel, &s2, KernelOp::DataNew, [6, u64::from(RW), MAX_TRANSFER_LEN + 1, 0], ERR_TOO_LONG);
        // data_read errors.
        fails(kernel, &s2, KernelOp::DataRead, [7, 0, u64::from(RESULT), 4], ERR_EMPTY);
        for bad in BAD_SLOTS {
            fails(kernel, &s2, KernelOp::DataRead, [bad, 0, u64::from(RESULT), 4], ERR_SLOT);
        }
        fails(kernel, &s2, KernelOp::DataRead, [5, 0, UNMAPPED, 4], ERR_MEMORY);
        fails(kernel, &s2, KernelOp::DataRead, [5, 0, 0x100, 4], ERR_MEMORY);
        fails(kernel, &s2, KernelOp::DataRead, [5, 0, u64::from(RESULT), MAX_TRANSFER_LEN + 1], ERR_TOO_LONG);
        let t = probe_with(kernel, &[(2, Cap::CNode(CNode::new()))]);
        fails(kernel, &t, KernelOp::DataRead, [2, 0, u64::from(RESULT), 4], ERR_KIND);
        fails(kernel, &t, KernelOp::DataWrite, [2, 0, u64::from(RW), 4], ERR_KIND);
    }

    fn data_write_grows_copies_on_write_and_hashes_like_the_host(kernel: &mut Kernel) {
        let s = probe_with(kernel, &[(1, data(b"abcd"))]);
        // 16 pattern bytes at offset 4090: the Data grows across a page.
        let (r7, _, s2) = op(kernel, &s, KernelOp::DataWrite, [1, 4090, u64::from(RW), 16]);
        assert_eq!(r7, OK);
        let mut expected = vec![0u8; 4106];
        expected[..4].copy_from_slice(b"abcd");
        expected[4090..].copy_from_slice(&pattern()[..16]);
        assert_eq!(op(kernel, &s2, KernelOp::CapInfo, [1, 0, 0, 0]).1, 4106);
        let (h, _) = hash_at(kernel, &s2, 1);
        assert_eq!(h, data(&expected).hash().unwrap());
        // The old state still holds the old Data (copy-on-write).
        let (old, _) = hash_at(kernel, &s, 1);
        assert_eq!(old, data(b"abcd").hash().unwrap());
        // Overwrite inside, no growth.
        let (_, _, s3) = op(kernel, &s2, KernelOp::DataWrite, [1, 1, u64::from(RW) + 100, 2]);
        expected[1..3].copy_from_slice(&pattern()[100..102]);
        assert_eq!(hash_at(kernel, &s3, 1).0, data(&expected).hash().unwrap());
        // Errors.
        fails(kernel, &s, KernelOp::DataWrite, [2, 0, u64::from(RW), 4], ERR_EMPTY);
        for bad in BAD_SLOTS {
            fails(kernel, &s, KernelOp::DataWrite, [bad, 0, u64::from(RW), 4], ERR_SLOT);
        }
        fails(kernel, &s, KernelOp::DataWrite, [1, 0, UNMAPPED, 4], ERR_MEMORY);
        fails(kernel, &s, KernelOp::DataWrite, [1, 0, u64::from(RW), MAX_TRANSFER_LEN + 1], ERR_TOO_LONG);
        fails(kernel, &s, KernelOp::DataWrite, [1, (1 << 32) - 2, u64::from(RW), 4], ERR_TOO_LONG);
        fails(kernel, &s, KernelOp::DataWrite, [1, u64::MAX, u64::from(RW), 4], ERR_TOO_LONG);
    }

    fn slot_move_copy_drop(kernel: &mut Kernel) {
        let d = data(b"value");
        let dh = d.hash().unwrap();
        let s = probe_with(kernel, &[(1, d), (2, data(b"other"))]);
        let (r7, _, moved) = op(kernel, &s, KernelOp::SlotMove, [1, 9, 0, 0]);
        assert_eq!(r7, OK);
        assert_eq!((slot_of(kernel, &moved, 1), slot_of(kernel, &moved, 9)), (None, Some(dh)));
        assert_eq!(op(kernel, &s, KernelOp::SlotMove, [1, 1, 0, 0]), (OK, 1, s));
        fails(kernel, &s, KernelOp::SlotMove, [1, 2, 0, 0], ERR_OCCUPIED);
        fails(kernel, &s, KernelOp::SlotMove, [3, 4, 0, 0], ERR_EMPTY);
        fails(kernel, &s, KernelOp::SlotMove, [1, 65_536, 0, 0], ERR_SLOT);
        fails(kernel, &s, KernelOp::SlotMove, [u64::MAX, 4, 0, 0], ERR_SLOT);

        let (r7, _, copied) = op(kernel, &s, KernelOp::SlotCopy, [1, 7, 0, 0]);
        assert_eq!(r7, OK);
        assert_eq!((slot_of(kernel, &copied, 1), slot_of(kernel, &copied, 7)), (Some(dh), Some(dh)));
        fails(kernel, &s, KernelOp::SlotCopy, [1, 1, 0, 0], ERR_OCCUPIED);
        fails(kernel, &s, KernelOp::SlotCopy, [1, 2, 0, 0], ERR_OCCUPIED);
        fails(kernel, &s, KernelOp::SlotCopy, [3, 4, 0, 0], ERR_EMPTY);
        fails(kernel, &s, KernelOp::SlotCopy, [1, 1 << 40, 0, 0], ERR_SLOT);
        // Copies are values: writing one leaves the other.
        let (_, _, written) = op(kernel, &copied, KernelOp::DataWrite, [7, 0, u64::from(RW), 2]);
        assert_eq!(slot_of(kernel, &written, 1), Some(dh));
        assert_ne!(slot_of(kernel, &written, 7), Some(dh));

        let (r7, _, dropped) = op(kernel, &s, KernelOp::SlotDrop, [1, 0, 0, 0]);
        assert_eq!(r7, OK);
        assert_eq!(slot_of(kernel, &dropped, 1), None);
        assert_eq!(op(kernel, &s, KernelOp::SlotDrop, [3, 0, 0, 0]), (OK, 0, s));
        fails(kernel, &s, KernelOp::SlotDrop, [65_536, 0, 0, 0], ERR_SLOT);
    }

    fn hash_of_settles_working_caps(kernel: &mut Kernel) {
        let d = data(b"published");
        let s = probe_with(kernel, &[(1, d.clone())]);
        assert_eq!(hash_at(kernel, &s, 1).0, d.hash().unwrap());
        // A Data made in the same invocation is settled first.
        let o = run(kernel, &s, Probe::NewThenHash, [4, 20, 0, 0]);
        assert_eq!((o.exit, o.r7), (ExitReason::Halt, OK));
        let expected = data(&pattern()[..20]).hash().unwrap();
        assert_eq!(memory(kernel, &o.instance, RESULT, 32), expected.0.to_vec());
        assert_eq!(slot_of(kernel, &o.instance, 4), Some(expected));
        fails(kernel, &s, KernelOp::HashOf, [2, u64::from(RESULT), 0, 0], ERR_EMPTY);
        fails(kernel, &s, KernelOp::HashOf, [65_536, u64::from(RESULT), 0, 0], ERR_SLOT);
        fails(kernel, &s, KernelOp::HashOf, [1, UNMAPPED, 0, 0], ERR_MEMORY);
        fails(kernel, &s, KernelOp::HashOf, [1, 0x100, 0, 0], ERR_MEMORY);
        fails(kernel, &s, KernelOp::HashOf, [1, u64::MAX, 0, 0], ERR_MEMORY);
    }

    fn spawn_type_of_give_take(kernel: &mut Kernel) {
        let (image, image_hash) = probe::probe_cap();
        let d = data(b"gift");
        let dh = d.hash().unwrap();
        let s = probe_with(kernel, &[(0, image), (5, d)]);
        let (r7, _, s1) = op(kernel, &s, KernelOp::Spawn, [0, 3, 0, 0]);
        assert_eq!(r7, OK);
        assert_eq!(op(kernel, &s1, KernelOp::CapInfo, [3, 0, 0, 0]).0, 3);
        // The child's type chain derives from the parent's.
        let root_chain = TypeCap::child(&TypeCap::ROOT_CHAIN, &image_hash);
        let (r7, _, s1b) = op(kernel, &s1, KernelOp::TypeOf, [3, u64::from(RESULT), 0, 0]);
        assert_eq!(r7, OK);
        assert_eq!(memory(kernel, &s1b, RESULT, 32), TypeCap::child(&root_chain, &image_hash).0.to_vec());
        fails(kernel, &s1, KernelOp::TypeOf, [5, u64::from(RESULT), 0, 0], ERR_KIND);
        fails(kernel, &s1, KernelOp::TypeOf, [6, u64::from(RESULT), 0, 0], ERR_EMPTY);
        fails(kernel, &s1, KernelOp::TypeOf, [3, UNMAPPED, 0, 0], ERR_MEMORY);
        fails(kernel, &s1, KernelOp::TypeOf, [65_536, u64::from(RESULT), 0, 0], ERR_SLOT);
        // spawn errors.
        fails(kernel, &s1, KernelOp::Spawn, [0, 3, 0, 0], ERR_OCCUPIED);
        fails(kernel, &s1, KernelOp::Spawn, [5, 4, 0, 0], ERR_KIND);
        fails(kernel, &s1, KernelOp::Spawn, [6, 4, 0, 0], ERR_EMPTY);
        fails(kernel, &s1, KernelOp::Spawn, [0, 65_536, 0, 0], ERR_SLOT);
        fails(kernel, &s1, KernelOp::Spawn, [u64::MAX, 4, 0, 0], ERR_SLOT);

        // give: the Data moves into the child's slot 7.
        let (r7, _, s2) = op(kernel, &s1, KernelOp::Give, [3, 5, 7, 0]);
        assert_eq!(r7, OK);
        assert_eq!(slot_of(kernel, &s2, 5), None);
        let child = slot_of(kernel, &s2, 3).unwrap();
        assert_eq!(slot_of(kernel, &child, 7), Some(dh));
        // The child sees it (cap_info through a call).
        let selector = u64::from(Probe::Op(KernelOp::CapInfo).index());
        let o = run(kernel, &s2, Probe::CallOut, [3, selector, 7, 0]);
        assert_eq!(o.r7, CALL_HALT);
        let words: Vec<u64> = o.output.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, vec![CALL_HALT, 0, 4, 0]);
        // give errors.
        fails(kernel, &s2, KernelOp::Give, [3, 5, 8, 0], ERR_EMPTY);
        fails(kernel, &s1, KernelOp::Give, [5, 0, 8, 0], ERR_KIND);
        fails(kernel, &s1, KernelOp::Give, [6, 5, 8, 0], ERR_EMPTY);
        fails(kernel, &s1, KernelOp::Give, [3, 3, 8, 0], ERR_SLOT);
        fails(kernel, &s1, KernelOp::Give, [3, 5, 65_536, 0], ERR_SLOT);
        let (_, _, s2b) = op(kernel, &s2, KernelOp::SlotCopy, [0, 5, 0, 0]);
        fails(kernel, &s2b, KernelOp::Give, [3, 5, 7, 0], ERR_OCCUPIED);

        // take: back out into slot 9.
        let (r7, _, s3) = op(kernel, &s2, KernelOp::Take, [3, 7, 9, 0]);
        assert_eq!(r7, OK);
        assert_eq!(slot_of(kernel, &s3, 9), Some(dh));
        let child = slot_of(kernel, &s3, 3).unwrap();
        assert_eq!(slot_of(kernel, &child, 7), None);
        fails(kernel, &s2, KernelOp::Take, [3, 8, 9, 0], ERR_EMPTY);
        fails(kernel, &s2, KernelOp::Take, [3, 7, 0, 0], ERR_OCCUPIED);
        fails(kernel, &s2, KernelOp::Take, [0, 7, 9, 0], ERR_KIND);
        fails(kernel, &s2, KernelOp::Take, [4, 7, 9, 0], ERR_EMPTY);
        fails(kernel, &s2, KernelOp::Take, [3, 65_536, 9, 0], ERR_SLOT);
    }

    fn call_results_gas_and_errors(kernel: &mut Kernel) {
        let (chain_caps, child) = probe::probe_chain(1);
        kernel.put_caps(&chain_caps).unwrap();
        let child_cap = kernel.get_cap(&child).unwrap();
        let s = probe_with(kernel, &[(1, child_cap), (2, data(b"d"))]);
        // The child's gas: ask it for its gas through CallOut.
        let gas_ep = u64::from(Probe::Op(KernelOp::Gas).index());
        let o = run(kernel, &s, Probe::CallOut, [1, gas_ep | (5000 << CALL_GAS_SHIFT), 0, 0]);
        let words: Vec<u64> = o.output.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words[0], CALL_HALT);
        assert!(words[1] < 5000 && words[1] > 4900, "child saw {} gas", words[1]);
        // A halting child that changed nothing leaves the slot as it was.
        assert_eq!(o.instance, s);
        // Out of gas in the child, limited: the parent goes on.
        let loop_ep = u64::from(Probe::Loop.index());
        let o = run(kernel, &s, Probe::CallOut, [1, loop_ep | (1000 << CALL_GAS_SHIFT), 0, 0]);
        assert_eq!((o.exit, o.r7), (ExitReason::Halt, CALL_OUT_OF_GAS));
        assert!(o.gas_used >= 1000 && o.gas_used < 1400, "{o:?}");
        // Trap, fault, unknown op: the exit, slot unchanged.
        let trap = run(kernel, &s, Probe::CallOut, [1, u64::from(Probe::Trap.index()), 0, 0]);
        assert_eq!((trap.exit, trap.r7, trap.instance), (ExitReason::Halt, CALL_PANIC, s));
        let fault = run(kernel, &s, Probe::CallOut, [1, u64::from(Probe::Fault.index()), 0, 0]);
        let words: Vec<u64> = fault.output.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!((words[0], words[1]), (CALL_PAGE_FAULT, UNMAPPED));
        let unknown = run(kernel, &s, Probe::CallOut, [1, u64::from(Probe::Unknown.index()), 0, 0]);
        assert_eq!(unknown.r7, CALL_PANIC);
        // Errors.
        let call = |kernel: &mut Kernel, args: [u64; 4]| run(kernel, &s, Probe::CallOut, args);
        assert_eq!(call(kernel, [1, 999, 0, 0]).r7, ERR_ENDPOINT);
        assert_eq!(call(kernel, [2, 0, 0, 0]).r7, ERR_KIND);
        assert_eq!(call(kernel, [3, 0, 0, 0]).r7, ERR_EMPTY);
        assert_eq!(call(kernel, [65_536, 0, 0, 0]).r7, ERR_SLOT);
        // output_read before any call: there is no output yet.
        let read = |kernel: &mut Kernel, args| op(kernel, &s, KernelOp::OutputRead, args);
        assert_eq!(read(kernel, [0, u64::from(RESULT), 4, 0]).0, 0);
        fails(kernel, &s, KernelOp::OutputRead, [1, u64::from(RESULT), 4, 0], ERR_OFFSET);
        fails(kernel, &s, KernelOp::OutputRead, [0, u64::from(RESULT), MAX_TRANSFER_LEN + 1, 0], ERR_TOO_LONG);
        fails(kernel, &s, KernelOp::InputRead, [1, u64::from(RESULT), 4, 0], ERR_OFFSET);
        // The child's output: set_output of 8 bytes of its memory.
        let out_ep = u64::from(Probe::Op(KernelOp::SetOutput).index());
        let o = run(kernel, &s, Probe::CallOut, [1, out_ep, u64::from(RW) + 8, 8]);
        let words: Vec<u64> = o.output.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, vec![CALL_HALT, OK, 8, 8]);
    }
}
