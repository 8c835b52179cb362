//! Data: byte semantics, equal content ⇔ equal hash, incremental hashing.

use std::sync::Arc;

use capbox_shared::cap::{MAX_DATA_LEN, Page, SharedPage};
use capbox_shared::{Cap, CapError, Data, PAGE_SIZE};
use proptest::prelude::*;

const P: u64 = PAGE_SIZE as u64;

#[test]
fn reads_writes_and_bounds() {
    let mut data = Data::new(2 * P + 10).unwrap();
    assert_eq!(data.page_count(), 3);
    data.write(P - 2, b"abcd").unwrap();
    let mut buf = [0xffu8; 6];
    data.read(P - 3, &mut buf).unwrap();
    assert_eq!(&buf, b"\0abcd\0");
    assert_eq!(data.present_page_count(), 2);
    let end = data.len();
    assert!(data.write(end - 1, b"x").is_ok());
    assert_eq!(
        data.write(end, b"x"),
        Err(CapError::OutOfBounds {
            offset: end,
            len: 1,
            data_len: end
        })
    );
    assert!(data.read(u64::MAX, &mut [0]).is_err());
    assert!(data.write(u64::MAX - 1, &[1, 2, 3]).is_err());
    assert!(Data::new(MAX_DATA_LEN + 1).is_err());
    let mut big = Data::new(MAX_DATA_LEN).unwrap();
    big.write(MAX_DATA_LEN - 1, b"!").unwrap();
    assert_eq!(big.present_page_count(), 1);
}

#[test]
fn writing_zeros_to_an_absent_page_stores_nothing() {
    let mut data = Data::new(4 * P).unwrap();
    data.write(P, &[0; 100]).unwrap();
    assert_eq!(data.present_page_count(), 0);
}

#[test]
fn set_len_truncates_and_zero_extends() {
    let mut data = Data::from_bytes(&[7u8; 3 * PAGE_SIZE]).unwrap();
    data.set_len(P + 5).unwrap();
    assert_eq!(data.present_page_count(), 2);
    data.set_len(3 * P).unwrap();
    let bytes = data.to_vec();
    assert!(bytes[..PAGE_SIZE + 5].iter().all(|&b| b == 7));
    assert!(bytes[PAGE_SIZE + 5..].iter().all(|&b| b == 0));
    let mut expected = vec![7u8; PAGE_SIZE + 5];
    expected.resize(3 * PAGE_SIZE, 0);
    assert_eq!(data, Data::from_bytes(&expected).unwrap());
    assert_eq!(data.hash(), Data::from_bytes(&expected).unwrap().hash());
    assert!(data.set_len(MAX_DATA_LEN + 1).is_err());
}

#[test]
fn write_page_checks_index_and_tail() {
    let mut data = Data::new(P + 10).unwrap();
    let mut page: Page = [1; PAGE_SIZE];
    assert!(data.write_page(2, &page).is_err());
    assert!(data.write_page(1, &page).is_err(), "bytes past len");
    data.write_page(0, &page).unwrap();
    page[10..].fill(0);
    data.write_page(1, &page).unwrap();
    assert_eq!(data.page(1), Some(&page));
    data.write_page(1, &[0; PAGE_SIZE]).unwrap();
    assert_eq!(data.page(1), None);
    assert_eq!(data.pages().count(), 1);

    let shared = SharedPage::new(&[2u8; PAGE_SIZE]);
    data.write_page_shared(0, shared.clone()).unwrap();
    assert!(SharedPage::ptr_eq(
        data.shared_pages().next().unwrap().1,
        &shared
    ));
    assert!(data.write_page_shared(1, shared.clone()).is_err());
    data.write(0, b"x").unwrap();
    assert_eq!(shared[0], 2, "writes copy a shared page first");
    assert_eq!(data.hash(), data.hash_uncached());
}

#[test]
fn zero_page_hashes_like_absent_page() {
    let absent = Data::new(3 * P).unwrap();
    let mut present_zero = Data::new(3 * P).unwrap();
    present_zero.write(P, b"x").unwrap();
    present_zero.write(P, b"\0").unwrap();
    assert_eq!(present_zero.present_page_count(), 1);
    assert_eq!(present_zero, absent);
    assert_eq!(present_zero.hash(), absent.hash());
    assert_eq!(
        Cap::Data(present_zero.clone()).encode().unwrap(),
        Cap::Data(absent.clone()).encode().unwrap()
    );
}

#[test]
fn length_is_part_of_the_hash() {
    let a = Data::new(10).unwrap();
    let b = Data::new(11).unwrap();
    assert_ne!(a, b);
    assert_ne!(a.hash(), b.hash());
    let c = Data::from_bytes(b"ab").unwrap();
    let d = Data::from_bytes(b"ab\0").unwrap();
    assert_ne!(c.hash(), d.hash());
}

