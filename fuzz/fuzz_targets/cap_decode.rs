//! Cap decoding is total and canonical:
//! * `Cap::decode` never panics on any bytes;
//! * a decoded cap encodes back to exactly the input (one encoding per cap);
//! * its hash can be computed and equals the hash of the re-decoded cap
//!   (a decoded cap never holds a `Ref`, so hashing cannot fail).
#![no_main]

use capbox_shared::Cap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cap) = Cap::decode(data) else {
        return;
    };
    let encoded = cap
        .encode()
        .unwrap_or_else(|e| panic!("a decoded {} cap does not encode: {e}", cap.kind()));
    assert_eq!(encoded, data, "decode accepted a non-canonical encoding");
    let hash = cap
        .hash()
        .unwrap_or_else(|e| panic!("a decoded {} cap does not hash: {e}", cap.kind()));
    let again = Cap::decode(&encoded).expect("the canonical encoding decodes");
    assert_eq!(again, cap, "re-decoding changed the cap");
    assert_eq!(
        again.hash().expect("the re-decoded cap hashes"),
        hash,
        "the same cap hashed twice gave two hashes"
    );
});
