//! Store put/get throughput: small caps and a 1 MiB Data.
//!
//! `put` of a new blob includes two fsyncs (file and directory), so it
//! measures the disk as much as the code; `put` of an existing blob is the
//! idempotent path (read and compare the existing file, touch its mtime).

use std::hint::black_box;

use capbox::Store;
use capbox::shared::{CNode, Cap, Data, InstanceCap, TypeCap};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn small_caps() -> Vec<(&'static str, Cap)> {
    let data = Cap::Data(Data::from_bytes(&[7; 100]).unwrap());
    let data_hash = data.hash().unwrap();
    let mut cnode = CNode::new();
    for slot in 0..8 {
        cnode.set(slot, data_hash.into()).unwrap();
    }
    let cnode = Cap::CNode(cnode);
    let instance = Cap::Instance(InstanceCap {
        image: data_hash,
        memory: data_hash.into(),
        root_cnode: cnode.hash().unwrap().into(),
        image_hash_chain: TypeCap::ROOT_CHAIN,
    });
    vec![
        ("data_100B", data),
        ("cnode_8", cnode),
        ("instance", instance),
    ]
}

fn one_mib_data(seed: u8) -> Cap {
    let bytes: Vec<u8> = (0..1 << 20).map(|i| (i as u8) ^ seed | 1).collect();
    Cap::Data(Data::from_bytes(&bytes).unwrap())
}

fn bench_store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let mut group = c.benchmark_group("store");

    for (name, cap) in small_caps() {
        let hash = store.put(&cap).unwrap();
        group.bench_function(format!("get/{name}"), |b| {
            b.iter(|| black_box(store.get(&hash).unwrap()))
        });
        group.bench_function(format!("put_existing/{name}"), |b| {
            b.iter(|| black_box(store.put(&cap).unwrap()))
        });
    }

    // New small blobs: each iteration stores a different Data.
    let mut counter = 0u64;
    group.bench_function("put_new/data_100B", |b| {
        b.iter_batched(
            || {
                counter += 1;
                let mut bytes = [1u8; 100];
                bytes[..8].copy_from_slice(&counter.to_le_bytes());
                Cap::Data(Data::from_bytes(&bytes).unwrap())
            },
            |cap| black_box(store.put(&cap).unwrap()),
            BatchSize::SmallInput,
        )
    });

    let big = one_mib_data(0);
    let big_hash = store.put(&big).unwrap();
    group.throughput(Throughput::Bytes(1 << 20));
    group.sample_size(20);
    group.bench_function("get/data_1MiB", |b| {
        b.iter(|| black_box(store.get(&big_hash).unwrap()))
    });
    group.bench_function("put_existing/data_1MiB", |b| {
        b.iter(|| black_box(store.put(&big).unwrap()))
    });
    let mut seed = 0u8;
    group.bench_function("put_new/data_1MiB", |b| {
        b.iter_batched(
            || {
                seed = seed.wrapping_add(1);
                one_mib_data(seed)
            },
            |cap| black_box(store.put(&cap).unwrap()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
