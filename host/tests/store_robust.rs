//! "No work lost": lock waits are reported and bounded, saves survive a
//! concurrent gc, stale temp files of reused pids are harmless, errors print
//! each cause once, and `store verify` finds corrupt and missing blobs.

mod store_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use capbox::shared::{Cap, CapHash};
use capbox::{Store, StoreError, StoreOptions, VerifyProblem};
use serde_json::Value;
use store_support::{Graph, blob_file, data, temp_store};

fn capbox(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_capbox"));
    command.args(args).env("CAPBOX_STORE", root);
    command
}

/// A blob source holding exactly `graph`'s caps.
fn source_of(graph: &Graph) -> HashMap<CapHash, Cap> {
    graph
        .hashes
        .iter()
        .copied()
        .zip(graph.caps.clone())
        .collect()
}

#[test]
fn waiting_for_the_lock_says_so_and_who_holds_it() {
    let (_dir, store) = temp_store();
    let held = store.hold_exclusive().unwrap();
    let start = Instant::now();
    let mut child = capbox(store.path(), &["store", "gc"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("a waiting line within 2 s");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(line.contains("waiting for the store lock"), "{line}");
    assert!(
        line.contains(&format!("held by pid {}", std::process::id())),
        "{line}"
    );
    // Still waiting (and silent) until the lock is released; then it runs.
    thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "gc ran under the lock");
    drop(held);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.is_empty(), "one line only, then: {rest:?}");
}

#[test]
fn lock_timeout_on_the_cli_fails_clearly() {
    let (_dir, store) = temp_store();
    let _held = store.hold_exclusive().unwrap();
    for args in [
        &["--lock-timeout", "1", "store", "gc"][..],
        &[
            "store",
            "prune",
            "--max-entries",
            "0",
            "--lock-timeout",
            "1",
        ],
        &[
            "kv",
            "--lock-timeout",
            "0.5",
            "--backend",
            "local",
            "put",
            "1",
            "--value",
            "x",
        ],
    ] {
        let start = Instant::now();
        let output = capbox(store.path(), args).output().unwrap();
        let took = start.elapsed();
        assert!(!output.status.success(), "{args:?}: {output:?}");
        assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("error: timed out after")
                && stderr.contains("waiting for the store lock"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("--lock-timeout"), "{stderr}");
    }
    let output = capbox(store.path(), &["--lock-timeout", "soon", "store", "gc"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a number of seconds"));
}

#[test]
fn lock_timeout_in_the_library_is_a_typed_error() {
    let (_dir, store) = temp_store();
    let options = StoreOptions {
        lock_timeout: Some(Duration::from_millis(200)),
        lock_wait_notice: false,
    };
    let waiter = Store::open_with(store.path(), options).unwrap();
    let held = store.hold_exclusive().unwrap();
    let start = Instant::now();
    match waiter.gc() {
        Err(StoreError::LockTimeout { holder, waited, .. }) => {
            assert!(waited >= Duration::from_millis(200));
            let holder = holder.expect("the holder recorded itself");
            assert!(holder.contains(&std::process::id().to_string()), "{holder}");
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    // Shared (blob writes) waits too; after release all goes through.
    assert!(matches!(
        waiter.put(&data(b"x")),
        Err(StoreError::LockTimeout { .. })
    ));
    drop(held);
    waiter.put(&data(b"x")).unwrap();
    waiter.gc().unwrap();
    // The record is cleared with the lock.
    let lock = std::fs::read(store.path().join("lock")).unwrap();
    assert!(lock.is_empty(), "{:?}", String::from_utf8_lossy(&lock));
}

#[test]
fn saves_succeed_while_gc_loops() {
    let (_dir, store) = temp_store();
    let stop = AtomicBool::new(false);
    let graphs: Vec<Graph> = (0..50u8).map(Graph::new).collect();
    let (collections, repaired) = thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let gc = Store::open(store.path()).unwrap();
            let mut runs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                gc.gc().unwrap();
                runs += 1;
            }
            runs
        });
        let mut repaired = 0;
        for (i, graph) in graphs.iter().enumerate() {
            let caps = source_of(graph);
            let head = format!("w{}", i % 3);
            let report = store
                .save_graph(&head, &graph.instance(), |h| caps.get(h).cloned())
                .unwrap_or_else(|e| panic!("save {i}: {e}"));
            assert_eq!(report.blobs, graph.caps.len() as u64);
            repaired += report.repaired;
            assert_eq!(store.head(&head).unwrap(), Some(graph.instance()));
        }
        stop.store(true, Ordering::Relaxed);
        (collector.join().unwrap(), repaired)
    });
    eprintln!("{collections} gc runs meanwhile; {repaired} blobs re-put");
    assert!(collections > 0);
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn save_graph_re_puts_what_a_gc_removed_before_the_head_moved() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(8);
    let caps = source_of(&graph);
    // As if a gc removed the whole (still unpinned) graph after it was put:
    // the source has nothing the first time, so only the head step can
    // store it, under the exclusive lock.
    let mut first = true;
    let report = store
        .save_graph("h", &graph.instance(), |h| {
            if std::mem::take(&mut first) {
                return None;
            }
            caps.get(h).cloned()
        })
        .unwrap();
    assert_eq!(report.repaired, graph.caps.len() as u64);
    assert_eq!(store.head("h").unwrap(), Some(graph.instance()));
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn save_graph_refuses_what_it_cannot_complete() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(9);
    let mut caps = source_of(&graph);
    // The leaf is neither stored nor in the source.
    caps.remove(&graph.hashes[2]);
    match store.save_graph("h", &graph.instance(), |h| caps.get(h).cloned()) {
        Err(StoreError::IncompleteGraph { missing, .. }) => assert_eq!(missing, graph.hashes[2]),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.head("h").unwrap(), None);
    // A source answering with the wrong cap is refused.
    let wrong = data(b"not the leaf");
    let leaf = graph.hashes[2];
    let result = store.save_graph("h", &graph.instance(), |h| {
        if *h == leaf {
            Some(wrong.clone())
        } else {
            caps.get(h).cloned()
        }
    });
    assert!(
        matches!(result, Err(StoreError::HashMismatch { .. })),
        "{result:?}"
    );
    // Once the leaf is stored, a source with nothing but the rest is enough.
    store.put(&graph.caps[2]).unwrap();
    let report = store
        .save_graph("h", &graph.instance(), |h| caps.get(h).cloned())
        .unwrap();
    assert_eq!(report.repaired, 0);
    assert_eq!(store.head("h").unwrap(), Some(graph.instance()));
}

