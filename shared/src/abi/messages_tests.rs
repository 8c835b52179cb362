use alloc::string::ToString;

use super::super::{InvokeReplyWriter, InvokeRequestView, decode_invoke_request};
use super::*;

#[test]
fn invoke_round_trip() {
    let cap = [7u8; 40];
    let caps = [CapBlobMsg {
        hash: Some([1; 32]),
        bytes: &cap,
    }];
    let calls = [InvocationMsg {
        instance: [2; 32],
        endpoint: 3,
        args: [4, 5, 6, 7],
        gas: 99,
        input: &[],
        timeout: 0x1234_5678_9abc,
    }];
    let bytes = encode_invoke_request(&caps, &calls);
    let (got_caps, got_calls) = decode_invoke_request(&bytes).unwrap();
    assert_eq!(got_caps, caps);
    assert_eq!(got_calls, calls);

    let results = [
        Ok(InvokeResultMsg {
            exit: ExitMsg {
                kind: 3,
                arg: 0x1000,
            },
            r7: 1,
            r8: 2,
            output: alloc::vec![9, 9],
            gas_used: 42,
            instance: [8; 32],
        }),
        Err(RemoteError {
            kind: ErrorKind::MissingCap,
            message: "no such blob".into(),
            hash: Some([3; 32]),
        }),
    ];
    let reply = encode_invoke_reply(Ok(&results));
    assert_eq!(decode_invoke_reply(&reply).unwrap().unwrap(), results);
}

#[test]
fn truncated_and_garbage_messages_are_errors() {
    let bytes = encode_invoke_request(&[], &[]);
    for cut in 0..bytes.len() {
        let _ = decode_invoke_request(&bytes[..cut]);
    }
    assert!(decode_invoke_request(&bytes[..bytes.len() / 2]).is_err());
    assert!(decode_put_cap_request(&[0xff; 16]).is_err());
    assert!(decode_get_cap_request(&[]).is_err());
}

#[test]
fn put_cap_and_get_cap_round_trip() {
    let reply = encode_put_cap_reply(Ok(&[[5; 32], [6; 32]]));
    assert_eq!(
        decode_put_cap_reply(&reply).unwrap().unwrap(),
        [[5; 32], [6; 32]]
    );
    let err = RemoteError {
        kind: ErrorKind::BadCap,
        message: "bad".into(),
        hash: None,
    };
    let reply = encode_get_cap_reply(Err(&err));
    assert_eq!(decode_get_cap_reply(&reply).unwrap().unwrap_err(), err);
    assert_eq!(
        decode_get_cap_request(&encode_get_cap_request(&[4; 32])).unwrap(),
        [4; 32]
    );
}

#[test]
fn reply_errors_must_name_existing_calls() {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let message = fbb.create_string("x");
    let error = wire::Error::create(
        &mut fbb,
        &wire::ErrorArgs {
            code: wire::ErrorCode::Kernel,
            message: Some(message),
            hash: None,
        },
    );
    let call_error = wire::CallError::create(
        &mut fbb,
        &wire::CallErrorArgs {
            call: 3,
            error: Some(error),
        },
    );
    let errors = fbb.create_vector(&[call_error]);
    let reply = wire::InvokeReply::create(
        &mut fbb,
        &wire::InvokeReplyArgs {
            errors: Some(errors),
            ..Default::default()
        },
    );
    fbb.finish(reply, None);
    let err = decode_invoke_reply(fbb.finished_data()).unwrap_err();
    assert!(err.to_string().contains("1 errors for 0 calls"), "{err}");
}

fn sample_result(i: u8, output: &[u8]) -> InvokeResultMsg {
    InvokeResultMsg {
        exit: ExitMsg {
            kind: i % 4,
            arg: u64::from(i) << 12,
        },
        r7: u64::from(i) + 1,
        r8: u64::MAX - u64::from(i),
        output: output.to_vec(),
        gas_used: 1000 + u64::from(i),
        instance: [i.wrapping_mul(31); 32],
    }
}

fn write_reply(results: &[Result<InvokeResultMsg, RemoteError>]) -> alloc::vec::Vec<u8> {
    let mut writer = InvokeReplyWriter::with_capacity(results.len());
    for r in results {
        writer.push(r.clone());
    }
    writer.finish()
}

