//! `CacheDirectory`: the two-tier cap store (DESIGN §3).
//!
//! - **blobs**: `CapHash → Arc<Cap>`, immutable and content-addressed. A blob
//!   never holds a `Ref` (hashing would fail), so blobs never keep working
//!   entries alive.
//! - **instances**: `id → (CapRef, Arc<Cap>)`, mutable working entries. The
//!   stored `CapRef` is the directory's own holder: an entry whose handle has
//!   one holder is garbage, reclaimed by [`CacheDirectory::sweep_instances`].
//!
//! Locking: one `spin::Mutex`; every method takes `&self`. Nothing that can
//! drop a `Cap` (and so a nested `CapRef`) or hash runs while the lock is
//! held: replaced and removed `Arc`s are returned out of the critical section
//! and dropped after it.
//!
//! Working graphs must be acyclic (a cap whose entry reaches itself through
//! `Ref`s would never be swept); settling detects a cycle and fails with
//! [`CacheError::RefCycle`] instead of recursing forever.

mod budget;
mod error;
mod settle;

pub use budget::{BlobBudget, EvictionCandidate, EvictionStats};
pub use error::CacheError;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::hash::BuildHasher;
use core::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashMap;
use spin::Mutex;

use crate::cap::{Cap, CapHashOrRef, CapRef};
use crate::hash::CapHash;

/// Counts and approximate memory of a directory (see [`CacheDirectory::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectoryStats {
    /// Number of blobs.
    pub blob_count: usize,
    /// Approximate bytes held by blobs (sum of `Cap::approx_bytes`).
    pub blob_bytes: usize,
    /// Number of working entries (live or not yet swept).
    pub instance_count: usize,
    /// Approximate bytes held by working entries (shared pages counted in
    /// each holder).
    pub instance_bytes: usize,
}

struct Entry {
    /// The directory's own holder of the entry's handle.
    holder: CapRef,
    cap: Arc<Cap>,
}

/// One blob with what eviction needs to know about it.
struct BlobEntry {
    cap: Arc<Cap>,
    /// `Inner::tick` when last looked up or stored (least recently used
    /// first).
    used: u64,
    /// Whether the host holds the blob's encoding (it put it, served it
    /// through `fetch_blob`, exported it or took it as a spill), so the
    /// directory may drop it without losing anything.
    host_known: bool,
}

struct Inner<S> {
    blobs: HashMap<CapHash, BlobEntry, S>,
    instances: HashMap<u64, Entry, S>,
    next_id: u64,
    blob_bytes: usize,
    /// Bumped by every blob lookup and store (the LRU clock).
    tick: u64,
    budget: BlobBudget,
    counters: EvictionStats,
    /// Recently evicted hashes, to count re-fetches (see `budget.rs`).
    evicted: budget::EvictedRing,
}

/// The two-tier cap store; see the module docs.
pub struct CacheDirectory<S = foldhash::fast::RandomState> {
    inner: Mutex<Inner<S>>,
    /// Whether the blobs exceed the budget (read without the lock on every
    /// call boundary; written under it).
    over: AtomicBool,
}

impl CacheDirectory<foldhash::fast::RandomState> {
    /// An empty directory with a randomly seeded hasher.
    pub fn new() -> Self {
        CacheDirectory::with_hasher(foldhash::fast::RandomState::default())
    }
}

impl Default for CacheDirectory<foldhash::fast::RandomState> {
    fn default() -> Self {
        CacheDirectory::new()
    }
}

impl<S: Clone> CacheDirectory<S> {
    /// An empty directory using `hasher` for both tiers.
    pub fn with_hasher(hasher: S) -> Self {
        CacheDirectory::new_const(hasher.clone(), hasher)
    }
}

