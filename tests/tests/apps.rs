//! The apps (`capbox::shared::kernel::apps`): the kv service and the users
//! parent, endpoint by endpoint, at scale, and differentially.

use capbox::Invocation;
use capbox::shared::cap::{Cap, CapHashOrRef, Data};
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::apps::kv::{self, KV_KEYS};
use capbox::shared::kernel::apps::users::{self, MAX_USERS};
use capbox::shared::kernel::apps::{
    ERR_BAD_INPUT, ERR_BAD_KEY, ERR_CHILD_FAILED, ERR_NO_USER, MAX_VALUE_LEN,
};
use capbox::shared::kernel::ops::{CALL_OUT_OF_GAS, ERR_EMPTY, ERR_OCCUPIED, ERR_TOO_LONG};
use capbox_tests::backend_tests;
use capbox_tests::programs::{
    APP_GAS, AppHost, DirectKernel, KvModel, Rng, new_kv, new_users, random_kv_op, run_batches,
};

fn kv_call(
    host: &mut dyn AppHost,
    state: &mut capbox::shared::hash::CapHash,
    ep: kv::Endpoint,
    key: u64,
    input: &[u8],
) -> (u64, u64, Vec<u8>) {
    let o = host.run(state, ep.index(), [key, 0, 0, 0], input);
    assert_eq!(o.exit, ExitReason::Halt, "{ep:?}({key}): {o:?}");
    *state = o.instance;
    (o.r7, o.r8, o.output)
}

fn kv_endpoints(host: &mut dyn AppHost) {
    use kv::Endpoint::*;
    let fresh = new_kv(host);
    let mut s = fresh;
    assert_eq!(kv_call(host, &mut s, Len, 0, &[]), (0, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Get, 7, &[]), (ERR_EMPTY, 0, vec![]));
    assert_eq!(s, fresh, "a failed get changes nothing");
    assert_eq!(kv_call(host, &mut s, Put, 7, b"seven"), (0, 0, vec![]));
    let after_put = s;
    assert_ne!(after_put, fresh);
    assert_eq!(
        kv_call(host, &mut s, Get, 7, &[]),
        (5, 0, b"seven".to_vec())
    );
    assert_eq!(s, after_put, "get changes nothing");
    assert_eq!(kv_call(host, &mut s, Put, 7, b"SEVEN!"), (0, 1, vec![]));
    assert_eq!(kv_call(host, &mut s, Put, 0, b""), (0, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Get, 0, &[]), (0, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Len, 0, &[]), (2, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Get, 7, &[]).2, b"SEVEN!");
    // Out-of-range keys and a value over the limit change nothing.
    let before = s;
    let last = u64::from(KV_KEYS);
    assert_eq!(
        kv_call(host, &mut s, Put, last, b"x"),
        (ERR_BAD_KEY, 0, vec![])
    );
    assert_eq!(kv_call(host, &mut s, Get, u64::MAX, &[]).0, ERR_BAD_KEY);
    assert_eq!(kv_call(host, &mut s, Delete, last, &[]).0, ERR_BAD_KEY);
    let big = vec![1u8; MAX_VALUE_LEN as usize + 1];
    assert_eq!(kv_call(host, &mut s, Put, 1, &big).0, ERR_TOO_LONG);
    assert_eq!(s, before);
    // The largest value and the largest key round-trip.
    let max = vec![0xa5u8; MAX_VALUE_LEN as usize];
    assert_eq!(kv_call(host, &mut s, Put, last - 1, &max), (0, 0, vec![]));
    assert_eq!(
        kv_call(host, &mut s, Get, last - 1, &[]),
        (MAX_VALUE_LEN, 0, max)
    );
    // Delete: 1 if there was a value, then 0.
    assert_eq!(kv_call(host, &mut s, Delete, 7, &[]), (1, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Delete, 7, &[]), (0, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Get, 7, &[]).0, ERR_EMPTY);
    assert_eq!(kv_call(host, &mut s, Len, 0, &[]).0, 2);
    // put_from_slot with an empty staging slot; export of a missing key.
    assert_eq!(kv_call(host, &mut s, PutFromSlot, 3, &[]).0, ERR_EMPTY);
    assert_eq!(kv_call(host, &mut s, Export, 3, &[]).0, ERR_EMPTY);
    // export fills the staging slot (state changes); a second export finds
    // it full; put_from_slot moves it into another key.
    assert_eq!(kv_call(host, &mut s, Export, 0, &[]), (0, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Export, 0, &[]).0, ERR_OCCUPIED);
    assert_eq!(kv_call(host, &mut s, PutFromSlot, 9, &[]), (0, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Get, 9, &[]), (0, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Len, 0, &[]).0, 3);
    // Deleting everything gives back the fresh state's root CNode, but not
    // the fresh memory (the count page is now written out).
    for key in [0, 9, last - 1] {
        assert_eq!(kv_call(host, &mut s, Delete, key, &[]).0, 1);
    }
    assert_eq!(kv_call(host, &mut s, Len, 0, &[]).0, 0);
    // put_many: records in order (a later one replaces an earlier one).
    let input = kv::put_many_input([(1, &b"one"[..]), (2, b""), (1, b"uno")]);
    assert_eq!(kv_call(host, &mut s, PutMany, 0, &input), (3, 0, vec![]));
    assert_eq!(kv_call(host, &mut s, Get, 1, &[]).2, b"uno");
    assert_eq!(kv_call(host, &mut s, Len, 0, &[]).0, 2);
    assert_eq!(kv_call(host, &mut s, PutMany, 0, &[]), (0, 0, vec![]));
    // A bad record stops it; the records before it stay (φ8 = how many).
    let input = kv::put_many_input([(3, &b"three"[..]), (KV_KEYS, b"x"), (4, b"four")]);
    assert_eq!(
        kv_call(host, &mut s, PutMany, 0, &input),
        (ERR_BAD_KEY, 1, vec![])
    );
    let mut input = kv::put_many_input([(5, &b"five"[..])]);
    input.extend_from_slice(&[6, 0, 0, 0, 9, 0, 0, 0, b'x']);
    assert_eq!(
        kv_call(host, &mut s, PutMany, 0, &input),
        (ERR_BAD_INPUT, 1, vec![])
    );
    assert_eq!(
        kv_call(host, &mut s, PutMany, 0, &[1, 2, 3]),
        (ERR_BAD_INPUT, 0, vec![])
    );
    assert_eq!(kv_call(host, &mut s, Len, 0, &[]).0, 4);
}

