//! Canonical encoding: round trips, strict rejection, and hashing rules.

use capbox_shared::cap::{MAX_CNODE_SLOTS, MAX_ENDPOINTS, MAX_IMAGE_SECTION_LEN};
use capbox_shared::{
    CNode, Cap, CapError, CapHash, CapHashOrRef, CapKind, CapRef, Data, Image, InstanceCap,
    PAGE_SIZE, TypeCap,
};
use proptest::prelude::*;

fn h(byte: u8) -> CapHash {
    CapHash::from_bytes([byte; 32])
}

fn sample_caps() -> Vec<Cap> {
    let mut data = Data::new(3 * PAGE_SIZE as u64 + 100).unwrap();
    data.write(5, b"abc").unwrap();
    data.write(3 * PAGE_SIZE as u64 + 99, b"z").unwrap();
    let mut cnode = CNode::new();
    cnode.set(0, h(1).into()).unwrap();
    cnode.set(MAX_CNODE_SLOTS - 1, h(2).into()).unwrap();
    vec![
        Cap::Data(Data::new(0).unwrap()),
        Cap::Data(data),
        Cap::CNode(CNode::new()),
        Cap::CNode(cnode),
        Cap::Image(Image::default()),
        Cap::Image(Image {
            code: vec![1, 2, 3],
            ro_data: vec![4; 10],
            rw_data: vec![5; 7],
            heap_pages: 3,
            stack_size: 4096,
            endpoint_names: Vec::new(),
            endpoints: vec![0, 5, 9],
        }),
        Cap::Instance(InstanceCap {
            image: h(3),
            memory: h(4).into(),
            root_cnode: h(5).into(),
            image_hash_chain: h(6),
        }),
        Cap::Type(TypeCap {
            image_hash_chain: h(7),
        }),
    ]
}

#[test]
fn every_kind_round_trips() {
    for cap in sample_caps() {
        let bytes = cap.encode().unwrap();
        assert_eq!(bytes[0], cap.kind().tag());
        let decoded = Cap::decode(&bytes).unwrap();
        assert_eq!(decoded, cap);
        assert_eq!(decoded.encode().unwrap(), bytes);
        assert_eq!(decoded.hash().unwrap(), cap.hash().unwrap());
    }
}

#[test]
fn all_sample_hashes_are_distinct() {
    let mut hashes: Vec<_> = sample_caps().iter().map(|c| c.hash().unwrap()).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), sample_caps().len());
}

#[test]
fn same_payload_in_different_kinds_hashes_differently() {
    // A Type and a Data whose payloads are the same 32 bytes.
    let ty = Cap::Type(TypeCap {
        image_hash_chain: h(9),
    });
    let data = Cap::Data(Data::from_bytes(&[9; 32]).unwrap());
    assert_ne!(ty.hash().unwrap(), data.hash().unwrap());
    // Equal body bytes under different tags: a Type's 32-byte body is also
    // a valid prefix-free payload nowhere else, so the domain separation of
    // equal inputs is checked directly in `hash::tests` (unit test).
    assert_ne!(
        Cap::Type(TypeCap {
            image_hash_chain: h(0)
        })
        .hash()
        .unwrap(),
        Cap::Data(Data::new(0).unwrap()).hash().unwrap()
    );
}

#[test]
fn refs_cannot_be_encoded_or_hashed() {
    let mut cnode = CNode::new();
    cnode.set(3, CapRef::new(1).into()).unwrap();
    let instance = InstanceCap {
        image: h(1),
        memory: CapHashOrRef::Ref(CapRef::new(2)),
        root_cnode: h(2).into(),
        image_hash_chain: h(3),
    };
    for cap in [Cap::CNode(cnode), Cap::Instance(instance)] {
        assert_eq!(cap.encode(), Err(CapError::UnsettledRef));
        assert_eq!(cap.hash(), Err(CapError::UnsettledRef));
    }
}

#[test]
fn decode_rejects_malformed_input() {
    let cnode = {
        let mut c = CNode::new();
        c.set(1, h(1).into()).unwrap();
        c.set(2, h(2).into()).unwrap();
        Cap::CNode(c).encode().unwrap()
    };
    // Truncation at every length.
    for cut in 0..cnode.len() {
        assert!(matches!(
            Cap::decode(&cnode[..cut]),
            Err(CapError::Truncated(_))
        ));
    }
    // Trailing bytes.
    let mut long = cnode.clone();
    long.push(0);
    assert_eq!(Cap::decode(&long), Err(CapError::TrailingBytes(1)));
    // Unknown tag.
    assert_eq!(Cap::decode(&[9]), Err(CapError::UnknownTag(9)));
    // Unsorted and duplicate slots.
    let mut swapped = cnode.clone();
    swapped[5..9].copy_from_slice(&2u32.to_le_bytes());
    swapped[41..45].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        Cap::decode(&swapped),
        Err(CapError::NonCanonical(_))
    ));
    let mut duplicate = cnode.clone();
    duplicate[41..45].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(
        Cap::decode(&duplicate),
        Err(CapError::NonCanonical(_))
    ));
    // Slot out of range.
    let mut far = cnode;
    far[41..45].copy_from_slice(&MAX_CNODE_SLOTS.to_le_bytes());
    assert_eq!(
        Cap::decode(&far),
        Err(CapError::SlotOutOfRange(MAX_CNODE_SLOTS))
    );
}

