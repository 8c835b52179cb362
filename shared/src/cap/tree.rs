//! A persistent sparse binary Merkle tree: the structure behind both
//! [`super::Data`] (leaves = pages) and [`super::CNode`] (leaves = slots).
//!
//! A tree of depth `d` has `2^d` leaf positions. Nodes live behind `Arc`s, so
//! cloning a tree is O(1) and two versions share every subtree they have in
//! common. An absent subtree is `None` and hashes as the scheme's zero
//! constant for its height; an inner node exists only while some leaf below
//! it is present. Each node caches its digest lazily (a `spin::Once`); a
//! change copies the path from the root to the leaf (or updates it in place
//! where this version holds it alone) and the copied nodes start un-hashed,
//! so re-hashing after k changes costs O(k · d) node hashes plus the k leaves.
//!
//! Every walk is a loop or a recursion bounded by the depth (at most 20 for
//! Data, 16 for CNode).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem;

use spin::Once;

use crate::hash::HASH_LEN;

mod digest_at;

/// A node digest.
pub(crate) type Digest = [u8; HASH_LEN];

/// How a tree's leaves and nodes hash.
pub(crate) trait Scheme {
    /// What a present leaf holds.
    type Leaf: Clone;
    /// The digest of a present leaf, or `None` if it cannot be hashed (a
    /// CNode slot holding an unsettled `Ref`).
    fn leaf(leaf: &Self::Leaf) -> Option<Digest>;
    /// The digest of an inner node from its children's digests.
    fn node(left: &Digest, right: &Digest) -> Digest;
    /// The digest of an all-absent subtree of `height` (0 = one leaf).
    fn zero(height: u8) -> &'static Digest;
}

struct Node<L> {
    digest: Once<Digest>,
    body: Body<L>,
}

#[derive(Clone)]
enum Body<L> {
    /// Only at height 0.
    Leaf(L),
    /// Only above height 0; at least one child is present.
    Inner([Option<Arc<Node<L>>>; 2]),
}

impl<L: Clone> Clone for Node<L> {
    /// Nodes are cloned only by path copying, right before a change below
    /// them, so the copy starts un-hashed.
    fn clone(&self) -> Self {
        Node {
            digest: Once::new(),
            body: self.body.clone(),
        }
    }
}

impl<L> Node<L> {
    fn inner(children: [Option<Arc<Node<L>>>; 2]) -> Arc<Node<L>> {
        Arc::new(Node {
            digest: Once::new(),
            body: Body::Inner(children),
        })
    }
}

/// Writable access to a node this version is about to change: copies it if
/// another version shares it, and forgets its digest either way.
fn make_mut<L: Clone>(arc: &mut Arc<Node<L>>) -> &mut Node<L> {
    let node = Arc::make_mut(arc);
    if node.digest.is_completed() {
        node.digest = Once::new();
    }
    node
}

/// Which child of a node at `height` (≥ 1) leads to leaf `index`.
fn child_bit(index: u32, height: u8) -> usize {
    ((index >> (height - 1)) & 1) as usize
}

/// A persistent sparse Merkle tree of a fixed (but re-rootable) depth.
pub(crate) struct Tree<S: Scheme> {
    root: Option<Arc<Node<S::Leaf>>>,
    depth: u8,
    /// Number of present leaves.
    count: usize,
}

impl<S: Scheme> Clone for Tree<S> {
    /// O(1): shares every node.
    fn clone(&self) -> Self {
        Tree {
            root: self.root.clone(),
            depth: self.depth,
            count: self.count,
        }
    }
}

impl<S: Scheme> Tree<S> {
    /// An empty tree with `2^depth` leaf positions (`depth` < 32).
    pub(crate) fn new(depth: u8) -> Self {
        Tree {
            root: None,
            depth,
            count: 0,
        }
    }

