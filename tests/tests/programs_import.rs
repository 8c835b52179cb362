//! `capbox::import`: PolkaVM program blobs into Images, and one typed
//! error for each kind of bad file.

mod programs_support;

use capbox::import::{ImportError, image_from_polkavm};
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::ops::KernelOp;
use capbox::shared::pvm::{Opcode, deblob};
use polkavm_common::program::{InstructionSetKind, asm};
use polkavm_common::writer::ProgramBlobBuilder;
use programs_support::{blob, imported};

/// A blob of one exported function `main` running `code`, with `imports`.
fn built(
    isa: InstructionSetKind,
    imports: &[&str],
    code: &[polkavm_common::program::Instruction],
) -> Vec<u8> {
    let mut b = ProgramBlobBuilder::new(isa);
    b.set_rw_data_size(4096);
    b.set_stack_size(4096);
    for import in imports {
        b.add_import(import.as_bytes());
    }
    b.add_export_by_basic_block(0, b"main");
    b.set_code(code, &[]);
    b.into_vec().unwrap()
}

#[test]
fn example_programs_import_with_named_endpoints() {
    for (name, endpoints) in [
        ("counter", &["increment", "get", "add_input"][..]),
        ("kv", &["put", "get", "delete", "len", "hash", "copy"]),
        ("hash", &["blake2b", "blake2b_chain", "sieve", "fnv"]),
    ] {
        let program = imported(name);
        let image = &program.image;
        assert_eq!(image.endpoints.len(), endpoints.len(), "{name}");
        for endpoint in endpoints {
            let n = image
                .endpoint_by_name(endpoint)
                .unwrap_or_else(|| panic!("{name}: {endpoint}"));
            assert_eq!(image.endpoint_name(n), Some(*endpoint));
        }
        // The SDK numbers its imports by op: nothing to rewrite.
        assert_eq!(program.ecalli_rewritten, 0);
        for import in &program.imports {
            assert_eq!(import.index, import.op.number());
            assert_eq!(import.symbol, format!("capbox_{}", import.op.name()));
        }
        // Every `unlikely` became `fallthrough`: no opcode 2 is left at an
        // instruction start.
        assert!(
            program.unlikely_rewritten > 0,
            "{name}: the linker emits unlikely"
        );
        let parts = deblob(&image.code).unwrap();
        let starts: Vec<usize> = (0..parts.code.len())
            .filter(|&pc| parts.bitmask.is_set(pc))
            .collect();
        assert!(starts.iter().all(|&pc| parts.code[pc] != 2), "{name}");
        let fallthroughs = starts
            .iter()
            .filter(|&&pc| parts.code[pc] == Opcode::fallthrough as u8)
            .count();
        assert!(fallthroughs >= program.unlikely_rewritten);
        let summary = program.summary();
        assert!(summary.contains("unlikely -> fallthrough"), "{summary}");
    }
    // Static memory: the counter's u64 lives in .bss, i.e. in heap pages.
    let counter = imported("counter").image;
    assert!(counter.rw_data.len() as u64 + u64::from(counter.heap_pages) * 4096 >= 8);
    assert_eq!(counter.stack_size, 8192);
}

#[test]
fn a_latest64_blob_is_refused() {
    let latest = built(InstructionSetKind::Latest64, &[], &[asm::ret()]);
    assert!(matches!(
        image_from_polkavm(&latest),
        Err(ImportError::WrongInstructionSet { isa: "Latest64" })
    ));
    // The same check from the header of a real program.
    let mut counter = blob("counter");
    counter[4] = 2;
    let e = image_from_polkavm(&counter).unwrap_err();
    assert!(e.to_string().contains("JamV1"), "{e}");
}

