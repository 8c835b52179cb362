//! A Data cap sent as the pages that differ from another Data the kernel
//! already holds (docs/store.md "Data pages": publishing sends only the
//! pages the guest lacks).
//!
//! A delta is not a cap encoding: it names its base by hash and is only
//! accepted where the sender also names the hash the result must have
//! (`put_cap` with a hash, a `fetch_blob` answer), so a wrong base or a
//! wrong page can only fail that check, never produce another cap.
//!
//! Layout (little endian): `DATA_DELTA_TAG ‖ base [32] ‖ len u64 ‖ count
//! u32`, then `count` entries `index u32 ‖ present u8 ‖ page [4096] if
//! present`, indices strictly ascending and below the new page count. An
//! absent entry makes that page zero. The result is the base resized to
//! `len` (truncating or zero-extending, as `Data::set_len`) with those
//! pages replaced.

use alloc::vec::Vec;

use super::{CapError, Data, PAGE_SIZE, Page};
use crate::hash::CapHash;

/// First byte of a delta (no cap kind has it: kind tags are 0..=4).
pub const DATA_DELTA_TAG: u8 = 0xD1;

const HEADER: usize = 1 + 32 + 8 + 4;

/// Whether `bytes` is a delta rather than a cap encoding.
pub fn is_data_delta(bytes: &[u8]) -> bool {
    bytes.first() == Some(&DATA_DELTA_TAG)
}

/// Encoded length of a delta of `present` pages and `absent` zeroed ones.
pub fn data_delta_len(present: usize, absent: usize) -> usize {
    HEADER + (present + absent) * 5 + present * PAGE_SIZE
}

