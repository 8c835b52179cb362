//! A program blob pre-decoded once into a dense array of fixed-size
//! instructions with operands extracted and jump targets resolved.
//!
//! The array holds, in code order, one entry per octet whose bitmask bit is
//! set, plus a `trap` wherever sequential execution would land on an octet
//! that is not an instruction start (after a skip capped at 24, and at the
//! end of the code). Sequential execution therefore always moves from entry
//! `i` to entry `i + 1`, and the last entry is always a `trap`.

use alloc::vec::Vec;

use super::blob::{ProgramParts, deblob, decode_natural};
use super::decode::{Operands, decode_instruction};
use super::error::ProgramError;
use super::instructions::Opcode;

/// Marks a jump target that is not the start of a basic block: taking the
/// jump panics.
pub(crate) const INVALID_TARGET: u32 = u32::MAX;

/// One pre-decoded instruction (16 octets).
///
/// Field use by format: registers in `a`, `b`, `d` (named as in the
/// Graypaper: `r_A`, `r_B`, `r_D`); the first immediate in `x`, the second
/// in `y` (both the low 32 bits of a sign-extended value), except that
/// branch targets (instruction indices) live in `y` and `load_imm_64` keeps
/// its high half in `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Op {
    pub opcode: Opcode,
    pub a: u8,
    pub b: u8,
    pub d: u8,
    pub x: u32,
    pub y: u32,
    /// Gas charged on entering this instruction from a jump, a branch or
    /// `run`: the cost of every instruction from here to the end of its
    /// gas block (see [`crate::pvm`]).
    pub gas: u32,
}

/// A decoded program, ready to run any number of times. Cheap to share
/// (`Send + Sync`, immutable); cache it per code hash in an `Arc`.
#[derive(Clone, Debug)]
pub struct Program {
    pub(crate) ops: Vec<Op>,
    /// Code offset of each entry of `ops`.
    pub(crate) pcs: Vec<u32>,
    /// The dynamic jump table resolved to indices into `ops`.
    pub(crate) jump_targets: Vec<u32>,
    /// Whether each entry of `ops` starts a basic block.
    block_starts: Vec<bool>,
    code_len: u32,
}

/// What occupies an entry of the pre-decoded array.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A valid instruction.
    Valid(Opcode),
    /// An instruction start whose octet is not an opcode (runs as `trap`).
    Invalid,
    /// A `trap` added where sequential execution leaves the instructions.
    Synthetic,
}

/// What the pre-decoder knows about each entry before resolving targets.
struct Raw {
    pc: u32,
    entry: Entry,
    operands: Operands,
    next_pc: u64,
}

/// Most instructions (bitmask bits) a program may have. Pre-decoding costs
/// about 60 bytes per instruction at its peak and 21 after, so this bounds
/// a program's decoder memory (~16 MB peak, ~5.5 MB kept) whatever the
/// blob: a guest decodes the largest allowed program with room to spare.
/// Checked before anything is allocated.
pub const MAX_INSTRUCTIONS: u64 = 1 << 18;

impl Program {
    /// Parses (`deblob`) and pre-decodes a program blob; a program of more
    /// than [`MAX_INSTRUCTIONS`] instructions (or jump-table entries) is
    /// [`ProgramError::OverLimit`].
    pub fn from_blob(blob: &[u8]) -> Result<Program, ProgramError> {
        // The jump table's length comes first: refused before `deblob`
        // allocates its table (up to 4 bytes per blob byte otherwise).
        if let Ok((entries, _)) = decode_natural(blob)
            && entries > MAX_INSTRUCTIONS
        {
            return Err(ProgramError::OverLimit {
                what: "jump-table entries",
                value: entries,
                max: MAX_INSTRUCTIONS,
            });
        }
        let parts = deblob(blob)?;
        let instructions = (0..parts.code.len())
            .filter(|&pc| parts.bitmask.is_set(pc))
            .count() as u64;
        for (what, value) in [
            ("instructions", instructions),
            ("jump-table entries", parts.jump_table.len() as u64),
        ] {
            if value > MAX_INSTRUCTIONS {
                return Err(ProgramError::OverLimit {
                    what,
                    value,
                    max: MAX_INSTRUCTIONS,
                });
            }
        }
        Ok(Program::from_parts(&parts))
    }

