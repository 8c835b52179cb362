//! Eviction at the kernel level: spills go to the host before kernel-made
//! blobs are dropped, a host that refuses keeps them in the directory, and
//! every old state stays readable (fetched back) with the same answers.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::sample::{Endpoint, sample_image};
use super::*;
use crate::CacheDirectory;
use crate::abi;
use crate::cap::Cap;
use crate::directory::BlobBudget;
use crate::hash::CapHash;

/// A host holding blobs by hash; takes spills when `accept`.
struct MapHost {
    blobs: BTreeMap<CapHash, Vec<u8>>,
    accept: bool,
    spill_calls: usize,
}

impl LogSink for MapHost {
    fn log(&mut self, _message: &[u8]) {}
}

impl KernelHost for MapHost {
    fn fetch_blob(&mut self, hash: &CapHash) -> Option<Vec<u8>> {
        self.blobs.get(hash).cloned()
    }

    fn spill_blobs(&mut self, message: Vec<u8>) -> u64 {
        self.spill_calls += 1;
        if !self.accept {
            return 0;
        }
        let caps = abi::decode_put_cap_request(&message).unwrap();
        for blob in &caps {
            let cap = Cap::decode(blob.bytes).unwrap();
            let hash = CapHash(blob.hash.unwrap());
            assert_eq!(cap.hash().unwrap(), hash, "spilled under its own hash");
            self.blobs.insert(hash, blob.bytes.to_vec());
        }
        caps.len() as u64
    }
}

const BUDGET: BlobBudget = BlobBudget {
    max_bytes: u64::MAX,
    max_blobs: 8,
};

/// A directory with `BUDGET` and a host holding a fresh sample instance
/// (put into the directory as the host would: host-known).
fn setup(accept: bool) -> (CacheDirectory, MapHost, CapHash) {
    let dir = CacheDirectory::new();
    dir.set_budget(BUDGET);
    let image = sample_image();
    let image_cap = Cap::Image(image.clone());
    let fresh = new_instance(image_cap.hash().unwrap(), &image).unwrap();
    let mut host = MapHost {
        blobs: BTreeMap::new(),
        accept,
        spill_calls: 0,
    };
    for cap in [image_cap, fresh.memory, fresh.root_cnode, fresh.instance] {
        let hash = cap.hash().unwrap();
        host.blobs.insert(hash, cap.encode().unwrap());
        dir.put_host_blob(hash, alloc::sync::Arc::new(cap));
    }
    (dir, host, fresh.instance_hash)
}

fn call(
    state: &KernelState<'_, foldhash::fast::RandomState>,
    host: &mut MapHost,
    on: &CapHash,
    ep: Endpoint,
) -> Outcome {
    let call = Call {
        instance: *on,
        endpoint: ep.index(),
        args: [0; 4],
        gas: 1000,
        input: &[],
        timeout: NO_TIMEOUT,
    };
    let o = state.invoke_fetching(host, &call).unwrap();
    state.enforce_budget(host);
    o
}

/// 30 increments; every state afterwards reads its own count.
fn run(accept: bool) -> (CacheDirectory, MapHost) {
    let (dir, mut host, start) = setup(accept);
    let programs = ProgramCache::new();
    let state = KernelState {
        dir: &dir,
        programs: &programs,
    };
    let mut states = alloc::vec![start];
    for i in 1..=30u64 {
        let o = call(
            &state,
            &mut host,
            &states[states.len() - 1],
            Endpoint::Increment,
        );
        assert_eq!((o.exit, o.r7), (ExitReason::Halt, i));
        states.push(o.instance);
    }
    for (i, s) in states.iter().enumerate() {
        let o = call(&state, &mut host, s, Endpoint::Read);
        assert_eq!((o.r7, o.instance), (i as u64, *s), "state {i}");
    }
    drop(programs);
    (dir, host)
}

#[test]
fn spilled_states_are_evicted_and_fetched_back() {
    let (dir, host) = run(true);
    let stats = dir.eviction_stats();
    assert!(
        dir.blob_count() as u64 <= BUDGET.max_blobs,
        "{}",
        dir.blob_count()
    );
    assert!(stats.spilled_blobs >= 50, "{stats:?}");
    assert!(stats.evictions >= stats.spilled_blobs, "{stats:?}");
    assert!(
        stats.refetched > 0 && stats.fetched >= stats.refetched,
        "{stats:?}"
    );
    // 2 new blobs per increment, all of them now with the host.
    assert_eq!(host.blobs.len(), 4 + 2 * 30);
}

#[test]
fn a_host_that_refuses_spills_keeps_the_kernel_state_in_place() {
    let (dir, host) = run(false);
    let stats = dir.eviction_stats();
    assert!(host.spill_calls > 0);
    assert_eq!(stats.spilled_blobs, 0);
    // Only host-put blobs could go; every state the kernel made stays.
    assert!(stats.evictions <= 4, "{stats:?}");
    assert!(dir.blob_count() >= 2 * 30, "{}", dir.blob_count());
    assert_eq!(host.blobs.len(), 4);
}

/// A kernel-made blob too large for one spill message is not encoded for
/// a spill (the host would refuse it, every pass): it stays in the
/// directory, while smaller ones are spilled and evicted as usual.
#[test]
fn a_blob_larger_than_a_spill_message_stays_unspilled() {
    use crate::cap::Data;
    let dir = CacheDirectory::new();
    dir.set_budget(BlobBudget {
        max_bytes: u64::MAX,
        max_blobs: 1,
    });
    // Least recently used first: the small one, then the big one (both
    // planned for eviction), then a newer one that stays.
    let small_hash = dir
        .put_cap(&Cap::Data(Data::from_bytes(&[1u8; 10]).unwrap()))
        .unwrap();
    let big = Cap::Data(Data::from_bytes(&alloc::vec![7u8; 5 << 20]).unwrap());
    let big_hash = dir.put_cap(&big).unwrap();
    drop(big);
    dir.put_cap(&Cap::Data(Data::from_bytes(&[2u8; 10]).unwrap()))
        .unwrap();
    let programs = ProgramCache::new();
    let state = KernelState {
        dir: &dir,
        programs: &programs,
    };
    let mut host = MapHost {
        blobs: BTreeMap::new(),
        accept: true,
        spill_calls: 0,
    };
    state.enforce_budget(&mut host);
    assert!(dir.contains_blob(&big_hash), "the big blob stays");
    assert!(!host.blobs.contains_key(&big_hash), "and was not spilled");
    assert!(host.blobs.contains_key(&small_hash), "the small one was");
    assert!(!dir.contains_blob(&small_hash), "and then evicted");
    assert_eq!(host.spill_calls, 1);
}