fn users_call(
    host: &mut dyn AppHost,
    state: &mut capbox::shared::hash::CapHash,
    ep: users::Endpoint,
    args: [u64; 3],
    input: &[u8],
) -> (u64, u64, Vec<u8>) {
    let o = host.run(state, ep.index(), [args[0], args[1], args[2], 0], input);
    assert_eq!(o.exit, ExitReason::Halt, "{ep:?}{args:?}: {o:?}");
    *state = o.instance;
    (o.r7, o.r8, o.output)
}

fn users_endpoints(host: &mut dyn AppHost) {
    use users::Endpoint::*;
    let fresh = new_users(host);
    let mut s = fresh;
    assert_eq!(
        users_call(host, &mut s, Put, [0, 1, 0], b"a").0,
        ERR_NO_USER
    );
    assert_eq!(users_call(host, &mut s, Get, [0, 1, 0], &[]).0, ERR_NO_USER);
    assert_eq!(
        users_call(host, &mut s, Count, [1, 0, 0], &[]).0,
        ERR_NO_USER
    );
    let bad = u64::from(MAX_USERS);
    assert_eq!(
        users_call(host, &mut s, AddUser, [bad, 0, 0], &[]).0,
        ERR_BAD_KEY
    );
    assert_eq!(s, fresh);
    assert_eq!(
        users_call(host, &mut s, AddUser, [0, 0, 0], &[]),
        (0, 0, vec![])
    );
    assert_eq!(
        users_call(host, &mut s, AddUser, [0, 0, 0], &[]).0,
        ERR_OCCUPIED
    );
    assert_eq!(
        users_call(host, &mut s, AddUser, [1, 0, 0], &[]),
        (0, 0, vec![])
    );
    // Two users, the same key, different values.
    assert_eq!(
        users_call(host, &mut s, Put, [0, 5, 0], b"alice"),
        (0, 0, vec![])
    );
    assert_eq!(
        users_call(host, &mut s, Put, [1, 5, 0], b"bob"),
        (0, 0, vec![])
    );
    assert_eq!(
        users_call(host, &mut s, Put, [1, 6, 0], b"bob6"),
        (0, 0, vec![])
    );
    assert_eq!(
        users_call(host, &mut s, Put, [0, 5, 0], b"alice2"),
        (0, 1, vec![])
    );
    assert_eq!(
        users_call(host, &mut s, Get, [0, 5, 0], &[]),
        (6, 0, b"alice2".to_vec())
    );
    assert_eq!(
        users_call(host, &mut s, Get, [1, 5, 0], &[]),
        (3, 0, b"bob".to_vec())
    );
    // Isolation: user 0 has no key 6.
    assert_eq!(users_call(host, &mut s, Get, [0, 6, 0], &[]).0, ERR_EMPTY);
    assert_eq!(users_call(host, &mut s, Count, [0, 0, 0], &[]).0, 1);
    assert_eq!(users_call(host, &mut s, Count, [1, 0, 0], &[]).0, 2);
    // The cap route gives the same value and leaves the state as it was.
    let before = s;
    let via = users_call(host, &mut s, GetViaExport, [1, 6, 0], &[]);
    assert_eq!(via, (4, 0, b"bob6".to_vec()));
    assert_eq!(s, before, "export + take settles back to the same hash");
    assert_eq!(
        users_call(host, &mut s, GetViaExport, [1, 7, 0], &[]).0,
        ERR_EMPTY
    );
    assert_eq!(s, before);
    // The child refuses a key (its code passes through); the parent takes
    // the value back, so the hash is unchanged.
    let r = users_call(host, &mut s, Put, [0, u64::from(KV_KEYS), 0], b"x");
    assert_eq!(r, (ERR_BAD_KEY, 0, vec![]));
    assert_eq!(s, before);
    // The child runs out of its gas limit: ERR_CHILD_FAILED, φ8 = the
    // exit; the hash is unchanged.
    let r = users_call(host, &mut s, Put, [0, 5, 20], b"zzz");
    assert_eq!(r, (ERR_CHILD_FAILED, CALL_OUT_OF_GAS, vec![]));
    assert_eq!(s, before);
    let r = users_call(host, &mut s, Get, [0, 5, 20], &[]);
    assert_eq!(r, (ERR_CHILD_FAILED, CALL_OUT_OF_GAS, vec![]));
    assert_eq!(users_call(host, &mut s, Get, [0, 5, 0], &[]).2, b"alice2");
    let big = vec![0u8; MAX_VALUE_LEN as usize + 1];
    assert_eq!(
        users_call(host, &mut s, Put, [0, 5, 0], &big).0,
        ERR_TOO_LONG
    );
    assert_eq!(s, before);
}

