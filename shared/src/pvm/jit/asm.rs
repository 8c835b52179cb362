//! x86-64 machine code: only the instruction forms the compiler emits,
//! encoded by hand (REX, ModRM, SIB, VEX for BMI2's shifts).

use alloc::vec::Vec;

/// A general-purpose register by its hardware number (0–15).
pub(super) type Reg = u8;

pub(super) const RAX: Reg = 0;
pub(super) const RCX: Reg = 1;
pub(super) const RDX: Reg = 2;
pub(super) const RBX: Reg = 3;
pub(super) const RSP: Reg = 4;
pub(super) const RBP: Reg = 5;
pub(super) const RSI: Reg = 6;
pub(super) const RDI: Reg = 7;
pub(super) const R8: Reg = 8;
pub(super) const R9: Reg = 9;
pub(super) const R10: Reg = 10;
pub(super) const R11: Reg = 11;
pub(super) const R12: Reg = 12;
pub(super) const R13: Reg = 13;
pub(super) const R14: Reg = 14;
pub(super) const R15: Reg = 15;

/// Condition codes (the low nibble of `jcc`, `setcc`, `cmovcc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Cond {
    Below = 0x2,
    NotSign = 0x9,
    AboveEq = 0x3,
    Equal = 0x4,
    NotEqual = 0x5,
    BelowEq = 0x6,
    Above = 0x7,
    Less = 0xc,
    GreaterEq = 0xd,
    LessEq = 0xe,
    Greater = 0xf,
}

/// `[base + disp]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mem {
    pub base: Reg,
    pub disp: i32,
}

/// `[base + disp]`.
pub(super) const fn mem(base: Reg, disp: i32) -> Mem {
    Mem { base, disp }
}

/// The arithmetic group's operations: their `op r/m, r` opcode and their
/// `/digit` in the immediate forms (`0x81`, `0x83`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alu {
    Add,
    Or,
    And,
    Sub,
    Xor,
    Cmp,
}

impl Alu {
    const fn digit(self) -> u8 {
        match self {
            Alu::Add => 0,
            Alu::Or => 1,
            Alu::And => 4,
            Alu::Sub => 5,
            Alu::Xor => 6,
            Alu::Cmp => 7,
        }
    }

    /// `op r/m, r`.
    const fn store_form(self) -> u8 {
        self.digit() << 3 | 1
    }

    /// `op r, r/m`.
    const fn load_form(self) -> u8 {
        self.digit() << 3 | 3
    }
}

/// The shift group's `/digit` (`0xc1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shift {
    Rol = 0,
    Ror = 1,
    Shl = 4,
    Shr = 5,
    Sar = 7,
}

/// A BMI2 shift by a register (`shlx`, `shrx`, `sarx`): its VEX `pp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ShiftX {
    Shl = 1,
    Sar = 2,
    Shr = 3,
}

/// The operand width of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Width {
    W8,
    W16,
    W32,
    W64,
}

/// A code buffer being written.
#[derive(Default)]
pub(super) struct Asm {
    pub code: Vec<u8>,
}

fn fits_i8(value: i32) -> bool {
    i8::try_from(value).is_ok()
}

impl Asm {
    pub(super) fn pos(&self) -> usize {
        self.code.len()
    }

    fn byte(&mut self, byte: u8) {
        self.code.push(byte);
    }

    fn imm32(&mut self, value: i32) {
        self.code.extend_from_slice(&value.to_le_bytes());
    }

    /// A REX prefix when any of its bits is needed (or `force`: byte
    /// registers 4–7 mean `spl`…`dil` only with one).
    fn rex(&mut self, w: bool, reg: Reg, index: Reg, base: Reg, force: bool) {
        let rex =
            0x40 | u8::from(w) << 3 | (reg >> 3 & 1) << 2 | (index >> 3 & 1) << 1 | (base >> 3 & 1);
        if rex != 0x40 || force {
            self.byte(rex);
        }
    }

    fn modrm_reg(&mut self, reg: Reg, rm: Reg) {
        self.byte(0xc0 | (reg & 7) << 3 | (rm & 7));
    }

    fn modrm_mem(&mut self, reg: Reg, m: Mem) {
        let base = m.base & 7;
        let mode = if m.disp == 0 && base != 5 {
            0
        } else if fits_i8(m.disp) {
            1
        } else {
            2
        };
        self.byte(mode << 6 | (reg & 7) << 3 | base);
        if base == 4 {
            // rsp and r12 as a base need a SIB octet (no index).
            self.byte(0x24);
        }
        match mode {
            1 => self.byte(m.disp as i8 as u8),
            2 => self.imm32(m.disp),
            _ => {}
        }
    }

