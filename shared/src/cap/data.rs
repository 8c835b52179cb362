//! `Data`: a byte string stored as 4 KiB pages, hashed incrementally.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use spin::Mutex;

use super::CapError;
use super::merkle::MerkleCache;
use super::page::SharedPage;
use crate::hash::{CapHash, Domain, hash_parts_in};

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
/// hook, see [`crate::page_alloc`]), so cloning a `Data` (e.g.
/// `Arc::make_mut` on a shared cap) copies page pointers, and a later write
/// copies only the page it touches. The hash is a Merkle root (see the `merkle` module docs) whose
/// inner nodes are cached inside the value behind a lock, so
/// [`Data::hash`] takes `&self` and, after k page writes, re-hashes only those
/// k leaves and their O(log n) ancestors.
pub struct Data {
    len: u64,
    pages: BTreeMap<u32, SharedPage>,
    merkle: Mutex<MerkleCache>,
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
            pages: BTreeMap::new(),
            merkle: Mutex::new(MerkleCache::all_dirty(core::iter::empty())),
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
                data.pages.insert(index as u32, page);
            }
        }
        data.merkle = Mutex::new(MerkleCache::all_dirty(data.pages.keys().copied()));
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
        let old_count = self.page_count();
        let new_count = page_count_for(new_len);
        let merkle = self.merkle.get_mut();
        if new_len < self.len {
            self.pages.retain(|&i, _| i < new_count);
            let tail = (new_len % PAGE_SIZE as u64) as usize;
            let last = new_count.wrapping_sub(1);
            if tail != 0
                && let Some(page) = self.pages.get_mut(&last)
            {
                SharedPage::make_mut(page)[tail..].fill(0);
                merkle.mark_dirty(last);
            }
        }
        if new_count != old_count {
            merkle.mark_resized(new_count);
        }
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
            match self.pages.get(&index) {
                Some(page) => out.copy_from_slice(&page[within..within + out.len()]),
                None => out.fill(0),
            }
        }
        Ok(())
    }

    /// Writes `bytes` at `offset`; the range must lie within `len`.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), CapError> {
        self.check_range(offset, bytes.len())?;
        let merkle = self.merkle.get_mut();
        for (index, within, range) in page_chunks(offset, bytes.len()) {
            let src = &bytes[range];
            let n = src.len();
            match self.pages.get_mut(&index) {
                Some(page) => SharedPage::make_mut(page)[within..within + n].copy_from_slice(src),
                None if src.iter().all(|&b| b == 0) => {}
                None => {
                    let mut page = SharedPage::zeroed();
                    SharedPage::make_mut(&mut page)[within..within + n].copy_from_slice(src);
                    self.pages.insert(index, page);
                }
            }
            merkle.mark_dirty(index);
        }
        Ok(())
    }

    /// The stored page `index`, if present (absent pages read as zeros).
    pub fn page(&self, index: u32) -> Option<&Page> {
        self.pages.get(&index).map(|page| &**page)
    }

    /// Replaces page `index` (which must be below [`Data::page_count`]). In
    /// the last, partial page the bytes past `len` must be zero. An all-zero
    /// page is stored as absent.
    pub fn write_page(&mut self, index: u32, bytes: &Page) -> Result<(), CapError> {
        self.check_whole_page(index, bytes)?;
        if bytes.iter().all(|&b| b == 0) {
            self.pages.remove(&index);
        } else {
            match self.pages.get_mut(&index) {
                Some(page) => *SharedPage::make_mut(page) = *bytes,
                None => {
                    self.pages.insert(index, SharedPage::new(bytes));
                }
            }
        }
        self.merkle.get_mut().mark_dirty(index);
        Ok(())
    }

    /// Like [`Data::write_page`] but stores the given shared page itself (no
    /// copy; a later write to either side copies that page).
    pub fn write_page_shared(&mut self, index: u32, page: SharedPage) -> Result<(), CapError> {
        self.check_whole_page(index, &page)?;
        if page.iter().all(|&b| b == 0) {
            self.pages.remove(&index);
        } else {
            self.pages.insert(index, page);
        }
        self.merkle.get_mut().mark_dirty(index);
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
        if self.pages.remove(&index).is_some() {
            self.merkle.get_mut().mark_dirty(index);
        }
    }

    /// The stored pages in ascending index order (may include zero pages).
    pub fn pages(&self) -> impl Iterator<Item = (u32, &Page)> + '_ {
        self.pages.iter().map(|(&i, page)| (i, &**page))
    }

    /// The stored pages as shared handles (cheap to clone into another Data).
    pub fn shared_pages(&self) -> impl Iterator<Item = (u32, &SharedPage)> + '_ {
        self.pages.iter().map(|(&i, page)| (i, page))
    }

    /// All `len` bytes in one vector (allocates `len` bytes: up to 4 GiB).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        for (&index, page) in &self.pages {
            let start = index as usize * PAGE_SIZE;
            let end = (start + PAGE_SIZE).min(out.len());
            out[start..end].copy_from_slice(&page[..end - start]);
        }
        out
    }

    /// The content hash: `Domain::CapData` over `len ‖ merkle root`.
    /// Uses (and refreshes) the cached tree; O(1) when nothing changed.
    pub fn hash(&self) -> CapHash {
        let mut merkle = self.merkle.lock();
        let root = merkle.root(self.page_count(), |i| self.page(i));
        CapHash(hash_parts_in(
            Domain::CapData,
            &[&self.len.to_le_bytes(), &root],
        ))
    }

    /// Whether [`Data::hash`] would be answered from the cache.
    pub fn is_hash_cached(&self) -> bool {
        self.merkle.lock().is_clean()
    }

    /// The hash computed from scratch, ignoring the cache (for checks).
    pub fn hash_uncached(&self) -> CapHash {
        let mut fresh = MerkleCache::all_dirty(self.pages.keys().copied());
        let root = fresh.root(self.page_count(), |i| self.page(i));
        CapHash(hash_parts_in(
            Domain::CapData,
            &[&self.len.to_le_bytes(), &root],
        ))
    }

    /// Builds a Data from already-validated decoded parts.
    pub(crate) fn from_parts(len: u64, pages: BTreeMap<u32, SharedPage>) -> Self {
        let merkle = MerkleCache::all_dirty(pages.keys().copied());
        Data {
            len,
            pages,
            merkle: Mutex::new(merkle),
        }
    }

    /// Stored pages that are not all zero (the canonical page set).
    pub(crate) fn nonzero_pages(&self) -> impl Iterator<Item = (u32, &Page)> + '_ {
        self.pages()
            .filter(|(_, page)| page.iter().any(|&b| b != 0))
    }
}

impl Clone for Data {
    fn clone(&self) -> Self {
        Data {
            len: self.len,
            pages: self.pages.clone(),
            merkle: Mutex::new(self.merkle.lock().clone()),
        }
    }
}

impl PartialEq for Data {
    /// Equal content: same length and bytes (zero pages equal absent ones).
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        let same_page = |index: u32, page: &SharedPage, other: &Data| match other.pages.get(&index)
        {
            Some(theirs) => page == theirs,
            None => page[..] == ZERO_PAGE[..],
        };
        self.pages.iter().all(|(&i, p)| same_page(i, p, other))
            && other.pages.iter().all(|(&i, p)| same_page(i, p, self))
    }
}

impl Eq for Data {}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data")
            .field("len", &self.len)
            .field("present_pages", &self.pages.keys().collect::<Vec<_>>())
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
