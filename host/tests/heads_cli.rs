//! `capbox new`, `invoke`, `heads`, `log`: round trips, errors, and
//! concurrent `capbox invoke` processes on one head losing no update.

mod heads_support;

use std::collections::BTreeSet;
use std::process::Stdio;

use heads_support::{capbox, command, counter, json_lines, log, ok};
use serde_json::Value;

#[test]
fn new_invoke_heads_log_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let created: Value = serde_json::from_str(&ok(
        &store,
        &[
            "new",
            "--sample",
            "--head",
            "c",
            "--json",
            "--backend",
            "local",
        ],
    ))
    .unwrap();
    assert_eq!(created["head"], "c");
    let out = ok(
        &store,
        &[
            "invoke",
            "c",
            "--times",
            "3",
            "--json",
            "--backend",
            "local",
        ],
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{out}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["r7"], i as u64 + 1);
        assert_eq!(line["seq"], i as u64 + 2);
        assert_eq!(line["committed"], true);
        assert_eq!(line["exit"], "Halt");
        assert_eq!(line["head"], "c");
    }
    assert_eq!(lines[0]["prev"], created["instance"]);
    assert_eq!(lines[1]["prev"], lines[0]["instance"]);
    // Text output: run's line plus the head move.
    let text = ok(
        &store,
        &["invoke", "c", "--endpoint", "2", "10", "--backend", "local"],
    );
    assert!(text.contains("call 0: exit Halt r7=13"), "{text}");
    assert!(text.contains("(head c move 5)"), "{text}");

    let heads: Value = serde_json::from_str(&ok(&store, &["heads", "--json"])).unwrap();
    assert_eq!(heads["heads"][0]["name"], "c");
    assert_eq!(heads["heads"][0]["moves"], 5);
    assert!(ok(&store, &["heads"]).contains("c  "));

    let history = log(&store, "c");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["action"], "new");
    assert_eq!(entries[4]["endpoint"], 2);
    assert_eq!(entries[4]["outcome"], "exit=Halt,r7=13,r8=3,out=0");
    assert_eq!(entries[4]["new"], history["instance"]);
    assert!(entries.iter().all(|e| e["stored"] == true));
    let text = ok(&store, &["log", "c"]);
    assert!(text.contains("#5 "), "{text}");
    assert!(text.contains("invoke endpoint 2 exit=Halt,r7=13"), "{text}");
    assert!(ok(&store, &["store", "verify"]).contains(": ok"));

    // A program file, as `run --program` takes it.
    let add = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/add.pvmasm");
    ok(
        &store,
        &["new", add, "--head", "adder", "--backend", "local"],
    );
    let out = ok(
        &store,
        &[
            "invoke",
            "adder",
            "30",
            "12",
            "--json",
            "--backend",
            "local",
        ],
    );
    assert_eq!(json_lines(&out)[0]["r7"], 42);
}

#[test]
fn a_hash_target_moves_no_head_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(
        &store,
        &["new", "--sample", "--head", "c", "--backend", "local"],
    );
    let start = log(&store, "c")["instance"].as_str().unwrap().to_owned();
    let out = ok(&store, &["invoke", &start, "--json", "--backend", "local"]);
    let line = &json_lines(&out)[0];
    assert_eq!(line["head"], Value::Null);
    assert_eq!(line["seq"], Value::Null);
    assert_eq!(log(&store, "c")["instance"], start.as_str());
    // The result is stored (unpinned), so it can be invoked in turn.
    let next = line["instance"].as_str().unwrap().to_owned();
    let out = ok(
        &store,
        &[
            "invoke",
            &next,
            "--head",
            "fork",
            "--json",
            "--backend",
            "local",
        ],
    );
    assert_eq!(json_lines(&out)[0]["r7"], 2);
    let fork = log(&store, "fork");
    assert_eq!(fork["moves"], 1);
    assert_eq!(fork["entries"][0]["prev"], Value::Null);
    assert_eq!(log(&store, "c")["moves"], 1);
}

#[test]
fn bad_requests_are_one_clear_error_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(
        &store,
        &["new", "--sample", "--head", "c", "--backend", "local"],
    );
    let missing = "ab".repeat(32);
    let cases: [(&[&str], &str); 8] = [
        (
            &["invoke", "nope", "--backend", "local"],
            "no head \"nope\"",
        ),
        (
            &["new", "--sample", "--head", "c", "--backend", "local"],
            "already exists",
        ),
        (
            &["invoke", &missing, "--backend", "local"],
            "is not in the store",
        ),
        (
            &["invoke", "c", "--head", "d", "--backend", "local"],
            "--head is for a HASH",
        ),
        (
            &["invoke", "../c", "--backend", "local"],
            "invalid head name",
        ),
        (
            &["invoke", "c", "1", "2", "3", "4", "5", "--backend", "local"],
            "at most 4 arguments",
        ),
        (&["invoke", "c", "--endpoint", "x"], "no endpoint named `x`"),
        (&["log", "nope"], "no head \"nope\""),
    ];
    for (args, message) in cases {
        let out = capbox(&store, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty() || !args.contains(&"new"), "{args:?}");
    }
    // None of the errors moved the head.
    assert_eq!(log(&store, "c")["moves"], 1);
    for sub in ["new", "invoke", "heads", "log"] {
        let help = ok(&store, &[sub, "--help"]);
        assert!(help.contains("Example"), "{sub} --help lacks an example");
    }
}

/// `procs` processes each invoke the counter `times` times on one head:
/// no update is lost, each increment result appears exactly once, and the
/// history has one record per invocation.
fn concurrent_counter(backend: &str, procs: usize, times: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(
        &store,
        &["new", "--sample", "--head", "c", "--backend", "local"],
    );
    let times_text = times.to_string();
    let children: Vec<_> = (0..procs)
        .map(|_| {
            command(
                &store,
                &[
                    "invoke",
                    "c",
                    "--times",
                    &times_text,
                    "--json",
                    "--backend",
                    backend,
                    "--retries",
                    "1000",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut retried = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(lines.len() as u64, times);
        for line in lines {
            assert!(
                seen.insert(line["r7"].as_u64().unwrap()),
                "a counter value twice: {line}"
            );
            retried += u64::from(line["attempts"].as_u64().unwrap() > 1);
        }
    }
    let total = procs as u64 * times;
    assert_eq!(seen, (1..=total).collect::<BTreeSet<u64>>());
    let history = log(&store, "c");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(
        entries.len() as u64,
        total + 1,
        "one record per invocation plus `new`"
    );
    assert_eq!(
        entries.iter().filter(|e| e["action"] == "invoke").count() as u64,
        total
    );
    assert_eq!(counter(&store, "c"), total);
    assert!(ok(&store, &["store", "verify"]).contains(": ok"));
    eprintln!("{procs}×{times} on {backend}: {retried} invocations re-ran after a lost race");
}

#[test]
fn four_processes_a_hundred_invocations_each_lose_nothing() {
    concurrent_counter("local", 4, 100);
}

#[test]
fn two_sandbox_processes_lose_nothing() {
    if !std::path::Path::new("/dev/kvm").exists()
        && std::env::var("CAPBOX_REQUIRE_SANDBOX").as_deref() != Ok("1")
    {
        eprintln!("!!! SKIPPED: no /dev/kvm");
        return;
    }
    concurrent_counter("sandbox", 2, 5);
}
