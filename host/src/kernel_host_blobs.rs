//! The host's copy of blobs behind a [`super::Kernel`]: a bounded cache
//! ([`BlobCache`]) in front of the fallback ([`super::Kernel::set_blob_fallback`])
//! and an overflow store on disk, so the host's memory does not grow with
//! the number of invocations (docs/kernel.md "Host memory").
//!
//! Every blob the kernel counts as host-known (published, served, exported,
//! spilled) must stay servable: the kernel may evict it without telling
//! the host and fetch it again later. So a blob leaving the cache is
//! dropped only when it can be served from elsewhere (it came from the
//! overflow store, or the fallback has it); otherwise it is written to the
//! overflow store first. All of that happens under the lock, so a blob is
//! always in the cache or on disk for a reader that takes the lock after.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use capbox_shared::hash::CapHash;

use crate::blob_cache::{BlobCache, DEFAULT_CACHE_BYTES, Evicted, default_blobs_for};
use crate::data_delta::{DeltaState, MIN_DELTA_SOURCE_BYTES, delta_against, large_data};
use crate::store::{OverflowStore, TempBlobDir};

/// A second source for the kernel's `fetch_blob` (e.g. a store): the
/// canonical encoding of the blob named by the hash, if it has it.
pub type BlobFallback = Arc<dyn Fn(&CapHash) -> Option<Vec<u8>> + Send + Sync>;

/// The published set is a hint (a hash in it is not sent again); past
/// this many hashes it is cleared, so it cannot grow with the number of
/// invocations (a cleared hash is at worst sent again).
pub(crate) const MAX_PUBLISHED: usize = 1 << 14;

/// The host cache's limits, use and traffic ([`super::Kernel::host_cache_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostCacheStats {
    /// Bytes held (blob bytes plus a fixed overhead per blob).
    pub bytes: usize,
    /// Blobs held.
    pub blobs: usize,
    /// The byte limit.
    pub max_bytes: usize,
    /// The count limit.
    pub max_blobs: usize,
    /// Blobs written to the overflow store.
    pub overflowed: u64,
    /// Blobs that left the cache without a write (servable elsewhere).
    pub dropped: u64,
    /// Blobs served from the overflow store.
    pub overflow_reads: u64,
    /// Blobs the overflow store failed to take (kept in memory instead).
    pub overflow_failures: u64,
}

/// The cache's limits for a new kernel: `CAPBOX_HOST_CACHE_MIB` and
/// `CAPBOX_HOST_CACHE_BLOBS` when set to a number, else 64 MiB and one
/// blob per KiB.
pub(crate) fn limits_from_env() -> (usize, usize) {
    let number = |name| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    let bytes =
        number("CAPBOX_HOST_CACHE_MIB").map_or(DEFAULT_CACHE_BYTES, |m| m.saturating_mul(1 << 20));
    let blobs = number("CAPBOX_HOST_CACHE_BLOBS").unwrap_or_else(|| default_blobs_for(bytes));
    (bytes, blobs)
}

pub(crate) struct HostBlobs {
    /// Recently used blobs: hash → canonical encoding.
    cache: BlobCache,
    /// Blobs the overflow store refused (a full disk): kept here so that
    /// nothing is lost.
    stuck: HashMap<CapHash, Arc<Vec<u8>>>,
    /// Where blobs that must not be lost go; written to the last, read
    /// from all ([`super::Kernel::set_overflow_store`] adds one).
    overflow: Vec<Arc<OverflowStore>>,
    /// Hashes the kernel is known to hold (at most [`MAX_PUBLISHED`]).
    published: HashSet<CapHash>,
    /// Caps sent with `put_cap` so far (a re-send would show here).
    pub(crate) sent: u64,
    /// Where `fetch_blob` looks for a blob the host's copy lacks
    /// ([`super::Kernel::set_blob_fallback`]).
    pub(crate) fallback: Option<BlobFallback>,
    /// The part of the fallback that keeps what it has (e.g. a store): a
    /// blob it serves may leave the cache without an overflow write. Asked
    /// under this copy's lock, so it must never wait on another kernel's
    /// copy (a pool's peers serve misses but are not keepers: two workers
    /// dropping a blob because the other has it would lose it, and asking
    /// each other under their locks would deadlock).
    pub(crate) keeper: Option<BlobFallback>,
    /// Spill messages refused (a blob did not match its hash: a kernel
    /// bug or a compromised guest), and why the last one was.
    pub(crate) spills_refused: u64,
    pub(crate) last_spill_error: Option<String>,
    stats: HostCacheStats,
    /// The kernel's large Data caps, for deltas (`data_delta.rs`).
    pub(crate) deltas: DeltaState,
    /// Why the overflow store last failed.
    pub(crate) last_overflow_error: Option<String>,
}

