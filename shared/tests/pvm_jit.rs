//! The compiled code (`pvm::jit`) against the interpreter: the same
//! program and state run both ways must end in the same state (exit, pc,
//! gas, registers, writable memory, dirty pages) at every exit, on the
//! builder workloads (gas ample, running out mid-block, sliced) and on
//! random raw programs.
#![cfg(feature = "jit")]

mod pvm_support;
#[path = "raw_program/mod.rs"]
#[allow(dead_code)] // Also serves the fuzz targets.
mod raw_program;
#[path = "pvm_programs/workloads.rs"]
mod workloads;

use capbox_shared::pvm::{
    Access, Exit, Machine, Memory, PageMapEntry, Program, StandardLayout, deblob, instructions,
};
use proptest::prelude::*;

/// What one exit left.
#[derive(Debug, PartialEq, Eq)]
struct State {
    exit: Exit,
    pc: u32,
    gas: i64,
    regs: [u64; 13],
    memory: Vec<u8>,
    dirty: Vec<u32>,
}

/// Asserts equal states, naming the first difference (memory dumps are
/// too long to read whole).
fn assert_same(compiled: &[State], interpreted: &[State], what: &str) {
    for (i, (c, t)) in compiled.iter().zip(interpreted).enumerate() {
        let at = c.memory.iter().zip(&t.memory).position(|(a, b)| a != b);
        assert!(
            at.is_none(),
            "{what}: exit {i}: memory differs from octet {at:?}"
        );
        assert_eq!(
            (c.exit, c.pc, c.gas, c.regs, &c.dirty),
            (t.exit, t.pc, t.gas, t.regs, &t.dirty),
            "{what}: exit {i} (compiled, interpreted)"
        );
    }
    assert_eq!(compiled.len(), interpreted.len(), "{what}: exits");
}

fn snapshot(exit: Exit, machine: &Machine, writable: &[(u32, u32)]) -> State {
    let mut memory = Vec::new();
    for &(address, length) in writable {
        let mut bytes = vec![0; length as usize];
        machine.memory.read(address, &mut bytes).expect("readable");
        memory.extend(bytes);
    }
    let mut dirty = Vec::new();
    machine.memory.dirty_page_addresses(&mut dirty);
    State {
        exit,
        pc: machine.pc,
        gas: machine.gas,
        regs: machine.regs,
        memory,
        dirty,
    }
}

/// Runs to the end (resuming host calls, up to `max_exits` exits) in
/// slices of `slice` gas (`u64::MAX`: none); the states at each exit.
fn run_all(
    program: &Program,
    mut machine: Machine,
    writable: &[(u32, u32)],
    slice: u64,
    max_exits: usize,
) -> Vec<State> {
    let mut states = Vec::new();
    loop {
        let exit = machine.run_sliced(program, slice);
        if exit == Exit::Slice {
            continue;
        }
        states.push(snapshot(exit, &machine, writable));
        if !matches!(exit, Exit::HostCall(_)) || states.len() >= max_exits {
            return states;
        }
    }
}

/// The interpreter's and the compiled code's states for the same run.
fn both(
    blob: &[u8],
    machine: impl Fn() -> Machine,
    writable: &[(u32, u32)],
    slice: u64,
) -> Option<(Vec<State>, Vec<State>)> {
    let interpreted = Program::from_blob(blob).ok()?;
    let compiled = interpreted.clone();
    compiled.compile_native().expect("compiles");
    assert!(compiled.is_native() && !interpreted.is_native());
    Some((
        run_all(&interpreted, machine(), writable, slice, 5),
        run_all(&compiled, machine(), writable, slice, 5),
    ))
}

/// What the kernel budgets per instruction holds for the instructions
/// that compile longest: loads and stores (inline window checks, an
/// out-of-line older window or page, a fallback), each starting a block
/// (a gas check and its out-of-line exit), and for random programs.
#[test]
fn machine_code_stays_within_the_kernels_bound_per_instruction() {
    use capbox_shared::kernel::NATIVE_BYTES_PER_INSTRUCTION;
    use capbox_shared::pvm::Opcode;
    use pvm_support::{no_args, reg_two_imms, two_imms, two_regs_imm};
    let heavy = [
        two_regs_imm(Opcode::store_ind_u16, 13, 12, 0x7fff_0000),
        two_regs_imm(Opcode::load_ind_i16, 13, 12, 0x7fff_0000),
        reg_two_imms(Opcode::store_imm_ind_u16, 12, 0x7fff_0000, 0x7fff_0000),
        two_imms(Opcode::store_imm_u64, 0x7fff_0000, 0x7fff_0000),
    ];
    // Heavy instructions in a row, and each after a `fallthrough` (so each
    // starts a block and gets a gas check).
    let in_a_row: Vec<_> = (0..800).map(|i| heavy[i % heavy.len()].clone()).collect();
    let checked: Vec<_> = (0..400)
        .flat_map(|i| [no_args(Opcode::fallthrough), heavy[i % heavy.len()].clone()])
        .collect();
    for (what, code) in [("in a row", in_a_row), ("each checked", checked)] {
        let program = Program::from_blob(&pvm_support::blob(&code)).expect("decodes");
        program.compile_native().expect("compiles");
        let n = program.instruction_count();
        let per = program.native_bytes() / n;
        assert!(
            per <= NATIVE_BYTES_PER_INSTRUCTION,
            "{what}: {per} bytes per instruction"
        );
        assert!(per >= 80, "{what}: {per} bytes: not the heavy kind");
    }
}

