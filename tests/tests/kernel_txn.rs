//! Transactions (DESIGN §5): for each way an invocation fails — panic,
//! out of gas, page fault, unknown op — at the top level, inside a call at
//! depth 1 and at the depth limit, nothing it did is visible; a failing
//! child leaves its slot unchanged and its parent goes on; and no working
//! entry is left behind. Plus determinism across backends and a sandbox
//! rebuild, and the per-invocation budgets.

use capbox::shared::cap::{Cap, Image};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::ops::*;
use capbox::shared::kernel::{ExitReason, KernelOp, Outcome};
use capbox::shared::pvm::asm::{ProgramBuilder, Reg};
use capbox::{Kernel, SandboxConfig};
use capbox_tests::probe::{self, LEAF_DATA_SLOT, MARK, Probe, RESULT, RW, pattern};

/// Gas for the top-level invocation, and the limit `Deep` passes down
/// (each level 1000 less, so a parent always keeps enough to record).
const GAS: u64 = 40_000;
const LIMIT: u64 = 20_000;

fn chain(kernel: &mut Kernel, len: usize) -> CapHash {
    let (caps, top) = probe::probe_chain(len);
    kernel.put_caps(&caps).unwrap();
    top
}

fn deep(kernel: &mut Kernel, top: &CapHash, action: u64) -> Outcome {
    kernel
        .invoke(top, Probe::Deep.index(), [action, LIMIT, 0, 0], GAS)
        .unwrap()
}

fn read_u64(kernel: &mut Kernel, instance: &CapHash, addr: u32) -> u64 {
    let o = kernel
        .invoke(
            instance,
            Probe::Op(KernelOp::SetOutput).index(),
            [u64::from(addr), 8, 0, 0],
            1000,
        )
        .unwrap();
    u64::from_le_bytes(o.output.try_into().unwrap())
}

fn slot(kernel: &mut Kernel, instance: &CapHash, n: u32) -> Option<CapHash> {
    let Cap::Instance(inst) = kernel.get_cap(instance).unwrap() else {
        panic!()
    };
    let Cap::CNode(root) = kernel.get_cap(inst.root_cnode.as_hash().unwrap()).unwrap() else {
        panic!()
    };
    root.get(n).map(|l| *l.as_hash().unwrap())
}

/// The instance `levels` calls below `top` (through slot 1).
fn descend(kernel: &mut Kernel, top: &CapHash, levels: usize) -> CapHash {
    let mut at = *top;
    for _ in 0..levels {
        at = slot(kernel, &at, probe::CHILD_SLOT as u32).expect("a child");
    }
    at
}

fn no_working_entries(kernel: &mut Kernel) {
    assert_eq!(
        kernel.stats().unwrap().instances,
        0,
        "working entries left after the invocation"
    );
    assert_eq!(kernel.sweep().unwrap().instances, 0);
}

/// The failing actions of `Probe::Deep` and what they end as.
const FAILURES: [(u64, ExitReason, u64); 4] = [
    (1, ExitReason::Panic, CALL_PANIC),
    (2, ExitReason::OutOfGas, CALL_OUT_OF_GAS),
    (3, ExitReason::PageFault(0x10_0000), CALL_PAGE_FAULT),
    (4, ExitReason::Panic, CALL_PANIC),
];

/// The leaf fails at `depth` (0 = the top-level invocation itself).
fn failure_at(kernel: &mut Kernel, depth: usize) {
    let top = chain(kernel, depth + 1);
    for (action, exit, code) in FAILURES {
        let leaf = descend(kernel, &top, depth);
        let o = deep(kernel, &top, action);
        if depth == 0 {
            assert_eq!((o.exit, o.instance), (exit, top), "action {action}");
            assert!(o.output.is_empty());
        } else {
            assert_eq!(
                o.exit,
                ExitReason::Halt,
                "action {action} at depth {depth}: {o:?}"
            );
            // The leaf's parent recorded the failure; the leaf is unchanged.
            let parent = descend(kernel, &o.instance, depth - 1);
            assert_eq!(read_u64(kernel, &parent, RESULT), code, "action {action}");
            assert_eq!(descend(kernel, &o.instance, depth), leaf, "action {action}");
            for above in 0..depth - 1 {
                let at = descend(kernel, &o.instance, above);
                assert_eq!(read_u64(kernel, &at, RESULT), CALL_HALT);
            }
        }
        no_working_entries(kernel);
    }
}