/// docs/kernel.md: a `call`ed child runs "with no input". A child whose
/// endpoint returns `input_len`, called by a parent invoked with 3 bytes
/// of input, must see 0.
#[test]
fn called_child_has_no_input() {
    use capbox::shared::cap::{Cap, Image};
    use capbox::shared::kernel::KernelOp;
    use capbox::shared::pvm::asm::{ProgramBuilder, Reg};
    let image = |body: &dyn Fn(&mut ProgramBuilder)| {
        let mut b = ProgramBuilder::new();
        body(&mut b);
        b.jump_ind(Reg::R0, 0u32);
        Image {
            code: b.build().unwrap(),
            ro_data: vec![],
            rw_data: vec![],
            heap_pages: 0,
            stack_size: 4096,
            endpoint_names: Vec::new(),
            endpoints: vec![0],
        }
    };
    let child = image(&|b| {
        b.ecalli(KernelOp::InputLen.number());
    });
    let parent = image(&|b| {
        b.load_imm(Reg::R7, 0u32).load_imm(Reg::R8, 1u32);
        b.ecalli(KernelOp::Spawn.number());
        b.load_imm(Reg::R7, 1u32).load_imm(Reg::R8, 0u32);
        b.ecalli(KernelOp::Call.number());
        b.move_reg(Reg::R7, Reg::R8); // the child's φ7
    });
    let mut host = DirectKernel::default();
    let instance = host.create(&parent, &[(0, Cap::Image(child))]);
    let o = host.run(&instance, 0, [0; 4], b"abc");
    assert_eq!(o.exit, ExitReason::Halt);
    assert_eq!(o.r7, 0, "the child saw the parent's input");
}

