//! Partial batches: a batch keeps every completed invocation's result
//! when one of them times out or the guest faults, and says why the rest
//! did not run (docs/kernel.md "Partial batches").

use std::time::Duration;

use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{Invocation, KernelError, ReportMode};

/// A batch of 50 invocations from `start`: chained increments, except
/// number 30 (index 29), which is `thirtieth`.
fn batch_of_50(start: capbox::shared::hash::CapHash, thirtieth: Invocation) -> Vec<Invocation> {
    (0..50)
        .map(|i| match i {
            29 => thirtieth.clone(),
            _ => Invocation {
                instance: (i == 0).then_some(start),
                endpoint: Endpoint::Increment.index(),
                gas: 1000,
                // No deadline of its own (the watchdog alone bounds it).
                timeout: Some(Duration::MAX),
                ..Default::default()
            },
        })
        .collect()
}

/// A loop that never ends by itself.
fn endless(timeout: Option<Duration>) -> Invocation {
    Invocation {
        instance: None,
        endpoint: Endpoint::Loop.index(),
        gas: u64::MAX,
        timeout,
        ..Default::default()
    }
}

capbox_tests::backend_tests! {
    /// Invocation 30 hits its deadline: it is a `Timeout` outcome (state
    /// unchanged) and, as documented, the chain goes on from the state
    /// invocation 29 left, so the 20 after it run too.
    fn a_deadline_in_a_batch_of_50_ends_only_that_invocation(kernel: &mut Kernel) {
        // The setting docs/kernel.md recommends for batches that must
        // survive a fault (the shared sandbox gets it back afterwards).
        let before = kernel.batch_reports();
        kernel.set_batch_reports(ReportMode::OutcomesAndState);
        let start = kernel.create_instance(&sample_image()).unwrap();
        let calls = batch_of_50(start, endless(Some(Duration::from_millis(200))));
        let results = kernel.invoke_batch(&calls).unwrap();
        assert_eq!(results.len(), 50);
        let outcomes: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        for (i, o) in outcomes.iter().enumerate().take(29) {
            assert_eq!((o.exit, o.r7), (ExitReason::Halt, i as u64 + 1), "#{}", i + 1);
        }
        assert_eq!(outcomes[29].exit, ExitReason::Timeout);
        assert_eq!(outcomes[29].instance, outcomes[28].instance, "a timeout commits nothing");
        for (i, o) in outcomes.iter().enumerate().skip(30) {
            assert_eq!((o.exit, o.r7), (ExitReason::Halt, i as u64), "#{}", i + 1);
        }
        kernel.set_batch_reports(before);
    }
}

