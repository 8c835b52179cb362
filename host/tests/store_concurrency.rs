//! Concurrent writers (threads with their own or a shared `Store`, and
//! separate processes) never corrupt the store.

mod store_support;

use std::process::{Command, Stdio};
use std::thread;

use capbox::shared::CapHash;
use capbox::{Store, StoreError};
use store_support::{Graph, data};

/// Checks the store's invariants: every blob verifies, every head's graph is
/// complete, no temp file is left.
fn assert_consistent(store: &Store) {
    for info in store.list().unwrap() {
        assert!(store.get(&info.hash).unwrap().is_some());
    }
    for (name, hash) in store.heads().unwrap() {
        // set_head re-walks the whole graph and refuses any gap.
        store.set_head(&name, &hash).unwrap();
    }
    let leftovers = std::fs::read_dir(store.path().join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "temp files left behind");
}

/// Puts the graph and points the head at it, retrying when a concurrent gc
/// removed part of the (then unreachable) graph in between.
fn publish(store: &Store, name: &str, graph: &Graph) -> usize {
    let mut attempts = 0;
    loop {
        attempts += 1;
        graph.put_all(store);
        match store.set_head(name, &graph.instance()) {
            Ok(()) => return attempts,
            Err(StoreError::IncompleteGraph { .. }) => continue,
            Err(e) => panic!("set_head: {e}"),
        }
    }
}

#[test]
fn threads_writing_heads_and_blobs_while_others_prune() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let shared_store = Store::open(&root).unwrap();
    const WRITERS: u8 = 6;
    const ROUNDS: u8 = 8;
    let retries = thread::scope(|scope| {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let root = &root;
            let shared_store = &shared_store;
            writers.push(scope.spawn(move || {
                // Half the threads share a handle, half open their own.
                let own;
                let store = if w % 2 == 0 {
                    shared_store
                } else {
                    own = Store::open(root).unwrap();
                    &own
                };
                let mut retries = 0;
                for round in 0..ROUNDS {
                    let graph = Graph::new(w.wrapping_mul(31).wrapping_add(round));
                    retries += publish(store, &format!("writer-{w}"), &graph) - 1;
                    // Everyone also moves one contended head.
                    retries += publish(store, "contended", &graph) - 1;
                    // Same blob from every thread at once.
                    store.put(&data(b"everyone writes this")).unwrap();
                    store.put(&data(&[w, round, 9])).unwrap();
                }
                retries
            }));
        }
        let pruner = scope.spawn(|| {
            for i in 0..30 {
                if i % 2 == 0 {
                    shared_store.gc().unwrap();
                } else {
                    shared_store.prune(20, u64::MAX).unwrap();
                }
                assert_consistent_heads(&shared_store);
            }
        });
        pruner.join().unwrap();
        writers
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    eprintln!("set_head retries after a concurrent gc: {retries}");
    let store = Store::open(&root).unwrap();
    assert_consistent(&store);
    let heads = store.heads().unwrap();
    assert_eq!(heads.len(), WRITERS as usize + 1);
    for w in 0..WRITERS {
        let last = Graph::new(w.wrapping_mul(31).wrapping_add(ROUNDS - 1));
        assert_eq!(
            store.head(&format!("writer-{w}")).unwrap(),
            Some(last.instance())
        );
    }
}

/// Heads are always complete, even while writers and pruners run.
fn assert_consistent_heads(store: &Store) {
    for (_, hash) in store.heads().unwrap() {
        assert!(store.get(&hash).unwrap().is_some());
    }
}

#[test]
fn processes_publishing_while_another_collects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&root).unwrap();
    let inputs: Vec<(std::path::PathBuf, CapHash)> = (0..12u8)
        .map(|i| {
            let cap = data(&vec![i + 1; 3000 + usize::from(i) * 4096]);
            let path = dir.path().join(format!("cap{i}"));
            std::fs::write(&path, cap.encode().unwrap()).unwrap();
            (path, cap.hash().unwrap())
        })
        .collect();
    let publish = |path: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_capbox"))
            .args(["publish", "--store"])
            .arg(&root)
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Round 1: publishers alone; round 2: the same publishers (their blobs
    // now exist) racing three collectors, which may delete unpinned blobs.
    for round in 0..2 {
        let publishers: Vec<_> = inputs.iter().map(|(path, _)| publish(path)).collect();
        let collectors: Vec<_> = (0..round * 3)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_capbox"))
                    .args(["store", "--store"])
                    .arg(&root)
                    .args(["gc", "--json"])
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (child, (_, hash)) in publishers.into_iter().zip(&inputs) {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).trim(),
                hash.to_hex()
            );
        }
        for child in collectors {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
        }
        if round == 0 {
            assert_eq!(store.stats().unwrap().entries, inputs.len() as u64);
        }
        assert_consistent(&store);
    }
}

#[test]
fn many_threads_creating_one_store_at_once_all_succeed() {
    for attempt in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(format!("fresh{attempt}"));
        thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let root = &root;
                    scope.spawn(move || {
                        let store = Store::open(root).unwrap();
                        store.put(&data(&[i; 10])).unwrap();
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
        });
        let store = Store::open(&root).unwrap();
        assert_eq!(store.stats().unwrap().entries, 8);
        assert_consistent(&store);
    }
}
