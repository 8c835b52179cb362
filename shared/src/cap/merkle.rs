//! The incremental Merkle tree behind a Data cap's hash.
//!
//! Leaves are page hashes (`Domain::DataPage` over the 4096 page bytes); an
//! absent page is the all-zero page, so both hash alike. Inner nodes are
//! `Domain::DataNode` over `left ‖ right`. The tree has the smallest depth `d`
//! with `2^d ≥ page count` (depth 0 for zero or one page); missing leaves on
//! the right are zero pages. The Data hash is `Domain::CapData` over
//! `len (u64 LE) ‖ root`.
//!
//! The cache is sparse: level `l` stores only the nodes that differ from the
//! all-zero subtree of height `l`, so memory follows the present pages, not
//! the length. Writes mark leaves dirty; re-hashing walks only their paths,
//! O(k log n) for k dirty pages.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use spin::Once;

use super::data::{MAX_DATA_PAGES, PAGE_SIZE, Page};
use crate::hash::{Domain, HASH_LEN, hash_in, hash_parts_in};

type Digest = [u8; HASH_LEN];

/// Depth of a tree over `MAX_DATA_PAGES` leaves.
const MAX_DEPTH: usize = MAX_DATA_PAGES.trailing_zeros() as usize;

/// `zero_subtree(l)`: root of a height-`l` subtree of zero pages.
fn zero_subtree(level: usize) -> &'static Digest {
    static ZEROS: Once<[Digest; MAX_DEPTH + 1]> = Once::new();
    let zeros = ZEROS.call_once(|| {
        let mut zeros = [[0u8; HASH_LEN]; MAX_DEPTH + 1];
        zeros[0] = hash_in(Domain::DataPage, &[0u8; PAGE_SIZE]);
        for l in 1..=MAX_DEPTH {
            zeros[l] = hash_parts_in(Domain::DataNode, &[&zeros[l - 1], &zeros[l - 1]]);
        }
        zeros
    });
    &zeros[level]
}

/// Depth of the tree for `page_count` leaves.
pub(crate) fn depth_for(page_count: u32) -> usize {
    if page_count <= 1 {
        0
    } else {
        (u32::BITS - (page_count - 1).leading_zeros()) as usize
    }
}

/// Cached tree nodes and the leaves whose pages changed since.
#[derive(Clone, Debug, Default)]
pub(crate) struct MerkleCache {
    /// `levels[l]`: nodes at height `l` that are not the zero subtree.
    levels: Vec<BTreeMap<u32, Digest>>,
    /// Leaves whose page changed since the last re-hash.
    dirty: BTreeSet<u32>,
    /// The inner levels must be rebuilt from the leaves (page count changed).
    rebuild: bool,
    /// The tree root, valid when `dirty` is empty and `rebuild` is false.
    root: Option<Digest>,
}

impl MerkleCache {
    /// A cache where every present page is dirty (nothing hashed yet).
    pub(crate) fn all_dirty(pages: impl Iterator<Item = u32>) -> Self {
        MerkleCache {
            levels: Vec::new(),
            dirty: pages.collect(),
            rebuild: true,
            root: None,
        }
    }

    pub(crate) fn mark_dirty(&mut self, index: u32) {
        self.dirty.insert(index);
        self.root = None;
    }

    /// The page count changed: the tree shape may have changed.
    pub(crate) fn mark_resized(&mut self, new_page_count: u32) {
        if let Some(leaves) = self.levels.first_mut() {
            leaves.retain(|&i, _| i < new_page_count);
        }
        self.dirty.retain(|&i| i < new_page_count);
        self.rebuild = true;
        self.root = None;
    }

    /// Whether `root` can be read without hashing.
    pub(crate) fn is_clean(&self) -> bool {
        self.root.is_some()
    }

    /// Brings the cache up to date and returns the tree root.
    pub(crate) fn root<'p>(
        &mut self,
        page_count: u32,
        page: impl Fn(u32) -> Option<&'p Page>,
    ) -> Digest {
        if let Some(root) = self.root {
            return root;
        }
        let depth = depth_for(page_count);
        self.levels.resize_with(depth + 1, BTreeMap::new);
        self.levels.truncate(depth + 1);

        let dirty = core::mem::take(&mut self.dirty);
        for &index in &dirty {
            let leaf = match page(index) {
                Some(bytes) if index < page_count => hash_in(Domain::DataPage, bytes),
                _ => *zero_subtree(0),
            };
            store(&mut self.levels[0], index, leaf, zero_subtree(0));
        }

        if self.rebuild {
            for level in 1..=depth {
                let parents: BTreeSet<u32> = self.levels[level - 1].keys().map(|i| i / 2).collect();
                self.levels[level].clear();
                for parent in parents {
                    self.recompute(level, parent);
                }
            }
            self.rebuild = false;
        } else {
            let mut changed = dirty;
            for level in 1..=depth {
                changed = changed.iter().map(|i| i / 2).collect();
                for &parent in &changed {
                    self.recompute(level, parent);
                }
            }
        }

        let root = self.levels[depth]
            .get(&0)
            .copied()
            .unwrap_or(*zero_subtree(depth));
        self.root = Some(root);
        root
    }

    fn recompute(&mut self, level: usize, parent: u32) {
        let below = &self.levels[level - 1];
        let zero = zero_subtree(level - 1);
        let left = below.get(&(parent * 2)).unwrap_or(zero);
        let right = below.get(&(parent * 2 + 1)).unwrap_or(zero);
        let node = hash_parts_in(Domain::DataNode, &[left, right]);
        store(&mut self.levels[level], parent, node, zero_subtree(level));
    }
}

/// Keeps the level sparse: a node equal to the zero subtree is not stored.
fn store(level: &mut BTreeMap<u32, Digest>, index: u32, node: Digest, zero: &Digest) {
    if &node == zero {
        level.remove(&index);
    } else {
        level.insert(index, node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_smallest_covering_power_of_two() {
        assert_eq!(depth_for(0), 0);
        assert_eq!(depth_for(1), 0);
        assert_eq!(depth_for(2), 1);
        assert_eq!(depth_for(3), 2);
        assert_eq!(depth_for(4), 2);
        assert_eq!(depth_for(5), 3);
        assert_eq!(depth_for(MAX_DATA_PAGES), MAX_DEPTH);
    }
}
