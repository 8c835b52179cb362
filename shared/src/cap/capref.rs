//! `CapRef` (a refcounted handle to a mutable working entry) and
//! `CapHashOrRef`.

use alloc::sync::Arc;
use core::fmt;
use core::hash::{Hash, Hasher};

use crate::hash::CapHash;

/// A cheap refcounted handle naming a working (mutable) entry of a
/// [`crate::CacheDirectory`]: an id plus a shared holder count.
///
/// `Clone` adds a holder, dropping removes one. The directory keeps one
/// holder itself, so an entry whose handle has exactly one holder is garbage.
/// Equality and hashing use the id only.
#[derive(Clone)]
pub struct CapRef {
    id: u64,
    holders: Arc<()>,
}

impl CapRef {
    /// A fresh handle with one holder. Ids are allocated by the directory;
    /// two handles created separately with the same id do not share a count.
    pub fn new(id: u64) -> Self {
        CapRef {
            id,
            holders: Arc::new(()),
        }
    }

    /// The entry id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How many clones of this handle are alive (including this one).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.holders)
    }

    /// Same as [`CapRef::holders`].
    pub fn strong_count(&self) -> usize {
        self.holders()
    }
}

impl PartialEq for CapRef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for CapRef {}

impl Hash for CapRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Debug for CapRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapRef(#{}, holders {})", self.id, self.holders())
    }
}

/// A link to another cap: a published blob (`Hash`) or a working entry (`Ref`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CapHashOrRef {
    /// An immutable, content-addressed blob.
    Hash(CapHash),
    /// A mutable working entry; must be settled before hashing.
    Ref(CapRef),
}

impl CapHashOrRef {
    /// The hash, if this is a settled link.
    pub fn as_hash(&self) -> Option<&CapHash> {
        match self {
            CapHashOrRef::Hash(h) => Some(h),
            CapHashOrRef::Ref(_) => None,
        }
    }

    /// The handle, if this is a working link.
    pub fn as_ref_handle(&self) -> Option<&CapRef> {
        match self {
            CapHashOrRef::Hash(_) => None,
            CapHashOrRef::Ref(r) => Some(r),
        }
    }
}

impl From<CapHash> for CapHashOrRef {
    fn from(value: CapHash) -> Self {
        CapHashOrRef::Hash(value)
    }
}

impl From<CapRef> for CapHashOrRef {
    fn from(value: CapRef) -> Self {
        CapHashOrRef::Ref(value)
    }
}
