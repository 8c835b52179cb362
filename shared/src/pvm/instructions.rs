//! The PVM instruction set (Graypaper v0.7.2, appendix A.5), defined once.
//!
//! [`with_instructions!`](crate::with_instructions) hands the whole table to a callback macro, so every
//! other piece of code (the [`Opcode`] enum, names, operand formats, the
//! decoder, the interpreter's dispatch, assemblers and tests) derives from
//! this single list instead of repeating it.

use core::fmt;

/// Calls `$callback! { ... }` with every instruction of the table.
///
/// Each row reads `name = opcode, Format, gas, flow;` where `Format` is an
/// [`ArgFormat`] variant, `gas` the cost Δ in gas units and `flow` is either
/// `terminator` (a member of the Graypaper's set T of basic-block
/// terminators) or `sequential`.
///
/// ```
/// macro_rules! count {
///     ($($name:ident = $op:literal, $fmt:ident, $gas:literal, $flow:ident;)*) => {
///         [$($op),*].len()
///     };
/// }
/// assert_eq!(capbox_shared::with_instructions!(count), 139);
/// ```
#[macro_export]
macro_rules! with_instructions {
    ($callback:ident) => {
        $callback! {
            // A.5.1 without arguments
            trap = 0, NoArgs, 1, terminator;
            fallthrough = 1, NoArgs, 1, terminator;
            // A.5.2 one immediate
            ecalli = 10, OneImm, 1, sequential;
            // A.5.3 one register and one extended-width immediate
            load_imm_64 = 20, OneRegExtImm, 1, sequential;
            // A.5.4 two immediates
            store_imm_u8 = 30, TwoImms, 1, sequential;
            store_imm_u16 = 31, TwoImms, 1, sequential;
            store_imm_u32 = 32, TwoImms, 1, sequential;
            store_imm_u64 = 33, TwoImms, 1, sequential;
            // A.5.5 one offset
            jump = 40, OneOffset, 1, terminator;
            // A.5.6 one register and one immediate
            jump_ind = 50, OneRegOneImm, 1, terminator;
            load_imm = 51, OneRegOneImm, 1, sequential;
            load_u8 = 52, OneRegOneImm, 1, sequential;
            load_i8 = 53, OneRegOneImm, 1, sequential;
            load_u16 = 54, OneRegOneImm, 1, sequential;
            load_i16 = 55, OneRegOneImm, 1, sequential;
            load_u32 = 56, OneRegOneImm, 1, sequential;
            load_i32 = 57, OneRegOneImm, 1, sequential;
            load_u64 = 58, OneRegOneImm, 1, sequential;
            store_u8 = 59, OneRegOneImm, 1, sequential;
            store_u16 = 60, OneRegOneImm, 1, sequential;
            store_u32 = 61, OneRegOneImm, 1, sequential;
            store_u64 = 62, OneRegOneImm, 1, sequential;
            // A.5.7 one register and two immediates
            store_imm_ind_u8 = 70, OneRegTwoImms, 1, sequential;
            store_imm_ind_u16 = 71, OneRegTwoImms, 1, sequential;
            store_imm_ind_u32 = 72, OneRegTwoImms, 1, sequential;
            store_imm_ind_u64 = 73, OneRegTwoImms, 1, sequential;
            // A.5.8 one register, one immediate and one offset
            load_imm_jump = 80, OneRegImmOffset, 1, terminator;
            branch_eq_imm = 81, OneRegImmOffset, 1, terminator;
            branch_ne_imm = 82, OneRegImmOffset, 1, terminator;
            branch_lt_u_imm = 83, OneRegImmOffset, 1, terminator;
            branch_le_u_imm = 84, OneRegImmOffset, 1, terminator;
            branch_ge_u_imm = 85, OneRegImmOffset, 1, terminator;
            branch_gt_u_imm = 86, OneRegImmOffset, 1, terminator;
            branch_lt_s_imm = 87, OneRegImmOffset, 1, terminator;
            branch_le_s_imm = 88, OneRegImmOffset, 1, terminator;
            branch_ge_s_imm = 89, OneRegImmOffset, 1, terminator;
            branch_gt_s_imm = 90, OneRegImmOffset, 1, terminator;
            // A.5.9 two registers
            move_reg = 100, TwoRegs, 1, sequential;
            sbrk = 101, TwoRegs, 1, sequential;
            count_set_bits_64 = 102, TwoRegs, 1, sequential;
            count_set_bits_32 = 103, TwoRegs, 1, sequential;
            leading_zero_bits_64 = 104, TwoRegs, 1, sequential;
            leading_zero_bits_32 = 105, TwoRegs, 1, sequential;
            trailing_zero_bits_64 = 106, TwoRegs, 1, sequential;
            trailing_zero_bits_32 = 107, TwoRegs, 1, sequential;
            sign_extend_8 = 108, TwoRegs, 1, sequential;
            sign_extend_16 = 109, TwoRegs, 1, sequential;
            zero_extend_16 = 110, TwoRegs, 1, sequential;
            reverse_bytes = 111, TwoRegs, 1, sequential;
            // A.5.10 two registers and one immediate
            store_ind_u8 = 120, TwoRegsOneImm, 1, sequential;
            store_ind_u16 = 121, TwoRegsOneImm, 1, sequential;
            store_ind_u32 = 122, TwoRegsOneImm, 1, sequential;
            store_ind_u64 = 123, TwoRegsOneImm, 1, sequential;
            load_ind_u8 = 124, TwoRegsOneImm, 1, sequential;
            load_ind_i8 = 125, TwoRegsOneImm, 1, sequential;
            load_ind_u16 = 126, TwoRegsOneImm, 1, sequential;
            load_ind_i16 = 127, TwoRegsOneImm, 1, sequential;
            load_ind_u32 = 128, TwoRegsOneImm, 1, sequential;
            load_ind_i32 = 129, TwoRegsOneImm, 1, sequential;
            load_ind_u64 = 130, TwoRegsOneImm, 1, sequential;
            add_imm_32 = 131, TwoRegsOneImm, 1, sequential;
            and_imm = 132, TwoRegsOneImm, 1, sequential;
            xor_imm = 133, TwoRegsOneImm, 1, sequential;
            or_imm = 134, TwoRegsOneImm, 1, sequential;
            mul_imm_32 = 135, TwoRegsOneImm, 1, sequential;
            set_lt_u_imm = 136, TwoRegsOneImm, 1, sequential;
            set_lt_s_imm = 137, TwoRegsOneImm, 1, sequential;
            shlo_l_imm_32 = 138, TwoRegsOneImm, 1, sequential;
            shlo_r_imm_32 = 139, TwoRegsOneImm, 1, sequential;
            shar_r_imm_32 = 140, TwoRegsOneImm, 1, sequential;
            neg_add_imm_32 = 141, TwoRegsOneImm, 1, sequential;
            set_gt_u_imm = 142, TwoRegsOneImm, 1, sequential;
            set_gt_s_imm = 143, TwoRegsOneImm, 1, sequential;
            shlo_l_imm_alt_32 = 144, TwoRegsOneImm, 1, sequential;
            shlo_r_imm_alt_32 = 145, TwoRegsOneImm, 1, sequential;
            shar_r_imm_alt_32 = 146, TwoRegsOneImm, 1, sequential;
            cmov_iz_imm = 147, TwoRegsOneImm, 1, sequential;
            cmov_nz_imm = 148, TwoRegsOneImm, 1, sequential;
            add_imm_64 = 149, TwoRegsOneImm, 1, sequential;
            mul_imm_64 = 150, TwoRegsOneImm, 1, sequential;
            shlo_l_imm_64 = 151, TwoRegsOneImm, 1, sequential;
            shlo_r_imm_64 = 152, TwoRegsOneImm, 1, sequential;
            shar_r_imm_64 = 153, TwoRegsOneImm, 1, sequential;
            neg_add_imm_64 = 154, TwoRegsOneImm, 1, sequential;
            shlo_l_imm_alt_64 = 155, TwoRegsOneImm, 1, sequential;
            shlo_r_imm_alt_64 = 156, TwoRegsOneImm, 1, sequential;
            shar_r_imm_alt_64 = 157, TwoRegsOneImm, 1, sequential;
            rot_r_64_imm = 158, TwoRegsOneImm, 1, sequential;
            rot_r_64_imm_alt = 159, TwoRegsOneImm, 1, sequential;
            rot_r_32_imm = 160, TwoRegsOneImm, 1, sequential;
            rot_r_32_imm_alt = 161, TwoRegsOneImm, 1, sequential;
            // A.5.11 two registers and one offset
            branch_eq = 170, TwoRegsOneOffset, 1, terminator;
            branch_ne = 171, TwoRegsOneOffset, 1, terminator;
            branch_lt_u = 172, TwoRegsOneOffset, 1, terminator;
            branch_lt_s = 173, TwoRegsOneOffset, 1, terminator;
            branch_ge_u = 174, TwoRegsOneOffset, 1, terminator;
            branch_ge_s = 175, TwoRegsOneOffset, 1, terminator;
            // A.5.12 two registers and two immediates
            load_imm_jump_ind = 180, TwoRegsTwoImms, 1, terminator;
            // A.5.13 three registers
            add_32 = 190, ThreeRegs, 1, sequential;
            sub_32 = 191, ThreeRegs, 1, sequential;
            mul_32 = 192, ThreeRegs, 1, sequential;
            div_u_32 = 193, ThreeRegs, 1, sequential;
            div_s_32 = 194, ThreeRegs, 1, sequential;
            rem_u_32 = 195, ThreeRegs, 1, sequential;
            rem_s_32 = 196, ThreeRegs, 1, sequential;
            shlo_l_32 = 197, ThreeRegs, 1, sequential;
            shlo_r_32 = 198, ThreeRegs, 1, sequential;
            shar_r_32 = 199, ThreeRegs, 1, sequential;
            add_64 = 200, ThreeRegs, 1, sequential;
            sub_64 = 201, ThreeRegs, 1, sequential;
            mul_64 = 202, ThreeRegs, 1, sequential;
            div_u_64 = 203, ThreeRegs, 1, sequential;
            div_s_64 = 204, ThreeRegs, 1, sequential;
            rem_u_64 = 205, ThreeRegs, 1, sequential;
            rem_s_64 = 206, ThreeRegs, 1, sequential;
            shlo_l_64 = 207, ThreeRegs, 1, sequential;
            shlo_r_64 = 208, ThreeRegs, 1, sequential;
            shar_r_64 = 209, ThreeRegs, 1, sequential;
            and = 210, ThreeRegs, 1, sequential;
            xor = 211, ThreeRegs, 1, sequential;
            or = 212, ThreeRegs, 1, sequential;
            mul_upper_s_s = 213, ThreeRegs, 1, sequential;
            mul_upper_u_u = 214, ThreeRegs, 1, sequential;
            mul_upper_s_u = 215, ThreeRegs, 1, sequential;
            set_lt_u = 216, ThreeRegs, 1, sequential;
            set_lt_s = 217, ThreeRegs, 1, sequential;
            cmov_iz = 218, ThreeRegs, 1, sequential;
            cmov_nz = 219, ThreeRegs, 1, sequential;
            rot_l_64 = 220, ThreeRegs, 1, sequential;
            rot_l_32 = 221, ThreeRegs, 1, sequential;
            rot_r_64 = 222, ThreeRegs, 1, sequential;
            rot_r_32 = 223, ThreeRegs, 1, sequential;
            and_inv = 224, ThreeRegs, 1, sequential;
            or_inv = 225, ThreeRegs, 1, sequential;
            xnor = 226, ThreeRegs, 1, sequential;
            max = 227, ThreeRegs, 1, sequential;
            max_u = 228, ThreeRegs, 1, sequential;
            min = 229, ThreeRegs, 1, sequential;
            min_u = 230, ThreeRegs, 1, sequential;
        }
    };
}

