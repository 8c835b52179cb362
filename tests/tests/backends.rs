//! Backend tests, each written once and run on both backends (see
//! `capbox_tests::backend_tests!`).

use capbox::KernelError;
use capbox::shared::abi::ErrorKind;
use capbox::shared::cap::{Cap, CapHashOrRef};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::shared::kernel::{ExitReason, new_instance, ops};

fn refused_kind(err: &KernelError) -> Option<ErrorKind> {
    match err {
        KernelError::Refused(remote) => Some(remote.kind),
        _ => None,
    }
}

capbox_tests::backend_tests! {
    fn counter_state_persists(kernel: &mut Kernel) {
        let start = kernel.create_instance(&sample_image()).unwrap();
        let mut state = start;
        for expected in 1..=3 {
            let o = kernel.invoke(&state, Endpoint::Increment.index(), [0; 4], 1000).unwrap();
            assert_eq!((o.exit, o.r7), (ExitReason::Halt, expected));
            assert_ne!(o.instance, state);
            state = o.instance;
        }
        let read = kernel.invoke(&state, Endpoint::Read.index(), [0; 4], 1000).unwrap();
        assert_eq!((read.r7, read.instance), (3, state));
        // The old state is still there.
        let old = kernel.invoke(&start, Endpoint::Read.index(), [0; 4], 1000).unwrap();
        assert_eq!(old.r7, 0);
        // The new state can be exported and checked against its hash.
        kernel.export_instance(&state).unwrap();
        let Cap::Instance(inst) = kernel.get_cap(&state).unwrap() else {
            panic!("not an instance")
        };
        let CapHashOrRef::Hash(memory) = inst.memory else { panic!("unsettled") };
        let Cap::Data(data) = kernel.get_cap(&memory).unwrap() else { panic!("not data") };
        let mut counter = [0u8; 8];
        data.read(0, &mut counter).unwrap();
        assert_eq!(u64::from_le_bytes(counter), 3);
    }

    fn published_caps_are_never_resent(kernel: &mut Kernel) {
        let mut image = sample_image();
        image.rw_data = vec![3; 8];
        let first = kernel.create_instance(&image).unwrap();
        let sent = kernel.caps_sent();
        let again = kernel.create_instance(&image).unwrap();
        assert_eq!((again, kernel.caps_sent()), (first, sent));
        // New state the kernel produced is known to be there too.
        let o = kernel.invoke(&first, Endpoint::Increment.index(), [0; 4], 1000).unwrap();
        assert!(kernel.is_published(&o.instance));
    }

    fn failures_keep_the_state(kernel: &mut Kernel) {
        let start = kernel.create_instance(&sample_image()).unwrap();
        let one = kernel.invoke(&start, Endpoint::Increment.index(), [0; 4], 1000).unwrap().instance;
        for (ep, exit) in [
            (Endpoint::Trap, ExitReason::Panic),
            (Endpoint::UnknownOp, ExitReason::Panic),
            (Endpoint::WriteThenTrap, ExitReason::Panic),
            (Endpoint::Fault, ExitReason::PageFault(0x10_0000)),
            (Endpoint::Loop, ExitReason::OutOfGas),
        ] {
            let o = kernel.invoke(&one, ep.index(), [0; 4], 300).unwrap();
            assert_eq!((o.exit, o.instance), (exit, one), "{ep:?}");
        }
        let read = kernel.invoke(&one, Endpoint::Read.index(), [0; 4], 1000).unwrap();
        assert_eq!(read.r7, 1);
    }

    fn output_gas_and_stack(kernel: &mut Kernel) {
        let start = kernel.create_instance(&sample_image()).unwrap();
        let added = kernel.invoke(&start, Endpoint::Add.index(), [41, 0, 0, 0], 1000).unwrap();
        let out = kernel.invoke(&added.instance, Endpoint::Output.index(), [0; 4], 1000).unwrap();
        assert_eq!((out.r7, out.output.as_slice()), (ops::OK, &41u64.to_le_bytes()[..]));
        let gas = kernel.invoke(&start, Endpoint::Gas.index(), [0; 4], 1000).unwrap();
        assert!(gas.r7 < 1000 && gas.r7 >= 1000 - gas.gas_used, "{gas:?}");
        let stack = kernel.invoke(&start, Endpoint::StackOnly.index(), [5, 0, 0, 0], 1000).unwrap();
        assert_eq!(stack.instance, start);
        let read = kernel.invoke(&start, Endpoint::ReadStack.index(), [0; 4], 1000).unwrap();
        assert_eq!(read.r7, 0);
    }

    fn log_reaches_the_host(kernel: &mut Kernel) {
        let start = kernel.create_instance(&sample_image()).unwrap();
        let added = kernel.invoke(&start, Endpoint::Add.index(), [0x41, 0, 0, 0], 1000).unwrap();
        kernel.take_logs();
        let o = kernel.invoke(&added.instance, Endpoint::Log.index(), [0; 4], 1000).unwrap();
        assert_eq!((o.exit, o.r7), (ExitReason::Halt, ops::OK));
        assert_eq!(kernel.take_logs(), [b"A\0\0\0\0\0\0\0".to_vec()]);
    }

    fn missing_caps_are_typed_errors(kernel: &mut Kernel) {
        let unknown = CapHash([0x5a; 32]);
        let err = kernel.invoke(&unknown, 0, [0; 4], 10).unwrap_err();
        assert_eq!(refused_kind(&err), Some(ErrorKind::MissingCap), "{err}");
        let KernelError::Refused(remote) = &err else { unreachable!() };
        assert_eq!(remote.hash, Some(unknown.0));
        let err = kernel.get_cap(&unknown).unwrap_err();
        assert_eq!(refused_kind(&err), Some(ErrorKind::MissingCap), "{err}");
        let start = kernel.create_instance(&sample_image()).unwrap();
        let err = kernel.invoke(&start, 1000, [0; 4], 10).unwrap_err();
        assert_eq!(refused_kind(&err), Some(ErrorKind::BadEndpoint), "{err}");
    }

    fn blobs_are_fetched_on_demand(kernel: &mut Kernel) {
        // A variant image nobody published yet: the kernel asks the host.
        let mut image = sample_image();
        image.rw_data = vec![7; 8];
        let image_cap = Cap::Image(image.clone());
        let image_hash = image_cap.hash().unwrap();
        let fresh = new_instance(image_hash, &image).unwrap();
        kernel
            .stage_caps(&[image_cap, fresh.memory, fresh.root_cnode, fresh.instance])
            .unwrap();
        assert!(!kernel.is_published(&fresh.instance_hash));
        let o = kernel.invoke(&fresh.instance_hash, Endpoint::Read.index(), [0; 4], 100).unwrap();
        assert_eq!(o.r7, u64::from_le_bytes([7; 8]));
        assert!(kernel.is_published(&fresh.instance_hash));
    }

    fn blobs_nobody_has_stay_missing(kernel: &mut Kernel) {
        // The instance is staged but its image is known to no one.
        let mut image = sample_image();
        image.rw_data = vec![9; 8];
        let image_hash = Cap::Image(image.clone()).hash().unwrap();
        let fresh = new_instance(image_hash, &image).unwrap();
        kernel
            .stage_caps(&[fresh.memory, fresh.root_cnode, fresh.instance])
            .unwrap();
        let err = kernel.invoke(&fresh.instance_hash, 0, [0; 4], 100).unwrap_err();
        let KernelError::Refused(remote) = &err else { panic!("{err}") };
        assert_eq!((remote.kind, remote.hash), (ErrorKind::MissingCap, Some(image_hash.0)), "{err}");
        // Once the host has it, the same call works.
        kernel.stage_caps(&[Cap::Image(image)]).unwrap();
        let o = kernel.invoke(&fresh.instance_hash, Endpoint::Read.index(), [0; 4], 100).unwrap();
        assert_eq!(o.r7, u64::from_le_bytes([9; 8]));
    }

    fn stats_sweep_and_bench(kernel: &mut Kernel) {
        kernel.create_instance(&sample_image()).unwrap();
        let stats = kernel.stats().unwrap();
        assert!(stats.blobs >= 4, "{stats:?}");
        assert!(stats.programs_cached <= stats.blobs);
        let swept = kernel.sweep().unwrap();
        assert_eq!(swept.instances, 0, "{swept:?}");
        let b = kernel.bench("invoke_empty", 3).unwrap();
        assert_eq!((b.name.as_str(), b.iters), ("invoke_empty", 3));
        let err = kernel.bench("no_such_bench", 1).unwrap_err();
        assert_eq!(refused_kind(&err), Some(ErrorKind::UnknownBenchmark), "{err}");
    }

    fn chained_batch(kernel: &mut Kernel) {
        let start = kernel.create_instance(&sample_image()).unwrap();
        let call = |instance, endpoint: Endpoint| capbox::Invocation {
            instance,
            endpoint: endpoint.index(),
            args: [0; 4],
            gas: 1000,
            input: Vec::new(),
            timeout: None,
        };
        let results = kernel
            .invoke_batch(&[
                call(Some(start), Endpoint::Increment),
                call(None, Endpoint::Increment),
                call(None, Endpoint::Read),
            ])
            .unwrap();
        let r: Vec<u64> = results.into_iter().map(|o| o.unwrap().r7).collect();
        assert_eq!(r, [1, 2, 2]);
        // A chain that starts with nothing to continue is refused.
        let results = kernel.invoke_batch(&[call(None, Endpoint::Read)]).unwrap();
        assert_eq!(refused_kind(results[0].as_ref().unwrap_err()), Some(ErrorKind::BadMessage));
    }

    fn oversized_layout_is_refused(kernel: &mut Kernel) {
        let mut image = sample_image();
        image.stack_size = 256 << 20;
        let instance = kernel.create_instance(&image).unwrap();
        let err = kernel.invoke(&instance, Endpoint::Read.index(), [0; 4], 100).unwrap_err();
        assert_eq!(refused_kind(&err), Some(ErrorKind::Kernel), "{err}");
        assert!(err.to_string().contains("MAX_MAPPED_BYTES"), "{err}");
    }
}
