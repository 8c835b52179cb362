//! The parts of a Data's Merkle tree (docs/store.md "Data pages"): stores
//! and transfers keep a Data as its length, root, inner nodes (`left ‖
//! right`) and pages, each named by its digest, so versions share what
//! they have in common. These functions compute and read those digests
//! with the same scheme as [`Data::hash`].

use super::{Data, MAX_DATA_LEN, Page, page_count_for};
use crate::cap::merkle::{DataPages, depth_for};
use crate::cap::tree::Scheme;
use crate::hash::{CapHash, Domain, HASH_LEN, hash_in, hash_parts_in};

/// A page or inner-node digest.
pub type NodeDigest = [u8; HASH_LEN];

impl Data {
    /// Depth of the Merkle tree (leaves = pages; 0 for zero or one page).
    pub fn tree_depth(&self) -> u8 {
        self.pages.depth()
    }

    /// The Merkle root (the Data hash is [`data_hash_from_root`] of it).
    pub fn root_digest(&self) -> NodeDigest {
        // Page leaves always hash, so the root is always `Some`.
        self.pages.root_digest().unwrap_or_default()
    }

    /// The digest of the subtree at `height` (0: page `index`) covering
    /// pages `index << height ..`; `None` outside the tree. Uses (and
    /// fills) the cached digests.
    pub fn node_digest(&self, height: u8, index: u32) -> Option<NodeDigest> {
        self.pages.digest_at(height, index)
    }
}

/// Digest of one page (a leaf).
pub fn data_page_digest(page: &Page) -> NodeDigest {
    hash_in(Domain::DataPage, &page[..])
}

/// Digest of an inner node from its children's digests.
pub fn data_node_digest(left: &NodeDigest, right: &NodeDigest) -> NodeDigest {
    hash_parts_in(Domain::DataNode, &[left, right])
}

/// Digest of a subtree of `height` holding only zero pages (never stored).
pub fn data_zero_digest(height: u8) -> NodeDigest {
    *<DataPages as Scheme>::zero(height)
}

/// The Data hash of a Data of `len` bytes whose Merkle root is `root`.
pub fn data_hash_from_root(len: u64, root: &NodeDigest) -> CapHash {
    CapHash(hash_parts_in(Domain::CapData, &[&len.to_le_bytes(), root]))
}

/// The tree depth of a Data of `len` bytes; `None` past [`MAX_DATA_LEN`].
pub fn data_depth_for_len(len: u64) -> Option<u8> {
    (len <= MAX_DATA_LEN).then(|| depth_for(page_count_for(len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::PAGE_SIZE;

    #[test]
    fn parts_recompute_the_data_hash() {
        let mut data = Data::new(5 * PAGE_SIZE as u64 + 10).unwrap();
        data.write(3 * PAGE_SIZE as u64 + 7, b"hello").unwrap();
        data.write(5 * PAGE_SIZE as u64, b"tail").unwrap();
        let depth = data.tree_depth();
        assert_eq!(depth, 3);
        assert_eq!(data_depth_for_len(data.len()), Some(depth));
        // Recompute every inner node from its children.
        for height in 1..=depth {
            for index in 0..(1u32 << (depth - height)) {
                let left = data.node_digest(height - 1, 2 * index).unwrap();
                let right = data.node_digest(height - 1, 2 * index + 1).unwrap();
                assert_eq!(
                    data.node_digest(height, index).unwrap(),
                    data_node_digest(&left, &right)
                );
            }
        }
        let page = data.page(3).unwrap();
        assert_eq!(data.node_digest(0, 3).unwrap(), data_page_digest(page));
        assert_eq!(data.node_digest(0, 1).unwrap(), data_zero_digest(0));
        assert_eq!(data.node_digest(0, 7).unwrap(), data_zero_digest(0));
        assert_eq!(data.node_digest(0, 8), None);
        assert_eq!(data.node_digest(depth + 1, 0), None);
        assert_eq!(data.node_digest(depth, 0).unwrap(), data.root_digest());
        assert_eq!(
            data_hash_from_root(data.len(), &data.root_digest()),
            data.hash()
        );
    }
}
