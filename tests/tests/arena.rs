//! The page arena in `stats`, on both backends, and what a full arena does
//! to an invocation in the sandbox.
//!
//! Semantics: the sandbox reports its talc arena (capacity > 0); the local
//! backend reports the process's page allocator, the global heap
//! (capacity 0 = unbounded), counted process-wide: every local kernel in
//! the process adds to the same numbers.

use capbox::shared::abi::ErrorKind;
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{BackendKind, KernelError, SandboxConfig};

capbox_tests::backend_tests! {
    fn stats_report_arena_usage(kernel: &mut Kernel) {
        let start = kernel.create_instance(&sample_image()).unwrap();
        let o = kernel.invoke(&start, Endpoint::Increment.index(), [0; 4], 1000).unwrap();
        assert_eq!(o.exit, ExitReason::Halt);
        let stats = kernel.stats().unwrap();
        eprintln!("{:?}: {stats:?}", kernel.backend());
        // The warm memory of the image and the new state's Data page stay.
        assert!(stats.arena_used_bytes >= 4096, "{stats:?}");
        assert!(stats.arena_peak_bytes >= stats.arena_used_bytes, "{stats:?}");
        match kernel.backend() {
            BackendKind::Sandbox => {
                assert!(stats.arena_capacity_bytes > 0, "{stats:?}");
                assert!(stats.arena_peak_bytes <= stats.arena_capacity_bytes, "{stats:?}");
                assert_eq!(stats.arena_spill_bytes, 0, "{stats:?}");
            }
            BackendKind::Local => assert_eq!(stats.arena_capacity_bytes, 0, "{stats:?}"),
        }
    }
}

/// A sandbox with a 16 MiB heap (an arena of at most 12 MiB) cannot map a
/// 16 MiB heap section: the invocation is refused with `OutOfMemory`, and
/// the kernel carries on. The local backend (unbounded) runs it.
#[test]
fn full_arena_refuses_the_invocation() {
    let mut image = sample_image();
    image.heap_pages = 4096;
    let mut local = capbox_tests::local_kernel();
    let start = local.create_instance(&image).unwrap();
    let o = local
        .invoke(&start, Endpoint::Read.index(), [0; 4], 1000)
        .unwrap();
    assert_eq!(o.exit, ExitReason::Halt);

    let config = SandboxConfig {
        heap_bytes: 16 << 20,
        ..SandboxConfig::default()
    };
    let Some(mut sandbox) = capbox_tests::own_sandbox(config) else {
        return;
    };
    let capacity = sandbox.stats().unwrap().arena_capacity_bytes;
    eprintln!("16 MiB heap: arena capacity {capacity}");
    assert!(capacity > 0 && capacity <= 12 << 20, "{capacity}");
    let start = sandbox.create_instance(&image).unwrap();
    let err = sandbox
        .invoke(&start, Endpoint::Read.index(), [0; 4], 1000)
        .unwrap_err();
    let KernelError::Refused(remote) = &err else {
        panic!("{err}")
    };
    assert_eq!(remote.kind, ErrorKind::OutOfMemory, "{err}");
    assert!(remote.message.contains("page arena"), "{err}");
    // Nothing leaked and the kernel still works.
    let stats = sandbox.stats().unwrap();
    let small = sandbox.create_instance(&sample_image()).unwrap();
    let o = sandbox
        .invoke(&small, Endpoint::Increment.index(), [0; 4], 1000)
        .unwrap();
    assert_eq!((o.exit, o.r7), (ExitReason::Halt, 1));
    assert!(stats.arena_used_bytes < capacity, "{stats:?}");

    // Two images whose 6 MiB heaps each need the arena's largest chunk (at
    // most 8 MiB): the first one's warm memory is dropped to run the second.
    for fill in [1, 2, 1] {
        let mut image = sample_image();
        image.rw_data = vec![fill; 8];
        image.heap_pages = 1536;
        let start = sandbox.create_instance(&image).unwrap();
        let o = sandbox
            .invoke(&start, Endpoint::Read.index(), [0; 4], 1000)
            .unwrap();
        assert_eq!(o.r7, u64::from_le_bytes([fill; 8]));
    }
}

/// One `sbrk` of 14 MiB, φ7 = its result.
fn sbrk_14_mib() -> capbox::shared::cap::Image {
    use capbox::shared::pvm::asm::{ProgramBuilder, Reg};
    let mut b = ProgramBuilder::new();
    b.load_imm(Reg::R2, 14u32 << 20)
        .sbrk(Reg::R7, Reg::R2)
        .jump_ind(Reg::R0, 0u32);
    capbox::shared::cap::Image {
        code: b.build().unwrap(),
        ro_data: vec![],
        rw_data: vec![],
        heap_pages: 0,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![0],
    }
}

/// An `sbrk` the arena cannot back never becomes a different outcome: the
/// local backend (unbounded) runs it; a sandbox whose arena is too small
/// refuses the invocation (after freeing its caches and trying again)
/// instead of handing the program sbrk's 0 and committing what follows.
#[test]
fn sbrk_past_the_arena_is_refused_not_a_different_outcome() {
    let image = sbrk_14_mib();
    let mut local = capbox_tests::local_kernel();
    let start = local.create_instance(&image).unwrap();
    let o = local.invoke(&start, 0, [0; 4], 1000).unwrap();
    assert_eq!(o.exit, ExitReason::Halt);
    assert_ne!(o.r7, 0, "the heap grew");

    let config = SandboxConfig {
        heap_bytes: 16 << 20,
        ..SandboxConfig::default()
    };
    let Some(mut sandbox) = capbox_tests::own_sandbox(config) else {
        return;
    };
    let start = sandbox.create_instance(&image).unwrap();
    for _ in 0..2 {
        let err = sandbox.invoke(&start, 0, [0; 4], 1000).unwrap_err();
        let KernelError::Refused(remote) = &err else {
            panic!("{err}")
        };
        assert_eq!(remote.kind, ErrorKind::OutOfMemory, "{err}");
    }
    let small = sandbox.create_instance(&sample_image()).unwrap();
    let o = sandbox
        .invoke(&small, Endpoint::Increment.index(), [0; 4], 1000)
        .unwrap();
    assert_eq!((o.exit, o.r7), (ExitReason::Halt, 1));
}
