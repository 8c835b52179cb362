//! Head history and compare-and-swap head moves: records per move, a torn
//! or orphaned tail after a crash, damage, migration from format 2.

mod store_support;

use std::fs;
use std::io::Write;

use capbox::{HeadChange, Store, StoreError, VerifyProblem};
use store_support::{Graph, temp_store};

fn log_path(store: &Store, name: &str) -> std::path::PathBuf {
    store.path().join("history").join(name)
}

fn invoke_change(endpoint: u32) -> HeadChange {
    HeadChange {
        action: "invoke".into(),
        endpoint: Some(endpoint),
        outcome: Some("exit=Halt,r7=1".into()),
        gas_used: Some(4),
    }
}

#[test]
fn cas_with_the_wrong_expectation_is_a_typed_error_and_changes_nothing() {
    let (_dir, store) = temp_store();
    let (a, b, c) = (Graph::new(1), Graph::new(2), Graph::new(3));
    for g in [&a, &b, &c] {
        g.put_all(&store);
    }
    // Absent expected, absent found: creates.
    let seq = store
        .set_head_if("h", None, &a.instance(), &HeadChange::action("new"))
        .unwrap();
    assert_eq!(seq, 1);
    // Expecting absence of an existing head.
    match store.set_head_if("h", None, &b.instance(), &HeadChange::action("new")) {
        Err(StoreError::HeadMoved {
            name,
            expected: None,
            found: Some(found),
        }) => {
            assert_eq!(name, "h");
            assert_eq!(found, a.instance());
        }
        other => panic!("expected HeadMoved, got {other:?}"),
    }
    // Expecting the wrong hash.
    let err = store
        .set_head_if("h", Some(&b.instance()), &c.instance(), &invoke_change(0))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::HeadMoved { expected: Some(e), found: Some(f), .. }
            if *e == b.instance() && *f == a.instance()),
        "{err:?}"
    );
    assert!(err.to_string().contains("moved"), "{err}");
    // Expecting a head that does not exist.
    assert!(matches!(
        store.set_head_if(
            "other",
            Some(&a.instance()),
            &b.instance(),
            &invoke_change(0)
        ),
        Err(StoreError::HeadMoved { found: None, .. })
    ));
    assert_eq!(store.head("other").unwrap(), None);
    assert_eq!(store.head_state("h").unwrap(), Some((a.instance(), 1)));
    assert_eq!(store.history("h").unwrap().len(), 1);
    // The right expectation moves it and records the move.
    let seq = store
        .set_head_if("h", Some(&a.instance()), &b.instance(), &invoke_change(7))
        .unwrap();
    assert_eq!(seq, 2);
    let history = store.history("h").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].prev, Some(a.instance()));
    assert_eq!(history[1].new, b.instance());
    assert_eq!(history[1].change, invoke_change(7));
    assert_eq!(history[0].prev, None);
    assert_eq!(history[0].change.action, "new");
    // save_graph_if: the same CAS.
    let err = store
        .save_graph_if(
            "h",
            Some(Some(&a.instance())),
            &c.instance(),
            |_| None,
            &[invoke_change(1)],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::HeadMoved { .. }), "{err:?}");
    assert_eq!(store.head("h").unwrap(), Some(b.instance()));
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn every_head_move_is_recorded_in_order() {
    let (_dir, store) = temp_store();
    let graphs: Vec<Graph> = (1..=4).map(Graph::new).collect();
    for g in &graphs {
        g.put_all(&store);
    }
    store.set_head("h", &graphs[0].instance()).unwrap();
    store
        .save_graph("h", &graphs[1].instance(), |_| None)
        .unwrap();
    // Several records for one move (deferred commits): chained.
    let (_, seq) = store
        .save_graph_if(
            "h",
            Some(Some(&graphs[1].instance())),
            &graphs[2].instance(),
            |_| None,
            &[invoke_change(0), invoke_change(1), invoke_change(2)],
        )
        .unwrap();
    assert_eq!(seq, 5);
    let history = store.history("h").unwrap();
    let seqs: Vec<u64> = history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(history[0].change.action, "set");
    assert_eq!(history[1].change.action, "save");
    assert_eq!(history[2].prev, Some(graphs[1].instance()));
    assert_eq!(history[3].prev, Some(graphs[2].instance()));
    assert_eq!(history[4].new, graphs[2].instance());
    // Free text is stored as a token: no spaces or newlines.
    let odd = HeadChange {
        action: "an action\nwith h1 2 lines".into(),
        endpoint: None,
        outcome: Some("a b".into()),
        gas_used: None,
    };
    store
        .set_head_if(
            "h",
            Some(&graphs[2].instance()),
            &graphs[3].instance(),
            &odd,
        )
        .unwrap();
    let last = store.history("h").unwrap().pop().unwrap();
    assert_eq!(last.change.action, "an_action_with_h1_2_lines");
    assert_eq!(last.change.outcome.as_deref(), Some("a_b"));
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn a_torn_last_record_is_ignored_and_repaired_without_touching_older_ones() {
    let (_dir, store) = temp_store();
    let (a, b, c) = (Graph::new(1), Graph::new(2), Graph::new(3));
    for g in [&a, &b, &c] {
        g.put_all(&store);
    }
    store.set_head("h", &a.instance()).unwrap();
    store
        .set_head_if("h", Some(&a.instance()), &b.instance(), &invoke_change(0))
        .unwrap();
    let before = fs::read(log_path(&store, "h")).unwrap();
    // A crash in the middle of an append: half a record, no newline.
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(log_path(&store, "h"))
        .unwrap();
    file.write_all(b"h1 3 1796044847323 abc").unwrap();
    drop(file);
    assert_eq!(store.history("h").unwrap().len(), 2);
    assert!(store.verify().unwrap().is_ok());
    store
        .set_head_if("h", Some(&b.instance()), &c.instance(), &invoke_change(1))
        .unwrap();
    let after = fs::read(log_path(&store, "h")).unwrap();
    assert_eq!(&after[..before.len()], &before[..], "older records changed");
    let history = store.history("h").unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].prev, Some(b.instance()));
    assert_eq!(history[2].new, c.instance());
}

