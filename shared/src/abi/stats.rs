//! The `stats`, `sweep`, `set_budget` and `bench` messages: the kernel's
//! usage figures, its blob budget and the in-guest benchmarks.

use alloc::string::String;
use alloc::vec::Vec;

use super::messages::{AbiError, RemoteError, add_error, build_message, read_error, root};
use super::wire;
use crate::directory::BlobBudget;

/// Directory and arena usage reported by `stats` and `sweep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsMsg {
    /// Immutable blobs held.
    pub blobs: u64,
    /// Working (instance) entries held.
    pub instances: u64,
    /// Decoded programs cached.
    pub programs_cached: u64,
    /// Bytes in use in the page arena.
    pub arena_used_bytes: u64,
    /// The page arena's size (0: unbounded, the process heap).
    pub arena_capacity_bytes: u64,
    /// The largest `arena_used_bytes` so far.
    pub arena_peak_bytes: u64,
    /// Bytes of Data pages on the general heap because the arena was full.
    pub arena_spill_bytes: u64,
    /// Entries removed by the last sweep.
    pub swept: u64,
    /// Bytes of blobs held (`Cap::approx_bytes` summed).
    pub blob_bytes: u64,
    /// The blob budget: most bytes of blobs.
    pub budget_bytes: u64,
    /// The blob budget: most blobs.
    pub budget_blobs: u64,
    /// Blobs evicted so far.
    pub evictions: u64,
    /// Bytes of blobs evicted so far.
    pub evicted_bytes: u64,
    /// Blobs handed to the host before eviction (`spill_blobs`).
    pub spilled_blobs: u64,
    /// Encoded bytes of those.
    pub spilled_bytes: u64,
    /// Blobs fetched from the host (`fetch_blob`).
    pub fetched: u64,
    /// Fetched blobs that had been evicted (recent evictions only).
    pub refetched: u64,
    /// Cached programs compiled to machine code (`pvm::jit`).
    pub programs_native: u64,
}

/// The result of one in-guest benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchReplyMsg {
    /// Benchmark name.
    pub name: String,
    /// Iterations run.
    pub iters: u64,
    /// rdtsc cycles for all iterations.
    pub cycles: u64,
}

/// `stats` / `sweep` reply.
pub fn encode_stats_reply(stats: &StatsMsg) -> Vec<u8> {
    build_message(|fbb| {
        let reply = wire::StatsReply::create(
            fbb,
            &wire::StatsReplyArgs {
                error: None,
                blobs: stats.blobs,
                instances: stats.instances,
                programs_cached: stats.programs_cached,
                arena_used_bytes: stats.arena_used_bytes,
                arena_capacity_bytes: stats.arena_capacity_bytes,
                swept: stats.swept,
                arena_peak_bytes: stats.arena_peak_bytes,
                arena_spill_bytes: stats.arena_spill_bytes,
                blob_bytes: stats.blob_bytes,
                budget_bytes: stats.budget_bytes,
                budget_blobs: stats.budget_blobs,
                evictions: stats.evictions,
                evicted_bytes: stats.evicted_bytes,
                spilled_blobs: stats.spilled_blobs,
                spilled_bytes: stats.spilled_bytes,
                fetched: stats.fetched,
                refetched: stats.refetched,
                programs_native: stats.programs_native,
            },
        );
        fbb.finish(reply, None);
    })
}

/// A `stats`-shaped reply carrying only an error (a refused `set_budget`).
pub fn encode_stats_error(err: &RemoteError) -> Vec<u8> {
    build_message(|fbb| {
        let error = add_error(fbb, err);
        let reply = wire::StatsReply::create(
            fbb,
            &wire::StatsReplyArgs {
                error: Some(error),
                ..Default::default()
            },
        );
        fbb.finish(reply, None);
    })
}

