//! `capbox soak`: state-changing invocations for a given time, with the
//! kernel's directory, arena, eviction and spill counts and the host's RSS
//! every interval (scripts/soak.sh runs it on the sandbox).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use capbox::shared::BlobBudget;
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{Invocation, Kernel, SandboxConfig};
use clap::Args;

use crate::cli::BackendArg;

/// Arguments of `capbox soak`.
#[derive(Args)]
#[command(
    after_help = "Each line: seconds, invocations done, the guest's blobs and their KiB, \
    page-arena KiB in use, blobs evicted, spilled and re-fetched so far, the host's RSS.\n\n\
    Examples:\n  \
    capbox soak --seconds 1800 --interval 60\n  \
    capbox soak --backend local --count 20000 --budget-kib 128 --budget-blobs 32"
)]
pub struct SoakArgs {
    /// Which kernel to soak.
    #[arg(long, value_enum, default_value_t = BackendArg::Sandbox)]
    backend: BackendArg,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop after this many invocations (whole kernel calls of
    /// `--per-call`), whichever of this and `--seconds` comes first.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds between two reports.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// Increments chained in one kernel call.
    #[arg(long, default_value_t = 100)]
    per_call: u64,
    /// The blob budget's bytes, in KiB [default: the kernel's default, a
    /// share of the page arena].
    #[arg(long)]
    budget_kib: Option<u64>,
    /// The blob budget's count [default: one blob per 2 KiB of bytes].
    #[arg(long)]
    budget_blobs: Option<u64>,
    /// The host's blob cache, in KiB [default: `CAPBOX_HOST_CACHE_MIB`,
    /// else 64 MiB]; blobs beyond it go to the overflow store on disk.
    #[arg(long)]
    host_cache_kib: Option<usize>,
}

/// The process's resident set, in KiB (Linux; 0 elsewhere).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the soak; one line per interval.
pub fn soak(args: SoakArgs) -> anyhow::Result<ExitCode> {
    if args.per_call == 0 || args.interval == 0 {
        bail!("--per-call and --interval must be at least 1");
    }
    let mut config = SandboxConfig::default();
    if args.budget_kib.is_some() || args.budget_blobs.is_some() {
        let max_bytes = args.budget_kib.map_or(u64::MAX, |k| k.saturating_mul(1024));
        config.blob_budget = Some(BlobBudget {
            max_bytes,
            max_blobs: args
                .budget_blobs
                .unwrap_or(max_bytes.checked_div(2048).unwrap_or(u64::MAX)),
        });
    }
    let mut kernel = Kernel::with_config(args.backend.into(), config)?;
    if let Some(kib) = args.host_cache_kib {
        let bytes = kib.saturating_mul(1024);
        kernel.set_host_cache(bytes, capbox::blob_cache::default_blobs_for(bytes));
    }
    let mut state = kernel.create_instance(&sample_image())?;
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut next_report = start;
    let mut done = 0u64;
    println!(
        "{:>7} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "secs",
        "invokes",
        "blobs",
        "blob_KiB",
        "arena_KiB",
        "evicted",
        "spilled",
        "refetch",
        "rss_KiB"
    );
    loop {
        let now = Instant::now();
        if now >= next_report {
            report(&mut kernel, start, done)?;
            next_report += Duration::from_secs(args.interval);
        }
        if now >= end || args.count.is_some_and(|count| done >= count) {
            break;
        }
        let calls: Vec<Invocation> = (0..args.per_call)
            .map(|i| Invocation {
                instance: (i == 0).then_some(state),
                endpoint: Endpoint::Increment.index(),
                gas: 1000,
                ..Invocation::default()
            })
            .collect();
        for result in kernel.invoke_batch(&calls)? {
            let o = result.context("an increment was refused")?;
            done += 1;
            if (o.exit, o.r7) != (ExitReason::Halt, done) {
                bail!("increment {done} ended {:?} with counter {}", o.exit, o.r7);
            }
            state = o.instance;
        }
    }
    report(&mut kernel, start, done)?;
    Ok(ExitCode::SUCCESS)
}

fn report(kernel: &mut Kernel, start: Instant, done: u64) -> anyhow::Result<()> {
    let s = kernel.stats()?;
    println!(
        "{:>7.0} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        start.elapsed().as_secs_f64(),
        done,
        s.blobs,
        s.blob_bytes / 1024,
        s.arena_used_bytes / 1024,
        s.evictions,
        s.spilled_blobs,
        s.refetched,
        rss_kib()
    );
    Ok(())
}
