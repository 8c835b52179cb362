//! `Data`: a byte string stored as 4 KiB pages, hashed incrementally.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::CapError;
use super::merkle::{DataPages, depth_for};
use super::page::SharedPage;
use super::tree::{Tree, root_from_scratch};
use crate::hash::{CapHash, Domain, hash_in, hash_parts_in};

mod merkle_parts;
pub use merkle_parts::{
    NodeDigest, data_depth_for_len, data_hash_from_root, data_node_digest, data_page_digest,
    data_zero_digest,
};

/// Size of one Data page.
pub const PAGE_SIZE: usize = 4096;
/// One page of bytes.
pub type Page = [u8; PAGE_SIZE];
/// Largest Data length: 4 GiB, the PVM's whole address space.
pub const MAX_DATA_LEN: u64 = 1 << 32;
/// Largest number of pages a Data can have (`MAX_DATA_LEN / PAGE_SIZE`).
pub const MAX_DATA_PAGES: u32 = (MAX_DATA_LEN / PAGE_SIZE as u64) as u32;

const ZERO_PAGE: Page = [0u8; PAGE_SIZE];

/// A byte string of `len` bytes kept as 4 KiB pages; an absent page reads as
/// zeros. Bytes past `len` in the last page are always zero.
///
/// Pages are [`SharedPage`]s (refcounted, storage from the page-allocation
/// hook, see [`crate::page_alloc`]) held in a persistent Merkle tree (the
/// `tree` module) whose nodes cache their digests. Cloning a `Data` (e.g.
/// `Arc::make_mut` on a shared cap) is O(1); a later write copies only the
/// pages it touches and their O(log n) tree paths, and [`Data::hash`]
/// (`&self`) re-hashes only those pages and paths. See the `merkle` module
/// docs for the hash definition.
#[derive(Clone)]
pub struct Data {
    len: u64,
    /// Leaves `0..page_count`; the depth is `depth_for(page_count)`.
    pages: Tree<DataPages>,
}

fn page_count_for(len: u64) -> u32 {
    // len ≤ MAX_DATA_LEN, so the count fits in u32.
    len.div_ceil(PAGE_SIZE as u64) as u32
}

fn check_len(len: u64) -> Result<(), CapError> {
    if len > MAX_DATA_LEN {
        return Err(CapError::LimitExceeded {
            what: "Data length",
            value: len,
            max: MAX_DATA_LEN,
        });
    }
    Ok(())
}

impl Data {
    /// `len` zero bytes (no pages stored).
    pub fn new(len: u64) -> Result<Self, CapError> {
        check_len(len)?;
        Ok(Data {
            len,
            pages: Tree::new(depth_for(page_count_for(len))),
        })
    }

