//! `capbox conformance`: runs a directory of PVM test vectors
//! (`capbox::conformance`), streaming results as it goes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use capbox::conformance::{self, Mismatch, RunOptions, VectorResult};
use clap::Args;
use serde_json::json;

/// Runs per vector for `--time` (the median is reported).
const TIMING_RUNS: u32 = 5;
/// Without a terminal on stderr, a progress line every this many vectors
/// (only for directories at least this large).
const PROGRESS_EVERY: usize = 100;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  capbox conformance ../shared/pvm-vectors/programs          # the w3f PVM vectors (jamtestvectors, PVM v0.4)
  capbox conformance --json DIR | jq 'select(.result == \"fail\")'
  capbox conformance --time DIR                             # per-vector interpretation time (median of 5 runs)

A vector that cannot be read (truncated JSON, a missing field, an unknown
status) counts as a failure with its reason; the run goes on. Exit status:
0 all passed, 1 any failed, 2 the directory cannot be read or has no .json.")]
pub struct ConformanceArgs {
    /// Directory of PVM test vectors (*.json).
    dir: PathBuf,
    /// One JSON object per vector and line on stdout (file, name, result,
    /// error, mismatches with expected and got, time_ns), then a summary
    /// object; the `N passed, M failed` line goes to stderr.
    #[arg(long)]
    json: bool,
    /// Time each vector's interpretation alone (no start-up, JSON parsing
    /// or decoding; median of 5 runs); printed per vector and in total.
    #[arg(long)]
    time: bool,
    /// Run each program compiled to x86-64 machine code instead of
    /// interpreted (x86-64 Linux only): the same results are expected.
    #[arg(long)]
    native: bool,
}

/// `capbox conformance DIR [--json] [--time] [--native]`.
pub fn run_conformance(args: &ConformanceArgs) -> anyhow::Result<ExitCode> {
    let files = conformance::list_vectors(&args.dir)?;
    if args.native && !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        anyhow::bail!("--native: machine code is for x86-64 Linux only");
    }
    let options = RunOptions {
        timing_runs: if args.time { TIMING_RUNS } else { 0 },
        native: args.native,
        ..RunOptions::default()
    };
    let total = files.len();
    let live = std::io::stderr().is_terminal();
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut total_time = Duration::ZERO;
    let mut stdout = std::io::stdout().lock();
    for (i, file) in files.iter().enumerate() {
        if live {
            eprint!("\r\x1b[K[{}/{total}] {}", i + 1, file.display());
        }
        let result = conformance::run_file(file, &options);
        if live {
            eprint!("\r\x1b[K");
        }
        if result.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
        total_time += result.time.unwrap_or_default();
        if args.json {
            writeln!(stdout, "{}", json_line(&result))?;
        } else {
            for line in conformance::failure_lines(&result) {
                writeln!(stdout, "{line}")?;
            }
            if let Some(time) = result.time {
                writeln!(stdout, "TIME {}: {}", result.name, micros(time))?;
            }
        }
        if !live && total >= PROGRESS_EVERY && (i + 1) % PROGRESS_EVERY == 0 {
            eprintln!("conformance: {}/{total} vectors", i + 1);
        }
    }
    let summary = format!("{passed} passed, {failed} failed");
    if args.json {
        let mut object = json!({"passed": passed, "failed": failed});
        if args.time {
            object["total_time_ns"] = json!(total_time.as_nanos() as u64);
        }
        writeln!(stdout, "{}", json!({ "summary": object }))?;
        eprintln!("{summary}");
    } else {
        if args.time {
            writeln!(
                stdout,
                "total interpretation time: {} (median of {TIMING_RUNS} runs per vector)",
                micros(total_time)
            )?;
        }
        writeln!(stdout, "{summary}")?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn micros(time: Duration) -> String {
    format!("{:.3} µs", time.as_secs_f64() * 1e6)
}

fn json_line(result: &VectorResult) -> serde_json::Value {
    let mismatch = |m: &Mismatch| json!({"field": m.field, "expected": m.expected, "got": m.got});
    let mut object = json!({
        "file": result.file.display().to_string(),
        "name": result.name,
        "result": if result.passed() { "pass" } else { "fail" },
        "error": result.error.as_ref().map(ToString::to_string),
        "mismatches": result.mismatches.iter().map(mismatch).collect::<Vec<_>>(),
    });
    if let Some(time) = result.time {
        object["time_ns"] = json!(time.as_nanos() as u64);
    }
    object
}
