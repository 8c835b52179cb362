//! [`Kernel::invoke_batch`]: batches, their reply-budget resends, and the
//! progress reports that let a batch survive a guest fault (see "Partial
//! batches" in docs/kernel.md).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use capbox_shared::abi::{self, GuestFunction, InvocationMsg, InvokeResultMsg, RemoteError};
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::{ExitReason, Outcome};

use super::progress::{Progress, after_fault};
use super::{Invocation, Kernel, ReportMode, lock};
use crate::error::KernelError;

pub(super) fn lock_progress(progress: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    // Progress is reset at the start of every request.
    progress.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a round of a batch failed.
enum RoundError {
    /// The guest faulted; `reported` are the results reported before.
    Fault {
        reported: Vec<Result<Outcome, KernelError>>,
        fault: KernelError,
    },
    /// Anything else: the batch's error.
    Other(KernelError),
}

impl From<KernelError> for RoundError {
    fn from(e: KernelError) -> Self {
        RoundError::Other(e)
    }
}

/// The outcome a wire result describes.
fn outcome_of(msg: InvokeResultMsg) -> Result<Outcome, KernelError> {
    let exit = ExitReason::from_wire(msg.exit.kind, msg.exit.arg)
        .ok_or_else(|| KernelError::Protocol(format!("unknown exit kind {}", msg.exit.kind)))?;
    Ok(Outcome {
        exit,
        r7: msg.r7,
        r8: msg.r8,
        output: msg.output,
        gas_used: msg.gas_used,
        instance: CapHash(msg.instance),
    })
}

/// Whether a reported result says what the reply says.
fn same_result(
    reported: &Result<InvokeResultMsg, RemoteError>,
    replied: &Result<Outcome, KernelError>,
) -> bool {
    match (reported, replied) {
        (Ok(r), Ok(o)) => {
            ExitReason::from_wire(r.exit.kind, r.exit.arg) == Some(o.exit)
                && (r.r7, r.r8, r.gas_used) == (o.r7, o.r8, o.gas_used)
                && r.output == o.output
                && r.instance == o.instance.0
        }
        (Err(r), Err(KernelError::Refused(e))) => r == e,
        _ => false,
    }
}

impl Kernel {
    /// Runs invocations in order in one kernel call. The outer error is
    /// for the call as a whole; each inner result is one invocation's.
    ///
    /// With batch reports on ([`Self::set_batch_reports`]; off by
    /// default, for their cost) a guest fault in the middle of the batch is not the
    /// batch's error: the invocations that completed keep their outcomes
    /// (and, with `OutcomesAndState`, their states survive the rebuild),
    /// the one that was running is [`KernelError::BatchFault`] and every
    /// later one [`KernelError::BatchNotRun`]. Nothing is re-run.
    pub fn invoke_batch(
        &mut self,
        calls: &[Invocation],
    ) -> Result<Vec<Result<Outcome, KernelError>>, KernelError> {
        let report = self.batch_reports;
        let mut deadlines = Duration::ZERO;
        let msgs: Vec<InvocationMsg<'_>> = calls
            .iter()
            .map(|c| {
                let timeout = c.timeout.unwrap_or(self.default_timeout);
                deadlines = deadlines.saturating_add(self.watchdog_share(timeout));
                InvocationMsg {
                    instance: c.instance.map(|h| h.0).unwrap_or([0; 32]),
                    endpoint: c.endpoint,
                    args: c.args,
                    gas: c.gas,
                    input: &c.input,
                    timeout: self.backend.clock_ticks(timeout),
                }
            })
            .collect();
        if report.reports_state()
            && let Some(first) = msgs.first().filter(|m| m.instance != [0; 32])
        {
            self.keep_starting_state(&CapHash(first.instance));
        }
        // The kernel runs a batch's calls while its reply budget lasts
        // and refuses the rest (`ReplyBudget`, not run): send those again,
        // the first named by the state its predecessor left.
        let mut out = Vec::with_capacity(msgs.len());
        let mut rest = msgs;
        loop {
            let named = rest.first().is_some_and(|m| m.instance != [0; 32]);
            let results = match self.invoke_round(&rest, named, deadlines, report) {
                Ok(results) => results,
                Err(RoundError::Fault { reported, fault }) => {
                    let first = out.len();
                    let ran = reported.len();
                    out.extend(reported);
                    out.extend(after_fault(first, rest.len(), ran, fault));
                    return Ok(out);
                }
                Err(RoundError::Other(e)) => return Err(e),
            };
            let ran = results
                .iter()
                .position(|r| {
                    matches!(r, Err(KernelError::Refused(e)) if e.kind == abi::ErrorKind::ReplyBudget)
                })
                .unwrap_or(results.len());
            if ran == 0 {
                // Not even one call fit: nothing will change by resending.
                out.extend(results);
                return Ok(out);
            }
            let previous = match results.get(ran - 1) {
                Some(Ok(o)) => Some(o.instance),
                _ => None,
            };
            out.extend(results.into_iter().take(ran));
            if ran == rest.len() {
                return Ok(out);
            }
            rest.drain(..ran);
            if let (Some(first), Some(previous)) = (rest.first_mut(), previous)
                && first.instance == [0; 32]
            {
                first.instance = previous.0;
            }
        }
    }

    /// Makes sure the host's copy holds the state a reporting batch starts
    /// from (the instance, its memory and root CNode), so the states the
    /// batch reports on top of it are complete after a rebuild. Best
    /// effort: an instance the kernel does not have fails the batch's
    /// first invocation anyway.
    fn keep_starting_state(&mut self, instance: &CapHash) {
        if !self.host_has(instance) {
            let _ = self.export_instance(instance);
        }
    }

    /// One kernel call of a batch, taking its progress reports when
    /// `report` asks for them; a guest fault comes back with the results
    /// reported before it.
    fn invoke_round(
        &mut self,
        msgs: &[InvocationMsg<'_>],
        first_named: bool,
        deadlines: Duration,
        report: ReportMode,
    ) -> Result<Vec<Result<Outcome, KernelError>>, RoundError> {
        if !report.reports() {
            return Ok(self.invoke_msgs(msgs, first_named, deadlines, report)?);
        }
        lock_progress(&self.progress).start(msgs.len());
        let result = self.invoke_msgs(msgs, first_named, deadlines, report);
        let progress = lock_progress(&self.progress).finish();
        if let Some(problem) = progress.violation {
            return Err(RoundError::Other(KernelError::BadReport(problem)));
        }
        match result {
            Ok(results) => {
                // The reply is authoritative; the reports must agree.
                for (i, reported) in progress.results.iter().enumerate() {
                    if !results.get(i).is_some_and(|r| same_result(reported, r)) {
                        return Err(RoundError::Other(KernelError::BadReport(format!(
                            "the report of call {i} differs from the reply"
                        ))));
                    }
                }
                Ok(results)
            }
            Err(fault @ (KernelError::GuestFault { .. } | KernelError::RebuildFailed { .. })) => {
                let reported = progress
                    .results
                    .into_iter()
                    .map(|r| r.map_err(KernelError::Refused).and_then(outcome_of))
                    .collect();
                Err(RoundError::Fault { reported, fault })
            }
            Err(e) => Err(RoundError::Other(e)),
        }
    }

    /// Sends `msgs` (`first_named`: the first names its instance; their
    /// deadlines add up to `deadlines`; `report`: what the kernel reports
    /// while they run) and reads the results.
    pub(super) fn invoke_msgs(
        &mut self,
        msgs: &[InvocationMsg<'_>],
        first_named: bool,
        deadlines: Duration,
        report: ReportMode,
    ) -> Result<Vec<Result<Outcome, KernelError>>, KernelError> {
        // One call on a named instance: the cheaper `invoke_one` (a fault
        // there can only be that call's, so it needs no report).
        let (function, request) = match msgs {
            [one] if first_named => (
                GuestFunction::InvokeOne,
                abi::encode_invoke_one_request(one),
            ),
            _ => (
                GuestFunction::Invoke,
                abi::encode_invoke_request_reporting(&[], msgs, report),
            ),
        };
        let reply = self.call_timed(function, &request, deadlines)?;
        let results =
            abi::decode_invoke_reply_for(&reply, msgs.len())?.map_err(KernelError::Refused)?;
        if results.len() != msgs.len() {
            return Err(KernelError::Protocol(format!(
                "invoke: sent {} calls, got {} results",
                msgs.len(),
                results.len()
            )));
        }
        let mut out = Vec::with_capacity(results.len());
        let mut b = lock(&self.blobs);
        for r in results {
            out.push(match r {
                Ok(msg) => {
                    let outcome = outcome_of(msg)?;
                    b.mark_published(outcome.instance);
                    Ok(outcome)
                }
                Err(e) => Err(KernelError::Refused(e)),
            });
        }
        Ok(out)
    }
}
