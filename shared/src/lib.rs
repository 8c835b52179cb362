//! capbox's core, shared by the host (local backend) and the guest kernel.
//!
//! `#![no_std]` + `alloc`; the `std` feature is for the host and tests.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod abi;
pub mod cap;
mod directory;
pub mod hash;
pub mod kernel;
pub mod page_alloc;
pub mod pvm;

pub use cap::{
    CNode, Cap, CapError, CapHashOrRef, CapKind, CapRef, Data, Image, InstanceCap, PAGE_SIZE,
    TypeCap,
};
pub use directory::{
    BlobBudget, CacheDirectory, CacheError, DirectoryStats, EvictionCandidate, EvictionStats,
};
pub use hash::{CapHash, HexError};
