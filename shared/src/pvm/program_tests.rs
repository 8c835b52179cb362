//! The one-pass pre-decoder against the original one (kept here as the
//! reference: decode each instruction with `decode_instruction`, an
//! intermediate array, then targets, block starts, gas and fusion), on
//! random code, bitmasks (long gaps, padding bits, lengths that differ
//! from the code's) and jump tables: every array must be identical.

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::pvm::blob::{Bitmask, ProgramParts, encode_natural};
use crate::pvm::decode::{Operands, decode_instruction};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    Valid(Opcode),
    Invalid,
    Synthetic,
}

struct Raw {
    pc: u32,
    entry: Entry,
    operands: Operands,
    next_pc: u64,
}

fn synthetic_trap(pc: u32) -> Raw {
    Raw {
        pc,
        entry: Entry::Synthetic,
        operands: Operands::NoArgs,
        next_pc: u64::from(pc) + 1,
    }
}

fn starts_basic_block(raw: &[Raw], i: usize) -> bool {
    let here = &raw[i];
    if !matches!(here.entry, Entry::Valid(_)) {
        return false;
    }
    if here.pc == 0 {
        return true;
    }
    let Some(prev) = i.checked_sub(1).map(|p| &raw[p]) else {
        return false;
    };
    matches!(prev.entry, Entry::Valid(op) if op.is_terminator())
        && prev.next_pc == u64::from(here.pc)
}

fn reference_lower(raw: &Raw, resolve: &impl Fn(i64) -> u32) -> Op {
    let mut op = TRAP;
    let Entry::Valid(opcode) = raw.entry else {
        return op;
    };
    op.opcode = Handler::from_opcode(opcode);
    match raw.operands {
        Operands::NoArgs => {}
        Operands::OneImm { imm } => op.x = imm as u32,
        Operands::OneRegExtImm { ra, imm } => {
            op.a = RegIndex::new(ra);
            op.x = imm as u32;
            op.y = (imm >> 32) as u32;
        }
        Operands::TwoImms { x, y } => {
            op.x = x as u32;
            op.y = y as u32;
        }
        Operands::OneOffset { target } => op.y = resolve(target),
        Operands::OneRegOneImm { ra, imm } => {
            op.a = RegIndex::new(ra);
            op.x = imm as u32;
        }
        Operands::OneRegTwoImms { ra, x, y } => {
            op.a = RegIndex::new(ra);
            op.x = x as u32;
            op.y = y as u32;
        }
        Operands::OneRegImmOffset { ra, imm, target } => {
            op.a = RegIndex::new(ra);
            op.x = imm as u32;
            op.y = resolve(target);
        }
        Operands::TwoRegs { rd, ra } => {
            op.d = RegIndex::new(rd);
            op.a = RegIndex::new(ra);
        }
        Operands::TwoRegsOneImm { ra, rb, imm } => {
            op.a = RegIndex::new(ra);
            op.b = RegIndex::new(rb);
            op.x = imm as u32;
        }
        Operands::TwoRegsOneOffset { ra, rb, target } => {
            op.a = RegIndex::new(ra);
            op.b = RegIndex::new(rb);
            op.y = resolve(target);
        }
        Operands::TwoRegsTwoImms { ra, rb, x, y } => {
            op.a = RegIndex::new(ra);
            op.b = RegIndex::new(rb);
            op.x = x as u32;
            op.y = y as u32;
        }
        Operands::ThreeRegs { ra, rb, rd } => {
            op.a = RegIndex::new(ra);
            op.b = RegIndex::new(rb);
            op.d = RegIndex::new(rd);
        }
    }
    op
}

/// The pre-decoder as it was before the one-pass rewrite.
fn reference(parts: &ProgramParts<'_>) -> Program {
    let code = parts.code;
    let bitmask = &parts.bitmask;
    let code_len = code.len() as u64;
    let mut raw: Vec<Raw> = Vec::new();
    for pc in 0..code.len() {
        if !bitmask.is_set(pc) {
            continue;
        }
        let ins = decode_instruction(code, bitmask, pc as u32);
        let next_pc = ins.next_pc();
        raw.push(Raw {
            pc: pc as u32,
            entry: ins.opcode.map_or(Entry::Invalid, Entry::Valid),
            operands: ins.operands,
            next_pc,
        });
        let next_is_instruction = next_pc < code_len && bitmask.is_set(next_pc as usize);
        if !next_is_instruction && next_pc < code_len {
            raw.push(synthetic_trap(next_pc as u32));
        }
    }
    if raw.last().is_none_or(|r| u64::from(r.pc) != code_len) {
        raw.push(synthetic_trap(code_len as u32));
    }
    let pcs: Vec<u32> = raw.iter().map(|r| r.pc).collect();
    let block_start: Vec<bool> = (0..raw.len())
        .map(|i| starts_basic_block(&raw, i))
        .collect();
    let resolve = |target: i64| -> u32 {
        u32::try_from(target)
            .ok()
            .and_then(|t| pcs.binary_search(&t).ok())
            .filter(|&i| block_start[i])
            .map_or(INVALID_TARGET, |i| i as u32)
    };
    let mut ops: Vec<Op> = raw.iter().map(|r| reference_lower(r, &resolve)).collect();
    let mut remaining = 0u32;
    for i in (0..ops.len()).rev() {
        let ends = match raw[i].entry {
            Entry::Synthetic => true,
            Entry::Valid(op) => op.is_terminator(),
            Entry::Invalid => false,
        } || block_start.get(i + 1).copied().unwrap_or(true);
        let own = ops[i].opcode.unfused().gas();
        remaining = if ends {
            own
        } else {
            own.saturating_add(remaining)
        };
        ops[i].gas = remaining;
    }
    fuse(&mut ops, &block_start);
    let jump_targets = parts
        .jump_table
        .iter()
        .map(|&entry| resolve(i64::from(entry)))
        .collect();
    Program {
        ops,
        pcs,
        jump_targets,
        block_starts: block_start,
        code_len: code_len as u32,
        #[cfg(feature = "jit")]
        native: Default::default(),
    }
}

