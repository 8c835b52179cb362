//! Store heads: names, atomic updates, refusing incomplete or ill-kinded graphs.

mod store_support;

use std::fs;

use capbox::shared::{CapHash, CapKind};
use capbox::{StoreError, store::validate_head_name};
use store_support::{Graph, blob_file, cnode, data, image, instance, temp_store};

#[test]
fn heads_round_trip() {
    let (_dir, store) = temp_store();
    let (a, b) = (Graph::new(1), Graph::new(2));
    a.put_all(&store);
    b.put_all(&store);
    assert_eq!(store.head("main").unwrap(), None);
    store.set_head("main", &a.instance()).unwrap();
    store.set_head("other-1.x_y", &b.instance()).unwrap();
    assert_eq!(store.head("main").unwrap(), Some(a.instance()));
    store.set_head("main", &b.instance()).unwrap();
    assert_eq!(store.head("main").unwrap(), Some(b.instance()));
    assert_eq!(
        store.heads().unwrap(),
        vec![
            ("main".to_owned(), b.instance()),
            ("other-1.x_y".to_owned(), b.instance())
        ]
    );
    assert_eq!(store.stats().unwrap().heads, 2);
    assert_eq!(store.remove_head("main").unwrap(), Some(b.instance()));
    assert_eq!(store.remove_head("main").unwrap(), None);
    assert_eq!(store.head("main").unwrap(), None);
    assert_eq!(store.stats().unwrap().heads, 1);
}

#[test]
fn invalid_head_names_are_refused() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(3);
    graph.put_all(&store);
    let long = "a".repeat(129);
    let bad = [
        "", ".", "..", "../x", "a/b", "/abs", ".hidden", "-flag", "_x", "a b", "a\\b", "ä", "a\0b",
        "x\n", &long,
    ];
    for name in bad {
        assert!(
            matches!(
                store.set_head(name, &graph.instance()),
                Err(StoreError::InvalidHeadName { .. })
            ),
            "{name:?} was accepted"
        );
        assert!(matches!(
            store.head(name),
            Err(StoreError::InvalidHeadName { .. })
        ));
        assert!(matches!(
            store.remove_head(name),
            Err(StoreError::InvalidHeadName { .. })
        ));
    }
    assert!(store.heads().unwrap().is_empty());
    assert!(!store.path().join("x").exists());
    for good in ["a", "0", "main", "a.b-c_d", &"z".repeat(128)] {
        validate_head_name(good).unwrap();
        store.set_head(good, &graph.instance()).unwrap();
    }
}

#[test]
fn a_missing_root_is_refused() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(4);
    match store.set_head("main", &graph.instance()) {
        Err(StoreError::IncompleteGraph {
            name,
            root,
            missing,
        }) => {
            assert_eq!(name, "main");
            assert_eq!(root, graph.instance());
            assert_eq!(missing, graph.instance());
        }
        other => panic!("expected IncompleteGraph, got {other:?}"),
    }
    assert_eq!(store.head("main").unwrap(), None);
}

#[test]
fn every_missing_blob_of_the_graph_is_refused() {
    // Leave out each non-root blob in turn: image, memory, the Data in a
    // nested CNode, the nested CNode, the root CNode.
    let graph = Graph::new(5);
    for left_out in 0..graph.caps.len() - 1 {
        let (_dir, store) = temp_store();
        for (i, cap) in graph.caps.iter().enumerate() {
            if i != left_out {
                store.put(cap).unwrap();
            }
        }
        match store.set_head("main", &graph.instance()) {
            Err(StoreError::IncompleteGraph { missing, .. }) => {
                assert_eq!(missing, graph.hashes[left_out]);
            }
            other => panic!("left out #{left_out}: expected IncompleteGraph, got {other:?}"),
        }
        assert_eq!(store.head("main").unwrap(), None);
        // Once it is there, the head is accepted.
        store.put(&graph.caps[left_out]).unwrap();
        store.set_head("main", &graph.instance()).unwrap();
    }
}

#[test]
fn a_failed_update_keeps_the_old_head() {
    let (_dir, store) = temp_store();
    let good = Graph::new(6);
    good.put_all(&store);
    store.set_head("main", &good.instance()).unwrap();
    let incomplete = Graph::new(7);
    store.put(incomplete.caps.last().unwrap()).unwrap();
    assert!(store.set_head("main", &incomplete.instance()).is_err());
    assert_eq!(store.head("main").unwrap(), Some(good.instance()));
}

