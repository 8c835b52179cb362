//! Typed views of the flatbuffers messages, and their encoders/decoders.
//!
//! Both sides use these functions, so a message is built and read in one
//! place. Decoding runs the flatbuffers verifier first: corrupt or truncated
//! bytes give [`AbiError`], never a panic.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::progress::ReportMode;
use super::wire;

/// A message that does not parse as the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiError {
    /// Which message was being read.
    pub message: &'static str,
    /// What was wrong with it.
    pub reason: String,
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {} message: {}", self.message, self.reason)
    }
}

impl core::error::Error for AbiError {}

pub(super) fn malformed(message: &'static str, reason: impl fmt::Display) -> AbiError {
    AbiError {
        message,
        reason: alloc::format!("{reason}"),
    }
}

/// The kind of an error the guest reports (mirrors `ErrorCode` in the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request bytes are not a valid message.
    BadMessage,
    /// Cap bytes do not decode.
    BadCap,
    /// A cap's bytes hash to something other than the hash sent with it.
    HashMismatch,
    /// A blob is missing from the guest's directory.
    MissingCap,
    /// A cap has the wrong kind for its use.
    WrongKind,
    /// The endpoint index is out of range.
    BadEndpoint,
    /// The image's code blob is not a valid PVM program.
    BadProgram,
    /// The guest ran out of memory.
    OutOfMemory,
    /// No such benchmark.
    UnknownBenchmark,
    /// Anything else the kernel refused.
    Kernel,
    /// The call did not run: the batch's reply budget was used up (see
    /// `MAX_BATCH_OUTPUT_BYTES`); send it again in a new request.
    ReplyBudget,
}

impl ErrorKind {
    fn to_wire(self) -> wire::ErrorCode {
        match self {
            ErrorKind::BadMessage => wire::ErrorCode::BadMessage,
            ErrorKind::BadCap => wire::ErrorCode::BadCap,
            ErrorKind::HashMismatch => wire::ErrorCode::HashMismatch,
            ErrorKind::MissingCap => wire::ErrorCode::MissingCap,
            ErrorKind::WrongKind => wire::ErrorCode::WrongKind,
            ErrorKind::BadEndpoint => wire::ErrorCode::BadEndpoint,
            ErrorKind::BadProgram => wire::ErrorCode::BadProgram,
            ErrorKind::OutOfMemory => wire::ErrorCode::OutOfMemory,
            ErrorKind::UnknownBenchmark => wire::ErrorCode::UnknownBenchmark,
            ErrorKind::Kernel => wire::ErrorCode::Kernel,
            ErrorKind::ReplyBudget => wire::ErrorCode::ReplyBudget,
        }
    }

    fn from_wire(code: wire::ErrorCode) -> Option<Self> {
        Some(match code {
            wire::ErrorCode::BadMessage => ErrorKind::BadMessage,
            wire::ErrorCode::BadCap => ErrorKind::BadCap,
            wire::ErrorCode::HashMismatch => ErrorKind::HashMismatch,
            wire::ErrorCode::MissingCap => ErrorKind::MissingCap,
            wire::ErrorCode::WrongKind => ErrorKind::WrongKind,
            wire::ErrorCode::BadEndpoint => ErrorKind::BadEndpoint,
            wire::ErrorCode::BadProgram => ErrorKind::BadProgram,
            wire::ErrorCode::OutOfMemory => ErrorKind::OutOfMemory,
            wire::ErrorCode::UnknownBenchmark => ErrorKind::UnknownBenchmark,
            wire::ErrorCode::Kernel => ErrorKind::Kernel,
            wire::ErrorCode::ReplyBudget => ErrorKind::ReplyBudget,
            _ => return None,
        })
    }
}

/// An error the guest reports in a reply's `error` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
    /// The cap the error is about, if any.
    pub hash: Option<[u8; 32]>,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// One encoded cap, with the hash the sender expects it to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapBlobMsg<'a> {
    /// Checked by the receiver when present.
    pub hash: Option<[u8; 32]>,
    /// The cap's canonical encoding.
    pub bytes: &'a [u8],
}