impl HostBlobs {
    pub(crate) fn new() -> Self {
        let (bytes, blobs) = limits_from_env();
        HostBlobs {
            cache: BlobCache::new(bytes, blobs),
            stuck: HashMap::new(),
            overflow: Vec::new(),
            published: HashSet::new(),
            sent: 0,
            fallback: None,
            keeper: None,
            spills_refused: 0,
            last_spill_error: None,
            stats: HostCacheStats::default(),
            deltas: DeltaState::default(),
            last_overflow_error: None,
        }
    }

    /// Keeps `bytes` as the encoding of `hash` (checked by the caller).
    pub(crate) fn keep(&mut self, hash: CapHash, bytes: Arc<Vec<u8>>) {
        let evicted = self.cache.insert(hash, bytes, false);
        self.settle(evicted);
    }

    /// The host's own copy of `hash` (cache or memory), marked as used.
    pub(crate) fn local(&mut self, hash: &CapHash) -> Option<Arc<Vec<u8>>> {
        self.cache
            .get(hash)
            .or_else(|| self.stuck.get(hash).cloned())
    }

    /// Whether the host can serve `hash` without the fallback.
    pub(crate) fn holds(&self, hash: &CapHash) -> bool {
        self.cache.contains(hash)
            || self.stuck.contains_key(hash)
            || self.overflow.iter().any(|o| o.contains(hash))
    }

    /// The overflow stores, newest first, to read outside the lock.
    pub(crate) fn overflow_stores(&self) -> Vec<Arc<OverflowStore>> {
        self.overflow.iter().rev().cloned().collect()
    }

    /// Takes a blob read back from the overflow store into the cache
    /// (leaving again costs no write).
    pub(crate) fn took_from_overflow(&mut self, hash: CapHash, bytes: Arc<Vec<u8>>) {
        self.stats.overflow_reads += 1;
        let evicted = self.cache.insert(hash, bytes, true);
        self.settle(evicted);
    }

    pub(crate) fn is_published(&self, hash: &CapHash) -> bool {
        self.published.contains(hash)
    }

    pub(crate) fn mark_published(&mut self, hash: CapHash) {
        if self.published.len() >= MAX_PUBLISHED && !self.published.contains(&hash) {
            self.published = HashSet::new();
        }
        self.published.insert(hash);
    }

    pub(crate) fn unpublish(&mut self, hash: &CapHash) {
        self.published.remove(hash);
        self.deltas.forget(hash);
    }

    /// Forgets what the kernel holds (after a guest fault).
    pub(crate) fn clear_published(&mut self) {
        self.published = HashSet::new();
        self.deltas.clear();
    }

    pub(crate) fn set_limits(&mut self, max_bytes: usize, max_blobs: usize) {
        let evicted = self.cache.set_limits(max_bytes, max_blobs);
        self.settle(evicted);
    }

    /// The private overflow directory, once created.
    pub(crate) fn temp_overflow_path(&self) -> Option<std::path::PathBuf> {
        self.overflow.iter().find_map(|o| match &**o {
            OverflowStore::Temp(dir) => Some(dir.path().to_path_buf()),
            OverflowStore::Store(_) => None,
        })
    }

    pub(crate) fn add_overflow(&mut self, store: OverflowStore) {
        self.overflow.push(Arc::new(store));
    }

    pub(crate) fn stats(&self) -> HostCacheStats {
        let (max_bytes, max_blobs) = self.cache.limits();
        HostCacheStats {
            bytes: self.cache.bytes(),
            blobs: self.cache.len(),
            max_bytes,
            max_blobs,
            ..self.stats
        }
    }

    /// Puts what left the cache where it stays servable.
    fn settle(&mut self, evicted: Vec<Evicted>) {
        for e in evicted {
            if e.elsewhere || self.keeper.as_ref().is_some_and(|f| f(&e.hash).is_some()) {
                self.stats.dropped += 1;
                continue;
            }
            match self.write_overflow(&e) {
                Ok(()) => self.stats.overflowed += 1,
                Err(reason) => {
                    self.stats.overflow_failures += 1;
                    self.last_overflow_error = Some(reason);
                    self.stuck.insert(e.hash, e.bytes);
                }
            }
        }
    }

    fn write_overflow(&mut self, e: &Evicted) -> Result<(), String> {
        if self.overflow.is_empty() {
            let dir = TempBlobDir::create_in(&std::env::temp_dir()).map_err(|e| e.to_string())?;
            self.overflow.push(Arc::new(OverflowStore::Temp(dir)));
        }
        let store = self.overflow.last().map(Arc::clone);
        match store {
            Some(store) => store.put(&e.hash, &e.bytes).map_err(|e| e.to_string()),
            None => Err("no overflow store".into()),
        }
    }
}