    /// `[base + index * 2^scale]`, base neither rbp nor r13.
    fn modrm_sib(&mut self, reg: Reg, base: Reg, index: Reg, scale: u8) {
        debug_assert!(base & 7 != 5 && index != RSP);
        self.byte((reg & 7) << 3 | 4);
        self.byte(scale << 6 | (index & 7) << 3 | (base & 7));
    }

    /// `op r/m, r` on two registers (`dst` is the r/m operand).
    fn rr(&mut self, opcode: &[u8], w: bool, dst: Reg, src: Reg) {
        self.rex(w, src, 0, dst, false);
        self.code.extend_from_slice(opcode);
        self.modrm_reg(src, dst);
    }

    /// `op r, r/m` with a register `reg` and memory `m`.
    fn rm(&mut self, opcode: &[u8], w: bool, reg: Reg, m: Mem, force_rex: bool) {
        self.rex(w, reg, 0, m.base, force_rex);
        self.code.extend_from_slice(opcode);
        self.modrm_mem(reg, m);
    }

    /// `mov dst, src`.
    pub(super) fn mov(&mut self, w: bool, dst: Reg, src: Reg) {
        self.rr(&[0x89], w, dst, src);
    }

    /// `op dst, src` for the arithmetic group.
    pub(super) fn alu(&mut self, op: Alu, w: bool, dst: Reg, src: Reg) {
        self.rr(&[op.store_form()], w, dst, src);
    }

    /// `op reg, [m]` for the arithmetic group.
    pub(super) fn alu_load(&mut self, op: Alu, w: bool, reg: Reg, m: Mem) {
        self.rm(&[op.load_form()], w, reg, m, false);
    }

    /// `op dst, imm` (sign-extended to 64 bits when `w`).
    pub(super) fn alu_imm(&mut self, op: Alu, w: bool, dst: Reg, imm: i32) {
        self.rex(w, 0, 0, dst, false);
        if fits_i8(imm) {
            self.byte(0x83);
            self.modrm_reg(op.digit(), dst);
            self.byte(imm as i8 as u8);
        } else {
            self.byte(0x81);
            self.modrm_reg(op.digit(), dst);
            self.imm32(imm);
        }
    }

    /// `op qword [m], imm`.
    pub(super) fn alu_mem_imm(&mut self, op: Alu, m: Mem, imm: i32) {
        self.rex(true, 0, 0, m.base, false);
        self.byte(0x81);
        self.modrm_mem(op.digit(), m);
        self.imm32(imm);
    }

    /// `test a, b`.
    pub(super) fn test(&mut self, a: Reg, b: Reg) {
        self.rr(&[0x85], true, a, b);
    }

    /// `imul dst, src`.
    pub(super) fn imul(&mut self, w: bool, dst: Reg, src: Reg) {
        self.rex(w, dst, 0, src, false);
        self.code.extend_from_slice(&[0x0f, 0xaf]);
        self.modrm_reg(dst, src);
    }

    /// `imul dst, src, imm`.
    pub(super) fn imul_imm(&mut self, w: bool, dst: Reg, src: Reg, imm: i32) {
        self.rex(w, dst, 0, src, false);
        self.byte(0x69);
        self.modrm_reg(dst, src);
        self.imm32(imm);
    }

    /// `shl`/`shr`/`sar`/`ror dst, count`.
    pub(super) fn shift_imm(&mut self, op: Shift, w: bool, dst: Reg, count: u8) {
        self.rex(w, 0, 0, dst, false);
        self.byte(0xc1);
        self.modrm_reg(op as u8, dst);
        self.byte(count);
    }

    /// `rol`/`ror`/... `dst, cl`.
    pub(super) fn shift_cl(&mut self, op: Shift, w: bool, dst: Reg) {
        self.rex(w, 0, 0, dst, false);
        self.byte(0xd3);
        self.modrm_reg(op as u8, dst);
    }

    /// `mul src` (`signed` false) or `imul src`: `rdx:rax = rax * src`.
    pub(super) fn widening_mul(&mut self, signed: bool, src: Reg) {
        self.rex(true, 0, 0, src, false);
        self.byte(0xf7);
        self.modrm_reg(if signed { 5 } else { 4 }, src);
    }