/// Every report mode gives the same results when nothing faults (the
/// reply is authoritative and the reports must agree with it).
#[test]
fn report_modes_do_not_change_results() {
    let mut kernel = capbox_tests::local_kernel();
    let start = kernel.create_instance(&sample_image()).unwrap();
    let mut calls = batch_of_50(start, endless(Some(Duration::from_millis(20))));
    // Some variety: output, a panic, a chained call after it (refused).
    calls[3].endpoint = Endpoint::Output.index();
    calls[10].endpoint = Endpoint::Trap.index();
    let mut seen = Vec::new();
    for mode in [
        ReportMode::Off,
        ReportMode::Outcomes,
        ReportMode::OutcomesAndState,
    ] {
        kernel.set_batch_reports(mode);
        let results = kernel.invoke_batch(&calls).unwrap();
        let shown: Vec<String> = results
            .iter()
            .map(|r| match r {
                // Where a loop stopped depends on the clock.
                Ok(o) if o.exit == ExitReason::Timeout => format!("Timeout {}", o.instance),
                Ok(o) => format!("{:?} {} {:?} {}", o.exit, o.r7, o.output, o.instance),
                Err(e) => e.to_string(),
            })
            .collect();
        assert!(shown[3].contains("Halt"), "{}", shown[3]);
        assert!(shown[10].contains("Panic"), "{}", shown[10]);
        seen.push(shown);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
}

/// The guest faults during invocation 30 (the watchdog kills a loop with
/// no deadline; the sandbox is rebuilt): 29 outcomes whose states survive
/// the rebuild, a typed fault for 30, a typed "not run" for 31 to 50.
/// With `Outcomes` only the outcomes survive, not the states.
#[test]
fn sandbox_fault_in_a_batch_of_50_keeps_29_results_and_their_states() {
    // Long enough for 29 increments with reports (~4 s here), short
    // enough to keep the test quick.
    let config = capbox::SandboxConfig {
        call_timeout: Duration::from_secs(8),
        ..Default::default()
    };
    let Some(mut kernel) = capbox_tests::own_sandbox(config) else {
        return;
    };
    kernel.set_batch_reports(ReportMode::OutcomesAndState);
    let start = kernel.create_instance(&sample_image()).unwrap();
    let calls = batch_of_50(start, endless(Some(Duration::MAX)));

    let results = kernel.invoke_batch(&calls).unwrap();
    let last = check_partial(&results);
    // The committed states came through the reports: after the rebuild
    // the host re-supplies them, and the counter goes on from 29.
    let next = kernel
        .invoke(&last, Endpoint::Increment.index(), [0; 4], 1000)
        .unwrap();
    assert_eq!((next.exit, next.r7), (ExitReason::Halt, 30));
    let Ok(tenth) = &results[9] else {
        panic!("{:?}", results[9])
    };
    let read = kernel
        .invoke(&tenth.instance, Endpoint::Read.index(), [0; 4], 1000)
        .unwrap();
    assert_eq!(read.r7, 10);

    // Outcomes only (a batch of 5 faulting at its third, to save time):
    // the outcomes are kept but the states were lost with the VM (from
    // counter 30, a state the host never had).
    kernel.set_batch_reports(ReportMode::Outcomes);
    let mut calls = batch_of_50(next.instance, endless(Some(Duration::MAX)));
    calls.truncate(5);
    calls[2] = endless(Some(Duration::MAX));
    let results = kernel.invoke_batch(&calls).unwrap();
    let Ok(last) = &results[1] else {
        panic!("{:?}", results[1])
    };
    assert_eq!(last.r7, 32);
    assert!(matches!(
        results[2],
        Err(KernelError::BatchFault { index: 2, .. })
    ));
    assert!(matches!(
        results[4],
        Err(KernelError::BatchNotRun {
            index: 4,
            faulted: 2
        })
    ));
    let last = last.instance;
    let err = kernel
        .invoke(&last, Endpoint::Increment.index(), [0; 4], 1000)
        .unwrap_err();
    assert!(matches!(err, KernelError::Refused(_)), "{err}");
}

/// Checks the shape after a fault at invocation 30 of a batch of
/// increments from counter 0; the 29th's instance.
fn check_partial(
    results: &[Result<capbox::shared::kernel::Outcome, KernelError>],
) -> capbox::shared::hash::CapHash {
    let base = 0;
    assert_eq!(results.len(), 50);
    for (i, r) in results.iter().enumerate().take(29) {
        let o = r.as_ref().unwrap();
        assert_eq!(
            (o.exit, o.r7),
            (ExitReason::Halt, base + i as u64 + 1),
            "#{}",
            i + 1
        );
    }
    match &results[29] {
        Err(KernelError::BatchFault { index: 29, fault }) => {
            assert!(matches!(**fault, KernelError::GuestFault { .. }), "{fault}");
            assert!(fault.to_string().contains("timed out"), "{fault}");
        }
        other => panic!("#30: {other:?}"),
    }
    for (i, r) in results.iter().enumerate().skip(30) {
        assert!(
            matches!(r, Err(KernelError::BatchNotRun { index, faulted: 29 }) if *index == i),
            "#{}: {r:?}",
            i + 1
        );
    }
    results[28].as_ref().unwrap().instance
}

/// With reports on, a batch past the reply budget still arrives whole:
/// the kernel refuses the tail unreported (`ReplyBudget`), the host sends
/// it again, and the reports of each request match its reply.
#[test]
fn reports_and_the_reply_budget_work_together() {
    use capbox::shared::cap::Image;
    use capbox::shared::kernel::KernelOp;
    use capbox::shared::pvm::asm::{ProgramBuilder, Reg};
    // Outputs 1 MiB (`MAX_OUTPUT_LEN`) of its memory.
    let mut b = ProgramBuilder::new();
    b.load_imm(Reg::R7, 0x2_0000u32)
        .load_imm(Reg::R8, 1u32 << 20)
        .ecalli(KernelOp::SetOutput.number())
        .jump_ind(Reg::R0, 0u32);
    let image = Image {
        code: b.build().unwrap(),
        ro_data: vec![],
        rw_data: (0..4096u32).map(|i| (i % 251) as u8).collect(),
        heap_pages: 256,
        stack_size: 4096,
        endpoints: vec![0],
        endpoint_names: Vec::new(),
    };
    for mode in [ReportMode::Outcomes, ReportMode::OutcomesAndState] {
        let mut kernel = capbox_tests::local_kernel();
        kernel.set_batch_reports(mode);
        let start = kernel.create_instance(&image).unwrap();
        let calls: Vec<Invocation> = (0..7)
            .map(|i| Invocation {
                instance: (i == 0).then_some(start),
                endpoint: 0,
                gas: 1_000_000,
                ..Default::default()
            })
            .collect();
        let results = kernel.invoke_batch(&calls).unwrap();
        assert_eq!(results.len(), 7, "{mode:?}");
        for r in results {
            let o = r.unwrap();
            assert_eq!(
                (o.exit, o.instance, o.output.len()),
                (ExitReason::Halt, start, 1 << 20)
            );
        }
    }
}