    /// Approximate heap bytes the decoded program holds (for cache budgets).
    pub fn approx_bytes(&self) -> usize {
        self.ops.len() * core::mem::size_of::<Op>()
            + self.pcs.len() * 4
            + self.jump_targets.len() * 4
            + self.block_starts.len()
    }

    /// Pre-decodes an already split blob.
    pub fn from_parts(parts: &ProgramParts<'_>) -> Program {
        let code = parts.code;
        let bitmask = &parts.bitmask;
        let code_len = code.len() as u64;
        let mut raw: Vec<Raw> = Vec::with_capacity(code.len() / 2 + 1);
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

        let mut ops: Vec<Op> = raw.iter().map(|r| lower(r, &resolve)).collect();
        // Gas blocks end at terminators, `ecalli` and synthesised traps.
        let mut remaining = 0u32;
        for i in (0..ops.len()).rev() {
            let ends = match raw[i].entry {
                Entry::Synthetic => true,
                Entry::Valid(op) => op.is_terminator() || op == Opcode::ecalli,
                Entry::Invalid => false,
            } || block_start.get(i + 1).copied().unwrap_or(true);
            let own = ops[i].opcode.gas();
            remaining = if ends {
                own
            } else {
                own.saturating_add(remaining)
            };
            ops[i].gas = remaining;
        }
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
        }
    }

    /// Length of the code in octets.
    pub fn code_len(&self) -> u32 {
        self.code_len
    }

    /// Number of pre-decoded instructions (including synthesised traps).
    pub fn instruction_count(&self) -> usize {
        self.ops.len()
    }

    /// Whether `pc` is the start of a basic block (a valid jump target).
    pub fn is_basic_block_start(&self, pc: u32) -> bool {
        self.index_of(pc)
            .is_some_and(|i| self.block_starts.get(i).copied().unwrap_or(false))
    }

    /// Index into `ops` of the instruction at `pc`.
    #[inline]
    pub(crate) fn index_of(&self, pc: u32) -> Option<usize> {
        self.pcs.binary_search(&pc).ok()
    }
}

fn synthetic_trap(pc: u32) -> Raw {
    Raw {
        pc,
        entry: Entry::Synthetic,
        operands: Operands::NoArgs,
        next_pc: u64::from(pc) + 1,
    }
}

/// The Graypaper's `ϖ`: entry `i` is a real, valid instruction at offset 0
/// or directly after a terminator.
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

/// Lowers one decoded instruction into the interpreter's format.
fn lower(raw: &Raw, resolve: &impl Fn(i64) -> u32) -> Op {
    let mut op = Op {
        opcode: Opcode::trap,
        a: 0,
        b: 0,
        d: 0,
        x: 0,
        y: 0,
        gas: 0,
    };
    let Entry::Valid(opcode) = raw.entry else {
        return op;
    };
    op.opcode = opcode;
    match raw.operands {
        Operands::NoArgs => {}
        Operands::OneImm { imm } => op.x = imm as u32,
        Operands::OneRegExtImm { ra, imm } => {
            op.a = ra;
            op.x = imm as u32;
            op.y = (imm >> 32) as u32;
        }
        Operands::TwoImms { x, y } => {
            op.x = x as u32;
            op.y = y as u32;
        }
        Operands::OneOffset { target } => op.y = resolve(target),
        Operands::OneRegOneImm { ra, imm } => {
            op.a = ra;
            op.x = imm as u32;
        }
        Operands::OneRegTwoImms { ra, x, y } => {
            op.a = ra;
            op.x = x as u32;
            op.y = y as u32;
        }
        Operands::OneRegImmOffset { ra, imm, target } => {
            op.a = ra;
            op.x = imm as u32;
            op.y = resolve(target);
        }
        Operands::TwoRegs { rd, ra } => {
            op.d = rd;
            op.a = ra;
        }
        Operands::TwoRegsOneImm { ra, rb, imm } => {
            op.a = ra;
            op.b = rb;
            op.x = imm as u32;
        }
        Operands::TwoRegsOneOffset { ra, rb, target } => {
            op.a = ra;
            op.b = rb;
            op.y = resolve(target);
        }
        Operands::TwoRegsTwoImms { ra, rb, x, y } => {
            op.a = ra;
            op.b = rb;
            op.x = x as u32;
            op.y = y as u32;
        }
        Operands::ThreeRegs { ra, rb, rd } => {
            op.a = ra;
            op.b = rb;
            op.d = rd;
        }
    }
    op
}
