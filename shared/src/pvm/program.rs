//! A program blob pre-decoded once into a dense array of fixed-size
//! instructions with operands extracted and jump targets resolved.
//!
//! The array holds, in code order, one entry per octet whose bitmask bit is
//! set, plus a `trap` wherever sequential execution would land on an octet
//! that is not an instruction start (after a skip capped at 24, and at the
//! end of the code). Sequential execution therefore always moves from entry
//! `i` to entry `i + 1`, and the last entry is always a `trap`.

use alloc::vec::Vec;

use super::blob::{Bitmask, ProgramParts, deblob, decode_natural};
use super::decode::sext;
use super::error::ProgramError;
pub(crate) use super::fusion::Handler;
use super::fusion::fuse;
use super::instructions::{ArgFormat, Opcode};

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
    /// The machine code [`Program::compile_native`] made, if it did.
    #[cfg(feature = "jit")]
    pub(crate) native: super::jit::NativeSlot,
}

/// Most instructions (bitmask bits) a program may have. Pre-decoding costs
/// 21 bytes per entry (instructions, plus a synthesised trap per 25
/// octets of code at most), peak and kept, so this bounds a program's
/// decoder memory (~5.5 MB, plus under a byte per code octet) whatever the
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
        let instructions = parts.bitmask.count_set(parts.code.len()) as u64;
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
        let mut program = Program::decode(parts.code, &parts.bitmask);
        // The table resolved in place (same element type: no allocation).
        let jump_targets = parts
            .jump_table
            .into_iter()
            .map(|entry| program.resolve(entry))
            .collect();
        program.jump_targets = jump_targets;
        Ok(program)
    }

    /// Approximate heap bytes the decoded program holds (for cache budgets).
    pub fn approx_bytes(&self) -> usize {
        let native = {
            #[cfg(feature = "jit")]
            {
                self.native_bytes()
            }
            #[cfg(not(feature = "jit"))]
            0
        };
        self.ops.len() * core::mem::size_of::<Op>()
            + self.pcs.len() * 4
            + self.jump_targets.len() * 4
            + self.block_starts.len()
            + native
    }

    /// Pre-decodes an already split blob.
    pub fn from_parts(parts: &ProgramParts<'_>) -> Program {
        let mut program = Program::decode(parts.code, &parts.bitmask);
        let jump_targets = parts
            .jump_table
            .iter()
            .map(|&entry| program.resolve(entry))
            .collect();
        program.jump_targets = jump_targets;
        program
    }

    /// Pre-decodes the code in one pass over its instruction starts (no
    /// intermediate array: in the guest every allocation is dear), then
    /// resolves the branch targets and fuses pairs. The jump table is left
    /// empty.
    fn decode(code: &[u8], bitmask: &Bitmask<'_>) -> Program {
        let code_len = code.len();
        let instructions = bitmask.count_set(code_len);
        // A synthesised `trap` inside the code follows a skip of 24 onto a
        // non-start: each takes 25 octets that start nothing; one more ends
        // the code. So this is enough, and exact without long gaps.
        let capacity = instructions + (code_len - instructions) / 25 + 1;
        let mut d = Decoder {
            ops: alloc::vec![TRAP; capacity],
            pcs: alloc::vec![0; capacity],
            block_starts: alloc::vec![false; capacity],
            len: 0,
            block_begin: 0,
            previous_ends: false,
        };
        let mut branches = false;
        // Whether the previous entry is a valid terminator (the next
        // instruction then starts a basic block).
        let mut after_terminator = false;
        let mut starts = bitmask.set_bits();
        let mut pc = starts.next_start();
        while pc < code_len {
            let next = starts.next_start();
            // The Graypaper's `skip`: octets to the next start, at most 24.
            let skip = (next - pc - 1).min(24);
            let byte = code[pc];
            let info = &INFO[usize::from(byte)];
            let flags = info.flags;
            let op = match info.format {
                Some(format) => lower_at(info, format, code, pc, skip),
                None => TRAP,
            };
            branches |= flags & HAS_TARGET != 0;
            // The Graypaper's `ϖ`: a valid instruction at offset 0 or
            // right after a terminator (which always ends just here: a
            // skip short of a start would have put a trap in between).
            let block_start = flags & VALID != 0 && (pc == 0 || after_terminator);
            after_terminator = flags & TERMINATOR != 0;
            d.push(op, pc as u32, block_start, after_terminator);
            let next_pc = pc + 1 + skip;
            if next_pc < code_len && next_pc < next {
                d.push(TRAP, next_pc as u32, false, true);
                after_terminator = false;
            }
            pc = next;
        }
        if d.len == 0 || d.pcs.get(d.len - 1) != Some(&(code_len as u32)) {
            d.push(TRAP, code_len as u32, false, true);
        }
        d.close_block(d.len);
        let Decoder {
            mut ops,
            mut pcs,
            mut block_starts,
            len,
            ..
        } = d;
        ops.truncate(len);
        pcs.truncate(len);
        block_starts.truncate(len);
        let mut program = Program {
            ops: Vec::new(),
            pcs,
            jump_targets: Vec::new(),
            block_starts,
            code_len: code_len as u32,
            #[cfg(feature = "jit")]
            native: Default::default(),
        };
        if branches {
            for op in &mut ops {
                if INFO[op.opcode as usize].flags & HAS_TARGET != 0 {
                    op.y = program.resolve(op.y);
                }
            }
        }
        fuse(&mut ops, &program.block_starts);
        program.ops = ops;
        program
    }

    /// The index of the basic block at code offset `target`, or
    /// [`INVALID_TARGET`].
    #[inline]
    fn resolve(&self, target: u32) -> u32 {
        self.index_of(target)
            .filter(|&i| self.starts_block(i))
            .map_or(INVALID_TARGET, |i| i as u32)
    }

    /// Whether entry `idx` starts a basic block.
    #[inline]
    pub(crate) fn starts_block(&self, idx: usize) -> bool {
        self.block_starts.get(idx).copied().unwrap_or(false)
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
        self.index_of(pc).is_some_and(|i| self.starts_block(i))
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

/// [`OpcodeInfo::flags`]: the octet is an opcode.
const VALID: u8 = 1;
/// [`OpcodeInfo::flags`]: the opcode ends a basic block.
const TERMINATOR: u8 = 2;
/// [`OpcodeInfo::flags`]: the instruction has a branch target (in `y`).
const HAS_TARGET: u8 = 4;

/// What the pre-decoder needs of an opcode octet.
#[derive(Clone, Copy)]
struct OpcodeInfo {
    /// `None`: not an opcode (the entry runs as `trap`).
    format: Option<ArgFormat>,
    handler: Handler,
    gas: u32,
    flags: u8,
}

/// By octet: one load per entry instead of a match (or a call, as
/// `Opcode::format` was in the guest) per question.
const INFO: [OpcodeInfo; 256] = {
    let mut table = [OpcodeInfo {
        format: None,
        handler: Handler::trap,
        gas: Opcode::trap.gas(),
        flags: 0,
    }; 256];
    let mut byte = 0;
    while byte < 256 {
        if let Some(opcode) = Opcode::from_u8(byte as u8) {
            let format = opcode.format();
            table[byte] = OpcodeInfo {
                format: Some(format),
                handler: Handler::from_opcode(opcode),
                gas: opcode.gas(),
                flags: VALID
                    | if opcode.is_terminator() {
                        TERMINATOR
                    } else {
                        0
                    }
                    | if matches!(
                        format,
                        ArgFormat::OneOffset
                            | ArgFormat::OneRegImmOffset
                            | ArgFormat::TwoRegsOneOffset
                    ) {
                        HAS_TARGET
                    } else {
                        0
                    },
            };
        }
        byte += 1;
    }
    table
};

/// By nibble: the register, `min(12, nibble)` (one load, not a match).
const REGS: [RegIndex; 16] = {
    let mut table = [RegIndex::R12; 16];
    let mut n = 0;
    while n < 16 {
        table[n] = RegIndex::new(n as u8);
        n += 1;
    }
    table
};

/// What invalid opcodes and synthesised traps decode to (`gas` is the
/// entry's own cost until its block is closed).
const TRAP: Op = Op {
    opcode: Handler::trap,
    a: RegIndex::R0,
    b: RegIndex::R0,
    d: RegIndex::R0,
    x: 0,
    y: 0,
    gas: Opcode::trap.gas(),
};

/// The arrays being built, in code order, with the open gas block. They
/// are allocated filled to the bound and written by index (a `push` per
/// array and entry cost more), then cut to `len`.
struct Decoder {
    ops: Vec<Op>,
    pcs: Vec<u32>,
    block_starts: Vec<bool>,
    /// Entries written.
    len: usize,
    /// Index of the first entry of the gas block not yet closed.
    block_begin: usize,
    /// Whether the last entry ends its gas block by itself (a terminator
    /// or a synthesised trap).
    previous_ends: bool,
}

impl Decoder {
    /// Appends an entry (`op.gas` its own cost for now), closing the
    /// previous gas block first when it ends there.
    #[inline(always)]
    fn push(&mut self, op: Op, pc: u32, starts: bool, ends: bool) {
        let at = self.len;
        // Gas blocks end at terminators and synthesised traps, and before
        // a basic block; an `ecalli` does not end one (departure 12).
        if self.previous_ends || starts {
            self.close_block(at);
        }
        // Within the bound the arrays were filled to; past it (never, by
        // the bound) they grow.
        match (
            self.ops.get_mut(at),
            self.pcs.get_mut(at),
            self.block_starts.get_mut(at),
        ) {
            (Some(op_at), Some(pc_at), Some(starts_at)) => {
                *op_at = op;
                *pc_at = pc;
                *starts_at = starts;
            }
            _ => {
                self.ops.truncate(at);
                self.pcs.truncate(at);
                self.block_starts.truncate(at);
                self.ops.push(op);
                self.pcs.push(pc);
                self.block_starts.push(starts);
            }
        }
        self.len = at + 1;
        self.previous_ends = ends;
    }

    /// Charges each entry of the open block up to `end` the cost of itself
    /// and the rest of the block.
    fn close_block(&mut self, end: usize) {
        let mut remaining = 0u32;
        if let Some(block) = self.ops.get_mut(self.block_begin..end) {
            for op in block.iter_mut().rev() {
                remaining = op.gas.saturating_add(remaining);
                op.gas = remaining;
            }
        }
        self.block_begin = end;
    }
}

/// Lowers the instruction at code offset `pc` (of skip length `skip`; its
/// opcode's `info`, of operand format `format`) into the interpreter's
/// format; what
/// [`decode_operands`](super::decode::decode_operands) decodes, read
/// straight from a zero-padded window of the code. A branch target is left
/// as a code offset in `y` (`u32::MAX`, never an instruction, when outside
/// 32 bits) for [`Program::resolve`].
// Not inlined: inlined, the pre-decoder's loop kept its state on the
// stack around the format match (−670 guest instructions on the sample
// program's 42 entries).
#[inline(never)]
fn lower_at(info: &OpcodeInfo, format: ArgFormat, code: &[u8], pc: usize, skip: usize) -> Op {
    // Operands reach at most 11 octets past the opcode; reads take 8 from
    // an offset up to 7. Past the code, ζ reads zeros.
    let mut z = [0u8; 16];
    // Near the end, the last 16 octets shifted down (a copy of a variable
    // length would be a `memcpy` call).
    let start = pc.min(code.len().saturating_sub(16));
    match code.get(start..start + 16) {
        Some(window) => {
            z.copy_from_slice(window);
            if start < pc {
                // `pc - start` < 16: `pc` is inside the code.
                let shifted = u128::from_le_bytes(z) >> (8 * (pc - start) as u32);
                z = shifted.to_le_bytes();
            }
        }
        // Code of fewer than 16 octets.
        None => {
            for (to, &from) in z.iter_mut().zip(code.get(pc..).unwrap_or(&[])) {
                *to = from;
            }
        }
    }
    // `E_n^{-1}` of the `n` (≤ 8) octets at `offset` (≤ 7).
    let le = |offset: usize, n: usize| -> u64 {
        let mut octets = [0u8; 8];
        octets.copy_from_slice(&z[offset..offset + 8]);
        let value = u64::from_le_bytes(octets);
        if n >= 8 {
            value
        } else {
            value & ((1u64 << (8 * n)) - 1)
        }
    };
    let imm = |offset: usize, n: usize| sext(le(offset, n), n) as u32;
    let target = |offset: usize, n: usize| {
        u32::try_from(pc as u32 as i64 + sext(le(offset, n), n) as i64).unwrap_or(u32::MAX)
    };
    // Two immediates after `before` octets: `l_X` from `length` (mod 8,
    // capped at 4), `l_Y` the rest of the skip (capped at 4).
    let lengths = |length: u8, before: usize| {
        let lx = usize::from(length % 8).min(4);
        (lx, skip.saturating_sub(lx + before).min(4))
    };
    // One immediate filling the skip after the register octet.
    let after_regs = skip.saturating_sub(1).min(4);
    // `min(12, …)` of the nibbles of ζ_{ı+1}.
    let low = REGS[usize::from(z[1] & 15)];
    let high = REGS[usize::from(z[1] >> 4)];
    let mut op = Op {
        opcode: info.handler,
        gas: info.gas,
        ..TRAP
    };
    match format {
        ArgFormat::NoArgs => {}
        ArgFormat::OneImm => op.x = imm(1, skip.min(4)),
        ArgFormat::OneRegExtImm => {
            let value = le(2, 8);
            op.a = low;
            op.x = value as u32;
            op.y = (value >> 32) as u32;
        }
        ArgFormat::TwoImms => {
            let (lx, ly) = lengths(z[1], 1);
            op.x = imm(2, lx);
            op.y = imm(2 + lx, ly);
        }
        ArgFormat::OneOffset => op.y = target(1, skip.min(4)),
        ArgFormat::OneRegOneImm => {
            op.a = low;
            op.x = imm(2, after_regs);
        }
        ArgFormat::OneRegTwoImms => {
            let (lx, ly) = lengths(z[1] >> 4, 1);
            op.a = low;
            op.x = imm(2, lx);
            op.y = imm(2 + lx, ly);
        }
        ArgFormat::OneRegImmOffset => {
            let (lx, ly) = lengths(z[1] >> 4, 1);
            op.a = low;
            op.x = imm(2, lx);
            op.y = target(2 + lx, ly);
        }
        ArgFormat::TwoRegs => {
            op.d = low;
            op.a = high;
        }
        ArgFormat::TwoRegsOneImm => {
            op.a = low;
            op.b = high;
            op.x = imm(2, after_regs);
        }
        ArgFormat::TwoRegsOneOffset => {
            op.a = low;
            op.b = high;
            op.y = target(2, after_regs);
        }
        ArgFormat::TwoRegsTwoImms => {
            let (lx, ly) = lengths(z[2], 2);
            op.a = low;
            op.b = high;
            op.x = imm(3, lx);
            op.y = imm(3 + lx, ly);
        }
        // r_D from the low nibble of ζ_{ı+2} (departure 10).
        ArgFormat::ThreeRegs => {
            op.a = low;
            op.b = high;
            op.d = REGS[usize::from(z[2] & 15)];
        }
    }
    op
}

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

#[cfg(test)]
#[path = "program_tests.rs"]
mod one_pass_tests;
