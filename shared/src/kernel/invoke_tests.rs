//! Invocation semantics on the sample program (DESIGN §5).

use alloc::vec::Vec;

use super::sample::{Endpoint, sample_image};
use super::*;
use crate::CacheDirectory;
use crate::cap::{Cap, CapKind};
use crate::hash::CapHash;

struct Fixture {
    dir: CacheDirectory,
    programs: ProgramCache,
    instance: CapHash,
}

fn fixture() -> Fixture {
    let dir = CacheDirectory::new();
    let image = sample_image();
    let image_hash = dir.put_cap(&Cap::Image(image.clone())).unwrap();
    let fresh = new_instance(image_hash, &image).unwrap();
    for cap in [&fresh.memory, &fresh.root_cnode, &fresh.instance] {
        dir.put_cap(cap).unwrap();
    }
    Fixture {
        dir,
        programs: ProgramCache::new(),
        instance: fresh.instance_hash,
    }
}

impl Fixture {
    fn call(&self, instance: &CapHash, ep: Endpoint, arg: u64, gas: u64) -> Outcome {
        invoke(
            &self.dir,
            &self.programs,
            &mut NoLog,
            instance,
            ep.index(),
            [arg, 0, 0, 0],
            gas,
        )
        .unwrap()
    }
}

#[test]
fn increment_commits_new_state_and_read_does_not() {
    let f = fixture();
    let a = f.call(&f.instance, Endpoint::Increment, 0, 1000);
    assert_eq!((a.exit, a.r7), (ExitReason::Halt, 1));
    assert_ne!(a.instance, f.instance);
    let b = f.call(&a.instance, Endpoint::Increment, 0, 1000);
    assert_eq!(b.r7, 2);
    let r = f.call(&b.instance, Endpoint::Read, 0, 1000);
    assert_eq!(
        (r.exit, r.r7, r.instance),
        (ExitReason::Halt, 2, b.instance)
    );
    // The old state is still there and still reads 1.
    assert_eq!(f.call(&a.instance, Endpoint::Read, 0, 1000).r7, 1);
    // The same steps from the same state give the same hash.
    assert_eq!(
        f.call(&f.instance, Endpoint::Increment, 0, 1000).instance,
        a.instance
    );
    // No working entries are left behind.
    assert_eq!(f.dir.stats().instance_count, 0);
}

#[test]
fn add_and_output() {
    let f = fixture();
    let a = f.call(&f.instance, Endpoint::Add, 41, 1000);
    assert_eq!(a.r7, 41);
    let o = f.call(&a.instance, Endpoint::Output, 0, 1000);
    assert_eq!(o.exit, ExitReason::Halt);
    assert_eq!(o.r7, ops::OK);
    assert_eq!(o.output, 41u64.to_le_bytes());
    assert_eq!(o.instance, a.instance);
}

#[test]
fn failures_leave_the_hash_unchanged() {
    let f = fixture();
    let a = f.call(&f.instance, Endpoint::Increment, 0, 1000);
    for (ep, exit) in [
        (Endpoint::Trap, ExitReason::Panic),
        (Endpoint::UnknownOp, ExitReason::Panic),
        (Endpoint::Fault, ExitReason::PageFault(0x10_0000)),
    ] {
        let o = f.call(&a.instance, ep, 0, 1000);
        assert_eq!((o.exit, o.instance), (exit, a.instance), "{ep:?}");
        assert!(o.output.is_empty());
    }
    let o = f.call(&a.instance, Endpoint::Loop, 0, 500);
    assert_eq!(
        (o.exit, o.gas_used, o.instance),
        (ExitReason::OutOfGas, 500, a.instance)
    );
    assert_eq!(f.dir.stats().instance_count, 0);
}

#[test]
fn stack_writes_are_not_state_and_gas_is_metered() {
    let f = fixture();
    let s = f.call(&f.instance, Endpoint::StackOnly, 7, 1000);
    assert_eq!((s.exit, s.instance), (ExitReason::Halt, f.instance));
    let g = f.call(&f.instance, Endpoint::Gas, 0, 1000);
    assert_eq!(g.exit, ExitReason::Halt);
    assert!(g.r7 < 1000 && g.r7 > 900, "remaining gas {}", g.r7);
    let small = f.call(&f.instance, Endpoint::Loop, 10, 1_000_000);
    let big = f.call(&f.instance, Endpoint::Loop, 100, 1_000_000);
    assert_eq!(small.exit, ExitReason::Halt);
    assert!(big.gas_used > small.gas_used);
}

