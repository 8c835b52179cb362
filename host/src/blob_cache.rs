//! The host's bounded cache of blob encodings: least recently used first
//! out, by bytes and by count, every operation O(1) (a hash map into a
//! slab of entries on an intrusive doubly linked list). What leaves it is
//! handed back to the caller ([`BlobCache::insert`] returns it), which
//! decides where it goes (see docs/kernel.md "Host memory").

use std::collections::HashMap;
use std::sync::Arc;

use capbox_shared::hash::CapHash;

/// What one entry costs besides its bytes (map slot, list node, the
/// `Arc` and `Vec` headers), counted against the byte limit so that many
/// small blobs cannot exceed it through bookkeeping.
pub const ENTRY_OVERHEAD: usize = 160;

/// The default byte limit (64 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// The default count limit for `bytes`: one blob per KiB (at least 16).
pub fn default_blobs_for(bytes: usize) -> usize {
    (bytes / 1024).max(16)
}

const NIL: usize = usize::MAX;

struct Node {
    hash: CapHash,
    bytes: Arc<Vec<u8>>,
    /// Servable elsewhere (the overflow store or the fallback): dropped
    /// when it leaves, never written again.
    elsewhere: bool,
    prev: usize,
    next: usize,
}

/// A blob that left the cache.
#[derive(Debug)]
pub struct Evicted {
    /// Its hash.
    pub hash: CapHash,
    /// Its canonical encoding.
    pub bytes: Arc<Vec<u8>>,
    /// Whether it was marked as servable elsewhere when inserted.
    pub elsewhere: bool,
}

/// An LRU cache of blob encodings bounded by bytes and count.
pub struct BlobCache {
    map: HashMap<CapHash, usize>,
    nodes: Vec<Node>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    bytes: usize,
    max_bytes: usize,
    max_blobs: usize,
}

impl BlobCache {
    /// An empty cache holding at most `max_bytes` (blob bytes plus
    /// [`ENTRY_OVERHEAD`] each) and `max_blobs` blobs.
    pub fn new(max_bytes: usize, max_blobs: usize) -> Self {
        BlobCache {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
            max_bytes,
            max_blobs,
        }
    }

    /// Its limits: (bytes, blobs).
    pub fn limits(&self) -> (usize, usize) {
        (self.max_bytes, self.max_blobs)
    }

    /// Changes its limits; what no longer fits is returned.
    pub fn set_limits(&mut self, max_bytes: usize, max_blobs: usize) -> Vec<Evicted> {
        self.max_bytes = max_bytes;
        self.max_blobs = max_blobs;
        let mut out = Vec::new();
        self.shrink(&mut out);
        out
    }

    /// Bytes held (with the per-entry overhead).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Blobs held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether it holds `hash` (does not count as a use).
    pub fn contains(&self, hash: &CapHash) -> bool {
        self.map.contains_key(hash)
    }

    /// The encoding of `hash`, marked as most recently used.
    pub fn get(&mut self, hash: &CapHash) -> Option<Arc<Vec<u8>>> {
        let i = *self.map.get(hash)?;
        self.unlink(i);
        self.push_front(i);
        Some(self.nodes[i].bytes.clone())
    }

    /// Adds `hash` (or marks it used if present, keeping the first copy;
    /// `elsewhere` then only ever goes from false to true) and returns
    /// what had to leave to make room, least recently used first. A blob
    /// larger than the whole cache leaves at once.
    pub fn insert(&mut self, hash: CapHash, bytes: Arc<Vec<u8>>, elsewhere: bool) -> Vec<Evicted> {
        let mut out = Vec::new();
        if let Some(&i) = self.map.get(&hash) {
            self.nodes[i].elsewhere |= elsewhere;
            self.unlink(i);
            self.push_front(i);
            return out;
        }
        let node = Node {
            hash,
            bytes,
            elsewhere,
            prev: NIL,
            next: NIL,
        };
        self.bytes += node.bytes.len() + ENTRY_OVERHEAD;
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.map.insert(hash, i);
        self.push_front(i);
        self.shrink(&mut out);
        out
    }

