//! capbox's core, shared by the host (local backend) and the guest kernel.
//!
//! `#![no_std]` + `alloc`; the `std` feature is for the host and tests.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod pvm;
