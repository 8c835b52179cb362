//! Fused handlers: sequences of two to four instructions the interpreter
//! runs in one dispatch, the [`Handler`] numbers it dispatches on (every
//! opcode's and the fused ones'), and the decoder's choice of where to use
//! them ([`fuse`]).

use super::instructions::Opcode;
use super::program::Op;

/// Labels entries with fused handlers where that saves dispatches: for
/// each entry, the fewest dispatches from it to its block's end, taking
/// one to [`MAX_PARTS`] instructions of the block per dispatch (a fused
/// label covers its first instruction and the next ones). A run from a
/// block start follows the labels; one that starts or resumes mid-block
/// (after a host call, a memory retry, a step) does too, as every entry
/// keeps the best label for its own suffix.
pub(super) fn fuse(ops: &mut [Op], block_start: &[bool]) {
    // after[k]: the fewest dispatches from entry `i + 1 + k` to the end.
    let mut after = [0u32; MAX_PARTS];
    for i in (0..ops.len()).rev() {
        // Entries from `i` on in its block, up to MAX_PARTS.
        let mut len = 1;
        while len < MAX_PARTS
            && i + len < ops.len()
            && !block_start.get(i + len).copied().unwrap_or(true)
        {
            len += 1;
        }
        let mut best = (after[0] + 1, None);
        for k in 2..=len {
            // Ties go to the longer sequence.
            if after[k - 1] < best.0
                && let Some(fused) = FUSIONS.find(&ops[i..i + k])
            {
                best = (after[k - 1] + 1, Some(fused));
            }
        }
        if let Some(fused) = best.1 {
            ops[i].opcode = fused;
        }
        after.copy_within(0..MAX_PARTS - 1, 1);
        after[0] = best.0;
    }
}

/// The most instructions one fused handler runs.
pub(super) const MAX_PARTS: usize = 4;

/// Distinct opcodes that fused pairs and triples may combine (the
/// tables' side).
const FUSIBLE: usize = 24;

/// Room for fused sequences of four (few: found by a scan).
const MAX_QUADS: usize = 8;

/// Which fused handler runs a sequence of opcodes, built at compile time
/// from [`Handler::ALL`]: pairs and triples in tables indexed by each
/// opcode's slot among the fusible ones, the few quads in a list.
struct Fusions {
    /// An opcode's slot + 1 (0: it takes part in no pair or triple).
    slot: [u8; 256],
    pairs: [[Option<Handler>; FUSIBLE]; FUSIBLE],
    triples: [[[Option<Handler>; FUSIBLE]; FUSIBLE]; FUSIBLE],
    quads: [Option<(Handler, [u8; 4])>; MAX_QUADS],
}

static FUSIONS: Fusions = Fusions::build();

impl Fusions {
    const fn build() -> Fusions {
        let mut f = Fusions {
            slot: [0; 256],
            pairs: [[None; FUSIBLE]; FUSIBLE],
            triples: [[[None; FUSIBLE]; FUSIBLE]; FUSIBLE],
            quads: [None; MAX_QUADS],
        };
        let mut used = 0;
        let mut quads = 0;
        let mut h = 0;
        while h < Handler::ALL.len() {
            let handler = Handler::ALL[h];
            let parts = handler.parts();
            h += 1;
            if parts.len() == 4 {
                assert!(quads < MAX_QUADS, "raise MAX_QUADS");
                let ops = [
                    parts[0] as u8,
                    parts[1] as u8,
                    parts[2] as u8,
                    parts[3] as u8,
                ];
                let mut q = 0;
                while q < quads {
                    if let Some((_, other)) = f.quads[q] {
                        assert!(
                            !(other[0] == ops[0]
                                && other[1] == ops[1]
                                && other[2] == ops[2]
                                && other[3] == ops[3]),
                            "two fused handlers for one sequence"
                        );
                    }
                    q += 1;
                }
                f.quads[quads] = Some((handler, ops));
                quads += 1;
                continue;
            }
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
                0 => continue,
                2 => &mut f.pairs[at[0]][at[1]],
                3 => &mut f.triples[at[0]][at[1]][at[2]],
                _ => panic!("a fusion is two to four instructions"),
            };
            assert!(cell.is_none(), "two fused handlers for one sequence");
            *cell = Some(handler);
        }
        f
    }

    #[inline]
    fn slot(&self, opcode: Opcode) -> Option<usize> {
        (self.slot[opcode as usize] as usize).checked_sub(1)
    }

    /// The fused handler that runs exactly `ops`' instructions, if any.
    fn find(&self, ops: &[Op]) -> Option<Handler> {
        let op = |k: usize| ops[k].opcode.unfused();
        match ops.len() {
            2 => self.pairs[self.slot(op(0))?][self.slot(op(1))?],
            3 => self.triples[self.slot(op(0))?][self.slot(op(1))?][self.slot(op(2))?],
            4 => {
                let want = [op(0) as u8, op(1) as u8, op(2) as u8, op(3) as u8];
                self.quads
                    .iter()
                    .map_while(|q| *q)
                    .find(|&(_, parts)| parts == want)
                    .map(|(handler, _)| handler)
            }
            _ => None,
        }
    }
}

/// The fused sequences of two to four instructions: `name = number,
/// [first, second, ...];`. Chosen from dynamic pair counts of the
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
                load_ind_u64__load_ind_u64__load_ind_u64__load_ind_u64 = 27, [load_ind_u64, load_ind_u64, load_ind_u64, load_ind_u64];
                shlo_l_imm_64__shlo_l_imm_64__shlo_l_imm_64__shlo_l_imm_64 = 28, [shlo_l_imm_64, shlo_l_imm_64, shlo_l_imm_64, shlo_l_imm_64];
                add_64__add_64__add_64__add_64 = 29, [add_64, add_64, add_64, add_64];
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