#[test]
fn stale_temp_files_of_reused_pids_are_harmless() {
    let (dir, store) = temp_store();
    let tmp = store.path().join("tmp");
    // A shared lock keeps `Store::open` (ours and the children's) from
    // clearing them, as any running writer would.
    let lock = std::fs::File::open(store.path().join("lock")).unwrap();
    lock.lock_shared().unwrap();
    let me = std::process::id();
    for pid in me..me + 400 {
        for n in 0..4 {
            std::fs::write(tmp.join(format!("{pid}-{n}.tmp")), b"stale").unwrap();
        }
    }
    let again = Store::open(store.path()).unwrap();
    for i in 0..8u8 {
        again.put(&data(&[i; 100])).unwrap();
    }
    // New processes: their pids are likely among the next 400.
    for i in 0..3u8 {
        let file = dir.path().join(format!("cap{i}"));
        std::fs::write(&file, data(&[i; 50]).encode().unwrap()).unwrap();
        let output = capbox(store.path(), &["publish", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1600);
    drop(lock);
    let graph = Graph::new(3);
    let caps = source_of(&graph);
    again
        .save_graph("h", &graph.instance(), |h| caps.get(h).cloned())
        .unwrap();
}

#[test]
fn io_errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    Store::open(&root).unwrap();
    std::fs::remove_dir(root.join("tmp")).unwrap();
    std::fs::write(root.join("tmp"), b"not a directory").unwrap();
    // A writing command (reading ones do not touch tmp/).
    let output = capbox(&root, &["store", "gc"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
    assert!(stderr.contains("cannot create directory"), "{stderr}");
}

fn verify(root: &Path) -> (bool, Value, String) {
    let json = capbox(root, &["store", "verify", "--json"])
        .output()
        .unwrap();
    let text: Output = capbox(root, &["store", "verify"]).output().unwrap();
    assert_eq!(json.status.code(), text.status.code());
    (
        json.status.success(),
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8(text.stdout).unwrap(),
    )
}

#[test]
fn verify_passes_a_good_store_and_names_what_is_wrong() {
    let (_dir, store) = temp_store();
    let graph = Graph::new(5);
    graph.put_all(&store);
    store.set_head("main", &graph.instance()).unwrap();
    store.put(&data(b"unpinned")).unwrap();

    let (ok, json, text) = verify(store.path());
    assert!(ok, "{json}");
    assert_eq!(json["blobs"], 7);
    assert_eq!(json["heads"], 1);
    assert_eq!(json["problems"].as_array().unwrap().len(), 0);
    assert!(text.contains("verified 7 blobs"), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");

    // A flipped byte in the big leaf.
    let leaf = graph.hashes[2];
    let path = blob_file(&store, &leaf);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let report = store.verify().unwrap();
    assert!(
        matches!(&report.problems[..], [VerifyProblem::CorruptBlob { hash, .. }] if *hash == leaf),
        "{report:?}"
    );
    let (ok, json, text) = verify(store.path());
    assert!(!ok);
    assert_eq!(json["problems"][0]["kind"], "corrupt_blob");
    assert_eq!(json["problems"][0]["hash"], leaf.to_hex().as_str());
    assert!(text.contains(&format!("corrupt blob {leaf}")), "{text}");
    assert!(text.contains("1 problem"), "{text}");

    // Repaired by a put; then a blob under the head goes missing.
    store.put(&graph.caps[2]).unwrap();
    assert!(store.verify().unwrap().is_ok());
    let memory = graph.hashes[1];
    std::fs::remove_file(blob_file(&store, &memory)).unwrap();
    let (ok, json, text) = verify(store.path());
    assert!(!ok);
    assert_eq!(json["problems"][0]["kind"], "missing_blob");
    assert_eq!(json["problems"][0]["head"], "main");
    assert_eq!(json["problems"][0]["hash"], memory.to_hex().as_str());
    assert!(
        text.contains(&format!("head \"main\": blob {memory}")),
        "{text}"
    );
}
