//! Store: round trips, verification, corruption detection, format file.

mod store_support;

use std::fs;

use capbox::shared::{CNode, Cap, CapError, CapHash, CapRef};
use capbox::{Store, StoreError};
use store_support::{Graph, blob_file, data, image, temp_store};

#[test]
fn every_kind_round_trips() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(1);
    let ty = Cap::Type(capbox::shared::TypeCap {
        image_hash_chain: CapHash::from_bytes([9; 32]),
    });
    for cap in graph.caps.iter().chain([&ty, &data(&[])]) {
        let hash = store.put(cap).unwrap();
        assert_eq!(hash, cap.hash().unwrap());
        assert!(store.contains(&hash).unwrap());
        assert_eq!(store.get(&hash).unwrap().as_ref(), Some(cap));
        let bytes = store.get_encoded(&hash).unwrap().unwrap();
        assert_eq!(bytes, cap.encode().unwrap());
        // Idempotent, and the encoded entry points agree.
        assert_eq!(store.put(cap).unwrap(), hash);
        assert_eq!(store.put_encoded(&bytes).unwrap(), hash);
        store.put_encoded_with_hash(&hash, &bytes).unwrap();
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.heads, 0);
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), graph.caps.len() + 2);
    assert_eq!(listed.len() as u64, stats.entries);
    assert_eq!(listed.iter().map(|b| b.size).sum::<u64>(), stats.bytes);
    // The Data pages and tree nodes (format 4) are counted apart.
    assert!(
        stats.data_parts > 0 && stats.data_part_bytes >= 4096,
        "{stats:?}"
    );
    let mut sorted = listed.clone();
    sorted.sort_by_key(|b| b.hash);
    assert_eq!(sorted, listed);
    for info in &listed {
        let cap = store.get(&info.hash).unwrap().unwrap();
        assert_eq!(info.kind, Some(cap.kind()));
        // A Data blob is its 41-byte root record; the rest their encodings.
        let expected = match cap {
            Cap::Data(_) => 41,
            _ => cap.encode().unwrap().len() as u64,
        };
        assert_eq!(info.size, expected);
    }
}

#[test]
fn absent_blobs_are_none() {
    let (_dir, store) = temp_store();
    let hash = CapHash::from_bytes([7; 32]);
    assert!(!store.contains(&hash).unwrap());
    assert_eq!(store.get(&hash).unwrap(), None);
    assert_eq!(store.get_encoded(&hash).unwrap(), None);
}

#[test]
fn survives_reopen() {
    let (dir, store) = temp_store();
    let graph = Graph::new(2);
    graph.put_all(&store);
    store.set_head("main", &graph.instance()).unwrap();
    drop(store);
    let store = Store::open(dir.path().join("store")).unwrap();
    assert_eq!(store.head("main").unwrap(), Some(graph.instance()));
    for (cap, hash) in graph.caps.iter().zip(&graph.hashes) {
        assert_eq!(store.get(hash).unwrap().as_ref(), Some(cap));
    }
}

