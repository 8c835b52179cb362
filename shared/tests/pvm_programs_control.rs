//! Our own control-flow, memory, gas and host-call tests, written with the
//! builder. Expected states follow the Graypaper (appendix A) and the
//! departures documented in `capbox_shared::pvm` (gas charged per block on
//! entry, pc left on the faulting instruction, host calls resume).

#[path = "pvm_programs/harness.rs"]
mod harness;

use Opcode::*;
use Reg::*;
use capbox_shared::pvm::asm::{Args, ProgramBuilder, Reg, Target};
use capbox_shared::pvm::layout::StandardLayout;
use capbox_shared::pvm::{ArgFormat, Exit, Memory, Opcode};
use harness::{HALT, halt, read, run, run_with, test_memory};

const MAX: u64 = u64::MAX;

/// Branches on r7 (and r8 or an immediate); r9 = 2 when taken, 1 when not.
/// Checks exit, pc and gas on both paths.
fn branch_taken(op: Opcode, a: u64, b: i64) -> bool {
    let mut p = ProgramBuilder::new();
    let taken = p.new_label();
    let args = match op.format() {
        ArgFormat::TwoRegsOneOffset => Args::TwoRegsOneOffset {
            a: R7,
            b: R8,
            t: taken.into(),
        },
        _ => Args::OneRegImmOffset {
            a: R7,
            x: b as u64,
            t: taken.into(),
        },
    };
    p.push(op, args).unwrap();
    p.load_imm(R9, 1);
    halt(&mut p);
    p.bind(taken);
    p.load_imm(R9, 2);
    halt(&mut p);
    let r = run(&p, &[(R7, a), (R8, b as u64)]);
    assert_eq!(r.exit, Exit::Halt, "{op}");
    // The branch block (1) plus the two-instruction block taken after it.
    assert_eq!(r.gas_used(), 3, "{op}");
    let was_taken = r.reg(R9) == 2;
    let halting_jump = if was_taken { 4 } else { 2 };
    assert_eq!(r.machine.pc, r.item_pc(halting_jump), "{op}");
    was_taken
}

