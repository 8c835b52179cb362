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
    /// The instruction's opcode, or a fused sequence starting with it.
    pub opcode: Handler,
    pub a: RegIndex,
    pub b: RegIndex,
    pub d: RegIndex,
    pub x: u32,
    pub y: u32,
    /// Gas charged on entering this instruction from a jump, a branch or
    /// `run`: the cost of every instruction from here to the end of its
    /// gas block (see [`crate::pvm`]).
    pub gas: u32,
}

/// A register number, 0 to 12 by its type: indexing the interpreter's
/// register file with it needs neither a bounds check nor a mask (the
/// compiler knows the range of a field-less enum), whatever the program.
#[allow(dead_code)] // Built only by `RegIndex::new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RegIndex {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    R11,
    R12,
}

impl RegIndex {
    /// Register `n`; decoding already caps register numbers at 12
    /// (`min(12, …)`), and a larger `n` is taken as 12 the same way.
    const fn new(n: u8) -> RegIndex {
        match n {
            0 => RegIndex::R0,
            1 => RegIndex::R1,
            2 => RegIndex::R2,
            3 => RegIndex::R3,
            4 => RegIndex::R4,
            5 => RegIndex::R5,
            6 => RegIndex::R6,
            7 => RegIndex::R7,
            8 => RegIndex::R8,
            9 => RegIndex::R9,
            10 => RegIndex::R10,
            11 => RegIndex::R11,
            _ => RegIndex::R12,
        }
    }

    /// The register's index into the register file.
    #[inline(always)]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
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
        // Gas blocks end at terminators and synthesised traps; an `ecalli`
        // does not end one (departure 12).
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

    /// Code offset of the instruction (or synthesised `trap`) just before
    /// the one at `pc`, e.g. the `ecalli` a host-call exit left behind.
    pub fn instruction_before(&self, pc: u32) -> Option<u32> {
        let i = self.index_of(pc)?.checked_sub(1)?;
        self.pcs.get(i).copied()
    }

    /// Index into `ops` of the instruction at `pc`.
    #[inline]
    pub(crate) fn index_of(&self, pc: u32) -> Option<usize> {
        self.pcs.binary_search(&pc).ok()
    }
}

/// Labels entries with fused handlers where that saves dispatches: for
/// each entry, the fewest dispatches from it to its block's end, taking
/// one, two or three instructions of the block per dispatch (a fused
/// label covers its first instruction and the next one or two). A run
/// from a block start follows the labels; one that starts or resumes
/// mid-block (after a host call, a memory retry, a step) does too, as
/// every entry keeps the best label for its own suffix.
fn fuse(ops: &mut [Op], block_start: &[bool]) {
    // after[k]: the fewest dispatches from entry `i + 1 + k` to the end.
    let mut after = [0u32; 3];
    for i in (0..ops.len()).rev() {
        let in_block =
            |k: usize| i + k < ops.len() && !block_start.get(i + k).copied().unwrap_or(true);
        let opcode = |k: usize| ops[i + k].opcode.unfused();
        let mut best = (after[0] + 1, None);
        if in_block(1) {
            if let Some(pair) = FUSIONS.pair(opcode(0), opcode(1))
                && after[1] < best.0
            {
                best = (after[1] + 1, Some(pair));
            }
            if in_block(2)
                && let Some(triple) = FUSIONS.triple(opcode(0), opcode(1), opcode(2))
                && after[2] < best.0
            {
                best = (after[2] + 1, Some(triple));
            }
        }
        if let Some(fused) = best.1 {
            ops[i].opcode = fused;
        }
        after = [best.0, after[0], after[1]];
    }
}

/// Distinct opcodes that fused handlers may combine (the tables' side).
const FUSIBLE: usize = 24;

