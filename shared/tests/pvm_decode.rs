//! Operand decoding edge cases: immediate lengths derived from the skip,
//! clamped lengths and registers, sign extension, reads past the code.

use capbox_shared::pvm::{Bitmask, Opcode, Operands, decode_instruction};

/// Decodes the instruction at 0 of `code`, whose next instruction starts at
/// `next` (so `skip = next - 1`).
fn decode(code: &[u8], next: usize) -> (u32, Operands) {
    let mut mask = vec![0u8; code.len().div_ceil(8)];
    mask[0] |= 1;
    if next < code.len() {
        mask[next / 8] |= 1 << (next % 8);
    }
    let bitmask = Bitmask::new(&mask, code.len()).unwrap();
    let ins = decode_instruction(code, &bitmask, 0);
    (ins.skip, ins.operands)
}

#[test]
fn immediate_length_follows_the_skip() {
    let op = Opcode::load_imm.to_u8();
    // ℓ = 1: no immediate octets.
    assert_eq!(
        decode(&[op, 7, 0xFF, 0xFF, 0], 2).1,
        Operands::OneRegOneImm { ra: 7, imm: 0 }
    );
    // ℓ = 2: one octet, sign-extended.
    assert_eq!(
        decode(&[op, 7, 0x80, 0xFF, 0], 3).1,
        Operands::OneRegOneImm {
            ra: 7,
            imm: 0xFFFF_FFFF_FFFF_FF80
        }
    );
    // ℓ = 3: two octets, positive.
    assert_eq!(
        decode(&[op, 7, 0x80, 0x00, 0], 4).1,
        Operands::OneRegOneImm { ra: 7, imm: 0x80 }
    );
    // ℓ = 9: capped at four octets.
    let (skip, operands) = decode(&[op, 7, 1, 2, 3, 4, 5, 6, 7, 8, 0], 10);
    assert_eq!(skip, 9);
    assert_eq!(
        operands,
        Operands::OneRegOneImm {
            ra: 7,
            imm: 0x0403_0201
        }
    );
}

#[test]
fn registers_are_clamped_to_twelve() {
    let (_, operands) = decode(&[Opcode::add_64.to_u8(), 0xFE, 0xFF, 0], 3);
    assert_eq!(
        operands,
        Operands::ThreeRegs {
            ra: 12,
            rb: 12,
            rd: 12
        }
    );
    let (_, operands) = decode(&[Opcode::move_reg.to_u8(), 0xD3, 0], 2);
    assert_eq!(operands, Operands::TwoRegs { rd: 3, ra: 12 });
}

#[test]
fn two_immediates_split_by_the_length_field() {
    let op = Opcode::store_imm_u32.to_u8();
    // lx = 2 (low 3 bits), the rest (ℓ - lx - 1 = 3) is ν_Y.
    let (_, operands) = decode(&[op, 0xF2, 0x00, 0x00, 0x01, 0x02, 0x83, 0], 7);
    assert_eq!(
        operands,
        Operands::TwoImms {
            x: 0,
            y: 0xFFFF_FFFF_FF83_0201
        }
    );
    // lx field 7 is clamped to 4.
    let (_, operands) = decode(&[op, 7, 1, 0, 0, 0, 9, 0], 7);
    assert_eq!(operands, Operands::TwoImms { x: 1, y: 9 });
}

#[test]
fn offsets_are_relative_and_may_leave_the_code() {
    let mut code = vec![0u8; 12];
    code[8] = Opcode::jump.to_u8();
    code[9..12].copy_from_slice(&[0xF0, 0xFF, 0xFF]); // -16 in three octets
    let mut mask = vec![0u8; 2];
    mask[1] |= 1; // instruction at 8
    let bitmask = Bitmask::new(&mask, code.len()).unwrap();
    let ins = decode_instruction(&code, &bitmask, 8);
    assert_eq!(ins.skip, 3, "bits past the end read as set");
    assert_eq!(ins.operands, Operands::OneOffset { target: -8 });
}

#[test]
fn extended_immediate_reads_zeros_past_the_code() {
    let (_, operands) = decode(&[Opcode::load_imm_64.to_u8(), 3, 0xAA, 0xBB], 4);
    assert_eq!(operands, Operands::OneRegExtImm { ra: 3, imm: 0xBBAA });
}

#[test]
fn branch_with_immediate_and_offset() {
    let op = Opcode::branch_eq_imm.to_u8();
    // ra = 5, lx = 1 (high nibble), ν_X = -1, offset of one octet = 6.
    let (_, operands) = decode(&[op, 0x15, 0xFF, 6, 0], 4);
    assert_eq!(
        operands,
        Operands::OneRegImmOffset {
            ra: 5,
            imm: u64::MAX,
            target: 6
        }
    );
}

#[test]
fn two_registers_two_immediates() {
    let op = Opcode::load_imm_jump_ind.to_u8();
    // ra = 1, rb = 2, lx = 1, ν_X = 0x7F, ν_Y = 0x0102 (two octets).
    let (_, operands) = decode(&[op, 0x21, 1, 0x7F, 0x02, 0x01, 0], 6);
    assert_eq!(
        operands,
        Operands::TwoRegsTwoImms {
            ra: 1,
            rb: 2,
            x: 0x7F,
            y: 0x0102
        }
    );
}
