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

/// Hashes computed by the implementation before Data moved onto the
/// persistent tree (a BTreeMap of pages plus a level cache): the hash
/// definition must not change.
#[test]
fn hashes_match_the_previous_implementation() {
    let mut three = Data::new(3 * P - 7).unwrap();
    three.write(1, b"hello").unwrap();
    three.write(2 * P + 5, b"tail").unwrap();
    let bytes: Vec<u8> = (0..(5 * PAGE_SIZE + 123)).map(|i| (i % 7) as u8).collect();
    let mut sparse = Data::new(MAX_DATA_LEN).unwrap();
    sparse.write(MAX_DATA_LEN - 1, b"!").unwrap();
    sparse.write(12_345_678, b"x").unwrap();
    let pinned = [
        (
            three,
            "14ae0a6b80bf8c5fce1165779c6aebcaad151e2514ee7f4e5e2c927851620992",
        ),
        (
            Data::from_bytes(&bytes).unwrap(),
            "0df0d6117c5d0e0e7ca0c8e584f906fc851749f03c4b93980e5e5f7fcaf83be4",
        ),
        (
            Data::new(0).unwrap(),
            "04b05d7efacad560e85d526cbf4149f0417469ee66d3d882cd30c482673452f3",
        ),
        (
            sparse,
            "26aa1aa5bc9753cdb998014f645f646591c9e42c94febd17a9016e8b209a64ef",
        ),
    ];
    for (data, hex) in pinned {
        assert_eq!(data.hash().to_hex(), hex);
        assert_eq!(data.hash_uncached().to_hex(), hex);
    }
}

#[test]
fn clone_is_independent_of_the_original() {
    let original = Data::from_bytes(&[5u8; 6 * PAGE_SIZE + 9]).unwrap();
    let hash = original.hash();
    let mut copy = original.clone();
    assert!(copy.is_hash_cached());
    copy.write(2 * P + 3, b"new").unwrap();
    copy.clear_page(4);
    copy.set_len(20 * P).unwrap();
    copy.write(19 * P, b"far").unwrap();
    assert_eq!(copy.hash(), copy.hash_uncached());
    assert_ne!(copy.hash(), hash);
    assert_eq!(original.hash(), hash);
    assert_eq!(original.hash_uncached(), hash);
    assert_eq!(original.to_vec(), vec![5u8; 6 * PAGE_SIZE + 9]);
    copy.set_len(P + 1).unwrap();
    assert_eq!(copy.present_page_count(), 2);
    assert_eq!(original.present_page_count(), 7);
    assert_eq!(original.hash(), hash);
}

#[test]
fn shrinking_zeroes_the_tail_and_regrowing_reads_zeros() {
    let mut data = Data::from_bytes(&[9u8; 9 * PAGE_SIZE]).unwrap();
    data.hash();
    data.set_len(2 * P + 1).unwrap();
    data.set_len(9 * P).unwrap();
    let mut expected = vec![9u8; 2 * PAGE_SIZE + 1];
    expected.resize(9 * PAGE_SIZE, 0);
    assert_eq!(data.to_vec(), expected);
    assert_eq!(data.present_page_count(), 3);
    assert_eq!(data.hash(), Data::from_bytes(&expected).unwrap().hash());
    assert_eq!(data.hash(), data.hash_uncached());
}

/// A sparse model of a Data: its length and its non-zero pages.
#[derive(Debug, Clone, Default)]
struct SparseModel {
    len: u64,
    pages: std::collections::BTreeMap<u32, Vec<u8>>,
}

impl SparseModel {
    fn write(&mut self, offset: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let at = offset + i as u64;
            let page = self
                .pages
                .entry((at / P) as u32)
                .or_insert_with(|| vec![0; PAGE_SIZE]);
            page[(at % P) as usize] = b;
        }
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            let count = len.div_ceil(P) as u32;
            self.pages.retain(|&i, _| i < count);
            let tail = (len % P) as usize;
            if tail != 0
                && let Some(page) = self.pages.get_mut(&(count - 1))
            {
                page[tail..].fill(0);
            }
        }
        self.len = len;
    }

    /// A Data rebuilt from the model (the from-scratch reference).
    fn build(&self) -> Data {
        let mut data = Data::new(self.len).unwrap();
        for (&index, page) in &self.pages {
            data.write(
                u64::from(index) * P,
                page.as_slice()
                    .split_at(PAGE_SIZE.min((self.len - u64::from(index) * P) as usize))
                    .0,
            )
            .unwrap();
        }
        data
    }
}

fn big_op() -> impl Strategy<Value = Op> {
    // Lengths across the whole range (re-rooting up to depth 20), writes
    // that straddle page boundaries.
    prop_oneof![
        4 => (0..MAX_DATA_LEN, proptest::collection::vec(1u8..=255, 1..16))
            .prop_map(|(offset, bytes)| Op::Write { offset, bytes }),
        2 => prop_oneof![0..(4 * P), 0..MAX_DATA_LEN + 1].prop_map(Op::SetLen),
        1 => Just(Op::Hash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random writes and resizes over the full 4 GiB range, with clones
    /// taken along the way: the incremental hash equals the from-scratch
    /// one and that of a Data rebuilt from a model, and every clone keeps
    /// its content and hash while the original changes.
    #[test]
    fn sparse_edits_and_clones(ops in proptest::collection::vec(big_op(), 1..30)) {
        let mut data = Data::new(0).unwrap();
        let mut model = SparseModel::default();
        let mut snapshots: Vec<(Data, CapHashSnapshot)> = Vec::new();
        for op in ops {
            match op {
                Op::Write { offset, bytes } => {
                    let fits = offset + bytes.len() as u64 <= model.len;
                    prop_assert_eq!(data.write(offset, &bytes).is_ok(), fits);
                    if fits {
                        model.write(offset, &bytes);
                    }
                }
                Op::SetLen(len) => {
                    data.set_len(len).unwrap();
                    model.set_len(len);
                }
                _ => {
                    prop_assert_eq!(data.hash(), data.hash_uncached());
                    snapshots.push((data.clone(), CapHashSnapshot(data.hash(), data.len(), data.present_page_count())));
                }
            }
        }
        prop_assert_eq!(data.hash(), data.hash_uncached());
        prop_assert_eq!(data.hash(), model.build().hash());
        prop_assert_eq!(&data, &model.build());
        for (snapshot, CapHashSnapshot(hash, len, present)) in snapshots {
            prop_assert_eq!(snapshot.hash(), hash);
            prop_assert_eq!(snapshot.hash_uncached(), hash);
            prop_assert_eq!(snapshot.len(), len);
            prop_assert_eq!(snapshot.present_page_count(), present);
        }
    }
}

#[derive(Debug)]
struct CapHashSnapshot(capbox_shared::CapHash, u64, usize);