/// `keys` keys bulk-loaded with `put_many` (`per_call` records an
/// invocation, chained), then checked three ways: every key's slot in the
/// root CNode holds the hash of the Data of its value, `get` of every
/// `get_stride`-th key returns the value, and `len` counts them all.
fn kv_many_keys(host: &mut dyn AppHost, keys: u32, per_call: u32, get_stride: u32) {
    let value = |k: u32| format!("value of key {k}: {}", k.wrapping_mul(0x9e37_79b9)).into_bytes();
    let values: Vec<Vec<u8>> = (0..keys).map(value).collect();
    let inputs: Vec<Vec<u8>> = (0..keys)
        .step_by(per_call as usize)
        .map(|first| {
            let last = (first + per_call).min(keys);
            kv::put_many_input((first..last).map(|k| (k, &values[k as usize][..])))
        })
        .collect();
    let fresh = new_kv(host);
    let outcomes = host.run_chain(&fresh, kv::Endpoint::PutMany.index(), &inputs);
    for (i, o) in outcomes.iter().enumerate() {
        let expected = (keys - i as u32 * per_call).min(per_call);
        assert_eq!(
            (o.exit, o.r7),
            (ExitReason::Halt, u64::from(expected)),
            "call {i}"
        );
    }
    let s = outcomes.last().unwrap().instance;
    let root = host.root_cnode(&s);
    assert_eq!(root.len(), keys as usize);
    for (k, v) in values.iter().enumerate() {
        let expected = Cap::Data(Data::from_bytes(v).unwrap()).hash().unwrap();
        assert_eq!(
            root.get(k as u32),
            Some(&CapHashOrRef::Hash(expected)),
            "key {k}"
        );
    }
    let gets: Vec<u32> = (0..keys).step_by(get_stride as usize).collect();
    let outcomes = host.run_gets(&s, &gets);
    for (k, o) in gets.iter().zip(outcomes) {
        assert_eq!(
            (o.r7, &o.output),
            (values[*k as usize].len() as u64, &values[*k as usize]),
            "get {k}"
        );
        assert_eq!(o.instance, s);
    }
    let o = host.run(&s, kv::Endpoint::Len.index(), [0; 4], &[]);
    assert_eq!(o.r7, u64::from(keys));
}

/// 10,000 keys on the local backend only (the sandbox is nested KVM
/// here: its few-hundred-key version is below).
#[test]
fn local_kv_10000_keys() {
    kv_many_keys(&mut capbox_tests::local_kernel(), 10_000, 100, 20);
}

backend_tests! {
    fn kv_each_endpoint(kernel: &mut Kernel) {
        kv_endpoints(kernel);
    }

    fn users_each_endpoint(kernel: &mut Kernel) {
        users_endpoints(kernel);
    }

    /// A users state with two children exported with `export_graph` runs
    /// on a fresh kernel given only the exported blobs.
    fn users_export_graph(kernel: &mut Kernel) {
        use users::Endpoint::*;
        let mut s = new_users(kernel);
        for u in 0..2 {
            assert_eq!(users_call(kernel, &mut s, AddUser, [u, 0, 0], &[]).0, 0);
            assert_eq!(users_call(kernel, &mut s, Put, [u, 3, 0], &[b'a' + u as u8; 5000]).0, 0);
        }
        let hashes = kernel.export_graph(&s).unwrap();
        assert_eq!(hashes[0], s);
        // users instance, image, memory, root; the kv image; per child:
        // instance, root, one value; one memory (both count 1) for both.
        assert_eq!(hashes.len(), 4 + 1 + 2 * 3 + 1, "{hashes:?}");
        let caps: Vec<Cap> = hashes.iter().map(|h| kernel.get_cap(h).unwrap()).collect();
        let mut fresh = capbox_tests::local_kernel();
        fresh.put_caps(&caps).unwrap();
        for u in 0..2 {
            let r = users_call(&mut fresh, &mut s, Get, [u, 3, 0], &[]);
            assert_eq!(r, (5000, 0, vec![b'a' + u as u8; 5000]));
        }
        let r = users_call(&mut fresh, &mut s, Put, [1, 4, 0], b"more");
        assert_eq!(r, (0, 0, vec![]));
    }

    /// Few hundred keys: a put costs ~0.1 s and a get ~60 ms in the
    /// sandbox on this nested-KVM machine.
    fn kv_200_keys(kernel: &mut Kernel) {
        kv_many_keys(kernel, 200, 50, 10);
    }
}