#[test]
fn typed_errors_before_running() {
    let f = fixture();
    let unknown = CapHash([9; 32]);
    assert_eq!(
        invoke(&f.dir, &f.programs, &mut NoLog, &unknown, 0, [0; 4], 10),
        Err(KernelError::MissingCap(unknown))
    );
    let err = invoke(&f.dir, &f.programs, &mut NoLog, &f.instance, 99, [0; 4], 10).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::BadEndpoint {
                endpoint: 99,
                count,
                ..
            } if count == Endpoint::ALL.len()
        ),
        "{err}"
    );
    // An image hash used as an instance.
    let Some(Cap::Instance(inst)) = f.dir.get_blob(&f.instance).as_deref().cloned() else {
        panic!("fixture instance missing")
    };
    let err = invoke(&f.dir, &f.programs, &mut NoLog, &inst.image, 0, [0; 4], 10).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::WrongKind {
                expected: CapKind::Instance,
                found: CapKind::Image,
                ..
            }
        ),
        "{err}"
    );
    // Bad code in an image.
    let mut image = sample_image();
    image.code = Vec::from([1u8, 2, 3]);
    let image_hash = f.dir.put_cap(&Cap::Image(image.clone())).unwrap();
    let fresh = new_instance(image_hash, &image).unwrap();
    for cap in [&fresh.memory, &fresh.root_cnode, &fresh.instance] {
        f.dir.put_cap(cap).unwrap();
    }
    let err = invoke(
        &f.dir,
        &f.programs,
        &mut NoLog,
        &fresh.instance_hash,
        0,
        [0; 4],
        10,
    )
    .unwrap_err();
    assert!(matches!(err, KernelError::BadProgram { .. }), "{err}");
}

#[test]
fn reused_memory_behaves_like_fresh_memory() {
    let f = fixture();
    let a = f.call(&f.instance, Endpoint::Increment, 0, 1000);
    // A failed write is undone in the reused memory too.
    for _ in 0..3 {
        let t = f.call(&a.instance, Endpoint::WriteThenTrap, 0, 1000);
        assert_eq!((t.exit, t.instance), (ExitReason::Panic, a.instance));
        assert_eq!(f.call(&a.instance, Endpoint::Read, 0, 1000).r7, 1);
    }
    // Stack contents never leak from one invocation into the next.
    let s = f.call(&a.instance, Endpoint::StackOnly, 77, 1000);
    assert_eq!(s.exit, ExitReason::Halt);
    assert_eq!(f.call(&a.instance, Endpoint::ReadStack, 0, 1000).r7, 0);
    // Alternating states still give the same answers and hashes.
    let b = f.call(&a.instance, Endpoint::Increment, 0, 1000);
    assert_eq!(f.call(&a.instance, Endpoint::Read, 0, 1000).r7, 1);
    assert_eq!(f.call(&b.instance, Endpoint::Read, 0, 1000).r7, 2);
    let fresh_dir = fixture();
    let a2 = fresh_dir.call(&fresh_dir.instance, Endpoint::Increment, 0, 1000);
    let b2 = fresh_dir.call(&a2.instance, Endpoint::Increment, 0, 1000);
    assert_eq!(b2.instance, b.instance);
}

#[test]
fn prepared_entries_give_the_same_results_as_a_cold_cache() {
    let warm = fixture();
    let a = warm.call(&warm.instance, Endpoint::Increment, 0, 1000);
    let b = warm.call(&a.instance, Endpoint::Increment, 0, 1000);
    // Every call on a fresh cache (nothing prepared) agrees.
    let cold = |instance: &CapHash, ep: Endpoint| {
        invoke(
            &warm.dir,
            &ProgramCache::new(),
            &mut NoLog,
            instance,
            ep.index(),
            [0; 4],
            1000,
        )
        .unwrap()
    };
    for _ in 0..3 {
        for (state, want) in [(&warm.instance, 0), (&a.instance, 1), (&b.instance, 2)] {
            let hot = warm.call(state, Endpoint::Read, 0, 1000);
            assert_eq!(hot.r7, want);
            assert_eq!(hot, cold(state, Endpoint::Read));
        }
    }
    // A bad endpoint is still refused once the instance is prepared.
    let err = invoke(
        &warm.dir,
        &warm.programs,
        &mut NoLog,
        &a.instance,
        999,
        [0; 4],
        1000,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        KernelError::BadEndpoint { endpoint: 999, .. }
    ));
    // More instances than slots: collisions only forget entries.
    let mut state = b.instance;
    for i in 0..(super::programs::PREPARED_SLOTS as u64 + 8) {
        let next = warm.call(&state, Endpoint::Increment, 0, 1000);
        assert_eq!(next.r7, 3 + i);
        state = next.instance;
    }
    assert_eq!(warm.call(&a.instance, Endpoint::Read, 0, 1000).r7, 1);
}

struct NoHost;

