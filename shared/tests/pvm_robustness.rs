//! Arbitrary blobs and machine states never make the decoder or the
//! interpreter panic, and gas accounting stays consistent.

mod pvm_support;

use capbox_shared::pvm::{Exit, Machine, Program, deblob, encode_natural};
use proptest::prelude::*;
use pvm_support::test_memory;

/// A well-formed blob around arbitrary code, bitmask and jump table.
fn blob(code: &[u8], mask_bits: &[bool], table: &[u32]) -> Vec<u8> {
    let mut blob = Vec::new();
    encode_natural(table.len() as u64, &mut blob);
    blob.push(4);
    encode_natural(code.len() as u64, &mut blob);
    for entry in table {
        blob.extend(entry.to_le_bytes());
    }
    blob.extend(code);
    let mut packed = vec![0u8; code.len().div_ceil(8)];
    for i in 0..code.len() {
        if mask_bits.get(i).copied().unwrap_or(true) {
            packed[i / 8] |= 1 << (i % 8);
        }
    }
    blob.extend(packed);
    blob
}

/// Registers biased towards interesting addresses and small values.
fn register() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..64,
        0x20000u64..0x22010,
        Just(0xFFFF_0000u64),
        any::<u64>(),
    ]
}

fn run_to_end(program: &Program, regs: [u64; 13], pc: u32, gas: i64) -> (Exit, Machine) {
    let mut machine = Machine::new(regs, pc, gas, test_memory());
    let mut exit = machine.run(program);
    for _ in 0..64 {
        if !matches!(exit, Exit::HostCall(_)) {
            break;
        }
        exit = machine.run(program);
    }
    (exit, machine)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_deblob(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = deblob(&bytes);
        let _ = Program::from_blob(&bytes);
    }

    #[test]
    fn arbitrary_programs_never_panic(
        code in prop::collection::vec(any::<u8>(), 0..200),
        mask in prop::collection::vec(prop::bool::weighted(0.4), 0..200),
        table in prop::collection::vec(0u32..220, 0..6),
        regs in prop::array::uniform13(register()),
        pc in prop_oneof![Just(0u32), 0u32..210],
        gas in prop_oneof![-3i64..3000, Just(i64::MIN)],
    ) {
        let program = Program::from_blob(&blob(&code, &mask, &table)).unwrap();
        let (_, machine) = run_to_end(&program, regs, pc, gas);
        prop_assert!(machine.gas <= gas.max(0));
        prop_assert!(machine.gas >= -1 || gas < 0);
        prop_assert!(gas >= 0 || machine.gas == gas.saturating_sub(1));
    }

    #[test]
    fn exact_gas_reproduces_the_run(
        code in prop::collection::vec(any::<u8>(), 0..120),
        mask in prop::collection::vec(prop::bool::weighted(0.5), 0..120),
        regs in prop::array::uniform13(register()),
    ) {
        let program = Program::from_blob(&blob(&code, &mask, &[])).unwrap();
        let budget = 100_000;
        let (exit, full) = run_to_end(&program, regs, 0, budget);
        prop_assume!(exit != Exit::OutOfGas);
        let used = budget - full.gas;
        let (exit_exact, exact) = run_to_end(&program, regs, 0, used);
        prop_assert_eq!(exit_exact, exit);
        prop_assert_eq!(exact.gas, 0);
        prop_assert_eq!(exact.regs, full.regs);
        prop_assert_eq!(exact.pc, full.pc);
    }
}
