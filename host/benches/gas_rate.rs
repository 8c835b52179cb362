//! Gas calibration: how much time one unit of gas buys, per kernel op, on
//! the local backend. Each case is a program that repeats one op (with the
//! largest arguments the op allows where that is the costly case) in a loop
//! until its gas runs out; criterion reports gas per second (throughput
//! elements = gas used), so the cases compare directly with `arithmetic`,
//! a loop of register additions. A gas limit bounds an invocation's time to
//! (gas / the slowest case's gas per second); docs/kernel.md lists the
//! figures and the factor over arithmetic.
//!
//! Out of gas commits nothing, so these loops measure the ops' own work;
//! the commit's hashing (charged per changed page by `data_write`,
//! `data_new` and `spawn`) is the `*_commit` cases, which write and halt.

use std::hint::black_box;

use capbox::shared::cap::{Cap, Data, Image};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::ops::MAX_LOG_LEN;
use capbox::shared::kernel::{ExitReason, KernelOp};
use capbox::shared::pvm::asm::{ProgramBuilder, Reg};
use capbox::{BackendChoice, Kernel};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Gas per looping invocation: enough for a few dozen 1 MiB ops.
const GAS: u64 = 40_000_000;
/// Where the read-write data (and the heap after it) starts.
const RW_START: u32 = 0x2_0000;
/// The largest transfer the byte-moving ops are benchmarked with.
const MIB: u32 = 1 << 20;
/// Heap pages: room for a 1 MiB buffer at `RW_START`.
const HEAP_PAGES: u32 = MIB / 4096 + 1;

/// Slots the cases use in the root CNode.
const DATA_SLOT: u32 = 1;
const IMAGE_SLOT: u32 = 2;
const CHILD_SLOT: u32 = 3;
const SCRATCH_SLOT: u32 = 4;

fn halt(b: &mut ProgramBuilder) {
    b.jump_ind(Reg::R0, 0u32); // φ0 = the halt address
}

fn image(code: Vec<u8>, entry: u32) -> Image {
    Image {
        code,
        ro_data: Vec::new(),
        rw_data: vec![0xa5; 8],
        heap_pages: HEAP_PAGES,
        stack_size: 4096,
        endpoints: vec![entry],
        endpoint_names: Vec::new(),
    }
}

/// `setup` once, then for ever: `body` (which sets φ7.. and calls ops).
fn looping(
    setup: impl FnOnce(&mut ProgramBuilder),
    body: impl FnOnce(&mut ProgramBuilder),
) -> Image {
    let mut b = ProgramBuilder::new();
    let entry = b.here();
    setup(&mut b);
    let top = b.new_label();
    b.jump(top);
    b.bind(top);
    body(&mut b);
    b.jump(top);
    let built = b.build_program().expect("well formed");
    image(built.blob.clone(), built.pc(entry).expect("own label"))
}

/// `φ7.. = args`, `ecalli op`.
fn op(b: &mut ProgramBuilder, op: KernelOp, args: &[u32]) {
    const REGS: [Reg; 4] = [Reg::R7, Reg::R8, Reg::R9, Reg::R10];
    for (reg, &value) in REGS.iter().zip(args) {
        b.load_imm(*reg, value);
    }
    b.ecalli(op.number());
}

/// An empty child: its endpoint halts at once.
fn child_image() -> Image {
    let mut b = ProgramBuilder::new();
    let entry = b.here();
    halt(&mut b);
    let built = b.build_program().expect("well formed");
    image(built.blob.clone(), built.pc(entry).expect("own label"))
}

struct Case {
    name: &'static str,
    image: Image,
    input: Vec<u8>,
    gas: u64,
    /// The exit the case must end with.
    exit: ExitReason,
}

