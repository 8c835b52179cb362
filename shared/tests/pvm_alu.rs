//! Instructions the w3f vectors do not exercise, checked against values
//! worked out by hand from the Graypaper's definitions.

mod pvm_support;

use capbox_shared::pvm::{Exit, Opcode::*};
use capbox_shared::pvm::{Machine, Memory, Opcode, Program, StandardLayout};
use pvm_support::*;

/// `r9 = r7 op r8`.
fn alu3(op: Opcode, a: u64, b: u64) -> u64 {
    let mut regs = [0; 13];
    regs[7] = a;
    regs[8] = b;
    regs[9] = 0x5555;
    let (exit, m) = run(&[three_regs(op, 9, 7, 8), no_args(trap)], regs, 10);
    assert_eq!(exit, Exit::Panic);
    m.regs[9]
}

/// `r9 = op(r7)`.
fn alu2(op: Opcode, a: u64) -> u64 {
    let mut regs = [0; 13];
    regs[7] = a;
    let (_, m) = run(&[two_regs(op, 9, 7), no_args(trap)], regs, 10);
    m.regs[9]
}

/// `r9 = op(r8, imm)`, with r9 initially `init`.
fn alu_imm(op: Opcode, b: u64, imm: i64, init: u64) -> u64 {
    let mut regs = [0; 13];
    regs[8] = b;
    regs[9] = init;
    let (_, m) = run(&[two_regs_imm(op, 9, 8, imm), no_args(trap)], regs, 10);
    m.regs[9]
}

#[test]
fn bit_counting() {
    assert_eq!(alu2(count_set_bits_64, u64::MAX), 64);
    assert_eq!(alu2(count_set_bits_32, 0xFFFF_FFFF_0000_0101), 2);
    assert_eq!(alu2(leading_zero_bits_64, 1), 63);
    assert_eq!(alu2(leading_zero_bits_64, 0), 64);
    assert_eq!(alu2(leading_zero_bits_32, 0xFFFF_FFFF_0000_8000), 16);
    assert_eq!(alu2(leading_zero_bits_32, 0xFFFF_FFFF_0000_0000), 32);
    assert_eq!(alu2(trailing_zero_bits_64, 0x100), 8);
    assert_eq!(alu2(trailing_zero_bits_64, 0), 64);
    assert_eq!(alu2(trailing_zero_bits_32, 0x1_0000_0000), 32);
}

#[test]
fn extensions_and_byte_reversal() {
    assert_eq!(alu2(sign_extend_8, 0x1234_5680), 0xFFFF_FFFF_FFFF_FF80);
    assert_eq!(alu2(sign_extend_8, 0x7F), 0x7F);
    assert_eq!(alu2(sign_extend_16, 0xABCD_8001), 0xFFFF_FFFF_FFFF_8001);
    assert_eq!(alu2(zero_extend_16, 0xFFFF_FFFF_FFFF_8001), 0x8001);
    assert_eq!(
        alu2(reverse_bytes, 0x0102_0304_0506_0708),
        0x0807_0605_0403_0201
    );
    assert_eq!(alu2(move_reg, 0xDEAD), 0xDEAD);
}

#[test]
fn rotations() {
    let x = 0x8000_0000_0000_0001u64;
    assert_eq!(alu3(rot_l_64, x, 1), 0x3);
    assert_eq!(alu3(rot_l_64, x, 65), 0x3, "amount mod 64");
    assert_eq!(alu3(rot_r_64, x, 1), 0xC000_0000_0000_0000);
    assert_eq!(alu3(rot_l_32, 0xFFFF_FFFF_8000_0001, 1), 3);
    assert_eq!(
        alu3(rot_r_32, 0x3, 1),
        0xFFFF_FFFF_8000_0001,
        "sign-extended"
    );
    assert_eq!(alu_imm(rot_r_64_imm, 0x10, 4, 0), 1);
    assert_eq!(alu_imm(rot_r_64_imm, 1, 1, 0), 1 << 63);
    assert_eq!(alu_imm(rot_r_32_imm, 1, 1, 0), 0xFFFF_FFFF_8000_0000);
    // The *_alt forms rotate the immediate by the register.
    assert_eq!(alu_imm(rot_r_64_imm_alt, 4, 0x10, 0), 1);
    assert_eq!(alu_imm(rot_r_32_imm_alt, 33, 2, 0), 1, "amount mod 32");
}

