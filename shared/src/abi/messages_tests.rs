use alloc::string::ToString;

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
