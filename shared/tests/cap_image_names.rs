//! Endpoint names on an Image: an optional trailing section that leaves
//! every image without names encoded and hashed exactly as before.

use capbox_shared::cap::{Cap, CapError, Image, MAX_ENDPOINT_NAME_LEN};
use capbox_shared::kernel::apps::kv::kv_image;
use capbox_shared::kernel::sample::sample_image;

fn handmade() -> Image {
    Image {
        code: vec![0, 0, 1, 1, 0],
        ro_data: vec![1, 2, 3],
        rw_data: vec![4; 10],
        heap_pages: 2,
        stack_size: 4096,
        endpoints: vec![0, 7, 9],
        endpoint_names: Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn named(names: &[&str]) -> Image {
    Image {
        endpoint_names: names.iter().map(|n| n.to_string()).collect(),
        ..handmade()
    }
}

/// Encodings and hashes recorded with the code before endpoint names
/// existed (commit be16f08).
#[test]
fn images_without_names_encode_and_hash_as_before() {
    let cap = Cap::Image(handmade());
    assert_eq!(
        hex(&cap.encode().unwrap()),
        "02050000000000010100030000000102030a00000004040404040404040404020000000010000003000000000000000700000009000000"
    );
    assert_eq!(
        cap.hash().unwrap().to_string(),
        "b169ec9c526ca4c4eece2d45dc3c046213e12d08d7f32ede0cd12a0500ccf714"
    );
    assert_eq!(
        Cap::Image(sample_image()).hash().unwrap().to_string(),
        "c78b3cb4b93e929b6fe014495834d86f3326b6dad6e9c4f90166f8461f253f6e"
    );
    assert_eq!(
        Cap::Image(kv_image()).hash().unwrap().to_string(),
        "989107c7c3e49c5574445306ac65be72e13a2655b6f12b73d01f6819bcdab864"
    );
}

#[test]
fn names_round_trip_and_change_the_hash() {
    let image = named(&["get", "", "put"]);
    let cap = Cap::Image(image.clone());
    let bytes = cap.encode().unwrap();
    let plain = Cap::Image(handmade()).encode().unwrap();
    // The names section is appended: 3 + 0 + 3 bytes, each with a u32 length.
    assert_eq!(&bytes[..plain.len()], &plain[..]);
    assert_eq!(bytes.len(), plain.len() + 3 * 4 + 6);
    assert_eq!(Cap::decode(&bytes).unwrap(), cap);
    assert_ne!(cap.hash().unwrap(), Cap::Image(handmade()).hash().unwrap());
    assert_eq!(image.endpoint_by_name("put"), Some(2));
    assert_eq!(image.endpoint_by_name("get"), Some(0));
    assert_eq!(image.endpoint_by_name(""), None);
    assert_eq!(image.endpoint_by_name("nope"), None);
    assert_eq!(image.endpoint_name(1), None);
    assert_eq!(image.endpoint_name(2), Some("put"));
    assert_eq!(image.endpoint_name(3), None);
    assert_eq!(handmade().endpoint_by_name("get"), None);
}

fn non_canonical(result: Result<Vec<u8>, CapError>) -> bool {
    matches!(result, Err(CapError::NonCanonical(_)))
}

#[test]
fn bad_names_are_refused_when_encoding() {
    assert!(non_canonical(Cap::Image(named(&["", "", ""])).encode()));
    assert!(non_canonical(Cap::Image(named(&["a", "b"])).encode()));
    assert!(non_canonical(
        Cap::Image(named(&["a", "b", "c", "d"])).encode()
    ));
    assert!(non_canonical(Cap::Image(named(&["a", "b", "a"])).encode()));
    let long = "x".repeat(MAX_ENDPOINT_NAME_LEN as usize + 1);
    assert!(matches!(
        Cap::Image(named(&["a", &long, "c"])).encode(),
        Err(CapError::LimitExceeded { .. })
    ));
    let longest = "x".repeat(MAX_ENDPOINT_NAME_LEN as usize);
    Cap::Image(named(&["a", &longest, "c"])).encode().unwrap();
}

/// The encoding of `handmade()` followed by `tail`.
fn with_tail(tail: &[u8]) -> Vec<u8> {
    let mut bytes = Cap::Image(handmade()).encode().unwrap();
    bytes.extend_from_slice(tail);
    bytes
}

fn name(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

#[test]
fn bad_names_sections_are_refused_when_decoding() {
    // Present but empty: all three names unset.
    let empty = [name(b""), name(b""), name(b"")].concat();
    assert!(matches!(
        Cap::decode(&with_tail(&empty)),
        Err(CapError::NonCanonical(_))
    ));
    // Not UTF-8.
    let bad_utf8 = [name(b"a"), name(&[0xff, 0xfe]), name(b"c")].concat();
    assert!(matches!(
        Cap::decode(&with_tail(&bad_utf8)),
        Err(CapError::NonCanonical(_))
    ));
    // Duplicates.
    let dup = [name(b"a"), name(b"b"), name(b"a")].concat();
    assert!(matches!(
        Cap::decode(&with_tail(&dup)),
        Err(CapError::NonCanonical(_))
    ));
    // Too few names: truncated.
    let short = [name(b"a"), name(b"b")].concat();
    assert!(matches!(
        Cap::decode(&with_tail(&short)),
        Err(CapError::Truncated(_))
    ));
    // A length past the end, and one over the bound.
    assert!(matches!(
        Cap::decode(&with_tail(&[9, 0, 0, 0, b'a'])),
        Err(CapError::Truncated(_))
    ));
    let over = (MAX_ENDPOINT_NAME_LEN + 1).to_le_bytes();
    assert!(matches!(
        Cap::decode(&with_tail(&over)),
        Err(CapError::LimitExceeded { .. })
    ));
    // Trailing bytes after a complete names section.
    let ok = [name(b"a"), name(b""), name(b"c")].concat();
    Cap::decode(&with_tail(&ok)).unwrap();
    let mut extra = ok.clone();
    extra.push(0);
    assert!(matches!(
        Cap::decode(&with_tail(&extra)),
        Err(CapError::TrailingBytes(1))
    ));
}
