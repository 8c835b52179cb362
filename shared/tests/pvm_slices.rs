//! `Machine::run_sliced` changes nothing but where a run stops: with slices
//! of 1, 7, 1000 gas and none, every program ends with the same exit,
//! registers, pc, gas and memory as an unsliced run.

mod pvm_support;
#[path = "pvm_programs/workloads.rs"]
mod workloads;

use pvm_support::{raw_blob, register_value, test_memory};

use capbox_shared::kernel::sample::{Endpoint, sample_image};
use capbox_shared::pvm::layout::StandardLayout;
use capbox_shared::pvm::{Exit, Machine, Memory, Program};
use proptest::prelude::*;

const SLICES: [u64; 4] = [1, 7, 1000, u64::MAX];

/// Everything a run leaves behind.
#[derive(Debug, PartialEq, Eq)]
struct Final {
    exits: Vec<Exit>,
    regs: [u64; 13],
    pc: u32,
    gas: i64,
    dirty: Vec<(u32, Vec<u8>)>,
    heap_top: Option<u32>,
}

/// Runs to the end (resuming after up to 64 host calls), sliced by
/// `slice`; the final state and how many slice stops there were.
fn run(program: &Program, mut machine: Machine, slice: u64) -> (Final, u64) {
    let mut exits = Vec::new();
    let mut slices = 0u64;
    loop {
        let exit = machine.run_sliced(program, slice);
        match exit {
            Exit::Slice => {
                slices += 1;
                continue;
            }
            Exit::HostCall(_) if exits.len() < 64 => exits.push(exit),
            _ => {
                exits.push(exit);
                break;
            }
        }
    }
    let dirty = machine
        .memory
        .dirty_pages()
        .map(|(addr, bytes)| (addr, bytes.to_vec()))
        .collect();
    let state = Final {
        exits,
        regs: machine.regs,
        pc: machine.pc,
        gas: machine.gas,
        dirty,
        heap_top: machine.memory.heap_top(),
    };
    (state, slices)
}

/// Runs with every slice size; asserts they all agree with the unsliced
/// run (which never stops for a slice). Returns the unsliced result and
/// the slice stops of the 7-gas slices.
fn all_agree(program: &Program, machine: impl Fn() -> Machine) -> (Final, u64) {
    let mut plain = machine();
    let mut exits = Vec::new();
    loop {
        let exit = plain.run(program);
        exits.push(exit);
        if !matches!(exit, Exit::HostCall(_)) || exits.len() > 64 {
            break;
        }
    }
    let (unsliced, stops) = run(program, machine(), u64::MAX);
    assert_eq!(stops, 0);
    assert_eq!(unsliced.exits, exits);
    assert_eq!((unsliced.gas, unsliced.pc), (plain.gas, plain.pc));
    let mut stops7 = 0;
    for slice in SLICES {
        let (sliced, stops) = run(program, machine(), slice);
        assert_eq!(sliced, unsliced, "slice {slice}");
        if slice == 7 {
            stops7 = stops;
        }
    }
    (unsliced, stops7)
}

#[test]
fn workloads_agree_with_every_slice() {
    let sieve = Program::from_blob(&workloads::sieve()).unwrap();
    let sort = Program::from_blob(&workloads::insertion_sort()).unwrap();
    // Enough gas, and gas running out in the middle (in and between blocks).
    for gas in [1 << 30, 5_000, 5_001, 5_003, 12_345] {
        let (end, stops) = all_agree(&sieve, || workloads::machine(4096, 2000, gas));
        if gas == 1 << 30 {
            assert_eq!(end.exits, [Exit::Halt]);
            assert_eq!(end.regs[9], workloads::expected_primes(2000));
            assert!(stops > 1000, "{stops} slice stops");
        } else {
            assert_eq!(end.exits, [Exit::OutOfGas]);
        }
        let (end, _) = all_agree(&sort, || workloads::machine(8 * 60, 60, gas));
        if gas == 1 << 30 {
            assert_eq!(end.regs[9], workloads::expected_sort_sum(60));
        }
    }
}

#[test]
fn sample_endpoints_agree_with_every_slice() {
    let image = sample_image();
    let program = Program::from_blob(&image.code).unwrap();
    let layout = StandardLayout::new(
        image.ro_data.len() as u32,
        image.rw_data.len() as u32,
        image.heap_pages as u16,
        image.stack_size,
        0,
    )
    .unwrap();
    for endpoint in Endpoint::ALL {
        let pc = image.endpoints[endpoint.index() as usize];
        // φ7 = 0 makes Loop run until the gas is gone.
        for (r7, gas) in [(0, 10_000), (500, 10_000), (3, 100), (0, 0), (1, 1)] {
            let machine = || {
                let memory =
                    Memory::standard(&layout, &image.ro_data, &image.rw_data, &[]).unwrap();
                let mut regs = layout.initial_registers();
                regs[7] = r7;
                Machine::new(regs, pc, gas, memory)
            };
            all_agree(&program, machine);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_programs_agree_with_every_slice(
        code in prop::collection::vec(any::<u8>(), 0..160),
        mask in prop::collection::vec(prop::bool::weighted(0.4), 0..160),
        table in prop::collection::vec(0u32..170, 0..6),
        regs in prop::array::uniform13(register_value()),
        pc in prop_oneof![Just(0u32), 0u32..170],
        gas in prop_oneof![-3i64..300, 0i64..20_000, Just(i64::MAX)],
    ) {
        let program = Program::from_blob(&raw_blob(&code, &mask, &table)).unwrap();
        // Loops are common: i64::MAX gas would run for ever.
        let gas = gas.min(50_000);
        all_agree(&program, || Machine::new(regs, pc, gas, test_memory()));
    }
}
