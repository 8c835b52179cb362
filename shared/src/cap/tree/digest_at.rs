//! Digests of inner positions of a [`Tree`]: what a page-granular export
//! (the `data_nodes` guest function, docs/store.md) reads from a Data's
//! cached Merkle tree without re-hashing anything it already hashed.

use super::{Body, Digest, Scheme, Tree, child_bit, child_digest};

impl<S: Scheme> Tree<S> {
    /// The tree's depth.
    pub(crate) fn depth(&self) -> u8 {
        self.depth
    }

    /// The digest of the subtree at `height` (0 = one leaf) whose leaves
    /// start at `index << height`; `None` if the position is outside the
    /// tree or a leaf below cannot be hashed. An absent subtree is the
    /// scheme's zero digest. O(depth) plus hashing whatever below is not
    /// hashed yet.
    pub(crate) fn digest_at(&self, height: u8, index: u32) -> Option<Digest> {
        if height > self.depth || u64::from(index) >= 1u64 << (self.depth - height) {
            return None;
        }
        let first_leaf = (u64::from(index) << height) as u32;
        let mut slot = &self.root;
        let mut at = self.depth;
        while at > height {
            let Some(node) = slot else {
                return Some(*S::zero(height));
            };
            match &node.body {
                Body::Inner(children) => slot = &children[child_bit(first_leaf, at)],
                // Leaves sit only at height 0 < `at`.
                Body::Leaf(_) => return None,
            }
            at -= 1;
        }
        child_digest::<S>(slot, height)
    }
}