    /// Number of present leaves.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    fn in_range(&self, index: u32) -> bool {
        u64::from(index) < 1u64 << self.depth
    }

    /// Whether both trees are the same version (share their root).
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        self.depth == other.depth
            && match (&self.root, &other.root) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    /// The leaf at `index`, if present. O(depth).
    pub(crate) fn get(&self, index: u32) -> Option<&S::Leaf> {
        if !self.in_range(index) {
            return None;
        }
        let mut node = self.root.as_deref()?;
        let mut height = self.depth;
        loop {
            match &node.body {
                Body::Leaf(leaf) => return Some(leaf),
                Body::Inner(children) => {
                    node = children[child_bit(index, height)].as_deref()?;
                    height -= 1;
                }
            }
        }
    }

    /// The leaf at `index`, writable (copies its path first). O(depth);
    /// copies nothing when the leaf is absent.
    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut S::Leaf> {
        self.get(index)?;
        let mut arc = self.root.as_mut()?;
        let mut height = self.depth;
        loop {
            match &mut make_mut(arc).body {
                Body::Leaf(leaf) => return Some(leaf),
                Body::Inner(children) => {
                    arc = children[child_bit(index, height)].as_mut()?;
                    height -= 1;
                }
            }
        }
    }

    /// Puts `leaf` at `index` (which must be in range), returning the leaf
    /// it replaces. O(depth).
    pub(crate) fn set(&mut self, index: u32, leaf: S::Leaf) -> Option<S::Leaf> {
        debug_assert!(self.in_range(index), "callers check the index");
        let mut slot = &mut self.root;
        let mut height = self.depth;
        loop {
            let Some(arc) = slot else {
                *slot = Some(path_to(index, height, leaf));
                self.count += 1;
                return None;
            };
            match &mut make_mut(arc).body {
                Body::Leaf(old) => return Some(mem::replace(old, leaf)),
                Body::Inner(children) => {
                    slot = &mut children[child_bit(index, height)];
                    height -= 1;
                }
            }
        }
    }

    /// Removes the leaf at `index`, returning it; prunes inner nodes left
    /// empty. O(depth); copies nothing when the leaf is absent.
    pub(crate) fn remove(&mut self, index: u32) -> Option<S::Leaf> {
        self.get(index)?;
        let removed = remove_in(&mut self.root, self.depth, index);
        if removed.is_some() {
            self.count -= 1;
        }
        removed
    }

    /// Removes every leaf at or after `keep`. O(depth + removed leaves).
    pub(crate) fn truncate(&mut self, keep: u32) {
        let removed = truncate_in(&mut self.root, self.depth, 0, u64::from(keep));
        self.count -= removed;
    }

    /// Re-roots to `depth`. Growing puts the old root under a chain of new
    /// left-leaning nodes (the new right halves are absent); shrinking keeps
    /// the leftmost subtree of the new height, so every leaf at or past
    /// `2^depth` must have been removed first (see [`Tree::truncate`]).
    pub(crate) fn set_depth(&mut self, depth: u8) {
        while self.depth < depth {
            if let Some(root) = self.root.take() {
                self.root = Some(Node::inner([Some(root), None]));
            }
            self.depth += 1;
        }
        while self.depth > depth {
            self.root = match self.root.take().as_deref() {
                Some(Node {
                    body: Body::Inner([left, _]),
                    ..
                }) => left.clone(),
                _ => None,
            };
            self.depth -= 1;
        }
    }

    /// Whether [`Tree::root_digest`] would be answered without hashing.
    pub(crate) fn is_hashed(&self) -> bool {
        self.root
            .as_ref()
            .is_none_or(|root| root.digest.is_completed())
    }

    /// The root digest, hashing only the nodes changed since the last call;
    /// `None` if some present leaf cannot be hashed.
    pub(crate) fn root_digest(&self) -> Option<Digest> {
        child_digest::<S>(&self.root, self.depth)
    }

    /// The present leaves of `self` that may differ from `old`'s at the
    /// same index (changed or new), in no particular order: a walk of both
    /// trees that skips every subtree they share (the same node, or both
    /// hashed to the same digest), so two versions that differ in k leaves
    /// cost O(k · depth), not O(leaves). Leaves removed in `self` are not
    /// listed. Trees of different depths are not compared: every present
    /// leaf of `self` is listed.
    pub(crate) fn changed_leaves<'a>(&'a self, old: &'a Self) -> Vec<(u32, &'a S::Leaf)> {
        let mut out = Vec::new();
        let Some(root) = &self.root else {
            return out;
        };
        let old_root = if old.depth == self.depth {
            old.root.as_deref()
        } else {
            None
        };
        // (node of self, node of old at the same place, height, first index)
        type Pair<'n, L> = (&'n Node<L>, Option<&'n Node<L>>, u8, u32);
        let mut stack: Vec<Pair<'_, S::Leaf>> = alloc::vec![(&**root, old_root, self.depth, 0)];
        while let Some((node, before, height, base)) = stack.pop() {
            if let Some(before) = before {
                let same_digest = match (node.digest.get(), before.digest.get()) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                };
                if core::ptr::eq(node, before) || same_digest {
                    continue;
                }
            }
            match &node.body {
                Body::Leaf(leaf) => out.push((base, leaf)),
                Body::Inner(children) => {
                    let below = height.saturating_sub(1);
                    let old_children = match before.map(|b| &b.body) {
                        Some(Body::Inner(c)) => Some(c),
                        _ => None,
                    };
                    for (bit, child) in children.iter().enumerate() {
                        if let Some(child) = child {
                            let old_child = old_children.and_then(|c| c[bit].as_deref());
                            let index = if bit == 1 { base | (1 << below) } else { base };
                            stack.push((child, old_child, below, index));
                        }
                    }
                }
            }
        }
        out
    }

    /// Present leaves in ascending index order.
    pub(crate) fn iter(&self) -> Iter<'_, S::Leaf> {
        let mut stack = Vec::new();
        if let Some(root) = &self.root {
            stack.reserve(usize::from(self.depth) + 1);
            stack.push((&**root, self.depth, 0));
        }
        Iter { stack }
    }
}

