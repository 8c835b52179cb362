//! Data deltas from a hostile host are total: `apply_data_delta` never
//! panics on any bytes, and what it accepts is a well-formed Data of the
//! length the delta names (its encoding decodes back to it).
#![no_main]

use capbox_shared::Cap;
use capbox_shared::cap::{DATA_DELTA_TAG, Data, PAGE_SIZE, apply_data_delta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&pages, rest)) = input.split_first() else {
        return;
    };
    // A small base: up to 15 pages, page i filled with i + 1.
    let pages = u64::from(pages % 16);
    let mut base = Data::new(pages * PAGE_SIZE as u64).expect("a small length");
    for i in 0..pages as u32 {
        base.write_page(i, &[i as u8 + 1; PAGE_SIZE]).expect("in range");
    }
    // The tag is forced so the fuzzer explores the body.
    let mut bytes = vec![DATA_DELTA_TAG];
    bytes.extend_from_slice(rest);
    let Ok(built) = apply_data_delta(&base, &bytes) else {
        return;
    };
    let len = u64::from_le_bytes(bytes[33..41].try_into().expect("8 bytes"));
    assert_eq!(built.len(), len);
    let cap = Cap::Data(built);
    let encoded = cap.encode().expect("a built Data encodes");
    assert_eq!(Cap::decode(&encoded).expect("and decodes"), cap);
});
