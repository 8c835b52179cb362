//! Hostile images: the decoder's memory is bounded whatever the blob, on
//! both backends, and a refused image leaves the kernel serving the next
//! call.

use capbox::Kernel;
use capbox::KernelError;
use capbox::shared::abi::ErrorKind;
use capbox::shared::cap::Image;
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::shared::pvm::MAX_INSTRUCTIONS;
use capbox::shared::pvm::asm::{ProgramBuilder, Reg};

/// `count` instructions: one-byte `fallthrough`s (the decoder's worst case:
/// one entry per code byte) and a halt, the only endpoint.
fn fallthroughs(count: u64) -> Image {
    let mut b = ProgramBuilder::new();
    for _ in 0..count - 1 {
        b.fallthrough();
    }
    let end = b.here();
    b.jump_ind(Reg::R0, 0u32);
    let built = b.build_program().unwrap();
    Image {
        code: built.blob.clone(),
        ro_data: vec![],
        rw_data: vec![],
        heap_pages: 0,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![built.pc(end).unwrap()],
    }
}

fn largest_allowed_runs(kernel: &mut Kernel) {
    let largest = kernel
        .create_instance(&fallthroughs(MAX_INSTRUCTIONS))
        .unwrap();
    let o = kernel.invoke(&largest, 0, [0; 4], 100).unwrap();
    assert_eq!(o.exit, ExitReason::Halt);
}

#[test]
fn local_the_largest_image_allowed_decodes_and_runs() {
    largest_allowed_runs(&mut capbox_tests::local_kernel());
}

/// The same in the guest (it decodes there without a fault: checked when
/// the limit was set), but decoding 2^18 instructions under this machine's
/// instruction emulation takes ~80 s, too long for every CI run.
#[test]
#[ignore = "~80 s on nested KVM; run with `cargo test --test hostile -- --ignored`"]
fn sandbox_the_largest_image_allowed_decodes_and_runs() {
    if let Some(mut kernel) = capbox_tests::shared_sandbox() {
        largest_allowed_runs(&mut kernel);
    }
}

capbox_tests::backend_tests! {
    fn one_instruction_over_the_limit_is_refused(kernel: &mut Kernel) {
        let too_large = kernel.create_instance(&fallthroughs(MAX_INSTRUCTIONS + 1)).unwrap();
        for _ in 0..2 {
            // Refused each time (nothing cached, no crash).
            match kernel.invoke(&too_large, 0, [0; 4], 100) {
                Err(KernelError::Refused(e)) => {
                    assert_eq!(e.kind, ErrorKind::BadProgram);
                    assert!(e.message.contains("more than the"), "{}", e.message);
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        // The kernel goes on.
        let sample = kernel.create_instance(&sample_image()).unwrap();
        let o = kernel.invoke(&sample, Endpoint::Increment.index(), [0; 4], 1000).unwrap();
        assert_eq!((o.exit, o.r7), (ExitReason::Halt, 1));
    }

    /// Six 1 MiB outputs in one batch (five used to fault the guest):
    /// the kernel stops at its reply budget, the host sends the rest again,
    /// and every call's output arrives.
    fn a_batch_of_large_outputs_arrives_whole(kernel: &mut Kernel) {
        let image = big_output();
        let mut expected = image.rw_data.clone();
        expected.resize(1 << 20, 0);
        let start = kernel.create_instance(&image).unwrap();
        let calls: Vec<capbox::Invocation> = (0..6)
            .map(|i| capbox::Invocation {
                instance: (i % 2 == 0).then_some(start),
                endpoint: 0,
                gas: 1_000_000,
                ..Default::default()
            })
            .collect();
        let results = kernel.invoke_batch(&calls).unwrap();
        assert_eq!(results.len(), 6);
        for r in results {
            let o = r.unwrap();
            assert_eq!((o.exit, o.instance), (ExitReason::Halt, start));
            assert!(o.output == expected, "an output of {} bytes", o.output.len());
        }
    }
}

/// An endpoint that outputs 1 MiB (`MAX_OUTPUT_LEN`) of its memory.
fn big_output() -> Image {
    use capbox::shared::kernel::KernelOp;
    let mut b = ProgramBuilder::new();
    b.load_imm(Reg::R7, 0x2_0000u32)
        .load_imm(Reg::R8, 1u32 << 20)
        .ecalli(KernelOp::SetOutput.number())
        .jump_ind(Reg::R0, 0u32);
    Image {
        code: b.build().unwrap(),
        ro_data: vec![],
        // A page of pattern, then zeros: a 1 MiB rw section would cost
        // seconds of hashing in the emulated guest when published.
        rw_data: (0..4096u32).map(|i| (i % 251) as u8).collect(),
        heap_pages: 256,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![0],
    }
}
