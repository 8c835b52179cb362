//! Operand decoding for one instruction (Graypaper A.5), shared by the
//! interpreter's pre-decoder and by tools such as disassemblers.
//!
//! Octets are read from `ζ = c ‖ [0, 0, …]`, so operands of the final
//! instruction that run past the code read as zeros.

use super::blob::{Bitmask, ProgramParts};
use super::instructions::{ArgFormat, Opcode};

/// A register index, already clamped to `0..=12` as the Graypaper's
/// `min(12, …)` prescribes.
pub type Reg = u8;

/// The decoded operands of one instruction. Immediates are sign-extended to
/// 64 bits; offsets are resolved to absolute code offsets (which may be out
/// of range, hence `i64`; jumping there panics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operands {
    /// No operands.
    NoArgs,
    /// `ecalli`'s immediate.
    OneImm {
        /// ν_X.
        imm: u64,
    },
    /// `load_imm_64`.
    OneRegExtImm {
        /// r_A.
        ra: Reg,
        /// ν_X (all 64 bits).
        imm: u64,
    },
    /// `store_imm_*`.
    TwoImms {
        /// ν_X (the address).
        x: u64,
        /// ν_Y (the value).
        y: u64,
    },
    /// `jump`.
    OneOffset {
        /// ν_X: the target code offset.
        target: i64,
    },
    /// Loads, stores and `jump_ind` with one register.
    OneRegOneImm {
        /// r_A.
        ra: Reg,
        /// ν_X.
        imm: u64,
    },
    /// `store_imm_ind_*`.
    OneRegTwoImms {
        /// r_A.
        ra: Reg,
        /// ν_X (address offset).
        x: u64,
        /// ν_Y (value).
        y: u64,
    },
    /// `load_imm_jump` and the immediate branches.
    OneRegImmOffset {
        /// r_A.
        ra: Reg,
        /// ν_X.
        imm: u64,
        /// ν_Y: the target code offset.
        target: i64,
    },
    /// Two registers: `r_D` is the low nibble, `r_A` the high one.
    TwoRegs {
        /// r_D (destination).
        rd: Reg,
        /// r_A (source).
        ra: Reg,
    },
    /// Two registers and an immediate: `r_A` low nibble, `r_B` high.
    TwoRegsOneImm {
        /// r_A.
        ra: Reg,
        /// r_B.
        rb: Reg,
        /// ν_X.
        imm: u64,
    },
    /// Register-register branches.
    TwoRegsOneOffset {
        /// r_A.
        ra: Reg,
        /// r_B.
        rb: Reg,
        /// ν_X: the target code offset.
        target: i64,
    },
    /// `load_imm_jump_ind`.
    TwoRegsTwoImms {
        /// r_A.
        ra: Reg,
        /// r_B.
        rb: Reg,
        /// ν_X.
        x: u64,
        /// ν_Y.
        y: u64,
    },
    /// Three registers.
    ThreeRegs {
        /// r_A.
        ra: Reg,
        /// r_B.
        rb: Reg,
        /// r_D (destination).
        rd: Reg,
    },
}

/// One instruction as found at a code offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Code offset of the opcode octet.
    pub pc: u32,
    /// The opcode, or `None` when the octet is not a valid opcode (the
    /// instruction then behaves as `trap`).
    pub opcode: Option<Opcode>,
    /// The Graypaper's `skip(pc)`: the next instruction is at
    /// `pc + 1 + skip`.
    pub skip: u32,
    /// The operands (`NoArgs` for invalid opcodes).
    pub operands: Operands,
}

impl Instruction {
    /// Code offset of the instruction that follows sequentially.
    pub fn next_pc(&self) -> u64 {
        u64::from(self.pc) + 1 + u64::from(self.skip)
    }
}

/// Decodes the instruction whose opcode octet is at `pc`. `pc` need not be
/// marked in the bitmask (the caller decides what that means); octets past
/// the code read as zero.
pub fn decode_instruction(code: &[u8], bitmask: &Bitmask<'_>, pc: u32) -> Instruction {
    let at = pc as usize;
    let skip = bitmask.skip(at);
    let opcode = code.get(at).copied().and_then(Opcode::from_u8);
    let operands = match opcode {
        Some(op) => decode_operands(op.format(), code, pc, skip),
        None => Operands::NoArgs,
    };
    Instruction {
        pc,
        opcode,
        skip,
        operands,
    }
}

/// Every instruction of a split blob in code order: one per octet whose
/// bitmask bit is set (what a disassembler lists).
pub fn instructions<'a>(parts: &'a ProgramParts<'a>) -> impl Iterator<Item = Instruction> + 'a {
    (0..parts.code.len())
        .filter(|&pc| parts.bitmask.is_set(pc))
        .map(|pc| decode_instruction(parts.code, &parts.bitmask, pc as u32))
}

