//! The kernel behind the ABI: decodes a request for one guest function,
//! runs it against a directory, encodes the reply. The guest calls this
//! from its Hyperlight handlers and the local backend calls it directly, so
//! both backends share every line of it.

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::bench;
use super::error::KernelError;
use super::invoke::{Call, LogSink, Outcome, invoke_call};
use super::ops::MAX_OUTPUT_LEN;
use super::programs::{ProgramCache, same_hash};
use super::report;
use crate::abi::{
    self, CapBlobMsg, ErrorKind, GuestFunction, InvokeResultMsg, RemoteError, ReportMode,
};
use crate::hash::CapHash;
use crate::{CacheDirectory, CacheError};

/// Most output bytes one `invoke` reply carries: a call starts only while
/// at least `MAX_OUTPUT_LEN` of this is left (the first call always runs),
/// so a reply stays well inside a message and the guest's memory.
pub const MAX_BATCH_OUTPUT_BYTES: u64 = 3 << 20;

/// How many missing blobs one invocation may fetch from the host before
/// giving up (an instance needs three: itself, its image, its memory).
/// Eviction runs only between invocations, so what a retry fetched stays
/// until the invocation ends: every retry adds a blob and none goes, and
/// the bound is the same as without eviction.
pub const MAX_FETCHES_PER_CALL: usize = 16;

/// What the kernel needs from its environment.
pub trait KernelHost: LogSink {
    /// The encoded cap with this hash from the host, if it has it
    /// (`fetch_blob`, DESIGN §6).
    fn fetch_blob(&mut self, hash: &CapHash) -> Option<Vec<u8>>;

    /// A monotonic clock, in the ticks [`Call::timeout`] counts (the
    /// guest: the TSC; the local backend: the TSC, or nanoseconds without
    /// a constant TSC); `None`: no clock, so invocations have no deadline.
    /// Asked once when an invocation starts and then every
    /// [`super::SLICE_GAS`] gas, never per instruction, so it must be
    /// cheap (it is on every invocation's path) but need not be free.
    fn now(&mut self) -> Option<u64> {
        None
    }

    /// Takes one progress report (an encoded `ProgressReport`) of an
    /// `invoke` batch that asked for them (`report_progress`); the
    /// default drops it.
    fn report_progress(&mut self, _report: Vec<u8>) {}

    /// Takes blobs the kernel is about to evict (`spill_blobs`: encoded
    /// like a `put_cap` request, every blob with its hash) into the host's
    /// copy, so `fetch_blob` can serve them later; returns how many it
    /// took (all or none). The default takes none, so the kernel's own
    /// state is never evicted.
    fn spill_blobs(&mut self, _message: Vec<u8>) -> u64 {
        0
    }
}

/// The kernel's state: the directory and the decoded-program cache.
pub struct KernelState<'a, S> {
    /// Every cap the kernel holds.
    pub dir: &'a CacheDirectory<S>,
    /// Decoded programs per image hash.
    pub programs: &'a ProgramCache,
}

fn remote(kind: ErrorKind, message: impl ToString, hash: Option<&CapHash>) -> RemoteError {
    RemoteError {
        kind,
        message: message.to_string(),
        hash: hash.map(|h| h.0),
    }
}

/// The wire form of a kernel error.
pub fn kernel_error_to_remote(err: &KernelError) -> RemoteError {
    let kind = match err {
        KernelError::MissingCap(_) => ErrorKind::MissingCap,
        KernelError::WrongKind { .. } => ErrorKind::WrongKind,
        KernelError::BadEndpoint { .. } => ErrorKind::BadEndpoint,
        KernelError::BadProgram { .. } => ErrorKind::BadProgram,
        KernelError::Cap(_) => ErrorKind::BadCap,
        KernelError::OutOfMemory { .. } => ErrorKind::OutOfMemory,
        KernelError::InputTooLong(_) => ErrorKind::BadMessage,
        KernelError::BadLayout { .. }
        | KernelError::Directory(_)
        | KernelError::CallStackMemory => ErrorKind::Kernel,
    };
    remote(kind, err, err.hash())
}