#[test]
fn reply_writer_direct_shape_reads_back() {
    for n in 0..5u8 {
        let results: alloc::vec::Vec<_> = (0..n).map(|i| Ok(sample_result(i, &[]))).collect();
        let direct = write_reply(&results);
        assert!(
            super::super::invoke_codec::is_direct_shape(&direct),
            "n={n}"
        );
        assert_eq!(decode_invoke_reply(&direct).unwrap().unwrap(), results);
        // Same meaning as the builder's encoding.
        let built = encode_invoke_reply(Ok(&results));
        assert_eq!(
            decode_invoke_reply(&built).unwrap(),
            decode_invoke_reply(&direct).unwrap()
        );
        for cut in 0..direct.len() {
            let _ = decode_invoke_reply(&direct[..cut]);
        }
        if n > 0 {
            assert!(decode_invoke_reply(&direct[..direct.len() - 1]).is_err());
        }
    }
}

#[test]
fn reply_writer_outputs_and_errors_fall_back_to_the_builder() {
    let results = alloc::vec![
        Ok(sample_result(1, &[])),
        Ok(sample_result(2, b"out")),
        Err(RemoteError {
            kind: ErrorKind::MissingCap,
            message: "no such blob".into(),
            hash: Some([3; 32]),
        }),
        Ok(sample_result(4, b"more")),
    ];
    let reply = write_reply(&results);
    assert!(!super::super::invoke_codec::is_direct_shape(&reply));
    assert_eq!(decode_invoke_reply(&reply).unwrap().unwrap(), results);
}

#[test]
fn request_view_reads_what_was_encoded() {
    let calls = [
        InvocationMsg {
            instance: [2; 32],
            endpoint: 3,
            args: [4, 5, 6, 7],
            gas: 99,
            input: &[],
            timeout: crate::kernel::NO_TIMEOUT,
        },
        InvocationMsg {
            instance: [0; 32],
            endpoint: 1,
            args: [0; 4],
            gas: 5,
            input: &[],
            timeout: 7,
        },
    ];
    let bytes = encode_invoke_request(&[], &calls);
    let view = InvokeRequestView::new(&bytes).unwrap();
    assert!(!view.has_caps());
    assert_eq!(view.call_count(), 2);
    assert_eq!(view.calls().collect::<alloc::vec::Vec<_>>(), calls);
}

#[test]
fn invoke_one_round_trip_and_garbage() {
    use super::super::{decode_invoke_one_request, encode_invoke_one_request};
    let call = InvocationMsg {
        instance: [4; 32],
        endpoint: 2,
        args: [1, u64::MAX, 3, 0],
        gas: 77,
        input: &[],
        timeout: crate::kernel::NO_TIMEOUT,
    };
    let bytes = encode_invoke_one_request(&call);
    assert_eq!(decode_invoke_one_request(&bytes).unwrap(), call);
    for cut in 0..bytes.len() {
        assert!(decode_invoke_one_request(&bytes[..cut]).is_err());
    }
    // A table without its required call is refused.
    assert!(decode_invoke_one_request(&encode_invoke_request(&[], &[])).is_err());
    assert!(decode_invoke_one_request(&[0xff; 16]).is_err());
}