impl<S> CacheDirectory<S> {
    /// An empty directory, usable in a `static` (e.g. with
    /// `foldhash::fast::FixedState::with_seed`). Takes one hasher per tier
    /// because a `const fn` cannot clone.
    pub const fn new_const(blobs_hasher: S, instances_hasher: S) -> Self {
        CacheDirectory {
            inner: Mutex::new(Inner {
                blobs: HashMap::with_hasher(blobs_hasher),
                instances: HashMap::with_hasher(instances_hasher),
                // Id 0 is never handed out, so it can mean "none" to callers.
                next_id: 1,
                blob_bytes: 0,
                tick: 0,
                budget: BlobBudget::UNBOUNDED,
                counters: EvictionStats::ZERO,
                evicted: budget::EvictedRing::new(),
            }),
            over: AtomicBool::new(false),
        }
    }
}

impl<S: BuildHasher> CacheDirectory<S> {
    /// Number of blobs.
    pub fn blob_count(&self) -> usize {
        self.inner.lock().blobs.len()
    }

    /// Number of working entries (live or not yet swept).
    pub fn instance_count(&self) -> usize {
        self.inner.lock().instances.len()
    }

    /// Whether a blob with this hash is present.
    pub fn contains_blob(&self, hash: &CapHash) -> bool {
        self.inner.lock().blobs.contains_key(hash)
    }

