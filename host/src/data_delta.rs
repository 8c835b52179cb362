//! The host's side of Data deltas (docs/store.md "Data pages"): which
//! large Data caps the kernel is known to hold, their page digests, and a
//! new Data as the pages that differ from the best of them
//! (`shared::cap::encode_data_delta`). A fetch of the next version of a
//! 16 MiB memory then moves the changed pages, not 16 MiB, and the kernel
//! hashes only those (it clones the base, whose digests it has cached).
//!
//! What the host believes the kernel holds may be stale (the kernel evicts
//! blobs the host can serve without telling it). A delta whose base is
//! gone fails in the kernel, which asks again; the host then sends the
//! whole cap (`last_delta`). A delta never changes what the kernel ends up
//! with: the kernel checks the result against the hash it asked for.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use capbox_shared::CapHash;
use capbox_shared::abi::TreePosition;
use capbox_shared::cap::{
    Cap, CapKind, Data, NodeDigest, PAGE_SIZE, Page, data_delta_len, data_depth_for_len,
    data_node_digest, data_page_digest, data_zero_digest, encode_data_delta,
};

use crate::export_pages::{DataNodeSource, split_pair};
use crate::store::StoreError;

/// Data encodings smaller than this are always sent whole (a delta would
/// save little and cost a page-digest pass).
pub const MIN_DELTA_SOURCE_BYTES: usize = 64 << 10;

/// A delta is sent only if it is at most this fraction (1/N) of the whole
/// encoding.
const DELTA_WORTH_DIVISOR: usize = 2;

/// Most Data caps remembered as held by the kernel.
const MAX_HELD: usize = 8;

/// Most bytes of page digests kept (32 per page: 8 MiB covers 1 GiB of
/// Data). A larger Data is not remembered and is always sent whole.
const MAX_DIGEST_BYTES: usize = 8 << 20;

/// A Data cap's page digests (absent pages as the zero page's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageDigests {
    len: u64,
    digests: Vec<NodeDigest>,
}

impl PageDigests {
    /// The digests of `data`'s pages, from the digests the Data caches
    /// (a Data that was hashed hashes no page again).
    pub fn of(data: &Data) -> PageDigests {
        let zero = data_zero_digest(0);
        let digests = (0..data.page_count())
            .map(|index| data.node_digest(0, index).unwrap_or(zero))
            .collect();
        PageDigests {
            len: data.len(),
            digests,
        }
    }

    fn bytes(&self) -> usize {
        self.digests.len() * 32
    }

    /// Pages of a Data with these digests (`target`) that differ from
    /// `self`'s, in ascending order.
    fn differing(&self, target: &PageDigests) -> Vec<u32> {
        let zero = data_zero_digest(0);
        (0..target.digests.len())
            .filter(|&i| self.digests.get(i).unwrap_or(&zero) != &target.digests[i])
            .map(|i| i as u32)
            .collect()
    }
}

/// Every node digest of a tree of depth `depth` whose leaves are
/// `leaves` (missing leaves are zero pages): `levels[h][i]` is the node
/// at height `h`, index `i`.
fn tree_levels(leaves: &[NodeDigest], depth: u8) -> Vec<Vec<NodeDigest>> {
    let mut level = leaves.to_vec();
    level.resize(1usize << depth, data_zero_digest(0));
    let mut levels = vec![level];
    for height in 1..=depth {
        let zero = data_zero_digest(height);
        let below = &levels[usize::from(height) - 1];
        let next = below
            .chunks(2)
            .map(|pair| {
                let (l, r) = (&pair[0], &pair[1]);
                // An all-zero subtree has its fixed digest (no hashing).
                if *l == data_zero_digest(height - 1) && *r == data_zero_digest(height - 1) {
                    zero
                } else {
                    data_node_digest(l, r)
                }
            })
            .collect();
        levels.push(next);
    }
    levels
}