fn data_encoding(len: u64, pages: &[(u32, [u8; PAGE_SIZE])]) -> Vec<u8> {
    let mut out = vec![CapKind::Data.tag()];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(pages.len() as u32).to_le_bytes());
    for (index, page) in pages {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(page);
    }
    out
}

#[test]
fn decode_rejects_non_canonical_data() {
    let mut page = [0u8; PAGE_SIZE];
    page[0] = 1;
    let ok = data_encoding(2 * PAGE_SIZE as u64, &[(0, page), (1, page)]);
    assert!(Cap::decode(&ok).is_ok());
    let zero_page = data_encoding(PAGE_SIZE as u64, &[(0, [0; PAGE_SIZE])]);
    assert!(matches!(
        Cap::decode(&zero_page),
        Err(CapError::NonCanonical(_))
    ));
    let past_len = data_encoding(PAGE_SIZE as u64, &[(1, page)]);
    assert!(matches!(
        Cap::decode(&past_len),
        Err(CapError::NonCanonical(_))
    ));
    let unsorted = data_encoding(2 * PAGE_SIZE as u64, &[(1, page), (0, page)]);
    assert!(matches!(
        Cap::decode(&unsorted),
        Err(CapError::NonCanonical(_))
    ));
    let mut tail = [0u8; PAGE_SIZE];
    tail[10] = 1;
    let tail_past_len = data_encoding(10, &[(0, tail)]);
    assert!(matches!(
        Cap::decode(&tail_past_len),
        Err(CapError::NonCanonical(_))
    ));
    let huge = data_encoding((1 << 32) + 1, &[]);
    assert!(matches!(
        Cap::decode(&huge),
        Err(CapError::LimitExceeded { .. })
    ));
    // A page count promising more bytes than present is caught before
    // allocating.
    let mut lying = data_encoding(1 << 32, &[]);
    lying[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(Cap::decode(&lying), Err(CapError::Truncated(_))));
}

#[test]
fn image_limits_are_enforced() {
    let too_many = Image {
        endpoint_names: Vec::new(),
        endpoints: vec![0; MAX_ENDPOINTS as usize + 1],
        ..Image::default()
    };
    assert!(matches!(
        Cap::Image(too_many).encode(),
        Err(CapError::LimitExceeded { .. })
    ));
    let mut encoding = vec![CapKind::Image.tag()];
    encoding.extend_from_slice(&(MAX_IMAGE_SECTION_LEN + 1).to_le_bytes());
    assert!(matches!(
        Cap::decode(&encoding),
        Err(CapError::LimitExceeded { .. })
    ));
    let mut cnode = CNode::new();
    assert_eq!(
        cnode.set(MAX_CNODE_SLOTS, h(0).into()),
        Err(CapError::SlotOutOfRange(MAX_CNODE_SLOTS))
    );
}

proptest! {
    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Cap::decode(&bytes);
    }

    #[test]
    fn decoding_random_bytes_after_each_tag_never_panics(
        tag in 0u8..6,
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&body);
        if let Ok(cap) = Cap::decode(&bytes) {
            // Anything accepted is canonical: it re-encodes to the same bytes.
            prop_assert_eq!(cap.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn mutated_valid_encodings_decode_canonically_or_fail(
        which in 0usize..8,
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = sample_caps()[which].encode().unwrap();
        let at = position.index(bytes.len());
        bytes[at] = value;
        if let Ok(cap) = Cap::decode(&bytes) {
            prop_assert_eq!(cap.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn random_images_and_cnodes_round_trip(
        code in proptest::collection::vec(any::<u8>(), 0..64),
        endpoints in proptest::collection::vec(any::<u32>(), 0..8),
        heap_pages in 0u32..1000,
        slots in proptest::collection::btree_map(0u32..MAX_CNODE_SLOTS, any::<[u8; 32]>(), 0..20),
    ) {
        let image = Cap::Image(Image { code, endpoints, heap_pages, ..Image::default() });
        prop_assert_eq!(&Cap::decode(&image.encode().unwrap()).unwrap(), &image);
        let mut cnode = CNode::new();
        for (slot, hash) in slots {
            cnode.set(slot, CapHash::from_bytes(hash).into()).unwrap();
        }
        let cnode = Cap::CNode(cnode);
        prop_assert_eq!(&Cap::decode(&cnode.encode().unwrap()).unwrap(), &cnode);
    }
}
