//! The kernel (DESIGN §5), shared by the guest and the local backend: one
//! code path for both.
//!
//! * [`invoke`]: one invocation against a [`crate::CacheDirectory`].
//! * [`ops`]: the kernel operations a program calls with `ecalli`.
//! * [`KernelState::handle`]: the ABI functions on top (put_cap, invoke,
//!   get_cap, stats, sweep, bench).
//! * [`sample`]: a hand-assembled stateful sample program.

pub mod apps;
pub mod bench;
mod error;
mod evict;
mod from_host;
mod instance;
mod invoke;
pub mod ops;
mod pages;
mod programs;
mod report;
pub mod sample;
mod service;
mod stream;
mod stream_codec;
mod transaction;

pub use error::KernelError;
pub use evict::SPILL_BATCH_BYTES;
pub use instance::{NewInstance, new_instance, new_instance_with_slots};
pub use invoke::{
    Call, ExitReason, LogSink, MAX_MAPPED_BYTES, NO_TIMEOUT, NoLog, Outcome, SLICE_GAS, invoke,
    invoke_call,
};
pub use ops::KernelOp;
pub use programs::{MAX_CACHED_PROGRAM_BYTES, MAX_CACHED_PROGRAMS, ProgramCache};
#[cfg(feature = "jit")]
pub use programs::{MAX_NATIVE_BYTES, NATIVE_BYTES_PER_INSTRUCTION, NATIVE_GAS_PER_INSTRUCTION};
pub use report::{REPORT_CHUNK_BYTES, committed_blobs};
pub use service::{
    KernelHost, KernelState, MAX_BATCH_OUTPUT_BYTES, MAX_FETCHES_PER_CALL, kernel_error_to_remote,
    outcome_to_wire,
};
pub use stream::{MAX_PINNED_UPLOADS, MAX_RANGE_BYTES, StreamState};
pub use stream_codec::{
    DATA_HEADER, DATA_RECORD, DataParser, EncodingLayout, EncodingVerifier, PageSink, data_root,
    max_encoded_len,
};
pub use transaction::MAX_FETCHES_PER_INVOCATION;

#[cfg(test)]
#[path = "invoke_tests.rs"]
mod invoke_tests;

#[cfg(test)]
#[path = "deadline_tests.rs"]
mod deadline_tests;

#[cfg(test)]
#[path = "report_tests.rs"]
mod report_tests;

#[cfg(test)]
#[path = "evict_tests.rs"]
mod evict_tests;
