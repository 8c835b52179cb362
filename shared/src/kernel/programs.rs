//! Per-image caches: the decoded program (decoded once, reused by every
//! invocation) and a few *warm memories* (up to `WARM_PER_IMAGE`): PVM memories of the image's last
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
use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;

use crate::cap::{Cap, InstanceCap};
use crate::hash::CapHash;
use crate::pvm::{Memory, Program, ProgramError, StandardLayout};

/// Most images kept; past this the cache forgets an arbitrary one (the
/// next use decodes it again).
pub const MAX_CACHED_PROGRAMS: usize = 256;

/// Most bytes of decoded programs kept; past this the cache forgets others
/// first (one program alone may exceed it: it is kept until the next).
pub const MAX_CACHED_PROGRAM_BYTES: usize = 16 << 20;

/// Slots of the prepared-instance table (a power of two).
pub const PREPARED_SLOTS: usize = 128;

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
    /// The instance's blob (held so it is not evicted while cached).
    #[expect(dead_code, reason = "held, never read: it pins the blob")]
    pub instance_cap: Arc<Cap>,
    /// An `Image` cap.
    pub image: Arc<Cap>,
    /// The instance's memory: a `Data` cap.
    pub memory: Arc<Cap>,
    pub memory_hash: CapHash,
    /// The instance's root CNode, if the directory had it when prepared
    /// (so a frame's first slot access needs no lookup).
    pub root: Option<Arc<Cap>>,
    pub cached: Arc<CachedImage>,
    pub layout: StandardLayout,
    /// Per endpoint: the index of its entry instruction in the decoded
    /// program, looked up on the endpoint's first call, not per call;
    /// shared with the entries carried forward across commits (same image).
    pub entry_indexes: EntryIndexes,
}

/// [`EntryIndexes`]: not looked up yet.
const UNKNOWN: u32 = u32::MAX;
/// [`EntryIndexes`]: the endpoint is not an instruction start.
const NO_INDEX: u32 = u32::MAX - 1;

/// Per endpoint, the index of its entry instruction in the decoded
/// program (`Program::index_of`), remembered from its first call. Looking
/// up every endpoint when an instance was prepared cost ~1,100 guest
/// instructions on the sample's 15 (most never called), a large part of a
/// first call.
#[derive(Clone)]
pub(crate) struct EntryIndexes(Arc<[AtomicU32]>);

impl EntryIndexes {
    /// Nothing looked up yet, for `endpoints` endpoints.
    pub fn new(endpoints: usize) -> Self {
        EntryIndexes((0..endpoints).map(|_| AtomicU32::new(UNKNOWN)).collect())
    }

    /// `program.index_of(pc)` for `endpoint`, whose entry is at `pc`.
    /// (Concurrent first calls may both look it up: same answer.)
    #[inline]
    pub fn get(&self, endpoint: u32, program: &Program, pc: u32) -> Option<usize> {
        let Some(slot) = self.0.get(endpoint as usize) else {
            return program.index_of(pc);
        };
        match slot.load(Ordering::Relaxed) {
            UNKNOWN => {
                let found = program.index_of(pc);
                // Indexes of that size never fit a program; left unknown.
                let stored = match found {
                    Some(i) => u32::try_from(i).ok().filter(|&i| i < NO_INDEX),
                    None => Some(NO_INDEX),
                };
                if let Some(stored) = stored {
                    slot.store(stored, Ordering::Relaxed);
                }
                found
            }
            NO_INDEX => None,
            index => Some(index as usize),
        }
    }
}

/// A PVM memory that equals a fresh `Memory::standard` for the instance
/// memory `memory_hash` (same layout, same bytes, nothing dirty).
pub(crate) struct WarmMemory {
    pub memory_hash: CapHash,
    pub memory: Memory,
}

/// Warm memories kept per image: enough for a parent and the children of
/// the same image it calls (a call stack of one image needs one per frame).
pub const WARM_PER_IMAGE: usize = 4;

/// What is cached for one image.
pub(crate) struct CachedImage {
    pub program: Program,
    /// Gas its runs have used, towards compiling it (`jit`).
    #[cfg(feature = "jit")]
    gas_run: core::sync::atomic::AtomicU64,
    /// Most recently returned last.
    warm: Mutex<alloc::vec::Vec<WarmMemory>>,
}

