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
}
