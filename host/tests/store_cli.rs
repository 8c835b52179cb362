//! The `capbox store`, `capbox publish` and `capbox inspect` commands.

mod store_support;

use std::path::Path;
use std::process::{Command, Output};

use capbox::Store;
use serde_json::Value;
use store_support::{Graph, data, image};

fn capbox(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .env("CAPBOX_STORE", store)
        .output()
        .unwrap()
}

fn ok_stdout(output: Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn ok_json(output: Output) -> Value {
    serde_json::from_str(&ok_stdout(output)).unwrap()
}

fn fails_with(output: Output, needle: &str) {
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

#[test]
fn publish_inspect_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let graph = Graph::new(1);
    // Publish every cap of the graph from files, the instance with a head.
    for (i, (cap, hash)) in graph.caps.iter().zip(&graph.hashes).enumerate() {
        let file = dir.path().join(format!("cap{i}"));
        std::fs::write(&file, cap.encode().unwrap()).unwrap();
        let file = file.to_str().unwrap();
        let mut args = vec!["publish", file];
        if i == graph.caps.len() - 1 {
            args.extend(["--head", "main"]);
        }
        assert_eq!(ok_stdout(capbox(&root, &args)).trim(), hash.to_hex());
    }
    let instance = graph.instance().to_hex();

    let shown = ok_json(capbox(&root, &["inspect", &instance, "--json"]));
    assert_eq!(shown["kind"], "Instance");
    assert_eq!(shown["hash"], instance.as_str());
    assert_eq!(shown["image"], graph.hashes[0].to_hex().as_str());
    assert_eq!(shown["memory"], graph.hashes[1].to_hex().as_str());
    assert_eq!(shown["root_cnode"], graph.hashes[4].to_hex().as_str());
    assert_eq!(shown["size"], 129);
    let text = ok_stdout(capbox(&root, &["inspect", &instance]));
    assert!(text.contains("Instance") && text.contains(&graph.hashes[0].to_hex()));

    let cnode = ok_json(capbox(
        &root,
        &["inspect", &graph.hashes[4].to_hex(), "--json"],
    ));
    assert_eq!(cnode["kind"], "CNode");
    assert_eq!(cnode["slots"]["7"], graph.hashes[1].to_hex().as_str());
    let shown_image = ok_json(capbox(
        &root,
        &["inspect", &graph.hashes[0].to_hex(), "--json"],
    ));
    assert_eq!(shown_image["kind"], "Image");
    assert_eq!(shown_image["endpoints"], serde_json::json!([0, 1]));
    let leaf = ok_json(capbox(
        &root,
        &["inspect", &graph.hashes[2].to_hex(), "--json"],
    ));
    assert_eq!(leaf["len"], 5000);
    assert_eq!(leaf["pages"], 2);

    let stats = ok_json(capbox(&root, &["store", "stats", "--json"]));
    assert_eq!(stats["entries"], graph.hashes.len());
    assert_eq!(stats["heads"], 1);
    let list = ok_json(capbox(&root, &["store", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), graph.hashes.len());
    let sizes: u64 = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["size"].as_u64().unwrap())
        .sum();
    assert_eq!(stats["bytes"].as_u64().unwrap(), sizes);
    let heads = ok_json(capbox(&root, &["store", "heads", "--json"]));
    assert_eq!(
        heads,
        serde_json::json!([{ "name": "main", "hash": instance }])
    );

    // An unpinned extra blob goes on gc; the pinned graph stays.
    let store = Store::open(&root).unwrap();
    store.put(&image(9)).unwrap();
    store.put(&data(b"loose")).unwrap();
    let report = ok_json(capbox(
        &root,
        &["store", "prune", "--max-entries", "7", "--json"],
    ));
    assert_eq!(report["removed_entries"], 1);
    assert_eq!(report["limits_met"], true);
    let report = ok_json(capbox(&root, &["store", "gc", "--json"]));
    assert_eq!(report["removed_entries"], 1);
    assert_eq!(report["pinned_entries"], graph.hashes.len());
    let report = ok_json(capbox(
        &root,
        &["store", "prune", "--max-bytes", "1K", "--json"],
    ));
    assert_eq!(report["limits_met"], false);
    assert_eq!(store.stats().unwrap().entries, graph.hashes.len() as u64);

    ok_stdout(capbox(&root, &["store", "remove-head", "main"]));
    assert!(store.heads().unwrap().is_empty());
    ok_stdout(capbox(&root, &["store", "set-head", "again", &instance]));
    assert_eq!(store.head("again").unwrap(), Some(graph.instance()));
}

#[test]
fn bad_input_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"\x07not a cap").unwrap();
    fails_with(
        capbox(&root, &["publish", garbage.to_str().unwrap()]),
        "unknown cap kind tag 7",
    );
    fails_with(
        capbox(&root, &["publish", "/no/such/file"]),
        "/no/such/file",
    );
    fails_with(capbox(&root, &["inspect", "abc"]), "64 hex digits");
    let absent = "ab".repeat(32);
    fails_with(capbox(&root, &["inspect", &absent]), "not in the store");
    fails_with(
        capbox(&root, &["store", "set-head", "../evil", &absent]),
        "invalid head name",
    );
    fails_with(
        capbox(&root, &["store", "set-head", "main", &absent]),
        "is not in the store",
    );
    fails_with(capbox(&root, &["store", "prune"]), "--max-entries");
    fails_with(
        capbox(&root, &["store", "prune", "--max-bytes", "12Q"]),
        "not a byte count",
    );
    fails_with(capbox(&root, &["store", "remove-head", "nope"]), "no head");
    std::fs::write(root.join("FORMAT"), "capbox-store 99\n").unwrap();
    fails_with(
        capbox(&root, &["store", "stats"]),
        "unsupported store format",
    );
}

#[test]
fn the_default_store_is_dot_capbox_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    std::fs::write(&cap, data(b"hi").encode().unwrap()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(["publish", "cap"])
        .env_remove("CAPBOX_STORE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let hash = ok_stdout(output);
    let store = Store::open(dir.path().join(".capbox/store")).unwrap();
    let hash = capbox::shared::CapHash::from_hex(hash.trim()).unwrap();
    assert!(store.contains(&hash).unwrap());
    // --store overrides both (a writing command creates the store there;
    // reading ones never create one).
    let other = dir.path().join("elsewhere");
    let created = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(["store", "gc", "--store"])
        .arg(&other)
        .env("CAPBOX_STORE", dir.path().join("ignored"))
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let output = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(["store", "stats", "--json", "--store"])
        .arg(&other)
        .env("CAPBOX_STORE", dir.path().join("ignored"))
        .output()
        .unwrap();
    assert_eq!(ok_json(output)["entries"], 0);
    assert!(other.join("FORMAT").exists());
    assert!(!dir.path().join("ignored").exists());
}
