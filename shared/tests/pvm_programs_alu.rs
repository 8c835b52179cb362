//! Our own instruction tests (arithmetic, logic, shifts, comparisons, bit
//! operations), written with the builder. Expected values are worked out
//! by hand from the Graypaper's definitions (appendix A.5), not taken from
//! the interpreter. Every run also checks the exit, the final pc and the
//! gas used.

#[path = "pvm_programs/harness.rs"]
mod harness;

use Opcode::*;
use Reg::*;
use capbox_shared::pvm::Exit;
use capbox_shared::pvm::asm::{Args, ProgramBuilder, Reg};
use capbox_shared::pvm::{ArgFormat, Opcode};
use harness::{halt, run};

const MAX: u64 = u64::MAX;
const MIN64: u64 = 1 << 63;
/// The initial value of the destination register, to show it is (or is
/// not) overwritten.
const UNTOUCHED: u64 = 0xAAAA;

/// A 64-bit pattern from a signed value.
const fn n(value: i64) -> u64 {
    value as u64
}

/// `r9 = r7 op r8` with r7 = `a`, r8 = `b`; checks halt, pc and gas.
fn three_regs(op: Opcode, a: u64, b: u64) -> u64 {
    assert_eq!(op.format(), ArgFormat::ThreeRegs);
    let mut p = ProgramBuilder::new();
    p.push(
        op,
        Args::ThreeRegs {
            d: R9,
            a: R7,
            b: R8,
        },
    )
    .unwrap();
    halt(&mut p);
    let r = run(&p, &[(R7, a), (R8, b), (R9, UNTOUCHED)]);
    assert_eq!(r.exit, Exit::Halt, "{op}");
    assert_eq!(r.machine.pc, r.item_pc(1), "{op}: pc at the halting jump");
    assert_eq!(r.gas_used(), 2, "{op}");
    assert_eq!((r.reg(R7), r.reg(R8)), (a, b), "{op}: sources unchanged");
    r.reg(R9)
}

/// `r9 = r7 op imm` (r_A = r9, r_B = r7).
fn reg_imm(op: Opcode, b: u64, imm: i32) -> u64 {
    assert_eq!(op.format(), ArgFormat::TwoRegsOneImm);
    let mut p = ProgramBuilder::new();
    p.push(
        op,
        Args::TwoRegsOneImm {
            a: R9,
            b: R7,
            x: n(i64::from(imm)),
        },
    )
    .unwrap();
    halt(&mut p);
    let r = run(&p, &[(R7, b), (R9, UNTOUCHED)]);
    assert_eq!(r.exit, Exit::Halt, "{op}");
    assert_eq!(r.gas_used(), 2, "{op}");
    r.reg(R9)
}

/// `r9 = op(r7)`.
fn two_regs(op: Opcode, a: u64) -> u64 {
    assert_eq!(op.format(), ArgFormat::TwoRegs);
    let mut p = ProgramBuilder::new();
    p.push(op, Args::TwoRegs { d: R9, a: R7 }).unwrap();
    halt(&mut p);
    let r = run(&p, &[(R7, a), (R9, UNTOUCHED)]);
    assert_eq!(r.exit, Exit::Halt, "{op}");
    assert_eq!(r.gas_used(), 2, "{op}");
    r.reg(R9)
}