#[test]
fn an_unknown_import_is_refused() {
    let b = built(
        InstructionSetKind::JamV1,
        &["memcpy"],
        &[asm::ecalli(0), asm::ret()],
    );
    match image_from_polkavm(&b) {
        Err(ImportError::UnknownImport { index: 0, symbol }) => assert_eq!(symbol, "memcpy"),
        other => panic!("{other:?}"),
    }
    // A kv blob whose slot_copy import is renamed (same length).
    let mut kv = blob("kv");
    let at = kv
        .windows(16)
        .position(|w| w == b"capbox_slot_copy")
        .unwrap();
    kv[at..at + 16].copy_from_slice(b"capbox_slot_cpy_");
    match image_from_polkavm(&kv) {
        Err(ImportError::UnknownImport { index, symbol }) => {
            assert_eq!(
                (index, symbol.as_str()),
                (KernelOp::SlotCopy.number(), "capbox_slot_cpy_")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_random_and_malformed_files_are_refused() {
    let counter = blob("counter");
    assert!(matches!(
        image_from_polkavm(&counter[..counter.len() / 2]),
        Err(ImportError::Truncated { expected, actual }) if expected == counter.len() as u64 && actual == (counter.len() / 2) as u64
    ));
    assert!(matches!(
        image_from_polkavm(&counter[..8]),
        Err(ImportError::Truncated {
            expected: 0,
            actual: 8
        })
    ));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert!(matches!(
        image_from_polkavm(&random),
        Err(ImportError::NotPolkaVm)
    ));
    assert!(matches!(
        image_from_polkavm(&[]),
        Err(ImportError::NotPolkaVm)
    ));
    // The magic, the JamV1 version and a right length, then garbage.
    let mut garbage = b"PVM\0\x03".to_vec();
    garbage.extend_from_slice(&(13 + 64u64).to_le_bytes());
    garbage.extend_from_slice(&random[..64]);
    assert!(matches!(
        image_from_polkavm(&garbage),
        Err(ImportError::Malformed(_))
    ));
    // An unknown blob version.
    let mut odd = counter.clone();
    odd[4] = 9;
    assert!(matches!(
        image_from_polkavm(&odd),
        Err(ImportError::Malformed(_))
    ));
}

#[test]
fn ecalli_immediates_are_renumbered_in_place_when_they_fit() {
    // Without explicit indexes the linker numbers imports in order:
    // ecalli 1 is capbox_input_len (op 3), a one-byte immediate.
    let b = built(
        InstructionSetKind::JamV1,
        &["capbox_gas", "capbox_input_len"],
        &[asm::ecalli(1), asm::ret()],
    );
    let program = image_from_polkavm(&b).unwrap();
    assert_eq!(program.ecalli_rewritten, 1);
    assert_eq!(program.image.code.len(), deblob_len(&b));
    let mut kernel = capbox_tests::local_kernel();
    let instance = kernel.create_instance(&program.image).unwrap();
    let main = program.image.endpoint_by_name("main").unwrap();
    let o = kernel
        .invoke_with_input(&instance, main, [0; 4], 1000, b"abcd")
        .unwrap();
    assert_eq!((o.exit, o.r7), (ExitReason::Halt, 4));

    // ecalli 0 has no immediate bytes: it cannot become op 1 (log).
    let b = built(
        InstructionSetKind::JamV1,
        &["capbox_log"],
        &[asm::ecalli(0), asm::ret()],
    );
    match image_from_polkavm(&b) {
        Err(ImportError::ImmediateTooShort {
            index: 0,
            op: 1,
            symbol,
            ..
        }) => assert_eq!(symbol, "capbox_log"),
        other => panic!("{other:?}"),
    }
    // An ecalli that names no import.
    let b = built(
        InstructionSetKind::JamV1,
        &[],
        &[asm::ecalli(5), asm::ret()],
    );
    assert!(matches!(
        image_from_polkavm(&b),
        Err(ImportError::UnboundHostCall { number: 5, pc: 0 })
    ));
}

/// The length of a blob's code_and_jump_table section.
fn deblob_len(blob: &[u8]) -> usize {
    polkavm::ProgramParts::from_bytes(blob.to_vec().into())
        .unwrap()
        .code_and_jump_table
        .len()
}
