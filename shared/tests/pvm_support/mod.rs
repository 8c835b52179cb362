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

/// An item of a labelled listing for [`assemble`].
pub enum Item {
    /// A finished instruction.
    Op(Vec<u8>),
    /// A label for the next instruction.
    Label(&'static str),
    /// An instruction whose relative offset to a label is filled in.
    To(&'static str, Box<dyn Fn(i64) -> Vec<u8>>),
}

/// Resolves labels (all instructions have fixed sizes here).
pub fn assemble(items: Vec<Item>) -> Vec<Ins> {
    let mut labels = std::collections::HashMap::new();
    let mut pc = 0i64;
    for item in &items {
        match item {
            Item::Op(ins) => pc += ins.len() as i64,
            Item::Label(name) => {
                labels.insert(*name, pc);
            }
            Item::To(_, make) => pc += make(0).len() as i64,
        }
    }
    let mut pc = 0i64;
    let mut out = Vec::new();
    for item in items {
        let ins = match item {
            Item::Op(ins) => ins,
            Item::Label(_) => continue,
            Item::To(label, make) => make(labels[label] - pc),
        };
        pc += ins.len() as i64;
        out.push(ins);
    }
    out
}

/// Counts primes below r7 with a byte-array sieve at r8; result in r10.
pub fn sieve_program() -> Vec<Ins> {
    use Item::*;
    use Opcode::*;
    let to = |label, make: Box<dyn Fn(i64) -> Vec<u8>>| To(label, make);
    assemble(vec![
        Op(reg_imm(load_imm, 9, 2)),
        Op(reg_imm(load_imm, 10, 0)),
        Op(no_args(fallthrough)),
        Label("outer"),
        to("end", Box::new(|o| two_regs_offset(branch_ge_u, 9, 7, o))),
        Op(three_regs(add_64, 11, 8, 9)),
        Op(two_regs_imm(load_ind_u8, 12, 11, 0)),
        to(
            "next",
            Box::new(|o| reg_imm_offset(branch_ne_imm, 12, 0, o)),
        ),
        Op(two_regs_imm(add_imm_64, 10, 10, 1)),
        Op(three_regs(mul_64, 2, 9, 9)),
        Op(no_args(fallthrough)),
        Label("inner"),
        to("next", Box::new(|o| two_regs_offset(branch_ge_u, 2, 7, o))),
        Op(three_regs(add_64, 11, 8, 2)),
        Op(reg_two_imms(store_imm_ind_u8, 11, 0, 1)),
        Op(three_regs(add_64, 2, 2, 9)),
        to("inner", Box::new(|o| offset(jump, o))),
        Label("next"),
        Op(two_regs_imm(add_imm_64, 9, 9, 1)),
        to("outer", Box::new(|o| offset(jump, o))),
        Label("end"),
        Op(reg_imm(jump_ind, 0, 0)),
    ])
}

/// Fills r7 u32s at r8 from an LCG, then insertion-sorts them.
pub fn sort_program() -> Vec<Ins> {
    use Item::*;
    use Opcode::*;
    let to = |label, make: Box<dyn Fn(i64) -> Vec<u8>>| To(label, make);
    assemble(vec![
        Op(self::load_imm_64(5, 6364136223846793005)),
        Op(self::load_imm_64(6, 1442695040888963407)),
        Op(reg_imm(load_imm, 9, 12345)),
        Op(reg_imm(load_imm, 10, 0)),
        Op(no_args(fallthrough)),
        Label("fill"),
        to("sort", Box::new(|o| two_regs_offset(branch_ge_u, 10, 7, o))),
        Op(three_regs(mul_64, 9, 9, 5)),
        Op(three_regs(add_64, 9, 9, 6)),
        Op(two_regs_imm(shlo_r_imm_64, 4, 9, 33)),
        Op(two_regs_imm(shlo_l_imm_64, 11, 10, 2)),
        Op(three_regs(add_64, 11, 11, 8)),
        Op(two_regs_imm(store_ind_u32, 4, 11, 0)),
        Op(two_regs_imm(add_imm_64, 10, 10, 1)),
        to("fill", Box::new(|o| offset(jump, o))),
        Label("sort"),
        Op(reg_imm(load_imm, 10, 1)),
        Op(no_args(fallthrough)),
        Label("outer"),
        to("end", Box::new(|o| two_regs_offset(branch_ge_u, 10, 7, o))),
        Op(two_regs_imm(shlo_l_imm_64, 11, 10, 2)),
        Op(three_regs(add_64, 11, 11, 8)),
        Op(two_regs_imm(load_ind_u32, 12, 11, 0)),
        Op(two_regs(move_reg, 2, 10)),
        Op(no_args(fallthrough)),
        Label("inner"),
        to(
            "place",
            Box::new(|o| reg_imm_offset(branch_eq_imm, 2, 0, o)),
        ),
        Op(two_regs_imm(shlo_l_imm_64, 11, 2, 2)),
        Op(three_regs(add_64, 11, 11, 8)),
        Op(two_regs_imm(load_ind_u32, 3, 11, -4)),
        to(
            "place",
            Box::new(|o| two_regs_offset(branch_ge_u, 12, 3, o)),
        ),
        Op(two_regs_imm(store_ind_u32, 3, 11, 0)),
        Op(two_regs_imm(add_imm_64, 2, 2, -1)),
        to("inner", Box::new(|o| offset(jump, o))),
        Label("place"),
        Op(two_regs_imm(shlo_l_imm_64, 11, 2, 2)),
        Op(three_regs(add_64, 11, 11, 8)),
        Op(two_regs_imm(store_ind_u32, 12, 11, 0)),
        Op(two_regs_imm(add_imm_64, 10, 10, 1)),
        to("outer", Box::new(|o| offset(jump, o))),
        Label("end"),
        Op(reg_imm(jump_ind, 0, 0)),
    ])
}

/// A well-formed blob around arbitrary code, bitmask (missing bits set) and
/// jump table (4-octet entries), for property tests.
pub fn raw_blob(code: &[u8], mask_bits: &[bool], table: &[u32]) -> Vec<u8> {
    let mut blob = Vec::new();
    encode_natural(table.len() as u64, &mut blob);
    blob.push(4);
    encode_natural(code.len() as u64, &mut blob);
    for entry in table {
        blob.extend(entry.to_le_bytes());
    }
    blob.extend(code);
    let mut packed = vec![0u8; code.len().div_ceil(8)];
    for i in 0..code.len() {
        if mask_bits.get(i).copied().unwrap_or(true) {
            packed[i / 8] |= 1 << (i % 8);
        }
    }
    blob.extend(packed);
    blob
}

/// Register values biased towards interesting addresses and small values.
pub fn register_value() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    prop_oneof![
        0u64..64,
        0x20000u64..0x22010,
        Just(0xFFFF_0000u64),
        any::<u64>(),
    ]
}