capbox_tests::backend_tests! {
    fn failures_at_the_top_change_nothing(kernel: &mut Kernel) {
        failure_at(kernel, 0);
    }

    fn failures_at_depth_one_leave_the_child(kernel: &mut Kernel) {
        failure_at(kernel, 1);
    }

    fn failures_at_the_depth_limit_leave_the_child(kernel: &mut Kernel) {
        failure_at(kernel, MAX_CALL_DEPTH as usize);
    }

    fn halts_at_every_depth_commit_everything(kernel: &mut Kernel) {
        let depth = MAX_CALL_DEPTH as usize;
        let top = chain(kernel, depth + 1);
        let o = deep(kernel, &top, 0);
        assert_eq!(o.exit, ExitReason::Halt);
        let leaf = descend(kernel, &o.instance, depth);
        assert_eq!(read_u64(kernel, &leaf, MARK), 1);
        let made = Cap::Data(capbox::shared::cap::Data::from_bytes(&pattern()[..16]).unwrap());
        assert_eq!(slot(kernel, &leaf, LEAF_DATA_SLOT as u32), Some(made.hash().unwrap()));
        for above in 0..depth {
            let at = descend(kernel, &o.instance, above);
            assert_eq!(read_u64(kernel, &at, RESULT), CALL_HALT);
        }
        no_working_entries(kernel);
    }

    fn calls_past_the_depth_limit_are_refused(kernel: &mut Kernel) {
        let depth = MAX_CALL_DEPTH as usize;
        let top = chain(kernel, depth + 2);
        let last = descend(kernel, &top, depth + 1);
        let o = deep(kernel, &top, 0);
        assert_eq!(o.exit, ExitReason::Halt);
        let at_limit = descend(kernel, &o.instance, depth);
        assert_eq!(read_u64(kernel, &at_limit, RESULT), ERR_DEPTH);
        assert_eq!(descend(kernel, &o.instance, depth + 1), last);
        no_working_entries(kernel);
    }

    fn a_failure_after_nested_commits_discards_them_all(kernel: &mut Kernel) {
        let top = chain(kernel, 3);
        let o = kernel.invoke(&top, Probe::DeepThenTrap.index(), [0; 4], GAS).unwrap();
        assert_eq!((o.exit, o.instance), (ExitReason::Panic, top));
        no_working_entries(kernel);
        // The same chain halting does change it (so the check above means something).
        let o = deep(kernel, &top, 0);
        assert_ne!(o.instance, top);
    }
}

/// A scripted session using every kind of op; its outcomes.
fn script(kernel: &mut Kernel) -> Vec<Outcome> {
    let (image, _) = probe::probe_cap();
    let (caps, child) = probe::probe_chain(2);
    kernel.put_caps(&caps).unwrap();
    let child_cap = kernel.get_cap(&child).unwrap();
    let data = Cap::Data(capbox::shared::cap::Data::from_bytes(b"seed").unwrap());
    let mut all = vec![image.clone(), child_cap.clone(), data.clone()];
    let slots = [
        (0, image.hash().unwrap()),
        (1, child),
        (5, data.hash().unwrap()),
    ];
    let (more, mut state) = probe::probe_instance(&slots);
    all.extend(more);
    kernel.put_caps(&all).unwrap();
    let steps: Vec<(Probe, [u64; 4])> = vec![
        (Probe::Op(KernelOp::DataNew), [6, u64::from(RW), 100, 0]),
        (
            Probe::Op(KernelOp::DataWrite),
            [5, 4000, u64::from(RW) + 7, 300],
        ),
        (Probe::Op(KernelOp::Spawn), [0, 3, 0, 0]),
        (Probe::Op(KernelOp::Give), [3, 6, 2, 0]),
        (Probe::Deep, [0, LIMIT, 0, 0]),
        (Probe::Op(KernelOp::SlotCopy), [5, 9, 0, 0]),
        (Probe::Deep, [1, LIMIT, 0, 0]),
        (Probe::Op(KernelOp::Take), [3, 2, 6, 0]),
        (Probe::NewThenHash, [10, 33, 0, 0]),
        (Probe::Op(KernelOp::SlotDrop), [9, 0, 0, 0]),
    ];
    let mut outcomes = Vec::new();
    for (p, args) in steps {
        let o = kernel.invoke(&state, p.index(), args, GAS).unwrap();
        state = o.instance;
        outcomes.push(o);
    }
    outcomes
}

