//! Whole programs with loops: a prime sieve and an insertion sort, run in
//! the standard memory layout. `throughput` (ignored; run with
//! `cargo test --release -p capbox-shared --test pvm_programs -- --ignored
//! --nocapture`) prints the interpreter's speed on them.

mod pvm_support;

use std::time::{Duration, Instant};

use capbox_shared::pvm::{Exit, Machine, Memory, Program, StandardLayout};
use pvm_support::{blob, sieve_program, sort_program};

/// Runs `program` with r7 = `n` and r8 = a zeroed writable area of
/// `area` octets; returns the machine after it halts and the gas used.
fn run_standard(program: &Program, n: u64, area: u32) -> (Machine, i64) {
    let layout = StandardLayout::new(0, area, 0, 0x1000, 0).unwrap();
    let memory = Memory::standard(&layout, &[], &vec![0; area as usize], &[]).unwrap();
    let mut regs = layout.initial_registers();
    regs[7] = n;
    regs[8] = u64::from(layout.rw_start());
    let budget = i64::MAX / 2;
    let mut machine = Machine::new(regs, 0, budget, memory);
    assert_eq!(machine.run(program), Exit::Halt, "pc {}", machine.pc);
    let used = budget - machine.gas;
    (machine, used)
}

fn sorted_output(machine: &Machine, n: usize) -> Vec<u32> {
    let layout = StandardLayout::new(0, 4, 0, 0x1000, 0).unwrap();
    let mut bytes = vec![0; 4 * n];
    machine.memory.read(layout.rw_start(), &mut bytes).unwrap();
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn sieve_counts_primes() {
    let program = Program::from_blob(&blob(&sieve_program())).unwrap();
    for (n, primes) in [(2, 0), (3, 1), (100, 25), (10_000, 1229)] {
        let (machine, _) = run_standard(&program, n, 10_000);
        assert_eq!(machine.regs[10], primes, "primes below {n}");
    }
}

#[test]
fn insertion_sort_sorts() {
    let program = Program::from_blob(&blob(&sort_program())).unwrap();
    let (machine, used) = run_standard(&program, 300, 1200);
    let out = sorted_output(&machine, 300);
    assert!(out.windows(2).all(|w| w[0] <= w[1]));
    assert!(out.iter().any(|&x| x != out[0]), "not constant");
    assert!(used > 300 * 300 / 4, "the loops really ran: {used} gas");
}

fn best_of(runs: usize, mut f: impl FnMut() -> i64) -> (Duration, i64) {
    let mut best = Duration::MAX;
    let mut gas = 0;
    for _ in 0..runs {
        let start = Instant::now();
        gas = f();
        best = best.min(start.elapsed());
    }
    (best, gas)
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn throughput() {
    let sieve = Program::from_blob(&blob(&sieve_program())).unwrap();
    let sort = Program::from_blob(&blob(&sort_program())).unwrap();
    let cases: [(&str, &Program, u64, u32); 2] = [
        ("sieve 1e6", &sieve, 1_000_000, 1_000_000),
        ("insertion sort 3000", &sort, 3000, 12_000),
    ];
    for (name, program, n, area) in cases {
        let (time, gas) = best_of(5, || run_standard(program, n, area).1);
        println!(
            "{name}: {:.2} ms, {gas} instructions, {:.2} ns/instruction",
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() * 1e9 / gas as f64
        );
    }
}
