//! The kernel's typed errors: why an invocation could not even start.
//! (A program's own failures are exits in the outcome, not errors.)

use core::fmt;

use crate::CacheError;
use crate::cap::{CapError, CapKind};
use crate::hash::CapHash;
use crate::pvm::ProgramError;

/// Why the kernel refused or could not run an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// A blob the invocation needs is not in the directory (the host then
    /// publishes it and retries).
    MissingCap(CapHash),
    /// A cap has the wrong kind for its place (e.g. an Instance's `image`
    /// names a Data cap).
    WrongKind {
        /// The cap.
        hash: CapHash,
        /// What was needed.
        expected: CapKind,
        /// What it is.
        found: CapKind,
    },
    /// The endpoint index is outside the image's endpoint list.
    BadEndpoint {
        /// The image.
        image: CapHash,
        /// The requested endpoint.
        endpoint: u32,
        /// How many the image has.
        count: usize,
    },
    /// The image's code is not a valid PVM program.
    BadProgram {
        /// The image.
        image: CapHash,
        /// Why.
        reason: ProgramError,
    },
    /// The image's sections (with the instance's memory) do not fit the
    /// standard memory layout.
    BadLayout {
        /// The instance.
        instance: CapHash,
        /// Why.
        reason: &'static str,
    },
    /// The invocation's memory does not fit the page allocator (the
    /// guest's arena).
    OutOfMemory {
        /// The instance.
        instance: CapHash,
    },
    /// The directory refused an operation.
    Directory(CacheError),
    /// A cap operation failed.
    Cap(CapError),
    /// The invocation's input is longer than `ops::MAX_INPUT_LEN`.
    InputTooLong(u64),
    /// A `call` would map more memory than the call stack's budget
    /// (`MAX_MAPPED_BYTES` over all frames); the caller gets `ERR_LIMIT`.
    CallStackMemory,
}

impl KernelError {
    /// The cap the error is about, if any.
    pub fn hash(&self) -> Option<&CapHash> {
        match self {
            KernelError::MissingCap(h) => Some(h),
            KernelError::WrongKind { hash, .. } => Some(hash),
            KernelError::BadEndpoint { image, .. } | KernelError::BadProgram { image, .. } => {
                Some(image)
            }
            KernelError::BadLayout { instance, .. } | KernelError::OutOfMemory { instance } => {
                Some(instance)
            }
            KernelError::Directory(CacheError::BlobMissing(h)) => Some(h),
            KernelError::Directory(_)
            | KernelError::Cap(_)
            | KernelError::InputTooLong(_)
            | KernelError::CallStackMemory => None,
        }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::MissingCap(h) => write!(f, "cap {h} is not published"),
            KernelError::WrongKind {
                hash,
                expected,
                found,
            } => write!(f, "cap {hash} is a {found}, expected a {expected}"),
            KernelError::BadEndpoint {
                image,
                endpoint,
                count,
            } => write!(
                f,
                "image {image} has {count} endpoints; endpoint {endpoint} does not exist"
            ),
            KernelError::BadProgram { image, reason } => {
                write!(f, "image {image} has invalid code: {reason}")
            }
            KernelError::BadLayout { instance, reason } => {
                write!(
                    f,
                    "instance {instance} does not fit the memory layout: {reason}"
                )
            }
            KernelError::OutOfMemory { instance } => write!(
                f,
                "instance {instance}: its memory does not fit the page arena"
            ),
            KernelError::Directory(e) => write!(f, "directory: {e}"),
            KernelError::Cap(e) => write!(f, "cap: {e}"),
            KernelError::InputTooLong(len) => write!(
                f,
                "the input is {len} bytes; at most {} are allowed",
                super::ops::MAX_INPUT_LEN
            ),
            KernelError::CallStackMemory => {
                f.write_str("the call stack would map more than MAX_MAPPED_BYTES")
            }
        }
    }
}

impl core::error::Error for KernelError {}

impl From<CacheError> for KernelError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::BlobMissing(h) => KernelError::MissingCap(h),
            other => KernelError::Directory(other),
        }
    }
}

impl From<CapError> for KernelError {
    fn from(e: CapError) -> Self {
        KernelError::Cap(e)
    }
}
