//! The kernel's error codes (φ7 ≥ 2^64 − 16 after an op) as a typed error.
//!
//! The numbers are the kernel's `ERR_*` constants
//! (`capbox_shared::kernel::ops`); a test in the capbox workspace
//! (`tests/tests/programs_sdk.rs`) includes this file and checks that they
//! agree.

/// Success.
pub const OK: u64 = 0;
/// Pointer/length not readable (or not writable for an op that writes).
pub const ERR_MEMORY: u64 = u64::MAX - 1;
/// A length over the op's limit.
pub const ERR_TOO_LONG: u64 = u64::MAX - 2;
/// A slot number ≥ 65536.
pub const ERR_SLOT: u64 = u64::MAX - 3;
/// The slot is empty.
pub const ERR_EMPTY: u64 = u64::MAX - 4;
/// The cap has the wrong kind for the op.
pub const ERR_KIND: u64 = u64::MAX - 5;
/// An offset past the end.
pub const ERR_OFFSET: u64 = u64::MAX - 6;
/// `call` would nest too deep.
pub const ERR_DEPTH: u64 = u64::MAX - 7;
/// The destination slot is occupied.
pub const ERR_OCCUPIED: u64 = u64::MAX - 8;
/// A per-invocation budget is exhausted.
pub const ERR_LIMIT: u64 = u64::MAX - 9;
/// `call`: no such endpoint.
pub const ERR_ENDPOINT: u64 = u64::MAX - 10;
/// `call`: the child's image cannot run.
pub const ERR_CHILD: u64 = u64::MAX - 11;
/// Every value at or above this is an error code.
pub const ERR_MIN: u64 = u64::MAX - 15;

/// `cap_info` of an empty slot.
pub const INFO_EMPTY: u64 = 0xff;

/// `call`: the child halted.
pub const CALL_HALT: u64 = 0;
/// `call`: the child panicked.
pub const CALL_PANIC: u64 = 1;
/// `call`: the child ran out of gas.
pub const CALL_OUT_OF_GAS: u64 = 2;
/// `call`: the child page-faulted.
pub const CALL_PAGE_FAULT: u64 = 3;

/// A kernel op's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `ERR_MEMORY`.
    Memory,
    /// `ERR_TOO_LONG`.
    TooLong,
    /// `ERR_SLOT`.
    Slot,
    /// `ERR_EMPTY`.
    Empty,
    /// `ERR_KIND`.
    Kind,
    /// `ERR_OFFSET`.
    Offset,
    /// `ERR_DEPTH`.
    Depth,
    /// `ERR_OCCUPIED`.
    Occupied,
    /// `ERR_LIMIT`.
    Limit,
    /// `ERR_ENDPOINT`.
    Endpoint,
    /// `ERR_CHILD`.
    Child,
    /// An error code this SDK does not know (a newer kernel).
    Other(u64),
}

impl Error {
    /// The error for a result register, or `None` if it is a value.
    pub const fn from_code(code: u64) -> Option<Error> {
        if code < ERR_MIN {
            return None;
        }
        Some(match code {
            ERR_MEMORY => Error::Memory,
            ERR_TOO_LONG => Error::TooLong,
            ERR_SLOT => Error::Slot,
            ERR_EMPTY => Error::Empty,
            ERR_KIND => Error::Kind,
            ERR_OFFSET => Error::Offset,
            ERR_DEPTH => Error::Depth,
            ERR_OCCUPIED => Error::Occupied,
            ERR_LIMIT => Error::Limit,
            ERR_ENDPOINT => Error::Endpoint,
            ERR_CHILD => Error::Child,
            other => Error::Other(other),
        })
    }

    /// The kernel's code for this error.
    pub const fn code(self) -> u64 {
        match self {
            Error::Memory => ERR_MEMORY,
            Error::TooLong => ERR_TOO_LONG,
            Error::Slot => ERR_SLOT,
            Error::Empty => ERR_EMPTY,
            Error::Kind => ERR_KIND,
            Error::Offset => ERR_OFFSET,
            Error::Depth => ERR_DEPTH,
            Error::Occupied => ERR_OCCUPIED,
            Error::Limit => ERR_LIMIT,
            Error::Endpoint => ERR_ENDPOINT,
            Error::Child => ERR_CHILD,
            Error::Other(code) => code,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self {
            Error::Memory => "ERR_MEMORY",
            Error::TooLong => "ERR_TOO_LONG",
            Error::Slot => "ERR_SLOT",
            Error::Empty => "ERR_EMPTY",
            Error::Kind => "ERR_KIND",
            Error::Offset => "ERR_OFFSET",
            Error::Depth => "ERR_DEPTH",
            Error::Occupied => "ERR_OCCUPIED",
            Error::Limit => "ERR_LIMIT",
            Error::Endpoint => "ERR_ENDPOINT",
            Error::Child => "ERR_CHILD",
            Error::Other(code) => return write!(f, "kernel error code {code:#x}"),
        };
        f.write_str(name)
    }
}

/// A kernel op's result.
pub type Result<T> = core::result::Result<T, Error>;

/// φ7 after an op: a value, or the error its code names.
pub const fn check(value: u64) -> Result<u64> {
    match Error::from_code(value) {
        Some(e) => Err(e),
        None => Ok(value),
    }
}
