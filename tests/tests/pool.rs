//! The pool of kernels (docs/kernel.md "Pool"): the same outcomes and
//! hashes as one kernel running the same invocations in order, blobs
//! re-supplied across workers, and a fault that fails only its own
//! invocation.

use std::time::Duration;

use capbox::shared::cap::Image;
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::shared::kernel::{ExitReason, Outcome};
use capbox::{BackendChoice, Invocation, KernelError, Pool, PoolConfig, PoolError};

/// The sample program with `k` more heap pages (zeroed, unused by the
/// program), so every instance has a hash of its own.
fn tagged_image(k: u64) -> Image {
    let mut image = sample_image();
    image.heap_pages += k as u32;
    image
}

/// Invocation `round` on instance `k` at `state`: mostly state changes,
/// with reads, output, a loop, a panic (state unchanged) mixed in.
fn call(k: u64, round: u64, state: CapHash) -> Invocation {
    let (endpoint, args) = match (k + round) % 7 {
        0 | 1 => (Endpoint::Increment, [0; 4]),
        2 => (Endpoint::Add, [k + 1, 0, 0, 0]),
        3 => (Endpoint::Output, [0; 4]),
        4 => (Endpoint::Loop, [round + 2, 0, 0, 0]),
        5 => (Endpoint::WriteThenTrap, [0; 4]),
        _ => (Endpoint::Read, [0; 4]),
    };
    Invocation {
        instance: Some(state),
        endpoint: endpoint.index(),
        args,
        gas: 10_000,
        ..Invocation::default()
    }
}

/// What one kernel gives for `rounds` rounds over `instances` instances
/// run in order (round by round): every outcome, and the final states.
fn reference(instances: u64, rounds: u64) -> (Vec<Outcome>, Vec<CapHash>) {
    let mut kernel = capbox_tests::local_kernel();
    let mut states: Vec<CapHash> = (0..instances)
        .map(|k| kernel.create_instance(&tagged_image(k)).unwrap())
        .collect();
    let mut outcomes = Vec::new();
    for round in 0..rounds {
        for (k, state) in states.iter_mut().enumerate() {
            let o = kernel.invoke_one(&call(k as u64, round, *state)).unwrap();
            *state = o.instance;
            outcomes.push(o);
        }
    }
    (outcomes, states)
}

/// The same through `pool`, each round one `invoke_each` fanned out over
/// the instances; also checks both workers were used.
fn through_pool(pool: &Pool, instances: u64, rounds: u64) -> (Vec<Outcome>, Vec<CapHash>) {
    let mut states: Vec<CapHash> = (0..instances)
        .map(|k| pool.create_instance(&tagged_image(k)).unwrap())
        .collect();
    let mut used = vec![false; pool.jobs()];
    for s in &states {
        used[pool.worker_of(s).expect("a created instance has a worker")] = true;
    }
    assert!(
        used.iter().all(|u| *u),
        "instances spread over every worker: {used:?}"
    );
    let mut outcomes = Vec::new();
    for round in 0..rounds {
        let calls = (0..instances)
            .map(|k| call(k, round, states[k as usize]))
            .collect();
        for (k, result) in pool.invoke_each(calls).into_iter().enumerate() {
            let o = result.unwrap_or_else(|e| panic!("round {round} instance {k}: {e}"));
            states[k] = o.instance;
            outcomes.push(o);
        }
    }
    (outcomes, states)
}

fn local_pool(jobs: usize) -> Pool {
    Pool::new(PoolConfig {
        jobs,
        backend: BackendChoice::Local,
        ..PoolConfig::default()
    })
    .unwrap()
}

/// 1,000 invocations over 100 instances through a pool of 2 local
/// kernels: the same outcomes (exit, registers, output, gas, state hash)
/// and final hashes as one kernel running them in order; also as 100
/// chains of 10 (`invoke_chains`).
#[test]
fn local_pool_of_2_matches_one_kernel_1000_invocations_over_100_instances() {
    let (want, want_states) = reference(100, 10);
    let kinds: std::collections::HashSet<_> = want.iter().map(|o| o.exit).collect();
    assert!(kinds.contains(&ExitReason::Halt) && kinds.contains(&ExitReason::Panic));
    let pool = local_pool(2);
    let (got, got_states) = through_pool(&pool, 100, 10);
    assert_eq!(got.len(), 1000);
    assert_eq!(got, want);
    assert_eq!(got_states, want_states);

    // The same work as chains: chain k is instance k's 10 invocations.
    let pool = local_pool(2);
    let starts: Vec<CapHash> = (0..100)
        .map(|k| pool.create_instance(&tagged_image(k)).unwrap())
        .collect();
    let chains = (0..100u64)
        .map(|k| {
            (0..10)
                .map(|round| {
                    let mut c = call(k, round, starts[k as usize]);
                    c.instance = (round == 0).then_some(starts[k as usize]);
                    c
                })
                .collect()
        })
        .collect();
    let results = pool.invoke_chains(chains);
    for (k, chain) in results.into_iter().enumerate() {
        let chain: Vec<Outcome> = chain.unwrap().into_iter().map(Result::unwrap).collect();
        for (round, o) in chain.iter().enumerate() {
            assert_eq!(*o, want[round * 100 + k], "instance {k} round {round}");
        }
        assert_eq!(chain[9].instance, want_states[k]);
    }
}

