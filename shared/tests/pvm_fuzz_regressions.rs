//! Inputs found by the fuzz targets in `fuzz/`, kept as regression tests
//! (inline, so they run without the fuzz corpus).

use capbox_shared::pvm::asm::{assemble, disassemble};
use capbox_shared::pvm::deblob;

fn assert_round_trips(blob: &[u8]) {
    deblob(blob).expect("the input is a valid blob");
    let text = disassemble(blob).expect("disassembles");
    assert_eq!(assemble(&text).expect("reassembles"), blob, "\n{text}");
}

/// `asm_round_trip`: a 5-octet jump-table entry (0x46464646_46) does not
/// fit the 32 bits `deblob` keeps; the disassembler printed `4294967295`
/// instead of the stored value.
#[test]
fn wide_jump_table_entry_keeps_its_value() {
    assert_round_trips(&[
        1, 5, 20, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70, 10, 27, 0, 7, 100, 0, 0, 0,
        247, 0, 20, 8, 239, 6, 0,
    ]);
    // An 8-octet entry above 2^63.
    let mut blob = vec![1, 8, 1];
    blob.extend_from_slice(&u64::MAX.to_le_bytes());
    blob.extend_from_slice(&[0, 1]);
    assert_round_trips(&blob);
}