#[test]
fn invoke_one_direct_shape_is_a_valid_flatbuffer_and_builder_shape_still_reads() {
    use super::super::invoke_codec::encode_invoke_one_request_with_builder;
    use super::super::{
        decode_invoke_one_fixed, decode_invoke_one_request, encode_invoke_one_request,
    };
    let call = InvocationMsg {
        instance: [9; 32],
        endpoint: 7,
        args: [u64::MAX, 0, 5, 1 << 40],
        gas: u64::MAX,
        input: &[],
        timeout: 42,
    };
    let direct = encode_invoke_one_request(&call);
    // The hand-written layout passes the flatbuffers verifier and reads
    // the same call through the generated accessors.
    let req = super::root::<wire::InvokeOneRequest>("InvokeOneRequest", &direct).unwrap();
    let by_builder = encode_invoke_one_request_with_builder(&call);
    let req_b = super::root::<wire::InvokeOneRequest>("InvokeOneRequest", &by_builder).unwrap();
    assert_eq!(req.call().0, req_b.call().0);
    // The builder's layout differs, and the decoder's general path reads it.
    assert_ne!(by_builder, direct);
    assert_eq!(decode_invoke_one_request(&by_builder).unwrap(), call);
    assert_eq!(decode_invoke_one_request(&direct).unwrap(), call);
    // The fixed-layout reader (the guest's first try) takes exactly the
    // direct shape and nothing else.
    assert_eq!(decode_invoke_one_fixed(&direct), Some(call));
    assert_eq!(decode_invoke_one_fixed(&by_builder), None);
    // One byte more or a changed head leaves the fast path; a broken head is
    // refused by the verifier.
    let mut longer = direct.clone();
    longer.push(0);
    assert_eq!(decode_invoke_one_fixed(&longer), None);
    assert_eq!(decode_invoke_one_fixed(&direct[..direct.len() - 1]), None);
    assert_eq!(decode_invoke_one_request(&longer).unwrap(), call);
    let mut broken = direct.clone();
    broken[0] = 200; // the root table lies past the end
    assert!(decode_invoke_one_request(&broken).is_err());
}

fn call_with_input(instance: u8, input: &[u8]) -> InvocationMsg<'_> {
    InvocationMsg {
        instance: [instance; 32],
        endpoint: u32::from(instance),
        args: [1, 2, 3, u64::from(instance)],
        gas: 1000,
        input,
        timeout: crate::kernel::NO_TIMEOUT,
    }
}

#[test]
fn invoke_request_inputs_round_trip() {
    let big = alloc::vec![0xa5u8; MAX_INPUT_LEN];
    let calls = [
        call_with_input(1, b"abc"),
        call_with_input(0, &[]),
        call_with_input(2, &big),
        call_with_input(3, &[0]),
    ];
    let bytes = encode_invoke_request(&[], &calls);
    let (_, got) = decode_invoke_request(&bytes).unwrap();
    assert_eq!(got, calls);
    let view = InvokeRequestView::new(&bytes).unwrap();
    assert_eq!(view.calls().collect::<alloc::vec::Vec<_>>(), calls);
    // No input anywhere: no side table, the same bytes as before inputs.
    let plain = [call_with_input(1, &[]), call_with_input(2, &[])];
    let bytes = encode_invoke_request(&[], &plain);
    let req = super::root::<wire::InvokeRequest>("InvokeRequest", &bytes).unwrap();
    assert!(req.inputs().is_none());
    assert_eq!(decode_invoke_request(&bytes).unwrap().1, plain);
}

#[test]
fn invoke_one_with_and_without_input_round_trips() {
    use super::super::{decode_invoke_one_request, encode_invoke_one_request};
    let plain = call_with_input(4, &[]);
    let fixed = encode_invoke_one_request(&plain);
    // Without input: the fixed layout (88-byte struct after a 16-byte head).
    assert_eq!(fixed.len(), 104);
    assert_eq!(decode_invoke_one_request(&fixed).unwrap(), plain);
    for input in [&b"x"[..], b"hello", &alloc::vec![7u8; MAX_INPUT_LEN]] {
        let call = call_with_input(5, input);
        let bytes = encode_invoke_one_request(&call);
        assert_ne!(bytes.len(), 104);
        assert_eq!(super::super::decode_invoke_one_fixed(&bytes), None);
        assert_eq!(decode_invoke_one_request(&bytes).unwrap(), call);
        for cut in (0..bytes.len()).step_by(1 + bytes.len() / 512) {
            let _ = decode_invoke_one_request(&bytes[..cut]);
        }
    }
}

fn assert_too_long(err: AbiError) {
    assert!(err.reason.contains("input of"), "{err}");
}

#[test]
fn oversize_inputs_are_refused() {
    use super::super::{decode_invoke_one_request, encode_invoke_one_request};
    let big = alloc::vec![1u8; MAX_INPUT_LEN + 1];
    let call = call_with_input(6, &big);
    assert_too_long(decode_invoke_one_request(&encode_invoke_one_request(&call)).unwrap_err());
    let bytes = encode_invoke_request(&[], &[call_with_input(1, b"ok"), call]);
    assert_too_long(InvokeRequestView::new(&bytes).err().unwrap());
    assert_too_long(decode_invoke_request(&bytes).unwrap_err());
}