#[test]
fn a_record_whose_head_move_was_lost_is_not_history() {
    let (_dir, store) = temp_store();
    let (a, b, c) = (Graph::new(1), Graph::new(2), Graph::new(3));
    for g in [&a, &b, &c] {
        g.put_all(&store);
    }
    store.set_head("h", &a.instance()).unwrap();
    let head_file = store.path().join("heads").join("h");
    let head_before = fs::read(&head_file).unwrap();
    // A move to b whose record was appended but whose head write a crash
    // lost (the record goes first): put the old head file back.
    store
        .set_head_if("h", Some(&a.instance()), &b.instance(), &invoke_change(0))
        .unwrap();
    fs::write(&head_file, &head_before).unwrap();
    assert_eq!(store.head_state("h").unwrap(), Some((a.instance(), 1)));
    let history = store.history("h").unwrap();
    assert_eq!(history.len(), 1, "the orphan record is not part of it");
    assert!(store.verify().unwrap().is_ok());
    // Even a no-op move (a read: prev == new) is told apart by its number.
    store
        .set_head_if("h", Some(&a.instance()), &a.instance(), &invoke_change(1))
        .unwrap();
    let head_after_noop = fs::read(&head_file).unwrap();
    fs::write(&head_file, &head_before).unwrap();
    assert_eq!(store.history("h").unwrap().len(), 1);
    fs::write(&head_file, &head_after_noop).unwrap();
    assert_eq!(store.history("h").unwrap().len(), 2);
    fs::write(&head_file, &head_before).unwrap();
    // The next move cuts the orphans and continues the chain.
    store
        .set_head_if("h", Some(&a.instance()), &c.instance(), &invoke_change(2))
        .unwrap();
    let history = store.history("h").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].prev, Some(a.instance()));
    assert_eq!(history[1].new, c.instance());
    assert_eq!(history[1].change.endpoint, Some(2));
    let lines = fs::read_to_string(log_path(&store, "h")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn a_damaged_record_is_reported_not_hidden() {
    let (_dir, store) = temp_store();
    let (a, b) = (Graph::new(1), Graph::new(2));
    a.put_all(&store);
    b.put_all(&store);
    store.set_head("h", &a.instance()).unwrap();
    store.set_head("h", &b.instance()).unwrap();
    let path = log_path(&store, "h");
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        store.history("h"),
        Err(StoreError::CorruptHistory { .. })
    ));
    let report = store.verify().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, VerifyProblem::BadHistory { head, .. } if head == "h")),
        "{:?}",
        report.problems
    );
    // A missing log for a head that moved: also reported.
    fs::remove_file(&path).unwrap();
    assert!(!store.verify().unwrap().is_ok());
}

