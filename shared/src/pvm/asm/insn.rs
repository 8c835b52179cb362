//! One instruction as the tools see it (opcode + operands whose jump targets
//! may still be labels) and its canonical encoding.
//!
//! The canonical encoding is the shortest one the Graypaper's decoder reads
//! back to the same operands: every immediate takes the fewest octets whose
//! sign extension gives its value (none for zero), registers are written
//! as-is and nothing follows the last operand.

use core::fmt;

use super::error::BuildError;
use crate::pvm::decode::{Operands, sext};
use crate::pvm::instructions::{ArgFormat, Opcode};

/// A PVM register, `r0` … `r12`.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Reg {
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

impl Reg {
    /// Every register, by index.
    pub const ALL: [Reg; 13] = [
        Reg::R0,
        Reg::R1,
        Reg::R2,
        Reg::R3,
        Reg::R4,
        Reg::R5,
        Reg::R6,
        Reg::R7,
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
        Reg::R12,
    ];

    /// The register with index `index`, if it is below 13.
    pub fn new(index: u8) -> Option<Reg> {
        Reg::ALL.get(usize::from(index)).copied()
    }

    /// The register's index.
    pub const fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.index())
    }
}

/// An immediate operand: a 64-bit value that a ≤ 4-octet field can carry,
/// i.e. the sign extension of its low 32 bits.
///
/// `From<i32>` takes the value as is; `From<u32>` takes the bit pattern
/// (so `0xFFFF_0000u32` is the address the machine sees, whose 64-bit
/// value is `0xFFFF_FFFF_FFFF_0000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Imm(u64);

impl Imm {
    /// The immediate with this 64-bit value, if a 32-bit field can hold it.
    pub const fn new(value: u64) -> Option<Imm> {
        if fits_imm(value) {
            Some(Imm(value))
        } else {
            None
        }
    }

    /// The 64-bit value (sign-extended).
    pub const fn value(self) -> u64 {
        self.0
    }
}

impl From<i32> for Imm {
    fn from(value: i32) -> Imm {
        Imm(value as i64 as u64)
    }
}

impl From<u32> for Imm {
    fn from(bits: u32) -> Imm {
        Imm(bits as i32 as i64 as u64)
    }
}

/// Whether a 32-bit immediate field can carry the 64-bit `value`.
pub(crate) const fn fits_imm(value: u64) -> bool {
    value as u32 as i32 as i64 as u64 == value
}

/// A label: a code position named before it is known (forward references
/// are resolved by [`ProgramBuilder::build`](super::ProgramBuilder::build)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub(crate) u32);

impl Label {
    /// The label's number within its builder (labels are numbered from 0 in
    /// creation order).
    pub fn id(self) -> u32 {
        self.0
    }
}

/// Where a jump, a branch or a jump-table entry goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A label's position.
    Label(Label),
    /// An absolute code offset; it need not be an instruction (jumping to
    /// such a place panics), and may even lie outside the code.
    Absolute(i64),
}

impl From<Label> for Target {
    fn from(label: Label) -> Target {
        Target::Label(label)
    }
}

/// An instruction's operands, by [`ArgFormat`], named as in the Graypaper
/// (`r_A`, `r_B`, `r_D`, `ν_X`, `ν_Y`). Immediates hold 64-bit values as the
/// decoder produces them (sign-extended); targets may be labels.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Args {
    NoArgs,
    OneImm { x: u64 },
    OneRegExtImm { a: Reg, x: u64 },
    TwoImms { x: u64, y: u64 },
    OneOffset { t: Target },
    OneRegOneImm { a: Reg, x: u64 },
    OneRegTwoImms { a: Reg, x: u64, y: u64 },
    OneRegImmOffset { a: Reg, x: u64, t: Target },
    TwoRegs { d: Reg, a: Reg },
    TwoRegsOneImm { a: Reg, b: Reg, x: u64 },
    TwoRegsOneOffset { a: Reg, b: Reg, t: Target },
    TwoRegsTwoImms { a: Reg, b: Reg, x: u64, y: u64 },
    ThreeRegs { d: Reg, a: Reg, b: Reg },
}

