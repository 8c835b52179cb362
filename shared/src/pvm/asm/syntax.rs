//! The text form of every instruction, shared by the assembler (which
//! matches lines against it) and the disassembler (which fills it in).
//!
//! The forms follow the disassembly of the w3f test vectors' TESTCASES.md
//! (`i32 r9 = r7 + r8`, `jump @1 if r7 == 5`, `u8 [r7 + 4] = r8`, …).
//! Placeholders: `$a $b $d` registers r_A, r_B, r_D; `$x $y` immediates
//! (64-bit values that are sign-extended 32-bit ones); `$X` an absolute
//! address (0 … 2^32-1); `$u` the `ecalli` number (0 … 2^32-1); `$q` a full
//! 64-bit value; `$+x $+y` a signed displacement written `+ n` or `- n`;
//! `$t` a jump target (`@label` or an absolute code offset).
//!
//! Besides its form, every instruction can be written generically as its
//! Graypaper name followed by its operands (see [`generic_template`]).

use alloc::format;
use alloc::string::String;

use crate::pvm::instructions::{ArgFormat, Opcode};

/// The forms of `op`: the first is the one the disassembler prints; the
/// others are accepted too.
pub(crate) fn templates(op: Opcode) -> &'static [&'static str] {
    use Opcode::*;
    match op {
        trap => &["trap"],
        fallthrough => &["fallthrough"],
        ecalli => &["ecalli $u"],
        load_imm_64 => &["$a = $q"],
        store_imm_u8 => &["u8 [$X] = $y"],
        store_imm_u16 => &["u16 [$X] = $y"],
        store_imm_u32 => &["u32 [$X] = $y"],
        store_imm_u64 => &["u64 [$X] = $y"],
        jump => &["jump $t"],
        jump_ind => &["jump [$a $+x]"],
        load_imm => &["$a = $x"],
        load_u8 => &["$a = u8 [$X]"],
        load_i8 => &["$a = i8 [$X]"],
        load_u16 => &["$a = u16 [$X]"],
        load_i16 => &["$a = i16 [$X]"],
        load_u32 => &["$a = u32 [$X]"],
        load_i32 => &["$a = i32 [$X]"],
        load_u64 => &["$a = u64 [$X]"],
        store_u8 => &["u8 [$X] = $a"],
        store_u16 => &["u16 [$X] = $a"],
        store_u32 => &["u32 [$X] = $a"],
        store_u64 => &["u64 [$X] = $a"],
        store_imm_ind_u8 => &["u8 [$a $+x] = $y"],
        store_imm_ind_u16 => &["u16 [$a $+x] = $y"],
        store_imm_ind_u32 => &["u32 [$a $+x] = $y"],
        store_imm_ind_u64 => &["u64 [$a $+x] = $y"],
        load_imm_jump => &["$a = $x, jump $t"],
        branch_eq_imm => &["jump $t if $a == $x"],
        branch_ne_imm => &["jump $t if $a != $x"],
        branch_lt_u_imm => &["jump $t if $a <u $x"],
        branch_le_u_imm => &["jump $t if $a <=u $x"],
        branch_ge_u_imm => &["jump $t if $a >=u $x"],
        branch_gt_u_imm => &["jump $t if $a >u $x"],
        branch_lt_s_imm => &["jump $t if $a <s $x"],
        branch_le_s_imm => &["jump $t if $a <=s $x"],
        branch_ge_s_imm => &["jump $t if $a >=s $x"],
        branch_gt_s_imm => &["jump $t if $a >s $x"],
        move_reg => &["$d = $a"],
        sbrk => &["$d = sbrk($a)"],
        count_set_bits_64 => &["$d = popcount($a)"],
        count_set_bits_32 => &["i32 $d = popcount($a)"],
        leading_zero_bits_64 => &["$d = clz($a)"],
        leading_zero_bits_32 => &["i32 $d = clz($a)"],
        trailing_zero_bits_64 => &["$d = ctz($a)"],
        trailing_zero_bits_32 => &["i32 $d = ctz($a)"],
        sign_extend_8 => &["$d = sext8($a)"],
        sign_extend_16 => &["$d = sext16($a)"],
        zero_extend_16 => &["$d = zext16($a)"],
        reverse_bytes => &["$d = bswap($a)"],
        store_ind_u8 => &["u8 [$b $+x] = $a"],
        store_ind_u16 => &["u16 [$b $+x] = $a"],
        store_ind_u32 => &["u32 [$b $+x] = $a"],
        store_ind_u64 => &["u64 [$b $+x] = $a"],
        load_ind_u8 => &["$a = u8 [$b $+x]"],
        load_ind_i8 => &["$a = i8 [$b $+x]"],
        load_ind_u16 => &["$a = u16 [$b $+x]"],
        load_ind_i16 => &["$a = i16 [$b $+x]"],
        load_ind_u32 => &["$a = u32 [$b $+x]"],
        load_ind_i32 => &["$a = i32 [$b $+x]"],
        load_ind_u64 => &["$a = u64 [$b $+x]"],
        add_imm_32 => &["i32 $a = $b + $x", "i32 $a = $b - $x"],
        and_imm => &["$a = $b & $x"],
        xor_imm => &["$a = $b ^ $x"],
        or_imm => &["$a = $b | $x"],
        mul_imm_32 => &["i32 $a = $b * $x"],
        set_lt_u_imm => &["$a = $b <u $x"],
        set_lt_s_imm => &["$a = $b <s $x"],
        shlo_l_imm_32 => &["i32 $a = $b << $x"],
        shlo_r_imm_32 => &["i32 $a = $b >> $x"],
        shar_r_imm_32 => &["i32 $a = $b >>a $x"],
        neg_add_imm_32 => &["i32 $a = $x - $b"],
        set_gt_u_imm => &["$a = $b >u $x"],
        set_gt_s_imm => &["$a = $b >s $x"],
        shlo_l_imm_alt_32 => &["i32 $a = $x << $b"],
        shlo_r_imm_alt_32 => &["i32 $a = $x >> $b"],
        shar_r_imm_alt_32 => &["i32 $a = $x >>a $b"],
        cmov_iz_imm => &["$a = $x if $b == 0"],
        cmov_nz_imm => &["$a = $x if $b != 0"],
        add_imm_64 => &["$a = $b + $x", "$a = $b - $x"],
        mul_imm_64 => &["$a = $b * $x"],
        shlo_l_imm_64 => &["$a = $b << $x"],
        shlo_r_imm_64 => &["$a = $b >> $x"],
        shar_r_imm_64 => &["$a = $b >>a $x"],
        neg_add_imm_64 => &["$a = $x - $b"],
        shlo_l_imm_alt_64 => &["$a = $x << $b"],
        shlo_r_imm_alt_64 => &["$a = $x >> $b"],
        shar_r_imm_alt_64 => &["$a = $x >>a $b"],
        rot_r_64_imm => &["$a = $b >>r $x"],
        rot_r_64_imm_alt => &["$a = $x >>r $b"],
        rot_r_32_imm => &["i32 $a = $b >>r $x"],
        rot_r_32_imm_alt => &["i32 $a = $x >>r $b"],
        branch_eq => &["jump $t if $a == $b"],
        branch_ne => &["jump $t if $a != $b"],
        branch_lt_u => &["jump $t if $a <u $b"],
        branch_lt_s => &["jump $t if $a <s $b"],
        branch_ge_u => &["jump $t if $a >=u $b"],
        branch_ge_s => &["jump $t if $a >=s $b"],
        // The jump address is read before r_A is written; when they are the
        // same register the vectors spell the old value `tmp`.
        load_imm_jump_ind => &[
            "$a = $x, jump [$b $+y]",
            "tmp = $b, $a = $x, jump [tmp $+y]",
        ],
        add_32 => &["i32 $d = $a + $b"],
        sub_32 => &["i32 $d = $a - $b"],
        mul_32 => &["i32 $d = $a * $b"],
        div_u_32 => &["i32 $d = $a /u $b"],
        div_s_32 => &["i32 $d = $a /s $b"],
        rem_u_32 => &["i32 $d = $a %u $b"],
        rem_s_32 => &["i32 $d = $a %s $b"],
        shlo_l_32 => &["i32 $d = $a << $b"],
        shlo_r_32 => &["i32 $d = $a >> $b"],
        shar_r_32 => &["i32 $d = $a >>a $b"],
        add_64 => &["$d = $a + $b"],
        sub_64 => &["$d = $a - $b"],
        mul_64 => &["$d = $a * $b"],
        div_u_64 => &["$d = $a /u $b"],
        div_s_64 => &["$d = $a /s $b"],
        rem_u_64 => &["$d = $a %u $b"],
        rem_s_64 => &["$d = $a %s $b"],
        shlo_l_64 => &["$d = $a << $b"],
        shlo_r_64 => &["$d = $a >> $b"],
        shar_r_64 => &["$d = $a >>a $b"],
        and => &["$d = $a & $b"],
        xor => &["$d = $a ^ $b"],
        or => &["$d = $a | $b"],
        mul_upper_s_s => &["$d = mulh($a, $b)"],
        mul_upper_u_u => &["$d = mulhu($a, $b)"],
        mul_upper_s_u => &["$d = mulhsu($a, $b)"],
        set_lt_u => &["$d = $a <u $b"],
        set_lt_s => &["$d = $a <s $b"],
        cmov_iz => &["$d = $a if $b == 0"],
        cmov_nz => &["$d = $a if $b != 0"],
        rot_l_64 => &["$d = $a <<r $b"],
        rot_l_32 => &["i32 $d = $a <<r $b"],
        rot_r_64 => &["$d = $a >>r $b"],
        rot_r_32 => &["i32 $d = $a >>r $b"],
        and_inv => &["$d = $a & ~$b"],
        or_inv => &["$d = $a | ~$b"],
        xnor => &["$d = ~($a ^ $b)"],
        max => &["$d = max($a, $b)"],
        max_u => &["$d = maxu($a, $b)"],
        min => &["$d = min($a, $b)"],
        min_u => &["$d = minu($a, $b)"],
    }
}

