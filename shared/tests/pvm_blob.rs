//! `deblob`, the natural-number encoding and the standard program format:
//! every malformed input is a typed error.

use capbox_shared::pvm::{
    HALT_ADDRESS, ProgramError, StandardLayout, StandardProgram, deblob, decode_natural,
    encode_natural,
};
use proptest::prelude::*;

fn natural(x: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_natural(x, &mut out);
    out
}

/// header: |j| = 0, z = 4, |c| = `code.len()`; then code and `mask`.
fn raw_blob(code: &[u8], mask: &[u8]) -> Vec<u8> {
    let mut blob = natural(0);
    blob.push(4);
    blob.extend(natural(code.len() as u64));
    blob.extend(code);
    blob.extend(mask);
    blob
}

#[test]
fn natural_encoding_matches_the_graypaper_examples() {
    assert_eq!(natural(0), [0]);
    assert_eq!(natural(127), [127]);
    assert_eq!(natural(128), [0x80, 0x80]);
    assert_eq!(natural(0x3FFF), [0xBF, 0xFF]);
    assert_eq!(natural(0x4000), [0xC0, 0x00, 0x40]);
    assert_eq!(
        natural(u64::MAX),
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    );
}

proptest! {
    #[test]
    fn natural_roundtrips(x in any::<u64>()) {
        let bytes = natural(x);
        prop_assert_eq!(decode_natural(&bytes), Ok((x, bytes.len())));
    }
}

#[test]
fn non_canonical_naturals_are_rejected() {
    // 5 in two octets.
    assert!(matches!(
        decode_natural(&[0x80, 0x05]),
        Err(ProgramError::NonCanonicalNatural { .. })
    ));
    // A 9-octet form of a small value.
    assert!(matches!(
        decode_natural(&[0xFF, 1, 0, 0, 0, 0, 0, 0, 0]),
        Err(ProgramError::NonCanonicalNatural { .. })
    ));
    assert!(matches!(
        decode_natural(&[0xC0, 0x00]),
        Err(ProgramError::Truncated { .. })
    ));
    assert!(matches!(
        decode_natural(&[]),
        Err(ProgramError::Truncated { .. })
    ));
}

#[test]
fn well_formed_blob_splits() {
    let mut blob = natural(2);
    blob.push(1);
    blob.extend(natural(3));
    blob.extend([0, 2]); // jump table
    blob.extend([0, 1, 0]); // code: trap, fallthrough, trap
    blob.push(0b111);
    let parts = deblob(&blob).unwrap();
    assert_eq!(parts.jump_table, [0, 2]);
    assert_eq!(parts.code, [0, 1, 0]);
    assert_eq!(parts.bitmask.len(), 3);
    assert!(parts.bitmask.is_set(2));
    assert!(parts.bitmask.is_set(3), "bits past the end read as set");
}

#[test]
fn empty_program_is_valid() {
    let parts = deblob(&[0, 0, 0]).unwrap();
    assert!(parts.code.is_empty() && parts.jump_table.is_empty());
}

#[test]
fn truncated_blobs_are_rejected() {
    let full = raw_blob(&[1, 1, 0], &[0b111]);
    for len in 0..full.len() {
        let err = deblob(&full[..len]).unwrap_err();
        assert!(
            matches!(err, ProgramError::Truncated { .. }),
            "prefix {len}: {err}"
        );
        assert!(err.to_string().contains("truncated"));
    }
}

#[test]
fn bitmask_length_must_match_code() {
    // Nine code octets need two bitmask octets.
    let code = [1u8; 9];
    let err = deblob(&raw_blob(&code, &[0xFF])).unwrap_err();
    assert!(
        matches!(
            err,
            ProgramError::Truncated {
                what: "opcode bitmask",
                ..
            }
        ),
        "{err}"
    );
    let err = deblob(&raw_blob(&code, &[0xFF, 0x01, 0x00])).unwrap_err();
    assert_eq!(err, ProgramError::TrailingBytes { count: 1 });
}

#[test]
fn bitmask_padding_must_be_zero() {
    let err = deblob(&raw_blob(&[1, 1, 0], &[0b1111])).unwrap_err();
    assert_eq!(err, ProgramError::BitmaskPadding);
}

#[test]
fn jump_table_out_of_bounds_is_truncation() {
    // Claims 1000 four-octet entries in a tiny blob.
    let mut blob = natural(1000);
    blob.push(4);
    blob.extend(natural(1));
    blob.extend([0, 0, 0, 0, 0, 1]);
    let err = deblob(&blob).unwrap_err();
    assert!(
        matches!(
            err,
            ProgramError::Truncated {
                what: "jump table",
                ..
            }
        ),
        "{err}"
    );
    // A count so large that count * z overflows.
    let mut blob = natural(u64::MAX);
    blob.push(8);
    blob.extend(natural(0));
    assert!(matches!(deblob(&blob), Err(ProgramError::Truncated { .. })));
}