/// The operand classes of appendix A.5: how the octets after an opcode are
/// split into registers, immediates and offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgFormat {
    /// A.5.1: no arguments.
    NoArgs,
    /// A.5.2: one immediate (up to 4 octets, sign-extended).
    OneImm,
    /// A.5.3: one register and one 8-octet immediate.
    OneRegExtImm,
    /// A.5.4: two immediates; the low 3 bits of the first octet give the
    /// first immediate's length.
    TwoImms,
    /// A.5.5: one pc-relative offset.
    OneOffset,
    /// A.5.6: one register and one immediate.
    OneRegOneImm,
    /// A.5.7: one register and two immediates.
    OneRegTwoImms,
    /// A.5.8: one register, one immediate and one pc-relative offset.
    OneRegImmOffset,
    /// A.5.9: two registers.
    TwoRegs,
    /// A.5.10: two registers and one immediate.
    TwoRegsOneImm,
    /// A.5.11: two registers and one pc-relative offset.
    TwoRegsOneOffset,
    /// A.5.12: two registers and two immediates.
    TwoRegsTwoImms,
    /// A.5.13: three registers.
    ThreeRegs,
}

impl ArgFormat {
    /// Every format, in appendix order.
    pub const ALL: [ArgFormat; 13] = [
        ArgFormat::NoArgs,
        ArgFormat::OneImm,
        ArgFormat::OneRegExtImm,
        ArgFormat::TwoImms,
        ArgFormat::OneOffset,
        ArgFormat::OneRegOneImm,
        ArgFormat::OneRegTwoImms,
        ArgFormat::OneRegImmOffset,
        ArgFormat::TwoRegs,
        ArgFormat::TwoRegsOneImm,
        ArgFormat::TwoRegsOneOffset,
        ArgFormat::TwoRegsTwoImms,
        ArgFormat::ThreeRegs,
    ];
}