/// ≥ 200 random kv op sequences (1–3 ops each, from a fresh instance) on a
/// local kernel and on the sandbox: every outcome (exit, φ7, φ8, output,
/// gas, resulting hash) must agree, and match the model's answers.
#[test]
fn kv_differential() {
    let mut rng = Rng::new(0x6b76_6469_6666);
    let mut local = capbox_tests::local_kernel();
    let fresh = new_kv(&mut local);
    let mut calls = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..SEQUENCES {
        let mut model = KvModel::default();
        for i in 0..1 + rng.below(3) {
            let op = random_kv_op(&mut rng);
            let (endpoint, args, input) = op.call();
            calls.push(Invocation {
                instance: (i == 0).then_some(fresh),
                endpoint,
                args,
                gas: APP_GAS,
                input: input.to_vec(),
                timeout: None,
            });
            expected.push((op.clone(), model.apply(&op)));
        }
    }
    let local_outcomes = run_batches(&mut local, &calls);
    for (o, (op, want)) in local_outcomes.iter().zip(&expected) {
        assert_eq!(o.exit, ExitReason::Halt, "{op:?}");
        assert_eq!((o.r7, o.r8, &o.output), (want.0, want.1, &want.2), "{op:?}");
    }
    // Evicting all the time changes no outcome and no hash.
    let mut tiny = capbox_tests::local_kernel_with_budget(capbox_tests::TINY_BUDGET);
    assert_eq!(new_kv(&mut tiny), fresh);
    assert_eq!(run_batches(&mut tiny, &calls), local_outcomes);
    assert!(tiny.stats().unwrap().evictions > 0);
    let Some(mut sandbox) = capbox_tests::shared_sandbox() else {
        return;
    };
    assert_eq!(new_kv(&mut *sandbox), fresh);
    let start = std::time::Instant::now();
    let sandbox_outcomes = run_batches(&mut sandbox, &calls);
    eprintln!(
        "kv_differential: {} calls in the sandbox in {:?}",
        calls.len(),
        start.elapsed()
    );
    for (i, (l, s)) in local_outcomes.iter().zip(&sandbox_outcomes).enumerate() {
        assert_eq!(l, s, "call {i}: {:?}", expected[i].0);
    }
}

const SEQUENCES: usize = 200;

/// 10,000 keys stored with one `put` invocation each (batched into chains
/// of 500 per kernel call), then every key read back with `get`, and
/// `len`. Each put commits a new root CNode: with the CNode a persistent
/// Merkle tree, a put costs the same at 10,000 keys as at 10.
///
/// With a budget none of its 10,000 versions leave the directory: this is
/// about scale, and once a directory is full every new version of a
/// 10,000-slot CNode costs a spill of the whole CNode (~360 KB encoded and
/// re-hashed by the host; docs/kernel.md, "Eviction"), ~50 ms each in a
/// debug build. Eviction itself is tested in `eviction.rs`.
#[test]
fn local_kv_10000_keys_one_put_each() {
    let mut kernel = capbox_tests::local_kernel_with_budget(capbox_tests::HUGE_BUDGET);
    let keys = 10_000u64;
    let value = |k: u64| format!("v{k}:{}", k.wrapping_mul(0x9e37_79b9)).into_bytes();
    let mut state = new_kv(&mut kernel);
    for first in (0..keys).step_by(500) {
        let calls: Vec<Invocation> = (first..first + 500)
            .map(|k| Invocation {
                instance: (k == first).then_some(state),
                endpoint: kv::Endpoint::Put.index(),
                args: [k, 0, 0, 0],
                gas: APP_GAS,
                input: value(k),
                timeout: None,
            })
            .collect();
        for (k, result) in (first..).zip(kernel.invoke_batch(&calls).unwrap()) {
            let o = result.unwrap();
            assert_eq!((o.exit, o.r7, o.r8), (ExitReason::Halt, 0, 0), "put {k}");
            state = o.instance;
        }
    }
    let gets: Vec<Invocation> = (0..keys)
        .map(|k| Invocation {
            instance: Some(state),
            endpoint: kv::Endpoint::Get.index(),
            args: [k, 0, 0, 0],
            gas: APP_GAS,
            input: Vec::new(),
            timeout: None,
        })
        .collect();
    for chunk in gets.chunks(1000) {
        for (call, result) in chunk.iter().zip(kernel.invoke_batch(chunk).unwrap()) {
            let o = result.unwrap();
            let k = call.args[0];
            assert_eq!(
                (o.r7, &o.output),
                (value(k).len() as u64, &value(k)),
                "get {k}"
            );
            assert_eq!(o.instance, state, "a get changes nothing");
        }
    }
    let len = kernel
        .invoke(&state, kv::Endpoint::Len.index(), [0; 4], APP_GAS)
        .unwrap();
    assert_eq!(len.r7, keys);
}