fn check(cases: &[(Opcode, u64, u64, u64)], f: fn(Opcode, u64, u64) -> u64) {
    let mut failures = Vec::new();
    for &(op, a, b, expected) in cases {
        let got = f(op, a, b);
        if got != expected {
            failures.push(format!(
                "{op}({a:#x}, {b:#x}) = {got:#x}, expected {expected:#x}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn arithmetic_32_bit_sign_extends_and_truncates() {
    check(
        &[
            (add_32, 0x7fff_ffff, 1, 0xffff_ffff_8000_0000),
            (add_32, 0xffff_ffff_0000_0001, 0x1_0000_0001, 2),
            (add_32, MAX, 1, 0),
            (sub_32, 0, 1, MAX),
            (sub_32, 0x8000_0000, 1, 0x7fff_ffff),
            (sub_32, 0x1_0000_0000, 0, 0),
            (mul_32, 0x1_0000, 0x1_0000, 0),
            (mul_32, 0x8000, 0x1_0000, 0xffff_ffff_8000_0000),
            (mul_32, n(-3), 5, n(-15)),
        ],
        three_regs,
    );
}

#[test]
fn division_by_zero_and_signed_overflow() {
    check(
        &[
            (div_u_32, 7, 0, MAX),
            (div_u_32, 7, 0x1_0000_0000, MAX), // divisor's low half is zero
            (div_u_32, 0xffff_ffff, 2, 0x7fff_ffff),
            (div_u_32, 0x1_0000_000a, 3, 3),
            (div_u_32, 0xffff_fffe, 1, n(-2)),
            (div_s_32, 7, 0, MAX),
            (div_s_32, 0x8000_0000, 0xffff_ffff, 0xffff_ffff_8000_0000),
            (div_s_32, n(-7), 2, n(-3)),
            (div_s_32, 7, n(-2), n(-3)),
            (rem_u_32, 7, 0, 7),
            (rem_u_32, 0x1_8000_0000, 0, 0xffff_ffff_8000_0000),
            (rem_u_32, 10, 3, 1),
            (rem_s_32, n(-7), 0, n(-7)),
            (rem_s_32, 0x8000_0000, n(-1), 0),
            (rem_s_32, n(-7), 2, n(-1)),
            (rem_s_32, 7, n(-2), 1),
            (div_u_64, 5, 0, MAX),
            (div_u_64, MAX, 2, MAX >> 1),
            (div_s_64, MIN64, n(-1), MIN64),
            (div_s_64, 5, 0, MAX),
            (div_s_64, n(-7), 2, n(-3)),
            (rem_u_64, 5, 0, 5),
            (rem_u_64, MAX, 10, 5),
            (rem_s_64, MIN64, n(-1), 0),
            (rem_s_64, n(-7), 0, n(-7)),
            (rem_s_64, n(-7), 2, n(-1)),
            (rem_s_64, 7, n(-2), 1),
        ],
        three_regs,
    );
}

#[test]
fn shifts_and_rotates_take_the_amount_modulo_the_width() {
    check(
        &[
            (shlo_l_32, 1, 31, 0xffff_ffff_8000_0000),
            (shlo_l_32, 1, 32, 1),
            (shlo_l_32, 1, 33, 2),
            (shlo_r_32, 0x8000_0000, 31, 1),
            (shlo_r_32, 0xffff_ffff_8000_0000, 32, 0xffff_ffff_8000_0000),
            (shlo_r_32, 0x8000_0000, 1, 0x4000_0000),
            (shar_r_32, 0x8000_0000, 31, MAX),
            (shar_r_32, 0x8000_0000, 63, MAX),
            (shar_r_32, 0x7fff_ffff, 36, 0x07ff_ffff),
            (shlo_l_64, 1, 63, MIN64),
            (shlo_l_64, 1, 64, 1),
            (shlo_l_64, 1, 65, 2),
            (shlo_r_64, MIN64, 63, 1),
            (shlo_r_64, MIN64, 64, MIN64),
            (shar_r_64, MIN64, 63, MAX),
            (shar_r_64, MIN64, 127, MAX),
            (rot_l_64, MIN64 | 1, 1, 3),
            (rot_l_64, 1, 64, 1),
            (rot_l_32, 0x8000_0001, 1, 3),
            (rot_l_32, 0x4000_0000, 1, 0xffff_ffff_8000_0000),
            (rot_l_32, 0x1_0000_0001, 32, 1),
            (rot_r_64, 1, 1, MIN64),
            (rot_r_64, 1, 65, MIN64),
            (rot_r_32, 1, 1, 0xffff_ffff_8000_0000),
            (rot_r_32, 1, 33, 0xffff_ffff_8000_0000),
        ],
        three_regs,
    );
}

#[test]
fn arithmetic_64_bit_logic_and_multiply_upper() {
    check(
        &[
            (add_64, MAX, 1, 0),
            (sub_64, 0, 1, MAX),
            (mul_64, 1 << 32, 1 << 32, 0),
            (mul_64, 3, n(-5), n(-15)),
            (and, 0b1100, 0b1010, 0b1000),
            (xor, 0b1100, 0b1010, 0b0110),
            (or, 0b1100, 0b1010, 0b1110),
            (and_inv, 0b1100, 0b1010, 0b0100),
            (or_inv, 0, MAX, 0),
            (or_inv, 0b1100, 0b1010, 0xffff_ffff_ffff_fffd),
            (xnor, 0b1100, 0b1010, 0xffff_ffff_ffff_fff9),
            (mul_upper_s_s, MAX, MAX, 0),
            (mul_upper_s_s, MIN64, 2, MAX),
            (mul_upper_s_s, MIN64, MIN64, 0x4000_0000_0000_0000),
            (mul_upper_u_u, MAX, MAX, MAX - 1),
            (mul_upper_u_u, 1 << 32, 1 << 32, 1),
            (mul_upper_s_u, MAX, MAX, MAX),
            (mul_upper_s_u, 2, MAX, 1),
        ],
        three_regs,
    );
}

#[test]
fn comparisons_min_max_and_conditional_moves() {
    check(
        &[
            (set_lt_u, 1, MAX, 1),
            (set_lt_u, MAX, 1, 0),
            (set_lt_u, 5, 5, 0),
            (set_lt_s, MAX, 1, 1),
            (set_lt_s, 1, MAX, 0),
            (max, MAX, 1, 1),
            (max_u, MAX, 1, MAX),
            (min, MAX, 1, MAX),
            (min_u, MAX, 1, 1),
            (cmov_iz, 5, 0, 5),
            (cmov_iz, 5, 1, UNTOUCHED),
            (cmov_nz, 5, 1 << 63, 5),
            (cmov_nz, 5, 0, UNTOUCHED),
        ],
        three_regs,
    );
}

#[test]
fn register_immediate_operations_sign_extend_the_immediate() {
    let cases: &[(Opcode, u64, i32, u64)] = &[
        (add_imm_32, 0x7fff_ffff, 1, 0xffff_ffff_8000_0000),
        (add_imm_64, MAX, 1, 0),
        (add_imm_64, 5, -6, MAX),
        (and_imm, MAX, -2, MAX - 1),
        (and_imm, 0xffff_ffff_ffff, 0x7fff_ffff, 0x7fff_ffff),
        (xor_imm, 0, -1, MAX),
        (or_imm, 0x1_0000_0000, 1, 0x1_0000_0001),
        (mul_imm_32, 0x1_0000, 0x8000, 0xffff_ffff_8000_0000),
        (mul_imm_64, 1 << 40, -1, n(-(1 << 40))),
        (set_lt_u_imm, 5, -1, 1),
        (set_lt_s_imm, 5, -1, 0),
        (set_gt_u_imm, 5, -1, 0),
        (set_gt_s_imm, 5, -1, 1),
        (shlo_l_imm_32, 1, 31, 0xffff_ffff_8000_0000),
        (shlo_l_imm_32, 3, 32, 3),
        (shlo_r_imm_32, 0xffff_ffff, 28, 0xf),
        (shar_r_imm_32, 0x8000_0000, 4, 0xffff_ffff_f800_0000),
        (neg_add_imm_32, 1, 0, MAX),
        (neg_add_imm_32, 0x8000_0000, 0, 0xffff_ffff_8000_0000),
        (neg_add_imm_64, 1, 0, MAX),
        (neg_add_imm_64, 5, 3, n(-2)),
        (shlo_l_imm_alt_32, 4, 1, 16),
        (shlo_l_imm_alt_32, 36, 1, 16),
        (shlo_l_imm_alt_32, 31, 1, 0xffff_ffff_8000_0000),
        (shlo_r_imm_alt_32, 4, -1, 0x0fff_ffff),
        (shar_r_imm_alt_32, 4, -16, MAX),
        (shlo_l_imm_64, 1, 63, MIN64),
        (shlo_l_imm_64, 1, 64, 1),
        (shlo_r_imm_64, MAX, 60, 0xf),
        (shar_r_imm_64, MIN64, 60, n(-8)),
        (shlo_l_imm_alt_64, 63, 1, MIN64),
        (shlo_l_imm_alt_64, 64, 1, 1),
        (shlo_r_imm_alt_64, 60, -1, 0xf),
        (shar_r_imm_alt_64, 60, i32::MIN, MAX),
        (rot_r_64_imm, 1, 1, MIN64),
        (rot_r_64_imm, 1, 65, MIN64),
        (rot_r_64_imm_alt, 4, 1, 1 << 60),
        (rot_r_32_imm, 1, 1, 0xffff_ffff_8000_0000),
        (rot_r_32_imm_alt, 1, 2, 1),
        (rot_r_32_imm_alt, 33, 1, 0xffff_ffff_8000_0000),
        (cmov_iz_imm, 0, 7, 7),
        (cmov_iz_imm, 1, 7, UNTOUCHED),
        (cmov_nz_imm, 1, 7, 7),
        (cmov_nz_imm, 0, 7, UNTOUCHED),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|&(op, b, imm, expected)| {
            let got = reg_imm(op, b, imm);
            (got != expected)
                .then(|| format!("{op}({b:#x}, {imm}) = {got:#x}, expected {expected:#x}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn two_register_bit_operations() {
    let cases: &[(Opcode, u64, u64)] = &[
        (move_reg, 0x1234_5678_9abc_def0, 0x1234_5678_9abc_def0),
        (count_set_bits_64, MAX, 64),
        (count_set_bits_32, 0xffff_ffff_0000_000f, 4),
        (leading_zero_bits_64, 1, 63),
        (leading_zero_bits_64, 0, 64),
        (leading_zero_bits_32, 0x1_0000_0000, 32),
        (leading_zero_bits_32, 0x8000_0000, 0),
        (trailing_zero_bits_64, 0, 64),
        (trailing_zero_bits_64, MIN64, 63),
        (trailing_zero_bits_32, 0x1_0000_0000, 32),
        (trailing_zero_bits_32, 0x10, 4),
        (sign_extend_8, 0x80, 0xffff_ffff_ffff_ff80),
        (sign_extend_8, 0x17f, 0x7f),
        (sign_extend_16, 0x8000, 0xffff_ffff_ffff_8000),
        (zero_extend_16, 0xffff_ffff_ffff_8001, 0x8001),
        (reverse_bytes, 0x0102_0304_0506_0708, 0x0807_0605_0403_0201),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|&(op, a, expected)| {
            let got = two_regs(op, a);
            (got != expected).then(|| format!("{op}({a:#x}) = {got:#x}, expected {expected:#x}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn immediate_loads() {
    let mut p = ProgramBuilder::new();
    p.load_imm(R1, -1)
        .load_imm(R2, 0x7fff_ffff)
        .load_imm(R3, 0x8000_0000u32)
        .load_imm_64(R4, 0x8000_0000)
        .load_imm_64(R5, MAX - 1);
    halt(&mut p);
    let r = run(&p, &[]);
    assert_eq!(r.exit, Exit::Halt);
    assert_eq!(r.gas_used(), 6);
    assert_eq!(
        [r.reg(R1), r.reg(R2), r.reg(R3), r.reg(R4), r.reg(R5)],
        [
            MAX,
            0x7fff_ffff,
            0xffff_ffff_8000_0000,
            0x8000_0000,
            MAX - 1
        ]
    );
}
