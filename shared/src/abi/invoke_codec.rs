//! The `invoke` messages on the guest's hot path, read and written without
//! intermediate vectors.
//!
//! * [`InvokeRequestView`]: a verified request read in place (no `Vec` of
//!   caps or calls).
//! * [`InvokeReplyWriter`]: builds the reply while the calls run. When no
//!   call produced output or an error (the common case) the reply is
//!   written directly as flatbuffers bytes of a fixed shape, with no
//!   `FlatBufferBuilder`; otherwise it falls back to the builder. Both
//!   shapes are valid `InvokeReply` messages: the reader
//!   ([`super::decode_invoke_reply`]) runs the verifier on either.

use alloc::vec::Vec;

use flatbuffers::{ForwardsUOffset, Vector};

use super::messages::{
    AbiError, CapBlobMsg, InvocationMsg, InvokeResultMsg, RemoteError, build_message, check_input,
    encode_invoke_reply, hash_from_wire, malformed, read_cap, root,
};
use super::progress::{ReportMode, report_mode_of};
use super::wire;

/// A verified `invoke` request, read in place.
#[derive(Clone, Copy)]
pub struct InvokeRequestView<'b> {
    caps: Option<Vector<'b, ForwardsUOffset<wire::CapBlob<'b>>>>,
    calls: Option<Vector<'b, wire::Invocation>>,
    /// Checked: in increasing call order, each naming an existing call,
    /// none too long.
    inputs: Option<Vector<'b, ForwardsUOffset<wire::CallInput<'b>>>>,
    report: ReportMode,
}

impl<'b> InvokeRequestView<'b> {
    /// Runs the flatbuffers verifier over `bytes`, then checks the inputs
    /// side table (call order, call numbers, lengths).
    pub fn new(bytes: &'b [u8]) -> Result<Self, AbiError> {
        const NAME: &str = "InvokeRequest";
        let req = root::<wire::InvokeRequest>(NAME, bytes)?;
        let calls = req.calls();
        let inputs = req.inputs();
        if let Some(inputs) = inputs {
            let count = calls.map_or(0, |c| c.len());
            // The smallest call number the next input may name.
            let mut next = 0usize;
            for input in inputs {
                let call = input.call() as usize;
                if call < next || call >= count {
                    return Err(malformed(
                        NAME,
                        alloc::format!(
                            "an input for call {call} (of {count}) out of order or of no call"
                        ),
                    ));
                }
                next = call + 1;
                check_input(NAME, input_bytes(input.bytes()))?;
            }
        }
        Ok(InvokeRequestView {
            caps: req.caps(),
            calls,
            inputs,
            report: report_mode_of(&req),
        })
    }

    /// Whether the request carries caps to publish.
    pub fn has_caps(&self) -> bool {
        self.caps.is_some_and(|c| !c.is_empty())
    }

    /// The caps to publish first.
    pub fn caps(&self) -> impl Iterator<Item = CapBlobMsg<'b>> + 'b {
        self.caps.into_iter().flatten().map(read_cap)
    }

    /// The progress reports the host asked for.
    pub fn report(&self) -> ReportMode {
        self.report
    }

    /// How many calls.
    pub fn call_count(&self) -> usize {
        self.calls.map_or(0, |c| c.len())
    }

    /// The calls, in order, each with its input.
    pub fn calls(&self) -> impl Iterator<Item = InvocationMsg<'b>> + 'b {
        let inputs = self.inputs;
        // The next entry of `inputs` (checked in `new`: increasing calls).
        let mut next = 0;
        self.calls
            .into_iter()
            .flatten()
            .zip(0u32..)
            .map(move |(call, i)| {
                let mut msg = invocation_from_wire(call);
                // Without inputs (the common case) one test per call.
                if let Some(inputs) = inputs
                    && next < inputs.len()
                {
                    let input = inputs.get(next);
                    if input.call() == i {
                        msg.input = input_bytes(input.bytes());
                        next += 1;
                    }
                }
                msg
            })
    }
}

fn input_bytes(bytes: Option<Vector<'_, u8>>) -> &[u8] {
    bytes.map_or(&[], |v| v.bytes())
}

/// Size of one `Invocation` struct on the wire.
const INVOCATION_BYTES: usize = core::mem::size_of::<wire::Invocation>();

/// The fixed head of a directly written `invoke_one` request: root offset,
/// vtable, then the table, whose only field is the `call` struct, at the
/// 8-aligned offset 16.
///
/// ```text
///  0: u32 12                root table at 12
///  4: u16 6, u16 92, u16 4  vtable: 6 bytes, table 4 + 88 bytes, call at +4
/// 10: u16 0                 padding
/// 12: i32 8                 table: its vtable is at 12 - 8 = 4
/// 16: Invocation            88 bytes
/// ```
const ONE_REQUEST_HEAD: [u8; 16] = [
    12, 0, 0, 0, //
    6, 0, 92, 0, //
    4, 0, 0, 0, //
    8, 0, 0, 0, //
];
const ONE_REQUEST_BYTES: usize = ONE_REQUEST_HEAD.len() + INVOCATION_BYTES;

