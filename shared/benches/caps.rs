//! Cap and CacheDirectory micro-benchmarks (`cargo bench -p capbox-shared --bench caps`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capbox_shared::{CNode, CacheDirectory, Cap, CapHash, CapRef, Data, PAGE_SIZE, TypeCap};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn type_cap(n: u64) -> Cap {
    let mut chain = [0u8; 32];
    chain[..8].copy_from_slice(&n.to_le_bytes());
    Cap::Type(TypeCap {
        image_hash_chain: CapHash::from_bytes(chain),
    })
}

fn put_cap(c: &mut Criterion) {
    let dir = CacheDirectory::new();
    let existing = type_cap(0);
    dir.put_cap(&existing).unwrap();
    c.bench_function("put_cap/type_existing", |b| {
        b.iter(|| dir.put_cap(black_box(&existing)).unwrap())
    });
    let mut n = 1;
    c.bench_function("put_cap/type_new", |b| {
        b.iter(|| {
            n += 1;
            dir.put_cap(&type_cap(n)).unwrap()
        })
    });
    let small_data = Cap::Data(Data::from_bytes(b"a small data cap").unwrap());
    c.bench_function("put_cap/data_16_bytes_existing", |b| {
        b.iter(|| dir.put_cap(black_box(&small_data)).unwrap())
    });
}

fn promote(c: &mut Criterion) {
    let dir = CacheDirectory::new();
    let hash = dir.put_cap(&type_cap(1)).unwrap();
    // Steady state: promote in rounds of 1000, then drop and sweep (not
    // timed), so the instances map has reached its working capacity.
    c.bench_function("promote_blob_to_instance", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut held: Vec<CapRef> = Vec::with_capacity(1000);
            let mut left = iters;
            while left > 0 {
                let round = left.min(1000);
                let start = Instant::now();
                for _ in 0..round {
                    held.push(dir.promote_blob_to_instance(black_box(&hash)).unwrap());
                }
                elapsed += start.elapsed();
                held.clear();
                dir.sweep_instances();
                left -= round;
            }
            elapsed
        })
    });
}

fn make_mut_and_set(c: &mut Criterion) {
    let dir = CacheDirectory::new();
    let mut cnode = CNode::new();
    for slot in 0..8 {
        cnode
            .set(slot, type_cap(slot.into()).hash().unwrap().into())
            .unwrap();
    }
    let working = dir.put_instance(Cap::CNode(cnode));
    let target = type_cap(99).hash().unwrap();
    c.bench_function("make_mut+set_instance/cnode_8_slots", |b| {
        b.iter(|| {
            let mut arc = dir.get_instance(&working).unwrap();
            if let Cap::CNode(node) = Arc::make_mut(&mut arc) {
                node.set(3, target.into()).unwrap();
            }
            dir.set_instance(&working, arc).unwrap();
        })
    });
}

fn sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    let dir = CacheDirectory::new();
    let hash = dir.put_cap(&type_cap(1)).unwrap();
    group.bench_function("100k_dead_entries", |b| {
        b.iter_batched(
            || {
                for _ in 0..100_000 {
                    drop(dir.promote_blob_to_instance(&hash).unwrap());
                }
            },
            |()| assert_eq!(dir.sweep_instances(), 100_000),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn data_rehash(c: &mut Criterion) {
    const LEN: usize = 64 << 20;
    let mut group = c.benchmark_group("data_64MiB");
    group.sample_size(10);
    let bytes: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8 | 1).collect();
    // Reference floor: plain BLAKE3 over the same bytes, page by page.
    group.bench_function("blake3_pages_reference", |b| {
        b.iter(|| {
            bytes
                .chunks(PAGE_SIZE)
                .map(|page| blake3::hash(page).as_bytes()[0])
                .fold(0u8, |a, x| a ^ x)
        })
    });
    let mut data = Data::from_bytes(&bytes).unwrap();
    drop(bytes);
    data.hash();
    group.bench_function("full_hash", |b| b.iter(|| data.hash_uncached()));
    // What `Arc::make_mut` on a shared 64 MiB memory costs (page handles and
    // the hash cache are copied, page bytes are not).
    group.bench_function("clone", |b| b.iter(|| black_box(data.clone())));
    let mut round = 0u64;
    group.bench_function("rehash_after_1_page_write", |b| {
        b.iter(|| {
            round += 1;
            let page = round % (LEN / PAGE_SIZE) as u64;
            data.write(page * PAGE_SIZE as u64, &round.to_le_bytes())
                .unwrap();
            data.hash()
        })
    });
    group.finish();
}

/// Copy-on-write write into a 64 MiB Data that a second owner (the
/// directory's blob) also holds: clone the `Arc`, `make_mut`, write 8 bytes,
/// hash. Must cost O(pages touched · log n), not O(pages).
fn data_write_shared(c: &mut Criterion) {
    const LEN: usize = 64 << 20;
    const PAGES: u64 = (LEN / PAGE_SIZE) as u64;
    let bytes: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8 | 1).collect();
    let blob = Arc::new(Cap::Data(Data::from_bytes(&bytes).unwrap()));
    drop(bytes);
    blob.hash().unwrap();
    let mut round = 0u64;
    c.bench_function("data_write_8b_64mib", |b| {
        b.iter(|| {
            round += 1;
            let offset = (round * 7919 % PAGES) * PAGE_SIZE as u64 + round % 4000;
            let mut working = blob.clone();
            let Cap::Data(data) = Arc::make_mut(&mut working) else {
                unreachable!()
            };
            data.write(offset, &round.to_le_bytes()).unwrap();
            black_box(working.hash().unwrap())
        })
    });
}

/// The same pattern on CNodes of 16 and 65,536 occupied slots: the cost of
/// clone + set one slot + hash should hardly depend on the size.
fn cnode_set_slot(c: &mut Criterion) {
    let mut group = c.benchmark_group("cnode_set_slot");
    for slots in [16u32, 65_536] {
        let mut cnode = CNode::new();
        for slot in 0..slots {
            cnode
                .set(slot, type_cap(slot.into()).hash().unwrap().into())
                .unwrap();
        }
        let blob = Arc::new(Cap::CNode(cnode));
        blob.hash().unwrap();
        let mut round = 0u32;
        group.bench_function(slots.to_string(), |b| {
            b.iter(|| {
                round = round.wrapping_add(1);
                let mut target = [0u8; 32];
                target[..4].copy_from_slice(&round.to_le_bytes());
                let mut working = blob.clone();
                let Cap::CNode(node) = Arc::make_mut(&mut working) else {
                    unreachable!()
                };
                node.set(
                    round.wrapping_mul(40_503) % slots,
                    CapHash::from_bytes(target).into(),
                )
                .unwrap();
                black_box(working.hash().unwrap())
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    targets = put_cap, promote, make_mut_and_set, sweep, data_rehash, data_write_shared, cnode_set_slot
}
criterion_main!(benches);
