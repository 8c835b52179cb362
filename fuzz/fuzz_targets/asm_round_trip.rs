//! The tools never panic and round-trip exactly:
//! * any blob that `deblob` accepts disassembles to text that assembles
//!   back to the same blob;
//! * any text either fails to assemble with a typed error, or assembles to
//!   a blob that round-trips the same way.
#![no_main]

use capbox_shared::pvm::asm::{assemble, disassemble};
use capbox_shared::pvm::deblob;
use libfuzzer_sys::fuzz_target;

fn round_trip(blob: &[u8]) {
    let text = disassemble(blob).expect("deblob accepted the blob, so disassembly succeeds");
    let back = assemble(&text).unwrap_or_else(|e| panic!("own output rejected: {e}\n{text}"));
    assert_eq!(back, blob, "round trip changed the blob:\n{text}");
}

fuzz_target!(|data: &[u8]| {
    if deblob(data).is_ok() {
        round_trip(data);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(blob) = assemble(text)
    {
        round_trip(&blob);
    }
});
