//! `capbox demo` on a shared store: the counter demo resumes from its head
//! and moves it by compare-and-swap, so concurrent demos never lose a
//! saved count.

mod heads_support;

use std::process::Stdio;

use heads_support::{command, counter, log};

const PROCESSES: usize = 4;
const ROUNDS: usize = 3;
/// Each demo run adds 1 + 1 + 40 to the counter it resumed.
const PER_RUN: u64 = 42;

#[test]
fn concurrent_demos_lose_no_saved_count() {
    let store = std::env::temp_dir().join(format!("capbox-demo-cas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let (mut saved, mut refused) = (0u64, 0u64);
    for _ in 0..ROUNDS {
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                command(&store, &["demo", "--backend", "local"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(out.status.success(), "{stdout}\n{stderr}");
            let did_save = stdout.contains("saved as head `demo` in");
            let lost_race = stderr.contains("moved while this demo ran");
            assert!(did_save != lost_race, "{stdout}\n{stderr}");
            saved += u64::from(did_save);
            refused += u64::from(lost_race);
        }
    }
    assert_eq!(saved + refused, (PROCESSES * ROUNDS) as u64);
    // Every saved run added its 42 to the count it resumed: none lost.
    assert_eq!(counter(&store, "demo"), PER_RUN * saved);
    let history = log(&store, "demo");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len() as u64, saved);
    for pair in entries.windows(2) {
        assert_eq!(pair[1]["prev"], pair[0]["new"], "{history}");
    }
    let _ = std::fs::remove_dir_all(&store);
}