/// The generic form of `op`: its name and its operands in a fixed order
/// per format (destination first), e.g. `load_imm_64 r7, 2` or
/// `add_imm_64 r9, r7, -3`.
pub(crate) fn generic_template(op: Opcode) -> String {
    format!("{}{}", op.name(), generic_operands(op.format()))
}

/// The operand part of the generic form for `format`.
pub(crate) fn generic_operands(format: ArgFormat) -> &'static str {
    match format {
        ArgFormat::NoArgs => "",
        ArgFormat::OneImm => " $x",
        ArgFormat::OneRegExtImm => " $a, $q",
        ArgFormat::TwoImms => " $x, $y",
        ArgFormat::OneOffset => " $t",
        ArgFormat::OneRegOneImm => " $a, $x",
        ArgFormat::OneRegTwoImms => " $a, $x, $y",
        ArgFormat::OneRegImmOffset => " $a, $x, $t",
        ArgFormat::TwoRegs => " $d, $a",
        ArgFormat::TwoRegsOneImm => " $a, $b, $x",
        ArgFormat::TwoRegsOneOffset => " $a, $b, $t",
        ArgFormat::TwoRegsTwoImms => " $a, $b, $x, $y",
        ArgFormat::ThreeRegs => " $d, $a, $b",
    }
}