    /// A Data holding a copy of `bytes`; all-zero pages are not stored.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CapError> {
        let mut data = Data::new(bytes.len() as u64)?;
        for (index, chunk) in bytes.chunks(PAGE_SIZE).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                let page = match <&Page>::try_from(chunk) {
                    Ok(whole) => SharedPage::new(whole),
                    Err(_) => {
                        let mut page = SharedPage::zeroed();
                        SharedPage::make_mut(&mut page)[..chunk.len()].copy_from_slice(chunk);
                        page
                    }
                };
                data.pages.set(index as u32, page);
            }
        }
        Ok(data)
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pages covering `len` (present or not).
    pub fn page_count(&self) -> u32 {
        page_count_for(self.len)
    }

    /// Number of pages actually stored (may include all-zero pages).
    pub fn present_page_count(&self) -> usize {
        self.pages.len()
    }

    /// Truncates (dropping bytes) or extends (with zeros) to `new_len`.
    pub fn set_len(&mut self, new_len: u64) -> Result<(), CapError> {
        check_len(new_len)?;
        let new_count = page_count_for(new_len);
        if new_len < self.len {
            self.pages.truncate(new_count);
            let tail = (new_len % PAGE_SIZE as u64) as usize;
            let last = new_count.wrapping_sub(1);
            if tail != 0
                && self
                    .pages
                    .get(last)
                    .is_some_and(|page| page[tail..].iter().any(|&b| b != 0))
                && let Some(page) = self.pages.get_mut(last)
            {
                SharedPage::make_mut(page)[tail..].fill(0);
            }
        }
        // Growing adds levels with zero right halves above the root;
        // shrinking (after the truncation above) descends to the left.
        self.pages.set_depth(depth_for(new_count));
        self.len = new_len;
        Ok(())
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<(), CapError> {
        let len = len as u64;
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(CapError::OutOfBounds {
                offset,
                len,
                data_len: self.len,
            }),
        }
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), CapError> {
        self.check_range(offset, buf.len())?;
        for (index, within, range) in page_chunks(offset, buf.len()) {
            let out = &mut buf[range];
            match self.pages.get(index) {
                Some(page) => out.copy_from_slice(&page[within..within + out.len()]),
                None => out.fill(0),
            }
        }
        Ok(())
    }

    /// Writes `bytes` at `offset`; the range must lie within `len`.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), CapError> {
        self.check_range(offset, bytes.len())?;
        for (index, within, range) in page_chunks(offset, bytes.len()) {
            let src = &bytes[range];
            let n = src.len();
            match self.pages.get_mut(index) {
                Some(page) => SharedPage::make_mut(page)[within..within + n].copy_from_slice(src),
                None if src.iter().all(|&b| b == 0) => {}
                None => {
                    let mut page = SharedPage::zeroed();
                    SharedPage::make_mut(&mut page)[within..within + n].copy_from_slice(src);
                    self.pages.set(index, page);
                }
            }
        }
        Ok(())
    }

    /// The stored page `index`, if present (absent pages read as zeros).
    pub fn page(&self, index: u32) -> Option<&Page> {
        self.pages.get(index).map(|page| &**page)
    }

    /// Replaces page `index` (which must be below [`Data::page_count`]). In
    /// the last, partial page the bytes past `len` must be zero. An all-zero
    /// page is stored as absent.
    pub fn write_page(&mut self, index: u32, bytes: &Page) -> Result<(), CapError> {
        self.check_whole_page(index, bytes)?;
        if bytes.iter().all(|&b| b == 0) {
            self.pages.remove(index);
        } else {
            match self.pages.get_mut(index) {
                // Sole holder: overwrite in place.
                Some(page) if SharedPage::holders(page) == 1 => {
                    *SharedPage::make_mut(page) = *bytes;
                }
                // Shared (e.g. with the committed state this Data was
                // cloned from): a fresh copy of `bytes`, not a copy of the
                // old page that is then overwritten (one 4 KiB copy less on
                // every committed page).
                Some(page) => *page = SharedPage::new(bytes),
                None => {
                    self.pages.set(index, SharedPage::new(bytes));
                }
            }
        }
        Ok(())
    }

    /// Like [`Data::write_page`] but stores the given shared page itself (no
    /// copy; a later write to either side copies that page).
    pub fn write_page_shared(&mut self, index: u32, page: SharedPage) -> Result<(), CapError> {
        self.check_whole_page(index, &page)?;
        if page.iter().all(|&b| b == 0) {
            self.pages.remove(index);
        } else {
            self.pages.set(index, page);
        }
        Ok(())
    }

    /// A whole-page write must name a page below the length and leave the
    /// bytes past the length zero.
    fn check_whole_page(&self, index: u32, bytes: &Page) -> Result<(), CapError> {
        let start = u64::from(index) * PAGE_SIZE as u64;
        let in_range = (self.len.saturating_sub(start) as usize).min(PAGE_SIZE);
        if index >= self.page_count() || bytes[in_range..].iter().any(|&b| b != 0) {
            return Err(CapError::OutOfBounds {
                offset: start,
                len: PAGE_SIZE as u64,
                data_len: self.len,
            });
        }
        Ok(())
    }

    /// Drops page `index` (it then reads as zeros).
    pub fn clear_page(&mut self, index: u32) {
        self.pages.remove(index);
    }

    /// The stored pages in ascending index order (may include zero pages).
    pub fn pages(&self) -> impl Iterator<Item = (u32, &Page)> + '_ {
        self.pages.iter().map(|(i, page)| (i, &**page))
    }

    /// The stored pages as shared handles (cheap to clone into another Data).
    pub fn shared_pages(&self) -> impl Iterator<Item = (u32, &SharedPage)> + '_ {
        self.pages.iter()
    }

    /// All `len` bytes in one vector (allocates `len` bytes: up to 4 GiB).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        for (index, page) in self.pages.iter() {
            let start = index as usize * PAGE_SIZE;
            let end = (start + PAGE_SIZE).min(out.len());
            out[start..end].copy_from_slice(&page[..end - start]);
        }
        out
    }

    /// The content hash: `Domain::CapData` over `len ‖ merkle root`.
    /// Hashes only the pages and tree nodes changed since the last call
    /// (on this value or a version it was cloned from).
    pub fn hash(&self) -> CapHash {
        // Page leaves always hash, so the tree root is always `Some`.
        let root = self.pages.root_digest().unwrap_or_default();
        self.hash_with_root(&root)
    }

    fn hash_with_root(&self, root: &[u8; 32]) -> CapHash {
        CapHash(hash_parts_in(
            Domain::CapData,
            &[&self.len.to_le_bytes(), root],
        ))
    }

    /// Whether [`Data::hash`] would be answered without hashing a page or
    /// tree node.
    pub fn is_hash_cached(&self) -> bool {
        self.pages.is_hashed()
    }

    /// The hash computed from scratch, ignoring the cached digests (for
    /// checks).
    pub fn hash_uncached(&self) -> CapHash {
        let leaves = self
            .pages
            .iter()
            .map(|(i, page)| (i, hash_in(Domain::DataPage, &page[..])));
        let root = root_from_scratch::<DataPages>(depth_for(self.page_count()), leaves);
        self.hash_with_root(&root)
    }

    /// Builds a Data from already-validated decoded parts (pages below the
    /// page count of `len`, zero past `len`).
    pub(crate) fn from_parts(
        len: u64,
        pages: impl IntoIterator<Item = (u32, SharedPage)>,
    ) -> Result<Self, CapError> {
        let mut data = Data::new(len)?;
        let count = data.page_count();
        for (index, page) in pages {
            if index < count {
                data.pages.set(index, page);
            }
        }
        Ok(data)
    }

    /// Stored pages that are not all zero (the canonical page set).
    pub(crate) fn nonzero_pages(&self) -> impl Iterator<Item = (u32, &Page)> + '_ {
        self.pages()
            .filter(|(_, page)| page.iter().any(|&b| b != 0))
    }
}

