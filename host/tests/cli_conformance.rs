//! `capbox conformance` through the binary, on vectors crafted here in a
//! temp dir: unreadable vectors are failures with reasons and the run goes
//! on; `--json`, `--time`, progress and the exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn capbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .output()
        .expect("the capbox binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "capbox-cli-conformance-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A vector as JSON text: `program` is a deblob blob, everything else
/// zero or empty unless given.
fn vector(name: &str, program: &[u8], gas: i64, status: &str, pc: u32, gas_after: i64) -> String {
    let zeros = "[0,0,0,0,0,0,0,0,0,0,0,0,0]";
    format!(
        r#"{{"name": "{name}", "initial-regs": {zeros}, "initial-pc": 0,
  "initial-page-map": [], "initial-memory": [], "initial-gas": {gas},
  "program": {program:?}, "expected-status": "{status}",
  "expected-regs": {zeros}, "expected-pc": {pc}, "expected-memory": [],
  "expected-gas": {gas_after}}}"#
    )
}

/// `trap` alone: no jump table, code [0], bitmask 1.
const TRAP: &[u8] = &[0, 0, 1, 0, 1];
/// `ecalli 5; trap`: code [10, 5, 0], bitmask 0b101.
const ECALLI: &[u8] = &[0, 0, 3, 10, 5, 0, 0b101];

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// A directory of good and bad vectors (`tag`: one per test, as tests
/// run in parallel).
fn mixed_dir(tag: &str) -> PathBuf {
    let dir = scratch(tag);
    let pass = vector("pass", TRAP, 10, "panic", 0, 9);
    write(&dir, "a_pass.json", &pass);
    write(&dir, "b_gas.json", &vector("gas", TRAP, 10, "panic", 0, 5));
    write(
        &dir,
        "c_oog.json",
        &vector("oog", TRAP, 0, "out-of-gas", 0, -1),
    );
    write(
        &dir,
        "d_host.json",
        // ecalli + trap: one block, charged in full on entry (departure 12).
        &vector("host", ECALLI, 10, "host", 0, 8),
    );
    write(
        &dir,
        "e_unknown.json",
        &vector("unk", TRAP, 10, "weird", 0, 9),
    );
    write(
        &dir,
        "f_missing.json",
        &pass.replace(r#""expected-gas": 9"#, r#""unrelated-gas": 9"#),
    );
    write(&dir, "g_truncated.json", &pass[..pass.len() / 2]);
    write(
        &dir,
        "h_trap_alias.json",
        &vector("alias", TRAP, 10, "trap", 0, 9),
    );
    write(&dir, "notes.txt", "not a vector");
    dir
}

#[test]
fn bad_vectors_are_failures_with_reasons_and_the_run_goes_on() {
    let dir = mixed_dir("bad");
    let out = capbox(&["conformance", dir.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.ends_with("4 passed, 4 failed\n"), "{stdout}");
    assert!(
        stdout.contains("FAIL gas: gas: expected 5, got 9"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL e_unknown.json: invalid vector: unknown variant `weird`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL f_missing.json: invalid vector: unknown field `unrelated-gas`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL g_truncated.json: invalid vector: EOF"),
        "{stdout}"
    );
    for name in ["pass", "oog", "host", "alias"] {
        assert!(!stdout.contains(&format!("FAIL {name}")), "{stdout}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_field_is_named() {
    let dir = scratch("missing");
    let pass = vector("pass", TRAP, 10, "panic", 0, 9);
    write(&dir, "m.json", &pass.replace(r#", "expected-pc": 0"#, ""));
    let out = capbox(&["conformance", dir.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("missing field `expected-pc`"), "{stdout}");
    assert!(stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_initial_state_that_cannot_be_set_up_is_a_failure() {
    let dir = scratch("state");
    let pass = vector("pass", TRAP, 10, "panic", 0, 9);
    let bad = pass.replace(
        r#""initial-memory": []"#,
        r#""initial-memory": [{"address": 131072, "contents": [1]}]"#,
    );
    assert_ne!(bad, pass);
    write(&dir, "s.json", &bad);
    let out = capbox(&["conformance", dir.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.starts_with("FAIL s.json: invalid initial state: "),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_is_one_object_per_vector_then_a_summary() {
    let dir = mixed_dir("json");
    let out = capbox(&["conformance", "--json", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "4 passed, 4 failed\n"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    let gas = &lines[1];
    assert_eq!(gas["name"], "gas");
    assert!(gas["file"].as_str().unwrap().ends_with("b_gas.json"));
    assert_eq!(gas["result"], "fail");
    assert_eq!(gas["error"], serde_json::Value::Null);
    assert_eq!(
        gas["mismatches"],
        serde_json::json!([{"field": "gas", "expected": "5", "got": "9"}])
    );
    assert_eq!(lines[0]["result"], "pass");
    assert_eq!(lines[0]["mismatches"], serde_json::json!([]));
    assert_eq!(lines[4]["result"], "fail");
    assert_eq!(lines[4]["name"], "e_unknown");
    assert!(lines[4]["error"].as_str().unwrap().contains("weird"));
    assert!(lines[0].get("time_ns").is_none());
    assert_eq!(
        lines[8],
        serde_json::json!({"summary": {"passed": 4, "failed": 4}})
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn time_reports_each_vector_and_the_total() {
    let dir = mixed_dir("time");
    let out = capbox(&["conformance", "--time", dir.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let timed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("TIME ")).collect();
    // The five vectors that ran (unreadable ones have no time).
    assert_eq!(timed.len(), 5, "{stdout}");
    assert!(timed.iter().all(|l| l.ends_with(" µs")), "{stdout}");
    assert!(stdout.contains("total interpretation time: "), "{stdout}");
    let out = capbox(&["conformance", "--time", "--json", dir.to_str().unwrap()]);
    let last = String::from_utf8(out.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert!(summary["summary"]["total_time_ns"].as_u64().is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn large_directories_report_progress_on_stderr() {
    let dir = scratch("large");
    let pass = vector("pass", TRAP, 10, "panic", 0, 9);
    for i in 0..150 {
        write(&dir, &format!("v{i:03}.json"), &pass);
    }
    let out = capbox(&["conformance", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "conformance: 100/150 vectors\n"
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "150 passed, 0 failed\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_an_unreadable_or_empty_directory_exits_2() {
    let out = capbox(&["conformance", "/nonexistent/capbox-vectors"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("/nonexistent/capbox-vectors")
    );
    let dir = scratch("empty");
    let out = capbox(&["conformance", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no .json files")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