/// Reads an `invoke_one` request (verified). The shape
/// [`encode_invoke_one_request`] writes for a call without input is
/// recognised byte for byte (every bit pattern of the struct is a valid
/// call); any other layout, e.g. one with an input, goes through the
/// flatbuffers verifier. An input over `MAX_INPUT_LEN` is refused.
pub fn decode_invoke_one_request(bytes: &[u8]) -> Result<InvocationMsg<'_>, AbiError> {
    const NAME: &str = "InvokeOneRequest";
    if let Some(call) = decode_invoke_one_fixed(bytes) {
        return Ok(call);
    }
    let req = root::<wire::InvokeOneRequest>(NAME, bytes)?;
    let input = input_bytes(req.input());
    check_input(NAME, input)?;
    Ok(InvocationMsg {
        input,
        ..invocation_from_wire(req.call())
    })
}

/// The call of an `invoke_one` request in the fixed layout
/// [`encode_invoke_one_request`] writes for a call without input (byte for
/// byte; every bit pattern of the struct is a valid call), borrowing
/// nothing from `bytes`; `None` for any other layout (which
/// [`decode_invoke_one_request`] reads through the verifier).
#[inline]
pub fn decode_invoke_one_fixed(bytes: &[u8]) -> Option<InvocationMsg<'static>> {
    let call = bytes
        .strip_prefix(&ONE_REQUEST_HEAD)
        .and_then(|rest| <[u8; INVOCATION_BYTES]>::try_from(rest).ok())?;
    Some(invocation_from_wire(&wire::Invocation(call)))
}

/// `invoke_one` request: a single call. Without input it is written
/// directly (no builder) in the fixed shape [`decode_invoke_one_request`]
/// reads fastest; with input the builder adds the `input` field.
pub fn encode_invoke_one_request(call: &InvocationMsg<'_>) -> Vec<u8> {
    if !call.input.is_empty() {
        return encode_invoke_one_request_with_builder(call);
    }
    let mut bytes = Vec::with_capacity(ONE_REQUEST_BYTES);
    bytes.extend_from_slice(&ONE_REQUEST_HEAD);
    bytes.extend_from_slice(&invocation_to_wire(call).0);
    bytes
}

/// The same request through the `FlatBufferBuilder` (a different, equally
/// valid layout; the `input` field when there is one).
pub(crate) fn encode_invoke_one_request_with_builder(call: &InvocationMsg<'_>) -> Vec<u8> {
    build_message(|fbb| {
        let input = (!call.input.is_empty()).then(|| fbb.create_vector(call.input));
        let wire_call = invocation_to_wire(call);
        let req = wire::InvokeOneRequest::create(
            fbb,
            &wire::InvokeOneRequestArgs {
                call: Some(&wire_call),
                input,
            },
        );
        fbb.finish(req, None);
    })
}

pub(super) fn invocation_to_wire(c: &InvocationMsg<'_>) -> wire::Invocation {
    wire::Invocation::new(
        &wire::Hash::new(&c.instance),
        c.endpoint,
        &c.args,
        c.gas,
        c.timeout,
    )
}

fn invocation_from_wire(call: &wire::Invocation) -> InvocationMsg<'static> {
    let wire_args = call.args();
    let args: [u64; 4] = core::array::from_fn(|i| wire_args.get(i));
    InvocationMsg {
        instance: hash_from_wire(call.instance()),
        endpoint: call.endpoint(),
        args,
        gas: call.gas(),
        input: &[],
        timeout: call.timeout(),
    }
}

/// Size of one `CallOutcome` struct on the wire.
const OUTCOME_BYTES: usize = core::mem::size_of::<wire::CallOutcome>();

/// The fixed head of a directly written reply: root offset, vtable, table
/// (only field 1, `outcomes`, present) and the vector's length word, so
/// that the structs start at an 8-aligned offset.
///
/// ```text
///  0: u32 12        root table at 12
///  4: u16 8, u16 8  vtable: 8 bytes long, table 8 bytes long
///  8: u16 0, u16 4  field 0 (error) absent, field 1 (outcomes) at +4
/// 12: i32 8         table: its vtable is at 12 - 8 = 4
/// 16: u32 4         outcomes: vector at 16 + 4 = 20
/// 20: u32 n         vector length, then n structs from 24
/// ```
const DIRECT_HEAD: [u8; 24] = [
    12, 0, 0, 0, //
    8, 0, 8, 0, //
    0, 0, 4, 0, //
    8, 0, 0, 0, //
    4, 0, 0, 0, //
    0, 0, 0, 0, // length, patched in `finish`
];
const LENGTH_AT: usize = 20;