/// `set_budget` request.
pub fn encode_set_budget_request(budget: BlobBudget) -> Vec<u8> {
    build_message(|fbb| {
        let req = wire::SetBudgetRequest::create(
            fbb,
            &wire::SetBudgetRequestArgs {
                max_bytes: budget.max_bytes,
                max_blobs: budget.max_blobs,
            },
        );
        fbb.finish(req, None);
    })
}

/// Reads a `set_budget` request.
pub fn decode_set_budget_request(bytes: &[u8]) -> Result<BlobBudget, AbiError> {
    let req = root::<wire::SetBudgetRequest>("SetBudgetRequest", bytes)?;
    Ok(BlobBudget {
        max_bytes: req.max_bytes(),
        max_blobs: req.max_blobs(),
    })
}

/// Reads a `stats` / `sweep` reply.
pub fn decode_stats_reply(bytes: &[u8]) -> Result<Result<StatsMsg, RemoteError>, AbiError> {
    const NAME: &str = "StatsReply";
    let reply = root::<wire::StatsReply>(NAME, bytes)?;
    if let Some(err) = reply.error() {
        return Ok(Err(read_error(NAME, err)?));
    }
    Ok(Ok(StatsMsg {
        blobs: reply.blobs(),
        instances: reply.instances(),
        programs_cached: reply.programs_cached(),
        arena_used_bytes: reply.arena_used_bytes(),
        arena_capacity_bytes: reply.arena_capacity_bytes(),
        arena_peak_bytes: reply.arena_peak_bytes(),
        arena_spill_bytes: reply.arena_spill_bytes(),
        swept: reply.swept(),
        blob_bytes: reply.blob_bytes(),
        budget_bytes: reply.budget_bytes(),
        budget_blobs: reply.budget_blobs(),
        evictions: reply.evictions(),
        evicted_bytes: reply.evicted_bytes(),
        spilled_blobs: reply.spilled_blobs(),
        spilled_bytes: reply.spilled_bytes(),
        fetched: reply.fetched(),
        refetched: reply.refetched(),
        programs_native: reply.programs_native(),
    }))
}

/// `bench` request.
pub fn encode_bench_request(name: &str, iters: u64) -> Vec<u8> {
    build_message(|fbb| {
        let name = fbb.create_string(name);
        let req = wire::BenchRequest::create(
            fbb,
            &wire::BenchRequestArgs {
                name: Some(name),
                iters,
            },
        );
        fbb.finish(req, None);
    })
}

/// Reads a `bench` request: (name, iterations).
pub fn decode_bench_request(bytes: &[u8]) -> Result<(&str, u64), AbiError> {
    let req = root::<wire::BenchRequest>("BenchRequest", bytes)?;
    Ok((req.name().unwrap_or(""), req.iters()))
}

/// `bench` reply.
pub fn encode_bench_reply(result: Result<&BenchReplyMsg, &RemoteError>) -> Vec<u8> {
    build_message(|fbb| {
        let args = match result {
            Ok(r) => wire::BenchReplyArgs {
                error: None,
                name: Some(fbb.create_string(&r.name)),
                iters: r.iters,
                cycles: r.cycles,
            },
            Err(err) => wire::BenchReplyArgs {
                error: Some(add_error(fbb, err)),
                ..Default::default()
            },
        };
        let reply = wire::BenchReply::create(fbb, &args);
        fbb.finish(reply, None);
    })
}

/// Reads a `bench` reply.
pub fn decode_bench_reply(bytes: &[u8]) -> Result<Result<BenchReplyMsg, RemoteError>, AbiError> {
    const NAME: &str = "BenchReply";
    let reply = root::<wire::BenchReply>(NAME, bytes)?;
    if let Some(err) = reply.error() {
        return Ok(Err(read_error(NAME, err)?));
    }
    Ok(Ok(BenchReplyMsg {
        name: reply.name().unwrap_or("").into(),
        iters: reply.iters(),
        cycles: reply.cycles(),
    }))
}