impl LogSink for NoHost {
    fn log(&mut self, _message: &[u8]) {}
}

impl KernelHost for NoHost {
    fn fetch_blob(&mut self, _hash: &CapHash) -> Option<Vec<u8>> {
        None
    }
}

#[test]
fn owned_invoke_requests_get_the_same_replies() {
    use crate::abi::{GuestFunction, InvocationMsg, encode_invoke_request};
    let f = fixture();
    let call = |instance: [u8; 32], ep: Endpoint| InvocationMsg {
        instance,
        endpoint: ep.index(),
        args: [0; 4],
        gas: 1000,
        input: &[],
        timeout: crate::kernel::NO_TIMEOUT,
    };
    let requests = [
        encode_invoke_request(&[], &[call(f.instance.0, Endpoint::Read)]),
        encode_invoke_request(&[], &[call(f.instance.0, Endpoint::Increment)]),
        encode_invoke_request(&[], &[call([0; 32], Endpoint::Read)]),
        encode_invoke_request(&[], &[call([9; 32], Endpoint::Read)]),
        encode_invoke_request(
            &[],
            &[
                call(f.instance.0, Endpoint::Increment),
                call([0; 32], Endpoint::Read),
            ],
        ),
        alloc::vec![1, 2, 3],
    ];
    for request in requests {
        // Two kernels with the same state: one per path.
        let (a, b) = (fixture(), fixture());
        let by_ref = KernelState {
            dir: &a.dir,
            programs: &a.programs,
        }
        .handle(&mut NoHost, GuestFunction::Invoke, &request);
        let owned = KernelState {
            dir: &b.dir,
            programs: &b.programs,
        }
        .handle_owned(&mut NoHost, GuestFunction::Invoke, request.clone());
        assert_eq!(by_ref, owned);
        assert!(crate::abi::decode_invoke_reply(&owned).is_ok());
    }
    // invoke_one answers exactly like invoke with that one call.
    for (instance, ep) in [
        (f.instance.0, Endpoint::Read),
        (f.instance.0, Endpoint::Increment),
        ([0; 32], Endpoint::Read),
        ([9; 32], Endpoint::Read),
        (f.instance.0, Endpoint::Empty),
    ] {
        let c = call(instance, ep);
        let (a, b, d) = (fixture(), fixture(), fixture());
        fn state(x: &Fixture) -> KernelState<'_, foldhash::fast::RandomState> {
            KernelState {
                dir: &x.dir,
                programs: &x.programs,
            }
        }
        let via_invoke = state(&a).handle(
            &mut NoHost,
            GuestFunction::Invoke,
            &encode_invoke_request(&[], &[c]),
        );
        let one = crate::abi::encode_invoke_one_request(&c);
        let via_one = state(&b).handle(&mut NoHost, GuestFunction::InvokeOne, &one);
        let via_one_owned =
            state(&d).handle_owned(&mut NoHost, GuestFunction::InvokeOne, one.clone());
        assert_eq!(via_invoke, via_one);
        assert_eq!(via_invoke, via_one_owned);
    }
}

fn blob_hashes(dir: &CacheDirectory) -> Vec<CapHash> {
    let mut hashes: Vec<CapHash> = dir.iter_blobs().into_iter().map(|(h, _)| h).collect();
    hashes.sort();
    hashes
}

#[test]
fn the_direct_commit_publishes_what_settling_a_working_graph_publishes() {
    use super::transaction::{Txn, commit, commit_settled};
    use crate::cap::{CNode, CapHashOrRef, InstanceCap};
    let (direct, settled) = (fixture(), fixture());
    let Cap::Instance(instance) = &*direct.dir.get_blob(&direct.instance).unwrap() else {
        panic!("an instance");
    };
    let instance: InstanceCap = instance.clone();
    let CapHashOrRef::Hash(memory_hash) = instance.memory else {
        panic!("a settled memory link");
    };
    let Cap::Data(memory) = &*direct.dir.get_blob(&memory_hash).unwrap() else {
        panic!("a Data");
    };
    let mut memory = memory.clone();
    memory.set_len(2 * crate::cap::PAGE_SIZE as u64).unwrap();
    memory
        .write(crate::cap::PAGE_SIZE as u64 + 3, &[7; 9])
        .unwrap();
    let mut root = CNode::new();
    root.set(5, CapHashOrRef::Hash(instance.image)).unwrap();

    let mut host = NoHost;
    let mut txn = Txn::new(&direct.dir, &direct.programs, &mut host, &[]);
    let made = commit(
        &mut txn,
        &direct.instance,
        &instance,
        Some(memory.clone()),
        Some(root.clone()),
    )
    .unwrap();
    assert!(!txn.made_working, "no working entries");
    assert!(made.carry.is_some(), "the caps are kept for the next call");
    let mut txn = Txn::new(&settled.dir, &settled.programs, &mut host, &[]);
    let (hash, new_memory_hash) = commit_settled(
        &mut txn,
        &settled.instance,
        &instance,
        Some(memory.clone()),
        Some(root),
    )
    .unwrap();
    settled.dir.sweep_instances();
    assert_eq!((made.hash, made.memory_hash), (hash, new_memory_hash));
    assert_eq!(new_memory_hash, memory.hash_uncached());
    assert_eq!(blob_hashes(&direct.dir), blob_hashes(&settled.dir));
    assert_eq!(direct.dir.instance_count(), 0);
    assert_eq!(settled.dir.instance_count(), 0);

    // A new root linking a working entry takes the settling path.
    let mut root = CNode::new();
    let working = direct.dir.put_instance(Cap::Data(memory));
    root.set(1, CapHashOrRef::Ref(working)).unwrap();
    let mut txn = Txn::new(&direct.dir, &direct.programs, &mut host, &[]);
    let made = commit(&mut txn, &direct.instance, &instance, None, Some(root)).unwrap();
    assert!(txn.made_working);
    assert!(made.carry.is_none());
    direct.dir.sweep_instances();
    assert_eq!(direct.dir.instance_count(), 0);
    assert!(direct.dir.contains_blob(&made.hash));
}