#[test]
fn garbage_encodings_are_rejected_and_not_stored() {
    let (_dir, store) = temp_store();
    let good = image(3).encode().unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    let garbage: [&[u8]; 5] = [&[], &[99], &good[..good.len() - 1], &trailing, b"hello"];
    for bytes in garbage {
        match store.put_encoded(bytes) {
            Err(StoreError::InvalidEncoding { len, expected, .. }) => {
                assert_eq!(len, bytes.len());
                assert_eq!(expected, None);
            }
            other => panic!("{bytes:?}: expected InvalidEncoding, got {other:?}"),
        }
    }
    // A non-canonical Data: a stored all-zero page.
    let mut zero_page = vec![0u8];
    zero_page.extend_from_slice(&4096u64.to_le_bytes());
    zero_page.extend_from_slice(&1u32.to_le_bytes());
    zero_page.extend_from_slice(&0u32.to_le_bytes());
    zero_page.extend_from_slice(&[0u8; 4096]);
    assert!(matches!(
        store.put_encoded(&zero_page),
        Err(StoreError::InvalidEncoding { .. })
    ));
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[test]
fn hash_mismatch_is_refused_and_not_stored() {
    let (_dir, store) = temp_store();
    let cap = image(4);
    let bytes = cap.encode().unwrap();
    let actual = cap.hash().unwrap();
    let claimed = CapHash::from_bytes([1; 32]);
    match store.put_encoded_with_hash(&claimed, &bytes) {
        Err(StoreError::HashMismatch {
            expected,
            actual: a,
        }) => {
            assert_eq!(expected, claimed);
            assert_eq!(a, actual);
        }
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    assert!(!store.contains(&claimed).unwrap());
    assert!(!store.contains(&actual).unwrap());
    let err = store.put_encoded_with_hash(&claimed, b"junk").unwrap_err();
    assert!(matches!(
        err,
        StoreError::InvalidEncoding { expected: Some(h), .. } if h == claimed
    ));
    assert!(err.to_string().contains(&claimed.to_hex()), "{err}");
}

#[test]
fn unsettled_caps_are_refused() {
    let (_dir, store) = temp_store();
    let mut cnode = CNode::new();
    cnode.set(0, CapRef::new(1).into()).unwrap();
    match store.put(&Cap::CNode(cnode)) {
        Err(StoreError::Unencodable { source, .. }) => assert_eq!(source, CapError::UnsettledRef),
        other => panic!("expected Unencodable, got {other:?}"),
    }
    assert_eq!(store.stats().unwrap().entries, 0);
}

fn expect_corrupt(store: &Store, hash: &CapHash) {
    for result in [
        store.get(hash).map(|_| ()),
        store.get_encoded(hash).map(|_| ()),
    ] {
        match result {
            Err(err @ StoreError::CorruptBlob { .. }) => {
                let StoreError::CorruptBlob { hash: h, path, .. } = &err else {
                    unreachable!()
                };
                assert_eq!(h, hash);
                assert_eq!(path, &blob_file(store, hash));
                assert!(err.to_string().contains(&hash.to_hex()), "{err}");
            }
            other => panic!("expected CorruptBlob, got {other:?}"),
        }
    }
}

#[test]
fn flipped_bytes_are_detected() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(5);
    graph.put_all(&store);
    for hash in &graph.hashes {
        let path = blob_file(&store, hash);
        let original = fs::read(&path).unwrap();
        // Flip a byte in the tag, in the middle, and at the end.
        for at in [0, original.len() / 2, original.len() - 1] {
            let mut bytes = original.clone();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            expect_corrupt(&store, hash);
        }
        fs::write(&path, &original[..original.len() - 1]).unwrap();
        expect_corrupt(&store, hash);
        fs::write(&path, &original).unwrap();
        assert!(store.get(hash).unwrap().is_some());
    }
}

#[test]
fn a_valid_cap_under_the_wrong_name_is_corrupt() {
    let (_dir, store) = temp_store();
    let a = store.put(&data(b"a")).unwrap();
    let b = store.put(&data(b"b")).unwrap();
    fs::copy(blob_file(&store, &a), blob_file(&store, &b)).unwrap();
    expect_corrupt(&store, &b);
}

#[test]
fn put_repairs_a_corrupt_blob() {
    let (_dir, store) = temp_store();
    let cap = image(6);
    let hash = store.put(&cap).unwrap();
    let path = blob_file(&store, &hash);
    let original = fs::read(&path).unwrap();
    let mut flipped = original.clone();
    flipped[5] ^= 1;
    for damaged in [&original[..10], &flipped[..]] {
        fs::write(&path, damaged).unwrap();
        expect_corrupt(&store, &hash);
        store.put(&cap).unwrap();
        assert_eq!(store.get(&hash).unwrap().as_ref(), Some(&cap));
        fs::write(&path, damaged).unwrap();
        store.put_encoded(&original).unwrap();
        assert_eq!(store.get(&hash).unwrap().as_ref(), Some(&cap));
    }
}

#[test]
fn format_file_is_written_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    Store::open(&root).unwrap();
    let format = root.join("FORMAT");
    assert_eq!(fs::read_to_string(&format).unwrap(), "capbox-store 4\n");
    Store::open(&root).unwrap();

    fs::write(&format, "capbox-store 5\n").unwrap();
    match Store::open(&root) {
        Err(StoreError::UnsupportedFormat { path, found, .. }) => {
            assert_eq!(path, format);
            assert_eq!(found, "capbox-store 5");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    // A format-1 store (before CNodes hashed as a Merkle tree) is refused
    // with a message that says what to do.
    fs::write(&format, "capbox-store 1\n").unwrap();
    let message = Store::open(&root).unwrap_err().to_string();
    assert!(message.contains("move that store aside"), "{message}");
    fs::write(&format, [0xff, 0x00, 0x01]).unwrap();
    assert!(matches!(
        Store::open(&root),
        Err(StoreError::UnsupportedFormat { .. })
    ));
}

#[test]
fn a_foreign_directory_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::NotAStore { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert!(!dir.path().join("FORMAT").exists());
}

#[test]
fn stray_files_are_not_blobs() {
    let (_dir, store) = temp_store();
    let hash = store.put(&data(b"x")).unwrap();
    let dir = blob_file(&store, &hash).parent().unwrap().to_path_buf();
    fs::write(dir.join("README"), "x").unwrap();
    fs::write(dir.join(hash.to_hex().to_uppercase()), "x").unwrap();
    fs::write(store.path().join("blobs").join("zz"), "x").unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, hash);
}