impl PartialEq for Data {
    /// Equal content: same length and bytes (zero pages equal absent ones).
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        if self.pages.ptr_eq(&other.pages) {
            return true;
        }
        let same_page = |index: u32, page: &SharedPage, other: &Data| match other.pages.get(index) {
            Some(theirs) => page == theirs,
            None => page[..] == ZERO_PAGE[..],
        };
        self.pages.iter().all(|(i, p)| same_page(i, p, other))
            && other.pages.iter().all(|(i, p)| same_page(i, p, self))
    }
}

impl Eq for Data {}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data")
            .field("len", &self.len)
            .field(
                "present_pages",
                &self.pages.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Splits the byte range `offset..offset + len` at page boundaries: for each
/// piece, its page index, its start within that page, and its range within
/// the caller's buffer. The caller has checked the range lies within `len`.
fn page_chunks(
    offset: u64,
    len: usize,
) -> impl Iterator<Item = (u32, usize, core::ops::Range<usize>)> {
    let mut done = 0;
    core::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let position = offset + done as u64;
        let index = (position / PAGE_SIZE as u64) as u32;
        let within = (position % PAGE_SIZE as u64) as usize;
        let n = (PAGE_SIZE - within).min(len - done);
        let range = done..done + n;
        done += n;
        Some((index, within, range))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_page_on_a_clone_leaves_the_original_and_hashes_as_from_scratch() {
        let mut first = [0u8; PAGE_SIZE];
        first[0] = 1;
        let original = Data::from_bytes(&first).unwrap();
        let before = original.hash();
        // Shared page: the clone gets a fresh copy.
        let mut shared = original.clone();
        let mut second = first;
        second[4095] = 9;
        shared.write_page(0, &second).unwrap();
        assert_eq!(original.page(0), Some(&first));
        assert_eq!(original.hash(), before);
        assert_eq!(shared.page(0), Some(&second));
        assert_eq!(shared.hash(), shared.hash_uncached());
        assert_ne!(shared.hash(), before);
        // Sole holder now: written in place, still hashed afresh.
        let mut third = second;
        third[7] = 3;
        shared.write_page(0, &third).unwrap();
        assert_eq!(shared.page(0), Some(&third));
        assert_eq!(shared.hash(), shared.hash_uncached());
        assert_eq!(shared.hash(), Data::from_bytes(&third).unwrap().hash());
    }
}
