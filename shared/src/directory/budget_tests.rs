use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::cap::{Cap, Data};
use crate::hash::CapHash;

/// A one-page Data (never all zero: zero pages are not stored).
fn data(tag: u8) -> Arc<Cap> {
    Arc::new(Cap::Data(
        Data::from_bytes(&[tag.wrapping_add(1); 100]).unwrap(),
    ))
}

/// A directory with `n` host-put blobs, tags 0..n (stored in that order).
fn filled(n: u8, budget: BlobBudget) -> (CacheDirectory, Vec<CapHash>) {
    let dir = CacheDirectory::new();
    dir.set_budget(budget);
    let hashes = (0..n)
        .map(|tag| {
            let cap = data(tag);
            let hash = cap.hash().unwrap();
            dir.put_host_blob(hash, cap);
            hash
        })
        .collect();
    (dir, hashes)
}

fn count_budget(max_blobs: u64) -> BlobBudget {
    BlobBudget {
        max_bytes: u64::MAX,
        max_blobs,
    }
}

fn evict_all(dir: &CacheDirectory) -> Vec<CapHash> {
    dir.plan_eviction()
        .into_iter()
        .filter(|c| dir.evict_if_unheld(&c.hash).is_some())
        .map(|c| c.hash)
        .collect()
}

#[test]
fn within_budget_plans_nothing() {
    let (dir, _) = filled(8, count_budget(8));
    assert!(!dir.over_budget());
    assert!(dir.plan_eviction().is_empty());
}

#[test]
fn evicts_least_recently_used_down_to_low_water() {
    let (dir, hashes) = filled(9, count_budget(8));
    assert!(dir.over_budget());
    // A lookup makes the oldest blob the most recent.
    dir.get_blob(&hashes[0]).unwrap();
    let evicted = evict_all(&dir);
    // Low water of 8 is 6: three go, oldest first, skipping the used one.
    assert_eq!(evicted, hashes[1..4].to_vec());
    assert_eq!(dir.blob_count(), 6);
    assert!(!dir.over_budget());
    let stats = dir.eviction_stats();
    assert_eq!(stats.evictions, 3);
    assert!(stats.evicted_bytes > 300);
}

#[test]
fn the_byte_limit_applies_too() {
    let one = data(0).approx_bytes() as u64;
    let (dir, hashes) = filled(
        4,
        BlobBudget {
            max_bytes: 3 * one,
            max_blobs: 100,
        },
    );
    assert!(dir.over_budget());
    let evicted = evict_all(&dir);
    assert_eq!(evicted, hashes[..2].to_vec(), "down to 2 blobs' bytes");
    assert_eq!(dir.stats().blob_bytes as u64, 2 * one);
}

#[test]
fn held_blobs_are_not_evicted() {
    let (dir, hashes) = filled(4, count_budget(1));
    let held = dir.get_blob(&hashes[0]).unwrap();
    let working = dir.promote_blob_to_instance(&hashes[1]).unwrap();
    let evicted = evict_all(&dir);
    assert_eq!(evicted, hashes[2..].to_vec());
    assert!(dir.contains_blob(&hashes[0]) && dir.contains_blob(&hashes[1]));
    assert!(dir.over_budget(), "held blobs keep it over budget");
    drop((held, working));
    dir.sweep_instances();
    assert_eq!(evict_all(&dir).len(), 1, "once released they go");
}

#[test]
fn kernel_made_blobs_wait_for_the_host() {
    let dir = CacheDirectory::new();
    dir.set_budget(count_budget(1));
    let (a, b) = (
        dir.put_cap_arc(data(1)).unwrap(),
        dir.put_cap_arc(data(2)).unwrap(),
    );
    assert!(!dir.is_host_known(&a));
    let plan = dir.plan_eviction();
    assert_eq!(
        plan,
        vec![EvictionCandidate {
            hash: a,
            host_known: false
        }]
    );
    assert!(dir.evict_if_unheld(&a).is_none(), "never dropped unspilled");
    dir.mark_host_known(&[a], 123);
    assert!(dir.evict_if_unheld(&a).is_some());
    let stats = dir.eviction_stats();
    assert_eq!((stats.spilled_blobs, stats.spilled_bytes), (1, 123));
    // A host put of a kernel-made blob makes it host-known as well.
    dir.put_host_blob(b, data(2));
    assert!(dir.is_host_known(&b));
}

#[test]
fn a_fetch_of_an_evicted_blob_counts_as_a_refetch() {
    let (dir, hashes) = filled(3, count_budget(1));
    let evicted = evict_all(&dir);
    assert_eq!(evicted.len(), 2);
    dir.put_fetched_blob(evicted[0], data(0));
    let other = data(99);
    dir.put_fetched_blob(other.hash().unwrap(), other);
    let stats = dir.eviction_stats();
    assert_eq!((stats.fetched, stats.refetched), (2, 1));
    assert!(dir.is_host_known(&hashes[0]));
}