#[test]
fn same_hashes_on_both_backends_and_after_a_sandbox_rebuild() {
    let mut local = capbox_tests::local_kernel();
    let expected = script(&mut local);
    assert!(
        expected.iter().all(|o| o.exit == ExitReason::Halt),
        "{expected:?}"
    );
    let Some(mut sandbox) = capbox_tests::own_sandbox(SandboxConfig::default()) else {
        return;
    };
    assert_eq!(script(&mut sandbox), expected);
    // Crash the guest: the rebuilt sandbox starts empty and is served from
    // the host's blobs; the same script gives the same hashes.
    let crash = sandbox.call_raw(capbox::shared::abi::GuestFunction::Crash, &[]);
    assert!(crash.is_err());
    assert_eq!(script(&mut sandbox), expected);
}

/// A program writing one byte to each of φ7 pages of the Data in slot 1;
/// φ7 = the first error code (or OK), φ8 = pages written.
fn page_writer() -> Image {
    let mut b = ProgramBuilder::new();
    let top = b.new_label();
    let done = b.new_label();
    // A jump target must start a basic block: `fallthrough` ends one.
    b.move_reg(Reg::R5, Reg::R7)
        .load_imm(Reg::R6, 0u32)
        .fallthrough();
    b.bind(top);
    b.branch_eq(Reg::R6, Reg::R5, done)
        .load_imm(Reg::R7, 1u32)
        .shlo_l_imm_64(Reg::R8, Reg::R6, 12u32)
        .load_imm(Reg::R9, RW)
        .load_imm(Reg::R10, 1u32)
        .ecalli(KernelOp::DataWrite.number())
        .branch_ne_imm(Reg::R7, 0u32, done)
        .add_imm_64(Reg::R6, Reg::R6, 1u32)
        .jump(top);
    b.bind(done);
    b.move_reg(Reg::R8, Reg::R6).jump_ind(Reg::R0, 0u32);
    let built = b.build_program().unwrap();
    Image {
        code: built.blob,
        ro_data: vec![],
        rw_data: vec![1; 16],
        heap_pages: 0,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![0],
    }
}

#[test]
fn new_data_per_invocation_is_bounded() {
    let mut kernel = capbox_tests::local_kernel();
    let data = Cap::Data(capbox::shared::cap::Data::new(0).unwrap());
    let image = page_writer();
    let image_cap = Cap::Image(image.clone());
    let image_hash = image_cap.hash().unwrap();
    let fresh = capbox::shared::kernel::new_instance_with_slots(
        image_hash,
        &image,
        &[(1, data.hash().unwrap())],
    )
    .unwrap();
    let state = fresh.instance_hash;
    kernel
        .put_caps(&[
            image_cap,
            data,
            fresh.memory,
            fresh.root_cnode,
            fresh.instance,
        ])
        .unwrap();
    let pages = MAX_NEW_BYTES / 4096;
    let o = kernel
        .invoke(&state, 0, [pages + 10, 0, 0, 0], 100_000_000)
        .unwrap();
    assert_eq!((o.exit, o.r7, o.r8), (ExitReason::Halt, ERR_LIMIT, pages));
    // Within the budget it works.
    let o = kernel
        .invoke(&state, 0, [100, 0, 0, 0], 10_000_000)
        .unwrap();
    assert_eq!((o.r7, o.r8), (OK, 100));
    assert_ne!(o.instance, state);
}