/// A chain of new nodes from `height` down to `leaf` at `index`.
fn path_to<L>(index: u32, height: u8, leaf: L) -> Arc<Node<L>> {
    let mut node = Arc::new(Node {
        digest: Once::new(),
        body: Body::Leaf(leaf),
    });
    for h in 1..=height {
        let mut children = [None, None];
        children[child_bit(index, h)] = Some(node);
        node = Node::inner(children);
    }
    node
}

fn remove_in<L: Clone>(slot: &mut Option<Arc<Node<L>>>, height: u8, index: u32) -> Option<L> {
    if height == 0 {
        let arc = slot.take()?;
        let node = Arc::try_unwrap(arc).unwrap_or_else(|shared| (*shared).clone());
        return match node.body {
            Body::Leaf(leaf) => Some(leaf),
            Body::Inner(_) => None,
        };
    }
    let Body::Inner(children) = &mut make_mut(slot.as_mut()?).body else {
        return None;
    };
    let removed = remove_in(&mut children[child_bit(index, height)], height - 1, index);
    if children.iter().all(Option::is_none) {
        *slot = None;
    }
    removed
}

/// Drops the leaves at or after `keep` from the subtree at `slot`, which
/// covers `base..base + 2^height`; returns how many were dropped.
fn truncate_in<L: Clone>(
    slot: &mut Option<Arc<Node<L>>>,
    height: u8,
    base: u64,
    keep: u64,
) -> usize {
    let Some(arc) = slot else { return 0 };
    let span = 1u64 << height;
    if base + span <= keep {
        return 0;
    }
    if base >= keep {
        let dropped = count_leaves(arc);
        *slot = None;
        return dropped;
    }
    // The subtree straddles `keep`, so height ≥ 1.
    let Body::Inner(children) = &mut make_mut(arc).body else {
        return 0;
    };
    let half = span / 2;
    let [left, right] = children;
    let dropped = truncate_in(left, height - 1, base, keep)
        + truncate_in(right, height - 1, base + half, keep);
    if children.iter().all(Option::is_none) {
        *slot = None;
    }
    dropped
}

fn count_leaves<L>(node: &Node<L>) -> usize {
    match &node.body {
        Body::Leaf(_) => 1,
        Body::Inner(children) => children.iter().flatten().map(|c| count_leaves(c)).sum(),
    }
}

fn child_digest<S: Scheme>(child: &Option<Arc<Node<S::Leaf>>>, height: u8) -> Option<Digest> {
    match child {
        None => Some(*S::zero(height)),
        Some(node) => digest::<S>(node, height),
    }
}

/// The node's cached digest, computing (and caching) it and any un-hashed
/// descendants first.
fn digest<S: Scheme>(node: &Node<S::Leaf>, height: u8) -> Option<Digest> {
    node.digest
        .try_call_once(|| match &node.body {
            Body::Leaf(leaf) => S::leaf(leaf).ok_or(()),
            Body::Inner([left, right]) => {
                let below = height.saturating_sub(1);
                let left = child_digest::<S>(left, below).ok_or(())?;
                let right = child_digest::<S>(right, below).ok_or(())?;
                Ok(S::node(&left, &right))
            }
        })
        .ok()
        .copied()
}

/// Ascending iteration over present leaves: a depth-first walk with an
/// explicit stack (at most depth + 1 entries).
pub(crate) struct Iter<'a, L> {
    stack: Vec<(&'a Node<L>, u8, u32)>,
}

impl<'a, L> Iterator for Iter<'a, L> {
    type Item = (u32, &'a L);

    fn next(&mut self) -> Option<Self::Item> {
        while let Some((node, height, base)) = self.stack.pop() {
            match &node.body {
                Body::Leaf(leaf) => return Some((base, leaf)),
                Body::Inner([left, right]) => {
                    let below = height.saturating_sub(1);
                    if let Some(right) = right {
                        self.stack.push((right, below, base | (1 << below)));
                    }
                    if let Some(left) = left {
                        self.stack.push((left, below, base));
                    }
                }
            }
        }
        None
    }
}

/// The root over `leaves` (ascending `(index, digest)` pairs) computed from
/// scratch, level by level, without any cache: the reference the cached
/// tree is checked against.
pub(crate) fn root_from_scratch<S: Scheme>(
    depth: u8,
    leaves: impl Iterator<Item = (u32, Digest)>,
) -> Digest {
    let mut level: Vec<(u32, Digest)> = leaves.collect();
    for height in 0..depth {
        let zero = S::zero(height);
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut i = 0;
        while i < level.len() {
            let (index, digest) = level[i];
            let (left, right) = if index % 2 == 0 {
                match level.get(i + 1) {
                    Some((sibling, right)) if *sibling == index + 1 => {
                        i += 1;
                        (digest, *right)
                    }
                    _ => (digest, *zero),
                }
            } else {
                (*zero, digest)
            };
            next.push((index / 2, S::node(&left, &right)));
            i += 1;
        }
        level = next;
    }
    level.first().map_or(*S::zero(depth), |&(_, root)| root)
}
