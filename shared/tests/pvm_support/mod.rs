//! A tiny hand assembler for the PVM unit tests: every immediate and
//! offset is written with 4 octets, so the layout is easy to predict.
#![allow(dead_code)]

use capbox_shared::pvm::{
    Access, Exit, Machine, Memory, Opcode, PageMapEntry, Program, encode_natural,
};

/// One instruction's octets (opcode first).
pub type Ins = Vec<u8>;

fn imm4(value: i64) -> [u8; 4] {
    (value as i32).to_le_bytes()
}

pub fn no_args(op: Opcode) -> Ins {
    vec![op.to_u8()]
}

pub fn ecalli(imm: u32) -> Ins {
    let mut v = vec![Opcode::ecalli.to_u8()];
    v.extend(imm.to_le_bytes());
    v
}

pub fn load_imm_64(ra: u8, value: u64) -> Ins {
    let mut v = vec![Opcode::load_imm_64.to_u8(), ra];
    v.extend(value.to_le_bytes());
    v
}

/// `OneRegOneImm` (loads, stores, `load_imm`, `jump_ind`).
pub fn reg_imm(op: Opcode, ra: u8, imm: i64) -> Ins {
    let mut v = vec![op.to_u8(), ra];
    v.extend(imm4(imm));
    v
}

/// `TwoImms` (`store_imm_*`).
pub fn two_imms(op: Opcode, x: i64, y: i64) -> Ins {
    let mut v = vec![op.to_u8(), 4];
    v.extend(imm4(x));
    v.extend(imm4(y));
    v
}

/// `OneOffset` (`jump`); `offset` is relative to this instruction.
pub fn offset(op: Opcode, offset: i64) -> Ins {
    let mut v = vec![op.to_u8()];
    v.extend(imm4(offset));
    v
}

/// `OneRegImmOffset` (`load_imm_jump`, immediate branches).
pub fn reg_imm_offset(op: Opcode, ra: u8, imm: i64, offset: i64) -> Ins {
    let mut v = vec![op.to_u8(), ra | (4 << 4)];
    v.extend(imm4(imm));
    v.extend(imm4(offset));
    v
}

/// `OneRegTwoImms` (`store_imm_ind_*`).
pub fn reg_two_imms(op: Opcode, ra: u8, x: i64, y: i64) -> Ins {
    let mut v = vec![op.to_u8(), ra | (4 << 4)];
    v.extend(imm4(x));
    v.extend(imm4(y));
    v
}

/// `TwoRegs`: `rd = f(ra)`.
pub fn two_regs(op: Opcode, rd: u8, ra: u8) -> Ins {
    vec![op.to_u8(), rd | (ra << 4)]
}

/// `TwoRegsOneImm`: `ra = f(rb, imm)` or stores/loads `ra` at `rb + imm`.
pub fn two_regs_imm(op: Opcode, ra: u8, rb: u8, imm: i64) -> Ins {
    let mut v = vec![op.to_u8(), ra | (rb << 4)];
    v.extend(imm4(imm));
    v
}

/// `TwoRegsOneOffset` (register branches).
pub fn two_regs_offset(op: Opcode, ra: u8, rb: u8, offset: i64) -> Ins {
    let mut v = vec![op.to_u8(), ra | (rb << 4)];
    v.extend(imm4(offset));
    v
}

/// `TwoRegsTwoImms` (`load_imm_jump_ind`): `ra = x`, jump to `rb + y`.
pub fn two_regs_two_imms(ra: u8, rb: u8, x: i64, y: i64) -> Ins {
    let mut v = vec![Opcode::load_imm_jump_ind.to_u8(), ra | (rb << 4), 4];
    v.extend(imm4(x));
    v.extend(imm4(y));
    v
}

/// `ThreeRegs`: `rd = ra op rb`.
pub fn three_regs(op: Opcode, rd: u8, ra: u8, rb: u8) -> Ins {
    vec![op.to_u8(), ra | (rb << 4), rd]
}

/// Code offsets of each instruction in `code`.
pub fn offsets(code: &[Ins]) -> Vec<u32> {
    let mut at = 0;
    code.iter()
        .map(|ins| {
            let here = at;
            at += ins.len() as u32;
            here
        })
        .collect()
}

/// A `deblob`-format blob with a 4-octet jump table.
pub fn blob_with_table(code: &[Ins], jump_table: &[u32]) -> Vec<u8> {
    let mut octets = Vec::new();
    let mut mask = Vec::new();
    for ins in code {
        for (i, &b) in ins.iter().enumerate() {
            octets.push(b);
            mask.push(i == 0);
        }
    }
    let mut blob = Vec::new();
    encode_natural(jump_table.len() as u64, &mut blob);
    blob.push(4);
    encode_natural(octets.len() as u64, &mut blob);
    for entry in jump_table {
        blob.extend(entry.to_le_bytes());
    }
    blob.extend(&octets);
    let mut packed = vec![0u8; mask.len().div_ceil(8)];
    for (i, set) in mask.iter().enumerate() {
        if *set {
            packed[i / 8] |= 1 << (i % 8);
        }
    }
    blob.extend(packed);
    blob
}

pub fn blob(code: &[Ins]) -> Vec<u8> {
    blob_with_table(code, &[])
}

pub fn program(code: &[Ins]) -> Program {
    Program::from_blob(&blob(code)).expect("test program is well-formed")
}

/// One writable page at 0x20000 and one read-only page at 0x21000.
pub fn test_memory() -> Memory {
    Memory::from_page_map(&[
        PageMapEntry {
            address: 0x20000,
            length: 0x1000,
            access: Access::Write,
        },
        PageMapEntry {
            address: 0x21000,
            length: 0x1000,
            access: Access::Read,
        },
    ])
    .expect("valid page map")
}

/// Runs `code` from pc 0 with `regs` and `gas` on [`test_memory`].
pub fn run(code: &[Ins], regs: [u64; 13], gas: i64) -> (Exit, Machine) {
    let program = program(code);
    let mut machine = Machine::new(regs, 0, gas, test_memory());
    let exit = machine.run(&program);
    (exit, machine)
}
