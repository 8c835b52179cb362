//! Bad input over the ABI gives typed errors on both backends, and the
//! kernel keeps serving afterwards. Plus: a guest fault rebuilds the
//! sandbox and the next call works.

use capbox::KernelError;
use capbox::shared::abi::{self, CapBlobMsg, ErrorKind, GuestFunction, InvocationMsg};
use capbox::shared::cap::{Cap, CapHashOrRef, Data, InstanceCap, TypeCap};
use capbox::shared::kernel::sample::{Endpoint, sample_image};

/// The kernel still works: a fresh instance increments to 1.
fn still_serving(kernel: &mut capbox::Kernel) {
    let start = kernel.create_instance(&sample_image()).unwrap();
    let o = kernel
        .invoke(&start, Endpoint::Increment.index(), [0; 4], 1000)
        .unwrap();
    assert_eq!(o.r7, 1);
}

fn put_raw(
    kernel: &mut capbox::Kernel,
    caps: &[CapBlobMsg<'_>],
) -> Result<Vec<[u8; 32]>, abi::RemoteError> {
    let reply = kernel
        .call_raw(GuestFunction::PutCap, &abi::encode_put_cap_request(caps))
        .unwrap();
    abi::decode_put_cap_reply(&reply).unwrap()
}

capbox_tests::backend_tests! {
    fn corrupt_cap_bytes(kernel: &mut Kernel) {
        let good = Cap::Data(Data::from_bytes(b"hello").unwrap()).encode().unwrap();
        for bad in [&b""[..], &[0xee, 1, 2, 3][..], &good[..good.len() - 1], &[good.as_slice(), &[0]].concat()[..]] {
            let err = put_raw(kernel, &[CapBlobMsg { hash: None, bytes: bad }]).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadCap, "{err}");
        }
        still_serving(kernel);
    }

    fn truncated_and_garbage_messages(kernel: &mut Kernel) {
        let request = abi::encode_invoke_request(
            &[],
            &[InvocationMsg { instance: [1; 32], endpoint: 0, args: [0; 4], gas: 10, input: &[], timeout: u64::MAX }],
        );
        for bytes in [&request[..request.len() / 2], &request[..3], &[0xff; 64][..], &[][..]] {
            let reply = kernel.call_raw(GuestFunction::Invoke, bytes).unwrap();
            let err = abi::decode_invoke_reply(&reply).unwrap().unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadMessage, "{err}");
        }
        let one = abi::encode_invoke_one_request(&InvocationMsg { instance: [1; 32], endpoint: 0, args: [0; 4], gas: 10, input: &[], timeout: u64::MAX });
        for bytes in [&one[..one.len() / 2], &one[..3], &[0xff; 64][..], &[][..], &request[..]] {
            let reply = kernel.call_raw(GuestFunction::InvokeOne, bytes).unwrap();
            let err = abi::decode_invoke_reply(&reply).unwrap().unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadMessage, "{err}");
        }
        for function in [GuestFunction::PutCap, GuestFunction::GetCap, GuestFunction::Bench] {
            let reply = kernel.call_raw(function, &[1, 2, 3]).unwrap();
            assert!(!reply.is_empty(), "{function:?} gave no error reply");
        }
        still_serving(kernel);
    }

    fn hash_mismatches(kernel: &mut Kernel) {
        let cap = Cap::Data(Data::from_bytes(b"some bytes").unwrap());
        let bytes = cap.encode().unwrap();
        let mut wrong = cap.hash().unwrap().0;
        wrong[0] ^= 1;
        let err = put_raw(kernel, &[CapBlobMsg { hash: Some(wrong), bytes: &bytes }]).unwrap_err();
        assert_eq!((err.kind, err.hash), (ErrorKind::HashMismatch, Some(wrong)), "{err}");

        // A cap graph whose instance names a Data cap as its image.
        let data_hash = kernel.put_cap(&cap).unwrap();
        let cnode = kernel.put_cap(&Cap::CNode(Default::default())).unwrap();
        let bogus = Cap::Instance(InstanceCap {
            image: data_hash,
            memory: CapHashOrRef::Hash(data_hash),
            root_cnode: CapHashOrRef::Hash(cnode),
            image_hash_chain: TypeCap::ROOT_CHAIN,
        });
        let bogus = kernel.put_cap(&bogus).unwrap();
        let err = kernel.invoke(&bogus, 0, [0; 4], 10).unwrap_err();
        let KernelError::Refused(remote) = &err else { panic!("{err}") };
        assert_eq!((remote.kind, remote.hash), (ErrorKind::WrongKind, Some(data_hash.0)), "{err}");
        still_serving(kernel);
    }
}

#[test]
fn sandbox_guest_fault_rebuilds_and_recovers() {
    let Some(mut kernel) = capbox_tests::shared_sandbox() else {
        return;
    };
    let start = kernel.create_instance(&sample_image()).unwrap();
    let one = kernel
        .invoke(&start, Endpoint::Increment.index(), [0; 4], 1000)
        .unwrap()
        .instance;
    kernel.export_instance(&one).unwrap();
    let err = kernel.call_raw(GuestFunction::Crash, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::GuestFault {
                function: "crash",
                ..
            }
        ),
        "{err}"
    );
    // The new sandbox is empty, but the host re-supplies what it holds.
    assert!(!kernel.is_published(&one));
    let o = kernel
        .invoke(&one, Endpoint::Increment.index(), [0; 4], 1000)
        .unwrap();
    assert_eq!(o.r7, 2);
    still_serving(&mut kernel);
}

#[test]
fn sandbox_oversized_request_is_refused_on_the_host() {
    let Some(mut kernel) = capbox_tests::shared_sandbox() else {
        return;
    };
    let huge = vec![0u8; 5 << 20];
    let err = kernel.call_raw(GuestFunction::PutCap, &huge).unwrap_err();
    assert!(matches!(err, KernelError::MessageTooLarge { .. }), "{err}");
    still_serving(&mut kernel);
}

#[test]
fn sandbox_overrunning_call_is_killed_and_recovers() {
    // Its own short-timeout sandbox (the shared one waits long enough for
    // the differential batch).
    let config = capbox::SandboxConfig {
        call_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let Some(mut kernel) = capbox_tests::own_sandbox(config) else {
        return;
    };
    let start = std::time::Instant::now();
    let err = kernel.bench("interp_loop_1000", u64::MAX).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::GuestFault {
                function: "bench",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    still_serving(&mut kernel);
}