/// An `InvokeRequest` with `calls` calls and inputs for the call numbers
/// `inputs`, as any sender might write it.
fn request_with_inputs(calls: usize, inputs: &[u32]) -> alloc::vec::Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let mut offsets = alloc::vec::Vec::new();
    for &call in inputs {
        let bytes = Some(fbb.create_vector(&[1u8, 2, 3]));
        offsets.push(wire::CallInput::create(
            &mut fbb,
            &wire::CallInputArgs { call, bytes },
        ));
    }
    let inputs = Some(fbb.create_vector(&offsets));
    let structs: alloc::vec::Vec<wire::Invocation> = (0..calls)
        .map(|_| super::super::invoke_codec::invocation_to_wire(&call_with_input(1, &[])))
        .collect();
    let calls = Some(fbb.create_vector(&structs));
    let req = wire::InvokeRequest::create(
        &mut fbb,
        &wire::InvokeRequestArgs {
            caps: None,
            calls,
            inputs,
            report: wire::ReportMode::Off,
        },
    );
    fbb.finish(req, None);
    fbb.finished_data().to_vec()
}

#[test]
fn inputs_must_name_existing_calls_in_order() {
    let ok = request_with_inputs(3, &[0, 2]);
    let view = InvokeRequestView::new(&ok).unwrap();
    let inputs: alloc::vec::Vec<_> = view.calls().map(|c| c.input.to_vec()).collect();
    assert_eq!(
        inputs,
        [alloc::vec![1, 2, 3], alloc::vec![], alloc::vec![1, 2, 3]]
    );
    for bad in [&[3u32][..], &[1, 1], &[2, 0], &[0, u32::MAX]] {
        let bytes = request_with_inputs(3, bad);
        let err = InvokeRequestView::new(&bytes).err().unwrap();
        assert!(err.to_string().contains("out of order"), "{bad:?}: {err}");
    }
    // An input without calls at all.
    assert!(InvokeRequestView::new(&request_with_inputs(0, &[0])).is_err());
}

#[test]
fn garbage_invoke_requests_with_inputs_never_panic() {
    use super::super::decode_invoke_one_request;
    let with_inputs = encode_invoke_request(
        &[],
        &[call_with_input(1, b"abc"), call_with_input(2, b"defgh")],
    );
    let one = super::super::encode_invoke_one_request(&call_with_input(3, b"input"));
    // Every truncation and every single-byte corruption: an error or a
    // decoded message, never a panic.
    for bytes in [&with_inputs, &one] {
        for cut in 0..bytes.len() {
            let _ = decode_invoke_request(&bytes[..cut]);
            let _ = decode_invoke_one_request(&bytes[..cut]);
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                if let Ok(view) = InvokeRequestView::new(&b) {
                    for c in view.calls() {
                        assert!(c.input.len() <= MAX_INPUT_LEN);
                    }
                }
                if let Ok(c) = decode_invoke_one_request(&b) {
                    assert!(c.input.len() <= MAX_INPUT_LEN);
                }
            }
        }
    }
    // Pseudo-random bytes.
    let mut x = 0x1234_5678_9abc_def0u64;
    for len in 0..300 {
        let bytes: alloc::vec::Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = decode_invoke_request(&bytes);
        let _ = decode_invoke_one_request(&bytes);
    }
}

/// A reply whose `outputs` all share one byte vector (flatbuffers allows
/// it): `n_outputs` entries for calls `call_of(i)`, and `n_outcomes`
/// outcomes.
fn shared_output_reply(
    n_outcomes: usize,
    n_outputs: usize,
    call_of: impl Fn(usize) -> u32,
    len: usize,
) -> Vec<u8> {
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let bytes = fbb.create_vector(&alloc::vec![7u8; len]);
    let outputs: Vec<_> = (0..n_outputs)
        .map(|i| {
            wire::CallOutput::create(
                &mut fbb,
                &wire::CallOutputArgs {
                    call: call_of(i),
                    bytes: Some(bytes),
                },
            )
        })
        .collect();
    let outputs = fbb.create_vector(&outputs);
    let outcome = wire::CallOutcome::new(&wire::Hash([0; 32]), 0, 0, 0, 0, wire::ExitKind(0));
    let outcomes = fbb.create_vector(&alloc::vec![outcome; n_outcomes]);
    let reply = wire::InvokeReply::create(
        &mut fbb,
        &wire::InvokeReplyArgs {
            outcomes: Some(outcomes),
            outputs: Some(outputs),
            ..Default::default()
        },
    );
    fbb.finish(reply, None);
    fbb.finished_data().to_vec()
}