#[test]
fn heads_must_point_at_instances() {
    let (_dir, store) = temp_store();
    let hash = store.put(&image(8)).unwrap();
    match store.set_head("main", &hash) {
        Err(StoreError::HeadNotInstance { found, hash: h, .. }) => {
            assert_eq!(found, CapKind::Image);
            assert_eq!(h, hash);
        }
        other => panic!("expected HeadNotInstance, got {other:?}"),
    }
}

#[test]
fn ill_kinded_links_are_refused() {
    let (_dir, store) = temp_store();
    let img = store.put(&image(9)).unwrap();
    let mem = store.put(&data(b"memory")).unwrap();
    let root = store.put(&cnode(&[])).unwrap();
    // memory and root_cnode swapped.
    let swapped = store.put(&instance(img, root, mem)).unwrap();
    match store.set_head("main", &swapped) {
        Err(StoreError::WrongLinkKind {
            parent,
            field,
            expected,
            found,
            ..
        }) => {
            assert_eq!(parent, swapped);
            assert!(field == "memory" || field == "root_cnode", "{field}");
            assert_ne!(expected, found);
        }
        other => panic!("expected WrongLinkKind, got {other:?}"),
    }
    let fine = store.put(&instance(img, mem, root)).unwrap();
    store.set_head("main", &fine).unwrap();
}

#[test]
fn a_corrupt_structural_blob_is_refused() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(10);
    graph.put_all(&store);
    let root_cnode = graph.hashes[4];
    let path = blob_file(&store, &root_cnode);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, bytes).unwrap();
    match store.set_head("main", &graph.instance()) {
        Err(StoreError::CorruptBlob { hash, .. }) => assert_eq!(hash, root_cnode),
        other => panic!("expected CorruptBlob, got {other:?}"),
    }
}

#[test]
fn graphs_through_sub_instances_and_shared_blobs_are_walked() {
    let (_dir, store) = temp_store();
    let child = Graph::new(11);
    child.put_all(&store);
    let img = store.put(&image(12)).unwrap();
    let mem = store.put(&data(b"m")).unwrap();
    // A CNode holding a sub-instance, the same Data twice, and a Type.
    let ty = store
        .put(&capbox::shared::Cap::Type(capbox::shared::TypeCap {
            image_hash_chain: CapHash::from_bytes([3; 32]),
        }))
        .unwrap();
    let root = store
        .put(&cnode(&[
            (0, child.instance()),
            (1, mem),
            (2, mem),
            (3, ty),
        ]))
        .unwrap();
    let parent = store.put(&instance(img, mem, root)).unwrap();
    store.set_head("parent", &parent).unwrap();
    // The child's graph is part of the parent's: removing one of its blobs
    // makes the parent's graph incomplete.
    fs::remove_file(blob_file(&store, &child.hashes[2])).unwrap();
    assert!(matches!(
        store.set_head("parent", &parent),
        Err(StoreError::IncompleteGraph { missing, .. }) if missing == child.hashes[2]
    ));
}

#[test]
fn a_corrupt_head_file_is_a_typed_error() {
    let (_dir, store) = temp_store();
    fs::write(store.path().join("heads").join("bad"), "not a hash\n").unwrap();
    match store.head("bad") {
        Err(StoreError::CorruptHead { name, .. }) => assert_eq!(name, "bad"),
        other => panic!("expected CorruptHead, got {other:?}"),
    }
    assert!(matches!(store.heads(), Err(StoreError::CorruptHead { .. })));
    fs::write(store.path().join("heads").join("bad"), [0xff, 0xfe]).unwrap();
    assert!(matches!(
        store.head("bad"),
        Err(StoreError::CorruptHead { .. })
    ));
}

#[test]
fn a_blob_reached_twice_is_kind_checked_for_each_link() {
    let (_dir, store) = temp_store();
    let img = store.put(&image(13)).unwrap();
    let inner = store.put(&cnode(&[])).unwrap();
    // The root CNode holds `inner` in a slot (any kind allowed there), and
    // the instance also names `inner` as its memory (must be a Data). The
    // walk meets `inner` through the slot first.
    let root = store.put(&cnode(&[(0, inner)])).unwrap();
    let bad = store.put(&instance(img, inner, root)).unwrap();
    match store.set_head("main", &bad) {
        Err(StoreError::WrongLinkKind {
            child,
            field,
            expected,
            found,
            ..
        }) => {
            assert_eq!(child, inner);
            assert_eq!(field, "memory");
            assert_eq!((expected, found), (CapKind::Data, CapKind::CNode));
        }
        other => panic!("expected WrongLinkKind, got {other:?}"),
    }
}
