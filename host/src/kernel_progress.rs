//! The host's side of a batch's progress reports (`report_progress`):
//! every report is checked like a reply before anything of it is kept,
//! and what is kept is bounded.
//!
//! A report is accepted only while a batch that asked for reports runs,
//! only for the next call in order (a wrong, repeated or out-of-order call
//! number is a violation), with a result that is an `InvokeReply` of
//! exactly one call, and with blobs that decode and hash to the hash sent
//! with them. The first violation is recorded and every later report of
//! that request is ignored; the batch then fails with
//! [`KernelError::BadReport`]. Blobs are kept (in the host's copy) up to
//! [`MAX_REPORTED_BLOB_BYTES`] per request; past that they are dropped,
//! which only means that those states would not survive a guest fault.

use std::sync::Arc;

use capbox_shared::abi::{self, InvokeResultMsg, RemoteError};
use capbox_shared::cap::Cap;
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::MAX_BATCH_OUTPUT_BYTES;

use crate::error::KernelError;

/// Blob bytes one request's reports may add to the host's copy.
pub const MAX_REPORTED_BLOB_BYTES: usize = 1 << 30;

/// Reports of the request that is running.
#[derive(Default)]
pub(crate) struct Progress {
    /// Whether a request that asked for reports is running.
    active: bool,
    /// How many calls it carries.
    calls: usize,
    /// The reported results, in call order.
    pub(crate) results: Vec<Result<InvokeResultMsg, RemoteError>>,
    /// Blob bytes kept so far.
    blob_bytes: usize,
    /// Blob bytes it may keep ([`MAX_REPORTED_BLOB_BYTES`]).
    blob_budget: usize,
    /// Output bytes of the reported results.
    output_bytes: u64,
    /// Blobs dropped over [`MAX_REPORTED_BLOB_BYTES`].
    pub(crate) dropped_blobs: usize,
    /// The first problem with a report.
    pub(crate) violation: Option<String>,
}

impl Progress {
    /// Starts taking reports for a request of `calls` calls.
    pub(crate) fn start(&mut self, calls: usize) {
        self.start_with_budget(calls, MAX_REPORTED_BLOB_BYTES);
    }

    /// [`Self::start`] keeping at most `blob_budget` bytes of blobs.
    pub(crate) fn start_with_budget(&mut self, calls: usize, blob_budget: usize) {
        *self = Progress {
            active: true,
            calls,
            blob_budget,
            ..Progress::default()
        };
    }

    /// Stops taking reports; what they said.
    pub(crate) fn finish(&mut self) -> Progress {
        std::mem::take(self)
    }

    /// Checks one report; its verified blobs go to `keep` (hash, bytes).
    pub(crate) fn accept(&mut self, report: &[u8], keep: &mut dyn FnMut(CapHash, Arc<Vec<u8>>)) {
        if !self.active || self.violation.is_some() {
            return;
        }
        if let Err(problem) = self.check(report, keep) {
            self.violation = Some(problem);
        }
    }

    fn check(
        &mut self,
        report: &[u8],
        keep: &mut dyn FnMut(CapHash, Arc<Vec<u8>>),
    ) -> Result<(), String> {
        let msg = abi::decode_progress_report(report).map_err(|e| e.to_string())?;
        let expected = self.results.len();
        let call = msg.call as usize;
        if call != expected || call >= self.calls {
            return Err(format!(
                "a report for call {call} when call {expected} of {} was next",
                self.calls
            ));
        }
        // Blobs first: all of them are checked before any is kept.
        let mut verified = Vec::with_capacity(msg.blobs.len());
        for blob in &msg.blobs {
            let claimed = CapHash(blob.hash.unwrap_or_default());
            let cap =
                Cap::decode(blob.bytes).map_err(|e| format!("call {call}: blob {claimed}: {e}"))?;
            let hash = cap
                .hash()
                .map_err(|e| format!("call {call}: blob {claimed}: {e}"))?;
            if hash != claimed {
                return Err(format!(
                    "call {call}: blob sent as {claimed} hashes to {hash}"
                ));
            }
            verified.push((hash, blob.bytes));
        }
        if let Some(result) = msg.result {
            let mut one = abi::decode_invoke_reply_for(result, 1)
                .map_err(|e| format!("call {call}: {e}"))?
                .map_err(|e| format!("call {call}: a request-wide error in a report: {e}"))?;
            let Some(result) = one.pop() else {
                return Err(format!("call {call}: an empty result"));
            };
            // The kernel stops starting calls before a batch's outputs
            // pass this, so more is not a kernel's report.
            if let Ok(o) = &result {
                self.output_bytes += o.output.len() as u64;
                if self.output_bytes > MAX_BATCH_OUTPUT_BYTES {
                    return Err(format!(
                        "call {call}: outputs of {} bytes, over the batch's {MAX_BATCH_OUTPUT_BYTES}",
                        self.output_bytes
                    ));
                }
            }
            self.results.push(result);
        }
        for (hash, bytes) in verified {
            if self.blob_bytes + bytes.len() > self.blob_budget {
                self.dropped_blobs += 1;
                continue;
            }
            self.blob_bytes += bytes.len();
            keep(hash, Arc::new(bytes.to_vec()));
        }
        Ok(())
    }
}

/// What became of a batch's calls when the guest faulted during call
/// `ran` of a request (`reported`: the results of calls before it, in
/// order; `first`: the index of the request's first call in the batch;
/// `calls`: how many calls the request carried).
pub(crate) fn after_fault(
    first: usize,
    calls: usize,
    ran: usize,
    fault: KernelError,
) -> Vec<Result<capbox_shared::kernel::Outcome, KernelError>> {
    let faulted = first + ran;
    let mut out = Vec::with_capacity(calls - ran);
    if ran < calls {
        out.push(Err(KernelError::BatchFault {
            index: faulted,
            fault: Box::new(fault),
        }));
    }
    for index in faulted + 1..first + calls {
        out.push(Err(KernelError::BatchNotRun { index, faulted }));
    }
    out
}

#[cfg(test)]
#[path = "kernel_progress_tests.rs"]
mod tests;
