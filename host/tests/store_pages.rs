//! Format 4: Data caps kept as Merkle-tree parts (docs/store.md "Data
//! pages"). Migration from format 3, pages shared between versions and
//! reclaimed only when no reachable Data uses them, verification of pages
//! and nodes.

mod store_support;

use std::fs;
use std::path::{Path, PathBuf};

use capbox::shared::CapHash;
use capbox::shared::cap::{Cap, Data, PAGE_SIZE, data_page_digest};
use capbox::store::{STORE_FORMAT, StoreOptions};
use capbox::{Store, StoreError, VerifyProblem};
use store_support::{Graph, cnode, image, instance, temp_store};

/// A Data of `pages` pages, page i filled with `seed + i` (seed ≥ 1: none
/// zero, all different).
fn big_data(pages: usize, seed: u8) -> Data {
    let bytes: Vec<u8> = (0..pages * PAGE_SIZE)
        .map(|i| seed + (i / PAGE_SIZE) as u8)
        .collect();
    Data::from_bytes(&bytes).unwrap()
}

/// `data` with page `index` changed.
fn with_page(data: &Data, index: u32, fill: u8) -> Data {
    let mut changed = data.clone();
    changed.write_page(index, &[fill; PAGE_SIZE]).unwrap();
    changed
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn page_file(store: &Store, page: &[u8; PAGE_SIZE]) -> PathBuf {
    let hex = CapHash(data_page_digest(page)).to_hex();
    store.path().join("pages").join(&hex[..2]).join(hex)
}

/// Writes a format-3 store as format-3 code did: `FORMAT`, every blob's
/// canonical encoding under `blobs/<2 hex>/<64 hex>`, one-line heads.
fn write_format_3(root: &Path, caps: &[Cap], heads: &[(&str, CapHash)]) {
    fs::create_dir_all(root.join("heads")).unwrap();
    fs::create_dir_all(root.join("history")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::write(root.join("FORMAT"), "capbox-store 3\n").unwrap();
    for cap in caps {
        let hex = cap.hash().unwrap().to_hex();
        let dir = root.join("blobs").join(&hex[..2]);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(&hex), cap.encode().unwrap()).unwrap();
    }
    for (name, hash) in heads {
        fs::write(root.join("heads").join(name), format!("{hash}\n")).unwrap();
    }
}

#[test]
fn a_format_3_store_migrates_with_every_head_and_blob_intact() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("old");
    let graph = Graph::new(4);
    let memory = Cap::Data(big_data(5, 10));
    let memory_hash = memory.hash().unwrap();
    let second = instance(graph.hashes[0], memory_hash, graph.hashes[4]);
    let mut caps = graph.caps.clone();
    caps.push(memory.clone());
    caps.push(second.clone());
    let heads = [("a", graph.instance()), ("b", second.hash().unwrap())];
    write_format_3(&root, &caps, &heads);

    // Reading only: refused with the command that migrates.
    let refused = Store::open_existing(&root, StoreOptions::default()).unwrap_err();
    assert!(matches!(refused, StoreError::NeedsMigration { .. }));
    assert!(
        refused.to_string().contains("capbox store migrate"),
        "{refused}"
    );

    let report = Store::migrate(&root, StoreOptions::default()).unwrap();
    assert_eq!(report.from, "capbox-store 3");
    // The graph's two Data (memory, leaf) and the big memory.
    assert_eq!(report.data_blobs, 3);
    assert!(report.pages >= 5 + 2 && report.nodes >= 3, "{report:?}");
    assert_eq!(
        fs::read_to_string(root.join("FORMAT")).unwrap(),
        format!("{STORE_FORMAT}\n")
    );
    // Again: nothing left to do.
    let again = Store::migrate(&root, StoreOptions::default()).unwrap();
    assert_eq!((again.from.as_str(), again.data_blobs), (STORE_FORMAT, 0));

    let store = Store::open_existing(&root, StoreOptions::default()).unwrap();
    for (name, hash) in heads {
        assert_eq!(store.head(name).unwrap(), Some(hash));
    }
    for cap in &caps {
        let hash = cap.hash().unwrap();
        let got = store.get(&hash).unwrap().unwrap();
        assert_eq!(&got, cap);
        assert_eq!(got.hash().unwrap(), hash);
        assert_eq!(
            store.get_encoded(&hash).unwrap().unwrap(),
            cap.encode().unwrap()
        );
    }
    // A Data blob file is now its 41-byte root record.
    assert_eq!(
        fs::metadata(store_support::blob_file(&store, &memory_hash))
            .unwrap()
            .len(),
        41
    );
    let verified = store.verify().unwrap();
    assert!(verified.is_ok(), "{:?}", verified.problems);
}