#[test]
fn hash_is_cached_until_written() {
    let mut data = Data::from_bytes(&[3u8; 5 * PAGE_SIZE]).unwrap();
    assert!(!data.is_hash_cached());
    let first = data.hash();
    assert!(data.is_hash_cached());
    assert_eq!(data.hash(), first);
    data.write(2 * P, b"q").unwrap();
    assert!(!data.is_hash_cached());
    assert_ne!(data.hash(), first);
    assert_eq!(data.hash(), data.hash_uncached());
}

#[test]
fn clone_through_arc_make_mut_keeps_blob_and_cache() {
    let original = Arc::new(Cap::Data(Data::from_bytes(&[1u8; 8 * PAGE_SIZE]).unwrap()));
    let original_hash = original.hash().unwrap();
    let mut working = original.clone();
    let Cap::Data(data) = Arc::make_mut(&mut working) else {
        unreachable!()
    };
    assert!(data.is_hash_cached(), "the clone inherits the cache");
    data.write(3 * P + 1, b"changed").unwrap();
    let Cap::Data(data) = &*working else {
        unreachable!()
    };
    assert_eq!(data.hash(), data.hash_uncached());
    assert_ne!(working.hash().unwrap(), original_hash);
    assert_eq!(original.hash().unwrap(), original_hash);
    let Cap::Data(before) = &*original else {
        unreachable!()
    };
    assert_eq!(before.to_vec(), vec![1u8; 8 * PAGE_SIZE]);
}

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    WritePage { index: u32, fill: u8, shared: bool },
    ClearPage(u32),
    SetLen(u64),
    Hash,
}

fn op(max_len: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..max_len, proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(offset, bytes)| Op::Write { offset, bytes }),
        2 => (0..(max_len / P) as u32 + 1, prop_oneof![Just(0u8), any::<u8>()], any::<bool>())
            .prop_map(|(index, fill, shared)| Op::WritePage { index, fill, shared }),
        1 => (0..(max_len / P) as u32 + 1).prop_map(Op::ClearPage),
        1 => (0..max_len).prop_map(Op::SetLen),
        2 => Just(Op::Hash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// After any sequence of edits (with hashes in between, so the cache is
    /// reused), the cached hash equals a from-scratch hash and the hash of a
    /// Data rebuilt from the same bytes; a model vector agrees on content.
    #[test]
    fn incremental_hash_matches_scratch(
        initial_len in 0u64..(12 * P),
        ops in proptest::collection::vec(op(12 * P), 1..40),
    ) {
        let mut data = Data::new(initial_len).unwrap();
        let mut model = vec![0u8; initial_len as usize];
        for op in ops {
            match op {
                Op::Write { offset, bytes } => {
                    let fits = offset as usize + bytes.len() <= model.len();
                    prop_assert_eq!(data.write(offset, &bytes).is_ok(), fits);
                    if fits {
                        model[offset as usize..offset as usize + bytes.len()].copy_from_slice(&bytes);
                    }
                }
                Op::WritePage { index, fill, shared } => {
                    let start = index as usize * PAGE_SIZE;
                    let in_range = model.len().saturating_sub(start).min(PAGE_SIZE);
                    let mut page = [0u8; PAGE_SIZE];
                    page[..in_range].fill(fill);
                    let fits = start < model.len();
                    let written = if shared {
                        data.write_page_shared(index, SharedPage::new(&page))
                    } else {
                        data.write_page(index, &page)
                    };
                    prop_assert_eq!(written.is_ok(), fits);
                    if fits {
                        model[start..start + in_range].fill(fill);
                    }
                }
                Op::ClearPage(index) => {
                    data.clear_page(index);
                    let start = (index as usize * PAGE_SIZE).min(model.len());
                    let end = (start + PAGE_SIZE).min(model.len());
                    model[start..end].fill(0);
                }
                Op::SetLen(len) => {
                    data.set_len(len).unwrap();
                    model.resize(len as usize, 0);
                }
                Op::Hash => {
                    prop_assert_eq!(data.hash(), data.hash_uncached());
                }
            }
        }
        prop_assert_eq!(data.to_vec(), model.clone());
        let rebuilt = Data::from_bytes(&model).unwrap();
        prop_assert_eq!(&data, &rebuilt);
        prop_assert_eq!(data.hash(), rebuilt.hash());
        prop_assert_eq!(data.hash(), data.hash_uncached());
        let decoded = Cap::decode(&Cap::Data(data.clone()).encode().unwrap()).unwrap();
        prop_assert_eq!(decoded.hash().unwrap(), data.hash());
    }

    /// Equal content ⇔ equal hash, over small random byte strings.
    #[test]
    fn equal_content_iff_equal_hash(
        a in proptest::collection::vec(0u8..2, 0..(3 * PAGE_SIZE)),
        b in proptest::collection::vec(0u8..2, 0..(3 * PAGE_SIZE)),
    ) {
        let da = Data::from_bytes(&a).unwrap();
        let db = Data::from_bytes(&b).unwrap();
        prop_assert_eq!(a == b, da.hash() == db.hash());
        prop_assert_eq!(a == b, da == db);
    }
}