#[test]
fn a_carried_prepared_entry_equals_a_fresh_one() {
    let f = fixture();
    let mut state = f.instance;
    // The first increment grows the 8-byte memory to a page (a new
    // layout), the later ones keep its length.
    for n in 1..=3 {
        let o = f.call(&state, Endpoint::Increment, 0, 1000);
        assert_eq!(o.r7, n);
        state = o.instance;
        let carried = f.programs.prepared(&state).expect("carried forward");
        let ep = Endpoint::Read.index();
        let fresh = invoke::prepare(&f.dir, &ProgramCache::new(), &state, ep).unwrap();
        assert_eq!(carried.instance_hash, fresh.instance_hash);
        assert_eq!(carried.instance, fresh.instance);
        assert_eq!(carried.memory_hash, fresh.memory_hash);
        assert_eq!(carried.memory, fresh.memory);
        assert_eq!(carried.image, fresh.image);
        assert_eq!(carried.root, fresh.root);
        assert_eq!(carried.layout, fresh.layout);
        let image = crate::kernel::sample::sample_image();
        for (endpoint, &pc) in (0..).zip(&image.endpoints) {
            let program = &fresh.cached.program;
            assert_eq!(
                carried.entry_indexes.get(endpoint, program, pc),
                fresh.entry_indexes.get(endpoint, program, pc)
            );
            assert!(fresh.entry_indexes.get(endpoint, program, pc).is_some());
        }
        assert_eq!(f.call(&state, Endpoint::Read, 0, 1000).r7, n);
    }
}

#[test]
fn dirty_page_addresses_list_what_dirty_pages_lists() {
    use crate::pvm::{Access, Memory, PageMapEntry};
    let page = crate::pvm::PAGE_SIZE;
    let mut memory = Memory::from_page_map(&[
        PageMapEntry {
            address: 0x10_0000,
            length: 130 * page,
            access: Access::Write,
        },
        PageMapEntry {
            address: 0x40_0000,
            length: 2 * page,
            access: Access::Read,
        },
        PageMapEntry {
            address: 0x50_0000,
            length: 3 * page,
            access: Access::Write,
        },
    ])
    .unwrap();
    let mut none = Vec::new();
    memory.dirty_page_addresses(&mut none);
    assert!(none.is_empty());
    // Pages in the first, second and third bitmap word, one write across
    // a word boundary (pages 63 and 64), and the last page of a region.
    for (address, len) in [
        (0x10_0000, 1),
        (0x10_0000 + 63 * page + page - 2, 4),
        (0x10_0000 + 129 * page, 8),
        (0x50_0000 + 2 * page + 5, 1),
    ] {
        memory.write(address, &alloc::vec![1; len]).unwrap();
    }
    let mut listed = Vec::new();
    memory.dirty_page_addresses(&mut listed);
    let want: Vec<u32> = memory.dirty_pages().map(|(address, _)| address).collect();
    assert_eq!(listed, want);
    assert_eq!(
        listed,
        [
            0x10_0000,
            0x10_0000 + 63 * page,
            0x10_0000 + 64 * page,
            0x10_0000 + 129 * page,
            0x50_0000 + 2 * page
        ]
    );
    memory.clear_dirty();
    listed.clear();
    memory.dirty_page_addresses(&mut listed);
    assert!(listed.is_empty());
}