/// Which fused handler runs a pair or a triple of opcodes: tables indexed
/// by each opcode's slot among the fusible ones, built at compile time
/// from [`Handler::ALL`].
struct Fusions {
    /// An opcode's slot + 1 (0: it takes part in no fusion).
    slot: [u8; 256],
    pairs: [[Option<Handler>; FUSIBLE]; FUSIBLE],
    triples: [[[Option<Handler>; FUSIBLE]; FUSIBLE]; FUSIBLE],
}

static FUSIONS: Fusions = Fusions::build();

impl Fusions {
    const fn build() -> Fusions {
        let mut f = Fusions {
            slot: [0; 256],
            pairs: [[None; FUSIBLE]; FUSIBLE],
            triples: [[[None; FUSIBLE]; FUSIBLE]; FUSIBLE],
        };
        let mut used = 0;
        let mut h = 0;
        while h < Handler::ALL.len() {
            let parts = Handler::ALL[h].parts();
            let mut at = [0usize; 3];
            let mut k = 0;
            while k < parts.len() {
                let op = parts[k] as usize;
                if f.slot[op] == 0 {
                    assert!(used < FUSIBLE, "raise FUSIBLE");
                    used += 1;
                    f.slot[op] = used as u8;
                }
                at[k] = f.slot[op] as usize - 1;
                k += 1;
            }
            let cell = match parts.len() {
                0 => None,
                2 => Some(&mut f.pairs[at[0]][at[1]]),
                3 => Some(&mut f.triples[at[0]][at[1]][at[2]]),
                _ => panic!("a fusion is two or three instructions"),
            };
            if let Some(cell) = cell {
                assert!(cell.is_none(), "two fused handlers for one sequence");
                *cell = Some(Handler::ALL[h]);
            }
            h += 1;
        }
        f
    }

    #[inline]
    fn slot(&self, opcode: Opcode) -> Option<usize> {
        (self.slot[opcode as usize] as usize).checked_sub(1)
    }

    fn pair(&self, a: Opcode, b: Opcode) -> Option<Handler> {
        self.pairs[self.slot(a)?][self.slot(b)?]
    }