impl Args {
    /// The operand format these arguments belong to.
    pub fn format(&self) -> ArgFormat {
        match self {
            Args::NoArgs => ArgFormat::NoArgs,
            Args::OneImm { .. } => ArgFormat::OneImm,
            Args::OneRegExtImm { .. } => ArgFormat::OneRegExtImm,
            Args::TwoImms { .. } => ArgFormat::TwoImms,
            Args::OneOffset { .. } => ArgFormat::OneOffset,
            Args::OneRegOneImm { .. } => ArgFormat::OneRegOneImm,
            Args::OneRegTwoImms { .. } => ArgFormat::OneRegTwoImms,
            Args::OneRegImmOffset { .. } => ArgFormat::OneRegImmOffset,
            Args::TwoRegs { .. } => ArgFormat::TwoRegs,
            Args::TwoRegsOneImm { .. } => ArgFormat::TwoRegsOneImm,
            Args::TwoRegsOneOffset { .. } => ArgFormat::TwoRegsOneOffset,
            Args::TwoRegsTwoImms { .. } => ArgFormat::TwoRegsTwoImms,
            Args::ThreeRegs { .. } => ArgFormat::ThreeRegs,
        }
    }

    /// The jump target, for the formats that have one.
    pub fn target(&self) -> Option<Target> {
        match *self {
            Args::OneOffset { t }
            | Args::OneRegImmOffset { t, .. }
            | Args::TwoRegsOneOffset { t, .. } => Some(t),
            _ => None,
        }
    }

    /// The arguments of decoded operands (targets become absolute offsets).
    /// Returns `None` if a register index is above 12 (the decoder clamps,
    /// so this does not happen for its output).
    pub fn from_operands(operands: &Operands) -> Option<Args> {
        let r = Reg::new;
        Some(match *operands {
            Operands::NoArgs => Args::NoArgs,
            Operands::OneImm { imm } => Args::OneImm { x: imm },
            Operands::OneRegExtImm { ra, imm } => Args::OneRegExtImm { a: r(ra)?, x: imm },
            Operands::TwoImms { x, y } => Args::TwoImms { x, y },
            Operands::OneOffset { target } => Args::OneOffset {
                t: Target::Absolute(target),
            },
            Operands::OneRegOneImm { ra, imm } => Args::OneRegOneImm { a: r(ra)?, x: imm },
            Operands::OneRegTwoImms { ra, x, y } => Args::OneRegTwoImms { a: r(ra)?, x, y },
            Operands::OneRegImmOffset { ra, imm, target } => Args::OneRegImmOffset {
                a: r(ra)?,
                x: imm,
                t: Target::Absolute(target),
            },
            Operands::TwoRegs { rd, ra } => Args::TwoRegs {
                d: r(rd)?,
                a: r(ra)?,
            },
            Operands::TwoRegsOneImm { ra, rb, imm } => Args::TwoRegsOneImm {
                a: r(ra)?,
                b: r(rb)?,
                x: imm,
            },
            Operands::TwoRegsOneOffset { ra, rb, target } => Args::TwoRegsOneOffset {
                a: r(ra)?,
                b: r(rb)?,
                t: Target::Absolute(target),
            },
            Operands::TwoRegsTwoImms { ra, rb, x, y } => Args::TwoRegsTwoImms {
                a: r(ra)?,
                b: r(rb)?,
                x,
                y,
            },
            Operands::ThreeRegs { ra, rb, rd } => Args::ThreeRegs {
                d: r(rd)?,
                a: r(ra)?,
                b: r(rb)?,
            },
        })
    }
}

/// One instruction: an opcode and operands of its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    opcode: Opcode,
    args: Args,
}

impl Insn {
    /// Pairs `opcode` with `args`; fails when `args` are not of the
    /// opcode's format or an immediate does not fit its field.
    pub fn new(opcode: Opcode, args: Args) -> Result<Insn, BuildError> {
        if args.format() != opcode.format() {
            return Err(BuildError::WrongFormat {
                opcode,
                expected: opcode.format(),
            });
        }
        let immediates: &[u64] = match &args {
            Args::OneImm { x }
            | Args::OneRegOneImm { x, .. }
            | Args::OneRegImmOffset { x, .. }
            | Args::TwoRegsOneImm { x, .. } => &[*x],
            Args::TwoImms { x, y }
            | Args::OneRegTwoImms { x, y, .. }
            | Args::TwoRegsTwoImms { x, y, .. } => &[*x, *y],
            _ => &[],
        };
        if let Some(&value) = immediates.iter().find(|&&v| !fits_imm(v)) {
            return Err(BuildError::ImmediateTooWide { opcode, value });
        }
        Ok(Insn { opcode, args })
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        self.opcode
    }