fn assert_same(new: &Program, old: &Program) {
    assert_eq!(new.pcs, old.pcs, "pcs");
    assert_eq!(new.block_starts, old.block_starts, "block starts");
    assert_eq!(new.ops, old.ops, "ops");
    assert_eq!(new.jump_targets, old.jump_targets, "jump targets");
    assert_eq!(new.code_len, old.code_len, "code length");
}

/// Code octets: mostly opcodes that exist (each format, terminators and
/// fusable pairs), some that do not, some operand-like bytes.
fn code_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => proptest::sample::select(crate::pvm::ALL_OPCODES.iter().map(|o| *o as u8).collect::<Vec<_>>()),
        1 => any::<u8>(),
        1 => 0u8..16,
    ]
}

/// A bitmask of `len` bits: dense, sparse (gaps past 24) or random.
fn bitmask_bits(len: usize) -> impl Strategy<Value = Vec<bool>> {
    prop_oneof![
        proptest::collection::vec(proptest::bool::weighted(0.5), len),
        proptest::collection::vec(proptest::bool::weighted(0.9), len),
        proptest::collection::vec(proptest::bool::weighted(0.03), len),
    ]
}

fn pack(bits: &[bool], padding: u8) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, &bit) in bits.iter().enumerate() {
        if bit {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    if !bits.len().is_multiple_of(8)
        && let Some(last) = bytes.last_mut()
    {
        *last |= padding << (bits.len() % 8);
    }
    bytes
}

/// A case: code, bitmask bits (length may differ from the code's), padding
/// bits and a jump table (code offsets, some near or past the end).
fn case() -> impl Strategy<Value = (Vec<u8>, Vec<bool>, u8, Vec<u32>)> {
    (0usize..200, -20i64..20).prop_flat_map(|(len, delta)| {
        let mask_len = (len as i64 + delta).max(0) as usize;
        (
            proptest::collection::vec(code_byte(), len),
            bitmask_bits(mask_len),
            any::<u8>(),
            proptest::collection::vec(0u32..(len as u32 + 30), 0..8),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn one_pass_decode_matches_the_reference(
        (code, bits, padding, jump_table) in case()
    ) {
        let bytes = pack(&bits, padding);
        let bitmask = Bitmask::new(&bytes, bits.len()).expect("packed to length");
        let parts = ProgramParts { jump_table, code: &code, bitmask };
        assert_same(&Program::from_parts(&parts), &reference(&parts));
    }

    #[test]
    fn from_blob_matches_the_reference(
        (code, bits, _padding, jump_table) in case(),
        entry_size in 1u8..5,
    ) {
        // A well-formed blob: the bitmask as long as the code, no padding.
        let mut bits = bits;
        bits.resize(code.len(), true);
        let mask = pack(&bits, 0);
        let mut blob = Vec::new();
        encode_natural(jump_table.len() as u64, &mut blob);
        blob.push(entry_size);
        encode_natural(code.len() as u64, &mut blob);
        let limit = 1u64 << (8 * u32::from(entry_size));
        for &entry in &jump_table {
            let entry = u64::from(entry) % limit;
            blob.extend_from_slice(&entry.to_le_bytes()[..usize::from(entry_size)]);
        }
        blob.extend_from_slice(&code);
        blob.extend_from_slice(&mask);
        let parts = deblob(&blob).expect("well formed");
        let program = Program::from_blob(&blob).expect("decodes");
        assert_same(&program, &reference(&parts));
    }
}

#[test]
fn the_sample_programs_decode_as_before() {
    for image in [
        crate::kernel::sample::sample_image(),
        crate::kernel::sample::writer_image(8),
    ] {
        let parts = deblob(&image.code).expect("well formed");
        let program = Program::from_blob(&image.code).expect("decodes");
        assert_same(&program, &reference(&parts));
    }
}

#[test]
fn bitmask_scans_agree_with_is_set() {
    // Short and long masks, runs, and a gap of more than 64 bits.
    for len in [0, 5, 63, 64, 65, 300, 301] {
        let bits: Vec<bool> = (0..len)
            .map(|i| (i % 7 == 0 && !(150..260).contains(&i)) || (100..140).contains(&i))
            .collect();
        for padding in [0u8, 0xff] {
            let bytes = pack(&bits, padding);
            let mask = Bitmask::new(&bytes, bits.len()).expect("packed");
            let mut walk = mask.set_bits();
            for expected in (0..len + 10).filter(|&i| mask.is_set(i)) {
                assert_eq!(walk.next_start(), expected, "length {len}");
            }
            for end in 0..len + 10 {
                let count = (0..end).filter(|&i| mask.is_set(i)).count();
                assert_eq!(mask.count_set(end), count, "below {end}");
            }
        }
    }
}
