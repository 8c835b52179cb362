//! Instruction selection: the machine code of each PVM instruction, or
//! `false` for the interpreter's handler ([`Compiler::instruction`]).

use super::{Address, Compiler, Load, REGS, Value};
use crate::pvm::instructions::{ArgFormat, Opcode};
use crate::pvm::jit::asm::{Alu, Asm, Cond, RAX, RCX, RDX, Reg, Shift, ShiftX, Width, mem};
use crate::pvm::program::{INVALID_TARGET, Op, RegIndex};

impl Compiler<'_> {
    /// `d = a op b`.
    fn binary(&mut self, op: Binary, wide: bool, d: Reg, a: Reg, b: Reg) {
        let emit = |asm: &mut Asm, dst: Reg, src: Reg| match op {
            Binary::Alu(alu) => asm.alu(alu, wide, dst, src),
            Binary::Mul => asm.imul(wide, dst, src),
        };
        if d == a {
            emit(&mut self.asm, d, b);
        } else if d == b {
            if op == Binary::Alu(Alu::Sub) {
                self.asm.mov(true, RAX, a);
                emit(&mut self.asm, RAX, b);
                self.asm.mov(true, d, RAX);
            } else {
                emit(&mut self.asm, d, a);
            }
        } else {
            self.asm.mov(true, d, a);
            emit(&mut self.asm, d, b);
        }
        if !wide {
            self.asm.movsxd(d, d);
        }
    }

    /// `dst = src op imm`.
    fn binary_imm(&mut self, op: Alu, dst: Reg, src: Reg, imm: i32) {
        if dst != src {
            self.asm.mov(true, dst, src);
        }
        self.asm.alu_imm(op, true, dst, imm);
    }

    fn shift_imm(&mut self, op: Shift, wide: bool, dst: Reg, src: Reg, count: u32) {
        if dst != src {
            self.asm.mov(true, dst, src);
        }
        let mask = if wide { 63 } else { 31 };
        self.asm.shift_imm(op, wide, dst, (count & mask) as u8);
        if !wide {
            self.asm.movsxd(dst, dst);
        }
    }

    /// `dst = value shifted by count` (a register's low bits).
    fn shift_x(&mut self, op: ShiftX, wide: bool, dst: Reg, value: Reg, count: Reg) {
        self.asm.shift_x(op, wide, dst, value, count);
        if !wide {
            self.asm.movsxd(dst, dst);
        }
    }

    /// `d = value shifted or rotated by count` (its low 6 or 5 bits, as
    /// the PVM and x86 both take it), `value` a register or, when `None`,
    /// the immediate `imm`: one BMI2 instruction for a shift where the
    /// host has BMI2, else through `cl`.
    fn by_register(
        &mut self,
        op: Shift,
        wide: bool,
        d: Reg,
        value: Option<Reg>,
        imm: i32,
        count: Reg,
    ) {
        let bmi2 = match op {
            Shift::Shl => Some(ShiftX::Shl),
            Shift::Shr => Some(ShiftX::Shr),
            Shift::Sar => Some(ShiftX::Sar),
            Shift::Rol | Shift::Ror => None,
        };
        if let (true, Some(shift)) = (self.features.bmi2, bmi2) {
            let value = value.unwrap_or_else(|| {
                self.asm.mov_imm(RAX, imm as i64 as u64);
                RAX
            });
            self.shift_x(shift, wide, d, value, count);
        } else {
            self.by_cl(op, wide, d, value, imm, count);
        }
    }

    /// [`Self::by_register`] with the count in `cl`: `rcx` (φ0) is saved
    /// around it.
    fn by_cl(&mut self, op: Shift, wide: bool, d: Reg, value: Option<Reg>, imm: i32, count: Reg) {
        match value {
            Some(value) => self.asm.mov(true, RAX, value),
            None => self.asm.mov_imm(RAX, imm as i64 as u64),
        }
        self.asm.push(RCX);
        self.asm.mov(false, RCX, count);
        self.asm.shift_cl(op, wide, RAX);
        self.asm.pop(RCX);
        if wide {
            self.asm.mov(true, d, RAX);
        } else {
            self.asm.movsxd(d, RAX);
        }
    }

    /// `d` = the high 64 bits of `a * b`, `a` signed or not, `b` alike;
    /// `rdx` (φ1) is saved around the multiplication. Signed times
    /// unsigned is the unsigned product's high half less `b` where `a` is
    /// negative.
    fn mul_upper(&mut self, a_signed: bool, b_signed: bool, d: Reg, a: Reg, b: Reg) {
        self.asm.mov(true, RAX, a);
        self.asm.push(RDX);
        self.asm.widening_mul(a_signed && b_signed, b);
        self.asm.mov(true, RAX, RDX);
        self.asm.pop(RDX);
        if a_signed && !b_signed {
            self.asm.test(a, a);
            let positive = self.asm.jcc(Cond::NotSign);
            self.asm.alu(Alu::Sub, true, RAX, b);
            let here = self.asm.pos();
            self.asm.patch(positive, here);
        }
        self.asm.mov(true, d, RAX);
    }

    /// `d` = the leading (`leading`) or trailing zero bits of `a`'s 64 or
    /// 32 low bits, the width for 0: from `bsr`/`bsf` (x86-64's base; the
    /// index of the highest or lowest set bit).
    fn zero_bits(&mut self, leading: bool, wide: bool, d: Reg, a: Reg) {
        let bits: u64 = if wide { 64 } else { 32 };
        self.asm.bit_scan(leading, wide, RAX, a);
        let nonzero = self.asm.jcc(Cond::NotEqual);
        // For 0: leading counts `bits - 1 - (-1)`, trailing counts `bits`.
        self.asm.mov_imm(RAX, if leading { u64::MAX } else { bits });
        let here = self.asm.pos();
        self.asm.patch(nonzero, here);
        if leading {
            self.asm.not(RAX);
            self.asm.alu_imm(Alu::Add, true, RAX, bits as i32);
        }
        self.asm.mov(true, d, RAX);
    }

    /// `dst = cond(a, imm) as u64`.
    fn set_imm(&mut self, cond: Cond, dst: Reg, a: Reg, imm: i32) {
        self.asm.alu_imm(Alu::Cmp, true, a, imm);
        self.asm.setcc_al(cond);
        self.asm.movzx(Width::W8, dst, RAX);
    }

    /// `d = cond(a, b) ? b : a`.
    fn select(&mut self, cond: Cond, d: Reg, a: Reg, b: Reg) {
        self.asm.mov(true, RAX, a);
        self.asm.alu(Alu::Cmp, true, RAX, b);
        self.asm.cmov(cond, RAX, b);
        self.asm.mov(true, d, RAX);
    }

    /// Native code for instruction `idx`, or a fallback.
    pub(super) fn instruction(&mut self, idx: usize, op: &Op) {
        use Opcode as O;
        let r = |reg: RegIndex| REGS[reg.index()];
        let (a, b, d) = (r(op.a), r(op.b), r(op.d));
        let imm = op.x as i32;
        let native = match op.opcode.unfused() {
            O::fallthrough => true,
            O::jump => self.jump_to_block(None, op.y),
            O::load_imm_jump => {
                if op.y == INVALID_TARGET || !self.program.starts_block(op.y as usize) {
                    false
                } else {
                    self.asm.mov_imm(a, imm as i64 as u64);
                    self.jump_to_block(None, op.y)
                }
            }
            O::load_imm => {
                self.asm.mov_imm(a, imm as i64 as u64);
                true
            }
            O::load_imm_64 => {
                self.asm.mov_imm(a, u64::from(op.x) | u64::from(op.y) << 32);
                true
            }
            O::move_reg => {
                self.asm.mov(true, d, a);
                true
            }
            O::sign_extend_8 | O::sign_extend_16 => {
                let width = if op.opcode.unfused() == O::sign_extend_8 {
                    Width::W8
                } else {
                    Width::W16
                };
                self.asm.movsx(width, d, a);
                true
            }
            O::zero_extend_16 => {
                self.asm.movzx(Width::W16, d, a);
                true
            }
            O::reverse_bytes => {
                if d != a {
                    self.asm.mov(true, d, a);
                }
                self.asm.bswap(d);
                true
            }
            O::leading_zero_bits_64 => self.native(|c| c.zero_bits(true, true, d, a)),
            O::leading_zero_bits_32 => self.native(|c| c.zero_bits(true, false, d, a)),
            O::trailing_zero_bits_64 => self.native(|c| c.zero_bits(false, true, d, a)),
            O::trailing_zero_bits_32 => self.native(|c| c.zero_bits(false, false, d, a)),
            O::count_set_bits_64 | O::count_set_bits_32 if self.features.popcnt => {
                self.asm
                    .popcnt(op.opcode.unfused() == O::count_set_bits_64, d, a);
                true
            }

            O::add_64 => self.native(|c| c.binary(Binary::Alu(Alu::Add), true, d, a, b)),
            O::sub_64 => self.native(|c| c.binary(Binary::Alu(Alu::Sub), true, d, a, b)),
            O::and => self.native(|c| c.binary(Binary::Alu(Alu::And), true, d, a, b)),
            O::or => self.native(|c| c.binary(Binary::Alu(Alu::Or), true, d, a, b)),
            O::xor => self.native(|c| c.binary(Binary::Alu(Alu::Xor), true, d, a, b)),
            O::mul_64 => self.native(|c| c.binary(Binary::Mul, true, d, a, b)),
            O::add_32 => self.native(|c| c.binary(Binary::Alu(Alu::Add), false, d, a, b)),
            O::sub_32 => self.native(|c| c.binary(Binary::Alu(Alu::Sub), false, d, a, b)),
            O::mul_32 => self.native(|c| c.binary(Binary::Mul, false, d, a, b)),
            O::shlo_l_64 => self.native(|c| c.by_register(Shift::Shl, true, d, Some(a), 0, b)),
            O::shlo_r_64 => self.native(|c| c.by_register(Shift::Shr, true, d, Some(a), 0, b)),
            O::shar_r_64 => self.native(|c| c.by_register(Shift::Sar, true, d, Some(a), 0, b)),
            O::shlo_l_32 => self.native(|c| c.by_register(Shift::Shl, false, d, Some(a), 0, b)),
            O::shlo_r_32 => self.native(|c| c.by_register(Shift::Shr, false, d, Some(a), 0, b)),
            O::shar_r_32 => self.native(|c| c.by_register(Shift::Sar, false, d, Some(a), 0, b)),
            O::set_lt_u | O::set_lt_s => {
                let cond = if op.opcode.unfused() == O::set_lt_u {
                    Cond::Below
                } else {
                    Cond::Less
                };
                self.asm.alu(Alu::Cmp, true, a, b);
                self.asm.setcc_al(cond);
                self.asm.movzx(Width::W8, d, RAX);
                true
            }
            O::cmov_iz | O::cmov_nz => {
                let cond = if op.opcode.unfused() == O::cmov_iz {
                    Cond::Equal
                } else {
                    Cond::NotEqual
                };
                self.asm.test(b, b);
                self.asm.cmov(cond, d, a);
                true
            }
            O::and_inv | O::or_inv => {
                let alu = if op.opcode.unfused() == O::and_inv {
                    Alu::And
                } else {
                    Alu::Or
                };
                self.asm.mov(true, RAX, b);
                self.asm.not(RAX);
                self.asm.alu(alu, true, RAX, a);
                self.asm.mov(true, d, RAX);
                true
            }
            O::xnor => {
                self.asm.mov(true, RAX, a);
                self.asm.alu(Alu::Xor, true, RAX, b);
                self.asm.not(RAX);
                self.asm.mov(true, d, RAX);
                true
            }
            O::rot_l_64 => self.native(|c| c.by_register(Shift::Rol, true, d, Some(a), 0, b)),
            O::rot_r_64 => self.native(|c| c.by_register(Shift::Ror, true, d, Some(a), 0, b)),
            O::rot_l_32 => self.native(|c| c.by_register(Shift::Rol, false, d, Some(a), 0, b)),
            O::rot_r_32 => self.native(|c| c.by_register(Shift::Ror, false, d, Some(a), 0, b)),
            O::mul_upper_u_u => self.native(|c| c.mul_upper(false, false, d, a, b)),
            O::mul_upper_s_s => self.native(|c| c.mul_upper(true, true, d, a, b)),
            O::mul_upper_s_u => self.native(|c| c.mul_upper(true, false, d, a, b)),
            O::max => self.native(|c| c.select(Cond::Less, d, a, b)),
            O::max_u => self.native(|c| c.select(Cond::Below, d, a, b)),
            O::min => self.native(|c| c.select(Cond::Greater, d, a, b)),
            O::min_u => self.native(|c| c.select(Cond::Above, d, a, b)),

            // Two registers and an immediate: `a = f(b, imm)`.
            O::add_imm_64 => {
                self.asm.lea(true, a, mem(b, imm));
                true
            }
            O::add_imm_32 => {
                self.asm.lea(false, a, mem(b, imm));
                self.asm.movsxd(a, a);
                true
            }
            O::and_imm => self.native(|c| c.binary_imm(Alu::And, a, b, imm)),
            O::or_imm => self.native(|c| c.binary_imm(Alu::Or, a, b, imm)),
            O::xor_imm => self.native(|c| c.binary_imm(Alu::Xor, a, b, imm)),
            O::mul_imm_64 => {
                self.asm.imul_imm(true, a, b, imm);
                true
            }
            O::mul_imm_32 => {
                self.asm.imul_imm(false, a, b, imm);
                self.asm.movsxd(a, a);
                true
            }
            O::shlo_l_imm_64 => self.native(|c| c.shift_imm(Shift::Shl, true, a, b, op.x)),
            O::shlo_r_imm_64 => self.native(|c| c.shift_imm(Shift::Shr, true, a, b, op.x)),
            O::shar_r_imm_64 => self.native(|c| c.shift_imm(Shift::Sar, true, a, b, op.x)),
            O::rot_r_64_imm => self.native(|c| c.shift_imm(Shift::Ror, true, a, b, op.x)),
            O::shlo_l_imm_32 => self.native(|c| c.shift_imm(Shift::Shl, false, a, b, op.x)),
            O::shlo_r_imm_32 => self.native(|c| c.shift_imm(Shift::Shr, false, a, b, op.x)),
            O::shar_r_imm_32 => self.native(|c| c.shift_imm(Shift::Sar, false, a, b, op.x)),
            O::rot_r_32_imm => self.native(|c| c.shift_imm(Shift::Ror, false, a, b, op.x)),
            O::rot_r_64_imm_alt => {
                self.native(|c| c.by_register(Shift::Ror, true, a, None, imm, b))
            }
            O::rot_r_32_imm_alt => {
                self.native(|c| c.by_register(Shift::Ror, false, a, None, imm, b))
            }
            O::shlo_l_imm_alt_64 => {
                self.native(|c| c.by_register(Shift::Shl, true, a, None, imm, b))
            }
            O::shlo_r_imm_alt_64 => {
                self.native(|c| c.by_register(Shift::Shr, true, a, None, imm, b))
            }
            O::shar_r_imm_alt_64 => {
                self.native(|c| c.by_register(Shift::Sar, true, a, None, imm, b))
            }
            O::shlo_l_imm_alt_32 => {
                self.native(|c| c.by_register(Shift::Shl, false, a, None, imm, b))
            }
            O::shlo_r_imm_alt_32 => {
                self.native(|c| c.by_register(Shift::Shr, false, a, None, imm, b))
            }
            O::shar_r_imm_alt_32 => {
                self.native(|c| c.by_register(Shift::Sar, false, a, None, imm, b))
            }
            O::neg_add_imm_64 | O::neg_add_imm_32 => {
                self.asm.mov_imm(RAX, imm as i64 as u64);
                self.asm.alu(Alu::Sub, true, RAX, b);
                if op.opcode.unfused() == O::neg_add_imm_64 {
                    self.asm.mov(true, a, RAX);
                } else {
                    self.asm.movsxd(a, RAX);
                }
                true
            }
            O::set_lt_u_imm => self.native(|c| c.set_imm(Cond::Below, a, b, imm)),
            O::set_lt_s_imm => self.native(|c| c.set_imm(Cond::Less, a, b, imm)),
            O::set_gt_u_imm => self.native(|c| c.set_imm(Cond::Above, a, b, imm)),
            O::set_gt_s_imm => self.native(|c| c.set_imm(Cond::Greater, a, b, imm)),
            O::cmov_iz_imm | O::cmov_nz_imm => {
                let cond = if op.opcode.unfused() == O::cmov_iz_imm {
                    Cond::Equal
                } else {
                    Cond::NotEqual
                };
                self.asm.mov_imm(RAX, imm as i64 as u64);
                self.asm.test(b, b);
                self.asm.cmov(cond, a, RAX);
                true
            }

            // Branches: the next instruction starts a block, so not taking
            // one falls into that block's gas check.
            O::branch_eq => self.branch(Cond::Equal, a, Some(b), 0, op.y),
            O::branch_ne => self.branch(Cond::NotEqual, a, Some(b), 0, op.y),
            O::branch_lt_u => self.branch(Cond::Below, a, Some(b), 0, op.y),
            O::branch_lt_s => self.branch(Cond::Less, a, Some(b), 0, op.y),
            O::branch_ge_u => self.branch(Cond::AboveEq, a, Some(b), 0, op.y),
            O::branch_ge_s => self.branch(Cond::GreaterEq, a, Some(b), 0, op.y),
            O::branch_eq_imm => self.branch(Cond::Equal, a, None, imm, op.y),
            O::branch_ne_imm => self.branch(Cond::NotEqual, a, None, imm, op.y),
            O::branch_lt_u_imm => self.branch(Cond::Below, a, None, imm, op.y),
            O::branch_le_u_imm => self.branch(Cond::BelowEq, a, None, imm, op.y),
            O::branch_ge_u_imm => self.branch(Cond::AboveEq, a, None, imm, op.y),
            O::branch_gt_u_imm => self.branch(Cond::Above, a, None, imm, op.y),
            O::branch_lt_s_imm => self.branch(Cond::Less, a, None, imm, op.y),
            O::branch_le_s_imm => self.branch(Cond::LessEq, a, None, imm, op.y),
            O::branch_ge_s_imm => self.branch(Cond::GreaterEq, a, None, imm, op.y),
            O::branch_gt_s_imm => self.branch(Cond::Greater, a, None, imm, op.y),

            op_code if memory_access(op_code).is_some() => self.memory(idx, op),
            _ => false,
        };
        if !native {
            self.fallback(idx);
        }
    }

    /// A load or store ([`memory_access`]), its operands by its format:
    /// the address `x` (one register and an immediate, two immediates),
    /// `φ_b + x` (two registers) or `φ_a + x` (a register and two
    /// immediates); a store writes `φ_a` or the immediate `y`.
    fn memory(&mut self, idx: usize, op: &Op) -> bool {
        let opcode = op.opcode.unfused();
        let Some((access, width)) = memory_access(opcode) else {
            return false;
        };
        let (a, b) = (REGS[op.a.index()], REGS[op.b.index()]);
        let format = opcode.format();
        let address = match format {
            ArgFormat::TwoRegsOneImm => Address::Reg(b, op.x as i32),
            ArgFormat::OneRegTwoImms => Address::Reg(a, op.x as i32),
            _ => Address::Imm(op.x),
        };
        match access {
            Access::Load { signed } => self.load(Load {
                idx,
                address,
                width,
                signed,
                dst: a,
            }),
            Access::Store => {
                let value = match format {
                    ArgFormat::TwoImms | ArgFormat::OneRegTwoImms => Value::Imm(op.y),
                    _ => Value::Reg(a),
                };
                self.store(idx, address, width, value);
            }
        }
        true
    }

    fn native(&mut self, emit: impl FnOnce(&mut Self)) -> bool {
        emit(self);
        true
    }

    /// `if cond(a, b or imm) goto target`, or `false` for an invalid
    /// target (the interpreter panics, taken or not).
    fn branch(&mut self, cond: Cond, a: Reg, b: Option<Reg>, imm: i32, target: u32) -> bool {
        if target == INVALID_TARGET || !self.program.starts_block(target as usize) {
            return false;
        }
        match b {
            Some(b) => self.asm.alu(Alu::Cmp, true, a, b),
            None => self.asm.alu_imm(Alu::Cmp, true, a, imm),
        }
        self.jump_to_block(Some(cond), target)
    }
}

