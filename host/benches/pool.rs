//! Pool throughput: invocations per second through a [`Pool`] of 1 and
//! 2 kernels on independent instances (docs/kernel.md "Pool").
//!
//! One iteration is one `invoke_each` round: one invocation on each of
//! the instances, fanned out over the workers. Every round starts from
//! the same states, so every invocation commits the same new state (the
//! directories do not grow).
//!
//! * `pool/local_increment/{1,2}`: 64 instances, the sample's `Increment`
//!   on the local backend.
//! * `pool/sandbox_empty/{1,2}`: 8 instances, the sample's `Empty` on the
//!   sandbox (one ~7 ms guest call each on this nested KVM; skipped, with
//!   a message, without a hypervisor).

use std::hint::black_box;
use std::time::Duration;

use capbox::shared::hash::CapHash;
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{BackendChoice, Invocation, Pool, PoolConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A pool of `jobs` kernels with `instances` distinct fresh instances (the
/// sample with k more heap pages), or `None` when the backend cannot start.
fn pool_with(backend: BackendChoice, jobs: usize, instances: u32) -> Option<(Pool, Vec<CapHash>)> {
    let pool = match Pool::new(PoolConfig {
        jobs,
        backend,
        ..PoolConfig::default()
    }) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("!!! SKIPPED pool benchmark on {backend:?}: {e}");
            return None;
        }
    };
    let states = (0..instances)
        .map(|k| {
            let mut image = sample_image();
            image.heap_pages += k;
            pool.create_instance(&image)
                .expect("the instance is created")
        })
        .collect();
    Some((pool, states))
}

fn round(pool: &Pool, states: &[CapHash], endpoint: Endpoint) {
    let calls = states
        .iter()
        .map(|s| Invocation {
            instance: Some(*s),
            endpoint: endpoint.index(),
            gas: 1000,
            ..Invocation::default()
        })
        .collect();
    for result in pool.invoke_each(calls) {
        let o = result.expect("the invocation runs");
        assert_eq!(o.exit, ExitReason::Halt);
        black_box(o);
    }
}

fn bench_pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    for jobs in [1, 2] {
        if let Some((pool, states)) = pool_with(BackendChoice::Local, jobs, 64) {
            round(&pool, &states, Endpoint::Increment);
            group.throughput(Throughput::Elements(states.len() as u64));
            group.bench_function(format!("local_increment/{jobs}"), |b| {
                b.iter(|| round(&pool, &states, Endpoint::Increment))
            });
        }
    }
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for jobs in [1, 2] {
        if let Some((pool, states)) = pool_with(BackendChoice::Sandbox, jobs, 8) {
            // The first call of an instance loads its pages: not measured.
            round(&pool, &states, Endpoint::Empty);
            group.throughput(Throughput::Elements(states.len() as u64));
            group.bench_function(format!("sandbox_empty/{jobs}"), |b| {
                b.iter(|| round(&pool, &states, Endpoint::Empty))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