/// One invocation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvocationMsg<'a> {
    /// The instance to run.
    pub instance: [u8; 32],
    /// Index into the image's endpoint list.
    pub endpoint: u32,
    /// φ7..φ10.
    pub args: [u64; 4],
    /// Gas limit.
    pub gas: u64,
    /// The input the program reads with `input_len` / `input_read`
    /// (empty: none). Decoders refuse one over
    /// [`crate::kernel::ops::MAX_INPUT_LEN`] bytes.
    pub input: &'a [u8],
    /// The wall-clock budget in ticks of the kernel's clock
    /// ([`crate::kernel::Call::timeout`]; [`crate::kernel::NO_TIMEOUT`]:
    /// none).
    pub timeout: u64,
}

/// The longest input an invocation carries (`kernel::ops::MAX_INPUT_LEN`).
pub(super) const MAX_INPUT_LEN: usize = crate::kernel::ops::MAX_INPUT_LEN as usize;

/// `Err` unless `input` fits in [`MAX_INPUT_LEN`].
pub(super) fn check_input(message: &'static str, input: &[u8]) -> Result<(), AbiError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(malformed(
            message,
            alloc::format!(
                "an input of {} bytes (at most {MAX_INPUT_LEN})",
                input.len()
            ),
        ));
    }
    Ok(())
}

/// How an invocation ended: the exit kind (0 halt, 1 panic, 2 out of gas,
/// 3 page fault, 4 host call) and its argument (address or op number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitMsg {
    /// `ExitKind` value from the schema.
    pub kind: u8,
    /// Fault address or op number, else 0.
    pub arg: u64,
}

/// The outcome of one invocation as carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResultMsg {
    /// How it ended.
    pub exit: ExitMsg,
    /// φ7 at the end.
    pub r7: u64,
    /// φ8 at the end.
    pub r8: u64,
    /// Bytes set with `set_output`.
    pub output: Vec<u8>,
    /// Gas consumed.
    pub gas_used: u64,
    /// The instance hash afterwards.
    pub instance: [u8; 32],
}

/// A spare builder, reused across messages: building into a fresh one
/// allocates and zero-fills its whole buffer (and regrows it), while a
/// reset only clears the bytes the last message used.
static SPARE_BUILDER: spin::Mutex<Option<FlatBufferBuilder<'static>>> = spin::Mutex::new(None);

/// Builders that grew past this are dropped instead of kept as the spare.
const MAX_SPARE_BUILDER: usize = 64 << 10;

/// Runs `build` with a builder (the spare one when it is free) and returns
/// the finished message's bytes.
pub(super) fn build_message(build: impl FnOnce(&mut FlatBufferBuilder<'static>)) -> Vec<u8> {
    let mut fbb = SPARE_BUILDER
        .try_lock()
        .and_then(|mut spare| spare.take())
        .unwrap_or_else(|| FlatBufferBuilder::with_capacity(512));
    build(&mut fbb);
    let bytes = fbb.finished_data().to_vec();
    if bytes.len() <= MAX_SPARE_BUILDER {
        fbb.reset();
        if let Some(mut spare) = SPARE_BUILDER.try_lock() {
            *spare = Some(fbb);
        }
    }
    bytes
}

fn hash_to_wire(hash: &[u8; 32]) -> wire::Hash {
    wire::Hash::new(hash)
}

pub(super) fn hash_from_wire(hash: &wire::Hash) -> [u8; 32] {
    // The struct is its 32 bytes; copying them beats a per-byte iterator.
    hash.0
}

pub(super) fn add_error<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    err: &RemoteError,
) -> WIPOffset<wire::Error<'a>> {
    let message = fbb.create_string(&err.message);
    let hash = err.hash.as_ref().map(hash_to_wire);
    wire::Error::create(
        fbb,
        &wire::ErrorArgs {
            code: err.kind.to_wire(),
            message: Some(message),
            hash: hash.as_ref(),
        },
    )
}

pub(super) fn read_error(
    name: &'static str,
    err: wire::Error<'_>,
) -> Result<RemoteError, AbiError> {
    let kind = ErrorKind::from_wire(err.code())
        .ok_or_else(|| malformed(name, alloc::format!("unknown error code {}", err.code().0)))?;
    Ok(RemoteError {
        kind,
        message: err.message().unwrap_or("").into(),
        hash: err.hash().map(hash_from_wire),
    })
}

pub(super) fn root<'b, T>(name: &'static str, bytes: &'b [u8]) -> Result<T::Inner, AbiError>
where
    T: flatbuffers::Follow<'b> + flatbuffers::Verifiable + 'b,
{
    flatbuffers::root::<T>(bytes).map_err(|e| malformed(name, e))
}

