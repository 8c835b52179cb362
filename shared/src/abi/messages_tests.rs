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
    assert!(err.to_string().contains("call 3 of 0"), "{err}");
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
        },
        InvocationMsg {
            instance: [0; 32],
            endpoint: 1,
            args: [0; 4],
            gas: 5,
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
    use super::super::{decode_invoke_one_request, encode_invoke_one_request};
    let call = InvocationMsg {
        instance: [9; 32],
        endpoint: 7,
        args: [u64::MAX, 0, 5, 1 << 40],
        gas: u64::MAX,
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
    // One byte more or a changed head leaves the fast path; a broken head is
    // refused by the verifier.
    let mut longer = direct.clone();
    longer.push(0);
    assert_eq!(decode_invoke_one_request(&longer).unwrap(), call);
    let mut broken = direct.clone();
    broken[0] = 200; // the root table lies past the end
    assert!(decode_invoke_one_request(&broken).is_err());
}
