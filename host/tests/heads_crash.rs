//! SIGKILL during durable `capbox invoke`s: after every kill the store
//! verifies, the head's graph is complete, the history agrees with the
//! head, and the head is the last outcome reported as committed (or, when
//! the kill fell between a commit and its report, the one after it, which
//! the history then shows starting at the last reported state).
//!
//! `CAPBOX_HEADS_KILLS` sets the number of kills (default 12 on the local
//! backend, 2 on the sandbox); `scripts/heads-kill.sh` runs 60.

mod heads_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use capbox::Store;
use capbox::shared::CapHash;
use heads_support::{command, counter, json_lines, ok};
use serde_json::Value;

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

fn kills(default: u32) -> u32 {
    std::env::var("CAPBOX_HEADS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts `capbox invoke c --times 100000`, kills it after a random delay
/// in `delay_ms`, and returns the JSON lines it printed (each one a
/// committed invocation).
fn run_and_kill(store: &std::path::Path, backend: &str, delay: Duration) -> Vec<Value> {
    let mut child = command(
        store,
        &[
            "invoke",
            "c",
            "--times",
            "100000",
            "--json",
            "--backend",
            backend,
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

fn kill_rounds(backend: &str, rounds: u32, delay_ms: (u64, u64)) {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    ok(
        &store_path,
        &["new", "--sample", "--head", "c", "--backend", "local"],
    );
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill seed {seed:#x}");
    let mut rng = Rng(seed);
    let store = Store::open(&store_path).unwrap();
    let (mut head, mut seq) = store.head_state("c").unwrap().unwrap();
    let (mut reported, mut unreported) = (0u64, 0u64);
    for round in 0..rounds {
        let delay = delay_ms.0 + rng.below(delay_ms.1 - delay_ms.0);
        let lines = run_and_kill(&store_path, backend, Duration::from_millis(delay));
        if let Some(last) = lines.last() {
            assert_eq!(last["committed"], true);
            head = CapHash::from_hex(last["instance"].as_str().unwrap()).unwrap();
            seq = last["seq"].as_u64().unwrap();
            reported += lines.len() as u64;
        }
        // The store verifies: every blob re-hashes, every head's graph is
        // complete, every history agrees with its head.
        let verify: Value =
            serde_json::from_str(&ok(&store_path, &["store", "verify", "--json"])).unwrap();
        assert_eq!(
            verify["ok"], true,
            "round {round} (delay {delay} ms): {verify}"
        );
        let (now, now_seq) = store.head_state("c").unwrap().unwrap();
        let history = store.history("c").unwrap();
        assert_eq!(history.len() as u64, now_seq, "round {round}");
        assert_eq!(history.last().unwrap().new, now, "round {round}");
        if (now, now_seq) != (head, seq) {
            // Killed after a commit, before its line was printed.
            assert_eq!(
                now_seq,
                seq + 1,
                "round {round}: the head ran ahead of the reports"
            );
            assert_eq!(history.last().unwrap().prev, Some(head), "round {round}");
            unreported += 1;
            (head, seq) = (now, now_seq);
        }
        assert!(
            store.get(&now).unwrap().is_some(),
            "round {round}: head blob missing"
        );
    }
    let invocations = store
        .history("c")
        .unwrap()
        .iter()
        .filter(|e| e.change.action == "invoke")
        .count() as u64;
    assert_eq!(invocations, reported + unreported);
    assert_eq!(
        counter(&store_path, "c"),
        invocations,
        "no committed increment lost"
    );
    eprintln!(
        "{rounds} kills on {backend}: {reported} invocations reported committed, \
         {unreported} committed but killed before the report"
    );
}

#[test]
fn sigkill_during_local_invocations_keeps_head_and_history_in_step() {
    kill_rounds("local", kills(12), (5, 250));
}

#[test]
fn sigkill_during_sandbox_invocations_keeps_head_and_history_in_step() {
    if !std::path::Path::new("/dev/kvm").exists()
        && std::env::var("CAPBOX_REQUIRE_SANDBOX").as_deref() != Ok("1")
    {
        eprintln!("!!! SKIPPED: no /dev/kvm");
        return;
    }
    kill_rounds("sandbox", kills(2), (2500, 6000));
}