    fn triple(&self, a: Opcode, b: Opcode, c: Opcode) -> Option<Handler> {
        self.triples[self.slot(a)?][self.slot(b)?][self.slot(c)?]
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
        opcode: Handler::trap,
        a: RegIndex::R0,
        b: RegIndex::R0,
        d: RegIndex::R0,
        x: 0,
        y: 0,
        gas: 0,
    };
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

/// The fused sequences of two or three instructions: `name = number,
/// [first, second(, third)];`. Chosen from dynamic pair counts of the
/// benchmark suite and the dispatches left in its hottest blocks
/// (docs/pvm-speed.md); numbers are ones no opcode uses.
macro_rules! with_fusions {
    ($callback:ident { $($instructions:tt)* }) => {
        $callback! {
            [$($instructions)*]
            [
                load_ind_u64__add_64 = 240, [load_ind_u64, add_64];
                load_ind_u64__load_ind_u64 = 241, [load_ind_u64, load_ind_u64];
                store_ind_u64__load_ind_u64 = 242, [store_ind_u64, load_ind_u64];
                add_64__store_ind_u64 = 243, [add_64, store_ind_u64];
                add_64__add_64 = 244, [add_64, add_64];
                xor__rot_r_64_imm = 245, [xor, rot_r_64_imm];
                load_ind_u8__add_imm_64 = 248, [load_ind_u8, add_imm_64];
                xor__add_imm_64 = 249, [xor, add_imm_64];
                mul_64__branch_ne_imm = 250, [mul_64, branch_ne_imm];
                add_64__load_ind_u64 = 231, [add_64, load_ind_u64];
                load_ind_u64__xor = 232, [load_ind_u64, xor];
                xor__store_ind_u64 = 233, [xor, store_ind_u64];
                load_ind_u64__store_ind_u64 = 234, [load_ind_u64, store_ind_u64];
                store_ind_u64__add_64 = 235, [store_ind_u64, add_64];
                shlo_l_imm_64__shlo_l_imm_64 = 236, [shlo_l_imm_64, shlo_l_imm_64];
                shlo_r_imm_64__add_64 = 237, [shlo_r_imm_64, add_64];
                load_ind_u8__and_imm = 238, [load_ind_u8, and_imm];
                shlo_l_64__or = 239, [shlo_l_64, or];
                add_64__store_ind_u8 = 251, [add_64, store_ind_u8];
                add_64__store_imm_ind_u8 = 252, [add_64, store_imm_ind_u8];
                add_64__jump = 253, [add_64, jump];
                load_ind_u64__branch_ge_u = 254, [load_ind_u64, branch_ge_u];
                store_ind_u64__add_imm_64 = 255, [store_ind_u64, add_imm_64];
                add_64__branch_ne_imm = 2, [add_64, branch_ne_imm];
                rot_r_64_imm__rot_r_64_imm = 3, [rot_r_64_imm, rot_r_64_imm];
                rot_r_64_imm__load_ind_u64 = 4, [rot_r_64_imm, load_ind_u64];
                store_ind_u64__rot_r_64_imm = 5, [store_ind_u64, rot_r_64_imm];
                rot_r_64_imm__store_ind_u64 = 6, [rot_r_64_imm, store_ind_u64];
                load_ind_u64__add_64__xor = 11, [load_ind_u64, add_64, xor];
                add_64__store_ind_u64__load_ind_u64 = 12, [add_64, store_ind_u64, load_ind_u64];
                add_64__load_ind_u64__xor = 13, [add_64, load_ind_u64, xor];
                rot_r_64_imm__rot_r_64_imm__rot_r_64_imm = 14, [rot_r_64_imm, rot_r_64_imm, rot_r_64_imm];
                load_ind_u64__move_reg__branch_ne_imm = 15, [load_ind_u64, move_reg, branch_ne_imm];
                load_ind_u64__shlo_l_imm_64__shlo_l_imm_64 = 16, [load_ind_u64, shlo_l_imm_64, shlo_l_imm_64];
                load_ind_u64__load_ind_u64__store_ind_u64 = 17, [load_ind_u64, load_ind_u64, store_ind_u64];
                shlo_l_imm_64__shlo_l_imm_64__add_imm_64 = 18, [shlo_l_imm_64, shlo_l_imm_64, add_imm_64];
                shlo_r_imm_64__add_64__load_ind_u8 = 19, [shlo_r_imm_64, add_64, load_ind_u8];
                and_imm__shlo_l_64__or = 21, [and_imm, shlo_l_64, or];
                add_64__store_ind_u8__branch_lt_u = 22, [add_64, store_ind_u8, branch_lt_u];
                store_ind_u64__add_imm_64__jump = 23, [store_ind_u64, add_imm_64, jump];
                load_ind_u8__add_imm_64__xor = 24, [load_ind_u8, add_imm_64, xor];
                add_imm_64__mul_64__branch_ne_imm = 25, [add_imm_64, mul_64, branch_ne_imm];
                add_imm_64__add_64__branch_ne_imm = 26, [add_imm_64, add_64, branch_ne_imm];
            ]
        }
    };
}

pub(crate) use with_fusions;

macro_rules! handlers_from_instructions {
    ($($instructions:tt)*) => {
        with_fusions!(define_handlers { $($instructions)* });
    };
}

macro_rules! define_handlers {
    (
        [$($name:ident = $op:literal, $fmt:ident, $gas:literal, $flow:ident;)*]
        [$($fused:ident = $fused_op:literal, [$first:ident $(, $rest:ident)+];)*]
    ) => {
        /// What the interpreter dispatches on: every [`Opcode`] (same
        /// number) and the fused sequences, which the fast loop runs as one
        /// step (the stepping loop runs their first instruction alone).
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum Handler {
            $($name = $op,)*
            $($fused = $fused_op,)*
        }

        impl Handler {
            /// Every handler, the fused sequences last.
            pub(crate) const ALL: &'static [Handler] = &[
                $(Handler::$name,)*
                $(Handler::$fused,)*
            ];

            pub(crate) const fn from_opcode(opcode: Opcode) -> Handler {
                match opcode {
                    $(Opcode::$name => Handler::$name,)*
                }
            }

            /// The opcode of the (first) instruction.
            pub(crate) const fn unfused(self) -> Opcode {
                match self {
                    $(Handler::$name => Opcode::$name,)*
                    $(Handler::$fused => Opcode::$first,)*
                }
            }

            /// The instructions a fused handler runs (empty for a
            /// plain instruction's).
            pub(crate) const fn parts(self) -> &'static [Opcode] {
                match self {
                    $(Handler::$fused => &[Opcode::$first $(, Opcode::$rest)+],)*
                    _ => &[],
                }
            }
        }
    };
}

