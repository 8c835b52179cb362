//! The Merkle hash of a Data cap.
//!
//! Leaves are page hashes (`Domain::DataPage` over the 4096 page bytes); an
//! absent page is the all-zero page, so both hash alike. Inner nodes are
//! `Domain::DataNode` over `left ‖ right`. The tree has the smallest depth `d`
//! with `2^d ≥ page count` (depth 0 for zero or one page); missing leaves on
//! the right are zero pages. The Data hash is `Domain::CapData` over
//! `len (u64 LE) ‖ root`.
//!
//! The pages live in a persistent [`Tree`](super::tree::Tree) with this
//! scheme, so a changed page re-hashes only itself and its O(log n)
//! ancestors, and cloning a Data copies nothing.

use spin::Once;

use super::data::{MAX_DATA_PAGES, PAGE_SIZE};
use super::page::SharedPage;
use super::tree::{Digest, Scheme};
use crate::hash::{Domain, hash_in, hash_page_in, hash_parts_in};

/// Depth of a tree over `MAX_DATA_PAGES` leaves.
const MAX_DEPTH: usize = MAX_DATA_PAGES.trailing_zeros() as usize;

/// The hashing scheme of Data pages.
pub(crate) struct DataPages;

impl Scheme for DataPages {
    type Leaf = SharedPage;

    fn leaf(page: &SharedPage) -> Option<Digest> {
        Some(hash_page_in(Domain::DataPage, page))
    }

    fn node(left: &Digest, right: &Digest) -> Digest {
        hash_parts_in(Domain::DataNode, &[left, right])
    }

    fn zero(height: u8) -> &'static Digest {
        zero_subtree(usize::from(height))
    }
}

/// `zero_subtree(l)`: root of a height-`l` subtree of zero pages.
fn zero_subtree(level: usize) -> &'static Digest {
    static ZEROS: Once<[Digest; MAX_DEPTH + 1]> = Once::new();
    let zeros = ZEROS.call_once(|| {
        let mut zeros = [[0u8; 32]; MAX_DEPTH + 1];
        zeros[0] = hash_in(Domain::DataPage, &[0u8; PAGE_SIZE]);
        for l in 1..=MAX_DEPTH {
            zeros[l] = hash_parts_in(Domain::DataNode, &[&zeros[l - 1], &zeros[l - 1]]);
        }
        zeros
    });
    // Heights above MAX_DEPTH do not occur (a Data has at most 2^20 pages).
    &zeros[level.min(MAX_DEPTH)]
}

/// Depth of the tree for `page_count` leaves.
pub(crate) fn depth_for(page_count: u32) -> u8 {
    if page_count <= 1 {
        0
    } else {
        (u32::BITS - (page_count - 1).leading_zeros()) as u8
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
        assert_eq!(usize::from(depth_for(MAX_DATA_PAGES)), MAX_DEPTH);
    }
}
