//! Wall-clock deadlines (DESIGN §5): reaching one is an outcome, state
//! unchanged, never a fault, on both backends.

use std::time::{Duration, Instant};

use capbox::Invocation;
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::{Endpoint, sample_image};

capbox_tests::backend_tests! {
    /// The sample's `Loop` with φ7 = 0 loops until the gas is gone; with
    /// 10^11 gas (days in the sandbox here, over 20 s as machine code) a
    /// 2 s deadline ends it. On the
    /// sandbox nothing is rebuilt: a state committed before and never
    /// exported is still there.
    fn a_deadline_ends_a_long_loop_as_an_outcome(kernel: &mut Kernel) {
        let start = kernel.create_instance(&sample_image()).unwrap();
        let committed = kernel.invoke(&start, Endpoint::Increment.index(), [0; 4], 1000).unwrap();
        assert_eq!((committed.exit, committed.r7), (ExitReason::Halt, 1));
        let state = committed.instance;
        let blobs_before = kernel.stats().unwrap().blobs;

        let began = Instant::now();
        let o = kernel
            .invoke_one(&Invocation {
                instance: Some(state),
                endpoint: Endpoint::Loop.index(),
                args: [0; 4],
                gas: 100_000_000_000,
                input: Vec::new(),
                timeout: Some(Duration::from_secs(2)),
            })
            .unwrap();
        let took = began.elapsed();
        eprintln!("{}: timeout after {took:?}, {} gas", kernel.backend(), o.gas_used);
        assert_eq!(o.exit, ExitReason::Timeout);
        assert_eq!(o.instance, state, "a timeout commits nothing");
        assert!(o.gas_used > 0 && o.gas_used < 100_000_000_000, "{}", o.gas_used);
        assert!(took >= Duration::from_millis(1900), "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");

        // Same kernel, same blobs: no rebuild happened, and the committed
        // (never exported) state still runs.
        assert_eq!(kernel.stats().unwrap().blobs, blobs_before);
        let read = kernel.invoke(&state, Endpoint::Read.index(), [0; 4], 1000).unwrap();
        assert_eq!((read.exit, read.r7), (ExitReason::Halt, 1));
        let next = kernel.invoke(&state, Endpoint::Increment.index(), [0; 4], 1000).unwrap();
        assert_eq!((next.exit, next.r7), (ExitReason::Halt, 2));
    }
}

/// The deadlines of a batch are per invocation, and a timeout breaks no
/// chain: the next call runs on the unchanged state (local only: fast).
#[test]
fn batch_timeouts_are_per_invocation() {
    let mut kernel = capbox_tests::local_kernel();
    let start = kernel.create_instance(&sample_image()).unwrap();
    let call = |instance, endpoint: Endpoint, timeout: Option<Duration>| Invocation {
        instance,
        endpoint: endpoint.index(),
        args: [0; 4],
        gas: u64::MAX,
        input: Vec::new(),
        timeout,
    };
    let results = kernel
        .invoke_batch(&[
            call(Some(start), Endpoint::Increment, None),
            call(None, Endpoint::Loop, Some(Duration::from_millis(50))),
            call(None, Endpoint::Read, Some(Duration::ZERO)),
        ])
        .unwrap();
    let outcomes: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes[0].exit, ExitReason::Halt);
    assert_eq!(outcomes[1].exit, ExitReason::Timeout);
    assert_eq!(outcomes[1].instance, outcomes[0].instance);
    // A zero deadline still lets a short invocation finish: the clock is
    // only looked at after a slice of gas.
    assert_eq!((outcomes[2].exit, outcomes[2].r7), (ExitReason::Halt, 1));
}

/// `Kernel::invoke` uses the kernel's default deadline.
#[test]
fn the_default_deadline_applies_to_invoke() {
    let mut kernel = capbox_tests::local_kernel();
    assert_eq!(kernel.default_timeout(), capbox::DEFAULT_TIMEOUT);
    kernel.set_default_timeout(Duration::from_millis(100));
    let start = kernel.create_instance(&sample_image()).unwrap();
    let began = Instant::now();
    let o = kernel
        .invoke(&start, Endpoint::Loop.index(), [0; 4], u64::MAX)
        .unwrap();
    assert_eq!((o.exit, o.instance), (ExitReason::Timeout, start));
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
}
