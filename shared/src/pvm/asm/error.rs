//! Typed errors of the builder and the assembler.

use alloc::string::String;
use core::fmt;

use super::insn::Label;
use crate::pvm::instructions::{ArgFormat, Opcode};

/// Why [`ProgramBuilder`](super::ProgramBuilder) could not produce a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// `push` was given operands of another format.
    WrongFormat {
        /// The opcode.
        opcode: Opcode,
        /// The format it needs.
        expected: ArgFormat,
    },
    /// An immediate is not the sign extension of a 32-bit value.
    ImmediateTooWide {
        /// The opcode.
        opcode: Opcode,
        /// The offending 64-bit value.
        value: u64,
    },
    /// A label was used but never bound.
    UnboundLabel(Label),
    /// A label was bound twice.
    LabelBoundTwice(Label),
    /// A label from another builder (its number is out of range).
    ForeignLabel(Label),
    /// A jump's relative offset does not fit 32 bits.
    JumpTooFar {
        /// Index of the jump among the builder's items.
        item: usize,
        /// Code offset of the jump.
        pc: u32,
        /// The distance it needed.
        distance: i64,
    },
    /// A jump-table entry is negative or does not fit the entry size.
    JumpTableEntry {
        /// Index of the entry.
        index: usize,
        /// Its value (raw values above 2^63 show as negative).
        value: i64,
    },
    /// The requested jump-table entry size is above 8 octets.
    JumpEntrySize(u8),
    /// The code would exceed 2^32 octets.
    CodeTooLarge,
    /// A raw instruction was given no octets.
    EmptyRawInstruction,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::WrongFormat { opcode, expected } => {
                write!(f, "`{opcode}` takes operands of format {expected:?}")
            }
            BuildError::ImmediateTooWide { opcode, value } => write!(
                f,
                "`{opcode}`: immediate {value:#x} is not a sign-extended 32-bit value"
            ),
            BuildError::UnboundLabel(label) => write!(f, "label #{} is never bound", label.id()),
            BuildError::LabelBoundTwice(label) => {
                write!(f, "label #{} is bound twice", label.id())
            }
            BuildError::ForeignLabel(label) => {
                write!(f, "label #{} does not belong to this builder", label.id())
            }
            BuildError::JumpTooFar { pc, distance, .. } => write!(
                f,
                "jump at code offset {pc}: distance {distance} does not fit 32 bits"
            ),
            BuildError::JumpTableEntry { index, value } => write!(
                f,
                "jump-table entry {index} = {value} is negative or wider than the entry size"
            ),
            BuildError::JumpEntrySize(z) => {
                write!(f, "jump-table entry size {z} exceeds 8 octets")
            }
            BuildError::CodeTooLarge => f.write_str("code exceeds 2^32 octets"),
            BuildError::EmptyRawInstruction => f.write_str("a raw instruction needs octets"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BuildError {}

/// An assembler error: what went wrong and on which line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmError {
    /// 1-based line number in the source.
    pub line: usize,
    /// What went wrong.
    pub kind: AsmErrorKind,
}

/// What went wrong on a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsmErrorKind {
    /// A character that starts no token.
    UnexpectedChar(char),
    /// A number too large for 64 bits, or malformed.
    BadNumber(String),
    /// The line matches no instruction form.
    UnknownInstruction(String),
    /// The line has an instruction's shape but an operand is out of range.
    BadOperand {
        /// The instruction it was read as.
        opcode: Opcode,
        /// Why the operand is wrong.
        reason: &'static str,
    },
    /// `@name:` appears twice.
    DuplicateLabel(String),
    /// `@name` is used but never defined.
    UndefinedLabel(String),
    /// An unknown directive or malformed directive operands.
    BadDirective(String),
    /// The builder rejected the program.
    Build(BuildError),
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            AsmErrorKind::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            AsmErrorKind::BadNumber(text) => write!(f, "bad number `{text}`"),
            AsmErrorKind::UnknownInstruction(text) => {
                write!(f, "`{text}` is not an instruction, label or directive")
            }
            AsmErrorKind::BadOperand { opcode, reason } => {
                write!(f, "`{opcode}`: {reason}")
            }
            AsmErrorKind::DuplicateLabel(name) => write!(f, "label @{name} is defined twice"),
            AsmErrorKind::UndefinedLabel(name) => write!(f, "label @{name} is never defined"),
            AsmErrorKind::BadDirective(text) => write!(f, "bad directive: {text}"),
            AsmErrorKind::Build(error) => write!(f, "{error}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AsmError {}
