//! The blob budget: how many blobs (and bytes of them) a directory keeps,
//! and the bookkeeping that least-recently-used eviction needs.
//!
//! The directory only *plans* and *performs* evictions; the kernel decides
//! when (between invocations, never during one) and first hands blobs the
//! host lacks to the host (see `kernel::evict`). A blob is evictable when
//! nothing but the directory holds its `Arc` (no working entry, prepared
//! instance or running invocation) and the host holds its encoding.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::hash::BuildHasher;
use core::sync::atomic::Ordering;

use super::{CacheDirectory, Inner};
use crate::cap::Cap;
use crate::hash::CapHash;

/// How much the directory's blobs may hold: both limits apply. Bytes bound
/// the memory (`Cap::approx_bytes`, which counts a fixed overhead per blob
/// plus its payload); the count bounds the per-blob bookkeeping (map entry,
/// `Arc`, tree nodes) that small blobs (instances, CNodes) are mostly made
/// of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobBudget {
    /// Most bytes of blobs (sum of `Cap::approx_bytes`).
    pub max_bytes: u64,
    /// Most blobs.
    pub max_blobs: u64,
}

impl BlobBudget {
    /// No limit (a directory's initial budget).
    pub const UNBOUNDED: BlobBudget = BlobBudget {
        max_bytes: u64::MAX,
        max_blobs: u64::MAX,
    };

    /// The default share of a page arena of `arena_bytes`: a quarter of it
    /// for blob bytes (the rest is for invocations' memories, up to 32 MiB
    /// each, and their warm copies), and one blob per 2 KiB of that.
    pub const fn share_of_arena(arena_bytes: u64) -> BlobBudget {
        let max_bytes = arena_bytes / 4;
        BlobBudget {
            max_bytes,
            max_blobs: max_bytes / 2048,
        }
    }

    /// Whether `blobs` blobs of `bytes` bytes fit.
    pub const fn fits(&self, blobs: u64, bytes: u64) -> bool {
        blobs <= self.max_blobs && bytes <= self.max_bytes
    }

    /// Where an eviction pass stops: three quarters of each limit, so one
    /// pass makes room for many blobs and passes stay rare (a pass scans
    /// every blob).
    pub const fn low_water(&self) -> BlobBudget {
        BlobBudget {
            max_bytes: self.max_bytes - self.max_bytes / 4,
            max_blobs: self.max_blobs - self.max_blobs / 4,
        }
    }
}

/// Eviction counters of a directory (since it was made).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvictionStats {
    /// Blobs evicted.
    pub evictions: u64,
    /// Bytes of evicted blobs (`Cap::approx_bytes`).
    pub evicted_bytes: u64,
    /// Blobs handed to the host before eviction (the kernel made them and
    /// the host did not have them).
    pub spilled_blobs: u64,
    /// Encoded bytes of those.
    pub spilled_bytes: u64,
    /// Blobs fetched from the host (`fetch_blob`).
    pub fetched: u64,
    /// Fetched blobs this directory had evicted before (counted against a
    /// table of the last [`EVICTED_SLOTS`] evictions by slot, so an
    /// eviction long ago may be missed).
    pub refetched: u64,
}

impl EvictionStats {
    /// All zero.
    pub const ZERO: EvictionStats = EvictionStats {
        evictions: 0,
        evicted_bytes: 0,
        spilled_blobs: 0,
        spilled_bytes: 0,
        fetched: 0,
        refetched: 0,
    };
}

/// Slots of the evicted-hash table (a power of two).
pub const EVICTED_SLOTS: usize = 1024;

/// Recently evicted hashes, direct-mapped by their first word (a BLAKE3
/// output is uniform), each slot keeping the second word: 8 KiB, enough to
/// tell a re-fetch from a first fetch for recent evictions.
pub(super) struct EvictedRing {
    slots: [u64; EVICTED_SLOTS],
}

fn word(hash: &CapHash, at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.0[at * 8..at * 8 + 8]);
    u64::from_le_bytes(bytes)
}

impl EvictedRing {
    pub(super) const fn new() -> Self {
        EvictedRing {
            slots: [0; EVICTED_SLOTS],
        }
    }

    fn slot(hash: &CapHash) -> usize {
        (word(hash, 0) as usize) & (EVICTED_SLOTS - 1)
    }

    fn remember(&mut self, hash: &CapHash) {
        // 0 marks an empty slot; a hash whose second word is 0 is simply
        // not remembered.
        self.slots[Self::slot(hash)] = word(hash, 1);
    }

    /// Whether `hash` was evicted recently (and forgets it).
    fn take(&mut self, hash: &CapHash) -> bool {
        let slot = &mut self.slots[Self::slot(hash)];
        let tag = word(hash, 1);
        if tag != 0 && *slot == tag {
            *slot = 0;
            return true;
        }
        false
    }
}

/// One blob an eviction pass would drop, least recently used first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvictionCandidate {
    /// Its hash.
    pub hash: CapHash,
    /// Whether the host holds it (else it must be spilled first).
    pub host_known: bool,
}

impl<S> Inner<S> {
    pub(super) fn over_budget(&self) -> bool {
        !self
            .budget
            .fits(self.blobs.len() as u64, self.blob_bytes as u64)
    }
}

impl<S: BuildHasher> CacheDirectory<S> {
    /// Sets the budget (see [`BlobBudget`]); nothing is evicted until the
    /// kernel's next eviction pass.
    pub fn set_budget(&self, budget: BlobBudget) {
        let mut inner = self.inner.lock();
        inner.budget = budget;
        self.over.store(inner.over_budget(), Ordering::Relaxed);
    }

