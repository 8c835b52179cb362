//! The compiled code (`pvm::jit`) against the interpreter: the same
//! program and state run both ways must end in the same state (exit, pc,
//! gas, registers, writable memory, dirty pages) at every exit, on the
//! builder workloads (gas ample, running out mid-block, sliced) and on
//! random raw programs.
#![cfg(feature = "jit")]

#[path = "jit_support/mod.rs"]
mod jit_support;
mod pvm_support;
#[path = "raw_program/mod.rs"]
#[allow(dead_code)] // Also serves the fuzz targets.
mod raw_program;
#[path = "pvm_programs/workloads.rs"]
mod workloads;

use capbox_shared::pvm::{Exit, Machine, Program};
use jit_support::{State, assert_same, raw_case, run_all};
use proptest::prelude::*;

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
        run_all(&interpreted, machine(), slice, writable),
        run_all(&compiled, machine(), slice, writable),
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

/// A workload's machine, and its writable buffer to compare.
fn workload_machine(buffer: u32, size: u64, gas: i64) -> (Machine, Vec<(u32, u32)>) {
    let writable = vec![(
        workloads::layout(buffer).rw_start(),
        buffer.next_multiple_of(4096),
    )];
    (workloads::machine(buffer, size, gas), writable)
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
                assert_same(&compiled, &interpreted, &writable, &|| {
                    format!("gas {gas}, slice {slice}")
                });
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