pub(super) fn add_caps<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    caps: &[CapBlobMsg<'_>],
) -> WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<wire::CapBlob<'a>>>> {
    let mut offsets = Vec::with_capacity(caps.len());
    for cap in caps {
        let bytes = fbb.create_vector(cap.bytes);
        let hash = cap.hash.as_ref().map(hash_to_wire);
        offsets.push(wire::CapBlob::create(
            fbb,
            &wire::CapBlobArgs {
                hash: hash.as_ref(),
                bytes: Some(bytes),
            },
        ));
    }
    fbb.create_vector(&offsets)
}

pub(super) fn read_cap(cap: wire::CapBlob<'_>) -> CapBlobMsg<'_> {
    CapBlobMsg {
        hash: cap.hash().map(hash_from_wire),
        bytes: cap.bytes().map(|v| v.bytes()).unwrap_or(&[]),
    }
}

fn read_caps<'b>(
    caps: Option<flatbuffers::Vector<'b, flatbuffers::ForwardsUOffset<wire::CapBlob<'b>>>>,
) -> Vec<CapBlobMsg<'b>> {
    caps.into_iter().flatten().map(read_cap).collect()
}

/// `put_cap` request: the caps to publish.
pub fn encode_put_cap_request(caps: &[CapBlobMsg<'_>]) -> Vec<u8> {
    build_message(|fbb| {
        let caps = add_caps(fbb, caps);
        let req = wire::PutCapRequest::create(fbb, &wire::PutCapRequestArgs { caps: Some(caps) });
        fbb.finish(req, None);
    })
}

/// Reads a `put_cap` request.
pub fn decode_put_cap_request(bytes: &[u8]) -> Result<Vec<CapBlobMsg<'_>>, AbiError> {
    let req = root::<wire::PutCapRequest>("PutCapRequest", bytes)?;
    Ok(read_caps(req.caps()))
}

/// `put_cap` reply: the hashes in request order, or an error.
pub fn encode_put_cap_reply(result: Result<&[[u8; 32]], &RemoteError>) -> Vec<u8> {
    build_message(|fbb| {
        let args = match result {
            Ok(hashes) => {
                let wire_hashes: Vec<wire::Hash> = hashes.iter().map(hash_to_wire).collect();
                let hashes = fbb.create_vector(&wire_hashes);
                wire::PutCapReplyArgs {
                    error: None,
                    hashes: Some(hashes),
                }
            }
            Err(err) => wire::PutCapReplyArgs {
                error: Some(add_error(fbb, err)),
                hashes: None,
            },
        };
        let reply = wire::PutCapReply::create(fbb, &args);
        fbb.finish(reply, None);
    })
}

/// Reads a `put_cap` reply.
pub fn decode_put_cap_reply(bytes: &[u8]) -> Result<Result<Vec<[u8; 32]>, RemoteError>, AbiError> {
    const NAME: &str = "PutCapReply";
    let reply = root::<wire::PutCapReply>(NAME, bytes)?;
    if let Some(err) = reply.error() {
        return Ok(Err(read_error(NAME, err)?));
    }
    Ok(Ok(reply
        .hashes()
        .into_iter()
        .flatten()
        .map(hash_from_wire)
        .collect()))
}

/// `invoke` request: caps to publish first, then the calls to run in order.
/// No caps: the field is left out (the guest's verifier then skips it);
/// likewise the inputs side table when no call has input.
pub fn encode_invoke_request(caps: &[CapBlobMsg<'_>], calls: &[InvocationMsg<'_>]) -> Vec<u8> {
    encode_invoke_request_reporting(caps, calls, ReportMode::Off)
}

