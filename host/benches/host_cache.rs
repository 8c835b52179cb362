//! The host's blob cache and the kernel's `fetch_blob` path behind it
//! (docs/kernel.md "Host memory"): the cache's own operations, and a
//! local kernel with a tiny guest budget invoking old states in turn, so
//! every invocation fetches its state back (instance and memory page)
//! from the host cache, or, with no cache at all, from the overflow store
//! on disk.

use std::hint::black_box;
use std::sync::Arc;

use capbox::blob_cache::BlobCache;
use capbox::shared::BlobBudget;
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{BackendChoice, Invocation, Kernel, SandboxConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_cache_ops(c: &mut Criterion) {
    let mut group = c.benchmark_group("blob_cache");
    let blob = Arc::new(vec![0u8; 4200]);
    let hash = |n: u32| {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&n.to_le_bytes());
        CapHash(h)
    };
    // A full cache of 1,024 blobs: each insert evicts one.
    let mut cache = BlobCache::new(usize::MAX, 1024);
    for n in 0..1024 {
        cache.insert(hash(n), blob.clone(), false);
    }
    let mut next = 1024u32;
    group.bench_function("insert_evicting", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            black_box(cache.insert(hash(next), blob.clone(), false))
        })
    });
    let mut probe = 0u32;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            probe = probe.wrapping_add(1);
            black_box(cache.get(&hash(next - (probe % 512))))
        })
    });
    group.finish();
}

/// 64 states of a sample instance, made on `kernel`.
fn states(kernel: &mut Kernel) -> Vec<CapHash> {
    let start = kernel.create_instance(&sample_image()).unwrap();
    let calls: Vec<Invocation> = (0..64)
        .map(|i| Invocation {
            instance: (i == 0).then_some(start),
            endpoint: Endpoint::Increment.index(),
            gas: 1000,
            ..Invocation::default()
        })
        .collect();
    kernel
        .invoke_batch(&calls)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().instance)
        .collect()
}

fn bench_refetch(c: &mut Criterion) {
    let mut group = c.benchmark_group("refetch_state");
    let config = SandboxConfig {
        blob_budget: Some(BlobBudget {
            max_bytes: 128 << 10,
            max_blobs: 32,
        }),
        ..SandboxConfig::default()
    };
    for (name, cache) in [("from_cache", 64usize << 20), ("from_overflow", 0)] {
        let mut kernel = Kernel::with_config(BackendChoice::Local, config.clone()).unwrap();
        kernel.set_host_cache(cache, if cache == 0 { 0 } else { 65_536 });
        let states = states(&mut kernel);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                // Read needs the instance and its memory page and commits
                // nothing; the guest evicted them since this state last ran
                // (32 blobs, 64 states).
                i = (i + 1) % states.len();
                let o = kernel
                    .invoke(&states[i], Endpoint::Read.index(), [0; 4], 1000)
                    .unwrap();
                black_box(o)
            })
        });
        let stats = kernel.stats().unwrap();
        eprintln!(
            "{name}: guest fetched {} (re-fetched {}), host {:?}",
            stats.fetched,
            stats.refetched,
            kernel.host_cache_stats()
        );
    }
    group.finish();
}

criterion_group!(benches, bench_cache_ops, bench_refetch);
criterion_main!(benches);