pub(crate) fn lock(blobs: &Mutex<HostBlobs>) -> MutexGuard<'_, HostBlobs> {
    // A panic elsewhere cannot leave HostBlobs half-updated in a way that
    // matters (it is a cache of immutable blobs), so poisoning is ignored.
    blobs.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves the kernel's `fetch_blob`: the cache, then the fallback, then
/// the overflow store (the last two outside the lock). A large Data goes
/// as a delta against one the kernel holds when that is much smaller
/// ([`answer`]).
pub(crate) fn serve(blobs: &Mutex<HostBlobs>, hash: CapHash) -> Option<Vec<u8>> {
    let (fallback, overflow) = {
        let mut b = lock(blobs);
        if let Some(bytes) = b.local(&hash) {
            b.mark_published(hash);
            drop(b);
            return Some(answer(blobs, hash, bytes.to_vec()));
        }
        (b.fallback.clone(), b.overflow_stores())
    };
    if let Some(bytes) = fallback.and_then(|f| f(&hash)) {
        lock(blobs).mark_published(hash);
        return Some(answer(blobs, hash, bytes));
    }
    // A miss here: the kernel then reports the blob as missing.
    let bytes = read_overflow(blobs, &overflow, &hash)?;
    lock(blobs).mark_published(hash);
    Some(answer(blobs, hash, bytes.to_vec()))
}

/// The answer to a fetch of `hash` whose encoding is `bytes`: a Data
/// delta when the kernel holds a Data sharing most pages (and the same
/// hash was not just answered with a delta, which means it did not
/// apply), else `bytes`. The page digests are computed outside the lock.
fn answer(blobs: &Mutex<HostBlobs>, hash: CapHash, bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() < MIN_DELTA_SOURCE_BYTES {
        return bytes;
    }
    let retry = lock(blobs).deltas.take_retry(&hash);
    let Some((data, digests)) = large_data(&bytes) else {
        return bytes;
    };
    let bases = if retry {
        Vec::new()
    } else {
        lock(blobs).deltas.bases(&hash)
    };
    let delta = delta_against(&data, &digests, &bases, bytes.len());
    let mut b = lock(blobs);
    b.deltas.note_held(hash, digests);
    match delta {
        Some(delta) => {
            b.deltas.sent(hash, delta.len(), bytes.len(), true);
            delta
        }
        None => {
            b.deltas.stats.fetched_whole += 1;
            b.deltas.stats.fetched_whole_bytes += bytes.len() as u64;
            bytes
        }
    }
}

/// Keeps the blobs of a checked spill message in the host's copy (the
/// kernel evicts them next, so they are no longer published); how many.
/// A refused message keeps nothing (the kernel then keeps its blobs).
pub(crate) fn accept_spill(blobs: &Mutex<HostBlobs>, message: &[u8], limit: usize) -> u64 {
    match crate::spill::check_spill(message, limit) {
        Ok(spilled) => {
            let mut b = lock(blobs);
            let n = spilled.len() as u64;
            for (hash, bytes) in spilled {
                b.unpublish(&hash);
                b.keep(hash, Arc::new(bytes));
            }
            n
        }
        Err(e) => {
            let mut b = lock(blobs);
            b.spills_refused += 1;
            b.last_spill_error = Some(e.to_string());
            0
        }
    }
}

/// A blob this host copy holds itself: the cache, then the overflow
/// store; never the fallback (a pool's workers read each other's copies
/// from their fallbacks, so asking it here could go round in a circle).
pub(crate) fn own_copy(blobs: &Mutex<HostBlobs>, hash: &CapHash) -> Option<Arc<Vec<u8>>> {
    let overflow = {
        let mut b = lock(blobs);
        if let Some(bytes) = b.local(hash) {
            return Some(bytes);
        }
        b.overflow_stores()
    };
    read_overflow(blobs, &overflow, hash)
}

/// The first overflow store's copy of `hash`, kept in the cache again.
fn read_overflow(
    blobs: &Mutex<HostBlobs>,
    overflow: &[Arc<OverflowStore>],
    hash: &CapHash,
) -> Option<Arc<Vec<u8>>> {
    for store in overflow {
        // A read error (or a file that no longer matches its hash) is a
        // miss.
        if let Ok(Some(bytes)) = store.get(hash) {
            let bytes = Arc::new(bytes);
            lock(blobs).took_from_overflow(*hash, bytes.clone());
            return Some(bytes);
        }
    }
    None
}

