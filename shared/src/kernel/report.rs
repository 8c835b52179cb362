//! Progress reports of a batch (`ReportMode`): after each call the kernel
//! sends the host the call's result and, when asked, the blobs the call
//! committed, so a guest fault later in the batch loses none of them.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::service::KernelHost;
use crate::CacheDirectory;
use crate::abi::{self, CapBlobMsg};
use crate::cap::{Cap, CapHashOrRef};
use crate::hash::CapHash;

/// Blob bytes per report: a call that committed more is reported in
/// several (each well inside the smallest message limit a host sets).
pub const REPORT_CHUNK_BYTES: usize = 512 << 10;

/// The blobs of `new`'s graph that are not at the same place in `old`'s:
/// everything a call that turned instance `old` into `new` committed
/// (the new instance, its memory and root CNode if they changed, and
/// under a changed CNode every slot whose cap changed, nested instances
/// included). Whatever is equal to its counterpart in `old` is skipped
/// with everything under it, and a changed CNode is compared with its old
/// version subtree by subtree ([`crate::cap::CNode::changed_slots`]), so
/// this costs the changed part of the graph, not the whole graph. A blob the
/// directory does not hold (it never does for a graph it just committed)
/// is left out.
pub fn committed_blobs<S: BuildHasher>(
    dir: &CacheDirectory<S>,
    old: &CapHash,
    new: &CapHash,
) -> Vec<(CapHash, Vec<u8>)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    // (new hash, the hash at the same place in the old graph)
    let mut stack: Vec<(CapHash, Option<CapHash>)> = alloc::vec![(*new, Some(*old))];
    while let Some((hash, before)) = stack.pop() {
        if before == Some(hash) || !seen.insert(hash.0) {
            continue;
        }
        let Some(cap) = dir.get_blob(&hash) else {
            continue;
        };
        let Ok(bytes) = cap.encode() else {
            continue;
        };
        out.push((hash, bytes));
        let previous = before.and_then(|b| dir.get_blob(&b));
        let link = |l: &CapHashOrRef| match l {
            CapHashOrRef::Hash(h) => Some(*h),
            CapHashOrRef::Ref(_) => None,
        };
        match (&*cap, previous.as_deref()) {
            (Cap::Instance(now), old) => {
                let old = match old {
                    Some(Cap::Instance(o)) => Some(o),
                    _ => None,
                };
                let pairs = [
                    (Some(now.image), old.map(|o| o.image)),
                    (link(&now.memory), old.and_then(|o| link(&o.memory))),
                    (link(&now.root_cnode), old.and_then(|o| link(&o.root_cnode))),
                ];
                for (n, o) in pairs {
                    if let Some(n) = n {
                        stack.push((n, o));
                    }
                }
            }
            (Cap::CNode(now), old) => {
                let old = match old {
                    Some(Cap::CNode(o)) => Some(o),
                    _ => None,
                };
                match old {
                    // Only the slots that changed: O(changes), not O(slots).
                    Some(old) => {
                        for (slot, target) in now.changed_slots(old) {
                            if let Some(n) = link(target) {
                                stack.push((n, old.get(slot).and_then(link)));
                            }
                        }
                    }
                    None => {
                        for (_, target) in now.iter() {
                            if let Some(n) = link(target) {
                                stack.push((n, None));
                            }
                        }
                    }
                }
            }
            (Cap::Data(_) | Cap::Image(_) | Cap::Type(_), _) => {}
        }
    }
    out
}

/// Sends call `call`'s `result` (an `InvokeReply` of one call) with
/// `blobs`: in reports of at most [`REPORT_CHUNK_BYTES`] of blobs each
/// (one larger blob goes alone), the result in the last.
pub fn send_reports(
    host: &mut dyn KernelHost,
    call: u32,
    result: &[u8],
    blobs: &[(CapHash, Vec<u8>)],
) {
    let mut start = 0;
    loop {
        let mut end = start;
        let mut bytes = 0;
        while end < blobs.len()
            && (end == start || bytes + blobs[end].1.len() <= REPORT_CHUNK_BYTES)
        {
            bytes += blobs[end].1.len();
            end += 1;
        }
        let chunk: Vec<CapBlobMsg<'_>> = blobs[start..end]
            .iter()
            .map(|(hash, bytes)| CapBlobMsg {
                hash: Some(hash.0),
                bytes,
            })
            .collect();
        let last = end == blobs.len();
        host.report_progress(abi::encode_progress_report(
            call,
            last.then_some(result),
            &chunk,
        ));
        if last {
            return;
        }
        start = end;
    }
}