#[test]
fn opening_a_format_3_store_for_writing_migrates_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("old");
    let graph = Graph::new(5);
    write_format_3(&root, &graph.caps, &[("a", graph.instance())]);
    let store = Store::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("FORMAT")).unwrap(),
        format!("{STORE_FORMAT}\n")
    );
    for (cap, hash) in graph.caps.iter().zip(&graph.hashes) {
        assert_eq!(store.get(hash).unwrap().as_ref(), Some(cap));
    }
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn versions_share_pages_and_gc_reclaims_them_only_when_unused() {
    let (_dir, store) = temp_store();
    let img = image(1);
    let root_cnode = cnode(&[]);
    store.put(&img).unwrap();
    store.put(&root_cnode).unwrap();
    let v1 = big_data(8, 20);
    let v2 = with_page(&v1, 3, 0xaa);
    let put_version = |data: &Data| {
        let memory = store.put(&Cap::Data(data.clone())).unwrap();
        let inst = instance(img.hash().unwrap(), memory, root_cnode.hash().unwrap());
        store.put(&inst).unwrap()
    };
    let i1 = put_version(&v1);
    let parts_after_v1 = store.stats().unwrap().data_parts;
    assert_eq!(parts_after_v1, 8 + 7, "8 pages and 7 inner nodes");
    let i2 = put_version(&v2);
    // One page and the 3 nodes above it.
    assert_eq!(store.stats().unwrap().data_parts, parts_after_v1 + 4);
    store.set_head("old", &i1).unwrap();
    store.set_head("new", &i2).unwrap();

    // Both pinned: gc keeps every part.
    let report = store.gc().unwrap();
    assert_eq!(report.removed_bytes, 0);
    let shared_page = page_file(&store, v1.page(0).unwrap());
    let old_page = page_file(&store, v1.page(3).unwrap());
    let new_page = page_file(&store, v2.page(3).unwrap());
    assert!(shared_page.exists() && old_page.exists() && new_page.exists());

    // Only v2 pinned: v1's own page and nodes go, the shared pages stay.
    store.remove_head("old").unwrap();
    let report = store.gc().unwrap();
    // v1's instance and its Data root record; then v1's page 3 and the
    // 3 nodes above it (parts count in bytes only).
    assert_eq!(report.removed_entries, 2, "{report:?}");
    assert_eq!(report.removed_bytes, 129 + 41 + 4096 + 3 * 64, "{report:?}");
    assert!(!old_page.exists());
    assert!(shared_page.exists() && new_page.exists());
    assert_eq!(store.stats().unwrap().data_parts, parts_after_v1);
    assert_eq!(
        store.get(&Cap::Data(v2.clone()).hash().unwrap()).unwrap(),
        Some(Cap::Data(v2.clone()))
    );
    assert!(store.verify().unwrap().is_ok());

    // Nothing pinned: every part goes.
    store.remove_head("new").unwrap();
    store.gc().unwrap();
    assert_eq!(store.stats().unwrap().data_parts, 0);
    assert!(files_under(&store.path().join("pages")).is_empty());
    assert!(files_under(&store.path().join("nodes")).is_empty());
}

#[test]
fn verify_reports_a_corrupt_page_and_a_missing_node() {
    let (_dir, store) = temp_store();
    let data = big_data(4, 40);
    let hash = store.put(&Cap::Data(data.clone())).unwrap();
    assert!(store.verify().unwrap().is_ok());

    // A flipped byte in a page: verify names the Data; get refuses.
    let page = page_file(&store, data.page(2).unwrap());
    let mut bytes = fs::read(&page).unwrap();
    bytes[100] ^= 1;
    fs::write(&page, &bytes).unwrap();
    let report = store.verify().unwrap();
    assert!(
        matches!(&report.problems[..], [VerifyProblem::CorruptBlob { hash: h, reason }]
            if *h == hash && reason.contains("corrupt")),
        "{:?}",
        report.problems
    );
    assert!(matches!(
        store.get(&hash),
        Err(StoreError::CorruptBlob { .. })
    ));
    bytes[100] ^= 1;
    fs::write(&page, &bytes).unwrap();
    assert!(store.verify().unwrap().is_ok());

    // A missing inner node.
    let nodes = files_under(&store.path().join("nodes"));
    assert_eq!(nodes.len(), 3);
    fs::remove_file(&nodes[0]).unwrap();
    let report = store.verify().unwrap();
    assert!(
        matches!(&report.problems[..], [VerifyProblem::CorruptBlob { hash: h, reason }]
            if *h == hash && reason.contains("missing")),
        "{:?}",
        report.problems
    );
    assert!(matches!(
        store.get(&hash),
        Err(StoreError::CorruptBlob { .. })
    ));
}

#[test]
fn capbox_store_migrate_converts_a_format_3_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("old");
    let graph = Graph::new(6);
    write_format_3(&root, &graph.caps, &[("a", graph.instance())]);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_capbox"))
            .args(args)
            .env("CAPBOX_STORE", &root)
            .output()
            .unwrap()
    };
    // A reading command refuses, naming the command that migrates.
    let refused = run(&["store", "verify"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("capbox store migrate"));

    let migrated = run(&["store", "migrate", "--json"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let report: serde_json::Value = serde_json::from_slice(&migrated.stdout).unwrap();
    assert_eq!(report["from"], "capbox-store 3");
    assert_eq!(report["to"], STORE_FORMAT);
    assert_eq!(report["data_blobs"], 2);
    let verified = run(&["store", "verify"]);
    assert!(verified.status.success(), "{verified:?}");
    let again = run(&["store", "migrate"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already in format"));
}