#[test]
fn replies_cannot_amplify_shared_outputs() {
    // 2,000 entries sharing one 1 MiB vector (a 1 MiB message that would
    // decode into 2 GB): refused before anything is copied.
    let reply = shared_output_reply(1, 2000, |_| 0, 1 << 20);
    let err = decode_invoke_reply(&reply).unwrap_err();
    assert!(
        err.to_string().contains("2000 outputs for 1 calls"),
        "{err}"
    );
    // As many entries as calls, but two for the same call.
    let reply = shared_output_reply(2, 2, |_| 0, 16);
    let err = decode_invoke_reply(&reply).unwrap_err();
    assert!(err.to_string().contains("two outputs for call 0"), "{err}");
    // One output per call is fine, and each is copied once.
    let reply = shared_output_reply(2, 2, |i| i as u32, 16);
    let results = decode_invoke_reply(&reply).unwrap().unwrap();
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().output.len() == 16)
    );
    // An output longer than any program can set is refused.
    let reply = shared_output_reply(1, 1, |_| 0, (1 << 20) + 1);
    assert!(decode_invoke_reply(&reply).is_err());
    // The host says how many calls it sent: another count is refused.
    let reply = shared_output_reply(3, 0, |_| 0, 0);
    let err = decode_invoke_reply_for(&reply, 2).unwrap_err();
    assert!(err.to_string().contains("3 outcomes for 2 calls"), "{err}");
    assert!(decode_invoke_reply_for(&reply, 3).is_ok());
}

#[test]
fn timeout_exit_and_call_timeouts_round_trip() {
    use crate::kernel::{ExitReason, NO_TIMEOUT};
    // The exit kind: 4 on the wire, through both reply shapes.
    let (kind, arg) = ExitReason::Timeout.to_wire();
    assert_eq!((kind, arg), (4, 0));
    assert_eq!(wire::ExitKind::Timeout.0, kind);
    assert_eq!(ExitReason::from_wire(kind, arg), Some(ExitReason::Timeout));
    assert_eq!(ExitReason::from_wire(5, 0), None);
    let result = InvokeResultMsg {
        exit: ExitMsg { kind, arg },
        r7: 1,
        r8: 2,
        output: alloc::vec::Vec::new(),
        gas_used: 123_456,
        instance: [5; 32],
    };
    let direct = write_reply(&[Ok(result.clone())]);
    assert!(super::super::invoke_codec::is_direct_shape(&direct));
    assert_eq!(
        decode_invoke_reply(&direct).unwrap().unwrap(),
        [Ok(result.clone())]
    );
    let built = encode_invoke_reply(Ok(&[Ok(result.clone())]));
    assert_eq!(decode_invoke_reply(&built).unwrap().unwrap(), [Ok(result)]);
    // The call's timeout, in both request shapes and in `invoke`.
    use super::super::{decode_invoke_one_request, encode_invoke_one_request};
    for timeout in [0, 1, 2_000_000_000, NO_TIMEOUT] {
        let call = InvocationMsg {
            timeout,
            ..call_with_input(9, &[])
        };
        let fixed = encode_invoke_one_request(&call);
        assert_eq!(decode_invoke_one_request(&fixed).unwrap(), call);
        let with_input = InvocationMsg {
            input: b"in",
            ..call
        };
        let bytes = encode_invoke_one_request(&with_input);
        assert_eq!(decode_invoke_one_request(&bytes).unwrap(), with_input);
        let bytes = encode_invoke_request(&[], &[call, with_input]);
        assert_eq!(decode_invoke_request(&bytes).unwrap().1, [call, with_input]);
    }
}
