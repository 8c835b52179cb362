//! `capbox kv`: the kv service on a head in the store, one process per
//! command.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn capbox(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(["kv", "--backend", "local"])
        .args(args)
        .env("CAPBOX_STORE", store)
        .output()
        .unwrap()
}

fn json(output: Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {output:?}"))
}

#[test]
fn put_get_delete_len_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let put = capbox(&store, &["put", "7", "--value", "seven", "--json"]);
    assert!(put.status.success(), "{put:?}");
    let put = json(put);
    assert_eq!(
        (put["op"].as_str(), put["saved"].as_bool()),
        (Some("put"), Some(true))
    );
    let file = dir.path().join("value");
    std::fs::write(&file, b"from a file").unwrap();
    let out = capbox(&store, &["put", "8", "--input", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let get = capbox(&store, &["get", "7"]);
    assert!(get.status.success(), "{get:?}");
    assert_eq!(get.stdout, b"seven\n");
    let get = json(capbox(&store, &["--json", "get", "8"]));
    assert_eq!(get["value"], "from a file");
    assert_eq!(get["r7"], 11);
    assert_eq!(get["saved"], false, "a get leaves the head where it was");
    assert_eq!(json(capbox(&store, &["len", "--json"]))["r7"], 2);
    // Another head is another kv instance.
    assert_eq!(
        json(capbox(&store, &["len", "--json", "--head", "other"]))["r7"],
        0
    );
    let del = json(capbox(&store, &["delete", "7", "--json"]));
    assert_eq!(del["r7"], 1);
    let missing = capbox(&store, &["get", "7", "--json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(json(missing)["error"], "ERR_EMPTY");
    let bad = capbox(&store, &["get", "70000"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ERR_BAD_KEY"));
    // The head names the state the last change made, with its whole graph.
    let heads = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(["store", "heads", "--json"])
        .env("CAPBOX_STORE", &store)
        .output()
        .unwrap();
    let heads = json(heads);
    let kv = heads
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "kv")
        .unwrap();
    assert_eq!(kv["hash"], del["state"]);
}

/// Four processes putting distinct keys into one head at once: every put
/// lands (compare-and-swap with re-runs; before, a plain head move let a
/// slower writer overwrite the others' puts), and the head's history has
/// one record per put.
#[test]
fn concurrent_puts_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // Created by one process first: concurrent creation is its own race.
    assert!(
        capbox(&store, &["put", "1000", "--value", "x"])
            .status
            .success()
    );
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..10u32 {
                    let key = (w * 100 + i).to_string();
                    let out = capbox(&store, &["put", &key, "--value", "v"]);
                    assert!(out.status.success(), "{out:?}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let len = json(capbox(&store, &["len", "--json"]));
    assert_eq!(len["r7"], 41, "{len}");
    let log = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(["log", "kv", "--json"])
        .env("CAPBOX_STORE", &store)
        .output()
        .unwrap();
    assert!(log.status.success(), "{log:?}");
    let text = String::from_utf8_lossy(&log.stdout);
    assert_eq!(text.matches("\"invoke\"").count(), 41, "{text}");
}