/// [`encode_invoke_request`] asking for progress reports (`report`).
pub fn encode_invoke_request_reporting(
    caps: &[CapBlobMsg<'_>],
    calls: &[InvocationMsg<'_>],
    report: ReportMode,
) -> Vec<u8> {
    build_message(|fbb| {
        let caps = (!caps.is_empty()).then(|| add_caps(fbb, caps));
        let mut inputs = Vec::new();
        for (call, c) in (0u32..).zip(calls) {
            if !c.input.is_empty() {
                let bytes = Some(fbb.create_vector(c.input));
                inputs.push(wire::CallInput::create(
                    fbb,
                    &wire::CallInputArgs { call, bytes },
                ));
            }
        }
        let inputs = (!inputs.is_empty()).then(|| fbb.create_vector(&inputs));
        let calls: Vec<wire::Invocation> = calls
            .iter()
            .map(super::invoke_codec::invocation_to_wire)
            .collect();
        let calls = fbb.create_vector(&calls);
        let req = wire::InvokeRequest::create(
            fbb,
            &wire::InvokeRequestArgs {
                caps,
                calls: Some(calls),
                inputs,
                report: report.to_wire(),
            },
        );
        fbb.finish(req, None);
    })
}

/// `invoke` reply: one result per call, or a request-wide error.
pub fn encode_invoke_reply(
    result: Result<&[Result<InvokeResultMsg, RemoteError>], &RemoteError>,
) -> Vec<u8> {
    build_message(|fbb| {
        let args = match result {
            Ok(results) => {
                let mut outcomes = Vec::with_capacity(results.len());
                let mut outputs = Vec::new();
                let mut errors = Vec::new();
                for (i, result) in results.iter().enumerate() {
                    let call = i as u32;
                    match result {
                        Ok(r) => {
                            outcomes.push(wire::CallOutcome::new(
                                &hash_to_wire(&r.instance),
                                r.exit.arg,
                                r.r7,
                                r.r8,
                                r.gas_used,
                                wire::ExitKind(r.exit.kind),
                            ));
                            if !r.output.is_empty() {
                                let bytes = Some(fbb.create_vector(&r.output));
                                outputs.push(wire::CallOutput::create(
                                    fbb,
                                    &wire::CallOutputArgs { call, bytes },
                                ));
                            }
                        }
                        Err(err) => {
                            outcomes.push(wire::CallOutcome::default());
                            let error = Some(add_error(fbb, err));
                            errors.push(wire::CallError::create(
                                fbb,
                                &wire::CallErrorArgs { call, error },
                            ));
                        }
                    }
                }
                wire::InvokeReplyArgs {
                    error: None,
                    outcomes: Some(fbb.create_vector(&outcomes)),
                    outputs: (!outputs.is_empty()).then(|| fbb.create_vector(&outputs)),
                    errors: (!errors.is_empty()).then(|| fbb.create_vector(&errors)),
                }
            }
            Err(err) => wire::InvokeReplyArgs {
                error: Some(add_error(fbb, err)),
                ..Default::default()
            },
        };
        let reply = wire::InvokeReply::create(fbb, &args);
        fbb.finish(reply, None);
    })
}

/// Per-call results of an `invoke` reply.
pub type InvokeResults = Vec<Result<InvokeResultMsg, RemoteError>>;

/// The result entry for call number `call` of a reply.
fn call_slot(
    out: &mut InvokeResults,
    call: u32,
) -> Result<&mut Result<InvokeResultMsg, RemoteError>, AbiError> {
    let len = out.len();
    out.get_mut(call as usize).ok_or_else(|| {
        malformed(
            "InvokeReply",
            alloc::format!("call {call} of {len} does not exist"),
        )
    })
}

/// Reads an `invoke` reply. Bounded by the reply itself: every call gets
/// at most one output and one error (a repeated call number is
/// malformed), and no output is longer than `MAX_OUTPUT_LEN`, so what is
/// copied is at most the number of outcomes times that — however the
/// flatbuffer shares its vectors. Prefer [`decode_invoke_reply_for`] when
/// the number of calls is known.
pub fn decode_invoke_reply(bytes: &[u8]) -> Result<Result<InvokeResults, RemoteError>, AbiError> {
    decode_invoke_reply_checked(bytes, None)
}

/// [`decode_invoke_reply`] for a request of `calls` calls: a reply with
/// another number of outcomes is refused before anything is copied.
pub fn decode_invoke_reply_for(
    bytes: &[u8],
    calls: usize,
) -> Result<Result<InvokeResults, RemoteError>, AbiError> {
    decode_invoke_reply_checked(bytes, Some(calls))
}

fn decode_invoke_reply_checked(
    bytes: &[u8],
    calls: Option<usize>,
) -> Result<Result<InvokeResults, RemoteError>, AbiError> {
    const NAME: &str = "InvokeReply";
    let reply = root::<wire::InvokeReply>(NAME, bytes)?;
    if let Some(err) = reply.error() {
        return Ok(Err(read_error(NAME, err)?));
    }
    let count = reply.outcomes().map_or(0, |o| o.len());
    if let Some(calls) = calls
        && count != calls
    {
        return Err(malformed(
            NAME,
            alloc::format!("{count} outcomes for {calls} calls"),
        ));
    }
    let side = |len: usize, what: &str| {
        if len > count {
            Err(malformed(
                NAME,
                alloc::format!("{len} {what} for {count} calls"),
            ))
        } else {
            Ok(())
        }
    };
    side(reply.outputs().map_or(0, |o| o.len()), "outputs")?;
    side(reply.errors().map_or(0, |e| e.len()), "errors")?;
    let mut out: InvokeResults = reply
        .outcomes()
        .into_iter()
        .flatten()
        .map(|o| {
            Ok(InvokeResultMsg {
                exit: ExitMsg {
                    kind: o.exit().0,
                    arg: o.exit_arg(),
                },
                r7: o.r7(),
                r8: o.r8(),
                output: Vec::new(),
                gas_used: o.gas_used(),
                instance: hash_from_wire(o.instance()),
            })
        })
        .collect();
    let mut has_output = alloc::vec![false; count];
    for output in reply.outputs().into_iter().flatten() {
        let call = output.call() as usize;
        if has_output.get(call).copied().unwrap_or(false) {
            return Err(malformed(
                NAME,
                alloc::format!("two outputs for call {call}"),
            ));
        }
        let bytes = output.bytes().map(|v| v.bytes()).unwrap_or_default();
        if bytes.len() as u64 > crate::kernel::ops::MAX_OUTPUT_LEN {
            return Err(malformed(
                NAME,
                alloc::format!("call {call}: an output of {} bytes", bytes.len()),
            ));
        }
        if let Ok(result) = call_slot(&mut out, output.call())? {
            result.output = bytes.to_vec();
        }
        if let Some(seen) = has_output.get_mut(call) {
            *seen = true;
        }
    }
    let mut has_error = alloc::vec![false; count];
    for error in reply.errors().into_iter().flatten() {
        let call = error.call() as usize;
        if has_error.get(call).copied().unwrap_or(false) {
            return Err(malformed(
                NAME,
                alloc::format!("two errors for call {call}"),
            ));
        }
        let err = error
            .error()
            .ok_or_else(|| malformed(NAME, "a call error without an error"))?;
        *call_slot(&mut out, error.call())? = Err(read_error(NAME, err)?);
        if let Some(seen) = has_error.get_mut(call) {
            *seen = true;
        }
    }
    Ok(Ok(out))
}

/// `get_cap` request.
pub fn encode_get_cap_request(hash: &[u8; 32]) -> Vec<u8> {
    build_message(|fbb| {
        let hash = hash_to_wire(hash);
        let req = wire::GetCapRequest::create(fbb, &wire::GetCapRequestArgs { hash: Some(&hash) });
        fbb.finish(req, None);
    })
}

/// Reads a `get_cap` request.
pub fn decode_get_cap_request(bytes: &[u8]) -> Result<[u8; 32], AbiError> {
    const NAME: &str = "GetCapRequest";
    let req = root::<wire::GetCapRequest>(NAME, bytes)?;
    req.hash()
        .map(hash_from_wire)
        .ok_or_else(|| malformed(NAME, "no hash"))
}

/// `get_cap` reply: the cap's encoding, or an error.
pub fn encode_get_cap_reply(result: Result<&[u8], &RemoteError>) -> Vec<u8> {
    build_message(|fbb| {
        let args = match result {
            Ok(bytes) => wire::GetCapReplyArgs {
                error: None,
                bytes: Some(fbb.create_vector(bytes)),
            },
            Err(err) => wire::GetCapReplyArgs {
                error: Some(add_error(fbb, err)),
                bytes: None,
            },
        };
        let reply = wire::GetCapReply::create(fbb, &args);
        fbb.finish(reply, None);
    })
}

/// Reads a `get_cap` reply.
pub fn decode_get_cap_reply(bytes: &[u8]) -> Result<Result<Vec<u8>, RemoteError>, AbiError> {
    const NAME: &str = "GetCapReply";
    let reply = root::<wire::GetCapReply>(NAME, bytes)?;
    if let Some(err) = reply.error() {
        return Ok(Err(read_error(NAME, err)?));
    }
    Ok(Ok(reply
        .bytes()
        .map(|v| v.bytes().to_vec())
        .unwrap_or_default()))
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