fn workload_machine(buffer: u32, size: u64, gas: i64) -> (Machine, Vec<(u32, u32)>) {
    let layout = StandardLayout::new(0, buffer, 0, 0x1000, 0).expect("layout");
    let rw = vec![0; buffer as usize];
    let memory = Memory::standard(&layout, &[], &rw, &[]).expect("memory");
    let mut regs = layout.initial_registers();
    regs[7] = u64::from(layout.rw_start());
    regs[8] = size;
    let writable = vec![(layout.rw_start(), buffer.next_multiple_of(4096))];
    (Machine::new(regs, 0, gas, memory), writable)
}

#[test]
fn workloads_end_as_interpreted_with_any_gas_and_slices() {
    let cases: [(Vec<u8>, u32, u64); 2] = [
        (workloads::sieve(), 8192, 5000),
        (workloads::insertion_sort(), 8 * 200, 200),
    ];
    for (blob, buffer, size) in &cases {
        for gas in [1 << 30, 5_000, 5_001, 5_003, 12_345, 77_777] {
            for slice in [u64::MAX, 1, 1000] {
                let (_, writable) = workload_machine(*buffer, *size, gas);
                let (interpreted, compiled) = both(
                    blob,
                    || workload_machine(*buffer, *size, gas).0,
                    &writable,
                    slice,
                )
                .expect("decodes");
                assert_same(
                    &compiled,
                    &interpreted,
                    &format!("gas {gas}, slice {slice}"),
                );
                if gas == 1 << 30 {
                    assert_eq!(compiled[0].exit, Exit::Halt);
                } else if gas < 20_000 {
                    assert_eq!(compiled[0].exit, Exit::OutOfGas);
                }
            }
        }
    }
    // The results themselves, as a check that the comparison saw real work.
    let (interpreted, _) = both(
        &workloads::sieve(),
        || workload_machine(8192, 5000, 1 << 30).0,
        &[],
        u64::MAX,
    )
    .expect("decodes");
    assert_eq!(interpreted[0].regs[9], workloads::expected_primes(5000));
}

/// The raw programs' memory: a read-only page, the read-write page and a
/// write page after it (like the fuzz targets').
fn raw_regions() -> Vec<PageMapEntry> {
    vec![
        PageMapEntry {
            address: 0x1_0000,
            length: 0x1000,
            access: Access::Read,
        },
        PageMapEntry {
            address: raw_program::RW,
            length: 0x2000,
            access: Access::Write,
        },
    ]
}

/// The program's instructions, one per line.
fn listing(blob: &[u8]) -> String {
    let parts = deblob(blob).expect("deblobs");
    let mut text = String::new();
    for i in instructions(&parts) {
        text += &format!("\n  {}: {:?} {:?}", i.pc, i.opcode, i.operands);
    }
    text
}

fn raw_case(data: &[u8], gas: i64, slice: u64) {
    let Some(raw) = raw_program::raw_program(data) else {
        return;
    };
    let regions = raw_regions();
    let writable = [(raw_program::RW, 0x2000)];
    let machine = || {
        let mut memory = Memory::from_page_map(&regions).expect("maps");
        memory
            .initialize(0x1_0000, &data[..data.len().min(4096)])
            .expect("fits");
        Machine::new(raw.regs, 0, gas, memory)
    };
    let Some((interpreted, compiled)) = both(&raw.blob, machine, &writable, slice) else {
        return;
    };
    let what = format!(
        "gas {gas}, slice {slice}, regs {:?}{}",
        raw.regs,
        listing(&raw.blob)
    );
    assert_same(&compiled, &interpreted, &what);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_raw_programs_end_as_interpreted(
        data in proptest::collection::vec(any::<u8>(), 14..240),
        gas in prop_oneof![Just(2_000i64), 0i64..40],
        slice in prop_oneof![Just(u64::MAX), 1u64..20],
    ) {
        raw_case(&data, gas, slice);
    }
}
