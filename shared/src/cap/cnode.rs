//! `CNode`: a capability table, slot index → link.
//!
//! Hash: the slots form a sparse Merkle tree of fixed depth 16 over slots
//! `0..65536`. The leaf of an occupied slot is `Domain::CNodeSlot` over the
//! target's 32-byte hash; an empty slot is 32 zero bytes; an inner node is
//! `Domain::CNodeNode` over `left ‖ right` (so an empty subtree of height
//! `h` is the fixed constant `Z(h)`, `Z(0)` = zeros, `Z(h+1)` =
//! `CNodeNode(Z(h) ‖ Z(h))`). The CNode hash is `Domain::CapCNode` over
//! `count (u32 LE) ‖ root`. Changing one slot therefore re-hashes 17 small
//! nodes, whatever the table's size. The encoding (count, then ascending
//! `(slot, hash)` pairs) is separate and unchanged by this.
//!
//! A slot holding a `Ref` (a working entry) has no hash, so neither has the
//! CNode until it is settled. The slots holding a `Ref` are also kept in a
//! side set, so that finding and rewriting them (settling) costs
//! O(refs · log n), not O(slots).

use alloc::collections::BTreeSet;
use core::fmt;

use spin::Once;

use super::tree::{Digest, Scheme, Tree, root_from_scratch};
use super::{CapError, CapHashOrRef, CapRef};
use crate::hash::{CapHash, Domain, HASH_LEN, hash_in, hash_parts_in};

/// Slots are numbered `0..MAX_CNODE_SLOTS` (2^16), which also bounds a
/// CNode's size.
pub const MAX_CNODE_SLOTS: u32 = 1 << SLOT_BITS;

/// Depth of the slot tree.
const SLOT_BITS: u8 = 16;

/// The hashing scheme of CNode slots.
pub(crate) struct CNodeSlots;

impl Scheme for CNodeSlots {
    type Leaf = CapHashOrRef;

    fn leaf(target: &CapHashOrRef) -> Option<Digest> {
        target.as_hash().map(slot_digest)
    }

    fn node(left: &Digest, right: &Digest) -> Digest {
        hash_parts_in(Domain::CNodeNode, &[left, right])
    }

    fn zero(height: u8) -> &'static Digest {
        static ZEROS: Once<[Digest; SLOT_BITS as usize + 1]> = Once::new();
        let zeros = ZEROS.call_once(|| {
            let mut zeros = [[0u8; HASH_LEN]; SLOT_BITS as usize + 1];
            for h in 1..zeros.len() {
                zeros[h] = hash_parts_in(Domain::CNodeNode, &[&zeros[h - 1], &zeros[h - 1]]);
            }
            zeros
        });
        &zeros[usize::from(height.min(SLOT_BITS))]
    }
}

fn slot_digest(target: &CapHash) -> Digest {
    hash_in(Domain::CNodeSlot, target.as_bytes())
}

/// A capability table: a sparse map from slot index to a cap link, kept as a
/// persistent Merkle tree (cloning is O(1); a change copies one path).
#[derive(Clone)]
pub struct CNode {
    slots: Tree<CNodeSlots>,
    /// The slots whose link is a `Ref`.
    refs: BTreeSet<u32>,
}

impl Default for CNode {
    fn default() -> Self {
        CNode {
            slots: Tree::new(SLOT_BITS),
            refs: BTreeSet::new(),
        }
    }
}

impl CNode {
    /// An empty table.
    pub fn new() -> Self {
        CNode::default()
    }

    /// The link in `slot`, if any. O(log n).
    pub fn get(&self, slot: u32) -> Option<&CapHashOrRef> {
        self.slots.get(slot)
    }

    /// Puts `target` in `slot`, returning what was there. O(log n).
    pub fn set(
        &mut self,
        slot: u32,
        target: CapHashOrRef,
    ) -> Result<Option<CapHashOrRef>, CapError> {
        if slot >= MAX_CNODE_SLOTS {
            return Err(CapError::SlotOutOfRange(slot));
        }
        if matches!(target, CapHashOrRef::Ref(_)) {
            self.refs.insert(slot);
        } else {
            self.refs.remove(&slot);
        }
        Ok(self.slots.set(slot, target))
    }

