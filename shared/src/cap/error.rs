//! The cap layer's typed error.

use core::fmt;

use super::CapKind;

/// Why a cap operation, encoding or decoding failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapError {
    /// The cap graph still holds a `Ref`; settle it before hashing/encoding.
    UnsettledRef,
    /// A Data access `[offset, offset + len)` past the Data's length.
    OutOfBounds {
        /// Start of the access.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// The Data's length.
        data_len: u64,
    },
    /// A size or count over its documented bound.
    LimitExceeded {
        /// What was too large.
        what: &'static str,
        /// The offending value.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A CNode slot index at or past [`super::MAX_CNODE_SLOTS`].
    SlotOutOfRange(u32),
    /// The encoding ended early while reading this field.
    Truncated(&'static str),
    /// Bytes left over after a complete encoding.
    TrailingBytes(usize),
    /// An unknown kind tag.
    UnknownTag(u8),
    /// A well-formed but non-canonical encoding (the reason).
    NonCanonical(&'static str),
    /// A cap of one kind where another was required.
    WrongKind {
        /// The kind required.
        expected: CapKind,
        /// The kind found.
        found: CapKind,
    },
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapError::UnsettledRef => {
                f.write_str("the cap still holds an unsettled Ref; settle it first")
            }
            CapError::OutOfBounds {
                offset,
                len,
                data_len,
            } => write!(
                f,
                "access of {len} bytes at offset {offset} is past the Data length {data_len}"
            ),
            CapError::LimitExceeded { what, value, max } => {
                write!(f, "{what} is {value}, over the limit {max}")
            }
            CapError::SlotOutOfRange(slot) => write!(
                f,
                "cnode slot {slot} is out of range (slots are below {})",
                super::MAX_CNODE_SLOTS
            ),
            CapError::Truncated(what) => write!(f, "encoding truncated while reading {what}"),
            CapError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the encoding"),
            CapError::UnknownTag(tag) => write!(f, "unknown cap kind tag {tag}"),
            CapError::NonCanonical(why) => write!(f, "non-canonical encoding: {why}"),
            CapError::WrongKind { expected, found } => {
                write!(f, "expected a {expected} cap, found a {found} cap")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CapError {}
