//! Progress reports of a batch: what the kernel reports, in what order,
//! and that the reported blobs are enough to rebuild every state.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::sample::{Endpoint, sample_image};
use super::*;
use crate::CacheDirectory;
use crate::abi::{self, GuestFunction, InvocationMsg, ReportMode};
use crate::cap::{CNode, Cap, CapHashOrRef, Data, InstanceCap};
use crate::hash::CapHash;

/// Records every report.
#[derive(Default)]
struct Recorder(Vec<Vec<u8>>);

impl LogSink for Recorder {
    fn log(&mut self, _message: &[u8]) {}
}

impl KernelHost for Recorder {
    fn fetch_blob(&mut self, _hash: &CapHash) -> Option<Vec<u8>> {
        None
    }

    fn report_progress(&mut self, report: Vec<u8>) {
        self.0.push(report);
    }
}

/// A directory holding the sample image and a fresh instance of it (the
/// state a batch starts from); the caps and the instance's hash.
fn start() -> (CacheDirectory, Vec<Cap>, CapHash) {
    let dir = CacheDirectory::new();
    let image = sample_image();
    let image_cap = Cap::Image(image.clone());
    let image_hash = dir.put_cap(&image_cap).unwrap();
    let fresh = new_instance(image_hash, &image).unwrap();
    let caps = alloc::vec![image_cap, fresh.memory, fresh.root_cnode, fresh.instance];
    for cap in &caps {
        dir.put_cap(cap).unwrap();
    }
    (dir, caps, fresh.instance_hash)
}

fn call(instance: [u8; 32], ep: Endpoint) -> InvocationMsg<'static> {
    InvocationMsg {
        instance,
        endpoint: ep.index(),
        args: [0; 4],
        gas: 1000,
        input: &[],
        timeout: NO_TIMEOUT,
    }
}

