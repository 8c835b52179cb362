//! Crash consistency: what a crash can leave behind (temp files, a store
//! half created, blobs without a head, a killed writer) is never visible as
//! a blob or a head, and is cleaned up.

mod store_support;

use std::fs::{self, OpenOptions};
use std::process::{Command, Stdio};
use std::time::Duration;

use capbox::Store;
use capbox::shared::Cap;
use store_support::{Graph, data, temp_store};

fn temp_files(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn leftover_temp_files_are_invisible_and_cleaned_on_open() {
    let (dir, store) = temp_store();
    let kept = store.put(&data(b"kept")).unwrap();
    // What a writer killed mid-put leaves: a partial blob and a complete one
    // that never got renamed, and a head update that never got renamed.
    let orphan = data(b"never renamed");
    let orphan_hash = orphan.hash().unwrap();
    let tmp = store.path().join("tmp");
    let encoded = orphan.encode().unwrap();
    fs::write(tmp.join("999-0.tmp"), &encoded[..3]).unwrap();
    fs::write(tmp.join("999-1.tmp"), &encoded).unwrap();
    fs::write(tmp.join("999-2.tmp"), format!("{orphan_hash}\n")).unwrap();
    assert_eq!(store.get(&orphan_hash).unwrap(), None);
    assert_eq!(store.stats().unwrap().entries, 1);
    assert!(store.heads().unwrap().is_empty());

    let store = Store::open(dir.path().join("store")).unwrap();
    assert!(temp_files(&store).is_empty());
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.list().unwrap()[0].hash, kept);
}

#[test]
fn temp_files_of_a_live_writer_are_left_alone() {
    let (dir, store) = temp_store();
    let tmp_file = store.path().join("tmp").join("4242-0.tmp");
    fs::write(&tmp_file, b"in flight").unwrap();
    // Another process holding the lock (as a writer does while it writes).
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .open(store.path().join("lock"))
        .unwrap();
    lock.lock_shared().unwrap();
    let reopened = Store::open(dir.path().join("store")).unwrap();
    assert!(tmp_file.exists());
    // Blob writes share the lock, so they proceed meanwhile.
    reopened.put(&data(b"concurrent")).unwrap();
    drop(lock);
    // A child that another test is spawning right now holds a copy of our
    // lock's file description until it execs (flock locks belong to the
    // description), so the lock can outlive `drop` by a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tmp_file.exists() && std::time::Instant::now() < deadline {
        Store::open(dir.path().join("store")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!tmp_file.exists());
}

#[test]
fn prune_cleans_temp_files() {
    let (_dir, store) = temp_store();
    fs::write(store.path().join("tmp").join("1-1.tmp"), b"x").unwrap();
    fs::write(store.path().join("tmp").join("keep.me"), b"x").unwrap();
    let report = store.prune(u64::MAX, u64::MAX).unwrap();
    assert_eq!(report.removed_temp_files, 1);
    assert_eq!(temp_files(&store), vec!["keep.me".to_owned()]);
}

#[test]
fn blobs_without_a_head_leave_the_old_head_valid() {
    // A crash after writing a new state's blobs but before moving the head.
    let (dir, store) = temp_store();
    let old = Graph::new(1);
    old.put_all(&store);
    store.set_head("main", &old.instance()).unwrap();
    let new = Graph::new(2);
    new.put_all(&store);
    drop(store);
    let store = Store::open(dir.path().join("store")).unwrap();
    assert_eq!(store.head("main").unwrap(), Some(old.instance()));
    store.set_head("main", &old.instance()).unwrap();
    // The new state is unreachable, so gc reclaims it.
    assert_eq!(store.gc().unwrap().removed_entries, new.hashes.len() as u64);
}

#[test]
fn a_store_half_created_by_a_crash_opens() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::write(root.join("tmp").join("1-0.tmp"), "capbox-store 3\n").unwrap();
    let store = Store::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("FORMAT")).unwrap(),
        "capbox-store 4\n"
    );
    assert!(temp_files(&store).is_empty());
    store.put(&data(b"ok")).unwrap();
}

/// Kills `capbox publish` of a multi-MiB Data at varying moments; whatever
/// instant the kill lands, the store holds either the whole verified blob or
/// nothing, and no temp file survives the next open.
#[test]
fn killed_writers_never_leave_partial_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let input = dir.path().join("big.cap");
    let bytes: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
    let cap = Cap::Data(capbox::shared::Data::from_bytes(&bytes).unwrap());
    let hash = cap.hash().unwrap();
    fs::write(&input, cap.encode().unwrap()).unwrap();
    Store::open(&root).unwrap();

    let (mut completed, mut interrupted_writes) = (0, 0);
    for delay_ms in [0u64, 1, 2, 5, 10, 20, 40, 80, 160, 400] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_capbox"))
            .args(["publish", "--store"])
            .arg(&root)
            .arg(&input)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        }
        if fs::read_dir(root.join("tmp")).unwrap().next().is_some() {
            interrupted_writes += 1;
        }
        let store = Store::open(&root).unwrap();
        assert!(temp_files(&store).is_empty());
        match store.get(&hash).unwrap() {
            Some(found) => assert_eq!(found, cap),
            None => assert_eq!(store.stats().unwrap().entries, 0),
        }
        if store.contains(&hash).unwrap() {
            // Start the next round from nothing.
            store.gc().unwrap();
        }
    }
    eprintln!(
        "{completed} of 10 publishes finished before the kill, \
         {interrupted_writes} were killed mid-write"
    );
}