/// A worker runs an instance another worker created: its kernel fetches
/// the blobs from that worker's host copy. A state that exists only
/// inside one worker's kernel is refused elsewhere (typed) until it is
/// exported.
#[test]
fn local_pool_resupplies_blobs_across_workers() {
    let pool = local_pool(2);
    let start = pool.create_instance(&sample_image()).unwrap();
    let home = pool.worker_of(&start).unwrap();
    let other = 1 - home;
    let inc = |state| Invocation {
        instance: Some(state),
        endpoint: Endpoint::Increment.index(),
        gas: 1000,
        ..Invocation::default()
    };
    let one = pool.invoke_one_on(other, &inc(start)).unwrap();
    assert_eq!((one.exit, one.r7), (ExitReason::Halt, 1));
    assert_eq!(pool.worker_of(&one.instance), Some(other));

    let two = pool.invoke_one(&inc(one.instance)).unwrap();
    assert_eq!(two.r7, 2);
    let err = pool.invoke_one_on(home, &inc(two.instance)).unwrap_err();
    assert!(
        matches!(err, PoolError::Kernel { worker, source: KernelError::Refused(_), .. } if worker == home),
        "{err}"
    );
    pool.export_instance(&two.instance).unwrap();
    let three = pool.invoke_one_on(home, &inc(two.instance)).unwrap();
    assert_eq!(three.r7, 3);
}

/// A refused invocation (an instance nobody has) in a fanned-out batch
/// fails alone, named by its position; a call naming no instance too.
#[test]
fn local_pool_a_refused_invocation_fails_alone() {
    let pool = local_pool(2);
    let states: Vec<CapHash> = (0..6)
        .map(|k| pool.create_instance(&tagged_image(k)).unwrap())
        .collect();
    let mut calls: Vec<Invocation> = states.iter().map(|s| call(0, 0, *s)).collect();
    calls[2].instance = Some(CapHash([7; 32]));
    calls[4].instance = None;
    let results = pool.invoke_each(calls);
    for (i, r) in results.iter().enumerate() {
        match i {
            2 => assert!(
                matches!(
                    r,
                    Err(PoolError::Kernel {
                        index: 2,
                        source: KernelError::Refused(_),
                        ..
                    })
                ),
                "{r:?}"
            ),
            4 => assert!(
                matches!(r, Err(PoolError::NoInstance { index: 4 })),
                "{r:?}"
            ),
            _ => assert_eq!(r.as_ref().unwrap().r7, 1, "#{i}"),
        }
    }
}

fn sandbox_required() -> bool {
    std::env::var("CAPBOX_REQUIRE_SANDBOX").is_ok_and(|v| v == "1")
}

/// A pool of `jobs` sandboxes with `config`, or `None` after saying
/// loudly why not (a failure with `CAPBOX_REQUIRE_SANDBOX=1`).
fn sandbox_pool(jobs: usize, config: capbox::SandboxConfig) -> Option<Pool> {
    match Pool::new(PoolConfig {
        jobs,
        backend: BackendChoice::Sandbox,
        sandbox: config,
        ..PoolConfig::default()
    }) {
        Ok(pool) => Some(pool),
        Err(e) if sandbox_required() => panic!("CAPBOX_REQUIRE_SANDBOX=1 but no sandbox pool: {e}"),
        Err(e) => {
            eprintln!(
                "!!! SKIPPED: no sandbox pool ({e}); set CAPBOX_REQUIRE_SANDBOX=1 to fail instead"
            );
            None
        }
    }
}

/// The equivalence on 2 sandboxes, smaller than the local test's 1,000
/// (each sandbox call costs ~7 ms on this nested KVM, and the first
/// invocation of each instance fetches its pages, ~40 ms a page): 12
/// instances × 4 rounds, against one local kernel (the backends agree bit
/// for bit).
#[test]
fn sandbox_pool_of_2_matches_one_kernel() {
    let Some(pool) = sandbox_pool(2, capbox::SandboxConfig::default()) else {
        return;
    };
    let (want, want_states) = reference(12, 4);
    let (got, got_states) = through_pool(&pool, 12, 4);
    assert_eq!(got, want);
    assert_eq!(got_states, want_states);
}