impl CachedImage {
    /// The warm memory, if it is for `memory_hash` (taken: concurrent
    /// invocations never share it).
    #[inline]
    pub fn take_warm(&self, memory_hash: &CapHash) -> Option<Memory> {
        let mut warm = self.warm.lock();
        let at = warm
            .iter()
            .rposition(|w| same_hash(&w.memory_hash, memory_hash))?;
        // The most recent (the last) is the common match: no shifting.
        let taken = if at + 1 == warm.len() {
            warm.pop()?
        } else {
            warm.remove(at)
        };
        Some(taken.memory)
    }

    /// Keeps `memory` (reset to the state `memory_hash`) for the next call;
    /// past [`WARM_PER_IMAGE`] the oldest is dropped.
    #[inline(always)]
    pub fn put_warm(&self, memory_hash: CapHash, memory: Memory) {
        let mut warm = self.warm.lock();
        let entry = WarmMemory {
            memory_hash,
            memory,
        };
        if warm.len() < WARM_PER_IMAGE {
            warm.push(entry);
            return;
        }
        // Full: replace the oldest (the front), keeping the rest in order
        // without shifting memories around.
        warm.rotate_left(1);
        let old = warm.last_mut().map(|last| core::mem::replace(last, entry));
        drop(warm);
        drop(old); // outside the lock
    }
}

/// With [`ProgramCache::set_native_after`]: the gas per instruction of a
/// program its runs use, beyond the fixed threshold, before it is compiled
/// (compiling costs the guest a few hundred instructions per PVM
/// instruction; machine code saves several per gas).
#[cfg(feature = "jit")]
pub const NATIVE_GAS_PER_INSTRUCTION: u64 = 128;

/// Most bytes of machine code (and address tables) the cached programs
/// may hold: a program is compiled only if its worst case
/// ([`NATIVE_BYTES_PER_INSTRUCTION`] per instruction) fits beside what the
/// others hold, so no program, however large, can exhaust the guest's
/// heap by being compiled; one that does not fit stays interpreted.
#[cfg(feature = "jit")]
pub const MAX_NATIVE_BYTES: usize = 8 << 20;

/// The most machine code plus address-table bytes one instruction
/// compiles to (a store with its gas check and out-of-line paths, ~150,
/// and 16 of table; checked in `shared/tests/pvm_jit.rs`).
#[cfg(feature = "jit")]
pub const NATIVE_BYTES_PER_INSTRUCTION: usize = 176;

/// Runs that use less gas than this do not count towards compiling.
#[cfg(feature = "jit")]
const NATIVE_MIN_RUN_GAS: u64 = 256;

/// Image hash → decoded program and warm memory. `const`-constructible for
/// the guest's statics; the lock is never held while decoding.
pub struct ProgramCache {
    images: Mutex<BTreeMap<CapHash, Arc<CachedImage>>>,
    prepared: Mutex<[Option<Arc<Prepared>>; PREPARED_SLOTS]>,
    /// The gas a program's runs use before it is compiled to machine code
    /// ([`Program::compile_native`]): 0 compiles on decoding, `u64::MAX`
    /// never.
    #[cfg(feature = "jit")]
    native_after: core::sync::atomic::AtomicU64,
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
            #[cfg(feature = "jit")]
            native_after: core::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// Compiles programs decoded from now on to machine code as they are
    /// decoded (`on`) or not at all. Runs end in the same states either
    /// way; programs already cached stay as they are.
    #[cfg(feature = "jit")]
    pub fn set_native(&self, on: bool) {
        self.set_native_after(if on { 0 } else { u64::MAX });
    }

    /// Compiles a cached program to machine code once its runs (of 256
    /// gas or more each) have used `gas` plus
    /// [`NATIVE_GAS_PER_INSTRUCTION`] per instruction of it in all (`gas`
    /// 0: as it is decoded; `u64::MAX`: never). A program run
    /// little is never compiled: compiling costs about as much as running
    /// a few hundred gas per instruction, so a program pays for it only
    /// once it has run long enough to save that again.
    #[cfg(feature = "jit")]
    pub fn set_native_after(&self, gas: u64) {
        self.native_after
            .store(gas, core::sync::atomic::Ordering::Relaxed);
    }

    /// Counts `gas` used by a run of `cached`, compiling it when that
    /// reaches the threshold ([`Self::set_native_after`]).
    #[cfg(feature = "jit")]
    #[inline]
    pub(crate) fn note_run(&self, cached: &CachedImage, gas: u64) {
        use core::sync::atomic::Ordering::Relaxed;
        // Short runs gain little from machine code (the call around them
        // costs more), and skipping them keeps the empty invoke's path
        // free of this accounting.
        if gas < NATIVE_MIN_RUN_GAS {
            return;
        }
        let after = self.native_after.load(Relaxed);
        if after == u64::MAX || cached.program.is_native() {
            return;
        }
        let total = cached.gas_run.fetch_add(gas, Relaxed).saturating_add(gas);
        let per_instruction =
            NATIVE_GAS_PER_INSTRUCTION.saturating_mul(cached.program.instruction_count() as u64);
        if total >= after.saturating_add(per_instruction) {
            self.compile_within_budget(&cached.program);
        }
    }