fn bad_message(err: abi::AbiError) -> RemoteError {
    remote(ErrorKind::BadMessage, err, None)
}

impl<S: BuildHasher> KernelState<'_, S> {
    /// Runs `function` on `request` and returns the reply message. Never
    /// panics on any request bytes: a bad request is an error reply.
    pub fn handle(
        &self,
        host: &mut dyn KernelHost,
        function: GuestFunction,
        request: &[u8],
    ) -> Vec<u8> {
        match function {
            GuestFunction::PutCap => {
                let result = abi::decode_put_cap_request(request)
                    .map_err(bad_message)
                    .and_then(|caps| self.put_caps(&caps));
                self.enforce_budget(host);
                match result {
                    Ok(hashes) => {
                        let raw: Vec<[u8; 32]> = hashes.iter().map(|h| h.0).collect();
                        abi::encode_put_cap_reply(Ok(&raw))
                    }
                    Err(e) => abi::encode_put_cap_reply(Err(&e)),
                }
            }
            GuestFunction::Invoke => self.handle_invoke(host, request),
            GuestFunction::InvokeOne => self.handle_invoke_one(host, request),
            GuestFunction::GetCap => {
                let result = abi::decode_get_cap_request(request)
                    .map_err(bad_message)
                    .and_then(|hash| self.get_cap(&CapHash(hash)));
                match result {
                    Ok(bytes) => abi::encode_get_cap_reply(Ok(&bytes)),
                    Err(e) => abi::encode_get_cap_reply(Err(&e)),
                }
            }
            GuestFunction::Stats => abi::encode_stats_reply(&self.stats(0)),
            GuestFunction::SetBudget => match abi::decode_set_budget_request(request) {
                Ok(budget) => {
                    self.dir.set_budget(budget);
                    self.enforce_budget(host);
                    abi::encode_stats_reply(&self.stats(0))
                }
                Err(e) => abi::encode_stats_error(&bad_message(e)),
            },
            GuestFunction::Sweep => {
                let swept = self.dir.sweep_instances() as u64;
                abi::encode_stats_reply(&self.stats(swept))
            }
            GuestFunction::Bench => {
                let result = abi::decode_bench_request(request)
                    .map_err(bad_message)
                    .and_then(|(name, iters)| {
                        bench::run(name, iters).map(|cycles| abi::BenchReplyMsg {
                            name: name.into(),
                            iters,
                            cycles,
                        })
                    });
                match result {
                    Ok(reply) => abi::encode_bench_reply(Ok(&reply)),
                    Err(e) => abi::encode_bench_reply(Err(&e)),
                }
            }
            GuestFunction::Ping => Vec::new(),
            GuestFunction::DataNodes => self.handle_data_nodes(request),
            GuestFunction::HostKeeps => match abi::decode_host_keeps_request(request) {
                Ok(raw) => {
                    let hashes: Vec<CapHash> = raw.iter().map(|h| CapHash(*h)).collect();
                    let held: Vec<[u8; 32]> = hashes
                        .iter()
                        .filter(|h| self.dir.peek_blob(h).is_some())
                        .map(|h| h.0)
                        .collect();
                    self.dir.mark_host_known(&hashes, 0);
                    // What was kept only because the host lacked it can go.
                    self.enforce_budget(host);
                    abi::encode_put_cap_reply(Ok(&held))
                }
                Err(e) => abi::encode_put_cap_reply(Err(&bad_message(e))),
            },
            // Transfers need the kernel's `StreamState`: the backends send
            // them through `handle_with_streams`.
            GuestFunction::PutCapStream => abi::encode_put_cap_reply(Err(&remote(
                ErrorKind::Kernel,
                "put_cap_stream needs the stream state (handle_with_streams)",
                None,
            ))),
            GuestFunction::GetCapRange => abi::encode_range_reply(Err(&remote(
                ErrorKind::Kernel,
                "get_cap_range needs the stream state (handle_with_streams)",
                None,
            ))),
            // The kernel itself never crashes on purpose; the guest's
            // handler for this aborts before getting here.
            GuestFunction::Crash => Vec::new(),
        }
    }

    /// Decodes, hashes, checks and stores caps; returns their hashes.
    pub fn put_caps(&self, caps: &[CapBlobMsg<'_>]) -> Result<Vec<CapHash>, RemoteError> {
        let mut hashes = Vec::with_capacity(caps.len());
        for (i, blob) in caps.iter().enumerate() {
            hashes.push(
                self.put_one(blob.bytes, blob.hash.map(CapHash), false)
                    .map_err(|mut e| {
                        e.message = format!("cap #{i}: {}", e.message);
                        e
                    })?,
            );
        }
        Ok(hashes)
    }

    /// Decodes, hashes, checks and stores one cap from the host (`fetched`:
    /// served by `fetch_blob`, else sent with `put_cap`); host-known.
    fn put_one(
        &self,
        bytes: &[u8],
        expected: Option<CapHash>,
        fetched: bool,
    ) -> Result<CapHash, RemoteError> {
        let (cap, hash) = super::from_host::cap_from_host(bytes, expected.as_ref(), |base| {
            self.dir.get_blob(base)
        })
        .map_err(|e| RemoteError {
            kind: e.kind,
            message: e.message,
            hash: e.hash.or(expected).map(|h| h.0),
        })?;
        let cap = alloc::sync::Arc::new(cap);
        if fetched {
            self.dir.put_fetched_blob(hash, cap);
        } else {
            self.dir.put_host_blob(hash, cap);
        }
        Ok(hash)
    }

    fn get_cap(&self, hash: &CapHash) -> Result<Vec<u8>, RemoteError> {
        let cap = self.dir.get_blob(hash).ok_or_else(|| {
            remote(
                ErrorKind::MissingCap,
                CacheError::BlobMissing(*hash),
                Some(hash),
            )
        })?;
        let bytes = cap
            .encode()
            .map_err(|e| remote(ErrorKind::Kernel, e, Some(hash)))?;
        // The host keeps what it exports (`Kernel::get_cap`), so the blob
        // may be evicted without a spill.
        self.dir.mark_host_known(core::slice::from_ref(hash), 0);
        Ok(bytes)
    }

    fn stats(&self, swept: u64) -> abi::StatsMsg {
        let dir = self.dir.stats();
        let evictions = self.dir.eviction_stats();
        let budget = self.dir.budget();
        // Process-wide: the page allocator is shared by every kernel here.
        let pages = crate::page_alloc::usage();
        abi::StatsMsg {
            blobs: dir.blob_count as u64,
            blob_bytes: dir.blob_bytes as u64,
            budget_bytes: budget.max_bytes,
            budget_blobs: budget.max_blobs,
            evictions: evictions.evictions,
            evicted_bytes: evictions.evicted_bytes,
            spilled_blobs: evictions.spilled_blobs,
            spilled_bytes: evictions.spilled_bytes,
            fetched: evictions.fetched,
            refetched: evictions.refetched,
            instances: dir.instance_count as u64,
            programs_cached: self.programs.len() as u64,
            programs_native: self.programs.native_count() as u64,
            arena_used_bytes: pages.used,
            arena_capacity_bytes: pages.capacity,
            arena_peak_bytes: pages.peak,
            arena_spill_bytes: pages.spill,
            swept,
        }
    }

    fn handle_invoke(&self, host: &mut dyn KernelHost, request: &[u8]) -> Vec<u8> {
        let request = match abi::InvokeRequestView::new(request) {
            Ok(view) => view,
            Err(e) => return abi::encode_invoke_reply(Err(&bad_message(e))),
        };
        if request.has_caps() {
            let caps: Vec<CapBlobMsg<'_>> = request.caps().collect();
            let put = self.put_caps(&caps);
            self.enforce_budget(host);
            if let Err(e) = put {
                return abi::encode_invoke_reply(Err(&e));
            }
        }
        let mut reply = abi::InvokeReplyWriter::with_capacity(request.call_count());
        self.run_calls(host, request.calls(), request.report(), &mut reply);
        reply.finish()
    }

    /// [`Self::handle`] with an owned request, as the guest receives it:
    /// a reply to `invoke_one`, or to an `invoke` of one call and no caps
    /// (the common cases), is written into the request's own buffer (a
    /// reply is never larger than its request), which saves an allocation
    /// and a free per call. The reply bytes are the same as `handle`'s.
    pub fn handle_owned(
        &self,
        host: &mut dyn KernelHost,
        function: GuestFunction,
        request: Vec<u8>,
    ) -> Vec<u8> {
        match function {
            GuestFunction::InvokeOne => {
                // The common layout borrows nothing: straight to the call.
                if let Some(call) = abi::decode_invoke_one_fixed(&request) {
                    return self.answer_one(host, call, request);
                }
                match abi::decode_invoke_one_request(&request) {
                    Ok(call) => match without_input(&call) {
                        Some(call) => self.answer_one(host, call, request),
                        // The input lives in the request: no buffer reuse.
                        None => self.answer_one(host, call, Vec::new()),
                    },
                    Err(e) => abi::encode_invoke_reply(Err(&bad_message(e))),
                }
            }
            GuestFunction::Invoke => {
                let single = match abi::InvokeRequestView::new(&request) {
                    Ok(view)
                        if !view.has_caps()
                            && view.call_count() == 1
                            && !view.report().reports() =>
                    {
                        view.calls().next().as_ref().and_then(without_input)
                    }
                    _ => None,
                };
                let Some(call) = single else {
                    return self.handle_invoke(host, &request);
                };
                self.answer_one(host, call, request)
            }
            _ => self.handle(host, function, &request),
        }
    }

    fn handle_invoke_one(&self, host: &mut dyn KernelHost, request: &[u8]) -> Vec<u8> {
        match abi::decode_invoke_one_request(request) {
            Ok(call) => self.answer_one(host, call, Vec::new()),
            Err(e) => abi::encode_invoke_reply(Err(&bad_message(e))),
        }
    }

    /// Runs one call; its reply is written into `buffer`'s allocation.
    fn answer_one(
        &self,
        host: &mut dyn KernelHost,
        call: abi::InvocationMsg<'_>,
        buffer: Vec<u8>,
    ) -> Vec<u8> {
        let mut reply = abi::InvokeReplyWriter::in_buffer(buffer, 1);
        self.run_calls(host, core::iter::once(call), ReportMode::Off, &mut reply);
        reply.finish()
    }

    /// Runs `calls` in order, each result into `reply`. A call whose
    /// instance hash is all zero runs on what the previous call produced.
    /// With `report` on, each call's result (and with `OutcomesAndState`
    /// the blobs it committed) also goes to the host as soon as the call
    /// ends (calls refused for the reply budget are not reported).
    fn run_calls<'b>(
        &self,
        host: &mut dyn KernelHost,
        calls: impl Iterator<Item = abi::InvocationMsg<'b>>,
        report: ReportMode,
        reply: &mut abi::InvokeReplyWriter,
    ) {
        let mut previous: Option<CapHash> = None;
        let mut output_bytes = 0u64;
        for (index, call) in (0u32..).zip(calls) {
            // Each call may set up to MAX_OUTPUT_LEN of output: once the
            // outputs so far leave less room than that, the rest of the
            // batch does not run (the host sends it again).
            if output_bytes > 0 && output_bytes + MAX_OUTPUT_LEN > MAX_BATCH_OUTPUT_BYTES {
                reply.push_error(remote(
                    ErrorKind::ReplyBudget,
                    "not run: the batch's reply budget is used; send it again",
                    None,
                ));
                continue;
            }
            let instance = CapHash(call.instance);
            let instance = if same_hash(&instance, &CapHash([0; 32])) {
                previous
            } else {
                Some(instance)
            };
            let Some(instance) = instance else {
                previous = None;
                let error = remote(
                    ErrorKind::BadMessage,
                    "a chained call (zero instance hash) follows no successful call",
                    None,
                );
                if report.reports() {
                    report_error(host, index, &error);
                }
                reply.push_error(error);
                continue;
            };
            let call = Call {
                instance,
                endpoint: call.endpoint,
                args: call.args,
                gas: call.gas,
                input: call.input,
                timeout: call.timeout,
            };
            // Straight to `invoke_call`; the fetching loop only after a miss.
            let result = match invoke_call(self.dir, self.programs, host, &call) {
                Err(KernelError::MissingCap(_)) => self.invoke_fetching(host, &call),
                other => other,
            };
            match result {
                Ok(o) => {
                    previous = Some(o.instance);
                    output_bytes += o.output.len() as u64;
                    if report.reports() {
                        let blobs = if report.reports_state() && !same_hash(&o.instance, &instance)
                        {
                            report::committed_blobs(self.dir, &instance, &o.instance)
                        } else {
                            Vec::new()
                        };
                        let mut one = abi::InvokeReplyWriter::with_capacity(1);
                        one.push(Ok(outcome_to_wire(&o)));
                        report::send_reports(host, index, &one.finish(), &blobs);
                    }
                    let (kind, arg) = o.exit.to_wire();
                    reply.push_outcome(
                        &o.instance.0,
                        abi::ExitMsg { kind, arg },
                        [o.r7, o.r8, o.gas_used],
                        o.output,
                    );
                }
                Err(e) => {
                    previous = None;
                    let error = kernel_error_to_remote(&e);
                    if report.reports() {
                        report_error(host, index, &error);
                    }
                    reply.push_error(error);
                }
            }
            // Between calls nothing is in flight: a safe point to evict.
            self.enforce_budget(host);
        }
    }

    /// [`invoke_call`], asking the host for missing blobs (`fetch_blob`)
    /// and retrying, up to [`MAX_FETCHES_PER_CALL`] times.
    pub fn invoke_fetching(
        &self,
        host: &mut dyn KernelHost,
        call: &Call<'_>,
    ) -> Result<Outcome, KernelError> {
        let mut fetches = 0;
        loop {
            match invoke_call(self.dir, self.programs, host, call) {
                Err(KernelError::MissingCap(missing)) if fetches < MAX_FETCHES_PER_CALL => {
                    fetches += 1;
                    let bytes = host
                        .fetch_blob(&missing)
                        .ok_or(KernelError::MissingCap(missing))?;
                    // A wrong or undecodable answer counts as still missing;
                    // a Data delta that did not apply (its base was evicted)
                    // is asked for again: the host then sends the whole cap.
                    if self.put_one(&bytes, Some(missing), true).is_err()
                        && !crate::cap::is_data_delta(&bytes)
                    {
                        return Err(KernelError::MissingCap(missing));
                    }
                }
                other => return other,
            }
        }
    }
}

/// Reports call `index` as refused with `error`.
fn report_error(host: &mut dyn KernelHost, index: u32, error: &RemoteError) {
    let mut one = abi::InvokeReplyWriter::with_capacity(1);
    one.push(Err(error.clone()));
    report::send_reports(host, index, &one.finish(), &[]);
}

/// `call` without a borrow of the request it came from, when it has no
/// input (so the request's buffer can take the reply).
fn without_input(call: &abi::InvocationMsg<'_>) -> Option<abi::InvocationMsg<'static>> {
    call.input.is_empty().then_some(abi::InvocationMsg {
        instance: call.instance,
        endpoint: call.endpoint,
        args: call.args,
        gas: call.gas,
        input: &[],
        timeout: call.timeout,
    })
}

/// The wire form of an outcome.
pub fn outcome_to_wire(o: &Outcome) -> InvokeResultMsg {
    let (kind, arg) = o.exit.to_wire();
    InvokeResultMsg {
        exit: abi::ExitMsg { kind, arg },
        r7: o.r7,
        r8: o.r8,
        output: o.output.clone(),
        gas_used: o.gas_used,
        instance: o.instance.0,
    }
}