/// What a memory instruction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Load { signed: bool },
    Store,
}

/// The loads and stores: what each does and its width.
fn memory_access(opcode: Opcode) -> Option<(Access, Width)> {
    use Opcode as O;
    let unsigned = Access::Load { signed: false };
    let signed = Access::Load { signed: true };
    Some(match opcode {
        O::load_u8 | O::load_ind_u8 => (unsigned, Width::W8),
        O::load_i8 | O::load_ind_i8 => (signed, Width::W8),
        O::load_u16 | O::load_ind_u16 => (unsigned, Width::W16),
        O::load_i16 | O::load_ind_i16 => (signed, Width::W16),
        O::load_u32 | O::load_ind_u32 => (unsigned, Width::W32),
        O::load_i32 | O::load_ind_i32 => (signed, Width::W32),
        O::load_u64 | O::load_ind_u64 => (unsigned, Width::W64),
        O::store_u8 | O::store_ind_u8 | O::store_imm_u8 | O::store_imm_ind_u8 => {
            (Access::Store, Width::W8)
        }
        O::store_u16 | O::store_ind_u16 | O::store_imm_u16 | O::store_imm_ind_u16 => {
            (Access::Store, Width::W16)
        }
        O::store_u32 | O::store_ind_u32 | O::store_imm_u32 | O::store_imm_ind_u32 => {
            (Access::Store, Width::W32)
        }
        O::store_u64 | O::store_ind_u64 | O::store_imm_u64 | O::store_imm_ind_u64 => {
            (Access::Store, Width::W64)
        }
        _ => return None,
    })
}

/// A three-register operation [`Compiler::binary`] emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binary {
    Alu(Alu),
    Mul,
}