#[test]
fn branches_taken_and_not_taken_on_both_sides() {
    let cases: &[(Opcode, u64, i64, bool)] = &[
        (branch_eq, 5, 5, true),
        (branch_eq, 5, 6, false),
        (branch_ne, 5, 6, true),
        (branch_ne, 5, 5, false),
        (branch_lt_u, 1, -1, true),
        (branch_lt_u, MAX, 1, false),
        (branch_lt_u, 1, 1, false),
        (branch_lt_s, MAX, 1, true),
        (branch_lt_s, 1, -1, false),
        (branch_ge_u, MAX, 1, true),
        (branch_ge_u, 1, -1, false),
        (branch_ge_u, 1, 1, true),
        (branch_ge_s, 1, -1, true),
        (branch_ge_s, MAX, 1, false),
        (branch_ge_s, MAX, -1, true),
        (branch_eq_imm, MAX, -1, true),
        (branch_eq_imm, 0xffff_ffff, -1, false),
        (branch_ne_imm, 0xffff_ffff, -1, true),
        (branch_ne_imm, MAX, -1, false),
        (branch_lt_u_imm, 5, -1, true),
        (branch_lt_u_imm, MAX, -1, false),
        (branch_le_u_imm, MAX, -1, true),
        (branch_le_u_imm, 6, 5, false),
        (branch_ge_u_imm, MAX, -1, true),
        (branch_ge_u_imm, 5, -1, false),
        (branch_gt_u_imm, MAX, -2, true),
        (branch_gt_u_imm, 5, -1, false),
        (branch_lt_s_imm, (-2i64) as u64, -1, true),
        (branch_lt_s_imm, 5, -1, false),
        (branch_le_s_imm, MAX, -1, true),
        (branch_le_s_imm, 0, -1, false),
        (branch_ge_s_imm, 0, -1, true),
        (branch_ge_s_imm, (-2i64) as u64, -1, false),
        (branch_gt_s_imm, 0, -1, true),
        (branch_gt_s_imm, MAX, -1, false),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter(|&&(op, a, b, expected)| branch_taken(op, a, b) != expected)
        .map(|(op, a, b, expected)| format!("{op}({a:#x}, {b}): expected taken = {expected}"))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn jumps_to_non_block_starts_or_outside_the_code_panic() {
    for target in [
        Target::Absolute(1),
        Target::Absolute(1000),
        Target::Absolute(-3),
    ] {
        let mut p = ProgramBuilder::new();
        p.load_imm(R7, 1); // 3 octets: offset 1 is inside it
        p.branch_eq_imm(R7, 1, target);
        halt(&mut p);
        let r = run(&p, &[]);
        assert_eq!(r.exit, Exit::Panic, "{target:?}");
        assert_eq!(r.machine.pc, r.item_pc(1), "{target:?}: pc on the branch");
        assert_eq!(r.gas_used(), 2, "{target:?}");
        assert_eq!(r.reg(R7), 1);
    }
    // A target after a non-terminator is not a basic-block start either.
    let mut p = ProgramBuilder::new();
    let middle = p.new_label();
    p.jump(middle);
    p.load_imm(R7, 1);
    p.bind(middle);
    p.load_imm(R8, 2);
    halt(&mut p);
    let r = run(&p, &[]);
    assert_eq!((r.exit, r.machine.pc, r.gas_used()), (Exit::Panic, 0, 1));
}

#[test]
fn trap_fallthrough_and_load_imm_jump() {
    let mut p = ProgramBuilder::new();
    let there = p.new_label();
    p.fallthrough();
    p.load_imm_jump(R7, -5, there);
    p.trap();
    p.bind(there);
    p.trap();
    let r = run(&p, &[]);
    assert_eq!(r.exit, Exit::Panic);
    assert_eq!(r.machine.pc, r.item_pc(3));
    assert_eq!(r.reg(R7), (-5i64) as u64);
    assert_eq!(r.gas_used(), 3, "fallthrough, load_imm_jump, trap");
}

/// A program with a jump table `[@a, @b]` (`@a`: r9 = 1, `@b`: r9 = 2)
/// that jumps to `r7 + offset`; returns the run.
fn dynamic_jump(r7: u64, offset: i32) -> harness::Run {
    let mut p = ProgramBuilder::new();
    let a = p.new_label();
    let b = p.new_label();
    assert_eq!(p.jump_table_entry(a), 2);
    assert_eq!(p.jump_table_entry(b), 4);
    p.jump_ind(R7, offset);
    p.bind(a);
    p.load_imm(R9, 1);
    halt(&mut p);
    p.bind(b);
    p.load_imm(R9, 2);
    halt(&mut p);
    run(&p, &[(R7, r7)])
}

#[test]
fn dynamic_jumps_through_the_jump_table() {
    let r = dynamic_jump(2, 0);
    assert_eq!((r.exit, r.reg(R9), r.gas_used()), (Exit::Halt, 1, 3));
    let r = dynamic_jump(0, 4);
    assert_eq!((r.exit, r.reg(R9), r.gas_used()), (Exit::Halt, 2, 3));
    // The address is taken modulo 2^32.
    let r = dynamic_jump(0x1_0000_0002, 0);
    assert_eq!((r.exit, r.reg(R9)), (Exit::Halt, 1));
    let r = dynamic_jump(6, -2);
    assert_eq!((r.exit, r.reg(R9)), (Exit::Halt, 2));
    // Halt address, also reached through the offset and the wrap-around.
    for (r7, offset) in [(HALT, 0), (HALT - 8, 8), (HALT + (1 << 32), 0)] {
        let r = dynamic_jump(r7, offset);
        assert_eq!((r.exit, r.machine.pc, r.gas_used()), (Exit::Halt, 0, 1));
        assert_eq!(r.reg(R9), 0);
    }
    // Zero, misaligned and past the table all panic on the jump.
    for (r7, offset) in [(0, 0), (3, 0), (2, 1), (6, 0), (0x1000, 0), (MAX, -1)] {
        let r = dynamic_jump(r7, offset);
        assert_eq!(r.exit, Exit::Panic, "r7 = {r7:#x} + {offset}");
        assert_eq!((r.machine.pc, r.gas_used(), r.reg(R9)), (0, 1, 0));
    }
}

#[test]
fn jump_table_entry_that_is_not_a_block_start_panics() {
    let mut p = ProgramBuilder::new();
    let inside = p.new_label();
    p.jump_table_entry(inside);
    p.load_imm(R1, 1);
    p.jump_ind(R7, 0);
    p.load_imm(R2, 2);
    p.bind(inside); // follows a non-terminator
    p.load_imm(R3, 3);
    halt(&mut p);
    let r = run(&p, &[(R7, 2)]);
    assert_eq!(
        (r.exit, r.machine.pc, r.gas_used()),
        (Exit::Panic, r.item_pc(1), 2)
    );
    assert_eq!((r.reg(R1), r.reg(R3)), (1, 0));
}

#[test]
fn load_imm_jump_ind_reads_the_base_before_writing() {
    let mut p = ProgramBuilder::new();
    let target = p.new_label();
    p.jump_table_entry(target);
    p.load_imm_jump_ind(R7, R7, 99, 0); // jumps to old r7 = 2, then r7 = 99
    p.trap();
    p.bind(target);
    halt(&mut p);
    let r = run(&p, &[(R7, 2)]);
    assert_eq!((r.exit, r.reg(R7), r.gas_used()), (Exit::Halt, 99, 2));
    assert_eq!(r.machine.pc, r.item_pc(2));
    // An invalid address still writes the register (then panics).
    let r = run(&p, &[(R7, 5)]);
    assert_eq!((r.exit, r.reg(R7), r.machine.pc), (Exit::Panic, 99, 0));
}

#[test]
fn loads_and_stores_of_every_width() {
    let mut p = ProgramBuilder::new();
    p.load_imm_64(R7, 0x8081_8283_8485_8687)
        .store_u64(R7, 0x2_0000u32)
        .load_u8(R1, 0x2_0000u32)
        .load_i8(R2, 0x2_0000u32)
        .load_u16(R3, 0x2_0000u32)
        .load_i16(R4, 0x2_0000u32)
        .load_u32(R5, 0x2_0000u32)
        .load_i32(R6, 0x2_0000u32)
        .load_u64(R8, 0x2_0000u32)
        .load_imm(R10, 0x2_0000)
        .load_ind_u8(R11, R10, 7)
        .load_ind_i8(R12, R10, 7);
    halt(&mut p);
    let r = run_with(&p, &[], 100, test_memory());
    assert_eq!(r.exit, Exit::Halt);
    assert_eq!(r.gas_used(), 13);
    assert_eq!(
        [r.reg(R1), r.reg(R2), r.reg(R3), r.reg(R4)],
        [0x87, 0xffff_ffff_ffff_ff87, 0x8687, 0xffff_ffff_ffff_8687]
    );
    assert_eq!(
        [r.reg(R5), r.reg(R6), r.reg(R8)],
        [0x8485_8687, 0xffff_ffff_8485_8687, 0x8081_8283_8485_8687]
    );
    assert_eq!([r.reg(R11), r.reg(R12)], [0x80, 0xffff_ffff_ffff_ff80]);

    let mut p = ProgramBuilder::new();
    p.load_imm(R10, 0x2_0000)
        .load_imm_64(R7, 0x1122_3344_5566_7788)
        .load_ind_u16(R1, R10, 0x102)
        .load_ind_i16(R2, R10, 0x102)
        .load_ind_u32(R3, R10, 0x100)
        .load_ind_i32(R4, R10, 0x100)
        .load_ind_u64(R5, R10, 0x100)
        .store_ind_u8(R7, R10, 0)
        .store_ind_u16(R7, R10, 8)
        .store_ind_u32(R7, R10, 16)
        .store_ind_u64(R7, R10, 24)
        .store_u8(R7, 0x2_0020u32)
        .store_u16(R7, 0x2_0028u32)
        .store_u32(R7, 0x2_0030u32)
        .store_imm_u8(0x2_0040u32, -1)
        .store_imm_u16(0x2_0048u32, -2)
        .store_imm_u32(0x2_0050u32, 0x8000_0000u32)
        .store_imm_u64(0x2_0058u32, -3)
        .store_imm_ind_u8(R10, 0x60, 0x1ff)
        .store_imm_ind_u16(R10, 0x68, 0x12345)
        .store_imm_ind_u32(R10, 0x70, -1)
        .store_imm_ind_u64(R10, 0x78, i32::MIN);
    halt(&mut p);
    let mut memory = test_memory();
    memory
        .initialize(0x2_0100, &[0x01, 0x02, 0x03, 0x84, 0x05, 0x06, 0x07, 0x88])
        .unwrap();
    let r = run_with(&p, &[], 100, memory);
    assert_eq!((r.exit, r.gas_used()), (Exit::Halt, 23));
    assert_eq!([r.reg(R1), r.reg(R2)], [0x8403, 0xffff_ffff_ffff_8403]);
    assert_eq!([r.reg(R3), r.reg(R4)], [0x8403_0201, 0xffff_ffff_8403_0201]);
    assert_eq!(r.reg(R5), 0x8807_0605_8403_0201);
    let octets = read(&r, 0x2_0000, 0x80);
    let expected: [(usize, &[u8]); 15] = [
        (0x00, &[0x88, 0]),
        (0x08, &[0x88, 0x77, 0]),
        (0x10, &[0x88, 0x77, 0x66, 0x55, 0]),
        (0x18, &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]),
        (0x20, &[0x88, 0]),
        (0x28, &[0x88, 0x77, 0]),
        (0x30, &[0x88, 0x77, 0x66, 0x55, 0]),
        (0x40, &[0xff, 0]),
        (0x48, &[0xfe, 0xff, 0]),
        (0x50, &[0, 0, 0, 0x80, 0]),
        (0x58, &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (0x60, &[0xff, 0]),
        (0x68, &[0x45, 0x23, 0]),
        (0x70, &[0xff, 0xff, 0xff, 0xff, 0]),
        (0x78, &[0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff]),
    ];
    for (offset, bytes) in expected {
        assert_eq!(
            &octets[offset..offset + bytes.len()],
            bytes,
            "at {offset:#x}"
        );
    }
}

/// `r8 = 7; <access>; r9 = 9; halt` — one block: the access faults after
/// the whole block was charged, and nothing after it runs.
fn faulting(access: impl FnOnce(&mut ProgramBuilder)) -> harness::Run {
    let mut p = ProgramBuilder::new();
    p.load_imm(R8, 7);
    access(&mut p);
    p.load_imm(R9, 9);
    halt(&mut p);
    let mut memory = test_memory();
    memory.initialize(0x1_0000, &[0x5a]).unwrap();
    run_with(&p, &[(R7, 0x2_0ffe)], 100, memory)
}

#[test]
fn page_faults_report_the_lowest_inaccessible_page() {
    let cases: Vec<(&str, harness::Run, Exit)> = vec![
        (
            "write to read-only",
            faulting(|p| {
                p.store_u8(R8, 0x1_0000u32);
            }),
            Exit::PageFault(0x1_0000),
        ),
        (
            "read unmapped",
            faulting(|p| {
                p.load_u32(R1, 0x3_0000u32);
            }),
            Exit::PageFault(0x3_0000),
        ),
        (
            "read past the end of the writable pages",
            faulting(|p| {
                p.load_ind_u64(R1, R7, 0x2000); // the read-only page is readable
            }),
            Exit::PageFault(0x2_3000),
        ),
        (
            "write straddling into read-only",
            faulting(|p| {
                p.store_ind_u32(R8, R7, 0x1000);
            }),
            Exit::PageFault(0x2_2000),
        ),
        (
            // The first inaccessible octet in access order decides
            // (`capbox_shared::pvm` note 6): 0xffff_ffff, not the wrapped 0.
            "write wrapping past 2^32",
            faulting(|p| {
                p.store_imm_u16(0xffff_ffffu32, 1);
            }),
            Exit::PageFault(0xffff_f000),
        ),
        (
            "below 64 KiB",
            faulting(|p| {
                p.load_u8(R1, 0xffffu32);
            }),
            Exit::Panic,
        ),
    ];
    for (what, r, exit) in cases {
        assert_eq!(r.exit, exit, "{what}");
        assert_eq!(r.machine.pc, r.item_pc(1), "{what}: pc on the access");
        assert_eq!(r.gas_used(), 4, "{what}: the whole block is charged");
        assert_eq!((r.reg(R8), r.reg(R9), r.reg(R1)), (7, 0, 0), "{what}");
    }
    // The read-only page kept its contents.
    let r = faulting(|p| {
        p.store_u8(R8, 0x1_0000u32);
    });
    assert_eq!(read(&r, 0x1_0000, 1), [0x5a]);
}

/// Ten increments of r7 then halt (one block of 11 instructions).
fn counting_block() -> ProgramBuilder {
    let mut p = ProgramBuilder::new();
    for _ in 0..10 {
        p.add_imm_64(R7, R7, 1);
    }
    halt(&mut p);
    p
}

#[test]
fn gas_exhaustion_in_the_middle_of_a_block() {
    let p = counting_block();
    let r = run_with(&p, &[], 4, Memory::new());
    assert_eq!(r.exit, Exit::OutOfGas);
    assert_eq!(r.reg(R7), 4, "four instructions were paid for and ran");
    assert_eq!(
        r.machine.pc,
        r.item_pc(4),
        "pc on the first unpaid instruction"
    );
    assert_eq!(r.machine.gas, -1);

    let r = run_with(&p, &[], 0, Memory::new());
    assert_eq!(
        (r.exit, r.reg(R7), r.machine.pc, r.machine.gas),
        (Exit::OutOfGas, 0, 0, -1)
    );

    // Exactly enough gas halts with none left; one less stops on the jump.
    let r = run_with(&p, &[], 11, Memory::new());
    assert_eq!((r.exit, r.reg(R7), r.machine.gas), (Exit::Halt, 10, 0));
    let r = run_with(&p, &[], 10, Memory::new());
    assert_eq!((r.exit, r.reg(R7), r.machine.gas), (Exit::OutOfGas, 10, -1));
    assert_eq!(r.machine.pc, r.item_pc(10));
}

#[test]
fn gas_runs_out_on_entering_a_later_block() {
    // Block 1: r7 = 1, jump @next (2). Block 2: three instructions + halt (4).
    let mut p = ProgramBuilder::new();
    let next = p.new_label();
    p.load_imm(R7, 1).jump(next);
    p.bind(next);
    p.load_imm(R8, 1).load_imm(R9, 1).load_imm(R10, 1);
    halt(&mut p);
    let r = run_with(&p, &[], 4, Memory::new());
    assert_eq!(r.exit, Exit::OutOfGas);
    assert_eq!(
        [r.reg(R7), r.reg(R8), r.reg(R9), r.reg(R10)],
        [1, 1, 1, 0],
        "two of block 2's instructions ran"
    );
    assert_eq!((r.machine.pc, r.machine.gas), (r.item_pc(4), -1));
    let r = run_with(&p, &[], 6, Memory::new());
    assert_eq!((r.exit, r.machine.gas), (Exit::Halt, 0));
}

#[test]
fn host_call_exits_and_resumes() {
    let mut p = ProgramBuilder::new();
    p.load_imm(R7, 1).ecalli(42u32).add_imm_64(R7, R7, 10);
    p.ecalli(0xffff_ffffu32);
    halt(&mut p);
    let mut r = run_with(&p, &[], 100, Memory::new());
    assert_eq!(r.exit, Exit::HostCall(42));
    assert_eq!(r.machine.pc, r.item_pc(2), "pc past the ecalli");
    // One basic block through both ecallis: all five instructions are
    // charged on entry, nothing on resumption (departure 12).
    assert_eq!((r.reg(R7), r.gas_used()), (1, 5));
    r.machine.regs[7] = 5; // the host's answer
    assert_eq!(r.resume(), Exit::HostCall(u32::MAX));
    assert_eq!(
        (r.reg(R7), r.machine.pc, r.gas_used()),
        (15, r.item_pc(4), 5)
    );
    assert_eq!(r.resume(), Exit::Halt);
    assert_eq!((r.machine.pc, r.gas_used()), (r.item_pc(4), 5));
}

#[test]
fn sbrk_grows_the_heap_of_a_standard_layout() {
    let layout = StandardLayout::new(0, 0, 1, 0x1000, 0).unwrap();
    let memory = Memory::standard(&layout, &[], &[], &[]).unwrap();
    let base = u64::from(layout.heap_base());
    let mut p = ProgramBuilder::new();
    p.load_imm(R1, 0)
        .sbrk(R2, R1) // current break
        .load_imm(R1, 100)
        .sbrk(R3, R1) // hands out 100 octets
        .sbrk(R4, R0) // r0 holds the halt address: far too much
        .store_ind_u8(R1, R3, 99);
    halt(&mut p);
    let r = run_with(&p, &[(R0, HALT)], 100, memory);
    assert_eq!((r.exit, r.gas_used()), (Exit::Halt, 7));
    assert_eq!([r.reg(R2), r.reg(R3)], [base + 0x1000, base + 0x1000]);
    assert_eq!(r.reg(R4), 0, "a request reaching the stack fails with 0");
    assert_eq!(read(&r, base as u32 + 0x1000 + 99, 1), [100]);
}

#[path = "pvm_programs/workloads.rs"]
mod workloads;

/// Runs a workload on a standard layout with `buffer` zeroed octets.
fn run_workload(blob: &[u8], buffer: u32, size: u64) -> (Exit, u64, i64) {
    let layout = StandardLayout::new(0, buffer, 0, 0x1000, 0).unwrap();
    let memory = Memory::standard(&layout, &[], &vec![0; buffer as usize], &[]).unwrap();
    let program = capbox_shared::pvm::Program::from_blob(blob).unwrap();
    let mut regs = layout.initial_registers();
    regs[7] = u64::from(layout.rw_start());
    regs[8] = size;
    let mut machine = capbox_shared::pvm::Machine::new(regs, 0, 1 << 40, memory);
    let exit = machine.run(&program);
    (exit, machine.regs[9], (1 << 40) - machine.gas)
}

#[test]
fn benchmark_workloads_compute_the_right_answers() {
    let (exit, primes, gas) = run_workload(&workloads::sieve(), 10_000, 10_000);
    assert_eq!(
        (exit, primes),
        (Exit::Halt, workloads::expected_primes(10_000))
    );
    assert_eq!(primes, 1229);
    assert!(gas > 10_000, "gas {gas}");
    let (exit, sum, _) = run_workload(&workloads::insertion_sort(), 200 * 8, 200);
    assert_eq!((exit, sum), (Exit::Halt, workloads::expected_sort_sum(200)));
}

#[test]
fn sbrk_works_without_read_write_data_or_heap_pages() {
    let layout = StandardLayout::new(0, 0, 0, 0x1000, 0).unwrap();
    let memory = Memory::standard(&layout, &[], &[], &[]).unwrap();
    let base = u64::from(layout.heap_base());
    let mut p = ProgramBuilder::new();
    p.load_imm(R1, 16)
        .sbrk(R2, R1)
        .sbrk(R3, R1)
        .store_ind_u64(R1, R3, 8);
    halt(&mut p);
    let r = run_with(&p, &[], 100, memory);
    assert_eq!(r.exit, Exit::Halt);
    assert_eq!([r.reg(R2), r.reg(R3)], [base, base + 16]);
    assert_eq!(read(&r, base as u32 + 24, 8), 16u64.to_le_bytes());
}