crate::with_instructions!(handlers_from_instructions);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pvm::asm::{ProgramBuilder, Reg::*};
    use crate::pvm::{Access, Exit, Machine, Memory, PageMapEntry};

    /// `load_imm r2, 0x10000; load_ind_u64 r1, [r2]; load_ind_u64 r3,
    /// [r4]` (r4 = 0x30000, unmapped), then a halt; 42 at 0x10000.
    fn two_loads() -> (Program, Memory) {
        let mut p = ProgramBuilder::new();
        p.load_imm(R2, 0x10000)
            .load_ind_u64(R1, R2, 0)
            .load_ind_u64(R3, R4, 0)
            .jump_ind(R0, 0);
        with_page(&p, Access::Read)
    }

    #[test]
    fn register_indices_are_the_register_numbers_capped_at_12() {
        for n in 0..=12u8 {
            assert_eq!(RegIndex::new(n).index(), usize::from(n));
        }
        for n in [13, 15, 16, 255] {
            assert_eq!(RegIndex::new(n), RegIndex::R12);
        }
    }

    #[test]
    fn adjacent_loads_are_fused_and_the_second_keeps_its_own_handler() {
        let (program, _) = two_loads();
        assert_eq!(program.ops[1].opcode, Handler::load_ind_u64__load_ind_u64);
        assert_eq!(program.ops[2].opcode, Handler::load_ind_u64);
        assert_eq!(program.ops[1].opcode.unfused(), Opcode::load_ind_u64);
    }

    #[test]
    fn a_fault_in_a_fused_pairs_second_instruction_stops_there() {
        let (program, memory) = two_loads();
        let mut regs = [0; 13];
        regs[4] = 0x30000;
        let mut m = Machine::new(regs, 0, 100, memory);
        assert_eq!(m.run(&program), Exit::PageFault(0x30000));
        assert_eq!(m.pc, program.pcs[2], "the second load's pc");
        assert_eq!(m.regs[1], 42, "the first load ran");
        // The whole block (4 instructions) was charged on entry.
        assert_eq!(m.gas, 96);
    }

    /// `p`'s program and a memory of one page at 0x10000 holding 42.
    fn with_page(p: &ProgramBuilder, access: Access) -> (Program, Memory) {
        let program = Program::from_blob(&p.build().expect("builds")).expect("decodes");
        let mut memory = Memory::from_page_map(&[PageMapEntry {
            address: 0x10000,
            length: 0x1000,
            access,
        }])
        .expect("maps");
        memory
            .initialize(0x10000, &42u64.to_le_bytes())
            .expect("fits");
        (program, memory)
    }

    #[test]
    fn fusion_takes_the_fewest_dispatches_not_the_first_match() {
        // add_64 + load_ind_u64 is a pair, but taking it leaves add_64 and
        // xor alone (three dispatches); add_64 alone, then the triple
        // load_ind_u64 + add_64 + xor, is two.
        let mut p = ProgramBuilder::new();
        p.add_64(R1, R2, R3)
            .load_ind_u64(R4, R5, 0)
            .add_64(R6, R4, R1)
            .xor(R7, R6, R2)
            .jump_ind(R0, 0);
        let (program, memory) = with_page(&p, Access::Write);
        assert_eq!(program.ops[0].opcode, Handler::add_64);
        assert_eq!(program.ops[1].opcode, Handler::load_ind_u64__add_64__xor);
        let mut regs = [0; 13];
        (regs[0], regs[2], regs[3], regs[5]) =
            (u64::from(crate::pvm::layout::HALT_ADDRESS), 1, 2, 0x10000);
        let mut m = Machine::new(regs, 0, 100, memory);
        assert_eq!(m.run(&program), Exit::Halt);
        assert_eq!(
            (m.regs[1], m.regs[4], m.regs[6], m.regs[7]),
            (3, 42, 45, 44)
        );
        assert_eq!(m.gas, 95, "five instructions, one gas each");
    }

    #[test]
    fn a_fused_part_reads_the_latest_value_of_every_register() {
        // Each part reads a register an earlier part wrote: the newest
        // write (forwarded inside the handler) or, once another part
        // wrote since, the register file.
        let mut p = ProgramBuilder::new();
        p.rot_r_64_imm(R1, R2, 8)
            .rot_r_64_imm(R1, R1, 8)
            .rot_r_64_imm(R3, R1, 8)
            .rot_r_64_imm(R1, R2, 8)
            .rot_r_64_imm(R4, R2, 16)
            .rot_r_64_imm(R5, R1, 8)
            .jump_ind(R0, 0);
        let (program, memory) = with_page(&p, Access::Write);
        let triple = Handler::rot_r_64_imm__rot_r_64_imm__rot_r_64_imm;
        assert_eq!(
            (program.ops[0].opcode, program.ops[3].opcode),
            (triple, triple)
        );
        let x = 0x0123_4567_89ab_cdef_u64;
        let mut regs = [0; 13];
        (regs[0], regs[2]) = (u64::from(crate::pvm::layout::HALT_ADDRESS), x);
        let mut m = Machine::new(regs, 0, 100, memory);
        assert_eq!(m.run(&program), Exit::Halt);
        assert_eq!(
            m.regs[3],
            x.rotate_right(24),
            "a chain through one register"
        );
        assert_eq!(m.regs[1], x.rotate_right(8));
        assert_eq!(m.regs[4], x.rotate_right(16));
        assert_eq!(
            m.regs[5],
            x.rotate_right(16),
            "r1 as the first part wrote it"
        );
    }

    #[test]
    fn a_fault_in_a_fused_triples_last_instruction_stops_there() {
        let mut p = ProgramBuilder::new();
        p.add_64(R1, R2, R3)
            .store_ind_u64(R1, R5, 8)
            .load_ind_u64(R4, R6, 0)
            .jump_ind(R0, 0);
        let (program, memory) = with_page(&p, Access::Write);
        assert_eq!(
            program.ops[0].opcode,
            Handler::add_64__store_ind_u64__load_ind_u64
        );
        let mut regs = [0; 13];
        (regs[2], regs[3], regs[5], regs[6]) = (1, 2, 0x10000, 0x30000);
        let mut m = Machine::new(regs, 0, 100, memory);
        assert_eq!(m.run(&program), Exit::PageFault(0x30000));
        assert_eq!(m.pc, program.pcs[2], "the load's pc");
        assert_eq!(m.regs[1], 3, "the add ran");
        let mut stored = [0; 8];
        m.memory.read(0x10008, &mut stored).expect("reads");
        assert_eq!(u64::from_le_bytes(stored), 3, "the store ran");
    }

    #[test]
    fn stepping_runs_a_fused_pairs_first_instruction_alone() {
        let (program, memory) = two_loads();
        let mut regs = [0; 13];
        regs[4] = 0x30000;
        // Gas for `load_imm` and the first load only.
        let mut m = Machine::new(regs, 0, 2, memory);
        assert_eq!(m.run(&program), Exit::OutOfGas);
        assert_eq!(m.pc, program.pcs[2], "stopped before the second load");
        assert_eq!(m.regs[1], 42, "the first load ran");
    }
}