/// Runs `calls` as one `invoke` with `mode`; (reply, reports).
fn run(mode: ReportMode, calls: &[InvocationMsg<'_>]) -> (Vec<u8>, Vec<Vec<u8>>, CapHash) {
    let (dir, _, instance) = start();
    let programs = ProgramCache::new();
    let mut calls = calls.to_vec();
    calls[0].instance = instance.0;
    let mut host = Recorder::default();
    let request = abi::encode_invoke_request_reporting(&[], &calls, mode);
    let reply = KernelState {
        dir: &dir,
        programs: &programs,
    }
    .handle_owned(&mut host, GuestFunction::Invoke, request);
    (reply, host.0, instance)
}

#[test]
fn reports_follow_the_calls_and_agree_with_the_reply() {
    let calls = [
        call([0; 32], Endpoint::Increment),
        call([0; 32], Endpoint::Read),
        call([0; 32], Endpoint::Trap),
        call([0; 32], Endpoint::Increment),
        // An instance the kernel does not have: an error, reported too.
        call([7; 32], Endpoint::Read),
    ];
    let (off_reply, off_reports, _) = run(ReportMode::Off, &calls);
    assert!(off_reports.is_empty());
    for mode in [ReportMode::Outcomes, ReportMode::OutcomesAndState] {
        let (reply, reports, _) = run(mode, &calls);
        assert_eq!(reply, off_reply, "{mode:?}: reports change nothing");
        let results = abi::decode_invoke_reply_for(&reply, calls.len())
            .unwrap()
            .unwrap();
        assert_eq!(reports.len(), calls.len(), "{mode:?}: one report per call");
        for (i, report) in reports.iter().enumerate() {
            let r = abi::decode_progress_report(report).unwrap();
            assert_eq!(r.call as usize, i);
            let one = abi::decode_invoke_reply_for(r.result.unwrap(), 1)
                .unwrap()
                .unwrap();
            assert_eq!(one[0], results[i], "{mode:?} call {i}");
            // Blobs only for calls that committed, only when asked.
            let committed = i == 0 || i == 3;
            assert_eq!(
                !r.blobs.is_empty(),
                committed && mode == ReportMode::OutcomesAndState,
                "{mode:?} call {i}"
            );
        }
    }
}

/// A kernel that has only the batch's starting state plus the reported
/// blobs (the host's copy after a rebuild) runs every reported state.
#[test]
fn reported_blobs_rebuild_every_state() {
    let calls: Vec<_> = (0..4).map(|_| call([0; 32], Endpoint::Increment)).collect();
    let (reply, reports, _) = run(ReportMode::OutcomesAndState, &calls);
    let results = abi::decode_invoke_reply_for(&reply, 4).unwrap().unwrap();
    let (fresh, _, _) = start();
    for report in &reports {
        for blob in abi::decode_progress_report(report).unwrap().blobs {
            let cap = Cap::decode(blob.bytes).unwrap();
            assert_eq!(fresh.put_cap(&cap).unwrap().0, blob.hash.unwrap());
        }
    }
    let programs = ProgramCache::new();
    for (i, result) in results.iter().enumerate() {
        let state = CapHash(result.as_ref().unwrap().instance);
        let read = invoke(&fresh, &programs, &mut NoLog, &state, 1, [0; 4], 1000).unwrap();
        assert_eq!((read.exit, read.r7), (ExitReason::Halt, i as u64 + 1));
    }
}

/// Reports of a call that committed more than a chunk are split, the
/// result in the last one.
#[test]
fn large_commits_are_split_into_chunks() {
    let blobs: Vec<(CapHash, Vec<u8>)> = (0..3u8)
        .map(|i| {
            let cap = Cap::Data(Data::from_bytes(&alloc::vec![i + 1; 300 << 10]).unwrap());
            (cap.hash().unwrap(), cap.encode().unwrap())
        })
        .collect();
    let mut host = Recorder::default();
    report::send_reports(&mut host, 4, b"result", &blobs);
    let decoded: Vec<_> = host
        .0
        .iter()
        .map(|r| abi::decode_progress_report(r).unwrap())
        .collect();
    assert_eq!(decoded.len(), 3, "300 KiB blobs, 512 KiB chunks");
    assert!(decoded.iter().all(|r| r.call == 4 && r.blobs.len() == 1));
    assert!(decoded[..2].iter().all(|r| r.result.is_none()));
    assert_eq!(decoded[2].result, Some(&b"result"[..]));
}

/// The diff walks into changed CNodes and nested instances and skips
/// whatever is the same as before.
#[test]
fn committed_blobs_are_the_changed_part_of_the_graph() {
    let dir: CacheDirectory = CacheDirectory::new();
    let put = |cap: &Cap| dir.put_cap(cap).unwrap();
    let data = |b: u8| Cap::Data(Data::from_bytes(&[b; 64]).unwrap());
    let image = put(&Cap::Image(sample_image()));
    let instance = |memory: CapHash, root: CapHash| {
        Cap::Instance(InstanceCap {
            image,
            memory: CapHashOrRef::Hash(memory),
            root_cnode: CapHashOrRef::Hash(root),
            image_hash_chain: image,
        })
    };
    let cnode = |slots: &[(u32, CapHash)]| {
        let mut c = CNode::new();
        for (slot, hash) in slots {
            c.set(*slot, CapHashOrRef::Hash(*hash)).unwrap();
        }
        Cap::CNode(c)
    };
    let empty = put(&cnode(&[]));
    let (m1, m2, kept, extra) = (put(&data(1)), put(&data(2)), put(&data(3)), put(&data(4)));
    let child_old = put(&instance(m1, empty));
    let child_new = put(&instance(m2, empty));
    let root_old = put(&cnode(&[(0, child_old), (1, kept)]));
    let root_new = put(&cnode(&[(0, child_new), (1, kept), (2, extra)]));
    let old = put(&instance(m1, root_old));
    let new = put(&instance(m1, root_new));

    let got: BTreeSet<CapHash> = committed_blobs(&dir, &old, &new)
        .into_iter()
        .map(|(hash, bytes)| {
            assert_eq!(Cap::decode(&bytes).unwrap().hash().unwrap(), hash);
            hash
        })
        .collect();
    let want: BTreeSet<CapHash> = [new, root_new, child_new, m2, extra].into();
    assert_eq!(got, want);
    assert!(committed_blobs(&dir, &old, &old).is_empty());
}