    /// The operands.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// The same instruction going to `target` (no change for formats
    /// without a target).
    pub fn with_target(mut self, target: Target) -> Insn {
        match &mut self.args {
            Args::OneOffset { t }
            | Args::OneRegImmOffset { t, .. }
            | Args::TwoRegsOneOffset { t, .. } => *t = target,
            _ => {}
        }
        self
    }
}

/// The longest canonical instruction: opcode, two register octets and two
/// 4-octet immediates.
pub(crate) const MAX_INSN_LEN: usize = 11;

/// An encoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Encoded {
    bytes: [u8; MAX_INSN_LEN],
    len: usize,
}

impl Encoded {
    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn push_le(&mut self, value: u64, n: usize) {
        for &byte in &value.to_le_bytes()[..n] {
            self.push(byte);
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Fewest octets (0..=4) whose sign extension reproduces `value`; `None`
/// when even 4 do not.
pub(crate) fn imm_len(value: u64) -> Option<usize> {
    (0..=4).find(|&n| sext(value & low_mask(n), n) == value)
}

fn low_mask(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// Encodes `insn` at code offset `pc`, with its target (if any) already
/// resolved to the absolute offset `target`. The offset field takes at
/// least `offset_floor` octets (padding keeps a layout stable while jump
/// distances settle). Fails when the relative offset needs more than 32 bits.
pub(crate) fn encode(
    insn: &Insn,
    pc: u32,
    target: Option<i64>,
    offset_floor: usize,
) -> Result<Encoded, BuildError> {
    let mut out = Encoded {
        bytes: [0; MAX_INSN_LEN],
        len: 0,
    };
    out.push(insn.opcode.to_u8());
    let relative = || -> Result<(u64, usize), BuildError> {
        let distance = target.unwrap_or(0) - i64::from(pc);
        let value = distance as u64;
        let len = imm_len(value).ok_or(BuildError::JumpTooFar {
            item: 0,
            pc,
            distance,
        })?;
        Ok((value, len.max(offset_floor.min(4))))
    };
    // `Insn::new` guarantees every immediate fits, so `imm_len` is Some.
    let len_of = |value: u64| imm_len(value).unwrap_or(4);
    match insn.args {
        Args::NoArgs => {}
        Args::OneImm { x } => out.push_le(x, len_of(x)),
        Args::OneRegExtImm { a, x } => {
            out.push(a.index());
            out.push_le(x, 8);
        }
        Args::TwoImms { x, y } => {
            let lx = len_of(x);
            out.push(lx as u8);
            out.push_le(x, lx);
            out.push_le(y, len_of(y));
        }
        Args::OneOffset { .. } => {
            let (offset, len) = relative()?;
            out.push_le(offset, len);
        }
        Args::OneRegOneImm { a, x } => {
            out.push(a.index());
            out.push_le(x, len_of(x));
        }
        Args::OneRegTwoImms { a, x, y } => {
            let lx = len_of(x);
            out.push(a.index() | (lx as u8) << 4);
            out.push_le(x, lx);
            out.push_le(y, len_of(y));
        }
        Args::OneRegImmOffset { a, x, .. } => {
            let lx = len_of(x);
            let (offset, len) = relative()?;
            out.push(a.index() | (lx as u8) << 4);
            out.push_le(x, lx);
            out.push_le(offset, len);
        }
        Args::TwoRegs { d, a } => out.push(d.index() | a.index() << 4),
        Args::TwoRegsOneImm { a, b, x } => {
            out.push(a.index() | b.index() << 4);
            out.push_le(x, len_of(x));
        }
        Args::TwoRegsOneOffset { a, b, .. } => {
            let (offset, len) = relative()?;
            out.push(a.index() | b.index() << 4);
            out.push_le(offset, len);
        }
        Args::TwoRegsTwoImms { a, b, x, y } => {
            let lx = len_of(x);
            out.push(a.index() | b.index() << 4);
            out.push(lx as u8);
            out.push_le(x, lx);
            out.push_le(y, len_of(y));
        }
        Args::ThreeRegs { d, a, b } => {
            out.push(a.index() | b.index() << 4);
            out.push(d.index());
        }
    }
    Ok(out)
}

/// Length in octets of the offset field `encode` wrote for `insn`, used as
/// the floor on the next layout pass.
pub(crate) fn offset_len(insn: &Insn, encoded: &Encoded) -> usize {
    let fixed = match insn.args {
        Args::OneOffset { .. } => 1,
        Args::OneRegImmOffset { x, .. } => 2 + imm_len(x).unwrap_or(4),
        Args::TwoRegsOneOffset { .. } => 2,
        _ => return 0,
    };
    encoded.len - fixed
}