    /// Evicts least recently used entries until both limits hold.
    fn shrink(&mut self, out: &mut Vec<Evicted>) {
        while (self.bytes > self.max_bytes || self.map.len() > self.max_blobs) && self.tail != NIL {
            let i = self.tail;
            self.unlink(i);
            let node = &mut self.nodes[i];
            let bytes = std::mem::take(&mut node.bytes);
            self.bytes -= bytes.len() + ENTRY_OVERHEAD;
            self.map.remove(&node.hash);
            out.push(Evicted {
                hash: node.hash,
                bytes,
                elsewhere: node.elsewhere,
            });
            self.free.push(i);
        }
        // Give back slab memory after a large shrink (e.g. new limits).
        if self.map.is_empty() {
            self.nodes = Vec::new();
            self.free = Vec::new();
            self.map = HashMap::new();
        }
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.nodes[i].prev, self.nodes[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.nodes[i].prev = NIL;
        self.nodes[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.nodes[i].next = self.head;
        self.nodes[i].prev = NIL;
        if self.head != NIL {
            self.nodes[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> CapHash {
        CapHash([n; 32])
    }

    fn blob(len: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![7; len])
    }

    fn hashes(evicted: &[Evicted]) -> Vec<CapHash> {
        evicted.iter().map(|e| e.hash).collect()
    }

    #[test]
    fn least_recently_used_leaves_first_by_bytes() {
        let per = 1000 + ENTRY_OVERHEAD;
        let mut c = BlobCache::new(3 * per, 100);
        for n in 1..=3 {
            assert!(c.insert(h(n), blob(1000), false).is_empty());
        }
        assert_eq!(c.bytes(), 3 * per);
        // A use makes 1 the most recent: 2 goes first.
        assert!(c.get(&h(1)).is_some());
        let out = c.insert(h(4), blob(1000), false);
        assert_eq!(hashes(&out), vec![h(2)]);
        assert!(!c.contains(&h(2)) && c.contains(&h(1)));
        // A bigger blob pushes out as many as it needs, oldest first.
        let out = c.insert(h(5), blob(2500), true);
        assert_eq!(hashes(&out), vec![h(3), h(1), h(4)]);
        assert_eq!((c.len(), c.bytes()), (1, 2500 + ENTRY_OVERHEAD));
    }

    #[test]
    fn the_count_limit_holds_too() {
        let mut c = BlobCache::new(usize::MAX, 2);
        c.insert(h(1), blob(1), false);
        c.insert(h(2), blob(1), false);
        let out = c.insert(h(3), blob(1), false);
        assert_eq!(hashes(&out), vec![h(1)]);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_blob_larger_than_the_cache_leaves_at_once_with_its_mark() {
        let mut c = BlobCache::new(100, 10);
        let out = c.insert(h(1), blob(1000), true);
        assert_eq!(hashes(&out), vec![h(1)]);
        assert!(out[0].elsewhere && out[0].bytes.len() == 1000);
        assert!(c.is_empty() && c.bytes() == 0);
    }

    #[test]
    fn reinserting_keeps_one_copy_and_only_gains_the_mark() {
        let mut c = BlobCache::new(10_000, 10);
        c.insert(h(1), blob(10), false);
        c.insert(h(1), blob(10), true);
        c.insert(h(1), blob(10), false);
        assert_eq!((c.len(), c.bytes()), (1, 10 + ENTRY_OVERHEAD));
        let out = c.set_limits(0, 0);
        assert!(out[0].elsewhere);
        assert!(c.is_empty());
    }

    #[test]
    fn slots_are_reused_and_the_list_stays_consistent() {
        let mut c = BlobCache::new(usize::MAX, 8);
        for n in 0..200u8 {
            c.insert(h(n), blob(n as usize), false);
            if n % 3 == 0 {
                c.get(&h(n / 2));
            }
        }
        assert_eq!(c.len(), 8);
        assert!(c.nodes.len() <= 9, "slab grew to {}", c.nodes.len());
        // Walking the list from the head visits every entry once.
        let (mut i, mut seen) = (c.head, 0);
        while i != NIL {
            seen += 1;
            i = c.nodes[i].next;
        }
        assert_eq!(seen, 8);
    }
}
