//! Benchmark workloads written with the builder, shared by
//! `benches/pvm.rs` and the tests. They avoid opcodes 101–111, which
//! PolkaVM numbers differently. Calling convention: r7 = address of a
//! zeroed writable buffer, r8 = size parameter; the result is in r9.

#![allow(dead_code)]

use capbox_shared::pvm::asm::{ProgramBuilder, Reg::*};
use capbox_shared::pvm::{Machine, Memory, StandardLayout};

/// The layout workloads run in: a `buffer`-octet writable area, a 4 KiB
/// stack.
pub fn layout(buffer: u32) -> StandardLayout {
    StandardLayout::new(0, buffer, 0, 0x1000, 0).expect("layout")
}

/// A machine to run a workload from pc 0: the zeroed buffer at r7,
/// r8 = `size`, and `gas`.
pub fn machine(buffer: u32, size: u64, gas: i64) -> Machine {
    let layout = layout(buffer);
    let rw = vec![0; buffer as usize];
    let memory = Memory::standard(&layout, &[], &rw, &[]).expect("memory");
    let mut regs = layout.initial_registers();
    regs[7] = u64::from(layout.rw_start());
    regs[8] = size;
    Machine::new(regs, 0, gas, memory)
}

/// Counts the primes below r8 with a sieve of Eratosthenes over r8 octets
/// at r7.
pub fn sieve() -> Vec<u8> {
    let mut p = ProgramBuilder::new();
    let (outer, inner, next, done) = (p.new_label(), p.new_label(), p.new_label(), p.new_label());
    p.load_imm(R9, 0).load_imm(R10, 2).fallthrough();
    p.bind(outer);
    p.branch_ge_u(R10, R8, done)
        .add_64(R2, R7, R10)
        .load_ind_u8(R11, R2, 0)
        .branch_ne_imm(R11, 0, next)
        .add_imm_64(R9, R9, 1)
        .mul_64(R12, R10, R10)
        .fallthrough();
    p.bind(inner);
    p.branch_ge_u(R12, R8, next)
        .add_64(R2, R7, R12)
        .store_imm_ind_u8(R2, 0, 1)
        .add_64(R12, R12, R10)
        .jump(inner);
    p.bind(next);
    p.add_imm_64(R10, R10, 1).jump(outer);
    p.bind(done);
    p.jump_ind(R0, 0);
    p.build().expect("sieve builds")
}

/// Multiplier and increment of the generator that fills the sort's input.
pub const LCG: (u64, u64) = (6364136223846793005, 1442695040888963407);
/// The generator's seed.
pub const SEED: u64 = 12345;

/// Fills r8 u64 words at r7 from an LCG, insertion-sorts them (unsigned)
/// and returns Σ a[i]·(i+1).
pub fn insertion_sort() -> Vec<u8> {
    let mut p = ProgramBuilder::new();
    let [generate, generated, outer, inner, place, sorted, sum, done] =
        core::array::from_fn(|_| p.new_label());
    p.load_imm_64(R5, LCG.0)
        .load_imm_64(R6, LCG.1)
        .load_imm(R3, SEED as i32)
        .shlo_l_imm_64(R4, R8, 3)
        .add_64(R4, R4, R7)
        .move_reg(R10, R7)
        .fallthrough();
    p.bind(generate);
    p.branch_ge_u(R10, R4, generated)
        .mul_64(R3, R3, R5)
        .add_64(R3, R3, R6)
        .store_ind_u64(R3, R10, 0)
        .add_imm_64(R10, R10, 8)
        .jump(generate);
    p.bind(generated);
    p.add_imm_64(R10, R7, 8).fallthrough();
    p.bind(outer);
    p.branch_ge_u(R10, R4, sorted)
        .load_ind_u64(R11, R10, 0)
        .add_imm_64(R12, R10, -8)
        .fallthrough();
    p.bind(inner);
    p.branch_lt_u(R12, R7, place)
        .load_ind_u64(R3, R12, 0)
        .branch_ge_u(R11, R3, place)
        .store_ind_u64(R3, R12, 8)
        .add_imm_64(R12, R12, -8)
        .jump(inner);
    p.bind(place);
    p.store_ind_u64(R11, R12, 8)
        .add_imm_64(R10, R10, 8)
        .jump(outer);
    p.bind(sorted);
    p.load_imm(R9, 0)
        .move_reg(R10, R7)
        .load_imm(R2, 1)
        .fallthrough();
    p.bind(sum);
    p.branch_ge_u(R10, R4, done)
        .load_ind_u64(R3, R10, 0)
        .mul_64(R3, R3, R2)
        .add_64(R9, R9, R3)
        .add_imm_64(R2, R2, 1)
        .add_imm_64(R10, R10, 8)
        .jump(sum);
    p.bind(done);
    p.jump_ind(R0, 0);
    p.build().expect("insertion sort builds")
}

/// The number of primes below `n`, computed natively.
pub fn expected_primes(n: u64) -> u64 {
    let mut composite = vec![false; n as usize];
    let mut count = 0;
    for i in 2..n as usize {
        if !composite[i] {
            count += 1;
            let mut j = i * i;
            while j < n as usize {
                composite[j] = true;
                j += i;
            }
        }
    }
    count
}

/// The insertion sort's result, computed natively.
pub fn expected_sort_sum(count: u64) -> u64 {
    let mut x = SEED;
    let mut words: Vec<u64> = (0..count)
        .map(|_| {
            x = x.wrapping_mul(LCG.0).wrapping_add(LCG.1);
            x
        })
        .collect();
    words.sort_unstable();
    words.iter().enumerate().fold(0u64, |acc, (i, &w)| {
        acc.wrapping_add(w.wrapping_mul(i as u64 + 1))
    })
}