/// The page digests of Data (`len`, `root`), from those of `bases` of the
/// same length: a subtree whose digest equals a base's at the same
/// position has that base's pages; any other is taken apart by what
/// `learned` says of its children (positions → digests, as an export walk
/// learns them). `None` when a subtree is neither (the export skipped it
/// because the store had it from a version the host does not track).
pub(crate) fn derive_digests(
    len: u64,
    root: &NodeDigest,
    learned: &HashMap<TreePosition, NodeDigest>,
    bases: &[&PageDigests],
) -> Option<PageDigests> {
    let depth = data_depth_for_len(len)?;
    let bases: Vec<(&PageDigests, Vec<Vec<NodeDigest>>)> = bases
        .iter()
        .filter(|b| b.len == len)
        .map(|b| (*b, tree_levels(&b.digests, depth)))
        .collect();
    let mut digests = bases.first()?.0.digests.clone();
    let mut stack = vec![(depth, 0u32, *root)];
    while let Some((height, index, digest)) = stack.pop() {
        let first = (index as usize) << height;
        let end = (first + (1 << height)).min(digests.len());
        let same = bases
            .iter()
            .position(|(_, levels)| levels[usize::from(height)][index as usize] == digest);
        match same {
            Some(0) => {}
            Some(other) if first < end => {
                digests[first..end].copy_from_slice(&bases[other].0.digests[first..end]);
            }
            Some(_) => {}
            None if digest == data_zero_digest(height) => {
                if first < end {
                    digests[first..end].fill(data_zero_digest(0));
                }
            }
            None if height == 0 => *digests.get_mut(index as usize)? = digest,
            None => {
                for child in [index * 2, index * 2 + 1] {
                    stack.push((height - 1, child, *learned.get(&(height - 1, child))?));
                }
            }
        }
    }
    Some(PageDigests { len, digests })
}

/// A [`DataNodeSource`] that remembers what the walk learned: the digest
/// of every page it read and of both children of every node it read.
pub(crate) struct RecordingNodes<'a> {
    pub(crate) inner: &'a mut dyn DataNodeSource,
    pub(crate) learned: HashMap<TreePosition, NodeDigest>,
    /// The Data's length and root, once read.
    pub(crate) tree: Option<(u64, NodeDigest)>,
}

impl DataNodeSource for RecordingNodes<'_> {
    fn data_nodes(
        &mut self,
        hash: &CapHash,
        positions: &[TreePosition],
    ) -> Result<Option<(u64, NodeDigest, Vec<u8>)>, StoreError> {
        let reply = self.inner.data_nodes(hash, positions)?;
        if let Some((len, root, content)) = &reply {
            self.tree = Some((*len, *root));
            let mut at = 0;
            for &(height, index) in positions {
                let size = capbox_shared::abi::position_bytes(height);
                let Some(item) = content.get(at..at + size) else {
                    break;
                };
                at += size;
                if height == 0 {
                    if let Ok(page) = <&Page>::try_from(item) {
                        self.learned.insert((0, index), data_page_digest(page));
                    }
                } else if let Ok(pair) = <&[u8; 64]>::try_from(item) {
                    let (left, right) = split_pair(pair);
                    self.learned.insert((height - 1, index * 2), left);
                    self.learned.insert((height - 1, index * 2 + 1), right);
                }
            }
        }
        Ok(reply)
    }

    fn batch_bytes(&self) -> usize {
        self.inner.batch_bytes()
    }
}

/// Counters of what deltas saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Data caps sent as deltas (fetch answers and publishes).
    pub sent: u64,
    /// Bytes of those deltas.
    pub delta_bytes: u64,
    /// Bytes their whole encodings would have taken.
    pub whole_bytes: u64,
    /// Deltas the kernel could not apply (its base was gone), sent again
    /// whole.
    pub refused: u64,
    /// Large Data caps sent whole in answer to `fetch_blob`.
    pub fetched_whole: u64,
    /// Bytes of those.
    pub fetched_whole_bytes: u64,
}

/// What the host knows of the kernel's large Data caps.
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    /// Data caps the kernel holds (as far as the host knows), most recent
    /// last, with their page digests.
    held: VecDeque<(CapHash, Arc<PageDigests>)>,
    /// The last cap answered with a delta: asked for again, it goes whole.
    last_delta: Option<CapHash>,
    pub(crate) stats: DeltaStats,
}

impl DeltaState {
    /// Records that the kernel now holds Data `hash` with these digests.
    pub(crate) fn note_held(&mut self, hash: CapHash, digests: Arc<PageDigests>) {
        self.held.retain(|(h, _)| *h != hash);
        if digests.bytes() > MAX_DIGEST_BYTES {
            return;
        }
        self.held.push_back((hash, digests));
        let mut total: usize = self.held.iter().map(|(_, d)| d.bytes()).sum();
        while self.held.len() > MAX_HELD || total > MAX_DIGEST_BYTES {
            let Some((_, d)) = self.held.pop_front() else {
                break;
            };
            total -= d.bytes();
        }
    }

    /// Whether `hash` is recorded as held.
    pub(crate) fn holds(&self, hash: &CapHash) -> bool {
        self.held.iter().any(|(h, _)| h == hash)
    }