#[test]
fn removing_a_head_removes_its_history_and_a_stale_log_is_not_inherited() {
    let (_dir, store) = temp_store();
    let (a, b) = (Graph::new(1), Graph::new(2));
    a.put_all(&store);
    b.put_all(&store);
    store.set_head("h", &a.instance()).unwrap();
    store.set_head("h", &b.instance()).unwrap();
    let log = fs::read(log_path(&store, "h")).unwrap();
    store.remove_head("h").unwrap();
    assert!(!log_path(&store, "h").exists());
    // A crash between removing the head and its log leaves the log.
    fs::write(log_path(&store, "h"), &log).unwrap();
    assert!(store.history("h").unwrap().is_empty());
    store
        .set_head_if("h", None, &a.instance(), &HeadChange::action("new"))
        .unwrap();
    let history = store.history("h").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].prev, None);
    // gc removes logs of heads that do not exist.
    fs::write(log_path(&store, "gone"), &log).unwrap();
    store.gc().unwrap();
    assert!(!log_path(&store, "gone").exists());
    assert!(log_path(&store, "h").exists());
}

#[test]
fn a_format_2_store_is_migrated_in_place() {
    let (dir, store) = temp_store();
    let a = Graph::new(1);
    let b = Graph::new(2);
    a.put_all(&store);
    b.put_all(&store);
    let root = store.path().to_path_buf();
    drop(store);
    // What format 2 wrote: a one-line head, no history directory.
    fs::remove_dir_all(root.join("history")).unwrap();
    fs::write(root.join("FORMAT"), "capbox-store 2\n").unwrap();
    fs::write(
        root.join("heads").join("old"),
        format!("{}\n", a.instance()),
    )
    .unwrap();
    let store = Store::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("FORMAT")).unwrap(),
        "capbox-store 4\n"
    );
    assert_eq!(store.head_state("old").unwrap(), Some((a.instance(), 0)));
    assert!(store.history("old").unwrap().is_empty());
    assert!(store.verify().unwrap().is_ok());
    store
        .set_head_if("old", Some(&a.instance()), &b.instance(), &invoke_change(0))
        .unwrap();
    let history = store.history("old").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].prev, Some(a.instance()));
    drop(dir);
}

#[test]
fn a_head_file_with_garbage_is_corrupt() {
    let (_dir, store) = temp_store();
    let a = Graph::new(1);
    a.put_all(&store);
    store.set_head("h", &a.instance()).unwrap();
    let head_file = store.path().join("heads").join("h");
    for bad in [
        format!("{}\nhistory x\n", a.instance()),
        format!("{}\nhistory 1\nmore\n", a.instance()),
        format!("{}\nother 1\n", a.instance()),
    ] {
        fs::write(&head_file, bad).unwrap();
        assert!(
            matches!(store.head("h"), Err(StoreError::CorruptHead { .. })),
            "accepted a bad head file"
        );
    }
}