macro_rules! define_opcodes {
    ($($name:ident = $op:literal, $fmt:ident, $gas:literal, $flow:ident;)*) => {
        /// A valid PVM opcode (a member of the Graypaper's set U).
        ///
        /// Variants carry the Graypaper's own snake_case names so that the
        /// table, the paper and disassemblies read alike.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Opcode {
            $(
                #[doc = concat!("`", stringify!($name), "` (opcode ", stringify!($op), ")")]
                $name = $op,
            )*
        }

        /// Every valid opcode, in ascending numeric order.
        pub const ALL_OPCODES: &[Opcode] = &[$(Opcode::$name),*];

        /// `LOOKUP[byte]` is the opcode with that number, if it is valid.
        const LOOKUP: [Option<Opcode>; 256] = {
            let mut table = [None; 256];
            $(table[$op] = Some(Opcode::$name);)*
            table
        };

        impl Opcode {
            /// The opcode numbered `byte`, or `None` when `byte` is not in U.
            #[inline(always)]
            pub const fn from_u8(byte: u8) -> Option<Opcode> {
                LOOKUP[byte as usize]
            }

            /// The Graypaper's name, e.g. `"load_imm_64"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Opcode::$name => stringify!($name),)*
                }
            }

            /// How the octets after the opcode are decoded.
            pub const fn format(self) -> ArgFormat {
                match self {
                    $(Opcode::$name => ArgFormat::$fmt,)*
                }
            }

            /// The gas cost Δ of one execution.
            pub const fn gas(self) -> u32 {
                match self {
                    $(Opcode::$name => $gas,)*
                }
            }

            /// Whether the opcode ends a basic block (the Graypaper's set T).
            pub const fn is_terminator(self) -> bool {
                match self {
                    $(Opcode::$name => define_opcodes!(@flow $flow),)*
                }
            }

            /// The opcode with this Graypaper name.
            pub fn from_name(name: &str) -> Option<Opcode> {
                match name {
                    $(stringify!($name) => Some(Opcode::$name),)*
                    _ => None,
                }
            }
        }
    };
    (@flow terminator) => { true };
    (@flow sequential) => { false };
}

with_instructions!(define_opcodes);

impl Opcode {
    /// The opcode's number.
    #[inline(always)]
    pub const fn to_u8(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
