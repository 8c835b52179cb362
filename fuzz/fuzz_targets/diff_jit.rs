//! Differential fuzzing of the compiled code (`pvm::jit`) against the
//! interpreter on *raw* programs (`raw_program`: the input's octets become
//! the registers, a small jump table, the code and its bitmask). The first
//! three input octets choose the gas (2000, or 0..40 to run out mid-block)
//! and the slice (none, or 1..20 gas per `run_sliced`); the rest makes the
//! program and fills the read-only page. The same program, decoded once and
//! cloned, runs interpreted and compiled (`compile_native`) from identical
//! machines, host calls resumed (up to five exits) and `Exit::Slice`
//! continued: at every exit both must agree on the exit, pc, gas,
//! registers, memory (the read-only page and the two writable pages) and
//! the dirty pages (`shared/tests/jit_support`). A failure names the first
//! difference and lists the program.
#![no_main]

#[path = "../../shared/tests/raw_program/mod.rs"]
#[allow(dead_code)] // Shared with other harnesses.
mod raw_program;
#[path = "../../shared/tests/jit_support/mod.rs"]
mod jit_support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&[g, v, s], data)) = input.split_first_chunk::<3>() else {
        return;
    };
    let gas: i64 = if g & 1 == 0 { 2_000 } else { i64::from(v % 40) };
    let slice: u64 = if s & 1 == 0 {
        u64::MAX
    } else {
        1 + u64::from(s >> 1) % 19
    };
    jit_support::raw_case(data, gas, slice);
});