#[test]
fn oversized_fields_are_rejected() {
    let mut blob = natural(0);
    blob.push(9);
    blob.extend(natural(0));
    assert_eq!(deblob(&blob), Err(ProgramError::JumpTableEntrySize(9)));

    let mut blob = natural(0);
    blob.push(4);
    blob.extend(natural(1 << 40));
    assert!(matches!(deblob(&blob), Err(ProgramError::TooLarge { .. })));

    // Zero-width entries: more than the blob's size is refused.
    let mut blob = natural(1 << 30);
    blob.push(0);
    blob.extend(natural(0));
    assert!(matches!(deblob(&blob), Err(ProgramError::TooLarge { .. })));
}

#[test]
fn wide_jump_table_entries_saturate() {
    let mut blob = natural(1);
    blob.push(8);
    blob.extend(natural(1));
    blob.extend(u64::MAX.to_le_bytes());
    blob.extend([0, 1]);
    assert_eq!(deblob(&blob).unwrap().jump_table, [u32::MAX]);
}

fn standard_blob(ro: &[u8], rw: &[u8], heap_pages: u16, stack: u32, code: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    blob.extend(&(ro.len() as u32).to_le_bytes()[..3]);
    blob.extend(&(rw.len() as u32).to_le_bytes()[..3]);
    blob.extend(heap_pages.to_le_bytes());
    blob.extend(&stack.to_le_bytes()[..3]);
    blob.extend(ro);
    blob.extend(rw);
    blob.extend((code.len() as u32).to_le_bytes());
    blob.extend(code);
    blob
}

#[test]
fn standard_program_parses_and_lays_out() {
    let code = raw_blob(&[0], &[1]);
    let blob = standard_blob(&[1, 2, 3], &[4; 5000], 2, 0x2345, &code);
    let sp = StandardProgram::parse(&blob).unwrap();
    assert_eq!(sp.ro_data, [1, 2, 3]);
    assert_eq!(sp.rw_data.len(), 5000);
    assert_eq!(sp.heap_pages, 2);
    assert_eq!(sp.stack_size, 0x2345);
    assert_eq!(sp.code_blob, code.as_slice());

    let layout = sp.layout(10).unwrap();
    assert_eq!(layout.ro_start(), 0x1_0000);
    assert_eq!(layout.ro_mapped(), 0x1000);
    assert_eq!(layout.rw_start(), 0x3_0000); // 2Z + Q(3)
    assert_eq!(layout.rw_mapped(), 0x2000 + 2 * 0x1000); // P(5000) + 2 pages
    assert_eq!(layout.stack_end(), 0xFEFE_0000); // 2^32 - 2Z - 2^24
    assert_eq!(layout.stack_start(), 0xFEFE_0000 - 0x3000);
    assert_eq!(layout.args_start(), 0xFEFF_0000);
    assert_eq!(layout.args_mapped(), 0x1000);
    let regs = layout.initial_registers();
    assert_eq!(regs[0], u64::from(HALT_ADDRESS));
    assert_eq!(regs[1], 0xFEFE_0000);
    assert_eq!(regs[7], 0xFEFF_0000);
    assert_eq!(regs[8], 10);
}

#[test]
fn standard_program_errors() {
    let code = raw_blob(&[0], &[1]);
    let blob = standard_blob(&[1, 2, 3], &[], 0, 0, &code);
    for len in 0..blob.len() {
        assert!(
            matches!(
                StandardProgram::parse(&blob[..len]),
                Err(ProgramError::Truncated { .. })
            ),
            "prefix {len}"
        );
    }
    let mut long = blob.clone();
    long.push(0);
    assert_eq!(
        StandardProgram::parse(&long),
        Err(ProgramError::TrailingBytes { count: 1 })
    );
}

#[test]
fn layout_bound_is_enforced() {
    // 5Z + Q(o) + Q(w + heap) + Q(s) + I ≤ 2^32.
    let room = (1u64 << 32) - 5 * 0x1_0000 - (1 << 24);
    let fits = StandardLayout::new(0, 0, 0, room as u32, 0);
    assert!(fits.is_ok());
    let too_big = StandardLayout::new(0, 0, 0, room as u32 + 1, 0);
    assert_eq!(too_big, Err(ProgramError::LayoutTooLarge));
    assert_eq!(
        StandardLayout::new(0, 0, 0, 0, (1 << 24) + 1),
        Err(ProgramError::LayoutTooLarge)
    );
    assert!(
        ProgramError::LayoutTooLarge
            .to_string()
            .contains("do not fit")
    );
}

/// A jump table longer than the instruction limit is refused from the
/// header alone, before `deblob` would allocate the table (zero-width
/// entries cost no octets, so the blob's own size bounds nothing here).
#[test]
fn jump_table_over_the_limit_is_refused_before_allocating() {
    let entries = capbox_shared::pvm::MAX_INSTRUCTIONS + 1;
    let mut blob = natural(entries);
    blob.push(0); // entry size 0
    blob.extend(natural(1));
    blob.extend([0, 1]); // trap, its bitmask
    assert!(matches!(
        capbox_shared::pvm::Program::from_blob(&blob),
        Err(ProgramError::OverLimit { what: "jump-table entries", value, .. }) if value == entries
    ));
    // Claimed far beyond the blob: still the limit that is named.
    let mut blob = natural(1 << 40);
    blob.extend([1, 1, 0, 1]);
    assert!(matches!(
        capbox_shared::pvm::Program::from_blob(&blob),
        Err(ProgramError::OverLimit { .. })
    ));
}
