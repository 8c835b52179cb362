//! The Polkadot Virtual Machine (Graypaper v0.7.2, appendix A).
//!
//! * [`instructions`](mod@instructions) — the instruction table, defined once
//!   ([`with_instructions!`](crate::with_instructions), [`Opcode`]).
//! * [`blob`] — `deblob`, splitting a blob into jump table, code and bitmask.
//! * [`decode`] — operand decoding of one instruction.
//! * [`layout`] — the standard program format `Y` and its memory layout.
//! * [`memory`] — pages, access rights, dirty tracking.
//! * [`program`] — a blob pre-decoded once into a fast form; `fusion`
//!   (private) — the fused handlers (two or three instructions in one
//!   dispatch) and where the decoder uses them.
//! * [`interpreter`] — [`Machine::run`]: gas blocks, slices, the stepping
//!   loop; `handlers` (private) — one function per instruction handler,
//!   each dispatching the next; `window` (private) — the handlers' fast
//!   path into memory.
//! * `jit` (feature `jit`, x86-64 Linux) — `Program::compile_native`:
//!   the program compiled to machine code, which runs where the
//!   interpreter's handlers would and ends every run in their state.
//!
//! # Where this implementation departs from the Graypaper's text
//!
//! The w3f test vectors (v0.4) win where they and the text disagree, and
//! some points the text leaves open had to be decided:
//!
//! 1. **Gas is charged per basic block, on entry** (vectors). Entering a
//!    block (at `run`, or by a jump, branch or fall-through) charges one gas
//!    per instruction up to the block's end, before any of them runs. So an
//!    instruction that faults or panics mid-block has already paid for the
//!    rest of its block: `store` + implicit `trap` page-faulting costs 2, not
//!    the text's 0. Blocks for charging are the Graypaper's basic blocks,
//!    `ecalli` included (departure 12).
//! 2. **Out of gas** follows the text: when the remaining gas cannot pay
//!    for the whole block, its instructions are charged one at a time; the
//!    first one that cannot be paid is not executed, `pc` points at it and
//!    the gas is left at the text's `ϱ' = ϱ − 1 < 0`. (The vectors have no
//!    out-of-gas case. PolkaVM 0.37 differs here: it stops at the block's
//!    start without running any of it and leaves the gas untouched. Runs
//!    that do not run out of gas end in the same state, gas included, as
//!    checked against PolkaVM's interpreter on random programs during
//!    development.)
//! 3. **`pc` after panic and halt** stays at the instruction that panicked
//!    or jumped to the halt address (vectors); the text sets it to 0.
//! 4. **Panics keep register writes** of the panicking instruction: a
//!    `load_imm_jump(_ind)` to an invalid target sets its register (vectors
//!    and the text's `Ψ` agree, noted because it is easy to miss). Memory
//!    traps leave the state untouched.
//! 5. **Host calls**: `run` returns with `pc` already past the `ecalli`
//!    (the text leaves `pc` on it and lets `Ψ_H` advance it), so calling
//!    `run` again resumes.
//! 6. **Low memory**: addresses below 2^16 are never mappable, so touching
//!    one is always a panic, as the text's prose says. Which octet decides
//!    between panic and fault is the first inaccessible one in access
//!    order (the text's minimum over indices before reducing mod 2^32), so
//!    an access wrapping past 2^32 reports its high part first.
//! 7. **`sbrk`** returns the current break and raises it by `φ_A` octets,
//!    mapping pages as needed (the Unix convention: the result is the start
//!    of the new octets; the text's formula is ambiguous and PolkaVM 0.37
//!    returns the new break instead); `sbrk 0` returns the break; it
//!    returns 0 when the memory has no heap (e.g. built from a page map) or
//!    the heap would reach the next mapped region (the stack).
//! 8. **Octets that are not instruction starts**: starting at such a `pc`
//!    executes a `trap` (cost 1). A skip capped at 24 lands on one the same
//!    way.
//! 9. **Zero-width jump tables** (`z = 0`) may not list more entries than
//!    the blob has octets (an allocation bound; the text allows any count).
//! 10. **Three-register instructions** take r_D = min(12, ζ_{ı+2} mod 16),
//!     the low nibble (the text reads min(12, ζ_{ı+2})), also when that
//!     octet lies past the instruction's end: PolkaVM 0.37 and anan-as
//!     1.2.0 both do (DESIGN §4: where the two agree, capbox agrees).
//! 11. **Conditional branches to a target that is not a block start** (or
//!     outside the code) panic whether or not the branch would be taken;
//!     the text only faults a taken jump. PolkaVM 0.37 checks the target
//!     first; anan-as 1.2.0 does not (see below: it falls through a branch
//!     not taken), so here capbox is on PolkaVM's side.
//! 12. **Gas precharge across `ecalli`**: an `ecalli` does not end a block
//!     for gas; the block is charged in full on entry, through every
//!     `ecalli` in it, and resuming after the host call (`run` again at the
//!     `pc` it returned, departure 5) charges nothing for the rest of it,
//!     even when the host has used up the gas meanwhile. A fault before the
//!     `ecalli` has therefore paid for the whole block (PolkaVM 0.37, which
//!     does not end blocks at `ecalli` and, on resumption, does not charge;
//!     anan-as 1.2.0 charges per instruction, see below). The
//!     machine remembers the resumption `pc` of a host call from a block it
//!     charged in full; a run starting anywhere else (the caller moved `pc`)
//!     charges as usual. A block too expensive to pay in full is stepped as
//!     in departure 2, one instruction at a time, so an `ecalli` inside its
//!     affordable part is still made (PolkaVM stops at the block's start)
//!     and, as nothing beyond it was paid, the rest is charged on
//!     resumption. Checked against PolkaVM in
//!     `shared/tests/pvm_vs_polkavm_ecalli.rs`.
//!
//! # anan-as 1.2.0
//!
//! `scripts/diff-anan-as.sh` runs random raw programs (as
//! `fuzz/fuzz_targets/diff_raw.rs` makes them) in capbox and in anan-as
//! 1.2.0 (npm `@fluffylabs/anan-as`), with PolkaVM 0.37 breaking ties
//! (`shared/tests/pvm_vs_anan_as.rs`). In 14 minutes (2 233 409 programs,
//! seeds 2 and 3; 1 738 296 differ from anan-as, most only in gas) it
//! found no difference where anan-as and PolkaVM agree with each other, so
//! nothing here was changed to follow anan-as. PolkaVM's interpreter reports most
//! page faults as traps, so it cannot break ties on fault against panic or
//! on a fault's address. Where anan-as differs from capbox and PolkaVM
//! (capbox stays with PolkaVM, the vectors and the text):
//!
//! * **Gas is charged per instruction** as each runs (the text's `ϱ' = ϱ −
//!   1`), not per block on entry (departure 1): `store_ind_u8` + `trap`
//!   page-faulting at pc 0 leaves 1999 of 2000 there, 1998 here; an
//!   `ecalli` first in a block reports 1999, not 1998 (departure 12). Its
//!   own w3f test run skips the vectors that show this.
//! * **Immediates read past the instruction's end**: when an instruction's
//!   skip is shorter than its immediates' encoded lengths, anan-as takes
//!   the missing octets from the code that follows (the next
//!   instructions), where capbox and PolkaVM bound the lengths by the
//!   skip. E.g. `b4 | 01 88 60 3b 2c` (`load_imm_jump_ind` with skip 0)
//!   sets φ1 = 0x2c3b60 there, 0 here; `b4 89 89 14 69 | …` sets
//!   φ9 = 0xffffffffd3a06914 there, 0x14 here. Addresses, branch targets
//!   and fault addresses computed from such immediates differ with them.
//!   Related: `49 9a 87 | 00` (`store_imm_ind_u64 [φ10 + imm] = 0`, skip
//!   2) reads imm = −121 here and in PolkaVM (one octet, sign-extended)
//!   and +135 there: with φ10 = 0x2_0000 its store succeeds there and
//!   faults here; with φ10 = −6 it panics there (the address wraps below
//!   2^16) and faults at page 0xffff_f000 here.
//! * **Conditional branches to a target that is not a block start** fall
//!   through when not taken (the text's reading; departure 11): `9e | 58 |
//!   00` (a `branch_le_s_imm` at pc 1 to pc 1) reaches the `trap` at pc 2
//!   there and panics at pc 1 here.
//! * **`sbrk`** with no heap (memory from a page map) panics or returns
//!   other values there (departure 7; PolkaVM 0.37 has no `sbrk`).

pub mod asm;
pub mod blob;
mod buffer;
pub mod decode;
mod error;
mod fusion;
mod handlers;
pub mod instructions;
pub mod interpreter;
#[cfg(feature = "jit")]
pub mod jit;
pub mod layout;
pub mod memory;
pub mod program;
mod window;

#[cfg(test)]
mod fusion_tests;

pub use blob::{Bitmask, ProgramParts, deblob, decode_natural, encode_natural};
pub use decode::{Instruction, Operands, decode_instruction, instructions};
pub use error::{MemoryError, ProgramError};
pub use instructions::{ALL_OPCODES, ArgFormat, Opcode};
pub use interpreter::{Exit, Machine};
#[cfg(feature = "jit")]
pub use jit::JitError;
pub use layout::{HALT_ADDRESS, StandardLayout, StandardProgram};
pub use memory::{Access, Memory, PAGE_SIZE, PageMapEntry};
pub use program::{MAX_INSTRUCTIONS, Program};
