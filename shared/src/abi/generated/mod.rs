//! flatc output for `../capbox_abi.fbs` (see scripts/gen-abi.sh).
mod capbox_abi_generated;
pub use capbox_abi_generated::*;
