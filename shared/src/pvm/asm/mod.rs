//! PVM tooling: write programs in Rust ([`ProgramBuilder`]), assemble text
//! ([`assemble`]) and print blobs back as text ([`disassemble`]).
//!
//! The text syntax follows the disassembly in the w3f test vectors'
//! TESTCASES.md; every form is listed in one place, derived per opcode of
//! the instruction table (see the `syntax` module source). Where our text
//! differs from TESTCASES.md:
//!
//! * registers print as `r0`…`r12` (TESTCASES.md sometimes prints PolkaVM's
//!   ABI names such as `a1`; the assembler accepts both);
//! * jump targets print as labels `@n` when they are instructions, else as
//!   absolute code offsets (TESTCASES.md prints offsets);
//! * immediates are 64-bit values: a number that is not the sign extension
//!   of a 32-bit field is rejected (TESTCASES.md prints some branch
//!   immediates as unsigned 32-bit numbers, e.g. `4294967286` for `-10`);
//!   addresses (`u8 [0x20000]`) and `ecalli` numbers are 32-bit;
//! * `rN = v` is `load_imm` when `v` fits 32 bits (sign-extended), else
//!   `load_imm_64`; a `load_imm_64` of a small value prints in the generic
//!   form `load_imm_64 r7, 5`;
//! * forms TESTCASES.md never shows are ours (`sbrk(r8)`, `popcount(r8)`,
//!   `clz`, `ctz`, `sext8`, `sext16`, `zext16`, `bswap`, `mulh`, `mulhu`,
//!   `mulhsu`, `max`, `maxu`, `min`, `minu`, `<<r`, `>>r`, `& ~`, `| ~`,
//!   `~(a ^ b)`);
//! * labels: TESTCASES.md prints `@n` lines without a colon and marks
//!   jump-table targets `@n [@dyn k]`; we print `@n:` and list the jump
//!   table in a `.jump_table` directive (the assembler accepts `@n` with or
//!   without the colon, not the `[@dyn k]` annotation);
//! * TESTCASES.md's `invalid` line (the implicit trap past the end of the
//!   code) is not printed: it is not part of the code.

mod assembler;
mod builder;
mod disassembler;
mod error;
mod insn;
mod syntax;
mod text;

pub use assembler::{
    AsmNote, Assembled, DEFAULT_STACK, assemble, assemble_image, assemble_image_with_notes,
    assemble_program, assemble_with_notes,
};
pub use builder::{BuiltProgram, ProgramBuilder};
pub use disassembler::disassemble;
pub use error::{AsmError, AsmErrorKind, BuildError};
pub use insn::{Args, Imm, Insn, Label, Reg, Target};
