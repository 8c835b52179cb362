//! Helpers for the `capbox new/invoke/heads/log` tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// `capbox ARGS` with `CAPBOX_STORE=store`.
pub fn command(store: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_capbox"));
    command.args(args).env("CAPBOX_STORE", store);
    command
}

/// Runs `capbox ARGS` to completion.
pub fn capbox(store: &Path, args: &[&str]) -> Output {
    command(store, args).output().unwrap()
}

/// Runs `capbox ARGS`, which must succeed; its stdout.
pub fn ok(store: &Path, args: &[&str]) -> String {
    let out = capbox(store, args);
    assert!(out.status.success(), "capbox {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Every stdout line that is a JSON object.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

/// `capbox log NAME --json`.
pub fn log(store: &Path, name: &str) -> Value {
    serde_json::from_str(&ok(store, &["log", name, "--json"])).unwrap()
}

/// The counter of head `name` (the sample's read endpoint), through a
/// local run on the hash (no head moves).
pub fn counter(store: &Path, name: &str) -> u64 {
    let head = log(store, name)["instance"].as_str().unwrap().to_owned();
    let out = ok(
        store,
        &[
            "invoke",
            &head,
            "--endpoint",
            "1",
            "--json",
            "--backend",
            "local",
        ],
    );
    json_lines(&out)[0]["r7"].as_u64().unwrap()
}