    /// Compiles `program` if its machine code surely fits in
    /// [`MAX_NATIVE_BYTES`] beside the cached programs'. Only the speed
    /// depends on it: a program not compiled stays interpreted.
    #[cfg(feature = "jit")]
    fn compile_within_budget(&self, program: &Program) {
        let bound = program
            .instruction_count()
            .saturating_mul(NATIVE_BYTES_PER_INSTRUCTION);
        let held: usize = self
            .images
            .lock()
            .values()
            .map(|c| c.program.native_bytes())
            .sum();
        if held.saturating_add(bound) <= MAX_NATIVE_BYTES {
            let _ = program.compile_native();
        }
    }

    /// The prepared entry for `instance`, if cached. Not inlined: inlined
    /// into `run_frame`'s retry loop, the hash was kept in pieces across
    /// the loop at more instructions than the call costs.
    #[inline(never)]
    pub(crate) fn prepared(&self, instance: &CapHash) -> Option<Arc<Prepared>> {
        let slots = self.prepared.lock();
        let at = slot_of(instance);
        [at, at ^ 1]
            .into_iter()
            .find_map(|i| {
                slots[i]
                    .as_ref()
                    .filter(|p| same_hash(&p.instance_hash, instance))
            })
            .cloned()
    }

    /// Caches `entry`. Two-way: an entry's slot and its neighbour, so a
    /// parent and the child it calls rarely evict each other; the older of
    /// the pair is moved to the neighbour and whatever was there is
    /// forgotten.
    pub(crate) fn put_prepared(&self, entry: Arc<Prepared>) {
        let at = slot_of(&entry.instance_hash);
        let mut slots = self.prepared.lock();
        let evicted = match slots[at].take() {
            Some(old) if !same_hash(&old.instance_hash, &entry.instance_hash) => {
                slots[at ^ 1].replace(old)
            }
            same_or_none => same_or_none,
        };
        slots[at] = Some(entry);
        drop(slots);
        drop(evicted); // outside the lock
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
        let program = Program::from_blob(code)?;
        #[cfg(feature = "jit")]
        if self
            .native_after
            .load(core::sync::atomic::Ordering::Relaxed)
            == 0
        {
            self.compile_within_budget(&program);
        }
        let entry = Arc::new(CachedImage {
            program,
            #[cfg(feature = "jit")]
            gas_run: core::sync::atomic::AtomicU64::new(0),
            warm: Mutex::new(alloc::vec::Vec::new()),
        });
        let size = entry.program.approx_bytes();
        let mut images = self.images.lock();
        let mut evicted = alloc::vec::Vec::new();
        let total = |images: &BTreeMap<CapHash, Arc<CachedImage>>| -> usize {
            images.values().map(|c| c.program.approx_bytes()).sum()
        };
        while !images.is_empty()
            && (images.len() >= MAX_CACHED_PROGRAMS
                || total(&images) + size > MAX_CACHED_PROGRAM_BYTES)
        {
            let Some(key) = images.keys().next().copied() else {
                break;
            };
            evicted.extend(images.remove(&key));
        }
        images.insert(*image, entry.clone());
        drop(images);
        if !evicted.is_empty() {
            // Prepared entries would keep an evicted program alive.
            let mut prepared = self.prepared.lock();
            let stale: alloc::vec::Vec<_> = prepared
                .iter_mut()
                .filter(|p| {
                    p.as_ref()
                        .is_some_and(|p| evicted.iter().any(|e| Arc::ptr_eq(e, &p.cached)))
                })
                .filter_map(Option::take)
                .collect();
            drop(prepared);
            drop(stale);
        }
        drop(evicted);
        Ok(entry)
    }