/// One sandbox's call is killed mid-batch (a loop without a deadline:
/// the watchdog ends it, a guest fault, the sandbox is rebuilt): only that
/// invocation fails, typed and named; the others succeed, and the pool
/// then serves further invocations on both workers, the faulted one
/// included.
#[test]
fn sandbox_a_crash_mid_batch_fails_only_that_invocation() {
    let config = capbox::SandboxConfig {
        call_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let Some(pool) = sandbox_pool(2, config) else {
        return;
    };
    let starts: Vec<CapHash> = (0..6)
        .map(|k| pool.create_instance(&tagged_image(k)).unwrap())
        .collect();
    let inc = |state| Invocation {
        instance: Some(state),
        endpoint: Endpoint::Increment.index(),
        gas: 1000,
        ..Invocation::default()
    };
    let mut calls: Vec<Invocation> = starts.iter().map(|s| inc(*s)).collect();
    calls[3] = Invocation {
        endpoint: Endpoint::Loop.index(),
        gas: u64::MAX,
        timeout: Some(Duration::MAX),
        ..inc(starts[3])
    };
    let faulted = pool.worker_of(&starts[3]).unwrap();
    let results = pool.invoke_each(calls);
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            assert!(
                matches!(r, Err(PoolError::Kernel { index: 3, worker, source: KernelError::GuestFault { .. } }) if *worker == faulted),
                "{r:?}"
            );
        } else {
            let o = r.as_ref().unwrap_or_else(|e| panic!("#{i}: {e}"));
            assert_eq!((o.exit, o.r7), (ExitReason::Halt, 1), "#{i}");
        }
    }
    // Both workers serve on: the created instances come back from the
    // host copies (the faulted sandbox is a new one).
    for worker in 0..2 {
        for s in &starts {
            let o = pool.invoke_one_on(worker, &inc(*s)).unwrap();
            assert_eq!(o.r7, 1);
        }
    }
    let o = pool.invoke_one(&inc(starts[3])).unwrap();
    assert_eq!(o.r7, 1);
}

/// Sanity of the reference itself: a pool of one and a kernel agree.
#[test]
fn local_pool_of_1_matches_one_kernel() {
    let (want, _) = reference(5, 3);
    let pool = local_pool(1);
    let (got, _) = through_pool(&pool, 5, 3);
    assert_eq!(got, want);
}

/// Typed refusals: too many workers; an empty chain runs nothing (as
/// `Kernel::invoke_batch`), a chain whose first call names no instance is
/// refused, and neither disturbs the chain next to it.
#[test]
fn local_pool_refuses_what_it_cannot_run() {
    let err = Pool::new(PoolConfig {
        jobs: capbox::MAX_JOBS + 1,
        backend: BackendChoice::Local,
        ..PoolConfig::default()
    })
    .err()
    .expect("too many jobs are refused");
    assert!(matches!(err, PoolError::TooManyJobs { .. }), "{err}");
    let pool = local_pool(2);
    let start = pool.create_instance(&sample_image()).unwrap();
    let unnamed = Invocation {
        instance: None,
        ..call(0, 0, start)
    };
    let results = pool.invoke_chains(vec![vec![], vec![unnamed], vec![call(0, 0, start)]]);
    assert!(
        matches!(&results[0], Ok(v) if v.is_empty()),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(results[1], Err(PoolError::NoInstance { index: 1 })),
        "{:?}",
        results[1]
    );
    let third = results[2].as_ref().unwrap();
    assert_eq!(third[0].as_ref().unwrap().r7, 1);
}

/// Two local kernels with tiny guest budgets and tiny host caches: each
/// worker's host copy keeps evicting while the other reads from it. The
/// same outcomes as one kernel, and no deadlock (a worker deciding what to
/// do with a blob leaving its cache must not wait on a peer's copy, which
/// may be waiting on it; found by a pool soak). A watchdog turns a hang
/// into a failure.
#[test]
fn local_pool_with_tiny_host_caches_matches_one_kernel_without_deadlock() {
    let (instances, rounds) = (24, 30);
    let (want, want_states) = reference(instances, rounds);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sandbox = capbox::SandboxConfig {
            blob_budget: Some(capbox_tests::TINY_BUDGET),
            ..capbox::SandboxConfig::default()
        };
        let pool = Pool::new(PoolConfig {
            jobs: 2,
            backend: BackendChoice::Local,
            sandbox,
            host_cache: Some((16 << 10, 8)),
            ..PoolConfig::default()
        })
        .unwrap();
        let _ = done.send(through_pool(&pool, instances, rounds));
    });
    let (got, got_states) = finished
        .recv_timeout(Duration::from_secs(300))
        .expect("the pool finished (a hang here is a deadlock between workers)");
    assert_eq!(got, want);
    assert_eq!(got_states, want_states);
}