    /// The kernel no longer holds `hash` (it spilled it to the host).
    pub(crate) fn forget(&mut self, hash: &CapHash) {
        self.held.retain(|(h, _)| h != hash);
    }

    /// The kernel holds nothing (a new sandbox after a fault).
    pub(crate) fn clear(&mut self) {
        self.held.clear();
        self.last_delta = None;
    }

    /// Whether `hash` should go whole: it was just answered with a delta
    /// (the kernel asks again when the delta did not apply).
    pub(crate) fn take_retry(&mut self, hash: &CapHash) -> bool {
        if self.last_delta == Some(*hash) {
            self.last_delta = None;
            self.stats.refused += 1;
            self.forget_all_but_newest();
            return true;
        }
        false
    }

    /// After a refused delta the other bases may be stale too; the newest
    /// (most likely still held) stays.
    fn forget_all_but_newest(&mut self) {
        while self.held.len() > 1 {
            self.held.pop_front();
        }
    }

    /// The held Data caps other than `target`, newest first.
    pub(crate) fn bases(&self, target: &CapHash) -> Vec<(CapHash, Arc<PageDigests>)> {
        self.held
            .iter()
            .rev()
            .filter(|(h, _)| h != target)
            .cloned()
            .collect()
    }

    /// Records a delta sent for `hash` (`whole` bytes saved down to
    /// `delta`); a fetch answer (`fetched`) is remembered for the retry.
    pub(crate) fn sent(&mut self, hash: CapHash, delta: usize, whole: usize, fetched: bool) {
        self.stats.sent += 1;
        self.stats.delta_bytes += delta as u64;
        self.stats.whole_bytes += whole as u64;
        if fetched {
            self.last_delta = Some(hash);
        }
    }
}

/// `target` (digests `digests`) as a delta against one of `bases` (newest
/// first), if one is worth sending instead of `whole_len` bytes: the
/// newest whose delta has at most twice (plus one) the pages of the
/// smallest. Not simply the smallest: a kernel that cannot hold two
/// versions of a large memory has evicted the older ones (unseen by the
/// host, which can serve them), and a delta against an evicted base costs
/// a second fetch; nor simply the newest, which may be an unrelated Data.
pub(crate) fn delta_against(
    target: &Data,
    digests: &PageDigests,
    bases: &[(CapHash, Arc<PageDigests>)],
    whole_len: usize,
) -> Option<Vec<u8>> {
    let diffs: Vec<Vec<u32>> = bases.iter().map(|(_, d)| d.differing(digests)).collect();
    let best = diffs.iter().map(Vec::len).min()?;
    let (index, differing) = diffs
        .iter()
        .enumerate()
        .find(|(_, d)| d.len() <= best * 2 + 1)?;
    let present = differing
        .iter()
        .filter(|&&i| target.page(i).is_some())
        .count();
    let len = data_delta_len(present, differing.len() - present);
    if len.saturating_mul(DELTA_WORTH_DIVISOR) > whole_len {
        return None;
    }
    let changes = differing.iter().map(|&i| (i, target.page(i)));
    Some(encode_data_delta(&bases[index].0, target.len(), changes))
}

