//! The shared PostgreSQL store through the CLI: several `capbox invoke`
//! processes on one counter head, SIGKILL of a writer at random points,
//! and the same commands giving the same answers on both stores. Against
//! a throw-away cluster (tests/pg_support); without PostgreSQL each test
//! says SKIPPED (`CAPBOX_REQUIRE_POSTGRES=1` makes that a failure).
//!
//! `CAPBOX_PG_KILLS` sets the number of kills (default 12);
//! `scripts/pg-kill.sh` runs 60.

mod heads_support;
mod pg_support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use capbox::shared::CapHash;
use capbox::{PgStore, StoreBackend, StoreOptions};
use heads_support::{command, counter, json_lines, log, ok};
use pg_support::PgServer;
use serde_json::Value;

/// 4 processes × 100 invocations of one counter head: the counter ends
/// at 400, the history has 400 invocation records, each increment result
/// appears once, and every line a process printed is a committed move:
/// the history's record at that line's `seq` goes from the line's `prev`
/// to its `instance` (so no process ever ran on, or reported, a state
/// that was not committed).
#[test]
fn pg_four_processes_a_hundred_invocations_each_commit_exactly_400() {
    let Some(pg) = PgServer::get("pg_four_processes") else {
        return;
    };
    let url = pg.fresh_db("four_procs");
    let store = Path::new(&url);
    ok(
        store,
        &["new", "--sample", "--head", "c", "--backend", "local"],
    );
    let (procs, times) = (4, 100u64);
    let children: Vec<_> = (0..procs)
        .map(|_| {
            command(
                store,
                &[
                    "invoke",
                    "c",
                    "--times",
                    &times.to_string(),
                    "--json",
                    "--backend",
                    "local",
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
    let mut lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let printed = json_lines(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(printed.len() as u64, times);
        lines.extend(printed);
    }
    let total = procs as u64 * times;
    let values: BTreeSet<u64> = lines.iter().map(|l| l["r7"].as_u64().unwrap()).collect();
    assert_eq!(values, (1..=total).collect::<BTreeSet<u64>>());

    let history = log(store, "c");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(
        entries.len() as u64,
        total + 1,
        "`new` plus one per invocation"
    );
    let invokes = entries.iter().filter(|e| e["action"] == "invoke").count() as u64;
    assert_eq!(invokes, total);
    let by_seq: HashMap<u64, &Value> = entries
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e))
        .collect();
    let mut retried = 0;
    for line in &lines {
        assert_eq!(line["committed"], true);
        let seq = line["seq"].as_u64().unwrap();
        let record = by_seq[&seq];
        assert_eq!(record["prev"], line["prev"], "{line} vs {record}");
        assert_eq!(record["new"], line["instance"], "{line} vs {record}");
        retried += u64::from(line["attempts"].as_u64().unwrap() > 1);
    }
    assert_eq!(counter(store, "c"), total);
    assert!(ok(store, &["store", "verify"]).contains(": ok"));
    eprintln!("4×100 on PostgreSQL: {retried} invocations re-ran after a lost race");
}

/// xorshift64*: the kill delays (the seed is printed, to replay a run).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Starts `capbox invoke c --times 100000`, SIGKILLs it after `delay`,
/// returns the JSON lines it printed (each a committed invocation).
fn run_and_kill(store: &Path, delay: Duration) -> Vec<Value> {
    let mut child = command(
        store,
        &[
            "invoke",
            "c",
            "--times",
            "100000",
            "--json",
            "--backend",
            "local",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    json_lines(&reader.join().unwrap())
}

/// SIGKILL of a writer at random points: after every kill `store verify`
/// passes, the history agrees with the head, and the head is the last
/// outcome the writer reported committed, or exactly one move past it:
/// a kill between the server's COMMIT and the writer printing its line
/// (the move is durable but was never reported; its record then starts at
/// the last reported state). No committed increment is lost.
#[test]
fn pg_sigkill_of_a_writer_keeps_head_history_and_reports_in_step() {
    let Some(pg) = PgServer::get("pg_sigkill") else {
        return;
    };
    let rounds: u32 = std::env::var("CAPBOX_PG_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let url = pg.fresh_db("sigkill");
    let store_path = Path::new(&url);
    ok(
        store_path,
        &["new", "--sample", "--head", "c", "--backend", "local"],
    );
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill seed {seed:#x}");
    let mut rng = Rng(seed);
    let store = PgStore::open_existing(&url, StoreOptions::default()).unwrap();
    let (mut head, mut seq) = store.head_state("c").unwrap().unwrap();
    let (mut reported, mut unreported) = (0u64, 0u64);
    for round in 0..rounds {
        let delay = 20 + rng.below(400);
        let lines = run_and_kill(store_path, Duration::from_millis(delay));
        if let Some(last) = lines.last() {
            assert_eq!(last["committed"], true);
            head = CapHash::from_hex(last["instance"].as_str().unwrap()).unwrap();
            seq = last["seq"].as_u64().unwrap();
            reported += lines.len() as u64;
        }
        let verify: Value =
            serde_json::from_str(&ok(store_path, &["store", "verify", "--json"])).unwrap();
        assert_eq!(
            verify["ok"], true,
            "round {round} (delay {delay} ms): {verify}"
        );
        let (now, now_seq) = store.head_state("c").unwrap().unwrap();
        let history = store.history("c").unwrap();
        assert_eq!(history.len() as u64, now_seq, "round {round}");
        assert_eq!(history.last().unwrap().new, now, "round {round}");
        if (now, now_seq) != (head, seq) {
            assert_eq!(
                now_seq,
                seq + 1,
                "round {round}: the head ran more than one move ahead of the reports"
            );
            assert_eq!(history.last().unwrap().prev, Some(head), "round {round}");
            unreported += 1;
            (head, seq) = (now, now_seq);
        }
        assert!(store.get(&now).unwrap().is_some(), "round {round}");
    }
    let invocations = store
        .history("c")
        .unwrap()
        .iter()
        .filter(|e| e.change.action == "invoke")
        .count() as u64;
    assert_eq!(invocations, reported + unreported);
    assert_eq!(counter(store_path, "c"), invocations, "no increment lost");
    eprintln!(
        "{rounds} kills on PostgreSQL: {reported} invocations reported committed, \
         {unreported} committed but killed before the report"
    );
}

/// Drops what legitimately differs between two stores' answers: times and
/// the store's own location.
fn normalized(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            for key in ["time", "time_ms", "path", "last_access_unix_ms"] {
                map.remove(key);
            }
            for v in map.values_mut() {
                *v = normalized(v.take());
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = normalized(v.take());
            }
        }
        _ => {}
    }
    value
}

/// The same commands on a directory store and on PostgreSQL give the same
/// answers (content addressing makes even the hashes equal).
#[test]
fn pg_and_filesystem_stores_answer_the_same_commands_alike() {
    let Some(pg) = PgServer::get("pg_same_commands") else {
        return;
    };
    let url = pg.fresh_db("same_commands");
    let dir = tempfile::tempdir().unwrap();
    let fs_store = dir.path().join("store");
    let stores = [fs_store.as_path(), Path::new(&url)];
    let add = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/add.pvmasm");
    let script: &[&[&str]] = &[
        &[
            "new",
            "--sample",
            "--head",
            "c",
            "--backend",
            "local",
            "--json",
        ],
        &[
            "new",
            add,
            "--head",
            "adder",
            "--backend",
            "local",
            "--json",
        ],
        &[
            "invoke",
            "c",
            "--times",
            "3",
            "--backend",
            "local",
            "--json",
        ],
        &["invoke", "adder", "2", "40", "--backend", "local", "--json"],
        &[
            "kv",
            "put",
            "7",
            "--value",
            "hello",
            "--backend",
            "local",
            "--json",
        ],
        &["kv", "get", "7", "--backend", "local", "--json"],
        &["heads", "--json"],
        &["log", "c", "--json"],
        &["store", "heads", "--json"],
        &["store", "stats", "--json"],
        &["store", "list", "--json"],
        &["store", "verify", "--json"],
        &["store", "gc", "--json"],
        &["store", "prune", "--max-entries", "1", "--json"],
        &["store", "verify", "--json"],
    ];
    for args in script {
        let answers: Vec<String> = stores
            .iter()
            .map(|store| {
                let out = ok(store, args);
                // One (maybe pretty-printed) JSON value, or JSON lines.
                let values = match serde_json::from_str::<Value>(&out) {
                    Ok(value) => vec![value],
                    Err(_) => json_lines(&out),
                };
                values
                    .into_iter()
                    .map(|v| normalized(v).to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        assert!(!answers[0].is_empty(), "{args:?} printed no JSON");
        assert_eq!(answers[0], answers[1], "capbox {args:?}");
    }
    // Errors are typed and name the store, not a password.
    let out = heads_support::capbox(Path::new(&url), &["log", "nosuch", "--json"]);
    assert!(!out.status.success());
    let bad = url
        .replace("capbox@", "capbox:secret@")
        .replace(&format!(":{}/", pg.port()), ":1/");
    let out = heads_support::capbox(Path::new(&bad), &["heads"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}
