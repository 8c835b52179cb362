//! `capbox bench` refuses arguments it cannot honour with a clear error
//! instead of aborting or printing meaningless numbers.

use std::process::Command;

fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .arg("bench")
        .args(["--backend", "local"])
        .args(args)
        .output()
        .expect("the capbox binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_bench_arguments_are_clear_errors() {
    // Once an allocation of 343 GB aborted the process.
    let (code, _, err) = bench(&[
        "--calls",
        "3",
        "--call",
        "invoke-empty",
        "--per-call",
        "4294967295",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--per-call must be between 1 and"), "{err}");
    let (code, _, err) = bench(&["--calls", "1", "--call", "invoke-empty", "--per-call", "0"]);
    assert_eq!(code, Some(2), "{err}");
    // Once this exited 0 printing nothing.
    let (code, _, err) = bench(&["--guest", "--only", "nosuch"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no benchmark \"nosuch\"; have: noop"), "{err}");
    // Zero iterations: said so, no per-iteration number.
    let (code, out, _) = bench(&["--guest", "--only", "noop", "--iters", "0"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("noop: 0 iterations (set-up only"), "{out}");
    assert!(!out.contains("cycles/iter"), "{out}");
}

/// Without `--iters` each micro-benchmark gets as many iterations as fit
/// its time target (so the sandbox on an emulating host takes seconds, not
/// minutes), and says so.
#[test]
fn iterations_are_chosen_by_time_without_iters() {
    let (code, out, err) = bench(&["--guest", "--only", "hash_page"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("iterations chosen per benchmark"), "{out}");
    assert!(
        out.contains("hash_page:") && out.contains("cycles/iter"),
        "{out}"
    );
}
