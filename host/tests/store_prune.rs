//! Store pruning: unpinned blobs go least recently used first; blobs
//! reachable from a head never go.

mod store_support;

use std::fs;

use capbox::Store;
use capbox::shared::CapHash;
use store_support::{Graph, age_blob, data, temp_store};

/// A store with one pinned graph (aged oldest of all) and `n` unpinned Data
/// blobs aged `10 * (n - i)` seconds: blob 0 is the least recently used.
fn setup(n: usize) -> (tempfile::TempDir, Store, Graph, Vec<CapHash>) {
    let (dir, store) = temp_store();
    let graph = Graph::new(1);
    graph.put_all(&store);
    store.set_head("main", &graph.instance()).unwrap();
    for hash in &graph.hashes {
        age_blob(&store, hash, 1000);
    }
    let loose: Vec<CapHash> = (0..n)
        .map(|i| store.put(&data(&[i as u8 + 1; 64])).unwrap())
        .collect();
    for (i, hash) in loose.iter().enumerate() {
        age_blob(&store, hash, 10 * (n - i) as u64);
    }
    (dir, store, graph, loose)
}

fn assert_graph_intact(store: &Store, graph: &Graph) {
    for (cap, hash) in graph.caps.iter().zip(&graph.hashes) {
        assert_eq!(store.get(hash).unwrap().as_ref(), Some(cap));
    }
    // Still a complete graph: re-setting the head is accepted.
    store.set_head("main", &graph.instance()).unwrap();
}

#[test]
fn within_limits_nothing_is_removed() {
    let (_dir, store, graph, loose) = setup(4);
    let before = store.stats().unwrap();
    let report = store.prune(100, u64::MAX).unwrap();
    assert_eq!(report.removed_entries, 0);
    assert!(report.limits_met);
    assert_eq!(report.remaining_entries, before.entries);
    // Bytes count the Data pages and tree nodes too (format 4).
    assert_eq!(
        report.remaining_bytes,
        before.bytes + before.data_part_bytes
    );
    assert_eq!(report.pinned_entries, graph.hashes.len() as u64);
    assert_eq!(store.stats().unwrap(), before);
    assert!(loose.iter().all(|h| store.contains(h).unwrap()));
}

#[test]
fn least_recently_used_unpinned_blobs_go_first() {
    let (_dir, store, graph, loose) = setup(5);
    let pinned = graph.hashes.len() as u64;
    // The pinned blobs are the oldest, yet only loose blobs 0 and 1 go.
    let report = store.prune(pinned + 3, u64::MAX).unwrap();
    assert_eq!(report.removed_entries, 2);
    assert!(report.limits_met);
    assert_eq!(report.remaining_entries, pinned + 3);
    assert_eq!(report.pinned_entries, pinned);
    assert!(!store.contains(&loose[0]).unwrap());
    assert!(!store.contains(&loose[1]).unwrap());
    assert!(loose[2..].iter().all(|h| store.contains(h).unwrap()));
    assert_graph_intact(&store, &graph);
}

#[test]
fn a_get_makes_a_blob_recent() {
    let (_dir, store, graph, loose) = setup(3);
    assert!(store.get(&loose[0]).unwrap().is_some());
    let report = store
        .prune(graph.hashes.len() as u64 + 2, u64::MAX)
        .unwrap();
    assert_eq!(report.removed_entries, 1);
    assert!(store.contains(&loose[0]).unwrap());
    assert!(!store.contains(&loose[1]).unwrap());
    // A put of an existing blob counts as a use too.
    store.put(&data(&[3; 64])).unwrap(); // loose[2]
    age_blob(&store, &loose[0], 500);
    store
        .prune(graph.hashes.len() as u64 + 1, u64::MAX)
        .unwrap();
    assert!(!store.contains(&loose[0]).unwrap());
    assert!(store.contains(&loose[2]).unwrap());
}

#[test]
fn the_byte_limit_is_honoured() {
    let (_dir, store, _graph, loose) = setup(4);
    let stats = store.stats().unwrap();
    // A loose Data is its root record plus its one page (format 4).
    let blob_size = fs::metadata(store_support::blob_file(&store, &loose[0]))
        .unwrap()
        .len()
        + 4096;
    let limit = stats.bytes + stats.data_part_bytes - blob_size - 1;
    let report = store.prune(u64::MAX, limit).unwrap();
    assert_eq!(report.removed_entries, 2);
    assert_eq!(report.removed_bytes, 2 * blob_size);
    assert!(report.limits_met);
    assert!(report.remaining_bytes <= limit);
    let after = store.stats().unwrap();
    assert_eq!(after.bytes + after.data_part_bytes, report.remaining_bytes);
}

#[test]
fn pinned_graphs_are_kept_even_when_limits_cannot_be_met() {
    let (_dir, store, graph, loose) = setup(3);
    let report = store.prune(1, 1).unwrap();
    assert!(!report.limits_met);
    assert_eq!(report.removed_entries, loose.len() as u64);
    assert_eq!(report.remaining_entries, graph.hashes.len() as u64);
    assert_eq!(report.pinned_entries, report.remaining_entries);
    assert_eq!(report.pinned_bytes, report.remaining_bytes);
    assert_graph_intact(&store, &graph);
}

#[test]
fn gc_removes_everything_unpinned_and_removing_a_head_unpins() {
    let (_dir, store, graph, loose) = setup(3);
    let other = Graph::new(2);
    other.put_all(&store);
    store.set_head("other", &other.instance()).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.removed_entries, loose.len() as u64);
    assert_graph_intact(&store, &graph);
    store.remove_head("other").unwrap();
    let report = store.gc().unwrap();
    // `other` shares no blob with `main` (different seeds).
    assert_eq!(report.removed_entries, other.hashes.len() as u64);
    assert!(other.hashes.iter().all(|h| !store.contains(h).unwrap()));
    store.remove_head("main").unwrap();
    let report = store.gc().unwrap();
    assert!(report.limits_met);
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[test]
fn shared_blobs_stay_while_any_head_pins_them() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(3);
    graph.put_all(&store);
    store.set_head("a", &graph.instance()).unwrap();
    store.set_head("b", &graph.instance()).unwrap();
    store.remove_head("a").unwrap();
    assert_eq!(store.gc().unwrap().removed_entries, 0);
    assert_graph_intact(&store, &graph);
}

#[test]
fn prune_reports_blobs_missing_from_a_head_and_keeps_the_rest() {
    let (_dir, store, graph, loose) = setup(2);
    // Only possible by hand: delete a pinned leaf.
    fs::remove_file(store_support::blob_file(&store, &graph.hashes[2])).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.missing, vec![("main".to_owned(), graph.hashes[2])]);
    assert_eq!(report.removed_entries, loose.len() as u64);
    for (i, hash) in graph.hashes.iter().enumerate() {
        assert_eq!(store.contains(hash).unwrap(), i != 2);
    }
}

#[test]
fn a_corrupt_pinned_cnode_stops_the_prune() {
    let (_dir, store, graph, loose) = setup(2);
    let path = store_support::blob_file(&store, &graph.hashes[4]);
    let mut bytes = fs::read(&path).unwrap();
    bytes[1] ^= 1;
    fs::write(&path, bytes).unwrap();
    assert!(matches!(
        store.gc(),
        Err(capbox::StoreError::CorruptBlob { hash, .. }) if hash == graph.hashes[4]
    ));
    assert!(loose.iter().all(|h| store.contains(h).unwrap()));
}