    /// Empties `slot`, returning what was there. O(log n).
    pub fn remove(&mut self, slot: u32) -> Option<CapHashOrRef> {
        self.refs.remove(&slot);
        self.slots.remove(slot)
    }

    /// Occupied slots in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &CapHashOrRef)> + '_ {
        self.slots.iter()
    }

    /// The occupied slots whose link may differ from `old`'s in the same
    /// slot (changed or newly occupied; emptied slots are not listed), in
    /// no particular order. Skips every part of the table the two versions
    /// share, so a table changed in k slots costs O(k · log slots), however
    /// many slots it has. (May list a slot whose link is in fact equal,
    /// e.g. set back to its old value; never leaves out a changed one.)
    pub fn changed_slots<'a>(
        &'a self,
        old: &'a CNode,
    ) -> impl Iterator<Item = (u32, &'a CapHashOrRef)> + 'a {
        self.slots.changed_leaves(&old.slots).into_iter()
    }

    /// Number of occupied slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// Whether some slot holds a `Ref`. O(1).
    pub fn has_refs(&self) -> bool {
        !self.refs.is_empty()
    }

    /// The content hash (see the module docs); re-hashes only the slots
    /// changed since the last call. Fails with [`CapError::UnsettledRef`]
    /// while a slot holds a `Ref`.
    pub fn hash(&self) -> Result<CapHash, CapError> {
        if self.has_refs() {
            return Err(CapError::UnsettledRef);
        }
        let root = self.slots.root_digest().ok_or(CapError::UnsettledRef)?;
        Ok(self.hash_with_root(&root))
    }

    /// The hash computed from scratch, ignoring cached digests (for checks).
    pub fn hash_uncached(&self) -> Result<CapHash, CapError> {
        let mut leaves = alloc::vec::Vec::with_capacity(self.len());
        for (slot, target) in self.iter() {
            let hash = target.as_hash().ok_or(CapError::UnsettledRef)?;
            leaves.push((slot, slot_digest(hash)));
        }
        let root = root_from_scratch::<CNodeSlots>(SLOT_BITS, leaves.into_iter());
        Ok(self.hash_with_root(&root))
    }

    fn hash_with_root(&self, root: &Digest) -> CapHash {
        // len ≤ MAX_CNODE_SLOTS, so it fits in u32.
        let count = self.len() as u32;
        CapHash(hash_parts_in(
            Domain::CapCNode,
            &[&count.to_le_bytes(), root],
        ))
    }

    /// The `Ref`s held, in slot order. O(refs · log n).
    pub(crate) fn refs(&self) -> impl Iterator<Item = &CapRef> + '_ {
        self.refs
            .iter()
            .filter_map(|&slot| self.slots.get(slot)?.as_ref_handle())
    }

    /// Calls `visit` on every link that holds a `Ref` (only those), so it
    /// can rewrite them. O(refs · log n).
    pub(crate) fn for_each_ref_mut(&mut self, mut visit: impl FnMut(&mut CapHashOrRef)) {
        let slots: alloc::vec::Vec<u32> = self.refs.iter().copied().collect();
        for slot in slots {
            let Some(target) = self.slots.get_mut(slot) else {
                self.refs.remove(&slot);
                continue;
            };
            visit(target);
            if !matches!(target, CapHashOrRef::Ref(_)) {
                self.refs.remove(&slot);
            }
        }
    }
}

impl PartialEq for CNode {
    fn eq(&self, other: &Self) -> bool {
        self.slots.ptr_eq(&other.slots)
            || (self.len() == other.len() && self.iter().eq(other.iter()))
    }
}

impl Eq for CNode {}

impl fmt::Debug for CNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CNode")
            .field(
                "slots",
                &fmt::from_fn(|f| f.debug_map().entries(self.iter()).finish()),
            )
            .finish()
    }
}
