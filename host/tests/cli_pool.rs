//! `capbox soak --jobs` and `capbox bench --jobs` run in a pool of
//! kernels (docs/kernel.md "Pool"), and refuse what they cannot honour.

use std::process::Command;

fn capbox(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .output()
        .expect("the capbox binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 3 counters over 2 local kernels, 2 rounds of 100 increments each: the
/// last line counts 600 invocations (each checked by the soak itself).
#[test]
fn soak_runs_in_a_pool_of_2() {
    let (code, out, err) = capbox(&[
        "soak",
        "--backend",
        "local",
        "--jobs",
        "2",
        "--instances",
        "3",
        "--count",
        "600",
        "--interval",
        "3600",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("local backend, 2 kernel(s), 3 instance(s)"),
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    let invokes: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(invokes.get(1), Some(&"600"), "{out}");
}

#[test]
fn bench_jobs_reports_invocations_per_second() {
    let (code, out, err) = capbox(&[
        "bench",
        "--backend",
        "local",
        "--jobs",
        "2",
        "--instances",
        "4",
        "--calls",
        "40",
        "--call",
        "invoke-increment",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("local backend, 2 kernel(s): 40 × Increment"),
        "{out}"
    );
    assert!(out.contains("invocations/s"), "{out}");
}

#[test]
fn bad_pool_arguments_are_clear_errors() {
    let local = ["--backend", "local"];
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "bench",
                "--jobs",
                "0",
                "--calls",
                "1",
                "--call",
                "invoke-empty",
            ],
            "--jobs must be between 1 and",
        ),
        (
            &["bench", "--jobs", "2", "--calls", "1", "--call", "ping"],
            "--jobs runs invoke-empty or invoke-increment",
        ),
        (
            &["bench", "--jobs", "2", "--call", "invoke-empty"],
            "--jobs needs --calls",
        ),
        (
            &[
                "bench",
                "--jobs",
                "2",
                "--instances",
                "0",
                "--calls",
                "1",
                "--call",
                "invoke-empty",
            ],
            "--instances must be between 1 and",
        ),
        (
            &["soak", "--jobs", "100000", "--count", "1"],
            "--jobs must be between 1 and",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec![args[0]];
        all.extend(local);
        all.extend(&args[1..]);
        let (code, _, err) = capbox(&all);
        assert_eq!(code, Some(2), "{all:?}: {err}");
        assert!(err.contains(message), "{all:?}: {err}");
    }
}
