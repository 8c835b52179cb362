//! Arbitrary blobs and machine states never make the decoder or the
//! interpreter panic, and gas accounting stays consistent.

mod pvm_support;

use capbox_shared::pvm::{Exit, Machine, Program, deblob};
use proptest::prelude::*;
use pvm_support::{raw_blob, register_value, test_memory};

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
        regs in prop::array::uniform13(register_value()),
        pc in prop_oneof![Just(0u32), 0u32..210],
        gas in prop_oneof![-3i64..3000, Just(i64::MIN)],
    ) {
        let program = Program::from_blob(&raw_blob(&code, &mask, &table)).unwrap();
        let (_, machine) = run_to_end(&program, regs, pc, gas);
        prop_assert!(machine.gas <= gas.max(0));
        prop_assert!(machine.gas >= -1 || gas < 0);
        prop_assert!(gas >= 0 || machine.gas == gas.saturating_sub(1));
    }

    #[test]
    fn exact_gas_reproduces_the_run(
        code in prop::collection::vec(any::<u8>(), 0..120),
        mask in prop::collection::vec(prop::bool::weighted(0.5), 0..120),
        regs in prop::array::uniform13(register_value()),
    ) {
        let program = Program::from_blob(&raw_blob(&code, &mask, &[])).unwrap();
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