/// A blob the host can serve (cache, memory, fallback or overflow store),
/// without telling the kernel; for `get_cap` and exports (a blob the
/// cache dropped because the fallback has it is no longer in the kernel
/// either, once the kernel evicted it).
pub(crate) fn host_copy(blobs: &Mutex<HostBlobs>, hash: &CapHash) -> Option<Arc<Vec<u8>>> {
    let (fallback, overflow) = {
        let mut b = lock(blobs);
        if let Some(bytes) = b.local(hash) {
            return Some(bytes);
        }
        (b.fallback.clone(), b.overflow_stores())
    };
    if let Some(bytes) = fallback.and_then(|f| f(hash)) {
        return Some(Arc::new(bytes));
    }
    read_overflow(blobs, &overflow, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use capbox_shared::cap::{Cap, Data};

    fn blob(fill: u8) -> (CapHash, Arc<Vec<u8>>) {
        let cap = Cap::Data(Data::from_bytes(&[fill; 3000]).unwrap());
        (cap.hash().unwrap(), Arc::new(cap.encode().unwrap()))
    }

    fn no_cache() -> Mutex<HostBlobs> {
        let mut b = HostBlobs::new();
        b.set_limits(0, 0);
        Mutex::new(b)
    }

    #[test]
    fn a_blob_leaving_the_cache_is_served_from_disk_then_cached_as_on_disk() {
        let blobs = no_cache();
        let (hash, bytes) = blob(1);
        lock(&blobs).keep(hash, bytes.clone());
        let s = lock(&blobs).stats();
        assert_eq!((s.blobs, s.overflowed), (0, 1));
        assert!(lock(&blobs).holds(&hash));
        assert_eq!(serve(&blobs, hash).as_deref(), Some(&bytes[..]));
        assert!(lock(&blobs).is_published(&hash));
        // Read back, it leaves again without a second write.
        let s = lock(&blobs).stats();
        assert_eq!((s.overflow_reads, s.overflowed, s.dropped), (1, 1, 1));
        assert_eq!(serve(&blobs, blob(2).0), None);
    }

    #[test]
    fn a_blob_the_fallback_has_is_dropped_and_served_from_it() {
        let blobs = no_cache();
        let (hash, bytes) = blob(3);
        let served = bytes.clone();
        let store: BlobFallback =
            Arc::new(move |h: &CapHash| (*h == hash).then(|| served.to_vec()));
        lock(&blobs).fallback = Some(store.clone());
        lock(&blobs).keeper = Some(store);
        lock(&blobs).keep(hash, bytes.clone());
        let s = lock(&blobs).stats();
        assert_eq!((s.overflowed, s.dropped), (0, 1));
        assert_eq!(lock(&blobs).temp_overflow_path(), None);
        assert_eq!(serve(&blobs, hash).as_deref(), Some(&bytes[..]));
        assert_eq!(host_copy(&blobs, &hash).as_deref(), Some(&*bytes));
    }

    #[test]
    fn a_blob_a_fallback_serves_but_does_not_keep_goes_to_the_overflow_store() {
        let blobs = no_cache();
        let (hash, bytes) = blob(5);
        let served = bytes.clone();
        // E.g. a pool's peer: it serves the blob now, but may drop it.
        lock(&blobs).fallback = Some(Arc::new(move |h: &CapHash| {
            (*h == hash).then(|| served.to_vec())
        }));
        lock(&blobs).keep(hash, bytes.clone());
        let s = lock(&blobs).stats();
        assert_eq!((s.overflowed, s.dropped), (1, 0));
        assert!(lock(&blobs).holds(&hash));
    }

    #[test]
    fn a_failed_overflow_write_keeps_the_blob_in_memory() {
        let parent = tempfile::tempdir().unwrap();
        let store = Store::open(parent.path().join("s")).unwrap();
        // A file where the store's blob directory should be: every write
        // fails.
        std::fs::remove_dir_all(parent.path().join("s/blobs")).unwrap();
        std::fs::write(parent.path().join("s/blobs"), b"in the way").unwrap();
        let blobs = no_cache();
        lock(&blobs).add_overflow(OverflowStore::Store(store));
        let (hash, bytes) = blob(4);
        lock(&blobs).keep(hash, bytes.clone());
        let b = lock(&blobs);
        assert_eq!(b.stats().overflow_failures, 1);
        assert!(b.last_overflow_error.is_some());
        drop(b);
        assert_eq!(serve(&blobs, hash).as_deref(), Some(&bytes[..]));
    }

    #[test]
    fn the_published_set_is_bounded() {
        let mut b = HostBlobs::new();
        for n in 0..(MAX_PUBLISHED as u32 + 10) {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&n.to_le_bytes());
            b.mark_published(CapHash(h));
            assert!(b.published.len() <= MAX_PUBLISHED);
        }
        assert_eq!(b.published.len(), 10);
    }
}
