//! Per-image caches: the decoded program (decoded once, reused by every
//! invocation) and one *warm memory*: the PVM memory of the image's last
//! invocation, reset to the state it committed. An invocation on that same
//! state reuses it instead of allocating and zeroing every page again.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use spin::Mutex;

use crate::hash::CapHash;
use crate::pvm::{Memory, Program, ProgramError};

/// Most images kept; past this the cache forgets an arbitrary one (the
/// next use decodes it again).
pub const MAX_CACHED_PROGRAMS: usize = 256;

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
        if warm.as_ref().is_some_and(|w| w.memory_hash == *memory_hash) {
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
        }
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

    /// Drops every image's warm memory (to free page-arena space).
    pub(crate) fn drop_warm_memories(&self) {
        let images: alloc::vec::Vec<_> = self.images.lock().values().cloned().collect();
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
