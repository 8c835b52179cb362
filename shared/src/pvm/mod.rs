//! The Polkadot Virtual Machine (Graypaper v0.7.2, appendix A).
//!
//! * [`instructions`]: the instruction table, defined once
//!   ([`with_instructions!`](crate::with_instructions), [`Opcode`]).

pub mod instructions;

pub use instructions::{ALL_OPCODES, ArgFormat, Opcode};
