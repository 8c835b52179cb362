//! The host's checks of progress reports, against what a compromised
//! guest could send.

use std::sync::Arc;

use capbox_shared::abi::{
    self, CapBlobMsg, ErrorKind, ExitMsg, InvokeResultMsg, RemoteError, encode_progress_report,
};
use capbox_shared::cap::{Cap, Data};
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::MAX_BATCH_OUTPUT_BYTES;

use super::{Progress, after_fault};
use crate::error::KernelError;

fn outcome(r7: u64, output: Vec<u8>) -> InvokeResultMsg {
    InvokeResultMsg {
        exit: ExitMsg { kind: 0, arg: 0 },
        r7,
        r8: 0,
        output,
        gas_used: 5,
        instance: [r7 as u8; 32],
    }
}

fn one_result(r7: u64) -> Vec<u8> {
    abi::encode_invoke_reply(Ok(&[Ok(outcome(r7, Vec::new()))]))
}

fn blob(seed: u8) -> (CapHash, Vec<u8>) {
    let cap = Cap::Data(Data::from_bytes(&[seed; 100]).unwrap());
    (cap.hash().unwrap(), cap.encode().unwrap())
}

fn msgs(blobs: &[(CapHash, Vec<u8>)]) -> Vec<CapBlobMsg<'_>> {
    blobs
        .iter()
        .map(|(h, b)| CapBlobMsg {
            hash: Some(h.0),
            bytes: b,
        })
        .collect()
}

/// Feeds `reports` to a progress of `calls` calls; (progress, kept hashes).
fn feed(calls: usize, budget: usize, reports: &[Vec<u8>]) -> (Progress, Vec<CapHash>) {
    let mut progress = Progress::default();
    progress.start_with_budget(calls, budget);
    let mut kept = Vec::new();
    for report in reports {
        progress.accept(report, &mut |hash, _bytes: Arc<Vec<u8>>| kept.push(hash));
    }
    (progress.finish(), kept)
}

#[test]
fn good_reports_are_kept_in_order() {
    let (a, b) = (blob(1), blob(2));
    let reports = [
        // Call 0 in two reports: blobs first, then the result.
        encode_progress_report(0, None, &msgs(std::slice::from_ref(&a))),
        encode_progress_report(0, Some(&one_result(1)), &[]),
        encode_progress_report(1, Some(&one_result(2)), &msgs(std::slice::from_ref(&b))),
    ];
    let (p, kept) = feed(3, usize::MAX, &reports);
    assert_eq!(p.violation, None);
    assert_eq!(
        p.results,
        vec![Ok(outcome(1, vec![])), Ok(outcome(2, vec![]))]
    );
    assert_eq!(kept, vec![a.0, b.0]);
}

#[test]
fn an_error_result_is_a_result() {
    let error = RemoteError {
        kind: ErrorKind::MissingCap,
        message: "gone".into(),
        hash: Some([7; 32]),
    };
    let result = abi::encode_invoke_reply(Ok(&[Err(error.clone())]));
    let (p, _) = feed(
        1,
        usize::MAX,
        &[encode_progress_report(0, Some(&result), &[])],
    );
    assert_eq!(p.violation, None);
    assert_eq!(p.results, vec![Err(error)]);
}