    /// `shlx`/`shrx`/`sarx dst, src, count` (BMI2; the count masked to the
    /// width, as the PVM's shifts do).
    pub(super) fn shift_x(&mut self, op: ShiftX, w: bool, dst: Reg, src: Reg, count: Reg) {
        self.byte(0xc4);
        // Inverted R, X, B; map 0F38.
        self.byte((!(dst >> 3) & 1) << 7 | 1 << 6 | (!(src >> 3) & 1) << 5 | 0x02);
        // W, inverted vvvv (the count), L = 0, pp.
        self.byte(u8::from(w) << 7 | (!count & 0xf) << 3 | op as u8);
        self.byte(0xf7);
        self.modrm_reg(dst, src);
    }

    /// `not dst`.
    pub(super) fn not(&mut self, dst: Reg) {
        self.rex(true, 0, 0, dst, false);
        self.byte(0xf7);
        self.modrm_reg(2, dst);
    }

    /// `bswap dst` (64 bits).
    pub(super) fn bswap(&mut self, dst: Reg) {
        self.rex(true, 0, 0, dst, false);
        self.byte(0x0f);
        self.byte(0xc8 | (dst & 7));
    }

    /// `popcnt dst, src` (64 or 32 bits).
    pub(super) fn popcnt(&mut self, w: bool, dst: Reg, src: Reg) {
        self.byte(0xf3);
        self.rex(w, dst, 0, src, false);
        self.code.extend_from_slice(&[0x0f, 0xb8]);
        self.modrm_reg(dst, src);
    }

    /// `bsf dst, src` (`reverse` false) or `bsr`: the index of the lowest
    /// (highest) set bit; ZF set, and `dst` undefined, when `src` is 0.
    pub(super) fn bit_scan(&mut self, reverse: bool, w: bool, dst: Reg, src: Reg) {
        self.rex(w, dst, 0, src, false);
        self.code
            .extend_from_slice(&[0x0f, if reverse { 0xbd } else { 0xbc }]);
        self.modrm_reg(dst, src);
    }

    /// `movsxd dst, src32`: the low half of `src` sign-extended.
    pub(super) fn movsxd(&mut self, dst: Reg, src: Reg) {
        self.rex(true, dst, 0, src, false);
        self.byte(0x63);
        self.modrm_reg(dst, src);
    }

    /// `movsx dst, src8` (`W8`) or `src16` (`W16`), to 64 bits.
    pub(super) fn movsx(&mut self, width: Width, dst: Reg, src: Reg) {
        self.rex(true, dst, 0, src, true);
        self.byte(0x0f);
        self.byte(if width == Width::W8 { 0xbe } else { 0xbf });
        self.modrm_reg(dst, src);
    }

    /// `movzx dst32, src8` (`W8`) or `src16` (`W16`).
    pub(super) fn movzx(&mut self, width: Width, dst: Reg, src: Reg) {
        self.rex(false, dst, 0, src, width == Width::W8 && src >= 4);
        self.byte(0x0f);
        self.byte(if width == Width::W8 { 0xb6 } else { 0xb7 });
        self.modrm_reg(dst, src);
    }

    /// `setcc al`.
    pub(super) fn setcc_al(&mut self, cond: Cond) {
        self.code
            .extend_from_slice(&[0x0f, 0x90 | cond as u8, 0xc0]);
    }

    /// `cmovcc dst, src` (64 bits).
    pub(super) fn cmov(&mut self, cond: Cond, dst: Reg, src: Reg) {
        self.rex(true, dst, 0, src, false);
        self.code.extend_from_slice(&[0x0f, 0x40 | cond as u8]);
        self.modrm_reg(dst, src);
    }