fn cases() -> Vec<Case> {
    use KernelOp::*;
    let out_of_gas = |name, image| Case {
        name,
        image,
        input: Vec::new(),
        gas: GAS,
        exit: ExitReason::OutOfGas,
    };
    let nothing = |_: &mut ProgramBuilder| {};
    let mut cases = vec![
        out_of_gas(
            "arithmetic",
            looping(nothing, |b| {
                for _ in 0..16 {
                    b.add_64(Reg::R7, Reg::R7, Reg::R8);
                }
            }),
        ),
        out_of_gas("gas", looping(nothing, |b| op(b, Gas, &[]))),
        out_of_gas(
            "log_4k",
            looping(nothing, |b| op(b, Log, &[RW_START, MAX_LOG_LEN as u32])),
        ),
        out_of_gas(
            "set_output_1m",
            looping(nothing, |b| op(b, SetOutput, &[RW_START, MIB])),
        ),
        out_of_gas(
            "data_read_1m",
            looping(nothing, |b| op(b, DataRead, &[DATA_SLOT, 0, RW_START, MIB])),
        ),
        out_of_gas(
            "data_write_1m",
            looping(nothing, |b| {
                op(b, DataWrite, &[DATA_SLOT, 0, RW_START, MIB])
            }),
        ),
        out_of_gas(
            "data_new_1m",
            looping(nothing, |b| {
                op(b, DataNew, &[SCRATCH_SLOT, RW_START, MIB]);
                op(b, SlotDrop, &[SCRATCH_SLOT]);
            }),
        ),
        out_of_gas(
            "slot_copy_drop",
            looping(nothing, |b| {
                op(b, SlotCopy, &[DATA_SLOT, SCRATCH_SLOT]);
                op(b, SlotDrop, &[SCRATCH_SLOT]);
            }),
        ),
        out_of_gas(
            "hash_of",
            looping(nothing, |b| op(b, HashOf, &[DATA_SLOT, RW_START])),
        ),
        out_of_gas(
            "cap_info",
            looping(nothing, |b| op(b, CapInfo, &[DATA_SLOT])),
        ),
        out_of_gas(
            "spawn_drop",
            looping(nothing, |b| {
                op(b, Spawn, &[IMAGE_SLOT, SCRATCH_SLOT]);
                op(b, SlotDrop, &[SCRATCH_SLOT]);
            }),
        ),
        out_of_gas(
            "call_empty_child",
            looping(
                |b| op(b, Spawn, &[IMAGE_SLOT, CHILD_SLOT]),
                |b| op(b, Call, &[CHILD_SLOT, 0]),
            ),
        ),
    ];
    let mut input = looping(nothing, |b| op(b, InputRead, &[0, RW_START, MIB]));
    input.heap_pages = HEAP_PAGES;
    cases.push(Case {
        name: "input_read_1m",
        image: input,
        input: vec![0x3c; MIB as usize],
        gas: GAS,
        exit: ExitReason::OutOfGas,
    });
    // Commit cases: write 1 MiB into the Data (every page changes), halt;
    // the gas is what the program used, so the rate includes the hashing.
    let mut b = ProgramBuilder::new();
    let entry = b.here();
    op(&mut b, DataWrite, &[DATA_SLOT, 0, RW_START, MIB]);
    halt(&mut b);
    let built = b.build_program().expect("well formed");
    cases.push(Case {
        name: "data_write_1m_commit",
        image: image(built.blob.clone(), built.pc(entry).expect("own label")),
        input: Vec::new(),
        gas: GAS,
        exit: ExitReason::Halt,
    });
    cases
}

/// An instance of `image` with a 1 MiB Data in [`DATA_SLOT`] and the child
/// image in [`IMAGE_SLOT`].
fn instance(kernel: &mut Kernel, image: &Image) -> CapHash {
    let data: Vec<u8> = (0..MIB as usize).map(|i| (i % 251) as u8 | 1).collect();
    let caps = [
        (
            DATA_SLOT,
            Cap::Data(Data::from_bytes(&data).expect("1 MiB")),
        ),
        (IMAGE_SLOT, Cap::Image(child_image())),
    ];
    kernel
        .create_instance_with_caps(image, &caps)
        .expect("instance")
}

fn bench_gas_rate(c: &mut Criterion) {
    let mut kernel = Kernel::new(BackendChoice::Local).expect("local kernel");
    let mut group = c.benchmark_group("gas_rate");
    group.sample_size(10);
    for case in cases() {
        let instance = instance(&mut kernel, &case.image);
        let run = |kernel: &mut Kernel| {
            kernel
                .invoke_with_input(&instance, 0, [0; 4], case.gas, &case.input)
                .expect("the invocation runs")
        };
        let first = run(&mut kernel);
        assert_eq!(first.exit, case.exit, "{}: {first:?}", case.name);
        // The same work every time (nothing committed, or the same state).
        assert_eq!(run(&mut kernel).gas_used, first.gas_used, "{}", case.name);
        group.throughput(Throughput::Elements(first.gas_used));
        group.bench_function(case.name, |b| b.iter(|| black_box(run(&mut kernel))));
    }
    group.finish();
}

criterion_group!(benches, bench_gas_rate);
criterion_main!(benches);