    /// Forgets every prepared instance (they hold their blobs, which an
    /// eviction pass may need to drop); running invocations keep theirs.
    pub(crate) fn clear_prepared(&self) {
        let old = core::mem::replace(&mut *self.prepared.lock(), [const { None }; PREPARED_SLOTS]);
        drop(old); // outside the lock
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
            let old = core::mem::take(&mut *image.warm.lock());
            drop(old); // outside the lock
        }
    }

    /// Bytes of decoded programs cached (approximate).
    pub fn cached_bytes(&self) -> usize {
        self.images
            .lock()
            .values()
            .map(|c| c.program.approx_bytes())
            .sum()
    }

    /// How many images are cached.
    pub fn len(&self) -> usize {
        self.images.lock().len()
    }

    /// How many cached programs are compiled to machine code.
    pub fn native_count(&self) -> usize {
        #[cfg(feature = "jit")]
        return self
            .images
            .lock()
            .values()
            .filter(|c| c.program.is_native())
            .count();
        #[cfg(not(feature = "jit"))]
        0
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pvm::asm::{ProgramBuilder, Reg};

    /// A distinct program of `n` instructions.
    fn program(n: u32, tag: u32) -> alloc::vec::Vec<u8> {
        let mut b = ProgramBuilder::new();
        b.load_imm(Reg::R7, tag);
        for _ in 0..n {
            b.fallthrough();
        }
        b.jump_ind(Reg::R0, 0u32);
        b.build().unwrap()
    }

    #[test]
    fn entry_indexes_are_looked_up_once_and_remembered() {
        let program = Program::from_blob(&program(3, 7)).unwrap();
        let indexes = EntryIndexes::new(3);
        // Endpoint 0 at offset 0, endpoint 1 inside `load_imm`, endpoint 2
        // at the synthesised end trap; endpoint 5 is past the table.
        let pcs = [0, 1, program.code_len()];
        for _ in 0..2 {
            for (endpoint, &pc) in (0..).zip(&pcs) {
                assert_eq!(
                    indexes.get(endpoint, &program, pc),
                    program.index_of(pc),
                    "endpoint {endpoint}"
                );
            }
            assert_eq!(indexes.get(5, &program, 0), Some(0));
        }
        assert_eq!(indexes.get(1, &program, 1), None);
        let stored: alloc::vec::Vec<u32> = indexes
            .0
            .iter()
            .map(|i| i.load(Ordering::Relaxed))
            .collect();
        let last = program.index_of(program.code_len()).unwrap() as u32;
        assert_eq!(stored, [0, NO_INDEX, last]);
    }

    #[test]
    fn the_cache_keeps_to_its_byte_budget() {
        let cache = ProgramCache::new();
        let mut largest = 0;
        for tag in 0..8 {
            let code = program(150_000, tag);
            let entry = cache
                .get_or_decode(&CapHash([tag as u8 + 1; 32]), &code)
                .unwrap();
            largest = largest.max(entry.program.approx_bytes());
            assert!(
                cache.cached_bytes() <= MAX_CACHED_PROGRAM_BYTES.max(largest),
                "{} bytes cached",
                cache.cached_bytes()
            );
        }
        assert!(
            largest > MAX_CACHED_PROGRAM_BYTES / 8,
            "the programs are large"
        );
        assert!(cache.len() < 8, "some were evicted");
    }

    #[cfg(feature = "jit")]
    #[test]
    fn programs_are_compiled_after_their_threshold_and_within_the_budget() {
        let hash = |n: u8| CapHash([n; 32]);
        let cache = ProgramCache::new();
        // Off by default.
        let small = cache.get_or_decode(&hash(1), &program(3, 1)).unwrap();
        cache.note_run(&small, 1 << 40);
        assert!(!small.program.is_native());

        // After 1,000 gas plus the per-instruction part, in runs of at
        // least NATIVE_MIN_RUN_GAS.
        cache.set_native_after(1000);
        let n = small.program.instruction_count() as u64;
        let threshold = 1000 + NATIVE_GAS_PER_INSTRUCTION * n;
        for _ in 0..100 {
            cache.note_run(&small, NATIVE_MIN_RUN_GAS - 1);
        }
        assert!(!small.program.is_native(), "short runs do not count");
        cache.note_run(&small, threshold - 1);
        assert!(!small.program.is_native());
        cache.note_run(&small, NATIVE_MIN_RUN_GAS);
        assert!(small.program.is_native());

        // A program whose worst case does not fit the budget stays
        // interpreted, however long it runs; compiled on decoding alike.
        cache.set_native(true);
        let too_many = (MAX_NATIVE_BYTES / NATIVE_BYTES_PER_INSTRUCTION) as u32;
        let large = cache
            .get_or_decode(&hash(2), &program(too_many, 2))
            .unwrap();
        assert!(!large.program.is_native());
        cache.note_run(&large, u64::MAX);
        assert!(!large.program.is_native());
        let other = cache.get_or_decode(&hash(3), &program(10, 3)).unwrap();
        assert!(other.program.is_native(), "compiled as it is decoded");
        assert_eq!(cache.native_count(), 2);
    }
}
