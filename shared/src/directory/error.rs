//! The directory's typed error.

use core::fmt;

use crate::cap::CapError;
use crate::hash::CapHash;

/// Why a directory operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// No blob with this hash has been published.
    BlobMissing(CapHash),
    /// No working entry with this id (never created, swept, or settled into
    /// the blobs).
    InstanceMissing(u64),
    /// The cap itself is invalid (e.g. still holds a `Ref`).
    Cap(CapError),
    /// Settling found a working entry that reaches itself through `Ref`s.
    RefCycle(u64),
    /// Settling went deeper than [`super::settle::MAX_SETTLE_DEPTH`] levels.
    SettleTooDeep,
    /// Settling kept racing with concurrent writers to the same entry.
    SettleContended(u64),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::BlobMissing(hash) => write!(f, "no blob published with hash {hash}"),
            CacheError::InstanceMissing(id) => write!(f, "no working entry #{id}"),
            CacheError::Cap(err) => write!(f, "invalid cap: {err}"),
            CacheError::RefCycle(id) => {
                write!(f, "working entry #{id} reaches itself through refs")
            }
            CacheError::SettleTooDeep => write!(
                f,
                "cap graph nested deeper than {} levels",
                super::settle::MAX_SETTLE_DEPTH
            ),
            CacheError::SettleContended(id) => {
                write!(f, "working entry #{id} kept changing while being settled")
            }
        }
    }
}

impl From<CapError> for CacheError {
    fn from(value: CapError) -> Self {
        CacheError::Cap(value)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CacheError {}
