//! `capbox soak`: state-changing invocations for a given time in one
//! [`Pool`] (`--jobs` kernels, `--instances` independent counters), with
//! the kernels' directory, arena, eviction and spill counts (summed over
//! the pool's kernels) and the host's RSS every interval
//! (scripts/soak.sh runs it on the sandbox). Also the pool benchmark of
//! `capbox bench --jobs`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use capbox::shared::BlobBudget;
use capbox::shared::abi::StatsMsg;
use capbox::shared::cap::Image;
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{BackendChoice, Invocation, MAX_JOBS, Pool, PoolConfig, SandboxConfig};
use clap::Args;

use crate::cli::BackendArg;

/// Arguments of `capbox soak`.
#[derive(Args)]
#[command(
    after_help = "Each line: seconds, invocations done, the guest's blobs and their KiB, \
    page-arena KiB in use, blobs evicted, spilled and re-fetched so far, the host's RSS; \
    every count but the RSS is summed over the pool's kernels.\n\n\
    Examples:\n  \
    capbox soak --seconds 1800 --interval 60\n  \
    capbox soak --jobs 2 --instances 8 --seconds 600\n  \
    capbox soak --backend local --jobs 1 --count 20000 --budget-kib 128 --budget-blobs 32"
)]
pub struct SoakArgs {
    /// Which kernel to soak.
    #[arg(long, value_enum, default_value_t = BackendArg::Sandbox)]
    backend: BackendArg,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop after this many invocations (whole rounds: every instance's
    /// `--per-call` chain), whichever of this and `--seconds` comes first.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds between two reports.
    #[arg(long, default_value_t = 10)]
    interval: u64,
    /// Increments chained in one kernel call.
    #[arg(long, default_value_t = 100)]
    per_call: u64,
    /// Kernels in the pool, each on its own thread [default: the number
    /// of cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Independent counters (each a chain per round, spread over the
    /// kernels) [default: --jobs].
    #[arg(long)]
    instances: Option<u64>,
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

/// Most instances a soak or pool benchmark runs.
const MAX_INSTANCES: u64 = 100_000;

/// The sample program with `k` more heap pages (zeroed and unused), so
/// each of a run's instances has its own hash and they are independent.
fn tagged_image(k: u64) -> anyhow::Result<Image> {
    let mut image = sample_image();
    image.heap_pages = u32::try_from(k)
        .ok()
        .and_then(|k| image.heap_pages.checked_add(k))
        .context("too many instances")?;
    Ok(image)
}

/// A pool of `jobs` kernels (`None`: one per core) on `backend`.
fn start_pool(
    backend: BackendArg,
    jobs: Option<usize>,
    sandbox: SandboxConfig,
    host_cache: Option<(usize, usize)>,
) -> anyhow::Result<Pool> {
    // 0 asks the pool for one kernel per core.
    let jobs = match jobs {
        None => 0,
        Some(n @ 1..=MAX_JOBS) => n,
        Some(n) => bail!("--jobs must be between 1 and {MAX_JOBS} (got {n})"),
    };
    Ok(Pool::new(PoolConfig {
        jobs,
        backend: BackendChoice::from(backend),
        sandbox,
        host_cache,
        ..PoolConfig::default()
    })?)
}

/// `instances` fresh, distinct counters in `pool`.
fn counters(pool: &Pool, instances: u64) -> anyhow::Result<Vec<CapHash>> {
    if instances == 0 || instances > MAX_INSTANCES {
        bail!("--instances must be between 1 and {MAX_INSTANCES}");
    }
    (0..instances)
        .map(|k| Ok(pool.create_instance(&tagged_image(k)?)?))
        .collect()
}

/// One round: a chain of `per_call` calls of `endpoint` on each state.
fn round(states: &[CapHash], endpoint: Endpoint, per_call: u64) -> Vec<Vec<Invocation>> {
    states
        .iter()
        .map(|state| {
            (0..per_call)
                .map(|i| Invocation {
                    instance: (i == 0).then_some(*state),
                    endpoint: endpoint.index(),
                    gas: 1000,
                    ..Invocation::default()
                })
                .collect()
        })
        .collect()
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
    let host_cache = args.host_cache_kib.map(|kib| {
        let bytes = kib.saturating_mul(1024);
        (bytes, capbox::blob_cache::default_blobs_for(bytes))
    });
    let pool = start_pool(args.backend, args.jobs, config, host_cache)?;
    let instances = args.instances.unwrap_or(pool.jobs() as u64);
    let mut states = counters(&pool, instances)?;
    println!(
        "{} backend, {} kernel(s), {instances} instance(s), {} increments per call",
        pool.backend(),
        pool.jobs(),
        args.per_call
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut next_report = start;
    let mut done = 0u64;
    let mut rounds = 0u64;
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
            report(&pool, start, done)?;
            next_report += Duration::from_secs(args.interval);
        }
        if now >= end || args.count.is_some_and(|count| done >= count) {
            break;
        }
        let chains = round(&states, Endpoint::Increment, args.per_call);
        for (k, chain) in pool.invoke_chains(chains).into_iter().enumerate() {
            let chain = chain.with_context(|| format!("instance {k}'s chain failed"))?;
            for (i, result) in chain.into_iter().enumerate() {
                let o =
                    result.with_context(|| format!("an increment of instance {k} was refused"))?;
                let want = rounds * args.per_call + i as u64 + 1;
                if (o.exit, o.r7) != (ExitReason::Halt, want) {
                    bail!(
                        "instance {k}: increment {want} ended {:?} with counter {}",
                        o.exit,
                        o.r7
                    );
                }
                done += 1;
                states[k] = o.instance;
            }
        }
        rounds += 1;
    }
    report(&pool, start, done)?;
    Ok(ExitCode::SUCCESS)
}

/// One report line: the pool's kernels' statistics summed.
fn report(pool: &Pool, start: Instant, done: u64) -> anyhow::Result<()> {
    let mut s = StatsMsg::default();
    for stats in pool.stats() {
        let k = stats?;
        s.blobs += k.blobs;
        s.blob_bytes += k.blob_bytes;
        s.arena_used_bytes += k.arena_used_bytes;
        s.evictions += k.evictions;
        s.spilled_blobs += k.spilled_blobs;
        s.refetched += k.refetched;
    }
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

/// `capbox bench --jobs J`: `calls` kernel calls of `endpoint` (each a
/// chain of `per_call`) spread over `instances` independent instances
/// (default: J) in rounds of one call per instance, after one untimed
/// warm-up round (the first call of an instance loads its pages); prints
/// invocations per second.
pub fn pool_bench(
    backend: BackendArg,
    jobs: usize,
    instances: Option<u64>,
    endpoint: Endpoint,
    calls: u64,
    per_call: u64,
) -> anyhow::Result<ExitCode> {
    let pool = start_pool(backend, Some(jobs), SandboxConfig::default(), None)?;
    let instances = instances.unwrap_or(jobs as u64);
    let mut states = counters(&pool, instances)?;
    let run_round = |states: &mut Vec<CapHash>| -> anyhow::Result<()> {
        let chains = round(states, endpoint, per_call);
        for (k, chain) in pool.invoke_chains(chains).into_iter().enumerate() {
            for result in chain? {
                states[k] = result?.instance;
            }
        }
        Ok(())
    };
    run_round(&mut states)?;
    let rounds = calls.div_ceil(instances);
    let start = Instant::now();
    for _ in 0..rounds {
        run_round(&mut states)?;
    }
    let elapsed = start.elapsed();
    let invocations = rounds * instances * per_call;
    println!(
        "{} backend, {} kernel(s): {invocations} × {endpoint:?} ({} calls of {per_call} over \
         {instances} instances) in {elapsed:?}: {:.0} invocations/s",
        pool.backend(),
        pool.jobs(),
        rounds * instances,
        invocations as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