/// A whole Data encoding decoded with its page digests, if `bytes` is a
/// Data encoding large enough for deltas to matter.
pub(crate) fn large_data(bytes: &[u8]) -> Option<(Data, Arc<PageDigests>)> {
    // Past what the digest bound can remember (1 GiB of pages), a delta
    // is never sent: skip the decode and hashing.
    let too_large = bytes.len() / (PAGE_SIZE + 4) * 32 > MAX_DIGEST_BYTES;
    if bytes.len() < MIN_DELTA_SOURCE_BYTES
        || too_large
        || bytes.first() != Some(&CapKind::Data.tag())
    {
        return None;
    }
    let Ok(Cap::Data(data)) = Cap::decode(bytes) else {
        return None;
    };
    let digests = Arc::new(PageDigests::of(&data));
    Some((data, digests))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capbox_shared::cap::apply_data_delta;

    /// `pages` non-zero pages, page i filled with `seed + i` (odd).
    fn data(pages: u32, seed: u8) -> Data {
        let bytes: Vec<u8> = (0..pages as usize * PAGE_SIZE)
            .map(|at| seed.wrapping_add((at / PAGE_SIZE) as u8) | 1)
            .collect();
        Data::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn the_newest_worthwhile_base_is_chosen_and_the_delta_rebuilds_the_target() {
        let far = data(32, 9);
        let near = data(32, 1);
        let mut target = near.clone();
        target.write_page(7, &[0xEE; PAGE_SIZE]).unwrap();
        target.clear_page(8);
        let mut older = target.clone();
        older.write_page(3, &[0xCC; PAGE_SIZE]).unwrap();
        // Newest first: `far` differs everywhere (skipped), `near` is
        // within twice the best, so it wins over `older`, which would
        // share one page more.
        let bases = vec![
            (far.hash(), Arc::new(PageDigests::of(&far))),
            (near.hash(), Arc::new(PageDigests::of(&near))),
            (older.hash(), Arc::new(PageDigests::of(&older))),
        ];
        let whole = Cap::Data(target.clone()).encode().unwrap();
        let delta = delta_against(&target, &PageDigests::of(&target), &bases, whole.len()).unwrap();
        assert_eq!(delta.len(), data_delta_len(1, 1));
        assert_eq!(
            capbox_shared::cap::data_delta_base(&delta).unwrap(),
            near.hash()
        );
        assert_eq!(
            apply_data_delta(&near, &delta).unwrap().hash(),
            target.hash()
        );
    }

    #[test]
    fn tree_levels_give_the_data_root() {
        for pages in [1u32, 3, 16, 24] {
            let mut d = data(pages, 5);
            d.clear_page(pages / 2);
            let depth = data_depth_for_len(d.len()).unwrap();
            let levels = tree_levels(&PageDigests::of(&d).digests, depth);
            assert_eq!(
                levels[usize::from(depth)],
                vec![d.root_digest()],
                "{pages} pages"
            );
        }
    }

    #[test]
    fn digests_derive_from_the_base_and_what_a_walk_learned() {
        let base = data(24, 1);
        let mut target = base.clone();
        target.write_page(9, &[0xAB; PAGE_SIZE]).unwrap();
        target.clear_page(20);
        let depth = data_depth_for_len(target.len()).unwrap();
        let full = tree_levels(&PageDigests::of(&target).digests, depth);
        // What a walk down the changed paths learns: both children of
        // every node on them.
        let mut learned = HashMap::new();
        for page in [9u32, 20] {
            for height in 1..=depth {
                let index = page >> height;
                for child in [index * 2, index * 2 + 1] {
                    learned.insert(
                        (height - 1, child),
                        full[usize::from(height) - 1][child as usize],
                    );
                }
            }
        }
        let base_digests = PageDigests::of(&base);
        let root = target.root_digest();
        let derived = derive_digests(target.len(), &root, &learned, &[&base_digests]).unwrap();
        assert_eq!(derived, PageDigests::of(&target));
        // A path the walk did not learn: unknown, not guessed...
        learned.remove(&(0, 9));
        assert!(derive_digests(target.len(), &root, &learned, &[&base_digests]).is_none());
        // ...unless another base has that subtree at that position (the
        // store had it, so the walk skipped it).
        let mut sibling = base.clone();
        sibling.write_page(9, &[0xAB; PAGE_SIZE]).unwrap();
        let sibling = PageDigests::of(&sibling);
        let derived = derive_digests(target.len(), &root, &learned, &[&base_digests, &sibling]);
        assert_eq!(derived, Some(PageDigests::of(&target)));
    }

    #[test]
    fn a_delta_is_not_sent_when_most_pages_differ() {
        let base = data(16, 1);
        let target = data(16, 100);
        let bases = vec![(base.hash(), Arc::new(PageDigests::of(&base)))];
        let whole = Cap::Data(target.clone()).encode().unwrap();
        assert!(delta_against(&target, &PageDigests::of(&target), &bases, whole.len()).is_none());
    }

    #[test]
    fn held_caps_are_bounded_and_a_repeated_fetch_goes_whole() {
        let mut state = DeltaState::default();
        let d = Arc::new(PageDigests::of(&data(1, 1)));
        for i in 0..20u8 {
            state.note_held(CapHash([i; 32]), d.clone());
        }
        assert_eq!(state.bases(&CapHash([0; 32])).len(), MAX_HELD);
        assert_eq!(state.bases(&CapHash([19; 32]))[0].0, CapHash([18; 32]));
        state.sent(CapHash([50; 32]), 10, 100, true);
        assert!(!state.take_retry(&CapHash([51; 32])));
        assert!(state.take_retry(&CapHash([50; 32])));
        assert!(!state.take_retry(&CapHash([50; 32])));
        assert_eq!(state.stats.refused, 1);
        assert_eq!(state.bases(&CapHash([0; 32])).len(), 1);
    }
}