/// Builds an `invoke` reply call by call.
pub struct InvokeReplyWriter {
    /// `DIRECT_HEAD` then one `CallOutcome` per call so far.
    bytes: Vec<u8>,
    calls: u32,
    /// (call, output) for calls that returned output.
    outputs: Vec<(u32, Vec<u8>)>,
    /// (call, error) for calls that did not run.
    errors: Vec<(u32, RemoteError)>,
}

impl InvokeReplyWriter {
    /// A writer sized for `calls` results (one allocation when none has
    /// output or an error).
    pub fn with_capacity(calls: usize) -> Self {
        Self::in_buffer(Vec::new(), calls)
    }

    /// A writer that reuses `buffer`'s allocation (e.g. the request's,
    /// once it has been read), growing it only if it is too small.
    pub fn in_buffer(mut bytes: Vec<u8>, calls: usize) -> Self {
        bytes.clear();
        bytes.reserve_exact(DIRECT_HEAD.len() + calls * OUTCOME_BYTES);
        bytes.extend_from_slice(&DIRECT_HEAD);
        InvokeReplyWriter {
            bytes,
            calls: 0,
            outputs: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Appends the result of the next call.
    pub fn push(&mut self, result: Result<InvokeResultMsg, RemoteError>) {
        match result {
            Ok(r) => self.push_outcome(&r.instance, r.exit, [r.r7, r.r8, r.gas_used], r.output),
            Err(e) => self.push_error(e),
        }
    }

    /// Appends a call that ran: its resulting instance hash, exit,
    /// `[r7, r8, gas_used]` and output (taken only when not empty).
    #[inline]
    pub fn push_outcome(
        &mut self,
        instance: &[u8; 32],
        exit: super::ExitMsg,
        [r7, r8, gas_used]: [u64; 3],
        output: Vec<u8>,
    ) {
        if !output.is_empty() {
            self.outputs.push((self.calls, output));
        }
        self.calls += 1;
        let outcome = wire::CallOutcome::new(
            &wire::Hash(*instance),
            exit.arg,
            r7,
            r8,
            gas_used,
            wire::ExitKind(exit.kind),
        );
        self.bytes.extend_from_slice(&outcome.0);
    }

    /// Appends a call that did not run.
    pub fn push_error(&mut self, error: RemoteError) {
        self.errors.push((self.calls, error));
        self.calls += 1;
        self.bytes
            .extend_from_slice(&wire::CallOutcome::default().0);
    }

    /// The finished reply message.
    #[inline]
    pub fn finish(mut self) -> Vec<u8> {
        if self.outputs.is_empty() && self.errors.is_empty() {
            self.bytes[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&self.calls.to_le_bytes());
            return self.bytes;
        }
        self.finish_with_builder()
    }

    /// Rare: some call had output or an error. Rebuild the results and
    /// let the builder lay out the side tables.
    #[cold]
    #[inline(never)]
    fn finish_with_builder(self) -> Vec<u8> {
        let mut outputs = self.outputs.into_iter().peekable();
        let mut errors = self.errors.into_iter().peekable();
        let results: Vec<Result<InvokeResultMsg, RemoteError>> = self.bytes[DIRECT_HEAD.len()..]
            .chunks_exact(OUTCOME_BYTES)
            .zip(0u32..)
            .map(|(chunk, call)| {
                if let Some((_, e)) = errors.next_if(|(c, _)| *c == call) {
                    return Err(e);
                }
                let mut raw = [0u8; OUTCOME_BYTES];
                raw.copy_from_slice(chunk);
                let o = wire::CallOutcome(raw);
                Ok(InvokeResultMsg {
                    exit: super::ExitMsg {
                        kind: o.exit().0,
                        arg: o.exit_arg(),
                    },
                    r7: o.r7(),
                    r8: o.r8(),
                    output: outputs
                        .next_if(|(c, _)| *c == call)
                        .map(|(_, out)| out)
                        .unwrap_or_default(),
                    gas_used: o.gas_used(),
                    instance: hash_from_wire(o.instance()),
                })
            })
            .collect();
        encode_invoke_reply(Ok(&results))
    }
}

/// Reads an `invoke` request into vectors (caps, calls).
pub fn decode_invoke_request(
    bytes: &[u8],
) -> Result<(Vec<CapBlobMsg<'_>>, Vec<InvocationMsg<'_>>), AbiError> {
    let view = InvokeRequestView::new(bytes)?;
    Ok((view.caps().collect(), view.calls().collect()))
}

/// Checks a reply's direct-shape invariants (used by tests).
#[cfg(test)]
pub(crate) fn is_direct_shape(bytes: &[u8]) -> bool {
    bytes.len() >= DIRECT_HEAD.len()
        && bytes[..LENGTH_AT] == DIRECT_HEAD[..LENGTH_AT]
        && (bytes.len() - DIRECT_HEAD.len()).is_multiple_of(OUTCOME_BYTES)
}
