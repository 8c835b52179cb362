//! `CNode`: a capability table, slot index → link.

use alloc::collections::BTreeMap;

use super::{CapError, CapHashOrRef};

/// Slots are numbered `0..MAX_CNODE_SLOTS` (2^16), which also bounds a
/// CNode's size.
pub const MAX_CNODE_SLOTS: u32 = 1 << 16;

/// A capability table: sorted map from slot index to a cap link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CNode {
    slots: BTreeMap<u32, CapHashOrRef>,
}

impl CNode {
    /// An empty table.
    pub fn new() -> Self {
        CNode::default()
    }

    /// The link in `slot`, if any.
    pub fn get(&self, slot: u32) -> Option<&CapHashOrRef> {
        self.slots.get(&slot)
    }

    /// Puts `target` in `slot`, returning what was there.
    pub fn set(
        &mut self,
        slot: u32,
        target: CapHashOrRef,
    ) -> Result<Option<CapHashOrRef>, CapError> {
        if slot >= MAX_CNODE_SLOTS {
            return Err(CapError::SlotOutOfRange(slot));
        }
        Ok(self.slots.insert(slot, target))
    }

    /// Empties `slot`, returning what was there.
    pub fn remove(&mut self, slot: u32) -> Option<CapHashOrRef> {
        self.slots.remove(&slot)
    }

    /// Occupied slots in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &CapHashOrRef)> + '_ {
        self.slots.iter().map(|(&slot, target)| (slot, target))
    }

    /// Number of occupied slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is occupied.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn targets_mut(&mut self) -> impl Iterator<Item = &mut CapHashOrRef> + '_ {
        self.slots.values_mut()
    }

    /// Builds from decoded, already-validated slots.
    pub(crate) fn from_sorted(slots: BTreeMap<u32, CapHashOrRef>) -> Self {
        CNode { slots }
    }
}