/// Decodes the operands of format `format` for the instruction at `pc`
/// whose skip length is `skip` (`ℓ`).
pub fn decode_operands(format: ArgFormat, code: &[u8], pc: u32, skip: u32) -> Operands {
    let z = Zeta {
        code,
        base: pc as usize,
    };
    let skip = skip as usize;
    let low = |i| z.byte(i) & 15;
    let reg = |nibble: u8| nibble.min(12);
    let rel = |value: u64, len: usize| i64::from(pc) + signed(value, len);
    match format {
        ArgFormat::NoArgs => Operands::NoArgs,
        ArgFormat::OneImm => {
            let lx = skip.min(4);
            Operands::OneImm {
                imm: sext(z.le(1, lx), lx),
            }
        }
        ArgFormat::OneRegExtImm => Operands::OneRegExtImm {
            ra: reg(low(1)),
            imm: z.le(2, 8),
        },
        ArgFormat::TwoImms => {
            let lx = usize::from(z.byte(1) % 8).min(4);
            let ly = skip.saturating_sub(lx + 1).min(4);
            Operands::TwoImms {
                x: sext(z.le(2, lx), lx),
                y: sext(z.le(2 + lx, ly), ly),
            }
        }
        ArgFormat::OneOffset => {
            let lx = skip.min(4);
            Operands::OneOffset {
                target: rel(z.le(1, lx), lx),
            }
        }
        ArgFormat::OneRegOneImm => {
            let lx = skip.saturating_sub(1).min(4);
            Operands::OneRegOneImm {
                ra: reg(low(1)),
                imm: sext(z.le(2, lx), lx),
            }
        }
        ArgFormat::OneRegTwoImms | ArgFormat::OneRegImmOffset => {
            let ra = reg(low(1));
            let lx = usize::from((z.byte(1) >> 4) % 8).min(4);
            let ly = skip.saturating_sub(lx + 1).min(4);
            let x = sext(z.le(2, lx), lx);
            let y_raw = z.le(2 + lx, ly);
            if format == ArgFormat::OneRegTwoImms {
                Operands::OneRegTwoImms {
                    ra,
                    x,
                    y: sext(y_raw, ly),
                }
            } else {
                Operands::OneRegImmOffset {
                    ra,
                    imm: x,
                    target: rel(y_raw, ly),
                }
            }
        }
        ArgFormat::TwoRegs => Operands::TwoRegs {
            rd: reg(low(1)),
            ra: reg(z.byte(1) >> 4),
        },
        ArgFormat::TwoRegsOneImm | ArgFormat::TwoRegsOneOffset => {
            let ra = reg(low(1));
            let rb = reg(z.byte(1) >> 4);
            let lx = skip.saturating_sub(1).min(4);
            let raw = z.le(2, lx);
            if format == ArgFormat::TwoRegsOneImm {
                Operands::TwoRegsOneImm {
                    ra,
                    rb,
                    imm: sext(raw, lx),
                }
            } else {
                Operands::TwoRegsOneOffset {
                    ra,
                    rb,
                    target: rel(raw, lx),
                }
            }
        }
        ArgFormat::TwoRegsTwoImms => {
            let lx = usize::from(z.byte(2) % 8).min(4);
            let ly = skip.saturating_sub(lx + 2).min(4);
            Operands::TwoRegsTwoImms {
                ra: reg(low(1)),
                rb: reg(z.byte(1) >> 4),
                x: sext(z.le(3, lx), lx),
                y: sext(z.le(3 + lx, ly), ly),
            }
        }
        // r_D from the low nibble of ζ_{ı+2} (departure 10 in `pvm`'s
        // docs: PolkaVM and anan-as both do; the text has no `mod 16`).
        ArgFormat::ThreeRegs => Operands::ThreeRegs {
            ra: reg(low(1)),
            rb: reg(z.byte(1) >> 4),
            rd: reg(low(2)),
        },
    }
}

/// The Graypaper's `X_n`: sign-extends the `n`-octet value `x` to 64 bits.
#[inline]
pub fn sext(x: u64, n: usize) -> u64 {
    match n {
        0 => 0,
        8.. => x,
        _ => {
            let shift = 64 - 8 * n as u32;
            (((x << shift) as i64) >> shift) as u64
        }
    }
}

/// The Graypaper's `Z_n`: the `n`-octet value `x` read as two's complement.
fn signed(x: u64, n: usize) -> i64 {
    sext(x, n) as i64
}

/// `ζ` relative to one instruction: the code followed by zeros.
struct Zeta<'a> {
    code: &'a [u8],
    base: usize,
}

impl Zeta<'_> {
    fn byte(&self, offset: usize) -> u8 {
        self.code.get(self.base + offset).copied().unwrap_or(0)
    }

    /// `E_n^{-1}` of the `n` octets starting at `offset` (n ≤ 8).
    fn le(&self, offset: usize, n: usize) -> u64 {
        (0..n)
            .rev()
            .fold(0u64, |acc, i| (acc << 8) | u64::from(self.byte(offset + i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `c6 33 90` (shlo_r_32): r_D is 0x90's low nibble, φ0 — as in PolkaVM
    /// 0.37 and anan-as 1.2.0 — not min(12, 0x90) = φ12.
    #[test]
    fn three_register_destination_is_the_low_nibble() {
        let ops = decode_operands(ArgFormat::ThreeRegs, &[0xc6, 0x33, 0x90], 0, 2);
        assert_eq!(
            ops,
            Operands::ThreeRegs {
                ra: 3,
                rb: 3,
                rd: 0
            }
        );
        let ops = decode_operands(ArgFormat::ThreeRegs, &[0xc6, 0x33, 0x0d], 0, 2);
        assert_eq!(
            ops,
            Operands::ThreeRegs {
                ra: 3,
                rb: 3,
                rd: 12
            }
        );
        // Past the code's end ζ reads zeros: φ0.
        let ops = decode_operands(ArgFormat::ThreeRegs, &[0xc6, 0x33], 0, 1);
        assert_eq!(
            ops,
            Operands::ThreeRegs {
                ra: 3,
                rb: 3,
                rd: 0
            }
        );
    }
}
