//! A corrupt head file blocks nothing: listings name it and go on, gc keeps
//! every state its history names (or refuses when there is no history),
//! `remove-head` always removes it, and the demo starts afresh.

use std::path::Path;
use std::process::{Command, Output};

fn capbox(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .env("CAPBOX_STORE", store)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kv put` on `head`; the new state's hash.
fn put(store: &Path, head: &str, key: &str) -> String {
    let out = capbox(
        store,
        &[
            "kv",
            "put",
            key,
            "--value",
            "v",
            "--head",
            head,
            "--backend",
            "local",
            "--json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["state"].as_str().unwrap().to_owned()
}

#[test]
fn a_corrupt_head_is_named_and_everything_else_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let first = put(&store, "kv", "1");
    let second = put(&store, "kv", "2");
    put(&store, "other", "1");
    std::fs::write(store.join("heads").join("kv"), "garbage\n").unwrap();

    for args in [&["store", "heads"][..], &["heads"][..]] {
        let out = capbox(&store, args);
        let (stdout, stderr) = text(&out);
        assert!(
            !out.status.success(),
            "{args:?}: a corrupt head is a failure"
        );
        assert!(stdout.contains("other"), "{args:?}: {stdout}");
        assert!(stderr.contains("corrupt head \"kv\""), "{args:?}: {stderr}");
    }
    // gc keeps every state the corrupt head's history names.
    let out = capbox(&store, &["store", "gc"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(stderr.contains("head \"kv\" is corrupt"), "{stderr}");
    for state in [&first, &second] {
        let out = capbox(&store, &["inspect", state]);
        assert!(out.status.success(), "{state} was removed: {out:?}");
    }
    let out = capbox(&store, &["store", "remove-head", "kv"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).0.contains("removed kv"));
    let out = capbox(&store, &["store", "heads"]);
    assert!(out.status.success(), "{out:?}");

    // A corrupt head with no history: what it pinned is unknown, so gc
    // removes nothing and says how to fix it.
    std::fs::write(store.join("heads").join("lost"), "zz\n").unwrap();
    let out = capbox(&store, &["store", "gc"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("nothing was removed"), "{stderr}");
    assert!(capbox(&store, &["inspect", &second]).status.success());
    assert!(
        capbox(&store, &["store", "remove-head", "lost"])
            .status
            .success()
    );

    // The demo replaces a corrupt demo head.
    assert!(
        capbox(&store, &["demo", "--backend", "local"])
            .status
            .success()
    );
    std::fs::write(store.join("heads").join("demo"), "junk\n").unwrap();
    let out = capbox(&store, &["demo", "--backend", "local"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(stderr.contains("corrupt head \"demo\""), "{stderr}");
    assert!(stdout.contains("fresh instance"), "{stdout}");
}