    /// The blob with this hash (a shared handle; no copy). Counts as a
    /// use for least-recently-used eviction.
    pub fn get_blob(&self, hash: &CapHash) -> Option<Arc<Cap>> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.blobs.get_mut(hash)?;
        entry.used = tick;
        Some(entry.cap.clone())
    }

    /// The current value of a working entry (a shared handle; no copy).
    pub fn get_instance(&self, capref: &CapRef) -> Option<Arc<Cap>> {
        self.inner
            .lock()
            .instances
            .get(&capref.id())
            .map(|entry| entry.cap.clone())
    }

    /// Looks up a blob or a working entry.
    pub fn get(&self, key: &CapHashOrRef) -> Option<Arc<Cap>> {
        match key {
            CapHashOrRef::Hash(hash) => self.get_blob(hash),
            CapHashOrRef::Ref(capref) => self.get_instance(capref),
        }
    }

    /// A snapshot of all blobs, in unspecified order.
    pub fn iter_blobs(&self) -> Vec<(CapHash, Arc<Cap>)> {
        let inner = self.inner.lock();
        inner
            .blobs
            .iter()
            .map(|(hash, entry)| (*hash, entry.cap.clone()))
            .collect()
    }

    /// Hashes `cap` and stores a copy as a blob (idempotent: an existing blob
    /// is kept and nothing is copied). Fails if the cap holds a `Ref`.
    pub fn put_cap(&self, cap: &Cap) -> Result<CapHash, CacheError> {
        let hash = cap.hash()?;
        if !self.contains_blob(&hash) {
            self.insert_blob(hash, Arc::new(cap.clone()));
        }
        Ok(hash)
    }

    /// Stores `cap` under a hash the caller already computed. Debug builds
    /// check the hash; release builds trust it (only the `Ref` check runs).
    pub fn put_cap_with_hash(&self, hash: CapHash, cap: &Cap) -> Result<(), CacheError> {
        if cap.has_refs() {
            return Err(CacheError::Cap(crate::cap::CapError::UnsettledRef));
        }
        debug_assert_eq!(cap.hash(), Ok(hash), "put_cap_with_hash: wrong hash");
        if !self.contains_blob(&hash) {
            self.insert_blob(hash, Arc::new(cap.clone()));
        }
        Ok(())
    }

    /// Like [`CacheDirectory::put_cap`] but stores the given `Arc` itself.
    pub fn put_cap_arc(&self, cap: Arc<Cap>) -> Result<CapHash, CacheError> {
        let hash = cap.hash()?;
        self.insert_blob(hash, cap);
        Ok(hash)
    }

    /// Publishes the given `Arc` under a hash the caller already computed
    /// (the kernel's commit hashes each new cap once, to link it): what
    /// settling a working entry of it would publish, without the entry.
    /// An existing blob is kept. Fails if the cap holds a `Ref`; debug
    /// builds check the hash.
    pub fn publish_arc(&self, hash: CapHash, cap: Arc<Cap>) -> Result<(), CacheError> {
        if cap.has_refs() {
            return Err(CacheError::Cap(crate::cap::CapError::UnsettledRef));
        }
        debug_assert_eq!(cap.hash(), Ok(hash), "publish_arc: wrong hash");
        self.insert_blob(hash, cap);
        Ok(())
    }

    /// Inserts unless present (the kernel made it: not host-known); an
    /// unused `cap` is dropped after unlocking.
    fn insert_blob(&self, hash: CapHash, cap: Arc<Cap>) {
        self.insert_blob_from(hash, cap, false);
    }

    /// Inserts unless present; `host_known` marks the blob (new or
    /// present) as one the host holds. Returns whether it was new.
    fn insert_blob_from(&self, hash: CapHash, cap: Arc<Cap>, host_known: bool) -> bool {
        let bytes = cap.approx_bytes();
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.blobs.get_mut(&hash) {
            entry.used = tick;
            entry.host_known |= host_known;
            drop(inner);
            drop(cap);
            return false;
        }
        inner.blob_bytes += bytes;
        inner.blobs.insert(
            hash,
            BlobEntry {
                cap,
                used: tick,
                host_known,
            },
        );
        self.over.store(inner.over_budget(), Ordering::Relaxed);
        true
    }

    /// Removes a blob, returning it (callers drop it outside the lock).
    pub fn remove_blob(&self, hash: &CapHash) -> Option<Arc<Cap>> {
        let mut inner = self.inner.lock();
        let removed = inner.blobs.remove(hash)?.cap;
        inner.blob_bytes = inner.blob_bytes.saturating_sub(removed.approx_bytes());
        self.over.store(inner.over_budget(), Ordering::Relaxed);
        Some(removed)
    }

    /// Adds `cap` as a new working entry and returns a handle to it.
    pub fn put_instance(&self, cap: Cap) -> CapRef {
        self.put_instance_arc(Arc::new(cap))
    }

    /// Adds a shared cap as a new working entry (no copy).
    pub fn put_instance_arc(&self, cap: Arc<Cap>) -> CapRef {
        let (capref, displaced) = self.inner.lock().add_entry(cap);
        drop(displaced);
        capref
    }

    /// A new working entry sharing the blob's `Arc` (nothing is copied;
    /// mutate with `Arc::make_mut` + [`CacheDirectory::set_instance`]).
    pub fn promote_blob_to_instance(&self, hash: &CapHash) -> Result<CapRef, CacheError> {
        let mut inner = self.inner.lock();
        let cap = inner
            .blobs
            .get(hash)
            .map(|entry| entry.cap.clone())
            .ok_or(CacheError::BlobMissing(*hash))?;
        let (capref, displaced) = inner.add_entry(cap);
        drop(inner);
        drop(displaced);
        Ok(capref)
    }

    /// Replaces a working entry's value; the old `Arc` is dropped after the
    /// lock is released.
    pub fn set_instance(&self, capref: &CapRef, cap: Arc<Cap>) -> Result<(), CacheError> {
        let old = {
            let mut inner = self.inner.lock();
            let entry = inner
                .instances
                .get_mut(&capref.id())
                .ok_or(CacheError::InstanceMissing(capref.id()))?;
            core::mem::replace(&mut entry.cap, cap)
        };
        drop(old);
        Ok(())
    }

    /// Removes every working entry that only the directory holds, repeating
    /// until a pass removes nothing (dropping an entry may release the
    /// entries its cap refers to). Returns how many were removed.
    pub fn sweep_instances(&self) -> usize {
        let mut removed_total = 0;
        loop {
            let removed: Vec<Entry> = {
                let mut inner = self.inner.lock();
                inner
                    .instances
                    .extract_if(|_, entry| entry.holder.holders() == 1)
                    .map(|(_, entry)| entry)
                    .collect()
            };
            if removed.is_empty() {
                return removed_total;
            }
            removed_total += removed.len();
            // Dropping here, unlocked, may release nested holders.
            drop(removed);
        }
    }

    /// Counts and approximate bytes of both tiers.
    pub fn stats(&self) -> DirectoryStats {
        let inner = self.inner.lock();
        DirectoryStats {
            blob_count: inner.blobs.len(),
            blob_bytes: inner.blob_bytes,
            instance_count: inner.instances.len(),
            instance_bytes: inner
                .instances
                .values()
                .map(|entry| entry.cap.approx_bytes())
                .sum(),
        }
    }

    /// Settles a link: a `Hash` is returned as is; a `Ref` is settled
    /// bottom-up (each nested `Ref` is settled and replaced by its hash in the
    /// working entry that held it), then hashed.
    ///
    /// A settled non-Instance entry is published into the blobs under its hash
    /// (sharing the entry's `Arc`, no copy). Its working entry is not deleted
    /// on the spot: other holders of the same `CapRef` (e.g. a copied slot)
    /// keep working, and once the last holder is gone — the settled parent no
    /// longer holds it — [`CacheDirectory::sweep_instances`] reclaims it. An
    /// Instance is not published: it stays the live working state and the
    /// hash is its snapshot (publish it with `put_cap_arc` if needed).
    pub fn settle(&self, key: &CapHashOrRef) -> Result<CapHash, CacheError> {
        match key {
            CapHashOrRef::Hash(hash) => Ok(*hash),
            CapHashOrRef::Ref(capref) => {
                let mut path = Vec::new();
                self.settle_ref(capref, &mut path, false)
            }
        }
    }

    /// [`CacheDirectory::settle`], publishing every settled entry,
    /// Instances included, under its hash: what a kernel does when it
    /// commits a graph whose nested Instances (child instances in slots)
    /// must be readable by hash afterwards.
    pub fn settle_and_publish(&self, key: &CapHashOrRef) -> Result<CapHash, CacheError> {
        match key {
            CapHashOrRef::Hash(hash) => Ok(*hash),
            CapHashOrRef::Ref(capref) => {
                let mut path = Vec::new();
                self.settle_ref(capref, &mut path, true)
            }
        }
    }

    /// Replaces entry `id`'s value with `new` only if it is still `expected`;
    /// returns the replaced `Arc` (to drop unlocked) or `None` if it changed.
    fn replace_if_unchanged(
        &self,
        capref: &CapRef,
        expected: &Arc<Cap>,
        new: Arc<Cap>,
    ) -> Result<Option<Arc<Cap>>, CacheError> {
        let mut inner = self.inner.lock();
        let entry = inner
            .instances
            .get_mut(&capref.id())
            .ok_or(CacheError::InstanceMissing(capref.id()))?;
        if !Arc::ptr_eq(&entry.cap, expected) {
            return Ok(None);
        }
        Ok(Some(core::mem::replace(&mut entry.cap, new)))
    }
}

impl<S: BuildHasher> Inner<S> {
    /// Adds an entry under a fresh id. Returns the handle and, should ids
    /// ever wrap around onto a live entry, the displaced entry (for the
    /// caller to drop after unlocking).
    fn add_entry(&mut self, cap: Arc<Cap>) -> (CapRef, Option<Entry>) {
        let id = self.next_id;
        // 2^64 ids cannot run out in practice; wrapping keeps this panic-free.
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let capref = CapRef::new(id);
        let entry = Entry {
            holder: capref.clone(),
            cap,
        };
        let displaced = match self.instances.entry(id) {
            hashbrown::hash_map::Entry::Vacant(slot) => {
                slot.insert(entry);
                None
            }
            hashbrown::hash_map::Entry::Occupied(mut slot) => Some(slot.insert(entry)),
        };
        (capref, displaced)
    }
}
