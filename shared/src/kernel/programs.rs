//! Per-image caches: the decoded program (decoded once, reused by every
//! invocation) and one *warm memory*: the PVM memory of the image's last
//! invocation, reset to the state it committed. An invocation on that same
//! state reuses it instead of allocating and zeroing every page again.
//!
//! Per-instance: a *prepared* entry (instance hash → everything resolved
//! for it: the instance cap, its image and memory caps, the cached image,
//! the memory layout), so a repeated invocation of the same instance does
//! one lookup instead of three directory lookups, a program lookup and a
//! layout computation. Blobs are immutable and content-addressed, so an
//! entry never goes stale; the table is direct-mapped and small, a
//! collision just forgets the older entry.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use spin::Mutex;

use crate::cap::{Cap, InstanceCap};
use crate::hash::CapHash;
use crate::pvm::{Memory, Program, ProgramError, StandardLayout};

/// Most images kept; past this the cache forgets an arbitrary one (the
/// next use decodes it again).
pub const MAX_CACHED_PROGRAMS: usize = 256;

/// Slots of the prepared-instance table (a power of two).
pub const PREPARED_SLOTS: usize = 64;

/// Whether two hashes are equal, as four word compares (the derived `==`
/// on 32 bytes is a `memcmp` call, several times slower in the guest).
pub(crate) fn same_hash(a: &CapHash, b: &CapHash) -> bool {
    let (a, b) = (words(a), words(b));
    ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0
}

fn words(h: &CapHash) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (word, bytes) in out.iter_mut().zip(h.0.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *word = u64::from_le_bytes(b);
    }
    out
}

/// The slot of an instance hash: its first bytes (a BLAKE3 output is
/// uniformly distributed, so no further hashing is needed).
fn slot_of(hash: &CapHash) -> usize {
    (words(hash)[0] as usize) & (PREPARED_SLOTS - 1)
}

/// Everything an invocation of one instance resolves before it runs.
pub(crate) struct Prepared {
    pub instance_hash: CapHash,
    pub instance: InstanceCap,
    /// An `Image` cap.
    pub image: Arc<Cap>,
    /// The instance's memory: a `Data` cap.
    pub memory: Arc<Cap>,
    pub memory_hash: CapHash,
    pub cached: Arc<CachedImage>,
    pub layout: StandardLayout,
    /// Per endpoint: the index of its entry instruction in the decoded
    /// program (`Program::index_of`), looked up once here, not per call.
    pub entry_indexes: alloc::vec::Vec<Option<usize>>,
}

/// A PVM memory that equals a fresh `Memory::standard` for the instance
/// memory `memory_hash` (same layout, same bytes, nothing dirty).
pub(crate) struct WarmMemory {
    pub memory_hash: CapHash,
    pub memory: Memory,
}

/// What is cached for one image.
pub(crate) struct CachedImage {
    pub program: Program,
    warm: Mutex<Option<WarmMemory>>,
}

impl CachedImage {
    /// The warm memory, if it is for `memory_hash` (taken: concurrent
    /// invocations never share it).
    pub fn take_warm(&self, memory_hash: &CapHash) -> Option<Memory> {
        let mut warm = self.warm.lock();
        if warm
            .as_ref()
            .is_some_and(|w| same_hash(&w.memory_hash, memory_hash))
        {
            warm.take().map(|w| w.memory)
        } else {
            None
        }
    }

    /// Keeps `memory` (reset to the state `memory_hash`) for the next call.
    pub fn put_warm(&self, memory_hash: CapHash, memory: Memory) {
        let old = self.warm.lock().replace(WarmMemory {
            memory_hash,
            memory,
        });
        drop(old); // outside the lock
    }
}

/// Image hash → decoded program and warm memory. `const`-constructible for
/// the guest's statics; the lock is never held while decoding.
pub struct ProgramCache {
    images: Mutex<BTreeMap<CapHash, Arc<CachedImage>>>,
    prepared: Mutex<[Option<Arc<Prepared>>; PREPARED_SLOTS]>,
}

impl Default for ProgramCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgramCache {
    /// An empty cache.
    pub const fn new() -> Self {
        ProgramCache {
            images: Mutex::new(BTreeMap::new()),
            prepared: Mutex::new([const { None }; PREPARED_SLOTS]),
        }
    }

    /// The prepared entry for `instance`, if cached.
    pub(crate) fn prepared(&self, instance: &CapHash) -> Option<Arc<Prepared>> {
        let slots = self.prepared.lock();
        slots[slot_of(instance)]
            .as_ref()
            .filter(|p| same_hash(&p.instance_hash, instance))
            .cloned()
    }

    /// Caches `entry` (replacing whatever shared its slot).
    pub(crate) fn put_prepared(&self, entry: Arc<Prepared>) {
        let slot = slot_of(&entry.instance_hash);
        let old = self.prepared.lock()[slot].replace(entry);
        drop(old); // outside the lock
    }

    /// The cache entry for `image`, decoding `code` on a miss.
    pub(crate) fn get_or_decode(
        &self,
        image: &CapHash,
        code: &[u8],
    ) -> Result<Arc<CachedImage>, ProgramError> {
        if let Some(p) = self.images.lock().get(image) {
            return Ok(p.clone());
        }
        let entry = Arc::new(CachedImage {
            program: Program::from_blob(code)?,
            warm: Mutex::new(None),
        });
        let mut images = self.images.lock();
        let evicted = if images.len() >= MAX_CACHED_PROGRAMS {
            images
                .keys()
                .next()
                .copied()
                .and_then(|k| images.remove(&k))
        } else {
            None
        };
        images.insert(*image, entry.clone());
        drop(images);
        drop(evicted);
        Ok(entry)
    }

    /// Drops every image's warm memory (to free page-arena space),
    /// including images only prepared entries still hold.
    pub(crate) fn drop_warm_memories(&self) {
        let mut images: alloc::vec::Vec<_> = self.images.lock().values().cloned().collect();
        images.extend(
            self.prepared
                .lock()
                .iter()
                .flatten()
                .map(|p| p.cached.clone()),
        );
        for image in images {
            let old = image.warm.lock().take();
            drop(old); // outside the lock
        }
    }

    /// How many images are cached.
    pub fn len(&self) -> usize {
        self.images.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
