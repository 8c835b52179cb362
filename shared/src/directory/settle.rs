//! Settling: turning a working graph into content hashes, bottom-up.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::{CacheDirectory, CacheError};
use crate::cap::{Cap, CapHashOrRef, CapRef};
use crate::hash::CapHash;

/// Deepest `Ref` nesting settle follows (bounds its recursion).
pub const MAX_SETTLE_DEPTH: usize = 64;

/// How often settle retries an entry that a concurrent writer replaced.
const MAX_SETTLE_RETRIES: usize = 64;

impl<S: BuildHasher> CacheDirectory<S> {
    /// Settles one working entry; `path` holds the ids being settled above
    /// it, to detect cycles and bound the depth.
    pub(super) fn settle_ref(
        &self,
        capref: &CapRef,
        path: &mut Vec<u64>,
        publish_instances: bool,
    ) -> Result<CapHash, CacheError> {
        if path.contains(&capref.id()) {
            return Err(CacheError::RefCycle(capref.id()));
        }
        if path.len() >= MAX_SETTLE_DEPTH {
            return Err(CacheError::SettleTooDeep);
        }
        for _ in 0..MAX_SETTLE_RETRIES {
            let current = self
                .get_instance(capref)
                .ok_or(CacheError::InstanceMissing(capref.id()))?;
            let mut nested = Vec::new();
            current.for_each_ref(|r| nested.push(r.clone()));

            if nested.is_empty() {
                // Hash unlocked; the Data Merkle cache makes this cheap.
                let hash = current.hash()?;
                if publish_instances || !matches!(*current, Cap::Instance(_)) {
                    self.insert_blob(hash, current);
                }
                return Ok(hash);
            }

            path.push(capref.id());
            let mut resolved = Vec::with_capacity(nested.len());
            for child in &nested {
                match self.settle_ref(child, path, publish_instances) {
                    Ok(hash) => resolved.push((child.id(), hash)),
                    Err(err) => {
                        path.pop();
                        return Err(err);
                    }
                }
            }
            path.pop();
            drop(nested);

            let mut updated = current.clone();
            Arc::make_mut(&mut updated).for_each_target_mut(|target| {
                if let CapHashOrRef::Ref(r) = target
                    && let Some(&(_, hash)) = resolved.iter().find(|(id, _)| *id == r.id())
                {
                    *target = CapHashOrRef::Hash(hash);
                }
            });
            let replaced = self.replace_if_unchanged(capref, &current, updated)?;
            // The old value (and its nested handles) drop here, unlocked.
            drop(replaced);
            drop(current);
        }
        Err(CacheError::SettleContended(capref.id()))
    }
}