#[test]
fn multiplication_upper_halves() {
    assert_eq!(alu3(mul_upper_u_u, u64::MAX, u64::MAX), u64::MAX - 1);
    assert_eq!(alu3(mul_upper_s_s, u64::MAX, u64::MAX), 0, "(-1)(-1) = 1");
    assert_eq!(
        alu3(mul_upper_s_s, (-2i64) as u64, 3),
        u64::MAX,
        "-6 >> 64 = -1"
    );
    assert_eq!(
        alu3(mul_upper_s_u, u64::MAX, u64::MAX),
        u64::MAX,
        "-1 · (2^64-1)"
    );
    assert_eq!(alu3(mul_upper_s_u, 2, u64::MAX), 1);
}

#[test]
fn logic_and_min_max() {
    let (a, b) = (0b1100u64, 0b1010u64);
    assert_eq!(alu3(and_inv, a, b), 0b0100);
    assert_eq!(alu3(or_inv, a, b), !0b0010);
    assert_eq!(alu3(xnor, a, b), !0b0110);
    let neg = (-5i64) as u64;
    assert_eq!(alu3(max, neg, 3), 3);
    assert_eq!(alu3(min, neg, 3), neg);
    assert_eq!(alu3(max_u, neg, 3), neg);
    assert_eq!(alu3(min_u, neg, 3), 3);
}

#[test]
fn conditional_moves() {
    assert_eq!(alu3(cmov_nz, 7, 1), 7);
    assert_eq!(alu3(cmov_nz, 7, 0), 0x5555, "unchanged");
    assert_eq!(alu3(cmov_iz, 7, 0), 7);
    assert_eq!(alu_imm(cmov_nz_imm, 1, -3, 9), (-3i64) as u64);
    assert_eq!(alu_imm(cmov_nz_imm, 0, -3, 9), 9);
    assert_eq!(alu_imm(cmov_iz_imm, 0, 4, 9), 4);
}

#[test]
fn division_edge_cases() {
    let min64 = i64::MIN as u64;
    assert_eq!(alu3(div_s_64, min64, u64::MAX), min64);
    assert_eq!(alu3(rem_s_64, min64, u64::MAX), 0);
    assert_eq!(
        alu3(rem_s_64, (-7i64) as u64, 2),
        (-1i64) as u64,
        "sign of the dividend"
    );
    assert_eq!(alu3(rem_s_64, 7, (-2i64) as u64), 1);
    let min32 = 0x8000_0000u64;
    assert_eq!(alu3(div_s_32, min32, u64::MAX), 0xFFFF_FFFF_8000_0000);
    assert_eq!(alu3(rem_s_32, min32, u64::MAX), 0);
    assert_eq!(alu3(rem_s_32, (-7i64) as u64, 0), (-7i64) as u64);
    assert_eq!(
        alu3(div_u_32, 7, 0x1_0000_0000),
        u64::MAX,
        "divisor is 0 mod 2^32"
    );
}

#[test]
fn ecalli_reports_its_immediate() {
    let (exit, m) = run(
        &[pvm_support::ecalli(0xFFFF_FFFF), no_args(trap)],
        [0; 13],
        10,
    );
    assert_eq!(exit, Exit::HostCall(0xFFFF_FFFF));
    assert_eq!(m.pc, 5);
}

#[test]
fn sbrk_grows_the_standard_heap() {
    let layout = StandardLayout::new(0, 10, 1, 0x1000, 0).unwrap();
    let memory = Memory::standard(&layout, &[], &[7; 10], &[]).unwrap();
    let heap_top = u64::from(layout.rw_start() + layout.rw_mapped());
    let code = vec![
        two_regs(sbrk, 9, 7),                                      // r9 = sbrk(r7)
        two_regs(sbrk, 10, 8),                                     // r10 = sbrk(0)
        two_regs_imm(store_ind_u8, 11, 10, -1),                    // [r10 - 1] = r11
        two_regs_imm(load_ind_u8, 12, 9, 0),                       // r12 = [r9]
        reg_imm(Opcode::load_u8, 6, layout.rw_start() as i64 + 9), // r6 = rw data
        no_args(trap),
    ];
    let program = program(&code);
    let mut regs = layout.initial_registers();
    regs[7] = 5000;
    regs[11] = 0xAB;
    let mut m = Machine::new(regs, 0, 100, memory);
    assert_eq!(m.run(&program), Exit::Panic);
    assert_eq!(m.regs[9], heap_top);
    assert_eq!(m.regs[10], heap_top + 5000);
    assert_eq!(m.regs[6], 7);
    let mut byte = [0];
    m.memory.read((heap_top + 4999) as u32, &mut byte).unwrap();
    assert_eq!(byte, [0xAB]);
    // Growing into the stack fails with 0.
    assert_eq!(m.memory.sbrk(u64::from(u32::MAX)), 0);
    // Memory without a heap.
    assert_eq!(Memory::new().sbrk(16), 0);
}