/// Every kind of bad report is a violation, keeps nothing of itself, and
/// stops everything after it.
#[test]
fn hostile_reports_are_violations() {
    let good = blob(3);
    let mut forged = blob(4);
    forged.0 = good.0;
    let two = abi::encode_invoke_reply(Ok(&[Ok(outcome(1, vec![])), Ok(outcome(2, vec![]))]));
    let wide = abi::encode_invoke_reply(Err(&RemoteError {
        kind: ErrorKind::Kernel,
        message: "x".into(),
        hash: None,
    }));
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("garbage", vec![b"not a flatbuffer at all".to_vec()]),
        ("empty", vec![Vec::new()]),
        (
            "wrong index",
            vec![encode_progress_report(1, Some(&one_result(1)), &[])],
        ),
        (
            "duplicate",
            vec![
                encode_progress_report(0, Some(&one_result(1)), &[]),
                encode_progress_report(0, Some(&one_result(1)), &[]),
            ],
        ),
        (
            "past the batch",
            vec![encode_progress_report(9, Some(&one_result(1)), &[])],
        ),
        (
            "no result, no blobs",
            vec![encode_progress_report(0, None, &[])],
        ),
        (
            "two results in one",
            vec![encode_progress_report(0, Some(&two), &[])],
        ),
        (
            "request-wide error",
            vec![encode_progress_report(0, Some(&wide), &[])],
        ),
        (
            "result not a reply",
            vec![encode_progress_report(0, Some(b"junk"), &[])],
        ),
        (
            "blob with a false hash",
            vec![encode_progress_report(
                0,
                Some(&one_result(1)),
                &msgs(&[forged]),
            )],
        ),
        (
            "blob that does not decode",
            vec![encode_progress_report(
                0,
                Some(&one_result(1)),
                &[CapBlobMsg {
                    hash: Some([1; 32]),
                    bytes: &[0xff, 1, 2],
                }],
            )],
        ),
        (
            "blob without a hash",
            vec![encode_progress_report(
                0,
                None,
                &[CapBlobMsg {
                    hash: None,
                    bytes: &good.1,
                }],
            )],
        ),
    ];
    for (name, mut reports) in cases {
        // A good report after the bad one is ignored too.
        reports.push(encode_progress_report(
            0,
            Some(&one_result(1)),
            &msgs(std::slice::from_ref(&good)),
        ));
        let (p, kept) = feed(2, usize::MAX, &reports);
        assert!(p.violation.is_some(), "{name}: accepted");
        assert!(p.results.len() <= 1, "{name}: {:?}", p.results);
        assert!(kept.is_empty(), "{name}: kept {kept:?}");
    }
}

#[test]
fn reports_outside_a_batch_are_dropped() {
    let mut progress = Progress::default();
    let mut kept = 0;
    let good = blob(5);
    progress.accept(
        &encode_progress_report(0, Some(&one_result(1)), &msgs(&[good])),
        &mut |_, _| kept += 1,
    );
    let p = progress.finish();
    assert_eq!((kept, p.results.len(), p.violation), (0, 0, None));
}

#[test]
fn memory_is_bounded() {
    // Blobs over the budget are dropped (counted), not kept.
    let blobs: Vec<_> = (1..=10).map(blob).collect();
    let size = blobs[0].1.len();
    let reports: Vec<Vec<u8>> = blobs
        .chunks(1)
        .zip(0u32..)
        .map(|(b, i)| encode_progress_report(i, Some(&one_result(i.into())), &msgs(b)))
        .collect();
    let (p, kept) = feed(10, 3 * size, &reports);
    assert_eq!(p.violation, None);
    assert_eq!((kept.len(), p.dropped_blobs, p.results.len()), (3, 7, 10));

    // Outputs past what a kernel's batch can produce are a violation.
    let big = vec![1u8; 1 << 20];
    let reports: Vec<Vec<u8>> = (0u32..5)
        .map(|i| {
            let r = abi::encode_invoke_reply(Ok(&[Ok(outcome(i.into(), big.clone()))]));
            encode_progress_report(i, Some(&r), &[])
        })
        .collect();
    let (p, _) = feed(5, usize::MAX, &reports);
    assert!(p.violation.is_some());
    assert!(p.results.len() as u64 * (1 << 20) <= MAX_BATCH_OUTPUT_BYTES);
}

#[test]
fn after_a_fault_each_call_says_why() {
    let fault = || KernelError::GuestFault {
        function: "invoke",
        detail: "boom".into(),
    };
    // A round of 5 calls starting at batch index 10; 2 reported.
    let rest = after_fault(10, 5, 2, fault());
    assert_eq!(rest.len(), 3);
    assert!(
        matches!(&rest[0], Err(KernelError::BatchFault { index: 12, fault })
        if matches!(**fault, KernelError::GuestFault { .. }))
    );
    assert!(matches!(
        rest[1],
        Err(KernelError::BatchNotRun {
            index: 13,
            faulted: 12
        })
    ));
    assert!(matches!(
        rest[2],
        Err(KernelError::BatchNotRun {
            index: 14,
            faulted: 12
        })
    ));
    // Every call reported: the fault came after them; nothing is lost.
    assert!(after_fault(0, 3, 3, fault()).is_empty());
}