    /// The budget.
    pub fn budget(&self) -> BlobBudget {
        self.inner.lock().budget
    }

    /// Whether the blobs exceed the budget (one atomic load).
    pub fn over_budget(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// The eviction counters.
    pub fn eviction_stats(&self) -> EvictionStats {
        self.inner.lock().counters
    }

    /// Stores a blob the host sent (`put_cap`): host-known.
    pub fn put_host_blob(&self, hash: CapHash, cap: Arc<Cap>) {
        self.insert_blob_from(hash, cap, true);
    }

    /// Stores a blob fetched from the host (`fetch_blob`): host-known, and
    /// counted as a fetch (and as a re-fetch if it was evicted recently).
    pub fn put_fetched_blob(&self, hash: CapHash, cap: Arc<Cap>) {
        let new = self.insert_blob_from(hash, cap, true);
        let mut inner = self.inner.lock();
        inner.counters.fetched += 1;
        if new && inner.evicted.take(&hash) {
            inner.counters.refetched += 1;
        }
    }

    /// Marks blobs as held by the host (it exported them, or took them as
    /// a spill of `spilled_bytes` encoded bytes: counted when non-zero).
    pub fn mark_host_known(&self, hashes: &[CapHash], spilled_bytes: u64) {
        let mut inner = self.inner.lock();
        let mut marked = 0;
        for hash in hashes {
            if let Some(entry) = inner.blobs.get_mut(hash) {
                entry.host_known = true;
                marked += 1;
            }
        }
        if spilled_bytes > 0 {
            inner.counters.spilled_blobs += marked;
            inner.counters.spilled_bytes += spilled_bytes;
        }
    }

    /// Whether the directory holds `hash` and knows the host has it too.
    pub fn is_host_known(&self, hash: &CapHash) -> bool {
        self.inner
            .lock()
            .blobs
            .get(hash)
            .is_some_and(|entry| entry.host_known)
    }

    /// Counts a use of each blob present (least-recently-used order), as
    /// looking it up would, without handing it out: what a commit does for
    /// the blobs the new state keeps (its image, an unchanged root), which
    /// the next call reaches through the carried prepared entry instead of
    /// a lookup.
    pub fn touch_blobs(&self, hashes: &[CapHash]) {
        let mut inner = self.inner.lock();
        for hash in hashes {
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(entry) = inner.blobs.get_mut(hash) {
                entry.used = tick;
            }
        }
    }

    /// The blob without counting a use (for spilling it).
    pub fn peek_blob(&self, hash: &CapHash) -> Option<Arc<Cap>> {
        self.inner
            .lock()
            .blobs
            .get(hash)
            .map(|entry| entry.cap.clone())
    }

    /// The blobs to evict, least recently used first, to bring the
    /// directory down to the budget's low water: only blobs nothing else
    /// holds (strong count 1: the directory's own `Arc`). Empty when within
    /// the budget. May fall short when too many blobs are held.
    pub fn plan_eviction(&self) -> Vec<EvictionCandidate> {
        self.plan_eviction_checked().0
    }

    /// [`Self::plan_eviction`], and whether the plan reaches the low water
    /// (false: held blobs are in the way).
    pub fn plan_eviction_checked(&self) -> (Vec<EvictionCandidate>, bool) {
        let inner = self.inner.lock();
        if !inner.over_budget() {
            return (Vec::new(), true);
        }
        let target = inner.budget.low_water();
        let mut free: Vec<(u64, CapHash, usize, bool)> = inner
            .blobs
            .iter()
            // Under the lock a count of 1 cannot grow: every other way to a
            // blob's `Arc` goes through this lock or an existing clone.
            .filter(|(_, entry)| Arc::strong_count(&entry.cap) == 1)
            .map(|(hash, entry)| {
                (
                    entry.used,
                    *hash,
                    entry.cap.approx_bytes(),
                    entry.host_known,
                )
            })
            .collect();
        free.sort_unstable_by_key(|&(used, ..)| used);
        let (mut count, mut bytes) = (inner.blobs.len() as u64, inner.blob_bytes as u64);
        let mut plan = Vec::new();
        for (_, hash, size, host_known) in free {
            if target.fits(count, bytes) {
                break;
            }
            count -= 1;
            bytes = bytes.saturating_sub(size as u64);
            plan.push(EvictionCandidate { hash, host_known });
        }
        (plan, target.fits(count, bytes))
    }

    /// Evicts `hash` if the host has it and nothing but the directory
    /// holds it (checked again under the lock); the evicted blob, for the
    /// caller to drop outside the lock.
    pub fn evict_if_unheld(&self, hash: &CapHash) -> Option<Arc<Cap>> {
        let mut inner = self.inner.lock();
        let entry = inner.blobs.get(hash)?;
        if !entry.host_known || Arc::strong_count(&entry.cap) != 1 {
            return None;
        }
        let cap = inner.blobs.remove(hash)?.cap;
        let size = cap.approx_bytes();
        inner.blob_bytes = inner.blob_bytes.saturating_sub(size);
        inner.counters.evictions += 1;
        inner.counters.evicted_bytes += size as u64;
        inner.evicted.remember(hash);
        self.over.store(inner.over_budget(), Ordering::Relaxed);
        Some(cap)
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