#[test]
fn standard_memory_has_the_layout_access_rights() {
    use capbox_shared::pvm::Access;
    let layout = StandardLayout::new(5, 3, 0, 100, 4).unwrap();
    let m = Memory::standard(&layout, &[1; 5], &[2; 3], &[3; 4]).unwrap();
    assert_eq!(m.access(layout.ro_start()), Some(Access::Read));
    assert_eq!(m.access(layout.rw_start()), Some(Access::Write));
    assert_eq!(m.access(layout.stack_end() - 1), Some(Access::Write));
    assert_eq!(m.access(layout.stack_end()), None);
    assert_eq!(m.access(layout.args_start() + 3), Some(Access::Read));
    assert_eq!(m.access(layout.args_start() + 0x1000), None);
    let mut out = [0; 4];
    m.read(layout.args_start(), &mut out).unwrap();
    assert_eq!(out, [3; 4]);
    assert_eq!(m.dirty_pages().count(), 0);
    // Data longer than declared is refused.
    assert!(Memory::standard(&layout, &[1; 6], &[2; 3], &[3; 4]).is_err());
    let _ = Program::from_blob(&[0, 0, 0]).unwrap();
}

#[test]
fn sbrk_starts_an_empty_heap() {
    let layout = StandardLayout::new(0, 0, 0, 0x1000, 0).unwrap();
    let mut memory = Memory::standard(&layout, &[], &[], &[]).unwrap();
    assert_eq!(memory.access(layout.rw_start()), None);
    assert_eq!(memory.sbrk(0), u64::from(layout.rw_start()));
    assert_eq!(memory.sbrk(10), u64::from(layout.rw_start()));
    assert_eq!(memory.sbrk(0), u64::from(layout.rw_start()) + 10);
    memory.write(layout.rw_start() + 0xFFF, &[1]).unwrap();
    assert!(memory.write(layout.rw_start() + 0x1000, &[1]).is_err());
    let dirty: Vec<u32> = memory.dirty_pages().map(|(page, _)| page).collect();
    assert_eq!(dirty, [layout.rw_start()]);
}

#[test]
fn host_reads_and_writes_span_regions() {
    use capbox_shared::pvm::{Access, MemoryError, PageMapEntry};
    let entry = |address, access| PageMapEntry {
        address,
        length: 0x2000,
        access,
    };
    let mut memory = Memory::from_page_map(&[
        entry(0x20000, Access::Write),
        entry(0x22000, Access::Write),
        entry(0x24000, Access::Read),
    ])
    .unwrap();
    let data: Vec<u8> = (0..0x3000u32).map(|i| i as u8).collect();
    memory.write(0x20800, &data).unwrap();
    let mut back = vec![0; data.len()];
    memory.read(0x20800, &mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(memory.dirty_pages().count(), 4);
    // Into the read-only region: fails at its first page, writes nothing.
    assert_eq!(
        memory.write(0x23800, &data),
        Err(MemoryError::PageFault { address: 0x24000 })
    );
    let mut byte = [9];
    memory.read(0x24000, &mut byte).unwrap();
    assert_eq!(byte, [0]);
    assert_eq!(
        memory.read(0x25800, &mut back),
        Err(MemoryError::PageFault { address: 0x26000 })
    );
    assert!(memory.is_readable(0x20000, 0x6000));
    assert!(!memory.is_readable(0x20000, 0x6001));
    assert!(!memory.is_readable(0x100, 1));
}

#[test]
fn sbrk_never_grows_into_another_region() {
    use capbox_shared::pvm::Access;
    let layout = StandardLayout::new(0, 0x1000, 0, 0x1000, 0).unwrap();
    let mut memory = Memory::standard(&layout, &[], &[0; 0x1000], &[]).unwrap();
    let top = layout.rw_start() + 0x1000;
    assert_eq!(memory.heap_top(), Some(top));
    memory.map(top + 0x2000, 0x1000, Access::Read).unwrap();
    assert_eq!(memory.sbrk(0x2000), u64::from(top), "fits exactly");
    assert_eq!(memory.sbrk(1), 0, "would reach the mapped region");
    assert_eq!(memory.heap_top(), Some(top + 0x2000));
    assert_eq!(memory.access(top + 0x1FFF), Some(Access::Write));
    assert_eq!(memory.access(top + 0x2000), Some(Access::Read));
}