/// Encodes a delta: `base`'s pages replaced by `changes` (ascending page
/// indices; `None` makes a page zero), at length `len`.
pub fn encode_data_delta<'p>(
    base: &CapHash,
    len: u64,
    changes: impl ExactSizeIterator<Item = (u32, Option<&'p Page>)>,
) -> Vec<u8> {
    let count = changes.len();
    let mut out = Vec::with_capacity(HEADER + count * (5 + PAGE_SIZE));
    out.push(DATA_DELTA_TAG);
    out.extend_from_slice(&base.0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (index, page) in changes {
        out.extend_from_slice(&index.to_le_bytes());
        match page {
            Some(page) => {
                out.push(1);
                out.extend_from_slice(page);
            }
            None => out.push(0),
        }
    }
    out
}

/// The base a delta names, or an error for bytes too short to be one.
pub fn data_delta_base(bytes: &[u8]) -> Result<CapHash, CapError> {
    if !is_data_delta(bytes) {
        return Err(CapError::NonCanonical("not a Data delta"));
    }
    let base = bytes
        .get(1..33)
        .ok_or(CapError::Truncated("Data delta base"))?;
    let mut hash = [0u8; 32];
    hash.copy_from_slice(base);
    Ok(CapHash(hash))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], CapError> {
    if bytes.len() < n {
        return Err(CapError::Truncated(what));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn u32_at(bytes: &mut &[u8], what: &'static str) -> Result<u32, CapError> {
    let b = take(bytes, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Applies delta `bytes` to `base` (the Data its header names; the caller
/// looked it up). Refuses malformed deltas with a typed error; the caller
/// still checks the result's hash.
pub fn apply_data_delta(base: &Data, bytes: &[u8]) -> Result<Data, CapError> {
    data_delta_base(bytes)?;
    let mut rest = &bytes[33..];
    let len_bytes = take(&mut rest, 8, "Data delta length")?;
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let len = u64::from_le_bytes(len);
    let count = u32_at(&mut rest, "Data delta page count")?;
    // Each entry takes at least 5 bytes: a count the bytes cannot hold is
    // refused before any work.
    if (count as usize).saturating_mul(5) > rest.len() {
        return Err(CapError::Truncated("Data delta entries"));
    }
    let mut data = base.clone();
    data.set_len(len)?;
    let pages = data.page_count();
    let mut next = 0u32;
    for _ in 0..count {
        let index = u32_at(&mut rest, "Data delta page index")?;
        if index < next || index >= pages {
            return Err(CapError::NonCanonical(
                "Data delta page indices must ascend and lie below the length",
            ));
        }
        next = index + 1;
        match take(&mut rest, 1, "Data delta page flag")?[0] {
            0 => data.clear_page(index),
            1 => {
                let page: &Page = take(&mut rest, PAGE_SIZE, "Data delta page")?
                    .try_into()
                    .map_err(|_| CapError::Truncated("Data delta page"))?;
                data.write_page(index, page)?;
            }
            _ => return Err(CapError::NonCanonical("Data delta page flag is not 0 or 1")),
        }
    }
    if !rest.is_empty() {
        return Err(CapError::TrailingBytes(rest.len()));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pages: u32, seed: u8) -> Data {
        let mut d = Data::new(u64::from(pages) * PAGE_SIZE as u64).unwrap();
        for i in 0..pages {
            d.write_page(i, &[seed.wrapping_add(i as u8) | 1; PAGE_SIZE])
                .unwrap();
        }
        d
    }

    #[test]
    fn a_delta_rebuilds_the_target_exactly() {
        let base = data(8, 1);
        let mut target = base.clone();
        target.write_page(3, &[9; PAGE_SIZE]).unwrap();
        target.clear_page(5);
        target.set_len(6 * PAGE_SIZE as u64 + 100).unwrap();
        let changes = [(3u32, target.page(3)), (5, None)];
        let bytes = encode_data_delta(&base.hash(), target.len(), changes.into_iter());
        assert_eq!(bytes.len(), data_delta_len(1, 1));
        assert_eq!(data_delta_base(&bytes).unwrap(), base.hash());
        let built = apply_data_delta(&base, &bytes).unwrap();
        assert_eq!(built.hash(), target.hash());
        assert_eq!(built.to_vec(), target.to_vec());
    }

    #[test]
    fn growing_and_an_empty_delta_work() {
        let base = data(2, 4);
        let same = encode_data_delta(&base.hash(), base.len(), core::iter::empty());
        assert_eq!(apply_data_delta(&base, &same).unwrap().hash(), base.hash());
        let mut grown = base.clone();
        grown.set_len(5 * PAGE_SIZE as u64).unwrap();
        grown.write_page(4, &[7; PAGE_SIZE]).unwrap();
        let bytes = encode_data_delta(&base.hash(), grown.len(), [(4, grown.page(4))].into_iter());
        assert_eq!(
            apply_data_delta(&base, &bytes).unwrap().hash(),
            grown.hash()
        );
    }

    #[test]
    fn malformed_deltas_are_refused_never_panic() {
        let base = data(4, 2);
        let page = [3u8; PAGE_SIZE];
        let good = encode_data_delta(&base.hash(), base.len(), [(1, Some(&page))].into_iter());
        // Every truncation, and a byte too many.
        for cut in 0..good.len() {
            assert!(apply_data_delta(&base, &good[..cut]).is_err(), "cut {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            apply_data_delta(&base, &long).unwrap_err(),
            CapError::TrailingBytes(1)
        );
        // Out of range, descending, a bad flag, a huge count.
        let past = encode_data_delta(&base.hash(), base.len(), [(4, None)].into_iter());
        assert!(apply_data_delta(&base, &past).is_err());
        let down = encode_data_delta(&base.hash(), base.len(), [(2, None), (1, None)].into_iter());
        assert!(apply_data_delta(&base, &down).is_err());
        let mut flag = past.clone();
        flag[HEADER] = 0; // index 0
        flag[HEADER + 4] = 2;
        assert!(apply_data_delta(&base, &flag).is_err());
        let mut huge = encode_data_delta(&base.hash(), base.len(), core::iter::empty());
        huge[41..45].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(apply_data_delta(&base, &huge).is_err());
        // Bytes past the new length must be zero.
        let short = encode_data_delta(&base.hash(), 100, [(0, Some(&page))].into_iter());
        assert!(apply_data_delta(&base, &short).is_err());
        assert!(data_delta_base(&[0u8; 40]).is_err());
    }
}