    /// `dst = value`, in the shortest form.
    pub(super) fn mov_imm(&mut self, dst: Reg, value: u64) {
        if let Ok(value) = u32::try_from(value) {
            // `mov r32, imm32` zero-extends.
            self.rex(false, 0, 0, dst, false);
            self.byte(0xb8 | (dst & 7));
            self.code.extend_from_slice(&value.to_le_bytes());
        } else if let Ok(value) = i32::try_from(value as i64) {
            self.rex(true, 0, 0, dst, false);
            self.byte(0xc7);
            self.modrm_reg(0, dst);
            self.imm32(value);
        } else {
            self.rex(true, 0, 0, dst, false);
            self.byte(0xb8 | (dst & 7));
            self.code.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// `lea dst, [m]` (`w` false: the address's low 32 bits, zero-extended).
    pub(super) fn lea(&mut self, w: bool, dst: Reg, m: Mem) {
        self.rm(&[0x8d], w, dst, m, false);
    }

    /// `dst = [m]` of `width`, zero-extended (`signed` false) or
    /// sign-extended to 64 bits.
    pub(super) fn load(&mut self, width: Width, signed: bool, dst: Reg, m: Mem) {
        match (width, signed) {
            (Width::W8, false) => self.rm(&[0x0f, 0xb6], false, dst, m, false),
            (Width::W8, true) => self.rm(&[0x0f, 0xbe], true, dst, m, false),
            (Width::W16, false) => self.rm(&[0x0f, 0xb7], false, dst, m, false),
            (Width::W16, true) => self.rm(&[0x0f, 0xbf], true, dst, m, false),
            (Width::W32, false) => self.rm(&[0x8b], false, dst, m, false),
            (Width::W32, true) => self.rm(&[0x63], true, dst, m, false),
            (Width::W64, _) => self.rm(&[0x8b], true, dst, m, false),
        }
    }

    /// `[m] = src` of `width` (its low octets).
    pub(super) fn store(&mut self, width: Width, m: Mem, src: Reg) {
        match width {
            Width::W8 => self.rm(&[0x88], false, src, m, src >= 4),
            Width::W16 => {
                self.byte(0x66);
                self.rm(&[0x89], false, src, m, false);
            }
            Width::W32 => self.rm(&[0x89], false, src, m, false),
            Width::W64 => self.rm(&[0x89], true, src, m, false),
        }
    }

    /// `[m] = imm` of `width` (`W64`: the immediate sign-extended).
    pub(super) fn store_imm(&mut self, width: Width, m: Mem, imm: u32) {
        match width {
            Width::W8 => {
                self.rm(&[0xc6], false, 0, m, false);
                self.byte(imm as u8);
            }
            Width::W16 => {
                self.byte(0x66);
                self.rm(&[0xc7], false, 0, m, false);
                self.code.extend_from_slice(&(imm as u16).to_le_bytes());
            }
            Width::W32 | Width::W64 => {
                self.rm(&[0xc7], width == Width::W64, 0, m, false);
                self.code.extend_from_slice(&imm.to_le_bytes());
            }
        }
    }

    /// `mov dst, [base + index * 8]`.
    pub(super) fn load_indexed(&mut self, dst: Reg, base: Reg, index: Reg) {
        self.rex(true, dst, index, base, false);
        self.byte(0x8b);
        self.modrm_sib(dst, base, index, 3);
    }

    /// `lea dst, [base + index * 2]`.
    pub(super) fn lea_indexed2(&mut self, dst: Reg, base: Reg, index: Reg) {
        self.rex(true, dst, index, base, false);
        self.byte(0x8d);
        self.modrm_sib(dst, base, index, 1);
    }

    pub(super) fn push(&mut self, reg: Reg) {
        self.rex(false, 0, 0, reg, false);
        self.byte(0x50 | (reg & 7));
    }

    pub(super) fn pop(&mut self, reg: Reg) {
        self.rex(false, 0, 0, reg, false);
        self.byte(0x58 | (reg & 7));
    }

    pub(super) fn ret(&mut self) {
        self.byte(0xc3);
    }

    /// `call reg` / `jmp reg`.
    pub(super) fn call_reg(&mut self, reg: Reg) {
        self.rex(false, 0, 0, reg, false);
        self.byte(0xff);
        self.modrm_reg(2, reg);
    }

    pub(super) fn jmp_reg(&mut self, reg: Reg) {
        self.rex(false, 0, 0, reg, false);
        self.byte(0xff);
        self.modrm_reg(4, reg);
    }

    /// `jcc rel32` to be patched: returns the offset of its rel32.
    pub(super) fn jcc(&mut self, cond: Cond) -> usize {
        self.code.extend_from_slice(&[0x0f, 0x80 | cond as u8]);
        self.imm32(0);
        self.pos() - 4
    }

    /// `jmp rel32` to be patched: returns the offset of its rel32.
    pub(super) fn jmp(&mut self) -> usize {
        self.byte(0xe9);
        self.imm32(0);
        self.pos() - 4
    }

    /// Points the rel32 at `at` to `target`.
    pub(super) fn patch(&mut self, at: usize, target: usize) {
        let rel = target as i64 - (at as i64 + 4);
        let rel = i32::try_from(rel).unwrap_or(0);
        self.code[at..at + 4].copy_from_slice(&rel.to_le_bytes());
    }
}
